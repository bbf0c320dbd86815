"""A floating IP attached to a service, with real traffic from an "outside" netns: FIP:PORT reaches the service's
healthy replicas, and nothing once it is detached."""

from __future__ import annotations

import os

import httpx
import pytest

from tests.e2e.test_network_resources import READY, Net, http_get, net, tenant  # noqa: F401  (fixtures)
from tests.e2e.docker_fixtures import until
from tests.e2e.test_services import FAST, SERVE, ready

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for netns, links and nftables"),
]


def test_a_services_floating_ip_reaches_its_replicas_from_outside(
    net: Net, tenant: str, busybox_image: str,  # noqa: F811
) -> None:
    net.cli(tenant, "service", "create", "pub", "--replicas", "2", "--port", "80", "--container-port", "8080",
            *FAST, busybox_image, *SERVE)
    fip = net.cli(tenant, "fip", "allocate").strip()
    assert net.cli(tenant, "service", "attach-fip", fip, "pub").strip() == fip
    with httpx.Client(base_url=net.server.url, headers={"X-Api-Key": net.server.tenant(tenant)}) as api:
        replicas = until(lambda: ready(api, "pub", 2), READY, what="2 healthy replicas")
        hostnames = {api.get(f"/v1/containers/{r['id']}").json()["spec"]["hostname"] for r in replicas}
    out = net.outside.path
    until(lambda: http_get(out, fip, 80) in hostnames, READY, what="the FIP answers")
    answers = {http_get(out, fip, 80) for _ in range(12)}
    assert answers == hostnames, answers
    assert http_get(out, fip, 8080) is None  # only the service's port
    net.cli(tenant, "service", "detach-fip", "pub")
    until(lambda: http_get(out, fip, 80) is None, 2.0, what="the FIP is gone")
    net.cli(tenant, "service", "rm", "pub")
