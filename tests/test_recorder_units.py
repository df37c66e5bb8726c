"""The recorder's parts without a worker: VP9 (no aiortc encoder, so FFmpeg's libvpx-vp9 through PyAV)
packetized per RFC 9628 and recorded to WebM, a lost packet costing frames until the next key frame,
and RTP timestamps mapped across a 32-bit wrap."""

from __future__ import annotations

import struct
from fractions import Fraction

import av
import numpy as np

from media.recorder.clock import NTP_EPOCH_OFFSET, RtpClock
from media.recorder.depacketize import Vp8Depacketizer, vp9_superframe
from media.recorder.thread import RecorderThread
from tests.media.tracks import moving_bar

SSRC = 4242
START = 1_700_000_000.0


def vp9_frames(count: int, width: int = 320, height: int = 240) -> list[tuple[bytes, bool]]:
    """(frame, key) from libvpx-vp9, a key frame every 30."""
    encoder = av.CodecContext.create("libvpx-vp9", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base, encoder.gop_size = Fraction(1, 30), 30
    encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    out = []
    for index in range(count):
        frame = moving_bar(index, width, height).reformat(format="yuv420p")
        frame.pts, frame.time_base = index, Fraction(1, 30)
        out.extend((bytes(p), p.is_keyframe) for p in encoder.encode(frame))
    return out


def vp9_packets(frame: bytes, key: bool, picture_id: int, seq: int, timestamp: int, width: int, height: int,
                mtu: int = 1000) -> list[bytes]:
    """RFC 9628 §4.2 in flexible mode off: I (15-bit picture id), P, B/E; SS with the size on key frames."""
    chunks = [frame[i:i + mtu] for i in range(0, len(frame), mtu)]
    packets = []
    for n, chunk in enumerate(chunks):
        first = 0x80 | (0 if key else 0x40) | (0x08 if n == 0 else 0) | (0x04 if n == len(chunks) - 1 else 0)
        descriptor = bytes([first | (0x02 if key and n == 0 else 0)]) + struct.pack("!H", 0x8000 | picture_id)
        if key and n == 0:
            descriptor += bytes([0x10]) + struct.pack("!HH", width, height)  # N_S=0, Y=1: one size
        header = struct.pack("!BBHII", 0x80, (0x80 if n == len(chunks) - 1 else 0) | 98, (seq + n) & 0xFFFF,
                             timestamp, SSRC)
        packets.append(header + descriptor + chunk)
    return packets


def sender_report(rtp_timestamp: int, unix: float) -> bytes:
    seconds = unix + NTP_EPOCH_OFFSET
    ntp = (int(seconds) << 32) | int((seconds % 1) * 2**32)
    return struct.pack("!BBHIQIII", 0x80, 200, 6, SSRC, ntp, rtp_timestamp, 0, 0)


def test_vp9_is_depacketized_and_recorded_to_webm(tmp_path):
    thread = RecorderThread(str(tmp_path), 10**9, 0, lambda event, data: None)
    thread._add("v", "cam", "video", "video/vp9", SSRC, 98, 90000, 1)
    seq, base = 0, 0xFFFF0000  # RTP timestamps wrap during the recording
    frames = vp9_frames(60)
    thread._datagram(sender_report(base, START), START)
    for index, (frame, key) in enumerate(frames):
        timestamp = (base + index * 3000) & 0xFFFFFFFF
        for packet in vp9_packets(frame, key, index, seq, timestamp, 320, 240):
            thread._datagram(packet, START + index / 30)
            seq += 1
    for group in thread.groups.values():
        thread.writer.close_segment(group)
    [(path, _)] = thread.writer.sizes()
    with av.open(path) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.width, stream.codec_context.height) == (
            "vp9", 320, 240)
        times = [float(p.pts * p.time_base) for p in container.demux(video=0) if p.pts is not None]
    with av.open(path) as container:
        decoded = list(container.decode(video=0))
    assert len(decoded) == len(frames) == len(times)
    # 30 fps from the RTP clock, straight across the wrap
    assert np.allclose(np.diff(times), 1 / 30, atol=0.0015)


def test_a_lost_packet_drops_frames_until_the_next_key_frame():
    from aiortc.codecs.vpx import Vp8Encoder

    encoder, depacketizer, kept = Vp8Encoder(), Vp8Depacketizer(), []
    seq = 0
    for index in range(40):
        payloads, timestamp = encoder.encode(moving_bar(index), index in (0, 20))
        for n, payload in enumerate(payloads):
            if index == 5 and n == 0:
                seq += 1
                continue  # lost
            frame = depacketizer.push(seq & 0xFFFF, timestamp, n == len(payloads) - 1, payload)
            seq += 1
            if frame is not None:
                kept.append((index, frame.key, (frame.width, frame.height)))
    assert [i for i, _, _ in kept] == [*range(0, 5), *range(20, 40)]
    assert kept[0][1:] == (True, (320, 240)) and kept[5][1:] == (True, (320, 240))


def test_rtp_clock_follows_sender_reports_across_a_wrap():
    clock = RtpClock(48000)
    clock.on_packet(0xFFFFFF00, 100.0)
    assert clock.wall_time(0xFFFFFF00) == 100.0
    assert abs(clock.wall_time(0x00000100) - (100.0 + 0x200 / 48000)) < 1e-9  # after the wrap
    assert abs(clock.wall_time(0xFFFFFE00) - (100.0 - 0x100 / 48000)) < 1e-9  # late, from before it
    # a report moves the mapping to the sender's clock
    ntp = (int(200 + NTP_EPOCH_OFFSET) << 32)
    clock.on_sender_report(0x00000100, ntp)
    assert clock.from_report and clock.wall_time(0x00000100 + 48000) == 201.0


def test_vp9_superframe_index():
    frames = [b"\x01" * 10, b"\x02" * 300]
    data = vp9_superframe(frames)
    marker = data[-1]
    assert marker & 0xE0 == 0xC0 and (marker & 0x07) + 1 == 2 and ((marker >> 3) & 0x03) + 1 == 2
    assert data[: 310] == b"".join(frames) and data[-6] == marker
    assert struct.unpack_from("<HH", data, 311) == (10, 300)
