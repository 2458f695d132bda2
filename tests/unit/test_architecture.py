"""The layering rules of the README's Architecture section, checked on the import graph.

The graph (grimp) holds every import of `dataops` and `workers`, those inside functions
included, so a lazy import cannot hide a cycle or a dependency on Celery.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]

# Strongly connected groups of modules that are known and being taken apart; a cycle passes
# only if all its modules are in one of these sets.
ALLOWED_CYCLES: list[set[str]] = []

MAX_LINES = 600
# Modules over MAX_LINES that are yet to be split, with their current length: a module may
# shrink below its entry, never grow past it.
LONG_MODULES: dict[str, int] = {}

BROKER_PACKAGES = ("celery", "kombu", "redis")
WEB_AND_CLI_PACKAGES = ("fastapi", "starlette", "typer")


@cache
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("dataops", "workers", include_external_packages=True, cache_dir=None)


def _internal(module: str) -> bool:
    return module.split(".")[0] in ("dataops", "workers")


def import_cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    g = graph()
    modules = sorted(m for m in g.modules if _internal(m))
    edges = {
        m: sorted(x for x in g.find_modules_directly_imported_by(m) if _internal(x))
        for m in modules
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in modules:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(edges[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def _is_face(module: str) -> bool:
    """Modules that are a CLI, HTTP or worker face, allowed to import their framework."""
    return (
        module.endswith(".router")
        or module == "dataops.__main__"
        or module.startswith(("dataops.cli", "dataops.api", "dataops.console", "workers"))
    )


def test_no_import_cycles() -> None:
    unexpected = [
        cycle
        for cycle in import_cycles()
        if not any(set(cycle) <= allowed for allowed in ALLOWED_CYCLES)
    ]
    assert not unexpected, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in unexpected)


def test_only_workers_import_the_broker_libraries() -> None:
    g = graph()
    offenders = sorted(
        f"{importer} imports {package}"
        for package in BROKER_PACKAGES
        if package in g.modules
        for importer in g.find_modules_that_directly_import(package)
        if not importer.startswith("workers")
    )
    assert not offenders, offenders


def test_dataops_reaches_workers_only_by_import_string() -> None:
    """The CLI command that starts a worker may import it; nothing else in dataops does."""
    g = graph()
    offenders = sorted(
        f"{importer} imports {imported}"
        for imported in g.find_children("workers") | {"workers"}
        for importer in g.find_modules_that_directly_import(imported)
        if importer.startswith("dataops") and importer != "dataops.cli.system"
    )
    assert not offenders, offenders


@pytest.mark.parametrize("package", WEB_AND_CLI_PACKAGES)
def test_services_never_reach_the_web_or_cli_frameworks(package: str) -> None:
    """Not directly, and not through another module: only routers, the CLI, the API
    package and workers may have fastapi, starlette or typer on their import chains."""
    g = graph()
    if package not in g.modules:
        return
    offenders = []
    for module in sorted(g.modules):
        if not module.startswith("dataops") or _is_face(module):
            continue
        chain = g.find_shortest_chain(importer=module, imported=package)
        if chain:
            offenders.append(" -> ".join(chain))
    assert not offenders, offenders


def test_migration_revisions_never_import_dataops() -> None:
    """A revision must replay the same way after the ORM changes; `migrations/env.py` alone
    reads the ORM metadata (for autogenerate and check) and the settings (when no URL is
    given)."""
    offenders = []
    for path in sorted((ROOT / "migrations" / "versions").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "dataops"]
    assert not offenders, offenders


_MIGRATE_ALONE = """
import sys

from alembic import command
from alembic.config import Config

ini, url = sys.argv[1:]
cfg = Config(ini)
cfg.set_main_option("sqlalchemy.url", url)
command.upgrade(cfg, "head")
command.downgrade(cfg, "base")
print(sorted(m for m in sys.modules if m.split(".")[0] == "dataops"))
"""


def test_upgrade_and_downgrade_never_import_dataops(tmp_path: Path) -> None:
    """`migrations/env.py` reads the ORM metadata only to compare it with the schema
    (autogenerate, check): replaying revisions must not depend on today's application."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    proc = subprocess.run(
        [sys.executable, "-c", _MIGRATE_ALONE, str(ROOT / "alembic.ini"), url],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_modules_stay_short_enough_to_read_whole() -> None:
    too_long = []
    for path in sorted((ROOT / "dataops").rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        lines = len(path.read_text().splitlines())
        if lines > LONG_MODULES.get(name, MAX_LINES):
            too_long.append(f"{name}: {lines} lines")
    assert not too_long, too_long


def test_long_module_list_only_shrinks() -> None:
    """An entry whose module has been split (or removed) must leave the list."""
    stale = [
        name
        for name in LONG_MODULES
        if not (ROOT / name).is_file() or len((ROOT / name).read_text().splitlines()) <= MAX_LINES
    ]
    assert not stale, f"remove from LONG_MODULES: {stale}"
