"""The doctor: host facts judged as ok / warn / fail, each with a one-line fix.

Pure: it reads HostFacts (and, with a target, the plan for it) and returns findings.
The CLI probes, calls `diagnose`, prints and picks the exit code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import PlanRefused
from ..host import HostFacts
from ..host.facts import LTO_FIX
from ..plan import PlanOptions, driver_max_cuda, make_plan
from ..spec import LoadedSpec
from ..versions import Dotted, cc_arch

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def diagnose(host: HostFacts, loaded: LoadedSpec | None = None, opts: PlanOptions = PlanOptions()) -> list[Check]:
    out: list[Check] = []
    where = "WSL2" + (f" on Windows {host.windows_build}" if host.windows_build else "") if host.wsl else host.os
    out.append(Check("system", OK, f"{host.distro or host.os} ({where}), {host.arch}, {host.cpu_count} CPUs, "
                                   f"{host.ram_gb:g} GB RAM, {host.swap_gb:g} GB swap"))
    out += _gpu_checks(host, loaded)
    out += _toolchain_checks(host)
    out += _network_checks(host, loaded)
    if loaded is not None:
        out += _target_checks(host, loaded, opts)
    return out


def _gpu_checks(host: HostFacts, loaded: LoadedSpec | None) -> list[Check]:
    if not host.gpus:
        fix = ("install the NVIDIA driver on Windows (WSL uses it through /usr/lib/wsl/lib)" if host.wsl
               else "install the NVIDIA driver; check `nvidia-smi`")
        return [Check("gpu", FAIL, f"no NVIDIA GPU found ({host.gpu_error or 'nothing reported'})", fix)]
    out = [Check("gpu", OK, f"GPU {g.index}: {g.name}, compute capability {g.compute_capability} "
                            f"({cc_arch(Dotted(g.compute_capability))}), {g.memory_gb:g} GB (via {host.gpu_source})")
           for g in host.gpus]
    spec = loaded.spec if loaded else None
    max_cuda = driver_max_cuda(spec, host) if spec else (Dotted(host.driver_cuda) if host.driver_cuda else None)
    detail = f"driver {host.driver_version or 'unknown'} supports CUDA <= {max_cuda or 'unknown'}"
    out.append(Check("driver", OK if host.driver_version else WARN, detail,
                     "" if host.driver_version else "could not read the driver version"))
    return out


def _toolchain_checks(host: HostFacts) -> list[Check]:
    out = []
    if host.nvcc:
        listed = ", ".join(f"{n.version} at {n.path}" + (" (on PATH)" if n.on_path else "") for n in host.nvcc)
        out.append(Check("nvcc", OK, listed))
    else:
        out.append(Check("nvcc", WARN, "no nvcc found on PATH, CUDA_HOME or /usr/local/cuda*",
                         "nothing to do: `provision apply` installs the lockfile's CUDA toolkit, of torch's CUDA major"))
    if host.cxx and host.cxx.lto is False:
        out.append(Check("c++", WARN, f"{host.cxx.name} {host.cxx.version} at {host.cxx.path}, without lto-wrapper",
                         f"builds that link with LTO fail ('could not run lto-wrapper'): {LTO_FIX}"))
    elif host.cxx:
        out.append(Check("c++", OK, f"{host.cxx.name} {host.cxx.version} at {host.cxx.path}"))
    else:
        out.append(Check("c++", FAIL, "no C++ compiler found (extensions cannot be built)",
                         "sudo apt install build-essential"))
    tools = ", ".join(f"{k} ({v})" for k, v in host.conda.items()) or "none"
    pys = ", ".join(f"{v} ({k})" for k, v in host.pythons.items()) or "none"
    out.append(Check("conda", OK, f"conda tools: {tools}; python: {pys}"))
    return out


def _network_checks(host: HostFacts, loaded: LoadedSpec | None) -> list[Check]:
    out = []
    if host.proxy_set:
        shown = ", ".join(f"{k}={v}" for k, v in host.proxies.items())
        if host.no_proxy_covers_localhost():
            out.append(Check("proxy", OK, f"{shown}; NO_PROXY covers localhost"))
        else:
            out.append(Check("proxy", WARN, f"{shown}; NO_PROXY does not cover localhost and 127.0.0.1 "
                                            "(Gradio: 'When localhost is not accessible...')",
                             "export NO_PROXY=localhost,127.0.0.1,::1 no_proxy=localhost,127.0.0.1,::1"))
    else:
        out.append(Check("proxy", OK, "no proxy variables set"))
    port = loaded.spec.app.port if loaded else 7860
    if port in host.ports_in_use:
        out.append(Check("port", WARN, f"port {port} is in use",
                         f"free it (`ss -ltnp | grep :{port}`) or give the app another port"))
    else:
        out.append(Check("port", OK, f"port {port} is free"))
    return out


def _target_checks(host: HostFacts, loaded: LoadedSpec, opts: PlanOptions) -> list[Check]:
    name = loaded.name
    try:
        plan = make_plan(loaded, host, opts)
    except PlanRefused as e:
        return [Check(f"{name}: variant", FAIL, f"{e.message}: " + "; ".join(e.reasons), e.hint or "")]
    out = [Check(f"{name}: variant", OK, f"{plan.variant} (CUDA {plan.cuda}, torch {plan.torch}): {plan.variant_reason}")]
    if plan.nvcc.needed:
        status = OK if plan.nvcc.source in ("system", "toolkit") else FAIL
        out.append(Check(f"{name}: nvcc", status, plan.nvcc.reason,
                         "" if status == OK else "relock with the CUDA toolkit, or install an nvcc of torch's CUDA major"))
    r = loaded.spec.resources
    out.append(Check(f"{name}: resources", OK,
                     f"needs {r.ram_gb:g} GB RAM, {r.swap_gb:g} GB swap, {r.disk_gb:g} GB disk, {r.vram_gb:g} GB VRAM"))
    out += [Check(f"{name}: blocker", FAIL, b.what, b.fix) for b in plan.blockers]
    out += [Check(f"{name}: warning", WARN, w.what, w.fix) for w in plan.warnings
            if "proxy" not in w.what and "port" not in w.what]  # already reported above
    return out


def exit_code(checks: list[Check], strict: bool) -> int:
    if any(c.status == FAIL for c in checks):
        return 2
    if strict and any(c.status == WARN for c in checks):
        return 1
    return 0
