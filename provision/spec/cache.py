"""Specs that loaded cleanly, remembered: an unchanged spec is not parsed again.

Reading a spec's YAML with a file:line for every value (yamlloc.py) is most of what loading
costs; validating the merged data is cheap. So after a spec loads without a problem, its
merged data (plain JSON, before validation) is written to `cache_dir()/specs-v1/`, one file
per spec path, with every file it read and that file's sha256. The next load re-reads those
files; only when every byte is the same, and provision's version, its schema and its own code
(settings.code_fingerprint) are too, does it validate the remembered data instead of parsing
the YAML: the same checks, on the same data, give the same model. A spec with problems is
never remembered (its messages need the YAML's lines). An entry that cannot be read, is not of
the shape below, or was written for other bytes is ignored and replaced. It is JSON, read
like any untrusted file: never pickle, which would run code from the user's disk.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_text
from ..readers import InputError, load_json, read_bytes
from ..settings import cache_dir, code_fingerprint, version
from .fields import SCHEMA_VERSION

FORMAT = 1
MAX_ENTRY = 16 << 20
MAX_SPEC = 1 << 20  # yamlloc.MAX_BYTES: a larger file is refused by the loader, never cached


def _entry_path(spec: Path) -> Path:
    return cache_dir() / f"specs-v{FORMAT}" / (hashlib.sha256(str(spec).encode()).hexdigest()[:32] + ".json")


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(read_bytes(path, "a spec", MAX_SPEC)).hexdigest()
    except InputError:
        return None


def _key() -> dict[str, object]:
    return {"format": FORMAT, "provision": version(), "schema": SCHEMA_VERSION, "code": code_fingerprint()}


def lookup(path: Path) -> tuple[Any, list[Path]] | None:
    """(the merged data, every file it came from) if `path` is remembered for these bytes."""
    spec = path.resolve()
    entry = _entry_path(spec)
    try:
        e = load_json(entry, "a cached spec", MAX_ENTRY)
    except InputError:
        return None
    if not isinstance(e, dict) or set(e) != {*_key(), "path", "files", "data"}:
        return None
    if any(e[k] != v for k, v in _key().items()) or e["path"] != str(spec) or not isinstance(e["data"], dict):
        return None
    files = e["files"]
    if not isinstance(files, list) or not files or not all(
            isinstance(f, list) and len(f) == 2 and all(isinstance(x, str) for x in f) for f in files):
        return None
    if files[0][0] != str(spec) or any(_digest(Path(p)) != sha for p, sha in files):
        return None
    return e["data"], [Path(p) for p, _ in files]


def remember(path: Path, files: list[Path], data: Any) -> None:
    """Write the entry for a spec that loaded cleanly; a cache that cannot be written is no error."""
    try:
        text = json.dumps(data)  # in the YAML's order: it is the order plans and scripts list things in
        if json.loads(text) != data:  # a value JSON would change (a date, a number key): not cached
            return
    except (TypeError, ValueError):
        return
    digests = [[str(p), _digest(p)] for p in files]
    if any(d is None for _, d in digests):
        return
    entry = {**_key(), "path": str(path.resolve()), "files": digests, "data": data}
    try:
        atomic_write_text(_entry_path(path.resolve()), json.dumps(entry))
    except OSError:
        pass
