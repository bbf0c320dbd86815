"""Fixtures for e2e tests: an HTTP client per tenant against the session's real server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.fixtures.server import Server


@pytest.fixture
def api(server: Server) -> Iterator[Callable[[str], httpx.Client]]:
    """api(tenant) -> an httpx client carrying that tenant's key; removes the tenant's containers afterwards."""
    clients: dict[str, httpx.Client] = {}

    def make(tenant: str) -> httpx.Client:
        if tenant not in clients:
            clients[tenant] = httpx.Client(
                base_url=server.url, headers={"X-Api-Key": server.tenant(tenant)}, timeout=60
            )
        return clients[tenant]

    yield make
    for client in clients.values():
        for c in client.get("/v1/containers", params={"all": "true"}).json():
            client.delete(f"/v1/containers/{c['id']}", params={"force": "true"})
        client.close()
