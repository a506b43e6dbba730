"""Seed stage: a verified bundle -> the places the real clients look, so the app runs offline.

- Hugging Face repos -> `$HF_HOME/hub/models--org--name/{blobs,snapshots/<commit>,refs/main}`
  (relative symlinks, as huggingface_hub writes them), or a plain copy with --local-dir;
- torch.hub sources -> `$TORCH_HOME/hub/<owner>_<repo>_<ref>/` and `trusted_list`,
  checkpoints -> `$TORCH_HOME/hub/checkpoints/`;
- url weights -> where the app looks (`dest:` in the spec, e.g. $U2NET_HOME/u2net.onnx);
- wheels -> DATA/wheelhouse/, conda packages -> DATA/channel/<subdir>/ (indexed), sources
  -> DATA/sources/.
Every blob is checked against the manifest first, every destination is checked to stay in
its root, and all conflicts are found before the first write. A file whose content differs
is kept unless --force (then it is moved aside to `<name>.bak`).
"""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..fsutil import file_digest
from .bundle import Bundle, BundleError, Entry, safe_relpath

_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class Action:
    kind: str  # copy | link | extract | write | trust
    dst: Path
    src: Path | None = None
    text: str | None = None
    status: str = "new"  # new | same | conflict | replaced
    what: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "dst": str(self.dst), "status": self.status, "what": self.what}


@dataclass
class SeedReport:
    actions: list[Action] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def conflicts(self) -> list[Action]:
        return [a for a in self.actions if a.status == "conflict"]


def verify_blobs(b: Bundle) -> list[str]:
    """Every blob against the manifest; returns what is wrong (empty when all is well)."""
    bad = []
    for sha in sorted({e.sha256 for e in b.entries.values() if e.sha256}):
        p = b.blob(sha)
        if not p.is_file():
            bad.append(f"blobs/{sha}: missing")
        elif file_digest(p) != sha:
            bad.append(f"blobs/{sha}: content does not match its sha256")
    for e in b.entries.values():
        if not e.sha256:
            bad.append(f"{e.name}: never downloaded (no sha256 recorded); re-run provision mirror")
    return bad


def _real(p: Path) -> Path:
    """p with every symlink of its existing part resolved (the rest does not exist yet)."""
    rest: list[str] = []
    while not (p.exists() or p.is_symlink()) and p != p.parent:
        rest.append(p.name)
        p = p.parent
    return p.resolve().joinpath(*reversed(rest))


def _inside(root: Path, rel: str, what: str) -> Path:
    p = root / Path(*safe_relpath(rel, what).parts)
    if not _real(p.parent).is_relative_to(_real(root)):
        raise BundleError(f"{what}: {p} leads outside {root} (a symlink on the way points elsewhere)",
                          hint="remove that symlink, or seed into another directory")
    return p


def _fill(template: str, env: dict[str, str], data: Path) -> str:
    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key == "data":
            return str(data)
        if key in os.environ:
            return os.environ[key]
        if key in env:
            return _fill(env[key], env, data)
        raise BundleError(f"cannot resolve {{{key}}} in {template!r}", hint=f"export {key}=DIR and re-run")
    return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, template)


def _same(dst: Path, src: Path | None, text: str | None) -> bool:
    if dst.is_symlink() and src is not None and not dst.exists():
        return False
    if not dst.exists():
        return False
    if text is not None:
        return dst.is_file() and dst.read_text() == text
    if src is None or not dst.is_file():
        return dst.is_dir()
    return dst.stat().st_size == src.stat().st_size and file_digest(dst) == file_digest(src)


def plan_seed(b: Bundle, hf_home: Path, torch_home: Path, data: Path, local_dir: Path | None = None) -> SeedReport:
    rep = SeedReport()
    env: dict[str, str] = {}
    for t in b.targets.values():
        env.update({k: str(v) for k, v in dict(t.get("env", {})).items()})
    hub = hf_home / "hub"
    refs: dict[Path, str] = {}
    for e in sorted(b.entries.values(), key=lambda e: (e.kind, e.dest)):
        blob = b.blob(e.sha256) if e.sha256 else None
        what = f"{e.kind} {e.name}"
        if e.kind == "hf-file":
            org, name = e.repo.split("/")  # type: ignore[union-attr]
            repo_dir = f"models--{org}--{name}"
            rel_blob = f"{repo_dir}/blobs/{e.etag or e.sha256}"
            rep.actions.append(Action("copy", _inside(hub, rel_blob, what), blob, what=what))
            snap_rel = f"{repo_dir}/snapshots/{e.revision}/{e.path}"
            link = _inside(hub, snap_rel, what)
            depth = len(PurePosixPath(e.path).parts) - 1  # type: ignore[arg-type]
            target = "../" * (depth + 2) + f"blobs/{e.etag or e.sha256}"
            rep.actions.append(Action("link", link, text=target, what=what))
            ref = "main" if not e.requested_revision or _COMMIT.match(e.requested_revision) else e.requested_revision
            refs[_inside(hub, f"{repo_dir}/refs/{ref}", what)] = e.revision or ""
            if local_dir is not None:
                rep.actions.append(Action("copy", _inside(local_dir, f"{e.repo}/{e.path}", what), blob, what=what))
        elif e.kind == "torch-hub-source":
            owner, repo = e.repo.split("/")  # type: ignore[union-attr]
            ref = (e.path or "main").replace("/", "_")
            rep.actions.append(Action("extract", _inside(torch_home / "hub", f"{owner}_{repo}_{ref}", what), blob, what=what))
            rep.actions.append(Action("trust", torch_home / "hub" / "trusted_list", text=f"{owner}_{repo}", what=what))
        elif e.kind == "torch-hub-checkpoint":
            rep.actions.append(Action("copy", _inside(torch_home / "hub" / "checkpoints", PurePosixPath(e.dest).name, what),
                                      blob, what=what))
        elif e.kind == "url":
            place = Path(_fill(e.place or f"{{data}}/{e.dest}", env, data))
            rep.actions.append(Action("copy", _inside(place.parent, place.name, what), blob, what=what))
        elif e.kind in ("wheel", "sdist"):
            rep.actions.append(Action("copy", _inside(data / "wheelhouse", PurePosixPath(e.dest).name, what), blob, what=what))
        elif e.kind == "conda":
            rel = "/".join(PurePosixPath(e.dest).parts[1:])
            rep.actions.append(Action("copy", _inside(data / "channel", rel, what), blob, what=what))
        elif e.kind == "ext-build":  # apply's build cache: DATA/cache/ext/<name>-<key>/<file>
            rel = "/".join(PurePosixPath(e.dest).parts[1:])
            rep.actions.append(Action("copy", _inside(data / "cache" / "ext", rel, what), blob, what=what))
        elif e.kind == "git-archive":
            rep.actions.append(Action("copy", _inside(data / "sources", PurePosixPath(e.dest).name, what), blob, what=what))
    for path, commit in refs.items():
        rep.actions.append(Action("write", path, text=commit, what=f"ref {path.name} -> {commit[:12]}"))
    for a in rep.actions:
        if a.kind == "trust":
            a.status = "same" if a.dst.is_file() and a.text in a.dst.read_text().split() else "new"
        elif a.kind == "link":
            a.status = "same" if a.dst.is_symlink() and os.readlink(a.dst) == a.text else (
                "conflict" if a.dst.exists() or a.dst.is_symlink() else "new")
        elif a.kind == "extract":
            a.status = "same" if (a.dst / "hubconf.py").is_file() or (a.dst.is_dir() and any(a.dst.iterdir())) else "new"
        elif a.dst.exists():
            a.status = "same" if _same(a.dst, a.src, a.text) else "conflict"
    rep.env = {"HF_HOME": str(hf_home), "TORCH_HOME": str(torch_home), "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1"}
    for k, v in env.items():
        if k not in rep.env and "{data}" in v:
            rep.env[k] = _fill(v, env, data)
    return rep


def _extract(zip_path: Path, dst: Path) -> None:
    """A GitHub archive's contents, without its top-level `<repo>-<commit>/` directory."""
    tmp = dst.with_name(dst.name + ".extracting")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            parts = PurePosixPath(info.filename).parts[1:]
            if not parts:
                continue
            out = _inside(tmp, "/".join(parts), f"{zip_path.name} member {info.filename}")  # no zip-slip
            if info.is_dir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(out, "wb") as f:
                shutil.copyfileobj(src, f)
    os.replace(tmp, dst)


def apply_seed(rep: SeedReport, force: bool = False) -> None:
    for a in rep.actions:
        if a.status == "same" or (a.status == "conflict" and not force):
            continue
        a.dst.parent.mkdir(parents=True, exist_ok=True)
        if a.status == "conflict":
            bak = a.dst.with_name(a.dst.name + ".bak")
            if bak.exists() or bak.is_symlink():
                bak.unlink() if not bak.is_dir() else shutil.rmtree(bak)
            os.replace(a.dst, bak)
            a.status = "replaced"
        if a.kind == "copy":
            tmp = a.dst.with_name(a.dst.name + ".seeding")
            shutil.copyfile(a.src, tmp)  # type: ignore[arg-type]
            os.replace(tmp, a.dst)
        elif a.kind == "link":
            tmp = a.dst.with_name(a.dst.name + ".seeding")
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            os.symlink(a.text, tmp)  # type: ignore[arg-type]
            os.replace(tmp, a.dst)
        elif a.kind == "write":
            from ..fsutil import atomic_write_text

            atomic_write_text(a.dst, a.text or "")
        elif a.kind == "extract":
            _extract(a.src, a.dst)  # type: ignore[arg-type]
        elif a.kind == "trust":
            with open(a.dst, "a") as f:
                f.write(f"{a.text}\n")


def write_activation(prefix: Path, env: dict[str, str]) -> list[Path]:
    """Put the seeded locations into an env's activation (conda activate.d / deactivate.d and
    the plain activate.sh of `provision compile`), so the app finds them offline every time."""
    from ..templating import render

    pairs = sorted(env.items())  # the shell templates quote every value
    ctx = {"target": "provision-seed", "variant": "seeded weights", "env": pairs}
    written = []
    for rel, tpl in (("etc/conda/activate.d/provision-seed.sh", "compile/conda-activate.sh.j2"),
                     ("etc/conda/deactivate.d/provision-seed.sh", "compile/conda-deactivate.sh.j2")):
        if (prefix / rel).parent.is_dir():
            from ..fsutil import atomic_write_text

            atomic_write_text(prefix / rel, render(tpl, **ctx))
            written.append(prefix / rel)
    return written


def index_channel(channel: Path) -> None:
    """Make DATA/channel a conda channel apply can install from offline."""
    import asyncio

    from rattler.index import index_fs

    (channel / "noarch").mkdir(parents=True, exist_ok=True)
    asyncio.run(index_fs(channel, write_shards=False))


__all__ = ["SeedReport", "apply_seed", "index_channel", "plan_seed", "verify_blobs", "write_activation", "Entry"]
