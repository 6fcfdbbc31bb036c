"""The house rule, checked: a stage imports only the stages before it (and the foundation modules)."""

import ast
from pathlib import Path

import geodiv

STAGES = ["geo", "simearth", "data", "diversity", "models", "train", "evaluate", "study", "report"]
FOUNDATION = {"errors", "atomic", "progress", "bands", "config"}
PACKAGE = Path(geodiv.__file__).parent


def _geodiv_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):  # function-level (lazy) imports count too
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "geodiv":
                names = [f"geodiv.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "geodiv" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_stages_import_only_earlier_stages():
    violations = []
    for i, stage in enumerate(STAGES):
        allowed = set(STAGES[: i + 1]) | FOUNDATION
        for path in sorted((PACKAGE / stage).rglob("*.py")):
            bad = _geodiv_imports(path) - allowed
            if bad:
                violations.append(f"{path.relative_to(PACKAGE)} imports later stage(s) {sorted(bad)}")
    assert not violations, "\n".join(violations)


def test_foundation_imports_no_stage():
    for name in FOUNDATION:
        assert not (_geodiv_imports(PACKAGE / f"{name}.py") & set(STAGES)), name


def test_nothing_reads_shared_reference_data_at_run_time():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "../shared" not in text and "/work/shared" not in text, path
