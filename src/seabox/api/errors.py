"""The one place errors become HTTP responses: SeaboxError by its status, validation errors as 400 naming the field."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import ValidationError

from seabox.errors import SeaboxError, validation_error

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# server paths (data dir, run dir) -> the words an error message shows instead
REDACTED = web.AppKey("redacted_paths", dict)
CLOSE_AFTER = (408, 413)  # the rest of the body is not read: the connection cannot carry another request


def error_response(status: int, body: dict[str, str | int], headers: dict[str, str] | None = None) -> web.Response:
    response = web.json_response(body, status=status, headers=headers)
    if status in CLOSE_AFTER:
        response.force_close()
    return response


def redact(message: str, paths: dict[str, str]) -> str:
    """MESSAGE with every server path in PATHS replaced by its placeholder (longest first)."""
    for path in sorted(paths, key=len, reverse=True):
        message = message.replace(path, paths[path])
    return message


def _seabox_error(request: web.Request, exc: SeaboxError) -> web.Response:
    body = exc.to_json()
    if exc.status >= 500:
        log.warning("%s %s failed: %s", request.method, request.path, exc.message)
    body["message"] = redact(exc.message, request.app.get(REDACTED, {}))
    return error_response(exc.status, body, exc.headers())


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except SeaboxError as exc:
        if exc.status == 304:
            return web.Response(status=304)
        return _seabox_error(request, exc)
    except ValidationError as exc:
        return error_response(400, validation_error(exc).to_json())
    except web.HTTPException as exc:
        if exc.status >= 400 and not exc.text:
            return error_response(exc.status, {"message": exc.reason})
        if exc.status >= 400 and exc.content_type != "application/json":
            return error_response(exc.status, {"message": exc.text or exc.reason})
        raise
    except (ConnectionResetError, TimeoutError) as exc:
        log.info("client went away during %s %s: %s", request.method, request.path, exc)
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, {"message": "internal server error (see the server log)"})
