"""One transport's SCTP association over its DTLS (RFC 8261), for DataChannels (RFC 8831).

The association is aiortc's `RTCSctpTransport`, which aiortc drives from its
`RTCDtlsTransport`: it registers itself as the DTLS transport's data receiver,
is handed every decrypted SCTP packet (`_handle_data`) and sends through
`_send_data`. `DtlsDataTransport` is that DTLS transport as the SCTP stack
sees it, over the worker's sans-I/O `DtlsSession`: what it sends is protected
and leaves on the transport's selected tuple at once, without a wait.

Data is not media: it is handled in Python, on the worker's event loop, but
within bounds so that the packet path never waits for it. Received packets
queue (at most `INBOUND_QUEUE_LIMIT`, the rest dropped and counted) for one
task that feeds the association; what the association has not yet sent is
capped at `SEND_BUFFER_MESSAGES` of the largest messages (mediasoup's `sctpSendBufferSize`), beyond
which a message is dropped and counted rather than queued.

Streams are negotiated out of band (RFC 8832 section 6 does not apply): the
client names the stream of a data producer in `produceData`, the server the
stream of a data consumer in `consumeData`, as mediasoup does. A channel a
client opens in band anyway (DCEP, RFC 8832) is acknowledged by aiortc and then
closed at once (its stream reset), so it holds nothing on the server.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from common.log import get_logger

if TYPE_CHECKING:
    # aiortc (and PyAV, numpy with it) loads with a worker's first association, not at its start:
    # a worker that carries no DataChannel stays lean (tests/test_worker_memory.py)
    from aiortc.rtcdatachannel import RTCDataChannel
    from aiortc.rtcsctptransport import RTCSctpTransport

log = get_logger("sctp")

# RFC 8841 section 5: WebRTC uses port 5000 at both ends (mediasoup-client's SDP says so too).
SCTP_PORT = 5000
# mediasoup's defaults: maxSctpMessageSize and numSctpStreams {OS, MIS}.
MAX_SCTP_MESSAGE_SIZE = 262144
NUM_SCTP_STREAMS = 1024
MAX_SCTP_STREAMS = 65535
# What one association may hold unsent (mediasoup's sctpSendBufferSize, but four of the largest
# messages rather than one, so that a large message does not make the next small one a drop).
SEND_BUFFER_MESSAGES = 4
# Packets received but not yet handed to the association.
INBOUND_QUEUE_LIMIT = 256
# The feeding task gives the event loop (the Forwarder's drain) a turn after this many packets,
# so a full queue delays media by the cost of a few SCTP packets, not of 256.
PACKETS_PER_TURN = 8
# aiortc advertises a 1 MiB receive window and counts reassembled bytes against it; a peer that
# overruns it ignores the window, and its DATA is dropped rather than buffered without end.
RECEIVE_WINDOW_FLOOR = 0

SCTP_STATE_NEW = "new"
SCTP_STATE_CONNECTING = "connecting"
SCTP_STATE_CONNECTED = "connected"
SCTP_STATE_CLOSED = "closed"


def sctp_parameters(num_streams: int, max_message_size: int) -> dict:
    """mediasoup's SctpParameters of the server's side."""
    return {"port": SCTP_PORT, "OS": num_streams, "MIS": num_streams, "maxMessageSize": max_message_size}


def message_size(message: str | bytes) -> int:
    """A message's size on the wire: text is sent as UTF-8 (RFC 8831 section 6.6)."""
    return len(message.encode("utf-8")) if isinstance(message, str) else len(message)


class DtlsDataTransport:
    """What aiortc's SCTP stack uses of an RTCDtlsTransport: `_role`, `state`, `_send_data`, a data receiver."""

    def __init__(self, send: Callable[[bytes], None]):
        self._role = "auto"
        self.state = "new"
        self._send = send
        self._receiver: RTCSctpTransport | None = None
        self.dropped = 0

    async def _send_data(self, data: bytes) -> None:
        # Never raises: aiortc's timers send from tasks nobody awaits, and a closed
        # transport's retransmission is simply lost.
        if self.state != "connected":
            self.dropped += 1
            return
        self._send(data)

    def _register_data_receiver(self, receiver: RTCSctpTransport) -> None:
        self._receiver = receiver

    def _unregister_data_receiver(self, receiver: RTCSctpTransport) -> None:
        if self._receiver is receiver:
            self._receiver = None


class SctpAssociation:
    """The association of one WebRTC transport and its negotiated streams (RFC 8831 section 6)."""

    def __init__(self, send: Callable[[bytes], None], on_state: Callable[[str], None],
                 num_streams: int = NUM_SCTP_STREAMS, max_message_size: int = MAX_SCTP_MESSAGE_SIZE):
        self.num_streams = num_streams
        self.max_message_size = max_message_size
        self.send_buffer_limit = SEND_BUFFER_MESSAGES * max_message_size
        self.dtls = DtlsDataTransport(send)
        from aiortc.rtcsctptransport import RTCSctpTransport

        self.sctp = RTCSctpTransport(self.dtls, port=SCTP_PORT)  # type: ignore[arg-type]
        self.state = SCTP_STATE_NEW
        self.drops: Counter[str] = Counter()
        self._on_state = on_state
        self._inbound: asyncio.Queue[bytes] = asyncio.Queue(INBOUND_QUEUE_LIMIT)
        self._task: asyncio.Task | None = None
        self.closed = False
        self.sctp.on("datachannel", self._refuse_in_band)

    def parameters(self) -> dict:
        return sctp_parameters(self.num_streams, self.max_message_size)

    def start(self, dtls_role: str) -> None:
        """DTLS is up: both ends send INIT (RFC 8841 section 9.3); the DTLS role decides stream parity."""
        if self._task is not None or self.closed:
            return
        self.dtls._role = dtls_role
        self.dtls.state = "connected"
        self._set_state(SCTP_STATE_CONNECTING)
        self._task = asyncio.get_running_loop().create_task(self._run())

    def feed(self, packet: bytes) -> None:
        """One SCTP packet from a DTLS application_data record; dropped when the queue is full."""
        if self.closed:
            return
        try:
            self._inbound.put_nowait(packet)
        except asyncio.QueueFull:
            self.drops["sctp_inbound_queue_full"] += 1

    async def _run(self) -> None:
        # The remote's maxMessageSize is not signalled to us; clients accept mediasoup's default.
        from aiortc.rtcsctptransport import RTCSctpCapabilities

        await self.sctp.start(RTCSctpCapabilities(maxMessageSize=self.max_message_size), SCTP_PORT)
        handled = 0
        while True:
            # get() does not yield while packets wait, and neither does aiortc with our send
            handled += 1
            if handled % PACKETS_PER_TURN == 0:
                await asyncio.sleep(0)
            packet = await self._inbound.get()
            if self.sctp._advertised_rwnd < RECEIVE_WINDOW_FLOOR:
                self.drops["sctp_receive_window_exceeded"] += 1
                continue
            try:
                await self.sctp._handle_data(packet)
            except Exception:  # a peer's malformed packet (bad UTF-8, a broken DCEP message) is its loss only
                self.drops["sctp_packet_error"] += 1
                log.debug("SCTP packet failed", exc_info=True)
            self._follow_state()

    def _refuse_in_band(self, channel: RTCDataChannel) -> None:
        self.drops["dcep_channel_refused"] += 1
        channel.close()

    def _follow_state(self) -> None:
        state = self.sctp.state
        if state in (SCTP_STATE_CONNECTED, SCTP_STATE_CLOSED):
            self._set_state(state)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self._on_state(state)

    def open_stream(self, stream_id: int, label: str, protocol: str, ordered: bool,
                    max_packet_life_time: int | None, max_retransmits: int | None) -> RTCDataChannel:
        """A negotiated channel on a stream (RFC 8831 section 6.5): opens when the association is up."""
        from aiortc.rtcdatachannel import RTCDataChannel, RTCDataChannelParameters

        parameters = RTCDataChannelParameters(
            label=label, protocol=protocol, ordered=ordered, maxPacketLifeTime=max_packet_life_time,
            maxRetransmits=max_retransmits, negotiated=True, id=stream_id)
        return RTCDataChannel(self.sctp, parameters)

    def stream_in_use(self, stream_id: int) -> bool:
        """Whether a channel holds the stream (also while its reset is under way, RFC 8831 section 6.7)."""
        return stream_id in self.sctp._data_channels

    def send(self, channel: RTCDataChannel, message: str | bytes) -> str | None:
        """Queue a message on a stream; the reason when it was dropped instead."""
        if channel.readyState != "open":
            return "not_open"
        if self.buffered_amount() + message_size(message) > self.send_buffer_limit:
            return "send_buffer_full"
        try:
            channel.send(message)
        except ValueError:  # larger than the remote's maxMessageSize
            return "too_large"
        return None

    def buffered_amount(self) -> int:
        """Bytes queued on every stream and not yet handed to SCTP (aiortc's bufferedAmount, summed)."""
        return sum(channel.bufferedAmount for channel in self.sctp._data_channels.values())

    def close(self) -> None:
        """Stop the association; an ABORT goes out only if DTLS is still up (RFC 9260 section 9.1)."""
        if self.closed:
            return
        self.closed = True
        loop = asyncio.get_running_loop()
        if self._task is not None:
            self._task.cancel()
            stop = loop.create_task(self.sctp.stop())
            stop.add_done_callback(lambda _: setattr(self.dtls, "state", "closed"))
        else:
            self.dtls.state = "closed"
        self._set_state(SCTP_STATE_CLOSED)

    def stats(self) -> dict:
        return {"sctpState": self.state, "sctpDrops": {**self.drops, "closedTransport": self.dtls.dropped}}
