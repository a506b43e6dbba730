"""What every apply step is handed: the plan, the options, and where things go."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ProvisionError
from ..plan import Plan
from ..spec import LoadedSpec, TargetSpec


class ApplyError(ProvisionError):
    exit_code = 2  # a refused plan, a step that failed, a check that failed: README's exit codes


@dataclass
class ApplyOptions:
    lockdir: Path
    offline: bool = False
    bundle: Path | None = None
    dry_run: bool = False
    from_step: str | None = None
    venv: bool = False  # a plain venv from a host Python instead of a conda prefix
    python: str | None = None  # that host Python (default: one of spec.python found on PATH)
    sources: dict[str, Path] = field(default_factory=dict)  # NAME -> a local checkout to use
    existing: bool = False  # use the environment already at --prefix (no env creation, no pip install)
    cache: bool = True  # reuse extension builds from DATA/cache/ext (and the build index)
    cache_url: str | None = None  # a build index (PEP 503 simple URL) to take matching builds from
    fleet_group: str | None = None  # the toolchain digest `fleet plan` grouped this host by: refuse if it moved
    progress: bool = False  # a live status line under a running step (the CLI sets it on a terminal)
    wait: bool = False  # another apply holds the prefix: wait for it instead of stopping
    arch_list: tuple[str, ...] | None = None  # --arch-list: the plan's archs, not this host's GPUs (compile keeps them)


@dataclass
class Ctx:
    loaded: LoadedSpec
    plan: Plan
    opts: ApplyOptions
    echo: Callable[[str], None]
    host: object = None  # HostFacts: compile plans for it again

    @property
    def spec(self) -> TargetSpec:
        return self.loaded.spec

    @property
    def prefix(self) -> Path:
        return Path(self.plan.prefix)

    @property
    def data(self) -> Path:
        return Path(self.plan.data_dir)

    @property
    def py(self) -> str:
        return str(self.prefix / "bin" / "python")

    @property
    def meta(self) -> Path:
        return self.prefix / "share" / "provision"

    @property
    def compiled(self) -> Path:
        return self.meta / "compiled"

    @property
    def constraints(self) -> Path:
        return self.meta / "constraints.txt"
