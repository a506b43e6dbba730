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
from pydantic import AfterValidator, Discriminator, Field, StrictBool, StrictStr, Tag, field_validator, model_validator

from .. import ids
from .fields import (Code, Command, Commit, DottedStr, Identifier, EnvName, ModuleName, Number, PackageName, PipVersion, Prose, RelPath,
                     Sha256, StrictModel, TargetName, Text, Url)
from .sources import GitSource, SdistSource, Source, UpstreamPathSource  # noqa: F401 (re-exported)
from .weights import Weights


def _channel(v: str) -> str:
    """A conda channel: a name (conda-forge, nvidia/label/cuda-12.4.1) or a URL."""
    if "://" in v:
        return ids.check_url(v, "a channel URL")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*){0,3}", v):
        raise ValueError(f"{v!r} is not a conda channel (a name like conda-forge, or a URL)")
    return v


def _conda_version(v: str) -> str:
    if not re.fullmatch(r"[0-9A-Za-z.*_+!<>=,|-]{1,64}", v):
        raise ValueError(f"{v!r} is not a conda version spec like 3.10.* or >=12.4")
    return v


def _host(v: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9.:-]{1,253}", v):
        raise ValueError(f"{v!r} is not a host name or address")
    return v


Channel = Annotated[StrictStr, AfterValidator(_channel)]
CondaVersion = Annotated[StrictStr, AfterValidator(_conda_version)]
Host = Annotated[StrictStr, AfterValidator(_host)]

# --- identity, conda, pip ------------------------------------------------------------


class Upstream(StrictModel):
    """The app's own repository: apply installs it at this commit, verify imports it."""

    repo: Url
    commit: Commit
    read_from: list[RelPath] = Field(min_length=1)  # files the pins were read from
    submodules: bool = False  # an extension built from inside it needs them (TRELLIS.2's o-voxel: eigen)


class CondaPackage(StrictModel):
    name: PackageName
    version: CondaVersion | None = None  # a conda match-spec version, e.g. 3.10.* or 12.4.*
    channel: Channel | None = None
    why: Prose | None = None


class Conda(StrictModel):
    channels: list[Channel] = Field(min_length=1)
    packages: list[CondaPackage] = Field(default_factory=list)


class Index(StrictModel):
    """A package index: a PEP 503 simple index, or a find-links page of wheel links."""

    url: Url
    kind: Literal["simple", "find_links"] = "simple"
    why: Prose | None = None


class PipPackage(StrictModel):
    name: PackageName
    version: PipVersion | None = None  # exact, '*' (upstream leaves it open) or a specifier
    extras: list[PackageName] = Field(default_factory=list)  # imageio[ffmpeg] -> [ffmpeg]
    index: PackageName = "pypi"
    git: GitSource | None = None
    # A git package is installed with --no-deps, like an extension, so what it needs is
    # stated here (read from its pyproject at the commit) and locked with the rest.
    requires: list[Text] = Field(default_factory=list)
    build_requires: list[Text] = Field(default_factory=list)
    why: Prose | None = None  # where upstream states this pin

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

    name: PackageName
    version: PipVersion
    why: Prose


class Pip(StrictModel):
    indexes: dict[PackageName, Index] = Field(default_factory=dict)
    packages: list[PipPackage] = Field(default_factory=list)
    overrides: list["Override"] = Field(default_factory=list)  # for every variant


# --- CUDA base and variants ----------------------------------------------------------


class CudaToolkit(StrictModel):
    """Facts about one CUDA toolkit release, shared by every target."""

    min_driver_linux: DottedStr
    min_driver_windows: DottedStr
    nvcc_min_arch: DottedStr  # lowest compute capability nvcc can target
    nvcc_max_arch: DottedStr  # highest
    conda_channel: Channel  # where cuda-nvcc of this version is published
    conda_packages: list[PackageName] = Field(default_factory=list)  # headers and nvcc for builds
    # From CUDA 13, PyPI's nvidia-cuda-nvcc and its siblings carry a whole compiler: a toolkit
    # may be these wheels (exact pins) instead of conda packages; apply unpacks them into the prefix.
    pip_packages: list[Text] = Field(default_factory=list)
    max_gcc: DottedStr  # newest host gcc nvcc accepts ("unsupported GNU version!" above it)
    image_version: DottedStr | None = None  # nvidia/cuda:<this>-devel-ubuntu22.04 (provision dockerfile)

    @model_validator(mode="after")
    def _one_source(self) -> "CudaToolkit":
        if bool(self.conda_packages) == bool(self.pip_packages):
            raise ValueError("a toolkit is conda_packages or pip_packages (exactly one of them)")
        for r in self.pip_packages:
            try:
                req = Requirement(r)
            except InvalidRequirement as e:
                raise ValueError(f"{r!r} is not a requirement ({e})") from None
            if not any(s.operator == "==" for s in req.specifier):
                raise ValueError(f"{r!r}: a toolkit wheel is pinned exactly (==): the prefix is named by its files")
        return self


class HostConstraints(StrictModel):
    min_compute_capability: DottedStr
    max_compute_capability: DottedStr  # the newest GPU the build carries kernels for
    min_driver: DottedStr | None = None  # defaults to the CUDA toolkit's own minimum


class Variant(StrictModel):
    """One CUDA build of the torch stack (torch, torchvision, xformers, spconv...)."""

    cuda: DottedStr
    description: Prose
    default: bool = False
    packages: list[PipPackage] = Field(min_length=1)
    overrides: list[Override] = Field(default_factory=list)
    host: HostConstraints
    # The CUDA toolkit the lock carries to build this variant's extensions (default: `cuda`).
    # Same major as torch's CUDA (torch refuses another), and a release the variant's oldest
    # driver runs, so the SASS it builds needs no minor-version compatibility (cu121 -> 12.2).
    toolkit: DottedStr | None = None
    why: Prose | None = None

    def toolkit_version(self) -> str:
        return self.toolkit or self.cuda


# --- extensions --------------------------------------------------------------------


class PrebuiltWheel(StrictModel):
    """A wheel an extension's own project publishes for one torch / CUDA major / C++ ABI /
    Python (flash-attn's release assets). The lock takes it instead of building only when a
    public record gives its sha256; `record` says where that was read, or what was searched."""

    url: Url
    torch: StrictStr  # major.minor it was built against
    cuda: StrictStr  # CUDA major (flash-attn: cu12 for any 12.x)
    cxx11_abi: StrictBool
    python: StrictStr
    sha256: Sha256 | None = None  # None: no public record of its hash was found
    record: Prose

    @field_validator("torch", "cuda", "python")
    @classmethod
    def _build(cls, v: str, info) -> str:  # type: ignore[no-untyped-def]
        form, example = {"torch": (r"\d+\.\d+", "'2.6' (major.minor, as the wheel's name says cu12torch2.6)"),
                         "cuda": (r"\d+", "'12' (the CUDA major; flash-attn's cu12 wheels serve every 12.x)"),
                         "python": (r"3\.\d{1,2}", "'3.10'")}[info.field_name]
        if not re.fullmatch(form, v):
            raise ValueError(f"{v!r} is not a {info.field_name} version like {example}")
        return v

    @field_validator("url")
    @classmethod
    def _wheel(cls, v: str) -> str:
        from packaging.utils import InvalidWheelFilename, parse_wheel_filename

        try:
            parse_wheel_filename(ids.url_file_name(v))
        except InvalidWheelFilename:
            raise ValueError("a prebuilt wheel's URL ends with its wheel file name "
                             "(NAME-VERSION-PYTAG-ABITAG-PLATFORM.whl)") from None
        return v


class Extension(StrictModel):
    """A CUDA extension built from source on the user's machine (or, where the lock found a
    hashed wheel its project publishes for this exact build, installed from that wheel)."""

    name: PackageName
    module: ModuleName  # what `import` names
    source: Source
    build: Literal["wheel", "inplace"]
    peak_job_memory_gb: Number = Field(gt=0, le=64)
    nvcc: Literal["build", "runtime", "none"] = "build"
    min_nvcc: DottedStr | None = None  # defaults to the variant's CUDA version
    build_requires: list[PipPackage] = Field(default_factory=list)
    # what the package needs at run time: it is built and installed --no-deps, so these are
    # locked and installed with the pip half (from its setup.py / pyproject at the pinned commit)
    requires: list[PipPackage] = Field(default_factory=list)
    env: dict[EnvName, Text] = Field(default_factory=dict)
    # The archs the extension's own build knows (flash-attn: 8.0, 9.0, 10.0, 12.0). Each planned
    # arch becomes the highest of these with its major that is not above it (8.6 -> 8.0: sm_80
    # SASS runs on sm_86): {ext_arch_digits} in `env` names them (default: the planned archs).
    build_archs: list[DottedStr] | None = None
    variants: list[StrictStr] | None = None  # only for these variants (default: all; rules.py checks each)
    prebuilt: list[PrebuiltWheel] = Field(default_factory=list, max_length=256)  # lock/prebuilt.py chooses
    smoke: Code | None = None  # Python run on the GPU after install
    why: Prose | None = None


# --- env, resources, app, checklist --------------------------------------------------


class EnvVar(StrictModel):
    value: Text
    choices: list[Text] | None = None  # values the app accepts (read from its code)
    why: Prose | None = None


EnvValue = Annotated[
    Union[Annotated[Text, Tag("Str")], Annotated[EnvVar, Tag("EnvVar")]],
    Discriminator(lambda v: "EnvVar" if isinstance(v, (dict, EnvVar)) else "Str" if isinstance(v, str) else None,
                  custom_error_type="env_value",
                  custom_error_message="an env value is a string, or a mapping with `value:` (and `choices:`)"),
]


class Resources(StrictModel):
    ram_gb: Number = Field(gt=0)
    swap_gb: Number = Field(ge=0)
    disk_gb: Number = Field(gt=0)
    vram_gb: Number = Field(gt=0)
    shm_gb: Number | None = Field(default=None, gt=0, le=1024)  # /dev/shm in a container (compose shm_size)
    why: Prose | None = None


class AppImport(StrictModel):
    """`from MODULE import NAME`: the app's own entry point, importable from the env."""

    module: ModuleName
    name: Identifier


class App(StrictModel):
    """The upstream app: how `provision run` starts it and how verify proves it."""

    launch: Command  # the web UI, in the upstream tree: `python app.py`
    cli: Command | None = None  # the headless entry (`provision run --cli -- ARGS`)
    port: int = Field(default=7860, ge=1, le=65535)
    host: Host = "127.0.0.1"
    port_env: EnvName | None = None  # e.g. GRADIO_SERVER_PORT; else {port} in `launch`
    ready_path: Text = "/"  # the readiness probe asks http://HOST:PORT + this
    ready_timeout_s: int = Field(default=900, ge=1, le=86400)  # the app loads its weights first
    imports: list[AppImport] = Field(default_factory=list)
    smoke: Code | None = None  # builds the pipeline from the local weights offline (GPU machines)
    shims: list[Literal["gradio-boolean-schema"]] = Field(default_factory=list)

    @field_validator("ready_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not re.fullmatch(r"/[A-Za-z0-9._~/%-]*", v):
            raise ValueError(f"{v!r} is not a URL path like /")
        return v


class ImportCheck(StrictModel):
    kind: Literal["import"]
    module: ModuleName
    why: Prose | None = None


class KernelCheck(StrictModel):
    kind: Literal["kernel"]
    extension: PackageName
    why: Prose | None = None


class ApiCheck(StrictModel):
    kind: Literal["api"]
    name: Text
    code: Code  # Python that raises on failure
    fix: Prose
    why: Prose | None = None


class FileCheck(StrictModel):
    kind: Literal["file"]
    path: Text
    why: Prose | None = None


Check = Annotated[Union[ImportCheck, KernelCheck, ApiCheck, FileCheck], Field(discriminator="kind")]


# --- the target ----------------------------------------------------------------------


class TargetSpec(StrictModel):
    schema_version: Literal[1]
    name: TargetName
    description: Prose
    upstream: Upstream
    python: StrictStr
    include: list[Text] = Field(default_factory=list)
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
    notes: list[Prose] = Field(default_factory=list)

    @field_validator("python")
    @classmethod
    def _py(cls, v: str) -> str:
        if not re.fullmatch(r"3\.\d{1,2}", v):
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
