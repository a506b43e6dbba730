"""Does a lockfile's body still say what its spec and its own metadata say? (pure)

`lock --check` compares the digest of the spec's lock inputs with the one the lockfile records:
that catches a changed spec, not an edited lockfile. A lock is edited by hand more often than
anyone admits (a version bumped to dodge a bug, an entry deleted, one variant's file copied
into another's folder), and apply would install it without a word. This reads the parsed lock
back against the inputs: every exact pin and override at its version, every range satisfied,
every dependency a locked package names present, each file's name agreeing with the package
and version it is recorded for, each sha256 well formed, and the toolkit metadata matching the
toolkit records. It cannot tell a consistent forgery from the real thing: the lockfile is the
root of trust, and review of its diff is what protects it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (InvalidSdistFilename, InvalidWheelFilename, canonicalize_name, parse_sdist_filename,
                             parse_wheel_filename)
from packaging.version import InvalidVersion, Version

from .. import ids
from .inputs import LockInputs
from .lockfile import META_TARGET, META_TOOLKIT, META_TOOLKIT_DIGEST, META_VARIANT, custom, toolkit_digest


def _wanted(inputs: LockInputs, locked: set[str]) -> dict[str, Requirement]:
    """name -> the requirement the spec puts on it; an override replaces every other, and binds only
    a package the resolution has (uv's overrides change a version, they add no package)."""
    out: dict[str, Requirement] = {}
    for line in [*inputs.requirements, *inputs.toolkit_requirements]:
        try:
            r = Requirement(line)
        except InvalidRequirement:
            continue
        if r.marker is None:  # named with no version: still a package the lock must hold
            key = canonicalize_name(r.name)
            out[key] = r if key not in out else Requirement(f"{r.name}{out[key].specifier & r.specifier}")
    for line in inputs.overrides:
        r = Requirement(line)
        key = canonicalize_name(r.name)
        if key in out or key in locked:
            out[key] = r
    return out


def _file_problem(name: str, version: str, url: str) -> str | None:
    """A file whose name says another package or version than its record."""
    fname = ids.url_file_name(url)
    try:
        if fname.endswith(".whl"):
            fn, fv, _, _ = parse_wheel_filename(fname)
        else:
            fn, fv = parse_sdist_filename(fname)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return f"{name} {version}: {fname!r} is not a wheel or sdist file name"
    try:
        same = fn == canonicalize_name(name) and fv == Version(version)
    except InvalidVersion:
        return f"{name}: {version!r} is not a version"
    return None if same else f"{name} {version}: its file {fname} is {fn} {fv}"


def _origin(url: str) -> tuple[str, str]:
    u = urlsplit(url)
    return u.scheme, (u.hostname or "").lower()


def problems(lock: object, inputs: LockInputs) -> list[str]:
    """What in the lock's body contradicts the spec's inputs or the lock's own metadata."""
    out: list[str] = []
    for key, want in ((META_TARGET, inputs.target), (META_VARIANT, inputs.variant)):
        found = custom(lock, key)
        if found != want:
            out.append(f"{key} is {found!r}, this file's place says {want!r} (a lockfile copied from another "
                       "target or variant?)")
    pkgs = [p for p in lock.package if p.platform == inputs.platform]  # type: ignore[attr-defined]
    pip = {canonicalize_name(p.name): p for p in pkgs if p.manager == "pip"}
    conda = {p.name for p in pkgs if p.manager == "conda"}
    indexes = {i.name: i for i in inputs.indexes}
    for key, req in sorted(_wanted(inputs, set(pip)).items()):
        p = pip.get(key)
        if p is None:
            out.append(f"{req}: the spec asks for it, the lock has no {key}")
        elif not req.specifier.contains(p.version, prereleases=True):
            out.append(f"{key} {p.version}: the spec asks for {req}")
    for key, p in sorted(pip.items()):
        for dep in p.dependencies:
            if canonicalize_name(dep) not in pip and dep not in conda:
                out.append(f"{key} {p.version} needs {dep}, which the lock does not hold")
        git = p.source is not None and str(p.source.url).startswith("git+")
        if git:
            continue
        sha = p.hash.sha256
        if not (isinstance(sha, str) and ids.SHA256.fullmatch(sha)):
            out.append(f"{key} {p.version}: sha256 {sha!r} is not 64 hex digits")
        if (bad := _file_problem(p.name, p.version, p.url)) is not None:
            out.append(bad)
        index = indexes.get(inputs.sources.get(key, ""))
        if index is not None and index.kind == "simple" and _origin(p.url) != _origin(index.url):
            out.append(f"{key} {p.version}: the spec takes it from {index.url}; the lock's file is at {p.url}")
    toolkit = [p for p in pkgs if (p.manager == "conda" and "main" not in p.categories)
               or (p.manager == "pip" and "cuda-toolkit" in p.categories)]
    recorded = custom(lock, META_TOOLKIT_DIGEST)
    if toolkit or recorded:
        if custom(lock, META_TOOLKIT) != inputs.toolkit:
            out.append(f"{META_TOOLKIT} is {custom(lock, META_TOOLKIT)!r}; the spec's toolkit for "
                       f"{inputs.variant} is {inputs.toolkit!r}")
        digest = toolkit_digest([p.hash.sha256 for p in toolkit])
        if recorded != digest:
            out.append(f"{META_TOOLKIT_DIGEST} {str(recorded)[:12]}... does not name the toolkit records the lock "
                       f"holds ({digest[:12]}...)")
    return out


def summary(problems: list[str], shown: int = 3) -> str:
    """The first few, and how many more: one line for a check's detail or an error."""
    more = f" (and {len(problems) - shown} more)" if len(problems) > shown else ""
    return "; ".join(problems[:shown]) + more
