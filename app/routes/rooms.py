"""`/api/rooms`: create, list, look up and delete rooms; a room's chat history."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from app.api import Call, Endpoint, invalid_input, reply
from app.errors import ApiError
from app.models import Room
from app.schemas import (
    ChatMessageOut,
    CreateRoomBody,
    HistoryQuery,
    MessagesAnswer,
    RoomAnswer,
    RoomOut,
    RoomsAnswer,
)
from app.store import is_id


def no_such_room() -> ApiError:
    return ApiError(404, "not_found", "no such room")


async def live_room(call: Call) -> Room:
    room = await call.store.room(call.request.match_info["roomId"])
    if room is None:
        raise no_such_room()
    return room


async def room_out(call: Call, room: Room) -> RoomOut:
    counts = await call.runtime.rooms_live.participant_counts([room.id])
    return RoomOut.of(room, counts.get(room.id, 0))


async def create_room(call: Call):
    body: CreateRoomBody = call.body
    room = await call.store.create_room(owner_id=call.me.id, name=body.name, is_public=body.is_public,
                                        max_participants=body.max_participants)
    return reply(RoomAnswer(room=await room_out(call, room)), status=201)


async def list_rooms(call: Call):
    rooms = await call.store.rooms_visible_to(call.me.id)
    counts = await call.runtime.rooms_live.participant_counts([room.id for room in rooms])
    return reply(RoomsAnswer(rooms=[RoomOut.of(room, counts.get(room.id, 0)) for room in rooms]))


async def get_room(call: Call):
    return reply(RoomAnswer(room=await room_out(call, await live_room(call))))


async def delete_room(call: Call):
    room = await live_room(call)
    if room.owner_id != call.me.id:
        raise ApiError(403, "forbidden", "only the room's owner can delete it")
    if await call.store.delete_room(room.id):
        await call.runtime.rooms_live.close_room(room.id)
    return web.Response(status=204)


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; one without a zone is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise invalid_input("before: must be a message id or an ISO 8601 time") from None


async def room_messages(call: Call):
    room = await live_room(call)
    query: HistoryQuery = call.query
    before_time = before_message = None
    if query.before is not None:
        if is_id(query.before):
            before_message = await call.store.chat_message(room.id, query.before)
            if before_message is None:
                raise invalid_input("before: no message with this id in this room")
        else:
            before_time = parse_time(query.before)
    messages = await call.store.chat_history(room.id, limit=query.limit, before_time=before_time,
                                             before_message=before_message)
    return reply(MessagesAnswer(messages=[ChatMessageOut.of(m) for m in messages]))


ENDPOINTS = [
    Endpoint("POST", "/api/rooms", create_room, "Create a room", "rooms", status=201, answer=RoomAnswer,
             body=CreateRoomBody, errors=(400, 401, 413, 415, 422),
             description="The caller owns the room. A private room (`isPublic: false`) is left out of "
                         "other users' lists but can be joined by anyone who knows its id."),
    Endpoint("GET", "/api/rooms", list_rooms, "List rooms", "rooms", answer=RoomsAnswer, errors=(401,),
             description="Public rooms and the caller's own, newest first, each with its live `participantCount`."),
    Endpoint("GET", "/api/rooms/{roomId}", get_room, "Look up a room", "rooms", answer=RoomAnswer,
             errors=(401, 404)),
    Endpoint("DELETE", "/api/rooms/{roomId}", delete_room, "Delete a room", "rooms", status=204,
             errors=(401, 403, 404),
             description="Owner only. Everyone in the room is sent `room-closed` and disconnected."),
    Endpoint("GET", "/api/rooms/{roomId}/messages", room_messages, "A room's chat history", "rooms",
             answer=MessagesAnswer, query=HistoryQuery, errors=(401, 404, 422),
             description="Up to `limit` messages sent before `before` (a message id or an ISO 8601 "
                         "time), newest last. Page back by passing the first message's id as `before`."),
]
