"""One node's NodeNetwork driven from inside a test's host netns: `nsenter --net=NS python -m tests.integration.overlay_host`."""

from __future__ import annotations

import json
import sys
from ipaddress import IPv4Address
from pathlib import Path

from seabox.config import NetworkConfig
from seabox.node.network.lb_rules import Target
from seabox.node.network.manager import NodeNetwork, Service
from seabox.node.network.names import NetNames


def main(argv: list[str]) -> None:
    """RUN_DIR NODE_ID COMMAND ARGS: attach CID TENANT IP | overlay TENANT LOCAL REMOTE... |
    remove-overlay TENANT | reconcile-overlays LOCAL JSON({tenant: [remote, ...]}) |
    balance TENANT VIP PORT BACKEND... (a roundrobin service to BACKEND:PORT) | teardown."""
    run_dir, node_id, command, *args = argv
    net = NodeNetwork(NetworkConfig(), Path(run_dir), NetNames.of_node(node_id))
    if command == "attach":
        net.attach(args[0], int(args[1]), IPv4Address(args[2]))
    elif command == "overlay":
        net.ensure_tenant_overlay(int(args[0]), IPv4Address(args[1]), [IPv4Address(a) for a in args[2:]])
    elif command == "remove-overlay":
        net.remove_tenant_overlay(int(args[0]))
    elif command == "reconcile-overlays":
        peers = {int(k): [IPv4Address(a) for a in v] for k, v in json.loads(args[1]).items()}
        net.reconcile_overlays(IPv4Address(args[0]), peers)
    elif command == "balance":
        targets = tuple(Target(IPv4Address(ip), int(args[2])) for ip in args[3:])
        net.balance([Service("svc", int(args[0]), IPv4Address(args[1]), int(args[2]), "roundrobin", targets)])
    elif command == "teardown":
        net.teardown()
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
