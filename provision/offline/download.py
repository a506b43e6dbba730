"""The one download core every artifact goes through (weights, sources, wheels, conda packages).

- streams with requests; the checksum is computed as the bytes arrive (one pass), in a second
  thread for large files, and plain HTTP goes socket -> file in the kernel (stream.py);
- writes `<dest>.part` and renames it into place only when size and checksum match, so a
  killed run never leaves a wrong file under its final name;
- resumes a `.part` with a Range request (and starts over when the server ignores Range);
- retries with backoff that honours Retry-After (429/503), with connect and read timeouts;
- a stall (no byte for `Policy.stall_timeout` seconds mid-body) is said on the progress line,
  the connection dropped and the transfer resumed with Range at once;
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
from . import stream
from .stream import Digests

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
    read_timeout: float = 60.0  # for a response to start (an archive being generated takes a while)
    stall_timeout: float = 10.0  # no byte for this long mid-body: drop the connection, resume with Range
    splice: bool = True  # plain HTTP on Linux: socket -> file in the kernel (False: the TLS path's loop)


@dataclass
class Progress:
    """Total bytes done across threads; `on_bytes` drives whatever bar the caller shows, and
    `on_status` what it says beside it ("stalled, reconnecting", then "" once bytes flow)."""

    on_bytes: Callable[[int], None] = lambda n: None
    on_status: Callable[[str], None] = lambda text: None
    lock: threading.Lock = field(default_factory=threading.Lock)
    stalled: bool = False

    def add(self, n: int) -> None:
        with self.lock:
            self.on_bytes(n)

    def status(self, text: str) -> None:
        self.stalled = bool(text)
        self.on_status(text)


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
    def __init__(self, reason: str, wait: float | None = None, got: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait
        self.got = got  # bytes received before it went wrong (they count as fetched)


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
    digests = Digests(md5=bool(job.md5))  # of the .part's first digests.size bytes, kept across attempts
    for attempt in range(policy.attempts):
        have = part.stat().st_size if part.exists() else 0
        if job.size is not None and have > job.size:
            remove_file(part, dest.parent)
            have = 0
        if digests.size != have:  # an earlier run's .part: its bytes are hashed again as we go
            digests = Digests(md5=bool(job.md5))
        try:
            size, got = _attempt(job, sess, policy, progress, part, have, digests)
            fetched += got
            return _finish(job, part, dest, digests, size, fetched)
        except _Retry as e:
            fetched += e.got
            failures.append(e.reason)
            if attempt + 1 == policy.attempts:
                break
            wait = e.wait if e.wait is not None else policy.backoff * (2 ** attempt)
            time.sleep(min(wait, policy.max_sleep))
    raise DownloadError(f"{job.name}: failed after {policy.attempts} attempts ({'; '.join(failures[-3:])})",
                        hint=f"from {job.url}; re-run to resume, or check the network and proxy variables")


def _attempt(job: Job, sess, policy: Policy, progress: Progress, part: Path, have: int,  # type: ignore[no-untyped-def]
             digests: Digests) -> tuple[int, int]:
    """One request: (bytes in the .part afterwards, bytes received). Raises _Retry."""
    import http.client

    import requests
    import urllib3

    dest = job.dest
    headers = _auth_headers(job) | ({"Range": f"bytes={have}-"} if have else {})
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
            remove_file(part, dest.parent)
            have = 0
            digests.reset()
        elif have and r.status_code == 206:
            start = r.headers.get("Content-Range", "").split(" ")[-1].split("-")[0]
            if start != str(have):
                remove_file(part, dest.parent)
                raise _Retry(f"Content-Range starts at {start}, not {have}", 0)
        length = r.headers.get("Content-Length")
        length_n = int(length) if length and length.isdigit() else None
        got = [0]

        def on_bytes(n: int) -> None:
            if not got[0] and progress.stalled:
                progress.status("")  # bytes flow again
            got[0] += n
            progress.add(n)

        fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            if os.fstat(fd).st_size != have:  # never on the way here (a truncate to 0 would make ext4
                os.ftruncate(fd, have)  # write the whole file out on close: auto_da_alloc)
            stream.receive(r.raw, fd, have, digests, length_n, policy.stall_timeout, on_bytes, policy.splice)
            if stream.reusable(r.raw):  # keep-alive: the next file skips the TCP (and TLS) handshake
                r.raw.release_conn()
        except stream.Stalled as e:
            progress.status("stalled, reconnecting")
            raise _Retry(f"stalled after {have + got[0]} bytes ({e})", 0, got[0]) from None
        except stream.WriteFailed as e:
            if e.error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(f"disk full while writing {dest}",
                               hint=f"free space on {dest.parent}; {job.size or 'unknown'} bytes are needed for this file") from None
            raise e.error from None
        except (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as e:
            raise _Retry(f"connection lost after {have + got[0]} bytes ({type(e).__name__})", None, got[0]) from None
        finally:
            os.close(fd)
    size = have + got[0]
    if job.size is None and length_n is not None and not have and got[0] != length_n:
        raise _Retry(f"body ended after {size} of {length_n} bytes", None, got[0])
    if job.size is not None and size < job.size:
        raise _Retry(f"body ended after {size} of {job.size} bytes", 0, got[0])
    return size, got[0]


def _finish(job: Job, part: Path, dest: Path, digests: Digests, size: int, fetched: int) -> Result:
    hexd = digests.hexdigests()
    git_sha1 = _git_blob_sha1(part, size) if job.git_sha1 else None
    bad = _check(job, hexd, size, git_sha1)
    if bad:
        remove_file(part, dest.parent)  # never keep wrong bytes, not even as a .part to resume
        raise _Retry(f"checksum mismatch: {bad}", 0)
    os.replace(part, dest)
    return Result(job, hexd["sha256"], size, fetched)


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
