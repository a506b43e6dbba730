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

from .. import ids, paths
from ..errors import ProvisionError
from ..fsutil import atomic_write_text, file_digest
from ..readers import InputError, load_json
from ..secrets import is_secret_name, redact_obj

SCHEMA = 1
STAMPS = ".verified.json"  # mirror's own note of blobs it hashed; seed never trusts it


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
    def from_dict(cls, d: object, where: str) -> "Entry":
        """One manifest entry, every field checked: a USB stick's manifest is hostile until proven not."""
        if not isinstance(d, dict):
            raise BundleError(f"{where}: an artifact is a JSON object, not {type(d).__name__}", hint=REFUSED)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise BundleError(f"{where}: unknown fields {sorted(unknown)}",
                              hint="a newer provision wrote this bundle, or it was edited; " + REFUSED)
        missing = {"kind", "name", "url", "dest"} - set(d)
        if missing:
            raise BundleError(f"{where}: missing fields {sorted(missing)}", hint=REFUSED)
        for k, check in _CHECKS.items():
            v = d.get(k)
            if v is None:
                continue
            try:
                check(v)
            except (ValueError, TypeError) as e:
                raise BundleError(f"{where} {k}: {e}", hint=REFUSED) from None
        kind, dest = d["kind"], d["dest"]
        if dest.split("/")[0] not in KINDS[kind]:
            raise BundleError(f"{where} dest: {dest!r} is not under {' or '.join(KINDS[kind])}/, where a {kind} "
                              "belongs", hint=REFUSED)
        targets = d.get("targets", [])
        if not isinstance(targets, list) or not all(isinstance(x, str) and ids.TARGET.fullmatch(x) for x in targets):
            raise BundleError(f"{where} targets: not a list of target names", hint=REFUSED)
        repo = d.get("repo")
        if repo is not None:
            try:
                (ids.check_hf_repo if kind == "hf-file" else ids.check_github_repo)(repo)
            except ValueError as e:
                raise BundleError(f"{where} repo: {e}", hint=REFUSED) from None
        return cls(**d)


REFUSED = "the bundle was refused whole, before anything was written; re-create it with `provision mirror`"
# where each kind of artifact lives inside the bundle's logical tree
KINDS = {"hf-file": ("hf",), "url": ("files",), "torch-hub-source": ("torch_hub",), "torch-hub-checkpoint": ("torch_hub",),
         "git-archive": ("sources",), "sdist": ("wheels", "sources"), "wheel": ("wheels",), "conda": ("conda",),
         "ext-build": ("builds",)}


def _size(v: object) -> object:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << 50:
        raise ValueError(f"{v!r} is not a file size")
    return v


def _kind(v: object) -> object:
    if v not in KINDS:
        raise ValueError(f"{v!r} is not a kind of artifact ({', '.join(KINDS)})")
    return v


def _etag(v: object) -> object:
    if not (isinstance(v, str) and (ids.SHA256.fullmatch(v) or ids.SHA1.fullmatch(v))):
        raise ValueError(f"{v!r} is not a sha256 or git blob id")
    return v


_CHECKS = {
    "kind": _kind, "name": lambda v: ids.check_text(v, "a name", 1000), "url": lambda v: ids.check_url(v, credentials=True),
    "dest": lambda v: ids.check_rel_path(v, "a bundle path"), "sha256": ids.check_sha256, "md5": ids.check_md5,
    "git_sha1": ids.check_sha1, "etag": _etag, "size": _size, "revision": ids.check_revision,
    "requested_revision": ids.check_revision, "path": lambda v: ids.check_rel_path(v, "a path inside the repo"),
    "place": ids.check_place,
}


def safe_relpath(rel: str, what: str) -> PurePosixPath:
    """A relative path that stays inside its root: no absolute paths, no '..', no backslashes."""
    try:
        ids.check_rel_path(rel, what)
    except ValueError as e:
        raise BundleError(f"{what}: {e}", hint=REFUSED) from None
    return PurePosixPath(rel)


@dataclass
class Bundle:
    root: Path
    targets: dict[str, dict[str, object]] = field(default_factory=dict)
    entries: dict[str, Entry] = field(default_factory=dict)
    _saved_at: float = 0.0
    _stamp_cache: dict[str, list[int]] | None = None

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
        b = cls(Path(root))
        if b.root.exists() and not b.root.is_dir():
            raise BundleError(f"{root} is a file, not a bundle directory", hint="pass the bundle's directory")
        if b.manifest_path.exists() or b.manifest_path.is_symlink():
            if b.manifest_path.is_symlink():
                raise BundleError(f"{b.manifest_path}: is a symlink; a bundle's manifest is a plain file", hint=REFUSED)
            try:
                data = load_json(b.manifest_path, "a bundle manifest", max_bytes=256 << 20)
            except InputError as e:
                raise BundleError(e.message, hint=REFUSED) from None
            b._load(data)
        elif not create:
            raise BundleError(f"{root} is not a bundle (no manifest.json)",
                              hint="make one with `provision mirror TARGET --to DIR`")
        return b

    def _load(self, data: object) -> None:
        where = str(self.manifest_path)
        if not isinstance(data, dict):
            raise BundleError(f"{where}: a manifest is a JSON object, not {type(data).__name__}", hint=REFUSED)
        if data.get("schema") != SCHEMA:
            raise BundleError(f"{where}: manifest schema {data.get('schema')!r}, expected {SCHEMA}",
                              hint="made by another version of provision; re-create it with `provision mirror`")
        targets, arts = data.get("targets", {}), data.get("artifacts", [])
        if not isinstance(targets, dict) or not isinstance(arts, list):
            raise BundleError(f"{where}: `targets` must be an object and `artifacts` a list", hint=REFUSED)
        for name, t in targets.items():
            self.targets[name] = _check_target(name, t, where)
        for i, d in enumerate(arts):
            e = Entry.from_dict(d, f"{where} artifacts[{i}]")
            self.entries[e.key] = e

    def missing(self) -> dict[str, list[str]]:
        """What each target's last mirror could not fetch (the manifest says so; see mirror.run)."""
        return {t: list(v.get("missing") or []) for t, v in self.targets.items() if v.get("missing")}

    # -- blob checks: a blob's name is its sha256, so it can always be checked against itself --

    def _stamps(self) -> dict[str, list[int]]:
        if self._stamp_cache is None:
            try:
                data = load_json(self.root / STAMPS, "the bundle's verification stamps", max_bytes=64 << 20)
                self._stamp_cache = {k: v for k, v in data.items() if isinstance(v, list)} if isinstance(data, dict) else {}
            except InputError:
                self._stamp_cache = {}
        return self._stamp_cache

    def _stat_key(self, sha: str) -> list[int]:
        st = self.blob(sha).stat()
        return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]

    def stamp(self, sha: str) -> None:
        """Remember that this blob was hashed and was right, as long as its inode is untouched."""
        self._stamps()[sha] = self._stat_key(sha)

    def verify_blob(self, sha: str) -> bool:
        """Is blobs/<sha> really that content? Hashed once; after that trusted while its size,
        mtime, ctime and inode stay as they were (ctime moves on any write, and cannot be set)."""
        if self._stamps().get(sha) == self._stat_key(sha):
            return True
        ok = file_digest(self.blob(sha)) == sha
        if ok:
            self.stamp(sha)
        return ok

    def forget_blob(self, sha: str) -> None:
        paths.remove_file(self.blob(sha), self.root, "a blob whose content does not match its name")
        self._stamps().pop(sha, None)

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
        arts = redact_obj([e.as_dict() for e in sorted(self.entries.values(), key=lambda e: (e.kind, e.dest))])
        data = {"schema": SCHEMA, "created_by": "provision mirror", "targets": dict(sorted(self.targets.items())),
                "artifacts": arts}
        atomic_write_text(self.manifest_path, json.dumps(data, indent=1, sort_keys=True) + "\n")
        sums = sorted({(e.sha256, f"blobs/{e.sha256}") for e in self.entries.values() if e.sha256 and self.complete(e)},
                      key=lambda t: t[1])
        atomic_write_text(self.root / "SHA256SUMS", "".join(f"{s}  {p}\n" for s, p in sums))
        if self._stamp_cache is not None:
            atomic_write_text(self.root / STAMPS, json.dumps(self._stamp_cache, sort_keys=True) + "\n")

    def size_on_disk(self) -> int:
        d = self.root / "blobs"
        return sum(p.stat().st_size for p in d.iterdir()) if d.is_dir() else 0


def _check_target(name: object, t: object, where: str) -> dict[str, object]:
    """A target's record: its variant, spec digest, env (names and one-line values only: seed
    writes them into activation scripts) and what is missing."""
    if not isinstance(name, str) or not ids.TARGET.fullmatch(name) or not isinstance(t, dict):
        raise BundleError(f"{where} targets: {name!r} is not a target name with a record", hint=REFUSED)
    env = t.get("env", {})
    if not isinstance(env, dict):
        raise BundleError(f"{where} targets.{name}.env: not an object", hint=REFUSED)
    for k, v in env.items():
        if not isinstance(k, str) or not ids.ENV_NAME.fullmatch(k) or is_secret_name(k):
            raise BundleError(f"{where} targets.{name}.env: {k!r} is not a variable a bundle may set", hint=REFUSED)
        try:
            ids.check_settable_env(k)
        except ValueError as e:
            raise BundleError(f"{where} targets.{name}.env: {e}", hint=REFUSED) from None
        try:
            ids.check_text(v, f"the value of {k}")
        except ValueError as e:
            raise BundleError(f"{where} targets.{name}.env.{k}: {e}", hint=REFUSED) from None
    missing = t.get("missing", [])
    if not isinstance(missing, list) or not all(isinstance(m, str) for m in missing):
        raise BundleError(f"{where} targets.{name}.missing: not a list of names", hint=REFUSED)
    return {k: v for k, v in t.items() if k in ("variant", "spec_digest", "env", "missing", "complete")}


def free_bytes(path: Path) -> int:
    p = path
    while not p.exists():
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize
