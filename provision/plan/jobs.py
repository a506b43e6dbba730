"""How many compile jobs fit in memory: nvcc jobs OOM-killed in a small WSL VM (exit 137)."""

from __future__ import annotations

from ..host import HostFacts
from ..spec import Extension
from .model import Finding

# Memory held back from compile jobs: the OS, the desktop, the compiler driver itself.
RESERVE_GB = 2.0
RESERVE_FRACTION = 0.10
SWAP_SHARE = 0.25  # swap keeps a build alive at a peak but is too slow to plan on


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
