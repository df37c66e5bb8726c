"""ICE-lite server for one WebRTC transport (RFC 8445 section 2.5), sans-I/O.

The worker's socket hands every STUN datagram (first byte 0-3, RFC 7983) up
with its remote address; `IceLiteServer.handle_stun` answers Binding checks
(RFC 8489 with short-term credentials, RFC 8445 section 7.3) and tracks the
tuples they came from, so the caller only moves bytes. The same object serves
ICE-TCP (RFC 6544, framed per RFC 4571) with `protocol="tcp"`.

States and events follow mediasoup's IceServer: new -> connected (a valid
check) -> completed (USE-CANDIDATE) -> disconnected (consent expired, RFC 7675)
-> closed. Credentials survive an ICE restart until the peer first uses the
new ones, as in mediasoup: libwebrtc kills a candidate pair on any error
response, so answering 401 to consent checks that were in flight while the
restart was being signalled would break media.
"""

from __future__ import annotations

import secrets
import string
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aioice import stun

# Letters and digits only: a subset of ice-char (RFC 8839 section 5.4) that
# needs no escaping in SDP, JSON, logs or metric labels.
ICE_CHARS = string.ascii_letters + string.digits
UFRAG_LENGTH = 16
PASSWORD_LENGTH = 32

# RFC 7675 section 5.1: consent expires 30 s after the last valid check.
CONSENT_TIMEOUT = 30.0
# Like mediasoup: more tuples than this evicts the oldest non-selected one.
MAX_TUPLES = 8

# Candidate priority as mediasoup computes it (RFC 8445 section 5.1.2.1):
# host type preference 64, local preference 10000 (UDP first), component 1.
ICE_TYPE_PREFERENCE = 64
ICE_LOCAL_PREFERENCE_UDP = 10000
ICE_LOCAL_PREFERENCE_TCP = 9900
ICE_COMPONENT_RTP = 1

STUN_HEADER_LENGTH = 20
STUN_BINDING_REQUEST = b"\x00\x01"
# RFC 8489 section 5. aioice (which pulls in dnspython, ifaddr and its ICE agent) is
# imported only where a message is parsed or built, so a worker that has no WebRTC
# transport yet does not carry it.
STUN_COOKIE = struct.pack("!I", 0x2112A442)
STUN_ATTR_USERNAME = 0x0006

ICE_STATE_NEW = "new"
ICE_STATE_CONNECTED = "connected"
ICE_STATE_COMPLETED = "completed"
ICE_STATE_DISCONNECTED = "disconnected"
ICE_STATE_CLOSED = "closed"

EVENT_STATE_CHANGE = "icestatechange"
EVENT_SELECTED_TUPLE_CHANGE = "iceselectedtuplechange"
EVENT_TUPLE_ADDED = "tupleadded"
EVENT_TUPLE_REMOVED = "tupleremoved"
EVENT_UFRAG_REMOVED = "usernamefragmentremoved"

DROP_CLOSED = "ice closed"
DROP_MALFORMED = "malformed stun"
DROP_NOT_REQUEST = "stun not a request"


@dataclass(frozen=True)
class IceTuple:
    """The remote end of a 5-tuple that passed a connectivity check (RFC 8445 section 7.3)."""

    remote_ip: str
    remote_port: int
    protocol: str = "udp"


@dataclass(frozen=True)
class IceEvent:
    """A change the transport reports upward: `name` is one of the EVENT_* constants."""

    name: str
    value: object


@dataclass
class StunResult:
    """What handle_stun decided: a datagram to send back to the same tuple, events, or a drop."""

    response: bytes | None = None
    events: list[IceEvent] = field(default_factory=list)
    drop_reason: str | None = None


def random_ice_string(length: int) -> str:
    """Random credentials for ice-ufrag / ice-pwd (RFC 8445 section 5.3)."""
    return "".join(secrets.choice(ICE_CHARS) for _ in range(length))


def candidate_priority(local_preference: int) -> int:
    """Priority of a host candidate (RFC 8445 section 5.1.2.1)."""
    return (ICE_TYPE_PREFERENCE << 24) + (local_preference << 8) + (256 - ICE_COMPONENT_RTP)


def ice_candidates(ip: str, port: int, tcp_port: int | None = None) -> list[dict]:
    """Host candidates of the worker's shared ports, in mediasoup v3's IceCandidate shape."""
    candidates = [
        {
            "foundation": "udpcandidate",
            "priority": candidate_priority(ICE_LOCAL_PREFERENCE_UDP),
            "ip": ip,
            "address": ip,
            "protocol": "udp",
            "port": port,
            "type": "host",
        }
    ]
    if tcp_port is not None:
        candidates.append(
            {
                "foundation": "tcpcandidate",
                "priority": candidate_priority(ICE_LOCAL_PREFERENCE_TCP),
                "ip": ip,
                "address": ip,
                "protocol": "tcp",
                "port": tcp_port,
                "type": "host",
                # A lite agent only accepts connections (RFC 6544 section 4.5).
                "tcpType": "passive",
            }
        )
    return candidates


def ufrag_of(data: bytes) -> str | None:
    """The local ufrag from a Binding request's USERNAME "local:remote" (RFC 8445 section 7.2.2).

    Walks the attributes without parsing or checking the message, so the
    worker can pick the transport before any real work is done.
    """
    if (
        len(data) < STUN_HEADER_LENGTH
        or data[0:2] != STUN_BINDING_REQUEST
        or data[4:8] != STUN_COOKIE
    ):
        return None
    end = min(len(data), STUN_HEADER_LENGTH + struct.unpack_from("!H", data, 2)[0])
    pos = STUN_HEADER_LENGTH
    while pos + 4 <= end:
        attr_type, attr_length = struct.unpack_from("!HH", data, pos)
        if attr_type == STUN_ATTR_USERNAME:
            local, colon, _ = data[pos + 4 : pos + 4 + attr_length].partition(b":")
            if not colon or not local:
                return None
            try:
                return local.decode("ascii")
            except UnicodeDecodeError:
                return None
        pos += 4 + attr_length + (-attr_length & 3)  # attributes pad to 4 bytes
    return None


def error_response(request: stun.Message, code: int, reason: str) -> bytes:
    """A Binding error response with FINGERPRINT (RFC 8489 section 6.3.4)."""
    from aioice import stun
    response = stun.Message(
        message_method=stun.Method.BINDING,
        message_class=stun.Class.ERROR,
        transaction_id=request.transaction_id,
        attributes={"ERROR-CODE": (code, reason)},
    )
    response.add_fingerprint()
    return bytes(response)


def success_response(request: stun.Message, addr: tuple[str, int], password: str) -> bytes:
    """A Binding success response carrying the reflexive address (RFC 8445 section 7.3.1.4)."""
    from aioice import stun
    response = stun.Message(
        message_method=stun.Method.BINDING,
        message_class=stun.Class.RESPONSE,
        transaction_id=request.transaction_id,
        attributes={"XOR-MAPPED-ADDRESS": addr},
    )
    response.add_message_integrity(password.encode("utf8"))
    return bytes(response)


class IceLiteServer:
    """The controlled, lite side of ICE for one transport (RFC 8445 section 2.5, RFC 7675)."""

    def __init__(
        self,
        username_fragment: str | None = None,
        password: str | None = None,
        consent_timeout: float = CONSENT_TIMEOUT,
    ) -> None:
        self.username_fragment = username_fragment or random_ice_string(UFRAG_LENGTH)
        self.password = password or random_ice_string(PASSWORD_LENGTH)
        self.consent_timeout = consent_timeout
        self.state = ICE_STATE_NEW
        self.selected_tuple: IceTuple | None = None
        self._old_credentials: tuple[str, str] | None = None
        # Insertion order is age order; the value is the last valid check time.
        self._tuples: dict[IceTuple, float] = {}
        self._events: list[IceEvent] = []

    def ice_parameters(self) -> dict:
        """Local ICE parameters in mediasoup v3's IceParameters shape."""
        return {
            "usernameFragment": self.username_fragment,
            "password": self.password,
            "iceLite": True,
        }

    @property
    def username_fragments(self) -> tuple[str, ...]:
        """Every ufrag a check may currently use, for the worker's STUN demux table."""
        if self._old_credentials is None:
            return (self.username_fragment,)
        return (self.username_fragment, self._old_credentials[0])

    @property
    def tuples(self) -> tuple[IceTuple, ...]:
        """The tuples that passed a check and may carry DTLS and media (RFC 8445 section 7.3.1.4)."""
        return tuple(self._tuples)

    def is_valid_tuple(self, addr: tuple[str, int], protocol: str = "udp") -> bool:
        """Whether non-STUN traffic from addr belongs to this transport."""
        return IceTuple(addr[0], addr[1], protocol) in self._tuples

    def take_events(self) -> list[IceEvent]:
        """Queued events: handle_stun returns them itself; after other calls, take them here."""
        events, self._events = self._events, []
        return events

    def handle_stun(
        self, data: bytes, addr: tuple[str, int], now: float, protocol: str = "udp"
    ) -> StunResult:
        """Answer one STUN datagram from addr (RFC 8445 section 7.3, RFC 8489 section 6.3)."""
        from aioice import stun
        if self.state == ICE_STATE_CLOSED:
            return StunResult(drop_reason=DROP_CLOSED)
        if data[4:8] != STUN_COOKIE:
            return StunResult(drop_reason=DROP_MALFORMED)
        try:
            request = stun.parse_message(data)
        except (ValueError, struct.error):
            return StunResult(drop_reason=DROP_MALFORMED)
        # We send no requests, so responses and indications need no answer.
        if request.message_class != stun.Class.REQUEST:
            return StunResult(drop_reason=DROP_NOT_REQUEST)

        rejection = self._reject(request)
        if rejection is not None:
            code, reason = rejection
            return StunResult(response=error_response(request, code, reason))
        password = self._authenticate(request)
        if password is None:
            return StunResult(response=error_response(request, 401, "Unauthorized"))
        # A lite agent is always controlled; a peer that says so too is in
        # conflict, and only it can switch (RFC 8445 section 7.3.1.1).
        if "ICE-CONTROLLED" in request.attributes:
            return StunResult(response=error_response(request, 487, "Role Conflict"))

        response = success_response(request, addr, password)
        self._handle_tuple(
            IceTuple(addr[0], addr[1], protocol), "USE-CANDIDATE" in request.attributes, now
        )
        return StunResult(response=response, events=self.take_events())

    def check_consent(self, now: float) -> bool:
        """Whether we may still send to the selected tuple (RFC 7675 section 5.1).

        When the selected tuple has had no valid check for `consent_timeout`
        seconds, the state becomes "disconnected" and every tuple is dropped;
        the events are left for take_events().
        """
        if self.state not in (ICE_STATE_CONNECTED, ICE_STATE_COMPLETED):
            return False
        assert self.selected_tuple is not None
        if now - self._tuples[self.selected_tuple] <= self.consent_timeout:
            return True
        for ice_tuple in list(self._tuples):
            self._remove(ice_tuple)
        self.selected_tuple = None
        self._set_state(ICE_STATE_DISCONNECTED)
        return False

    def restart(self) -> dict:
        """New local credentials for an ICE restart (RFC 8445 section 9); returns the new parameters.

        The previous credentials stay valid until a check uses the new ones.
        """
        if self._old_credentials is not None:
            self._events.append(IceEvent(EVENT_UFRAG_REMOVED, self._old_credentials[0]))
        self._old_credentials = (self.username_fragment, self.password)
        self.username_fragment = random_ice_string(UFRAG_LENGTH)
        self.password = random_ice_string(PASSWORD_LENGTH)
        return self.ice_parameters()

    def force_selected_tuple(self, addr: tuple[str, int], protocol: str = "udp") -> None:
        """Follow a peer that sends DTLS or media on another valid tuple without nominating it.

        mediasoup does the same for aggressive-nomination clients; the
        selection event is left for take_events().
        """
        ice_tuple = IceTuple(addr[0], addr[1], protocol)
        if self.state in (ICE_STATE_CONNECTED, ICE_STATE_COMPLETED) and ice_tuple in self._tuples:
            self._select(ice_tuple)

    def remove_tuple(self, addr: tuple[str, int], protocol: str = "udp") -> None:
        """Forget a tuple whose TCP connection closed; reselect or disconnect (events queued)."""
        ice_tuple = IceTuple(addr[0], addr[1], protocol)
        if ice_tuple not in self._tuples:
            return
        self._remove(ice_tuple)
        if ice_tuple != self.selected_tuple:
            return
        self.selected_tuple = None
        if self._tuples:
            self._select(next(reversed(self._tuples)))
        else:
            self._set_state(ICE_STATE_DISCONNECTED)

    def close(self) -> None:
        """Stop answering; the owner tears down its own tables, so no events are queued."""
        self.state = ICE_STATE_CLOSED
        self.selected_tuple = None
        self._tuples.clear()
        self._events.clear()

    def _reject(self, request: stun.Message) -> tuple[int, str] | None:
        """The 400 answer for a request ICE cannot use (RFC 8445 section 7.3, RFC 8489 section 9.1.3)."""
        from aioice import stun
        if request.message_method != stun.Method.BINDING:
            return (400, "Bad Request: not a Binding request")
        if "FINGERPRINT" not in request.attributes:
            return (400, "Bad Request: missing FINGERPRINT")
        if "USERNAME" not in request.attributes or "MESSAGE-INTEGRITY" not in request.attributes:
            return (400, "Bad Request: missing USERNAME or MESSAGE-INTEGRITY")
        if "PRIORITY" not in request.attributes:
            return (400, "Bad Request: missing PRIORITY")
        return None

    def _authenticate(self, request: stun.Message) -> str | None:
        """The password that authenticates the request, or None (RFC 8489 section 9.1.3)."""
        local_ufrag = request.attributes["USERNAME"].partition(":")[0]
        if self._check_credentials(request, local_ufrag, self.username_fragment, self.password):
            if self._old_credentials is not None:
                # The peer has the new credentials: the old ones are done.
                self._events.append(IceEvent(EVENT_UFRAG_REMOVED, self._old_credentials[0]))
                self._old_credentials = None
            return self.password
        if self._old_credentials is not None and self._check_credentials(
            request, local_ufrag, *self._old_credentials
        ):
            return self._old_credentials[1]
        return None

    @staticmethod
    def _check_credentials(
        request: stun.Message, local_ufrag: str, ufrag: str, password: str
    ) -> bool:
        """USERNAME's first part and MESSAGE-INTEGRITY both match (RFC 8445 section 7.3)."""
        return secrets.compare_digest(local_ufrag.encode("utf8"), ufrag.encode("utf8")) and (
            request.check_message_integrity(password.encode("utf8"))
        )

    def _handle_tuple(self, ice_tuple: IceTuple, use_candidate: bool, now: float) -> None:
        """Record a valid check and move the state machine as mediasoup's IceServer does."""
        self._add(ice_tuple, now)
        if self.state in (ICE_STATE_NEW, ICE_STATE_DISCONNECTED):
            self._select(ice_tuple)
            self._set_state(ICE_STATE_COMPLETED if use_candidate else ICE_STATE_CONNECTED)
        elif use_candidate:
            # RFC 8445 section 7.3.1.5: a nomination selects its pair.
            self._select(ice_tuple)
            self._set_state(ICE_STATE_COMPLETED)

    def _add(self, ice_tuple: IceTuple, now: float) -> None:
        """Store or refresh a tuple; evict the oldest non-selected one beyond MAX_TUPLES."""
        if ice_tuple in self._tuples:
            self._tuples[ice_tuple] = now
            return
        self._tuples[ice_tuple] = now
        self._events.append(IceEvent(EVENT_TUPLE_ADDED, ice_tuple))
        if len(self._tuples) > MAX_TUPLES:
            oldest = next(t for t in self._tuples if t not in (ice_tuple, self.selected_tuple))
            self._remove(oldest)

    def _remove(self, ice_tuple: IceTuple) -> None:
        """Drop a tuple and tell the worker's address demux."""
        del self._tuples[ice_tuple]
        self._events.append(IceEvent(EVENT_TUPLE_REMOVED, ice_tuple))

    def _select(self, ice_tuple: IceTuple) -> None:
        """Make ice_tuple the one media is sent to."""
        if ice_tuple != self.selected_tuple:
            self.selected_tuple = ice_tuple
            self._events.append(IceEvent(EVENT_SELECTED_TUPLE_CHANGE, ice_tuple))

    def _set_state(self, state: str) -> None:
        """Change state, reporting only real transitions."""
        if state != self.state:
            self.state = state
            self._events.append(IceEvent(EVENT_STATE_CHANGE, state))
