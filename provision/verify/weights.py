"""Are a model's weights all there? The Hugging Face cache read as the app will read it.

A snapshot directory can exist and still miss what the pipeline loads: field note 000 §4
found a checkpoint's .json absent, field note 001 met a 404 on `ckpts/<model>.json`. This
check reads the repo's own manifest (TRELLIS and TRELLIS.2: pipeline.json, whose
`args.models` name each checkpoint as `ckpts/<name>`, or `<org>/<repo>/ckpts/<name>` in
another repo) and wants the `.json` and `.safetensors` of every model it names, every file
pattern of the spec matched, every link resolving, and every blob matching the checksum it
is named by (sha256 for LFS files, the git blob sha1 for small ones, as huggingface_hub
names them). Hashing gigabytes each run would make verify slow: a blob's result is kept,
keyed by its size and mtime, in DATA/cache/verified-weights.json.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_text

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SHA1 = re.compile(r"[0-9a-f]{40}")


def hub_dir(env: dict[str, str]) -> Path:
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"])
    return Path(env.get("HF_HOME") or Path.home() / ".cache" / "huggingface") / "hub"


def snapshot(hub: Path, repo: str, revision: str) -> Path | None:
    """The snapshot directory huggingface_hub would use for repo@revision offline."""
    d = hub / ("models--" + repo.replace("/", "--"))
    commit = revision
    if not _SHA1.fullmatch(revision):
        ref = d / "refs" / revision
        try:
            commit = ref.read_text().strip()
        except OSError:
            return None
    s = d / "snapshots" / commit
    return s if s.is_dir() else None


def _files(snap: Path) -> list[str]:
    return sorted(p.relative_to(snap).as_posix() for p in snap.rglob("*") if p.is_file() or p.is_symlink())


def manifest_models(snap: Path) -> list[str]:
    """The checkpoints a pipeline.json names (empty when the repo has none)."""
    try:
        data = json.loads((snap / "pipeline.json").read_text())
    except (OSError, ValueError):
        return []
    models = data.get("args", {}).get("models", {}) if isinstance(data, dict) else {}
    return [v for v in models.values() if isinstance(v, str)] if isinstance(models, dict) else []


class Stamps:
    """Checksums already proven, by blob path, size and mtime."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.known: dict[str, list[int]] = {}
        self.changed = False
        if path is not None:
            try:
                loaded = json.loads(path.read_text())
                self.known = {k: v for k, v in loaded.items() if isinstance(v, list)} if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                pass

    def ok(self, blob: Path) -> bool:
        st = blob.stat()
        if self.known.get(str(blob)) == [st.st_size, st.st_mtime_ns]:
            return True
        if not _matches(blob):
            return False
        self.known[str(blob)] = [st.st_size, st.st_mtime_ns]
        self.changed = True
        return True

    def save(self) -> None:
        if self.path is not None and self.changed:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(self.path, json.dumps(self.known, sort_keys=True) + "\n")
            except OSError:
                pass  # a cache: verify still answered


def _matches(blob: Path) -> bool:
    name = blob.name
    if _SHA256.fullmatch(name):
        h = hashlib.sha256()
    elif _SHA1.fullmatch(name):
        h = hashlib.sha1(b"blob %d\0" % blob.stat().st_size, usedforsecurity=False)
    else:
        return True  # not named by a checksum: nothing to compare with
    with open(blob, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest() == name


def hf_complete(c: dict[str, Any], env: dict[str, str], stamps: Stamps) -> tuple[str, str]:
    hub = hub_dir(env)
    snap = snapshot(hub, c["repo"], c["revision"])
    if snap is None:
        return "fail", f"{c['repo']}@{c['revision'][:12]} is not in {hub} (not seeded)"
    files = _files(snap)
    problems = [f"nothing matches {g}" for g in c.get("files", ["*"]) if not any(fnmatch.fnmatch(f, g) for f in files)]
    repos: dict[str, str] = c.get("repos") or {}
    for model in manifest_models(snap):
        where, rel = snap, model
        if not (snap / f"{model}.json").exists():
            parts = model.split("/")
            other = "/".join(parts[:2])
            if len(parts) > 2 and other in repos and other != c["repo"]:
                where, rel = snapshot(hub, other, repos[other]), "/".join(parts[2:])
                if where is None:
                    problems.append(f"pipeline.json names {model}, but {other} is not seeded")
                    continue
        lacking = [ext for ext in (".json", ".safetensors") if not (where / f"{rel}{ext}").exists()]
        if lacking:
            problems.append(f"pipeline.json names {model}: {', '.join(rel + e for e in lacking)} missing")
    bad = []
    for f in files:
        p = snap / f
        if not p.exists():
            bad.append(f"{f} (a broken link)")
        elif not stamps.ok(p.resolve()):
            bad.append(f"{f} (its content does not match its checksum)")
    stamps.save()
    problems += bad
    if problems:
        return "fail", f"{snap}: " + "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
    models = manifest_models(snap)
    return "ok", f"{len(files)} file(s)" + (f", the {len(models)} model(s) pipeline.json names" if models else "") \
        + ", checksums match"


def stamps_for(env: dict[str, str]) -> Stamps:
    data = env.get("PROVISION_DATA")
    return Stamps(Path(data) / "cache" / "verified-weights.json" if data else None)


__all__ = ["Stamps", "hf_complete", "hub_dir", "manifest_models", "snapshot", "stamps_for"]
