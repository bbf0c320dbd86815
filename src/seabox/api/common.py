"""Helpers every route module shares: the Cloud app key, body parsing, query flags and NDJSON streams."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from seabox.api.auth import tenant_of
from seabox.errors import InvalidArgument
from seabox.model.image import Image
from seabox.services.cloud import Cloud

CLOUD = web.AppKey("cloud", Cloud)
M = TypeVar("M", bound=BaseModel)


def cloud(request: web.Request) -> Cloud:
    return request.app[CLOUD]


async def body(request: web.Request, model: type[M]) -> M:
    """The JSON body validated as MODEL (400 naming the field on any problem)."""
    raw = await request.read()
    if not raw:
        return model.model_validate({})
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise InvalidArgument("request body must be a JSON object")
    return model.model_validate(data)


def flag(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on", ""):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise InvalidArgument(f"query parameter {name} must be true or false, got {value!r}", field=name)


def number(request: web.Request, name: str, default: float | None = None) -> float | None:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise InvalidArgument(f"query parameter {name} must be a number, got {value!r}", field=name) from None


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
        with open(path, "wb") as f:
            async for chunk in request.content.iter_chunked(1 << 20):
                f.write(chunk)
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
