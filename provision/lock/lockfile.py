"""conda-lock's unified lockfile, built and parsed with conda-lock's own models.

We write no YAML of our own: `conda_lock.lockfile.write_conda_lock_file` does, so
`conda-lock install`, `conda-lock render` and micromamba read what we write. Nothing
time- or machine-dependent goes in (no timestamps, no git user), so the same inputs give
the same bytes. provision's own facts travel in `custom_metadata`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import LockError
from .conda import CondaRecord, channel_url
from .inputs import LockInputs
from .pip import PipRecord

FILENAME = "conda-lock.yml"
META_TARGET = "provision-target"
META_VARIANT = "provision-variant"
META_INPUTS = "provision-inputs-sha256"
META_EXCLUDE_NEWER = "provision-exclude-newer"
META_SNAPSHOT = "provision-conda-from"
META_CUDA = "provision-cuda-toolkit"
META_TOOLKIT = "provision-toolkit"  # the CUDA toolkit version of the cuda-toolkit category
META_TOOLKIT_DIGEST = "provision-toolkit-sha256"  # names the shared toolkit prefix apply installs it into
META_TOOLKIT_CXX = "provision-toolkit-cxx"  # the conda g++ the toolkit brings (for hosts whose gcc nvcc refuses)
META_PREBUILT = "provision-prebuilt"  # the extensions installed from a hashed prebuilt wheel in this lock ("none")
META_EXT = "provision-ext-"  # + extension name: how the lock has it installed, and why (prebuilt.py)


def lockfile_path(lockdir: Path, target: str, variant: str) -> Path:
    return lockdir / target / variant / FILENAME


def _conda_dep(d: str) -> tuple[str, str]:
    name, _, spec = d.strip().partition(" ")
    return name, spec.strip() or "*"


def toolkit_digest(sha256s: list[str]) -> str:
    """One hash for a toolkit's exact files: two locks share a toolkit prefix only if they agree."""
    import hashlib

    return hashlib.sha256("".join(sorted(f"{s or ''}\n" for s in sha256s)).encode()).hexdigest()


def build(inputs: LockInputs, conda: list[CondaRecord], pip: list[PipRecord], source: str,
          exclude_newer: str, conda_from: str, cuda_toolkit: str, toolkit_digest: str | None = None) -> object:
    """The conda-lock model of one variant on one platform."""
    from conda_lock.lockfile.v1.models import DependencySource, HashModel, LockMeta
    from conda_lock.lockfile.v2prelim.models import LockedDependency, Lockfile
    from conda_lock.models.channel import Channel

    pkgs = []
    for r in conda:
        pkgs.append(LockedDependency(
            name=r.name, version=r.version, manager="conda", platform=inputs.platform,
            dependencies=dict(sorted(_conda_dep(d) for d in r.depends)),
            url=r.url, hash=HashModel(md5=r.md5, sha256=r.sha256), build=r.build,
            categories={r.category},
        ))
    for p in pip:
        pkgs.append(LockedDependency(
            name=p.name, version=p.version, manager="pip", platform=inputs.platform,
            dependencies={d: "*" for d in p.dependencies},
            url=p.url, hash=HashModel(sha256=p.sha256),
            source=DependencySource(type="url", url=p.source_url) if p.source_url else None,
            categories=set(p.categories),
        ))
    channels = list(dict.fromkeys([*inputs.channels, *(
        [inputs.cuda_channel] if any(r.category != "main" for r in conda) else [])]))
    meta = LockMeta(
        content_hash={inputs.platform: inputs.digest()},
        channels=[Channel.from_string(channel_url(c)) for c in channels],
        platforms=[inputs.platform],
        sources=[source],
        custom_metadata={
            META_TARGET: inputs.target,
            META_VARIANT: inputs.variant,
            META_INPUTS: inputs.digest(),
            META_EXCLUDE_NEWER: exclude_newer,
            META_SNAPSHOT: conda_from,
            META_CUDA: cuda_toolkit,
            **({META_TOOLKIT: inputs.toolkit, META_TOOLKIT_DIGEST: toolkit_digest} if toolkit_digest else {}),
            **({META_TOOLKIT_CXX: cxx} if (cxx := next((r.version for r in conda if r.category != "main"
                                                         and r.name == "gxx_impl_linux-64"), None)) else {}),
            **({META_PREBUILT: ",".join(c["extension"] for c in inputs.prebuilt if c["kind"] == "wheel") or "none"}
               if inputs.prebuilt else {}),
            **{f"{META_EXT}{c['extension']}": c["text"] for c in inputs.prebuilt},
        },
    )
    return Lockfile(package=pkgs, metadata=meta)


def prebuilt(lock: object) -> frozenset[str]:
    """The extensions this lock installs from their project's hashed wheel (no build, no source)."""
    names = str(custom(lock, META_PREBUILT) or "")
    return frozenset(n for n in names.split(",") if n and n != "none")


def render(lock: object, header: str = "") -> str:
    """Our header (templates/conda-lock-header.j2), then exactly what conda-lock writes."""
    from conda_lock.lockfile import write_conda_lock_file

    with tempfile.TemporaryDirectory(prefix="provision-lock-") as tmp:
        path = Path(tmp) / FILENAME
        write_conda_lock_file(lock, path, metadata_choices=None, include_help_text=False)  # type: ignore[arg-type]
        return header + path.read_text()


def read(path: Path) -> object:
    from conda_lock.lockfile import parse_conda_lock_file

    try:
        return parse_conda_lock_file(path)
    except FileNotFoundError:
        raise LockError(f"{path}: no lockfile", hint="run `provision lock` for this target and variant") from None
    except Exception as e:  # conda-lock raises pydantic and yaml errors as they come
        raise LockError(f"{path}: not a conda-lock file conda-lock can read: {_where(path, e)}",
                        hint="re-create it with `provision lock`") from None


def _where(path: Path, e: Exception) -> str:
    """pydantic says `package.146.hash.sha256`: name the package (and its version) instead."""
    errors = getattr(e, "errors", None)
    if not callable(errors):
        return str(e)[:500]
    import yaml

    try:
        pkgs = yaml.safe_load(path.read_text()).get("package") or []
    except Exception:  # as damaged as it said: its own words will do
        pkgs = []
    out = []
    for err in errors(include_url=False)[:5]:
        loc = list(err.get("loc", ()))
        if len(loc) > 1 and loc[0] == "package" and isinstance(loc[1], int) and loc[1] < len(pkgs) \
                and isinstance(pkgs[loc[1]], dict):
            p = pkgs[loc[1]]
            loc[:2] = [f"package {p.get('name')!s} {p.get('version')!s} ({p.get('manager')!s})"]
        out.append(f"{'.'.join(map(str, loc))}: {err.get('msg')} (got {str(err.get('input'))[:80]!r})")
    return "; ".join(out)


@dataclass(frozen=True)
class Staleness:
    path: Path
    expected: str
    found: str | None

    @property
    def fresh(self) -> bool:
        return self.found == self.expected


def check(path: Path, inputs: LockInputs, lock: object | None = None) -> Staleness:
    """Does the lockfile at `path` (`lock`, when the caller parsed it already) record the inputs the
    spec gives now?"""
    lock = read(path) if lock is None else lock
    found = (lock.metadata.custom_metadata or {}).get(META_INPUTS)  # type: ignore[attr-defined]
    return Staleness(path, inputs.digest(), found)


def custom(lock: object, key: str) -> str | None:
    return (lock.metadata.custom_metadata or {}).get(key)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PipPin:
    name: str
    version: str
    url: str
    sha256: str | None
    git: str | None  # git+URL@commit: built from source with --no-deps, not hash-checked by pip


def pip_pins(lock: object, platform: str = "linux-64", category: str = "main") -> list[PipPin]:
    """The pip half of a lockfile (what the env installs; category cuda-toolkit: the toolkit's
    wheels), in install order, split into hashed files and git pins."""
    out = []
    for p in lock.package:  # type: ignore[attr-defined]
        if p.manager != "pip" or p.platform != platform or category not in p.categories:
            continue
        git = p.source.url if p.source is not None and p.source.url.startswith("git+") else None
        out.append(PipPin(p.name, p.version, p.url, p.hash.sha256, git))
    return out


def conda_records(lock: object, platform: str = "linux-64", categories: set[str] | None = None) -> list[object]:
    return [p for p in lock.package  # type: ignore[attr-defined]
            if p.manager == "conda" and p.platform == platform
            and (categories is None or p.categories & categories)]
