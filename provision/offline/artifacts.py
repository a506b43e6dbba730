"""Everything a target downloads, as one flat list (pure): the shared core of mirror scripts,
bundles and seeding.

Each artifact says what it is, where it comes from, how it is checked and where it goes
inside a bundle. Files with a known checksum become lines of SHA256SUMS / MD5SUMS; git
sources are checked by their commit; Hugging Face repos by the revision (their file list
and hashes come from the Hub API when the mirror runs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from ..spec import TargetSpec

GITHUB = "https://github.com"


@dataclass(frozen=True)
class Artifact:
    kind: str  # conda | wheel | sdist | git | hf-repo | url | torch-hub-source | torch-hub-checkpoint
    name: str
    url: str
    dest: str  # path inside the bundle
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    revision: str | None = None  # git commit / HF revision
    files: tuple[str, ...] = ()  # HF: which files (glob patterns)
    gated: bool = False
    submodules: bool = False
    optional: bool = False

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if v not in (None, (), False)}


def url_basename(url: str) -> str:
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


def spec_artifacts(spec: TargetSpec, variant: str, prebuilt: frozenset[str] = frozenset()) -> list[Artifact]:
    """What a variant needs besides its lock's packages; `prebuilt`: the extensions the lock
    installs from their project's wheel (lockfile.prebuilt), whose sources are not needed."""
    from ..plan import upstream_name
    from ..spec import GitSource, SdistSource

    up = spec.upstream  # the app itself: apply installs it, and extensions may be built from inside it
    out: list[Artifact] = [Artifact("git", upstream_name(spec), up.repo, f"sources/{upstream_name(spec)}",
                                    revision=up.commit, submodules=up.submodules)]
    for e in spec.extensions_for(variant):
        src = e.source
        if e.name in prebuilt:
            continue
        if isinstance(src, GitSource):
            out.append(Artifact("git", e.name, src.git, f"sources/{e.name}", revision=src.commit,
                                submodules=src.submodules))
        elif isinstance(src, SdistSource):
            out.append(Artifact("sdist", e.name, src.sdist, f"sources/{url_basename(src.sdist)}", sha256=src.sha256))
    pkgs = {p.key: p for p in [*spec.pip.packages, *spec.variants[variant].packages]}
    for p in pkgs.values():
        if p.git is not None:
            out.append(Artifact("git", p.name, p.git.git, f"sources/{p.name}", revision=p.git.commit,
                                submodules=p.git.submodules))
    for r in spec.weights.huggingface:
        out.append(Artifact("hf-repo", r.repo, f"https://huggingface.co/{r.repo}", f"hf/{r.repo}",
                            revision=r.revision, files=tuple(r.files), gated=r.gated, optional=r.optional))
    for u in spec.weights.urls:
        out.append(Artifact("url", u.name, u.url, f"files/{url_basename(u.url)}", sha256=u.sha256, md5=u.md5, size=u.size))
    for h in spec.weights.torch_hub:
        out.append(Artifact("torch-hub-source", h.repo, f"{GITHUB}/{h.repo}/archive/{h.commit}.zip",
                            f"torch_hub/{h.repo.replace('/', '_')}_{h.ref}.zip", revision=h.commit))
        for c in h.checkpoints:
            out.append(Artifact("torch-hub-checkpoint", c.file, c.url, f"torch_hub/checkpoints/{c.file}",
                                sha256=c.sha256, size=c.size))
    return out


def lock_artifacts(lock: object, platform: str = "linux-64") -> list[Artifact]:
    """The conda packages and pip files of a lockfile (git pins are spec artifacts)."""
    out = []
    for p in lock.package:  # type: ignore[attr-defined]
        if p.platform != platform:
            continue
        if p.manager == "conda":
            out.append(Artifact("conda", p.name, p.url, f"conda/{url_basename(p.url)}", sha256=p.hash.sha256,
                                md5=p.hash.md5, optional="main" not in p.categories))
        elif p.hash.sha256:
            kind = "wheel" if p.url.endswith(".whl") else "sdist"
            out.append(Artifact(kind, p.name, p.url, f"wheels/{url_basename(p.url)}", sha256=p.hash.sha256))
    return out
