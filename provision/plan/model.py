"""The plan as data: what apply will do, decided before anything is installed.

Typed models cross from the planner to render, apply and verify; `model_dump(mode="json")`
only at the template and JSON boundaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from ..host import HostFacts
from ..lock.facts import LockFacts


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Finding(_Model):
    """A blocker or a warning: what, and the one-line fix."""

    what: str
    fix: str


class NvccPlan(_Model):
    needed: bool
    source: str  # system | toolkit (the lockfile's, in a shared prefix) | none
    version: str | None = None
    path: str | None = None
    cuda_home: str | None = None
    conda_channel: str | None = None
    conda_packages: list[str] = Field(default_factory=list)
    cc: str | None = None  # the host compilers builds use, when not the host's own (the toolkit's conda gcc)
    cxx: str | None = None
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

    @property
    def built(self) -> list[ExtensionPlan]:
        """The extensions this plan compiles (not those the lock installs as a prebuilt wheel)."""
        return [e for e in self.extensions if e.build != "prebuilt"]

    @property
    def prebuilt(self) -> set[str]:
        """The extensions the lock installs from their project's hashed wheel: nothing to build or fetch."""
        return {e.name for e in self.extensions if e.build == "prebuilt"}


@dataclass(frozen=True)
class PlanOptions:
    variant: str | None = None
    ptx: bool = False  # add +PTX to the highest arch, for GPUs newer than any planned
    prefix: str | None = None  # default: {data}/envs/{target}
    data_dir: str = "~/.local/share/provision"
    # What the lockfiles say (lock/facts.py), per variant that has a current one. None: not
    # known (a library call); then no lock-based blocker is raised and toolkits get plain names.
    locks: Mapping[str, LockFacts] | None = None
    # Compute capabilities to build for instead of this host's GPUs ("8.6", "9.0": parse_arch_list):
    # for GPUs elsewhere (a container image, a build machine); the GPU checks are then left to them.
    arch_list: tuple[str, ...] | None = None
    # More hosts the chosen variant must run on (an image built once for several machines).
    runs_on: tuple[HostFacts, ...] = ()
