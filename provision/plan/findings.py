"""Blockers and warnings about the host itself: GPU, memory, disk, proxy, port, compilers."""

from __future__ import annotations

from ..host import HostFacts
from ..host.facts import LTO_FIX
from ..spec import TargetSpec
from ..versions import Dotted
from .model import Finding, NvccPlan
from .toolchain import toolkit_for


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
