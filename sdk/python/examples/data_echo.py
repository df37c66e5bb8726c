"""A data-channel bot: answers every message on the room's data channels over a channel of its own.

    python sdk/python/examples/data_echo.py --room ROOM_ID

Each text message `m` it receives on any other peer's data channel comes back as `echo: m` on its
channel "echo" (binary messages come back as they were), so every peer sees the answer as a `data`
event from "Echo". The shape of a bot that talks over data channels: messages in, messages out.
"""

from __future__ import annotations

from example_common import join, parser, run, run_until_stopped
from switchyard_client import Peer, RemoteDataChannel


async def main() -> None:
    args = parser("Answer every data-channel message in a Switchyard room.", "Echo").parse_args()
    room = await join(args)
    channel = await room.publish_data("echo")
    print(f"echoing data messages on channel {channel.id}", flush=True)

    @room.on("data-channel")
    def on_channel(remote: RemoteDataChannel) -> None:
        print(f"subscribed to {remote.peer.display_name}'s channel {remote.label!r}", flush=True)

    @room.on("data")
    def on_data(message: str | bytes, peer: Peer, label: str) -> None:
        print(f"{peer.display_name} on {label!r}: {message!r}", flush=True)
        channel.send(f"echo: {message}" if isinstance(message, str) else message)

    await run_until_stopped(room, args.duration)


if __name__ == "__main__":
    run(main)
