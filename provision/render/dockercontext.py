"""The build context `provision dockerfile` writes: its files, provision's own tree, the wheels.

The effects beside the pure renderer (dockerfile.py): reading provision's tree and the
wheelhouse, checking that wheelhouse holds every dependency for the image's Python, and
writing DIR without ever losing a file of the user's. A file provision wrote (its first line
is dockerfile.MARK) or a directory it made, each file as it wrote it (paths.MARKER, LISTING), is
replaced; anything else of that name, or one of its directories you changed, is first kept as
NAME.bak (NAME.bak.1, ...). Each file is written to a temp file and
renamed, each directory built beside its place and swapped in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..errors import UsageError
from ..fsutil import atomic_write_bytes, backup_name
from .dockerfile import MARK

Content = bytes | Path  # text provision rendered, or a file to copy (a wheel)


@dataclass(frozen=True)
class Write:
    path: str  # relative to DIR
    action: str  # new | unchanged | replaced (provision's own) | backed-up (yours, kept as `backup`)
    backup: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"path": self.path, "action": self.action, "backup": self.backup}


def source_tree(target: str, variant: str, lockdir: Path) -> dict[str, Path]:
    """provision's package, the specs, the templates and the one lockfile the image installs from:
    what `python -m provision` needs inside the image (its checkout layout, so settings.py finds them)."""
    from ..lock.lockfile import lockfile_path
    from ..settings import PACKAGE_DIR, envs_dir, templates_dir

    out: dict[str, Path] = {}
    for root, rel, pattern in ((PACKAGE_DIR, "provision", "*.py"), (envs_dir(), "envs", "*.yaml"),
                               (templates_dir(), "templates", "*.j2")):
        for p in sorted(Path(root).rglob(pattern)):
            parts = p.relative_to(root).parts
            if "__pycache__" in parts or parts[0] == "_data" or p.is_symlink():
                continue
            out[f"{rel}/{'/'.join(parts)}"] = p
    lock = lockfile_path(lockdir, target, variant)
    out[f"lockfiles/{target}/{variant}/{lock.name}"] = lock
    return out


def requirements() -> tuple[str, ...]:
    """provision's own dependencies, as its installed metadata says (extras left out)."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        reqs = requires("provision") or []
    except PackageNotFoundError:
        raise UsageError("provision's metadata is not installed, so its dependencies are unknown",
                         hint="install provision (pip install -e .) and run it from there") from None
    return tuple(r for r in reqs if "extra ==" not in r)


# --- the wheelhouse -----------------------------------------------------------------------------

_MARKERS = {"python_version": "3.10", "python_full_version": "3.10.12", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "sys_platform": "linux", "platform_system": "Linux",
            "platform_machine": "x86_64", "os_name": "posix", "implementation_version": "3.10.12"}


def _supported_tags() -> set[object]:
    """What pip on CPython 3.10, glibc 2.35, x86_64 (Ubuntu 22.04, and the env's conda Python) installs."""
    from packaging import tags

    plats = [f"manylinux_2_{m}_x86_64" for m in range(35, 4, -1)] + [
        "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]
    return set(tags.cpython_tags((3, 10), platforms=plats)) | set(tags.compatible_tags((3, 10), "cp310", plats))


def check_wheelhouse(d: Path, reqs: tuple[str, ...]) -> list[str]:
    """Every requirement, and everything it requires in turn, that `d` holds no fitting wheel of;
    empty when pip can install them all from `d` with --no-index."""
    import zipfile
    from email.parser import Parser

    from packaging.requirements import Requirement
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

    ok_tags = _supported_tags()
    wheels: dict[str, list[tuple[object, Path]]] = {}
    for p in sorted(d.glob("*.whl")):
        try:
            name, version, _, wtags = parse_wheel_filename(p.name)
        except InvalidWheelFilename:
            continue
        if wtags & ok_tags:
            wheels.setdefault(name, []).append((version, p))
    missing, seen, queue = [], set(), [(Requirement(r), "") for r in reqs]
    while queue:
        req, extra = queue.pop(0)
        if req.marker is not None and not req.marker.evaluate({**_MARKERS, "extra": extra}):
            continue
        key = (canonicalize_name(req.name), str(req.specifier), tuple(sorted(req.extras)))
        if key in seen:
            continue
        seen.add(key)
        fit = [(v, p) for v, p in wheels.get(key[0], []) if req.specifier.contains(v, prereleases=True)]
        if not fit:
            missing.append(str(req))
            continue
        _, path = max(fit, key=lambda t: t[0])
        try:
            with zipfile.ZipFile(path) as z:
                meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
                deps = Parser().parsestr(z.read(meta).decode("utf-8", "replace")).get_all("Requires-Dist") or []
        except (OSError, zipfile.BadZipFile, StopIteration, KeyError):
            missing.append(f"{req} ({path.name} is not a wheel pip can read)")
            continue
        for dep in deps:
            queue += [(Requirement(dep), x) for x in ([""] + sorted(req.extras))]
    return sorted(set(missing))


def wheelhouse_hint(reqs: tuple[str, ...], d: str) -> str:
    """The `pip download` that makes it. Markers are dropped: pip evaluates them for the Python it runs on,
    not for --python-version, so on 3.11 it would skip what 3.10 needs (tomli)."""
    import shlex

    from packaging.requirements import Requirement

    plain = []
    for r in reqs:
        req = Requirement(r)
        req.marker = None
        plain.append(str(req))
    return ("make it on a machine that reaches PyPI: pip download --dest " + shlex.quote(d) + " --only-binary=:all: "
            "--python-version 3.10 --implementation cp --platform manylinux_2_28_x86_64 --platform "
            "manylinux2014_x86_64 " + " ".join(shlex.quote(r) for r in plain))


# --- writing DIR -------------------------------------------------------------------------------


def _read(c: Content) -> bytes:
    return c.read_bytes() if isinstance(c, Path) else c


def _file_action(p: Path, data: bytes) -> Write:
    rel = p.name
    if not (p.exists() or p.is_symlink()):
        return Write(rel, "new")
    if p.is_file() and not p.is_symlink():
        old = p.read_bytes()
        if old == data:
            return Write(rel, "unchanged")
        if old.startswith(MARK.encode()):
            return Write(rel, "replaced")
    return Write(rel, "backed-up", backup_name(p).name)


LISTING = ".provision-files"  # sha256 and path of every file provision wrote into a directory of its own


def _digests(tree: Mapping[str, bytes]) -> dict[str, str]:
    import hashlib

    return {r: hashlib.sha256(b).hexdigest() for r, b in tree.items()}


def _listing(tree: Mapping[str, bytes]) -> bytes:
    return "".join(f"{h}  {r}\n" for r, h in sorted(_digests(tree).items())).encode()


def _listed(d: Path) -> dict[str, str]:
    out = {}
    for line in (d / LISTING).read_text(errors="replace").splitlines():
        digest, _, rel = line.partition("  ")
        out[rel] = digest
    return out


def _as_written(d: Path) -> bool:
    """Is `d` a directory provision made here, every file in it as provision wrote it (no file of yours)?"""
    if d.is_symlink() or not d.is_dir() or not (d / paths.MARKER).is_file() or not (d / LISTING).is_file():
        return False
    have = {p.relative_to(d).as_posix(): p for p in d.rglob("*") if not p.is_dir() or p.is_symlink()}
    have.pop(paths.MARKER)
    have.pop(LISTING)
    if any(p.is_symlink() for p in have.values()):
        return False
    return _digests({r: p.read_bytes() for r, p in have.items()}) == _listed(d)


def _tree_action(d: Path, tree: Mapping[str, bytes]) -> Write:
    rel = d.name + "/"
    if not (d.exists() or d.is_symlink()):
        return Write(rel, "new")
    if _as_written(d):
        return Write(rel, "unchanged" if _listed(d) == _digests(tree) else "replaced")
    return Write(rel, "backed-up", backup_name(d).name)  # yours, or one of ours you changed: kept whole


def _check_out(out: Path) -> None:
    paths.refuse_prefix(out, "--out")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UsageError(f"--out {out} exists and is not a directory",
                         hint="give a directory (new, or one provision dockerfile wrote before) for the build context")


def plan_writes(out: Path, files: Mapping[str, Content], trees: Mapping[str, Mapping[str, Content]]) -> list[Write]:
    """What writing would do to each top-level name in `out`; nothing is written."""
    _check_out(out)
    acts = [_file_action(out / name, _read(c)) for name, c in files.items()]
    return acts + [_tree_action(out / name, {r: _read(c) for r, c in tree.items()}) for name, tree in trees.items()]


def write_context(out: Path, files: Mapping[str, Content], trees: Mapping[str, Mapping[str, Content]]) -> list[Write]:
    """Write the build context into `out`; returns what was done to each name."""
    acts = plan_writes(out, files, trees)
    out.mkdir(parents=True, exist_ok=True)
    by_name = {a.path.rstrip("/"): a for a in acts}
    for name, c in files.items():
        a = by_name[name]
        if a.action == "unchanged":
            continue
        if a.action == "backed-up":
            os.replace(out / name, out / (a.backup or ""))
        atomic_write_bytes(out / name, _read(c))
    for name, tree in trees.items():
        a = by_name[name]
        if a.action != "unchanged":
            _swap_tree(out, name, tree, a)
    return acts


def _swap_tree(out: Path, name: str, tree: Mapping[str, Content], a: Write) -> None:
    tmp = paths.scratch_dir(out, f".{name}.")  # marked: provision made it, and may replace it next time
    try:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 would reach the image through COPY
        data = {rel: _read(c) for rel, c in tree.items()}
        for rel, b in data.items():
            p = paths.inside(tmp, rel, f"a file of {name}/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b)
        (tmp / LISTING).write_bytes(_listing(data))
        dest = out / name
        if a.action == "backed-up":
            os.replace(dest, out / (a.backup or ""))
        elif a.action == "replaced":
            old = paths.scratch_dir(out, f".{name}.old.")
            os.replace(dest, old / name)
            tmp.rename(dest)
            paths.remove_tree(old, out, f"the {name}/ it replaces")
            return
        tmp.rename(dest)
    except BaseException:
        if tmp.exists():
            paths.remove_tree(tmp, out, f"a half-written {name}/")
        raise


__all__ = ["Write", "check_wheelhouse", "plan_writes", "requirements", "source_tree", "wheelhouse_hint",
           "write_context"]
