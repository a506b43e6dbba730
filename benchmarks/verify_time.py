"""How long does the whole checklist take, beyond importing torch? (goal: under 3 s more)

Runs, interleaved N times: `python -c "import torch"` in the target interpreter, and
`provision verify` on tests/fixtures/device/tinyx.yaml with that interpreter and GPU
checks off (PROVISION_VERIFY_GPU=0: no kernels). Prints medians and the difference.
On a machine without the target's torch build the checks fail; their time is what counts.

    python benchmarks/verify_time.py [--python PY] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(argv: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    env = os.environ | {"PROVISION_VERIFY_GPU": "0"}
    host = ROOT / "tests" / "fixtures" / "hosts" / "h100-cuda13.json"
    verify = [sys.executable, "-m", "provision", "verify", "tests/fixtures/device/tinyx.yaml", "--python", a.python,
              "--host", str(host)]
    t_imp, t_ver = [], []
    for _ in range(a.runs):
        t_imp.append(timed([a.python, "-c", "import torch"], env))
        t_ver.append(timed(verify, env))
    mi, mv = statistics.median(t_imp), statistics.median(t_ver)
    print(f"import torch            {mi:6.2f} s")
    print(f"provision verify        {mv:6.2f} s   (whole checklist, no GPU kernels)")
    print(f"difference              {mv - mi:6.2f} s   (goal < 3 s)")


if __name__ == "__main__":
    main()
