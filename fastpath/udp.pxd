# cython: language_level=3
"""The socket stage: batched UDP receive (recvmmsg) and send (sendmmsg, UDP GSO) on one fd."""

from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy
from posix.uio cimport iovec

from fastpath.clock cimport kernel_arrival_ns
from fastpath.netdefs cimport (
    MSG_DONTWAIT,
    MSG_TRUNC,
    SOCK_DGRAM,
    cmsghdr,
    mmsghdr,
    msghdr,
    sockaddr,
    sockaddr_storage,
    socklen_t,
)


cdef enum:
    UDP_DEFAULT_RX_SLOTS = 64
    UDP_DEFAULT_TX_SLOTS = 256
    UDP_DEFAULT_SLOT_SIZE = 2048


cdef class UdpBatchSocket:
    cdef object sock                # the Python socket, kept open as long as we use its fd
    cdef readonly int fd
    cdef readonly int family
    cdef readonly bint gso          # UDP GSO is in use (requested and supported)
    cdef readonly int slot_size     # capacity of one rx or tx slot
    cdef readonly int rx_slots
    cdef readonly int tx_slots

    cdef unsigned char* rx_buf
    cdef mmsghdr* rx_msgs
    cdef iovec* rx_iov
    cdef sockaddr_storage* rx_addrs
    cdef int rx_count               # datagrams held from the last recv_batch()
    cdef unsigned char* rx_control  # one SCM_TIMESTAMPNS message per slot, with rx_timestamps
    cdef readonly bint rx_timestamps
    cdef int64_t rx_rt_offset       # CLOCK_REALTIME - CLOCK_MONOTONIC, taken at each recv_batch()

    cdef unsigned char* tx_buf      # tx_slots * slot_size, one arena
    cdef mmsghdr* tx_msgs           # one message per slot, name and iov preset
    cdef iovec* tx_iov
    cdef sockaddr_storage* tx_addrs
    cdef int tx_count               # committed slots waiting for flush()

    # GSO flush scratch: slots grouped by destination, one message per run
    cdef mmsghdr* gso_msgs
    cdef iovec* gso_iov
    cdef unsigned char* gso_control
    cdef int* gso_msg_packets
    cdef int* gso_order             # slot of each gso_iov entry
    cdef int* group_table           # open addressing: destination hash -> group
    cdef int group_mask
    cdef int* group_first
    cdef int* group_last
    cdef int* slot_next
    cdef int* bucket_scratch        # _flush_grouped's size buckets of one destination, 4 x tx_slots

    cdef readonly uint64_t rx_packets
    cdef readonly uint64_t rx_bytes
    cdef readonly uint64_t rx_batches
    cdef readonly uint64_t rx_truncated
    cdef readonly uint64_t tx_packets
    cdef readonly uint64_t tx_bytes
    cdef readonly uint64_t tx_batches
    cdef readonly uint64_t tx_messages  # datagrams or GSO messages the kernel took
    cdef readonly uint64_t tx_dropped_eagain
    cdef readonly uint64_t tx_errors
    cdef readonly uint64_t tx_gso_fallbacks

    cdef int recv_batch(self) noexcept nogil
    cdef int flush(self) noexcept nogil
    cdef int _flush_grouped(self, int count) noexcept nogil
    cdef int _send_messages(self, mmsghdr* msgs, int count, const int* msg_packets,
                            int* gso_failed_at) noexcept nogil

    cdef inline unsigned char* rx_data(self, int i) noexcept nogil:
        return self.rx_buf + <size_t>i * self.slot_size

    cdef inline int rx_len(self, int i) noexcept nogil:
        return <int>self.rx_msgs[i].msg_len

    cdef inline bint rx_was_truncated(self, int i) noexcept nogil:
        """The datagram was larger than a slot: drop it."""
        return (self.rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0

    cdef inline uint64_t rx_arrival_ns(self, int i, uint64_t now) noexcept nogil:
        """When datagram i reached the socket (CLOCK_MONOTONIC), from the kernel's stamp; `now` without
        one, or for a stamp a clock step put in the future or more than a second back."""
        cdef int64_t stamp
        if not self.rx_timestamps:
            return now
        stamp = kernel_arrival_ns(&self.rx_msgs[i].msg_hdr, self.rx_rt_offset, <int64_t>now)
        if stamp > <int64_t>now or <int64_t>now - stamp > 1000000000:
            return now
        return <uint64_t>stamp

    cdef inline const sockaddr* rx_addr(self, int i) noexcept nogil:
        return <const sockaddr*>&self.rx_addrs[i]

    cdef inline socklen_t rx_addrlen(self, int i) noexcept nogil:
        return self.rx_msgs[i].msg_hdr.msg_namelen

    cdef inline unsigned char* tx_slot(self) noexcept nogil:
        """The next free send slot (slot_size bytes); valid until tx_commit() or flush()."""
        if self.tx_count == self.tx_slots:
            self.flush()
        return self.tx_buf + <size_t>self.tx_count * self.slot_size

    cdef inline void tx_commit(self, int length, const sockaddr* addr,
                               socklen_t addrlen) noexcept nogil:
        """Queue the slot tx_slot() returned, length bytes to addr; not committing abandons it."""
        cdef int i = self.tx_count
        if length <= 0 or length > self.slot_size or addrlen > sizeof(sockaddr_storage):
            self.tx_errors += 1
            return
        memcpy(&self.tx_addrs[i], addr, addrlen)
        self.tx_msgs[i].msg_hdr.msg_namelen = addrlen
        self.tx_iov[i].iov_len = <size_t>length
        self.tx_count = i + 1


cdef int sockaddr_from_tuple(object addr, int family, sockaddr_storage* out,
                             socklen_t* outlen) except -1
cdef object sockaddr_to_tuple(const sockaddr* sa)
