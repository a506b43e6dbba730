"""Where things are: every path and environment variable provision reads, in one place."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _project_root() -> Path:
    """The checkout (editable install) or the data shipped inside the wheel."""
    env = os.environ.get("PROVISION_ROOT")
    if env:
        return Path(env)
    repo = PACKAGE_DIR.parent
    if (repo / "envs").is_dir():
        return repo
    return PACKAGE_DIR / "_data"


ROOT = _project_root()


def envs_dir() -> Path:
    return Path(os.environ.get("PROVISION_ENVS", ROOT / "envs"))


def templates_dir() -> Path:
    return ROOT / "templates"


def display_path(path: Path) -> str:
    """Relative to the working directory when under it: errors read `envs/trellis.yaml:14`."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _from_env(var: str, fallback_var: str, *fallback: str) -> Path:
    """A directory named by the environment; a value with a control character is refused (it
    would end up inside generated scripts)."""
    value = os.environ.get(var)
    path = Path(value) if value else Path(os.environ.get(fallback_var) or os.path.join(os.path.expanduser("~"), *fallback)) / "provision"
    text = os.path.abspath(path)
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        from .errors import UsageError

        raise UsageError(f"${var if value else fallback_var} holds a control character: {text!r}",
                         hint=f"export {var}=DIR with a one-line path")
    return Path(text)


def data_dir() -> Path:
    """Where provision keeps envs, sources, wheels and weights: $PROVISION_DATA or XDG data home."""
    return _from_env("PROVISION_DATA", "XDG_DATA_HOME", ".local", "share")


def cache_dir() -> Path:
    """Solver and index caches (rattler's repodata, uv's wheels): $PROVISION_CACHE or XDG cache home."""
    return _from_env("PROVISION_CACHE", "XDG_CACHE_HOME", ".cache")


def lockfiles_dir() -> Path:
    """The committed lockfiles: lockfiles/<target>/<variant>/conda-lock.yml."""
    return Path(os.environ.get("PROVISION_LOCKFILES", ROOT / "lockfiles"))


def version() -> str:
    import provision

    return provision.__version__


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """provision's version and its own code as it is on disk: where it is, and each module's
    path, size and mtime (what Python's bytecode cache checks). Part of every cache key, so an
    edit, an upgrade or another checkout never reads what a different provision remembered."""
    import hashlib

    h = hashlib.sha256(f"{version()}\0{PACKAGE_DIR}\0".encode())
    for d, subdirs, files in sorted(os.walk(PACKAGE_DIR)):
        subdirs[:] = sorted(x for x in subdirs if x != "__pycache__")
        for name in sorted(f for f in files if f.endswith(".py")):
            st = os.stat(os.path.join(d, name))
            h.update(f"{os.path.relpath(os.path.join(d, name), PACKAGE_DIR)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()


def hosts_file() -> Path:
    """The hosts file `provision run` checks for a localhost line: $PROVISION_HOSTS_FILE (tests) or /etc/hosts."""
    return Path(os.environ.get("PROVISION_HOSTS_FILE") or "/etc/hosts")
