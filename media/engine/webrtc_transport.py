"""A WebRTC transport in the worker: ICE-lite and DTLS in Python, SRTP media in the Forwarder, SCTP data beside DTLS."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from fastpath.srtp import SrtpSession

from media.engine.dtls import DtlsSession, resolve_role
from media.engine.errors import invalid_input, invalid_state
from media.engine.ice import (
    EVENT_SELECTED_TUPLE_CHANGE,
    EVENT_STATE_CHANGE,
    EVENT_TUPLE_ADDED,
    EVENT_TUPLE_REMOVED,
    EVENT_UFRAG_REMOVED,
    ICE_STATE_COMPLETED,
    ICE_STATE_CONNECTED,
    IceLiteServer,
    IceTuple,
    ice_candidates,
)
from media.engine.sctp import MAX_SCTP_MESSAGE_SIZE, NUM_SCTP_STREAMS, SctpAssociation
from media.engine.transport import Transport
from media.ortc.capabilities import TRANSPORT_WIDE_CC_ID

if TYPE_CHECKING:
    from media.engine.core import Engine
    from media.engine.router import Router

# DTLS that arrives before `connect` signalled the remote fingerprints is kept
# (a few datagrams: the peer's first flight) rather than lost to a retransmit wait.
EARLY_DTLS_LIMIT = 8


def tuple_shape(ice_tuple: IceTuple, local_ip: str, local_port: int) -> dict:
    """mediasoup's TransportTuple."""
    return {"localIp": local_ip, "localPort": local_port, "remoteIp": ice_tuple.remote_ip,
            "remotePort": ice_tuple.remote_port, "protocol": ice_tuple.protocol}


class WebRtcTransport(Transport):
    kind = "webrtc"

    def __init__(self, engine: Engine, router: Router, transport_id: str, data: dict):
        super().__init__(engine, router, transport_id)
        self.enable_udp = bool(data.get("enableUdp", True))
        self.enable_tcp = bool(data.get("enableTcp", True))
        self.ice = IceLiteServer(consent_timeout=engine.consent_timeout)
        self.dtls: DtlsSession | None = None
        self.dtls_state = "new"
        self._early_dtls: list[bytes] = []
        self._dtls_timer: asyncio.TimerHandle | None = None
        engine.ufrags[self.ice.username_fragment] = self
        # DataChannels (RFC 8831): the association starts once DTLS is connected
        self.sctp: SctpAssociation | None = None
        if data.get("enableSctp"):
            self.sctp = SctpAssociation(
                self._send_sctp, self._on_sctp_state,
                int(data.get("numSctpStreams") or NUM_SCTP_STREAMS),
                int(data.get("maxSctpMessageSize") or MAX_SCTP_MESSAGE_SIZE))
        # A browser sends (and probes its bandwidth) as soon as DTLS is up, which can be before
        # its first `produce` reaches us; mediasoup-client numbers header extensions as the
        # router's capabilities say, so report transport-cc on that id from the start. The first
        # producer then sets what the transport's senders really negotiated.
        engine.forwarder.set_transport_incoming_feedback(self.slot, TRANSPORT_WIDE_CC_ID, False)

    def answer(self) -> dict:
        """The parameters the client needs: ICE, candidates, DTLS (mediasoup's shapes)."""
        return {
            "iceParameters": self.ice.ice_parameters(),
            "iceCandidates": [
                c for c in ice_candidates(self.engine.announced_ip, self.engine.rtc_port,
                                          self.engine.rtc_port if self.enable_tcp else None)
                if c["protocol"] == "tcp" or self.enable_udp
            ],
            "dtlsParameters": self.engine.certificate.dtls_parameters("auto"),
            **({"sctpParameters": self.sctp.parameters()} if self.sctp is not None else {}),
        }

    def connect(self, data: dict) -> dict:
        """Take the remote DTLS parameters; the handshake runs once ICE is connected."""
        if self.dtls is not None:
            raise invalid_state("connect() was already called on this transport")
        remote = data.get("dtlsParameters")
        if not isinstance(remote, dict) or not isinstance(remote.get("fingerprints"), list):
            raise invalid_input("dtlsParameters.fingerprints must be a list")
        role = remote.get("role", "auto")
        if role not in ("auto", "client", "server"):
            raise invalid_input(f"dtlsParameters.role {role!r} is not auto, client or server")
        local_role = resolve_role(role)
        try:
            self.dtls = DtlsSession(self.engine.certificate, local_role, remote["fingerprints"])
        except (ValueError, TypeError, KeyError) as exc:
            raise invalid_input(f"dtlsParameters: {exc}") from None
        self._maybe_start_dtls()
        for datagram in self._early_dtls:
            self.on_dtls(datagram, None)
        self._early_dtls.clear()
        return {"dtlsLocalRole": local_role}

    def restart_ice(self) -> dict:
        params = self.ice.restart()
        self.engine.ufrags[self.ice.username_fragment] = self
        self._handle_ice_events(self.ice.take_events())
        return {"iceParameters": params}

    # ---- control packets from the worker socket --------------------------------------------

    def on_stun(self, data: bytes, addr: tuple, protocol: str = "udp") -> None:
        if protocol == "udp" and not self.enable_udp or protocol == "tcp" and not self.enable_tcp:
            self.engine.control_drops["stun_disabled_protocol"] += 1
            return
        result = self.ice.handle_stun(data, addr, self.engine.loop.time(), protocol)
        if result.drop_reason:
            self.engine.control_drops[result.drop_reason.replace(" ", "_")] += 1
        if result.response:
            self._send_to(result.response, addr, protocol)
        self._handle_ice_events(result.events)

    def _send_to(self, packet: bytes, addr: tuple, protocol: str) -> None:
        if protocol == "tcp":
            connection = self.engine.tcp_connections.get((addr[0], addr[1]))
            if connection is not None:
                connection.send(packet)
        else:
            self.engine.forwarder.send_raw(packet, addr)

    def _follow(self, addr: tuple, protocol: str) -> None:
        """A peer sending DTLS or media on another valid tuple has moved there (mediasoup does the same)."""
        selected = self.ice.selected_tuple
        if selected is not None and (selected.remote_ip, selected.remote_port, selected.protocol) != (
            addr[0], addr[1], protocol
        ):
            self.ice.force_selected_tuple(addr, protocol)
            self._handle_ice_events(self.ice.take_events())

    def on_tcp_media(self, packet: bytes, addr: tuple) -> None:
        """RTP or RTCP read from an ICE-TCP connection: into the Forwarder like a datagram."""
        self._follow(addr, "tcp")
        selected = self.ice.selected_tuple
        if selected is None or selected.protocol != "tcp" or (selected.remote_ip, selected.remote_port) != addr:
            self.engine.control_drops["tcp_not_selected"] += 1
            return
        if self.engine.forwarder.inject(self.slot, packet):
            self.engine.flush_tcp()

    def on_tcp_closed(self, addr: tuple) -> None:
        self.ice.remove_tuple(addr, "tcp")
        self._handle_ice_events(self.ice.take_events())

    def on_dtls(self, data: bytes, addr: tuple | None, protocol: str = "udp") -> None:
        if addr is not None:
            self._follow(addr, protocol)
        if self.dtls is None:
            if len(self._early_dtls) < EARLY_DTLS_LIMIT:
                self._early_dtls.append(data)
            return
        self._send_dtls(self.dtls.feed(data))
        self._after_dtls()
        self._deliver_application_data()

    def _handle_ice_events(self, events: list) -> None:
        for event in events:
            if event.name == EVENT_TUPLE_ADDED:
                table = self.engine.tcp_tuples if event.value.protocol == "tcp" else self.engine.tuples
                table[(event.value.remote_ip, event.value.remote_port)] = self
            elif event.name == EVENT_TUPLE_REMOVED:
                table = self.engine.tcp_tuples if event.value.protocol == "tcp" else self.engine.tuples
                table.pop((event.value.remote_ip, event.value.remote_port), None)
            elif event.name == EVENT_UFRAG_REMOVED:
                self.engine.ufrags.pop(event.value, None)
            elif event.name == EVENT_SELECTED_TUPLE_CHANGE:
                if event.value is None:
                    self.engine.forwarder.clear_transport_tuple(self.slot)
                    self.engine.tcp_senders.discard(self)
                elif event.value.protocol == "tcp":
                    self.engine.forwarder.set_transport_tcp(self.slot)
                    self.engine.tcp_senders.add(self)
                else:
                    self.engine.forwarder.set_transport_tuple(
                        self.slot, (event.value.remote_ip, event.value.remote_port))
                    self.engine.tcp_senders.discard(self)
                if event.value is not None:
                    self.engine.notify("transport.iceselectedtuplechange", self.id, {
                        "iceSelectedTuple": tuple_shape(event.value, self.engine.announced_ip,
                                                        self.engine.rtc_port)})
            elif event.name == EVENT_STATE_CHANGE:
                if event.value not in (ICE_STATE_CONNECTED, ICE_STATE_COMPLETED):
                    self.engine.forwarder.clear_transport_tuple(self.slot)
                self.engine.notify("transport.icestatechange", self.id, {"iceState": event.value})
                self._maybe_start_dtls()

    # ---- DTLS ---------------------------------------------------------------------------------

    def _maybe_start_dtls(self) -> None:
        if self.dtls is not None and self.dtls.state == "new" and self.ice.state in (
            ICE_STATE_CONNECTED, ICE_STATE_COMPLETED
        ):
            self._send_dtls(self.dtls.start())
            self._after_dtls()

    def _send_dtls(self, datagrams: list[bytes]) -> None:
        selected = self.ice.selected_tuple
        if selected is None:
            return
        for datagram in datagrams:
            self._send_to(datagram, (selected.remote_ip, selected.remote_port), selected.protocol)

    def _after_dtls(self) -> None:
        assert self.dtls is not None
        state = self.dtls.state
        if state != self.dtls_state:
            self.dtls_state = state
            if state == "connected" and self.dtls.srtp_keys is not None:
                keys = self.dtls.srtp_keys
                self.engine.forwarder.set_transport_srtp(
                    self.slot,
                    SrtpSession(keys.profile, keys.remote_key, "inbound"),
                    SrtpSession(keys.profile, keys.local_key, "outbound"),
                )
                if self.sctp is not None:
                    self.sctp.start(self.dtls.role)
            self.engine.notify("transport.dtlsstatechange", self.id, {
                "dtlsState": state, "failureReason": self.dtls.failure_reason,
                "srtpCryptoSuite": self.dtls.srtp_keys.profile if self.dtls.srtp_keys else None})
        self._arm_dtls_timer()

    def _arm_dtls_timer(self) -> None:
        if self._dtls_timer is not None:
            self._dtls_timer.cancel()
            self._dtls_timer = None
        timeout = self.dtls.timeout() if self.dtls is not None else None
        if timeout is not None and not self.closed:
            self._dtls_timer = self.engine.loop.call_later(max(timeout, 0.01), self._on_dtls_timer)

    def _on_dtls_timer(self) -> None:
        self._dtls_timer = None
        if self.dtls is not None and not self.closed:
            self._send_dtls(self.dtls.handle_timeout())
            self._after_dtls()

    # ---- SCTP over DTLS (RFC 8261) -------------------------------------------------------------

    def _deliver_application_data(self) -> None:
        """Hand the SCTP packets DTLS decrypted to the association (queued, never handled here)."""
        if self.dtls is None or not self.dtls.application_data:
            return
        for packet in self.dtls.take_application_data():
            if self.sctp is not None:
                self.sctp.feed(packet)
            else:
                self.engine.control_drops["sctp_not_enabled"] += 1

    def _send_sctp(self, packet: bytes) -> None:
        if self.dtls is not None and not self.closed:
            self._send_dtls(self.dtls.send_application_data(packet))

    def _on_sctp_state(self, state: str) -> None:
        if not self.closed:
            self.engine.notify("transport.sctpstatechange", self.id, {"sctpState": state})

    # ---- periodic and close -------------------------------------------------------------------

    def check_consent(self, now: float) -> None:
        if self.ice.state in (ICE_STATE_CONNECTED, ICE_STATE_COMPLETED) and not self.ice.check_consent(now):
            self._handle_ice_events(self.ice.take_events())

    def get_stats(self) -> list[dict]:
        selected = self.ice.selected_tuple
        sctp = self.sctp.stats() if self.sctp is not None else {}
        return [{**self.base_stats(), **sctp, "iceState": self.ice.state, "dtlsState": self.dtls_state,
                 "iceSelectedTuple": tuple_shape(selected, self.engine.announced_ip, self.engine.rtc_port)
                 if selected else None}]

    def close(self) -> None:
        if self.closed:
            return
        self.close_data()
        if self.sctp is not None:
            self.sctp.close()
        if self.dtls is not None:
            self._send_dtls(self.dtls.close())
        if self._dtls_timer is not None:
            self._dtls_timer.cancel()
        for ufrag in self.ice.username_fragments:
            self.engine.ufrags.pop(ufrag, None)
        for ice_tuple in self.ice.tuples:
            table = self.engine.tcp_tuples if ice_tuple.protocol == "tcp" else self.engine.tuples
            table.pop((ice_tuple.remote_ip, ice_tuple.remote_port), None)
        self.engine.tcp_senders.discard(self)
        self.ice.close()
        super().close()
