"""What a lock of one target variant depends on, as plain data (pure, no I/O).

Everything the solvers see comes from here, and so does the content hash written into
the lockfile: a committed lockfile is stale exactly when these inputs change, whatever
else (notes, weights, checklist) changes in the spec.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from ..spec import PipPackage, TargetSpec
from .prebuilt import choices as prebuilt_choices

PYPI = "https://pypi.org/simple"
LOCK_FORMAT = "1"  # bump when the way inputs are hashed changes

# The platforms we lock for, with what uv calls the same machine. glibc 2.28 is the
# floor we promise (conda-forge's own baseline for CUDA 12 packages; every distro WSL2
# ships is newer), so a lock never depends on the machine that made it.
PLATFORMS = {"linux-64": {"uv": "x86_64-manylinux_2_28", "glibc": "2.28"}}


@dataclass(frozen=True)
class IndexRef:
    name: str
    url: str
    kind: str  # simple | find_links


@dataclass(frozen=True)
class GitPin:
    """A pip package built from a git commit: locked by that commit, installed --no-deps."""

    name: str
    url: str
    commit: str
    subdirectory: str | None
    requires: list[str]
    build_requires: list[str]

    @property
    def pip_url(self) -> str:
        url = f"git+{self.url}@{self.commit}"
        return f"{url}#subdirectory={self.subdirectory}" if self.subdirectory else url


@dataclass(frozen=True)
class LockInputs:
    target: str
    variant: str
    platform: str
    python: str
    cuda: str
    toolkit: str  # the CUDA toolkit version of the cuda-toolkit category (nvcc and headers for builds)
    channels: list[str]
    conda_specs: list[str]  # category main: python, pip
    cuda_channel: str
    cuda_specs: list[str]  # category cuda-toolkit: what a conda nvcc needs
    requirements: list[str]  # PEP 508 lines handed to uv
    overrides: list[str]
    sources: dict[str, str] = field(default_factory=dict)  # package -> index name
    indexes: list[IndexRef] = field(default_factory=list)
    git: list[GitPin] = field(default_factory=list)
    # the toolkit's wheels (CUDA >= 13): resolved with the rest, kept in category cuda-toolkit
    toolkit_requirements: list[str] = field(default_factory=list)
    # per extension that lists prebuilt wheels: the lock's choice (prebuilt.py), as plain data
    prebuilt: list[dict] = field(default_factory=list)

    def digest(self) -> str:
        data = asdict(self) | {"lock_format": LOCK_FORMAT}
        for key in ("toolkit_requirements", "prebuilt"):  # absent from older specs: their digests stay as they were
            if not data[key]:
                del data[key]
        blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    def index_users(self, name: str) -> list[str]:
        return sorted(p for p, i in self.sources.items() if i == name)


def _requirement(p: PipPackage) -> str:
    extras = f"[{','.join(p.extras)}]" if p.extras else ""
    v = p.version or "*"
    if v == "*":
        return f"{p.name}{extras}"
    if v[:1] in "<>=!~":
        return f"{p.name}{extras}{v}"
    return f"{p.name}{extras}=={v}"


def lock_inputs(spec: TargetSpec, variant: str, platform: str = "linux-64") -> LockInputs:
    """Gather the solver inputs of `variant` (assumed to exist; the CLI checks)."""
    v = spec.variants[variant]
    pkgs: dict[str, PipPackage] = {}
    for p in [*spec.pip.packages, *v.packages]:
        pkgs[p.key] = p  # a variant's pin replaces the common one
    git = [
        GitPin(p.name, p.git.git, p.git.commit, p.git.subdirectory, list(p.requires), list(p.build_requires))
        for p in pkgs.values() if p.git is not None
    ]
    reqs = [_requirement(p) for p in pkgs.values() if p.git is None]
    for g in git:
        reqs += g.requires + g.build_requires
    for e in spec.extensions_for(variant):
        reqs += [_requirement(b) for b in [*e.build_requires, *e.requires]]
    # Builds run without isolation, so what setup.py needs must already be in the env.
    reqs += ["setuptools>=70.1"]  # builds wheels itself (bdist_wheel): the `wheel` package is not needed
    toolkit_tk = spec.cuda_toolkits.get(v.toolkit_version())
    toolkit_reqs = sorted(toolkit_tk.pip_packages, key=str.lower) if toolkit_tk else []
    reqs = sorted(dict.fromkeys(reqs), key=str.lower)

    sources = {p.key: p.index for p in pkgs.values() if p.git is None and p.index != "pypi"}
    for e in spec.extensions_for(variant):
        sources.update({b.key: b.index for b in [*e.build_requires, *e.requires] if b.index != "pypi"})
    used = sorted(set(sources.values()))
    indexes = [IndexRef(n, spec.pip.indexes[n].url, spec.pip.indexes[n].kind) for n in used]

    conda_specs = []
    for c in spec.conda.packages:
        conda_specs.append(f"{c.name} {c.version}" if c.version else c.name)
    toolkit = v.toolkit_version()
    tk = spec.cuda_toolkits.get(toolkit)
    cuda_specs = [f"cuda-version {toolkit}.*", *tk.conda_packages] if tk and tk.conda_packages else []
    return LockInputs(
        target=spec.name,
        variant=variant,
        platform=platform,
        python=spec.python,
        cuda=v.cuda,
        toolkit=toolkit,
        channels=list(spec.conda.channels),
        conda_specs=conda_specs,
        cuda_channel=tk.conda_channel if tk else "conda-forge",
        cuda_specs=cuda_specs,
        requirements=reqs,
        toolkit_requirements=toolkit_reqs,
        prebuilt=[c.as_dict() for c in prebuilt_choices(spec, variant)],
        overrides=sorted(_requirement(PipPackage(name=o.name, version=o.version))
                         for o in {o.name: o for o in [*spec.pip.overrides, *v.overrides]}.values()),
        sources=dict(sorted(sources.items())),
        indexes=indexes,
        git=sorted(git, key=lambda g: g.name),
    )
