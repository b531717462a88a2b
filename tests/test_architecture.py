"""The house rules of the layout, read from the imports of the tree: packages by concept,
dependencies pointing one way (each package's __init__ docstring says what it may import),
small folders."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Bottom to top: a package may import only the packages listed before it, and only those in
# its row (None: any earlier one).
SERVER: dict[str, set[str] | None] = {
    "core": set(),
    "storage": {"core"},
    "pricing": {"core", "storage"},
    "tenants": {"core", "storage"},
    "rollups": {"core", "storage"},
    "ingest": {"core", "storage", "pricing"},
    "records": {"core", "storage", "pricing", "ingest"},
    "query": {"core", "storage", "ingest", "records"},
    "costs": {"core", "storage", "pricing", "ingest", "records", "query"},
    "budgets": {"core", "storage", "ingest", "query", "tenants"},
    "alerts": {"core", "storage", "pricing", "tenants", "ingest", "query", "costs", "budgets"},
    "retention": {"core", "storage", "tenants", "rollups"},
    "otlp": {"core", "ingest"},
    "api": None,
    "runtime": None,
}
GATEWAY: dict[str, set[str] | None] = {
    "http": set(),
    "upstream": {"http"},
    "native": {"http", "upstream"},
    "dialects": {"http", "upstream"},
    "dashboard": {"http", "upstream"},
}
TOP_LEVEL = {  # what each top-level package may import of the others
    "metering": set(),
    "metering_client": {"metering"},
    "server": {"metering"},
    "gateway": {"metering"},
    "worker": {"metering", "server"},
}


def _imports(path: pathlib.Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _package_edges(top: str) -> dict[str, set[str]]:
    """subpackage -> the other subpackages of `top` its modules import."""
    edges: dict[str, set[str]] = {}
    for path in (ROOT / top).rglob("*.py"):
        parts = path.relative_to(ROOT / top).parts
        if len(parts) < 2:
            continue  # top-level modules (app.py, __main__.py) compose everything
        source = parts[0]
        for module in _imports(path):
            names = module.split(".")
            if names[0] == top and len(names) > 1 and (ROOT / top / names[1]).is_dir() and names[1] != source:
                edges.setdefault(source, set()).add(names[1])
    return edges


def _check_layers(top: str, layers: dict[str, set[str] | None]) -> list[str]:
    order = list(layers)
    actual = {p.name for p in (ROOT / top).iterdir() if (p / "__init__.py").exists()}
    problems = [f"{top}/{name}/ is not in the layer table" for name in sorted(actual - set(order))]
    for source, targets in _package_edges(top).items():
        allowed = layers[source]
        earlier = set(order[: order.index(source)])
        for target in sorted(targets):
            if target not in earlier or (allowed is not None and target not in allowed):
                problems.append(f"{top}.{source} imports {top}.{target}")
    return problems


def test_server_packages_depend_one_way() -> None:
    assert _check_layers("server", SERVER) == []


def test_gateway_packages_depend_one_way() -> None:
    assert _check_layers("gateway", GATEWAY) == []


def test_top_level_packages_depend_one_way() -> None:
    problems = []
    for top, allowed in TOP_LEVEL.items():
        for path in (ROOT / top).rglob("*.py"):
            if "v1" in path.parts:
                continue  # generated
            for module in _imports(path):
                first = module.split(".")[0]
                if first in TOP_LEVEL and first != top and first not in allowed:
                    problems.append(f"{path.relative_to(ROOT)} imports {module}")
    assert problems == []


def test_every_package_says_what_it_holds() -> None:
    missing = [
        str(init.relative_to(ROOT))
        for top in ("server", "gateway", "metering_client", "worker")
        for init in (ROOT / top).rglob("__init__.py")
        if not (ast.get_docstring(ast.parse(init.read_text())) or "").strip()
    ]
    assert missing == []


def test_no_folder_holds_more_than_fifteen_modules() -> None:
    crowded = {
        str(folder.relative_to(ROOT)): count
        for top in ("server", "gateway", "worker", "metering_client", "bench")
        for folder in [ROOT / top, *(p for p in (ROOT / top).rglob("*") if p.is_dir())]
        if (count := sum(1 for f in folder.glob("*.py") if f.name != "__init__.py")) > 16
    }
    assert crowded == {}
