"""Writing files safely: a temp file beside the target, then an atomic rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so a reader sees the old file or the new one, never half of it."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """A temp file beside `path`, fsynced, then renamed over it; `mode` (default: what the umask
    gives a new file, not mkstemp's 0600) is set before the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        from .paths import remove_file

        remove_file(Path(tmp), path.parent, "an unfinished temporary file")
        raise


def backup_name(path: Path) -> Path:
    """`<name>.bak`, else `<name>.bak.1`, `.bak.2`, ...: a backup never overwrites an older backup."""
    cand = path.with_name(path.name + ".bak")
    n = 0
    while cand.exists() or cand.is_symlink():
        n += 1
        cand = path.with_name(f"{path.name}.bak.{n}")
    return cand


def write_ours(path: Path, text: str, marker: str = "# provision") -> Path | None:
    """Write a file provision owns by name (an activation script, a .pth shim). A file of that
    name that differs and that provision did not write (it lacks `marker` at its top) is kept
    as a backup first; returns that backup, if one was made."""
    path = Path(path)
    backup = None
    if path.is_file() and not path.is_symlink():
        old = path.read_text(errors="replace")
        if old != text and not old.startswith(marker):
            backup = backup_name(path)
            os.replace(path, backup)
    atomic_write_text(path, text)
    return backup


def file_digest(path: Path, algo: str = "sha256") -> str:
    """A file's hex digest, read in 1 MiB chunks (weights are GBs: never read whole)."""
    import hashlib

    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
