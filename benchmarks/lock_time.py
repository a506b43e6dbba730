"""How long does `provision lock` take per target, against the floor of uv resolving the same pip set?

For each lockable variant, in one run and side by side:
  - `provision lock` cold (empty uv and rattler caches) and warm (caches filled);
  - `uv pip compile` alone on the same generated input, cold and warm: the pip resolution floor.
The ratio provision / uv says what the conda solve, the second (annotated) uv pass and
writing with conda-lock cost on top. Needs PyPI (the pip half is resolved for real).
conda-lock's own `conda-lock lock` cannot run here (it needs a conda binary and conda-forge);
its documentation and issues describe minutes per lock.

    python benchmarks/lock_time.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# (target, variant, extra lock arguments): as the committed lockfiles were made
VARIANTS = [("trellis2", "cu124", ["--no-cuda-toolkit"]), ("triposr", "cu121", ["--no-cuda-toolkit"]),
            ("triposr", "cu128", []), ("trellis", "cu121-pypi", ["--no-cuda-toolkit"]),
            ("trellis", "cu121", ["--no-cuda-toolkit"])]


def _lock(target: str, variant: str, extra: list[str], cache: Path, lockdir: Path, cutoff: str) -> tuple[float, int]:
    env = os.environ | {"PROVISION_CACHE": str(cache)}
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "provision", "lock", target, "--variant", variant,
                        "--channel-snapshot", str(ROOT / "channels"), *extra, "--lockdir", str(lockdir),
                        "--exclude-newer", cutoff], env=env, capture_output=True, text=True)
    return time.perf_counter() - t, r.returncode


def _uv(target: str, variant: str, cache: Path, cutoff: str) -> float:
    from provision.lock.inputs import lock_inputs
    from provision.lock.pip import project_toml, uv_bin
    from provision.spec import load_target

    inputs = lock_inputs(load_target(target).spec, variant)
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "pyproject.toml").write_text(project_toml(inputs))
        Path(tmp, "o.txt").write_text("".join(o + "\n" for o in inputs.overrides))
        t = time.perf_counter()
        subprocess.run([uv_bin(), "pip", "compile", "pyproject.toml", "--no-config", "-q", "--python-version", "3.10",
                        "--python-platform", "x86_64-manylinux_2_28", "--override", "o.txt", "--exclude-newer", cutoff,
                        "--cache-dir", str(cache), "-o", "pylock.toml"], cwd=tmp, capture_output=True,
                       env=os.environ | {"UV_PYTHON_DOWNLOADS": "never"})
        return time.perf_counter() - t


def main() -> None:
    from provision.lock import lockfile

    print(f"{'target/variant':<16} {'provision cold':>14} {'uv cold':>8} {'ratio':>6} {'provision warm':>15} {'uv warm':>8} {'ratio':>6}")
    for target, variant, extra in VARIANTS:
        committed = lockfile.lockfile_path(ROOT / "lockfiles", target, variant)
        cutoff = (lockfile.custom(lockfile.read(committed), lockfile.META_EXCLUDE_NEWER)
                  if committed.is_file() else "2026-11-23T00:00:00Z")
        with tempfile.TemporaryDirectory() as tmp:
            tmp_p = Path(tmp)
            pc, rc = _lock(target, variant, extra, tmp_p / "pcache", tmp_p / "locks", cutoff)
            if rc != 0:
                print(f"{target + '/' + variant:<16} not lockable here (exit {rc}: an index out of reach)")
                continue
            uc = _uv(target, variant, tmp_p / "uvcache", cutoff)
            pw, _ = _lock(target, variant, extra, tmp_p / "pcache", tmp_p / "locks", cutoff)
            uw = _uv(target, variant, tmp_p / "uvcache", cutoff)
            same = (tmp_p / "locks" / target / variant / "conda-lock.yml").read_bytes() == committed.read_bytes() \
                if committed.is_file() else None
            print(f"{target + '/' + variant:<16} {pc:>13.1f}s {uc:>7.1f}s {pc / uc:>6.2f} {pw:>14.1f}s {uw:>7.1f}s "
                  f"{pw / uw:>6.2f}  same bytes as committed: {same}")
            shutil.rmtree(tmp_p, ignore_errors=True)


if __name__ == "__main__":
    main()
