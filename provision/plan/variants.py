"""Which CUDA build of the torch stack a host can run: the driver's CUDA and the GPUs' archs."""

from __future__ import annotations

from collections.abc import Collection, Sequence

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
    fits = [Dotted(v) for v, tk in spec.cuda_toolkits.items() if Dotted(min_driver_for(tk, host)) <= drv]
    return max(fits) if fits else None


def min_driver_for(tk: CudaToolkit, host: HostFacts) -> str:
    """The oldest driver that runs a toolkit's CUDA on this host (WSL2: the Windows driver's number)."""
    return tk.min_driver_windows if host.wsl else tk.min_driver_linux


def variant_problems(spec: TargetSpec, key: str, host: HostFacts) -> list[str]:
    """Why a variant cannot run on this host; empty when it can."""
    return driver_problems(spec, key, host) + gpu_problems(spec, key, host)


def driver_problems(spec: TargetSpec, key: str, host: HostFacts) -> list[str]:
    """Why this host's driver cannot run a variant's CUDA."""
    v = spec.variants[key]
    out: list[str] = []
    cuda = Dotted(v.cuda)
    tk = spec.cuda_toolkits.get(v.cuda)
    max_cuda = driver_max_cuda(spec, host)
    drv = host.driver_version or "unknown"
    if max_cuda is not None and cuda > max_cuda:
        need = min_driver_for(tk, host) if tk else "a newer one"
        out.append(f"{key} needs CUDA {cuda} but driver {drv} supports CUDA <= {max_cuda} "
                   f"(CUDA {cuda} needs driver >= {need})")
    if v.host.min_driver and host.driver_version and Dotted(host.driver_version) < Dotted(v.host.min_driver):
        out.append(f"{key} needs driver >= {v.host.min_driver}, this host has {drv}")
    return out


def gpu_problems(spec: TargetSpec, key: str, host: HostFacts) -> list[str]:
    """Why a variant carries no kernels for this host's GPUs (what no driver update changes)."""
    v = spec.variants[key]
    out: list[str] = []
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


def arch_problems(spec: TargetSpec, key: str, archs: Sequence[Dotted]) -> list[str]:
    """Why a variant cannot carry kernels for archs given explicitly (GPUs that are not here)."""
    v = spec.variants[key]
    lo, hi = Dotted(v.host.min_compute_capability), Dotted(v.host.max_compute_capability)
    torch = spec.torch_version(key) or "?"
    return [f"{cc_arch(a)} (compute capability {a}) is above what torch {torch} ({key}) carries kernels for "
            f"(up to {cc_arch(hi)})" if a > hi else f"{cc_arch(a)} (compute capability {a}): {key} needs >= {lo}"
            for a in archs if a > hi or a < lo]


def _label(h: HostFacts, i: int) -> str:
    return f"host {i + 1} ({h.label})" if h.label else f"host {i + 1}"


def choose_variant(spec: TargetSpec, host: HostFacts, wanted: str | None,
                   locked: Collection[str] | None = None, archs: Sequence[Dotted] = (),
                   also: Sequence[HostFacts] = ()) -> tuple[str, str, dict[str, list[str]]]:
    """(variant, why, rejected) or PlanRefused listing why none fits.

    With `locked` (the variants that have a current lockfile), a variant without one is only
    chosen when no locked variant can run here: the plan then blocks, naming the lock to make.
    `archs` (given explicitly) and `also` (more hosts, for an image that runs on each) must fit too."""
    if wanted is not None and wanted not in spec.variants:
        raise UsageError(f"unknown variant {wanted!r} for {spec.name}",
                         hint=f"variants of {spec.name}: {', '.join(spec.variants)}")
    order = [wanted] if wanted else _preference(spec)
    rejected: dict[str, list[str]] = {}
    unlocked: list[str] = []
    default = spec.default_variant()
    for key in order:
        # archs given explicitly are for GPUs elsewhere: this host's own GPUs do not choose the variant
        mine = driver_problems(spec, key, host) if archs else variant_problems(spec, key, host)
        problems = mine + arch_problems(spec, key, archs) + [
            f"{_label(h, i)}: {p}" for i, h in enumerate(also) for p in variant_problems(spec, key, h)]
        if problems:
            rejected[key] = problems
            continue
        if wanted:
            return key, "asked for with --variant", rejected
        if locked is not None and key not in locked:
            unlocked.append(key)
            continue
        here = (f"the {len(also)} host(s) given" if also else
                f"the archs {', '.join(a.text for a in archs)}" if archs else "this host")
        if key == default:
            why = (f"the default variant, and {here} can run it" if host.gpus or also or archs
                   else "the default variant (no GPU found to check it against)")
        elif default in unlocked:
            why = f"the default ({default}) has no lockfile; {key} is the best locked variant {here} can run"
        else:
            why = f"the default ({default}) cannot run on {here}"
        return key, why, rejected
    if unlocked:  # runs here, but nothing that runs here is locked: the plan blocks on the lock
        key = unlocked[0]
        return key, "the best variant for this host, but it has no lockfile (nor has any other that runs here)", rejected
    reasons = [f"{k}: {r}" for k, rs in rejected.items() for r in rs]
    where = "this host" if not also else "every host given"
    raise PlanRefused(f"no variant of {spec.name} can run on {where}" if not wanted else
                      f"variant {wanted} of {spec.name} cannot run on {where}", reasons,
                      hint=_refusal_hint(spec, host, wanted, list(archs)) if not also else _hosts_hint(
                          spec, order, wanted, list(archs), also))


def _preference(spec: TargetSpec) -> list[str]:
    """The default first, then the others from the newest CUDA down."""
    default = spec.default_variant()
    rest = sorted((k for k in spec.variants if k != default), key=lambda k: Dotted(spec.variants[k].cuda), reverse=True)
    return [default, *rest]


def _hosts_hint(spec: TargetSpec, order: list[str], wanted: str | None, archs: list[Dotted],
                also: Sequence[HostFacts]) -> str:
    """For several hosts: each one's own fix where no variant runs on it, else that none runs on all."""
    hints = [f"{_label(h, i)}: {_refusal_hint(spec, h, wanted, archs)}" for i, h in enumerate(also)
             if all(variant_problems(spec, k, h) for k in order)]
    return "; ".join(dict.fromkeys(hints)) or (
        "each host runs some variant, but no one variant runs on all of them: make one image per group of hosts "
        "(`provision fleet plan` groups them)")


def _refusal_hint(spec: TargetSpec, host: HostFacts, wanted: str | None, archs: list[Dotted]) -> str:
    """What would actually fix it: a driver newer than the host's, another GPU, another target;
    never a driver older than the one it has, never `--variant` when it was given."""
    ccs = sorted(set(archs) or set(host.compute_capabilities()))  # archs given: this host's GPUs do not count
    keys = [wanted] if wanted else list(spec.variants)
    top_variant_cc = max(Dotted(spec.variants[k].host.max_compute_capability) for k in keys)
    low_variant_cc = min(Dotted(spec.variants[k].host.min_compute_capability) for k in keys)
    if ccs and max(ccs) > top_variant_cc:
        return (f"{spec.name} pins builds with kernels up to {cc_arch(top_variant_cc)}; this GPU needs "
                f"{cc_arch(max(ccs))} (CUDA >= 12.8 and torch >= 2.7 for Blackwell). Use a GPU of compute "
                f"capability <= {top_variant_cc}, or a target or variant built for it (cu128 or newer)")
    if ccs and min(ccs) < low_variant_cc:
        return (f"this GPU ({cc_arch(min(ccs))}) is older than any build of {spec.name} supports (>= "
                f"{cc_arch(low_variant_cc)}): use a newer GPU")
    drv = Dotted(host.driver_version) if host.driver_version else None
    needs = []
    for k in keys:  # only a variant whose kernels fit every GPU (and arch) here is fixed by a driver
        tk = spec.cuda_toolkits.get(spec.variants[k].cuda)
        if tk is None or (not archs and gpu_problems(spec, k, host)) or arch_problems(spec, k, archs):
            continue
        floor = Dotted(min_driver_for(tk, host))
        if spec.variants[k].host.min_driver:
            floor = max(floor, Dotted(spec.variants[k].host.min_driver))
        needs.append((floor, k, spec.variants[k].cuda))
    newer = sorted(n for n in needs if drv is None or n[0] > drv)
    where = "the Windows NVIDIA driver (WSL2 uses it)" if host.wsl else "the NVIDIA driver"
    if not needs:
        gpus = ", ".join(f"{cc_arch(c)}" for c in ccs)
        return (f"no variant {'asked for ' if wanted else 'of ' + spec.name + ' '}carries kernels for every GPU "
                f"here ({gpus}) at once, and no driver update changes that: use GPUs that one variant covers")
    if newer:
        need, k, cuda = newer[0]
        more = "" if wanted else "; `provision plan --variant V` shows one variant's reasons"
        return f"update {where} to >= {need} (what {k}, CUDA {cuda}, needs){more}"
    return "see the reasons above: no driver update fixes them"
