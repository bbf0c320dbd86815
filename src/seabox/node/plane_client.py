"""The node's client of the control plane over HTTP: join, heartbeats, watching assignments, reports."""

from __future__ import annotations

import aiohttp

from seabox.errors import UpstreamError
from seabox.model.node import NodeCapacity
from seabox.protocol.assignments import AssignmentBatch, ContainerReport
from seabox.protocol.link import ControlPlane
from seabox.protocol.wire import PLANE_PREFIX, Heartbeat, RegisterRequest, RegisterResponse, Reports, WireError
from seabox.protocol.wire_errors import error_from

WATCH_SLACK = 15.0  # beyond the watch timeout before the client gives up on an answer


async def _checked(response: aiohttp.ClientResponse) -> None:
    if response.status < 400:
        return
    text = await response.text()
    try:
        raise error_from(response.status, WireError.model_validate_json(text))
    except ValueError:
        raise UpstreamError(f"control plane answered {response.status}: {text[:200]}") from None


async def register(url: str, req: RegisterRequest) -> RegisterResponse:
    """Join the cloud at URL; the answer holds the node's credential (keep it: it is shown once)."""
    async with aiohttp.ClientSession() as session:
        try:
            async with session.post(url.rstrip("/") + PLANE_PREFIX + "/register", json=req.model_dump()) as r:
                await _checked(r)
                return RegisterResponse.model_validate_json(await r.read())
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"cannot reach the control plane at {url}: {exc}") from None


class HttpControlPlane(ControlPlane):
    """The control plane at URL, as this node (CREDENTIAL) speaks to it."""

    def __init__(self, url: str, credential: str) -> None:
        self.url = url.rstrip("/") + PLANE_PREFIX
        self._headers = {"Authorization": f"Bearer {credential}"}
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers)
        return self._session

    async def assignments(self, node: str, etag: str, timeout: float) -> AssignmentBatch:
        params = {"etag": etag, "timeout": str(timeout)}
        limit = aiohttp.ClientTimeout(total=timeout + WATCH_SLACK)
        try:
            async with self._client().get(self.url + "/assignments", params=params, timeout=limit) as r:
                await _checked(r)
                return AssignmentBatch.model_validate_json(await r.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"watching assignments: {exc}") from None

    async def report(self, node: str, reports: list[ContainerReport]) -> None:
        await self._post("/reports", Reports(reports=reports).model_dump(mode="json"))

    async def heartbeat(self, node: str, capacity: NodeCapacity) -> None:
        await self._post("/heartbeat", Heartbeat(memory_bytes=capacity.memory_bytes, cpus=capacity.cpus).model_dump())

    async def _post(self, path: str, payload: dict[str, object]) -> None:
        try:
            async with self._client().post(self.url + path, json=payload, timeout=aiohttp.ClientTimeout(total=30)) as r:
                await _checked(r)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"{path.strip('/')}: {exc}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


