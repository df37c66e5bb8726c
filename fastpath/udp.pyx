# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The socket stage: drain a UDP socket with recvmmsg, send queued slots with sendmmsg.

Datagrams are received into and sent from preallocated slots, so the router
reads a packet where the kernel wrote it and rewrites each consumer's copy
straight into the slot the kernel will read. With UDP GSO (UDP_SEGMENT,
Linux 4.18) the slots queued for one destination leave as one message.
"""

import os
import socket

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.errno cimport EAGAIN, EINTR, EIO, ENOBUFS, errno
from libc.stdint cimport uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcmp, memcpy, memset

from fastpath.clock cimport realtime_minus_monotonic_ns
from fastpath.netdefs cimport (
    AF_INET,
    AF_INET6,
    CMSG_DATA,
    CMSG_LEN,
    CMSG_SPACE,
    SO_TIMESTAMPNS,
    SOL_SOCKET,
    in6_addr,
    recvmmsg,
    sendmmsg,
    setsockopt,
    sa_family_t,
    sockaddr,
    sockaddr_in,
    sockaddr_storage,
    socklen_t,
)


cdef extern from "<errno.h>" nogil:
    int EWOULDBLOCK

cdef extern from "<netinet/in.h>" nogil:
    # netdefs' sockaddr_in6 leaves out the flow label and scope, which the tuple form carries
    ctypedef struct sockaddr_in6_scoped "struct sockaddr_in6":
        sa_family_t sin6_family
        uint16_t sin6_port
        uint32_t sin6_flowinfo
        in6_addr sin6_addr
        uint32_t sin6_scope_id
    int INET6_ADDRSTRLEN

cdef extern from "<netinet/udp.h>" nogil:
    int SOL_UDP
    int UDP_SEGMENT

cdef extern from "<arpa/inet.h>" nogil:
    int inet_pton(int family, const char* text, void* out)
    const char* inet_ntop(int family, const void* addr, char* text, socklen_t size)
    uint16_t htons(uint16_t)
    uint16_t ntohs(uint16_t)
    uint32_t htonl(uint32_t)
    uint32_t ntohl(uint32_t)


cdef enum:
    # the kernel's UDP_MAX_SEGMENTS since 4.18 (later kernels allow more)
    GSO_MAX_SEGMENTS = 64
    # largest IPv4 UDP payload; also binds v4-mapped destinations of an IPv6 socket
    GSO_MAX_BYTES = 65507

cdef size_t GSO_CMSG_SPACE = CMSG_SPACE(sizeof(uint16_t))
# one SCM_TIMESTAMPNS message (a struct timespec) per received datagram
cdef size_t RX_STAMP_SPACE = 64


cdef inline uint32_t _destination_hash(const sockaddr_storage* ss) noexcept nogil:
    cdef const sockaddr_in* sin
    cdef const sockaddr_in6_scoped* sin6
    cdef uint32_t h
    cdef uint32_t words[4]
    if ss.ss_family == AF_INET:
        sin = <const sockaddr_in*>ss
        h = sin.sin_addr.s_addr ^ (<uint32_t>sin.sin_port << 16)
    else:
        sin6 = <const sockaddr_in6_scoped*>ss
        memcpy(words, &sin6.sin6_addr, 16)
        h = words[0] ^ words[1] ^ words[2] ^ words[3] ^ sin6.sin6_port ^ sin6.sin6_scope_id
    # murmur3's finalizer: spread port and low address bits over the table index
    h ^= h >> 16
    h *= 0x85EBCA6Bu
    h ^= h >> 13
    h *= 0xC2B2AE35u
    h ^= h >> 16
    return h


cdef inline bint _same_destination(const sockaddr_storage* a,
                                   const sockaddr_storage* b) noexcept nogil:
    cdef const sockaddr_in* a4
    cdef const sockaddr_in* b4
    cdef const sockaddr_in6_scoped* a6
    cdef const sockaddr_in6_scoped* b6
    if a.ss_family != b.ss_family:
        return False
    if a.ss_family == AF_INET:
        a4 = <const sockaddr_in*>a
        b4 = <const sockaddr_in*>b
        return a4.sin_port == b4.sin_port and a4.sin_addr.s_addr == b4.sin_addr.s_addr
    a6 = <const sockaddr_in6_scoped*>a
    b6 = <const sockaddr_in6_scoped*>b
    return (a6.sin6_port == b6.sin6_port and a6.sin6_scope_id == b6.sin6_scope_id
            and a6.sin6_flowinfo == b6.sin6_flowinfo
            and memcmp(&a6.sin6_addr, &b6.sin6_addr, 16) == 0)


cdef enum:
    # a destination's packet joins one of its last this many size buckets, or opens a new one
    MAX_BUCKET_SEARCH = 8


cdef inline uint32_t _stream_key(const unsigned char* packet, size_t length) noexcept nogil:
    """The SSRC of an RTP packet (readable under SRTP, RFC 3711 section 3.1); 0 for anything
    else (RTCP, STUN, DTLS), which so keeps its order among itself."""
    if length < 12 or (packet[0] >> 6) != 2 or 192 <= packet[1] <= 223:
        return 0
    return (<uint32_t>packet[8] << 24) | (<uint32_t>packet[9] << 16) | (<uint32_t>packet[10] << 8) | packet[11]


cdef void* _alloc(size_t count, size_t size) except NULL:
    cdef void* p = calloc(count, size)
    if p == NULL:
        raise MemoryError()
    return p


cdef class UdpBatchSocket:
    """Batched I/O on a non-blocking UDP socket made by Python's socket module."""

    def __cinit__(self, sock, int rx_slots=UDP_DEFAULT_RX_SLOTS, int tx_slots=UDP_DEFAULT_TX_SLOTS,
                  int slot_size=UDP_DEFAULT_SLOT_SIZE, bint gso=True):
        cdef int i, table_size, zero = 0
        cdef cmsghdr* cmsg
        if sock.type != socket.SOCK_DGRAM:
            raise ValueError("socket type must be SOCK_DGRAM")
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            raise ValueError("socket family must be AF_INET or AF_INET6")
        if rx_slots <= 0 or tx_slots <= 0 or not 0 < slot_size <= 65535:
            raise ValueError("slot counts must be positive and slot_size in 1..65535")
        self.sock = sock
        self.fd = sock.fileno()
        self.family = sock.family
        self.rx_slots = rx_slots
        self.tx_slots = tx_slots
        self.slot_size = slot_size

        self.rx_buf = <unsigned char*>_alloc(rx_slots, slot_size)
        self.rx_msgs = <mmsghdr*>_alloc(rx_slots, sizeof(mmsghdr))
        self.rx_iov = <iovec*>_alloc(rx_slots, sizeof(iovec))
        self.rx_addrs = <sockaddr_storage*>_alloc(rx_slots, sizeof(sockaddr_storage))
        for i in range(rx_slots):
            self.rx_iov[i].iov_base = self.rx_buf + <size_t>i * slot_size
            self.rx_iov[i].iov_len = slot_size
            self.rx_msgs[i].msg_hdr.msg_name = &self.rx_addrs[i]
            self.rx_msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage)
            self.rx_msgs[i].msg_hdr.msg_iov = &self.rx_iov[i]
            self.rx_msgs[i].msg_hdr.msg_iovlen = 1

        self.tx_buf = <unsigned char*>_alloc(tx_slots, slot_size)
        self.tx_msgs = <mmsghdr*>_alloc(tx_slots, sizeof(mmsghdr))
        self.tx_iov = <iovec*>_alloc(tx_slots, sizeof(iovec))
        self.tx_addrs = <sockaddr_storage*>_alloc(tx_slots, sizeof(sockaddr_storage))
        for i in range(tx_slots):
            self.tx_iov[i].iov_base = self.tx_buf + <size_t>i * slot_size
            self.tx_msgs[i].msg_hdr.msg_name = &self.tx_addrs[i]
            self.tx_msgs[i].msg_hdr.msg_iov = &self.tx_iov[i]
            self.tx_msgs[i].msg_hdr.msg_iovlen = 1

        # a kernel without UDP GSO rejects the option
        self.gso = gso and setsockopt(self.fd, SOL_UDP, UDP_SEGMENT, &zero, sizeof(zero)) == 0
        if not self.gso:
            return
        self.gso_msgs = <mmsghdr*>_alloc(tx_slots, sizeof(mmsghdr))
        self.gso_iov = <iovec*>_alloc(tx_slots, sizeof(iovec))
        self.gso_msg_packets = <int*>_alloc(tx_slots, sizeof(int))
        self.gso_order = <int*>_alloc(tx_slots, sizeof(int))
        self.gso_control = <unsigned char*>_alloc(tx_slots, GSO_CMSG_SPACE)
        for i in range(tx_slots):
            cmsg = <cmsghdr*>(self.gso_control + <size_t>i * GSO_CMSG_SPACE)
            cmsg.cmsg_level = SOL_UDP
            cmsg.cmsg_type = UDP_SEGMENT
            cmsg.cmsg_len = CMSG_LEN(sizeof(uint16_t))
        table_size = 1
        while table_size < 2 * tx_slots:
            table_size <<= 1
        self.group_mask = table_size - 1
        self.group_table = <int*>_alloc(table_size, sizeof(int))
        self.group_first = <int*>_alloc(tx_slots, sizeof(int))
        self.group_last = <int*>_alloc(tx_slots, sizeof(int))
        self.slot_next = <int*>_alloc(tx_slots, sizeof(int))
        self.bucket_scratch = <int*>_alloc(4 * <size_t>tx_slots, sizeof(int))

    def enable_rx_timestamps(self):
        """Have the kernel stamp each datagram when it reaches the socket (SO_TIMESTAMPNS).

        A batch's datagrams arrived over the time the process was busy elsewhere; what reads them
        all at once cannot tell those times apart, and transport-cc feedback built on the read
        time would show a busy server as a queue on the path. Returns whether stamps are on."""
        cdef int i, one = 1
        if self.rx_timestamps:
            return True
        if setsockopt(self.fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) != 0:
            return False
        self.rx_control = <unsigned char*>_alloc(self.rx_slots, RX_STAMP_SPACE)
        for i in range(self.rx_slots):
            self.rx_msgs[i].msg_hdr.msg_control = self.rx_control + <size_t>i * RX_STAMP_SPACE
            self.rx_msgs[i].msg_hdr.msg_controllen = RX_STAMP_SPACE
        self.rx_timestamps = True
        return True

    def __dealloc__(self):
        free(self.rx_buf)
        free(self.rx_control)
        free(self.rx_msgs)
        free(self.rx_iov)
        free(self.rx_addrs)
        free(self.tx_buf)
        free(self.tx_msgs)
        free(self.tx_iov)
        free(self.tx_addrs)
        free(self.gso_msgs)
        free(self.gso_iov)
        free(self.gso_msg_packets)
        free(self.gso_order)
        free(self.gso_control)
        free(self.group_table)
        free(self.group_first)
        free(self.group_last)
        free(self.bucket_scratch)
        free(self.slot_next)

    cdef int recv_batch(self) noexcept nogil:
        """Receive up to rx_slots datagrams; returns the count, 0 if none is waiting, or -errno."""
        cdef int i, n
        cdef unsigned int length
        # the kernel shrank the name and control lengths of the slots it filled last time
        for i in range(self.rx_count):
            self.rx_msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage)
            if self.rx_timestamps:
                self.rx_msgs[i].msg_hdr.msg_controllen = RX_STAMP_SPACE
        self.rx_count = 0
        while True:
            n = recvmmsg(self.fd, self.rx_msgs, self.rx_slots, MSG_DONTWAIT, NULL)
            if n >= 0:
                break
            if errno == EINTR:
                continue
            if errno == EAGAIN or errno == EWOULDBLOCK:
                return 0
            return -errno
        self.rx_count = n
        self.rx_batches += 1
        if self.rx_timestamps:
            self.rx_rt_offset = realtime_minus_monotonic_ns()
        self.rx_packets += n
        for i in range(n):
            length = self.rx_msgs[i].msg_len
            self.rx_bytes += length
            if self.rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC:
                self.rx_truncated += 1
        return n

    cdef int flush(self) noexcept nogil:
        """Send every committed slot; returns the packets the kernel took."""
        cdef int count = self.tx_count
        if count == 0:
            return 0
        self.tx_count = 0
        if self.gso:
            return self._flush_grouped(count)
        return self._send_messages(self.tx_msgs, count, NULL, NULL)

    cdef int _send_messages(self, mmsghdr* msgs, int count, const int* msg_packets,
                            int* gso_failed_at) noexcept nogil:
        """sendmmsg until every message is sent, dropped (EAGAIN, ENOBUFS) or skipped (errors).

        msg_packets gives the packets in each message (NULL: one each). With
        gso_failed_at, a GSO message the kernel refuses stops the loop there,
        so the caller can send its packets one by one.
        """
        cdef int i = 0, k, n, packets, sent = 0, failed_once = -1
        while i < count:
            n = sendmmsg(self.fd, msgs + i, count - i, MSG_DONTWAIT)
            self.tx_batches += 1
            if n > 0:
                self.tx_messages += n
                for k in range(i, i + n):
                    packets = msg_packets[k] if msg_packets != NULL else 1
                    sent += packets
                    self.tx_bytes += msgs[k].msg_len
                i += n
                continue
            if n < 0 and errno == EINTR:
                continue
            if n == 0 or errno == EAGAIN or errno == EWOULDBLOCK or errno == ENOBUFS:
                # the send buffer is full: what is left would be late anyway
                for k in range(i, count):
                    self.tx_dropped_eagain += msg_packets[k] if msg_packets != NULL else 1
                break
            if failed_once != i:
                # an ICMP error for an earlier datagram (ECONNREFUSED, EHOSTUNREACH)
                # is reported, once, by the next send: it is not this message's fault
                failed_once = i
                continue
            if gso_failed_at != NULL and msg_packets[i] > 1:
                gso_failed_at[0] = i
                break
            self.tx_errors += msg_packets[i] if msg_packets != NULL else 1
            i += 1
        self.tx_packets += sent
        return sent

    cdef int _flush_grouped(self, int count) noexcept nogil:
        """Send the slots for each destination as GSO messages of equal-sized segments.

        Slots are gathered by iovec, so nothing is copied; packets of one stream to one
        destination keep their order, packets to different destinations or streams may not.
        """
        cdef int s, g, h, groups = 0, messages = 0, iovs = 0, first, n, failed = -1, j, sent
        cdef int b, k, t, buckets
        cdef int* bucket_size
        cdef int* bucket_first
        cdef int* bucket_last
        cdef int* bucket_next
        cdef uint32_t key
        cdef size_t length, segment, total
        cdef mmsghdr* m
        cdef int err
        memset(self.group_table, 0xFF, (self.group_mask + 1) * sizeof(int))
        for s in range(count):
            self.slot_next[s] = -1
            h = _destination_hash(&self.tx_addrs[s]) & self.group_mask
            while True:
                g = self.group_table[h]
                if g < 0:
                    self.group_table[h] = groups
                    self.group_first[groups] = s
                    self.group_last[groups] = s
                    groups += 1
                    break
                if _same_destination(&self.tx_addrs[self.group_first[g]], &self.tx_addrs[s]):
                    self.slot_next[self.group_last[g]] = s
                    self.group_last[g] = s
                    break
                h = (h + 1) & self.group_mask

        # Per destination, packets go into buckets of one size (in the order buckets open) and
        # each bucket leaves as GSO messages (UDP_SEGMENT: every segment but the last of one
        # size). Packets of different streams may pass each other this way, since RTP orders
        # only within an SSRC; a packet joins an older bucket only if no packet of its own
        # stream already sits in a later one. A room's consumer gets audio and video of many
        # senders in one flush, sizes interleaved: in arrival order that was one message per
        # size change, bucketed it is one or two per size.
        bucket_size = self.bucket_scratch
        bucket_first = self.bucket_scratch + self.tx_slots
        bucket_last = self.bucket_scratch + 2 * self.tx_slots
        bucket_next = self.bucket_scratch + 3 * self.tx_slots
        for g in range(groups):
            buckets = 0
            s = self.group_first[g]
            while s >= 0:
                length = self.tx_iov[s].iov_len
                b = -1
                k = buckets - 1
                while k >= 0 and k >= buckets - MAX_BUCKET_SEARCH:
                    if <size_t>bucket_size[k] == length:
                        b = k
                        break
                    k -= 1
                if b >= 0 and b != buckets - 1:
                    key = _stream_key(<const unsigned char*>self.tx_iov[s].iov_base, length)
                    k = b + 1
                    while k < buckets and b >= 0:
                        t = bucket_first[k]
                        while t >= 0:
                            if _stream_key(<const unsigned char*>self.tx_iov[t].iov_base,
                                           self.tx_iov[t].iov_len) == key:
                                b = -1
                                break
                            t = bucket_next[t]
                        k += 1
                if b < 0:
                    b = buckets
                    buckets += 1
                    bucket_size[b] = <int>length
                    bucket_first[b] = s
                else:
                    bucket_next[bucket_last[b]] = s
                bucket_last[b] = s
                bucket_next[s] = -1
                s = self.slot_next[s]

            for b in range(buckets):
                s = bucket_first[b]
                segment = <size_t>bucket_size[b]
                while s >= 0:
                    first = iovs
                    total = 0
                    n = 0
                    while s >= 0 and n < GSO_MAX_SEGMENTS and total + segment <= GSO_MAX_BYTES:
                        self.gso_iov[iovs] = self.tx_iov[s]
                        self.gso_order[iovs] = s
                        iovs += 1
                        n += 1
                        total += segment
                        s = bucket_next[s]
                    if s < 0 and b + 1 < buckets:
                        # the next bucket's first packet, if smaller, rides as the short last
                        # segment: it leaves right after this bucket either way
                        t = bucket_first[b + 1]
                        length = self.tx_iov[t].iov_len
                        if length < segment and n < GSO_MAX_SEGMENTS and total + length <= GSO_MAX_BYTES:
                            self.gso_iov[iovs] = self.tx_iov[t]
                            self.gso_order[iovs] = t
                            iovs += 1
                            n += 1
                            bucket_first[b + 1] = bucket_next[t]
                    m = &self.gso_msgs[messages]
                    m.msg_hdr.msg_name = &self.tx_addrs[self.gso_order[first]]
                    m.msg_hdr.msg_namelen = self.tx_msgs[self.gso_order[first]].msg_hdr.msg_namelen
                    m.msg_hdr.msg_iov = &self.gso_iov[first]
                    m.msg_hdr.msg_iovlen = n
                    m.msg_hdr.msg_flags = 0
                    if n > 1:
                        m.msg_hdr.msg_control = self.gso_control + <size_t>messages * GSO_CMSG_SPACE
                        m.msg_hdr.msg_controllen = GSO_CMSG_SPACE
                        (<uint16_t*>CMSG_DATA(<cmsghdr*>m.msg_hdr.msg_control))[0] = <uint16_t>segment
                    else:
                        m.msg_hdr.msg_control = NULL
                        m.msg_hdr.msg_controllen = 0
                    self.gso_msg_packets[messages] = n
                    messages += 1

        sent = self._send_messages(self.gso_msgs, messages, self.gso_msg_packets, &failed)
        if failed < 0:
            return sent
        # the route cannot take this GSO message (EINVAL: segment above the path MTU;
        # EIO: no GSO through, e.g., IPsec): send what is left one datagram each
        err = errno
        self.tx_gso_fallbacks += 1
        if err == EIO:
            self.gso = False
        first = self.gso_msgs[failed].msg_hdr.msg_iov - self.gso_iov
        n = 0
        for j in range(first, iovs):
            self.gso_msgs[n] = self.tx_msgs[self.gso_order[j]]
            n += 1
        return sent + self._send_messages(self.gso_msgs, n, NULL, NULL)

    # Python wrappers, for tests and control

    def fileno(self):
        return self.fd

    def close(self):
        """Close the socket; later sends and receives fail with EBADF."""
        self.fd = -1
        self.tx_count = 0
        self.sock.close()

    def recv_batch_py(self):
        """Receive one batch as [(data, address)], leaving out truncated datagrams."""
        cdef int i, n
        with nogil:
            n = self.recv_batch()
        if n < 0:
            raise OSError(-n, os.strerror(-n))
        return [
            (PyBytes_FromStringAndSize(<char*>self.rx_data(i), self.rx_len(i)),
             sockaddr_to_tuple(self.rx_addr(i)))
            for i in range(n) if not self.rx_was_truncated(i)
        ]

    def send_py(self, const unsigned char[:] data, addr):
        """Queue one datagram to addr; flush_py() sends it."""
        cdef sockaddr_storage ss
        cdef socklen_t sslen
        cdef unsigned char* slot
        cdef int length = data.shape[0]
        if not 0 < length <= self.slot_size:
            raise ValueError("datagram length must be in 1..slot_size")
        sockaddr_from_tuple(addr, self.family, &ss, &sslen)
        with nogil:
            slot = self.tx_slot()
            memcpy(slot, &data[0], length)
            self.tx_commit(length, <sockaddr*>&ss, sslen)

    def flush_py(self):
        cdef int n
        with nogil:
            n = self.flush()
        return n

    def counters(self):
        return {
            "rx_packets": self.rx_packets,
            "rx_bytes": self.rx_bytes,
            "rx_batches": self.rx_batches,
            "rx_truncated": self.rx_truncated,
            "tx_packets": self.tx_packets,
            "tx_bytes": self.tx_bytes,
            "tx_batches": self.tx_batches,
            "tx_messages": self.tx_messages,
            "tx_dropped_eagain": self.tx_dropped_eagain,
            "tx_errors": self.tx_errors,
            "tx_gso_fallbacks": self.tx_gso_fallbacks,
        }


cdef int sockaddr_from_tuple(object addr, int family, sockaddr_storage* out,
                             socklen_t* outlen) except -1:
    """Fill out from a numeric (host, port[, flowinfo, scope_id]) tuple, as socket takes it.

    On an AF_INET6 socket an IPv4 host becomes its v4-mapped address.
    """
    cdef sockaddr_in* sin = <sockaddr_in*>out
    cdef sockaddr_in6_scoped* sin6 = <sockaddr_in6_scoped*>out
    cdef uint32_t v4
    host, port = addr[0], addr[1]
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError("address port must be an int in 0..65535")
    if not isinstance(host, str):
        raise ValueError("address host must be a str")
    memset(out, 0, sizeof(sockaddr_storage))
    if family == AF_INET:
        sin.sin_family = AF_INET
        sin.sin_port = htons(port)
        if inet_pton(AF_INET, host.encode("ascii"), &sin.sin_addr) != 1:
            raise ValueError(f"address host {host!r} is not a numeric IPv4 address")
        outlen[0] = sizeof(sockaddr_in)
        return 0
    if family != AF_INET6:
        raise ValueError("address family must be AF_INET or AF_INET6")
    sin6.sin6_family = AF_INET6
    sin6.sin6_port = htons(port)
    host, _, scope = host.partition("%")
    if scope:
        sin6.sin6_scope_id = int(scope) if scope.isdigit() else socket.if_nametoindex(scope)
    if inet_pton(AF_INET6, host.encode("ascii"), &sin6.sin6_addr) != 1:
        if inet_pton(AF_INET, host.encode("ascii"), &v4) != 1:
            raise ValueError(f"address host {host!r} is not a numeric IP address")
        sin6.sin6_addr.s6_addr[10] = 0xFF
        sin6.sin6_addr.s6_addr[11] = 0xFF
        memcpy(&sin6.sin6_addr.s6_addr[12], &v4, 4)
    if len(addr) > 2:
        sin6.sin6_flowinfo = htonl(addr[2])
    if len(addr) > 3:
        sin6.sin6_scope_id = addr[3]
    outlen[0] = sizeof(sockaddr_in6_scoped)
    return 0


cdef object sockaddr_to_tuple(const sockaddr* sa):
    """The (host, port) or (host, port, flowinfo, scope_id) tuple Python's socket would give."""
    cdef char text[64]
    cdef const sockaddr_in* sin
    cdef const sockaddr_in6_scoped* sin6
    if sa.sa_family == AF_INET:
        sin = <const sockaddr_in*>sa
        inet_ntop(AF_INET, &sin.sin_addr, text, sizeof(text))
        return (text.decode("ascii"), ntohs(sin.sin_port))
    if sa.sa_family == AF_INET6:
        sin6 = <const sockaddr_in6_scoped*>sa
        inet_ntop(AF_INET6, &sin6.sin6_addr, text, sizeof(text))
        return (text.decode("ascii"), ntohs(sin6.sin6_port), ntohl(sin6.sin6_flowinfo),
                sin6.sin6_scope_id)
    raise ValueError(f"address family {sa.sa_family} is not IPv4 or IPv6")


def bench_flush(UdpBatchSocket sock, addrs, long long n, sizes=(1200,), int burst=1):
    """Queue and flush n packets at C speed; returns the packets the kernel took.

    Packet k has length sizes[k % len(sizes)] and goes to addrs[(k // burst) % len(addrs)].
    """
    cdef int na = len(addrs), ns = len(sizes), i
    cdef long long k
    cdef uint64_t before = sock.tx_packets
    cdef unsigned char* slot
    cdef sockaddr_storage* dest = <sockaddr_storage*>malloc(na * sizeof(sockaddr_storage))
    cdef socklen_t* destlen = <socklen_t*>malloc(na * sizeof(socklen_t))
    cdef int* length = <int*>malloc(ns * sizeof(int))
    try:
        if dest == NULL or destlen == NULL or length == NULL:
            raise MemoryError()
        for i in range(na):
            sockaddr_from_tuple(addrs[i], sock.family, &dest[i], &destlen[i])
        for i in range(ns):
            length[i] = sizes[i]
            if not 4 <= length[i] <= sock.slot_size:
                raise ValueError("sizes must be in 4..slot_size")
        with nogil:
            for k in range(n):
                slot = sock.tx_slot()
                memcpy(slot, &k, 4)
                i = <int>((k // burst) % na)
                sock.tx_commit(length[k % ns], <sockaddr*>&dest[i], destlen[i])
            sock.flush()
    finally:
        free(dest)
        free(destlen)
        free(length)
    return sock.tx_packets - before
