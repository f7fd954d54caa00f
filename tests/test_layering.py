"""The rooms' layering (DESIGN.md "Layout"), read from the source: judges imports nothing of
prompts or benchmark; prompts only judges.base and judges.errors; reporting never imports the
runner; scoring never imports reporting; no module imports itself back through others.
Imports inside functions count too."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ROOMS = ("judges", "prompts", "benchmark")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for room in ROOMS for p in sorted((REPO / room).rglob("*.py"))}


def _imported(name: str, path: Path, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The repo modules one import statement names."""
    if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = name if path.name == "__init__.py" else name.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}".rstrip(".")
        # `from pkg import mod` names the module pkg.mod; `from mod import obj` names mod
        targets = [
            f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
        ]
    for t in targets:
        while t and t not in MODULES:
            t = t.rpartition(".")[0]
        if t:
            yield t


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        deps = graph.setdefault(name, set())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                deps.update(t for t in _imported(name, path, node) if t != name)
    return graph


GRAPH = _graph()


def _edges(frm: str) -> list[tuple[str, str]]:
    return [
        (m, d) for m, deps in GRAPH.items() if m == frm or m.startswith(frm + ".") for d in deps
    ]


def test_the_graph_sees_the_imports() -> None:
    # a parser bug would make every rule below pass vacuously
    assert "prompts.parsers" in GRAPH["prompts.templates"]
    assert "benchmark.runner.prepare" in GRAPH["benchmark.api"]
    assert "judges.base" in GRAPH["judges.cache"]


def test_judges_import_nothing_of_prompts_or_benchmark() -> None:
    bad = [(m, d) for m, d in _edges("judges") if d.split(".")[0] in ("prompts", "benchmark")]
    assert not bad


def test_prompts_import_only_the_judges_kernel() -> None:
    allowed = {"judges.base", "judges.errors"}
    bad = [(m, d) for m, d in _edges("prompts") if not d.startswith("prompts") and d not in allowed]
    assert not bad


@pytest.mark.parametrize("room", ["benchmark.reporting", "benchmark.scoring", "benchmark.data"])
def test_what_runs_before_or_after_the_runner_never_imports_it(room: str) -> None:
    bad = [
        (m, d)
        for m, d in _edges(room)
        if d.startswith(("benchmark.runner", "benchmark.api", "benchmark.commands"))
    ]
    assert not bad


def test_scoring_never_imports_reporting() -> None:
    # compute -> facts -> renderers -> write: the numbers never depend on how they are shown
    assert not [
        (m, d) for m, d in _edges("benchmark.scoring") if d.startswith("benchmark.reporting")
    ]


def test_no_import_cycles() -> None:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for d in sorted(GRAPH[m]):
            if state.get(d) == 1:
                cycles.append([*path[path.index(d) :], d])
            elif d not in state:
                visit(d)
        path.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)
