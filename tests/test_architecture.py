"""The layout keeps its promises, read from the source with ``ast``:

- ``registry`` (the domain and the people's pages) never imports ``api`` (the partner HTTP
  adapter) nor Django REST framework, and names neither in a string, settings and the root
  URLs aside;
- no import cycle among the project's modules (an import names the module it imports: a
  package's ``__init__`` re-exporting its modules does not make them import one another, and a
  module inside a package never imports that package's ``__init__``);
- no module of ``registry``, ``api`` or ``tests`` is over 500 lines, migrations aside.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("registry", "api")
# The only registry modules that may name the partner API: they assemble the whole project.
WIRING = {"registry.settings", "registry.urls", "registry.wsgi"}
OUTSIDE_NAMES = re.compile(r"^(api|rest_framework|drf_spectacular)(\.|$)")
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The project modules ``name`` imports, wherever in it the import stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                imported.add(full if full in MODULES else base)
    return {module for module in imported if module in MODULES and module != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_imports_it_checks() -> None:
    # Guards the walker itself: known edges of the tree must be found.
    assert "registry.models" in GRAPH["registry.services.cases"]
    assert "registry.services.audit" in GRAPH["registry.services.cases"]
    assert "registry.selectors.partners" in GRAPH["api.authentication"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_among_the_project_modules() -> None:
    assert _cycles(GRAPH) == []


def test_registry_never_imports_the_partner_api_nor_drf() -> None:
    offending = {}
    for name, path in MODULES.items():
        if not name.startswith("registry") or name in WIRING:
            continue
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module)
        bad = sorted(module for module in imported if OUTSIDE_NAMES.match(module))
        if bad:
            offending[name] = bad
    assert offending == {}


def test_registry_names_the_partner_api_in_no_string() -> None:
    offending = {}
    for name, path in MODULES.items():
        if not name.startswith("registry") or name in WIRING:
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        strings = [
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and OUTSIDE_NAMES.match(node.value)
        ]
        if strings:
            offending[name] = strings
    assert offending == {}


def test_no_module_is_over_500_lines() -> None:
    paths = [*MODULES.values(), *(ROOT / "tests").rglob("*.py")]
    long = {
        str(path.relative_to(ROOT)): lines
        for path in paths
        if "migrations" not in path.parts
        and (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
