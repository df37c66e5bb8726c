"""The harness' one `loadgen.synth.SyntheticMedia`, run in slices from asyncio.

Each slice runs in a thread without the GIL, so signaling, ICE and DTLS of
participants still joining go on in the event loop meanwhile. Sockets,
streams and consumers can be added only between slices: `add()` queues the
change and returns once the runner has made it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np

from loadgen.synth import SyntheticMedia

KIND_AUDIO = 0
KIND_VIDEO = 1


class MediaHub:
    def __init__(self) -> None:
        self.media = SyntheticMedia()
        self.running = False
        self._slice: asyncio.Future | None = None
        self._pending: list[tuple[Callable[[SyntheticMedia], Any], asyncio.Future]] = []
        self.consumer_kind: list[int] = []
        self.consumer_room: list[int] = []
        self.consumer_layer: list[int] = []
        self.stream_kind: list[int] = []

    async def add(self, change: Callable[[SyntheticMedia], Any]) -> Any:
        """Apply change(media) between slices; its result."""
        if not self.running:
            return change(self.media)
        future = asyncio.get_running_loop().create_future()
        self._pending.append((change, future))
        return await future

    def _apply_pending(self) -> None:
        pending, self._pending = self._pending, []
        for change, future in pending:
            if future.cancelled():
                continue
            try:
                future.set_result(change(self.media))
            except Exception as exc:  # handed to the participant that asked
                future.set_exception(exc)

    async def add_consumer(self, sock_index: int, ssrc: int, kind: int, room: int, layer: int = -1) -> int:
        """Count a consumer; `layer` is the simulcast layer it asked for (-1: audio, or the default)."""
        def change(media: SyntheticMedia) -> int:
            index = media.add_consumer(sock_index, ssrc)
            self.consumer_kind.append(kind)
            self.consumer_room.append(room)
            self.consumer_layer.append(layer)
            return index
        return await self.add(change)

    async def add_stream(self, kind: int, **stream: Any) -> int:
        def change(media: SyntheticMedia) -> int:
            index = media.add_stream(**stream)
            self.stream_kind.append(kind)
            return index
        return await self.add(change)

    async def run_slice(self, seconds: float, send: bool = True) -> dict:
        """One slice of sending and receiving; its counters and latency samples."""
        self._apply_pending()
        self.running = True
        self._slice = asyncio.get_running_loop().run_in_executor(None, self.media.run, seconds, send)
        try:
            # shielded: a cancelled caller leaves the slice to finish; idle() waits for it
            return await asyncio.shield(self._slice)
        finally:
            if self._slice.done():
                self.running = False
                self._apply_pending()

    async def idle(self) -> None:
        """Wait for a slice still running (its caller was cancelled) before its sockets are closed."""
        if self._slice is not None and not self._slice.done():
            await asyncio.wait([self._slice], timeout=5)
        self.running = False

    def kinds_of(self, consumers: np.ndarray) -> np.ndarray:
        return np.asarray(self.consumer_kind, dtype=np.int8)[consumers]
