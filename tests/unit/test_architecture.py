"""The package rules of README's architecture section, enforced on every import statement,
at module level or inside a function alike (an import hidden in a function is still an
arrow between packages)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Each package and the project packages it may import (besides itself): a layering, lowest
# first. tests/ and examples/ are not packages of the product and may import anything.
ALLOWED: dict[str, set[str]] = {
    "schemas": set(),
    "processors": {"schemas"},
    "stores": {"schemas", "processors"},
    "search": {"schemas", "processors", "stores"},
    "config": {"schemas", "processors", "stores", "search"},
    "migrations": {"schemas"},
    "streams": {"schemas", "processors", "stores", "search", "config"},
    "api": {"schemas", "processors", "stores", "search", "config"},
    "training": {"schemas", "processors", "stores"},
    "deploy": {"schemas", "stores", "config", "streams", "api"},  # metric names, to check alerts
    "bench": {
        "schemas", "processors", "stores", "search", "config", "streams", "api", "training",
        "deploy",
    },
    "stylestream": {
        "schemas", "processors", "stores", "search", "config", "streams", "api", "training",
        "deploy", "bench",
    },
}  # fmt: skip
PACKAGES = set(ALLOWED)
SERVING_PATH = {"schemas", "processors", "stores", "search", "config", "streams", "api"}
# Clients of the services: the pure domain logic never talks to one.
SERVICE_CLIENTS = {
    "kafka", "aiokafka", "faust", "mode", "fastapi", "starlette", "uvicorn", "pymilvus",
    "milvus_lite", "sqlalchemy", "psycopg2", "alembic", "httpx",
}  # fmt: skip


def imports(path: Path) -> Iterator[tuple[str, int]]:
    """Every module an import statement in ``path`` names (absolute), with its line."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno


def modules(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def arrows() -> Iterator[tuple[str, str, str]]:
    """(importing package, imported top-level name, where) for every project module."""
    for package in PACKAGES:
        for path in modules(package):
            for name, line in imports(path):
                yield package, name.split(".")[0], f"{path.relative_to(ROOT)}:{line}"


def test_every_package_has_a_rule() -> None:
    on_disk = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert on_disk - {"tests", "examples"} == PACKAGES


def test_packages_import_only_what_their_layer_allows() -> None:
    wrong = [
        f"{where}: {package} imports {target}"
        for package, target, where in arrows()
        if target in PACKAGES and target != package and target not in ALLOWED[package]
    ]
    assert wrong == []


def test_the_layering_has_no_cycle() -> None:
    """The allowed arrows form a DAG, so no package-level cycle can exist."""
    done: set[str] = set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in path, f"cycle: {' -> '.join((*path, package))}"
        if package not in done:
            for target in ALLOWED[package]:
                visit(target, (*path, package))
            done.add(package)

    for package in PACKAGES:
        visit(package, ())


def test_nothing_imports_the_cli_and_serving_never_imports_training_or_bench() -> None:
    assert not [w for p, t, w in arrows() if t == "stylestream" and p != "stylestream"]
    assert not [w for p, t, w in arrows() if p in SERVING_PATH and t in {"training", "bench"}]
    assert not [w for p, t, w in arrows() if {p, t} == {"api", "streams"}]


def test_schemas_and_processors_stay_pure() -> None:
    assert not [w for p, t, w in arrows() if p == "schemas" and t in PACKAGES - {"schemas"}]
    assert not [w for p, t, w in arrows() if p == "processors" and t in SERVICE_CLIENTS]


def module_graph() -> dict[str, set[str]]:
    """Module -> the project modules its import statements name (``from pkg import mod``
    names the module ``pkg.mod`` when that is a file)."""

    def name_of(path: Path) -> str:
        parts = path.relative_to(ROOT).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    files = {name_of(p): p for package in PACKAGES for p in modules(package)}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        edges = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in files}
            elif isinstance(node, ast.ImportFrom) and node.module in files and node.level == 0:
                subs = {f"{node.module}.{a.name}" for a in node.names}
                edges |= (subs & set(files)) or {node.module}
        edges.discard(name)
    return graph


def test_no_module_imports_itself_through_others() -> None:
    """No circle of modules either (TYPE_CHECKING imports and imports in functions count)."""
    graph = module_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            assert state.get(target) != 1, f"circle: {' -> '.join([*path, module, target])}"
            if target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_the_rules_catch_a_violation(tmp_path: Path) -> None:
    """The checker sees imports inside functions too (a rule that cannot fail proves nothing)."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from training.export import x\n    import bench.demo\n")
    assert [name for name, _ in imports(probe)] == ["training.export", "bench.demo"]
