"""An offline bundle: a plain directory that `sha256sum -c SHA256SUMS` can check.

    BUNDLE/manifest.json   versioned: targets, and every artifact (kind, name, source URL,
                           size, sha256, where it goes)
    BUNDLE/SHA256SUMS      one line per blob
    BUNDLE/blobs/<sha256>  content-addressed: a file two targets share is stored once
    BUNDLE/.partial/       downloads in progress (resumable); never read by seed

The manifest is rewritten (atomically) after every finished artifact, so a run killed at
any moment resumes from what it records.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath

from ..errors import ProvisionError
from ..fsutil import atomic_write_text

SCHEMA = 1


class BundleError(ProvisionError):
    """A bundle that is not one, or a manifest entry that would write outside its place."""


@dataclass
class Entry:
    kind: str  # hf-file | url | torch-hub-source | torch-hub-checkpoint | git-archive | sdist | wheel | conda
    name: str
    url: str
    dest: str  # logical place: hf/<repo>/<path>, torch_hub/..., files/..., wheels/..., conda/<subdir>/...
    sha256: str | None = None
    size: int | None = None
    md5: str | None = None
    git_sha1: str | None = None
    etag: str | None = None  # hf-file: the blob name huggingface_hub's cache uses (LFS sha256 or git blob id)
    repo: str | None = None
    revision: str | None = None  # the commit it was resolved to
    requested_revision: str | None = None  # what the spec asked for (a branch when unpinned)
    path: str | None = None  # inside the repo
    place: str | None = None  # url weights: where the app looks, e.g. {U2NET_HOME}/u2net.onnx
    targets: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.dest}"

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if v not in (None, [])}

    @classmethod
    def from_dict(cls, d: dict) -> "Entry":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise BundleError(f"manifest entry {d.get('name')!r} has unknown fields {sorted(unknown)}",
                              hint="a newer provision wrote this bundle; upgrade provision")
        return cls(**d)


def safe_relpath(rel: str, what: str) -> PurePosixPath:
    """A relative path that stays inside its root: no absolute paths, no '..', no backslashes."""
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or ".." in p.parts or "\\" in rel or rel.startswith("~"):
        raise BundleError(f"{what}: path {rel!r} escapes its directory",
                          hint="refusing the whole bundle before anything is written; re-create it with provision mirror")
    return p


@dataclass
class Bundle:
    root: Path
    targets: dict[str, dict[str, object]] = field(default_factory=dict)
    entries: dict[str, Entry] = field(default_factory=dict)
    _saved_at: float = 0.0

    def save_every(self, seconds: float) -> None:
        """Save if the last save is older than `seconds`. A run killed in between loses
        nothing: a blob under its content address is found again by its name."""
        import time

        if time.monotonic() - self._saved_at >= seconds:
            self.save()

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def blob(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256

    def partial(self, name: str) -> Path:
        return self.root / ".partial" / name

    @classmethod
    def open(cls, root: Path, create: bool = False) -> "Bundle":
        b = cls(root)
        if b.manifest_path.is_file():
            try:
                data = json.loads(b.manifest_path.read_text())
            except json.JSONDecodeError as e:
                raise BundleError(f"{b.manifest_path}: not JSON ({e})") from None
            if data.get("schema") != SCHEMA:
                raise BundleError(f"{b.manifest_path}: manifest schema {data.get('schema')!r}, expected {SCHEMA}")
            b.targets = data.get("targets", {})
            for d in data.get("artifacts", []):
                e = Entry.from_dict(d)
                safe_relpath(e.dest, f"{b.manifest_path} {e.name}")
                if e.sha256 and not (len(e.sha256) == 64 and all(c in "0123456789abcdef" for c in e.sha256)):
                    raise BundleError(f"{b.manifest_path} {e.name}: sha256 {e.sha256!r} is not a sha256")
                b.entries[e.key] = e
        elif not create:
            raise BundleError(f"{root} is not a bundle (no manifest.json)",
                              hint="make one with `provision mirror TARGET --to DIR`")
        return b

    def complete(self, e: Entry) -> bool:
        return bool(e.sha256) and self.blob(e.sha256).is_file() and (
            e.size is None or self.blob(e.sha256).stat().st_size == e.size)

    def record(self, e: Entry, flush: bool = True) -> None:
        prev = self.entries.get(e.key)
        if prev is not None:
            e.targets = sorted(set(prev.targets) | set(e.targets))
        self.entries[e.key] = e
        if flush:
            self.save()

    def save(self) -> None:
        import time

        self._saved_at = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        arts = [e.as_dict() for e in sorted(self.entries.values(), key=lambda e: (e.kind, e.dest))]
        data = {"schema": SCHEMA, "created_by": "provision mirror", "targets": dict(sorted(self.targets.items())),
                "artifacts": arts}
        atomic_write_text(self.manifest_path, json.dumps(data, indent=1, sort_keys=True) + "\n")
        sums = sorted({(e.sha256, f"blobs/{e.sha256}") for e in self.entries.values() if e.sha256 and self.complete(e)},
                      key=lambda t: t[1])
        atomic_write_text(self.root / "SHA256SUMS", "".join(f"{s}  {p}\n" for s, p in sums))

    def size_on_disk(self) -> int:
        d = self.root / "blobs"
        return sum(p.stat().st_size for p in d.iterdir()) if d.is_dir() else 0


def free_bytes(path: Path) -> int:
    p = path
    while not p.exists():
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize
