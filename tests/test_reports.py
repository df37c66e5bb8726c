"""The RTCP reports the Forwarder sends every interval (fastpath/feedback.pyx send_reports).

A transport's reports go out as compound packets (RFC 8108 §5.4): its consumers' sender reports
some 35 to a datagram, its producer streams' receiver reports up to 31 blocks to an RR; aiortc reads
every one of them. With parts > 1, one call reports only the transports whose slot % parts == part,
so over `parts` calls every transport reports exactly once. Real SRTP over loopback sockets.
"""

from __future__ import annotations

import time

import pytest
from aiortc.rtp import RtcpPacket, RtcpRrPacket, RtcpSrPacket
from fastpath.codecs import CODEC_OPUS

from tests import test_forwarder
from tests.test_forwarder import Peer, connect, rtcp_datagrams, rtp

forwarder = test_forwarder.forwarder  # a Forwarder on a loopback socket
PRODUCER_SSRCS = (1111, 2222, 3333)
CONSUMERS = 80  # on one transport: more sender reports than one compound packet holds
COMPOUND_LIMIT = 1000 + 14  # REPORT_COMPOUND_BYTES and the SRTCP trailer (index + 80-bit tag)


def room(fwd, server_addr) -> tuple[Peer, Peer, list[int], tuple[int, int]]:
    """A producer transport with three Opus streams and a viewer transport with CONSUMERS consumers
    of them, after each stream forwarded 5 packets to each consumer."""
    producer, viewer = Peer(), Peer()
    producer_slot, viewer_slot = connect(fwd, producer), connect(fwd, viewer)
    streams = [fwd.add_producer_stream(producer_slot, ssrc, 0, CODEC_OPUS, 48000, 0, False) for ssrc in PRODUCER_SSRCS]
    ssrcs = [50_000 + i for i in range(CONSUMERS)]
    for i, ssrc in enumerate(ssrcs):
        consumer = fwd.add_consumer(viewer_slot, ssrc, 1, {111: 100}, {}, 0, CODEC_OPUS, 48000, False, False)
        fwd.attach_stream(consumer, 0, streams[i % len(streams)])
    for seq in range(5):
        for ssrc in PRODUCER_SSRCS:
            producer.sock.sendto(producer.tx.protect(rtp(seq, seq * 960, ssrc, 111, b"\x01" * 40)), server_addr)
    deadline = time.monotonic() + 2
    while fwd.counters()["forwardedPackets"] < 5 * CONSUMERS and time.monotonic() < deadline:
        fwd.drain()
        time.sleep(0.002)
    assert fwd.counters()["forwardedPackets"] == 5 * CONSUMERS
    viewer.sock.settimeout(0.05)
    while True:  # the media itself, so what is read next is RTCP only
        try:
            viewer.sock.recv(2048)
        except TimeoutError:
            break
    return producer, viewer, ssrcs, (producer_slot, viewer_slot)


def test_sender_reports_go_out_compound_and_aiortc_reads_every_one(forwarder):
    fwd, server_addr, _ = forwarder
    producer, viewer, ssrcs, _ = room(fwd, server_addr)
    fwd.send_reports()
    datagrams = rtcp_datagrams(viewer, 0.3)
    assert 2 <= len(datagrams) <= 3, "80 sender reports in a few compound packets, not one datagram each"
    assert all(size <= COMPOUND_LIMIT for size, _ in datagrams)
    reports = [p for _, plain in datagrams for p in RtcpPacket.parse(plain)]
    assert all(isinstance(p, RtcpSrPacket) for p in reports)
    assert sorted(p.ssrc for p in reports) == ssrcs, "every consumer reported once"
    assert {p.sender_info.packet_count for p in reports} == {5}
    octets = {p.sender_info.octet_count for p in reports}
    assert len(octets) == 1 and octets.pop() >= 5 * 40, "the same five packets sent to each"

    # the producer's three streams: one receiver report with a block each
    received = [p for _, plain in rtcp_datagrams(producer, 0.3) for p in RtcpPacket.parse(plain)]
    rrs = [p for p in received if isinstance(p, RtcpRrPacket)]
    assert len(rrs) == 1
    assert sorted(block.ssrc for block in rrs[0].reports) == sorted(PRODUCER_SSRCS)
    assert all(block.highest_sequence == 4 and block.fraction_lost == 0 for block in rrs[0].reports)


@pytest.mark.parametrize("parts", [2, 5])
def test_reports_in_parts_reach_every_transport_once(forwarder, parts):
    fwd, server_addr, _ = forwarder
    producer, viewer, ssrcs, (producer_slot, viewer_slot) = room(fwd, server_addr)
    seen = {"producer": [], "viewer": []}
    for part in range(parts):
        fwd.send_reports(part, parts)
        for name, peer, slot in (("producer", producer, producer_slot), ("viewer", viewer, viewer_slot)):
            got = rtcp_datagrams(peer, 0.15)
            if slot % parts == part:
                assert got, f"the {name}'s transport reports in part {part}"
            else:
                assert not got, f"the {name}'s transport does not report in part {part}"
            seen[name] += [p for _, plain in got for p in RtcpPacket.parse(plain)]
    assert sorted(p.ssrc for p in seen["viewer"]) == ssrcs
    assert len([p for p in seen["producer"] if isinstance(p, RtcpRrPacket)]) == 1


def test_a_part_out_of_range_is_refused(forwarder):
    fwd, _, _ = forwarder
    for part, parts in ((0, 0), (3, 3), (-1, 2)):
        with pytest.raises(ValueError):
            fwd.send_reports(part, parts)
