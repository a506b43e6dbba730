"""The package layout shows the pipeline, and imports flow one way through it.

Given the tree under provision/, a newcomer reads the stages from the directory names, and
no module of a lower stage imports a higher one (a lazy import inside a function counts too:
it is the same dependency, only later).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "provision"

# Lowest first. A module may import its own stage and the stages before it, never after.
BOTTOM = {"errors", "settings", "versions", "fsutil", "templating", "ids", "paths", "secrets", "readers", "archives"}
STAGES = ["spec", "host", "lock", "plan", "offline", "wsl", "render", "fleet", "verify", "launch", "apply", "cli"]
MAX_LINES = 400
LONG_REASON = "Longer than 400 lines because"


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def _dotted(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _rank(module: str) -> int:
    """-1 for the bottom layer and the package itself, else the stage's index."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] in BOTTOM:
        return -1
    if parts[1] == "__main__":  # `python -m provision`: the command line's other door
        return STAGES.index("cli")
    if parts[1] not in STAGES:
        raise AssertionError(f"{module}: not in a known stage; add it to STAGES or BOTTOM in {__file__}")
    return STAGES.index(parts[1])


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every provision import in the file, top-level or lazy."""
    me = _dotted(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "provision"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "provision":
                continue
            if node.module is None or mod.count(".") == 1:  # `from . import x` / `from provision import x`
                out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, mod))
    return out


def test_the_tree_names_every_stage_of_the_readme_pipeline_line() -> None:
    readme = (ROOT / "README.md").read_text()
    line = next(li for li in readme.splitlines() if li.startswith("spec") and "->" in li)
    named = re.findall(r"(?<![\w*/])(\w+)/(?=\s)", line)  # `spec/ (envs/*.yaml)` names spec, not envs
    assert named, line
    for stage in named:
        assert (PKG / stage / "__init__.py").is_file(), f"README pipeline names {stage}/, the tree has no provision/{stage}/"
    for stage in STAGES:
        assert (PKG / stage / "__init__.py").is_file(), f"provision/{stage}/ is a stage but not a package"


def test_imports_flow_from_lower_stages_to_higher_ones_only() -> None:
    wrong = []
    for path in _modules():
        me = _dotted(path)
        mine = _rank(me)
        for line, target in _imports(path):
            theirs = _rank(target)
            if theirs > mine:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({STAGES[mine] if mine >= 0 else 'bottom'}) imports "
                             f"{target} ({STAGES[theirs]}), a later stage")
    assert not wrong, "\n".join(wrong)


def test_the_bottom_layer_imports_no_stage() -> None:
    for name in BOTTOM:
        path = PKG / f"{name}.py"
        assert path.is_file(), name
        assert all(_rank(t) == -1 for _, t in _imports(path)), f"{name}.py imports a stage"


def test_the_in_env_runner_imports_nothing_of_provision_and_only_the_standard_library() -> None:
    """It runs inside the target's Python, which has none of provision's dependencies."""
    import sys

    path = PKG / "verify" / "runner.py"
    tree = ast.parse(path.read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name.split(".")[0] for n in top if isinstance(n, ast.Import) for a in n.names}
    names |= {(n.module or "").split(".")[0] for n in top if isinstance(n, ast.ImportFrom) and not n.level}
    assert not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree))
    assert names <= set(sys.stdlib_module_names) | {"__future__"}, names - set(sys.stdlib_module_names)


@pytest.mark.parametrize("lib", ["typer", "click", "tqdm"])
def test_only_the_cli_talks_to_the_terminal_libraries(lib: str) -> None:
    users = []
    for path in _modules():
        if "cli" in path.relative_to(PKG).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            if any(n.split(".")[0] == lib for n in names):
                users.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not users, f"{lib} imported outside provision/cli/: {users}"


def test_only_paths_py_deletes() -> None:
    """One place deletes, and only inside a root and a directory provision made (paths.py)."""
    deleters = {"rmtree", "unlink", "remove", "removedirs", "rmdir_tree"}
    found = []
    for path in _modules():
        if path == PKG / "paths.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in deleters:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.func.attr}()")
    assert not found, f"deletion outside provision/paths.py: {found}"


def test_no_module_is_longer_than_400_lines_without_saying_why() -> None:
    long = [f"{p.relative_to(ROOT)}: {n} lines" for p in _modules()
            if (n := len(p.read_text().splitlines())) > MAX_LINES and LONG_REASON not in p.read_text()[:2000]]
    assert not long, f"split these, or say why at the top ({LONG_REASON!r}): {long}"


def test_ruff_finds_no_undefined_or_unused_names() -> None:
    """pyflakes' rules (F) and syntax errors (E9): a name a refactor left undefined fails here, not at run time."""
    import shutil
    import subprocess
    import sys

    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it is in the test extra)")
    r = subprocess.run([ruff, "check", "--no-cache", "provision", "tests", "benchmarks", "tools"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
