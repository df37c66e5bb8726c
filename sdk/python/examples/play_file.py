"""A bot that joins a room and plays a media file into it (audio and/or video, through aiortc).

    python sdk/python/examples/play_file.py --room ROOM_ID talk.mp4 --loop
"""

from __future__ import annotations

from aiortc.contrib.media import MediaPlayer
from example_common import join, parser, run, run_until_stopped


async def main() -> None:
    parse = parser("Play a media file into a Switchyard room.", "Bot")
    parse.add_argument("file", help="any file or URL FFmpeg reads (mp4, webm, wav, ogg ...)")
    parse.add_argument("--loop", action="store_true", help="start again at the end")
    args = parse.parse_args()
    player = MediaPlayer(args.file, loop=args.loop)
    room = await join(args)
    for track in (player.audio, player.video):
        if track is not None:
            publication = await room.publish(track)
            print(f"publishing {publication.kind} as producer {publication.producer_id}", flush=True)
    await run_until_stopped(room, args.duration)


if __name__ == "__main__":
    run(main)
