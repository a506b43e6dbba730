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
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .. import paths
from ..archives import check_zip, extract_zip
from ..fsutil import backup_name, file_digest
from ..secrets import is_secret_name
from .bundle import REFUSED, Bundle, BundleError, Entry

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


def _inside(root: Path, rel: str, what: str) -> Path:
    try:
        return paths.inside(root, rel, what)
    except paths.PathRefused as e:
        raise BundleError(e.message, hint=REFUSED) from None


def place_root(place: str, env: dict[str, str], data: Path) -> tuple[Path, str]:
    """Where a url weight goes: (the directory its placeholder names, the path below it).

    `{data}` is the data dir. `{NAME}` is the user's own $NAME when set (their choice), else
    the manifest's value for NAME, which must itself lie under {data}: a bundle can never
    point a write at an absolute path of its choosing. Nothing else is expanded (no $HF_TOKEN
    from the environment, no secret-named variable)."""
    m = re.fullmatch(r"\{([A-Za-z_][A-Za-z0-9_]*)\}/(.+)", place, flags=re.S)
    if not m:
        raise BundleError(f"place {place!r} must start with {{data}} or {{NAME}}", hint=REFUSED)
    key, rel = m.groups()
    if key == "data":
        return data, rel
    if is_secret_name(key) or key not in env:
        raise BundleError(f"place {place!r}: {{{key}}} is not a directory this bundle declares",
                          hint="a bundle's places use {data} or a variable of its target's env; " + REFUSED)
    if os.environ.get(key):
        root = Path(os.environ[key])
        paths.refuse_prefix(root, f"${key}")
        return root, rel
    inner = re.fullmatch(r"\{data\}/(.+)", env[key], flags=re.S)
    if not inner:
        raise BundleError(f"the bundle sets {key}={env[key]!r}: a bundle's directories lie under {{data}}",
                          hint=f"export {key}=DIR to choose one yourself, or re-create the bundle; " + REFUSED)
    return _inside(data, inner.group(1), f"{key} of the bundle"), rel


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
            check_zip(blob, strip_top=True) if blob is not None and blob.is_file() else None  # before any write
            owner, repo = e.repo.split("/")  # type: ignore[union-attr]
            ref = (e.path or "main").replace("/", "_")
            rep.actions.append(Action("extract", _inside(torch_home / "hub", f"{owner}_{repo}_{ref}", what), blob, what=what))
            rep.actions.append(Action("trust", torch_home / "hub" / "trusted_list", text=f"{owner}_{repo}", what=what))
        elif e.kind == "torch-hub-checkpoint":
            rep.actions.append(Action("copy", _inside(torch_home / "hub" / "checkpoints", PurePosixPath(e.dest).name, what),
                                      blob, what=what))
        elif e.kind == "url":
            root, rel = place_root(e.place or f"{{data}}/{e.dest}", env, data)
            rep.actions.append(Action("copy", _inside(root, rel, what), blob, what=what))
        elif e.kind in ("wheel", "sdist"):
            rep.actions.append(Action("copy", _inside(data / "wheelhouse", PurePosixPath(e.dest).name, what), blob, what=what))
        elif e.kind == "conda":
            rel = "/".join(PurePosixPath(e.dest).parts[1:])
            rep.actions.append(Action("copy", _inside(data / "channel", rel, what), blob, what=what))
        elif e.kind == "ext-build":  # apply's build cache: DATA/cache/ext/<name>-<key>/<file>
            rel = "/".join(PurePosixPath(e.dest).parts[1:])
            rep.actions.append(Action("copy", _inside(data / "cache" / "ext", rel, what), blob, what=what))
        elif e.kind == "git-archive":
            if blob is not None and blob.is_file():
                check_zip(blob, strip_top=True)  # apply unpacks it later: refuse a bad one now, before any write
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
        inner = re.fullmatch(r"\{data\}/(.+)", v, flags=re.S)
        if k not in rep.env and inner:
            rep.env[k] = str(_inside(data, inner.group(1), f"{k} of the bundle"))
    return rep


def apply_seed(rep: SeedReport, force: bool = False) -> None:
    for a in rep.actions:
        if a.status == "same" or (a.status == "conflict" and not force):
            continue
        a.dst.parent.mkdir(parents=True, exist_ok=True)
        if a.status == "conflict":  # --force: the old one is kept, under a name no later run reuses
            os.replace(a.dst, backup_name(a.dst))
            a.status = "replaced"
        if a.kind == "copy":
            tmp = a.dst.with_name(a.dst.name + ".seeding")
            shutil.copyfile(a.src, tmp)  # type: ignore[arg-type]
            os.replace(tmp, a.dst)
        elif a.kind == "link":
            tmp = a.dst.with_name(a.dst.name + ".seeding")
            paths.remove_file(tmp, a.dst.parent, "a half-made link")
            os.symlink(a.text, tmp)  # type: ignore[arg-type]
            os.replace(tmp, a.dst)
        elif a.kind == "write":
            from ..fsutil import atomic_write_text

            atomic_write_text(a.dst, a.text or "")
        elif a.kind == "extract":
            extract_zip(a.src, a.dst, strip_top=True)  # type: ignore[arg-type]
        elif a.kind == "trust":
            with open(a.dst, "a") as f:
                f.write(f"{a.text}\n")


def write_activation(prefix: Path, env: dict[str, str]) -> list[Path]:
    """Put the seeded locations into an env's activation (conda activate.d / deactivate.d and
    the plain activate.sh of `provision compile`), so the app finds them offline every time.
    A file of that name provision did not write is kept as a backup first."""
    from ..fsutil import write_ours
    from ..templating import render

    pairs = sorted(env.items())  # the shell templates quote every value
    ctx = {"target": "provision-seed", "variant": "seeded weights", "env": pairs}
    written = []
    for rel, tpl in (("etc/conda/activate.d/provision-seed.sh", "compile/conda-activate.sh.j2"),
                     ("etc/conda/deactivate.d/provision-seed.sh", "compile/conda-deactivate.sh.j2")):
        if (prefix / rel).parent.is_dir():
            write_ours(paths.inside(prefix, rel, "an activation script"), render(tpl, **ctx))
            written.append(prefix / rel)
    return written


def index_channel(channel: Path) -> None:
    """Make DATA/channel a conda channel apply can install from offline."""
    import asyncio

    from rattler.index import index_fs

    (channel / "noarch").mkdir(parents=True, exist_ok=True)
    asyncio.run(index_fs(channel, write_shards=False))


__all__ = ["SeedReport", "apply_seed", "index_channel", "plan_seed", "verify_blobs", "write_activation", "Entry"]
