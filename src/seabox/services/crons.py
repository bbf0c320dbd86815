"""A tenant's crons (create, list, suspend, resume, run now, remove, history) and the life of one run's container.

A run starts a container NAME-<unix time> with the cron's spec; when it ends (or is killed past its
timeout, or replaced) its exit code and the tail of its output go into the run's record and the
container is removed. Which firings run is the crons controller's (controllers/crons.py).
"""

from __future__ import annotations

import asyncio
import logging
import time

from seabox.config import ServerConfig
from seabox.errors import Conflict, NotFound, SeaboxError
from seabox.model.container import ACTIVE, Container, ContainerCreate
from seabox.model.cron import Cron, CronCreate, CronRun, CronSpec
from seabox.model.tenant import Tenant
from seabox.services.containers import START_WAIT, ContainerService
from seabox.services.events import EventBus
from seabox.services.images import ImageService
from seabox.store.crons import CronStore, NewRun, OpenRun
from seabox.store.repo import Store

log = logging.getLogger(__name__)

LOG_TAIL_BYTES = 4096  # of a run's output kept in its record
LOG_TAIL_LINES = 200
LAUNCH_GRACE = START_WAIT + 30  # a run whose start nobody recorded by then was lost with its server
NAME_TRIES = 5  # NAME-<time>, NAME-<time>-2, ...: a manual run in the same second as another gets a suffix
CRON_LABEL = "seabox.cron"
KILL_WAIT = 60.0  # seconds for the node to report a killed run's end


class CronService:
    """Tenant-scoped cron operations, and starting and winding up runs (for the API and the controller)."""

    def __init__(self, cfg: ServerConfig, store: Store, crons: CronStore, containers: ContainerService,
                 images: ImageService, bus: EventBus) -> None:
        self.cfg = cfg
        self.store = store
        self.crons = crons
        self.containers = containers
        self.images = images
        self.bus = bus
        self.launching: set[int] = set()  # runs this server is starting now

    # tenant operations ------------------------------------------------------------------------------
    async def create(self, tenant: Tenant, req: CronCreate) -> Cron:
        resolved = await self.images.resolve(tenant, req.image)  # a 404 naming image before anything is made
        spec = req.spec().model_copy(update={"image": resolved.name})
        now = time.time()
        cron = self.crons.create(tenant.id, req.name, spec, now, spec.parsed.next_after(now),
                                 self.cfg.quotas.quota("crons"))
        await self.bus.emit(tenant.id, "cron", "create", req.name, req.name, {"schedule": spec.schedule})
        return cron

    def list(self, tenant: Tenant) -> list[Cron]:
        return self.crons.list(tenant.id)

    def get(self, tenant: Tenant, name: str) -> Cron:
        return self.crons.get(tenant.id, name)

    def history(self, tenant: Tenant, name: str, tail: int) -> list[CronRun]:
        self.crons.get(tenant.id, name)
        return self.crons.history(tenant.id, name, tail)

    async def suspend(self, tenant: Tenant, name: str) -> Cron:
        self.crons.set_suspended(tenant.id, name, True, 0.0, None)
        await self.bus.emit(tenant.id, "cron", "suspend", name, name)
        return self.crons.get(tenant.id, name)

    async def resume(self, tenant: Tenant, name: str) -> Cron:
        """Fire again from now on (what fell while it was suspended is not caught up)."""
        spec = self.crons.get(tenant.id, name).spec
        now = time.time()
        self.crons.set_suspended(tenant.id, name, False, now, spec.parsed.next_after(now))
        await self.bus.emit(tenant.id, "cron", "resume", name, name)
        return self.crons.get(tenant.id, name)

    async def run_now(self, tenant: Tenant, name: str) -> CronRun:
        """Fire the cron now, outside its schedule and whatever its concurrency (`cron run`); the run as started."""
        cron = self.crons.get(tenant.id, name)
        now = time.time()
        run_id = self.crons.add_run(tenant.id, name, NewRun(now, "manual", "running", f"{name}-{int(now)}"))
        await self.launch(tenant, name, cron.spec, run_id)
        return self.crons.get_run(run_id)

    async def remove(self, tenant: Tenant, name: str) -> None:
        """Remove the cron, its history and the containers of its runs still going."""
        self.crons.set_suspended(tenant.id, name, True, 0.0, None)
        for run in self.crons.open_runs(tenant.id, name):
            if run.run.container_id:
                await self._remove_container(tenant, run.run.container_id)
        self.crons.delete(tenant.id, name)
        await self.bus.emit(tenant.id, "cron", "remove", name, name)

    # a run's container -------------------------------------------------------------------------------
    async def launch(self, tenant: Tenant, cron: str, spec: CronSpec, run_id: int) -> None:
        """Create and start the container of run RUN_ID; a run that cannot start is recorded failed."""
        self.launching.add(run_id)
        try:
            c = await self._create(tenant, cron, spec, run_id)
            if c is None:
                return
            failure = ""
            try:
                await self.containers.start(tenant, c.id)
            except SeaboxError as exc:
                failure = exc.message
            else:
                self.crons.update_run(run_id, started_at=time.time())
            try:
                run = self.crons.get_run(run_id)
            except NotFound:  # the cron was removed while this run started: its container goes too
                await self._remove_container(tenant, c.id)
                return
            if failure:
                await self.wind_up(OpenRun(tenant.id, run, time.time()), failure=failure)
        finally:
            self.launching.discard(run_id)

    async def _create(self, tenant: Tenant, cron: str, spec: CronSpec, run_id: int) -> Container | None:
        base = self.crons.get_run(run_id).container or cron
        for attempt in range(1, NAME_TRIES + 1):
            name = base if attempt == 1 else f"{base}-{attempt}"
            self.crons.update_run(run_id, container_name=name)
            req = ContainerCreate(image=spec.image, name=name, cmd=spec.cmd, env=spec.env, size=spec.size,
                                  labels={CRON_LABEL: cron})
            try:
                c = await self.containers.create(tenant, req)
            except SeaboxError as exc:
                if isinstance(exc, Conflict) and exc.field == "name":
                    continue
                self.crons.finish_run(run_id, "failed", None, "", f"could not create its container: {exc.message}")
                return None
            self.crons.update_run(run_id, container_id=c.id)
            return c
        self.crons.finish_run(run_id, "failed", None, "", f"container names {base}[-N] are all in use")
        return None

    async def wind_up(self, open_run: OpenRun, now: float | None = None, failure: str = "") -> None:
        """Move RUN on: kill it past its timeout or once replaced, and when its container has ended record
        how (exit code, log tail) and remove the container. FAILURE: its start failed so."""
        run = open_run.run
        now = time.time() if now is None else now
        try:
            tenant = self.store.tenant_by_id(open_run.tenant_id)
        except NotFound:
            return
        if run.id in self.launching and not failure:
            return
        lost = now - open_run.created_at > LAUNCH_GRACE  # whoever was starting it is gone
        if run.container_id is None:  # being made, here or by another server
            if lost:
                self.crons.finish_run(run.id, "failed", None, "", "its container was never made (its server stopped?)")
            return
        if run.started_at is None and not failure:
            if not lost:
                return
            failure = "its start was never recorded (its server stopped?)"
        try:
            c = self.store.get_container(run.container_id)
        except NotFound:
            self.crons.finish_run(run.id, "failed", None, "", "its container was removed before it ended")
            return
        status = run.status
        if status == "running" and run.started_at is not None and now - run.started_at.timestamp() > self._timeout(open_run):
            status = "timed-out"
            self.crons.update_run(run.id, status=status)
        if c.status.state in ACTIVE:
            if status == "running" and not failure:
                return
            c = await self._kill(tenant, c)
        tail = await self._log_tail(tenant, c)
        if status == "running":
            status = "succeeded" if c.status.exit_code == 0 and not failure else "failed"
        message = failure or c.status.error
        self.crons.finish_run(run.id, status, c.status.exit_code, tail, message)
        await self._remove_container(tenant, c.id)

    def _timeout(self, open_run: OpenRun) -> float:
        try:
            return float(self.crons.record(open_run.tenant_id, open_run.run.cron).spec.timeout)
        except NotFound:
            return 0.0

    async def _kill(self, tenant: Tenant, c: Container) -> Container:
        """C killed, once its node has reported its end (and exit code)."""
        try:
            await self.containers.kill(tenant, c.id, "KILL")
        except Conflict:  # it ended meanwhile
            pass
        return await asyncio.wait_for(self.containers.wait(tenant, c.id), KILL_WAIT)

    async def _log_tail(self, tenant: Tenant, c: Container) -> str:
        data = b""
        try:
            async for entry in self.containers.logs(tenant, c.id, tail=LOG_TAIL_LINES):
                data = (data + entry.data)[-LOG_TAIL_BYTES:]
        except SeaboxError as exc:
            log.warning("could not read the output of %s: %s", c.name, exc.message)
        return data.decode(errors="replace")

    async def _remove_container(self, tenant: Tenant, cid: str) -> None:
        try:
            await self.containers.remove(tenant, cid, force=True)
        except NotFound:
            pass
        except SeaboxError as exc:
            log.warning("could not remove cron container %s: %s", cid, exc.message)
