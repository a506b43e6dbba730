"""Gather HostFacts on this machine. The only module of the host stage that has effects.

Every source is optional: a missing nvidia-smi, no NVML, no nvcc or a sandbox without
/proc/meminfo each leave a gap in the record, never a traceback. NVML (nvidia-ml-py) is
asked first; nvidia-smi (also /usr/lib/wsl/lib/nvidia-smi on WSL) is the fallback.
"""

from __future__ import annotations

import glob
import os
import platform
import re
import shutil
import socket
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from pydantic import ValidationError

from ..ids import CONTROL
from ..secrets import redact
from .facts import GPU, Compiler, HostFacts, Nvcc

Runner = Callable[[list[str]], "str | None"]

WSL_LIB = "/usr/lib/wsl/lib"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def run_command(argv: list[str], timeout: float = 10.0) -> str | None:
    """stdout of a command, or None if it is missing, fails or hangs."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def probe(paths: Mapping[str, Path] | None = None, ports: tuple[int, ...] = (7860,),
          env: Mapping[str, str] | None = None, run: Runner = run_command) -> HostFacts:
    env = dict(os.environ if env is None else env)
    mem = read_meminfo()
    osr = read_os_release()
    kernel = platform.release()
    wsl = is_wsl(kernel)
    gpus, driver, driver_cuda, source, gpu_error = probe_gpus(run, wsl)
    return _facts(
        os=platform.system().lower(),
        distro=_clean(osr),
        kernel=_clean(kernel),
        arch=platform.machine(),
        home=os.path.expanduser("~"),
        data_dir=str((paths or {}).get("data")) if (paths or {}).get("data") else None,
        wsl=wsl,
        windows_build=windows_build(run) if wsl else None,
        glibc=glibc_version(),
        cpu_count=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
        ram_gb=round(mem.get("MemTotal", 0) / 2**20, 1) or 0.1,
        swap_gb=round(mem.get("SwapTotal", 0) / 2**20, 1),
        disk_free_gb={str(p): free_gb(p) for p in (paths or {}).values()},
        driver_version=driver,
        driver_cuda=driver_cuda,
        gpus=gpus,
        gpu_source=source,
        gpu_error=gpu_error,
        nvcc=find_nvcc(env, run),
        cxx=find_cxx(run, env),
        conda={t: p for t in ("conda", "mamba", "micromamba") if (p := shutil.which(t))},
        pythons=find_pythons(run),
        proxies=mask_proxies(env),
        no_proxy=_clean(env.get("NO_PROXY") or env.get("no_proxy")),
        ports_in_use=[p for p in ports if not port_free(p)],
    )


def _facts(**fields: object) -> HostFacts:
    """HostFacts from what the machine said; a field it answered with nonsense is left out (with
    its default), never a traceback: a strange `uname -m` must not stop `provision doctor`."""
    for _ in range(len(fields)):
        try:
            return HostFacts(**fields)  # type: ignore[arg-type]
        except ValidationError as e:
            bad = {str(err["loc"][0]) for err in e.errors() if err["loc"]}
            defaults = {k: f.get_default(call_default_factory=True) for k, f in HostFacts.model_fields.items()}
            for k in bad:
                fields[k] = defaults.get(k)
            fields["gpu_error"] = (f"{fields.get('gpu_error') or ''} (unreadable: {', '.join(sorted(bad))})").strip()
    return HostFacts(**fields)  # type: ignore[arg-type]


# --- memory, OS --------------------------------------------------------------------------


def read_meminfo(path: str = "/proc/meminfo") -> dict[str, int]:
    """kB values of /proc/meminfo."""
    out: dict[str, int] = {}
    try:
        for line in Path(path).read_text().splitlines():
            m = re.match(r"^(\w+):\s+(\d+)", line)
            if m:
                out[m.group(1)] = int(m.group(2))
    except OSError:
        pass
    return out


def read_os_release(path: str = "/etc/os-release") -> str | None:
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', text, re.M)
    return m.group(1) if m else None


def is_wsl(kernel: str) -> bool:
    return "microsoft" in kernel.lower() or os.path.exists("/proc/sys/fs/binfmt_misc/WSLInterop")


def windows_build(run: Runner) -> str | None:
    out = run(["cmd.exe", "/c", "ver"])
    m = re.search(r"\[Version ([\d.]+)\]", out or "")
    return m.group(1) if m else None


def glibc_version() -> str | None:
    lib, ver = platform.libc_ver()
    return ver if lib == "glibc" and ver else None


def free_gb(path: Path) -> float:
    """Free space where `path` is or would be created (its nearest existing parent)."""
    p = Path(path).expanduser()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return round(shutil.disk_usage(p).free / 1e9, 1)
    except OSError:
        return 0.0


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


# --- GPUs --------------------------------------------------------------------------------


def probe_gpus(run: Runner, wsl: bool) -> tuple[list[GPU], str | None, str | None, str, str | None]:
    """(gpus, driver version, driver CUDA, source, error) from NVML, else nvidia-smi."""
    try:
        gpus, driver, cuda = _nvml()
        return gpus, driver, cuda, "nvml", None
    except Exception as e:  # noqa: BLE001 - NVML raises its own error types, or ImportError/OSError
        nvml_error = f"NVML: {e}"
    smi = shutil.which("nvidia-smi") or (f"{WSL_LIB}/nvidia-smi" if wsl and os.path.exists(f"{WSL_LIB}/nvidia-smi") else None)
    if smi:
        query = run([smi, "--query-gpu=index,name,compute_cap,memory.total,driver_version",
                     "--format=csv,noheader,nounits"])
        header = run([smi])
        if query:
            gpus, driver = parse_smi_query(query)
            return gpus, driver, parse_smi_cuda(header or ""), "nvidia-smi", None
        nvml_error += "; nvidia-smi failed"
    else:
        nvml_error += "; nvidia-smi not found"
    return [], None, None, "none", nvml_error


def _nvml() -> tuple[list[GPU], str, str | None]:
    import pynvml  # nvidia-ml-py; lazy: only doctor needs it

    pynvml.nvmlInit()
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        try:
            v = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        except Exception:  # noqa: BLE001 - older drivers lack _v2
            v = pynvml.nvmlSystemGetCudaDriverVersion()
        cuda = f"{v // 1000}.{(v % 1000) // 10}" if v else None
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(h)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h).total
            gpus.append(GPU(index=i, name=_text(pynvml.nvmlDeviceGetName(h)),
                            compute_capability=f"{major}.{minor}", memory_gb=round(mem / 2**30, 1)))
        return gpus, driver, cuda
    finally:
        pynvml.nvmlShutdown()


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def parse_smi_query(text: str) -> tuple[list[GPU], str | None]:
    gpus, driver = [], None
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 5:
            continue
        idx, name, cc, mem_mib, drv = parts[:5]
        try:  # "[N/A]" and friends: a GPU nvidia-smi cannot describe is left out, not a crash
            gpus.append(GPU(index=int(idx), name=_clean(name) or "unknown", compute_capability=cc,
                            memory_gb=round(float(mem_mib) / 1024, 1)))
        except (ValueError, ValidationError):
            continue
        driver = drv if re.fullmatch(r"\d{2,4}(\.\d{1,3}){1,3}", drv) else driver
    return gpus, driver


def parse_smi_cuda(header: str) -> str | None:
    m = re.search(r"CUDA Version:\s*(\d{1,2}\.\d{1,2})\b", header)
    return m.group(1) if m else None


# --- toolchain ---------------------------------------------------------------------------


def parse_nvcc_version(text: str) -> str | None:
    m = re.search(r"release (\d+\.\d+)", text)
    return m.group(1) if m else None


def find_nvcc(env: Mapping[str, str], run: Runner) -> list[Nvcc]:
    """Every nvcc we can see: PATH first, then CUDA_HOME/CUDA_PATH, then /usr/local/cuda*."""
    on_path = shutil.which("nvcc", path=env.get("PATH"))
    candidates = [on_path] if on_path else []
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if env.get(var):
            candidates.append(os.path.join(env[var], "bin", "nvcc"))
    candidates += sorted(glob.glob("/usr/local/cuda*/bin/nvcc")) + ["/usr/bin/nvcc"]
    seen: set[str] = set()
    out: list[Nvcc] = []
    for c in candidates:
        real = os.path.realpath(c)
        if real in seen or not os.access(c, os.X_OK):
            continue
        seen.add(real)
        version = parse_nvcc_version(run([c, "--version"]) or "")
        if version:
            out.append(Nvcc(path=c, version=version,
                            on_path=bool(on_path) and real == os.path.realpath(on_path)))
    return out


def find_cxx(run: Runner, env: dict[str, str] | None = None) -> Compiler | None:
    """The C++ compiler builds will use: $CXX when set (torch and CMake take it), else the first on PATH."""
    env = dict(os.environ if env is None else env)
    for name in [*([env["CXX"]] if env.get("CXX") else []), "g++", "c++", "clang++"]:
        path = shutil.which(name, path=env.get("PATH"))
        if not path:
            continue
        out = run([path, "-dumpfullversion", "-dumpversion"]) or ""
        version = out.strip().splitlines()[0] if out.strip() else ""
        if re.match(r"^\d+(\.\d+)*$", version):
            kind = "clang" if "clang" in os.path.basename(path) else "gcc"
            return Compiler(path=path, name=kind, version=version, lto=gcc_has_lto(run, path) if kind == "gcc" else None)
    return None


def gcc_has_lto(run: Runner, gxx: str) -> bool | None:
    """gcc prints the full path of its lto-wrapper, or just the bare name when it has none."""
    out = (run([gxx, "-print-prog-name=lto-wrapper"]) or "").strip()
    if not out:
        return None
    return os.path.isabs(out) and os.access(out, os.X_OK)


def find_pythons(run: Runner) -> dict[str, str]:
    out: dict[str, str] = {}
    seen: set[str] = set()
    for name in ("python3", "python"):
        path = shutil.which(name)
        if path and os.path.realpath(path) not in seen:
            seen.add(os.path.realpath(path))
            v = run([path, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
            if v:
                out[path] = v.strip()
    return out


# --- network -----------------------------------------------------------------------------


def mask_proxies(env: Mapping[str, str]) -> dict[str, str]:
    """The proxy variables, credentials masked (never store a password): http://***@proxy:8080."""
    return {k: _clean(redact(v)) for k in PROXY_VARS if (v := env.get(k))}


def _clean(text: str | None) -> str | None:
    """What a command printed, minus control characters (a host file holds one-line values)."""
    return None if text is None else CONTROL.sub("", text).strip()[:1000]
