"""Before apply changes a prefix: may it change it, and is nobody else changing it now?

An env prefix must be new, empty, an environment provision made (it carries
PREFIX/share/provision/), or one the user names with --existing; never `/`, a system
directory or a home. One apply at a time per prefix: an exclusive lock in the data dir,
held for the whole run; a second apply on the same prefix waits (--wait) or stops at once,
naming the process that holds it. The lock is advisory and only keeps two provisions apart;
the state file is still written atomically, so correctness never depends on it.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import time
from pathlib import Path

from .. import paths
from .context import ApplyError

META = Path("share") / "provision"


def made_by_provision(prefix: Path) -> bool:
    meta = prefix / META
    return (meta / paths.MARKER).is_file() or (meta / "state.json").is_file()


def check_prefix(prefix: Path, data: Path, existing: bool) -> None:
    paths.refuse_prefix(prefix, "the env prefix")
    paths.refuse_prefix(data, "the data dir")
    if existing:
        if not (prefix / "bin" / "python").exists():
            raise ApplyError(f"--existing: no environment at {prefix} (no bin/python)",
                             hint="pass the prefix of the env to use, or drop --existing to create one")
        return
    if prefix.is_symlink() or (prefix.exists() and not prefix.is_dir()):
        raise ApplyError(f"the env prefix {prefix} exists and is not a directory", hint="choose another --prefix")
    if prefix.is_dir() and any(prefix.iterdir()) and not made_by_provision(prefix):
        raise ApplyError(f"{prefix} is not empty and is not an environment provision made",
                         hint="to build into an env you made yourself, pass --existing (provision then creates "
                              "nothing there and backs up any file it replaces); otherwise choose an empty --prefix")


class PrefixLock:
    """flock on LOCKS/<prefix digest>.lock for as long as apply works on a prefix. LOCKS must be
    one place for every apply that may name the prefix: for an env, inside it (PREFIX/share/
    provision/locks: two applies with different --data-dir, caches or users still meet there),
    for a toolkit its data dir."""

    def __init__(self, prefix: Path, locks: Path, wait: bool) -> None:
        self.prefix = prefix
        self.wait = wait
        key = hashlib.sha256(str(paths.real(prefix)).encode()).hexdigest()[:24]
        self.path = paths.owned_dir(locks) / f"{key}.lock"
        self.fd: int | None = None

    def __enter__(self) -> "PrefixLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            if not self.wait:
                os.close(fd)
                raise ApplyError(f"another provision apply is working on {self.prefix} ({holder})",
                                 hint="let it finish (a second one would build the same things at the same time), "
                                      "or pass --wait to queue behind it") from None
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
