"""What the planner needs to know of a committed lockfile, read in a millisecond.

The plan (pure, and run on every `provision plan`) must know which variants are locked and
which CUDA toolkit each lock carries, without parsing a 200 KB YAML file through conda-lock
(half a second to import). provision writes these facts into the lockfile's
`custom_metadata` (lockfile.py); this reads them back with one regular expression. A file
that is not ours, or is damaged, simply has no facts: the plan then treats the variant as
not locked, and `provision lock --check` (which does parse it) says why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import ids
from ..spec import TargetSpec
from .lockfile import (META_INPUTS, META_PREBUILT, META_TOOLKIT, META_TOOLKIT_CXX, META_TOOLKIT_DIGEST, META_VARIANT,
                       lockfile_path)

_META = re.compile(r"^ {4}(provision-[a-z0-9-]+): ?'?([^'\n]*)'?$", re.M)


@dataclass(frozen=True)
class LockFacts:
    variant: str
    inputs_sha256: str
    toolkit: str | None = None  # CUDA toolkit version in the cuda-toolkit category, when there is one
    toolkit_sha256: str | None = None  # digest of the toolkit's files: names its shared prefix
    toolkit_cxx: str | None = None  # version of the conda g++ the toolkit brings
    prebuilt: tuple[str, ...] = ()  # extensions the lock installs from a hashed prebuilt wheel (no build)

    @property
    def toolkit_dir(self) -> str | None:
        """DATA/toolkits/<this>: one prefix per toolkit version and exact set of files."""
        if not (self.toolkit and self.toolkit_sha256):
            return None
        return f"cuda-{self.toolkit}-{self.toolkit_sha256[:12]}"


def read(path: Path) -> LockFacts | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 16)  # the metadata block comes first, after our header
    except OSError:
        return None
    meta = dict(_META.findall(text))
    variant, inputs = meta.get(META_VARIANT), meta.get(META_INPUTS)
    if not variant or not inputs or not ids.SHA256.fullmatch(inputs):
        return None
    tk, tk_sha, cxx = meta.get(META_TOOLKIT), meta.get(META_TOOLKIT_DIGEST), meta.get(META_TOOLKIT_CXX)
    ok = bool(tk and re.fullmatch(r"\d+\.\d+", tk) and tk_sha and ids.SHA256.fullmatch(tk_sha))
    names = [n for n in meta.get(META_PREBUILT, "").split(",") if n and n != "none"]
    return LockFacts(variant, inputs, tk if ok else None, tk_sha if ok else None,
                     cxx if cxx and re.fullmatch(r"\d+(\.\d+){0,3}", cxx) else None,
                     tuple(n for n in names if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", n)))


def for_target(lockdir: Path, target: str, variants: list[str]) -> dict[str, LockFacts]:
    """The variants of `target` that have a lockfile, with its facts."""
    out = {}
    for v in variants:
        f = read(lockfile_path(lockdir, target, v))
        if f is not None and f.variant == v:
            out[v] = f
    return out


def fresh(facts: Mapping[str, LockFacts], digests: Mapping[str, str]) -> dict[str, LockFacts]:
    """Those whose recorded inputs match the spec's current ones (a stale lock is not a lock)."""
    return {v: f for v, f in facts.items() if digests.get(v) == f.inputs_sha256}


def current(spec: TargetSpec, lockdir: Path) -> dict[str, LockFacts]:
    """The variants of a spec with a lockfile that is current for it: what a plan may install."""
    from .inputs import lock_inputs

    found = for_target(lockdir, spec.name, list(spec.variants))
    return fresh(found, {v: lock_inputs(spec, v).digest() for v in found})
