"""Run a pull tool confined: `python -m seabox.node.images.confine CGROUP HOSTS|- -- ARGV...`.

The command first joins CGROUP (the node's pull cgroup, whose connections the node's pull egress
table checks; see node/network/pull_egress.py). With HOSTS, it also gets a private mount namespace
in which HOSTS is bind-mounted over /etc/hosts, so the names in HOSTS resolve only to the addresses
written there (a DNS answer that changes after the node checked it cannot send a pull elsewhere).
Started as a fresh process: no threads to fork from.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

_CLONE_NEWNS = 0x00020000
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18
_MS_BIND = 0x1000
NO_HOSTS = "-"


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[2] != "--":
        sys.exit("usage: python -m seabox.node.images.confine CGROUP HOSTS|- -- COMMAND...")
    cgroup, hosts, command = Path(argv[0]), argv[1], argv[3:]
    try:
        (cgroup / "cgroup.procs").write_text(str(os.getpid()))
    except OSError as exc:
        sys.exit(f"confine: join {cgroup}: {exc.strerror}")
    if hosts != NO_HOSTS:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        steps = (
            ("unshare", lambda: libc.unshare(_CLONE_NEWNS)),
            ("make / private", lambda: libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None)),
            ("bind /etc/hosts", lambda: libc.mount(hosts.encode(), b"/etc/hosts", None, _MS_BIND, None)),
        )
        for what, step in steps:
            if step() != 0:
                sys.exit(f"confine: {what}: {os.strerror(ctypes.get_errno())}")
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
