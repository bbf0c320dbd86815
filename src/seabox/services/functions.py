"""A tenant's functions: create (its image must be known), list, inspect, update (a new secret on refresh), remove.

Removing a function is refused while a call of it is queued or running. An executor that keeps warm
replicas (http mode) is told when a function is removed or replaced by a new generation.
"""

from __future__ import annotations

import hmac

from seabox.config import QuotasConfig
from seabox.errors import InvalidArgument, NotFound
from seabox.model.function import Function, FunctionSpec, FunctionStatus, FunctionUpdate
from seabox.model.sizes import get_size
from seabox.model.tenant import Tenant
from seabox.services.events import EventBus
from seabox.services.function_exec import Executor, KeepsWarm
from seabox.services.images import ImageService
from seabox.store.functions import CallRecord, FunctionStore

MAX_ENV_BYTES = 64 << 10  # all of a function's -e values together


def check_spec(spec: FunctionSpec, executors: dict[str, Executor]) -> None:
    """400 naming the field for what the model alone does not check (it checks each env entry, by the containers'
    rule): the size, env's total size, a mode not served."""
    get_size(spec.size)
    if sum(len(e) for e in spec.env) > MAX_ENV_BYTES:
        raise InvalidArgument(f"env is larger than {MAX_ENV_BYTES} bytes in all", field="env")
    if spec.mode == "stdio":  # one container per call: nothing stays warm, nothing serves a port
        default = FunctionSpec.model_fields
        if spec.min_warm != default["min_warm"].default:
            raise InvalidArgument("min_warm keeps http-mode replicas warm; a stdio function runs a container per "
                                  "call: use --mode http", field="min_warm")
        if spec.port != default["port"].default:
            raise InvalidArgument("port is where an http-mode function serves; a stdio function reads stdin: "
                                  "use --mode http", field="port")
    if spec.mode not in executors:
        raise InvalidArgument(f"mode {spec.mode} is not served by this server: use {' or '.join(executors)}",
                              field="mode")


class FunctionService:
    """Tenant-scoped function operations; every change is an event."""

    def __init__(self, store: FunctionStore, images: ImageService, bus: EventBus,
                 executors: dict[str, Executor], limits: QuotasConfig) -> None:
        self.store = store
        self.limits = limits
        self.images = images
        self.bus = bus
        self.executors = executors

    def list(self, tenant: Tenant) -> list[Function]:
        return self.store.list(tenant.id)

    def get(self, tenant: Tenant, name: str) -> Function:
        return self.store.get(tenant.id, name)

    async def _check_image(self, tenant: Tenant, image: str) -> None:
        """The image must be one the tenant has (pulled or imported): a 404 naming it otherwise."""
        await self.images.resolve(tenant, image)

    async def create(self, tenant: Tenant, spec: FunctionSpec) -> Function:
        check_spec(spec, self.executors)
        await self._check_image(tenant, spec.image)
        fn = self.store.create(tenant.id, spec, self.limits.quota("functions"))
        await self.bus.emit(tenant.id, "function", "create", fn.id, spec.name, {"image": spec.image, "mode": spec.mode})
        return fn

    async def update(self, tenant: Tenant, name: str, change: FunctionUpdate) -> Function:
        fn = self.store.get(tenant.id, name)
        fields = change.model_dump(exclude_unset=True, exclude={"refresh"})
        spec = FunctionSpec.model_validate({**fn.spec.model_dump(), **fields})
        check_spec(spec, self.executors)
        if spec.image != fn.spec.image:
            await self._check_image(tenant, spec.image)
        updated = self.store.update(fn, spec, change.refresh)
        await self._release(fn)
        await self.bus.emit(tenant.id, "function", "update", fn.id, name,
                            {"generation": str(updated.generation), "refreshed": str(change.refresh).lower()})
        return updated

    async def remove(self, tenant: Tenant, name: str) -> Function:
        fn = self.store.get(tenant.id, name)
        self.store.delete(fn)
        await self._release(fn)
        await self.bus.emit(tenant.id, "function", "remove", fn.id, name)
        return fn

    def public(self, name: str, secret: str) -> Function:
        """The function a public call URL opens: its secret matches (constant-time) and so does its name; else 404."""
        fn = self.store.by_secret(secret)
        right_secret = fn is not None and hmac.compare_digest(fn.secret.encode(), secret.encode())
        right_name = hmac.compare_digest((fn.spec.name if fn else "").encode(), name.encode())
        if fn is None or not (right_secret and right_name):
            raise NotFound(f"no such function: {name}", field="function")
        return fn

    def call_log(self, tenant: Tenant, name: str, call_id: str) -> CallRecord:
        return self.store.find_call(self.store.get(tenant.id, name).id, call_id)

    def ended_calls(self, fn: Function, limit: int, after: float) -> list[CallRecord]:
        """FN's latest LIMIT calls that ended after AFTER, oldest first."""
        return self.store.calls(fn.id, limit, after)

    def status(self, tenant: Tenant, name: str) -> FunctionStatus:
        fn = self.store.get(tenant.id, name)
        counts = self.store.active_counts(fn.id)
        executor = self.executors.get(fn.spec.mode)
        warm = executor.warm_replicas(fn) if isinstance(executor, KeepsWarm) else 0
        return FunctionStatus(name=name, mode=fn.spec.mode, generation=fn.generation, queued=counts["queued"],
                              running=counts["running"], warm_replicas=warm)

    async def _release(self, fn: Function) -> None:
        executor = self.executors.get(fn.spec.mode)
        if isinstance(executor, KeepsWarm):
            await executor.release(fn)
