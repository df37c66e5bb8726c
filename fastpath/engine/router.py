"""A router in the worker: the transports and producers of one room."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastpath.engine.producer import Producer
    from fastpath.engine.transport import Transport


class Router:
    """Owns transports; knows every producer of the room so consumers can find them."""

    def __init__(self, router_id: str):
        self.id = router_id
        self.transports: dict[str, Transport] = {}
        self.producers: dict[str, Producer] = {}

    def close(self) -> None:
        """Close every transport (which closes their producers and consumers)."""
        for transport in list(self.transports.values()):
            transport.close()
        self.transports.clear()
        self.producers.clear()

    def dump(self) -> dict:
        return {
            "id": self.id,
            "transportIds": list(self.transports),
            "producerIds": list(self.producers),
            "consumerIds": [c for t in self.transports.values() for c in t.consumers],
        }
