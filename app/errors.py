"""The REST error shape, `{"error": {"code", "message"}}` (PROTOCOL.md §2), for every failure."""

from __future__ import annotations

from aiohttp import web

from common.log import get_logger

log = get_logger("http")

# aiohttp raises these for requests that never reach a handler
STATUS_CODES = {
    400: "invalid_input",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "limit_exceeded",
    507: "insufficient_storage",
}


class ApiError(web.HTTPException):
    """An error answered with the contract's JSON shape."""

    def __init__(self, status: int, code: str, message: str):
        self.status_code = status
        super().__init__(
            text=web.json_response({"error": {"code": code, "message": message}}).text,
            content_type="application/json",
        )
        self.code = code


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler) -> web.StreamResponse:
    """Turn every exception into the contract's JSON error; never a stack trace or an HTML page."""
    try:
        return await handler(request)
    except ApiError:
        raise
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = STATUS_CODES.get(exc.status, "http_error")
        message = exc.reason or code
        if exc.status == 413:
            message = "request body is too large"
        return error_response(exc.status, code, message)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "the server failed to handle this request")
