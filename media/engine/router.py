"""A router in the worker: the transports and producers of one room."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from media.engine.data_producer import DataProducer
    from media.engine.producer import Producer
    from media.engine.transport import Transport


# Quieter than this is silence for the active-speaker choice (mediasoup's demo uses -80 dBov).
SPEAKING_THRESHOLD_DBOV = -70.0


class Router:
    """Owns transports; knows every producer of the room so consumers can find them."""

    def __init__(self, router_id: str):
        self.id = router_id
        self.active_speaker: str | None = None
        self.transports: dict[str, Transport] = {}
        self.producers: dict[str, Producer] = {}
        self.data_producers: dict[str, DataProducer] = {}

    def pick_active_speaker(self) -> tuple[str | None, float | None] | None:
        """The loudest audio producer above the threshold; None when the choice did not change."""
        loudest, volume = None, None
        for producer in self.producers.values():
            level = producer.audio_level()
            if level is not None and level > SPEAKING_THRESHOLD_DBOV and (volume is None or level > volume):
                loudest, volume = producer.id, level
        if loudest == self.active_speaker:
            return None
        self.active_speaker = loudest
        return loudest, None if volume is None else round(volume)

    def close(self) -> None:
        """Close every transport (which closes their producers and consumers)."""
        for transport in list(self.transports.values()):
            transport.close()
        self.transports.clear()
        self.producers.clear()
        self.data_producers.clear()

    def dump(self) -> dict:
        return {
            "id": self.id,
            "transportIds": list(self.transports),
            "producerIds": list(self.producers),
            "consumerIds": [c for t in self.transports.values() for c in t.consumers],
        }
