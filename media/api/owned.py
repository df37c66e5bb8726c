"""What the four objects a transport owns share: Producer, Consumer, DataProducer, DataConsumer.

Each closes one of two ways, as mediasoup's do. `close()` is the application's: the object leaves
its tables and the worker is told once. When what owns it closed first (its transport, or the
producer a consumer reads from), the worker has already closed it too, so it only leaves its
tables and says why in an event. The tables it leaves are the subclass's (`_close_here`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pyee.asyncio import AsyncIOEventEmitter

from media.api.errors import InvalidStateError, close_request, log_listener_error, worker_request

if TYPE_CHECKING:
    from media.api.transport import Transport


class TransportOwned(AsyncIOEventEmitter):
    """Events: `transportclose` and the subclass's own (`producerclose`, `dataproducerclose`);
    private `@close` (closed by the application)."""

    # the worker's name for the object in its methods ("producer": producer.close, producerId)
    WORKER_NAME: ClassVar[str]
    # how an error message names it ("data consumer")
    DISPLAY_NAME: ClassVar[str]

    def __init__(self, transport: Transport, object_id: str):
        super().__init__()
        self.on("error", log_listener_error)
        self.transport = transport
        self.id = object_id
        self.closed = False

    def _check_open(self) -> None:
        if self.closed:
            raise InvalidStateError(f"{self.DISPLAY_NAME} {self.id} is closed")

    async def _worker_request(self, action: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """`<name>.<action>` for this object; it must be open."""
        self._check_open()
        return await worker_request(self.transport.worker, f"{self.WORKER_NAME}.{action}",
                                    {f"{self.WORKER_NAME}Id": self.id, **(data or {})})

    async def get_stats(self) -> list[dict[str, Any]]:
        data = await self._worker_request("getStats")
        return data.get("stats", [])

    async def close(self) -> None:
        """Close it (and what it owns); the worker is told once."""
        if self.closed:
            return
        self._close_here()
        self.emit("@close")
        await close_request(self.transport.worker, f"{self.WORKER_NAME}.close", {f"{self.WORKER_NAME}Id": self.id})

    def transport_closed(self) -> None:
        """Its transport closed (the worker already knows): close without a request."""
        self._closed_by("transportclose")

    def _closed_by(self, event: str) -> None:
        """What owns it closed it in the worker too: leave the tables and say why."""
        if self.closed:
            return
        self._close_here()
        self.emit(event)

    def _close_here(self) -> None:
        """Mark it closed and leave every table that holds it (cascading to what it owns)."""
        raise NotImplementedError
