"""How fast do `provision --help` and `provision plan` start? Ratios to the import floor.

The floor is `python -c "import typer, yaml"`: what any typer CLI that reads YAML pays. Every
command below runs N times, interleaved with the floor in this one process (so drift hits all
alike), in a fresh cache directory of its own; we report each median and its ratio to the
floor's. Bytecode is allowed (PYTHONDONTWRITEBYTECODE unset) and every command runs once
before timing, as on an installed provision.

  plan (replayed)        the same `plan --host F` ran before, inputs unchanged (cli/memo.py)
  plan (spec cached)     not replayed (its record removed before each run), the spec cached
                         (spec/cache.py): typer parses the options, pydantic validates, jinja2
                         renders (--json: no jinja2)
  plan (cold)            an empty cache each run: the YAML parsed, then as above, both recorded

The last lines say which heavy libraries each path imports.

With --compare-with DIR (an older checkout: `git archive REV | tar -x -C DIR`), its `--help` and
`plan --host` are measured in the same run, as "before".

    python benchmarks/startup.py [--runs 15] [--compare-with OLD_CHECKOUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / "tests" / "fixtures" / "hosts" / "h100-cuda13.json"
PLAN = [sys.executable, "-m", "provision", "plan", "triposr", "--host", str(HOST)]
HEAVY = ("typer", "pydantic", "yaml", "jinja2", "rich", "requests", "rattler", "conda_lock", "tqdm", "torch", "pynvml")

# name: (argv, what to remove from the command's cache directory before each run)
COMMANDS: dict[str, tuple[list[str], str | None]] = {
    "python -c 'import typer, yaml'": ([sys.executable, "-c", "import typer, yaml"], None),
    "provision --help": ([sys.executable, "-m", "provision", "--help"], None),
    "plan triposr --host (replayed)": (PLAN, None),
    "plan --host --json (replayed)": (PLAN + ["--json"], None),
    "plan --host (spec cached)": (PLAN, "plans-v1"),
    "plan --host --json (spec cached)": (PLAN + ["--json"], "plans-v1"),
    "plan --host (cold)": (PLAN, ""),
}
FLOOR = "python -c 'import typer, yaml'"


def imports(argv: list[str], env: dict[str, str]) -> list[str]:
    """The heavy top-level modules `provision ARGV` has imported when it exits."""
    code = ("import atexit, json, runpy, sys\n"
            f"atexit.register(lambda: print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})),"
            " file=sys.stderr))\n"
            "sys.argv = ['provision', *sys.argv[1:]]\n"
            "runpy.run_module('provision', run_name='__main__', alter_sys=True)\n")
    r = subprocess.run([sys.executable, "-c", code, *argv[3:]], cwd=ROOT, env=env, capture_output=True, text=True)
    return json.loads(r.stderr.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--compare-with", type=Path)
    args = ap.parse_args()
    cwd = {name: ROOT for name in COMMANDS}
    if args.compare_with is not None:
        for name, argv in (("before: provision --help", [sys.executable, "-m", "provision", "--help"]),
                           ("before: plan triposr --host", PLAN)):
            COMMANDS[name] = (argv, None)
            cwd[name] = args.compare_with.resolve()
    tmp = Path(tempfile.mkdtemp(prefix="startup-bench-"))
    base_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    base_env.pop("PYTHONPATH", None)  # `python -m provision` runs the checkout it is started in (cwd)
    envs = {name: base_env | {"PROVISION_CACHE": str(tmp / str(i))} for i, name in enumerate(COMMANDS)}
    try:
        for name, (argv, _) in COMMANDS.items():  # bytecode written, caches filled
            subprocess.run(argv, cwd=cwd[name], env=envs[name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times: dict[str, list[float]] = {k: [] for k in COMMANDS}
        for _ in range(args.runs):  # interleaved, so drift hits every command alike
            for name, (argv, forget) in COMMANDS.items():
                if forget is not None:
                    shutil.rmtree(Path(envs[name]["PROVISION_CACHE"]) / forget, ignore_errors=True)
                t = time.perf_counter()
                subprocess.run(argv, cwd=cwd[name], env=envs[name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - t)
        floor = statistics.median(times[FLOOR])
        print(f"{'command':<36} {'median s':>9} {'x floor':>8}")
        for name, ts in times.items():
            m = statistics.median(ts)
            goal = "   (goal <= 1.5)" if name in ("provision --help", "plan triposr --host (replayed)") else ""
            print(f"{name:<36} {m:>9.3f} {m / floor:>8.2f}{goal}")
        cold = base_env | {"PROVISION_CACHE": str(tmp / "imports")}
        print("heavy modules imported:")
        print(f"  --help                   {imports([*PLAN[:3], '--help'], cold)}")
        print(f"  plan --host (cold)       {imports(PLAN, cold)}")
        print(f"  plan --host (replayed)   {imports(PLAN, cold)}")
        shutil.rmtree(tmp / "imports" / "plans-v1", ignore_errors=True)
        print(f"  plan --host --json (spec cached) {imports(PLAN + ['--json'], cold)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
