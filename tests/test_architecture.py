"""Architecture rules over hybrid/, checked with ast (issue 25): small modules, no import cycle,
no reaching into another object's private attributes."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hybrid"
MAX_LINES = 400
# A module may pass MAX_LINES only where its docstring says why it is not split.
EXEMPT_LINES: dict[str, str] = {}
MAX_FUNCTION_LINES = 60  # a def's lines, its docstring included
PRIVATE_OK_NAMES = {"self", "cls"}
# Layers look down only (STYLE 17): no module of a package on the left imports one of the
# packages on its right. What fitting needs of ranking (metrics, top-K, masking) is in
# hybrid.metrics, below the models; hybrid.recommender, the facade, sits on top of them all.
FACADE = ("hybrid.recommender", "hybrid.explanations")  # the facade and its explanations mixin: the top
ABOVE_MODELS = ("hybrid.fusion", "hybrid.retrieval", "hybrid.evaluation", "hybrid.serving", "hybrid.llm", *FACADE)
FORBIDDEN_IMPORTS: dict[str, tuple[str, ...]] = {
    "hybrid.data": ("hybrid.models", *ABOVE_MODELS),
    "hybrid.graph": ("hybrid.models", *ABOVE_MODELS),
    "hybrid.metrics": ("hybrid.models", *ABOVE_MODELS),
    "hybrid.models": ABOVE_MODELS,
    "hybrid.fusion": ("hybrid.evaluation", "hybrid.serving", *FACADE),
}

def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module under hybrid/."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def test_no_module_over_the_line_limit() -> None:
    too_long = {}
    for name, path in modules().items():
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES and name not in EXEMPT_LINES:
            too_long[name] = lines
    print("modules over", MAX_LINES, "lines:", too_long)
    assert not too_long, f"modules over {MAX_LINES} lines (split them, or exempt one whose docstring says why): {too_long}"


def test_no_function_over_the_line_limit() -> None:
    too_long = {}
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long[f"{name}.{node.name}"] = lines
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines (split them): {too_long}"


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The hybrid modules that ``name`` imports anywhere in its file (in functions and under
    TYPE_CHECKING too): ``from a.b import c`` counts as ``a.b.c`` where that is a module, else ``a.b``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        edges.update(t for t in targets if t in known and t != name)
    return edges


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return [cycle_in(graph, set(component)) for component in components]


def cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path back to its first module inside one strongly connected component."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    return paths[node] + [start]
                if child not in paths:
                    paths[child] = paths[node] + [child]
                    following.append(child)
        frontier = following
    return sorted(component)


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(name, path, set(found)) for name, path in found.items()}


def test_no_import_cycle() -> None:
    cycles = find_cycles(import_graph())
    for cycle in cycles:
        print("import cycle:", " -> ".join(cycle))
    assert not cycles, f"import cycles among hybrid/ modules: {[' -> '.join(c) for c in cycles]}"


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import edge "a -> b" that :data:`FORBIDDEN_IMPORTS` rules out."""
    return sorted(f"{source} -> {target}" for source, targets in graph.items() for target in targets
                  for layer, above in FORBIDDEN_IMPORTS.items()
                  if in_package(source, layer) and any(in_package(target, a) for a in above))


def test_layers_look_down_only() -> None:
    found = layer_violations(import_graph())
    for edge in found:
        print("import against the layers:", edge)
    assert not found, ("imports against the layers (move what the lower module needs below it, "
                       f"e.g. into hybrid.metrics or hybrid.data): {found}")


def private_accesses(path: Path) -> list[str]:
    """``name._private`` on a name other than self, cls or an imported module, as "line: text"."""
    tree = ast.parse(path.read_text())
    modules_bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules_bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            modules_bound.update(alias.asname or alias.name for alias in node.names)  # may name a module
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name) and node.value.id not in PRIVATE_OK_NAMES
                and node.value.id not in modules_bound):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_private_access_across_objects() -> None:
    found = {name: hits for name, path in modules().items() if (hits := private_accesses(path))}
    for name, hits in found.items():
        print(name, hits)
    assert not found, f"private attributes reached on other objects: {found}"


def test_the_checks_see_what_they_should(tmp_path: Path) -> None:
    """The helpers themselves: a cycle is found, an edge resolves to a submodule, a private access is caught."""
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    source = tmp_path / "m.py"
    source.write_text("from hybrid.x import y, z\nimport hybrid.w\n\ndef f(o):\n"
                      "    from typing import TYPE_CHECKING\n    return o._secret, self._mine, o.__dict__\n")
    known = {"hybrid.x", "hybrid.x.y", "hybrid.w", "hybrid.m"}
    assert imported("hybrid.m", source, known) == {"hybrid.x", "hybrid.x.y", "hybrid.w"}
    assert private_accesses(source) == ["6: o._secret"]
    graph = {"hybrid.models.x": {"hybrid.evaluation.y", "hybrid.models.z", "hybrid.graph"},
             "hybrid.fusion.w": {"hybrid.retrieval.v", "hybrid.serving"}, "hybrid.metricsx": {"hybrid.llm"}}
    assert layer_violations(graph) == ["hybrid.fusion.w -> hybrid.serving", "hybrid.models.x -> hybrid.evaluation.y"]
