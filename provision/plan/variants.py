"""Which CUDA build of the torch stack a host can run: the driver's CUDA and the GPUs' archs."""

from __future__ import annotations

from ..errors import PlanRefused, UsageError
from ..host import HostFacts
from ..spec import CudaToolkit, TargetSpec
from ..versions import Dotted, cc_arch


def driver_max_cuda(spec: TargetSpec, host: HostFacts) -> Dotted | None:
    """The newest CUDA the driver runs: what it reports, else derived from its version."""
    if host.driver_cuda:
        return Dotted(host.driver_cuda).major_minor()
    if not host.driver_version:
        return None
    drv = Dotted(host.driver_version)
    fits = [Dotted(v) for v, tk in spec.cuda_toolkits.items() if Dotted(_min_driver_for(tk, host)) <= drv]
    return max(fits) if fits else None


def _min_driver_for(tk: CudaToolkit, host: HostFacts) -> str:
    return tk.min_driver_windows if host.wsl else tk.min_driver_linux


def variant_problems(spec: TargetSpec, key: str, host: HostFacts) -> list[str]:
    """Why a variant cannot run on this host; empty when it can."""
    v = spec.variants[key]
    out: list[str] = []
    cuda = Dotted(v.cuda)
    tk = spec.cuda_toolkits.get(v.cuda)
    max_cuda = driver_max_cuda(spec, host)
    drv = host.driver_version or "unknown"
    if max_cuda is not None and cuda > max_cuda:
        need = _min_driver_for(tk, host) if tk else "a newer one"
        out.append(f"{key} needs CUDA {cuda} but driver {drv} supports CUDA <= {max_cuda} "
                   f"(CUDA {cuda} needs driver >= {need})")
    if v.host.min_driver and host.driver_version and Dotted(host.driver_version) < Dotted(v.host.min_driver):
        out.append(f"{key} needs driver >= {v.host.min_driver}, this host has {drv}")
    lo, hi = Dotted(v.host.min_compute_capability), Dotted(v.host.max_compute_capability)
    torch = spec.torch_version(key) or "?"
    for g in host.gpus:
        cc = Dotted(g.compute_capability)
        if cc > hi:
            out.append(f"{g.name} is {cc_arch(cc)} (compute capability {cc}); torch {torch} ({key}) "
                       f"carries kernels only up to {cc_arch(hi)}")
        elif cc < lo:
            out.append(f"{g.name} is {cc_arch(cc)} (compute capability {cc}); {key} needs >= {lo}")
    return out


def choose_variant(spec: TargetSpec, host: HostFacts, wanted: str | None) -> tuple[str, str, dict[str, list[str]]]:
    """(variant, why, rejected) or PlanRefused listing why none fits."""
    if wanted is not None and wanted not in spec.variants:
        raise UsageError(f"unknown variant {wanted!r} for {spec.name}",
                         hint=f"variants of {spec.name}: {', '.join(spec.variants)}")
    order = [wanted] if wanted else _preference(spec)
    rejected: dict[str, list[str]] = {}
    for key in order:
        problems = variant_problems(spec, key, host)
        if not problems:
            if wanted:
                why = "asked for with --variant"
            elif key == spec.default_variant():
                why = ("the default variant, and this host can run it" if host.gpus
                       else "the default variant (no GPU found to check it against)")
            else:
                why = f"the default ({spec.default_variant()}) cannot run on this host"
            return key, why, rejected
        rejected[key] = problems
    reasons = [f"{k}: {r}" for k, rs in rejected.items() for r in rs]
    raise PlanRefused(f"no variant of {spec.name} can run on this host", reasons, hint=_refusal_hint(spec, host))


def _preference(spec: TargetSpec) -> list[str]:
    """The default first, then the others from the newest CUDA down."""
    default = spec.default_variant()
    rest = sorted((k for k in spec.variants if k != default), key=lambda k: Dotted(spec.variants[k].cuda), reverse=True)
    return [default, *rest]


def _refusal_hint(spec: TargetSpec, host: HostFacts) -> str:
    top_cc = max(host.compute_capabilities(), default=None)
    top_variant_cc = max(Dotted(v.host.max_compute_capability) for v in spec.variants.values())
    if top_cc and top_cc > top_variant_cc:
        return (f"{spec.name} pins builds with kernels up to {cc_arch(top_variant_cc)}; this GPU needs "
                f"{cc_arch(top_cc)} (CUDA >= 12.8 and torch >= 2.7 for Blackwell). Use a GPU of compute "
                f"capability <= {top_variant_cc}, or a target with a cu128 variant")
    lowest = min(spec.variants.values(), key=lambda v: Dotted(v.cuda))
    tk = spec.cuda_toolkits.get(lowest.cuda)
    need = _min_driver_for(tk, host) if tk else "newer"
    where = "the Windows driver" if host.wsl else "the NVIDIA driver"
    return f"update {where} to >= {need} (CUDA {lowest.cuda}), or pass --variant to see one variant's reasons"
