"""The layers point one way, and the folders show them.

    srvmon_core   <- srvmon_agents
    srvmon_core   <- srvmon_server
    srvmon_agents, srvmon_server, srvmon_core <- srvmon_cli   (composition)

srvmon_core imports none of our packages (and nothing but the standard library, attrs and
cattrs); srvmon_agents and srvmon_server import only srvmon_core; srvmon_cli may import
everything; nothing imports srvmon_cli. A pure AST scan of every module (imports inside
functions and ``TYPE_CHECKING`` blocks count too): fast, and no module is executed.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("srvmon_core", "srvmon_agents", "srvmon_server", "srvmon_cli")
ALLOWED: dict[str, frozenset[str]] = {
    "srvmon_core": frozenset({"srvmon_core"}),
    "srvmon_agents": frozenset({"srvmon_agents", "srvmon_core"}),
    "srvmon_server": frozenset({"srvmon_server", "srvmon_core"}),
    "srvmon_cli": frozenset(OURS),
}
"""For each package, the packages of ours it may import."""
CORE_THIRD_PARTY = frozenset({"attrs", "cattrs"})


def imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """Every module ``source`` imports, as absolute dotted names, with the line number.

    ``package`` is the dotted package the file is in (relative imports resolve against it:
    the package itself for an ``__init__.py``).
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base: list[str] = []
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
            if node.module:
                found.append((node.lineno, ".".join([*base, node.module])))
            else:  # from . import a, b: the names are modules
                found += [(node.lineno, ".".join([*base, a.name])) for a in node.names]
    return found


def violations(package: str, module: str, source: str, *, is_init: bool = False) -> list[str]:
    """The forbidden imports of one module of ``package``, as readable lines."""
    out = []
    allowed = ALLOWED[package]
    here = module if is_init else module.rsplit(".", 1)[0]
    for line, name in imported_modules(source, here):
        top = name.split(".")[0]
        if top in OURS and top not in allowed:
            out.append(f"{module}:{line} imports {name} ({package} may import {sorted(allowed)})")
        if (
            package == "srvmon_core"
            and top not in OURS
            and top not in CORE_THIRD_PARTY
            and top not in sys.stdlib_module_names
        ):
            out.append(f"{module}:{line} imports {name} (srvmon_core: stdlib, attrs, cattrs)")
    return out


def package_modules(package: str) -> list[tuple[str, str, bool]]:
    """(dotted module name, source, is an ``__init__``) of every module of one package."""
    modules = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        is_init = parts[-1] == "__init__"
        if is_init:
            parts = parts[:-1]
        modules.append((".".join(parts), path.read_text(encoding="utf-8"), is_init))
    return modules


@pytest.mark.parametrize("package", OURS)
def test_every_import_points_down_the_layers(package: str) -> None:
    """No module of ``package`` imports a package of ours above it or beside it."""
    modules = package_modules(package)
    assert len(modules) >= 3, f"{package} not found under {ROOT}"
    found = [
        line
        for module, source, is_init in modules
        for line in violations(package, module, source, is_init=is_init)
    ]
    assert found == []


def test_the_packages_are_where_the_scan_looks() -> None:
    """The scan sees the real tree: the CLI group and standalone live in srvmon_cli."""
    names = {module for module, _, _ in package_modules("srvmon_cli")}
    assert {"srvmon_cli.main", "srvmon_cli.standalone"} <= names
    assert not (ROOT / "srvmon_server" / "cli.py").exists()
    assert not (ROOT / "srvmon_server" / "standalone.py").exists()


@pytest.mark.parametrize(
    ("package", "module", "source", "expected"),
    [
        ("srvmon_server", "srvmon_server.x", "from srvmon_agents.sinks import base\n", 1),
        ("srvmon_server", "srvmon_server.x", "import srvmon_cli.main\n", 1),
        ("srvmon_agents", "srvmon_agents.x", "from srvmon_server.storage import Storage\n", 1),
        ("srvmon_core", "srvmon_core.x", "def f():\n    import srvmon_server.app\n", 1),
        ("srvmon_core", "srvmon_core.x", "from typing import TYPE_CHECKING\nimport tornado\n", 1),
        ("srvmon_core", "srvmon_core.x", "import sqlalchemy.orm\n", 1),
        ("srvmon_server", "srvmon_server.h.x", "from ... import srvmon_cli\n", 1),
        ("srvmon_server", "srvmon_server.h.x", "from ..storage import Storage\n", 0),
        ("srvmon_cli", "srvmon_cli.x", "import srvmon_server.app, srvmon_agents.sinks\n", 0),
        ("srvmon_agents", "srvmon_agents.x", "import srvmon_core.codec\nimport psutil\n", 0),
        ("srvmon_core", "srvmon_core.x", "import attrs, cattrs, json\n", 0),
    ],
)
def test_a_forbidden_import_is_caught(
    package: str, module: str, source: str, expected: int
) -> None:
    """The scan flags a synthetic module that imports against the layers (also inside a
    function), and passes allowed ones: the test would fail if someone added such an
    import to the real tree."""
    assert len(violations(package, module, source)) == expected


def test_relative_imports_resolve_against_the_package() -> None:
    """``from ..storage import x`` in srvmon_server/handlers/base.py is srvmon_server.storage;
    ``from .gateway import x`` in srvmon_server/storage/__init__.py is its own module."""
    names = [n for _, n in imported_modules("from ..storage import x\n", "srvmon_server.h")]
    assert names == ["srvmon_server.storage"]
    names = [n for _, n in imported_modules("from .gateway import x\n", "srvmon_server.storage")]
    assert names == ["srvmon_server.storage.gateway"]
