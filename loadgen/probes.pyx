# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Synthetic SRTP load for benchmarks and load tests: a paced sender and a many-socket receiver, in C.

Every packet is a probe: an RTP fixed header (RFC 3550 5.1), optionally a
transport-wide sequence number in a one-byte header extension (RFC 8285), then
a payload whose first PROBE_TIME_LENGTH bytes are the CLOCK_MONOTONIC time it
was built, in ns, big-endian; the rest is filler. The receiver takes the arrival time
from the kernel (SO_TIMESTAMPNS, stamped when the packet entered the
receiving side of loopback), so the latency it records excludes its own
scheduling delay: what remains is the sender's protect and send, and
everything between the two sockets (the forwarder, in a benchmark).
"""

import numpy as np

from libc.errno cimport EAGAIN, EINTR, errno
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy
from posix.time cimport CLOCK_MONOTONIC, timespec
from posix.unistd cimport close
from posix.uio cimport iovec

from fastpath.clock cimport kernel_arrival_ns, monotonic_ns, realtime_minus_monotonic_ns
from fastpath.netdefs cimport (
    CMSG_SPACE,
    EPOLL_CLOEXEC,
    EPOLL_CTL_ADD,
    EPOLLIN,
    MSG_DONTWAIT,
    MSG_TRUNC,
    SO_TIMESTAMPNS,
    SOL_SOCKET,
    epoll_create1,
    epoll_ctl,
    epoll_event,
    epoll_wait,
    mmsghdr,
    msghdr,
    recvmmsg,
    setsockopt,
    sockaddr,
    sockaddr_storage,
    socklen_t,
)
from fastpath.rtp cimport RTP_HEADER_LENGTH, RtpHeader, parse_rtp, read_u32, write_u16, write_u32
from fastpath.srtp cimport SrtpSession
from fastpath.udp cimport UDP_DEFAULT_SLOT_SIZE, UdpBatchSocket, sockaddr_from_tuple


cdef extern from "<time.h>" nogil:
    int TIMER_ABSTIME
    int clock_nanosleep(int clock_id, int flags, const timespec* request, timespec* remain)


cdef enum:
    RX_BATCH = 64               # datagrams per recvmmsg
    RX_ROUNDS = 16              # recvmmsg calls per ready socket before the next one gets a turn
    RX_EVENTS = 256             # ready sockets per epoll_wait
    RX_WAIT_MS = 10             # longest epoll_wait, so the time bound holds when nothing comes
    RX_CONTROL_SPACE = 64       # room for one SCM_TIMESTAMPNS message


cdef inline void sleep_until(uint64_t deadline_ns) noexcept nogil:
    cdef timespec ts
    ts.tv_sec = deadline_ns // 1000000000
    ts.tv_nsec = deadline_ns % 1000000000
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)


cdef int write_probe_rtp(unsigned char* buf, int length, uint8_t payload_type, uint16_t seq,
                         uint32_t timestamp, uint32_t ssrc, uint64_t send_ns,
                         int twcc_ext_id, uint16_t twcc_seq) noexcept nogil:
    """Write the RTP header and send time of a probe of length bytes; its length, or -1 if too short.

    twcc_ext_id 1..14: the header carries twcc_seq as a transport-wide sequence number
    (draft-holmer-rmcat-transport-wide-cc-extensions-01) in a one-byte element of that id,
    PROBE_TWCC_EXT_LENGTH bytes more; 0: no extension."""
    cdef int header = RTP_HEADER_LENGTH
    if twcc_ext_id:
        header += PROBE_TWCC_EXT_LENGTH
    if length < header + PROBE_TIME_LENGTH or not 0 <= twcc_ext_id <= 14:
        return -1
    buf[0] = 0x90 if twcc_ext_id else 0x80   # V=2, no padding or CSRC; X with the element
    buf[1] = payload_type & 0x7F
    write_u16(buf + 2, seq)
    write_u32(buf + 4, timestamp)
    write_u32(buf + 8, ssrc)
    if twcc_ext_id:
        write_u16(buf + 12, 0xBEDE)
        write_u16(buf + 14, 1)                          # extension length in 32-bit words
        buf[16] = <unsigned char>((twcc_ext_id << 4) | 1)  # id, value length - 1
        write_u16(buf + 17, twcc_seq)
        buf[19] = 0                                     # padding
    write_u32(buf + header, <uint32_t>(send_ns >> 32))
    write_u32(buf + header + 4, <uint32_t>send_ns)
    return length


cdef int64_t probe_send_ns(const unsigned char* buf, int length) noexcept nogil:
    """The send time of a plain (unprotected) probe, wherever its header ends; -1 if it has none."""
    cdef RtpHeader h
    if parse_rtp(buf, length, &h) < 0 or h.payload_len < PROBE_TIME_LENGTH:
        return -1
    return <int64_t>(((<uint64_t>read_u32(buf + h.header_len)) << 32)
                     | read_u32(buf + h.header_len + 4))


cdef enum:
    # send_rtp counts a wake-up this far behind its schedule as a late send
    LATE_SEND_NS = 500000


def send_rtp(sock, dest, SrtpSession session, uint32_t ssrc, int payload_type, int packet_size,
             double rate_pps, double duration_s, int batch=32, int first_seq=0,
             uint32_t clock_rate=90000, int burst=1, int twcc_ext_id=0, long count=0,
             const uint16_t[:] sizes=None):
    """Send SRTP probes of packet_size bytes (trailer included) to dest for duration_s.

    rate_pps paces the stream (0: as fast as the core allows); packets leave
    in sendmmsg batches of at most `batch`, holding only those already due.
    With burst > 1, packets fall due `burst` at a time (the packets of one
    video frame, sent back to back), at the same average rate.
    The RTP timestamp follows the clock at clock_rate. twcc_ext_id (1..14)
    numbers every packet transport-wide in that header extension, as a
    browser does once transport-cc is negotiated; the number is the RTP
    sequence number (one stream per sender: they advance together), and the
    payload is 8 bytes shorter so packet_size holds. count > 0 stops after that
    many packets, even before duration_s. Returns sent (packets
    the kernel took), built, dropped (send buffer full), seconds,
    achieved_pps, next_seq (pass it as first_seq to continue the stream:
    the session's rollover counter follows the sequence numbers), and the
    pacing's own hold-ups: late_sends (wake-ups more than LATE_SEND_NS behind
    schedule, which then send what fell due back to back) and max_late_us.
    `sizes` (uint16 array, e.g. numpy): packet k is sizes[k % len(sizes)] bytes instead of
    packet_size (which then only bounds them), as an encoder's packetizer makes them.
    """
    cdef int plain = packet_size - session.rtp_trailer
    cdef Py_ssize_t n_sizes = 0 if sizes is None else sizes.shape[0]
    cdef Py_ssize_t size_index = 0
    cdef int packet_plain
    cdef int head = RTP_HEADER_LENGTH + PROBE_TIME_LENGTH + (PROBE_TWCC_EXT_LENGTH if twcc_ext_id else 0)
    cdef UdpBatchSocket out
    cdef sockaddr_storage ss
    cdef socklen_t sslen
    cdef unsigned char* filler
    cdef unsigned char* slot
    cdef uint64_t start, end, now, t, built = 0
    cdef uint32_t ts_base = ssrc * 2654435761u
    cdef uint16_t seq = <uint16_t>first_seq
    cdef int64_t due
    cdef int64_t late, max_late = 0
    cdef long late_sends = 0
    cdef int k, n, status = 0
    if not session.outbound:
        raise ValueError("send_rtp needs an outbound SRTP session")
    if not 0 <= twcc_ext_id <= 14:
        raise ValueError("twcc_ext_id must be in 0..14 (one-byte header extension ids; 0: none)")
    if count < 0:
        raise ValueError("count must be >= 0")
    if plain < head or packet_size > UDP_DEFAULT_SLOT_SIZE:
        raise ValueError(f"packet_size must leave {head} bytes after the SRTP trailer "
                         f"and be at most {UDP_DEFAULT_SLOT_SIZE}")
    if sizes is not None:
        if n_sizes == 0:
            raise ValueError("sizes must not be empty")
        for k in range(n_sizes):
            if not head + session.rtp_trailer <= sizes[k] <= packet_size:
                raise ValueError(f"every size must be in {head + session.rtp_trailer}..packet_size")
    if not 1 <= batch <= 1024:
        raise ValueError("batch must be in 1..1024")
    if not 1 <= burst <= batch:
        raise ValueError("burst must be in 1..batch")
    if not (0 < duration_s <= 3600 and rate_pps >= 0):
        raise ValueError("duration_s must be in (0, 3600] and rate_pps >= 0")
    if not 0 <= payload_type < 128:
        raise ValueError("payload_type must be in 0..127")
    out = UdpBatchSocket(sock, rx_slots=1, tx_slots=batch, gso=False)
    sockaddr_from_tuple(dest, out.family, &ss, &sslen)
    filler = <unsigned char*>malloc(plain)
    if filler == NULL:
        raise MemoryError()
    for k in range(plain):
        filler[k] = <unsigned char>(k * 7 + 13)
    with nogil:
        start = monotonic_ns()
        end = start + <uint64_t>(duration_s * 1e9)
        while status == 0:
            now = monotonic_ns()
            if now >= end or (count and <long>built >= count):
                break
            if rate_pps > 0:
                # whole bursts only: burst b (packets b*burst onwards) falls due at b*burst / rate
                due = (<int64_t>((now - start) * rate_pps / 1e9 / burst) + 1) * burst - <int64_t>built
                if due <= 0:
                    t = start + <uint64_t>(built * 1e9 / rate_pps)
                    sleep_until(t if t < end else end)
                    continue
                if due > burst:
                    # more than one burst fell due: this loop woke up late and catches up back to back
                    late = <int64_t>(now - start) - <int64_t>(built * 1e9 / rate_pps)
                    if late > LATE_SEND_NS:
                        late_sends += 1
                    if late > max_late:
                        max_late = late
                if due > batch:
                    due = batch
            else:
                due = batch
            if count and due > count - <long>built:
                due = count - <long>built
            for k in range(<int>due):
                slot = out.tx_slot()
                packet_plain = plain
                if n_sizes:
                    packet_plain = sizes[size_index] - session.rtp_trailer
                    size_index += 1
                    if size_index == n_sizes:
                        size_index = 0
                memcpy(slot + head, filler + head, packet_plain - head)
                t = monotonic_ns()
                write_probe_rtp(slot, packet_plain, <uint8_t>payload_type, seq,
                                ts_base + <uint32_t>(((t - start) // 1000) * clock_rate // 1000000),
                                ssrc, t, twcc_ext_id, seq)
                n = packet_plain
                status = session.protect_rtp(slot, &n, out.slot_size)
                if status != 0:
                    break
                out.tx_commit(n, <const sockaddr*>&ss, sslen)
                seq += 1
                built += 1
            out.flush()
        now = monotonic_ns()
    free(filler)
    if status != 0:
        raise ValueError(f"SRTP protect failed with status {status}")
    seconds = (now - start) / 1e9
    return {
        "sent": out.tx_packets,
        "built": built,
        "dropped": out.tx_dropped_eagain,
        "errors": out.tx_errors,
        "seconds": seconds,
        "achieved_pps": out.tx_packets / seconds if seconds > 0 else 0.0,
        "next_seq": seq,
        "late_sends": late_sends,
        "max_late_us": max_late / 1e3,
    }


cdef struct Receiver:
    int fd
    void* session            # SrtpSession (borrowed from the caller's list), NULL: count only
    uint64_t seen


def receive_rtp(list socks, list sessions, double duration_s, int sample_every=1,
                long max_samples=1 << 20, double stop_when_idle=0.0):
    """Drain every socket for duration_s, counting datagrams and sampling probe latency.

    sessions[i] (an inbound SrtpSession, or None to only count) unprotects
    every sample_every-th packet of socks[i] (0: none), whose one-way latency
    goes into a preallocated array of max_samples. With stop_when_idle > 0,
    return once nothing has arrived for that long. Returns packets, bytes,
    per_socket (numpy uint64), latencies_ns (numpy int64), samples_dropped
    (array full), srtp_failures, not_probes, errors and seconds.
    """
    cdef int count = len(socks)
    cdef int i, j, e, nev, n, rounds, ep = -1, length, status, one = 1, zero = 0
    cdef int wait_ms, max_events = min(max(count, 1), RX_EVENTS)
    cdef Receiver* rx = NULL
    cdef mmsghdr* msgs = NULL
    cdef iovec* iov = NULL
    cdef unsigned char* buf = NULL
    cdef unsigned char* control = NULL
    cdef epoll_event* events = NULL
    cdef epoll_event ev
    cdef uint64_t start, end, now, last_rx, idle_ns = <uint64_t>(stop_when_idle * 1e9)
    cdef uint64_t total = 0, total_bytes = 0, dropped = 0, failures = 0, not_probes = 0, errors = 0
    cdef int64_t rt_offset, send_ns, arrival
    cdef long samples = 0
    cdef unsigned char* data
    if sessions is not None and len(sessions) != count:
        raise ValueError("sessions must be None or one per socket")
    if not 0 < duration_s <= 3600 or max_samples < 0 or sample_every < 0:
        raise ValueError("duration_s must be in (0, 3600], max_samples and sample_every >= 0")
    per_socket = np.zeros(count, dtype=np.uint64)
    latencies = np.empty(max_samples, dtype=np.int64)
    cdef uint64_t[::1] counts = per_socket
    cdef int64_t[::1] lat = latencies
    try:
        rx = <Receiver*>calloc(max(count, 1), sizeof(Receiver))
        msgs = <mmsghdr*>calloc(RX_BATCH, sizeof(mmsghdr))
        iov = <iovec*>calloc(RX_BATCH, sizeof(iovec))
        buf = <unsigned char*>malloc(RX_BATCH * UDP_DEFAULT_SLOT_SIZE)
        control = <unsigned char*>calloc(RX_BATCH, RX_CONTROL_SPACE)
        events = <epoll_event*>calloc(max_events, sizeof(epoll_event))
        if rx == NULL or msgs == NULL or iov == NULL or buf == NULL or control == NULL or events == NULL:
            raise MemoryError()
        for j in range(RX_BATCH):
            iov[j].iov_base = buf + j * UDP_DEFAULT_SLOT_SIZE
            iov[j].iov_len = UDP_DEFAULT_SLOT_SIZE
            msgs[j].msg_hdr.msg_iov = &iov[j]
            msgs[j].msg_hdr.msg_iovlen = 1
            msgs[j].msg_hdr.msg_control = control + j * RX_CONTROL_SPACE
        ep = epoll_create1(EPOLL_CLOEXEC)
        if ep < 0:
            raise OSError(errno, "epoll_create1 failed")
        for i in range(count):
            rx[i].fd = socks[i].fileno()
            session = sessions[i] if sessions is not None else None
            if session is not None:
                if (<SrtpSession?>session).outbound:
                    raise ValueError("receive_rtp needs inbound SRTP sessions")
                rx[i].session = <void*>session
            setsockopt(rx[i].fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one))
            ev.events = EPOLLIN
            ev.data.u64 = 0
            ev.data.u32 = <uint32_t>i
            if epoll_ctl(ep, EPOLL_CTL_ADD, rx[i].fd, &ev) < 0:
                raise OSError(errno, f"epoll_ctl failed for socket {i}")
        rt_offset = realtime_minus_monotonic_ns()
        with nogil:
            start = monotonic_ns()
            end = start + <uint64_t>(duration_s * 1e9)
            last_rx = start
            while True:
                now = monotonic_ns()
                if now >= end or (idle_ns and now - last_rx >= idle_ns):
                    break
                wait_ms = <int>((end - now) // 1000000) + 1
                nev = epoll_wait(ep, events, max_events, wait_ms if wait_ms < RX_WAIT_MS else RX_WAIT_MS)
                if nev < 0:
                    if errno == EINTR:
                        continue
                    errors += 1
                    break
                for e in range(nev):
                    i = events[e].data.u32
                    for rounds in range(RX_ROUNDS):
                        for j in range(RX_BATCH):
                            msgs[j].msg_hdr.msg_controllen = RX_CONTROL_SPACE
                        n = recvmmsg(rx[i].fd, msgs, RX_BATCH, MSG_DONTWAIT, NULL)
                        if n <= 0:
                            if n < 0 and errno != EAGAIN and errno != EINTR:
                                errors += 1
                            break
                        last_rx = monotonic_ns()
                        counts[i] += n
                        total += n
                        for j in range(n):
                            total_bytes += msgs[j].msg_len
                            if rx[i].session == NULL or sample_every == 0:
                                continue
                            rx[i].seen += 1
                            if (rx[i].seen - 1) % sample_every != 0:
                                continue
                            if msgs[j].msg_hdr.msg_flags & MSG_TRUNC:
                                not_probes += 1
                                continue
                            data = buf + j * UDP_DEFAULT_SLOT_SIZE
                            length = msgs[j].msg_len
                            status = (<SrtpSession>rx[i].session).unprotect_rtp(
                                data, &length, UDP_DEFAULT_SLOT_SIZE)
                            if status != 0:
                                failures += 1
                                continue
                            send_ns = probe_send_ns(data, length)
                            if send_ns < 0:
                                not_probes += 1
                                continue
                            arrival = kernel_arrival_ns(&msgs[j].msg_hdr, rt_offset, <int64_t>last_rx)
                            if samples < max_samples:
                                lat[samples] = arrival - send_ns
                                samples += 1
                            else:
                                dropped += 1
                        if n < RX_BATCH:
                            break
            now = monotonic_ns()
    finally:
        if rx != NULL:
            for i in range(count):
                if rx[i].fd > 0:
                    setsockopt(rx[i].fd, SOL_SOCKET, SO_TIMESTAMPNS, &zero, sizeof(zero))
        if ep >= 0:
            close(ep)
        free(rx)
        free(msgs)
        free(iov)
        free(buf)
        free(control)
        free(events)
    return {
        "packets": total,
        "bytes": total_bytes,
        "per_socket": per_socket,
        "latencies_ns": latencies[:samples].copy(),
        "samples_dropped": dropped,
        "srtp_failures": failures,
        "not_probes": not_probes,
        "errors": errors,
        "seconds": (now - start) / 1e9,
    }
