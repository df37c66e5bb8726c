"""The recorder against a real worker: a simulcast producer is recorded from its top layer and cut into a
new segment when the layer (so the resolution) changes; H264 goes to Matroska. The sources are our
own RTP senders on a plain transport (as ffmpeg would send), so the layers are exact."""

from __future__ import annotations

import asyncio
import socket

import av
import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RtcpByePacket, RtcpPacket, RtpPacket

from media.recorder.session import Recorder
from tests.media.tracks import moving_bar
from tests.test_media_call import start_worker

pytestmark = pytest.mark.timeout(60)

FPS = 20


@pytest.fixture
async def worker():
    worker = await start_worker()
    yield worker
    await worker.close()


class Layer:
    """One encoding: its own encoder, size and SSRC; a key frame on the first frame and on PLI."""

    def __init__(self, encoder, ssrc: int, payload_type: int, width: int, height: int):
        self.encoder, self.ssrc, self.payload_type = encoder, ssrc, payload_type
        self.width, self.height = width, height
        self.seq = 100
        self.key_wanted = True
        self.sending = True


class Source:
    """Sends every layer's frames from one socket; reads PLIs from the worker."""

    def __init__(self, layers: list[Layer], target: tuple):
        self.layers = layers
        self.target = target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)

    def _read_feedback(self) -> None:
        while True:
            try:
                data = self.sock.recv(2048)
            except BlockingIOError:
                return
            for packet in RtcpPacket.parse(data):
                for layer in self.layers:
                    if getattr(packet, "fmt", None) == 1 and getattr(packet, "media_ssrc", None) == layer.ssrc:
                        layer.key_wanted = True

    def bye(self, layer: Layer) -> None:
        """Stop a layer for good (RFC 3550 §6.6): the worker moves its consumers to another at once."""
        layer.sending = False
        self.sock.sendto(bytes(RtcpByePacket(sources=[layer.ssrc])), self.target)

    async def run(self, seconds: float) -> None:
        for index in range(int(seconds * FPS)):
            self._read_feedback()
            for layer in self.layers:
                if not layer.sending:
                    continue
                picture = moving_bar(index, layer.width, layer.height)
                payloads, timestamp = layer.encoder.encode(picture, layer.key_wanted)
                layer.key_wanted = False
                for n, payload in enumerate(payloads):
                    packet = RtpPacket(payload_type=layer.payload_type, sequence_number=layer.seq & 0xFFFF,
                                       timestamp=timestamp, ssrc=layer.ssrc, marker=int(n == len(payloads) - 1),
                                       payload=payload)
                    layer.seq += 1
                    self.sock.sendto(packet.serialize(), self.target)
            await asyncio.sleep(1 / FPS)


async def record(router, producer, folder, seconds: float, during=None) -> dict:
    recorder = Recorder(router, str(folder), max_bytes=10**9, min_free_bytes=0)
    await recorder.start()
    await recorder.add(producer, "cam")
    if during is not None:
        await during()
    else:
        await asyncio.sleep(seconds)
    return await recorder.stop()


def video_of(path: str) -> tuple[str, tuple[int, int], set[tuple[int, int]], int]:
    """(codec, header size, sizes of the decoded frames, frames decoded)."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        header = (stream.codec_context.width, stream.codec_context.height)
        frames = list(container.decode(video=0))
        return stream.codec_context.name, header, {(f.width, f.height) for f in frames}, len(frames)


async def test_a_simulcast_producer_is_recorded_from_its_top_layer_and_a_layer_change_starts_a_segment(
        worker, tmp_path):
    router = await worker.create_router()
    plain = await router.create_plain_transport(comedia=True)
    await plain.connect()
    sizes = [(80, 60), (160, 120), (320, 240)]
    layers = [Layer(Vp8Encoder(), 5000 + i, 101, w, h) for i, (w, h) in enumerate(sizes)]
    producer = await plain.produce("video", {
        "codecs": [{"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000}],
        "encodings": [{"ssrc": layer.ssrc} for layer in layers],
    })
    assert producer.type == "simulcast"
    source = Source(layers, ("127.0.0.1", worker.settings.rtc_port))

    async def top_then_middle() -> None:
        await source.run(2.5)
        source.bye(layers[2])  # the top layer goes: the recording continues from the next one down
        await source.run(2.5)

    summary = await record(router, producer, tmp_path, 0, top_then_middle)
    files = [path for path, _ in summary["files"]]
    assert [p.rsplit("/", 1)[1] for p in files] == ["cam-001.webm", "cam-002.webm"], summary
    codec, header, decoded, count = video_of(files[0])
    assert (codec, header, decoded) == ("vp8", (320, 240), {(320, 240)}) and count >= 2 * FPS
    codec, header, decoded, count = video_of(files[1])
    assert (codec, header, decoded) == ("vp8", (160, 120), {(160, 120)}) and count >= FPS


async def test_h264_is_recorded_to_matroska(worker, tmp_path):
    router = await worker.create_router()
    plain = await router.create_plain_transport(comedia=True)
    await plain.connect()
    h264 = next(c for c in router.rtp_capabilities["codecs"] if c["mimeType"] == "video/H264")
    layer = Layer(H264Encoder(), 6000, 102, 320, 240)
    producer = await plain.produce("video", {
        "codecs": [{"mimeType": "video/H264", "payloadType": 102, "clockRate": 90000,
                    "parameters": h264["parameters"]}],
        "encodings": [{"ssrc": layer.ssrc}],
    })
    source = Source([layer], ("127.0.0.1", worker.settings.rtc_port))
    sending = asyncio.ensure_future(source.run(4))
    try:
        summary = await record(router, producer, tmp_path, 3)
    finally:
        sending.cancel()
    [(path, size)] = summary["files"]
    assert path.endswith("cam-001.mkv") and size > 0
    codec, header, decoded, count = video_of(path)
    assert (codec, header, decoded) == ("h264", (320, 240), {(320, 240)}) and count >= 2 * FPS
