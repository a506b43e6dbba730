"""The build steps: each CUDA extension compiled with the planned arch list and job count, as a
wheel (uv build) or in place under the env with a .pth shim, and cached by everything that
changes its binary (source, torch and its CUDA, Python ABI, arch list, compiler, nvcc: one
definition, plan/binary.py, shared with the fleet's groups). With --cache-url a build the local
cache lacks comes from the build index when one matches its key (fromindex.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from .. import paths
from ..archives import extract_tar
from ..fsutil import write_ours
from ..host.probe import find_cxx, parse_nvcc_version, run_command
from ..plan import Step, source_dir
from ..plan.binary import Toolchain, digest_of, ext_key, norm_cuda, norm_cxx, norm_python, norm_torch
from .commands import expand_path, purelib, run_logged
from .context import Ctx
from .envsteps import guard_after, pip_argv
from .sources import source_marker


def measured_toolchain(ctx: Ctx, ext, env: dict[str, str]) -> Toolchain:  # type: ignore[no-untyped-def]
    """The toolchain this env builds with, measured: the installed torch and its CUDA, the env's
    Python, the compiler and nvcc the build's PATH and CUDA_HOME find (normalised as the planner's
    prediction is, plan/binary.py)."""
    probe = ("import importlib.metadata as m, platform, sys\n"
             "d = m.distribution('torch')\n"
             "v = d.locate_file('torch/version.py')\n"
             "print(d.version); print(sys.implementation.cache_tag); print(sys.abiflags); print(platform.machine())\n"
             "print([l for l in open(v) if l.startswith('cuda')][0].strip() if v.exists() else 'cuda = None')\n")
    r = subprocess.run([ctx.py, "-c", probe], capture_output=True, text=True)
    out = (r.stdout.splitlines() + ["none"] * 5)[:5] if r.returncode == 0 else ["none"] * 5
    torch_v, tag, flags, machine, cuda = out
    build_env = {**os.environ, **env, "PATH": expand_path(env)}
    cxx = find_cxx(run_command, build_env)
    cuda_home = env.get("CUDA_HOME") or os.environ.get("CUDA_HOME") or "/usr/local/cuda"
    nvcc = parse_nvcc_version(run_command([f"{cuda_home}/bin/nvcc", "--version"]) or "") if ext.nvcc != "none" else None
    return Toolchain(variant=ctx.plan.variant, torch=norm_torch(torch_v),
                     torch_cuda=norm_cuda(cuda.split("=", 1)[-1].strip().strip("'\"")),
                     python=norm_python(tag, flags if flags != "none" else "", machine),
                     arch_list=env.get("TORCH_CUDA_ARCH_LIST", ""),
                     cxx=norm_cxx(cxx.name, cxx.version) if cxx else "none", nvcc=norm_cuda(nvcc))


def build_key(ctx: Ctx, ext, src: Path, env: dict[str, str]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Everything that changes an extension's binary (plan/binary.py); its hash names the cached build."""
    marker = source_marker(src) if source_marker(src).exists() else source_marker(src.parent)
    pin = marker.read_text().split()[0] if marker.is_file() else ""
    return ext_key(measured_toolchain(ctx, ext, env), ext, pin)


def warn_without_ninja(ctx: Ctx, ext, env: dict[str, str], log: Path) -> None:  # type: ignore[no-untyped-def]
    """torch's BuildExtension silently falls back to one compiler at a time without ninja."""
    if ext.nvcc == "none":
        return
    if shutil.which("ninja", path=expand_path(env)) is None:
        msg = (f"warning: no `ninja` in {Path(ctx.py).parent} or on PATH: torch will compile {ext.name}'s sources "
               f"one at a time and MAX_JOBS={env.get('MAX_JOBS', '?')} has no effect; add ninja to the spec's pip packages")
        ctx.echo(msg)
        with open(log, "a") as f:
            f.write(msg + "\n")


def do_build(ctx: Ctx, step: Step, log: Path) -> None:
    name = step.id.removeprefix("build-")
    ext = next(e for e in ctx.spec.extensions_for(ctx.plan.variant) if e.name == name)
    src = Path(source_dir(ctx.spec, ext, str(ctx.data)))
    env = build_environment(ctx, step)
    warn_without_ninja(ctx, ext, env, log)
    key = build_key(ctx, ext, src, env)
    digest = digest_of(key)
    cache = paths.owned_dir(ctx.data / "cache" / "ext")
    cached = cache / f"{name}-{digest}"
    with open(log, "a") as f:
        f.write(f"build key {digest}: {json.dumps(key, sort_keys=True)}\n")
    hit = ctx.opts.cache and (cached / "key.json").is_file()
    indexed = None
    if not hit and ctx.opts.cache and ctx.opts.cache_url:
        from .fromindex import fetch_from_index

        indexed = fetch_from_index(ctx, name, key, digest, log)
    if ext.build == "wheel":
        if hit:
            built = sorted(cached.glob("*.whl"))
            with open(log, "a") as f:
                f.write(f"from the cache: {', '.join(b.name for b in built)}\n")
        elif indexed:
            built = [indexed]
        else:
            wheels_root = paths.owned_dir(ctx.data / "wheels")
            wheels = wheels_root / name
            paths.remove_tree(wheels, wheels_root, f"{name}'s earlier wheel")
            # a cold build starts clean: a build/ left by an earlier try keeps its CMakeCache (the
            # compiler it found then) and objects made with other flags
            if src.is_dir():
                paths.remove_tree(src / "build", ctx.data / "src", f"{name}'s earlier build directory")
            # uv runs the build backend once (pip wheel runs setup.py twice: metadata, then the
            # build, each importing torch); no isolation, so the env's torch is what it builds on
            from ..lock.pip import uv_bin

            run_logged(ctx, [uv_bin(), "build", "--wheel", "--no-build-isolation", "--no-config", "--no-cache",
                             "--python", ctx.py, "--out-dir", str(wheels), str(src)], log, env=env)
            built = sorted(wheels.glob("*.whl"))
            _store(cache, cached, key, built)
        run_logged(ctx, [*pip_argv(ctx), "install", "--no-deps", "--no-index", "--force-reinstall",
                         "-c", str(ctx.constraints), *map(str, built)], log)
    else:
        dest = ctx.meta / "ext" / name
        paths.remove_tree(dest, ctx.meta, f"{name}'s earlier in-place build")
        if hit:  # a cache seeded from a bundle is input like any other: unpacked only after its listing is checked
            extract_tar(cached / "inplace.tar", dest)
            with open(log, "a") as f:
                f.write(f"from the cache: {cached / 'inplace.tar'}\n")
        elif indexed:
            from .fromindex import unpack_inplace

            unpack_inplace(ctx, indexed, name, dest)
        else:
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".git", "build"))
            run_logged(ctx, [ctx.py, "setup.py", "build_ext", "--inplace"], log, env=env, cwd=dest)
            meta = {"version": _tree_version(ctx, dest, env)}
            tmp = Path(shutil.make_archive(str(cache / f".{name}-{digest}"), "tar", dest))
            _store(cache, cached, key, [tmp], rename={tmp.name: "inplace.tar"}, meta=meta)
        shim = ctx.compiled / "site-packages" / f"provision-{name}.pth"
        text = shim.read_text() if shim.is_file() else f"{dest}\n"
        write_ours(purelib(ctx) / f"provision-{name}.pth", text)
    guard_after(ctx, f"building {name}", own=name)


def _tree_version(ctx: Ctx, tree: Path, env: dict[str, str]) -> str:
    """The version an in-place tree's setup.py declares (its published wheel carries it), else 0."""
    from packaging.version import InvalidVersion, Version

    try:
        r = subprocess.run([ctx.py, "setup.py", "--version"], cwd=tree, capture_output=True, text=True, timeout=300,
                           env={**os.environ, **env, "PATH": expand_path(env)})
        return str(Version(([line for line in r.stdout.splitlines() if line.strip()] or ["0"])[-1].strip()))
    except (OSError, subprocess.TimeoutExpired, InvalidVersion):
        return "0"


def build_environment(ctx: Ctx, step: Step) -> dict[str, str]:
    """The planned build env, completed with what only this machine can say:
    - `-lcuda` links against the toolkit's stubs where no driver library is installed;
    - cuBLAS/cuSPARSE/cuSOLVER/cuRAND headers the toolkit lacks come from the env's own
      nvidia-*-cu12 wheels (the exact versions torch runs with);
    - a `-ccbin` in the user's NVCC_PREPEND_FLAGS (conda's nvcc activation sets one) is dropped:
      torch passes its own, and two are an error ("redefinition of argument 'compiler-bindir'")."""
    env = dict(step.env)
    home = env.get("CUDA_HOME")
    if home:
        stubs = Path(home) / "lib64" / "stubs"
        if stubs.is_dir():
            env["LIBRARY_PATH"] = ":".join(filter(None, [str(stubs), os.environ.get("LIBRARY_PATH")]))
        if not (Path(home) / "include" / "cublas_v2.h").exists():
            incs = sorted(str(p) for p in purelib(ctx).glob("nvidia/*/include"))
            if incs:
                env["CPATH"] = ":".join([*incs, *([os.environ["CPATH"]] if os.environ.get("CPATH") else [])])
    flags = os.environ.get("NVCC_PREPEND_FLAGS", "")
    if "-ccbin" in flags or "--compiler-bindir" in flags:
        env["NVCC_PREPEND_FLAGS"] = re.sub(r"(-ccbin|--compiler-bindir)[= ]\S+", "", flags).strip()
    return env


def _store(cache: Path, cached: Path, key: dict[str, str], files: list[Path],
           rename: dict[str, str] | None = None, meta: dict[str, str] | None = None) -> None:
    """Put a build in the cache whole or not at all (a temp dir renamed into place)."""
    tmp = cached.with_name(cached.name + ".tmp")
    paths.remove_tree(tmp, cache, "a half-stored build")
    tmp.mkdir(parents=True)
    for f in files:
        target = tmp / (rename or {}).get(f.name, f.name)
        shutil.move(str(f), target) if (rename and f.name in rename) else shutil.copyfile(f, target)
    (tmp / "key.json").write_text(json.dumps(key, indent=1, sort_keys=True) + "\n")
    if meta:
        (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True) + "\n")
    paths.remove_tree(cached, cache, "the build this one replaces")
    os.replace(tmp, cached)
