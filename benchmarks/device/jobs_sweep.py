"""Build time and peak memory of one CUDA extension against MAX_JOBS, on the device machine.

    python benchmarks/device/jobs_sweep.py SRC OUTDIR [JOBS ...]      (default 16 8 4 2 1)

Each build is cold: a fresh copy of SRC, `setup.py build_ext --inplace` with MAX_JOBS=J and
the planned TORCH_CUDA_ARCH_LIST (9.0 on the H200), ninja on PATH, as apply builds. The peak is
the largest sum of resident memory over the build's whole process tree (ninja, nvcc, cicc,
ptxas, cc1plus...), sampled every 0.2 s from /proc: what decides whether a machine of N GB
survives the build, which the peak of any single process does not say. Prints one JSON line per
build and writes OUTDIR/sweep.json. Standard library only (the device's Python has torch).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def tree_rss_kb(root: int) -> int:
    """Resident memory of `root` and every descendant, from /proc (children files)."""
    total, todo, seen = 0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
    return total


def build(src: Path, work: Path, jobs: int, archs: str) -> dict[str, object]:
    tree = work / f"j{jobs}"
    shutil.rmtree(tree, ignore_errors=True)
    shutil.copytree(src, tree)
    env = {**os.environ, "MAX_JOBS": str(jobs), "TORCH_CUDA_ARCH_LIST": archs,
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    log = open(work / f"build-j{jobs}.log", "w")
    t = time.monotonic()
    p = subprocess.Popen([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tree, env=env,
                         stdout=log, stderr=subprocess.STDOUT)
    peak = 0
    while p.poll() is None:
        peak = max(peak, tree_rss_kb(p.pid))
        time.sleep(0.2)
    secs = time.monotonic() - t
    log.close()
    return {"jobs": jobs, "seconds": round(secs, 1), "peak_rss_gb": round(peak / 2**20, 2), "exit": p.returncode,
            "archs": archs}


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    jobs = [int(j) for j in sys.argv[3:]] or [16, 8, 4, 2, 1]
    out.mkdir(parents=True, exist_ok=True)
    archs = os.environ.get("ARCHS", "9.0")
    rows = []
    for j in jobs:
        r = build(src, out / "work", j, archs)
        rows.append(r)
        print(json.dumps(r), flush=True)
        (out / "sweep.json").write_text(json.dumps({"source": str(src), "cpus": os.cpu_count(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
