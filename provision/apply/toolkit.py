"""The toolkit step: the CUDA build toolkit in its shared prefix, and the nvcc check, before the
pip half is downloaded.

The lockfile's cuda-toolkit category (nvcc, its headers, conda's own gcc of a version that
nvcc accepts) is installed with py-rattler, hashes checked, once per exact set of files into
DATA/toolkits/cuda-<version>-<digest>/, and used as CUDA_HOME by every env that builds with
it: a conda env, a --venv env and an --existing env alike. conda keeps headers and libraries
under targets/x86_64-linux/, where torch's cpp_extension does not look ($CUDA_HOME/include and
lib64: "cuda_runtime_api.h: No such file"): include/ and lib64/ are made to point there.

Whatever nvcc the plan chose (that toolkit, or a system one) is then checked the way a build
would find out hours later: it runs, its CUDA major is torch's, it compiles for every planned
arch, and it accepts the host compiler. A failure stops apply here, with the cause and the fix.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

from .. import paths
from ..plan import Step
from ..versions import Dotted
from .context import ApplyError, Ctx
from .guard import PrefixLock

DONE = ".provision-toolkit"  # written last: a prefix without it is half-installed and is redone


def do_toolkit(ctx: Ctx, step: Step, log: Path) -> None:
    nv = ctx.plan.nvcc
    if nv.source == "toolkit" and nv.cuda_home:
        install_toolkit(ctx, Path(nv.cuda_home), log)
    if nv.path:
        check_nvcc(ctx, Path(nv.path), log)


def _closure(recs: list, roots: list) -> list:  # type: ignore[type-arg]
    """The toolkit's records and every record of the lock they depend on (libgcc, zstd, sysroot...)."""
    by_name = {r.name: r for r in recs}
    seen: dict[str, object] = {}
    todo = list(roots)
    while todo:
        r = todo.pop()
        if r.name in seen:
            continue
        seen[r.name] = r
        todo += [by_name[d] for d in r.dependencies if d in by_name and d not in seen]
    return sorted(seen.values(), key=lambda r: r.name)  # type: ignore[attr-defined]


def install_toolkit(ctx: Ctx, home: Path, log: Path) -> None:
    from ..lock import lockfile
    from .envsteps import rattler_install

    lock = lockfile.read(ctx.compiled / "conda-lock.yml")
    everything = lockfile.conda_records(lock)
    conda = [r for r in everything if "cuda-toolkit" in r.categories]
    wheels = lockfile.pip_pins(lock, category="cuda-toolkit")
    if not (conda or wheels):
        raise ApplyError(f"the lockfile of {ctx.spec.name}/{ctx.plan.variant} carries no CUDA toolkit",
                         hint=f"relock it without --no-cuda-toolkit: provision lock {ctx.spec.name} "
                              f"--variant {ctx.plan.variant}")
    digest = lockfile.toolkit_digest([r.hash.sha256 for r in conda] + [w.sha256 for w in wheels])
    root = paths.owned_dir(home.parent)
    with PrefixLock(home, ctx.data / "locks", wait=True):  # two applies sharing a toolkit install it once
        done = home / DONE
        if done.is_file() and done.read_text().strip() == digest:
            with open(log, "a") as f:
                f.write(f"toolkit: {home} already holds these {len(conda) + len(wheels)} packages\n")
            return
        paths.remove_tree(home, root, "a half-installed toolkit")  # conda packages embed their prefix: no rename
        paths.owned_dir(home)
        if conda:
            rattler_install(ctx, _closure(everything, conda), log, home)
            _layout(home)
        if wheels:
            _install_wheels(ctx, wheels, home, log)
        (home / DONE).write_text(digest + "\n")
    with open(log, "a") as f:
        f.write(f"toolkit: installed into {home}\n")


def _layout(home: Path) -> None:
    """$CUDA_HOME/include, lib64 and lib64/stubs where torch's cpp_extension and `-lcuda` look."""
    target = home / "targets" / "x86_64-linux"
    for name, where in (("include", target / "include"), ("lib64", target / "lib")):
        link = home / name
        if where.is_dir() and not link.exists() and not link.is_symlink():
            link.symlink_to(os.path.relpath(where, home))


def _install_wheels(ctx: Ctx, wheels: list, home: Path, log: Path) -> None:  # type: ignore[type-arg]
    """The CUDA >= 13 toolkit wheels (nvidia-cuda-nvcc and siblings), hashes enforced, unpacked
    into HOME/wheels; HOME/bin, include, lib64, nvvm point into their nvidia/cu<N>/ tree."""
    from ..fsutil import atomic_write_text
    from ..lock.pip import uv_bin
    from .commands import run_logged

    lines = []
    for w in wheels:
        lines.append(f"{w.name}=={w.version} --hash=sha256:{w.sha256}" if ctx.opts.offline
                     else f"{w.name} @ {w.url} --hash=sha256:{w.sha256}")
    req = home / "toolkit-requirements.txt"
    atomic_write_text(req, "\n".join(lines) + "\n")
    index = ["--no-index", "--find-links", str(ctx.data / "wheelhouse")] if ctx.opts.offline else []
    run_logged(ctx, [uv_bin(), "pip", "install", "--no-config", "--no-deps", "--require-hashes", "--python", ctx.py,
                     "--target", str(home / "wheels"), *index, "-r", str(req)], log)
    nvcc = sorted((home / "wheels").glob("nvidia/cu*/bin/nvcc"))
    if not nvcc:
        raise ApplyError(f"the toolkit wheels hold no nvidia/cu*/bin/nvcc (in {home / 'wheels'})",
                         hint="the spec's pip_packages must include nvidia-cuda-nvcc")
    base = nvcc[0].parent.parent
    for name, where in (("bin", "bin"), ("include", "include"), ("nvvm", "nvvm"), ("lib64", "lib"), ("lib", "lib")):
        link = home / name
        if (base / where).is_dir() and not (link.exists() or link.is_symlink()):
            link.symlink_to(os.path.relpath(base / where, home))
    lib = base / "lib"  # wheels carry only versioned .so files: the linker wants libcudart.so
    for versioned in sorted(lib.glob("lib*.so.*")) if lib.is_dir() else []:
        plain = lib / (versioned.name.split(".so.")[0] + ".so")
        if not (plain.exists() or plain.is_symlink()):
            plain.symlink_to(versioned.name)


def _version(nvcc: Path, env: dict[str, str]) -> tuple[str | None, str]:
    try:
        r = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True, timeout=120, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, str(e)
    m = re.search(r"release (\d+\.\d+)", r.stdout)
    return (m.group(1) if m and r.returncode == 0 else None), (r.stdout + r.stderr).strip()[-300:]


def check_nvcc(ctx: Ctx, nvcc: Path, log: Path) -> None:
    """nvcc found, runs, has torch's CUDA major, compiles for the planned archs, accepts the host compiler."""
    plan = ctx.plan
    env = {**os.environ, **({"CC": plan.nvcc.cc, "CXX": plan.nvcc.cxx} if plan.nvcc.cc and plan.nvcc.cxx else {})}
    fix_toolkit = (f"let provision use the lockfile's toolkit (it does when no system nvcc fits): provision apply "
                   f"{ctx.spec.name} --from-step toolkit; or install nvcc {plan.cuda.split('.')[0]}.x and put it first on PATH")
    if not (nvcc.is_file() and os.access(nvcc, os.X_OK)):
        raise ApplyError(f"no nvcc at {nvcc}: the extensions cannot be built", hint=fix_toolkit)
    version, out = _version(nvcc, env)
    with open(log, "a") as f:
        f.write(f"nvcc: {nvcc}: {out}\n")
    if version is None:
        raise ApplyError(f"{nvcc} does not run ({out[-200:] or 'no output'})", hint=fix_toolkit)
    if Dotted(version).major != Dotted(plan.cuda).major:
        raise ApplyError(f"nvcc {version} at {nvcc} is CUDA {Dotted(version).major}, torch {plan.torch} is CUDA "
                         f"{plan.cuda}: torch refuses to build with another CUDA major ('The detected CUDA version "
                         "mismatches the version that was used to compile PyTorch'); nothing was downloaded or built",
                         hint=fix_toolkit)
    r = subprocess.run([str(nvcc), "--list-gpu-arch"], capture_output=True, text=True, timeout=120, env=env)
    if r.returncode == 0 and r.stdout.strip():
        have = set(re.findall(r"compute_(\d+)", r.stdout))
        missing = [a for a in plan.arch_list if Dotted(a).text.replace(".", "") not in have]
        if missing:
            raise ApplyError(f"nvcc {version} at {nvcc} cannot compile for {', '.join(missing)} (it lists "
                             f"{', '.join(sorted(have, key=int))})",
                             hint="use a variant whose CUDA supports this GPU (CUDA >= 12.8 for sm_120); `provision plan`")
    with tempfile.TemporaryDirectory(prefix="provision-nvcc-") as d:
        cu = Path(d) / "check.cu"
        cu.write_text("__global__ void k(int *x) { *x = 1; }\nint main() { return 0; }\n")
        argv = [str(nvcc), "-c", str(cu), "-o", str(Path(d) / "check.o")]
        if plan.nvcc.cc:
            argv[1:1] = ["-ccbin", plan.nvcc.cc]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env, cwd=d)
    with open(log, "a") as f:
        f.write(f"nvcc: compiled a test kernel: exit {r.returncode}\n{r.stdout}{r.stderr}")
    if r.returncode != 0:
        from .diagnose import diagnose

        d_ = diagnose(r.stdout + r.stderr, r.returncode)
        raise ApplyError(f"nvcc {version} cannot compile a test kernel with this host compiler: "
                         f"{(r.stderr or r.stdout).strip()[-300:]}" + (f"\n\ncause: {d_.cause}" if d_ else ""),
                         hint=d_.fix if d_ else f"see {log}")
