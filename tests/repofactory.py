"""Real package repositories made by the tests: conda channels and pip indexes on loopback.

conda packages are real `.conda` files (zip of zstd tarballs, as conda-package-streaming
reads them) indexed by rattler's own `index_fs`; wheels are real wheels with METADATA and
RECORD; the pip index is a PEP 503 simple index plus a flat find-links page. Everything
is served by a threaded http.server bound to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import http.server
import io
import json
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path


def _tar_zst(files: dict[str, bytes]) -> bytes:
    import zstandard

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for name, data in sorted(files.items()):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime = len(data), 0
            ti.mode = 0o755 if name.startswith("bin/") else 0o644
            tf.addfile(ti, io.BytesIO(data))
    return zstandard.ZstdCompressor().compress(raw.getvalue())


def conda_package(channel: Path, subdir: str, name: str, version: str, build: str = "h0_0",
                  depends: tuple[str, ...] = (), noarch: str | None = None,
                  files: dict[str, bytes] | None = None) -> Path:
    d = channel / subdir
    d.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-{version}-{build}"
    index = {"name": name, "version": version, "build": build, "build_number": 0, "depends": list(depends),
             "subdir": subdir, "timestamp": 1700000000000}
    if noarch:
        index["noarch"] = noarch
    payload = {f"share/{name}/README": b"test package\n", **(files or {})}
    paths = [{"_path": p, "path_type": "hardlink", "sha256": hashlib.sha256(b).hexdigest(), "size_in_bytes": len(b)}
             for p, b in payload.items()]
    info = {"info/index.json": json.dumps(index).encode(),
            "info/paths.json": json.dumps({"paths": paths, "paths_version": 1}).encode()}
    path = d / f"{stem}.conda"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"conda_pkg_format_version": 2}))
        z.writestr(f"info-{stem}.tar.zst", _tar_zst(info))
        z.writestr(f"pkg-{stem}.tar.zst", _tar_zst(payload))
    return path


# Enough of a CUDA 12.8 toolkit for apply to install it, check it and build with it (no GPU, no
# real compiler): nvcc answers --version and --list-gpu-arch like the real one and "compiles" by
# touching its -o file; conda's layout keeps headers and libraries under targets/x86_64-linux/.
STAND_IN_NVCC = b"""#!/bin/sh
case "$1" in
  --version) echo "nvcc: NVIDIA (R) Cuda compiler driver"; echo "Cuda compilation tools, release ${STANDIN_NVCC_RELEASE:-12.8}, V12.8.93"; exit 0 ;;
  --list-gpu-arch) for a in 75 80 86 89 90 100 120; do echo compute_$a; done; exit 0 ;;
esac
out=""
while [ $# -gt 0 ]; do [ "$1" = "-o" ] && out="$2"; shift; done
[ -n "$out" ] && : > "$out"
exit 0
"""
STAND_IN_TOOLKIT = {
    "bin/nvcc": STAND_IN_NVCC,
    "targets/x86_64-linux/include/cuda_runtime.h": b"/* stand-in */\n",
    "targets/x86_64-linux/lib/stubs/libcuda.so": b"",
}


def index_channel(channel: Path) -> None:
    from rattler.index import index_fs

    (channel / "noarch").mkdir(parents=True, exist_ok=True)
    asyncio.run(index_fs(channel, write_shards=False))


def toy_channel(channel: Path) -> Path:
    """python 3.10 + pip + a CUDA 12.8 toolkit that needs __cuda, like conda-forge's."""
    conda_package(channel, "linux-64", "libzlib", "1.3.1", "hb9d3cd8_2", ("__glibc >=2.17",))
    conda_package(channel, "linux-64", "python", "3.10.19", "h3c07f61_2_cpython", ("libzlib >=1.3.1",))
    conda_package(channel, "linux-64", "python", "3.11.9", "h0_0_cpython", ("libzlib >=1.3.1",))
    conda_package(channel, "noarch", "pip", "24.2", "pyh8b19718_1", ("python >=3.8",), noarch="python")
    conda_package(channel, "noarch", "cuda-version", "12.8", "h5d125a7_3", (), noarch="generic")
    conda_package(channel, "linux-64", "cuda-nvcc", "12.8.93", "hcdd1206_1", ("cuda-version >=12.8,<12.9.0a0", "__cuda"),
                  files=STAND_IN_TOOLKIT)
    index_channel(channel)
    return channel


def wheel(dest: Path, name: str, version: str, requires: tuple[str, ...] = (), tag: str = "py3-none-any",
          extra_files: dict[str, str] | None = None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    dist = name.replace("-", "_")
    di = f"{dist}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {f"{dist}/__init__.py": f"__version__ = {version!r}\n".encode(), f"{di}/METADATA": meta.encode(),
             f"{di}/WHEEL": f"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: {tag}\n".encode()}
    files.update({k: v.encode() for k, v in (extra_files or {}).items()})
    record = ""
    path = dest / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as z:
        for p, data in files.items():
            z.writestr(p, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record += f"{p},sha256={digest},{len(data)}\n"
        z.writestr(f"{di}/RECORD", record + f"{di}/RECORD,,\n")
    return path


def simple_index(root: Path, files_dir: str = "files") -> None:
    """PEP 503 pages under root/simple/<name>/ for every wheel in root/<files_dir>/, with sha256."""
    from packaging.utils import canonicalize_name, parse_wheel_filename

    by_name: dict[str, list[Path]] = {}
    for w in sorted((root / files_dir).glob("*.whl")):
        by_name.setdefault(canonicalize_name(parse_wheel_filename(w.name)[0]), []).append(w)
    for name, wheels in by_name.items():
        d = root / "simple" / name
        d.mkdir(parents=True, exist_ok=True)
        links = "".join(f'<a href="../../{files_dir}/{w.name}#sha256={hashlib.sha256(w.read_bytes()).hexdigest()}">'
                        f"{w.name}</a><br/>\n" for w in wheels)
        (d / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")


def flat_page(root: Path, page: str, files_dir: str) -> None:
    """A find-links page (like kaolin's) linking every wheel in root/<files_dir>/, without hashes."""
    links = "".join(f'<a href="{files_dir}/{w.name}">{w.name}</a><br/>\n' for w in sorted((root / files_dir).glob("*.whl")))
    (root / page).write_text(f"<html><body>\n{links}</body></html>\n")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        del self.headers["If-Modified-Since"]  # always a full answer: simpler for clients' caches
        return super().send_head()


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def repack_installed(dist_name: str, dest: Path) -> Path:
    """A real wheel of a distribution installed in this interpreter (e.g. setuptools), for an
    offline wheelhouse: its files as installed, with a fresh RECORD."""
    from importlib import metadata

    dist = metadata.distribution(dist_name)
    name, version = dist.metadata["Name"], dist.version
    di = f"{name.replace('-', '_')}-{version}.dist-info"
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    record = ""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for f in dist.files or []:
            rel = str(f)
            if rel.startswith("..") or "__pycache__" in rel or rel.endswith((".pyc", "RECORD", "INSTALLER", "REQUESTED", "direct_url.json")):
                continue
            data = f.locate().read_bytes()
            z.writestr(rel, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record += f"{rel},sha256={digest},{len(data)}\n"
        z.writestr(f"{di}/RECORD", record + f"{di}/RECORD,,\n")
    return path
