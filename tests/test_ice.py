"""Tests for the ICE-lite server (RFC 8445 section 2.5, RFC 8489, RFC 7675)."""

import asyncio
import string

import aioice.ice
import pytest
from aioice import Candidate, Connection, stun

from media.engine.ice import (
    DROP_CLOSED,
    DROP_MALFORMED,
    DROP_NOT_REQUEST,
    EVENT_SELECTED_TUPLE_CHANGE,
    EVENT_STATE_CHANGE,
    EVENT_TUPLE_ADDED,
    EVENT_TUPLE_REMOVED,
    EVENT_UFRAG_REMOVED,
    MAX_TUPLES,
    IceEvent,
    IceLiteServer,
    IceTuple,
    ice_candidates,
    ufrag_of,
)

PEER = ("192.0.2.10", 50000)
OTHER_PEER = ("192.0.2.10", 50001)


def binding_request(
    ufrag: str,
    password: str,
    *,
    use_candidate: bool = False,
    controlled: bool = False,
    username: bool = True,
    priority: bool = True,
    integrity: bool = True,
    fingerprint: bool = True,
    method: stun.Method = stun.Method.BINDING,
) -> bytes:
    """A connectivity check as a full agent sends it (RFC 8445 section 7.2.2)."""
    message = stun.Message(message_method=method, message_class=stun.Class.REQUEST)
    if username:
        message.attributes["USERNAME"] = f"{ufrag}:peer"
    if priority:
        message.attributes["PRIORITY"] = 1853817087
    message.attributes["ICE-CONTROLLED" if controlled else "ICE-CONTROLLING"] = 42
    if use_candidate:
        message.attributes["USE-CANDIDATE"] = None
    if integrity:
        message.add_message_integrity(password.encode("utf8"))
        if not fingerprint:
            message.attributes.pop("FINGERPRINT")
    elif fingerprint:
        message.add_fingerprint()
    return bytes(message)


def check(server: IceLiteServer, addr=PEER, now=0.0, **kwargs):
    """Send a check with the server's current credentials."""
    request = binding_request(server.username_fragment, server.password, **kwargs)
    return server.handle_stun(request, addr, now)


def error_code(result) -> int | None:
    return stun.parse_message(result.response).error_code


def test_credentials_and_parameters():
    server = IceLiteServer()
    params = server.ice_parameters()
    assert set(params) == {"usernameFragment", "password", "iceLite"}
    assert params["iceLite"] is True
    assert len(params["usernameFragment"]) == 16 and len(params["password"]) == 32
    allowed = set(string.ascii_letters + string.digits + "+/")
    assert set(params["usernameFragment"] + params["password"]) <= allowed
    assert IceLiteServer().ice_parameters() != params
    assert server.state == "new" and server.selected_tuple is None


def test_candidates_have_mediasoup_shape():
    udp_only = ice_candidates("203.0.113.5", 40000)
    assert udp_only == [
        {
            "foundation": "udpcandidate",
            "priority": 1076302079,
            "ip": "203.0.113.5",
            "address": "203.0.113.5",
            "protocol": "udp",
            "port": 40000,
            "type": "host",
        }
    ]
    udp, tcp = ice_candidates("203.0.113.5", 40000, tcp_port=40000)
    assert udp == udp_only[0]
    assert tcp["protocol"] == "tcp" and tcp["tcpType"] == "passive" and tcp["type"] == "host"
    assert tcp["foundation"] == "tcpcandidate" and tcp["priority"] < udp["priority"]


def test_ufrag_of_reads_the_local_part():
    server = IceLiteServer()
    request = binding_request(server.username_fragment, server.password)
    assert ufrag_of(request) == server.username_fragment
    assert ufrag_of(binding_request("x", "y", username=False)) is None
    assert ufrag_of(request[:19]) is None
    assert ufrag_of(b"\x00\x01" + request[2:4] + b"\x00\x00\x00\x00" + request[8:]) is None
    response = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE)
    assert ufrag_of(bytes(response)) is None
    assert ufrag_of(b"\x00\x01\x00\x08" + request[4:20] + b"\x00\x06\x00\x04none") is None


def test_valid_check_gets_an_authenticated_answer():
    server = IceLiteServer()
    request = binding_request(server.username_fragment, server.password)
    result = server.handle_stun(request, PEER, 1.0)

    response = stun.parse_message(result.response)
    assert response.message_class == stun.Class.RESPONSE
    assert response.transaction_id == stun.parse_message(request).transaction_id
    assert response.attributes["XOR-MAPPED-ADDRESS"] == PEER
    assert response.check_message_integrity(server.password.encode())
    assert "FINGERPRINT" in response.attributes
    assert result.drop_reason is None


@pytest.mark.parametrize(
    "broken",
    [
        {"integrity": False},
        {"username": False},
        {"priority": False},
        {"fingerprint": False},
        {"method": stun.Method.ALLOCATE},
    ],
)
def test_unusable_requests_get_400(broken):
    server = IceLiteServer()
    result = check(server, **broken)
    assert error_code(result) == 400
    assert "FINGERPRINT" in stun.parse_message(result.response).attributes
    assert server.state == "new" and server.tuples == ()


def test_wrong_credentials_get_401():
    server = IceLiteServer()
    wrong_password = binding_request(server.username_fragment, "x" * 32)
    wrong_ufrag = binding_request("nottheufrag", server.password)
    assert error_code(server.handle_stun(wrong_password, PEER, 0.0)) == 401
    assert error_code(server.handle_stun(wrong_ufrag, PEER, 0.0)) == 401
    assert server.state == "new" and server.tuples == ()


def test_controlled_peer_gets_487():
    server = IceLiteServer()
    assert error_code(check(server, controlled=True)) == 487
    assert server.state == "new"


def test_garbage_is_dropped_with_a_reason():
    server = IceLiteServer()
    request = binding_request(server.username_fragment, server.password)
    assert server.handle_stun(request[:30], PEER, 0.0).drop_reason == DROP_MALFORMED
    assert server.handle_stun(b"\x00\x01\x00\x00" + bytes(16), PEER, 0.0).drop_reason == (
        DROP_MALFORMED
    )
    corrupted = request[:-1] + bytes([request[-1] ^ 1])  # bad FINGERPRINT
    assert server.handle_stun(corrupted, PEER, 0.0).drop_reason == DROP_MALFORMED
    indication = stun.Message(stun.Method.BINDING, stun.Class.INDICATION)
    indication.add_fingerprint()
    assert server.handle_stun(bytes(indication), PEER, 0.0).drop_reason == DROP_NOT_REQUEST
    server.close()
    result = server.handle_stun(request, PEER, 0.0)
    assert result.drop_reason == DROP_CLOSED and result.response is None


def test_state_machine_and_selection():
    server = IceLiteServer()
    first = check(server, PEER)
    assert first.events == [
        IceEvent(EVENT_TUPLE_ADDED, IceTuple(*PEER)),
        IceEvent(EVENT_SELECTED_TUPLE_CHANGE, IceTuple(*PEER)),
        IceEvent(EVENT_STATE_CHANGE, "connected"),
    ]
    assert check(server, PEER).events == []

    nominated = check(server, OTHER_PEER, use_candidate=True)
    assert nominated.events == [
        IceEvent(EVENT_TUPLE_ADDED, IceTuple(*OTHER_PEER)),
        IceEvent(EVENT_SELECTED_TUPLE_CHANGE, IceTuple(*OTHER_PEER)),
        IceEvent(EVENT_STATE_CHANGE, "completed"),
    ]
    # A plain check on another tuple adds it but keeps the nominated one.
    third = ("192.0.2.11", 1000)
    assert check(server, third).events == [IceEvent(EVENT_TUPLE_ADDED, IceTuple(*third))]
    assert server.selected_tuple == IceTuple(*OTHER_PEER)
    assert server.is_valid_tuple(third) and not server.is_valid_tuple(("192.0.2.99", 1))
    # A new nomination moves the selection, as does traffic on a valid tuple.
    assert check(server, PEER, use_candidate=True).events == [
        IceEvent(EVENT_SELECTED_TUPLE_CHANGE, IceTuple(*PEER))
    ]
    server.force_selected_tuple(third)
    assert server.take_events() == [IceEvent(EVENT_SELECTED_TUPLE_CHANGE, IceTuple(*third))]
    server.force_selected_tuple(("192.0.2.99", 1))
    assert server.take_events() == [] and server.selected_tuple == IceTuple(*third)


def test_tcp_tuples_are_distinct_and_removable():
    server = IceLiteServer()
    request = binding_request(server.username_fragment, server.password)
    server.handle_stun(request, PEER, 0.0, protocol="tcp")
    server.handle_stun(request, PEER, 0.0)
    assert server.tuples == (IceTuple(*PEER, "tcp"), IceTuple(*PEER, "udp"))
    assert server.selected_tuple == IceTuple(*PEER, "tcp")

    server.remove_tuple(PEER, protocol="tcp")
    assert server.take_events() == [
        IceEvent(EVENT_TUPLE_REMOVED, IceTuple(*PEER, "tcp")),
        IceEvent(EVENT_SELECTED_TUPLE_CHANGE, IceTuple(*PEER, "udp")),
    ]
    server.remove_tuple(PEER)
    assert server.take_events() == [
        IceEvent(EVENT_TUPLE_REMOVED, IceTuple(*PEER)),
        IceEvent(EVENT_STATE_CHANGE, "disconnected"),
    ]
    assert server.selected_tuple is None and server.tuples == ()


def test_too_many_tuples_evicts_the_oldest_unselected():
    server = IceLiteServer()
    check(server, ("192.0.2.1", 1), use_candidate=True)
    for port in range(2, MAX_TUPLES + 2):
        result = check(server, ("192.0.2.1", port))
    assert result.events == [
        IceEvent(EVENT_TUPLE_ADDED, IceTuple("192.0.2.1", MAX_TUPLES + 1)),
        IceEvent(EVENT_TUPLE_REMOVED, IceTuple("192.0.2.1", 2)),
    ]
    assert len(server.tuples) == MAX_TUPLES
    assert server.selected_tuple == IceTuple("192.0.2.1", 1)


def test_consent_expires_without_checks_on_the_selected_tuple():
    server = IceLiteServer(consent_timeout=5.0)
    assert server.check_consent(0.0) is False  # nothing to consent to yet
    check(server, PEER, now=10.0, use_candidate=True)
    check(server, OTHER_PEER, now=14.0)  # another tuple does not refresh it
    assert server.check_consent(14.9) is True
    assert server.check_consent(15.1) is False
    assert server.state == "disconnected" and server.selected_tuple is None
    assert server.take_events() == [
        IceEvent(EVENT_TUPLE_REMOVED, IceTuple(*PEER)),
        IceEvent(EVENT_TUPLE_REMOVED, IceTuple(*OTHER_PEER)),
        IceEvent(EVENT_STATE_CHANGE, "disconnected"),
    ]
    # A fresh check reconnects, as after a network change.
    assert check(server, OTHER_PEER, now=20.0).events[-1] == IceEvent(
        EVENT_STATE_CHANGE, "connected"
    )
    assert server.check_consent(21.0) is True


def test_restart_rotates_credentials():
    server = IceLiteServer()
    old_ufrag, old_password = server.username_fragment, server.password
    check(server, PEER, use_candidate=True)

    params = server.restart()
    assert params == server.ice_parameters()
    assert params["usernameFragment"] != old_ufrag and params["password"] != old_password
    assert server.username_fragments == (params["usernameFragment"], old_ufrag)
    # Checks in flight during signalling still pass, answered with the old key.
    old_check = binding_request(old_ufrag, old_password)
    response = stun.parse_message(server.handle_stun(old_check, PEER, 1.0).response)
    assert response.check_message_integrity(old_password.encode())

    # The first check with the new credentials retires the old ones.
    result = check(server, PEER, now=2.0)
    assert result.events == [IceEvent(EVENT_UFRAG_REMOVED, old_ufrag)]
    assert server.username_fragments == (params["usernameFragment"],)
    assert error_code(server.handle_stun(old_check, PEER, 3.0)) == 401


@pytest.fixture
def loopback_only(monkeypatch):
    """Let aioice gather a host candidate on 127.0.0.1, which it skips by default."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


class StunSocket(asyncio.DatagramProtocol):
    """Test glue standing in for the worker's socket: datagrams in, answers out."""

    def __init__(self, server: IceLiteServer) -> None:
        self.server = server
        self.events: list[IceEvent] = []

    def connection_made(self, transport: asyncio.DatagramTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        result = self.server.handle_stun(data, addr, asyncio.get_running_loop().time())
        self.events += result.events
        if result.response is not None:
            self.transport.sendto(result.response, addr)


class StunClient(asyncio.DatagramProtocol):
    """Sends one hand-made request and waits for the answer."""

    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.answer.set_result(data)


async def ask(server_addr: tuple[str, int], request: bytes) -> stun.Message:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(StunClient, local_addr=("127.0.0.1", 0))
    try:
        transport.sendto(request, server_addr)
        return stun.parse_message(await asyncio.wait_for(client.answer, 2))
    finally:
        transport.close()


async def aioice_connect(params: dict, candidates: list[dict]) -> Connection:
    """A full, controlling aioice agent that checks our candidates (RFC 8445 section 7.2)."""
    connection = Connection(ice_controlling=True, components=1, use_ipv6=False)
    connection.remote_is_lite = params["iceLite"]
    connection.remote_username = params["usernameFragment"]
    connection.remote_password = params["password"]
    await connection.gather_candidates()
    for c in candidates:
        await connection.add_remote_candidate(
            Candidate(
                foundation=c["foundation"],
                component=1,
                transport=c["protocol"],
                priority=c["priority"],
                host=c["address"],
                port=c["port"],
                type=c["type"],
            )
        )
    await connection.add_remote_candidate(None)
    await asyncio.wait_for(connection.connect(), 5)
    return connection


@pytest.mark.asyncio
async def test_aioice_agent_completes_checks(loopback_only):
    loop = asyncio.get_running_loop()
    server = IceLiteServer(consent_timeout=0.5)
    transport, socket = await loop.create_datagram_endpoint(
        lambda: StunSocket(server), local_addr=("127.0.0.1", 0)
    )
    server_addr = transport.get_extra_info("sockname")
    try:
        candidates = ice_candidates("127.0.0.1", server_addr[1])
        connection = await aioice_connect(server.ice_parameters(), candidates)
        client_tuple = IceTuple("127.0.0.1", connection.local_candidates[0].port)

        assert server.state == "completed"
        assert server.selected_tuple == client_tuple
        assert [e.value for e in socket.events if e.name == EVENT_STATE_CHANGE] == [
            "connected",
            "completed",
        ]
        assert IceEvent(EVENT_SELECTED_TUPLE_CHANGE, client_tuple) in socket.events
        assert server.check_consent(loop.time()) is True

        wrong = binding_request(server.username_fragment, "wrong-password-wrong-password-xx")
        assert (await ask(server_addr, wrong)).error_code == 401

        # The agent goes away: consent runs out on the selected tuple.
        await connection.close()
        await asyncio.sleep(0.6)
        assert server.check_consent(loop.time()) is False
        assert server.state == "disconnected"
        assert IceEvent(EVENT_TUPLE_REMOVED, client_tuple) in server.take_events()
    finally:
        transport.close()


@pytest.mark.asyncio
async def test_aioice_agent_reconnects_after_restart(loopback_only):
    loop = asyncio.get_running_loop()
    server = IceLiteServer()
    transport, socket = await loop.create_datagram_endpoint(
        lambda: StunSocket(server), local_addr=("127.0.0.1", 0)
    )
    server_addr = transport.get_extra_info("sockname")
    candidates = ice_candidates("127.0.0.1", server_addr[1])
    try:
        first = await aioice_connect(server.ice_parameters(), candidates)
        old = server.ice_parameters()

        second = await aioice_connect(server.restart(), candidates)
        assert server.selected_tuple == IceTuple("127.0.0.1", second.local_candidates[0].port)
        assert IceEvent(EVENT_UFRAG_REMOVED, old["usernameFragment"]) in socket.events

        stale = binding_request(old["usernameFragment"], old["password"])
        assert (await ask(server_addr, stale)).error_code == 401
        await first.close()
        await second.close()
    finally:
        transport.close()
