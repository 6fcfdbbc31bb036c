"""The house rules, checked: a stage imports only the stages before it (and the foundation modules), and no
module imports itself back through others (no import circle).

Every import counts: module-level and inside functions, ``importlib.import_module("geodiv....")`` and
``__import__("geodiv....")`` with a literal name (an f-string counts by its literal ``geodiv.<package>.`` prefix).
A module imported by a name the test cannot read is a violation of its own.
"""

import ast
from pathlib import Path

import geodiv

STAGES = ["geo", "simearth", "data", "diversity", "models", "train", "evaluate", "study", "report"]
FOUNDATION = {"errors", "atomic", "progress", "bands", "config", "machine"}
PACKAGE = Path(geodiv.__file__).parent

#: Import edges (importer -> imported) known to close a circle, each with the issue that removes it. Keep this to
#: exactly the circles that exist: an entry whose edge is gone, or no longer closes a circle, fails the test.
KNOWN_CIRCLES: dict[tuple[str, str], str] = {}

_IMPORT_FUNCTIONS = {"import_module", "__import__"}


def imported_names(source: str) -> tuple[set[str], list[str]]:
    """Dotted ``geodiv`` names that ``source`` imports anywhere, and the lines where it imports by a name that
    cannot be read (a variable, a computed string)."""
    found: set[str] = set()
    unreadable: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.Call) and _called_name(node.func) in _IMPORT_FUNCTIONS and node.args:
            name = _literal_module(node.args[0])
            if name is None:
                unreadable.append(f"line {node.lineno}: {ast.unparse(node)}")
            else:
                found.add(name)
    return {n for n in found if n.split(".")[0] == "geodiv"}, unreadable


def _called_name(func: ast.expr) -> str | None:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def _literal_module(arg: ast.expr) -> str | None:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        prefix = str(arg.values[0].value)  # f"geodiv.data.{name}": a module of the geodiv.data package
        if prefix.startswith("geodiv.") and prefix.endswith(".") and prefix.count(".") >= 2:
            return prefix[:-1]
    return None


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def import_graph() -> dict[str, set[str]]:
    """Module -> the geodiv modules it imports (``from geodiv.a import b`` is ``geodiv.a.b`` when that is a
    module, else ``geodiv.a``)."""
    graph = {}
    for module, path in MODULES.items():
        names, _ = imported_names(path.read_text(encoding="utf-8"))
        graph[module] = {m for m in map(_resolve, names) if m is not None and m != module}
    return graph


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def find_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle ``[a, b, ..., a]`` per group of modules that import each other, directly or through others."""
    return [_circle_in(graph, group) for group in strongly_connected(graph)]


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """The groups of two or more modules each reachable from every other (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(group)
    return groups


def _circle_in(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """The shortest circle through the first module of a strongly connected group (breadth-first)."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node] & group):
                if child == start:
                    return [*paths[node], start]
                if child not in paths:
                    paths[child] = [*paths[node], child]
                    nxt.append(child)
        frontier = nxt
    raise AssertionError(f"{sorted(group)} is not strongly connected")  # pragma: no cover


def _stage_imports(path: Path) -> set[str]:
    names, _ = imported_names(path.read_text(encoding="utf-8"))
    return {n.split(".")[1] for n in names if "." in n}


def test_stages_import_only_earlier_stages():
    violations = []
    for i, stage in enumerate(STAGES):
        allowed = set(STAGES[: i + 1]) | FOUNDATION
        for path in sorted((PACKAGE / stage).rglob("*.py")):
            bad = _stage_imports(path) - allowed
            if bad:
                violations.append(f"{path.relative_to(PACKAGE)} imports later stage(s) {sorted(bad)}")
    assert not violations, "\n".join(violations)


def test_foundation_imports_no_stage():
    for name in FOUNDATION:
        assert not (_stage_imports(PACKAGE / f"{name}.py") & set(STAGES)), name


def test_every_import_names_its_module():
    hidden = []
    for module, path in MODULES.items():
        _, unreadable = imported_names(path.read_text(encoding="utf-8"))
        hidden += [f"{module} {line}" for line in unreadable]
    assert not hidden, "modules imported by a name the architecture test cannot read:\n" + "\n".join(hidden)


def test_no_import_circles():
    graph = import_graph()
    groups = strongly_connected(graph)
    for importer, imported in KNOWN_CIRCLES:
        assert imported in graph[importer], f"known circle edge {importer} -> {imported} is gone: remove its entry"
        assert any({importer, imported} <= g for g in groups), (
            f"{importer} -> {imported} no longer closes a circle: remove its KNOWN_CIRCLES entry"
        )
        graph[importer] = graph[importer] - {imported}
    circles = find_circles(graph)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_the_checks_see_hidden_imports_and_circles():
    source = (
        "import importlib\n"
        "from geodiv import geo\n"
        "def f():\n"
        "    from geodiv.report import write_report\n"
        "    importlib.import_module('geodiv.study')\n"
        "    __import__('geodiv.train.pretrain')\n"
        "    importlib.import_module(f'geodiv.data.{f}')\n"
        "    importlib.import_module(NAME)\n"
    )
    names, unreadable = imported_names(source)
    assert names == {"geodiv.geo", "geodiv.report.write_report", "geodiv.study", "geodiv.train.pretrain", "geodiv.data"}
    assert unreadable == ["line 8: importlib.import_module(NAME)"]
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}}
    assert sorted(find_circles(graph)) == [["a", "b", "c", "a"], ["e", "f", "e"]]
    assert find_circles({"a": {"b"}, "b": set()}) == []


def test_nothing_reads_shared_reference_data_at_run_time():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "../shared" not in text and "/work/shared" not in text, path
