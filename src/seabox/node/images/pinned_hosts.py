"""Run a command with its own /etc/hosts: `python -m seabox.node.images.pinned_hosts HOSTS -- ARGV...`.

The command gets a private mount namespace in which HOSTS is bind-mounted over /etc/hosts, so the
names in HOSTS resolve only to the addresses written there (a DNS answer that changes after the
node checked it cannot send a pull elsewhere). Started as a fresh process: no threads to fork from.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_CLONE_NEWNS = 0x00020000
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18
_MS_BIND = 0x1000


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        sys.exit("usage: python -m seabox.node.images.pinned_hosts HOSTS -- COMMAND...")
    hosts, command = argv[0], argv[2:]
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    steps = (
        ("unshare", lambda: libc.unshare(_CLONE_NEWNS)),
        ("make / private", lambda: libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None)),
        ("bind /etc/hosts", lambda: libc.mount(hosts.encode(), b"/etc/hosts", None, _MS_BIND, None)),
    )
    for what, step in steps:
        if step() != 0:
            sys.exit(f"pinned_hosts: {what}: {os.strerror(ctypes.get_errno())}")
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
