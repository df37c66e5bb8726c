"""Request failures as the contract's ack errors: `{"ok": false, "error": {"code", "message"}}`."""

from __future__ import annotations

from media.api.errors import SwitchyardError


class RequestError(Exception):
    """A refused request; `extra` adds fields to the error object (e.g. `url` for wrong_node)."""

    def __init__(self, code: str, message: str, **extra):
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra

    def ack(self) -> dict:
        return {"ok": False, "error": {"code": self.code, "message": self.message, **self.extra}}


def invalid_input(message: str) -> RequestError:
    return RequestError("invalid_input", message)


def not_found(what: str) -> RequestError:
    return RequestError("not_found", f"{what} not found")


def forbidden(message: str) -> RequestError:
    return RequestError("forbidden", message)


def limit_exceeded(message: str) -> RequestError:
    return RequestError("limit_exceeded", message)


def from_engine(exc: SwitchyardError) -> RequestError:
    """The engine's errors already carry the contract's codes."""
    return RequestError(exc.code or "internal_error", exc.message)
