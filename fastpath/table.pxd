# cython: language_level=3
"""An open-addressing hash table from fixed-size keys to small ints, for C-speed lookups."""

from libc.stdint cimport int32_t, uint32_t, uint64_t


cdef struct TableKey:
    uint64_t a
    uint64_t b
    uint32_t c


cdef struct TableSlot:
    TableKey key
    int32_t value
    # 0 empty, 1 used, 2 deleted (a tombstone keeps probe chains intact)
    unsigned char state


cdef class KeyTable:
    cdef TableSlot* slots
    cdef uint32_t capacity
    cdef uint32_t used
    cdef uint32_t tombstones

    cdef int32_t lookup(self, const TableKey* key) noexcept nogil
    cdef int insert(self, const TableKey* key, int32_t value) except -1
    cdef int remove(self, const TableKey* key) noexcept
    cdef int _grow(self, uint32_t new_capacity) except -1
