"""Tests for the sans-I/O DTLS-SRTP session (RFC 6347, RFC 5764)."""

import asyncio
import re
import struct
import time

import pylibsrtp
import pytest
from aiortc.rtcdtlstransport import (
    RTCCertificate,
    RTCDtlsFingerprint,
    RTCDtlsParameters,
    RTCDtlsTransport,
)
from OpenSSL import SSL

from media.engine.dtls import (
    DTLS_STATE_CLOSED,
    DTLS_STATE_CONNECTED,
    DTLS_STATE_CONNECTING,
    DTLS_STATE_FAILED,
    SRTP_PROFILES,
    DtlsCertificate,
    DtlsSession,
    resolve_role,
    split_records,
)

LIBSRTP_PROFILES = {
    "AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
    "AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}
RTP_PACKET = bytes.fromhex("80600001000000641234567800") + bytes(range(200))
RTCP_PACKET = bytes.fromhex("80c8000612345678") + bytes(20)

DTLS_CONTENT_HANDSHAKE = 22
DTLS_HANDSHAKE_CLIENT_HELLO = 1


@pytest.fixture(scope="module")
def certificates():
    return DtlsCertificate.generate(), DtlsCertificate.generate()


def make_pair(certificates, client_profiles=None, server_profiles=None):
    client_cert, server_cert = certificates
    client = DtlsSession(
        client_cert,
        "client",
        server_cert.fingerprints,
        **({"srtp_profiles": client_profiles} if client_profiles else {}),
    )
    server = DtlsSession(
        server_cert,
        "server",
        client_cert.fingerprints,
        **({"srtp_profiles": server_profiles} if server_profiles else {}),
    )
    return client, server


def exchange(sender, receiver, datagrams, one_record_per_datagram=False):
    """Deliver datagrams to receiver, returning its answers; optionally one record each."""
    answers = []
    for datagram in datagrams:
        pieces = split_records(datagram) if one_record_per_datagram else [datagram]
        for piece in pieces:
            answers += receiver.feed(piece)
    return answers


def run_handshake(client, server, one_record_per_datagram=False, rounds=10):
    to_server = client.start()
    server.start()
    for _ in range(rounds):
        to_client = exchange(client, server, to_server, one_record_per_datagram)
        to_server = exchange(server, client, to_client, one_record_per_datagram)
        if not to_client and not to_server:
            return


def srtp_session(key, profile, outbound):
    policy = pylibsrtp.Policy(
        key=key,
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND
        if outbound
        else pylibsrtp.Policy.SSRC_ANY_INBOUND,
        srtp_profile=LIBSRTP_PROFILES[profile],
    )
    return pylibsrtp.Session(policy)


def test_dtls_parameters_have_mediasoup_shape(certificates):
    params = certificates[0].dtls_parameters()
    assert params["role"] == "auto"
    assert [f["algorithm"] for f in params["fingerprints"]] == ["sha-256", "sha-384", "sha-512"]
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", params["fingerprints"][0]["value"])
    assert certificates[0].dtls_parameters("server")["role"] == "server"


def test_role_resolution_follows_mediasoup():
    assert resolve_role("client") == "server"
    assert resolve_role("server") == "client"
    assert resolve_role("auto") == "client"
    assert resolve_role(None) == "client"
    with pytest.raises(ValueError):
        resolve_role("both")


def test_session_rejects_unusable_parameters(certificates):
    cert = certificates[0]
    with pytest.raises(ValueError):
        DtlsSession(cert, "auto", cert.fingerprints)
    with pytest.raises(ValueError):
        DtlsSession(cert, "client", [{"algorithm": "md5", "value": "00"}])
    with pytest.raises(ValueError):
        DtlsSession(cert, "client", cert.fingerprints, srtp_profiles=("NULL_NULL",))


@pytest.mark.parametrize("profile", list(SRTP_PROFILES))
def test_handshake_derives_matching_keys_for_each_profile(certificates, profile):
    client, server = make_pair(certificates, (profile,), (profile,))
    run_handshake(client, server)

    assert client.state == server.state == DTLS_STATE_CONNECTED
    assert client.srtp_keys.profile == server.srtp_keys.profile == profile
    expected = SRTP_PROFILES[profile].key_length + SRTP_PROFILES[profile].salt_length
    assert len(client.srtp_keys.local_key) == len(client.srtp_keys.remote_key) == expected
    assert client.srtp_keys.local_key == server.srtp_keys.remote_key
    assert client.srtp_keys.remote_key == server.srtp_keys.local_key
    assert client.srtp_keys.local_key != client.srtp_keys.remote_key
    assert client.timeout() is None and server.timeout() is None


@pytest.mark.parametrize("profile", list(SRTP_PROFILES))
def test_exported_keys_protect_and_unprotect(certificates, profile):
    client, server = make_pair(certificates, (profile,), (profile,))
    run_handshake(client, server)

    for sender, receiver in ((client, server), (server, client)):
        tx = srtp_session(sender.srtp_keys.local_key, profile, outbound=True)
        rx = srtp_session(receiver.srtp_keys.remote_key, profile, outbound=False)
        protected = tx.protect(RTP_PACKET)
        assert protected != RTP_PACKET
        assert rx.unprotect(protected) == RTP_PACKET
        assert rx.unprotect_rtcp(tx.protect_rtcp(RTCP_PACKET)) == RTCP_PACKET


def test_server_preference_picks_the_profile(certificates):
    client, server = make_pair(certificates)
    run_handshake(client, server)
    assert server.srtp_keys.profile == "AEAD_AES_256_GCM"

    client, server = make_pair(certificates, ("AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM"), None)
    run_handshake(client, server)
    assert client.srtp_keys.profile == server.srtp_keys.profile == "AEAD_AES_128_GCM"


def test_no_common_profile_fails(certificates):
    client, server = make_pair(certificates, ("AES_CM_128_HMAC_SHA1_32",), ("AEAD_AES_256_GCM",))
    run_handshake(client, server)
    assert DTLS_STATE_FAILED in (client.state, server.state)
    assert client.srtp_keys is None and server.srtp_keys is None


@pytest.mark.parametrize("liar", ["client", "server"])
def test_fingerprint_mismatch_fails(certificates, liar):
    client_cert, server_cert = certificates
    stranger = DtlsCertificate.generate()
    # The side that verifies a lying peer is given the stranger's fingerprints.
    client = DtlsSession(
        client_cert, "client", (stranger if liar == "server" else server_cert).fingerprints
    )
    server = DtlsSession(
        server_cert, "server", (stranger if liar == "client" else client_cert).fingerprints
    )
    run_handshake(client, server)

    verifier = server if liar == "client" else client
    assert verifier.state == DTLS_STATE_FAILED
    assert verifier.failure_reason == "remote certificate fingerprint mismatch"
    assert verifier.srtp_keys is None
    # The alert tells the other side too.
    other = client if verifier is server else server
    assert other.state == DTLS_STATE_FAILED


def test_any_signalled_fingerprint_may_match(certificates):
    client_cert, server_cert = certificates
    stranger = DtlsCertificate.generate()
    client = DtlsSession(
        client_cert, "client", stranger.fingerprints[:1] + server_cert.fingerprints[2:]
    )
    server = DtlsSession(server_cert, "server", client_cert.fingerprints[1:2])
    run_handshake(client, server)
    assert client.state == server.state == DTLS_STATE_CONNECTED


def test_records_delivered_one_per_datagram(certificates):
    client, server = make_pair(certificates)
    first_flight = client.start()
    assert len(split_records(first_flight[0])) == 1
    # The server's first flight packs several records per datagram.
    server_flight = exchange(client, server, first_flight)
    assert any(len(split_records(d)) > 1 for d in server_flight)

    client, server = make_pair(certificates)
    run_handshake(client, server, one_record_per_datagram=True)
    assert client.state == server.state == DTLS_STATE_CONNECTED
    assert client.srtp_keys.local_key == server.srtp_keys.remote_key


class RawClient:
    """A pyOpenSSL DTLS client with a long SNI and a small MTU, so its ClientHello fragments."""

    def __init__(self, certificate: DtlsCertificate):
        self.ssl = SSL.Connection(certificate.ssl_context(("AEAD_AES_128_GCM",)))
        self.ssl.set_tlsext_host_name(b".".join([b"x" * 60] * 4))
        self.ssl.set_ciphertext_mtu(256)
        self.ssl.set_connect_state()

    def feed(self, data: bytes | None) -> list[bytes]:
        if data:
            self.ssl.bio_write(data)
        try:
            self.ssl.do_handshake()
        except SSL.WantReadError:
            pass
        out = b""
        while True:
            try:
                out += self.ssl.bio_read(65536)
            except SSL.WantReadError:
                break
        # Each record in a datagram of its own, as a fragmenting sender does.
        return split_records(out)


def client_hello_fragments(records: list[bytes]) -> list[tuple[int, int]]:
    """(fragment_offset, fragment_length) of ClientHello fragments (RFC 6347 section 4.2.2)."""
    fragments = []
    for record in records:
        if record[0] == DTLS_CONTENT_HANDSHAKE and record[13] == DTLS_HANDSHAKE_CLIENT_HELLO:
            offset = int.from_bytes(record[13 + 6 : 13 + 9], "big")
            length = int.from_bytes(record[13 + 9 : 13 + 12], "big")
            fragments.append((offset, length))
    return fragments


def test_client_hello_in_fragments_is_reassembled(certificates):
    client_cert, server_cert = certificates
    raw = RawClient(client_cert)
    server = DtlsSession(server_cert, "server", client_cert.fingerprints)

    first_flight = raw.feed(None)
    fragments = client_hello_fragments(first_flight)
    assert len(fragments) >= 2 and fragments[0][0] == 0 and fragments[1][0] > 0
    assert struct.unpack_from("!I", b"\x00" + first_flight[0][14:17])[0] > 256

    # Fragments one by one: nothing to say until the message is whole.
    answers = server.feed(first_flight[0])
    assert answers == [] and server.state == DTLS_STATE_CONNECTING
    to_server = first_flight[1:]
    for _ in range(10):
        to_client = exchange(raw, server, to_server)
        to_server = exchange(server, raw, to_client)
        if not to_client and not to_server:
            break
    assert server.state == DTLS_STATE_CONNECTED
    assert server.srtp_keys.profile == "AEAD_AES_128_GCM"


def test_lost_flight_is_retransmitted(certificates):
    client, server = make_pair(certificates)
    client.start()  # the ClientHello is lost
    delay = client.timeout()
    assert delay is not None and 0 < delay <= 1.0
    assert client.handle_timeout() == []  # not due yet
    time.sleep(delay + 0.05)
    retransmitted = client.handle_timeout()
    assert retransmitted
    to_server = retransmitted
    while to_server:
        to_server = exchange(server, client, exchange(client, server, to_server))
    assert client.state == server.state == DTLS_STATE_CONNECTED


def test_lost_last_flight_is_resent_after_connecting(certificates):
    client, server = make_pair(certificates)
    to_server = client.start()
    to_client = exchange(client, server, to_server)
    to_server = exchange(server, client, to_client)
    last_flight = exchange(client, server, to_server)  # lost on its way to the client
    assert last_flight and server.state == DTLS_STATE_CONNECTED
    assert client.state == DTLS_STATE_CONNECTING

    time.sleep(client.timeout() + 0.05)
    # The connected server answers the client's repeated flight with its own.
    resent = exchange(client, server, client.handle_timeout())
    assert resent
    exchange(server, client, resent)
    assert client.state == DTLS_STATE_CONNECTED
    assert client.srtp_keys.local_key == server.srtp_keys.remote_key


def test_close_sends_close_notify(certificates):
    client, server = make_pair(certificates)
    run_handshake(client, server)
    alert = client.close()
    assert len(alert) == 1 and alert[0][0] == 21  # DTLS alert record
    assert client.state == DTLS_STATE_CLOSED
    assert server.feed(alert[0]) == []
    assert server.state == DTLS_STATE_CLOSED
    assert server.feed(alert[0]) == [] and client.feed(b"\x16garbage") == []


def test_new_session_closes_quietly(certificates):
    client, _ = make_pair(certificates)
    assert client.close() == []
    assert client.state == DTLS_STATE_CLOSED
    assert client.timeout() is None


class AiortcIceShim:
    """Stands in for aiortc's RTCIceTransport: datagrams go to and from our session."""

    def __init__(self, session: DtlsSession, role: str):
        self.role = role
        self.session = session
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()

    async def _recv(self) -> bytes:
        return await self.inbox.get()

    async def _send(self, data: bytes) -> None:
        for datagram in self.session.feed(data):
            self.inbox.put_nowait(datagram)


@pytest.mark.asyncio
@pytest.mark.parametrize("our_role", ["client", "server"])
async def test_interoperates_with_aiortc(certificates, our_role):
    aiortc_cert = RTCCertificate.generateCertificate()
    ours = DtlsSession(
        certificates[0],
        our_role,
        [{"algorithm": f.algorithm, "value": f.value} for f in aiortc_cert.getFingerprints()],
        srtp_profiles=("AES_CM_128_HMAC_SHA1_80",),
    )
    # aiortc resolves "auto" from the ICE role: controlling -> DTLS server.
    shim = AiortcIceShim(ours, "controlling" if our_role == "client" else "controlled")
    theirs = RTCDtlsTransport(shim, [aiortc_cert])
    for datagram in ours.start():
        shim.inbox.put_nowait(datagram)
    remote = RTCDtlsParameters(
        fingerprints=[RTCDtlsFingerprint(**f) for f in certificates[0].fingerprints]
    )
    await asyncio.wait_for(theirs.start(remote), 5)

    assert theirs.state == "connected"
    assert ours.state == DTLS_STATE_CONNECTED
    rx = srtp_session(ours.srtp_keys.remote_key, "AES_CM_128_HMAC_SHA1_80", outbound=False)
    assert rx.unprotect(theirs._tx_srtp.protect(RTP_PACKET)) == RTP_PACKET
    tx = srtp_session(ours.srtp_keys.local_key, "AES_CM_128_HMAC_SHA1_80", outbound=True)
    assert theirs._rx_srtp.unprotect(tx.protect(RTP_PACKET)) == RTP_PACKET

    await theirs.stop()
    assert ours.state == DTLS_STATE_CLOSED
