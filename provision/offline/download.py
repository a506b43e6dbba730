"""The one download core every artifact goes through (weights, sources, wheels, conda packages).

- streams with requests; the checksum is computed as the bytes arrive (one pass);
- writes `<dest>.part` and renames it into place only when size and checksum match, so a
  killed run never leaves a wrong file under its final name;
- resumes a `.part` with a Range request (and starts over when the server ignores Range);
- retries with backoff that honours Retry-After (429/503), with connect and read timeouts;
- proxies come from the environment (requests' trust_env); a token is sent only to the
  host it belongs to and never logged or written.
"""

from __future__ import annotations

import email.utils
import errno
import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ProvisionError
from ..fsutil import file_digest
from ..paths import remove_file

CHUNK = 1 << 20
USER_AGENT = "provision/0.1 (+https://github.com/provision)"


class DownloadError(ProvisionError):
    """A file could not be fetched or did not match its checksum after every retry."""

    exit_code = 1


class DiskFull(ProvisionError):
    exit_code = 1


class AuthRequired(DownloadError):
    """401/403: a gated or private resource; the hint says how to get access."""


@dataclass(frozen=True)
class Job:
    url: str
    dest: Path
    sha256: str | None = None
    md5: str | None = None
    git_sha1: str | None = None  # Hugging Face's non-LFS files: the git blob id
    size: int | None = None
    token: str | None = None  # sent as a Bearer token to this URL's host only
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.dest.name


@dataclass
class Result:
    job: Job
    sha256: str
    size: int
    fetched: int  # bytes transferred in this run
    skipped: bool = False  # already complete


@dataclass
class Policy:
    attempts: int = 6
    backoff: float = 0.5  # seconds, doubled per attempt
    max_sleep: float = 30.0
    connect_timeout: float = 15.0
    read_timeout: float = 60.0


@dataclass
class Progress:
    """Total bytes done across threads; `on_bytes` drives whatever bar the caller shows."""

    on_bytes: Callable[[int], None] = lambda n: None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, n: int) -> None:
        with self.lock:
            self.on_bytes(n)


def session():  # type: ignore[no-untyped-def]
    import requests

    s = requests.Session()
    s.headers["User-Agent"] = USER_AGENT
    adapter = requests.adapters.HTTPAdapter(pool_connections=16, pool_maxsize=16)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (now if now is not None else time.time()))


class _Retry(Exception):
    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


def _hashers(job: Job) -> dict[str, object]:
    h: dict[str, object] = {"sha256": hashlib.sha256()}
    if job.md5:
        h["md5"] = hashlib.md5()
    return h


def _check(job: Job, digests: dict[str, str], size: int, git_sha1: str | None) -> str | None:
    if job.size is not None and size != job.size:
        return f"size {size} != expected {job.size}"
    if job.sha256 and digests["sha256"] != job.sha256:
        return f"sha256 {digests['sha256'][:12]}... != expected {job.sha256[:12]}..."
    if job.md5 and digests.get("md5") != job.md5:
        return f"md5 {digests.get('md5')} != expected {job.md5}"
    if job.git_sha1 and git_sha1 != job.git_sha1:
        return f"git blob sha1 {git_sha1} != expected {job.git_sha1}"
    return None


def _git_blob_sha1(path: Path, size: int) -> str:
    """Hugging Face identifies small (non-LFS) files by their git blob hash. Such files are
    small, so hashing them a second time here costs nothing worth a streaming variant."""
    h = hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _auth_headers(job: Job) -> dict[str, str]:
    return {"Authorization": f"Bearer {job.token}"} if job.token else {}


def fetch(job: Job, sess, policy: Policy = Policy(), progress: Progress | None = None) -> Result:  # type: ignore[no-untyped-def]
    """Fetch one file to job.dest, checked; resume a .part left by an earlier run."""
    import requests
    import urllib3

    progress = progress or Progress()
    dest = job.dest
    if dest.exists():
        # A file under its final name was verified when it was renamed there: trust it if
        # its size is right (re-hashing every run would double the work of a no-op).
        if job.size is None or dest.stat().st_size == job.size:
            sha = job.sha256 or file_digest(dest)  # unknown upstream: learnt from the file once
            return Result(job, sha, dest.stat().st_size, 0, skipped=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    fetched = 0
    failures: list[str] = []
    for attempt in range(policy.attempts):
        hashers = _hashers(job)
        have = part.stat().st_size if part.exists() else 0
        if job.size is not None and have > job.size:
            remove_file(part, dest.parent)
            have = 0
        if have:
            with open(part, "rb") as f:  # rebuild the hash state of what an earlier run wrote
                for chunk in iter(lambda: f.read(CHUNK), b""):
                    for h in hashers.values():
                        h.update(chunk)  # type: ignore[attr-defined]
        headers = _auth_headers(job) | ({"Range": f"bytes={have}-"} if have else {})
        try:
            try:
                r = sess.get(job.url, headers=headers, stream=True,
                             timeout=(policy.connect_timeout, policy.read_timeout), allow_redirects=True)
            except requests.RequestException as e:
                raise _Retry(f"{type(e).__name__}: {e}") from None
            with r:
                if r.status_code in (401, 403):
                    raise AuthRequired(f"{job.name}: {r.status_code} from {urlsplit(job.url).netloc}",
                                       hint="a gated or private file: accept its licence and set HF_TOKEN")
                if r.status_code == 416 and have:  # .part already complete, or stale: start over
                    remove_file(part, dest.parent)
                    raise _Retry("416 Range Not Satisfiable", 0)
                if r.status_code in (429, 500, 502, 503, 504):
                    raise _Retry(f"HTTP {r.status_code}", retry_after(r.headers.get("Retry-After")))
                if r.status_code == 404:
                    raise DownloadError(f"{job.name}: 404 Not Found at {job.url}",
                                        hint="the pinned revision or URL no longer exists upstream")
                if r.status_code >= 400:
                    raise _Retry(f"HTTP {r.status_code}")
                if have and r.status_code == 200:  # Range ignored: the body is the whole file
                    hashers = _hashers(job)
                    have = 0
                    mode = "wb"
                elif have and r.status_code == 206:
                    start = r.headers.get("Content-Range", "").split(" ")[-1].split("-")[0]
                    if start != str(have):
                        remove_file(part, dest.parent)
                        raise _Retry(f"Content-Range starts at {start}, not {have}", 0)
                    mode = "ab"
                else:
                    mode = "wb"
                size = have
                try:
                    with open(part, mode) as f:
                        # read1: write whatever has arrived, so a dropped connection or a kill
                        # loses at most one read's worth, never a whole buffered chunk
                        for chunk in iter(lambda: r.raw.read1(CHUNK), b""):
                            f.write(chunk)
                            for h in hashers.values():
                                h.update(chunk)  # type: ignore[attr-defined]
                            size += len(chunk)
                            fetched += len(chunk)
                            progress.add(len(chunk))
                except (requests.RequestException, urllib3.exceptions.HTTPError) as e:  # OSErrors too: first
                    raise _Retry(f"connection lost after {size} bytes ({type(e).__name__})") from None
                except OSError as e:
                    if e.errno == errno.ENOSPC:
                        raise DiskFull(f"disk full while writing {dest}",
                                       hint=f"free space on {dest.parent}; {job.size or 'unknown'} bytes are needed for this file") from None
                    raise
            expected_len = r.headers.get("Content-Length")
            if job.size is None and expected_len and mode == "wb" and size != int(expected_len):
                raise _Retry(f"body ended after {size} of {expected_len} bytes")
            if job.size is not None and size < job.size:
                raise _Retry(f"body ended after {size} of {job.size} bytes", 0)
            digests = {k: h.hexdigest() for k, h in hashers.items()}  # type: ignore[attr-defined]
            git_sha1 = _git_blob_sha1(part, size) if job.git_sha1 else None
            bad = _check(job, digests, size, git_sha1)
            if bad:
                remove_file(part, dest.parent)  # never keep wrong bytes, not even as a .part to resume
                raise _Retry(f"checksum mismatch: {bad}", 0)
            os.replace(part, dest)
            return Result(job, digests["sha256"], size, fetched)
        except _Retry as e:
            failures.append(e.reason)
            if attempt + 1 == policy.attempts:
                break
            wait = e.wait if e.wait is not None else policy.backoff * (2 ** attempt)
            time.sleep(min(wait, policy.max_sleep))
    raise DownloadError(f"{job.name}: failed after {policy.attempts} attempts ({'; '.join(failures[-3:])})",
                        hint=f"from {job.url}; re-run to resume, or check the network and proxy variables")


def hf_token() -> str | None:
    """HF_TOKEN, else the file `huggingface-cli login` writes. Never printed or stored."""
    tok = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if tok:
        return tok.strip()
    path = os.environ.get("HF_TOKEN_PATH") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"), "token")
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None
