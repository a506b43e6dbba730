"""Apply stage: execute a plan, step by step, idempotent and resumable.

The plan (plan.py) says what to do; this module does it. Each step has an executor and a
hash of its inputs; `PREFIX/share/provision/state.json` records the steps that finished and
with which inputs, so a re-run skips them ("unchanged"), an interrupted run resumes at the
first unfinished step, and `--from-step` forces a step and everything after it. Each step's
output goes to `PREFIX/share/provision/logs/<step>.log`; a failure prints the log's tail and
what it means (diagnose.py).

Pins are guarded: after the locked pip packages are in, every installed version is written
to a constraints file that every later pip call obeys (no extension can move torch), and
after each build the installed set is compared with it; a change stops apply, naming the
package that moved.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .diagnose import diagnose
from .errors import ProvisionError
from .fsutil import atomic_write_text, file_digest
from .plan import Plan, Step, source_dir
from .spec import GitSource, SdistSource, TargetSpec, UpstreamPathSource
from .specload import LoadedSpec


class ApplyError(ProvisionError):
    exit_code = 1


@dataclass
class ApplyOptions:
    lockdir: Path
    offline: bool = False
    bundle: Path | None = None
    dry_run: bool = False
    from_step: str | None = None
    venv: bool = False  # a plain venv from a host Python instead of a conda prefix
    python: str | None = None  # that host Python (default: one of spec.python found on PATH)
    sources: dict[str, Path] = field(default_factory=dict)  # NAME -> a local checkout to use
    existing: bool = False  # use the environment already at --prefix (no env creation, no pip install)
    cache: bool = True  # reuse extension builds from DATA/cache/ext
    progress: bool = False  # a live status line under a running step (the CLI sets it on a terminal)


@dataclass
class Ctx:
    loaded: LoadedSpec
    plan: Plan
    opts: ApplyOptions
    echo: Callable[[str], None]
    host: object = None  # HostFacts: compile plans for it again

    @property
    def spec(self) -> TargetSpec:
        return self.loaded.spec

    @property
    def prefix(self) -> Path:
        return Path(self.plan.prefix)

    @property
    def data(self) -> Path:
        return Path(self.plan.data_dir)

    @property
    def py(self) -> str:
        return str(self.prefix / "bin" / "python")

    @property
    def meta(self) -> Path:
        return self.prefix / "share" / "provision"

    @property
    def compiled(self) -> Path:
        return self.meta / "compiled"

    @property
    def constraints(self) -> Path:
        return self.meta / "constraints.txt"


# --- running commands, with a log -------------------------------------------------------


def _expand_path(env: dict[str, str]) -> str:
    """A step's PATH ("DIR:...:$PATH") with this process's PATH put in for $PATH."""
    return env.get("PATH", "$PATH").replace("$PATH", os.environ.get("PATH", ""))


def run_logged(ctx: Ctx, argv: list[str] | str, log: Path, env: dict[str, str] | None = None,
               cwd: str | Path | None = None) -> None:
    """Run a command, output to `log`; on failure raise with the log's tail and a diagnosis."""
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    if "PATH" in (env or {}):
        full_env["PATH"] = _expand_path(env)  # type: ignore[arg-type]
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


# --- the steps -----------------------------------------------------------------------------


def do_compile(ctx: Ctx, step: Step, log: Path) -> None:
    from .compile import CompileOptions, artifacts_for, write_tree
    from .plan import PlanOptions

    _, files = artifacts_for(ctx.loaded, ctx.host, CompileOptions(
        lockdir=ctx.opts.lockdir, require_lock=not ctx.opts.existing,
        plan=PlanOptions(variant=ctx.plan.variant, prefix=ctx.plan.prefix, data_dir=ctx.plan.data_dir)))
    write_tree(files, ctx.compiled)


def _marker(d: Path) -> Path:
    return d / ".provision-source"


def _sources(ctx: Ctx) -> list[tuple[str, object, Path]]:
    out = []
    for e in ctx.spec.extensions_for(ctx.plan.variant):
        out.append((e.name, e.source, Path(source_dir(ctx.spec, e, str(ctx.data)))))
    for p in [*ctx.spec.pip.packages, *ctx.spec.variants[ctx.plan.variant].packages]:
        if p.git is not None:
            out.append((p.name, p.git, ctx.data / "src" / p.name))
    return out


def do_sources(ctx: Ctx, step: Step, log: Path) -> None:
    for name, src, dest in _sources(ctx):
        if isinstance(src, UpstreamPathSource):
            root, pin = ctx.data / "src" / f"{ctx.spec.name}-upstream", ctx.spec.upstream.commit
            url, sub = ctx.spec.upstream.repo, False
        elif isinstance(src, SdistSource):
            _fetch_sdist(ctx, name, src, dest, log)
            continue
        else:
            assert isinstance(src, GitSource)
            root = ctx.data / "src" / name
            pin, url, sub = src.commit, src.git, src.submodules
        if name in ctx.opts.sources:  # a checkout the user points at: copied, not touched
            local = ctx.opts.sources[name]
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(local, dest, ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__"))
            # pinned by content, read now: the build writes into the tree later
            _marker(dest).write_text(f"local:{_dir_digest(dest)} {local}\n")
            continue
        if _marker(root).is_file() and _marker(root).read_text().split()[0] == pin:
            continue
        archive = ctx.data / "sources" / f"{name}-{pin}.zip"
        if archive.is_file():  # seeded from a bundle
            from .seed import _extract

            shutil.rmtree(root, ignore_errors=True)
            _extract(archive, root)
        elif ctx.opts.offline:
            raise ApplyError(f"{name}: source {url}@{pin[:12]} is not in {ctx.data / 'sources'} and apply is offline",
                             hint=f"provision mirror {ctx.spec.name} --to BUNDLE online, then apply --offline --bundle BUNDLE")
        else:
            shutil.rmtree(root, ignore_errors=True)
            run_logged(ctx, ["git", "clone", "--quiet", url, str(root)], log)
            run_logged(ctx, ["git", "-C", str(root), "checkout", "--quiet", pin], log)
            if sub:
                run_logged(ctx, ["git", "-C", str(root), "submodule", "update", "--init", "--recursive"], log)
        _marker(root).write_text(f"{pin}\n")


def _fetch_sdist(ctx: Ctx, name: str, src: SdistSource, dest: Path, log: Path) -> None:
    if dest.is_file() and file_digest(dest) == src.sha256:
        return
    seeded = ctx.data / "wheelhouse" / dest.name
    if seeded.is_file():
        shutil.copyfile(seeded, dest)
        return
    if ctx.opts.offline:
        raise ApplyError(f"{name}: {dest.name} is not in the wheelhouse and apply is offline")
    from .download import Job, fetch, session

    fetch(Job(src.sdist, dest, sha256=src.sha256, label=name), session())


def do_create_env(ctx: Ctx, step: Step, log: Path) -> None:
    if ctx.opts.venv:
        host_py = ctx.opts.python or _host_python(ctx)
        run_logged(ctx, [host_py, "-m", "venv", str(ctx.prefix)], log)
        return
    from .lock import lockfile

    lock = lockfile.read(Path(ctx.compiled / "conda-lock.yml"))
    cats = {"main"} | ({"cuda-toolkit"} if ctx.plan.nvcc.source == "conda" else set())
    recs = lockfile.conda_records(lock, categories=cats)
    _rattler_install(ctx, recs, log)


def _host_python(ctx: Ctx) -> str:
    want = ctx.spec.python
    for cand in (f"python{want}", "python3", sys.executable):
        path = shutil.which(cand) or (cand if os.path.isabs(cand) else None)
        if not path:
            continue
        r = subprocess.run([path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True)
        if r.stdout.strip() == want:
            return path
    raise ApplyError(f"no Python {want} on this machine for a venv",
                     hint=f"install python{want}, pass --python PATH, or drop --venv to get it from conda-forge")


def _rattler_install(ctx: Ctx, recs: list, log: Path) -> None:  # type: ignore[type-arg]
    """Install the locked conda records; offline, from the seeded channel, checking each file's
    sha256 ourselves (rattler checks hashes over HTTP, not for file:// URLs)."""
    import asyncio

    import rattler

    from .settings import cache_dir

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
        f.write(f"rattler: installing {len(records)} conda packages into {ctx.prefix}\n")
    asyncio.run(rattler.install(records, target_prefix=ctx.prefix, cache_dir=cache_dir() / "rattler-pkgs"))


def _requirements(ctx: Ctx) -> Path:
    """The compiled requirements; offline, the same pins by name, found in the wheelhouse."""
    req = ctx.compiled / "requirements.txt"
    if not ctx.opts.offline:
        return req
    from .lock import lockfile

    pins = lockfile.pip_pins(lockfile.read(ctx.compiled / "conda-lock.yml"))
    lines = [f"{p.name}=={p.version} --hash=sha256:{p.sha256}" for p in pins if not p.git]
    off = ctx.meta / "requirements-offline.txt"
    atomic_write_text(off, "\n".join(lines) + "\n")
    return off


def _pip(ctx: Ctx) -> list[str]:
    return [ctx.py, "-m", "pip", "--disable-pip-version-check", "--no-input"]


def _index_args(ctx: Ctx) -> list[str]:
    return ["--no-index", "--find-links", str(ctx.data / "wheelhouse")] if ctx.opts.offline else []


def do_pip_install(ctx: Ctx, step: Step, log: Path) -> None:
    run_logged(ctx, [*_pip(ctx), "install", "--no-deps", "--require-hashes", *_index_args(ctx), "-r",
                     str(_requirements(ctx))], log)
    for p in [*ctx.spec.pip.packages, *ctx.spec.variants[ctx.plan.variant].packages]:
        if p.git is not None:  # pinned by commit, fetched by the sources step; its requires are locked
            run_logged(ctx, [*_pip(ctx), "install", "--no-deps", "--no-build-isolation", *_index_args(ctx),
                             str(ctx.data / "src" / p.name)], log)


def _freeze(ctx: Ctx) -> dict[str, str]:
    r = subprocess.run([ctx.py, "-m", "pip", "--disable-pip-version-check", "list", "--format=json"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise ApplyError(f"cannot list the env's packages: {r.stderr.strip()[-300:]}")
    return {d["name"].lower().replace("_", "-"): d["version"] for d in json.loads(r.stdout)}


def do_torch_guard(ctx: Ctx, step: Step, log: Path) -> None:
    installed = _freeze(ctx)
    ctx.meta.mkdir(parents=True, exist_ok=True)
    atomic_write_text(ctx.constraints, "".join(f"{n}=={v}\n" for n, v in sorted(installed.items())))
    want = ctx.plan.torch
    if want:
        have = installed.get("torch")
        if have is None or have.split("+")[0] != want.split("+")[0] or ("+" in want and have != want):
            raise ApplyError(f"torch {have} is installed, the lock says {want}",
                             hint="reinstall from the lock: provision apply --from-step pip-install")


def _guard_after(ctx: Ctx, what: str) -> None:
    """Nothing a build did may move a pinned package."""
    if not ctx.constraints.is_file():
        return
    pinned = dict(line.strip().split("==", 1) for line in ctx.constraints.read_text().splitlines() if "==" in line)
    now = _freeze(ctx)
    moved = [f"{n} {v} -> {now.get(n, 'removed')}" for n, v in pinned.items() if now.get(n) != v]
    if moved:
        raise ApplyError(f"{what} changed pinned packages: {', '.join(moved)}",
                         hint="the extension's build installs packages itself; apply stopped so nothing built later "
                              "runs against them: reinstall with --from-step pip-install, and report it upstream")


def _dir_digest(d: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        if p.is_file() and ".git" not in p.parts and "build" not in p.relative_to(d).parts[:1]:
            h.update(str(p.relative_to(d)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _first_line(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "none"
    lines = [l for l in (r.stdout or r.stderr).splitlines() if l.strip()]
    return lines[-1] if "nvcc" in argv[0] and lines else (lines[0] if lines else "none")


def build_key(ctx: Ctx, ext, src: Path, env: dict[str, str]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Everything that changes an extension's binary; its hash names the cached build."""
    probe = ("import importlib.metadata as m, sys, sysconfig\n"
             "d = m.distribution('torch')\n"
             "v = d.locate_file('torch/version.py')\n"
             "print(d.version); print(sysconfig.get_config_var('SOABI') or sys.version)\n"
             "print([l for l in open(v) if l.startswith('cuda')][0].strip() if v.exists() else 'cuda = None')\n")
    r = subprocess.run([ctx.py, "-c", probe], capture_output=True, text=True)
    torch_v, abi, cuda = (r.stdout.splitlines() + ["none"] * 3)[:3] if r.returncode == 0 else ("none", "none", "none")
    marker = _marker(src) if _marker(src).exists() else _marker(src.parent)
    pin = marker.read_text().split()[0] if marker.is_file() else ""
    cuda_home = env.get("CUDA_HOME") or os.environ.get("CUDA_HOME") or "/usr/local/cuda"
    return {
        "name": ext.name, "build": ext.build, "source": pin, "torch": torch_v, "torch_cuda": cuda, "python": abi,
        "arch_list": env.get("TORCH_CUDA_ARCH_LIST", ""), "env": json.dumps({k: v for k, v in sorted(ext.env.items())}),
        "cxx": _first_line([os.environ.get("CXX", "g++"), "--version"]),
        "nvcc": _first_line([f"{cuda_home}/bin/nvcc", "--version"]) if ext.nvcc != "none" else "none",
    }


def _warn_without_ninja(ctx: Ctx, ext, env: dict[str, str], log: Path) -> None:  # type: ignore[no-untyped-def]
    """torch's BuildExtension silently falls back to one compiler at a time without ninja."""
    if ext.nvcc == "none":
        return
    if shutil.which("ninja", path=_expand_path(env)) is None:
        msg = (f"warning: no `ninja` in {Path(ctx.py).parent} or on PATH: torch will compile {ext.name}'s sources "
               f"one at a time and MAX_JOBS={env.get('MAX_JOBS', '?')} has no effect; add ninja to the spec's pip packages")
        ctx.echo(msg)
        with open(log, "a") as f:
            f.write(msg + "\n")


def do_build(ctx: Ctx, step: Step, log: Path) -> None:
    name = step.id.removeprefix("build-")
    ext = next(e for e in ctx.spec.extensions_for(ctx.plan.variant) if e.name == name)
    src = Path(source_dir(ctx.spec, ext, str(ctx.data)))
    env = dict(step.env)
    _warn_without_ninja(ctx, ext, env, log)
    key = build_key(ctx, ext, src, env)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    cached = ctx.data / "cache" / "ext" / f"{name}-{digest}"
    with open(log, "a") as f:
        f.write(f"build key {digest}: {json.dumps(key, sort_keys=True)}\n")
    hit = ctx.opts.cache and (cached / "key.json").is_file()
    if ext.build == "wheel":
        if hit:
            built = sorted(cached.glob("*.whl"))
            with open(log, "a") as f:
                f.write(f"from the cache: {', '.join(b.name for b in built)}\n")
        else:
            wheels = ctx.data / "wheels" / name
            shutil.rmtree(wheels, ignore_errors=True)
            # a cold build starts clean: a build/ left by an earlier try keeps its CMakeCache (the
            # compiler it found then) and objects made with other flags
            if src.is_dir():
                shutil.rmtree(src / "build", ignore_errors=True)
            # uv runs the build backend once (pip wheel runs setup.py twice: metadata, then the
            # build, each importing torch); no isolation, so the env's torch is what it builds on
            from .lock.pip import uv_bin

            run_logged(ctx, [uv_bin(), "build", "--wheel", "--no-build-isolation", "--no-config", "--no-cache",
                             "--python", ctx.py, "--out-dir", str(wheels), str(src)], log, env=env)
            built = sorted(wheels.glob("*.whl"))
            _store(cached, key, built)
        run_logged(ctx, [*_pip(ctx), "install", "--no-deps", "--no-index", "--force-reinstall",
                         "-c", str(ctx.constraints), *map(str, built)], log)
    else:
        dest = ctx.meta / "ext" / name
        shutil.rmtree(dest, ignore_errors=True)
        if hit:
            shutil.unpack_archive(str(cached / "inplace.tar"), dest)
            with open(log, "a") as f:
                f.write(f"from the cache: {cached / 'inplace.tar'}\n")
        else:
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".git", "build"))
            run_logged(ctx, [ctx.py, "setup.py", "build_ext", "--inplace"], log, env=env, cwd=dest)
            tmp = Path(shutil.make_archive(str(ctx.data / "cache" / f".{name}-{digest}"), "tar", dest))
            _store(cached, key, [tmp], rename={tmp.name: "inplace.tar"})
        purelib = subprocess.run([ctx.py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        shim = ctx.compiled / "site-packages" / f"provision-{name}.pth"
        text = shim.read_text() if shim.is_file() else f"{dest}\n"
        atomic_write_text(Path(purelib) / f"provision-{name}.pth", text)
    _guard_after(ctx, f"building {name}")


def _store(cached: Path, key: dict[str, str], files: list[Path], rename: dict[str, str] | None = None) -> None:
    """Put a build in the cache whole or not at all (a temp dir renamed into place)."""
    tmp = cached.with_name(cached.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in files:
        target = tmp / (rename or {}).get(f.name, f.name)
        shutil.move(str(f), target) if (rename and f.name in rename) else shutil.copyfile(f, target)
    (tmp / "key.json").write_text(json.dumps(key, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(cached, ignore_errors=True)
    os.replace(tmp, cached)


def do_activation(ctx: Ctx, step: Step, log: Path) -> None:
    for rel in (f"etc/conda/activate.d/provision-{ctx.spec.name}.sh", f"etc/conda/deactivate.d/provision-{ctx.spec.name}.sh"):
        dst = ctx.prefix / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ctx.compiled / rel, dst)
    shutil.copyfile(ctx.compiled / "activate.sh", ctx.meta / "activate.sh")


def do_weights(ctx: Ctx, step: Step, log: Path) -> None:
    if ctx.opts.bundle is None:
        raise ApplyError("no bundle to take the weights from",
                         hint=f"provision mirror {ctx.spec.name} --to BUNDLE, then apply --bundle BUNDLE")
    from .bundle import Bundle
    from .seed import apply_seed, plan_seed, verify_blobs

    b = Bundle.open(ctx.opts.bundle)
    bad = verify_blobs(b)
    if bad:
        raise ApplyError(f"{ctx.opts.bundle}: {bad[0]}" + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
    env = ctx.plan.env
    rep = plan_seed(b, Path(env.get("HF_HOME") or ctx.data / "huggingface"),
                    Path(env.get("TORCH_HOME") or ctx.data / "torch"), ctx.data)
    apply_seed(rep)


def do_verify(ctx: Ctx, step: Step, log: Path) -> None:
    from .verify import exit_code, target_env, verify

    checklist = json.loads((ctx.compiled / "checklist.json").read_text())
    outcomes, _ = verify(checklist, ctx.py, target_env(ctx.plan.env))
    with open(log, "w") as f:
        for o in outcomes:
            f.write(f"{o.status:<7} {o.title}: {o.detail}\n" + (f"        fix: {o.fix}\n" if o.status == "fail" else ""))
    if exit_code(outcomes):
        bad = [o for o in outcomes if o.status == "fail" and o.required]
        raise ApplyError(f"verify: {len(bad)} required check(s) fail: " + "; ".join(f"{o.title}: {o.detail}" for o in bad[:3]),
                         hint=f"provision verify {ctx.spec.name} shows every check and its fix ({log})")


EXECUTORS: dict[str, Callable[[Ctx, Step, Path], None]] = {
    "compile": do_compile, "sources": do_sources, "create-env": do_create_env, "pip-install": do_pip_install,
    "torch-guard": do_torch_guard, "activation": do_activation, "weights": do_weights, "verify": do_verify,
}


def executor(step: Step) -> Callable[[Ctx, Step, Path], None] | None:
    if step.id.startswith("build-deps-") or step.id == "cuda-toolkit":
        return None  # build tools are in the lock's main category; the toolkit comes with create-env
    if step.id.startswith("build-"):
        return do_build
    return EXECUTORS.get(step.id)


# --- state, skipping and resuming ------------------------------------------------------------


def step_inputs(ctx: Ctx, step: Step) -> str:
    """A hash of everything that, changed, means the step must run again."""
    h = hashlib.sha256(json.dumps({"id": step.id, "command": step.command, "env": step.env,
                                   "variant": ctx.plan.variant, "spec": ctx.plan.spec_digest,
                                   "offline": ctx.opts.offline}, sort_keys=True).encode())
    for f in ("conda-lock.yml", "requirements.txt"):
        p = ctx.compiled / f
        if step.id != "compile" and p.is_file():
            h.update(p.read_bytes())
    if step.id.startswith("build-") or step.id == "sources":
        for name, _, d in _sources(ctx):
            m = _marker(d if _marker(d).exists() else d.parent)
            h.update(f"{name}:{m.read_text() if m.is_file() else ''}".encode())
    return h.hexdigest()


def _load_state(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {"steps": {}}


def apply(loaded: LoadedSpec, host, plan: Plan, opts: ApplyOptions, echo: Callable[[str], None] = print) -> int:  # type: ignore[no-untyped-def]
    if plan.blockers:
        raise ApplyError(f"the plan for {loaded.name} has {len(plan.blockers)} blocker(s): {plan.blockers[0].what}",
                         hint=plan.blockers[0].fix)
    ctx = Ctx(loaded, plan, opts, echo, host)
    skip = {"create-env", "cuda-toolkit", "pip-install"} if opts.existing else set()
    steps = [s for s in plan.steps
             if s.id not in skip and not (s.id == "weights" and opts.bundle is None and (opts.offline or opts.existing))]
    if opts.existing and not Path(plan.prefix, "bin", "python").exists():
        raise ApplyError(f"--existing: no environment at {plan.prefix} (no bin/python)",
                         hint="pass the prefix of the env to use, or drop --existing to create one")
    ids = [s.id for s in steps]
    if opts.from_step and opts.from_step not in ids:
        raise ApplyError(f"no step {opts.from_step!r} in the plan", hint=f"steps: {', '.join(ids)}")
    if opts.dry_run:
        for i, s in enumerate(steps, 1):
            echo(f"[{i}/{len(steps)}] {s.id}: {s.title}")
            echo(f"    $ {s.command}")
            if s.env:
                echo("    env: " + " ".join(f"{k}={v}" for k, v in s.env.items()))
        echo("dry run: nothing was changed")
        return 0
    state_path = ctx.meta / "state.json"
    state = _load_state(state_path)
    forced = False
    for i, s in enumerate(steps, 1):
        run = executor(s)
        label = f"[{i}/{len(steps)}] {s.id}"
        if run is None:
            echo(f"{label}: included in another step")
            continue
        forced = forced or s.id == opts.from_step
        inputs = step_inputs(ctx, s)
        done = state["steps"].get(s.id)
        env_alive = Path(ctx.py).exists() or s.id in ("compile", "sources", "create-env")
        if not forced and done and done.get("inputs") == inputs and env_alive:
            echo(f"{label}: done before, inputs unchanged - skipped")
            continue
        # from here on this step and every later one are unfinished, until each completes:
        # a run killed now resumes here, not after it
        for later in ids[ids.index(s.id):]:
            state["steps"].pop(later, None)
        if state_path.parent.is_dir():
            atomic_write_text(state_path, json.dumps(state, indent=1, sort_keys=True) + "\n")
        log = ctx.meta / "logs" / f"{s.id}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        t = time.monotonic()
        echo(f"{label}: {s.title} ...")
        run(ctx, s, log)
        state = _load_state(state_path)  # create-env may have just made the directory
        state["steps"][s.id] = {"inputs": step_inputs(ctx, s), "seconds": round(time.monotonic() - t, 1)}
        atomic_write_text(state_path, json.dumps(state, indent=1, sort_keys=True) + "\n")
        echo(f"{label}: done in {time.monotonic() - t:.1f} s")
    return 0
