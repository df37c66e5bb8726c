"""The socket stage on real loopback sockets: recvmmsg batches, sendmmsg fan-out, UDP GSO."""

import select
import socket
import time

import pytest
from fastpath.udp import UdpBatchSocket

IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
SO_NO_CHECK = 11


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


FAMILIES = [
    pytest.param((socket.AF_INET, "127.0.0.1"), id="ipv4"),
    pytest.param(
        (socket.AF_INET6, "::1"),
        id="ipv6",
        marks=pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback"),
    ),
]


def gso_supported() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return UdpBatchSocket(s, gso=True).gso


GSO_MODES = [
    pytest.param(False, id="sendmmsg"),
    pytest.param(
        True, id="gso", marks=pytest.mark.skipif(not gso_supported(), reason="no UDP GSO")
    ),
]


@pytest.fixture
def sockets():
    opened = []

    def make(family=socket.AF_INET, host="127.0.0.1", blocking=False):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind((host, 0))
        s.setblocking(blocking)
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


def recv_all(sock: socket.socket, count: int, timeout: float = 2.0) -> list[tuple[bytes, tuple]]:
    got = []
    deadline = time.monotonic() + timeout
    sock.settimeout(timeout)
    while len(got) < count and time.monotonic() < deadline:
        try:
            got.append(sock.recvfrom(65536))
        except TimeoutError:
            break
    return got


def drain(batch: UdpBatchSocket, count: int, timeout: float = 2.0) -> list[list]:
    """Call recv_batch_py until count datagrams came; returns the batches."""
    batches = []
    total = 0
    deadline = time.monotonic() + timeout
    while total < count and time.monotonic() < deadline:
        select.select([batch], [], [], 0.05)
        got = batch.recv_batch_py()
        if got:
            batches.append(got)
            total += len(got)
    return batches


@pytest.mark.parametrize("family", FAMILIES)
def test_recv_batch(family, sockets):
    fam, host = family
    receiver = sockets(fam, host)
    sender = sockets(fam, host)
    batch = UdpBatchSocket(receiver)
    assert batch.recv_batch_py() == []
    payloads = [bytes([i]) * (1 + i * 7) for i in range(100)]
    for p in payloads:
        sender.sendto(p, receiver.getsockname())
    batches = drain(batch, 100)
    received = [item for b in batches for item in b]
    assert [data for data, _ in received] == payloads
    assert all(addr == sender.getsockname() for _, addr in received)
    assert len(batches) >= 2 and all(len(b) <= 64 for b in batches)
    c = batch.counters()
    assert c["rx_packets"] == 100
    assert c["rx_bytes"] == sum(map(len, payloads))
    assert c["rx_batches"] == len(batches)
    assert c["rx_truncated"] == 0


def test_truncated_datagrams_are_counted_and_left_out(sockets):
    receiver = sockets()
    sender = sockets()
    batch = UdpBatchSocket(receiver, rx_slots=4, slot_size=100)
    for size in (100, 101, 5000, 7):
        sender.sendto(b"x" * size, receiver.getsockname())
    received = [d for b in drain(batch, 2, timeout=0.5) for d, _ in b]
    assert received == [b"x" * 100, b"x" * 7]
    assert batch.counters()["rx_truncated"] == 2
    assert batch.counters()["rx_packets"] == 4


@pytest.mark.parametrize("gso", GSO_MODES)
@pytest.mark.parametrize("family", FAMILIES)
def test_fan_out_to_ten_destinations(family, gso, sockets):
    fam, host = family
    receivers = [sockets(fam, host) for _ in range(10)]
    sender = sockets(fam, host)
    batch = UdpBatchSocket(sender, gso=gso)
    assert batch.gso == gso
    sent = {r.getsockname(): [] for r in receivers}
    for i in range(500):
        # frame-like sizes: runs of equal packets with a shorter one at the end
        data = i.to_bytes(4, "big") * (300 if i % 7 else 100)
        addr = receivers[i % 10].getsockname()
        batch.send_py(data, addr)
        sent[addr].append(data)
    batch.flush_py()
    for r in receivers:
        got = recv_all(r, 50)
        assert [d for d, _ in got] == sent[r.getsockname()]
        assert all(a == sender.getsockname() for _, a in got)
    c = batch.counters()
    assert c["tx_packets"] == 500
    assert c["tx_bytes"] == sum(len(d) for v in sent.values() for d in v)
    assert c["tx_dropped_eagain"] == 0 and c["tx_errors"] == 0
    # 256 slots: the 257th packet flushed the first 256
    assert c["tx_batches"] >= 2


@pytest.mark.skipif(not gso_supported(), reason="no UDP GSO")
def test_gso_delivers_what_plain_sendmmsg_delivers(sockets):
    receivers = [sockets() for _ in range(3)]
    sizes = [1200] * 5 + [700] + [1200] * 3 + [1300, 160, 160, 1200]
    results = {}
    for gso in (False, True):
        batch = UdpBatchSocket(sockets(), gso=gso, tx_slots=64)
        for burst in range(6):
            for k, size in enumerate(sizes):
                data = bytes([burst, k]) * (size // 2)
                batch.send_py(data, receivers[(burst + k // 4) % 3].getsockname())
        batch.flush_py()
        results[gso] = [[d for d, _ in recv_all(r, 26)] for r in receivers]
        assert batch.counters()["tx_packets"] == 6 * len(sizes)
        assert batch.counters()["tx_gso_fallbacks"] == 0
    assert results[True] == results[False]
    assert sum(map(len, results[True])) == 6 * len(sizes)


@pytest.mark.skipif(not gso_supported(), reason="no UDP GSO")
def test_gso_batches_a_burst_into_few_segments(sockets):
    receiver = sockets()
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    batch = UdpBatchSocket(sockets(), gso=True, tx_slots=256)
    for i in range(200):
        batch.send_py(i.to_bytes(2, "big") * 600, receiver.getsockname())
    assert batch.flush_py() == 200
    got = [d for d, _ in recv_all(receiver, 200)]
    assert got == [i.to_bytes(2, "big") * 600 for i in range(200)]
    # 200 packets in messages of at most 54 segments (65,507 bytes): one sendmmsg
    assert batch.counters()["tx_batches"] == 1


@pytest.mark.skipif(not gso_supported(), reason="no UDP GSO")
def test_refused_gso_message_falls_back_to_single_datagrams(sockets):
    receivers = [sockets() for _ in range(2)]
    sender = sockets()
    # without UDP checksums the kernel refuses GSO (EINVAL) but sends plain datagrams
    sender.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    batch = UdpBatchSocket(sender, gso=True)
    expected = [[], []]
    for i in range(20):
        data = b"%03d" % i * 100
        batch.send_py(data, receivers[i % 2].getsockname())
        expected[i % 2].append(data)
    assert batch.flush_py() == 20
    assert [[d for d, _ in recv_all(r, 10)] for r in receivers] == expected
    c = batch.counters()
    assert c["tx_gso_fallbacks"] == 1 and c["tx_errors"] == 0
    assert batch.gso  # EINVAL is about this message; only EIO turns GSO off


@pytest.mark.parametrize("gso", GSO_MODES)
@pytest.mark.parametrize("family", FAMILIES)
def test_closed_port_does_not_break_the_next_flush(family, gso, sockets):
    fam, host = family
    live = sockets(fam, host)
    gone = sockets(fam, host)
    closed_addr = gone.getsockname()
    gone.close()
    sender = sockets(fam, host)
    # with RECVERR the ICMP port unreachable comes back as ECONNREFUSED on the next send
    if fam == socket.AF_INET:
        sender.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    else:
        sender.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
    batch = UdpBatchSocket(sender, gso=gso)
    batch.send_py(b"lost", closed_addr)
    batch.send_py(b"first", live.getsockname())
    assert batch.flush_py() == 2
    time.sleep(0.05)
    for i in range(3):
        batch.send_py(b"next%d" % i, closed_addr)
        batch.send_py(b"next%d" % i, live.getsockname())
    batch.flush_py()
    time.sleep(0.05)
    batch.send_py(b"last", live.getsockname())
    assert batch.flush_py() == 1
    got = [d for d, _ in recv_all(live, 5, timeout=0.5)]
    assert got == [b"first", b"next0", b"next1", b"next2", b"last"]
    c = batch.counters()
    assert c["tx_errors"] == 0
    # the refusals did come back, and cost a retried sendmmsg each
    assert c["tx_batches"] > 3


def test_ipv6_socket_sends_to_ipv4_mapped(sockets):
    if not ipv6_available():
        pytest.skip("no IPv6")
    receiver = sockets()
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s6.bind(("::", 0))
    try:
        batch = UdpBatchSocket(s6)
        batch.send_py(b"mapped", receiver.getsockname())
        assert batch.flush_py() == 1
        assert recv_all(receiver, 1)[0][0] == b"mapped"
        receiver.sendto(b"back", ("127.0.0.1", s6.getsockname()[1]))
        got = drain(batch, 1)[0]
        assert got == [(b"back", ("::ffff:127.0.0.1", receiver.getsockname()[1], 0, 0))]
    finally:
        s6.close()


def test_bad_addresses_are_refused(sockets):
    batch = UdpBatchSocket(sockets())
    with pytest.raises(ValueError, match="port"):
        batch.send_py(b"x", ("127.0.0.1", 70000))
    with pytest.raises(ValueError, match="numeric"):
        batch.send_py(b"x", ("localhost", 9))
    with pytest.raises(ValueError, match="numeric"):
        batch.send_py(b"x", ("::1", 9))
    with pytest.raises(ValueError, match="length"):
        batch.send_py(b"x" * 2049, ("127.0.0.1", 9))
    assert batch.flush_py() == 0


def test_socket_stays_open_while_wrapped():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    addr = s.getsockname()
    batch = UdpBatchSocket(s)
    del s
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(b"still open", addr)
    assert drain(batch, 1)[0][0][0] == b"still open"
    batch.close()
    assert batch.fileno() == -1


def test_tcp_socket_is_refused():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        with pytest.raises(ValueError, match="SOCK_DGRAM"):
            UdpBatchSocket(s)


def rtp_like(ssrc: int, seq: int, size: int) -> bytes:
    """An RTP header (RFC 3550 section 5.1) then filler: what the grouping reads is the SSRC."""
    return bytes([0x80, 96]) + seq.to_bytes(2, "big") + bytes(4) + ssrc.to_bytes(4, "big") + bytes(size - 12)


@pytest.mark.skipif(not gso_supported(), reason="no UDP GSO")
def test_gso_groups_a_destinations_streams_by_size_keeping_each_streams_order(sockets):
    # a room's consumer: audio and video of several senders interleaved, each stream one size
    receiver = sockets()
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    batch = UdpBatchSocket(sockets(), gso=True, tx_slots=256)
    sent = []
    for seq in range(20):
        for ssrc, size in ((1, 120), (2, 900), (3, 120), (4, 900)):
            sent.append(rtp_like(ssrc, seq, size))
            batch.send_py(sent[-1], receiver.getsockname())
    assert batch.flush_py() == 80
    got = [d for d, _ in recv_all(receiver, 80)]
    assert sorted(got) == sorted(sent)
    for ssrc in (1, 2, 3, 4):
        mine = [d for d in got if d[8:12] == ssrc.to_bytes(4, "big")]
        assert [int.from_bytes(d[2:4], "big") for d in mine] == list(range(20))
    # one message per size instead of one per size change (80 in arrival order)
    assert batch.counters()["tx_messages"] == 2


@pytest.mark.skipif(not gso_supported(), reason="no UDP GSO")
def test_gso_never_reorders_one_stream(sockets):
    # one stream whose sizes alternate cannot be grouped by size without reordering it
    receiver = sockets()
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    batch = UdpBatchSocket(sockets(), gso=True, tx_slots=256)
    sent = [rtp_like(7, seq, (300, 800, 800, 301)[seq % 4]) for seq in range(40)]
    for data in sent:
        batch.send_py(data, receiver.getsockname())
    assert batch.flush_py() == 40
    assert [d for d, _ in recv_all(receiver, 40)] == sent
