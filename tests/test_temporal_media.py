"""Temporal layers with real media: libvpx encodes VP8 in three temporal layers (L1T3), a plain RTP
source sends it with RFC 7741 temporal ids, and an aiortc viewer decodes what Switchyard forwards
at the frame rate it prefers."""

from __future__ import annotations

import asyncio
import fractions
import socket
import time

import av
import pytest
from aiortc.rtp import RtcpPacket, RtpPacket

from tests.media.client import Client
from tests.media.tracks import HEIGHT, WIDTH, moving_bar
from tests.test_media_call import start_worker

pytestmark = pytest.mark.timeout(90)

PATTERN = (0, 2, 1, 2)  # temporal ids of L1T3, 30 fps
# libvpx's predefined three-layer structure (FFmpeg's ts_layering_mode 3): TL0 refers to TL0, TL1
# to TL0, the TL2 frame after TL0 to TL0, the one after TL1 to TL1. Error-resilient mode keeps a
# frame from carrying entropy state into later ones, so a decoder without the upper layers gets
# the same pictures of the lower ones.
TS_PARAMETERS = ("ts_number_layers=3:ts_target_bitrate=150,300,600:ts_rate_decimator=4,2,1:"
                 "ts_periodicity=4:ts_layer_id=0,2,1,2:ts_layering_mode=3")
SSRC = 33333333


class L1T3Encoder:
    """VP8 in three temporal layers; a key frame (asked for by PLI) waits for the next TL0 slot."""

    def __init__(self):
        self.codec = av.CodecContext.create("libvpx", "w")
        self.codec.width, self.codec.height = WIDTH, HEIGHT
        self.codec.bit_rate = 600_000
        self.codec.pix_fmt = "yuv420p"
        self.codec.time_base = fractions.Fraction(1, 30)
        self.codec.framerate = 30
        self.codec.gop_size = 3000
        self.codec.options = {"deadline": "realtime", "cpu-used": "-6", "lag-in-frames": "0",
                              "error-resilient": "default", "ts-parameters": TS_PARAMETERS}
        self.index = 0

    def encode(self, keyframe: bool) -> tuple[bytes, int, bool]:
        """The next frame: its bitstream, temporal id and LAYER_SYNC (it refers to TL0 alone)."""
        frame = moving_bar(self.index).reformat(format="yuv420p")
        frame.pts = self.index
        if keyframe:
            frame.pict_type = av.video.frame.PictureType.I
        data = b"".join(bytes(p) for p in self.codec.encode(frame))
        position = self.index % 4
        self.index += 1
        return data, PATTERN[position], position in (1, 2)


class L1T3Source:
    """A plain RTP sender (as ffmpeg's RTP muxer would be, with temporal ids): RFC 7741 payload
    descriptor with picture id, TL0PICIDX, TID and Y; answers PLI with a key frame."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.encoder = L1T3Encoder()
        self.seq, self.picture_id, self.tl0 = 7000, 20000, 0
        self.keyframe_wanted = True
        self.sent_by_tid = [0, 0, 0]

    def read_rtcp(self) -> None:
        while True:
            try:
                data = self.sock.recv(2048)
            except BlockingIOError:
                return
            for packet in RtcpPacket.parse(data):
                if getattr(packet, "fmt", None) == 1 and packet.media_ssrc == SSRC:
                    self.keyframe_wanted = True

    async def run(self, target: tuple) -> None:
        start = time.monotonic()
        while True:
            self.read_rtcp()
            keyframe = self.keyframe_wanted and self.encoder.index % 4 == 0
            if keyframe:
                self.keyframe_wanted = False
            index = self.encoder.index
            data, tid, sync = self.encoder.encode(keyframe)
            if tid == 0 and index:
                self.tl0 = (self.tl0 + 1) & 0xFF
            chunks = [data[i:i + 1100] for i in range(0, len(data), 1100)]
            for n, chunk in enumerate(chunks):
                descriptor = bytes([0x90 if n == 0 else 0x80, 0xE0, 0x80 | (self.picture_id >> 8),
                                    self.picture_id & 0xFF, self.tl0, (tid << 6) | (int(sync) << 5)])
                packet = RtpPacket(payload_type=101, sequence_number=self.seq & 0xFFFF,
                                   timestamp=index * 3000, ssrc=SSRC, marker=int(n == len(chunks) - 1),
                                   payload=descriptor + chunk)
                self.sock.sendto(packet.serialize(), target)
                self.seq += 1
            self.sent_by_tid[tid] += 1
            self.picture_id = (self.picture_id + 1) & 0x7FFF
            await asyncio.sleep(max(0.0, start + self.encoder.index / 30 - time.monotonic()))


async def decoded_fps(track, seconds: float) -> float:
    """Frames the viewer decodes per second of video over the next `seconds` (by their RTP
    timestamps, so a burst the jitter buffer releases at once does not count as a higher rate)."""
    stamps, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            frame = await asyncio.wait_for(track.recv(), max(0.01, end - time.monotonic()))
        except TimeoutError:
            break
        assert (frame.width, frame.height) == (WIDTH, HEIGHT)
        stamps.append(frame.pts)
    assert len(stamps) >= 2, stamps
    return (len(stamps) - 1) * 90000 / ((stamps[-1] - stamps[0]) & 0xFFFFFFFF)


async def test_a_vp8_l1t3_stream_decodes_at_the_frame_rate_the_viewer_prefers(caplog):
    worker = await start_worker()
    source = L1T3Source()
    sending = None
    try:
        router = await worker.create_router()
        plain = await router.create_plain_transport(comedia=True)
        await plain.connect()
        producer = await plain.produce("video", {
            "codecs": [{"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000,
                        "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}]}],
            "encodings": [{"ssrc": SSRC, "scalabilityMode": "L1T3"}],
        })
        assert producer.type == "simulcast"  # as mediasoup: one VP8 stream with temporal layers
        viewer = await Client(router).load()
        client_consumer, consumer = await viewer.consume(producer.id)
        assert consumer.type == "simulcast"
        assert consumer.rtp_parameters["encodings"][0]["scalabilityMode"] == "L1T3"
        changes = []
        consumer.on("layerschange", changes.append)
        await consumer.set_preferred_layers(0, 0)
        await consumer.resume()
        sending = asyncio.ensure_future(source.run(("127.0.0.1", worker.settings.rtc_port)))

        await decoded_fps(client_consumer.track, 2.0)  # the first key frame and the jitter buffer
        low = await decoded_fps(client_consumer.track, 3.0)
        assert 6.0 <= low <= 9.0, low
        assert changes[-1] == {"spatialLayer": 0, "temporalLayer": 0}

        await consumer.set_preferred_layers(0, 2)
        await decoded_fps(client_consumer.track, 1.0)
        high = await decoded_fps(client_consumer.track, 3.0)
        assert high >= 26, high
        assert changes[-1] == {"spatialLayer": 0, "temporalLayer": 2}

        await consumer.set_preferred_layers(0, 1)
        await decoded_fps(client_consumer.track, 1.0)
        middle = await decoded_fps(client_consumer.track, 3.0)
        assert 12.5 <= middle <= 17.5, middle
        assert changes[-1] == {"spatialLayer": 0, "temporalLayer": 1}

        receiver = viewer.recv_transport._handler._pc.getReceivers()[0]
        inbound = next(s for s in (await receiver.getStats()).values() if s.type == "inbound-rtp")
        assert inbound.packetsReceived > 100
        assert inbound.packetsLost == 0, "no holes in the sequence numbers across the skips"
        server = (await consumer.get_stats())[0]
        assert (server["currentTemporalLayer"], server["preferredTemporalLayer"]) == (1, 1)
        assert not [r for r in caplog.records if "failed to decode" in r.getMessage().lower()]
        await viewer.close()
    finally:
        if sending is not None:
            sending.cancel()
        source.sock.close()
        await worker.close()
