"""slimedge's modules import each other without a cycle (read statically, with ast).

The graph: one node per module of the ``slimedge`` package (``pkg/__init__.py`` is ``pkg``); an
edge for every import of a slimedge module that runs when the importing module is executed —
at module level, including inside ``if``/``try``/``with`` blocks and class bodies, but not
under ``if TYPE_CHECKING:`` (never run). ``from . import x`` is an edge to the submodule ``x`` when
there is one, else to the package (its ``__init__``, which defines ``x``); ``from .a import b`` is
an edge to ``a.b`` when that is a module, else to ``a``. Importing a submodule also runs its parent
packages' ``__init__`` first, which Python guarantees and which is no edge of the importer's.

Function-local imports (inside a ``def``) are deliberately left out: they run when the function
is called, after every module involved has finished initialising, so they cannot meet a
half-initialised module; they are how slimedge defers heavy packages (torch, onnx, the
interpreters) to the code paths that need them. A cycle through them is a layering smell, not an
import failure (``graph(function_local=True)`` adds those edges, to look for one).

The test derives the graph from the files present, so it holds as modules are added or moved.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "slimedge"


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


def _imports(tree: ast.Module, *, function_local: bool):
    """The import statements run at import time (or, with ``function_local``, only those inside
    functions)."""
    stack = [(node, False) for node in tree.body]
    while stack:
        node, in_function = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if in_function == function_local:
                yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend((n, in_function) for n in node.orelse)
            continue
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt) or isinstance(child, ast.excepthandler):
                stack.append((child, inner))


def _targets(name: str, path: Path, node, modules) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in modules}
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        parts = parts[:len(parts) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    out = set()
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if sub in modules:
            out.add(sub)
        elif base in modules:
            out.add(base)
    return out


def graph(*, function_local: bool = False) -> dict[str, set[str]]:
    modules = _modules()
    g: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in _imports(tree, function_local=function_local):
            g[name] |= _targets(name, path, node, modules) - {name}
    return g


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found = []
    counter = 0
    for root in sorted(g):
        if root in index:
            continue
        work = [(root, iter(sorted(g[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(g[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


def _describe(g, comp) -> str:
    return "; ".join(f"{a} -> {b}" for a in comp for b in sorted(g[a]) if b in comp)


def test_no_import_cycle_among_library_modules():
    g = graph()
    assert len(g) > 50 and "slimedge.runtime" in g["slimedge.cli.app"]  # the graph is read
    found = cycles(g)
    assert found == [], "import cycles: " + " | ".join(_describe(g, c) for c in found)


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    tree = ast.parse("import os\nif TYPE_CHECKING:\n    from . import x\n"
                     "def f():\n    from . import y\ntry:\n    from . import z\nexcept ImportError:"
                     "\n    pass\n")
    at_import = [ast.unparse(n) for n in _imports(tree, function_local=False)]
    local = [ast.unparse(n) for n in _imports(tree, function_local=True)]
    assert sorted(at_import) == ["from . import z", "import os"]
    assert local == ["from . import y"]

