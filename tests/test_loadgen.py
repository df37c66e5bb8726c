"""Synthetic load end to end on loopback: send_rtp -> Forwarder -> receive_rtp, with latency probes."""

from __future__ import annotations

import os
import select
import socket
import threading
import time

import pytest
from fastpath.codecs import CODEC_OPUS
from fastpath.route import Forwarder
from fastpath.rtp import find_extension_py, parse_rtp_py
from fastpath.srtp import SrtpSession, profile_key_lengths
from loadgen.probes import receive_rtp, send_rtp

PROFILE = "AES_CM_128_HMAC_SHA1_80"
PRODUCER_SSRC = 0x50D0C3E5
PAYLOAD_TYPE = 111
RATE_PPS = 2000
SECONDS = 0.3
CONSUMERS = 3
# Linux's SO_TIMESTAMPNS (also its control message type), which the socket module does not name
SO_TIMESTAMPNS = 35


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def new_key() -> bytes:
    return os.urandom(sum(profile_key_lengths(PROFILE)))


def serve(fwd: Forwarder, stop: threading.Event, limit_s: float) -> None:
    """The worker's loop: drain on readiness until stopped, at most limit_s."""
    deadline = time.monotonic() + limit_s
    while not stop.is_set() and time.monotonic() < deadline:
        readable, _, _ = select.select([fwd], [], [], 0.01)
        if readable:
            fwd.drain()


@pytest.fixture
def sockets():
    opened = [udp_socket() for _ in range(CONSUMERS + 2)]
    yield opened
    for sock in opened:
        sock.close()


def test_probes_cross_the_forwarder_to_every_consumer(sockets):
    server, producer, *consumers = sockets
    fwd = Forwarder(server, lambda packets, events: None)
    send_key = new_key()
    t = fwd.add_transport(1)
    fwd.set_transport_tuple(t, producer.getsockname())
    fwd.set_transport_srtp(t, SrtpSession(PROFILE, send_key, "inbound"),
                           SrtpSession(PROFILE, new_key(), "outbound"))
    stream = fwd.add_producer_stream(t, PRODUCER_SSRC, 0, CODEC_OPUS, 48000, 0, False)
    receive_sessions = []
    for i, sock in enumerate(consumers):
        recv_key = new_key()
        ct = fwd.add_transport(100 + i)
        fwd.set_transport_tuple(ct, sock.getsockname())
        fwd.set_transport_srtp(ct, SrtpSession(PROFILE, new_key(), "inbound"),
                               SrtpSession(PROFILE, recv_key, "outbound"))
        consumer = fwd.add_consumer(ct, 7000 + i, 1, {PAYLOAD_TYPE: 100}, {}, 0, CODEC_OPUS, 48000,
                                    False, False)
        fwd.attach_stream(consumer, 0, stream)
        receive_sessions.append(SrtpSession(PROFILE, recv_key, "inbound"))

    stop = threading.Event()
    worker = threading.Thread(target=serve, args=(fwd, stop, 5.0))
    sent = {}
    sender = threading.Thread(target=lambda: sent.update(send_rtp(
        producer, server.getsockname(), SrtpSession(PROFILE, send_key, "outbound"), PRODUCER_SSRC,
        PAYLOAD_TYPE, 1200, RATE_PPS, SECONDS, clock_rate=48000)))
    worker.start()
    sender.start()
    try:
        received = receive_rtp(consumers, receive_sessions, SECONDS + 1.0, stop_when_idle=0.3)
    finally:
        sender.join(5)
        stop.set()
        worker.join(5)

    assert abs(sent["sent"] - RATE_PPS * SECONDS) <= 0.05 * RATE_PPS * SECONDS
    assert all(count > 0.9 * sent["sent"] for count in received["per_socket"])
    assert received["srtp_failures"] == 0 and received["not_probes"] == 0
    latencies = received["latencies_ns"]
    assert len(latencies) == received["packets"]
    assert latencies.min() > 0 and latencies.max() < 50_000_000
    assert fwd.counters()["forwardedPackets"] == received["packets"]


def test_bursts_leave_together_at_the_average_rate(sockets):
    """burst=8: a frame's eight packets arrive back to back, one frame every 8 / rate seconds."""
    _, producer, receiver, *_ = sockets
    receiver.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sent = send_rtp(producer, receiver.getsockname(), SrtpSession(PROFILE, new_key(), "outbound"),
                    PRODUCER_SSRC, PAYLOAD_TYPE, 1200, 400, 0.2, burst=8)
    arrivals = []
    while True:
        try:
            _, ancdata, _, _ = receiver.recvmsg(2048, 64)
        except BlockingIOError:
            break
        stamp = next(data for level, kind, data in ancdata if kind == SO_TIMESTAMPNS)
        seconds, nanoseconds = int.from_bytes(stamp[:8], "little"), int.from_bytes(stamp[8:16], "little")
        arrivals.append(seconds * 1_000_000_000 + nanoseconds)

    assert sent["built"] % 8 == 0 and len(arrivals) == sent["sent"] >= 72
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    # 400 packets/s in frames of 8: 20 ms between frames, the packets of a frame one sendmmsg apart
    within = [gap for k, gap in enumerate(gaps) if k % 8 != 7]
    between = sorted(gap for k, gap in enumerate(gaps) if k % 8 == 7)
    assert max(within) < 5_000_000
    assert between[len(between) // 2] > 15_000_000


def test_numbered_probes_carry_a_transport_wide_sequence_number(sockets):
    """twcc_ext_id=5: every probe has the RFC 8285 one-byte element, the packet size holds, and
    receive_rtp still finds the send time after the longer header."""
    _, producer, receiver, *_ = sockets
    key = new_key()
    sent = send_rtp(producer, receiver.getsockname(), SrtpSession(PROFILE, key, "outbound"),
                    PRODUCER_SSRC, PAYLOAD_TYPE, 1200, 0, 1.0, first_seq=65534, twcc_ext_id=5, count=5)
    assert sent["sent"] == sent["built"] == 5 and sent["next_seq"] == 3
    inbound = SrtpSession(PROFILE, key, "inbound")
    packets = [receiver.recv(2048) for _ in range(5)]
    assert {len(p) for p in packets} == {1200}
    plain = [inbound.unprotect(p) for p in packets]
    assert [int.from_bytes(find_extension_py(p, 5), "big") for p in plain] == [65534, 65535, 0, 1, 2]
    assert all(parse_rtp_py(p)["header_len"] == 20 for p in plain)

    send_rtp(producer, receiver.getsockname(), SrtpSession(PROFILE, key, "outbound"), PRODUCER_SSRC,
             PAYLOAD_TYPE, 1200, 0, 1.0, twcc_ext_id=5, count=50)
    got = receive_rtp([receiver], [SrtpSession(PROFILE, key, "inbound")], 2.0, stop_when_idle=0.2)
    assert got["packets"] == 50 and got["not_probes"] == 0 and got["srtp_failures"] == 0
    assert 0 < got["latencies_ns"].min() and got["latencies_ns"].max() < 1_000_000_000


def test_numbered_probes_get_transport_cc_feedback(sockets):
    """With transport-cc on the producer's transport, numbered probes are acknowledged to the producer."""
    server, producer, consumer, *_ = sockets
    fwd = Forwarder(server, lambda packets, events: None)
    send_key, recv_key = new_key(), new_key()
    t = fwd.add_transport(1)
    fwd.set_transport_tuple(t, producer.getsockname())
    fwd.set_transport_srtp(t, SrtpSession(PROFILE, send_key, "inbound"),
                           SrtpSession(PROFILE, new_key(), "outbound"))
    fwd.set_transport_incoming_feedback(t, 5, False)
    stream = fwd.add_producer_stream(t, PRODUCER_SSRC, 0, CODEC_OPUS, 48000, 0, False)
    ct = fwd.add_transport(100)
    fwd.set_transport_tuple(ct, consumer.getsockname())
    fwd.set_transport_srtp(ct, SrtpSession(PROFILE, new_key(), "inbound"),
                           SrtpSession(PROFILE, recv_key, "outbound"))
    consumer_slot = fwd.add_consumer(ct, 7000, 1, {PAYLOAD_TYPE: 100}, {}, 0, CODEC_OPUS, 48000, False, False)
    fwd.attach_stream(consumer_slot, 0, stream)
    # 250 packets, 50 at a time (the default receive buffer holds ~90): a feedback for each 100 waiting
    outbound, inbound = SrtpSession(PROFILE, send_key, "outbound"), SrtpSession(PROFILE, recv_key, "inbound")
    seq = copies = 0
    for _ in range(5):
        seq = send_rtp(producer, server.getsockname(), outbound, PRODUCER_SSRC, PAYLOAD_TYPE, 1200, 0, 1.0,
                       first_seq=seq, twcc_ext_id=5, count=50)["next_seq"]
        while fwd.drain():
            pass
        received = receive_rtp([consumer], [inbound], 2.0, stop_when_idle=0.1)
        assert received["not_probes"] == 0 and received["srtp_failures"] == 0
        copies += received["packets"]
    assert copies == 250
    feedbacks = fwd.transport_stats(t)["incomingFeedbacks"]
    assert feedbacks >= 2
    rtcp = []
    while True:
        try:
            rtcp.append(producer.recv(2048))
        except BlockingIOError:
            break
    assert len(rtcp) == feedbacks


def _send_paced(conn, dest, key: bytes) -> None:
    """Child process: one second of probes at RATE_PPS from a socket of its own; sends back the result."""
    sock = udp_socket()
    try:
        conn.send(send_rtp(sock, dest, SrtpSession(PROFILE, key, "outbound"), PRODUCER_SSRC, PAYLOAD_TYPE, 200,
                           RATE_PPS, 1.0))
    finally:
        sock.close()


def test_the_pacing_counts_its_own_late_wake_ups_and_catches_up(sockets):
    """A producer held off its core (SIGSTOP for 60 ms) says so: a late wake-up of ~60 ms, after
    which what fell due leaves back to back, so the average rate holds as it does unhindered.
    bench_tail.py sets these counts against the worker's late copies."""
    import multiprocessing
    import signal

    sink = sockets[0]
    ctx = multiprocessing.get_context("fork")
    results = []
    for stop_ms in (0, 60):
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_send_paced, args=(child, sink.getsockname(), new_key()), daemon=True)
        process.start()
        if stop_ms:
            time.sleep(0.4)
            os.kill(process.pid, signal.SIGSTOP)
            time.sleep(stop_ms / 1000)
            os.kill(process.pid, signal.SIGCONT)
        assert parent.poll(10), "the sender did not finish"
        results.append(parent.recv())
        process.join(5)
        receive_rtp([sink], None, 2.0, 0, stop_when_idle=0.2)  # empty the sink for the next round
    quiet, stopped = results
    assert quiet["sent"] >= 0.95 * RATE_PPS and stopped["sent"] >= 0.95 * RATE_PPS
    assert stopped["late_sends"] >= 1
    assert stopped["max_late_us"] >= 0.8 * 60_000
