"""Carry out a LaunchPlan: start the app, tee its output, probe it, stop all of it.

- The app runs in its own session (so its own process group): a Ctrl-C at the terminal
  reaches provision only, and provision stops the whole group, whatever it spawned.
- Its stdout and stderr, merged, go line by line (secrets masked) to the terminal and to
  the log file; the last TAIL lines stay in memory for the error message.
- The readiness probe asks the probe URL directly with http.client (never a proxy: the
  proxy variables are not even read) until any HTTP status answers.
- SIGINT or SIGTERM to provision: SIGTERM to the app's group and every descendant, GRACE_S
  seconds, then SIGKILL to what is left; exit 130 for Ctrl-C (128 + the signal otherwise).
  The app exiting by itself: what it left behind is stopped the same way, and its exit
  code is provision's.
"""

from __future__ import annotations

import collections
import http.client
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from ..secrets import redact
from .model import LaunchError, LaunchPlan, Probe

TAIL = 40
GRACE_S = 5.0

Say = Callable[[str], None]


class _Signals:
    """SIGINT / SIGTERM recorded, not raised: the loops below look at them and stop the app."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.old: dict[int, object] = {}

    def __enter__(self) -> "_Signals":
        for s in (signal.SIGINT, signal.SIGTERM):
            self.old[s] = signal.signal(s, self._record)
        return self

    def _record(self, signum: int, frame: object) -> None:
        if self.signum is None:
            self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)  # type: ignore[arg-type]


class _Tee(threading.Thread):
    def __init__(self, stream, log: Path, out: Say) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon=True)
        self.stream, self.log, self.out = stream, log, out
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL)

    def run(self) -> None:
        with open(self.log, "a", encoding="utf-8") as fh:
            for raw in iter(self.stream.readline, b""):
                line = redact(raw.decode("utf-8", "replace").rstrip("\r\n"))
                self.tail.append(line)
                fh.write(line + "\n")
                fh.flush()
                try:
                    self.out(line)
                except (OSError, ValueError):  # the terminal went away: the log keeps everything
                    pass


def _start_log(log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    if log.exists():  # the previous run's log stays, once, beside it
        os.replace(log, log.with_name(log.name + ".1"))
    log.write_text("")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """If provision itself is killed (SIGKILL), the app gets SIGTERM instead of living on."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run(lp: LaunchPlan, environ: dict[str, str], out: Say, say: Say) -> int:
    """Start the launch, wait for it, stop it; returns provision's exit code."""
    log = Path(lp.log_file)
    _start_log(log)
    with _Signals() as sig:
        try:
            proc = subprocess.Popen(lp.argv, cwd=lp.cwd, env=lp.environment(environ),
                                    stdin=subprocess.DEVNULL if lp.mode == "app" else None,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=_die_with_parent)
        except OSError as e:
            raise LaunchError(f"could not start {lp.argv[0]}: {e.strerror or e}",
                              hint=f"check {lp.python} and {lp.cwd}") from None
        tee = _Tee(proc.stdout, log, out)
        tee.start()
        try:
            if lp.probe is not None:
                _wait_ready(proc, lp.probe, sig, tee, log)
                if sig.signum is None:
                    say(f"ready: {lp.url}  (Ctrl-C stops it; its log: {log})")
            while sig.signum is None and proc.poll() is None:
                time.sleep(0.1)
        finally:
            left = stop(proc)
            tee.join(timeout=5)
        if sig.signum is not None:
            say(f"stopped the app (pid {proc.pid}) and {left} other process(es) of its group" if left else
                f"stopped the app (pid {proc.pid})")
            return 130 if sig.signum == signal.SIGINT else 128 + sig.signum
    rc = proc.returncode
    if left:
        say(f"the app exited; stopped {left} process(es) it left behind")
    if lp.mode == "app":
        say(f"the app exited with code {rc}")
    return rc if rc >= 0 else 128 - rc


def _wait_ready(proc: subprocess.Popen, probe: Probe, sig: _Signals, tee: _Tee, log: Path) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + probe.timeout_s
    u = urlsplit(probe.url)
    while sig.signum is None:
        rc = proc.poll()
        if rc is not None:
            stop(proc)
            tee.join(timeout=5)
            raise LaunchError(f"the app exited with code {rc} before it answered {probe.url}", tail=list(tee.tail),
                              log=str(log), hint="its last lines above say why")
        left = deadline - time.monotonic()
        if left <= 0:
            stop(proc)
            tee.join(timeout=5)
            raise LaunchError(f"the app did not answer {probe.url} within {probe.timeout_s:g} s, so it was stopped",
                              tail=list(tee.tail), log=str(log),
                              hint="it may still have been loading its weights: give it longer with --ready-timeout S "
                                   "(the spec's app.ready_timeout_s is the default)")
        if answers(u.hostname or "127.0.0.1", u.port or 80, u.path or "/", min(5.0, left)):
            return
        time.sleep(min(probe.interval_s, max(0.0, deadline - time.monotonic())))


def answers(host: str, port: int, path: str, timeout: float) -> bool:
    """Does an HTTP server answer GET path at host:port, with any status? Directly: no proxy."""
    conn = http.client.HTTPConnection(host, port, timeout=max(timeout, 0.1))
    try:
        conn.request("GET", path, headers={"User-Agent": "provision-run-probe"})
        conn.getresponse().read(1 << 16)
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


# --- stopping the whole group -------------------------------------------------------------


def _procs() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, pgrp, state) of every process /proc shows."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        f = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if len(f) >= 3:
            out[int(name)] = (int(f[1]), int(f[2]), f[0])
    return out


def family(root: int, pgid: int) -> set[int]:
    """The live (not zombie) members of the group and every descendant of `root`, wherever it moved."""
    procs = _procs()
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        kids.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        p = todo.pop()
        if p in found:
            continue
        found.add(p)
        todo += kids.get(p, [])
    found |= {pid for pid, (_, pg, _) in procs.items() if pg == pgid}
    return {p for p in found if p in procs and procs[p][2] not in ("Z", "X") and p != os.getpid()}


def _kill(pids: set[int], pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for p in pids:
        try:
            os.kill(p, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop(proc: subprocess.Popen, grace_s: float = GRACE_S) -> int:  # type: ignore[type-arg]
    """SIGTERM to the app's group and descendants, then SIGKILL after `grace_s`; returns how many
    processes besides the app itself there were to stop."""
    pgid = proc.pid  # its own session: the group is named by its pid
    proc.poll()
    pids = family(proc.pid, pgid)
    others = len(pids - {proc.pid})
    if not pids:
        proc.wait()
        return 0
    _kill(pids, pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        proc.poll()  # reap the app: a zombie is gone
        pids = family(proc.pid, pgid) | (pids & set(_procs_alive(pids)))
        if not pids:
            break
        time.sleep(0.05)
    else:
        _kill(pids | family(proc.pid, pgid), pgid, signal.SIGKILL)
    proc.wait()
    return others


def _procs_alive(pids: set[int]) -> list[int]:
    alive = []
    for p in pids:
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2:][:1] not in ("Z", "X"):
            alive.append(p)
    return alive
