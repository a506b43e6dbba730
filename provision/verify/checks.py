"""Verify stage: run the compiled checklist, in the target's interpreter and on the host.

The in-environment checks run in ONE subprocess of the target's Python
(runner.py); nothing of the target is imported here. Host-side checks (weights on
disk, the torch.hub cache and the proxy trap, the port, resources) run here. Each failure
is turned into its cause and fix, the way the field notes had to discover them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..fsutil import file_digest

RUNNER = Path(__file__).with_name("runner.py")
MARK = "@@PROVISION-RESULTS@@"


@dataclass
class Outcome:
    id: str
    title: str
    status: str  # ok | warn | fail | skipped
    detail: str
    fix: str | None
    required: bool
    why: str | None = None  # the explanation of a failure's real cause

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def _explain(check: dict[str, Any], res: dict[str, Any], arch_fix: str) -> tuple[str | None, str | None]:
    """(why, fix) for a failed in-env check, from the cause the runner recognised."""
    cause = res.get("cause")
    if cause == "missing-library":
        lib = res.get("library") or "a CUDA library"
        return (f"{lib} is not found: a package built for another CUDA than this env's torch "
                "(field note 001: kaolin from the cu121 page in a CUDA 11.8 env wants libcudart.so.12)",
                "install the build that matches torch's CUDA, from the variant's index; `ldd` on the .so names the library")
    if cause == "undefined-symbol":
        return ("the extension was compiled against another torch: torch was replaced after it was built "
                "(an extension's own install upgraded it), or the C++ ABI differs",
                "reinstall torch from the lock, then rebuild the extension: provision apply --from-step build-<name>")
    if cause == "no-metadata":
        return ("the package reads its own distribution metadata, which an in-place build with a .pth shim lacks",
                "build it as a wheel (build: wheel in the spec) and install that")
    if cause == "no-kernel-image":
        return ("the extension has no code for this GPU's architecture", arch_fix)
    if cause == "absurd-allocation":
        return ("not a memory problem: the extension's kernels never ran on this GPU (no SASS or PTX for its "
                "architecture), so the sizes it read back are garbage", arch_fix)
    if cause == "not-seeded":
        return ("torch.hub's cache lacks this repo's source, so torch.hub must fetch it from GitHub",
                "provision mirror TARGET --to BUNDLE && provision seed BUNDLE (or provision apply TARGET --from-step weights)")
    if cause == "no-torch":
        return ("torch is not importable in this env", "reinstall it from the lock: provision apply TARGET --from-step pip-install")
    if check["kind"] == "binary-arch" and res["status"] == "fail" and "sass" in res:
        return ("the .so files carry no SASS or PTX this GPU can run", arch_fix)
    return None, None


def run_in_env(python: str, checklist: dict[str, Any], env: dict[str, str], timeout: float = 600) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="provision-verify-") as d:
        path = Path(d) / "checklist.json"
        path.write_text(json.dumps(checklist))
        try:
            r = subprocess.run([python, str(RUNNER), str(path)], capture_output=True, text=True, env=env,
                               timeout=timeout)
        except (FileNotFoundError, PermissionError, NotADirectoryError):
            return {"error": f"{python}: no such interpreter"}
        except OSError as e:
            return {"error": f"{python}: cannot run it ({e.strerror or e})"}
        except subprocess.TimeoutExpired:
            return {"error": f"the checks did not finish in {timeout:.0f} s"}
    if MARK not in r.stdout:
        return {"error": f"{python} exited {r.returncode} without results: {r.stderr.strip()[-600:]}"}
    try:
        out = json.loads(r.stdout.rsplit(MARK, 1)[1])
    except json.JSONDecodeError:
        return {"error": f"{python} printed results that are not JSON"}
    return out if isinstance(out, dict) else {"error": f"{python} printed results of the wrong shape"}


def _proxied(env: dict[str, str], url: str) -> bool:
    import requests.utils

    with _env(env):
        return bool(requests.utils.get_environ_proxies(url))


class _env:
    """Temporarily use `env` as os.environ (requests reads proxies from there)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __enter__(self) -> None:
        self.saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(self.env)

    def __exit__(self, *a: object) -> None:
        os.environ.clear()
        os.environ.update(self.saved)


def host_check(c: dict[str, Any], env: dict[str, str]) -> tuple[str, str]:
    kind = c["kind"]
    if kind == "file-checksum":
        p = Path(c["path"])
        if not p.is_file():
            return "fail", f"{p} is missing"
        algo, want = ("sha256", c["sha256"]) if c.get("sha256") else ("md5", c.get("md5"))
        if want and file_digest(p, algo) != want:
            return "fail", f"{p}: {algo} does not match (a truncated or corrupt download)"
        return "ok", str(p)
    if kind == "torch-hub-offline":
        home = Path(env.get("TORCH_HOME") or Path.home() / ".cache" / "torch") / "hub"
        owner, repo = c["repo"].split("/")
        src = home / f"{owner}_{repo}_{c['ref'].replace('/', '_')}"
        if not (src / "hubconf.py").is_file():
            return "fail", f"{src}/hubconf.py is missing: torch.hub would fetch {c['repo']} from GitHub"
        missing = [f for f in c.get("checkpoints", []) if not (home / "checkpoints" / f).is_file()]
        if missing:
            return "fail", f"checkpoints missing from {home / 'checkpoints'}: {', '.join(missing)}"
        trusted = (home / "trusted_list").read_text().split() if (home / "trusted_list").is_file() else []
        if f"{owner}_{repo}" not in trusted:
            return "warn", f"{owner}_{repo} is not in {home / 'trusted_list'}: torch.hub may ask before loading"
        found = f"{src} and {len(c.get('checkpoints', []))} checkpoint(s)"
        if _proxied(env, f"https://github.com/{c['repo']}"):
            if c.get("shim"):  # the env's startup shim takes the ref from this cache; torch-hub-local-* proves it
                return "ok", f"{found}; the proxy does not matter: the startup shim resolves the ref from the cache"
            return "warn", ("a proxy is set and NO_PROXY does not cover github.com: torch.hub.load without a ref "
                            "asks github.com for the default branch first; a network error falls back to the cache, "
                            "but a proxy answering 403/407 makes the load fail even with everything cached "
                            "(a checklist compiled now adds the startup shim that resolves it locally)")
        return "ok", found
    if kind == "hf-complete":
        from .weights import hf_complete, stamps_for

        return hf_complete(c, env, stamps_for(env))
    if kind == "port":
        host, port = c.get("host", "127.0.0.1"), int(c["port"])
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                return "fail", f"port {port} on {host} is already in use"
        return _localhost_reachable(env, host)
    if kind == "resources":
        from ..host.probe import free_gb, read_meminfo

        mem = read_meminfo()
        ram = mem.get("MemTotal", 0) / 2**20
        swap = mem.get("SwapTotal", 0) / 2**20
        short = []
        if ram < c["ram_gb"] * 0.9:
            short.append(f"RAM {ram:.0f} GB < {c['ram_gb']} GB")
        if swap < c["swap_gb"] * 0.9:
            short.append(f"swap {swap:.0f} GB < {c['swap_gb']} GB")
        data = Path(env.get("PROVISION_DATA") or Path.home())
        disk = free_gb(data)
        if disk < c["disk_gb"]:
            short.append(f"{disk:.0f} GB free on {data} < {c['disk_gb']} GB")
        return ("warn" if short else "ok"), "; ".join(short) or f"RAM {ram:.0f} GB, swap {swap:.0f} GB, {disk:.0f} GB free"
    return "skipped", f"unknown check kind {kind}"


def _localhost_reachable(env: dict[str, str], host: str) -> tuple[str, str]:
    """Serve one request on an ephemeral port and fetch it the way Gradio's launch() does:
    with the user's proxy variables honoured."""
    import http.server

    import requests

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *a: object) -> None:
            pass

    srv = http.server.HTTPServer((host, 0), H)
    t = threading.Thread(target=srv.handle_request, daemon=True)
    t.start()
    url = f"http://{host}:{srv.server_address[1]}/"
    try:
        with _env(env):
            proxied = bool(requests.utils.get_environ_proxies(url))
            try:
                r = requests.get(url, timeout=5)
                ok = r.status_code == 200 and r.text == "ok"
            except requests.RequestException:
                ok = False
    finally:
        srv.server_close()
    if ok and not proxied:
        return "ok", f"free; {host} answers directly"
    if proxied:
        return "fail", (f"{host} is sent through the proxy ({'it answered' if ok else 'which failed'}): "
                        "Gradio's startup check of its own server breaks")
    return "fail", f"a server on {host} could not be reached"


HOST_KINDS = ("file-checksum", "torch-hub-offline", "hf-complete", "port", "resources")  # run here, not in the env


def verify(checklist: dict[str, Any], python: str | None, env: dict[str, str],
           no_env: str = "not run (no interpreter given)", own_env: bool = False) -> tuple[list[Outcome], bool]:
    """Run every check; returns outcomes in checklist order and whether a GPU was seen.
    Without an interpreter the in-env checks are skipped, saying `no_env`. `own_env`: the env is
    the user's (apply --existing installed none of its packages), so versions that differ from
    the lock are said, not failed; torch itself is still held to it by the torch-cuda check."""
    generic = "rebuild the extension with the planned TORCH_CUDA_ARCH_LIST (provision plan shows it)"
    # a failure that means "no code for this GPU" gets the fix of its own extension's binary check
    arch_fixes = {c["id"].removeprefix("binary-"): c.get("fix") or generic
                  for c in checklist["checks"] if c["kind"] == "binary-arch"}
    in_env: dict[str, Any] = {"results": [], "gpu": False}
    if python is not None:
        in_env = run_in_env(python, checklist, env)
    by_id = {r["id"]: r for r in in_env.get("results", [])}
    out: list[Outcome] = []
    for c in checklist["checks"]:
        base = dict(id=c["id"], title=c["title"], fix=c.get("fix"), required=c.get("required", True))
        if c["id"] in by_id:
            r = by_id[c["id"]]
            ext = c["id"].split("-", 1)[1] if c["id"].startswith(("binary-", "import-", "kernel-")) else ""
            arch_fix = arch_fixes.get(ext) or (next(iter(arch_fixes.values())) if len(arch_fixes) == 1 else generic)
            why, fix = _explain(c, r, arch_fix) if r["status"] == "fail" else (None, None)
            if own_env and c["kind"] == "packages" and r["status"] == "fail" and "torch installs" not in r["detail"]:
                out.append(Outcome(status="warn", detail=f"your own env (apply --existing installed none of its "
                                   f"packages) differs from the lock: {r['detail']}", **{**base, "required": False}))
                continue
            out.append(Outcome(status=r["status"], detail=r["detail"], why=why, **{**base, "fix": fix or base["fix"]}))
        elif c["kind"] in HOST_KINDS:
            try:
                status, detail = host_check(c, env)
            except Exception as e:  # a host check must not take the others down
                status, detail = "fail", f"{type(e).__name__}: {e}"
            out.append(Outcome(status=status, detail=detail, **base))
        elif "error" in in_env:
            out.append(Outcome(status="fail", detail=in_env["error"], **base))
        else:
            out.append(Outcome(status="skipped", detail=no_env, **base))
    return out, bool(in_env.get("gpu"))


def exit_code(outcomes: list[Outcome], strict: bool = False) -> int:
    """2 when a required check fails (README: a failed check); with --strict, 1 for warnings and skips."""
    if any(o.required and o.status == "fail" for o in outcomes):
        return 2
    if strict and any(o.required and o.status in ("warn", "skipped") for o in outcomes):
        return 1
    return 0


def target_env(plan_env: dict[str, str], data_dir: str | None = None) -> dict[str, str]:
    """What the activated env would see: the plan's variables, unless the user set their own
    (and PROVISION_DATA, where the host checks find the data dir)."""
    base = {"PROVISION_DATA": data_dir} if data_dir else {}
    return {**plan_env, **os.environ, **base} | {"PYTHONNOUSERSITE": "1"}


__all__ = ["Outcome", "exit_code", "target_env", "verify"]
