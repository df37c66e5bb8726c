"""A per-key sliding-window rate limit, for logins (app) and chat (signaling)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    """At most `limit` events per `window` seconds for each key."""

    MAX_KEYS = 100_000

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window = window
        self.clock = clock
        self.events: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        """Count one event for `key`, unless the key is over its limit (then False, and nothing counted)."""
        now = self.clock()
        recent = self.events.get(key)
        if recent is None:
            if len(self.events) >= self.MAX_KEYS:
                self._forget_idle(now)
            recent = self.events[key] = deque()
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        if len(recent) >= self.limit:
            return False
        recent.append(now)
        return True

    def retry_after(self, key: str) -> int:
        """Whole seconds until `key` may try again."""
        recent = self.events.get(key)
        if not recent:
            return 0
        return max(1, int(recent[0] + self.window - self.clock()) + 1)

    def forget(self, key: str) -> None:
        """Drop `key`'s events: for keys that end (a peer that left), so they are not kept until
        MAX_KEYS is reached."""
        self.events.pop(key, None)

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, q in self.events.items() if not q or q[-1] <= now - self.window]:
            del self.events[key]
