"""Security group records and container membership: create, replace, remove, list, and a container's groups."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from seabox.errors import Conflict, InvalidArgument, NotFound
from seabox.model.container import ContainerSpec, check_group_names
from seabox.model.quota import Quota
from seabox.model.security_group import SecurityGroup, SecurityGroupRule, SecurityGroupSpec
from seabox.store import quotas
from seabox.store import tables as t
from seabox.store.repo import _ts, add_members, check_security_groups

sg = t.security_groups.c
members = t.security_group_members.c


def _check_remotes(conn: Connection, tenant_id: str, spec: SecurityGroupSpec) -> None:
    """NotFound naming the first rule whose remote_group_name is not one of the tenant's groups (nor SPEC itself)."""
    others = spec.remote_groups() - {spec.name}
    found = {r[0] for r in conn.execute(select(sg.name).where(sg.tenant_id == tenant_id, sg.name.in_(others)))}
    for i, rule in enumerate(spec.rules):
        name = rule.remote_group_name
        if name is not None and name != spec.name and name not in found:
            field = f"rules[{i}].remote_group_name"
            raise NotFound(f"{field}: no such security group: {name}", field=field)


class SecurityGroupStore:
    """Typed access to the security_groups and security_group_members tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, tenant_id: str, spec: SecurityGroupSpec, quota: Quota) -> SecurityGroup:
        now = time.time()
        try:
            with self.engine.begin() as conn:
                quotas.hold(conn, tenant_id, quota)
                _check_remotes(conn, tenant_id, spec)
                conn.execute(insert(t.security_groups).values(
                    tenant_id=tenant_id, name=spec.name, description=spec.description,
                    rules=[r.dump() for r in spec.rules], generation=1, created_at=now, updated_at=now,
                ))
        except IntegrityError:
            raise Conflict(f"security group {spec.name!r} already exists", field="name") from None
        return self.get(tenant_id, spec.name)

    def replace(self, tenant_id: str, spec: SecurityGroupSpec) -> SecurityGroup:
        """Replace the group's description and all its rules at once (its generation grows by one)."""
        with self.engine.begin() as conn:
            generation = conn.execute(
                select(sg.generation).where(sg.tenant_id == tenant_id, sg.name == spec.name).with_for_update()
            ).scalar()
            if generation is None:
                raise NotFound(f"no such security group: {spec.name}")
            _check_remotes(conn, tenant_id, spec)
            conn.execute(update(t.security_groups).where(sg.tenant_id == tenant_id, sg.name == spec.name).values(
                description=spec.description, rules=[r.dump() for r in spec.rules],
                generation=generation + 1, updated_at=time.time(),
            ))
        return self.get(tenant_id, spec.name)

    def delete(self, tenant_id: str, name: str) -> None:
        """Remove the group: refused (409) while a container is in it or another group's rule names it."""
        try:
            with self.engine.begin() as conn:
                found = conn.execute(
                    select(sg.name).where(sg.tenant_id == tenant_id, sg.name == name).with_for_update()
                ).first()
                if found is None:
                    raise NotFound(f"no such security group: {name}")
                users = self._users(conn, tenant_id, [name]).get(name)
                if users:
                    raise Conflict(f"security group {name} is in use by container(s) {', '.join(users)}: "
                                   f"take them out of it first (seabox update --sg-rm {name} CONTAINER)")
                rows = conn.execute(select(sg.name, sg.rules).where(sg.tenant_id == tenant_id, sg.name != name))
                citing = sorted(r[0] for r in rows if any(rule.get("remote_group_name") == name for rule in r[1]))
                if citing:
                    raise Conflict(f"security group {name} is named by the rules of group(s) {', '.join(citing)}: "
                                   "update them first")
                conn.execute(delete(t.security_groups).where(sg.tenant_id == tenant_id, sg.name == name))
        except IntegrityError:  # a container joined it meanwhile
            raise Conflict(f"security group {name} is in use: take its containers out of it first") from None

    def get(self, tenant_id: str, name: str) -> SecurityGroup:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.security_groups).where(sg.tenant_id == tenant_id, sg.name == name)).mappings().first()
            if row is None:
                raise NotFound(f"no such security group: {name}")
            return self._group(row, self._users(conn, tenant_id, [name]).get(name, []))

    def list(self, tenant_id: str) -> list[SecurityGroup]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.security_groups).where(sg.tenant_id == tenant_id)).mappings().all()
            users = self._users(conn, tenant_id, [r["name"] for r in rows])
        # sorted here: ORDER BY follows the PostgreSQL database's collation, which SQLite does not share
        return [self._group(r, users.get(r["name"], [])) for r in sorted(rows, key=lambda r: str(r["name"]))]

    def rules_of(self, tenant_ids: Iterable[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """Every group's stored rules of TENANT_IDS, in one query: tenant -> group name -> rules."""
        found: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(dict)
        wanted = list(tenant_ids)
        if not wanted:
            return found
        with self.engine.connect() as conn:
            for row in conn.execute(select(sg.tenant_id, sg.name, sg.rules).where(sg.tenant_id.in_(wanted))):
                found[row[0]][row[1]] = row[2]
        return found

    def set_container_groups(self, tenant_id: str, cid: str, add: list[str], remove: list[str]) -> list[str]:
        """Put the container in the ADD groups and take it out of the REMOVE ones, at once; its groups after."""
        c = t.containers.c
        with self.engine.begin() as conn:
            row = conn.execute(select(c.spec).where(c.id == cid, c.tenant_id == tenant_id).with_for_update()).first()
            if row is None:
                raise NotFound(f"no such container: {cid}")
            spec = ContainerSpec.model_validate(row[0])
            for name in add:
                if name in spec.security_groups:
                    raise Conflict(f"the container is already in security group {name}", field="security_groups_add")
            for name in remove:
                if name not in spec.security_groups:
                    raise Conflict(f"the container is not in security group {name}", field="security_groups_remove")
            check_security_groups(conn, tenant_id, add, field="security_groups_add")
            groups = [g for g in spec.security_groups if g not in remove] + add
            try:
                spec.security_groups = check_group_names(groups)
            except ValueError as exc:
                raise InvalidArgument(str(exc), field="security_groups_add") from None
            conn.execute(update(t.containers).where(c.id == cid).values(spec=spec.model_dump(mode="json")))
            if remove:
                conn.execute(delete(t.security_group_members).where(members.container_id == cid,
                                                                    members.group_name.in_(remove)))
            add_members(conn, tenant_id, cid, add, field="security_groups_add")
        return groups

    @staticmethod
    def _users(conn: Connection, tenant_id: str, names: list[str]) -> dict[str, list[str]]:
        """Group name -> the names of the containers in it, sorted."""
        if not names:
            return {}
        q = (
            select(members.group_name, t.containers.c.name)
            .join(t.containers, t.containers.c.id == members.container_id)
            .where(members.tenant_id == tenant_id, members.group_name.in_(names))
        )
        users: dict[str, list[str]] = defaultdict(list)
        for group, container in conn.execute(q):
            users[group].append(container)
        return {g: sorted(cs) for g, cs in users.items()}

    @staticmethod
    def _group(row: Any, users: list[str]) -> SecurityGroup:
        return SecurityGroup(
            name=row["name"],
            description=row["description"],
            rules=[SecurityGroupRule.model_validate(r) for r in row["rules"]],
            generation=row["generation"],
            created_at=_ts(row["created_at"]),
            updated_at=_ts(row["updated_at"]),
            in_use_by=users,
        )
