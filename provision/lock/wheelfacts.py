"""Recorded wheel facts: the pip half's equivalent of the conda channel snapshot.

Some wheels live only on indexes a locking machine may not reach (download.pytorch.org's
`+cu121` builds), yet their file name, URL, sha256 and Requires-Dist are public, copied from
lockfiles and build recipes. A facts file records them, each with where it was read:

    {"schema": 1, "indexes": {"https://download.pytorch.org/whl/cu121": [
        {"file": "torch-2.5.1+cu121-cp310-cp310-linux_x86_64.whl", "url": "https://...", "sha256": "...",
         "requires_python": ">=3.8.0", "requires_dist": ["sympy==1.13.1; python_version >= \\"3.9\\""],
         "source": "owner/repo@commit:path", "cross_check": "..."}]}}

For an index the facts cover, the resolver is handed a local flat directory of stub wheels
(METADATA only, named exactly as the real files) instead of the index: uv resolves them like
any other wheel, and the lock then records the real URL and the recorded sha256, never the
stub's. Apply and mirror download the real file and check that hash: a fact that was wrong
fails loudly there, it can never install something else.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from .. import ids
from ..errors import LockError
from ..readers import InputError, load_json


@dataclass(frozen=True)
class WheelFact:
    index: str
    file: str
    url: str
    sha256: str
    requires_dist: tuple[str, ...]
    requires_python: str | None
    source: str

    @property
    def name(self) -> str:
        return str(parse_wheel_filename(self.file)[0])

    @property
    def version(self) -> str:
        return str(parse_wheel_filename(self.file)[1])


def load(path: Path) -> dict[str, list[WheelFact]]:
    """index URL -> its recorded wheels; every field checked, every fact naming its source."""
    try:
        data = load_json(path, "a wheel-facts file")
    except InputError as e:
        raise LockError(e.message, hint=e.hint) from None
    if not isinstance(data, dict) or data.get("schema") != 1 or not isinstance(data.get("indexes"), dict):
        raise LockError(f"{path}: not a wheel-facts file (schema 1 with `indexes`)")
    out: dict[str, list[WheelFact]] = {}
    for index, facts in data["indexes"].items():
        where = f"{path} indexes[{index!r}]"
        try:
            ids.check_url(index, "an index URL")
        except ValueError as e:
            raise LockError(f"{where}: {e}") from None
        if not isinstance(facts, list):
            raise LockError(f"{where}: a list of wheels, not {type(facts).__name__}")
        out[index.rstrip("/")] = [_fact(index.rstrip("/"), f, f"{where}[{i}]") for i, f in enumerate(facts)]
    return out


def _fact(index: str, f: object, where: str) -> WheelFact:
    if not isinstance(f, dict):
        raise LockError(f"{where}: a wheel is a JSON object")
    try:
        file = ids.check_file_name(f.get("file"), "a wheel file name")
        parse_wheel_filename(file)
        url = ids.check_url(f.get("url"), "a wheel URL")
        if ids.url_file_name(url) != file:
            raise ValueError(f"the URL names {ids.url_file_name(url)!r}, not {file!r}")
        sha = ids.check_sha256(f.get("sha256"))
        source = ids.check_text(f.get("source"), "the source of a fact", 2000)
        reqs = f.get("requires_dist")
        if not isinstance(reqs, list):
            raise ValueError("requires_dist must be a list of requirement strings")
        for r in reqs:
            Requirement(ids.check_text(r, "a requirement"))
        rp = f.get("requires_python")
        if rp is not None:
            SpecifierSet(ids.check_text(rp, "a Python specifier"))
    except (ValueError, InvalidRequirement, InvalidSpecifier, InvalidWheelFilename) as e:
        raise LockError(f"{where}: {e}", hint="every fact is copied from a public record; fix it there") from None
    return WheelFact(index, file, url, sha, tuple(reqs), rp, source)


def stub_wheel(dest: Path, fact: WheelFact) -> Path:
    """A wheel holding only its dist-info (METADATA, WHEEL, RECORD): what a resolver reads."""
    name, version, _, tags = parse_wheel_filename(fact.file)
    dist = f"{str(name).replace('-', '_')}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    if fact.requires_python:
        meta += f"Requires-Python: {fact.requires_python}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in fact.requires_dist)
    tag = next(iter(tags))
    files = {f"{dist}/METADATA": meta.encode(),
             f"{dist}/WHEEL": f"Wheel-Version: 1.0\nGenerator: provision wheel facts\nRoot-Is-Purelib: false\nTag: {tag}\n".encode()}
    record = ""
    path = dest / fact.file
    with zipfile.ZipFile(path, "w") as z:
        for p, data in files.items():
            z.writestr(p, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record += f"{p},sha256={digest},{len(data)}\n"
        z.writestr(f"{dist}/RECORD", record + f"{dist}/RECORD,,\n")
    return path
