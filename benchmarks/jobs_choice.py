"""The planner's MAX_JOBS against a measured sweep (issue 19, part 3): for a 16 GB and a 32 GB
machine with the sweep machine's cores, is the planned value within 1.2x of the fastest value
whose measured peak fits in the memory the planner lets builds use?

    python benchmarks/jobs_choice.py [benchmarks/results/nvdiffrast-h200-jobs.json]

The sweep comes from benchmarks/device/jobs_sweep.py on the GPU machine (its rows: jobs,
seconds, peak RSS of the whole build tree). A planned value the sweep did not measure is said,
not guessed. Prints one line per machine and exits 1 when a ratio is above 1.2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from provision.host import HostFacts
from provision.plan.jobs import build_memory_gb, plan_jobs
from provision.spec import load_target

RESULTS = Path(__file__).parent / "results" / "nvdiffrast-h200-jobs.json"


def main(argv: list[str]) -> int:
    sweep = json.loads(Path(argv[0] if argv else RESULTS).read_text())
    rows = {r["jobs"]: r for run in sweep["runs"] for r in run["rows"] if r["exit"] == 0}
    ext = next(e for e in load_target("trellis2").spec.extensions if e.name == "nvdiffrast")
    cpus = 16
    worst = 0.0
    for ram in (16, 32):
        host = HostFacts.model_validate({"os": "linux", "cpu_count": cpus, "ram_gb": ram, "swap_gb": 0, "disk_free_gb": {"/": 100}})
        jobs, _ = plan_jobs(ext, host)
        budget = build_memory_gb(ram, 0)
        fits = {j: r for j, r in rows.items() if r["peak_rss_gb"] <= budget}
        best = min(fits.values(), key=lambda r: r["seconds"])
        got = rows.get(jobs)
        if got is None:
            print(f"{ram} GB: planned MAX_JOBS={jobs}, not in the sweep: measure it")
            return 1
        ratio = got["seconds"] / best["seconds"]
        worst = max(worst, ratio)
        print(f"{ram} GB ({budget:.1f} GB for builds): planned MAX_JOBS={jobs} {got['seconds']} s, peak {got['peak_rss_gb']} GB; "
              f"fastest that fits: MAX_JOBS={best['jobs']} {best['seconds']} s, peak {best['peak_rss_gb']} GB; "
              f"ratio {ratio:.2f}x")
    return 0 if worst <= 1.2 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
