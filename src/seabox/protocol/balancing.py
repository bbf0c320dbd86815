"""The load-balanced virtual IPs a node serves (desired state): a service's VIP:port and the replicas behind it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from seabox.model.firewall import Firewall

Algorithm = Literal["roundrobin", "leastconn", "source"]


class Backend(BaseModel):
    """One replica that receives a service's traffic: its tenant-network address and the port it serves."""

    container_id: str
    ip: str
    port: int = Field(ge=1, le=65535)


class BalancedService(BaseModel):
    """Traffic to VIP:PORT (TCP) from the tenant's network, and to FIP:PORT from outside, goes to one of BACKENDS.

    backends are the replicas that are healthy and not draining, anywhere in the cluster (a remote one
    is reached over the tenant's VXLAN); none: connections are refused. fip is set only in the batch of
    the one node that holds the service's floating IP (announces it and DNATs it to the backends), with
    firewall, the replicas' security groups, which that node applies to the FIP's connections to
    replicas on other nodes. Those connections come from snat_ip (set in every batch while the service
    has a FIP): the holder takes it on the tenant network, and the replicas' nodes let it reach them.
    """

    id: str
    name: str
    tenant_id: str
    tenant_index: int
    vip: str
    port: int = Field(ge=1, le=65535)
    algorithm: Algorithm = "roundrobin"
    backends: list[Backend] = Field(default_factory=list)
    fip: str | None = None
    snat_ip: str | None = None
    firewall: Firewall | None = None
