"""The planner: a pure function of (spec, host facts, options) -> Plan.

It decides, before anything is installed, everything the field notes had to learn by
failing: which CUDA build of torch the driver and the GPUs allow, which archs to compile
extensions for, where nvcc comes from, how many compile jobs fit in memory, and the exact
commands apply will run. No I/O here: same inputs, same plan.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from .diagnose import LTO_FIX
from .errors import PlanRefused, UsageError
from .host import HostFacts, Nvcc
from .spec import CudaToolkit, Extension, SdistSource, TargetSpec, UpstreamPathSource, Variant
from .specload import LoadedSpec
from .versions import Dotted, cc_arch

# Memory held back from compile jobs: the OS, the desktop, the compiler driver itself.
RESERVE_GB = 2.0
RESERVE_FRACTION = 0.10
SWAP_SHARE = 0.25  # swap keeps a build alive at a peak but is too slow to plan on


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Finding(_Model):
    """A blocker or a warning: what, and the one-line fix."""

    what: str
    fix: str


class NvccPlan(_Model):
    needed: bool
    source: str  # system | conda | none
    version: str | None = None
    path: str | None = None
    cuda_home: str | None = None
    conda_channel: str | None = None
    conda_packages: list[str] = Field(default_factory=list)
    reason: str


class ExtensionPlan(_Model):
    name: str
    build: str
    max_jobs: int
    peak_gb: float  # planned peak: jobs x per-job memory


class Step(_Model):
    id: str
    title: str
    command: str
    env: dict[str, str] = Field(default_factory=dict)


class Plan(_Model):
    target: str
    spec_digest: str
    host_label: str | None
    variant: str
    variant_reason: str
    cuda: str
    torch: str | None
    rejected_variants: dict[str, list[str]]
    gpus: list[str]
    arch_list: list[str]
    torch_cuda_arch_list: str
    nvcc: NvccPlan
    extensions: list[ExtensionPlan]
    prefix: str
    data_dir: str
    env: dict[str, str]
    steps: list[Step]
    blockers: list[Finding]
    warnings: list[Finding]

    @property
    def ok(self) -> bool:
        return not self.blockers


@dataclass(frozen=True)
class PlanOptions:
    variant: str | None = None
    ptx: bool = False  # add +PTX to the highest arch, for GPUs newer than any planned
    prefix: str | None = None  # default: {data}/envs/{target}
    data_dir: str = "~/.local/share/provision"


# --- driver and variant ------------------------------------------------------------------


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


# --- arch list and nvcc --------------------------------------------------------------------


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


# --- memory ---------------------------------------------------------------------------------


def build_memory_gb(ram_gb: float, swap_gb: float) -> float:
    """Memory compile jobs may plan on: RAM less what the system keeps, plus a share of swap."""
    reserve = RESERVE_GB + RESERVE_FRACTION * ram_gb
    return max(ram_gb - reserve, 0.0) + SWAP_SHARE * swap_gb


def plan_jobs(ext: Extension, host: HostFacts) -> tuple[int, Finding | None]:
    budget = build_memory_gb(host.ram_gb, host.swap_gb)
    fit = int(budget // ext.peak_job_memory_gb)
    jobs = max(1, min(fit, host.cpu_count))
    if fit >= 1:
        return jobs, None
    need = ext.peak_job_memory_gb + RESERVE_GB + RESERVE_FRACTION * host.ram_gb
    fix = (f"give the WSL VM more memory: `provision wslconfig` (memory >= {need:.0f}GB), then `wsl --shutdown`"
           if host.wsl else f"add swap or memory: one job needs about {ext.peak_job_memory_gb} GB on top of the OS")
    return 1, Finding(what=f"{ext.name}: even one compile job ({ext.peak_job_memory_gb} GB) does not fit in "
                           f"{host.ram_gb} GB RAM + {host.swap_gb} GB swap: the build may be OOM-killed (exit 137)",
                      fix=fix)


# --- the plan -------------------------------------------------------------------------------


def make_plan(loaded: LoadedSpec, host: HostFacts, opts: PlanOptions = PlanOptions()) -> Plan:
    spec = loaded.spec
    variant_key, why, rejected = choose_variant(spec, host, opts.variant)
    variant = spec.variants[variant_key]
    data = opts.data_dir.rstrip("/")
    prefix = opts.prefix or f"{data}/envs/{spec.name}"
    archs = host.compute_capabilities()
    exts = spec.extensions_for(variant_key)
    nvcc, nvcc_findings = plan_nvcc(spec, variant, exts, host, archs, prefix)
    arch_list = format_arch_list(archs, opts.ptx)
    blockers = nvcc_findings + arch_findings(spec, nvcc, archs) + resource_blockers(spec, host)
    warnings = host_warnings(spec, host, nvcc)
    ext_plans = []
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
    steps = plan_steps(loaded, variant_key, exts, ext_plans, nvcc, arch_list, prefix, data, env, subst)
    return Plan(
        target=spec.name, spec_digest=loaded.digest, host_label=host.label, variant=variant_key,
        variant_reason=why, cuda=variant.cuda, torch=spec.torch_version(variant_key), rejected_variants=rejected,
        gpus=[f"{g.name} ({cc_arch(Dotted(g.compute_capability))}, {g.memory_gb:g} GB)" for g in host.gpus],
        arch_list=[a.text for a in archs], torch_cuda_arch_list=arch_list, nvcc=nvcc, extensions=ext_plans,
        prefix=prefix, data_dir=data, env=env, steps=steps, blockers=blockers, warnings=warnings)


def source_dir(spec: TargetSpec, ext: Extension, data: str) -> str:
    """Where an extension's source is checked out (or its sdist saved) under the data dir."""
    src = ext.source
    if isinstance(src, UpstreamPathSource):
        return f"{data}/src/{spec.name}-upstream/{src.upstream_path}"
    if isinstance(src, SdistSource):
        return f"{data}/src/{src.sdist.rsplit('/', 1)[-1]}"
    base = f"{data}/src/{ext.name}"
    return f"{base}/{src.subdirectory}" if src.subdirectory else base


def fill(text: str, subst: dict[str, str]) -> str:
    """Replace each {key} of `subst` in `text`; other braces stay as they are."""
    for k, v in subst.items():
        text = text.replace("{" + k + "}", v)
    return text


def resource_blockers(spec: TargetSpec, host: HostFacts) -> list[Finding]:
    r = spec.resources
    out: list[Finding] = []
    if not host.gpus:
        why = f" ({host.gpu_error})" if host.gpu_error else ""
        out.append(Finding(what=f"no NVIDIA GPU found{why}",
                           fix=f"{spec.name} needs an NVIDIA GPU with >= {r.vram_gb:g} GB; on WSL2 install the "
                               "Windows NVIDIA driver (not a Linux one) and check `nvidia-smi`"))
    elif max(g.memory_gb for g in host.gpus) + 0.5 < r.vram_gb:
        best = max(host.gpus, key=lambda g: g.memory_gb)
        out.append(Finding(what=f"{best.name} has {best.memory_gb:g} GB; {spec.name} needs {r.vram_gb:g} GB of VRAM",
                           fix="use a GPU with more memory"))
    if host.ram_gb + host.swap_gb < r.ram_gb:
        fix = ("raise `memory` (and `swap`) in .wslconfig: `provision wslconfig " + spec.name + "`" if host.wsl
               else "add swap or memory")
        out.append(Finding(what=f"{host.ram_gb:g} GB RAM + {host.swap_gb:g} GB swap < {r.ram_gb:g} GB {spec.name} needs",
                           fix=fix))
    free = host.smallest_disk_free_gb()
    if free is not None and free < r.disk_gb:
        out.append(Finding(what=f"{free:g} GB free disk < {r.disk_gb:g} GB {spec.name} needs",
                           fix="free space or pass --prefix / --data-dir on a larger disk"))
    return out


def host_warnings(spec: TargetSpec, host: HostFacts, nvcc: NvccPlan) -> list[Finding]:
    out: list[Finding] = []
    if host.proxy_set and not host.no_proxy_covers_localhost():
        out.append(Finding(what="a proxy is set but NO_PROXY does not cover localhost and 127.0.0.1: Gradio "
                                "says 'When localhost is not accessible, a shareable link must be created'",
                           fix="export NO_PROXY=localhost,127.0.0.1,::1 no_proxy=localhost,127.0.0.1,::1"))
    if spec.app.port in host.ports_in_use:
        var = spec.app.port_env or "the app's --port"
        out.append(Finding(what=f"port {spec.app.port} is in use ('Cannot find empty port')",
                           fix=f"stop what listens there (`ss -ltnp | grep :{spec.app.port}`) or set {var} to another port"))
    if host.ram_gb + host.swap_gb >= spec.resources.ram_gb and host.ram_gb < spec.resources.ram_gb:
        out.append(Finding(what=f"{host.ram_gb:g} GB RAM < {spec.resources.ram_gb:g} GB: the app will lean on swap",
                           fix="add memory" + (" (.wslconfig `memory`)" if host.wsl else "")))
    if spec.extensions and host.cxx and host.cxx.lto is False:
        out.append(Finding(what=f"{host.cxx.path} has no lto-wrapper (an incomplete gcc): a build that links with LTO "
                                "(torchmcubes: CMake INTERPROCEDURAL_OPTIMIZATION) fails with 'could not run lto-wrapper'",
                           fix=LTO_FIX))
    if nvcc.needed and nvcc.version and host.cxx and host.cxx.name == "gcc":
        tk = toolkit_for(spec, nvcc.version)
        if tk and Dotted(host.cxx.version).major > Dotted(tk.max_gcc).major:
            out.append(Finding(what=f"gcc {host.cxx.version} is newer than nvcc {nvcc.version} accepts "
                                    f"(<= {tk.max_gcc}): 'unsupported GNU version'",
                               fix=f"install gcc-{tk.max_gcc} g++-{tk.max_gcc} and set NVCC_CCBIN=/usr/bin/g++-{tk.max_gcc}"))
    return out


def plan_steps(loaded: LoadedSpec, variant: str, exts: list[Extension], ext_plans: list[ExtensionPlan],
               nvcc: NvccPlan, arch_list: str, prefix: str, data: str, env: dict[str, str],
               subst: dict[str, str]) -> list[Step]:
    spec = loaded.spec
    q = shlex.quote
    py = f"{prefix}/bin/python"
    compiled = f"{prefix}/share/provision/compiled"  # per env: its shims and activation name this prefix
    constraints = f"{prefix}/share/provision/constraints.txt"
    steps = [
        Step(id="compile", title="compile the lockfile, hashed requirements, activation and shims for this host",
             command=f"provision compile {spec.name} --variant {variant} --out {q(compiled)}"),
        Step(id="sources", title="fetch the extension sources at their pinned commits (bundle, else git)",
             command=f"git clone URL {data}/src/NAME && git -C {data}/src/NAME checkout COMMIT   # per source"),
        Step(id="create-env", title=f"create the environment (Python {spec.python}) from the lockfile",
             command=f"py-rattler: install the conda packages of {compiled}/conda-lock.yml into {q(prefix)}"
                     + (" (with its cuda-toolkit category)" if nvcc.source == "conda" else "")),
    ]
    if nvcc.source == "conda":
        steps.append(Step(id="cuda-toolkit", title=f"nvcc {nvcc.version} from conda (the host's does not fit): "
                                                       "the lockfile's cuda-toolkit category, installed with the env",
                          command=" ".join(q(p) for p in nvcc.conda_packages)))
    steps.append(Step(id="pip-install", title="install the locked pip packages, hashes enforced",
                      command=f"{py} -m pip install --no-deps --require-hashes -r {compiled}/requirements.txt"))
    torch = spec.torch_version(variant)
    steps.append(Step(id="torch-guard", title=f"pin torch {torch} and every installed package for later steps",
                      command=f"{py} -m pip list > {constraints} (as name==version); check torch is {torch}; "
                              "after every build, check nothing pinned moved"))
    for e, ep in zip(exts, ext_plans):
        # MAX_JOBS is torch's (setup.py builds); CMake builds (scikit-build-core: torchmcubes) read
        # CMAKE_BUILD_PARALLEL_LEVEL instead, and without it ninja runs one job per core
        build_env = {"TORCH_CUDA_ARCH_LIST": arch_list, "MAX_JOBS": str(ep.max_jobs),
                     "CMAKE_BUILD_PARALLEL_LEVEL": str(ep.max_jobs)}
        # the env's bin first, as when it is activated: torch runs `ninja` from PATH, and without
        # it compiles the sources one by one, whatever MAX_JOBS says
        if nvcc.cuda_home:
            build_env["CUDA_HOME"] = nvcc.cuda_home
        dirs = [f"{prefix}/bin", *([f"{nvcc.cuda_home}/bin"] if nvcc.cuda_home else []), "$PATH"]
        build_env["PATH"] = ":".join(dict.fromkeys(dirs))  # conda's nvcc lives in the env's own bin
        build_env.update({k: fill(v, subst) for k, v in e.env.items()})
        src = source_dir(spec, e, data)
        if e.build == "wheel":
            cmd = (f"uv build --wheel --no-build-isolation --python {py} --out-dir {data}/wheels/{e.name} {src} && "
                   f"{py} -m pip install --no-deps --no-index -c {constraints} {data}/wheels/{e.name}/*.whl")
        else:
            # built where it stays: a directory inside the env (never /tmp), named by a .pth shim
            dest = f"{prefix}/share/provision/ext/{e.name}"
            cmd = (f"mkdir -p {dest} && cp -a {src}/. {dest}/ && cd {dest} && {py} setup.py build_ext --inplace && "
                   f"echo {dest} > $({py} -c 'import sysconfig; print(sysconfig.get_path(\"purelib\"))')"
                   f"/provision-{e.name}.pth")
        steps.append(Step(id=f"build-{e.name}", title=f"build {e.name} ({e.build}, {ep.max_jobs} jobs, archs {arch_list or 'none'})",
                          command=cmd, env=build_env))
    steps.append(Step(id="activation", title="install the activate.d / deactivate.d scripts with the spec's variables",
                      command=f"cp -r {compiled}/etc {q(prefix)}/", env=env))
    if spec.weights.huggingface or spec.weights.urls or spec.weights.torch_hub:
        steps.append(Step(id="weights", title="fetch and place the weights",
                          command=f"provision mirror {spec.name} --to {data}/bundles/{spec.name} && "
                                  f"provision seed {data}/bundles/{spec.name}"))
    steps.append(Step(id="verify", title="run the post-install checklist",
                      command=f"provision verify {spec.name} --prefix {prefix}"))
    return steps
