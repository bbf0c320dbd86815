"""nftables JSON building blocks: commands (chains, rules, sets) and the expressions rules are made of."""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any

Command = dict[str, Any]
Expr = dict[str, Any]

FAMILY = "inet"


def chain(table: str, name: str, **base: object) -> Command:
    return {"add": {"chain": {"family": FAMILY, "table": table, "name": name, **base}}}


def rule(table: str, chain_name: str, *expr: Expr) -> Command:
    return {"add": {"rule": {"family": FAMILY, "table": table, "chain": chain_name, "expr": list(expr)}}}


def match(op: str, left: Expr, right: object) -> Expr:
    return {"match": {"op": op, "left": left, "right": right}}


def meta(key: str) -> Expr:
    return {"meta": {"key": key}}


def payload(protocol: str, fieldname: str) -> Expr:
    return {"payload": {"protocol": protocol, "field": fieldname}}


def prefix(subnet: IPv4Network) -> Expr:
    return {"prefix": {"addr": str(subnet.network_address), "len": subnet.prefixlen}}


def ct(key: str) -> Expr:
    return {"ct": {"key": key}}


def concat(*items: object) -> Expr:
    return {"concat": list(items)}
