"""Security groups as tenants write them (Hyper.sh's YAML form): bounded YAML parsing, validation, the record.

A rule names a direction, a protocol, for tcp/udp an optional port range (none: every port; only
port_range_min: that one port) and at most one remote: remote_ip_prefix (an IPv4 CIDR) or
remote_group_name (the tenant's containers in that group). A rule with neither remote matches
every address (remote_ip_prefix 0.0.0.0/0, which the stored rule then shows).
"""

from __future__ import annotations

from collections import deque
from datetime import datetime
from ipaddress import IPv6Network, ip_network
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from seabox.errors import InvalidArgument, PayloadTooLarge
from seabox.model.container import check_group_name

try:  # libyaml's parser when present: the same safe constructor, composed in C
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_RULES = 1000  # per group
MAX_DESCRIPTION = 1024  # characters
MAX_DOCUMENT_BYTES = 512 << 10  # a group file or body; 1,000 verbose rules take about 170 KiB
MAX_DEPTH = 8  # nesting of a group document (it needs 4)
ANY_IPV4 = "0.0.0.0/0"
MERGE_TAG = "tag:yaml.org,2002:merge"
RULE_FIELDS = ("direction", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix", "remote_group_name")
GROUP_FIELDS = ("name", "description", "rules")


class SecurityGroupRule(BaseModel):
    """One rule as the tenant writes it; cross-field checks name the field at fault."""

    model_config = ConfigDict(extra="forbid", strict=True)

    direction: Literal["ingress", "egress"]
    protocol: Literal["tcp", "udp", "icmp", "any"]
    port_range_min: int | None = Field(None, ge=1, le=65535)
    port_range_max: int | None = Field(None, ge=1, le=65535)
    remote_ip_prefix: str | None = None
    remote_group_name: str | None = None

    @field_validator("port_range_min")
    @classmethod
    def _ports_for_tcp_udp(cls, v: int | None, info: ValidationInfo) -> int | None:
        protocol = info.data.get("protocol")
        if v is not None and protocol in ("icmp", "any"):
            raise ValueError(f"ports apply to tcp and udp only, not to protocol {protocol}: leave them out")
        return v

    @field_validator("port_range_max")
    @classmethod
    def _range(cls, v: int | None, info: ValidationInfo) -> int | None:
        if v is None:
            return v
        protocol = info.data.get("protocol")
        if protocol in ("icmp", "any"):
            raise ValueError(f"ports apply to tcp and udp only, not to protocol {protocol}: leave them out")
        low = info.data.get("port_range_min")
        if "port_range_min" in info.data and low is None:
            raise ValueError("port_range_max needs port_range_min (for one port give port_range_min alone)")
        if low is not None and low > v:
            raise ValueError(f"port_range_max ({v}) is below port_range_min ({low})")
        return v

    @field_validator("remote_ip_prefix")
    @classmethod
    def _prefix(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            network = ip_network(v, strict=True)
        except ValueError as exc:
            if "host bits set" in str(exc):
                raise ValueError(f"{v!r} has host bits set: use {ip_network(v, strict=False)}") from None
            raise ValueError(f"{v!r} is not an IPv4 CIDR such as 10.0.0.0/8 or 203.0.113.7/32") from None
        if isinstance(network, IPv6Network):
            raise ValueError(f"{v!r} is IPv6: tenant networks are IPv4, give an IPv4 CIDR")
        return str(network)

    @field_validator("remote_group_name")
    @classmethod
    def _group(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        if info.data.get("remote_ip_prefix") is not None:
            raise ValueError("give remote_ip_prefix or remote_group_name, not both")
        return check_group_name(v)

    @model_validator(mode="after")
    def _normalise(self) -> SecurityGroupRule:
        if self.port_range_min is not None and self.port_range_max is None:
            self.port_range_max = self.port_range_min
        if self.remote_ip_prefix is None and self.remote_group_name is None:
            self.remote_ip_prefix = ANY_IPV4
        return self

    def dump(self) -> dict[str, Any]:
        """The rule as a document shows it: the fields it sets."""
        return self.model_dump(exclude_none=True)


class SecurityGroupSpec(BaseModel):
    """A whole group document: its name, description and rules (an update replaces all of them)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    description: str = Field("", max_length=MAX_DESCRIPTION)
    rules: list[SecurityGroupRule] = Field(default_factory=list, max_length=MAX_RULES)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_group_name(v)

    def remote_groups(self) -> set[str]:
        return {r.remote_group_name for r in self.rules if r.remote_group_name is not None}


class SecurityGroup(BaseModel):
    """A security group as the API returns it (in_use_by: the names of the containers in it)."""

    name: str
    description: str
    rules: list[SecurityGroupRule]
    generation: int  # grows with every update
    created_at: datetime
    updated_at: datetime
    in_use_by: list[str] = Field(default_factory=list)

    def document(self) -> dict[str, Any]:
        """The group in its file form (what `sg create -f` reads back)."""
        return {"name": self.name, "description": self.description, "rules": [r.dump() for r in self.rules]}


# errors -------------------------------------------------------------------------------------
def field_path(loc: tuple[int | str, ...]) -> str:
    """('rules', 3, 'port_range_min') as rules[3].port_range_min."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def invalid_group(exc: ValidationError) -> InvalidArgument:
    """The first problem in a group document, as a 400 naming the field (rules[3].port_range_min)."""
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    field = field_path(loc) or "body"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        known = RULE_FIELDS if len(loc) == 3 else GROUP_FIELDS
        msg = f"unknown field (a {'rule' if len(loc) == 3 else 'group'} has {', '.join(known)})"
    elif err["type"] == "missing":
        msg = "field required"
    return InvalidArgument(f"{field}: {msg}", field=field)


def group_document(data: Any, name: str | None) -> Any:
    """DATA with its name replaced by NAME (when given): the name a command line gives wins over the file's."""
    if name is not None and isinstance(data, dict):
        return {**data, "name": name}
    return data


def validate_group(data: Any) -> SecurityGroupSpec:
    """DATA (a parsed document) as a group, or a 400 naming the field."""
    if not isinstance(data, dict):
        raise InvalidArgument("a security group must be a mapping of name, description and rules", field="body")
    try:
        return SecurityGroupSpec.model_validate(data)
    except ValidationError as exc:
        raise invalid_group(exc) from None


# YAML ---------------------------------------------------------------------------------------
def _bad_yaml(message: str, node: Node | None = None) -> InvalidArgument:
    where = f" (line {node.start_mark.line + 1})" if node is not None else ""
    return InvalidArgument(f"malformed YAML: {message}{where}", field="body")


def _check_tree(root: Node) -> None:
    """Refuse aliases (one node reached twice), merge keys, duplicate keys and deep nesting."""
    seen: set[int] = set()
    queue: deque[tuple[Node, int]] = deque([(root, 1)])  # breadth first: an alias shows before the depth it builds
    while queue:
        node, depth = queue.popleft()
        if id(node) in seen:
            raise _bad_yaml("anchors and aliases (&name, *name) are not allowed", node)
        seen.add(id(node))
        if depth > MAX_DEPTH:
            raise _bad_yaml(f"nested more than {MAX_DEPTH} levels deep", node)
        if isinstance(node, MappingNode):
            keys: set[tuple[str, str]] = set()
            for key, value in node.value:
                if key.tag == MERGE_TAG:
                    raise _bad_yaml("merge keys (<<) are not allowed", key)
                if isinstance(key, ScalarNode):
                    if (key.tag, key.value) in keys:
                        raise _bad_yaml(f"key {key.value!r} is given twice", key)
                    keys.add((key.tag, key.value))
                queue += [(key, depth + 1), (value, depth + 1)]
        elif isinstance(node, SequenceNode):
            queue += [(item, depth + 1) for item in node.value]


def parse_yaml(raw: bytes | str) -> Any:
    """RAW (at most MAX_DOCUMENT_BYTES) as plain data with YAML's safe types only; a 400 if it is not sound YAML."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_DOCUMENT_BYTES:
        raise PayloadTooLarge(f"a security group document is limited to {MAX_DOCUMENT_BYTES} bytes, got {size}")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"the document is not valid UTF-8 (bad byte at offset {exc.start})", field="body") from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise InvalidArgument("the document is empty: give name, description and rules", field="body")
        _check_tree(node)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise InvalidArgument(f"malformed YAML: {exc.problem or exc.context}{where}", field="body") from None
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"malformed YAML: {exc}", field="body") from None
    except (ValueError, OverflowError, RecursionError) as exc:  # a number or date out of range; deep flow nesting
        raise InvalidArgument(f"malformed YAML: {exc or type(exc).__name__}", field="body") from None
    finally:
        loader.dispose()


def dump_yaml(document: dict[str, Any]) -> str:
    """A group document as YAML, keys in the order the file form writes them."""
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
