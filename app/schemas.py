"""The REST API's bodies, queries and answers as pydantic models (PROTOCOL.md §2): they validate
requests, shape answers and generate the OpenAPI document."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic.alias_generators import to_camel

from app.models import (
    CHAT_TEXT_MAX,
    DISPLAY_NAME_MAX,
    EMAIL_MAX,
    ROOM_NAME_MAX,
    ChatMessage,
    Room,
    User,
)

PASSWORD_MIN = 8
PASSWORD_MAX = 256
MAX_PARTICIPANTS_LIMIT = 10_000
HISTORY_LIMIT_DEFAULT = 50
HISTORY_LIMIT_MAX = 200

# Names hold a visible character and no control characters (PostgreSQL refuses NUL in text).
# The classes are spelled out rather than `\s`, which JavaScript, Python and Rust regexes (the
# document's readers, the test generator and pydantic) each define differently.
CONTROL = r"\x00-\x1f\x7f-\x9f"
SPACE = r"\x20\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
VISIBLE_TEXT = rf"^[^{CONTROL}]*[^{CONTROL}{SPACE}][^{CONTROL}]*$"
EMAIL_PATTERN = rf"^[^@{CONTROL}{SPACE}]+@[^@{CONTROL}{SPACE}]+$"


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, to the millisecond: `2025-01-31T12:00:00.000Z`."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def decimal_digits(value: object) -> object:
    """A query-string number is plain ASCII digits: no sign, spaces, underscores or decimal point."""
    if isinstance(value, str) and not re.fullmatch(r"[0-9]{1,9}", value):
        raise ValueError("must be a whole number written in digits")
    return value


def visible(max_length: int):
    return Annotated[
        str,
        StringConstraints(min_length=1, max_length=max_length, pattern=VISIBLE_TEXT),
        AfterValidator(str.strip),
    ]


Timestamp = Annotated[
    datetime,
    PlainSerializer(iso_utc, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "example": "2025-01-31T12:00:00.000Z"},
                   mode="serialization"),
]
DisplayName = visible(DISPLAY_NAME_MAX)
RoomName = visible(ROOM_NAME_MAX)
Email = Annotated[str, StringConstraints(min_length=3, max_length=EMAIL_MAX, pattern=EMAIL_PATTERN)]
Password = Annotated[str, StringConstraints(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)]


class Body(BaseModel):
    """A JSON request body: camelCase names, JSON types taken strictly (`"5"` is not a number)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, strict=True)


class Answer(BaseModel):
    """A JSON answer: camelCase names."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


# requests


class RegisterBody(Body):
    email: Email
    password: Password
    display_name: DisplayName


class LoginBody(Body):
    email: Email
    password: Annotated[str, StringConstraints(max_length=PASSWORD_MAX)]


class GuestBody(Body):
    display_name: DisplayName


class CreateRoomBody(Body):
    name: RoomName
    is_public: bool = True
    max_participants: Annotated[int, Field(ge=1, le=MAX_PARTICIPANTS_LIMIT)] | None = None


class HistoryQuery(BaseModel):
    """`GET /api/rooms/{roomId}/messages`: the query string (values arrive as text)."""

    before: str | None = Field(
        None, description="A message id, or an ISO 8601 time: only messages sent before it.",
        json_schema_extra={"example": "2025-01-31T12:00:00.000Z"},
    )
    limit: int = Field(HISTORY_LIMIT_DEFAULT, ge=1, le=HISTORY_LIMIT_MAX, description="How many messages, 1..200.")

    @field_validator("limit", mode="before")
    @classmethod
    def _digits_only(cls, value: object) -> object:
        return decimal_digits(value)


# answers


class UserOut(Answer):
    id: str
    email: str | None
    display_name: str
    is_guest: bool

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(id=user.id, email=user.email, display_name=user.display_name, is_guest=user.is_guest)


class AuthAnswer(Answer):
    user: UserOut
    token: str = Field(description="A JWT (HS256) to send as `Authorization: Bearer <token>`.")


class MeAnswer(Answer):
    user: UserOut


class RoomOut(Answer):
    id: str
    name: str
    owner_id: str
    is_public: bool
    max_participants: int | None
    created_at: Timestamp
    participant_count: int = Field(description="Peers in the room now.")

    @classmethod
    def of(cls, room: Room, participant_count: int) -> RoomOut:
        return cls(id=room.id, name=room.name, owner_id=room.owner_id, is_public=room.is_public,
                   max_participants=room.max_participants, created_at=room.created_at,
                   participant_count=participant_count)


class RoomAnswer(Answer):
    room: RoomOut


class RoomsAnswer(Answer):
    rooms: list[RoomOut]


class ChatMessageOut(Answer):
    """PROTOCOL.md §3's `message`: the same shape in the `chat` ack, the `chat` event and the history."""

    id: str
    room_id: str
    peer_id: str
    user_id: str
    display_name: str
    text: Annotated[str, StringConstraints(max_length=CHAT_TEXT_MAX)]
    ts: Timestamp

    @classmethod
    def of(cls, message: ChatMessage) -> ChatMessageOut:
        return cls(id=message.id, room_id=message.room_id, peer_id=message.peer_id,
                   user_id=message.user_id, display_name=message.display_name, text=message.text,
                   ts=message.created_at)


def chat_message_json(message: ChatMessage) -> dict[str, Any]:
    """A stored message as the `chat` ack and event carry it (signaling.server.MessageShape)."""
    return ChatMessageOut.of(message).model_dump(mode="json", by_alias=True)


class MessagesAnswer(Answer):
    messages: list[ChatMessageOut] = Field(description="Oldest first: the newest message is last.")


class WorkerHealth(Answer):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    index: int
    pid: int | None
    rtc_port: int
    status: Literal["ok", "dead", "unresponsive", "restarting"] = Field(
        description="`restarting`: the worker died and a new one is starting on the same port; "
                    "`dead`: it died and is not respawned (it crash-looped, or respawning is off)")
    rooms: int
    restarts: int = Field(0, description="How many times this worker slot was respawned since the node started")


class HealthAnswer(Answer):
    status: Literal["ok", "degraded"]
    db: Literal["ok", "unreachable"]
    redis: Literal["ok", "unreachable", "disabled"]
    workers: list[WorkerHealth]


class ErrorDetail(Answer):
    code: str = Field(description="snake_case, e.g. `invalid_input`, `not_found`, `unauthorized`.")
    message: str


class ErrorAnswer(Answer):
    """Every failure, whatever the route: never a stack trace, never an HTML page."""

    error: ErrorDetail
