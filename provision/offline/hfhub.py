"""The two Hub routes a mirror needs: a repo's file list at a revision, and a file's URL.

`GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true` answers the commit (`sha`) and,
per file, its size, git blob id and, for LFS files, the sha256: exactly what
huggingface_hub's `model_info(files_metadata=True)` asks for. Files come from
`{endpoint}/{repo}/resolve/{commit}/{path}`. HF_ENDPOINT (or --hf-endpoint) points both at
a mirror of the Hub.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from urllib.parse import quote

from .download import AuthRequired, DownloadError

DEFAULT_ENDPOINT = "https://huggingface.co"


def endpoint(explicit: str | None = None) -> str:
    return (explicit or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


@dataclass(frozen=True)
class HubFile:
    path: str
    size: int
    git_sha1: str
    sha256: str | None  # LFS files only

    @property
    def etag(self) -> str:
        """The name huggingface_hub gives the blob in its cache."""
        return self.sha256 or self.git_sha1


def resolve_url(base: str, repo: str, commit: str, path: str) -> str:
    return f"{base}/{repo}/resolve/{commit}/{quote(path)}"


def matches(path: str, patterns: list[str] | tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(path, p) for p in patterns)


def repo_files(sess, base: str, repo: str, revision: str, token: str | None,  # type: ignore[no-untyped-def]
               patterns: list[str] | tuple[str, ...] = ("*",), licence_url: str | None = None,
               timeout: float = 30.0) -> tuple[str, list[HubFile]]:
    """The commit `revision` points at, and the files matching `patterns` there."""
    import requests

    url = f"{base}/api/models/{repo}/revision/{quote(revision, safe='')}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        r = sess.get(url, params={"blobs": "true"}, headers=headers, timeout=timeout)
    except requests.RequestException as e:
        raise DownloadError(f"{repo}: cannot reach the Hub at {base} ({type(e).__name__})",
                            hint="set HF_ENDPOINT (or --hf-endpoint) to a mirror of the Hub if huggingface.co is blocked") from None
    if r.status_code in (401, 403):
        where = licence_url or f"{base}/{repo}"
        raise AuthRequired(
            f"{repo}: gated or private ({r.status_code})" + ("" if token else "; no token was sent"),
            hint=f"accept the licence at {where}, then export HF_TOKEN=hf_... (or `hf auth login`) and re-run")
    if r.status_code == 404:
        raise DownloadError(f"{repo}: revision {revision} not found on {base}",
                            hint="check the repo id and the pinned revision in the spec")
    if r.status_code >= 400:
        raise DownloadError(f"{repo}: the Hub answered {r.status_code} for {url}")
    info = r.json()
    commit = info.get("sha")
    if not commit:
        raise DownloadError(f"{repo}: the Hub's answer has no commit sha")
    files = []
    for s in info.get("siblings", []):
        path = s["rfilename"]
        if not matches(path, patterns):
            continue
        lfs = s.get("lfs") or {}
        files.append(HubFile(path, int(lfs.get("size", s.get("size", 0))), s.get("blobId", ""), lfs.get("sha256")))
    return commit, files
