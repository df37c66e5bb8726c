"""TURN (app/turn/): `switchyard serve` runs coturn, hands out per-peer credentials, and the relay works.

Real parts only: a `switchyard serve` subprocess that starts coturn (Debian's `turnserver`), the SDK's
signaling client for the `createWebRtcTransport` answer, aioice's TURN client for allocations over
UDP, TCP and TLS, and aioice's STUN messages over a real UDP socket for the credential checks.
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import time

import pytest
from aioice import stun
from aioice.turn import create_turn_endpoint, make_integrity_key
from switchyard_client import Room

from app import cli
from app.turn.credentials import mint, turn_urls
from app.turn.probe import BindingError, binding
from app.turn.settings import DEFAULT_TTL, TurnSettings
from tests.media.tracks import MovingBarTrack
from tests.signaling_server import signed_in
from tests.turn_fixtures import TURN_SECRET, TurnServer, running

pytestmark = pytest.mark.timeout(90)
WAIT = 10.0


@pytest.fixture(scope="module")
def turn_server(tmp_path_factory):
    server = TurnServer(tmp_path_factory.mktemp("turn"), "udp,tcp,tls")
    yield server
    pids = server.coturn_pids()
    err = server.stop()
    assert "Traceback" not in err, err
    # the server stops its coturn with itself
    assert pids and not any(running(pid) for pid in pids), pids


async def transport_answer(url: str) -> tuple[str, dict]:
    """A guest joins a new room and creates a send transport: (its peer id, the answer)."""
    owner = await signed_in(url, "Owner", connect=False)
    room = await owner.create_room("turn")
    await owner.close()
    client = await signed_in(url, "Relayed")
    try:
        joined = await client.join(room["id"])
        return joined["peerId"], await client.create_webrtc_transport("send")
    finally:
        await client.close()


class Echo(asyncio.DatagramProtocol):
    """A UDP peer on loopback (the role the media worker plays): sends back what it gets."""

    def __init__(self) -> None:
        self.sources: list[tuple[str, int]] = []

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.sources.append(addr)
        self.transport.sendto(b"echo:" + data, addr)


class Relayed(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue = asyncio.Queue()
        self.errors: asyncio.Queue = asyncio.Queue()
        self.closed = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)

    def datagram_received(self, data: bytes, addr) -> None:
        self.received.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.put_nowait(exc)


def test_credentials_follow_the_turn_rest_convention():
    username, password = mint("s3cret", "peer-1", 600, now=1_700_000_000)
    assert username == "1700000600:peer-1"
    # base64(HMAC-SHA1("s3cret", username)), as coturn's use-auth-secret recomputes it
    assert password == "KoFUtOANZXhnAZZRdZn8Yd4jr/4="
    turn = TurnSettings(mode="coturn", host="2001:db8::1", port=3478, tls_port=443, transports=("tcp", "tls"))
    assert turn_urls(turn) == ["turn:[2001:db8::1]:3478?transport=tcp", "turns:[2001:db8::1]:443?transport=tcp"]


async def test_transport_answer_carries_turn_servers_minted_for_the_peer(turn_server):
    peer_id, answer = await transport_answer(turn_server.url)
    [entry] = answer["iceServers"]
    port, tls = turn_server.turn_port, turn_server.tls_port
    assert entry["urls"] == [f"turn:127.0.0.1:{port}?transport=udp", f"turn:127.0.0.1:{port}?transport=tcp",
                             f"turns:127.0.0.1:{tls}?transport=tcp"]
    expiry, _, subject = entry["username"].partition(":")
    assert subject == peer_id
    assert abs(int(expiry) - (time.time() + DEFAULT_TTL)) < 60
    assert entry["credential"] == mint(TURN_SECRET, peer_id, 0, now=int(expiry))[1]


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_allocation_relays_to_the_media_peer_only(turn_server, transport):
    """An allocation with the answer's credentials relays UDP both ways to the announced IP, and
    coturn refuses a permission for any other address (403)."""
    _, answer = await transport_answer(turn_server.url)
    entry = answer["iceServers"][0]
    loop = asyncio.get_running_loop()
    echo_transport, echo = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    context = None
    if transport == "tls":
        context = ssl.create_default_context(cafile=str(turn_server.cert))
    port = turn_server.tls_port if transport == "tls" else turn_server.turn_port
    relay, relayed = await create_turn_endpoint(
        Relayed, ("127.0.0.1", port), entry["username"], entry["credential"], ssl=context,
        transport="udp" if transport == "udp" else "tcp")
    try:
        relayed_address = relay.get_extra_info("sockname")
        peer = echo_transport.get_extra_info("sockname")
        for n in range(3):
            relay.sendto(b"ping-%d" % n, peer)
            data, source = await asyncio.wait_for(relayed.received.get(), WAIT)
            assert (data, source) == (b"echo:ping-%d" % n, peer)
        # the media worker sees the relay's address, not ours
        assert set(echo.sources) == {relayed_address}
        relay.sendto(b"to an address that is not the media worker's", ("127.0.0.2", peer[1]))
        error = await asyncio.wait_for(relayed.errors.get(), WAIT)
        assert isinstance(error, stun.TransactionFailed) and error.response.error_code == 403, error
    finally:
        relay.close()  # deletes the allocation (Refresh with lifetime 0), then the connection ends
        await asyncio.wait_for(relayed.closed, WAIT)
        echo_transport.close()


async def test_sdk_gathers_a_relayed_candidate_with_the_answer_credentials(turn_server):
    """The SDK hands the answer's iceServers to aiortc, whose ICE agent allocates on coturn (UDP)."""
    owner = await signed_in(turn_server.url, "Owner", connect=False)
    room_id = (await owner.create_room("sdk-turn"))["id"]
    await owner.close()
    room = await Room.join(turn_server.url, room_id, "Relayed")
    try:
        await room.publish(MovingBarTrack())
        pc = room._media.send_transport._handler._pc
        gatherer = pc.getTransceivers()[0].sender.transport.transport.iceGatherer
        relayed = [c for c in gatherer.getLocalCandidates() if c.type == "relay"]
        assert relayed and relayed[0].ip == "127.0.0.1" and relayed[0].protocol == "udp", relayed
    finally:
        await room.leave()


class StunSocket(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answers: asyncio.Queue = asyncio.Queue()

    def datagram_received(self, data: bytes, addr) -> None:
        self.answers.put_nowait(stun.parse_message(data))


async def allocate(sock, protocol: StunSocket, username: str | None = None, password: str | None = None,
                   realm: str | None = None, nonce: bytes | None = None) -> stun.Message:
    """One Allocate request (RFC 8656 section 7.1) over the socket; its answer."""
    request = stun.Message(stun.Method.ALLOCATE, stun.Class.REQUEST)
    request.attributes["REQUESTED-TRANSPORT"] = 17 << 24  # UDP
    if username is not None:
        request.attributes["USERNAME"] = username
        request.attributes["REALM"] = realm
        request.attributes["NONCE"] = nonce
        request.add_message_integrity(make_integrity_key(username, realm, password))
    sock.sendto(bytes(request))
    answer = await asyncio.wait_for(protocol.answers.get(), WAIT)
    assert answer.transaction_id == request.transaction_id
    return answer


async def allocate_with(port: int, username: str, password: str) -> stun.Message:
    """The 401 challenge, then an Allocate with these credentials, from a socket of its own (coturn
    ties a 5-tuple to the first username it saw: each attempt gets a fresh one)."""
    loop = asyncio.get_running_loop()
    sock, protocol = await loop.create_datagram_endpoint(StunSocket, remote_addr=("127.0.0.1", port))
    try:
        challenge = await allocate(sock, protocol)
        assert (challenge.message_class, challenge.error_code) == (stun.Class.ERROR, 401)
        realm, nonce = challenge.attributes["REALM"], challenge.attributes["NONCE"]
        assert realm == "switchyard"
        return await allocate(sock, protocol, username, password, realm, nonce)
    finally:
        sock.close()


async def test_expired_credentials_are_refused(turn_server):
    port = turn_server.turn_port
    # minted for an hour, two hours ago: the right password for a username whose time is over
    answer = await allocate_with(port, *mint(TURN_SECRET, "peer-expired", 3600, now=time.time() - 7200))
    assert (answer.message_class, answer.error_code) == (stun.Class.ERROR, 401), answer
    # a live username with a password made with another secret
    forged = (mint(TURN_SECRET, "peer-forged", 600)[0], mint("another secret", "peer-forged", 600)[1])
    answer = await allocate_with(port, *forged)
    assert (answer.message_class, answer.error_code) == (stun.Class.ERROR, 401), answer
    # live credentials get an allocation: the 401s were about the credentials
    answer = await allocate_with(port, *mint(TURN_SECRET, "peer-live", 600))
    assert answer.message_class == stun.Class.RESPONSE, answer
    assert answer.attributes["XOR-RELAYED-ADDRESS"][0] == "127.0.0.1"


def test_missing_coturn_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setenv("SWITCHYARD_TURN", "coturn")
    monkeypatch.delenv("SWITCHYARD_TURN_TRANSPORTS", raising=False)  # all three, TLS without a certificate
    monkeypatch.setenv("SWITCHYARD_TURN_BINARY", "/nonexistent/turnserver")
    assert cli.main(["serve", "--announced-ip", "127.0.0.1"]) == cli.EXIT_CONFIG
    assert "apt-get install coturn" in capsys.readouterr().err
    monkeypatch.setenv("SWITCHYARD_TURN_BINARY", "turnserver")
    monkeypatch.setenv("SWITCHYARD_TURN_TRANSPORTS", "tls")
    monkeypatch.delenv("SWITCHYARD_TURN_CERT", raising=False)
    assert cli.main(["serve", "--announced-ip", "127.0.0.1"]) == cli.EXIT_CONFIG
    assert "SWITCHYARD_TURN_CERT" in capsys.readouterr().err


async def test_coturn_is_restarted_when_it_dies(turn_server):
    """Last in this module: it kills the module's coturn."""
    [pid] = turn_server.coturn_pids()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        pids = turn_server.coturn_pids(wait=0)
        if pids and pids != [pid]:
            try:
                await binding("127.0.0.1", turn_server.turn_port, "udp", timeout=1.0)
                await binding("127.0.0.1", turn_server.tls_port, "tls", timeout=1.0)
                break
            except BindingError:
                pass
        assert time.monotonic() < deadline, f"coturn was not restarted: {pids}"
        await asyncio.sleep(0.2)
    # and the relay works again with a new transport's credentials
    await test_allocation_relays_to_the_media_peer_only(turn_server, "udp")


async def test_coturn_dies_with_a_killed_server(tmp_path):
    """SIGKILL leaves the server no time to stop coturn: Linux does (PR_SET_PDEATHSIG)."""
    server = TurnServer(tmp_path, "udp")
    [pid] = server.coturn_pids()
    server.server.kill()
    deadline = time.monotonic() + 10
    while running(pid):
        assert time.monotonic() < deadline, "coturn outlived its server"
        await asyncio.sleep(0.1)
