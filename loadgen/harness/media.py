"""Client side of one WebRTC transport for a synthetic participant: ICE, DTLS, SRTP keys.

The SFU is ICE-lite, so we are the controlling agent: one Binding request
with USERNAME, PRIORITY, ICE-CONTROLLING and USE-CANDIDATE, signed with the
server's password (RFC 8445 section 7.2.4), nominates the pair. Then we are
the DTLS client (`role: "client"` in connectWebRtcTransport) and drive
`media.engine.dtls.DtlsSession` over the same socket until the SRTP keys are
exported. After that the socket belongs to `loadgen.synth.SyntheticMedia`;
`consent_request()` builds the check to send every few seconds so the
server's consent (RFC 7675, 30 s) never expires.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import secrets
import socket
import string
import time
from dataclasses import dataclass

from aioice import stun
from fastpath.srtp import SrtpSession

from media.engine.dtls import DTLS_STATE_CONNECTED, DTLS_STATE_FAILED, DtlsCertificate, DtlsSession

ICE_ATTEMPTS = 8
ICE_RETRY_SECONDS = 0.25
DTLS_SECONDS = 10.0
# RFC 8445 section 5.1.2.1 for a host candidate (type preference 126), component 1
LOCAL_PRIORITY = (126 << 24) | (65535 << 8) | 255
SOCKET_BUFFER_BYTES = 4 << 20


class TransportError(Exception):
    """ICE or DTLS with the SFU failed, or its candidate is not on this machine."""


def is_local_address(ip: str) -> bool:
    """True for loopback or an address of this machine's interfaces (we can bind to it)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if address.is_loopback:
        return True
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((ip, 0))
        except OSError:
            return False
    return True


def pick_candidate(candidates: list[dict]) -> tuple[str, int]:
    """The SFU's UDP candidate on this machine (the harness sends to local addresses only)."""
    udp = [c for c in candidates if str(c.get("protocol", "")).lower() == "udp"]
    if not udp:
        raise TransportError("the server offered no UDP ICE candidate")
    for candidate in sorted(udp, key=lambda c: -int(c.get("priority", 0))):
        ip = str(candidate.get("address") or candidate.get("ip") or "")
        if is_local_address(ip) and ipaddress.ip_address(ip).version == 4:
            return ip, int(candidate["port"])
    addresses = ", ".join(str(c.get("address") or c.get("ip")) for c in udp)
    raise TransportError(f"no IPv4 ICE candidate of the server is on this machine ({addresses}); "
                         "the load test sends to local addresses only (serve with --announced-ip 127.0.0.1)")


def binding_request(username: str, password: str, tie_breaker: int, nominate: bool) -> stun.Message:
    """A Binding request as a controlling agent sends it (RFC 8445 section 7.1.2)."""
    message = stun.Message(stun.Method.BINDING, stun.Class.REQUEST, transaction_id=os.urandom(12))
    message.attributes["USERNAME"] = username
    message.attributes["PRIORITY"] = LOCAL_PRIORITY
    message.attributes["ICE-CONTROLLING"] = tie_breaker
    if nominate:
        message.attributes["USE-CANDIDATE"] = None
    message.add_message_integrity(password.encode())
    message.add_fingerprint()
    return message


@dataclass
class SrtpPair:
    profile: str
    outbound: SrtpSession   # protects what we send on this transport
    inbound: SrtpSession    # unprotects what the SFU sends on it


class ClientTransport:
    """One send or receive transport of a synthetic participant, up to its SRTP keys."""

    def __init__(self, info: dict, certificate: DtlsCertificate):
        self.id = info["id"]
        self.ice = info["iceParameters"]
        self.remote = pick_candidate(info["iceCandidates"])
        self.remote_fingerprints = info["dtlsParameters"]["fingerprints"]
        self.certificate = certificate
        self.local_ufrag = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(8))
        self.tie_breaker = random.getrandbits(64)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind(("127.0.0.1" if self.remote[0].startswith("127.") else "0.0.0.0", 0))
            self.sock.setblocking(False)
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                self.sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
        except OSError:
            self.sock.close()
            raise
        self.srtp: SrtpPair | None = None

    @property
    def username(self) -> str:
        return f"{self.ice['usernameFragment']}:{self.local_ufrag}"

    def consent_request(self) -> bytes:
        """A consent freshness check (RFC 7675), sent on the selected pair without nominating."""
        return bytes(binding_request(self.username, self.ice["password"], self.tie_breaker, False))

    async def _receive(self, timeout: float) -> bytes | None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(max(timeout, 0.001)):
                data, _ = await loop.sock_recvfrom(self.sock, 2048)
                return data
        except TimeoutError:
            return None

    async def connect_ice(self) -> None:
        """Nominate the pair with USE-CANDIDATE and wait for the success response."""
        loop = asyncio.get_running_loop()
        request = binding_request(self.username, self.ice["password"], self.tie_breaker, True)
        raw = bytes(request)
        for _ in range(ICE_ATTEMPTS):
            await loop.sock_sendto(self.sock, raw, self.remote)
            deadline = time.monotonic() + ICE_RETRY_SECONDS
            while (left := deadline - time.monotonic()) > 0:
                data = await self._receive(left)
                if data is None or len(data) < 20 or data[0] > 3:
                    continue
                try:
                    answer = stun.parse_message(data)
                except ValueError:
                    continue
                if answer.transaction_id != request.transaction_id:
                    continue
                if answer.message_class == stun.Class.RESPONSE:
                    return
                raise TransportError(f"ICE check refused: {answer.attributes.get('ERROR-CODE')}")
        raise TransportError(f"no ICE answer from {self.remote[0]}:{self.remote[1]}")

    async def connect_dtls(self) -> SrtpPair:
        """Run the DTLS handshake as client and keep the exported SRTP keys (RFC 5764)."""
        loop = asyncio.get_running_loop()
        session = DtlsSession(self.certificate, "client", self.remote_fingerprints)
        for datagram in session.start():
            await loop.sock_sendto(self.sock, datagram, self.remote)
        deadline = time.monotonic() + DTLS_SECONDS
        while session.state not in (DTLS_STATE_CONNECTED, DTLS_STATE_FAILED):
            if time.monotonic() > deadline:
                raise TransportError("DTLS handshake timed out")
            wait = session.timeout()
            data = await self._receive(min(wait if wait is not None else 0.2, 0.5))
            if data is None:
                out = session.handle_timeout()
            elif 20 <= data[0] <= 63:
                out = session.feed(data)
            else:
                continue    # a late STUN answer
            for datagram in out:
                await loop.sock_sendto(self.sock, datagram, self.remote)
        if session.state == DTLS_STATE_FAILED or session.srtp_keys is None:
            raise TransportError(f"DTLS failed: {session.failure_reason}")
        keys = session.srtp_keys
        self.srtp = SrtpPair(keys.profile, SrtpSession(keys.profile, keys.local_key, "outbound"),
                             SrtpSession(keys.profile, keys.remote_key, "inbound"))
        return self.srtp

    def close(self) -> None:
        self.sock.close()
