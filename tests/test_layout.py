"""The package's shape: no import cycles, no Lightning under generation, modules small enough to
read at once, and the import paths of the flat layout still working."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "mh_lightning"
# Pure data tables (`*_tables.py`, by convention) may be long; so may the flat safety modules
# until the safety package replaces them.
SIZE_EXEMPT = {"safety.py", "safety_patterns.py", "safety_semantic.py"}
MAX_LINES = 400


def exempt(path: Path) -> bool:
    return path.name in SIZE_EXEMPT or path.name.endswith("_tables.py")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py"}


def imports(path: Path, known: set[str]) -> set[str]:
    """The project modules `path` imports at module level or in a function (all of them count)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found.update(n for n in names if n in known)
    return found


def test_no_import_cycles():
    table = modules()
    graph = {name: imports(path, set(table)) - {name} for name, path in table.items()}
    for name in graph:  # a package imports its own submodules: drop package -> child edges
        graph[name] = {m for m in graph[name] if not m.startswith(name + ".")}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_modules_are_small_enough_to_read_at_once():
    too_long = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py")
                if not exempt(p) and (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert too_long == {}


@pytest.mark.slow
def test_every_module_imports_alone_and_generation_needs_no_lightning():
    names = sorted(modules())
    code = ("import importlib, sys\n"
            "name = sys.argv[1]\n"
            "importlib.import_module(name)\n"
            "print('lightning' in sys.modules)\n")
    lightning_free = {"mh_lightning.inference", "mh_lightning.inference.loading", "mh_lightning.inference.generation",
                      "mh_lightning.inference.chat", "mh_lightning.inference.export", "mh_lightning.cli.generate",
                      "mh_lightning.cli.chat", "mh_lightning.cli.export", "mh_lightning.model"}
    for name in names:
        result = subprocess.run([sys.executable, "-c", code, name], capture_output=True, text=True,
                                env={"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}, timeout=300)
        assert result.returncode == 0, (name, result.stderr[-1500:])
        if name in lightning_free:
            assert result.stdout.strip() == "False", f"{name} imports Lightning"


def test_the_flat_import_paths_still_work():
    import mh_lightning.fit
    import mh_lightning.module
    import mh_lightning.training.cli
    import mh_lightning.training.module
    from mh_lightning.chat import ChatSession, main  # noqa: F401
    from mh_lightning.checkpoint import CheckpointError, load_for_inference, read_checkpoint  # noqa: F401
    from mh_lightning.data import MentalHealthDataModule  # noqa: F401
    from mh_lightning.evaluate import FIGURES  # noqa: F401
    from mh_lightning.export import export  # noqa: F401
    from mh_lightning.inference import GenerationConfig, generate_answers  # noqa: F401
    from mh_lightning.model import load_base_model  # noqa: F401
    from mh_lightning.preview import preview  # noqa: F401

    assert mh_lightning.module is mh_lightning.training.module  # one module: monkeypatches are shared
    assert mh_lightning.fit is mh_lightning.training.cli


def test_project_errors_keep_their_builtin_bases():
    from mh_lightning import errors

    for cls in (errors.UsageError, errors.DataError, errors.SettingsError, errors.CheckpointError):
        assert issubclass(cls, errors.MHLightningError) and issubclass(cls, ValueError)
    for cls in (errors.ModelLoadError, errors.NonFiniteLossError, errors.OutOfMemoryHint):
        assert issubclass(cls, errors.MHLightningError) and issubclass(cls, RuntimeError)
