"""Errors of the main-process media API (routers, transports, producers, consumers), each with its contract code.

The codes are PROTOCOL.md's, so the signaling layer answers `{code, message}`
from an exception without a table of its own. Failures reach the API from two
places: ORTC validation in this process (media.ortc's OrtcError) and the
worker's answers over the control channel (ChannelRequestError with a code);
both are turned into these classes here, and nowhere else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from common.log import get_logger
from media.channel import ChannelClosed, ChannelRequestError
from media.ortc import OrtcError
from media.ortc import UnsupportedError as OrtcUnsupportedError

if TYPE_CHECKING:
    from media.api.worker import Worker

log = get_logger("api")


class SwitchyardError(Exception):
    """A media API failure with a contract error code."""

    code = "internal_error"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidStateError(SwitchyardError):
    """A call on a closed object, or one its state does not allow (a second connect)."""

    code = "invalid_state"


class NotFoundError(SwitchyardError):
    """An id that names no object."""

    code = "not_found"


class CannotConsumeError(SwitchyardError):
    """RtpCapabilities that cannot receive the producer."""

    code = "cannot_consume"


class InvalidInputError(SwitchyardError):
    """Malformed or inconsistent parameters."""

    code = "invalid_input"


class UnsupportedError(InvalidInputError):
    """Well-formed parameters Switchyard cannot route (a codec it does not know)."""

    code = "unsupported"


_BY_CODE: dict[str, type[SwitchyardError]] = {
    cls.code: cls
    for cls in (InvalidStateError, NotFoundError, CannotConsumeError, InvalidInputError, UnsupportedError)
}


def from_ortc(exc: OrtcError) -> InvalidInputError:
    """The API error for an ORTC validation failure."""
    if isinstance(exc, OrtcUnsupportedError):
        return UnsupportedError(str(exc))
    return InvalidInputError(str(exc))


def from_channel(exc: ChannelRequestError) -> SwitchyardError:
    """The API error for a worker's error answer; unknown codes keep their code."""
    cls = _BY_CODE.get(exc.code)
    if cls is None:
        return SwitchyardError(exc.message, exc.code)
    return cls(exc.message)


async def worker_request(worker: Worker, method: str, data: dict[str, Any]) -> dict[str, Any]:
    """Send a control request; the worker's error answers and its death become API errors."""
    try:
        return await worker.request(method, data)
    except ChannelRequestError as exc:
        raise from_channel(exc) from None
    except ChannelClosed as exc:
        raise InvalidStateError(f"worker {worker.index} is not running ({exc})") from None


async def close_request(worker: Worker, method: str, data: dict[str, Any]) -> None:
    """Tell the worker an object closed; it is closed here whatever the answer (the worker may be gone)."""
    try:
        await worker_request(worker, method, data)
    except (SwitchyardError, TimeoutError) as exc:
        log.debug("%s %s: %s", method, data, exc)


def log_listener_error(exc: Exception) -> None:
    """An application event listener that raised: logged, so that no close cascade stops halfway."""
    log.error("event listener failed: %r", exc, exc_info=exc)
