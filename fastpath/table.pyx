# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""An open-addressing hash table from fixed-size keys to small ints.

The demux stage maps remote address tuples to transports and the route stage
maps SSRCs to streams with it; both lookups happen once per received packet,
so they must not touch Python objects. Keys are three integers (an IPv6
address and a port fit; an SSRC uses one field).
"""

from libc.stdint cimport int32_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcmp

cdef enum:
    INITIAL_CAPACITY = 64


cdef inline uint64_t _mix(uint64_t x) noexcept nogil:
    # splitmix64 finalizer: spreads nearby keys (consecutive ports, SSRCs) apart
    x ^= x >> 30
    x *= <uint64_t>0xbf58476d1ce4e5b9
    x ^= x >> 27
    x *= <uint64_t>0x94d049bb133111eb
    x ^= x >> 31
    return x


cdef inline uint32_t _hash(const TableKey* key) noexcept nogil:
    return <uint32_t>_mix(key.a ^ _mix(key.b ^ _mix(<uint64_t>key.c)))


cdef inline bint _same(const TableKey* x, const TableKey* y) noexcept nogil:
    return x.a == y.a and x.b == y.b and x.c == y.c


cdef class KeyTable:
    """Map a `TableKey` to a non-negative int32; lookup returns -1 when absent."""

    def __cinit__(self):
        self.capacity = INITIAL_CAPACITY
        self.slots = <TableSlot*>calloc(self.capacity, sizeof(TableSlot))
        if self.slots == NULL:
            raise MemoryError()
        self.used = 0
        self.tombstones = 0

    def __dealloc__(self):
        free(self.slots)

    cdef int32_t lookup(self, const TableKey* key) noexcept nogil:
        cdef uint32_t mask = self.capacity - 1
        cdef uint32_t i = _hash(key) & mask
        cdef TableSlot* slot
        while True:
            slot = &self.slots[i]
            if slot.state == 0:
                return -1
            if slot.state == 1 and _same(&slot.key, key):
                return slot.value
            i = (i + 1) & mask

    cdef int insert(self, const TableKey* key, int32_t value) except -1:
        cdef uint32_t mask, i
        cdef TableSlot* slot
        cdef TableSlot* reuse = NULL
        if value < 0:
            raise ValueError("table values must be non-negative")
        if (self.used + self.tombstones + 1) * 4 >= self.capacity * 3:
            self._grow(self.capacity * 2 if self.used * 2 >= self.capacity else self.capacity)
        mask = self.capacity - 1
        i = _hash(key) & mask
        while True:
            slot = &self.slots[i]
            if slot.state == 0:
                break
            if slot.state == 1 and _same(&slot.key, key):
                slot.value = value
                return 0
            if slot.state == 2 and reuse == NULL:
                reuse = slot
            i = (i + 1) & mask
        if reuse != NULL:
            slot = reuse
            self.tombstones -= 1
        slot.key = key[0]
        slot.value = value
        slot.state = 1
        self.used += 1
        return 0

    cdef int remove(self, const TableKey* key) noexcept:
        cdef uint32_t mask = self.capacity - 1
        cdef uint32_t i = _hash(key) & mask
        cdef TableSlot* slot
        while True:
            slot = &self.slots[i]
            if slot.state == 0:
                return 0
            if slot.state == 1 and _same(&slot.key, key):
                slot.state = 2
                self.used -= 1
                self.tombstones += 1
                return 1
            i = (i + 1) & mask

    cdef int _grow(self, uint32_t new_capacity) except -1:
        cdef TableSlot* old = self.slots
        cdef uint32_t old_capacity = self.capacity
        cdef uint32_t k, i, mask
        cdef TableSlot* fresh = <TableSlot*>calloc(new_capacity, sizeof(TableSlot))
        if fresh == NULL:
            raise MemoryError()
        mask = new_capacity - 1
        for k in range(old_capacity):
            if old[k].state != 1:
                continue
            i = _hash(&old[k].key) & mask
            while fresh[i].state != 0:
                i = (i + 1) & mask
            fresh[i] = old[k]
        self.slots = fresh
        self.capacity = new_capacity
        self.tombstones = 0
        free(old)
        return 0

    def __len__(self):
        return self.used

    def put(self, uint64_t a, uint64_t b, uint32_t c, int32_t value):
        """Insert or replace a key (control path)."""
        cdef TableKey key
        key.a = a
        key.b = b
        key.c = c
        self.insert(&key, value)

    def get(self, uint64_t a, uint64_t b, uint32_t c) -> int:
        """Return the value for a key, or -1."""
        cdef TableKey key
        key.a = a
        key.b = b
        key.c = c
        return self.lookup(&key)

    def delete(self, uint64_t a, uint64_t b, uint32_t c) -> bool:
        """Remove a key; True when it was present."""
        cdef TableKey key
        key.a = a
        key.b = b
        key.c = c
        return self.remove(&key) == 1
