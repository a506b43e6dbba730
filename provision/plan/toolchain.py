"""Which nvcc builds the extensions, and for which archs (TORCH_CUDA_ARCH_LIST)."""

from __future__ import annotations

from ..host import HostFacts, Nvcc
from ..spec import CudaToolkit, Extension, TargetSpec, Variant
from ..versions import Dotted, cc_arch
from .model import Finding, NvccPlan


def toolkit_for(spec: TargetSpec, version: str) -> CudaToolkit | None:
    """The toolkit entry of an nvcc version: exact major.minor, else the nearest older one."""
    want = Dotted(version).major_minor()
    known = sorted((Dotted(k), tk) for k, tk in spec.cuda_toolkits.items())
    match = [tk for k, tk in known if k.major == want.major and k <= want]
    return match[-1] if match else None


def plan_nvcc(spec: TargetSpec, variant: Variant, exts: list[Extension], host: HostFacts,
              archs: list[Dotted], prefix: str) -> tuple[NvccPlan, list[Finding]]:
    needs = [e for e in exts if e.nvcc != "none"]
    if not needs:
        return NvccPlan(needed=False, source="none", reason="no extension compiles CUDA code"), []
    cuda = Dotted(variant.cuda)
    need_min = max([cuda] + [Dotted(e.min_nvcc) for e in needs if e.min_nvcc])
    rejected: list[str] = []
    for n in sorted(host.nvcc, key=lambda n: (not n.on_path, n.path)):
        why = _nvcc_unfit(spec, n, cuda, need_min, archs)
        if why is None:
            return NvccPlan(needed=True, source="system", version=n.version, path=n.path,
                            cuda_home=n.path.rsplit("/bin/nvcc", 1)[0],
                            reason=f"system nvcc {n.version} matches torch's CUDA {cuda}"), []
        rejected.append(f"{n.path} ({n.version}): {why}")
    tk = spec.cuda_toolkits.get(variant.cuda)
    if tk is None:
        return NvccPlan(needed=True, source="none", reason=f"no toolkit entry for CUDA {cuda}"), [
            Finding(what=f"no nvcc fits and CUDA {cuda} is not in cuda_toolkits", fix="add it to envs/shared/cuda.yaml")]
    reason = ("no nvcc on this host" if not host.nvcc else "; ".join(rejected))
    plan = NvccPlan(needed=True, source="conda", version=variant.cuda, path=f"{prefix}/bin/nvcc", cuda_home=prefix,
                    conda_channel=tk.conda_channel,
                    conda_packages=[f"{p}={variant.cuda}.*" if p.startswith("cuda-") else p for p in tk.conda_packages],
                    reason=f"{reason}: the env gets cuda-nvcc {variant.cuda} from {tk.conda_channel}")
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
