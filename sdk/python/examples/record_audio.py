"""A listener that saves each participant's audio to a WAV file (16-bit, 48 kHz, stereo).

    python sdk/python/examples/record_audio.py --room ROOM_ID --out recordings/

One file per audio track, named after its participant: `Alice-1a2b3c.wav`.
"""

from __future__ import annotations

import asyncio
import re
import wave
from pathlib import Path

from aiortc.mediastreams import MediaStreamError
from av import AudioResampler
from example_common import join, parser, run, run_until_stopped
from switchyard_client import RemoteTrack

RATE, CHANNELS = 48000, 2


async def record(remote: RemoteTrack, folder: Path) -> None:
    """Write the decoded track to WAV until it ends (or the listener leaves)."""
    name = re.sub(r"[^\w.-]+", "_", remote.peer.display_name or "peer")
    path = folder / f"{name}-{remote.peer.peer_id[:6]}.wav"
    resampler = AudioResampler(format="s16", layout="stereo", rate=RATE)
    print(f"recording {remote.peer.display_name} to {path}", flush=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(CHANNELS)
        out.setsampwidth(2)
        out.setframerate(RATE)
        try:
            while True:
                frame = await remote.track.recv()
                for packed in resampler.resample(frame):
                    out.writeframes(bytes(packed.planes[0])[:packed.samples * CHANNELS * 2])
        except MediaStreamError:
            pass  # the track ended: the peer left or stopped publishing
        except asyncio.CancelledError:
            pass  # the listener is leaving; `with` closes the file with a valid header


async def main() -> None:
    parse = parser("Save each participant's audio in a Switchyard room to WAV.", "Recorder")
    parse.add_argument("--out", default="recordings", help="folder for the WAV files")
    args = parse.parse_args()
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    room = await join(args)
    recordings: list[asyncio.Task[None]] = []

    @room.on("track")
    def on_track(remote: RemoteTrack) -> None:
        if remote.kind == "audio":
            recordings.append(asyncio.ensure_future(record(remote, folder)))

    await run_until_stopped(room, args.duration)
    for task in recordings:
        task.cancel()
    await asyncio.gather(*recordings, return_exceptions=True)


if __name__ == "__main__":
    run(main)
