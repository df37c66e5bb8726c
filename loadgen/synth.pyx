# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Synthetic participants' media for the load-testing harness, in C: paced frames out, stats in.

One `SyntheticMedia` holds every stream a load test sends and every consumer
it receives, over the UDP sockets of many synthetic WebRTC transports.
`run(seconds)` releases the GIL and, in one epoll loop, sends each stream's
frames when they fall due and drains every socket with recvmmsg, so the
asyncio side (signaling, ICE, DTLS of participants still joining) runs in
parallel in the main thread. Streams, sockets and consumers are added only
between runs.

Every packet ends with a 16-byte tail: its send time (CLOCK_MONOTONIC ns,
big-endian), the index of its stream and a magic word. The tail sits at the
end of the payload so that a VP8 payload descriptor can lead it, as the SFU
needs to see key frames and rewrites picture ids. Arrival times come from
the kernel (SO_TIMESTAMPNS). Per consumer (receive socket, SSRC) the loop
keeps RFC 3550's receive statistics: packets received, the extended highest
sequence number (expected = highest - first + 1), and the interarrival
jitter, computed from send and arrival times rather than RTP timestamps.
On the send sockets it reads the SFU's RTCP: a PLI or FIR for one of our
SSRCs makes that stream's next frame a key frame.
"""

import numpy as np

from libc.errno cimport EINTR, errno
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset
from posix.unistd cimport close
from posix.uio cimport iovec

from fastpath.clock cimport kernel_arrival_ns, monotonic_ns, realtime_minus_monotonic_ns
from fastpath.netdefs cimport (
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
    sendmmsg,
    setsockopt,
    sockaddr_in,
    socklen_t,
)
from fastpath.rtp cimport RTP_HEADER_LENGTH, RtpHeader, is_rtcp, parse_rtp, read_u16, read_u32, write_u16, write_u32
from fastpath.rtcp cimport (
    RTCP_PSFB,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB,
    RTCP_RTPFB_NACK,
    RtcpFeedback,
    RtcpFirEntry,
    RtcpItem,
    rtcp_next,
    rtcp_parse_feedback,
    rtcp_parse_fir,
)
from fastpath.srtp cimport SrtpSession
from fastpath.table cimport KeyTable, TableKey

import ipaddress
import socket as _socket


cdef extern from "<arpa/inet.h>" nogil:
    unsigned short htons(unsigned short v)

cdef enum:
    SLOT_SIZE = 2048
    TX_BATCH = 64               # packets of one frame sent with one sendmmsg (a frame is cut to this)
    RX_BATCH = 64               # datagrams per recvmmsg
    RX_ROUNDS = 8               # recvmmsg calls per ready socket before the next one gets a turn
    RX_EVENTS = 256             # ready sockets per epoll_wait
    RX_WAIT_MS = 10             # longest epoll_wait, so the time bound holds when nothing comes
    RX_CONTROL_SPACE = 64       # room for one SCM_TIMESTAMPNS message
    TAIL_LENGTH = 16            # send ns (8), stream index (4), magic (4)
    VP8_DESCRIPTOR_LENGTH = 6   # X|S, I|L|T, 15-bit picture id, TL0PICIDX, TID|Y
    VP8_KEY_HEADER_LENGTH = 10  # frame tag (3), start code (3), width (2), height (2)
    MAX_CATCH_UP_FRAMES = 4     # frames a late stream sends at once before it skips ahead

    CODEC_AUDIO = 0
    CODEC_VP8 = 1

    TAIL_MAGIC = 0x53594C54     # "SYLT"
    MAX_FIR_ENTRIES = 32        # FIR entries of one message looked at
    MAX_LATE_NS = 200000000     # a stream further behind than this skips the frames it missed



cdef struct OutStream:
    int sock                    # index into the sockets (its send transport)
    int fd
    sockaddr_in dest
    void* session               # outbound SrtpSession, kept alive by the Python object
    uint32_t ssrc
    uint8_t payload_type
    int codec
    uint32_t clock_rate
    uint64_t interval_ns        # between frames
    int frame_packets
    int packet_size             # bytes on the wire, SRTP trailer included
    uint64_t key_interval_ns    # 0: key frames only first and on PLI/FIR
    uint64_t start_delay_ns
    uint64_t next_due_ns        # 0: not started yet
    uint64_t last_key_ns
    uint64_t frame_index
    uint64_t first_frame_ns
    int force_key
    uint16_t seq
    uint16_t picture_id
    uint8_t tl0picidx
    uint64_t sent
    uint64_t send_failed
    uint64_t frames
    uint64_t key_frames
    uint64_t skipped_frames
    uint64_t key_requests
    int ext_length              # bytes of the header extension block after the fixed header (0: none)
    unsigned char ext[64]       # RFC 8285 block: profile, length, elements, padding


cdef struct InConsumer:
    int sock
    uint32_t ssrc
    int started
    uint64_t received
    uint64_t bytes
    uint32_t first_ext
    uint32_t max_ext
    double jitter_ns
    int64_t last_transit
    int has_transit


cdef struct Sock:
    int fd
    void* session               # inbound SrtpSession (SRTP on receive sockets, SRTCP on send sockets)
    int send_side


cdef inline void stream_key(TableKey* key, int send_side, int sock, uint32_t ssrc) noexcept nogil:
    """(side, socket, SSRC): a send socket's SSRC is one of our streams, a receive socket's a consumer."""
    key.a = ssrc
    key.b = <uint64_t>sock
    key.c = <uint32_t>send_side


cdef class SyntheticMedia:
    """Streams out, consumers in, over many transports' sockets; `run()` drives them without the GIL."""

    cdef OutStream* streams
    cdef InConsumer* consumers
    cdef Sock* socks
    cdef readonly int stream_count, consumer_count, socket_count
    cdef int max_streams, max_consumers, max_sockets
    cdef KeyTable table              # (side, socket, ssrc) -> stream or consumer index
    cdef int ep
    cdef list _keep                  # sockets and SRTP sessions the C side points into
    cdef long max_samples
    cdef int64_t* lat_buf
    cdef int32_t* lat_owner
    cdef unsigned char* tx_buf
    cdef mmsghdr* tx_msgs
    cdef iovec* tx_iov
    cdef unsigned char* rx_buf
    cdef unsigned char* rx_control
    cdef mmsghdr* rx_msgs
    cdef iovec* rx_iov
    cdef epoll_event* events
    cdef unsigned char* filler
    cdef bint running

    def __cinit__(self, int max_streams=4096, int max_consumers=65536, int max_sockets=8192,
                  long max_samples=1 << 19):
        cdef int j
        if not (0 < max_streams <= 1 << 20 and 0 < max_consumers <= 1 << 22 and 0 < max_sockets <= 1 << 20
                and 0 <= max_samples <= 1 << 26):
            raise ValueError("capacities out of range")
        self.ep = -1
        self.max_streams, self.max_consumers, self.max_sockets = max_streams, max_consumers, max_sockets
        self.max_samples = max_samples
        self.table = KeyTable()
        self.streams = <OutStream*>calloc(max_streams, sizeof(OutStream))
        self.consumers = <InConsumer*>calloc(max_consumers, sizeof(InConsumer))
        self.socks = <Sock*>calloc(max_sockets, sizeof(Sock))
        self.lat_buf = <int64_t*>malloc(max(max_samples, 1) * sizeof(int64_t))
        self.lat_owner = <int32_t*>malloc(max(max_samples, 1) * sizeof(int32_t))
        self.tx_buf = <unsigned char*>malloc(TX_BATCH * SLOT_SIZE)
        self.tx_msgs = <mmsghdr*>calloc(TX_BATCH, sizeof(mmsghdr))
        self.tx_iov = <iovec*>calloc(TX_BATCH, sizeof(iovec))
        self.rx_buf = <unsigned char*>malloc(RX_BATCH * SLOT_SIZE)
        self.rx_control = <unsigned char*>calloc(RX_BATCH, RX_CONTROL_SPACE)
        self.rx_msgs = <mmsghdr*>calloc(RX_BATCH, sizeof(mmsghdr))
        self.rx_iov = <iovec*>calloc(RX_BATCH, sizeof(iovec))
        self.events = <epoll_event*>calloc(RX_EVENTS, sizeof(epoll_event))
        self.filler = <unsigned char*>malloc(SLOT_SIZE)
        if (self.streams == NULL or self.consumers == NULL or self.socks == NULL
                or self.lat_buf == NULL or self.lat_owner == NULL
                or self.tx_buf == NULL or self.tx_msgs == NULL or self.tx_iov == NULL or self.rx_buf == NULL
                or self.rx_control == NULL or self.rx_msgs == NULL or self.rx_iov == NULL
                or self.events == NULL or self.filler == NULL):
            raise MemoryError()
        for j in range(SLOT_SIZE):
            self.filler[j] = <unsigned char>(j * 7 + 13)
        for j in range(TX_BATCH):
            self.tx_iov[j].iov_base = self.tx_buf + j * SLOT_SIZE
            self.tx_msgs[j].msg_hdr.msg_iov = &self.tx_iov[j]
            self.tx_msgs[j].msg_hdr.msg_iovlen = 1
        for j in range(RX_BATCH):
            self.rx_iov[j].iov_base = self.rx_buf + j * SLOT_SIZE
            self.rx_iov[j].iov_len = SLOT_SIZE
            self.rx_msgs[j].msg_hdr.msg_iov = &self.rx_iov[j]
            self.rx_msgs[j].msg_hdr.msg_iovlen = 1
            self.rx_msgs[j].msg_hdr.msg_control = self.rx_control + j * RX_CONTROL_SPACE
        self.ep = epoll_create1(EPOLL_CLOEXEC)
        if self.ep < 0:
            raise OSError(errno, "epoll_create1 failed")
        self._keep = []

    def __dealloc__(self):
        if self.ep >= 0:
            close(self.ep)
        free(self.streams)
        free(self.consumers)
        free(self.socks)
        free(self.lat_buf)
        free(self.lat_owner)
        free(self.tx_buf)
        free(self.tx_msgs)
        free(self.tx_iov)
        free(self.rx_buf)
        free(self.rx_control)
        free(self.rx_msgs)
        free(self.rx_iov)
        free(self.events)
        free(self.filler)

    # ---- set-up (between runs) ----------------------------------------------------------------

    def _check_idle(self):
        if self.running:
            raise RuntimeError("SyntheticMedia is running; add between runs")

    def add_socket(self, sock, SrtpSession inbound, bint send_side):
        """Watch a transport's UDP socket; `inbound` unprotects what the SFU sends on it. Its index."""
        cdef int one = 1, i = self.socket_count
        cdef epoll_event ev
        self._check_idle()
        if i >= self.max_sockets:
            raise ValueError("too many sockets")
        if inbound.outbound:
            raise ValueError("add_socket needs an inbound SRTP session")
        fd = sock.fileno()
        sock.setblocking(False)
        setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one))
        memset(&ev, 0, sizeof(ev))
        ev.events = EPOLLIN
        ev.data.u32 = <uint32_t>i
        if epoll_ctl(self.ep, EPOLL_CTL_ADD, fd, &ev) < 0:
            raise OSError(errno, "epoll_ctl failed")
        self.socks[i].fd = fd
        self.socks[i].session = <void*>inbound
        self.socks[i].send_side = send_side
        self._keep.extend((sock, inbound))
        self.socket_count = i + 1
        return i

    def add_stream(self, int sock_index, dest, SrtpSession outbound, uint32_t ssrc, int payload_type,
                   str codec, uint32_t clock_rate, double fps, int frame_packets, int packet_size,
                   double key_interval_s=0.0, double start_delay_s=0.0, bytes extension=b""):
        """A stream of `fps` frames a second, each `frame_packets` packets of `packet_size` bytes.

        `extension`, if given, is a whole RFC 8285 header extension block (profile, length in
        words, elements, padding) put after the fixed header of every packet, e.g. MID and RID.
        """
        cdef int i = self.stream_count
        cdef OutStream* s
        cdef int overhead
        cdef TableKey key
        self._check_idle()
        if i >= self.max_streams:
            raise ValueError("too many streams")
        if not 0 <= sock_index < self.socket_count or not self.socks[sock_index].send_side:
            raise ValueError("sock_index must be a send socket")
        if not outbound.outbound:
            raise ValueError("add_stream needs an outbound SRTP session")
        if codec not in ("audio", "vp8"):
            raise ValueError("codec must be 'audio' or 'vp8'")
        if not (0 < fps <= 1000 and 1 <= frame_packets <= TX_BATCH and 0 <= payload_type < 128
                and clock_rate > 0 and 0 <= key_interval_s <= 3600 and 0 <= start_delay_s <= 3600):
            raise ValueError("fps, frame_packets, payload_type, clock_rate or intervals out of range")
        if len(extension) > 64 or len(extension) % 4 or (extension and (
                len(extension) < 4 or (extension[2] << 8 | extension[3]) * 4 + 4 != len(extension))):
            raise ValueError("extension must be a whole header extension block of at most 64 bytes")
        overhead = RTP_HEADER_LENGTH + len(extension) + TAIL_LENGTH + outbound.rtp_trailer
        if codec == "vp8":
            overhead += VP8_DESCRIPTOR_LENGTH + VP8_KEY_HEADER_LENGTH
        if not overhead <= packet_size <= SLOT_SIZE - 64:
            raise ValueError(f"packet_size must be in {overhead}..{SLOT_SIZE - 64}")
        host, port = dest
        address = ipaddress.IPv4Address(_socket.gethostbyname(host))
        s = &self.streams[i]
        memset(s, 0, sizeof(OutStream))
        s.sock = sock_index
        s.fd = self.socks[sock_index].fd
        s.dest.sin_family = _socket.AF_INET
        s.dest.sin_port = htons(<unsigned short>port)
        s.dest.sin_addr.s_addr = int.from_bytes(address.packed, "little")
        s.session = <void*>outbound
        s.ssrc = ssrc
        s.payload_type = <uint8_t>payload_type
        s.codec = CODEC_VP8 if codec == "vp8" else CODEC_AUDIO
        s.clock_rate = clock_rate
        s.interval_ns = <uint64_t>(1e9 / fps)
        s.frame_packets = frame_packets
        s.packet_size = packet_size
        s.key_interval_ns = <uint64_t>(key_interval_s * 1e9)
        s.start_delay_ns = <uint64_t>(start_delay_s * 1e9)
        s.force_key = 1
        s.seq = <uint16_t>(ssrc * 40503u)
        s.picture_id = <uint16_t>(ssrc & 0x7FFF)
        s.tl0picidx = <uint8_t>(ssrc >> 8)
        s.ext_length = len(extension)
        if s.ext_length:
            memcpy(s.ext, <const unsigned char*>extension, s.ext_length)
        self._keep.append(outbound)
        stream_key(&key, 1, sock_index, ssrc)
        self.table.insert(&key, i)
        self.stream_count = i + 1
        return i

    def add_consumer(self, int sock_index, uint32_t ssrc):
        """Count what arrives on a receive socket with this SSRC (one consumer). Its index."""
        cdef int i = self.consumer_count
        cdef TableKey key
        self._check_idle()
        if i >= self.max_consumers:
            raise ValueError("too many consumers")
        if not 0 <= sock_index < self.socket_count or self.socks[sock_index].send_side:
            raise ValueError("sock_index must be a receive socket")
        memset(&self.consumers[i], 0, sizeof(InConsumer))
        self.consumers[i].sock = sock_index
        self.consumers[i].ssrc = ssrc
        stream_key(&key, 0, sock_index, ssrc)
        self.table.insert(&key, i)
        self.consumer_count = i + 1
        return i

    # ---- sending ------------------------------------------------------------------------------

    cdef int send_frame(self, int index, uint64_t frame_ns, uint64_t* failed) noexcept nogil:
        """Build, protect and send one frame of stream `index`; packets the kernel took."""
        cdef OutStream* s = &self.streams[index]
        cdef int k, n, pos, plain, status, sent, length
        cdef unsigned char* p
        cdef uint64_t now
        cdef bint key = 0
        cdef uint32_t timestamp
        if s.codec == CODEC_VP8:
            if s.force_key or (s.key_interval_ns and frame_ns - s.last_key_ns >= s.key_interval_ns):
                key = 1
                s.force_key = 0
                s.last_key_ns = frame_ns
                s.key_frames += 1
            s.picture_id = (s.picture_id + 1) & 0x7FFF
            s.tl0picidx += 1
        timestamp = (<uint32_t>(s.ssrc * 2654435761u)
                     + <uint32_t>(((frame_ns - s.first_frame_ns) // 1000) * s.clock_rate // 1000000))
        plain = s.packet_size - (<SrtpSession>s.session).rtp_trailer
        n = 0
        for k in range(s.frame_packets):
            p = self.tx_buf + k * SLOT_SIZE
            p[0] = 0x90 if s.ext_length else 0x80     # V=2, X when there is an extension block
            p[1] = (s.payload_type & 0x7F) | (0x80 if (s.codec == CODEC_VP8 and k == s.frame_packets - 1) else 0)
            write_u16(p + 2, s.seq)
            write_u32(p + 4, timestamp)
            write_u32(p + 8, s.ssrc)
            pos = RTP_HEADER_LENGTH
            if s.ext_length:
                memcpy(p + pos, s.ext, s.ext_length)
                pos += s.ext_length
            if s.codec == CODEC_VP8:
                p[pos] = 0x80 | (0x10 if k == 0 else 0)        # X, S on the frame's first packet, PID 0
                p[pos + 1] = 0x80 | 0x40 | 0x20                 # I, L, T
                write_u16(p + pos + 2, 0x8000 | s.picture_id)   # M: 15-bit picture id
                p[pos + 4] = s.tl0picidx
                p[pos + 5] = 0x20                               # TID 0, Y
                pos += VP8_DESCRIPTOR_LENGTH
                if k == 0:
                    # frame tag (RFC 6386 9.1): P=0 on key frames, show_frame set
                    p[pos] = 0x10 if key else 0x11
                    p[pos + 1] = 0
                    p[pos + 2] = 0
                    pos += 3
                    if key:
                        p[pos] = 0x9D
                        p[pos + 1] = 0x01
                        p[pos + 2] = 0x2A
                        write_u16(p + pos + 3, 640)
                        write_u16(p + pos + 5, 360)
                        pos += 7
            memcpy(p + pos, self.filler, plain - TAIL_LENGTH - pos)
            now = monotonic_ns()
            write_u32(p + plain - 16, <uint32_t>(now >> 32))
            write_u32(p + plain - 12, <uint32_t>now)
            write_u32(p + plain - 8, <uint32_t>index)
            write_u32(p + plain - 4, TAIL_MAGIC)
            length = plain
            status = (<SrtpSession>s.session).protect_rtp(p, &length, SLOT_SIZE)
            s.seq += 1
            if status != 0:
                failed[0] += 1
                continue
            self.tx_iov[n].iov_base = p
            self.tx_iov[n].iov_len = <size_t>length
            self.tx_msgs[n].msg_hdr.msg_name = &s.dest
            self.tx_msgs[n].msg_hdr.msg_namelen = sizeof(sockaddr_in)
            n += 1
        sent = 0
        while sent < n:
            k = sendmmsg(s.fd, self.tx_msgs + sent, n - sent, MSG_DONTWAIT)
            if k <= 0:
                if k < 0 and errno == EINTR:
                    continue
                break
            sent += k
        s.sent += sent
        s.send_failed += n - sent
        s.frames += 1
        return sent

    # ---- receiving ----------------------------------------------------------------------------

    cdef void on_rtcp(self, int si, unsigned char* data, int length, uint64_t* counters) noexcept nogil:
        """SRTCP from the SFU on a send socket: a PLI or FIR asks that stream for a key frame."""
        cdef int offset = 0, n, k
        cdef RtcpItem item
        cdef RtcpFeedback fb
        cdef RtcpFirEntry firs[MAX_FIR_ENTRIES]
        if (<SrtpSession>self.socks[si].session).unprotect_rtcp(data, &length, SLOT_SIZE) != 0:
            counters[3] += 1
            return
        while True:
            offset = rtcp_next(data, length, offset, &item)
            if offset <= 0:
                return
            if item.packet_type == RTCP_PSFB and item.count == RTCP_PSFB_PLI:
                if rtcp_parse_feedback(data, &item, &fb) >= 0:
                    self.key_frame_requested(si, fb.media_ssrc)
            elif item.packet_type == RTCP_PSFB and item.count == RTCP_PSFB_FIR:
                n = rtcp_parse_fir(data, &item, firs, MAX_FIR_ENTRIES)
                for k in range(n if n > 0 else 0):
                    self.key_frame_requested(si, firs[k].ssrc)
            elif item.packet_type == RTCP_RTPFB and item.count == RTCP_RTPFB_NACK:
                counters[6] += 1

    cdef void key_frame_requested(self, int si, uint32_t ssrc) noexcept nogil:
        cdef TableKey key
        cdef int idx
        stream_key(&key, 1, si, ssrc)
        idx = self.table.lookup(&key)
        if idx >= 0:
            self.streams[idx].force_key = 1
            self.streams[idx].key_requests += 1

    cdef void on_rtp(self, int si, int j, unsigned char* data, int length, int64_t rt_offset,
                     uint64_t* counters, long* samples) noexcept nogil:
        cdef RtpHeader h
        cdef InConsumer* c
        cdef TableKey key
        cdef int idx
        cdef int16_t delta
        cdef int64_t send_ns, arrival, transit, d
        if (<SrtpSession>self.socks[si].session).unprotect_rtp(data, &length, SLOT_SIZE) != 0:
            counters[3] += 1
            return
        if parse_rtp(data, length, &h) < 0:
            counters[4] += 1
            return
        stream_key(&key, 0, si, h.ssrc)
        idx = self.table.lookup(&key)
        if idx < 0:
            counters[5] += 1
            return
        c = &self.consumers[idx]
        if not c.started:
            c.started = 1
            c.first_ext = h.sequence_number
            c.max_ext = h.sequence_number
        else:
            delta = <int16_t>(h.sequence_number - <uint16_t>c.max_ext)
            if delta > 0:
                c.max_ext += <uint32_t>delta
        c.received += 1
        c.bytes += length
        counters[0] += 1
        counters[1] += length
        if h.payload_len < TAIL_LENGTH:
            return
        data = data + h.header_len + h.payload_len - TAIL_LENGTH
        if read_u32(data + 12) != TAIL_MAGIC:
            return
        send_ns = <int64_t>(((<uint64_t>read_u32(data)) << 32) | read_u32(data + 4))
        arrival = kernel_arrival_ns(&self.rx_msgs[j].msg_hdr, rt_offset, <int64_t>monotonic_ns())
        transit = arrival - send_ns
        if c.has_transit:
            d = transit - c.last_transit
            if d < 0:
                d = -d
            c.jitter_ns += (<double>d - c.jitter_ns) / 16.0
        c.last_transit = transit
        c.has_transit = 1
        if samples[0] < self.max_samples:
            self.lat_buf[samples[0]] = transit
            self.lat_owner[samples[0]] = idx
            samples[0] += 1
        else:
            counters[7] += 1

    cdef void drain(self, int si, int64_t rt_offset, uint64_t* counters, long* samples) noexcept nogil:
        cdef int rounds, j, n, length
        cdef unsigned char* data
        for rounds in range(RX_ROUNDS):
            for j in range(RX_BATCH):
                self.rx_msgs[j].msg_hdr.msg_controllen = RX_CONTROL_SPACE
            n = recvmmsg(self.socks[si].fd, self.rx_msgs, RX_BATCH, MSG_DONTWAIT, NULL)
            if n <= 0:
                return
            for j in range(n):
                data = self.rx_buf + j * SLOT_SIZE
                length = self.rx_msgs[j].msg_len
                if self.rx_msgs[j].msg_hdr.msg_flags & MSG_TRUNC or length < RTP_HEADER_LENGTH \
                        or data[0] < 128 or data[0] > 191:
                    counters[2] += 1        # STUN answers to consent checks, DTLS, oversized
                elif is_rtcp(data, length):
                    if self.socks[si].send_side:
                        self.on_rtcp(si, data, length, counters)
                    else:
                        counters[8] += 1    # sender reports for our consumers
                elif self.socks[si].send_side:
                    counters[2] += 1
                else:
                    self.on_rtp(si, j, data, length, rt_offset, counters, samples)
            if n < RX_BATCH:
                return

    # ---- the loop -----------------------------------------------------------------------------

    def run(self, double duration_s, bint send=True):
        """Send due frames (if `send`) and receive for duration_s; this run's counters and samples.

        Returns received (RTP packets matched to a consumer), bytes, other (STUN, DTLS, stray),
        srtp_failures, malformed, unknown_ssrc, nacks, samples_dropped, rtcp, sent, send_failed,
        frames, skipped_frames, seconds, and latencies_ns / latency_consumer (numpy arrays).
        """
        cdef uint64_t counters[9]
        cdef uint64_t start, end, now, wake, sent = 0, failed = 0, frames = 0, skipped = 0, behind
        cdef int i, e, nev, wait_ms, caught_up
        cdef long samples = 0
        cdef int64_t rt_offset
        cdef OutStream* s
        if not 0 < duration_s <= 3600:
            raise ValueError("duration_s must be in (0, 3600]")
        if self.running:
            raise RuntimeError("already running")
        self.running = True
        memset(counters, 0, sizeof(counters))
        rt_offset = realtime_minus_monotonic_ns()
        try:
            with nogil:
                start = monotonic_ns()
                end = start + <uint64_t>(duration_s * 1e9)
                while True:
                    now = monotonic_ns()
                    if now >= end:
                        break
                    wake = end
                    if send:
                        for i in range(self.stream_count):
                            s = &self.streams[i]
                            if s.next_due_ns == 0:
                                s.next_due_ns = now + s.start_delay_ns
                                s.first_frame_ns = s.next_due_ns
                            caught_up = 0
                            while s.next_due_ns <= now and caught_up < MAX_CATCH_UP_FRAMES:
                                sent += self.send_frame(i, s.next_due_ns, &failed)
                                frames += 1
                                s.next_due_ns += s.interval_ns
                                caught_up += 1
                            if s.next_due_ns <= now:
                                behind = now - s.next_due_ns
                                if behind > MAX_LATE_NS:
                                    s.skipped_frames += behind // s.interval_ns + 1
                                    skipped += behind // s.interval_ns + 1
                                    s.next_due_ns += (behind // s.interval_ns + 1) * s.interval_ns
                            if s.next_due_ns < wake:
                                wake = s.next_due_ns
                    now = monotonic_ns()
                    if wake <= now:
                        wait_ms = 0
                    else:
                        wait_ms = <int>((wake - now + 999999) // 1000000)
                        if wait_ms > RX_WAIT_MS:
                            wait_ms = RX_WAIT_MS
                    nev = epoll_wait(self.ep, self.events, RX_EVENTS, wait_ms)
                    if nev < 0:
                        if errno == EINTR:
                            continue
                        break
                    for e in range(nev):
                        self.drain(self.events[e].data.u32, rt_offset, counters, &samples)
                now = monotonic_ns()
        finally:
            self.running = False
        latencies = np.empty(samples, dtype=np.int64)
        owners = np.empty(samples, dtype=np.int32)
        cdef int64_t[::1] lat = latencies
        cdef int32_t[::1] own = owners
        for i in range(samples):
            lat[i] = self.lat_buf[i]
            own[i] = self.lat_owner[i]
        return {
            "received": counters[0], "bytes": counters[1], "other": counters[2],
            "srtp_failures": counters[3], "malformed": counters[4], "unknown_ssrc": counters[5],
            "nacks": counters[6], "samples_dropped": counters[7], "rtcp": counters[8],
            "sent": sent, "send_failed": failed, "frames": frames, "skipped_frames": skipped,
            "seconds": (now - start) / 1e9, "latencies_ns": latencies, "latency_consumer": owners,
        }

    # ---- statistics ---------------------------------------------------------------------------

    def consumer_stats(self):
        """Per consumer: received, bytes, expected (highest - first + 1, 0 before the first), jitter_ns."""
        cdef int i, n = self.consumer_count
        received = np.zeros(n, dtype=np.uint64)
        nbytes = np.zeros(n, dtype=np.uint64)
        expected = np.zeros(n, dtype=np.uint64)
        jitter = np.zeros(n, dtype=np.float64)
        for i in range(n):
            received[i] = self.consumers[i].received
            nbytes[i] = self.consumers[i].bytes
            if self.consumers[i].started:
                expected[i] = <uint64_t>(self.consumers[i].max_ext - self.consumers[i].first_ext) + 1
            jitter[i] = self.consumers[i].jitter_ns
        return {"received": received, "bytes": nbytes, "expected": expected, "jitter_ns": jitter}

    def stream_stats(self):
        """Per stream: sent, send_failed, frames, key_frames, key_requests, skipped_frames."""
        cdef int i, n = self.stream_count
        out = {name: np.zeros(n, dtype=np.uint64) for name in
               ("sent", "send_failed", "frames", "key_frames", "key_requests", "skipped_frames")}
        for i in range(n):
            out["sent"][i] = self.streams[i].sent
            out["send_failed"][i] = self.streams[i].send_failed
            out["frames"][i] = self.streams[i].frames
            out["key_frames"][i] = self.streams[i].key_frames
            out["key_requests"][i] = self.streams[i].key_requests
            out["skipped_frames"][i] = self.streams[i].skipped_frames
        return out
