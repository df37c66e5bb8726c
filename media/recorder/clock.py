"""RTP timestamps to wall-clock time, from RTCP sender reports (RFC 3550 §6.4.1).

Each stream of a recording has its own RTP clock with a random origin; a sender report pairs one
RTP timestamp with an NTP time, and with every stream mapped onto the same (the server's) wall clock,
audio and video line up in the file. Until a stream's first report, the arrival time of its first
packet stands in (the recorder is on loopback, so arrival is the forwarding time within a
millisecond); a report then takes over.
"""

from __future__ import annotations

NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)


def ntp_to_unix(ntp: int) -> float:
    """A 64-bit NTP timestamp (RFC 5905 §6) as Unix seconds."""
    return (ntp >> 32) - NTP_EPOCH_OFFSET + (ntp & 0xFFFFFFFF) / 2**32


class RtpClock:
    """One stream's RTP timestamps, unwrapped past 2^32, mapped to Unix seconds."""

    def __init__(self, clock_rate: int):
        self.clock_rate = clock_rate
        self._last: int | None = None  # last 32-bit timestamp seen
        self._cycles = 0
        self._ref_rtp: int | None = None  # extended RTP timestamp of the reference point
        self._ref_time = 0.0
        self.from_report = False

    def extend(self, timestamp: int) -> int:
        """A 32-bit timestamp as a 64-bit one that keeps counting across wraps (either way)."""
        if self._last is not None:
            delta = (timestamp - self._last) & 0xFFFFFFFF
            if delta >= 0x80000000 and timestamp > self._last:  # an older packet from before a wrap
                return timestamp + (self._cycles - 1) * 2**32
            if delta < 0x80000000 and timestamp < self._last:  # wrapped forward
                self._cycles += 1
        if self._last is None or ((timestamp - self._last) & 0xFFFFFFFF) < 0x80000000:
            self._last = timestamp
        return timestamp + self._cycles * 2**32

    def on_packet(self, timestamp: int, arrival: float) -> None:
        """The first packet anchors the clock until a sender report arrives."""
        if self._ref_rtp is None:
            self._ref_rtp = self.extend(timestamp)
            self._ref_time = arrival

    def on_sender_report(self, rtp_timestamp: int, ntp: int) -> None:
        self._ref_rtp = self.extend(rtp_timestamp)
        self._ref_time = ntp_to_unix(ntp)
        self.from_report = True

    def wall_time(self, timestamp: int) -> float | None:
        """Unix seconds of an RTP timestamp, None before anything anchors the clock."""
        if self._ref_rtp is None:
            return None
        return self._ref_time + (self.extend(timestamp) - self._ref_rtp) / self.clock_rate
