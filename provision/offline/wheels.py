"""Wheels for the build index, written with the standard library (the wheel spec: a zip with a
`{name}-{version}.dist-info/` holding METADATA, WHEEL and a RECORD of every file's sha256).

Two kinds of cached builds become wheels whose version carries the build key's local label
(`cext-0.1+torch2.8.0.cu128.sm86.b<digest>`), with the whole key in
`.dist-info/provision-build.json`:

- a wheel `uv build` made: repacked under the new version (dist-info and .data renamed,
  METADATA's Version rewritten, RECORD made anew);
- an in-place build: the built tree (sources, the .so files, the package) under
  `{name}-{version}.data/data/share/provision/ext/{name}/`, which pip installs into the env's
  prefix exactly where `provision apply` builds in place, plus the `.pth` shim that puts it on
  sys.path (a path relative to site-packages). Apply unpacks the same tree itself.

Bytes are deterministic (sorted members, fixed timestamps): publishing one build twice gives one
wheel, so a second publish changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import ProvisionError
from ..ids import check_rel_path
from ..plan.binary import local_label

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
BUILD_FILE = "provision-build.json"
# what an in-place tree keeps out of its wheel: VCS data, build scratch, bytecode, provision's markers
_SKIP_PARTS = {".git", "build", "__pycache__", "dist"}
_SKIP_NAMES = {".provision-owned", ".provision-source"}


class WheelError(ProvisionError):
    """A cached build that cannot be made into a wheel, or a wheel that is not one of ours."""


@dataclass(frozen=True)
class BuiltWheel:
    filename: str
    data: bytes
    metadata: bytes  # METADATA, served beside the wheel as `<wheel>.metadata` (PEP 658)


def dist_name(name: str) -> str:
    """The wheel-filename form of a project name: runs of `-_.` become `_`, lowercased."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(files: dict[str, bytes], dist_info: str, filename: str) -> bytes:
    """A wheel of `files` (dist-info included, RECORD added), deterministic bytes."""
    record = "".join(f"{p},sha256={_b64(d)},{len(d)}\n" for p, d in sorted(files.items()))
    members = {**files, f"{dist_info}/RECORD": (record + f"{dist_info}/RECORD,,\n").encode()}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(members, key=lambda p: (p.startswith(dist_info), p)):  # dist-info last, as the spec prefers
            info = zipfile.ZipInfo(p, date_time=ZIP_DATE)
            info.external_attr = (0o755 if p.endswith(".so") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, members[p])
    return buf.getvalue()


def _metadata(name: str, version: str, summary: str) -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {summary}\n".encode()


def _wheel_text(tag: str) -> bytes:
    return f"Wheel-Version: 1.0\nGenerator: provision publish\nRoot-Is-Purelib: false\nTag: {tag}\n".encode()


def platform_tag(key: dict[str, str]) -> str:
    """`cpython-310-x86_64` -> `cp310-cp310-linux_x86_64` (provision builds on Linux and WSL2)."""
    m = re.fullmatch(r"cpython-(\d+)([a-z]*)-([A-Za-z0-9_]+)", key.get("python", ""))
    if not m:
        raise WheelError(f"build key python {key.get('python')!r} is not a CPython ABI provision knows",
                         hint="rebuild it with this provision (provision apply --from-step build-NAME)")
    return f"cp{m.group(1)}-cp{m.group(1)}{m.group(2)}-linux_{m.group(3)}"


def _labelled(version: str, key: dict[str, str], digest: str) -> str:
    label = local_label(key, digest)
    return f"{version}.{label}" if "+" in version else f"{version}+{label}"


def _build_json(key: dict[str, str], digest: str) -> bytes:
    return (json.dumps({"digest": digest, "key": key}, indent=1, sort_keys=True) + "\n").encode()


def from_built_wheel(path: Path, key: dict[str, str], digest: str) -> BuiltWheel:
    """A wheel `uv build` made, repacked under its labelled version."""
    from packaging.utils import parse_wheel_filename

    try:
        name, version, _, tags = parse_wheel_filename(path.name)
        with zipfile.ZipFile(path) as z:
            members = {i.filename: z.read(i) for i in z.infolist() if not i.is_dir()}
    except (ValueError, zipfile.BadZipFile, OSError) as e:
        raise WheelError(f"{path}: not a wheel ({e})", hint="rebuild it: provision apply --from-step build-NAME") from None
    old = {p.split("/", 1)[0] for p in members if p.split("/", 1)[0].endswith(".dist-info")}
    if len(old) != 1:
        raise WheelError(f"{path}: expected one .dist-info directory, found {sorted(old) or 'none'}")
    old_di = old.pop()
    stem = old_di.removesuffix(".dist-info")
    new_version = _labelled(str(version), key, digest)
    new_stem = f"{dist_name(str(name))}-{new_version}"
    files: dict[str, bytes] = {}
    for p, data in members.items():
        try:
            check_rel_path(p, f"{path.name} member")
        except ValueError as e:
            raise WheelError(f"{path}: {e}", hint="rebuild it: provision apply --from-step build-NAME") from None
        top, _, rest = p.partition("/")
        if top == old_di:
            if rest in ("RECORD", "RECORD.jws", "RECORD.p7s"):
                continue
            if rest == "METADATA":
                data = re.sub(rb"(?m)^Version: .*$", f"Version: {new_version}".encode(), data, count=1)
            p = f"{new_stem}.dist-info/{rest}"
        elif top == f"{stem}.data":
            p = f"{new_stem}.data/{rest}"
        files[p] = data
    files[f"{new_stem}.dist-info/{BUILD_FILE}"] = _build_json(key, digest)
    tag = "-".join(sorted({f"{t.interpreter}-{t.abi}-{t.platform}" for t in tags}))
    filename = f"{new_stem}-{tag}.whl"
    return BuiltWheel(filename, write_wheel(files, f"{new_stem}.dist-info", filename),
                      files[f"{new_stem}.dist-info/METADATA"])


def inplace_tree_prefix(name: str, stem: str) -> str:
    """Where an in-place tree lives inside its wheel: installed to PREFIX/share/provision/ext/NAME."""
    return f"{stem}.data/data/share/provision/ext/{name}/"


def from_inplace_tar(path: Path, key: dict[str, str], digest: str, version: str) -> BuiltWheel:
    """An in-place build (the tar apply cached of the built tree) as a wheel."""
    name = key["name"]
    new_version = _labelled(version, key, digest)
    stem = f"{dist_name(name)}-{new_version}"
    tree = inplace_tree_prefix(name, stem)
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(path) as t:
            for m in t.getmembers():
                rel = str(PurePosixPath(m.name))
                rel = rel[2:] if rel.startswith("./") else rel
                if rel in (".", "") or not m.isfile():
                    continue  # directories come with their files; links and devices never
                parts = rel.split("/")
                if _SKIP_PARTS & set(parts) or parts[-1] in _SKIP_NAMES or rel.endswith((".pyc", ".o")) \
                        or parts[0].endswith(".egg-info"):
                    continue
                check_rel_path(rel, f"{path.name} member")
                f = t.extractfile(m)
                files[tree + rel] = f.read() if f else b""
    except (tarfile.TarError, OSError, ValueError) as e:
        raise WheelError(f"{path}: not a readable in-place build ({e})",
                         hint="rebuild it: provision apply --from-step build-NAME") from None
    if not any(p.endswith((".so", ".pyd")) for p in files):
        raise WheelError(f"{path}: the in-place tree of {name} holds no built library (.so)",
                         hint=f"rebuild it: provision apply --from-step build-{name}")
    depth = "../../../"  # site-packages is PREFIX/lib/pythonX.Y/site-packages on Linux
    files[f"provision-{name}.pth"] = f"{depth}share/provision/ext/{name}\n".encode()
    di = f"{stem}.dist-info"
    files[f"{di}/METADATA"] = _metadata(name, new_version, f"{name} built in place by provision, key {digest}")
    files[f"{di}/WHEEL"] = _wheel_text(platform_tag(key))
    files[f"{di}/{BUILD_FILE}"] = _build_json(key, digest)
    filename = f"{stem}-{platform_tag(key)}.whl"
    return BuiltWheel(filename, write_wheel(files, di, filename), files[f"{di}/METADATA"])


def read_build_key(wheel: Path) -> dict[str, object] | None:
    """The build key a wheel of ours carries, or None when it carries none."""
    try:
        with zipfile.ZipFile(wheel) as z:
            names = [n for n in z.namelist() if n.count("/") == 1 and n.endswith(f".dist-info/{BUILD_FILE}")]
            if len(names) != 1:
                return None
            data = json.loads(z.read(names[0]))
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
