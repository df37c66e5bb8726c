# cython: language_level=3
"""SRTP stage of the fast path: libsrtp 2.x sessions called from C (RFC 3711, RFC 7714)."""

from libc.stdint cimport uint32_t

# An srtp_t is libsrtp's opaque session pointer (struct srtp_ctx_t_ *).
ctypedef void* srtp_t

cdef enum:
    # libsrtp 2.x srtp.h: SRTP_MAX_TAG_LEN + SRTP_MAX_MKI_LEN, and the SRTCP
    # index on top; the most any profile (with MKI) can append.
    SRTP_MAX_TRAILER_LEN = 144
    SRTP_MAX_SRTCP_TRAILER_LEN = 148

cdef enum:
    # Statuses of the cdef methods: libsrtp's srtp_err_status_t values that
    # the fast path counts as drop reasons (status_name() names them all) ...
    srtp_err_status_ok = 0
    srtp_err_status_bad_param = 2
    srtp_err_status_alloc_fail = 3
    srtp_err_status_auth_fail = 7
    srtp_err_status_replay_fail = 9
    srtp_err_status_replay_old = 10
    # ... and ours, when the caller's buffer cannot take the trailer: libsrtp
    # itself never checks, it writes past the packet.
    SRTP_ERR_NO_ROOM = -1


cdef enum:
    # A session's streams are spread over up to SRTP_SHARDS libsrtp sessions
    # (srtp.pyx says why); the first SRTP_PINNED SSRCs all live in the first.
    SRTP_SHARDS = 16
    SRTP_PINNED = 8
    SRTP_MAX_KEY_SALT = 64


cdef class SrtpSession:
    # _ctx[0] exists from the start, the others from their first packet.
    cdef srtp_t _ctx[SRTP_SHARDS]
    # SSRCs (network order) that live in _ctx[0]; later ones are hashed.
    cdef uint32_t _pinned[SRTP_PINNED]
    cdef int _pinned_count
    # What a shard is created from: the master key+salt and the profile.
    cdef unsigned char _key[SRTP_MAX_KEY_SALT]
    cdef int _profile_id
    # Canonical DTLS-SRTP profile name (RFC 5764 / RFC 7714).
    cdef readonly str profile
    cdef readonly bint outbound
    # Bytes protect_rtp / protect_rtcp append for this profile: callers size
    # their buffers with these (capacity >= length + trailer).
    cdef readonly int rtp_trailer
    cdef readonly int rtcp_trailer

    cdef int protect_rtp(self, unsigned char* buf, int* length, int capacity) noexcept nogil
    cdef int unprotect_rtp(self, unsigned char* buf, int* length, int capacity) noexcept nogil
    cdef int protect_rtcp(self, unsigned char* buf, int* length, int capacity) noexcept nogil
    cdef int unprotect_rtcp(self, unsigned char* buf, int* length, int capacity) noexcept nogil
    cdef int remove_ssrc(self, uint32_t ssrc) noexcept nogil
    cdef int _create(self, int shard) noexcept nogil
    cdef srtp_t _shard(self, uint32_t ssrc_be, bint add) noexcept nogil
