"""DTLS-SRTP for one WebRTC transport (RFC 6347, RFC 5764), sans-I/O over pyOpenSSL memory BIOs.

The worker's socket hands every DTLS datagram (first byte 20-63, RFC 7983)
of the selected tuple to `DtlsSession.feed`, which returns the datagrams to
send back. A handshake message may span several records in several
datagrams (Chromium's ClientHello with an X25519MLKEM768 key share is about
1.4 KB); OpenSSL reassembles them as long as every datagram reaches the same
SSL object. Once connected, `srtp_keys` holds the exported master keys for
the fast path's SRTP sessions. Application data records carry SCTP (RFC 8261):
`feed` keeps what arrives in `application_data` for the transport's SCTP
association to take, and `send_application_data` protects what it sends.
"""

from __future__ import annotations

import datetime
import os
import struct
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL, crypto

# Leaves room for IPv6 + UDP headers and a TURN or VPN wrapping on a
# 1280-byte path; mediasoup uses 1350, libwebrtc 1200.
DTLS_MTU = 1200
DTLS_RECORD_HEADER_LENGTH = 13
# RFC 6347 section 4.1: DTLS 1.2 is {254, 253}; DTLS 1.0 is gone (RFC 8996).
DTLS1_2_VERSION = 0xFEFD
# RFC 5764 section 4.2.
SRTP_EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"
# One record's plaintext fits this (RFC 6347 section 4.1: at most 2^14 bytes).
RECORD_READ_SIZE = 16384
# Application data (SCTP packets) kept between two takes: a peer flooding one feed cannot grow it further.
APPLICATION_DATA_LIMIT = 256
BIO_READ_SIZE = 65536

# ECDHE only (forward secrecy); ECDSA first since browsers and we use P-256
# certificates, RSA kept for peers that still generate RSA ones.
CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    b"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:"
    b"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305:"
    b"ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA"
)

DTLS_STATE_NEW = "new"
DTLS_STATE_CONNECTING = "connecting"
DTLS_STATE_CONNECTED = "connected"
DTLS_STATE_FAILED = "failed"
DTLS_STATE_CLOSED = "closed"

# Hash function textual names (RFC 8122 section 5, RFC 4572 section 8).
FINGERPRINT_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha-1": hashes.SHA1,
    "sha-224": hashes.SHA224,
    "sha-256": hashes.SHA256,
    "sha-384": hashes.SHA384,
    "sha-512": hashes.SHA512,
}
LOCAL_FINGERPRINT_ALGORITHMS = ("sha-256", "sha-384", "sha-512")


@dataclass(frozen=True)
class SrtpProfile:
    """A DTLS-SRTP protection profile (RFC 5764 section 4.1.2, RFC 7714 section 14.2)."""

    name: str
    openssl_name: bytes
    key_length: int
    salt_length: int


SRTP_PROFILES: dict[str, SrtpProfile] = {
    profile.name: profile
    for profile in (
        SrtpProfile("AEAD_AES_256_GCM", b"SRTP_AEAD_AES_256_GCM", 32, 12),
        SrtpProfile("AEAD_AES_128_GCM", b"SRTP_AEAD_AES_128_GCM", 16, 12),
        SrtpProfile("AES_CM_128_HMAC_SHA1_80", b"SRTP_AES128_CM_SHA1_80", 16, 14),
        SrtpProfile("AES_CM_128_HMAC_SHA1_32", b"SRTP_AES128_CM_SHA1_32", 16, 14),
    )
}
SRTP_PROFILES_BY_OPENSSL_NAME = {p.openssl_name: p for p in SRTP_PROFILES.values()}
# Strongest first, as mediasoup orders its crypto suites; when we are the
# DTLS server OpenSSL picks the first of ours the client offers.
DEFAULT_SRTP_PROFILES = tuple(SRTP_PROFILES)


@dataclass(frozen=True)
class SrtpKeys:
    """Master key || master salt for each direction, from our side (RFC 5764 section 4.2).

    `local_key` protects what we send, `remote_key` unprotects what we
    receive; `profile` is the mediasoup crypto suite name.
    """

    profile: str
    local_key: bytes
    remote_key: bytes


def certificate_fingerprint(certificate: x509.Certificate, algorithm: str) -> str:
    """Fingerprint as upper-case colon-separated hex (RFC 8122 section 5)."""
    digest = certificate.fingerprint(FINGERPRINT_HASHES[algorithm]()).hex().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def resolve_role(remote_role: str | None) -> str:
    """Our DTLS role from the peer's, as mediasoup's WebRtcTransport.connect decides it.

    We answer "auto"; a peer that is "auto" (or says nothing) gets us as
    client, because the ICE-controlled side acts as client (RFC 8842 section 5.3).
    """
    if remote_role == "client":
        return "server"
    if remote_role in ("server", "auto", None):
        return "client"
    raise ValueError(f"DTLS role must be 'auto', 'client' or 'server', not {remote_role!r}")


def split_records(data: bytes) -> list[bytes]:
    """Cut a byte stream into whole DTLS records (RFC 6347 section 4.1)."""
    records = []
    pos = 0
    while pos < len(data):
        if pos + DTLS_RECORD_HEADER_LENGTH > len(data):
            raise ValueError("DTLS record header is truncated")
        end = pos + DTLS_RECORD_HEADER_LENGTH + struct.unpack_from("!H", data, pos + 11)[0]
        if end > len(data):
            raise ValueError("DTLS record length is invalid")
        records.append(data[pos:end])
        pos = end
    return records


def pack_datagrams(records: list[bytes], mtu: int) -> list[bytes]:
    """Put whole records into as few datagrams of at most mtu bytes as fit (RFC 6347 section 4.1.1)."""
    datagrams: list[bytes] = []
    current = b""
    for record in records:
        if current and len(current) + len(record) > mtu:
            datagrams.append(current)
            current = b""
        current += record
    if current:
        datagrams.append(current)
    return datagrams


def describe_ssl_error(exc: SSL.Error) -> str:
    """OpenSSL's reason strings from a pyOpenSSL error, for a failed state's reason."""
    if exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        return "; ".join(str(entry[-1]) for entry in exc.args[0])
    return str(exc) or type(exc).__name__


class DtlsCertificate:
    """The worker's self-signed certificate and its fingerprints (RFC 8122 section 5)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self.key = key
        self.certificate = certificate
        self.fingerprints = [
            {"algorithm": algorithm, "value": certificate_fingerprint(certificate, algorithm)}
            for algorithm in LOCAL_FINGERPRINT_ALGORITHMS
        ]
        self._contexts: dict[tuple[str, ...], SSL.Context] = {}

    @classmethod
    def generate(cls) -> DtlsCertificate:
        """A fresh P-256 key and self-signed certificate, valid 30 days as aiortc's and browsers' are.

        Built here with cryptography rather than by aiortc's helper: importing aiortc
        loads PyAV, its codecs and the ICE agent, some 30 MB a worker never uses.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        # RFC 8122 section 5: the fingerprint authenticates it, so the name is only random.
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, os.urandom(16).hex())])
        now = datetime.datetime.now(tz=datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    def dtls_parameters(self, role: str = "auto") -> dict:
        """Local DTLS parameters in mediasoup v3's DtlsParameters shape."""
        return {"role": role, "fingerprints": [dict(f) for f in self.fingerprints]}

    def ssl_context(self, srtp_profiles: tuple[str, ...]) -> SSL.Context:
        """One shared OpenSSL context per profile list, built on first use."""
        context = self._contexts.get(srtp_profiles)
        if context is None:
            context = self._build_context(srtp_profiles)
            self._contexts[srtp_profiles] = context
        return context

    def _build_context(self, srtp_profiles: tuple[str, ...]) -> SSL.Context:
        """DTLS 1.2+ with use_srtp (RFC 5764 section 4.1) and our certificate."""
        context = SSL.Context(SSL.DTLS_METHOD)
        context.set_min_proto_version(DTLS1_2_VERSION)
        # The memory BIO cannot report a path MTU, so OpenSSL must keep ours.
        context.set_options(SSL.OP_NO_TICKET | SSL.OP_NO_QUERY_MTU | SSL.OP_NO_RENEGOTIATION)
        # The context is shared by every transport of the worker: a resumed
        # session would skip the certificate, and with it the fingerprint check.
        context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        context.use_certificate(self.certificate)
        context.use_privatekey(self.key)
        context.set_cipher_list(CIPHERS)
        context.set_tlsext_use_srtp(
            b":".join(SRTP_PROFILES[name].openssl_name for name in srtp_profiles)
        )
        return context


class DtlsSession:
    """The DTLS association of one transport, driven by datagrams in and out (RFC 6347)."""

    def __init__(
        self,
        certificate: DtlsCertificate,
        role: str,
        remote_fingerprints: list[dict],
        srtp_profiles: tuple[str, ...] = DEFAULT_SRTP_PROFILES,
        mtu: int = DTLS_MTU,
    ) -> None:
        if role not in ("client", "server"):
            raise ValueError(f"DTLS session role must be 'client' or 'server', not {role!r}")
        unknown = [name for name in srtp_profiles if name not in SRTP_PROFILES]
        if unknown or not srtp_profiles:
            raise ValueError(f"SRTP profiles are invalid: {list(srtp_profiles)!r}")
        self._remote_fingerprints = [
            (str(f["algorithm"]).lower(), str(f.get("value", "")).upper())
            for f in remote_fingerprints
            if str(f.get("algorithm", "")).lower() in FINGERPRINT_HASHES
        ]
        if not self._remote_fingerprints:
            raise ValueError("DTLS fingerprints have no supported hash algorithm")

        self.role = role
        self.state = DTLS_STATE_NEW
        self.failure_reason: str | None = None
        self.srtp_keys: SrtpKeys | None = None
        self.application_data: list[bytes] = []
        self.application_data_dropped = 0
        self._mtu = mtu
        self._verify_failure: str | None = None
        self._ssl = SSL.Connection(certificate.ssl_context(tuple(srtp_profiles)))
        self._ssl.set_ciphertext_mtu(mtu)
        # Self-signed certificates: trust comes from the signalled fingerprint.
        self._ssl.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verify_peer)
        if role == "server":
            self._ssl.set_accept_state()
        else:
            self._ssl.set_connect_state()

    def start(self) -> list[bytes]:
        """Begin the handshake; as client this returns the ClientHello flight (RFC 6347 section 4.2.4)."""
        if self.state != DTLS_STATE_NEW:
            return []
        self.state = DTLS_STATE_CONNECTING
        if self.role == "client":
            self._handshake()
        return self._flush()

    def feed(self, data: bytes) -> list[bytes]:
        """Take one received datagram; return the datagrams to send (RFC 6347 section 4.1)."""
        if self.state in (DTLS_STATE_FAILED, DTLS_STATE_CLOSED):
            return []
        if self.state == DTLS_STATE_NEW:
            self.state = DTLS_STATE_CONNECTING
        self._ssl.bio_write(data)
        if self.state == DTLS_STATE_CONNECTING:
            self._handshake()
        if self.state == DTLS_STATE_CONNECTED:
            # Also lets OpenSSL answer a retransmitted last flight of the peer.
            self._read_records()
        return self._flush()

    def timeout(self) -> float | None:
        """Seconds until handle_timeout() is due, or None (RFC 6347 section 4.2.4.1)."""
        if self.state not in (DTLS_STATE_CONNECTING, DTLS_STATE_CONNECTED):
            return None
        return self._ssl.DTLSv1_get_timeout()

    def handle_timeout(self) -> list[bytes]:
        """Retransmit the last flight if its timer expired (RFC 6347 section 4.2.4)."""
        if self.state not in (DTLS_STATE_CONNECTING, DTLS_STATE_CONNECTED):
            return []
        try:
            self._ssl.DTLSv1_handle_timeout()
        except SSL.Error as exc:
            # OpenSSL gives up after too many retransmissions.
            self._fail(f"handshake timed out: {describe_ssl_error(exc)}")
        return self._flush()

    def send_application_data(self, data: bytes) -> list[bytes]:
        """Protect one SCTP packet as an application_data record (RFC 8261 section 5); [] unless connected."""
        if self.state != DTLS_STATE_CONNECTED:
            return []
        try:
            self._ssl.send(data)
        except SSL.Error as exc:
            self._fail(f"DTLS error: {describe_ssl_error(exc)}")
            return []
        return self._flush()

    def take_application_data(self) -> list[bytes]:
        """The application data received since the last take, oldest first."""
        data, self.application_data = self.application_data, []
        return data

    def close(self) -> list[bytes]:
        """Close, returning the close_notify alert to send if connected (RFC 5246 section 7.2.1)."""
        datagrams: list[bytes] = []
        if self.state == DTLS_STATE_CONNECTED:
            try:
                self._ssl.shutdown()
            except SSL.Error:
                pass  # Nothing to tell a peer whose association is broken.
            datagrams = self._flush()
        self.state = DTLS_STATE_CLOSED
        return datagrams

    def _handshake(self) -> None:
        """Advance the handshake with whatever the BIO holds."""
        try:
            self._ssl.do_handshake()
        except SSL.WantReadError:
            return
        except SSL.Error as exc:
            self._fail(self._verify_failure or f"handshake failed: {describe_ssl_error(exc)}")
            return
        self._complete()

    def _complete(self) -> None:
        """Export the SRTP keys of the negotiated profile (RFC 5764 section 4.2)."""
        profile = SRTP_PROFILES_BY_OPENSSL_NAME.get(self._ssl.get_selected_srtp_profile())
        if profile is None:
            self._fail("no SRTP profile negotiated")
            return
        key, salt = profile.key_length, profile.salt_length
        material = self._ssl.export_keying_material(SRTP_EXPORTER_LABEL, 2 * (key + salt))
        # client_write_key | server_write_key | client_write_salt | server_write_salt
        client = material[:key] + material[2 * key : 2 * key + salt]
        server = material[key : 2 * key] + material[2 * key + salt :]
        local, remote = (client, server) if self.role == "client" else (server, client)
        self.srtp_keys = SrtpKeys(profile=profile.name, local_key=local, remote_key=remote)
        self.state = DTLS_STATE_CONNECTED

    def _read_records(self) -> None:
        """Process records after the handshake: keep application data, notice close_notify or a fatal alert."""
        while True:
            try:
                data = self._ssl.recv(RECORD_READ_SIZE)
            except SSL.WantReadError:
                return
            except SSL.ZeroReturnError:
                self.state = DTLS_STATE_CLOSED
                return
            except SSL.Error as exc:
                self._fail(f"DTLS error: {describe_ssl_error(exc)}")
                return
            if len(self.application_data) < APPLICATION_DATA_LIMIT:
                self.application_data.append(data)
            else:
                self.application_data_dropped += 1

    def _flush(self) -> list[bytes]:
        """Everything OpenSSL wrote to the memory BIO, as datagrams."""
        data = b""
        while True:
            try:
                chunk = self._ssl.bio_read(BIO_READ_SIZE)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            data += chunk
        return pack_datagrams(split_records(data), self._mtu)

    def _verify_peer(
        self, connection: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int
    ) -> bool:
        """Accept the peer's leaf certificate iff a signalled fingerprint matches (RFC 8122 section 5)."""
        if depth > 0:
            return True
        certificate = cert.to_cryptography()
        if any(
            certificate_fingerprint(certificate, algorithm) == value
            for algorithm, value in self._remote_fingerprints
        ):
            return True
        self._verify_failure = "remote certificate fingerprint mismatch"
        return False

    def _fail(self, reason: str) -> None:
        """Enter the failed state for good, keeping why."""
        self.state = DTLS_STATE_FAILED
        self.failure_reason = reason
