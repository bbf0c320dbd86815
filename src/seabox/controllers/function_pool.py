"""The function pool pass: keeps each http function's --min-warm replicas up and removes idle or orphaned ones.

Idle is judged on the cluster's calls (the store's last call time of each function), not only on the
calls of the server holding the pass's lease.
"""

from __future__ import annotations

import asyncio

from seabox.services.function_http import HttpExecutor
from seabox.store.functions import FunctionStore
from seabox.store.leases import Lease
from seabox.store.repo import Store

POOL_LEASE_TTL_FACTOR = 3  # the lease outlives a few missed passes of its holder


class FunctionPool:
    """Level-triggered: each pass compares every http function with the replica containers the store holds."""

    def __init__(self, store: Store, functions: FunctionStore, executor: HttpExecutor) -> None:
        self.store = store
        self.functions = functions
        self.executor = executor

    async def reconcile(self, _lease: Lease) -> None:
        """One pass (run by LeasedPass on the server holding the lease)."""
        tenants = await asyncio.to_thread(self.store.list_tenants)
        fns = [fn for tenant in tenants for fn in await asyncio.to_thread(self.functions.list, tenant.id)]
        containers = await asyncio.to_thread(self.store.list_containers)
        last_calls = await asyncio.to_thread(self.functions.last_calls, [fn.id for fn in fns if fn.spec.mode == "http"])
        await self.executor.converge(fns, containers, last_calls)
