"""Reading request bodies within bounds: size caps (413), stall deadlines (408) and bounded JSON parsing."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from seabox.config import ApiConfig
from seabox.errors import InvalidArgument, PayloadTooLarge, RequestTimeout

LIMITS = web.AppKey("api_limits", ApiConfig)
OFF_LOOP_BYTES = 64 << 10  # bodies larger than this are parsed in a worker thread


def limits(request: web.Request) -> ApiConfig:
    return request.app[LIMITS]


def _too_large(cap: int, key: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"request body is larger than {cap} bytes, the server's limit ([api] {key} in its config.toml)"
    )


def _check_length(request: web.Request, cap: int, key: str) -> None:
    if request.content_length is not None and request.content_length > cap:
        raise _too_large(cap, key)


def _stalled(cfg: ApiConfig, what: str) -> RequestTimeout:
    return RequestTimeout(f"request body {what} within {cfg.body_timeout:g} s ([api] body_timeout)")


async def read_body(request: web.Request) -> bytes:
    """The whole body of an ordinary request: at most max_body_bytes, all of it within body_timeout."""
    cap = limits(request).max_body_bytes
    return await read_capped(request, cap, lambda: _too_large(cap, "max_body_bytes"))


async def read_capped(request: web.Request, cap: int, too_large: Callable[[], PayloadTooLarge]) -> bytes:
    """The whole body, at most CAP bytes (TOO_LARGE() beyond, read no further), all of it within body_timeout."""
    cfg = limits(request)
    if request.content_length is not None and request.content_length > cap:
        raise too_large()
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(cfg.body_timeout):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > cap:
                    raise too_large()
                chunks.append(chunk)
    except TimeoutError:
        raise _stalled(cfg, "not received") from None
    return b"".join(chunks)


async def upload_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """An upload's body as it arrives: at most max_upload_bytes, never stalling longer than body_timeout."""
    cfg = limits(request)
    _check_length(request, cfg.max_upload_bytes, "max_upload_bytes")
    size = 0
    while True:
        try:
            async with asyncio.timeout(cfg.body_timeout):
                chunk = await request.content.readany()
        except TimeoutError:
            raise _stalled(cfg, "stalled: no data") from None
        if not chunk:
            return
        size += len(chunk)
        if size > cfg.max_upload_bytes:
            raise _too_large(cfg.max_upload_bytes, "max_upload_bytes")
        yield chunk


async def spool_upload(request: web.Request, path: Path) -> None:
    """Write an upload's body to PATH (see upload_chunks)."""
    with open(path, "wb") as f:
        async for chunk in upload_chunks(request):
            f.write(chunk)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _deeper_than(data: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_json(raw: bytes | str, max_depth: int, what: str = "request body", field: str = "body") -> Any:
    """RAW as JSON, or a 400 naming FIELD: not UTF-8, not JSON, NaN/Infinity, numbers out of range, too deep."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"{what} is not valid UTF-8 (bad byte at offset {exc.start})", field=field) from None
    try:
        data = json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{what} is not valid JSON: {exc}", field=field) from None
    except RecursionError:
        raise InvalidArgument(f"{what} is nested more than {max_depth} levels deep", field=field) from None
    except ValueError as exc:  # NaN/Infinity, 1e400, integers of more than 4300 digits
        raise InvalidArgument(f"{what} is not valid JSON: {exc}", field=field) from None
    if _deeper_than(data, max_depth):
        raise InvalidArgument(f"{what} is nested more than {max_depth} levels deep", field=field)
    return data


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object ({} when the body is empty), bounded in size and depth; big ones parsed off the loop."""
    raw = await read_body(request)
    if not raw.strip():
        return {}
    depth = limits(request).max_json_depth
    data = await asyncio.to_thread(parse_json, raw, depth) if len(raw) > OFF_LOOP_BYTES else parse_json(raw, depth)
    if not isinstance(data, dict):
        raise InvalidArgument("request body must be a JSON object", field="body")
    return data
