"""Repositories: every read and write of Seabox state goes through this one class."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from seabox.billing import meter
from seabox.errors import AddressInUse, Conflict, InvalidArgument, NotFound
from seabox.model.container import Container, ContainerSpec, ContainerStatus, StopRequest
from seabox.model.event import ContainerEvent, Event
from seabox.model.sizes import get_size
from seabox.model.quota import Quota
from seabox.model.tenant import Tenant
from seabox.model.volume import Volume
from seabox.store import quotas
from seabox.store import tables as t
from seabox.store.dialect import one_writer_at_a_time, upsert
from seabox.store.leases import Lease, check_fence

KEY_PREFIX = "sbx_"
TENANT_INDEX_TRIES = 20
EVENT_ORDER_LOCK = 0x5EAB0E  # advisory lock key that orders event inserts on PostgreSQL
# container rows with the address of the floating IP attached to each (None: none)
CONTAINERS = select(t.containers, t.fips.c.address.label("fip")).select_from(
    t.containers.outerjoin(t.fips, t.fips.c.container_id == t.containers.c.id)
)


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _violates(exc: IntegrityError, constraint: str, sqlite_columns: str) -> bool:
    """Whether EXC broke CONSTRAINT: PostgreSQL names it, SQLite lists its columns."""
    return constraint in str(exc.orig) or f"failed: {sqlite_columns}" in str(exc.orig)


def _node_lock(node: str) -> int:
    """The advisory lock key of admissions to NODE (a positive 63-bit number)."""
    return int.from_bytes(hashlib.sha256(b"admit:" + node.encode()).digest()[:8], "big") >> 1


def check_security_groups(conn: Connection, tenant_id: str, names: Iterable[str], field: str = "security_groups") -> None:
    """NotFound naming the first of NAMES that is not one of the tenant's security groups."""
    wanted = list(names)
    if not wanted:
        return
    sg = t.security_groups.c
    found = {r[0] for r in conn.execute(select(sg.name).where(sg.tenant_id == tenant_id, sg.name.in_(wanted)))}
    for name in wanted:
        if name not in found:
            raise NotFound(f"no such security group: {name}", field=field)


def add_members(conn: Connection, tenant_id: str, cid: str, names: Iterable[str], field: str = "security_groups") -> None:
    """Make the container a member of groups NAMES (NotFound if one went since it was checked)."""
    rows = [{"container_id": cid, "group_name": n, "tenant_id": tenant_id} for n in names]
    if not rows:
        return
    try:
        conn.execute(insert(t.security_group_members), rows)
    except IntegrityError as exc:  # PostgreSQL names the constraint; SQLite says only which kind failed
        if "fk_security_group_members_group" in str(exc.orig) or "FOREIGN KEY constraint failed" in str(exc.orig):
            raise NotFound("a security group was removed meanwhile: try again", field=field) from None
        raise


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Store:
    """Typed access to the tables; callers never write SQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # tenants -----------------------------------------------------------------
    def create_tenant(self, name: str) -> Tenant:
        """A new tenant with the next free network index (servers creating tenants at once retry for one)."""
        for _ in range(TENANT_INDEX_TRIES):
            try:
                with self.engine.begin() as conn:
                    if conn.execute(select(t.tenants.c.id).where(t.tenants.c.name == name)).first():
                        raise Conflict(f"tenant {name!r} already exists", field="name")
                    idx = (conn.execute(select(func.max(t.tenants.c.idx))).scalar() or 0) + 1
                    row = {"id": "t" + secrets.token_hex(8), "name": name, "idx": idx, "created_at": time.time()}
                    conn.execute(insert(t.tenants).values(**row))
                return self._tenant(row)
            except IntegrityError:
                continue  # another transaction took this name or index first: look again
        raise Conflict(f"tenant {name!r} could not get a network index: too many tenants created at once, try again")

    def list_tenants(self) -> list[Tenant]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.tenants).order_by(t.tenants.c.idx)).mappings()
            return [self._tenant(r) for r in rows]

    def tenant_by_name(self, name: str) -> Tenant:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.tenants).where(t.tenants.c.name == name)).mappings().first()
        if not row:
            raise NotFound(f"no such tenant: {name}")
        return self._tenant(row)

    def tenant_by_id(self, tenant_id: str) -> Tenant:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.tenants).where(t.tenants.c.id == tenant_id)).mappings().first()
        if not row:
            raise NotFound(f"no such tenant: {tenant_id}")
        return self._tenant(row)

    def issue_key(self, tenant_id: str) -> str:
        """A new API key for the tenant; only its hash is stored, so this is the one time it is seen."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.api_keys).values(
                    id=secrets.token_hex(8), tenant_id=tenant_id, key_hash=hash_key(key), created_at=time.time()
                )
            )
        return key

    def tenant_for_key(self, key: str) -> Tenant | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(t.tenants)
                    .join(t.api_keys, t.api_keys.c.tenant_id == t.tenants.c.id)
                    .where(t.api_keys.c.key_hash == hash_key(key))
                )
                .mappings()
                .first()
            )
        return self._tenant(row) if row else None

    def set_tenant_runtimes(
        self, tenant_id: str, default_runtime: str | None, allowed_runtimes: list[str] | None
    ) -> Tenant:
        """Store the tenant's default runtime class and allowed set (None: the operator's)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(t.tenants)
                .where(t.tenants.c.id == tenant_id)
                .values(default_runtime=default_runtime, allowed_runtimes=allowed_runtimes)
            )
        return self.tenant_by_id(tenant_id)

    @staticmethod
    def _tenant(row: Any) -> Tenant:
        return Tenant(
            id=row["id"],
            name=row["name"],
            index=row["idx"],
            created_at=_ts(row["created_at"]),
            default_runtime=row.get("default_runtime"),
            allowed_runtimes=row.get("allowed_runtimes"),
        )

    # containers --------------------------------------------------------------
    def insert_container(
        self, tenant_id: str, cid: str, name: str, node: str, ip: str | None, spec: ContainerSpec, *, quota: Quota
    ) -> Container:
        """A new container record, counted against QUOTA (containers, or function_containers)."""
        row = {
            "id": cid,
            "tenant_id": tenant_id,
            "name": name,
            "node": node,
            "ip": ip,
            "spec": spec.model_dump(mode="json"),
            "status": ContainerStatus(node=node, ip=ip).model_dump(mode="json"),
            "created_at": time.time(),
            "image_id": spec.image_id,
            "quota_key": quota.key,
        }
        try:
            with self.engine.begin() as conn:
                quotas.hold(conn, tenant_id, quota)
                check_security_groups(conn, tenant_id, spec.security_groups)
                conn.execute(insert(t.containers).values(**row))
                add_members(conn, tenant_id, cid, spec.security_groups)
                meter.open_interval(conn, tenant_id, "rootfs", cid, name, "storage", row["created_at"],
                                    meter.gigabytes(get_size(spec.size).disk_bytes))
        except IntegrityError as exc:
            if _violates(exc, "uq_container_ip", "containers.tenant_id, containers.ip"):
                raise AddressInUse(f"address {ip} is already in use on this tenant network") from None
            raise Conflict(f"container name {name!r} is already in use", field="name") from None
        return self._container(row)

    def check_security_groups(self, tenant_id: str, names: list[str]) -> None:
        """NotFound unless every name in NAMES is one of the tenant's security groups."""
        with self.engine.connect() as conn:
            check_security_groups(conn, tenant_id, names)

    def container_name_taken(self, tenant_id: str, name: str) -> bool:
        """Whether one of the tenant's containers, or one of its services (a name on its network too), has NAME."""
        with self.engine.connect() as conn:
            service = select(t.services.c.id).where(t.services.c.tenant_id == tenant_id, t.services.c.name == name)
            return bool(
                conn.execute(
                    select(t.containers.c.id).where(
                        and_(t.containers.c.tenant_id == tenant_id, t.containers.c.name == name)
                    )
                ).first()
            ) or conn.execute(service).first() is not None

    def find_container(self, tenant_id: str, ref: str) -> Container:
        """By exact name, full id, or unique id prefix, within one tenant."""
        c = t.containers.c
        with self.engine.connect() as conn:
            base = CONTAINERS.where(c.tenant_id == tenant_id)
            row = conn.execute(base.where((c.name == ref) | (c.id == ref))).mappings().first()
            if row:
                return self._container(row)
            if ref and all(ch in "0123456789abcdef" for ch in ref):
                rows = conn.execute(base.where(c.id.startswith(ref)).limit(2)).mappings().all()
                if len(rows) == 1:
                    return self._container(rows[0])
                if len(rows) > 1:
                    raise InvalidArgument(f"container id prefix {ref!r} is ambiguous: give more characters")
        raise NotFound(f"no such container: {ref}")

    def get_container(self, cid: str) -> Container:
        with self.engine.connect() as conn:
            row = conn.execute(CONTAINERS.where(t.containers.c.id == cid)).mappings().first()
        if not row:
            raise NotFound(f"no such container: {cid}")
        return self._container(row)

    def list_containers(self, tenant_id: str | None = None, node: str | None = None) -> list[Container]:
        q = CONTAINERS.order_by(t.containers.c.created_at.desc())
        if tenant_id is not None:
            q = q.where(t.containers.c.tenant_id == tenant_id)
        if node is not None:
            q = q.where(t.containers.c.node == node)
        with self.engine.connect() as conn:
            return [self._container(r) for r in conn.execute(q).mappings()]

    def save_status(self, cid: str, status: ContainerStatus, events: Iterable[ContainerEvent] = (),
                    fence: Lease | None = None) -> None:
        """The container's new status and the lifecycle events of the change, in one transaction.

        With FENCE, only while that lease is still held (LeaseLost, nothing written, otherwise).
        """
        with self.engine.begin() as conn:
            conn.execute(
                update(t.containers).where(t.containers.c.id == cid).values(status=status.model_dump(mode="json"))
            )
            self._insert_events(conn, cid, events, status.state)
            check_fence(conn, fence)

    def request_container(self, cid: str, desired: str, stop: StopRequest | None = None,
                          fence: Lease | None = None, *, paused: bool = False) -> int:
        """Set what the tenant wants of the container and bump its spec generation; returns the new one.

        PAUSED: its processes are to be frozen (every other request thaws them)."""
        with self.engine.begin() as conn:
            generation = self._request(conn, cid, desired, stop, paused)
            check_fence(conn, fence)
        return generation

    def request_start(self, cid: str, node: str, admit: Callable[[list[Container]], None]) -> int:
        """Ask for the container to run if ADMIT(the containers on NODE) does not refuse it; the new generation.

        Servers starting containers on one node at once take turns (PostgreSQL), so each admission
        sees the starts admitted before it.
        """
        with self.engine.begin() as conn:
            one_writer_at_a_time(conn, _node_lock(node))
            rows = conn.execute(select(t.containers).where(t.containers.c.node == node)).mappings()
            admit([self._container(r) for r in rows])
            return self._request(conn, cid, "running", None)

    @staticmethod
    def _request(conn: Connection, cid: str, desired: str, stop: StopRequest | None, paused: bool = False) -> int:
        c = t.containers.c
        row = conn.execute(select(c.spec).where(c.id == cid).with_for_update()).first()
        if row is None:
            raise NotFound(f"no such container: {cid}")
        spec = ContainerSpec.model_validate(row[0])
        spec.desired = desired  # type: ignore[assignment]
        spec.generation += 1
        spec.stop = stop
        spec.paused = paused
        conn.execute(update(t.containers).where(c.id == cid).values(spec=spec.model_dump(mode="json")))
        return spec.generation

    def update_container(self, cid: str, changes: dict[str, object]) -> Container:
        """Set spec fields CHANGES (size, restart) without a new generation: what its node reads at the next start."""
        c = t.containers.c
        with self.engine.begin() as conn:
            row = conn.execute(select(c.spec).where(c.id == cid).with_for_update()).first()
            if row is None:
                raise NotFound(f"no such container: {cid}")
            spec = ContainerSpec.model_validate({**row[0], **changes})
            conn.execute(update(t.containers).where(c.id == cid).values(spec=spec.model_dump(mode="json")))
        return self.get_container(cid)

    def resize_container(self, cid: str, node: str, size: str, admit: Callable[[list[Container]], None]) -> int:
        """Change a live container's size if ADMIT(the containers on NODE) does not refuse it; the new generation.

        Its node applies the new limits (desired state and pause are kept); the run billed at the old size
        ends and one at SIZE begins, and the `update` event is written, in the same transaction.
        """
        c = t.containers.c
        with self.engine.begin() as conn:
            one_writer_at_a_time(conn, _node_lock(node))
            rows = conn.execute(select(t.containers).where(c.node == node)).mappings()
            admit([self._container(r) for r in rows])
            row = conn.execute(select(c.spec).where(c.id == cid).with_for_update()).first()
            if row is None:
                raise NotFound(f"no such container: {cid}")
            spec = ContainerSpec.model_validate(row[0])
            spec.size = size
            spec.generation += 1
            conn.execute(update(t.containers).where(c.id == cid).values(spec=spec.model_dump(mode="json")))
            self._insert_events(conn, cid, [ContainerEvent(action="update", attributes={"size": size})])
            return spec.generation

    def move_container(self, cid: str, from_node: str, to_node: str, status: ContainerStatus,
                       events: Iterable[ContainerEvent] = (), fence: Lease | None = None) -> bool:
        """Place the container on TO_NODE if it is still on FROM_NODE (False if another server moved it first)."""
        c = t.containers.c
        status = status.model_copy(update={"node": to_node})
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(t.containers).where(c.id == cid, c.node == from_node)
                .values(node=to_node, status=status.model_dump(mode="json"))
            ).rowcount
            if moved:
                self._insert_events(conn, cid, events)
            check_fence(conn, fence)
        return bool(moved)

    def rename_container(self, cid: str, tenant_id: str, name: str) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(update(t.containers).where(t.containers.c.id == cid).values(name=name))
        except IntegrityError:
            raise Conflict(f"container name {name!r} is already in use", field="name") from None

    def delete_container(self, cid: str, events: Iterable[ContainerEvent] = ()) -> None:
        """Delete the record and write the lifecycle events of its end, in one transaction."""
        with self.engine.begin() as conn:
            self._insert_events(conn, cid, events)
            meter.close_interval(conn, "rootfs", cid, time.time())
            conn.execute(delete(t.containers).where(t.containers.c.id == cid))

    @staticmethod
    def _insert_events(conn: Connection, cid: str, events: Iterable[ContainerEvent], state: str | None = None) -> None:
        """Write EVENTS and fold them, with the container's new STATE if its status changed, into its meter."""
        rows = list(events)
        if not rows and state != "running":
            return
        record = conn.execute(
            select(t.containers.c.tenant_id, t.containers.c.name).where(t.containers.c.id == cid)
        ).first()
        if record is None:
            return
        now = time.time()
        meter.container_change(conn, record[0], cid, record[1], rows, now, state)
        if not rows:
            return
        conn.execute(
            insert(t.events),
            [
                {
                    "time": e.at if e.at is not None else now,
                    "tenant_id": record[0],
                    "type": "container",
                    "action": e.action,
                    "resource_id": cid,
                    "resource_name": record[1],
                    "attributes": e.attributes,
                }
                for e in rows
            ],
        )

    def used_ips(self, tenant_id: str) -> set[str]:
        """The addresses of the tenant's network held by its containers and by its services (virtual IPs, SNAT addresses)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.containers.c.ip).where(t.containers.c.tenant_id == tenant_id, t.containers.c.ip.is_not(None))
            )
            held = conn.execute(select(t.services.c.vip, t.services.c.snat_ip).where(t.services.c.tenant_id == tenant_id))
            return {r[0] for r in rows} | {a for r in held for a in r if a}

    @staticmethod
    def _container(row: Any) -> Container:
        return Container(
            id=row["id"],
            name=row["name"],
            tenant=row["tenant_id"],
            created_at=_ts(row["created_at"]),
            spec=ContainerSpec.model_validate(row["spec"]),
            status=ContainerStatus.model_validate({**row["status"], "node": row["node"]}),
            fip=row.get("fip"),
        )

    # images (a tenant's references to node images) ---------------------------
    def add_image_ref(self, tenant_id: str, ref: str, image_id: str, *, quota: Quota) -> None:
        """Point the tenant's name REF at IMAGE_ID; refused past QUOTA if that makes one image more."""
        with self.engine.begin() as conn:
            quotas.hold_image(conn, tenant_id, quota, ref, image_id)
            stmt = upsert(conn, t.images).values(tenant_id=tenant_id, ref=ref, image_id=image_id, created_at=time.time())
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[t.images.c.tenant_id, t.images.c.ref],
                    set_={"image_id": stmt.excluded.image_id, "created_at": stmt.excluded.created_at},
                )
            )

    def image_refs(self, tenant_id: str) -> list[tuple[str, str]]:
        """The tenant's (ref, image_id) rows, newest first."""
        q = (
            select(t.images.c.ref, t.images.c.image_id)
            .where(t.images.c.tenant_id == tenant_id)
            .order_by(t.images.c.created_at.desc())
        )
        with self.engine.connect() as conn:
            return [(r[0], r[1]) for r in conn.execute(q)]

    def image_ref(self, tenant_id: str, ref: str) -> str | None:
        """The image id the tenant's REF names, if it has that name."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(t.images.c.image_id).where(t.images.c.tenant_id == tenant_id, t.images.c.ref == ref)
            ).scalar()

    def image_needed(self, image_id: str) -> bool:
        """Whether any tenant names IMAGE_ID or any container (of any tenant, in any state) is made from it."""
        with self.engine.connect() as conn:
            if conn.execute(select(t.images.c.ref).where(t.images.c.image_id == image_id).limit(1)).first():
                return True
            made_from = t.containers.c.image_id == image_id
            return conn.execute(select(t.containers.c.id).where(made_from).limit(1)).first() is not None

    def remove_image_refs(self, tenant_id: str, refs: Iterable[str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(t.images).where(t.images.c.tenant_id == tenant_id, t.images.c.ref.in_(list(refs))))

    # volumes -------------------------------------------------------------------
    def create_volume(self, tenant_id: str, name: str, size: int, labels: dict[str, str], node: str, *,
                      quota: Quota) -> Volume:
        row = {"tenant_id": tenant_id, "name": name, "size": size, "labels": labels, "node": node, "created_at": time.time()}
        try:
            with self.engine.begin() as conn:
                quotas.hold(conn, tenant_id, quota)
                conn.execute(insert(t.volumes).values(**row))
                meter.open_interval(conn, tenant_id, "volume", f"{tenant_id}/{name}", name, "storage",
                                    row["created_at"], meter.gigabytes(size))
        except IntegrityError:
            raise Conflict(f"volume {name!r} already exists", field="name") from None
        return self._volume(row, [])

    def get_volume(self, tenant_id: str, name: str) -> Volume:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(t.volumes).where(t.volumes.c.tenant_id == tenant_id, t.volumes.c.name == name))
                .mappings()
                .first()
            )
        if not row:
            raise NotFound(f"no such volume: {name}")
        return self._volume(row, self.volume_users(tenant_id, name))

    def list_volumes(self, tenant_id: str) -> list[Volume]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.volumes).where(t.volumes.c.tenant_id == tenant_id)).mappings().all()
        # sorted here: ORDER BY follows the PostgreSQL database's collation, which SQLite does not share
        rows = sorted(rows, key=lambda r: str(r["name"]))
        return [self._volume(r, self.volume_users(tenant_id, r["name"])) for r in rows]

    def delete_volume(self, tenant_id: str, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(t.volumes).where(t.volumes.c.tenant_id == tenant_id, t.volumes.c.name == name))
            meter.close_interval(conn, "volume", f"{tenant_id}/{name}", time.time())

    def volume_users(self, tenant_id: str, name: str) -> list[str]:
        """Names of this tenant's containers (any state) that mount the volume."""
        return [
            c.name for c in self.list_containers(tenant_id) if any(v.volume == name for v in c.spec.volumes)
        ]

    @staticmethod
    def _volume(row: Any, users: list[str]) -> Volume:
        return Volume(
            name=row["name"],
            tenant=row["tenant_id"],
            size=row["size"],
            labels=row["labels"],
            node=row["node"],
            created_at=_ts(row["created_at"]),
            in_use_by=users,
        )

    # events --------------------------------------------------------------------
    def add_event(
        self,
        tenant_id: str,
        type_: str,
        action: str,
        resource_id: str,
        resource_name: str = "",
        attributes: dict[str, str] | None = None,
        at: float | None = None,
    ) -> Event:
        row = {
            "time": at if at is not None else time.time(),
            "tenant_id": tenant_id,
            "type": type_,
            "action": action,
            "resource_id": resource_id,
            "resource_name": resource_name,
            "attributes": attributes or {},
        }
        with self.engine.begin() as conn:
            one_writer_at_a_time(conn, EVENT_ORDER_LOCK)  # ids become visible in order: followers miss none
            row["id"] = conn.execute(insert(t.events).values(**row)).inserted_primary_key[0]  # type: ignore[index]
        return self._event(row)

    def last_exit_code(self, cid: str) -> int | None:
        """The exit code of the container's last recorded exit (its latest die event), if any."""
        c = t.events.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(c.attributes).where(c.resource_id == cid, c.action == "die").order_by(c.id.desc()).limit(1)
            ).first()
        try:
            return int(row[0]["exitCode"]) if row else None
        except (KeyError, TypeError, ValueError):
            return None

    def list_events(
        self, tenant_id: str | None = None, since: float | None = None, until: float | None = None, after_id: int = 0
    ) -> list[Event]:
        c = t.events.c
        q = select(t.events).where(c.id > after_id).order_by(c.id)
        if tenant_id is not None:
            q = q.where(c.tenant_id == tenant_id)
        if since is not None:
            q = q.where(c.time >= since)
        if until is not None:
            q = q.where(c.time <= until)
        with self.engine.connect() as conn:
            return [self._event(r) for r in conn.execute(q).mappings()]

    def prune_events(self, before: float, keep: int) -> int:
        """Delete events older than BEFORE (epoch seconds) and all but the newest KEEP; returns how many went."""
        c = t.events.c
        with self.engine.begin() as conn:
            gone = conn.execute(delete(t.events).where(c.time < before)).rowcount
            newest_dropped = conn.execute(select(c.id).order_by(c.id.desc()).offset(keep).limit(1)).scalar()
            if newest_dropped is not None:
                gone += conn.execute(delete(t.events).where(c.id <= newest_dropped)).rowcount
        return int(gone)

    @staticmethod
    def _event(row: Any) -> Event:
        return Event(
            id=row["id"],
            time=_ts(row["time"]),
            tenant=row["tenant_id"],
            type=row["type"],
            action=row["action"],
            resource_id=row["resource_id"],
            resource_name=row["resource_name"],
            attributes=row["attributes"],
        )
