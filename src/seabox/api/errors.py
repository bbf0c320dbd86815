"""The one place errors become HTTP responses: SeaboxError by its status, validation errors as 400 naming the field."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import ValidationError

from seabox.errors import SeaboxError, validation_error

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, body: dict[str, str]) -> web.Response:
    return web.json_response(body, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except SeaboxError as exc:
        if exc.status == 304:
            return web.Response(status=304)
        return error_response(exc.status, exc.to_json())
    except ValidationError as exc:
        return error_response(400, validation_error(exc).to_json())
    except json.JSONDecodeError as exc:
        return error_response(400, {"message": f"request body is not valid JSON: {exc}"})
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
