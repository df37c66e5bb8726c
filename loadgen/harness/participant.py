"""One synthetic participant: a guest on the SDK, real transports, synthetic Opus and VP8 streams.

It signs in as a guest, joins its room, and, when it sends, creates a send
transport and produces audio and/or video with mediasoup-shaped
rtpParameters (VP8 with 1-3 simulcast encodings told apart by SSRC or RID). It
consumes every producer of the others, those there when it joins and each
`new-producer` after, on one receive transport: consume paused, register
the consumer's SSRC with the media hub, then resume, as a mediasoup-client
app does. Packets themselves are made and counted in C (loadgen.synth).
"""

from __future__ import annotations

import asyncio
import random
import time

from switchyard_client import SwitchyardClient

from loadgen.harness.hub import KIND_AUDIO, KIND_VIDEO, MediaHub
from loadgen.harness.media import ClientTransport
from loadgen.harness.scenario import Scenario
from media.engine.dtls import DtlsCertificate

OPUS_PT = 111
VP8_PT = 96
JOIN_TIMEOUT = 30.0
# requests of one participant in flight at once (the server queues at most 64 per socket)
CONSUME_CONCURRENCY = 8


def audio_parameters(ssrc: int, cname: str) -> dict:
    return {
        "mid": "0",
        "codecs": [{"mimeType": "audio/opus", "payloadType": OPUS_PT, "clockRate": 48000, "channels": 2,
                    "parameters": {"minptime": 10, "useinbandfec": 1}, "rtcpFeedback": []}],
        "headerExtensions": [],
        "encodings": [{"ssrc": ssrc}],
        "rtcp": {"cname": cname, "reducedSize": True},
    }


MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
VIDEO_MID = "1"


def extension_ids(router_capabilities: dict) -> tuple[int, int]:
    """The router's preferred ids of the MID and RID header extensions for video."""
    ids = {e.get("uri"): e.get("preferredId") for e in router_capabilities.get("headerExtensions", [])
           if e.get("kind") == "video"}
    if not ids.get(MID_URI) or not ids.get(RID_URI):
        raise ValueError("the router offers no MID and RID header extensions for video (needed by --rid)")
    return ids[MID_URI], ids[RID_URI]


def rid_extension_block(mid_id: int, rid_id: int, rid: str) -> bytes:
    """An RFC 8285 one-byte header extension block with MID and RID, padded to a word."""
    elements = b""
    for ext_id, value in ((mid_id, VIDEO_MID.encode()), (rid_id, rid.encode())):
        elements += bytes([(ext_id << 4) | (len(value) - 1)]) + value
    elements += b"\0" * (-len(elements) % 4)
    return b"\xbe\xde" + (len(elements) // 4).to_bytes(2, "big") + elements


def video_parameters(ssrcs: list[int], layers: list[dict], cname: str,
                     rid_ids: tuple[int, int] | None = None) -> dict:
    """VP8 with one encoding per layer, lowest first: by SSRC, or by RID when rid_ids is given."""
    if rid_ids is None:
        encodings = [{"ssrc": ssrc, "maxBitrate": layer["bitrate"], "scalabilityMode": "L1T1"}
                     for ssrc, layer in zip(ssrcs, layers, strict=True)]
        extensions = []
    else:
        encodings = [{"rid": f"r{i}", "maxBitrate": layer["bitrate"], "scalabilityMode": "L1T1"}
                     for i, layer in enumerate(layers)]
        extensions = [{"uri": MID_URI, "id": rid_ids[0], "encrypt": False, "parameters": {}},
                      {"uri": RID_URI, "id": rid_ids[1], "encrypt": False, "parameters": {}}]
    for i, encoding in enumerate(encodings[:-1]):
        encoding["scaleResolutionDownBy"] = float(2 ** (len(encodings) - 1 - i))
    return {
        "mid": VIDEO_MID,
        "codecs": [{"mimeType": "video/VP8", "payloadType": VP8_PT, "clockRate": 90000, "parameters": {},
                    "rtcpFeedback": [{"type": "nack", "parameter": ""}, {"type": "nack", "parameter": "pli"},
                                     {"type": "ccm", "parameter": "fir"}]}],
        "headerExtensions": extensions,
        "encodings": encodings,
        "rtcp": {"cname": cname, "reducedSize": True},
    }


class Participant:
    def __init__(self, url: str, scenario: Scenario, hub: MediaHub, certificate: DtlsCertificate,
                 room_index: int, index: int, sender: bool, ssrcs: set[int]):
        self.scenario = scenario
        self.hub = hub
        self.certificate = certificate
        self.room_index = room_index
        self.name = f"load-{room_index}-{index}"
        self.sender = sender
        self.sdk = SwitchyardClient(url, handle_sigint=False)
        self.joined: dict = {}
        self.transports: list[ClientTransport] = []
        self.recv: ClientTransport | None = None
        self.recv_socket = -1
        self._recv_lock = asyncio.Lock()
        self._gate = asyncio.Semaphore(CONSUME_CONCURRENCY)
        self.join_seconds: float | None = None
        self._consumed: set[str] = set()
        self._early: list[dict] = []
        self._video_consumes = 0
        self._tasks: set[asyncio.Task] = set()
        self._ssrcs = ssrcs
        self.errors: list[str] = []     # failed consumes of announced producers, for the report
        self.closed = False

    def _new_ssrc(self) -> int:
        while True:
            ssrc = random.randrange(1, 1 << 32)
            if ssrc not in self._ssrcs:
                self._ssrcs.add(ssrc)
                return ssrc

    async def join(self, room_id: str) -> None:
        """Sign in, join, produce, consume what is there; join_seconds says how long it took."""
        started = time.monotonic()
        async with asyncio.timeout(JOIN_TIMEOUT):
            await self.sdk.guest(self.name)
            await self.sdk.connect()
            self.sdk.on("new-producer", self._on_new_producer)
            self.joined = await self.sdk.join(room_id, self.name)
            if self.sender:
                await self._produce()
        producers = self.joined.get("producers", []) + self._early
        self._early = []
        # each consume is a round trip: keep a few in flight, and allow time in proportion
        async with asyncio.timeout(JOIN_TIMEOUT + 0.5 * len(producers)):
            await asyncio.gather(*(self.consume(info) for info in producers))
        self.join_seconds = time.monotonic() - started

    async def _transport(self, direction: str) -> ClientTransport:
        info = await self.sdk.create_webrtc_transport(direction)
        transport = ClientTransport(info, self.certificate)
        self.transports.append(transport)
        await transport.connect_ice()
        await self.sdk.connect_webrtc_transport(
            transport.id, self.certificate.dtls_parameters("client"))
        await transport.connect_dtls()
        return transport

    async def _produce(self) -> None:
        send = await self._transport("send")
        srtp = send.srtp
        sock_index = await self.hub.add(lambda m: m.add_socket(send.sock, srtp.inbound, True))
        common = {"sock_index": sock_index, "dest": send.remote, "outbound": srtp.outbound,
                  "key_interval_s": self.scenario.keyframe_interval}
        if self.scenario.audio:
            ssrc = self._new_ssrc()
            await self.sdk.produce(send.id, "audio", audio_parameters(ssrc, self.name), {"loadtest": True})
            shape = self.scenario.audio_stream()
            await self.hub.add_stream(KIND_AUDIO, **common, ssrc=ssrc, payload_type=OPUS_PT, codec="audio",
                                      clock_rate=48000, fps=shape["fps"], frame_packets=shape["frame_packets"],
                                      packet_size=shape["packet_size"], start_delay_s=random.random() * 0.02)
        if self.scenario.video:
            layers = self.scenario.video_layers()
            ssrcs = [self._new_ssrc() for _ in layers]
            rid_ids = extension_ids(self.joined["routerRtpCapabilities"]) if self.scenario.rid else None
            await self.sdk.produce(send.id, "video", video_parameters(ssrcs, layers, self.name, rid_ids),
                                   {"loadtest": True})
            offset = random.random() / self.scenario.fps
            for i, (ssrc, layer) in enumerate(zip(ssrcs, layers, strict=True)):
                block = rid_extension_block(*rid_ids, f"r{i}") if rid_ids else b""
                await self.hub.add_stream(KIND_VIDEO, **common, ssrc=ssrc, payload_type=VP8_PT, codec="vp8",
                                          clock_rate=90000, fps=layer["fps"], frame_packets=layer["frame_packets"],
                                          packet_size=layer["packet_size"], start_delay_s=offset, extension=block)

    async def _recv_transport(self) -> int:
        async with self._recv_lock:
            if self.recv is None:
                recv = await self._transport("recv")
                self.recv_socket = await self.hub.add(lambda m: m.add_socket(recv.sock, recv.srtp.inbound, False))
                self.recv = recv
        return self.recv_socket

    def _on_new_producer(self, info: dict) -> None:
        if self.closed:
            return
        if not self.joined:
            self._early.append(info)    # announced before our join's answer: consumed after it
            return
        task = asyncio.get_running_loop().create_task(self._consume_logged(info))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _consume_logged(self, info: dict) -> None:
        try:
            async with asyncio.timeout(JOIN_TIMEOUT):
                await self.consume(info)
        except Exception as exc:  # counted in the report, not fatal to the run
            if not self.closed:
                self.errors.append(f"{self.name} consume {info.get('producerId')}: {exc}")

    async def consume(self, info: dict) -> None:
        producer_id = info["producerId"]
        if producer_id in self._consumed or info.get("peerId") == self.joined.get("peerId"):
            return
        self._consumed.add(producer_id)
        sock_index = await self._recv_transport()
        async with self._gate:
            answer = await self.sdk.consume(self.recv.id, producer_id, self.joined["routerRtpCapabilities"],
                                            paused=True)
            ssrc = answer["rtpParameters"]["encodings"][0]["ssrc"]
            kind = KIND_VIDEO if answer["kind"] == "video" else KIND_AUDIO
            layer = self._preferred_layer() if answer.get("type") == "simulcast" else -1
            if layer >= 0:
                await self.sdk.set_consumer_preferred_layers(answer["id"], layer)
            await self.hub.add_consumer(sock_index, ssrc, kind, self.room_index,
                                        layer if layer >= 0 else (self.scenario.simulcast - 1 if kind else -1))
            await self.sdk.resume_consumer(answer["id"])

    def _preferred_layer(self) -> int:
        """The layer to ask for per --layers; -1: leave the SFU's default (the top layer)."""
        if self.scenario.layers == "low":
            return 0
        if self.scenario.layers == "mixed":
            self._video_consumes += 1
            return (self._video_consumes + self.room_index) % self.scenario.simulcast
        return -1

    def consent_checks(self) -> None:
        """Keep the server's consent fresh on every transport (RFC 7675)."""
        for transport in self.transports:
            try:
                transport.sock.sendto(transport.consent_request(), transport.remote)
            except OSError:
                pass  # a full send buffer: the next check will do

    async def close(self) -> None:
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        try:
            async with asyncio.timeout(5):
                if self.sdk.sio is not None and self.sdk.sio.connected:
                    await self.sdk.leave()
        except Exception:
            pass  # the server may be gone already; closing the connection is enough
        try:
            async with asyncio.timeout(5):
                await self.sdk.close()
        except Exception:
            pass  # nothing left to tell a server that is gone
