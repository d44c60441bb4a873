"""The import contract of the layout (CONTRIBUTING.md, "Where code goes"), checked on the source itself.

Each room of ``workbench/`` may import only the rooms below it; the torch-free rooms never import torch, and
no library module imports Streamlit or ``workbench.ui``. Every import is read, function-local ones included,
so a lazy import cannot slip past the rule; a function-local import must say why it is lazy (``# lazy: ...``).
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# room -> the workbench rooms it may import (itself included)
ALLOWED_ROOMS = {
    "core": {"core"},
    "deploy": {"core", "deploy"},
    "train": {"core", "deploy", "train"},
    "runs": {"core", "deploy", "train", "runs"},
    "cli": {"core", "deploy", "train", "runs", "cli"},
    "ui": {"core", "deploy", "train", "runs", "ui"},
}
STREAMLIT_SIDE = ("streamlit", "plotly", "streamlit_drawable_canvas")
FORBIDDEN_PACKAGES = {
    "core": ("torch", "safetensors", *STREAMLIT_SIDE),
    "deploy": ("torch", "safetensors", *STREAMLIT_SIDE),
    "train": STREAMLIT_SIDE,
    "runs": STREAMLIT_SIDE,
    "cli": STREAMLIT_SIDE,
    "ui": (),
}
# (module, what it imports) pairs allowed beside the rules, each for one stated reason
EXCEPTIONS = {
    ("workbench.cli.app", "streamlit"): "the app command hands over to Streamlit's own CLI",
    ("workbench.cli.app", "workbench.ui"): "the app command preloads Home's figure modules while the server starts",
}
TORCH_FREE_MODULES = ["workbench.runs.store", "workbench.runs.launch", "workbench.cli"]


def _module_name(path: pathlib.Path, root: pathlib.Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _library_modules(root: pathlib.Path = ROOT) -> dict[str, pathlib.Path]:
    return {_module_name(path, root): path for path in sorted((root / "workbench").rglob("*.py"))}


def _imports(path: pathlib.Path, modules: dict | None = None) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import of a file; ``from a import b`` gives a.b
    when a.b is a module of ours, else a."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules = _library_modules() if modules is None else modules
    found = []

    def visit(node, local):
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, local) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                for alias in child.names:
                    candidate = f"{child.module}.{alias.name}"
                    found.append((candidate if candidate in modules else child.module, child.lineno, local))
            visit(child, inner)

    visit(tree, False)
    return found


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "workbench" and parts[1] in ALLOWED_ROOMS else None


def _violations(root: pathlib.Path = ROOT) -> list[str]:
    problems = []
    modules = _library_modules(root)
    for module, path in modules.items():
        room = _room(module)
        if room is None:
            continue
        for imported, line, _ in _imports(path, modules):
            top = imported.split(".")[0]
            target_room = _room(imported)
            where = f"{path.relative_to(root)}:{line}: {module} imports {imported}"
            if any((module, prefix) in EXCEPTIONS for prefix in (top, ".".join(imported.split(".")[:2]))):
                continue
            if top in FORBIDDEN_PACKAGES[room]:
                problems.append(f"{where}, but the {room} room never imports {top}")
            elif target_room is not None and target_room not in ALLOWED_ROOMS[room]:
                problems.append(f"{where}, but the {room} room may import only {sorted(ALLOWED_ROOMS[room])}")
    return problems


def test_every_module_lives_in_a_room():
    loose = [m for m in _library_modules() if m not in ("workbench", "workbench.deploy._xnor") and _room(m) is None]
    assert loose == [], f"modules outside the rooms {sorted(ALLOWED_ROOMS)}: {loose}"


def test_rooms_import_only_the_rooms_below_them():
    assert _violations() == []


def test_the_contract_check_catches_forbidden_imports(tmp_path):
    """The checker itself, on a small tree: a deploy module importing torch (even lazily), a train module
    importing the UI and a core module importing Streamlit are each caught; a clean module is not."""
    files = {
        "deploy/engine.py": "def run():\n    import torch  # lazy: a probe\n",
        "train/model.py": "from workbench.ui import widgets\n",
        "core/spec.py": "import streamlit as st\n",
        "core/shapes.py": "import math\n",
        "ui/widgets.py": "",
    }
    for name, text in files.items():
        (tmp_path / "workbench" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "workbench" / name).write_text(text)
    problems = _violations(tmp_path)
    assert len(problems) == 3
    assert any("workbench.deploy.engine imports torch" in p and "never imports torch" in p for p in problems)
    assert any("workbench.train.model imports workbench.ui.widgets" in p and "may import only" in p for p in problems)
    assert any("workbench.core.spec imports streamlit" in p for p in problems)


def test_no_import_cycles_between_modules():
    modules = _library_modules()
    graph = {m: {i for i, _, _ in _imports(p) if i in modules and i != m} for m, p in modules.items()}
    # a package's __init__ is imported with any of its modules: only edges between plain modules count
    packages = {m for m, p in modules.items() if p.name == "__init__.py"}
    graph = {m: {i for i in edges if i not in packages} for m, edges in graph.items() if m not in packages}
    state, cycles = {}, []

    def walk(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                walk(nxt, stack + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert cycles == []


def _lazy_imports_without_a_reason(path: pathlib.Path) -> list[int]:
    lines = path.read_text(encoding="utf-8").split("\n")
    missing = []
    for _, line, local in _imports(path):
        if not local:
            continue
        i = line - 1
        reason = "lazy:" in lines[i]
        # the import's own block: imports, comments and blank lines above it, and the statement that opens it
        while not reason and i > 0:
            i -= 1
            text = lines[i].strip()
            reason = "lazy:" in text
            if text and not text.startswith(("#", "import ", "from ")):
                break
        if not reason:
            missing.append(line)
    return missing


@pytest.mark.parametrize("folder", ["workbench", "pages"])
def test_function_local_imports_say_why(folder):
    missing = {
        str(p.relative_to(ROOT)): lines
        for p in sorted((ROOT / folder).rglob("*.py"))
        if (lines := _lazy_imports_without_a_reason(p))
    }
    assert missing == {}, "function-local imports need a '# lazy: reason' comment (or move them to the top)"


def test_the_lazy_import_check_wants_a_reason(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    x = 1\n    import json\n\n\ndef g():\n    # lazy: a reason\n    import json\n")
    assert _lazy_imports_without_a_reason(probe) == [3]


def test_torch_free_rooms_load_without_torch_or_streamlit():
    """Imported for real, in a fresh interpreter: nothing in core, deploy, the store or the CLI pulls in torch."""
    modules = [m for m in _library_modules() if _room(m) in ("core", "deploy")] + TORCH_FREE_MODULES
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "print(sorted(m for m in ('torch', 'streamlit', 'plotly') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
