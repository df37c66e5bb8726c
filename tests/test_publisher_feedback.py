"""Congestion feedback to publishers: transport-cc from the fast path, REMB to aiortc, the ceiling.

The Forwarder tests send real SRTP over loopback and read the feedback the
server sends back; the aiortc tests run a real worker process and check what
aiortc's sender does with the REMB it receives.
"""

from __future__ import annotations

import asyncio
import time

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from fastpath.codecs import CODEC_VP8

from media.ortc.capabilities import TRANSPORT_WIDE_CC_URI
from tests import test_forwarder
from tests.media.client import Client
from tests.media.lossy import LossyRelay
from tests.media.tracks import NoiseTrack
from tests.test_congestion import decode_transport_cc
from tests.test_forwarder import Peer, connect, rtcp_datagrams, vp8
from tests.test_media_call import worker  # noqa: F401  (fixture: a real worker process)

forwarder = test_forwarder.forwarder  # a Forwarder on a loopback socket
TWCC_EXT_ID = 5


def twcc_extensions() -> HeaderExtensionsMap:
    extensions = HeaderExtensionsMap()
    extensions.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=TWCC_EXT_ID, uri=TRANSPORT_WIDE_CC_URI)]))
    return extensions


def rtp_with_twcc(seq: int, twcc_seq: int, ssrc: int = 4444) -> bytes:
    """A VP8 packet carrying a transport-wide sequence number (one-byte extension, RFC 8285)."""
    packet = RtpPacket(payload_type=96, sequence_number=seq, timestamp=seq * 3000, ssrc=ssrc,
                       payload=vp8(seq == 0))
    packet.extensions.transport_sequence_number = twcc_seq
    return bytes(packet.serialize(twcc_extensions()))


def rtcp_from_server(peer: Peer, seconds: float) -> list[bytes]:
    """Every RTCP packet (compound split) the server sent the peer within `seconds`."""
    out = []
    for _, plain in rtcp_datagrams(peer, seconds):
        pos = 0
        while pos + 4 <= len(plain):
            length = (int.from_bytes(plain[pos + 2:pos + 4], "big") + 1) * 4
            out.append(plain[pos:pos + length])
            pos += length
    return out


def pump(fwd, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        fwd.drain()
        time.sleep(0.002)


def publishing(fwd, twcc: bool) -> tuple[Peer, int]:
    """A publisher's transport with one VP8 stream (SSRC 4444), with or without transport-cc."""
    publisher = Peer()
    slot = connect(fwd, publisher)
    fwd.add_producer_stream(slot, 4444, 0, CODEC_VP8, 90000, 0, True)
    if twcc:
        fwd.set_transport_incoming_feedback(slot, TWCC_EXT_ID, False)
    return publisher, slot


def test_transport_cc_feedback_reports_every_number_from_the_fast_path(forwarder):
    fwd, server_addr, _ = forwarder
    publisher, slot = publishing(fwd, twcc=True)
    lost = {7, 8, 30}
    for k in range(60):
        if k not in lost:
            publisher.sock.sendto(publisher.tx.protect(rtp_with_twcc(k, 1000 + k)), server_addr)
        time.sleep(0.003)
        fwd.drain()
    # packets arriving 100 ms after the first feedback... and the rest with the next reports
    assert fwd.transport_stats(slot)["incomingFeedbacks"] >= 1, "no feedback while packets arrived"
    time.sleep(0.1)
    fwd.send_reports()
    packets = rtcp_from_server(publisher, 0.3)
    feedbacks = [decode_transport_cc(p) for p in packets if p[1] == 205 and p[0] & 0x1F == 15]
    assert feedbacks, "no transport-cc feedback reached the publisher"
    reported = [entry for fb in feedbacks for entry in fb["arrivals"]]
    assert [seq for seq, _ in reported] == list(range(1000, 1060))
    assert {seq - 1000 for seq, arrival in reported if arrival is None} == lost
    assert [fb["fb_count"] for fb in feedbacks] == list(range(len(feedbacks)))
    assert all(fb["media"] == 4444 for fb in feedbacks)
    arrivals = [arrival for _, arrival in reported if arrival is not None]
    assert arrivals == sorted(arrivals) and arrivals[-1] - arrivals[0] >= 150_000  # ~3 ms apart
    assert fwd.transport_stats(slot)["incomingFeedbacks"] == len(feedbacks)


def test_arrival_times_are_the_kernels_not_the_busy_loops(forwarder):
    """Packets that reach the socket 20 ms apart while the worker is busy elsewhere are read in one
    batch; the feedback still reports them 20 ms apart (SO_TIMESTAMPNS), not as a burst that a
    sender's delay-based estimator would read as a queue building on the path."""
    fwd, server_addr, _ = forwarder
    publisher, slot = publishing(fwd, twcc=True)
    for k in range(6):
        publisher.sock.sendto(publisher.tx.protect(rtp_with_twcc(k, 500 + k)), server_addr)
        time.sleep(0.02)
    fwd.drain()  # one read of all six, 100 ms after the first arrived
    time.sleep(0.1)
    fwd.send_reports()
    packets = rtcp_from_server(publisher, 0.3)
    reported = [entry for p in packets if p[1] == 205 and p[0] & 0x1F == 15
                for entry in decode_transport_cc(p)["arrivals"]]
    assert [seq for seq, _ in reported] == list(range(500, 506))
    arrivals = [arrival for _, arrival in reported]
    gaps = [(b - a) / 1000 for a, b in zip(arrivals, arrivals[1:], strict=False)]  # microseconds -> ms
    assert all(15 <= gap <= 60 for gap in gaps), gaps


def test_a_transport_without_transport_cc_gets_no_feedback(forwarder):
    fwd, server_addr, _ = forwarder
    publisher, slot = publishing(fwd, twcc=False)
    for k in range(20):
        publisher.sock.sendto(publisher.tx.protect(rtp_with_twcc(k, k)), server_addr)
    pump(fwd, 0.2)
    packets = rtcp_from_server(publisher, 0.2)
    assert not [p for p in packets if p[1] == 205 and p[0] & 0x1F == 15]
    assert fwd.transport_stats(slot)["incomingFeedbacks"] == 0


def test_the_ceiling_goes_out_as_remb_with_transport_cc(forwarder):
    fwd, server_addr, _ = forwarder
    publisher, slot = publishing(fwd, twcc=True)
    fwd.set_max_incoming_bitrate(slot, 800_000)
    publisher.sock.sendto(publisher.tx.protect(rtp_with_twcc(0, 0)), server_addr)
    pump(fwd, 0.05)
    fwd.send_reports()
    rembs = [p for p in rtcp_from_server(publisher, 0.2) if p[1] == 206 and p[12:16] == b"REMB"]
    assert len(rembs) == 1
    exponent, mantissa = rembs[0][17] >> 2, ((rembs[0][17] & 3) << 16) | int.from_bytes(rembs[0][18:20], "big")
    assert mantissa << exponent == 800_000
    assert int.from_bytes(rembs[0][20:24], "big") == 4444


async def aiortc_target(client_producer):
    """aiortc's encoder target bitrate (it follows REMB); None until the encoder exists."""
    encoder = getattr(client_producer.rtpSender, "_RTCRtpSender__encoder", None)
    return getattr(encoder, "target_bitrate", None)


async def wait_for_target(client_producer, check, seconds: float) -> int | None:
    deadline = time.monotonic() + seconds
    target = None
    while time.monotonic() < deadline:
        target = await aiortc_target(client_producer)
        if target is not None and check(target):
            return target
        await asyncio.sleep(0.1)
    return target


async def test_an_aiortc_publisher_follows_remb_and_the_ceiling(worker):  # noqa: F811
    router = await worker.create_router()
    video = NoiseTrack()
    alice = await Client(router, [video]).load()
    try:
        client_producer, _ = await alice.produce(video)
        # aiortc starts at 500 kbit/s; our first REMB (after a second) says what the path carries
        target = await wait_for_target(client_producer, lambda t: t != 500_000, 5)
        assert target is not None and target != 500_000, "aiortc never received a REMB"
        stats = (await alice.server_send.get_stats())[0]
        assert stats["rembsSent"] >= 1 and stats["incomingBitrateEstimate"] > 0
        await alice.server_send.set_max_incoming_bitrate(260_000)
        target = await wait_for_target(client_producer, lambda t: t == 260_000, 3)
        assert target == 260_000
        await alice.server_send.set_max_incoming_bitrate(0)
        target = await wait_for_target(client_producer, lambda t: t > 260_000, 4)
        assert target > 260_000, "lifting the ceiling lets the estimate grow again"
    finally:
        await alice.close()


async def wait_for_estimate(transport, check, seconds: float) -> int | None:
    """The server's REMB estimate of the path from the sender, once `check` holds (or the last)."""
    deadline = time.monotonic() + seconds
    estimate = None
    while time.monotonic() < deadline:
        estimate = (await transport.get_stats())[0]["incomingBitrateEstimate"]
        if estimate is not None and check(estimate):
            return estimate
        await asyncio.sleep(0.2)
    return estimate


async def test_loss_on_the_way_in_lowers_the_remb_then_it_recovers(worker):  # noqa: F811
    relay = await LossyRelay.start(("127.0.0.1", worker.settings.rtc_port), every=10**9, direction="up")
    router = await worker.create_router()
    video = NoiseTrack(160, 120)
    alice = await Client(router, [video], relay=relay.address).load()
    try:
        client_producer, _ = await alice.produce(video)
        transport = alice.server_send
        clean = await wait_for_estimate(transport, lambda e: e > 0, 5)
        await asyncio.sleep(2)
        clean = (await transport.get_stats())[0]["incomingBitrateEstimate"]
        relay.every = 4   # 25 % of the media lost on the way in, retransmissions included
        lossy = await wait_for_estimate(transport, lambda e: e < clean * 0.8, 6)
        assert lossy < clean * 0.8, f"the estimate did not fall under 25 % loss ({clean} -> {lossy})"
        relay.every = 10**9
        recovered = await wait_for_estimate(transport, lambda e: e > lossy * 1.1, 6)
        assert recovered > lossy * 1.1, f"no recovery after the loss ended ({lossy} -> {recovered})"
        # and aiortc's encoder follows what we tell it (within its own 250 kbit/s..1.5 Mbit/s)
        await asyncio.sleep(1.2)
        estimate = (await transport.get_stats())[0]["incomingBitrateEstimate"]
        target = await aiortc_target(client_producer)
        assert target == max(250_000, min(estimate, 1_500_000)) or abs(target - estimate) < estimate * 0.2
    finally:
        await alice.close()
        relay.close()
