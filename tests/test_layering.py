"""The inference core stands alone: serving/ never imports training/, and its core skips the heavy extras."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE_FORBIDDEN = {"fastapi", "starlette", "uvicorn", "datasets", "sklearn", "training", "matplotlib"}


def imported_modules(path: Path, module_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body if module_level_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_serving_never_imports_training():
    for path in (ROOT / "serving").rglob("*.py"):
        assert "training" not in imported_modules(path), f"{path.relative_to(ROOT)} imports training"


# The inference commands live beside the core; `rasid serve` starts the FastAPI app (serving/api/), so these
# may import the heavy extras inside their functions, never at module level.
SERVING_COMMANDS = {"predict.py", "predict_ray.py", "serve.py", "export.py"}


def test_the_inference_core_imports_no_web_framework_datasets_or_scikit_learn():
    modules = list((ROOT / "serving").glob("*.py"))  # serving/api/ is the FastAPI layer on top
    assert {p.name for p in modules} >= {"normalize.py", "bundle.py", "model.py", "predictor.py", "documents.py"}
    assert {p.name for p in modules} >= SERVING_COMMANDS
    for path in modules:
        found = imported_modules(path, module_level_only=path.name in SERVING_COMMANDS) & CORE_FORBIDDEN
        assert not found, f"{path.relative_to(ROOT)} imports {sorted(found)}"


def test_the_rasid_command_line_loads_no_heavy_library_until_a_command_runs():
    """`rasid serve` pays in memory for every module the parser imports (scikit-learn and pandas: ~135 MB)."""
    import subprocess
    import sys

    code = (
        "import sys; from training.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'transformers', 'sklearn', 'pandas', 'scipy', 'matplotlib', "
        "'datasets') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


# ---- the import graph: no command imports another, no circle -------------------------------------------------


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in ("serving", "training") for p in (ROOT / package).rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its file (function-level imports included)."""
    modules = project_modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {resolve(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found |= {resolve(f"{node.module}.{alias.name}") for alias in node.names}
        graph[name] = found - {None, name}
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, pending = set(), list(graph[start])
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending += graph.get(name, ())
    return seen


def test_no_command_module_imports_another_command_module():
    """Shared helpers live in noun modules; a command reaches no other command, even through them."""
    from training.cli import COMMANDS

    graph = import_graph()
    commands = {module.__name__ for module in COMMANDS}
    assert commands <= set(graph)
    for command in commands:
        others = reachable(graph, command) & (commands - {command})
        assert not others, f"{command} imports the command module(s) {sorted(others)}"
    importers = sorted(name for name, imported in graph.items() if "training.cli" in imported)
    assert importers == ["training.__main__"], f"only `python -m training` may import the CLI, not {importers}"


def test_there_is_no_import_circle():
    graph = import_graph()
    for name in graph:
        assert name not in reachable(graph, name), f"{name} imports itself through {sorted(reachable(graph, name))}"
