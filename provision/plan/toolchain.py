"""Which nvcc builds the extensions, and for which archs (TORCH_CUDA_ARCH_LIST)."""

from __future__ import annotations

import re

from ..host import HostFacts, Nvcc
from ..spec import CudaToolkit, Extension, TargetSpec, Variant
from ..versions import Dotted, cc_arch
from ..lock.facts import LockFacts
from .model import Finding, NvccPlan


def toolkit_for(spec: TargetSpec, version: str) -> CudaToolkit | None:
    """The toolkit entry of an nvcc version: exact major.minor, else the nearest older one."""
    want = Dotted(version).major_minor()
    known = sorted((Dotted(k), tk) for k, tk in spec.cuda_toolkits.items())
    match = [tk for k, tk in known if k.major == want.major and k <= want]
    return match[-1] if match else None


def build_toolkit(variant: Variant, lock: LockFacts | None) -> str:
    """The CUDA toolkit the extensions build with: the one the lockfile carries (its
    `provision-toolkit`), else the variant's `toolkit` (default: its `cuda`)."""
    return lock.toolkit if lock is not None and lock.toolkit else variant.toolkit_version()


# major.minor, as a host file writes a compute capability: "86", "sm_86" and "8.6.1" are not one
_CC = re.compile(r"\d{1,2}\.\d")


def parse_arch_list(text: str) -> tuple[str, ...]:
    """`8.6;8.9;9.0` (TORCH_CUDA_ARCH_LIST's spelling) -> ("8.6", "8.9", "9.0"), sorted, each once.
    ValueError for anything else: an empty list or item, `86`, `sm_86`, `8.6+PTX` (that is --ptx)."""
    items = [i.strip() for i in text.split(";")]
    if not text.strip() or not items:
        raise ValueError("an empty arch list: give compute capabilities like 8.6;8.9;9.0")
    for i in items:
        if not _CC.fullmatch(i):
            digits = re.fullmatch(r"(?:sm_|compute_)?(\d{1,2})(\d)", i)
            why = ("`+PTX` is added with --ptx" if i.endswith("+PTX") else "an empty item (two `;` in a row?)" if not i
                   else f"write it {digits.group(1)}.{digits.group(2)}" if digits else "major.minor, like 8.6")
            raise ValueError(f"{i!r} is not a compute capability ({why})")
    return tuple(a.text for a in sorted({Dotted(i) for i in items}))


def plan_nvcc(spec: TargetSpec, variant: Variant, exts: list[Extension], host: HostFacts,
              archs: list[Dotted], data: str, lock: LockFacts | None, lock_known: bool) -> tuple[NvccPlan, list[Finding]]:
    """A fitting system nvcc, else the toolkit the lockfile carries, installed once per toolkit
    version into a shared prefix (DATA/toolkits/...) every kind of env builds with."""
    needs = [e for e in exts if e.nvcc != "none"]
    if not needs:
        return NvccPlan(needed=False, source="none", reason="no extension compiles CUDA code"), []
    cuda = Dotted(variant.cuda)
    need_min = max([cuda] + [Dotted(e.min_nvcc) for e in needs if e.min_nvcc])
    rejected: list[str] = []
    for n in sorted(host.nvcc, key=lambda n: (not n.on_path, n.path)):
        why = _nvcc_unfit(spec, n, cuda, need_min, archs)
        if why is None:
            plan = NvccPlan(needed=True, source="system", version=n.version, path=n.path,
                            cuda_home=n.path.rsplit("/bin/nvcc", 1)[0],
                            reason=f"system nvcc {n.version} matches torch's CUDA {cuda}")
            return _host_compiler(spec, plan, host, None, needs)
        rejected.append(f"{n.path} ({n.version}): {why}")
    reason = "no nvcc on this host" if not host.nvcc else "; ".join(rejected)
    version = build_toolkit(variant, lock)
    tk = spec.cuda_toolkits.get(version)
    if tk is None:
        return NvccPlan(needed=True, source="none", reason=f"no toolkit entry for CUDA {version}"), [
            Finding(what=f"no nvcc fits and CUDA {version} is not in cuda_toolkits", fix="add it to envs/shared/cuda.yaml")]
    if lock_known and (lock is None or lock.toolkit_dir is None):
        if lock is None:  # no lockfile at all: its own blocker says so; this plan shows what it will carry
            home = f"{data}/toolkits/cuda-{version}"
        else:
            return NvccPlan(needed=True, source="none", reason=f"{reason}; and the lockfile carries no CUDA toolkit"), [
                Finding(what=f"no nvcc fits ({reason}) and the lockfile was made with --no-cuda-toolkit",
                        fix=f"relock without --no-cuda-toolkit (provision lock {spec.name}), or install nvcc "
                            f"{version} and put it on PATH")]
    else:
        home = f"{data}/toolkits/{lock.toolkit_dir if lock is not None and lock.toolkit_dir else f'cuda-{version}'}"
    plan = NvccPlan(needed=True, source="toolkit", version=version, path=f"{home}/bin/nvcc", cuda_home=home,
                    conda_channel=tk.conda_channel, conda_packages=list(tk.conda_packages),
                    reason=f"{reason}: the lockfile's CUDA {version} toolkit, installed once into {home} "
                           "(shared by every env that builds with it)")
    return _host_compiler(spec, plan, host, lock.toolkit_cxx if lock is not None else None, needs)


def _host_compiler(spec: TargetSpec, plan: NvccPlan, host: HostFacts, toolkit_cxx: str | None,
                   exts: list[Extension]) -> tuple[NvccPlan, list[Finding]]:
    """nvcc needs a host C++ compiler, and refuses a gcc newer than its own limit ("unsupported GNU
    version!"): then the conda g++ the locked toolkit brings, of a version it accepts, compiles
    instead; with neither, the builds cannot start, and the plan says so before anything is installed."""
    tk = toolkit_for(spec, plan.version or "")
    own = plan.source == "toolkit" and toolkit_cxx and (tk is None or Dotted(toolkit_cxx).major <= Dotted(tk.max_gcc).major)
    use_own = {"cc": f"{plan.cuda_home}/bin/x86_64-conda-linux-gnu-gcc", "cxx": f"{plan.cuda_home}/bin/x86_64-conda-linux-gnu-g++"}
    if host.cxx is None:
        if own:
            return plan.model_copy(update={**use_own, "reason": plan.reason + f"; no host C++ compiler found: the "
                                           f"toolkit's own g++ {toolkit_cxx} compiles"}), []
        names = ", ".join(e.name for e in exts)
        return plan, [Finding(what=f"no C++ compiler found (g++): the CUDA extensions ({names}) need one, for their C++ "
                                   "code and as nvcc's host compiler",
                              fix="install one (Debian/Ubuntu, WSL included: `sudo apt install build-essential`), then "
                                  "save the host facts again (`provision doctor --save host.json`)")]
    if tk is None or host.cxx.name != "gcc" or Dotted(host.cxx.version).major <= Dotted(tk.max_gcc).major:
        return plan, []
    if own:
        return plan.model_copy(update={**use_own, "reason": plan.reason + f"; host gcc {host.cxx.version} is newer "
                                       f"than nvcc {plan.version} accepts (<= {tk.max_gcc}): the toolkit's own g++ "
                                       f"{toolkit_cxx} compiles"}), []
    return plan, []


def _nvcc_unfit(spec: TargetSpec, n: Nvcc, cuda: Dotted, need_min: Dotted, archs: list[Dotted]) -> str | None:
    v = Dotted(n.version)
    if v.major != cuda.major:
        return f"major version differs from torch's CUDA {cuda} (torch refuses to build)"
    if v < need_min:
        return f"older than torch's CUDA {need_min}"
    tk = toolkit_for(spec, n.version)
    if tk is not None:
        too_new = [a for a in archs if a > Dotted(tk.nvcc_max_arch)]
        if too_new:
            return f"cannot compile for {', '.join(cc_arch(a) for a in too_new)} (max {cc_arch(Dotted(tk.nvcc_max_arch))})"
    return None


def arch_findings(spec: TargetSpec, nvcc: NvccPlan, archs: list[Dotted]) -> list[Finding]:
    if not nvcc.needed or not nvcc.version:
        return []
    tk = toolkit_for(spec, nvcc.version)
    if tk is None:
        return []
    out = []
    for a in archs:
        if a > Dotted(tk.nvcc_max_arch) or a < Dotted(tk.nvcc_min_arch):
            out.append(Finding(what=f"nvcc {nvcc.version} cannot compile for {cc_arch(a)}",
                               fix="use a variant whose CUDA supports this GPU (CUDA >= 12.8 for sm_120)"))
    return out


def format_arch_list(archs: list[Dotted], ptx: bool) -> str:
    items = [a.major_minor().text for a in archs]
    if ptx and items:
        items[-1] += "+PTX"
    return ";".join(items)
