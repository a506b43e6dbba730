"""The build index: the fleet's extension builds as a PEP 503 simple repository.

    DIR/simple/index.html            every project
    DIR/simple/<project>/index.html  one link per wheel, `../../files/<wheel>#sha256=<hex>`, with
                                     data-dist-info-metadata and data-core-metadata (PEP 658, 714)
    DIR/files/<wheel>                the wheel
    DIR/files/<wheel>.metadata       its METADATA

Any static HTTP server serves DIR (its `simple/` is the URL `apply --cache-url` takes, as pip's
--index-url would); pypiserver serves it too (it lists the wheels under files/ itself), and
`publish URL` uploads to pypiserver or devpi through the upload API twine uses (credentials
from ~/.netrc, never from the URL). Reading: a project page, parsed for each wheel's URL and
sha256; a link without a sha256 is never used.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from .. import paths
from ..errors import ProvisionError
from ..fsutil import atomic_write_bytes, atomic_write_text, file_digest
from ..ids import SHA256, check_file_name
from ..templating import render
from .wheels import BuiltWheel

MAX_PAGE = 8 << 20


class BuildIndexError(ProvisionError):
    """A build index that cannot be written, read or uploaded to."""


class IndexUnreachable(BuildIndexError):
    exit_code = 3


@dataclass(frozen=True)
class Link:
    filename: str
    url: str
    sha256: str | None
    metadata_sha256: str | None = None


def canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


# --- writing a directory ---------------------------------------------------------------------


def _open_root(root: Path) -> Path:
    """The index directory: new, empty, or one publish made (it carries provision's marker)."""
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        raise BuildIndexError(f"{root} exists and is not a directory", hint="give publish a directory for the index")
    if root.is_dir() and any(root.iterdir()) and not (root / paths.MARKER).is_file():
        raise BuildIndexError(f"{root} is not empty and is not a build index provision made",
                              hint="give publish an empty or new directory, or one an earlier publish wrote")
    return paths.owned_dir(root)


def add_to_dir(root: Path, wheels: list[BuiltWheel]) -> tuple[list[str], list[str], list[str]]:
    """Add wheels to a build index directory and rewrite its pages: (added, unchanged, kept).
    A wheel already there with the same bytes is unchanged; one with other bytes is kept as it
    is (its name names one build: the first published wins, nothing is overwritten)."""
    root = _open_root(Path(root))
    files = paths.owned_dir(root / "files")
    added, same, kept = [], [], []
    fd = os.open(root / ".publish.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # two builders publishing into one shared directory take turns
        for w in wheels:
            check_file_name(w.filename, "a wheel name")
            dest = files / w.filename
            if dest.is_file():
                (same if file_digest(dest) == _sha(w.data) else kept).append(w.filename)
                continue
            atomic_write_bytes(files / f"{w.filename}.metadata", w.metadata)
            atomic_write_bytes(dest, w.data)  # the wheel last: a page never links a wheel without its metadata
            added.append(w.filename)
        write_pages(root)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    return added, same, kept


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def write_pages(root: Path) -> None:
    """root/simple/ from the wheels in root/files/ (pages are rewritten only when they change)."""
    from packaging.utils import parse_wheel_filename

    projects: dict[str, list[dict[str, str]]] = {}
    for w in sorted((root / "files").glob("*.whl")):
        try:
            name = canonical(str(parse_wheel_filename(w.name)[0]))
        except ValueError:
            continue
        meta = w.with_name(w.name + ".metadata")
        projects.setdefault(name, []).append({
            "filename": w.name, "sha256": file_digest(w),
            "metadata_sha256": file_digest(meta) if meta.is_file() else ""})
    simple = paths.owned_dir(root / "simple")
    for name, links in projects.items():
        _write_if_changed(paths.owned_dir(simple / name) / "index.html",
                          render("index/project.html.j2", project=name, links=links))
    _write_if_changed(simple / "index.html", render("index/root.html.j2", projects=sorted(projects)))


def _write_if_changed(path: Path, text: str) -> None:
    if not (path.is_file() and path.read_text() == text):
        atomic_write_text(path, text)


# --- reading an index ------------------------------------------------------------------------


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append({k: v or "" for k, v in attrs})


def parse_page(html: str, page_url: str) -> list[Link]:
    """The wheel links of a PEP 503 project page, each with its sha256 when the page gives one."""
    p = _Anchors()
    p.feed(html)
    out = []
    for a in p.anchors:
        href = a.get("href", "")
        url, _, frag = urljoin(page_url, href).partition("#")
        filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        if not filename.endswith(".whl"):
            continue
        try:
            check_file_name(filename, "a wheel name")
        except ValueError:
            continue
        algo, _, value = frag.partition("=")
        sha = value.lower() if algo == "sha256" and SHA256.fullmatch(value.lower()) else None
        meta = a.get("data-core-metadata") or a.get("data-dist-info-metadata") or ""
        m_algo, _, m_value = meta.partition("=")
        out.append(Link(filename, url, sha, m_value if m_algo == "sha256" and SHA256.fullmatch(m_value) else None))
    return out


def project_url(index_url: str, project: str) -> str:
    return index_url.rstrip("/") + "/" + canonical(project) + "/"


def project_links(index_url: str, project: str, sess) -> list[Link]:  # type: ignore[no-untyped-def]
    """Every wheel link on the project's page; [] when the index has no such project."""
    import requests

    url = project_url(index_url, project)
    try:
        r = sess.get(url, timeout=(10, 30), headers={"Accept": "text/html"})
    except requests.RequestException as e:
        raise IndexUnreachable(f"the build index {index_url} cannot be reached ({type(e).__name__})",
                               hint="is its server running? apply builds instead") from None
    if r.status_code == 404:
        return []
    if r.status_code >= 400:
        raise IndexUnreachable(f"the build index answered {r.status_code} for {url}",
                               hint="check the URL: it is the index's simple/ URL, as pip's --index-url")
    if len(r.content) > MAX_PAGE:
        raise BuildIndexError(f"{url}: the page is {len(r.content)} bytes, too large for a project page")
    return parse_page(r.text, r.url or url)


# --- uploading -------------------------------------------------------------------------------


def upload(url: str, wheel: BuiltWheel, sess) -> str:  # type: ignore[no-untyped-def]
    """Upload one wheel to a pypiserver or devpi index (the legacy upload API): 'added' or 'exists'."""
    import requests
    from packaging.utils import parse_wheel_filename

    name, version, _, tags = parse_wheel_filename(wheel.filename)
    fields = {":action": "file_upload", "protocol_version": "1", "name": str(name), "version": str(version),
              "filetype": "bdist_wheel", "pyversion": next(iter(tags)).interpreter, "metadata_version": "2.1",
              "sha256_digest": _sha(wheel.data)}
    try:
        r = sess.post(url, data=fields, files={"content": (wheel.filename, wheel.data, "application/octet-stream")},
                      timeout=(10, 300))
    except requests.RequestException as e:
        raise IndexUnreachable(f"cannot upload to {url} ({type(e).__name__})",
                               hint="is the index server running, and is this its upload URL?") from None
    if r.status_code == 409 or (r.status_code == 400 and "exist" in r.text.lower()):
        return "exists"
    if r.status_code in (401, 403):
        raise BuildIndexError(f"{url} refused the upload ({r.status_code})",
                              hint="put the index's user and password in ~/.netrc (machine HOST login USER password PW)")
    if r.status_code >= 400:
        raise BuildIndexError(f"{url} refused {wheel.filename}: {r.status_code} {r.text.strip()[:200]}")
    return "added"
