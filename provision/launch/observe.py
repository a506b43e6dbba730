"""The few facts of this machine a launch depends on, gathered once, read-only.

Is PREFIX an env provision made, does its Python run, is the upstream tree there, are the
required Hugging Face repos in the cache the app will look in, which ports are free on the
app's address (and who holds a taken one, where /proc says), and does the hosts file name
localhost. Nothing here writes; decide.py turns these facts into the launch.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import subprocess
from pathlib import Path

from .. import paths
from ..ids import FULL_COMMIT
from ..plan import Plan, app_dir
from ..readers import InputError, read_text
from ..spec import HFRepo, TargetSpec
from .decide import base_env, hub_cache
from .model import LaunchOptions, Observed, PortState

PORTS_TRIED = 32  # from the wanted port up: the first free one among these
_GLOB = re.compile(r"[*?\[]")


def observe(spec: TargetSpec, plan: Plan, opts: LaunchOptions, environ: dict[str, str], hosts_file: Path) -> Observed:
    prefix = Path(plan.prefix)
    meta = prefix / "share" / "provision"
    made = (meta / paths.MARKER).is_file() or (meta / "state.json").is_file()
    py_error, py_version = check_python(prefix / "bin" / "python") if made else (None, None)
    env = base_env(plan, environ)
    look = {k: v for k in ("HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HOME") if (v := env.value(k))}
    hub = hub_cache(look)
    required = [r for r in spec.weights.huggingface if not r.optional]
    missing = {}
    for r in required:
        why = hf_missing(Path(hub), r, env.value(r.local_dir_env) if r.local_dir_env else None)
        if why:
            missing[r.repo] = why
    ports: tuple[PortState, ...] = ()
    host_error = None
    if opts.cli_args is None:
        ports, host_error = port_states(opts.host or spec.app.host, opts.port or spec.app.port)
    return Observed(environ=dict(environ), env_made=made, prefix_exists=prefix.is_dir(), python_error=py_error,
                    python_version=py_version, upstream_exists=Path(app_dir(plan.prefix)).is_dir(),
                    hf_missing=missing, hf_checked=tuple(r.repo for r in required), hub_cache=hub, ports=ports,
                    host_error=host_error, hosts_file=str(hosts_file), hosts_has_localhost=names_localhost(hosts_file))


def check_python(py: Path) -> tuple[str | None, str | None]:
    """(why it does not run, None) or (None, its X.Y version)."""
    if py.is_symlink() and not py.exists():
        return f"{py} is a link to {os.readlink(py)}, which does not exist", None
    if not py.exists():
        return f"{py} does not exist", None
    if not os.access(py, os.X_OK) or py.is_dir():
        return f"{py} is not an executable file", None
    try:
        r = subprocess.run([str(py), "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"{py} did not answer within 60 s", None
    except OSError as e:
        return f"{py}: {e.strerror or e}", None
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no message"])[-1][:300]
        return f"{py} exited with code {r.returncode} ({last})", None
    version = r.stdout.strip()
    return None, version if re.fullmatch(r"\d+\.\d+", version) else None


def hf_missing(hub: Path, r: HFRepo, local_dir: str | None) -> str | None:
    """Why `r` is not where huggingface_hub looks (None: it is): the cache's layout,
    `{kind}s--org--name/snapshots/<commit>/...` with `refs/<revision>` naming the commit."""
    if local_dir and Path(local_dir).is_dir() and any(Path(local_dir).iterdir()):
        return None  # the app reads it from the directory its variable names
    kind = {"model": "models", "dataset": "datasets", "space": "spaces"}[r.repo_type]
    d = hub / f"{kind}--{r.repo.replace('/', '--')}"
    if not d.is_dir():
        return f"no {d.name} in the cache"
    commit = r.revision
    if not FULL_COMMIT.fullmatch(commit):
        try:
            commit = (d / "refs" / r.revision).read_text(encoding="utf-8", errors="replace").strip()[:64]
        except OSError:
            return f"no refs/{r.revision} in {d.name}"
        if not FULL_COMMIT.fullmatch(commit):
            return f"refs/{r.revision} in {d.name} does not name a commit"
    snap = d / "snapshots" / commit
    if not snap.is_dir() or not any(snap.iterdir()):
        return f"no snapshot {commit[:12]} in {d.name}"
    for f in r.files:
        if not _GLOB.search(f) and not (snap / f).exists():  # exists(): the link's blob is there too
            return f"{f} is not in snapshot {commit[:12]}"
    return None


def names_localhost(hosts_file: Path) -> bool | None:
    try:
        text = read_text(hosts_file, "a hosts file", max_bytes=1 << 20).text
    except InputError:
        return None
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and "localhost" in (w.lower() for w in words[1:]):
            return True
    return False


# --- ports ------------------------------------------------------------------------------


def port_states(host: str, start: int) -> tuple[tuple[PortState, ...], str | None]:
    """From `start` up, each port's state on `host`, to the first free one; or why none can be checked."""
    try:
        family, _, _, _, addr = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as e:
        return (), f"does not resolve ({getattr(e, 'strerror', None) or e})"
    out = []
    for port in range(start, min(start + PORTS_TRIED, 65536)):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # what uvicorn and http.server set
            try:
                s.bind((addr[0], port, *addr[2:]))
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    return tuple(out), f"cannot listen on {host} port {port}: {e.strerror or e}"
                out.append(PortState(port, False, holder_of(port)))
                continue
        out.append(PortState(port, True))
        break
    return tuple(out), None


def holder_of(port: int) -> str | None:
    """`pid N (name)` of the process listening on `port`, when /proc lets this user see it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{f[9]}]")
    if not inodes:
        return None
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return f"pid {pid} ({_comm(pid)})"
            except OSError:
                continue
    return None


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()[:32] or "?"
    except OSError:
        return "?"
