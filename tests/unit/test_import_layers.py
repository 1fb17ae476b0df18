"""The packages import each other in one direction only, read from the source with `ast` (lazy imports count).

llm_gateway (the console script) -> benchmarks -> export -> app. `app` is what the runtime image serves from:
it never imports the exporter, the bench or the export stack, even inside a function.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAYERS = ("app", "export", "benchmarks", "llm_gateway")  # each may import only the ones before it
EXPORT_STACK = {"torch", "transformers", "optimum", "onnx", "onnxruntime_genai", "gguf", "accelerate"}


def imported_names(source: str, module: str) -> Iterator[str]:
    """Absolute names of every module `source` imports, relative imports resolved against `module`."""
    package = module.split(".")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level] if node.level else []
            yield ".".join([*base, *(node.module or "").split(".")]).strip(".")


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Top-level package -> the top-level names its modules import (itself excluded)."""
    graph: dict[str, set[str]] = {}
    for package in packages:
        edges = graph.setdefault(package, set())
        for path in (root / package).rglob("*.py"):
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            edges.update(name.split(".")[0] for name in imported_names(path.read_text(), module))
        edges.discard(package)
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among the graph's nodes, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done or node not in graph:
            return None
        for nxt in sorted(graph[node]):
            found = visit(nxt, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    return next((c for c in (visit(n, []) for n in sorted(graph)) if c), None)


def test_packages_import_in_one_direction_only():
    graph = import_graph(REPO, LAYERS)
    for i, package in enumerate(LAYERS):
        later = set(LAYERS[i + 1 :]) & graph[package]
        assert not later, f"{package} imports {sorted(later)}: only {list(LAYERS[:i])} may be imported from it"
    assert cycle(graph) is None


def test_the_serving_package_never_imports_the_export_stack():
    assert not import_graph(REPO, ("app",))["app"] & EXPORT_STACK


def test_the_checks_see_lazy_and_relative_imports_and_cycles(tmp_path):
    (tmp_path / "low").mkdir()
    (tmp_path / "high").mkdir()
    (tmp_path / "low" / "a.py").write_text("def f():\n    from high import b\n")
    (tmp_path / "high" / "b.py").write_text("from . import c\nimport low.a\n")
    graph = import_graph(tmp_path, ("low", "high"))
    assert graph == {"low": {"high"}, "high": {"low"}}
    assert cycle(graph) in (["high", "low", "high"], ["low", "high", "low"])
    assert cycle({"high": {"low"}, "low": set()}) is None


@pytest.mark.parametrize(
    ("source", "module", "names"),
    [
        ("from .manifest import X", "app.engine.runner", ["app.engine.manifest"]),
        ("from .. import config", "app.engine.runner", ["app"]),
        ("import a.b, c", "m", ["a.b", "c"]),
    ],
)
def test_relative_imports_resolve_against_the_module(source, module, names):
    assert list(imported_names(source, module)) == names
