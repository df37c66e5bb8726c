"""An echo agent: publishes back, with a delay, every audio track it hears in the room.

    python sdk/python/examples/echo_agent.py --room ROOM_ID --delay 1.5

The shape of a listening agent (transcription, an assistant): a track in, frames processed in
Python, a track out.
"""

from __future__ import annotations

from collections import deque

from aiortc.mediastreams import MediaStreamTrack
from av import AudioFrame
from example_common import join, parser, run, run_until_stopped
from switchyard_client import RemoteTrack


def silence_like(frame: AudioFrame) -> AudioFrame:
    silent = AudioFrame(format=frame.format.name, layout=frame.layout.name, samples=frame.samples)
    for plane in silent.planes:
        plane.update(bytes(plane.buffer_size))
    silent.sample_rate = frame.sample_rate
    return silent


class DelayedAudio(MediaStreamTrack):
    """The source's audio `delay` seconds late: silence first, then each frame in turn.

    Paced by the source: one frame out for each frame in, stamped with the incoming frame's time.
    """

    kind = "audio"

    def __init__(self, source: MediaStreamTrack, delay: float):
        super().__init__()
        self.source = source
        self.delay = delay
        self.held: deque[AudioFrame] = deque()
        self.held_seconds = 0.0

    async def recv(self) -> AudioFrame:
        frame = await self.source.recv()
        self.held.append(frame)
        self.held_seconds += frame.samples / frame.sample_rate
        if self.held_seconds <= self.delay:
            out = silence_like(frame)
        else:
            out = self.held.popleft()
            self.held_seconds -= out.samples / out.sample_rate
        out.pts, out.time_base = frame.pts, frame.time_base
        return out


async def main() -> None:
    parse = parser("Echo every voice in a Switchyard room back, late.", "Echo")
    parse.add_argument("--delay", type=float, default=1.0, help="seconds of delay")
    args = parse.parse_args()
    room = await join(args)

    @room.on("track")
    async def on_track(remote: RemoteTrack) -> None:
        if remote.kind == "audio":
            publication = await room.publish(DelayedAudio(remote.track, args.delay),
                                             app_data={"echoOf": remote.producer_id})
            print(f"echoing {remote.peer.display_name} as producer {publication.producer_id}", flush=True)

    @room.on("track-ended")
    async def on_track_ended(remote: RemoteTrack) -> None:
        for publication in list(room.publications):
            if publication.app_data.get("echoOf") == remote.producer_id and not room.closed:
                await room.unpublish(publication)

    await run_until_stopped(room, args.duration)


if __name__ == "__main__":
    run(main)
