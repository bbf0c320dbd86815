"""Helpers every route module shares: the Cloud app key, body parsing, query flags and NDJSON streams."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from seabox.api.auth import tenant_of
from seabox.api.body import json_body, spool_upload
from seabox.errors import InvalidArgument
from seabox.model.image import Image
from seabox.services.cloud import Cloud

CLOUD = web.AppKey("cloud", Cloud)
M = TypeVar("M", bound=BaseModel)


def cloud(request: web.Request) -> Cloud:
    return request.app[CLOUD]


async def body(request: web.Request, model: type[M]) -> M:
    """The JSON body validated as MODEL (400 naming the field on any problem)."""
    return model.model_validate(await json_body(request))


def flag(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on", ""):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise InvalidArgument(f"query parameter {name} must be true or false, got {value!r}", field=name)


MAX_QUERY_NUMBER = 1e11  # past any timeout, count or unix time (year 5138) a client means


def number(request: web.Request, name: str, default: float | None = None) -> float | None:
    """A numeric query parameter: finite and within +-MAX_QUERY_NUMBER, else a 400 naming it."""
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        parsed = float(value)
    except ValueError:
        raise InvalidArgument(f"query parameter {name} must be a number, got {value!r}", field=name) from None
    if not abs(parsed) <= MAX_QUERY_NUMBER:  # also false for nan
        raise InvalidArgument(f"query parameter {name} must be a finite number of at most {MAX_QUERY_NUMBER:g}, "
                              f"got {value!r}", field=name)
    return parsed


def integer(request: web.Request, name: str, maximum: int) -> int:
    """A whole-number query parameter from 0 to MAXIMUM (0 when absent)."""
    value = number(request, name) or 0
    if value != int(value) or not 0 <= value <= maximum:
        raise InvalidArgument(f"query parameter {name} must be a whole number from 0 to {maximum}, "
                              f"got {request.query.get(name)!r}", field=name)
    return int(value)


def dump(model: BaseModel | list[Any] | dict[str, Any], status: int = 200) -> web.Response:
    if isinstance(model, BaseModel):
        data: Any = model.model_dump(mode="json")
    elif isinstance(model, list):
        data = [m.model_dump(mode="json") if isinstance(m, BaseModel) else m for m in model]
    else:
        data = model
    return web.json_response(data, status=status)


async def import_uploaded_archive(request: web.Request) -> list[Image]:
    """Spool the request body (an OCI archive or `docker save` tarball) to disk and import it for the tenant."""
    c = cloud(request)
    tmp_root = c.cfg.data_dir / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        path = Path(tmp) / "archive.tar"
        await spool_upload(request, path)
        return await c.images.import_archive(tenant_of(request), path)


class NdjsonStream:
    """A chunked response of one JSON object per line, flushed as written."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})

    async def open(self) -> NdjsonStream:
        await self.response.prepare(self.request)
        return self

    async def send(self, obj: dict[str, Any]) -> None:
        await self.response.write(json.dumps(obj, default=str).encode() + b"\n")

    async def close(self) -> web.StreamResponse:
        await self.response.write_eof()
        return self.response
