"""How fast do `provision plan` and `provision doctor` start? Ratios to `python -c pass`.

The planner must not import torch or anything heavy: a user runs it on a broken box. Each
command runs N times side by side with the baseline in this one process; we report the
median wall time of each and its ratio to the baseline.

    python benchmarks/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / "tests" / "fixtures" / "hosts" / "a6000-linux-535.json"

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "provision --help": [sys.executable, "-m", "provision", "--help"],
    "provision plan trellis2 --host": [sys.executable, "-m", "provision", "plan", "trellis2", "--host", str(HOST)],
    "provision plan trellis2 --host --json": [sys.executable, "-m", "provision", "plan", "trellis2", "--host",
                                              str(HOST), "--json"],
    "provision doctor (probe)": [sys.executable, "-m", "provision", "doctor"],
    "provision doctor trellis2 (probe)": [sys.executable, "-m", "provision", "doctor", "trellis2"],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    times: dict[str, list[float]] = {k: [] for k in COMMANDS}
    for _ in range(args.runs):  # interleaved, so drift hits every command alike
        for name, argv in COMMANDS.items():
            t = time.perf_counter()
            subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - t)
    base = statistics.median(times["python -c pass"])
    print(f"{'command':<40} {'median s':>9} {'ratio':>7}")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"{name:<40} {m:>9.3f} {m / base:>7.1f}")
    torch_loaded = subprocess.run(
        [sys.executable, "-c", "import sys, runpy; sys.argv=['provision','plan','trellis2','--host',%r,'--json'];"
         "import contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()):\n"
         "  try: runpy.run_module('provision', run_name='__main__')\n  except SystemExit: pass\n"
         "print('torch' in sys.modules, 'pynvml' in sys.modules)" % str(HOST)],
        cwd=ROOT, capture_output=True, text=True).stdout.strip()
    print(f"plan imports torch, pynvml: {torch_loaded}")


if __name__ == "__main__":
    main()
