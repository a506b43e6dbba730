"""Host facts: everything about a machine that the planner needs, as one typed record.

Gathered by probe.py on the machine itself, or read from a JSON file saved there
(`provision doctor --save host.json`), so any host can be planned for from anywhere and
tests need no GPU. Pure data: no probing happens in this module.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError,
                      field_validator)

from ..errors import HostFileError
from ..ids import check_text
from ..readers import InputError, load_json
from ..secrets import redact
from ..versions import Dotted

HOST_SCHEMA_VERSION = 1


def _fits(pattern: str, looks_like: str):  # type: ignore[no-untyped-def]
    def check(v: str) -> str:
        if not re.fullmatch(pattern, v, re.ASCII):  # \d is 0-9 only: no full-width or Arabic-Indic digits
            raise ValueError(f"{v!r} is not {looks_like}")
        return v
    return AfterValidator(check)


def _text(limit: int = 1000):  # type: ignore[no-untyped-def]
    return AfterValidator(lambda v: check_text(v, "a value", limit))


Text = Annotated[StrictStr, _text()]
LongText = Annotated[StrictStr, _text(20_000)]
Word = Annotated[StrictStr, _fits(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}", "a short name (letters, digits, . _ + -)")]
# "8.6", "12.0": a major and a minor; "86", "sm_86", "" and "8.6.1" are mistakes, not capabilities
ComputeCapability = Annotated[StrictStr, _fits(r"[1-9]\d?\.\d", "a compute capability like 8.6 or 12.0 (major.minor; "
                                                               "sm_86 is written 8.6)")]
CudaVersion = Annotated[StrictStr, _fits(r"\d{1,2}\.\d{1,2}", "a CUDA version like 12.4 (major.minor)")]
DriverVersion = Annotated[StrictStr, _fits(r"\d{2,4}(\.\d{1,3}){1,3}", "an NVIDIA driver version like 535.183.01")]
ToolVersion = Annotated[StrictStr, _fits(r"\d{1,4}(\.\d{1,6}){0,3}", "a version like 11.4.0")]
Path_ = Annotated[StrictStr, _text(4096)]
Gb = Annotated[float, Field(ge=0, le=1e6)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)  # "8" and true are not numbers


class GPU(_Model):
    index: int = Field(default=0, ge=0, le=1023)
    name: Text
    compute_capability: ComputeCapability  # "8.6", "12.0"
    memory_gb: Gb


class Nvcc(_Model):
    path: Path_
    version: CudaVersion  # "12.4"
    on_path: StrictBool = False  # the one `nvcc` resolves to


class Compiler(_Model):
    path: Path_
    name: Word  # gcc, clang
    version: ToolVersion  # "11.4.0"
    lto: StrictBool | None = None  # gcc finds its lto-wrapper (builds that link with -flto need it); None: not asked


# One repair for a gcc without lto-wrapper: the build's diagnosis (after a failed link), doctor and plan (before).
LTO_FIX = ("build with a complete gcc: export CXX=/usr/bin/g++ CC=/usr/bin/gcc "
           "(`$CXX -print-prog-name=lto-wrapper` must print a path)")


class HostFacts(_Model):
    schema_version: Literal[1] = HOST_SCHEMA_VERSION
    label: Text | None = None  # free text: "RTX 3090, WSL2, field note 000"
    os: Word = "linux"
    distro: Text | None = None
    kernel: Text | None = None
    arch: Word = "x86_64"
    home: Path_ | None = None  # the user's home there: plans for this host use its paths, not the planner's
    data_dir: Path_ | None = None  # provision's data dir there (envs, sources, weights)
    wsl: StrictBool = False
    windows_build: Text | None = None
    glibc: Text | None = None
    cpu_count: int = Field(ge=1, le=65536)
    ram_gb: float = Field(gt=0, le=1e6)  # total memory the OS (or the WSL VM) sees
    swap_gb: Gb
    disk_free_gb: dict[Path_, Gb] = Field(default_factory=dict)  # path -> free GB
    driver_version: DriverVersion | None = None
    driver_cuda: CudaVersion | None = None  # highest CUDA the driver supports (nvidia-smi's "CUDA Version")
    gpus: list[GPU] = Field(default_factory=list, max_length=1024)
    gpu_source: Word = "none"  # nvml, nvidia-smi, fixture, none
    gpu_error: LongText | None = None  # why no GPU could be read, when none was
    nvcc: list[Nvcc] = Field(default_factory=list, max_length=64)
    cxx: Compiler | None = None
    conda: dict[Word, Path_] = Field(default_factory=dict)  # conda/mamba/micromamba -> path
    pythons: dict[Path_, ToolVersion] = Field(default_factory=dict)  # path -> version
    proxies: dict[Word, Text] = Field(default_factory=dict)  # name -> value, credentials masked
    no_proxy: LongText | None = None
    ports_in_use: list[Annotated[int, Field(ge=1, le=65535)]] = Field(default_factory=list, max_length=65535)

    @field_validator("home", "data_dir")
    @classmethod
    def _absolute(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError(f"{v!r} must be an absolute path")
        return v

    @field_validator("proxies")
    @classmethod
    def _masked(cls, v: dict[str, str]) -> dict[str, str]:
        """A host file never carries a proxy password, whoever wrote it."""
        return {k: redact(x) for k, x in v.items()}

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
    """Read a host file (UTF-8 or UTF-16, as PowerShell's `>` writes); errors name the file and each field."""
    try:
        data = load_json(path, "a host file", max_bytes=1 << 20)
    except InputError as e:
        raise HostFileError(e.message, hint=e.hint or "write one on the target machine with "
                                                     "`provision doctor --save host.json`") from None
    if not isinstance(data, dict):
        raise HostFileError(f"{path}: a host file is a JSON object, not {type(data).__name__}",
                            hint="write one with `provision doctor --save host.json`")
    try:
        return HostFacts.model_validate(data)
    except ValidationError as e:
        errs = e.errors(include_url=False)
        lines = []
        for err in errs[:5]:
            where = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in err["loc"]).lstrip(".")
            lines.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
        more = f" (and {len(errs) - 5} more)" if len(errs) > 5 else ""
        raise HostFileError(f"{path}: " + "; ".join(lines) + more,
                            hint="fix those fields, or write the file anew on that machine with "
                                 "`provision doctor --save host.json`") from None
