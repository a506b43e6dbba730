"""The one place that decides where provision may write and what it may delete.

- `inside(root, rel)` joins a checked relative path to a root and refuses a result that
  lands outside it once every symlink on the way is resolved;
- `owned_dir(path)` creates a directory and leaves a marker in it: provision made it;
- `remove_tree` / `remove_file` delete only inside a given root, never the root itself,
  and a directory only when it, or a directory between it and the root, carries that
  marker: provision never deletes what it did not create;
- `refuse_prefix` keeps environments away from `/`, system directories and homes.

Every `shutil.rmtree` and `unlink` of the package goes through here (tests/test_layout.py
checks it), so a path that climbs out (`../`), a symlink planted on the way or a marker
that is missing ends in a ProvisionError, never in lost data.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import ProvisionError
from .ids import check_rel_path

MARKER = ".provision-owned"
# Directories no environment, data dir or output may be: deleting or overwriting in them loses a system.
SYSTEM_DIRS = ("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/opt", "/proc", "/root",
               "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local", "/var",
               "/mnt", "/media", "/mnt/c", "/mnt/wsl")


class PathRefused(ProvisionError):
    """A path outside the root it belongs to, or a deletion provision has no right to make."""


def real(p: Path) -> Path:
    """`p` with every symlink of its existing part resolved (the rest need not exist yet)."""
    p = Path(os.path.abspath(p))
    rest: list[str] = []
    while not (p.exists() or p.is_symlink()) and p != p.parent:
        rest.append(p.name)
        p = p.parent
    return p.resolve().joinpath(*reversed(rest))


def within(root: Path, p: Path) -> bool:
    """Is `p` (symlinks resolved) the root itself or below it?"""
    return real(p).is_relative_to(real(root))


def inside(root: Path, rel: str, what: str) -> Path:
    """root/rel, refused unless `rel` is a safe relative path and the result stays in `root`."""
    try:
        check_rel_path(rel, what)
    except ValueError as e:
        raise PathRefused(f"{what}: {e}", hint="nothing was written") from None
    p = Path(root).joinpath(*rel.split("/"))
    if not within(root, p.parent) or (p.is_symlink() and not within(root, p)):
        raise PathRefused(f"{what}: {p} leads outside {root} (a symlink on the way points elsewhere)",
                          hint="remove that symlink, or use another directory; nothing was written")
    return p


def owned_dir(path: Path) -> Path:
    """mkdir -p `path` and mark it as provision's (so it may later clean inside it)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    marker = path / MARKER
    if not marker.exists():
        marker.write_text("created by provision; provision may delete what is inside\n")
    return path


def scratch_dir(parent: Path, prefix: str) -> Path:
    """A new, marked temp directory in `parent` (so it can be swapped in, or removed on failure).
    If even the marker cannot be written (a full disk), the empty directory is removed again."""
    import tempfile

    d = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        (d / MARKER).write_text("created by provision; provision may delete what is inside\n")
    except BaseException:
        for child in d.iterdir():  # at most the half-written marker
            child.unlink()
        d.rmdir()
        raise
    return d


def is_owned(path: Path, root: Path) -> bool:
    """A marker in `path` or in a directory between it and `root` (root included)."""
    root_r, p = real(root), real(path)
    while True:
        if (p / MARKER).is_file():
            return True
        if p == root_r or p == p.parent:
            return False
        p = p.parent


def _check_removal(path: Path, root: Path, what: str) -> None:
    if not within(root, path) or real(path) == real(root):
        raise PathRefused(f"refusing to delete {path}: it is not inside {root} ({what})",
                          hint="this is a bug or a hostile input; nothing was deleted")


def remove_tree(path: Path, root: Path, what: str = "a directory provision made") -> None:
    """Delete a directory inside `root` that provision created; a symlink is unlinked, not followed."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return
    if path.is_symlink() or not path.is_dir():
        remove_file(path, root, what)
        return
    _check_removal(path, root, what)
    if not is_owned(path, root):
        raise PathRefused(f"refusing to delete {path}: provision did not create it (no {MARKER} in it or "
                          f"above it up to {root})", hint="move it away yourself if it should go; nothing was deleted")
    shutil.rmtree(path)


def remove_file(path: Path, root: Path, what: str = "a file provision made") -> None:
    """Delete one file (or symlink) inside `root`; a missing one is fine."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return
    if not within(root, path.parent):
        raise PathRefused(f"refusing to delete {path}: it is not inside {root} ({what})",
                          hint="this is a bug or a hostile input; nothing was deleted")
    if path.is_dir() and not path.is_symlink():
        raise PathRefused(f"refusing to delete {path}: a directory where a file was expected ({what})")
    path.unlink()


def refuse_prefix(path: Path, what: str) -> None:
    """An env prefix or data dir may not be a system directory, a home, or above a home."""
    p = real(path)
    home = real(Path.home())
    if str(p) in SYSTEM_DIRS or p == home or home.is_relative_to(p):
        raise PathRefused(f"{what} {path} is a system directory or a home directory",
                          hint="give a directory of its own, e.g. ~/.local/share/provision/envs/NAME")
