# cython: language_level=3, boundscheck=False, wraparound=False
"""SRTP stage of the fast path: libsrtp 2.x sessions called from C (RFC 3711, RFC 7714).

libsrtp is not linked: pylibsrtp's compiled module carries libsrtp 2.x and
a static OpenSSL and exports both, so it is opened with RTLD_LOCAL (its
OpenSSL must not stand in for the one `ssl` and pyOpenSSL use) and each
function is looked up once, at import, into a C function pointer.
"""

import importlib.machinery
import importlib.util
import os

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint32_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from posix.dlfcn cimport RTLD_LOCAL, RTLD_NOW, dlerror, dlopen, dlsym
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec


cdef extern from "<arpa/inet.h>" nogil:
    uint32_t htonl(uint32_t hostlong)


# The libsrtp 2.x srtp.h declarations this module needs, laid out exactly as
# there (x86-64: srtp_policy_t is 128 bytes, window_size at offset 88).

ctypedef enum srtp_ssrc_type_t:
    ssrc_undefined = 0
    ssrc_specific = 1
    ssrc_any_inbound = 2
    ssrc_any_outbound = 3

ctypedef enum srtp_profile_t:
    srtp_profile_aes128_cm_sha1_80 = 1
    srtp_profile_aes128_cm_sha1_32 = 2
    srtp_profile_aead_aes_128_gcm = 7
    srtp_profile_aead_aes_256_gcm = 8

ctypedef struct srtp_crypto_policy_t:
    uint32_t cipher_type
    int cipher_key_len
    uint32_t auth_type
    int auth_key_len
    int auth_tag_len
    int sec_serv

ctypedef struct srtp_ssrc_t:
    srtp_ssrc_type_t type
    unsigned int value

ctypedef struct srtp_policy_t:
    srtp_ssrc_t ssrc
    srtp_crypto_policy_t rtp
    srtp_crypto_policy_t rtcp
    unsigned char* key
    void** keys
    unsigned long num_master_keys
    void* deprecated_ekt
    unsigned long window_size
    int allow_repeat_tx
    int* enc_xtn_hdr
    int enc_xtn_hdr_count
    srtp_policy_t* next

ctypedef int (*srtp_void_fn)() noexcept nogil
ctypedef unsigned int (*srtp_version_fn)() noexcept nogil
ctypedef const char* (*srtp_version_string_fn)() noexcept nogil
ctypedef int (*srtp_create_fn)(srtp_t* session, const srtp_policy_t* policy) noexcept nogil
ctypedef int (*srtp_dealloc_fn)(srtp_t session) noexcept nogil
ctypedef int (*srtp_packet_fn)(srtp_t session, void* header, int* length) noexcept nogil
ctypedef int (*srtp_remove_stream_fn)(srtp_t session, uint32_t ssrc) noexcept nogil
ctypedef int (*srtp_policy_from_profile_fn)(
    srtp_crypto_policy_t* policy, srtp_profile_t profile) noexcept nogil
ctypedef unsigned int (*srtp_profile_length_fn)(srtp_profile_t profile) noexcept nogil

cdef srtp_void_fn _srtp_init
cdef srtp_version_fn _srtp_get_version
cdef srtp_version_string_fn _srtp_get_version_string
cdef srtp_create_fn _srtp_create
cdef srtp_dealloc_fn _srtp_dealloc
cdef srtp_packet_fn _srtp_protect
cdef srtp_packet_fn _srtp_unprotect
cdef srtp_packet_fn _srtp_protect_rtcp
cdef srtp_packet_fn _srtp_unprotect_rtcp
cdef srtp_remove_stream_fn _srtp_remove_stream
cdef srtp_policy_from_profile_fn _srtp_policy_for_rtp
cdef srtp_policy_from_profile_fn _srtp_policy_for_rtcp
cdef srtp_profile_length_fn _srtp_master_key_length
cdef srtp_profile_length_fn _srtp_master_salt_length

# Enough for NACK/RTX reordering and keyframe bursts at video rates; the
# libsrtp default (128) drops late packets of a large frame as replay_old.
cdef enum:
    REPLAY_WINDOW = 1024
    OUTBOUND_WINDOW = 128

# libsrtp's srtp_err_status_t, by value.
STATUS_NAMES = (
    "ok", "fail", "bad_param", "alloc_fail", "dealloc_fail", "init_fail",
    "terminus", "auth_fail", "cipher_fail", "replay_fail", "replay_old",
    "algo_fail", "no_such_op", "no_ctx", "cant_check", "key_expired",
    "socket_err", "signal_err", "nonce_bad", "read_fail", "write_fail",
    "parse_err", "encode_err", "semaphore_err", "pfkey_err", "bad_mki",
    "pkt_idx_old", "pkt_idx_adv",
)

# DTLS-SRTP names (RFC 5764, RFC 7714) and mediasoup's names for the same.
_PROFILES = {
    "SRTP_AES128_CM_SHA1_80": ("SRTP_AES128_CM_SHA1_80", srtp_profile_aes128_cm_sha1_80),
    "SRTP_AES128_CM_SHA1_32": ("SRTP_AES128_CM_SHA1_32", srtp_profile_aes128_cm_sha1_32),
    "SRTP_AEAD_AES_128_GCM": ("SRTP_AEAD_AES_128_GCM", srtp_profile_aead_aes_128_gcm),
    "SRTP_AEAD_AES_256_GCM": ("SRTP_AEAD_AES_256_GCM", srtp_profile_aead_aes_256_gcm),
    "AES_CM_128_HMAC_SHA1_80": ("SRTP_AES128_CM_SHA1_80", srtp_profile_aes128_cm_sha1_80),
    "AES_CM_128_HMAC_SHA1_32": ("SRTP_AES128_CM_SHA1_32", srtp_profile_aes128_cm_sha1_32),
    "AEAD_AES_128_GCM": ("SRTP_AEAD_AES_128_GCM", srtp_profile_aead_aes_128_gcm),
    "AEAD_AES_256_GCM": ("SRTP_AEAD_AES_256_GCM", srtp_profile_aead_aes_256_gcm),
}
PROFILES = tuple(name for name, (canonical, _) in _PROFILES.items() if name == canonical)


def status_name(int status):
    """Short name of a status returned by the cdef methods (libsrtp's srtp_err_status_t)."""
    if status == SRTP_ERR_NO_ROOM:
        return "no_room"
    if 0 <= status < len(STATUS_NAMES):
        return STATUS_NAMES[status]
    return f"status_{status}"


def _binding_path():
    """Path of pylibsrtp's compiled module, found without importing pylibsrtp."""
    spec = importlib.util.find_spec("pylibsrtp")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                candidate = os.path.join(folder, "_binding" + suffix)
                if os.path.exists(candidate):
                    return candidate
    raise ImportError("pylibsrtp's compiled _binding module was not found")


cdef void* _symbol(void* handle, bytes name, str path) except NULL:
    cdef void* address = dlsym(handle, name)
    if address == NULL:
        raise ImportError(f"{name.decode()} is not exported by {path}")
    return address


cdef _load_libsrtp():
    global _srtp_init, _srtp_get_version, _srtp_get_version_string
    global _srtp_create, _srtp_dealloc, _srtp_remove_stream
    global _srtp_protect, _srtp_unprotect, _srtp_protect_rtcp, _srtp_unprotect_rtcp
    global _srtp_policy_for_rtp, _srtp_policy_for_rtcp
    global _srtp_master_key_length, _srtp_master_salt_length
    path = _binding_path()
    # Never RTLD_GLOBAL: the module's static OpenSSL would then interpose on
    # the system libcrypto that ssl and pyOpenSSL resolve against.
    cdef void* handle = dlopen(os.fsencode(path), RTLD_NOW | RTLD_LOCAL)
    if handle == NULL:
        raise ImportError(f"dlopen({path}) failed: {dlerror().decode()}")
    _srtp_get_version = <srtp_version_fn>_symbol(handle, b"srtp_get_version", path)
    _srtp_get_version_string = <srtp_version_string_fn>_symbol(
        handle, b"srtp_get_version_string", path)
    # The structs above follow the 2.x header; 1.x and 3.x differ.
    if _srtp_get_version() >> 24 != 2:
        raise ImportError(f"libsrtp 2.x needed, {path} has {libsrtp_version()}")
    _srtp_init = <srtp_void_fn>_symbol(handle, b"srtp_init", path)
    _srtp_create = <srtp_create_fn>_symbol(handle, b"srtp_create", path)
    _srtp_dealloc = <srtp_dealloc_fn>_symbol(handle, b"srtp_dealloc", path)
    _srtp_remove_stream = <srtp_remove_stream_fn>_symbol(handle, b"srtp_remove_stream", path)
    _srtp_protect = <srtp_packet_fn>_symbol(handle, b"srtp_protect", path)
    _srtp_unprotect = <srtp_packet_fn>_symbol(handle, b"srtp_unprotect", path)
    _srtp_protect_rtcp = <srtp_packet_fn>_symbol(handle, b"srtp_protect_rtcp", path)
    _srtp_unprotect_rtcp = <srtp_packet_fn>_symbol(handle, b"srtp_unprotect_rtcp", path)
    _srtp_policy_for_rtp = <srtp_policy_from_profile_fn>_symbol(
        handle, b"srtp_crypto_policy_set_from_profile_for_rtp", path)
    _srtp_policy_for_rtcp = <srtp_policy_from_profile_fn>_symbol(
        handle, b"srtp_crypto_policy_set_from_profile_for_rtcp", path)
    _srtp_master_key_length = <srtp_profile_length_fn>_symbol(
        handle, b"srtp_profile_get_master_key_length", path)
    _srtp_master_salt_length = <srtp_profile_length_fn>_symbol(
        handle, b"srtp_profile_get_master_salt_length", path)
    # dlopen returned the handle pylibsrtp may already hold, so srtp_init may
    # have run: a second call finds the kernel up and fails only to register
    # its debug module again, with bad_param.
    cdef int status = _srtp_init()
    if status != srtp_err_status_ok and status != srtp_err_status_bad_param:
        raise ImportError(f"srtp_init failed: {status_name(status)}")


def libsrtp_version():
    """Version string of the libsrtp in use, e.g. 'libsrtp2 2.7.0'."""
    return (<bytes>_srtp_get_version_string()).decode()


cdef srtp_profile_t _profile_id(str profile) except *:
    try:
        return _PROFILES[profile][1]
    except KeyError:
        raise ValueError(f"unknown SRTP profile {profile!r}") from None


def profile_key_lengths(str profile):
    """(master key, master salt) lengths in bytes, for DTLS-SRTP keying export (RFC 5764 4.2)."""
    cdef srtp_profile_t profile_id = _profile_id(profile)
    return (_srtp_master_key_length(profile_id), _srtp_master_salt_length(profile_id))


cdef int _fill_policy(srtp_policy_t* policy, int profile_id, bint outbound,
                      unsigned char* key) noexcept nogil:
    """libsrtp's policy for one session of ours: any SSRC, one direction (0 or libsrtp's status)."""
    memset(policy, 0, sizeof(srtp_policy_t))
    cdef int status = _srtp_policy_for_rtp(&policy.rtp, <srtp_profile_t>profile_id)
    if status == 0:
        status = _srtp_policy_for_rtcp(&policy.rtcp, <srtp_profile_t>profile_id)
    if status != 0:
        return status
    policy.ssrc.type = ssrc_any_outbound if outbound else ssrc_any_inbound
    policy.key = key
    # The replay window guards what we receive; libsrtp shifts it on every protect too,
    # so outbound sessions keep libsrtp's default (128) and save ~5% of protect time.
    policy.window_size = OUTBOUND_WINDOW if outbound else REPLAY_WINDOW
    # An SFU resends a packet with its original seq on NACK when RTX is
    # not negotiated; the bytes are the same, so no keystream is reused.
    policy.allow_repeat_tx = 1 if outbound else 0
    return 0


cdef inline uint32_t _read_ssrc(const unsigned char* at) noexcept nogil:
    cdef uint32_t value
    memcpy(&value, at, 4)
    return value


cdef class SrtpSession:
    """One direction of an SRTP/SRTCP session, any SSRC, keyed by a DTLS-SRTP export (RFC 3711).

    libsrtp 2.x finds a packet's stream (its ROC, replay window, SRTCP index:
    RFC 3711 3.2.3) with a linear search of the session's streams on every
    call. A receive transport in a room of 64 holds some 130 SSRCs, and the
    search took 30 % of the worker's CPU there (perf, `switchyard loadtest
    --participants 64`). So one SrtpSession is up to SRTP_SHARDS libsrtp
    sessions with the same master key: the first SRTP_PINNED SSRCs seen live
    in the first (a transport with a few streams costs what it did), later
    ones in one of the others by a hash of the SSRC, created on first use.
    An SSRC's RTP and RTCP always meet the same libsrtp stream, as RFC 3711
    wants, since both are placed by that SSRC. Keystreams stay distinct: they
    depend on the SSRC, not on which session holds it.
    """

    def __cinit__(self, str profile, bytes key, str direction):
        memset(self._ctx, 0, sizeof(self._ctx))
        if direction not in ("inbound", "outbound"):
            raise ValueError(f"SRTP direction must be 'inbound' or 'outbound', not {direction!r}")
        cdef srtp_profile_t profile_id = _profile_id(profile)
        key_length, salt_length = profile_key_lengths(profile)
        if len(key) != key_length + salt_length:
            raise ValueError(
                f"{profile} master key+salt must be {key_length + salt_length} bytes, "
                f"got {len(key)}")
        if len(key) > SRTP_MAX_KEY_SALT:
            raise ValueError(f"{profile} master key+salt is longer than {SRTP_MAX_KEY_SALT} bytes")
        memcpy(self._key, <const unsigned char*>key, len(key))
        self._profile_id = profile_id
        self.outbound = direction == "outbound"

        cdef srtp_policy_t policy
        cdef int status = _fill_policy(&policy, profile_id, self.outbound, self._key)
        if status != 0:
            raise ValueError(f"libsrtp rejected profile {profile}: {status_name(status)}")
        # srtp_create derives the session keys and keeps no pointer to key.
        status = _srtp_create(&self._ctx[0], &policy)
        if status != 0:
            self._ctx[0] = NULL
            raise ValueError(f"srtp_create failed for {profile}: {status_name(status)}")

        self.profile = _PROFILES[profile][0]
        self.rtp_trailer = policy.rtp.auth_tag_len
        # E flag + SRTCP index (RFC 3711 3.4), then the tag.
        self.rtcp_trailer = 4 + policy.rtcp.auth_tag_len

    def __dealloc__(self):
        cdef int i
        for i in range(SRTP_SHARDS):
            if self._ctx[i] != NULL:
                _srtp_dealloc(self._ctx[i])
                self._ctx[i] = NULL

    cdef int _create(self, int shard) noexcept nogil:
        cdef srtp_policy_t policy
        cdef int status = _fill_policy(&policy, self._profile_id, self.outbound, self._key)
        if status == 0:
            status = _srtp_create(&self._ctx[shard], &policy)
        if status != 0:
            self._ctx[shard] = NULL
        return status

    cdef srtp_t _shard(self, uint32_t ssrc_be, bint add) noexcept nogil:
        """The libsrtp session that holds (or will hold) this SSRC's stream; NULL if none can."""
        cdef int i
        for i in range(self._pinned_count):
            if self._pinned[i] == ssrc_be:
                return self._ctx[0]
        if self._pinned_count < SRTP_PINNED:
            # Not pinned while there was room: never seen, so it has no stream anywhere yet.
            if not add:
                return NULL
            self._pinned[self._pinned_count] = ssrc_be
            self._pinned_count += 1
            return self._ctx[0]
        # Fibonacci hashing: consumer SSRCs may be consecutive numbers.
        cdef int shard = 1 + <int>(((ssrc_be * <uint32_t>2654435761u) >> 16) % (SRTP_SHARDS - 1))
        if self._ctx[shard] == NULL and (not add or self._create(shard) != 0):
            return NULL
        return self._ctx[shard]

    cdef int protect_rtp(self, unsigned char* buf, int* length, int capacity) noexcept nogil:
        if length[0] + self.rtp_trailer > capacity:
            return SRTP_ERR_NO_ROOM
        # Too short for an SSRC: libsrtp refuses it, from any session.
        cdef srtp_t ctx = self._shard(_read_ssrc(buf + 8), True) if length[0] >= 12 else self._ctx[0]
        if ctx == NULL:
            return srtp_err_status_alloc_fail
        return _srtp_protect(ctx, buf, length)

    cdef int unprotect_rtp(self, unsigned char* buf, int* length, int capacity) noexcept nogil:
        if length[0] > capacity:
            return SRTP_ERR_NO_ROOM
        cdef srtp_t ctx = self._shard(_read_ssrc(buf + 8), True) if length[0] >= 12 else self._ctx[0]
        if ctx == NULL:
            return srtp_err_status_alloc_fail
        return _srtp_unprotect(ctx, buf, length)

    cdef int protect_rtcp(self, unsigned char* buf, int* length, int capacity) noexcept nogil:
        if length[0] + self.rtcp_trailer > capacity:
            return SRTP_ERR_NO_ROOM
        # The first packet's sender SSRC names the SRTCP stream (RFC 3711 3.4).
        cdef srtp_t ctx = self._shard(_read_ssrc(buf + 4), True) if length[0] >= 8 else self._ctx[0]
        if ctx == NULL:
            return srtp_err_status_alloc_fail
        return _srtp_protect_rtcp(ctx, buf, length)

    cdef int unprotect_rtcp(self, unsigned char* buf, int* length, int capacity) noexcept nogil:
        if length[0] > capacity:
            return SRTP_ERR_NO_ROOM
        cdef srtp_t ctx = self._shard(_read_ssrc(buf + 4), True) if length[0] >= 8 else self._ctx[0]
        if ctx == NULL:
            return srtp_err_status_alloc_fail
        return _srtp_unprotect_rtcp(ctx, buf, length)

    cdef int remove_ssrc(self, uint32_t ssrc) noexcept nogil:
        cdef srtp_t ctx = self._shard(htonl(ssrc), False)
        if ctx == NULL:
            return srtp_err_status_bad_param
        return _srtp_remove_stream(ctx, htonl(ssrc))

    def protect(self, bytes packet):
        """SRTP packet for an RTP packet (RFC 3711 3.3)."""
        return _apply(self, packet, PROTECT_RTP, "protect")

    def unprotect(self, bytes packet):
        """RTP packet for an SRTP packet; ValueError on auth or replay failure (RFC 3711 3.3)."""
        return _apply(self, packet, UNPROTECT_RTP, "unprotect")

    def rtcp_protect(self, bytes packet):
        """SRTCP packet for an RTCP packet (RFC 3711 3.4)."""
        return _apply(self, packet, PROTECT_RTCP, "RTCP protect")

    def rtcp_unprotect(self, bytes packet):
        """RTCP packet for an SRTCP packet; ValueError on auth or replay failure (RFC 3711 3.4)."""
        return _apply(self, packet, UNPROTECT_RTCP, "RTCP unprotect")

    def remove_stream(self, uint32_t ssrc):
        """Drop an SSRC's stream state (ROC, replay window); False if none (RFC 3711 3.2)."""
        return self.remove_ssrc(ssrc) == 0


cdef enum _Op:
    PROTECT_RTP
    UNPROTECT_RTP
    PROTECT_RTCP
    UNPROTECT_RTCP


cdef bytes _apply(SrtpSession session, bytes packet, _Op op, str action):
    cdef int length = len(packet)
    cdef int capacity = length + SRTP_MAX_SRTCP_TRAILER_LEN
    # malloc'd, so 32-bit aligned as libsrtp assumes.
    cdef unsigned char* buf = <unsigned char*>malloc(capacity)
    cdef int status
    if buf == NULL:
        raise MemoryError()
    try:
        memcpy(buf, <const unsigned char*>packet, length)
        if op == PROTECT_RTP:
            status = session.protect_rtp(buf, &length, capacity)
        elif op == UNPROTECT_RTP:
            status = session.unprotect_rtp(buf, &length, capacity)
        elif op == PROTECT_RTCP:
            status = session.protect_rtcp(buf, &length, capacity)
        else:
            status = session.unprotect_rtcp(buf, &length, capacity)
        if status != srtp_err_status_ok:
            raise ValueError(f"SRTP {action} failed: {status_name(status)}")
        return PyBytes_FromStringAndSize(<char*>buf, length)
    finally:
        free(buf)


cdef double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


def bench_protect(str profile, long count, int size=1200):
    """Seconds to SRTP-protect count RTP packets of size bytes in a C loop (RFC 3711)."""
    key_length, salt_length = profile_key_lengths(profile)
    key = os.urandom(key_length + salt_length)
    cdef SrtpSession session = SrtpSession(profile, key, "outbound")
    cdef int capacity = size + session.rtp_trailer
    cdef unsigned char* buf = <unsigned char*>malloc(capacity)
    cdef long i
    cdef int length
    cdef int status = 0
    cdef double started, elapsed
    if buf == NULL:
        raise MemoryError()
    memset(buf, 0x5A, capacity)
    buf[0] = 0x80
    buf[1] = 96
    with nogil:
        started = _now()
        for i in range(count):
            # A fresh seq each time, as a forwarded stream has.
            buf[2] = (i >> 8) & 0xFF
            buf[3] = i & 0xFF
            length = size
            status = session.protect_rtp(buf, &length, capacity)
            if status != 0:
                break
        elapsed = _now() - started
    free(buf)
    if status != 0:
        raise ValueError(f"SRTP protect failed: {status_name(status)}")
    return elapsed


_load_libsrtp()
