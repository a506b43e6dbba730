"""Where things are: every path and environment variable provision reads, in one place."""

from __future__ import annotations

import os
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


def data_dir() -> Path:
    """Where provision keeps envs, sources, wheels and weights: $PROVISION_DATA or XDG data home."""
    if os.environ.get("PROVISION_DATA"):
        return Path(os.environ["PROVISION_DATA"])
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "provision"


def cache_dir() -> Path:
    """Solver and index caches (rattler's repodata, uv's wheels): $PROVISION_CACHE or XDG cache home."""
    if os.environ.get("PROVISION_CACHE"):
        return Path(os.environ["PROVISION_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "provision"


def lockfiles_dir() -> Path:
    """The committed lockfiles: lockfiles/<target>/<variant>/conda-lock.yml."""
    return Path(os.environ.get("PROVISION_LOCKFILES", ROOT / "lockfiles"))
