"""The target spec: what one app needs, as strict, typed data.

One YAML file per target in envs/, plus shared fragments it `include:`s. Field checks
shared by several models live in fields.py, the weights in weights.py; rules that relate
fields to each other live in rules.py, and loading (includes, line numbers) in load.py.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from pydantic import Discriminator, Field, StrictStr, Tag, field_validator

from .fields import (NAME_RE, SHA256_RE, Number, StrictModel, check_commit, check_dotted, check_pkg_name, check_url,
                     pip_version)
from .weights import Weights

# --- sources -----------------------------------------------------------------------


class GitSource(StrictModel):
    """A git repository at a fixed commit (never a branch: branches move)."""

    git: StrictStr
    commit: StrictStr
    tag: StrictStr | None = None  # informational: the tag that commit carries
    subdirectory: StrictStr | None = None
    submodules: bool = False

    _g = field_validator("git")(classmethod(lambda cls, v: check_url(v)))
    _c = field_validator("commit")(classmethod(lambda cls, v: check_commit(v)))


class SdistSource(StrictModel):
    """A source archive by URL, checked by sha256."""

    sdist: StrictStr
    sha256: StrictStr

    _u = field_validator("sdist")(classmethod(lambda cls, v: check_url(v)))

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str) -> str:
        if not SHA256_RE.match(v):
            raise ValueError(f"{v!r} is not a sha256 (64 lowercase hex digits)")
        return v


class UpstreamPathSource(StrictModel):
    """A directory inside the target's own upstream checkout (o-voxel in TRELLIS.2)."""

    upstream_path: StrictStr

    @field_validator("upstream_path")
    @classmethod
    def _rel(cls, v: str) -> str:
        if v.startswith("/") or ".." in v.split("/"):
            raise ValueError(f"{v!r} must be a relative path inside the upstream checkout")
        return v


def _source_tag(v: object) -> str | None:
    if isinstance(v, dict):
        for key, tag in (("git", "Git"), ("sdist", "Sdist"), ("upstream_path", "UpstreamPath")):
            if key in v:
                return tag
        return None
    return {GitSource: "Git", SdistSource: "Sdist", UpstreamPathSource: "UpstreamPath"}.get(type(v))


Source = Annotated[
    Union[
        Annotated[GitSource, Tag("Git")],
        Annotated[SdistSource, Tag("Sdist")],
        Annotated[UpstreamPathSource, Tag("UpstreamPath")],
    ],
    Discriminator(_source_tag, custom_error_type="source_kind",
                  custom_error_message="a source needs one of `git:` (with `commit:`), `sdist:` (with `sha256:`) "
                                       "or `upstream_path:`"),
]


# --- identity, conda, pip ------------------------------------------------------------


class Upstream(StrictModel):
    repo: StrictStr
    commit: StrictStr
    read_from: list[StrictStr] = Field(min_length=1)  # files the pins were read from

    _r = field_validator("repo")(classmethod(lambda cls, v: check_url(v)))
    _c = field_validator("commit")(classmethod(lambda cls, v: check_commit(v)))


class CondaPackage(StrictModel):
    name: StrictStr
    version: StrictStr | None = None  # a conda match-spec version, e.g. 3.10.* or 12.4.*
    channel: StrictStr | None = None
    why: StrictStr | None = None

    _n = field_validator("name")(classmethod(lambda cls, v: check_pkg_name(v)))


class Conda(StrictModel):
    channels: list[StrictStr] = Field(min_length=1)
    packages: list[CondaPackage] = Field(default_factory=list)


class Index(StrictModel):
    """A package index: a PEP 503 simple index, or a find-links page of wheel links."""

    url: StrictStr
    kind: Literal["simple", "find_links"] = "simple"
    why: StrictStr | None = None

    _u = field_validator("url")(classmethod(lambda cls, v: check_url(v)))


class PipPackage(StrictModel):
    name: StrictStr
    version: StrictStr | None = None  # exact, '*' (upstream leaves it open) or a specifier
    extras: list[StrictStr] = Field(default_factory=list)  # imageio[ffmpeg] -> [ffmpeg]
    index: StrictStr = "pypi"
    git: GitSource | None = None
    # A git package is installed with --no-deps, like an extension, so what it needs is
    # stated here (read from its pyproject at the commit) and locked with the rest.
    requires: list[StrictStr] = Field(default_factory=list)
    build_requires: list[StrictStr] = Field(default_factory=list)
    why: StrictStr | None = None  # where upstream states this pin

    _n = field_validator("name")(classmethod(lambda cls, v: check_pkg_name(v)))
    _v = field_validator("version")(classmethod(lambda cls, v: None if v is None else pip_version(v)))

    @field_validator("requires", "build_requires")
    @classmethod
    def _reqs(cls, v: list[str]) -> list[str]:
        for r in v:
            try:
                Requirement(r)
            except InvalidRequirement as e:
                raise ValueError(f"{r!r} is not a requirement ({e})") from None
        return v

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)

    @property
    def exact(self) -> str | None:
        v = self.version
        return v if v and v != "*" and v[:1] not in "<>=!~" else None


class Override(StrictModel):
    """A pin that deliberately contradicts a dependency's own metadata, and why."""

    name: StrictStr
    version: StrictStr
    why: StrictStr

    _v = field_validator("version")(classmethod(lambda cls, v: pip_version(v)))


class Pip(StrictModel):
    indexes: dict[StrictStr, Index] = Field(default_factory=dict)
    packages: list[PipPackage] = Field(default_factory=list)
    overrides: list["Override"] = Field(default_factory=list)  # for every variant


# --- CUDA base and variants ----------------------------------------------------------


class CudaToolkit(StrictModel):
    """Facts about one CUDA toolkit release, shared by every target."""

    min_driver_linux: StrictStr
    min_driver_windows: StrictStr
    nvcc_min_arch: StrictStr  # lowest compute capability nvcc can target
    nvcc_max_arch: StrictStr  # highest
    conda_channel: StrictStr  # where cuda-nvcc of this version is published
    conda_packages: list[StrictStr] = Field(min_length=1)  # headers and nvcc for builds
    max_gcc: StrictStr  # newest host gcc nvcc accepts ("unsupported GNU version!" above it)

    _d = field_validator("min_driver_linux", "min_driver_windows", "nvcc_min_arch", "nvcc_max_arch", "max_gcc")(
        classmethod(lambda cls, v: check_dotted(v)))


class HostConstraints(StrictModel):
    min_compute_capability: StrictStr
    max_compute_capability: StrictStr  # the newest GPU the build carries kernels for
    min_driver: StrictStr | None = None  # defaults to the CUDA toolkit's own minimum

    _d = field_validator("min_compute_capability", "max_compute_capability", "min_driver")(
        classmethod(lambda cls, v: None if v is None else check_dotted(v)))


class Variant(StrictModel):
    """One CUDA build of the torch stack (torch, torchvision, xformers, spconv...)."""

    cuda: StrictStr
    description: StrictStr
    default: bool = False
    packages: list[PipPackage] = Field(min_length=1)
    overrides: list[Override] = Field(default_factory=list)
    host: HostConstraints
    why: StrictStr | None = None

    _d = field_validator("cuda")(classmethod(lambda cls, v: check_dotted(v)))


# --- extensions --------------------------------------------------------------------


class Extension(StrictModel):
    """A CUDA extension built from source on the user's machine."""

    name: StrictStr
    module: StrictStr  # what `import` names
    source: Source
    build: Literal["wheel", "inplace"]
    peak_job_memory_gb: Number = Field(gt=0, le=64)
    nvcc: Literal["build", "runtime", "none"] = "build"
    min_nvcc: StrictStr | None = None  # defaults to the variant's CUDA version
    build_requires: list[PipPackage] = Field(default_factory=list)
    # what the package needs at run time: it is built and installed --no-deps, so these are
    # locked and installed with the pip half (from its setup.py / pyproject at the pinned commit)
    requires: list[PipPackage] = Field(default_factory=list)
    env: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    variants: list[StrictStr] | None = None  # only for these variants (default: all)
    smoke: StrictStr | None = None  # Python run on the GPU after install
    why: StrictStr | None = None

    _n = field_validator("name")(classmethod(lambda cls, v: check_pkg_name(v)))
    _m = field_validator("min_nvcc")(classmethod(lambda cls, v: None if v is None else check_dotted(v)))

    @field_validator("module")
    @classmethod
    def _mod(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$", v):
            raise ValueError(f"{v!r} is not an importable module name")
        return v


# --- env, resources, app, checklist --------------------------------------------------


class EnvVar(StrictModel):
    value: StrictStr
    choices: list[StrictStr] | None = None  # values the app accepts (read from its code)
    why: StrictStr | None = None


EnvValue = Annotated[
    Union[Annotated[StrictStr, Tag("Str")], Annotated[EnvVar, Tag("EnvVar")]],
    Discriminator(lambda v: "EnvVar" if isinstance(v, (dict, EnvVar)) else "Str" if isinstance(v, str) else None,
                  custom_error_type="env_value",
                  custom_error_message="an env value is a string, or a mapping with `value:` (and `choices:`)"),
]


class Resources(StrictModel):
    ram_gb: Number = Field(gt=0)
    swap_gb: Number = Field(ge=0)
    disk_gb: Number = Field(gt=0)
    vram_gb: Number = Field(gt=0)


class App(StrictModel):
    launch: StrictStr
    port: int = Field(default=7860, ge=1, le=65535)
    host: StrictStr = "127.0.0.1"
    port_env: StrictStr | None = None  # e.g. GRADIO_SERVER_PORT


class ImportCheck(StrictModel):
    kind: Literal["import"]
    module: StrictStr
    why: StrictStr | None = None


class KernelCheck(StrictModel):
    kind: Literal["kernel"]
    extension: StrictStr
    why: StrictStr | None = None


class ApiCheck(StrictModel):
    kind: Literal["api"]
    name: StrictStr
    code: StrictStr  # Python that raises on failure
    fix: StrictStr
    why: StrictStr | None = None


class FileCheck(StrictModel):
    kind: Literal["file"]
    path: StrictStr
    why: StrictStr | None = None


Check = Annotated[Union[ImportCheck, KernelCheck, ApiCheck, FileCheck], Field(discriminator="kind")]


# --- the target ----------------------------------------------------------------------


class TargetSpec(StrictModel):
    schema_version: Literal[1]
    name: StrictStr
    description: StrictStr
    upstream: Upstream
    python: StrictStr
    include: list[StrictStr] = Field(default_factory=list)
    cuda_toolkits: dict[StrictStr, CudaToolkit] = Field(default_factory=dict)
    conda: Conda
    pip: Pip
    variants: dict[StrictStr, Variant] = Field(min_length=1)
    extensions: list[Extension] = Field(default_factory=list)
    weights: Weights = Field(default_factory=Weights)
    env: dict[StrictStr, EnvValue] = Field(default_factory=dict)
    resources: Resources
    app: App
    checklist: list[Check] = Field(default_factory=list)
    notes: list[StrictStr] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"{v!r} is not a target name (lowercase letters, digits, . _ -)")
        return v

    @field_validator("python")
    @classmethod
    def _py(cls, v: str) -> str:
        if not re.match(r"^3\.\d{1,2}$", v):
            raise ValueError(f"{v!r} is not a Python version like '3.10'")
        return v

    # -- convenience views (pure) --

    def env_value(self, name: str) -> str | None:
        v = self.env.get(name)
        return v.value if isinstance(v, EnvVar) else v

    def env_values(self) -> dict[str, str]:
        return {k: (v.value if isinstance(v, EnvVar) else v) for k, v in self.env.items()}

    def default_variant(self) -> str:
        for k, v in self.variants.items():
            if v.default:
                return k
        return next(iter(self.variants))

    def extensions_for(self, variant: str) -> list[Extension]:
        return [e for e in self.extensions if e.variants is None or variant in e.variants]

    def torch_version(self, variant: str) -> str | None:
        for p in self.variants[variant].packages:
            if p.key == "torch":
                return p.exact
        return None
