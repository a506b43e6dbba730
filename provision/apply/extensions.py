"""The build steps: each CUDA extension compiled with the planned arch list and job count, as a
wheel (uv build) or in place under the env with a .pth shim, and cached by everything that
changes its binary (source, torch and its CUDA, Python ABI, arch list, compiler, nvcc)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from .. import paths
from ..archives import extract_tar
from ..fsutil import write_ours
from ..plan import Step, source_dir
from .commands import expand_path, run_logged
from .context import Ctx
from .envsteps import guard_after, pip_argv
from .sources import source_marker


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
    marker = source_marker(src) if source_marker(src).exists() else source_marker(src.parent)
    pin = marker.read_text().split()[0] if marker.is_file() else ""
    cuda_home = env.get("CUDA_HOME") or os.environ.get("CUDA_HOME") or "/usr/local/cuda"
    return {
        "name": ext.name, "build": ext.build, "source": pin, "torch": torch_v, "torch_cuda": cuda, "python": abi,
        "arch_list": env.get("TORCH_CUDA_ARCH_LIST", ""), "env": json.dumps({k: v for k, v in sorted(ext.env.items())}),
        "cxx": _first_line([os.environ.get("CXX", "g++"), "--version"]),
        "nvcc": _first_line([f"{cuda_home}/bin/nvcc", "--version"]) if ext.nvcc != "none" else "none",
    }

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
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    cache = paths.owned_dir(ctx.data / "cache" / "ext")
    cached = cache / f"{name}-{digest}"
    with open(log, "a") as f:
        f.write(f"build key {digest}: {json.dumps(key, sort_keys=True)}\n")
    hit = ctx.opts.cache and (cached / "key.json").is_file()
    if ext.build == "wheel":
        if hit:
            built = sorted(cached.glob("*.whl"))
            with open(log, "a") as f:
                f.write(f"from the cache: {', '.join(b.name for b in built)}\n")
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
        else:
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".git", "build"))
            run_logged(ctx, [ctx.py, "setup.py", "build_ext", "--inplace"], log, env=env, cwd=dest)
            tmp = Path(shutil.make_archive(str(cache / f".{name}-{digest}"), "tar", dest))
            _store(cache, cached, key, [tmp], rename={tmp.name: "inplace.tar"})
        purelib = subprocess.run([ctx.py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        shim = ctx.compiled / "site-packages" / f"provision-{name}.pth"
        text = shim.read_text() if shim.is_file() else f"{dest}\n"
        write_ours(Path(purelib) / f"provision-{name}.pth", text)
    guard_after(ctx, f"building {name}")

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
            r = subprocess.run([ctx.py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True)
            incs = sorted(str(p) for p in Path(r.stdout.strip() or "/nonexistent").glob("nvidia/*/include"))
            if incs:
                env["CPATH"] = ":".join([*incs, *([os.environ["CPATH"]] if os.environ.get("CPATH") else [])])
    flags = os.environ.get("NVCC_PREPEND_FLAGS", "")
    if "-ccbin" in flags or "--compiler-bindir" in flags:
        env["NVCC_PREPEND_FLAGS"] = re.sub(r"(-ccbin|--compiler-bindir)[= ]\S+", "", flags).strip()
    return env


def _store(cache: Path, cached: Path, key: dict[str, str], files: list[Path],
           rename: dict[str, str] | None = None) -> None:
    """Put a build in the cache whole or not at all (a temp dir renamed into place)."""
    tmp = cached.with_name(cached.name + ".tmp")
    paths.remove_tree(tmp, cache, "a half-stored build")
    tmp.mkdir(parents=True)
    for f in files:
        target = tmp / (rename or {}).get(f.name, f.name)
        shutil.move(str(f), target) if (rename and f.name in rename) else shutil.copyfile(f, target)
    (tmp / "key.json").write_text(json.dumps(key, indent=1, sort_keys=True) + "\n")
    paths.remove_tree(cached, cache, "the build this one replaces")
    os.replace(tmp, cached)
