"""What do the startup shims cost each interpreter start? Ratios to the same env without them.

The shims run in every Python of the env (pip, build scripts, the app): they must cost next to
nothing until torch.hub or gradio_client.utils is imported. Three throwaway venvs of this Python
(one bare, one with TRELLIS's compiled shims, one with them and PROVISION_SHIMS=0) start N times
side by side; we report the median of each, its ratio to the bare one, and what the shimmed
interpreter has imported that the bare one has not.

    python benchmarks/shim_startup.py [--runs 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provision.apply.shims import install_shims  # noqa: E402
from provision.render.shims import shim_files  # noqa: E402
from provision.spec import load_target  # noqa: E402

MODULES = "import sys; print(' '.join(sorted(sys.modules)))"


def make_env(root: Path, shims: bool) -> str:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "env")], check=True)
    py = str(root / "env" / "bin" / "python")
    if shims:
        for rel, text in shim_files(load_target("trellis").spec).items():
            (root / "compiled" / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / "compiled" / rel).write_text(text)
        install_shims(py, root / "compiled", print)
    subprocess.run([py, "-c", "pass"], check=True)  # the first start writes the .pyc files
    return py


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=40)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="shim-bench-") as d:
        bare, shimmed = make_env(Path(d) / "bare", False), make_env(Path(d) / "shimmed", True)
        cases = {"no shims": (bare, {}), "shims": (shimmed, {}), "shims, PROVISION_SHIMS=0": (shimmed, {"PROVISION_SHIMS": "0"})}
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.runs):  # interleaved, so drift hits every case alike
            for name, (py, env) in cases.items():
                t = time.perf_counter()
                subprocess.run([py, "-c", "pass"], env={**os.environ, **env})
                times[name].append(time.perf_counter() - t)
        base = statistics.median(times["no shims"])
        print(f"{'python -c pass':<30} {'median ms':>9} {'ratio':>7}")
        for name, ts in times.items():
            m = statistics.median(ts)
            print(f"{name:<30} {m * 1000:>9.1f} {m / base:>7.3f}")
        mods = [set(subprocess.run([py, "-c", MODULES], capture_output=True, text=True).stdout.split())
                for py in (bare, shimmed)]
        print("imported at start by the shims:", " ".join(sorted(mods[1] - mods[0])) or "nothing")


if __name__ == "__main__":
    main()
