"""Where a server keeps its state and listens unless told otherwise (light to import: the CLI's option defaults)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_DATA_DIR = Path("/var/lib/seabox")
DEFAULT_LISTEN = "127.0.0.1:8470"
