"""Fleet planning (pure): host files -> build groups, one builder each, and the hosts that cannot
run the target with the planner's reasons.

Two hosts are in one group when the planner predicts the same toolchain for them
(plan/binary.py: variant, torch and its CUDA, Python ABI, arch list, compiler, nvcc), the
same definition apply's build cache is keyed by: what the builder compiles is, key for key,
what every other host of its group would have compiled. The builder is the host that
compiles fastest: the most compile jobs its memory allows for the tightest extension, then
the most memory, then the name.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..errors import PlanRefused
from ..host import HostFacts
from ..plan import Plan, PlanOptions, make_plan
from ..plan.binary import toolchain_of_plan
from ..spec import LoadedSpec


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FleetHost(_Model):
    name: str
    file: str
    variant: str
    group: str  # the toolchain digest
    jobs: int  # compile jobs of its tightest extension
    ram_gb: float


class Group(_Model):
    digest: str
    toolchain: dict[str, str]
    builder: str
    builder_reason: str
    installers: list[str]
    extensions: list[str]

    @property
    def hosts(self) -> list[str]:
        return [self.builder, *self.installers]


class Unfit(_Model):
    name: str
    file: str
    reasons: list[str]


class FleetPlan(_Model):
    target: str
    spec_digest: str
    hosts: list[FleetHost] = Field(default_factory=list)
    groups: list[Group] = Field(default_factory=list)
    unfit: list[Unfit] = Field(default_factory=list)

    def group_of(self, host: str) -> Group | None:
        return next((g for g in self.groups if host in g.hosts), None)


def _plan(loaded: LoadedSpec, host: HostFacts, opts: PlanOptions) -> tuple[Plan | None, list[str]]:
    try:
        plan = make_plan(loaded, host, opts)
    except PlanRefused as e:
        return None, [e.message, *e.reasons]
    if plan.blockers:
        return None, [f"{b.what} (fix: {b.fix})" for b in plan.blockers]
    return plan, []


def plan_fleet(loaded: LoadedSpec, hosts: list[tuple[str, str, HostFacts]], opts: PlanOptions = PlanOptions()) -> FleetPlan:
    """Group `hosts` (name, file, facts) by the toolchain each would build with."""
    fleet = FleetPlan(target=loaded.name, spec_digest=loaded.digest)
    members: dict[str, list[FleetHost]] = {}
    toolchains: dict[str, dict[str, str]] = {}
    exts: dict[str, list[str]] = {}
    for name, file, facts in hosts:
        plan, reasons = _plan(loaded, facts, opts)
        if plan is None:
            fleet.unfit.append(Unfit(name=name, file=file, reasons=reasons))
            continue
        tc = toolchain_of_plan(loaded.spec, facts, plan)
        d = tc.digest()
        h = FleetHost(name=name, file=file, variant=plan.variant, group=d, ram_gb=facts.ram_gb,
                      jobs=min((e.max_jobs for e in plan.built), default=facts.cpu_count))
        fleet.hosts.append(h)
        members.setdefault(d, []).append(h)
        toolchains[d] = tc.as_dict()
        exts[d] = [e.name for e in plan.built]  # a prebuilt wheel is not built
    for d, hs in members.items():  # in the order the hosts were given
        ranked = sorted(hs, key=lambda h: (-h.jobs, -h.ram_gb, h.name))
        b = ranked[0]
        if not exts[d]:
            why = "nothing to compile: no extension in this variant"
        elif len(hs) == 1:
            why = "the only host of its group"
        else:
            why = f"compiles fastest: {b.jobs} jobs for its tightest extension, {b.ram_gb:g} GB RAM"
        fleet.groups.append(Group(digest=d, toolchain=toolchains[d], builder=b.name, builder_reason=why,
                                  installers=[h.name for h in hs if h is not b], extensions=exts[d]))
    return fleet
