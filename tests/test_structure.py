"""The architecture of DESIGN.md, read from the source (stdlib ``ast``, nothing imported).

- No import cycles between files of ``daemon/``, ``dsp/``, ``model/``, ``trainer/``: imports
  inside functions count too (a lazy import hides a cycle, it does not remove it); only those
  under ``if TYPE_CHECKING:`` do not (they never run).
- The layers: ``dsp`` imports nothing of ours, ``model`` neither ``daemon`` nor ``trainer``,
  ``trainer`` never ``daemon``, and ``trainer`` is imported only by itself and the CLI's
  training commands (type-only imports included: a layer does not name another's types).
- Functions fit on a screen or two: at most 80 lines. The weights in git stay under 60 MB.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("daemon", "dsp", "model", "trainer")
NEVER = {  # package -> our packages it must not import
    "dsp": {"daemon", "model", "trainer"},
    "model": {"daemon", "trainer"},
    "trainer": {"daemon"},
}
MAX_LINES = 80
TRAINER_USERS = ("trainer", "daemon.cli")  # nothing else imports the trainer
LONG_ALLOWED = {("daemon/cli.py", "build_parser")}  # the CLI's parser: one flat list of flags


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of our packages."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """``(module imported, line, type-only)`` for each import in the file that names one of
    ours: ``from a import b`` is ``a.b`` when that is a module, else ``a``."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    out: list[tuple[str, int, bool]] = []

    def resolve(mod: str | None, level: int) -> str:
        if not level:
            return mod or ""
        base = name.split(".")[: len(name.split(".")) - level + is_pkg]
        return ".".join([*base, *([mod] if mod else [])])

    def visit(node: ast.AST, typing_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for stmt in child.body:
                    visit_stmt(stmt, True)
                for stmt in child.orelse:
                    visit_stmt(stmt, typing_only)
            else:
                visit_stmt(child, typing_only)

    def visit_stmt(node: ast.AST, typing_only: bool) -> None:
        if isinstance(node, ast.Import):
            for a in node.names:
                out.append((a.name, node.lineno, typing_only))
        elif isinstance(node, ast.ImportFrom):
            base = resolve(node.module, node.level)
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((sub if sub in known else base, node.lineno, typing_only))
        visit(node, typing_only)

    visit(tree, False)
    return [(m, line, t) for m, line, t in out if m.split(".")[0] in PACKAGES]


def graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], int]]:
    """Run-time import edges between our modules, and the line of each."""
    known = modules()
    edges: dict[str, set[str]] = {m: set() for m in known}
    lines: dict[tuple[str, str], int] = {}
    for name, path in known.items():
        for mod, line, typing_only in imports(name, path, known):
            while mod not in known and "." in mod:  # `import a.b.c` of a name, not a file
                mod = mod.rsplit(".", 1)[0]
            if mod in known and mod != name and not typing_only:
                edges[name].add(mod)
                lines.setdefault((name, mod), line)
    return edges, lines


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module
    (Tarjan's algorithm, then a shortest path back to the component's first module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    out = []
    for comp in comps:
        start, inside = comp[0], set(comp)
        paths = {w: [start, w] for w in sorted(edges[start]) if w in inside}
        frontier = list(paths)
        while start not in paths and frontier:  # breadth first, back to start
            nxt = []
            for v in frontier:
                for w in sorted(edges[v]):
                    if w in inside and w not in paths:
                        paths[w] = [*paths[v], w]
                        nxt.append(w)
            frontier = nxt
        out.append(paths[start])
    return out


def _file(mod: str) -> str:
    return str(modules()[mod].relative_to(ROOT))


def test_no_import_cycles():
    edges, lines = graph()
    found = cycles(edges)
    msg = "\n".join(
        "  "
        + " -> ".join(f"{_file(a)}:{lines[a, b]}" for a, b in itertools.pairwise(c))
        + f" -> {_file(c[0])}"
        for c in found
    )
    assert not found, f"import cycles (file:line of each import):\n{msg}"


def test_the_layers_import_only_downwards():
    known = modules()
    bad = []
    for name, path in known.items():
        never = NEVER.get(name.split(".")[0], set())
        for mod, line, _ in imports(name, path, known):
            top = mod.split(".")[0]
            if top in never or (top == "trainer" and not name.startswith(TRAINER_USERS)):
                bad.append(f"  {path.relative_to(ROOT)}:{line} imports {mod}")
    assert not bad, "imports against DESIGN.md's layers:\n" + "\n".join(bad)


def long_functions() -> list[str]:
    """``file:function:lines`` of every function (methods and nested ones too) over
    MAX_LINES lines, decorators and docstring included."""
    out = []
    for path in modules().values():
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                n = node.end_lineno - first + 1
                if n > MAX_LINES and (rel, node.name) not in LONG_ALLOWED:
                    out.append(f"{rel}:{node.name}:{n}")
    return sorted(out)


def test_the_structure_checks_see_cycles_and_long_functions():
    """The checks themselves: a known cycle is found, a known acyclic graph is not."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []
    edges, _ = graph()
    assert "trainer.corpus" in edges["daemon.cli"]  # an import inside a function is an edge
    assert "dsp.checks" in edges["dsp.pitch"]  # `from dsp import checks`: the module


def test_no_function_is_longer_than_80_lines():
    long = long_functions()
    assert not long, f"functions over {MAX_LINES} lines (file:function:lines): {long}"


def test_the_weights_in_git_stay_under_60_mb():
    """Every packaged checkpoint together (safetensors under model/) under 60 MB."""
    files = sorted((ROOT / "model").rglob("*.safetensors"))
    assert files and sum(f.stat().st_size for f in files) < 60e6, [f.name for f in files]
