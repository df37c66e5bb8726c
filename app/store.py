"""Reads and writes of users, rooms, chat messages, room sessions and recordings: the one place that runs queries.

The REST handlers use it, and so does the signaling layer (chat persistence, who joined and left).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.models import ChatMessage, Recording, Room, RoomSession, User, utc_now


class EmailTaken(Exception):
    """An account with this email (compared case-insensitively) exists already."""


def normalize_email(email: str) -> str:
    """Addresses are compared, and stored, lower-cased."""
    return email.strip().lower()


def is_id(value: str) -> bool:
    """True for an id as this server writes them (a canonical UUID); anything else cannot be found."""
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


class Store:
    def __init__(self, engine: AsyncEngine):
        self.session = async_sessionmaker(engine, expire_on_commit=False)

    # users

    async def create_user(self, *, email: str, display_name: str, password_hash: str) -> User:
        user = User(email=normalize_email(email), display_name=display_name,
                    password_hash=password_hash, is_guest=False)
        async with self.session() as session:
            existing = await session.scalar(select(User.id).where(User.email == user.email))
            if existing is not None:
                raise EmailTaken(user.email)
            session.add(user)
            try:
                await session.commit()
            except IntegrityError:  # registered at the same moment by someone else
                raise EmailTaken(user.email) from None
        return user

    async def create_guest(self, display_name: str) -> User:
        user = User(email=None, display_name=display_name, password_hash=None, is_guest=True)
        async with self.session() as session:
            session.add(user)
            await session.commit()
        return user

    async def user(self, user_id: str) -> User | None:
        if not is_id(user_id):
            return None
        async with self.session() as session:
            return await session.get(User, user_id)

    async def user_by_email(self, email: str) -> User | None:
        async with self.session() as session:
            return await session.scalar(select(User).where(User.email == normalize_email(email)))

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        async with self.session() as session:
            await session.execute(update(User).where(User.id == user_id).values(password_hash=password_hash))
            await session.commit()

    # rooms

    async def create_room(self, *, owner_id: str, name: str, is_public: bool,
                          max_participants: int | None) -> Room:
        room = Room(owner_id=owner_id, name=name, is_public=is_public, max_participants=max_participants)
        async with self.session() as session:
            session.add(room)
            await session.commit()
        return room

    async def room(self, room_id: str) -> Room | None:
        """A room that exists and is not deleted."""
        if not is_id(room_id):
            return None
        async with self.session() as session:
            room = await session.get(Room, room_id)
        return room if room is not None and room.deleted_at is None else None

    async def rooms_visible_to(self, user_id: str) -> list[Room]:
        """Public rooms and the user's own, newest first."""
        query = (
            select(Room)
            .where(Room.deleted_at.is_(None), or_(Room.is_public.is_(True), Room.owner_id == user_id))
            .order_by(Room.created_at.desc(), Room.id.desc())
        )
        async with self.session() as session:
            return list(await session.scalars(query))

    async def delete_room(self, room_id: str) -> bool:
        """Mark a room deleted; its chat history and sessions stay. False if it was not there."""
        async with self.session() as session:
            result = await session.execute(
                update(Room).where(Room.id == room_id, Room.deleted_at.is_(None)).values(deleted_at=utc_now())
            )
            await session.commit()
        return result.rowcount == 1

    # chat

    async def add_chat_message(self, *, room_id: str, user_id: str, peer_id: str, display_name: str,
                               text: str) -> ChatMessage:
        message = ChatMessage(room_id=room_id, user_id=user_id, peer_id=peer_id,
                              display_name=display_name, text=text)
        async with self.session() as session:
            session.add(message)
            await session.commit()
        return message

    async def chat_message(self, room_id: str, message_id: str) -> ChatMessage | None:
        if not is_id(message_id):
            return None
        async with self.session() as session:
            message = await session.get(ChatMessage, message_id)
        return message if message is not None and message.room_id == room_id else None

    async def chat_history(self, room_id: str, *, limit: int, before_time: datetime | None = None,
                           before_message: ChatMessage | None = None) -> list[ChatMessage]:
        """Up to `limit` messages older than a time or a message, oldest first (newest last)."""
        query = select(ChatMessage).where(ChatMessage.room_id == room_id)
        if before_time is not None:
            query = query.where(ChatMessage.created_at < before_time)
        if before_message is not None:
            # (created_at, id) orders messages totally, even two sent in the same millisecond.
            query = query.where(or_(
                ChatMessage.created_at < before_message.created_at,
                and_(ChatMessage.created_at == before_message.created_at, ChatMessage.id < before_message.id),
            ))
        query = query.order_by(ChatMessage.created_at.desc(), ChatMessage.id.desc()).limit(limit)
        async with self.session() as session:
            newest_first = list(await session.scalars(query))
        return newest_first[::-1]

    # room sessions

    async def session_started(self, *, room_id: str, user_id: str, peer_id: str) -> RoomSession:
        record = RoomSession(room_id=room_id, user_id=user_id, peer_id=peer_id)
        async with self.session() as session:
            session.add(record)
            await session.commit()
        return record

    async def session_ended(self, session_id: str) -> None:
        async with self.session() as session:
            await session.execute(
                update(RoomSession).where(RoomSession.id == session_id, RoomSession.left_at.is_(None))
                .values(left_at=utc_now())
            )
            await session.commit()

    async def room_sessions(self, room_id: str) -> list[RoomSession]:
        """Every stay in a room, oldest first."""
        query = select(RoomSession).where(RoomSession.room_id == room_id).order_by(RoomSession.joined_at)
        async with self.session() as session:
            return list(await session.scalars(query))

    # recordings

    async def create_recording(self, *, room_id: str, started_by: str, producer_id: str | None) -> Recording:
        record = Recording(room_id=room_id, started_by=started_by, producer_id=producer_id, state="recording",
                           size_bytes=0, duration_ms=0, files="[]")
        async with self.session() as session:
            session.add(record)
            await session.commit()
        return record

    async def recording(self, room_id: str, recording_id: str) -> Recording | None:
        if not is_id(recording_id):
            return None
        async with self.session() as session:
            record = await session.get(Recording, recording_id)
        return record if record is not None and record.room_id == room_id else None

    async def recordings(self, room_id: str) -> list[Recording]:
        """A room's recordings, newest first."""
        query = (select(Recording).where(Recording.room_id == room_id)
                 .order_by(Recording.started_at.desc(), Recording.id.desc()))
        async with self.session() as session:
            return list(await session.scalars(query))

    async def recording_stopped(self, recording_id: str, *, state: str, stop_reason: str, size_bytes: int,
                                duration_ms: int, files: str) -> Recording | None:
        async with self.session() as session:
            record = await session.get(Recording, recording_id)
            if record is None:
                return None
            record.state, record.stop_reason, record.stopped_at = state, stop_reason, utc_now()
            record.size_bytes, record.duration_ms, record.files = size_bytes, duration_ms, files
            await session.commit()
        return record

    async def abandon_recordings(self) -> int:
        """Recordings a previous run left `recording` (it was killed): they are stopped, files as found."""
        async with self.session() as session:
            result = await session.execute(
                update(Recording).where(Recording.state == "recording")
                .values(state="stopped", stop_reason="server_stopped", stopped_at=utc_now())
            )
            await session.commit()
        return result.rowcount
