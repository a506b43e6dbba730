"""Blockers and warnings about the host itself: GPU, memory, disk, proxy, port, compilers."""

from __future__ import annotations

from collections.abc import Mapping

from ..host import HostFacts
from ..host.facts import LTO_FIX
from ..lock.facts import LockFacts
from ..lock.inputs import lock_inputs
from ..spec import TargetSpec
from ..versions import Dotted
from .model import Finding, NvccPlan
from .toolchain import toolkit_for
from .variants import driver_max_cuda, min_driver_for


def lock_findings(spec: TargetSpec, variant: str, locks: Mapping[str, LockFacts] | None) -> list[Finding]:
    """Plan and lock agree: a variant without a current lockfile is a blocker here, never a
    surprise at apply's first step. The fix names the lock to make and what it must reach."""
    if locks is None or variant in locks:
        return []
    needs = [ix.url for ix in lock_inputs(spec, variant).indexes]
    where = (f"it needs {', '.join(needs)} (besides PyPI): run it on a machine that reaches "
             f"{'them' if len(needs) > 1 else 'it'}, or record those wheels with --wheel-facts"
             if needs else "it needs PyPI only: any machine that reaches PyPI can run it")
    return [Finding(what=f"no current lockfile for {spec.name}/{variant} (apply installs from a lock only)",
                    fix=f"provision lock {spec.name} --variant {variant} --channel-snapshot channels; {where}")]


def driver_warnings(spec: TargetSpec, variant: str, host: HostFacts, nvcc: NvccPlan) -> list[Finding]:
    """What the driver check could not prove, said instead of passed silently."""
    out: list[Finding] = []
    if host.gpus and not (host.driver_version or host.driver_cuda):
        out.append(Finding(what=f"the driver version is unknown: nothing checked that it runs CUDA "
                                f"{spec.variants[variant].cuda}", fix="check `nvidia-smi`; on WSL2 "
                           "update the Windows driver" if host.wsl else "check `nvidia-smi`"))
    if not (nvcc.needed and nvcc.version and host.driver_version):
        return out
    max_cuda = driver_max_cuda(spec, host)  # a system nvcc and the lock's toolkit are judged alike
    tk = spec.cuda_toolkits.get(Dotted(nvcc.version).major_minor().text)
    need = min_driver_for(tk, host) if tk is not None else None
    newer = (max_cuda is not None and Dotted(nvcc.version).major_minor() > max_cuda) or (
        need is not None and Dotted(host.driver_version) < Dotted(need))
    if newer:
        out.append(Finding(what=f"extensions are built with nvcc {nvcc.version}, newer than driver "
                                f"{host.driver_version} (which ships CUDA <= {max_cuda or host.driver_cuda or '?'}): "
                                "they run through CUDA minor-version compatibility (their SASS loads; PTX for a "
                                "newer GPU would not JIT)",
                           fix=f"update the driver to >= {need} to drop the caveat" if need else
                               f"update the driver to one that ships CUDA >= {Dotted(nvcc.version).major_minor().text}"))
    return out


BRANCH_SLACK = 5  # driver major numbers within one release branch (Windows 536 is Linux 535)


def driver_contradictions(spec: TargetSpec, host: HostFacts) -> list[Finding]:
    """A host file whose driver version and driver CUDA disagree by a whole driver branch (edited
    by hand, or two machines' facts pasted together). Said, not refused: the listed minimum is the
    driver a toolkit ships with, and a branch's early drivers report its CUDA before it (Linux
    550.40 says 12.4, whose toolkit lists 550.54; Windows numbers run one ahead, 536.25 for 535):
    only a gap of more than BRANCH_SLACK in the driver's major number counts, and the plan keeps
    driver_cuda, which is what nvidia-smi reports."""
    if not (host.driver_version and host.driver_cuda):
        return []
    drv, said = Dotted(host.driver_version), Dotted(host.driver_cuda).major_minor()
    kind = "Windows driver" if host.wsl else "driver"
    floor = {Dotted(v): Dotted(min_driver_for(tk, host)) for v, tk in spec.cuda_toolkits.items()}
    need = floor.get(said)
    runs = [v for v, d in floor.items() if d.major + BRANCH_SLACK < drv.major]
    if need is not None and drv.major + BRANCH_SLACK < need.major:
        what = f"CUDA {said.text} needs {kind} >= {need.text}"
    elif runs and max(runs) > said:
        what = f"{kind} {drv.text} runs CUDA {max(runs).text}"
    else:
        return []
    return [Finding(what=f"the host facts disagree: driver_version {drv.text} with driver_cuda {said.text}, but "
                         f"{what}; planned from driver_cuda", fix="check both in nvidia-smi's header on that machine "
                                                                  "and save the facts again (`provision doctor --save "
                                                                  "host.json`)")]


def resource_blockers(spec: TargetSpec, host: HostFacts, elsewhere: bool = False) -> list[Finding]:
    """What this host lacks to run the app; `elsewhere`: it only builds for GPUs of other machines
    (an explicit arch list), so only the disk the build fills is its own concern."""
    r = spec.resources
    out: list[Finding] = []
    if elsewhere:
        return _disk(spec, host)
    if host.os != "linux":  # a host file saved by a native Windows or macOS Python
        out.append(Finding(what=f"this host runs {host.os}; {spec.name}'s environment is built for Linux (natively or "
                                "in WSL2)", fix="on Windows run provision inside WSL2 (`wsl --install`, then "
                                                "`provision doctor --save host.json` there)"))
    if not host.gpus:
        why = f" ({host.gpu_error})" if host.gpu_error else ""
        driver = ("install the Windows NVIDIA driver (not a Linux one) and check `nvidia-smi` in WSL" if host.wsl
                  else "install the NVIDIA driver and check `nvidia-smi`")
        out.append(Finding(what=f"no NVIDIA GPU found{why}",
                           fix=f"{spec.name} needs an NVIDIA GPU with >= {r.vram_gb:g} GB; {driver}"))
    elif max(g.memory_gb for g in host.gpus) + 0.5 < r.vram_gb:
        best = max(host.gpus, key=lambda g: g.memory_gb)
        out.append(Finding(what=f"{best.name} has {best.memory_gb:g} GB; {spec.name} needs {r.vram_gb:g} GB of VRAM",
                           fix="use a GPU with more memory"))
    if host.ram_gb + host.swap_gb < r.ram_gb:
        fix = ("raise `memory` (and `swap`) in .wslconfig: `provision wslconfig " + spec.name + "`" if host.wsl
               else "add swap or memory")
        out.append(Finding(what=f"{host.ram_gb:g} GB RAM + {host.swap_gb:g} GB swap < {r.ram_gb:g} GB {spec.name} needs",
                           fix=fix))
    return out + _disk(spec, host)


def _disk(spec: TargetSpec, host: HostFacts) -> list[Finding]:
    free = host.smallest_disk_free_gb()
    if free is not None and free < spec.resources.disk_gb:
        return [Finding(what=f"{free:g} GB free disk < {spec.resources.disk_gb:g} GB {spec.name} needs",
                        fix="free space or pass --prefix / --data-dir on a larger disk")]
    return []


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
    if nvcc.needed and nvcc.version and nvcc.cxx is None and host.cxx and host.cxx.name == "gcc":
        tk = toolkit_for(spec, nvcc.version)
        if tk and Dotted(host.cxx.version).major > Dotted(tk.max_gcc).major:
            out.append(Finding(what=f"gcc {host.cxx.version} is newer than nvcc {nvcc.version} accepts "
                                    f"(<= {tk.max_gcc}): 'unsupported GNU version'",
                               fix=f"install gcc-{tk.max_gcc} g++-{tk.max_gcc} and export CC=/usr/bin/gcc-{tk.max_gcc} "
                                   f"CXX=/usr/bin/g++-{tk.max_gcc} (torch hands CC to nvcc as -ccbin)"))
    return out
