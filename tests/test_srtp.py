"""Tests for the fast path's SRTP stage against pylibsrtp (RFC 3711, RFC 7714, RFC 5764)."""

import ctypes
import os
import random
import ssl
import struct

import pylibsrtp
import pytest

from fastpath import srtp

PYLIBSRTP_PROFILES = {
    "SRTP_AES128_CM_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "SRTP_AES128_CM_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "SRTP_AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "SRTP_AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}
KEY_LENGTHS = {
    "SRTP_AES128_CM_SHA1_80": 30,
    "SRTP_AES128_CM_SHA1_32": 30,
    "SRTP_AEAD_AES_128_GCM": 28,
    "SRTP_AEAD_AES_256_GCM": 44,
}
MEDIASOUP_NAMES = {
    "AES_CM_128_HMAC_SHA1_80": "SRTP_AES128_CM_SHA1_80",
    "AES_CM_128_HMAC_SHA1_32": "SRTP_AES128_CM_SHA1_32",
    "AEAD_AES_128_GCM": "SRTP_AEAD_AES_128_GCM",
    "AEAD_AES_256_GCM": "SRTP_AEAD_AES_256_GCM",
}
SSRC = 0x11223344

profiles = pytest.mark.parametrize("profile", list(PYLIBSRTP_PROFILES))


PAYLOAD = os.urandom(1188)


def rtp_packet(seq, payload=PAYLOAD[:160], ssrc=SSRC):
    """A minimal RTP packet (RFC 3550 5.1): V=2, PT=96, no CSRC, no extension."""
    header = struct.pack("!BBHII", 0x80, 96, seq & 0xFFFF, (seq * 3000) & 0xFFFFFFFF, ssrc)
    return header + payload


def rtcp_sender_report(ssrc=SSRC):
    """An RTCP SR without report blocks (RFC 3550 6.4.1)."""
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 0xE1234567, 0x89ABCDEF, 90000, 10, 1200)


def make_key(profile):
    return os.urandom(KEY_LENGTHS[profile])


def pylibsrtp_session(profile, key, ssrc_type):
    policy = pylibsrtp.Policy(
        key=key, ssrc_type=ssrc_type, srtp_profile=PYLIBSRTP_PROFILES[profile]
    )
    return pylibsrtp.Session(policy)


@profiles
def test_our_protect_is_unprotected_by_pylibsrtp(profile):
    key = make_key(profile)
    ours = srtp.SrtpSession(profile, key, "outbound")
    theirs = pylibsrtp_session(profile, key, pylibsrtp.Policy.SSRC_ANY_INBOUND)

    packet = rtp_packet(1000)
    protected = ours.protect(packet)
    assert len(protected) == len(packet) + ours.rtp_trailer
    assert theirs.unprotect(protected) == packet

    report = rtcp_sender_report()
    protected = ours.rtcp_protect(report)
    assert len(protected) == len(report) + ours.rtcp_trailer
    assert theirs.unprotect_rtcp(protected) == report


@profiles
def test_pylibsrtp_protect_is_unprotected_by_ours(profile):
    key = make_key(profile)
    theirs = pylibsrtp_session(profile, key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    ours = srtp.SrtpSession(profile, key, "inbound")

    packet = rtp_packet(7)
    assert ours.unprotect(theirs.protect(packet)) == packet

    report = rtcp_sender_report()
    assert ours.rtcp_unprotect(theirs.protect_rtcp(report)) == report


@profiles
def test_tampered_packet_fails_authentication(profile):
    key = make_key(profile)
    sender = srtp.SrtpSession(profile, key, "outbound")
    receiver = srtp.SrtpSession(profile, key, "inbound")

    protected = bytearray(sender.protect(rtp_packet(1)))
    protected[20] ^= 0x01
    with pytest.raises(ValueError, match="SRTP unprotect failed: auth_fail"):
        receiver.unprotect(bytes(protected))

    protected = bytearray(sender.rtcp_protect(rtcp_sender_report()))
    protected[10] ^= 0x01
    with pytest.raises(ValueError, match="SRTP RTCP unprotect failed: auth_fail"):
        receiver.rtcp_unprotect(bytes(protected))


@profiles
def test_inbound_replay_is_rejected(profile):
    key = make_key(profile)
    sender = srtp.SrtpSession(profile, key, "outbound")
    receiver = srtp.SrtpSession(profile, key, "inbound")

    protected = sender.protect(rtp_packet(42))
    receiver.unprotect(protected)
    with pytest.raises(ValueError, match="replay_fail"):
        receiver.unprotect(protected)

    protected = sender.rtcp_protect(rtcp_sender_report())
    receiver.rtcp_unprotect(protected)
    with pytest.raises(ValueError, match="replay_fail"):
        receiver.rtcp_unprotect(protected)


@profiles
def test_outbound_allows_resending_the_same_packet(profile):
    # A NACK answered without RTX resends the same seq with the same bytes.
    sender = srtp.SrtpSession(profile, make_key(profile), "outbound")
    packet = rtp_packet(5)
    assert sender.protect(packet) == sender.protect(packet)


@profiles
@pytest.mark.parametrize("delta", [-1, 1, -14])
def test_wrong_key_length_is_rejected(profile, delta):
    key = os.urandom(KEY_LENGTHS[profile] + delta)
    with pytest.raises(ValueError, match=f"must be {KEY_LENGTHS[profile]} bytes"):
        srtp.SrtpSession(profile, key, "outbound")


def test_bad_profile_and_direction_are_rejected():
    with pytest.raises(ValueError, match="unknown SRTP profile"):
        srtp.SrtpSession("SRTP_NULL_SHA1_80", bytes(30), "outbound")
    with pytest.raises(ValueError, match="direction"):
        srtp.SrtpSession("SRTP_AES128_CM_SHA1_80", bytes(30), "sideways")
    with pytest.raises(ValueError, match="unknown SRTP profile"):
        srtp.profile_key_lengths("AES_CM_256_HMAC_SHA1_80")


@pytest.mark.parametrize("name", list(MEDIASOUP_NAMES))
def test_mediasoup_profile_names(name):
    canonical = MEDIASOUP_NAMES[name]
    session = srtp.SrtpSession(name, make_key(canonical), "inbound")
    assert session.profile == canonical
    assert srtp.profile_key_lengths(name) == srtp.profile_key_lengths(canonical)


def test_profile_key_lengths():
    assert srtp.PROFILES == tuple(PYLIBSRTP_PROFILES)
    assert srtp.profile_key_lengths("SRTP_AES128_CM_SHA1_80") == (16, 14)
    assert srtp.profile_key_lengths("SRTP_AES128_CM_SHA1_32") == (16, 14)
    assert srtp.profile_key_lengths("SRTP_AEAD_AES_128_GCM") == (16, 12)
    assert srtp.profile_key_lengths("SRTP_AEAD_AES_256_GCM") == (32, 12)
    for profile, total in KEY_LENGTHS.items():
        assert sum(srtp.profile_key_lengths(profile)) == total


@profiles
def test_ten_thousand_packets_round_trip(profile):
    key = make_key(profile)
    sender = srtp.SrtpSession(profile, key, "outbound")
    receiver = srtp.SrtpSession(profile, key, "inbound")
    # Starts near the top of the seq space so the rollover counter advances.
    for seq in range(60000, 70000):
        packet = rtp_packet(seq, payload=PAYLOAD)
        assert receiver.unprotect(sender.protect(packet)) == packet


@profiles
def test_garbage_is_rejected_not_crashed_on(profile):
    # Unprotect sees whatever reaches the port: every malformed input must
    # come back as a status, never as a read or write out of bounds.
    key = make_key(profile)
    receiver = srtp.SrtpSession(profile, key, "inbound")
    rng = random.Random(3711)
    for _ in range(2000):
        size = rng.choice([0, 1, 3, 4, 8, 11, 12, 13, 16, 20, 28, 64, 1500])
        packet = bytearray(rng.randbytes(size))
        if size:
            packet[0] = 0x80 | (packet[0] & 0x3F)
        for unprotect in (receiver.unprotect, receiver.rtcp_unprotect):
            with pytest.raises(ValueError, match="unprotect failed"):
                unprotect(bytes(packet))


def test_streams_per_ssrc_and_removal():
    key = make_key("SRTP_AEAD_AES_128_GCM")
    sender = srtp.SrtpSession("SRTP_AEAD_AES_128_GCM", key, "outbound")
    receiver = srtp.SrtpSession("SRTP_AEAD_AES_128_GCM", key, "inbound")
    for ssrc in (1, 2, 3):
        packet = rtp_packet(10, ssrc=ssrc)
        assert receiver.unprotect(sender.protect(packet)) == packet
    assert sender.remove_stream(2) is True
    assert sender.remove_stream(2) is False
    assert sender.remove_stream(99) is False


@profiles
def test_many_streams_in_one_session_interoperate_with_plain_libsrtp(profile):
    """A session with hundreds of SSRCs (a receive transport in a big room) spreads its streams over
    several libsrtp sessions (srtp.pyx): pylibsrtp's single session must still read every packet,
    RTP and RTCP, with each SSRC's rollover counter and SRTCP index carried on across packets."""
    key = make_key(profile)
    ours_out = srtp.SrtpSession(profile, key, "outbound")
    theirs_in = pylibsrtp_session(profile, key, pylibsrtp.Policy.SSRC_ANY_INBOUND)
    theirs_out = pylibsrtp_session(profile, key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    ours_in = srtp.SrtpSession(profile, key, "inbound")
    ssrcs = [0x1000 + i for i in range(150)] + random.Random(7).sample(range(1, 2**32), 150)
    for seq in (65534, 65535, 0, 1):  # across a rollover: the ROC lives in each SSRC's stream
        for ssrc in ssrcs:
            packet = rtp_packet(seq, ssrc=ssrc)
            assert theirs_in.unprotect(ours_out.protect(packet)) == packet
            assert ours_in.unprotect(theirs_out.protect(packet)) == packet
    for ssrc in ssrcs:
        for _ in range(2):  # the SRTCP index goes on per SSRC too
            report = rtcp_sender_report(ssrc)
            assert theirs_in.unprotect_rtcp(ours_out.rtcp_protect(report)) == report
            assert ours_in.rtcp_unprotect(theirs_out.protect_rtcp(report)) == report
    # a replay is still caught, whichever of the sessions holds the SSRC
    replayed = theirs_out.protect(rtp_packet(2, ssrc=ssrcs[-1]))
    assert ours_in.unprotect(replayed) == rtp_packet(2, ssrc=ssrcs[-1])
    with pytest.raises(ValueError, match="replay"):
        ours_in.unprotect(replayed)
    # removal finds the stream wherever it is, once
    for ssrc in (ssrcs[0], ssrcs[200]):
        assert ours_out.remove_stream(ssrc) is True
        assert ours_out.remove_stream(ssrc) is False
    assert ours_out.remove_stream(0xDEADBEEF) is False


def test_status_names():
    assert srtp.status_name(0) == "ok"
    assert srtp.status_name(7) == "auth_fail"
    assert srtp.status_name(9) == "replay_fail"
    assert srtp.status_name(-1) == "no_room"
    assert srtp.status_name(1000) == "status_1000"


def test_libsrtp_version():
    assert srtp.libsrtp_version().startswith("libsrtp2 2.")


def test_bench_protect_runs():
    assert srtp.bench_protect("SRTP_AES128_CM_SHA1_80", 100) > 0


def test_libsrtp_openssl_stays_local():
    # RTLD_LOCAL: neither libsrtp nor its static OpenSSL joins the global
    # symbol scope, so the ssl module keeps the system OpenSSL.
    global_scope = ctypes.CDLL(None)
    for name in ("srtp_init", "srtp_protect"):
        with pytest.raises(AttributeError):
            getattr(global_scope, name)

    assert ssl.OPENSSL_VERSION.startswith("OpenSSL")
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname="switchyard.test")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    hello = outgoing.read()
    assert hello[0] == 22  # a TLS handshake record: the ClientHello went out
