"""Host facts: everything about a machine that the planner needs, as one typed record.

Gathered by probe.py on the machine itself, or read from a JSON file saved there
(`provision doctor --save host.json`), so any host can be planned for from anywhere and
tests need no GPU. Pure data: no probing happens in this module.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import HostFileError
from ..versions import Dotted

HOST_SCHEMA_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GPU(_Model):
    index: int = 0
    name: str
    compute_capability: str  # "8.6", "12.0"
    memory_gb: float


class Nvcc(_Model):
    path: str
    version: str  # "12.4"
    on_path: bool = False  # the one `nvcc` resolves to


class Compiler(_Model):
    path: str
    name: str  # gcc, clang
    version: str  # "11.4.0"
    lto: bool | None = None  # gcc finds its lto-wrapper (builds that link with -flto need it); None: not asked


# One repair for a gcc without lto-wrapper: the build's diagnosis (after a failed link), doctor and plan (before).
LTO_FIX = ("build with a complete gcc: export CXX=/usr/bin/g++ CC=/usr/bin/gcc "
           "(`$CXX -print-prog-name=lto-wrapper` must print a path)")


class HostFacts(_Model):
    schema_version: int = HOST_SCHEMA_VERSION
    label: str | None = None  # free text: "RTX 3090, WSL2, field note 000"
    os: str = "linux"
    distro: str | None = None
    kernel: str | None = None
    arch: str = "x86_64"
    wsl: bool = False
    windows_build: str | None = None
    glibc: str | None = None
    cpu_count: int = Field(ge=1)
    ram_gb: float = Field(gt=0)  # total memory the OS (or the WSL VM) sees
    swap_gb: float = Field(ge=0)
    disk_free_gb: dict[str, float] = Field(default_factory=dict)  # path -> free GB
    driver_version: str | None = None
    driver_cuda: str | None = None  # highest CUDA the driver supports (nvidia-smi's "CUDA Version")
    gpus: list[GPU] = Field(default_factory=list)
    gpu_source: str = "none"  # nvml, nvidia-smi, fixture, none
    gpu_error: str | None = None  # why no GPU could be read, when none was
    nvcc: list[Nvcc] = Field(default_factory=list)
    cxx: Compiler | None = None
    conda: dict[str, str] = Field(default_factory=dict)  # conda/mamba/micromamba -> path
    pythons: dict[str, str] = Field(default_factory=dict)  # path -> version
    proxies: dict[str, str] = Field(default_factory=dict)  # name -> value, passwords masked
    no_proxy: str | None = None
    ports_in_use: list[int] = Field(default_factory=list)

    @property
    def proxy_set(self) -> bool:
        return any(k.lower() in ("http_proxy", "https_proxy", "all_proxy") for k in self.proxies)

    def no_proxy_covers_localhost(self) -> bool:
        entries = {e.strip().lower() for e in (self.no_proxy or "").split(",") if e.strip()}
        return "*" in entries or {"localhost", "127.0.0.1"} <= entries

    def smallest_disk_free_gb(self) -> float | None:
        return min(self.disk_free_gb.values()) if self.disk_free_gb else None

    def compute_capabilities(self) -> list[Dotted]:
        return sorted({Dotted(g.compute_capability) for g in self.gpus})

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2) + "\n"


def load_host(path: Path) -> HostFacts:
    """Read a host file; errors name the file and the field."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HostFileError(f"{path}: no such host file",
                            hint="write one on the target machine with `provision doctor --save host.json`") from None
    except json.JSONDecodeError as e:
        raise HostFileError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    try:
        return HostFacts.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise HostFileError(f"{path}: {where}: {first['msg']}",
                            hint=f"{len(e.errors())} problem(s); compare with `provision doctor --json`") from None
