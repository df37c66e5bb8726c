"""A plain RTP transport in the worker: ffmpeg/GStreamer in and out, optionally SRTP with keys in signaling.

It shares the worker's one UDP port with every other transport, so its remote
is found by address like any other; in `comedia` mode the remote is learned
from the first packet that no transport claims (RFC 4145's "connection-oriented
media" idea, as mediasoup names it).
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import TYPE_CHECKING

from fastpath.srtp import SrtpSession, profile_key_lengths

from media.engine.errors import invalid_input, invalid_state
from media.engine.transport import Transport

if TYPE_CHECKING:
    from media.engine.core import Engine
    from media.engine.router import Router

SRTP_SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM", "AEAD_AES_256_GCM")


def srtp_key_length(suite: str) -> int:
    key, salt = profile_key_lengths(suite)
    return key + salt


class PlainTransport(Transport):
    kind = "plain"

    def __init__(self, engine: Engine, router: Router, transport_id: str, data: dict):
        suite = data.get("srtpCryptoSuite") or "AES_CM_128_HMAC_SHA1_80"
        if suite not in SRTP_SUITES:
            raise invalid_input(f"srtpCryptoSuite must be one of {', '.join(SRTP_SUITES)}")
        super().__init__(engine, router, transport_id)
        self.rtcp_mux = bool(data.get("rtcpMux", True))
        self.comedia = bool(data.get("comedia", False))
        self.enable_srtp = bool(data.get("enableSrtp", False))
        self.srtp_suite = suite
        self.local_key = os.urandom(srtp_key_length(suite)) if self.enable_srtp else None
        self.remote_key: bytes | None = None
        self.tuple: tuple | None = None
        self.rtcp_tuple: tuple | None = None
        self.connected = False
        if not self.enable_srtp:
            engine.forwarder.set_transport_plain(self.slot)
        if self.comedia:
            engine.comedia_waiting.append(self)
            engine.forwarder.set_comedia_waiting(len(engine.comedia_waiting))

    def answer(self) -> dict:
        answer = {"tuple": self._local_tuple(), "rtcpMux": self.rtcp_mux, "comedia": self.comedia}
        if not self.rtcp_mux:
            answer["rtcpTuple"] = self._local_tuple()
        if self.local_key is not None:
            answer["srtpParameters"] = {"cryptoSuite": self.srtp_suite,
                                        "keyBase64": base64.b64encode(self.local_key).decode()}
        return answer

    def _local_tuple(self, remote: tuple | None = None) -> dict:
        shape = {"localIp": self.engine.announced_ip, "localPort": self.engine.rtc_port, "protocol": "udp"}
        if remote is not None:
            shape.update(remoteIp=remote[0], remotePort=remote[1])
        return shape

    def connect(self, data: dict) -> dict:
        """Remote address (unless comedia) and the remote's SRTP key (when SRTP is on)."""
        if self.connected:
            raise invalid_state("connect() was already called on this transport")
        if self.enable_srtp:
            self.remote_key = self._remote_key(data.get("srtpParameters"))
        if not self.comedia:
            ip, port = data.get("ip"), data.get("port")
            if not isinstance(ip, str) or not isinstance(port, int) or not 0 < port < 65536:
                raise invalid_input("ip (string) and port (1..65535) are required without comedia")
            rtcp_port = data.get("rtcpPort")
            if not self.rtcp_mux and (not isinstance(rtcp_port, int) or not 0 < rtcp_port < 65536):
                raise invalid_input("rtcpPort (1..65535) is required when rtcpMux is off")
            try:
                self._set_tuple((ip, port))
                if not self.rtcp_mux:
                    self._set_rtcp_tuple((ip, rtcp_port))
            except (ValueError, OSError) as exc:
                raise invalid_input(f"remote address: {exc}") from None
        if self.remote_key is not None:
            self.engine.forwarder.set_transport_srtp(
                self.slot, SrtpSession(self.srtp_suite, self.remote_key, "inbound"),
                SrtpSession(self.srtp_suite, self.local_key, "outbound"))
        self.connected = True
        result = {"tuple": self._local_tuple(self.tuple)}
        if not self.rtcp_mux:
            result["rtcpTuple"] = self._local_tuple(self.rtcp_tuple)
        return result

    def _remote_key(self, params: object) -> bytes:
        if not isinstance(params, dict):
            raise invalid_input("srtpParameters are required when enableSrtp is on")
        if params.get("cryptoSuite") != self.srtp_suite:
            raise invalid_input(f"srtpParameters.cryptoSuite must be {self.srtp_suite}")
        try:
            key = base64.b64decode(str(params.get("keyBase64", "")), validate=True)
        except (binascii.Error, ValueError):
            raise invalid_input("srtpParameters.keyBase64 is not base64") from None
        if len(key) != srtp_key_length(self.srtp_suite):
            raise invalid_input(f"srtpParameters key must be {srtp_key_length(self.srtp_suite)} bytes")
        return key

    def _set_tuple(self, addr: tuple) -> None:
        self.engine.forwarder.set_transport_tuple(self.slot, addr)
        self.tuple = addr

    def _set_rtcp_tuple(self, addr: tuple) -> None:
        self.engine.forwarder.set_transport_rtcp_tuple(self.slot, addr)
        self.rtcp_tuple = addr

    def waits_for(self, addr: tuple, is_rtcp: bool) -> bool:
        """Whether a first packet from addr can be this comedia transport's remote."""
        if self.tuple is None:
            return not is_rtcp or self.rtcp_mux
        return is_rtcp and not self.rtcp_mux and self.rtcp_tuple is None and addr[0] == self.tuple[0]

    def learn(self, addr: tuple, is_rtcp: bool, packet: bytes) -> None:
        """Comedia: take the remote from a first packet, which is then handled like every later one."""
        if is_rtcp and not self.rtcp_mux and self.tuple is not None:
            self._set_rtcp_tuple(addr)
            self.engine.notify("transport.rtcptuple", self.id, {"rtcpTuple": self._local_tuple(addr)})
        else:
            self._set_tuple(addr)
            self.engine.notify("transport.tuple", self.id, {"tuple": self._local_tuple(addr)})
        if self.tuple is not None and (self.rtcp_mux or self.rtcp_tuple is not None):
            self._stop_waiting()
        self.engine.forwarder.inject(self.slot, packet)

    def _stop_waiting(self) -> None:
        if self in self.engine.comedia_waiting:
            self.engine.comedia_waiting.remove(self)
            self.engine.forwarder.set_comedia_waiting(len(self.engine.comedia_waiting))

    def get_stats(self) -> list[dict]:
        return [{**self.base_stats(), "comedia": self.comedia, "rtcpMux": self.rtcp_mux,
                 "tuple": self._local_tuple(self.tuple) if self.tuple else None}]

    def close(self) -> None:
        if not self.closed:
            self._stop_waiting()
        super().close()

