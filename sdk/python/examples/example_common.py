"""What the examples share: the command line, joining (or creating) a room, and running until stopped."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

import aiohttp
from switchyard_client import ApiError, Room, SignalingError, SwitchyardClient


def parser(description: str, name: str) -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(description=description)
    parse.add_argument("--url", default="http://localhost:3000", help="the Switchyard node (make run)")
    parse.add_argument("--room", help="room id to join; without it a new room is created and printed")
    parse.add_argument("--name", default=name, help="display name (a guest of that name signs in)")
    parse.add_argument("--duration", type=float, default=None,
                       help="leave after this many seconds (default: run until Ctrl-C)")
    parse.add_argument("--verbose", action="store_true")
    return parse


async def join(args: argparse.Namespace) -> Room:
    """Sign in as a guest, create a room when none is given, and join it."""
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    account = SwitchyardClient(args.url, handle_sigint=False)
    try:
        await account.guest(args.name)
        room_id = args.room
        if room_id is None:
            room_id = (await account.create_room(f"{args.name}'s room"))["id"]
            print(f"created room {room_id}: open {args.url.rstrip('/')}/rooms/{room_id}", flush=True)
    finally:
        await account.close()
    room = await Room.join(args.url, room_id, args.name, token=account.token)
    print(f"{args.name} joined room {room_id} as peer {room.peer_id}", flush=True)
    return room


async def run_until_stopped(room: Room, duration: float | None) -> None:
    """Until Ctrl-C, SIGTERM, the end of `duration` or the room closing; then leave."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    room.on("closed", lambda reason: stop.set())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), duration)
    await room.leave()


def run(main: Callable[[], Awaitable[None]]) -> None:
    """asyncio.run(main()); a refusal by the server or an unreachable one is one line and exit code 1."""
    try:
        asyncio.run(main())
    except (ApiError, SignalingError, aiohttp.ClientError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
