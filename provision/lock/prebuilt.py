"""Take an extension's own prebuilt wheel instead of compiling it, or say why not (pure).

A cold `provision apply trellis2` compiles flash-attn from its sdist: hours with RAM-limited
jobs. flash-attn's releases publish wheels for one torch major.minor, CUDA major, C++ ABI and
Python each; its setup.py downloads the matching one unless FLASH_ATTENTION_FORCE_BUILD is set,
with no hash. The lock takes such a wheel only when the spec lists it for exactly this build
*with* a sha256 from a public record: then it is one more hashed pip file of the lock, installed
by the pip half, mirrored like the rest, and the plan builds nothing. Otherwise the extension is
built as before, and the lock says which wheel it would have been and why it was not taken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.utils import parse_wheel_filename
from packaging.version import Version

from ..ids import url_file_name
from ..spec import Extension, TargetSpec


def torch_cxx11_abi(torch: str) -> bool:
    """The C++ ABI of the torch builds on PyPI and download.pytorch.org, read from
    torch/share/cmake/Torch/TorchConfig.cmake in the wheels: the pre-C++11 ABI up to 2.6 (2.4.0,
    2.5.1, 2.6.0 cu124: `_GLIBCXX_USE_CXX11_ABI=0`) but for the 2.6.0+cu126 builds (pytorch
    PR #142064), the C++11 ABI from 2.7 on (2.7.0: `=1`)."""
    v = Version(torch)
    if v.release[:2] >= (2, 7):
        return True
    return v.release[:2] == (2, 6) and (v.local or "") == "cu126"


@dataclass(frozen=True)
class Choice:
    """How the lock has one extension installed: a hashed prebuilt wheel, or a build."""

    extension: str
    kind: str  # wheel | build
    text: str  # one line for the lockfile's header and metadata
    url: str | None = None
    sha256: str | None = None
    version: str | None = None  # the wheel's version (flash-attn: 2.8.3+cu12torch2.8cxx11abiTRUE)
    dist: str | None = None  # the wheel's distribution name, as pip matches it (flash-attn)

    def as_dict(self) -> dict[str, str | None]:
        return {"extension": self.extension, "kind": self.kind, "text": self.text, "url": self.url,
                "sha256": self.sha256, "version": self.version, "dist": self.dist}


def _one_line(text: str) -> str:
    """Prose from the spec, on the one line a lockfile header comment has."""
    return " ".join(text.split())


def _build_text(e: Extension, what: str) -> str:
    src = e.source
    sdist = getattr(src, "sdist", None)
    built = (f"built from its sdist {url_file_name(sdist)} (sha256 {getattr(src, 'sha256')[:12]}...)" if sdist
             else "built from source")
    return f"{built}: {what}"


def choose(e: Extension, torch: str, cuda: str, python: str) -> Choice | None:
    """None for an extension that lists no prebuilt wheels (it is built, as always)."""
    if not e.prebuilt:
        return None
    abi = torch_cxx11_abi(torch)
    tv = Version(torch)
    mm, major = f"{tv.release[0]}.{tv.release[1]}", cuda.split(".")[0]
    build = f"torch {mm} / CUDA {major} / {'C++11' if abi else 'pre-C++11'} ABI / cp{python.replace('.', '')}"
    match = [w for w in e.prebuilt if (w.torch, w.cuda, w.cxx11_abi, w.python) == (mm, major, abi, python)]
    if not match:
        listed = ", ".join(f"torch {t}" for t in sorted({w.torch for w in e.prebuilt}, key=Version))
        return Choice(e.name, "build", _build_text(e, f"its project publishes no wheel for {build} "
                                                      f"(the spec lists wheels for {listed})"))
    hashed = [w for w in match if w.sha256]
    if not hashed:
        w = match[0]
        return Choice(e.name, "build", _build_text(e, f"the release wheel for {build}, {url_file_name(w.url)}, "
                                                      f"has no public sha256 record: {_one_line(w.record)}"))
    w = hashed[0]
    name = url_file_name(w.url)
    dist, version, _, _ = parse_wheel_filename(name)  # the spec checked it parses
    return Choice(e.name, "wheel", f"prebuilt {name} (sha256 {w.sha256}, record: {_one_line(w.record)}), not compiled",
                  url=w.url, sha256=w.sha256, version=str(version), dist=str(dist))


_INDEX_BUILD = re.compile(r"/(cu\d+|cpu|rocm[\d.]+)/?$")


def torch_build(spec: TargetSpec, variant: str) -> str | None:
    """The variant's torch as the index names it: the pin's own local tag, else the one its index
    serves (a bare "2.6.0" from download.pytorch.org/whl/cu126 resolves to 2.6.0+cu126, whose C++
    ABI differs from PyPI's 2.6.0), else the pin as it is (PyPI's torch has no local tag)."""
    pkg = next((p for p in spec.variants[variant].packages if p.key == "torch"), None)
    if pkg is None or not pkg.exact:
        return None
    if Version(pkg.exact).local:
        return pkg.exact
    index = spec.pip.indexes.get(pkg.index)
    m = _INDEX_BUILD.search(str(index.url)) if index is not None else None
    return f"{pkg.exact}+{m.group(1)}" if m else pkg.exact


def choices(spec: TargetSpec, variant: str) -> list[Choice]:
    """Every extension of the variant that lists prebuilt wheels, with the lock's choice."""
    torch = torch_build(spec, variant)
    if not torch:
        return []
    cuda = spec.variants[variant].cuda
    out = [choose(e, torch, cuda, spec.python) for e in spec.extensions_for(variant)]
    return [c for c in out if c is not None]


def taken(spec: TargetSpec, variant: str, lock: object) -> frozenset[str]:
    """The extensions both the lock and the spec as it is now install from a prebuilt wheel:
    what may go without its source (a stale lock's word alone is not enough)."""
    from .lockfile import prebuilt

    return prebuilt(lock) & frozenset(c.extension for c in choices(spec, variant) if c.kind == "wheel")
