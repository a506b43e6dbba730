"""Given the field notes' hosts and the shipped specs, `provision compile` writes exactly the bytes
it wrote before: every file's sha256 (FILES.sha256) matches the golden list.

A deliberate change to a template, a spec or a lockfile changes these lists; regenerate them
with `PROVISION_UPDATE_GOLDEN=1 pytest tests/test_golden.py` and read the diff of the
compiled files before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_lock import run

from conftest import FIXTURES

GOLDEN = FIXTURES / "golden"
CASES = {
    # name: (target, host fixture, extra arguments)
    "triposr-rtx5070ti-wsl2": ("triposr", "rtx5070ti-wsl2", []),
    "triposr-a6000-linux-535": ("triposr", "a6000-linux-535", []),
    "trellis-rtx3090-wsl2-cu121-pypi": ("trellis", "rtx3090-wsl2-16g", ["--variant", "cu121-pypi"]),
    "trellis2-h100-cuda13": ("trellis2", "h100-cuda13", []),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_compile_output_is_byte_identical_to_the_golden_list(name: str, tmp_path: Path) -> None:
    target, host, extra = CASES[name]
    out = tmp_path / name
    code, text = run("compile", target, "--host", str(FIXTURES / "hosts" / f"{host}.json"), "--out", str(out),
                     "--data-dir", "/data/provision", *extra)
    assert code == 0, text
    got = (out / "FILES.sha256").read_text()
    golden = GOLDEN / f"{name}.sha256"
    if os.environ.get("PROVISION_UPDATE_GOLDEN") == "1":
        golden.write_text(got)
    assert golden.is_file(), f"no golden list {golden}: run with PROVISION_UPDATE_GOLDEN=1 once"
    assert got == golden.read_text(), f"compile output of {name} changed: diff {out} against a compile from main"
