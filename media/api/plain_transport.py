"""A plain RTP/RTCP transport, seen from the main process (mediasoup's PlainTransport).

For ffmpeg, GStreamer and recorders: no ICE or DTLS; the remote address is
given in `connect` or, with comedia, learnt from the first packet (the
worker reports it as "tuple"). SRTP, when enabled, takes its keys from
signaling (RFC 4568 style) instead of a DTLS handshake.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from media.api.errors import InvalidInputError, InvalidStateError, SwitchyardError, worker_request
from media.api.transport import Transport

if TYPE_CHECKING:
    from media.api.router import Router

SRTP_CRYPTO_SUITES = (
    "AEAD_AES_256_GCM",
    "AEAD_AES_128_GCM",
    "AES_CM_128_HMAC_SHA1_80",
    "AES_CM_128_HMAC_SHA1_32",
)
MAX_KEY_BASE64 = 128  # AEAD_AES_256_GCM's 44-byte key and salt are 60 characters


def check_srtp_crypto_suite(suite: Any) -> str:
    if suite not in SRTP_CRYPTO_SUITES:
        raise InvalidInputError(f"srtp crypto suite must be one of {', '.join(SRTP_CRYPTO_SUITES)}")
    return suite


def _check_port(port: Any, name: str) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= 65535:
        raise InvalidInputError(f"{name} must be a port number in 1..65535")
    return port


def _check_srtp_parameters(srtp_parameters: Any) -> dict[str, str]:
    if not isinstance(srtp_parameters, dict):
        raise InvalidInputError("srtpParameters must be an object")
    key = srtp_parameters.get("keyBase64")
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_BASE64:
        raise InvalidInputError("srtpParameters.keyBase64 must be a base64 string")
    return {"cryptoSuite": check_srtp_crypto_suite(srtp_parameters.get("cryptoSuite")), "keyBase64": key}


class PlainTransport(Transport):
    """Events: `tuple` and `rtcptuple` (comedia learnt a remote address), `routerclose`."""

    def __init__(
        self,
        router: Router,
        transport_id: str,
        data: dict[str, Any],
        app_data: dict[str, Any],
        rtcp_mux: bool,
        comedia: bool,
        enable_srtp: bool,
    ):
        super().__init__(router, transport_id, app_data)
        self.rtcp_mux = rtcp_mux
        self.comedia = comedia
        self.enable_srtp = enable_srtp
        self.tuple: dict[str, Any] = data["tuple"]
        self.rtcp_tuple: dict[str, Any] | None = data.get("rtcpTuple")
        self.srtp_parameters: dict[str, str] | None = data.get("srtpParameters")
        self._connect_called = False

    async def connect(
        self,
        ip: str | None = None,
        port: int | None = None,
        rtcp_port: int | None = None,
        srtp_parameters: dict[str, str] | None = None,
    ) -> None:
        """The remote address (unless comedia learns it) and the remote SRTP key. Only once."""
        self._check_open()
        if self._connect_called:
            raise InvalidStateError(f"connect() was already called on transport {self.id}")
        if ip is not None:
            try:
                ip = str(ipaddress.ip_address(ip))
            except ValueError:
                raise InvalidInputError(f"ip {ip!r} is not an IP address") from None
        if port is not None:
            port = _check_port(port, "port")
        if rtcp_port is not None:
            rtcp_port = _check_port(rtcp_port, "rtcpPort")
        if not self.comedia:
            if ip is None or port is None:
                raise InvalidInputError("ip and port are required unless comedia is on")
            if not self.rtcp_mux and rtcp_port is None:
                raise InvalidInputError("rtcpPort is required without rtcpMux")
        if self.enable_srtp:
            if srtp_parameters is None:
                raise InvalidInputError("srtpParameters are required: SRTP is enabled")
            srtp_parameters = _check_srtp_parameters(srtp_parameters)
        elif srtp_parameters is not None:
            raise InvalidInputError("srtpParameters given but SRTP is not enabled on this transport")
        self._connect_called = True
        try:
            data = await worker_request(self.worker, "transport.connect", {
                "transportId": self.id,
                "ip": ip,
                "port": port,
                "rtcpPort": rtcp_port,
                "srtpParameters": srtp_parameters,
            })
        except SwitchyardError:
            self._connect_called = False
            raise
        self.tuple = data.get("tuple", self.tuple)
        self.rtcp_tuple = data.get("rtcpTuple", self.rtcp_tuple)

    def _handle_notification(self, event: str, data: dict[str, Any]) -> None:
        if event == "transport.tuple":
            self.tuple = data["tuple"]
            self.emit("tuple", self.tuple)
        elif event == "transport.rtcptuple":
            self.rtcp_tuple = data["rtcpTuple"]
            self.emit("rtcptuple", self.rtcp_tuple)
