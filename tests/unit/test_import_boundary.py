"""The node boundary: only the node package and the embedded server's wiring import seabox.node, and
the node imports no control-plane code (API, services, store, controllers, scheduler, CLI)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "seabox"
# Where both sides are wired: the embedded server hands the control plane an in-process link, and
# `seabox node` starts a node agent on its own.
WIRING = {"server.py", "cli/node.py"}
CONTROL_PLANE = ("seabox.api", "seabox.services", "seabox.store", "seabox.controllers", "seabox.scheduler", "seabox.cli")


def _imports(path: Path, root: Path = SRC) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(("seabox", *path.relative_to(root).parent.parts))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _modules(under: Path) -> list[Path]:
    return sorted(p for p in under.rglob("*.py") if "__pycache__" not in p.parts)


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("path", _modules(SRC), ids=lambda p: str(p.relative_to(SRC)))
def test_only_the_node_and_the_wiring_import_the_node(path: Path) -> None:
    rel = path.relative_to(SRC)
    if rel.parts[0] == "node" or str(rel) in WIRING:
        return
    offending = sorted(n for n in _imports(path) if _within(n, "seabox.node"))
    assert not offending, f"{rel} imports {offending}: go through seabox.protocol.link.NodeLink"


@pytest.mark.parametrize("path", _modules(SRC / "node"), ids=lambda p: str(p.relative_to(SRC)))
def test_the_node_imports_no_control_plane_code(path: Path) -> None:
    offending = sorted(n for n in _imports(path) if any(_within(n, p) for p in CONTROL_PLANE))
    assert not offending, f"{path.relative_to(SRC)} imports {offending}"


def test_the_check_sees_absolute_and_relative_imports(tmp_path: Path) -> None:
    module = tmp_path / "services" / "leaky.py"
    module.parent.mkdir()
    module.write_text("import seabox.node.agent\nfrom ..node.images import store\nfrom . import events\n")
    found = _imports(module, root=tmp_path)
    assert {"seabox.node.agent", "seabox.node.images", "seabox.services"} <= found
    assert [n for n in found if _within(n, "seabox.node")]
