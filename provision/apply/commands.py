"""Running a step's commands: output to its log, one live status line on a terminal, and on
failure the log's tail with what it means (diagnose.py)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .context import ApplyError, Ctx
from .diagnose import diagnose


def purelib(ctx: Ctx) -> Path:
    """The env's site-packages, as its own Python says (where .pth shims go)."""
    r = subprocess.run([ctx.py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.strip():
        raise ApplyError(f"{ctx.py} cannot say where its site-packages is: {r.stderr.strip()[-300:]}",
                         hint=f"the env's Python is broken: provision apply {ctx.spec.name} --from-step create-env")
    return Path(r.stdout.strip())


def expand_path(env: dict[str, str]) -> str:
    """A step's PATH ("DIR:...:$PATH") with this process's PATH put in for $PATH."""
    return env.get("PATH", "$PATH").replace("$PATH", os.environ.get("PATH", ""))


def run_logged(ctx: Ctx, argv: list[str] | str, log: Path, env: dict[str, str] | None = None,
               cwd: str | Path | None = None) -> None:
    """Run a command, output to `log`; on failure raise with the log's tail and a diagnosis."""
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    if "PATH" in (env or {}):
        full_env["PATH"] = expand_path(env)  # type: ignore[arg-type]
    with open(log, "a") as f:
        f.write(f"$ {argv if isinstance(argv, str) else shlex.join(argv)}\n")
        f.flush()
        p = subprocess.Popen(argv, shell=isinstance(argv, str), stdout=f, stderr=subprocess.STDOUT, env=full_env,
                             cwd=cwd, executable="/bin/bash" if isinstance(argv, str) else None)
        _wait_showing_progress(p, log, ctx.opts.progress)
    if p.returncode != 0:
        text = log.read_text(errors="replace")
        tail = "\n".join(text.splitlines()[-25:])
        d = diagnose(text, p.returncode)
        msg = f"exit {p.returncode}; last lines of {log}:\n{tail}"
        if d:
            msg += f"\n\ncause: {d.cause}"
        raise ApplyError(msg, hint=d.fix if d else f"see {log}")


def status_line(elapsed: float, log_tail: str, width: int = 100) -> str:
    """One line for a running command: elapsed time and the log's last line (ninja's [n/N] first)."""
    last = next((line.strip() for line in reversed(log_tail.splitlines()) if line.strip()), "")
    step = re.match(r"^\[(\d+/\d+)\]\s*(.*)", last)
    if step:  # "[12/44] /usr/local/cuda/bin/nvcc ... -c x/forward.cu -o ..." -> "[12/44] forward.cu"
        src = re.findall(r"[\w./-]+\.(?:cu|cpp|cc|c)\b", step.group(2))
        last = f"[{step.group(1)}] {src[-1].rsplit('/', 1)[-1] if src else step.group(2)}"
    return f"    {elapsed:5.0f} s  {last}"[:width]


def _wait_showing_progress(p: subprocess.Popen, log: Path, show: bool) -> None:  # type: ignore[type-arg]
    """Wait for `p`; on a terminal, keep one line up to date with its progress."""
    if not show:
        p.wait()
        return
    t0 = time.monotonic()
    width = max(40, shutil.get_terminal_size((100, 20)).columns - 1)
    while p.poll() is None:
        try:
            with open(log, "rb") as f:
                f.seek(max(0, f.seek(0, 2) - 4096))
                tail = f.read().decode(errors="replace")
        except OSError:
            tail = ""
        sys.stderr.write("\r\033[K" + status_line(time.monotonic() - t0, tail, width))
        sys.stderr.flush()
        try:
            p.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
    sys.stderr.write("\r\033[K")
    sys.stderr.flush()
