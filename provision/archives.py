"""Unpacking archives that came from a network or a USB stick, with nothing written until the
whole listing is checked (pip's unpacking.py: every member inside the destination first).

Refused before the first byte is written: absolute names, `..`, backslashes, drive letters,
symlinks and hard links, device files, duplicate names, and archives that expand past a
size limit (a zip bomb). GitHub's source archives put everything under one `<repo>-<ref>/`
directory, which `strip_top` removes.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from .errors import ProvisionError
from .ids import check_rel_path
from .paths import MARKER, owned_dir, remove_file, remove_tree

MAX_TOTAL = 64 << 30  # 64 GiB: far above any source archive or build, far below a bomb
MAX_MEMBERS = 200_000


class ArchiveError(ProvisionError):
    """An archive that is not one, or one whose members would land outside their directory."""


def _names(members: list[tuple[str, bool, bool, int]], archive: Path, strip_top: bool) -> list[str | None]:
    """Each member's path below the destination (None for the stripped top directory)."""
    if len(members) > MAX_MEMBERS:
        raise ArchiveError(f"{archive}: {len(members)} members is too many for a source archive")
    out: list[str | None] = []
    seen: set[str] = set()
    total = 0
    tops = set()
    for name, is_dir, is_link, size in members:
        total += max(size, 0)
        if total > MAX_TOTAL:
            raise ArchiveError(f"{archive}: expands to more than {MAX_TOTAL >> 30} GiB (a zip bomb?)",
                               hint="nothing was written")
        if is_link:
            raise ArchiveError(f"{archive}: member {name!r} is a link: refused (it could point anywhere)",
                               hint="nothing was written; re-create the archive without links")
        clean = name.rstrip("/")
        parts = PurePosixPath(clean).parts
        if strip_top:
            tops.add(parts[0] if parts else "")
            parts = parts[1:]
        if not parts:
            out.append(None)
            continue
        rel = "/".join(parts)
        try:
            check_rel_path(rel, f"member {name!r}")
        except ValueError as e:
            raise ArchiveError(f"{archive}: {e}", hint="nothing was written; this archive tries to write outside "
                                                        "its directory") from None
        if rel in seen and not is_dir:
            raise ArchiveError(f"{archive}: member {rel!r} appears twice", hint="nothing was written")
        seen.add(rel)
        out.append(rel)
    if strip_top and len(tops) > 1:
        raise ArchiveError(f"{archive}: expected one top directory (<repo>-<commit>/), found {len(tops)}",
                           hint="nothing was written; is this a GitHub source archive?")
    return out


def check_zip(archive: Path, strip_top: bool = False) -> list[str]:
    """The member paths of a zip that passes every check (or ArchiveError)."""
    try:
        with zipfile.ZipFile(archive) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        head = archive.read_bytes()[:60] if archive.is_file() else b""
        raise ArchiveError(f"{archive}: not a zip archive ({e}); it starts with {head!r}",
                           hint="a proxy's error page saved as the archive? re-run `provision mirror` to fetch it "
                                "again") from None
    members = [(i.filename, i.is_dir(), stat.S_ISLNK(i.external_attr >> 16), i.file_size) for i in infos]
    return [n for n in _names(members, archive, strip_top) if n]


def extract_zip(archive: Path, dst: Path, strip_top: bool = False) -> None:
    """Unpack a checked zip into `dst` (replaced whole: built beside it, then renamed in)."""
    check_zip(archive, strip_top)
    tmp = dst.with_name(dst.name + ".extracting")
    remove_tree(tmp, dst.parent, "a half-finished extraction")
    owned_dir(tmp)
    with zipfile.ZipFile(archive) as z:
        infos = z.infolist()
        rels = _names([(i.filename, i.is_dir(), False, i.file_size) for i in infos], archive, strip_top)
        for info, rel in zip(infos, rels):
            if rel is None:
                continue
            out = tmp.joinpath(*rel.split("/"))
            if info.is_dir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(out, "wb") as f:
                shutil.copyfileobj(src, f)
            mode = (info.external_attr >> 16) & 0o777
            if mode & 0o111:
                os.chmod(out, 0o755)
    remove_file(tmp / MARKER, tmp)  # the tree is the archive's now, not provision's scratch space
    os.replace(tmp, dst)


def extract_tar(archive: Path, dst: Path) -> None:
    """Unpack a checked tar into `dst`, which must not exist yet."""
    try:
        with tarfile.open(archive) as t:
            members = t.getmembers()
            _names([(m.name, m.isdir(), m.issym() or m.islnk(), m.size) for m in members if not m.isdev()],
                   archive, False)
            if any(m.isdev() for m in members):
                raise ArchiveError(f"{archive}: holds device files: refused", hint="nothing was written")
            dst.mkdir(parents=True)
            t.extractall(dst, filter="data") if hasattr(tarfile, "data_filter") else t.extractall(dst)  # noqa: S202
    except (tarfile.TarError, OSError) as e:
        raise ArchiveError(f"{archive}: not a readable tar archive ({e})") from None
