"""The env steps: create the env (py-rattler from the lock, or a venv), install the locked pip
half with hashes enforced, and guard the pins.

Pins are guarded: after the locked pip packages are in, every installed version is written
to a constraints file that every later pip call obeys (no extension can move torch), and
after each build the installed set is compared with it; a change stops apply, naming the
package that moved."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..fsutil import atomic_write_text, file_digest
from ..plan import Step
from .commands import run_logged
from .context import ApplyError, Ctx


def do_create_env(ctx: Ctx, step: Step, log: Path) -> None:
    if ctx.opts.venv:
        # apply() resolved and checked the host Python before any step ran
        run_logged(ctx, [ctx.opts.python or host_python(ctx.spec.python), "-m", "venv", str(ctx.prefix)], log)
        return
    from ..lock import lockfile

    lock = lockfile.read(Path(ctx.compiled / "conda-lock.yml"))
    recs = lockfile.conda_records(lock, categories={"main"})  # the build toolkit has a prefix of its own
    rattler_install(ctx, recs, log, ctx.prefix)


def _version_of(path: str) -> str | None:
    try:
        r = subprocess.run([path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True,
                           text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def host_python(want: str, given: str | None = None) -> str:
    """The host Python a --venv env is made from: --python if it is the spec's major.minor, else
    the first of python3.X, python3 and this one that is."""
    if given is not None:
        found = _version_of(given)
        if found != want:
            said = f"is Python {found}" if found else "does not run"
            raise ApplyError(f"--python {given} {said}; the spec's env is Python {want}",
                             hint=f"pass a python{want} (`command -v python{want}`), or drop --python")
        return given
    for cand in (f"python{want}", "python3", sys.executable):
        path = shutil.which(cand) or (cand if os.path.isabs(cand) else None)
        if path and _version_of(path) == want:
            return path
    raise ApplyError(f"no Python {want} on this machine for a venv",
                     hint=f"install python{want}, pass --python PATH, or drop --venv to get it from conda-forge")


def rattler_install(ctx: Ctx, recs: list, log: Path, target: Path) -> None:  # type: ignore[type-arg]
    """Install the locked conda records; offline, from the seeded channel, checking each file's
    sha256 ourselves (rattler checks hashes over HTTP, not for file:// URLs)."""
    import asyncio

    import rattler

    from ..settings import cache_dir

    channel = ctx.data / "channel"
    records = []
    for p in recs:
        url = p.url
        if ctx.opts.offline or (channel / url.rsplit("/", 2)[-2] / url.rsplit("/", 1)[-1]).is_file():
            local = channel / url.rsplit("/", 2)[-2] / url.rsplit("/", 1)[-1]
            if not local.is_file():
                raise ApplyError(f"{p.name} {p.version}: {local.name} is not in {channel}",
                                 hint="seed a bundle made with the lockfile's packages (provision mirror without --no-packages)")
            if file_digest(local) != p.hash.sha256:
                raise ApplyError(f"{local}: sha256 does not match the lockfile", hint="re-seed the bundle")
            url = local.as_uri()
        records.append(rattler.RepoDataRecord(
            package_record=rattler.PackageRecord(
                name=p.name, version=p.version, build=rattler.BuildString(p.build or ""), build_number=0,
                subdir=p.url.rsplit("/", 2)[-2], md5=bytes.fromhex(p.hash.md5) if p.hash.md5 else None,
                sha256=bytes.fromhex(p.hash.sha256) if p.hash.sha256 else None,
                depends=[f"{k} {v}".strip() if v != "*" else k for k, v in p.dependencies.items()]),
            file_name=url.rsplit("/", 1)[-1], url=url, channel=p.url.rsplit("/", 2)[0]))
    with open(log, "a") as f:
        f.write(f"rattler: installing {len(records)} conda packages into {target}\n")
    asyncio.run(rattler.install(records, target_prefix=target, cache_dir=cache_dir() / "rattler-pkgs"))


def _requirements(ctx: Ctx) -> Path:
    """The compiled requirements; offline, the same pins by name, found in the wheelhouse."""
    req = ctx.compiled / "requirements.txt"
    if not ctx.opts.offline:
        return req
    from ..lock import lockfile

    pins = lockfile.pip_pins(lockfile.read(ctx.compiled / "conda-lock.yml"))
    lines = [f"{p.name}=={p.version} --hash=sha256:{p.sha256}" for p in pins if not p.git]
    off = ctx.meta / "requirements-offline.txt"
    atomic_write_text(off, "\n".join(lines) + "\n")
    return off


def pip_argv(ctx: Ctx) -> list[str]:
    return [ctx.py, "-m", "pip", "--disable-pip-version-check", "--no-input"]


def index_args(ctx: Ctx) -> list[str]:
    return ["--no-index", "--find-links", str(ctx.data / "wheelhouse")] if ctx.opts.offline else []


def do_pip_install(ctx: Ctx, step: Step, log: Path) -> None:
    run_logged(ctx, [*pip_argv(ctx), "install", "--no-deps", "--require-hashes", *index_args(ctx), "-r",
                     str(_requirements(ctx))], log)
    for p in [*ctx.spec.pip.packages, *ctx.spec.variants[ctx.plan.variant].packages]:
        if p.git is not None:  # pinned by commit, fetched by the sources step; its requires are locked
            run_logged(ctx, [*pip_argv(ctx), "install", "--no-deps", "--no-build-isolation", *index_args(ctx),
                             str(ctx.data / "src" / p.name)], log)


def freeze(ctx: Ctx) -> dict[str, str]:
    r = subprocess.run([ctx.py, "-m", "pip", "--disable-pip-version-check", "list", "--format=json"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise ApplyError(f"cannot list the env's packages: {r.stderr.strip()[-300:]}")
    return {d["name"].lower().replace("_", "-"): d["version"] for d in json.loads(r.stdout)}


def do_torch_guard(ctx: Ctx, step: Step, log: Path) -> None:
    installed = freeze(ctx)
    ctx.meta.mkdir(parents=True, exist_ok=True)
    atomic_write_text(ctx.constraints, "".join(f"{n}=={v}\n" for n, v in sorted(installed.items())))
    want = ctx.plan.torch
    if want:
        have = installed.get("torch")
        if have is None or have.split("+")[0] != want.split("+")[0] or ("+" in want and have != want):
            raise ApplyError(f"torch {have} is installed, the lock says {want}",
                             hint="reinstall from the lock: provision apply --from-step pip-install")


def guard_after(ctx: Ctx, what: str, own: str | None = None) -> None:
    """Nothing a build did may move a pinned package (but the extension itself, `own`: a build
    from the index carries a local version label)."""
    if not ctx.constraints.is_file():
        return
    pinned = dict(line.strip().split("==", 1) for line in ctx.constraints.read_text().splitlines() if "==" in line)
    now = freeze(ctx)
    mine = own.lower().replace("_", "-") if own else None
    moved = [f"{n} {v} -> {now.get(n, 'removed')}" for n, v in pinned.items() if now.get(n) != v and n != mine]
    if moved:
        raise ApplyError(f"{what} changed pinned packages: {', '.join(moved)}",
                         hint="the extension's build installs packages itself; apply stopped so nothing built later "
                              "runs against them: reinstall with --from-step pip-install, and report it upstream")
