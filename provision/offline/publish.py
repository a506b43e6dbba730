"""`provision publish`: the extension builds apply cached (DATA/cache/ext/<name>-<digest>/) as
wheels in a build index, a directory (buildindex.add_to_dir) or an index server (upload).

Every cached build is input like any other (a cache can be seeded from a bundle): its key.json
must be a flat mapping of strings whose digest is the one its directory is named by, else it
is skipped and said so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..ids import PACKAGE, check_url
from ..plan.binary import digest_of
from ..readers import InputError, load_json
from .buildindex import add_to_dir, upload
from .wheels import BuiltWheel, WheelError, from_built_wheel, from_inplace_tar


@dataclass
class PublishReport:
    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # already there with other bytes: left as they were
    skipped: list[str] = field(default_factory=list)  # "name-digest: why"

    @property
    def changed(self) -> bool:
        return bool(self.added)


def _key(d: Path) -> tuple[dict[str, str] | None, str]:
    try:
        key = load_json(d / "key.json", "a build key (key.json)", max_bytes=1 << 16)
    except InputError as e:
        return None, e.message
    if not isinstance(key, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in key.items()):
        return None, "key.json is not a mapping of strings"
    if not PACKAGE.fullmatch(key.get("name", "")) or key.get("build") not in ("wheel", "inplace"):
        return None, "key.json names no extension or build kind"
    digest = digest_of(key)
    if d.name != f"{key['name']}-{digest}":
        return None, f"key.json hashes to {digest}, not the digest its directory is named by"
    return key, digest


def _version(d: Path) -> str:
    from packaging.version import InvalidVersion, Version

    try:
        meta = load_json(d / "meta.json", "a build's meta.json", max_bytes=1 << 16)
        return str(Version(meta["version"])) if isinstance(meta, dict) and isinstance(meta.get("version"), str) else "0"
    except (InputError, InvalidVersion):
        return "0"


def cached_wheels(data: Path, names: set[str] | None = None) -> tuple[list[BuiltWheel], list[str]]:
    """Every cached build under DATA/cache/ext as an index wheel, and what was skipped (why)."""
    root = Path(data) / "cache" / "ext"
    wheels: list[BuiltWheel] = []
    skipped: list[str] = []
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.endswith(".tmp")) if root.is_dir() else []
    for d in dirs:
        if not (d / "key.json").is_file():
            continue
        key, digest = _key(d)
        if key is None:
            skipped.append(f"{d.name}: {digest}")
            continue
        if names and key["name"] not in names:
            continue
        try:
            if key["build"] == "wheel":
                built = sorted(d.glob("*.whl"))
                if len(built) != 1:
                    skipped.append(f"{d.name}: expected one wheel, found {len(built)}")
                    continue
                wheels.append(from_built_wheel(built[0], key, digest))
            else:
                wheels.append(from_inplace_tar(d / "inplace.tar", key, digest, _version(d)))
        except WheelError as e:
            skipped.append(f"{d.name}: {e.message}")
    return wheels, skipped


def is_url(dest: str) -> bool:
    return bool(re.match(r"https?://", dest))


def publish(data: Path, dest: str, names: set[str] | None = None, sess=None) -> PublishReport:  # type: ignore[no-untyped-def]
    wheels, skipped = cached_wheels(data, names)
    rep = PublishReport(skipped=skipped)
    if is_url(dest):
        check_url(dest, "the index upload URL")
        if sess is None:
            from .download import session

            sess = session()
        for w in wheels:
            (rep.added if upload(dest, w, sess) == "added" else rep.unchanged).append(w.filename)
        return rep
    rep.added, rep.unchanged, rep.kept = add_to_dir(Path(dest), wheels)
    return rep
