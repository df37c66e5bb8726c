"""The persisted objects: users, rooms, chat messages, room sessions, recordings (SQLAlchemy 2; SQLite, PostgreSQL)."""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

ID_LENGTH = 36
PEER_ID_MAX = 64
EMAIL_MAX = 254
DISPLAY_NAME_MAX = 64
ROOM_NAME_MAX = 100
CHAT_TEXT_MAX = 2000


def new_id() -> str:
    """A random UUID in its canonical text form: ids are strings on the wire and in every table."""
    return str(uuid.uuid4())


class TimeOrderedIds:
    """UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then a counter and random bits, so ids made
    by one process sort in the order they were made, even within one millisecond."""

    def __init__(self):
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def __call__(self) -> str:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms > self._last_ms:
                self._last_ms, self._counter = ms, secrets.randbits(10)  # leaves room to count up
            else:
                self._counter += 1
                if self._counter > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
                    self._last_ms, self._counter = self._last_ms + 1, 0
            value = (self._last_ms << 80) | (0x7 << 76) | (self._counter << 64) | (0b10 << 62) | secrets.randbits(62)
        return str(uuid.UUID(int=value))


new_time_ordered_id = TimeOrderedIds()


def utc_now() -> datetime:
    """Now, in UTC, cut to milliseconds so that a time sent on the wire matches the stored one exactly."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class UtcDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL keeps `timestamptz`; SQLite has no time zones, so the value is stored as naive
    UTC and given its zone back on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Named constraints, so that later migrations (SQLite's batch mode above all) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    """An account; a guest has no email and no password."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    # Stored lower-cased, so the unique index makes addresses unique case-insensitively.
    email: Mapped[str | None] = mapped_column(String(EMAIL_MAX), unique=True)
    display_name: Mapped[str] = mapped_column(String(DISPLAY_NAME_MAX))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_guest: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class Room(Base):
    """A meeting room; a deleted room keeps its row (and its chat history) with `deleted_at` set."""

    __tablename__ = "rooms"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(ROOM_NAME_MAX))
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    max_participants: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ChatMessage(Base):
    """One chat line sent in a room."""

    __tablename__ = "chat_messages"
    __table_args__ = (Index("ix_chat_messages_room_created", "room_id", "created_at"),)

    # Time-ordered, so that (created_at, id) puts two messages of one millisecond in the order sent.
    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_time_ordered_id)
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    peer_id: Mapped[str] = mapped_column(String(PEER_ID_MAX))
    display_name: Mapped[str] = mapped_column(String(DISPLAY_NAME_MAX))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class RoomSession(Base):
    """One peer's stay in a room: from `join` to `leave` or disconnect."""

    __tablename__ = "room_sessions"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    peer_id: Mapped[str] = mapped_column(String(PEER_ID_MAX))
    joined_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    left_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


RECORDING_STATE_MAX = 16
STOP_REASON_MAX = 32


class Recording(Base):
    """A recording of a room (every producer) or of one producer: its state and, once stopped, its files.

    `files` is a JSON list of `{name, sizeBytes}`, the segment files in the recording's folder.
    """

    __tablename__ = "recordings"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    started_by: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    producer_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    state: Mapped[str] = mapped_column(String(RECORDING_STATE_MAX), default="recording")
    stop_reason: Mapped[str | None] = mapped_column(String(STOP_REASON_MAX))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    duration_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    files: Mapped[str] = mapped_column(Text, default="[]")
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
