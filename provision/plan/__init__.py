"""The planner: a pure function of (spec, host facts, options) -> Plan.

It decides, before anything is installed, everything the field notes had to learn by
failing: which CUDA build of torch the driver and the GPUs allow, which archs to compile
extensions for, where nvcc comes from, how many compile jobs fit in memory, and the exact
commands apply will run. No I/O here: same inputs, same plan.

    model.py      the Plan and what it is made of
    variants.py   driver and GPUs -> the variant
    toolchain.py  nvcc and the arch list
    jobs.py       compile jobs that fit in memory
    findings.py   blockers and warnings about the host
    steps.py      the commands apply runs
"""

from __future__ import annotations

from ..errors import PlanRefused
from ..host import HostFacts
from ..spec import LoadedSpec
from ..versions import Dotted, cc_arch
from .findings import driver_contradictions, driver_warnings, host_warnings, lock_findings, resource_blockers
from .jobs import build_memory_gb, plan_jobs
from .model import ExtensionPlan, Finding, NvccPlan, Plan, PlanOptions, Step
from .steps import app_dir, fill, plan_steps, source_dir, upstream_dir, upstream_name
from .toolchain import arch_findings, build_toolkit, format_arch_list, parse_arch_list, plan_nvcc, toolkit_for
from .variants import arch_problems, choose_variant, driver_max_cuda, variant_problems


def make_plan(loaded: LoadedSpec, host: HostFacts, opts: PlanOptions = PlanOptions()) -> Plan:
    spec = loaded.spec
    locks = opts.locks
    explicit = sorted({Dotted(a) for a in opts.arch_list}) if opts.arch_list is not None else None
    try:
        variant_key, why, rejected = choose_variant(spec, host, opts.variant, None if locks is None else set(locks),
                                                    explicit or (), opts.runs_on)
    except PlanRefused as e:  # refused from facts that disagree: that comes first
        for c in driver_contradictions(spec, host):
            e.reasons.insert(0, c.what)
            e.hint = f"{c.fix}; {e.hint}" if e.hint else c.fix
        raise
    variant = spec.variants[variant_key]
    data = opts.data_dir.rstrip("/")
    prefix = opts.prefix or f"{data}/envs/{spec.name}"
    archs = explicit if explicit is not None else host.compute_capabilities()
    lock = None if locks is None else locks.get(variant_key)
    # what the lock installs from a hashed prebuilt wheel (lock/prebuilt.py) is not built here
    prebuilt = set(lock.prebuilt) if lock is not None else set()
    exts = [e for e in spec.extensions_for(variant_key) if e.name not in prebuilt]
    nvcc, nvcc_findings = plan_nvcc(spec, variant, exts, host, archs, data, lock, locks is not None)
    arch_list = format_arch_list(archs, opts.ptx)
    blockers = (lock_findings(spec, variant_key, locks) + nvcc_findings + arch_findings(spec, nvcc, archs)
                + resource_blockers(spec, host, elsewhere=explicit is not None))
    warnings = (driver_contradictions(spec, host) + host_warnings(spec, host, nvcc)
                + driver_warnings(spec, variant_key, host, nvcc))
    if explicit is not None:
        warnings.append(Finding(what=f"built for the compute capabilities given ({arch_list or 'none'}), not for "
                                     "this machine's GPUs: the GPU, VRAM and RAM the app needs are checked where it runs",
                                fix=f"run `provision verify {spec.name}` on each machine with the GPU"))
    ext_plans = [ExtensionPlan(name=e.name, build="prebuilt", max_jobs=0, peak_gb=0.0)
                 for e in spec.extensions_for(variant_key) if e.name in prebuilt]
    for e in exts:
        jobs, finding = plan_jobs(e, host)
        ext_plans.append(ExtensionPlan(name=e.name, build=e.build, max_jobs=jobs,
                                       peak_gb=round(jobs * e.peak_job_memory_gb, 1)))
        if finding:
            warnings.append(finding)
    subst = {"prefix": prefix, "data": data, "arch_list": arch_list,
             "arch_digits": ";".join(cc_arch(a).removeprefix("sm_") for a in archs)}
    env = {k: fill(v, subst) for k, v in spec.env_values().items()}
    subst.update(env)
    built = [p for p in ext_plans if p.build != "prebuilt"]
    steps = plan_steps(loaded, variant_key, exts, built, nvcc, arch_list, prefix, data, env, subst, archs)
    return Plan(
        target=spec.name, spec_digest=loaded.digest, host_label=host.label, variant=variant_key,
        variant_reason=why, cuda=variant.cuda, torch=spec.torch_version(variant_key), rejected_variants=rejected,
        gpus=[f"{g.name} ({cc_arch(Dotted(g.compute_capability))}, {g.memory_gb:g} GB)" for g in host.gpus],
        arch_list=[a.text for a in archs], torch_cuda_arch_list=arch_list, nvcc=nvcc, extensions=ext_plans,
        prefix=prefix, data_dir=data, env=env, steps=steps, blockers=blockers, warnings=warnings)


__all__ = ["ExtensionPlan", "Finding", "NvccPlan", "Plan", "PlanOptions", "Step", "app_dir", "arch_problems",
           "build_memory_gb", "build_toolkit", "choose_variant", "driver_max_cuda", "fill", "format_arch_list",
           "make_plan", "parse_arch_list", "source_dir", "toolkit_for", "upstream_dir", "upstream_name",
           "variant_problems"]
