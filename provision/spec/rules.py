"""Rules that relate one part of a spec to another.

Field-level checks live on the models (models.py, weights.py); these need the whole spec: a package
listed twice, a variant that names an unknown CUDA toolkit, an extension restricted to
a variant that does not exist. Each rule yields (path, message, hint); the loader turns
paths into file:line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from packaging.version import Version

from ..ids import check_settable_env
from ..secrets import is_secret_name
from ..versions import Dotted, cuda_from_tag
from .fields import ENV_NAME, VARIANT_KEY
from .models import EnvVar, PipPackage, TargetSpec

Path = tuple[object, ...]
Finding = tuple[Path, str, "str | None"]

BUILTIN_INDEXES = {"pypi"}


def check(spec: TargetSpec) -> list[Finding]:
    out: list[Finding] = []
    for rule in (_keys, _indexes, _duplicates, _variants, _extensions, _weights, _env, _checklist):
        out.extend(rule(spec))
    return out


def _indexes(spec: TargetSpec) -> Iterator[Finding]:
    known = BUILTIN_INDEXES | set(spec.pip.indexes)
    lists: list[tuple[Path, list[PipPackage]]] = [(("pip", "packages"), spec.pip.packages)]
    lists += [(("variants", k, "packages"), v.packages) for k, v in spec.variants.items()]
    lists += [(("extensions", i, "build_requires"), e.build_requires) for i, e in enumerate(spec.extensions)]
    lists += [(("extensions", i, "requires"), e.requires) for i, e in enumerate(spec.extensions)]
    for base, pkgs in lists:
        for i, p in enumerate(pkgs):
            if p.git is None and p.index not in known:
                yield (*base, i, "index"), f"unknown index {p.index!r}", \
                    f"define it under pip.indexes, or use one of: {', '.join(sorted(known))}"
            if p.git is None and p.version is None:
                yield (*base, i, "version"), "missing version", \
                    "give the exact version upstream pins, '*' where upstream leaves it open " \
                    "(the lock pins it), or a specifier such as '>=4.56'"
            if p.git is not None and p.version is not None:
                yield (*base, i, "version"), "a git package is pinned by its commit, not a version", \
                    "remove `version:`"
            if p.git is None and (p.requires or p.build_requires):
                yield (*base, i, "requires"), "`requires` is only for git packages", \
                    "an index package's dependencies come from its own metadata: remove `requires:`"
    for i, p in enumerate(spec.pip.packages):
        local = Version(p.exact).local if p.exact else None
        if local and local.startswith("cu"):
            yield ("pip", "packages", i, "version"), \
                f"{p.version!r}: a CUDA build (+{local}) belongs to a variant", \
                f"move {p.name} under variants.{local}.packages"


def _duplicates(spec: TargetSpec) -> Iterator[Finding]:
    common: dict[str, int] = {}
    for i, p in enumerate(spec.pip.packages):
        if p.key in common:
            yield ("pip", "packages", i, "name"), \
                f"duplicate package {p.name!r} (also pip.packages[{common[p.key]}])", "list each package once"
        common.setdefault(p.key, i)
    for vk, v in spec.variants.items():
        seen: dict[str, int] = {}
        for i, p in enumerate(v.packages):
            if p.key in seen:
                yield ("variants", vk, "packages", i, "name"), \
                    f"duplicate package {p.name!r} (also packages[{seen[p.key]}])", "list each package once"
            elif p.key in common:
                yield ("variants", vk, "packages", i, "name"), \
                    f"{p.name!r} is also in pip.packages[{common[p.key]}]", \
                    "a package is either common to all variants or specific to each, not both"
            seen.setdefault(p.key, i)
    names: dict[str, int] = {}
    for i, e in enumerate(spec.extensions):
        if e.name in names:
            yield ("extensions", i, "name"), f"duplicate extension {e.name!r} (also extensions[{names[e.name]}])", None
        names.setdefault(e.name, i)
    conda: dict[str, int] = {}
    for i, c in enumerate(spec.conda.packages):
        if c.name in conda:
            yield ("conda", "packages", i, "name"), f"duplicate conda package {c.name!r}", None
        conda.setdefault(c.name, i)


def _keys(spec: TargetSpec) -> Iterator[Finding]:
    for key in spec.variants:
        if not VARIANT_KEY.fullmatch(key):
            yield ("variants", key), f"variant key {key!r} is not a CUDA build tag like cu121 or cu128", \
                "name variants by the CUDA build of their torch: cu118, cu121, cu124, cu128; a second variant " \
                "of the same build adds what differs: cu121-pypi"
    for key in spec.env:
        if not ENV_NAME.fullmatch(key):
            yield ("env", key), f"{key!r} is not an environment variable name (A-Z, 0-9, _)", None
        elif not _settable(key):
            yield ("env", key), f"{key} may not be set by a spec: it changes how programs load or start", \
                "set it yourself if you must; activation scripts never do"
        elif is_secret_name(key):
            yield ("env", key), f"{key} looks like a secret: a spec is committed and copied into bundles and scripts", \
                "leave it out: provision reads tokens from the environment (HF_TOKEN) and never writes them down"
    if spec.app.port_env and not _settable(spec.app.port_env):
        yield ("app", "port_env"), f"{spec.app.port_env} may not carry the app's port: it changes how programs load " \
            "or start", "name the variable the app reads its port from (GRADIO_SERVER_PORT), or use {port} in launch"
    for key in spec.cuda_toolkits:
        try:
            Dotted(key)
        except ValueError:
            yield ("cuda_toolkits", key), f"{key!r} is not a CUDA version like '12.4'", None


def _settable(key: str) -> bool:
    try:
        check_settable_env(key)
    except ValueError:
        return False
    return True


def _variants(spec: TargetSpec) -> Iterator[Finding]:
    defaults = [k for k, v in spec.variants.items() if v.default]
    if len(defaults) > 1:
        yield ("variants", defaults[1], "default"), f"more than one default variant: {', '.join(defaults)}", \
            "mark exactly one variant `default: true`"
    for k, v in spec.variants.items():
        if not VARIANT_KEY.fullmatch(k):
            continue
        tag = k.split("-")[0]
        if tag != "cpu" and cuda_from_tag(tag) != Dotted(v.cuda):
            yield ("variants", k, "cuda"), f"variant {k} says cuda {v.cuda!r}", \
                f"the key {k} means CUDA {cuda_from_tag(tag)}: make them agree"
        if tag != "cpu" and v.cuda not in spec.cuda_toolkits:
            yield ("variants", k, "cuda"), f"CUDA {v.cuda} is not described under cuda_toolkits", \
                f"known: {', '.join(spec.cuda_toolkits) or '(none: include shared/cuda.yaml)'}"
        if v.toolkit is not None:
            if v.toolkit not in spec.cuda_toolkits:
                yield ("variants", k, "toolkit"), f"toolkit {v.toolkit} is not described under cuda_toolkits", \
                    f"known: {', '.join(spec.cuda_toolkits)}"
            elif Dotted(v.toolkit).major != Dotted(v.cuda).major or Dotted(v.toolkit) < Dotted(v.cuda):
                yield ("variants", k, "toolkit"), \
                    f"toolkit {v.toolkit} for torch's CUDA {v.cuda}: torch builds only with nvcc of its CUDA major, " \
                    "not older than its own CUDA", f"use a {Dotted(v.cuda).major}.x toolkit >= {v.cuda}"
        keys = [p.key for p in v.packages]
        if "torch" not in keys:
            yield ("variants", k, "packages"), "no torch package", "each variant pins its torch build"
        for i, p in enumerate(v.packages):
            if p.git is None and not p.exact:
                yield ("variants", k, "packages", i, "version"), \
                    f"{p.name} {p.version!r} is not an exact pin", "variant packages are CUDA builds: pin them exactly"
            local = Version(p.exact).local if p.exact else None
            if local and local.startswith("cu") and local != k:
                yield ("variants", k, "packages", i, "version"), \
                    f"{p.name} {p.version} is a {local} build inside variant {k}", f"use the +{k} build"
        lo, hi = Dotted(v.host.min_compute_capability), Dotted(v.host.max_compute_capability)
        if lo > hi:
            yield ("variants", k, "host", "min_compute_capability"), \
                f"min_compute_capability {lo} is above max_compute_capability {hi}", None


def _extensions(spec: TargetSpec) -> Iterator[Finding]:
    for i, e in enumerate(spec.extensions):
        for j, vk in enumerate(e.variants or []):
            if vk not in spec.variants:
                yield ("extensions", i, "variants", j), f"unknown variant {vk!r}", \
                    f"variants of this spec: {', '.join(spec.variants)}"
        for j, p in enumerate(e.build_requires):
            if p.git is None and not p.exact:
                yield ("extensions", i, "build_requires", j, "version"), \
                    f"{p.name} {p.version!r} is not an exact pin", "build requirements are pinned exactly"
        if e.nvcc == "none" and e.min_nvcc:
            yield ("extensions", i, "min_nvcc"), "min_nvcc given but nvcc is 'none'", None


def _weights(spec: TargetSpec) -> Iterator[Finding]:
    seen: dict[str, int] = {}
    for i, r in enumerate(spec.weights.huggingface):
        if r.repo in seen:
            yield ("weights", "huggingface", i, "repo"), f"duplicate repo {r.repo!r}", \
                "list each repo once, with all the files it needs"
        seen.setdefault(r.repo, i)
        if r.gated and not r.licence_url:
            yield ("weights", "huggingface", i, "licence_url"), f"gated repo {r.repo} has no licence_url", \
                "users must be told where to accept the licence: add licence_url"
    names: set[str] = set()
    for i, w in enumerate(spec.weights.urls):
        if w.name in names:
            yield ("weights", "urls", i, "name"), f"duplicate weight {w.name!r}", None
        names.add(w.name)
    hub: set[str] = set()
    for i, h in enumerate(spec.weights.torch_hub):
        if h.repo in hub:
            yield ("weights", "torch_hub", i, "repo"), f"duplicate torch.hub repo {h.repo!r}", None
        hub.add(h.repo)


PLACEHOLDERS = {"prefix": "the environment's prefix", "data": "provision's data directory (weights, caches)",
                "arch_list": "the planned TORCH_CUDA_ARCH_LIST", "arch_digits": "the planned archs as 80;86;90",
                "ext_arch_digits": "the planned archs as the extension's own build knows them (build_archs)"}
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def _placeholders(spec: TargetSpec, text: str) -> list[str]:
    """Unknown {names} in a value: only PLACEHOLDERS and the spec's own env variables are known."""
    return [m for m in _PLACEHOLDER.findall(text) if m not in PLACEHOLDERS and m not in spec.env]


def _env(spec: TargetSpec) -> Iterator[Finding]:
    hint = f"known placeholders: {', '.join('{' + k + '}' for k in PLACEHOLDERS)} and this spec's env names"
    values: list[tuple[Path, str]] = [(("env", k), v) for k, v in spec.env_values().items()]
    values += [(("extensions", i, "env", k), v) for i, e in enumerate(spec.extensions) for k, v in e.env.items()]
    values += [(("weights", "urls", i, "dest"), w.dest) for i, w in enumerate(spec.weights.urls)]
    for path, text in values:
        for bad in _placeholders(spec, text):
            yield path, f"unknown placeholder {{{bad}}} in {text!r}", hint
    for name, v in spec.env.items():
        if isinstance(v, EnvVar) and v.choices is not None and v.value not in v.choices:
            near = [c for c in v.choices if c.replace("_", "-") == v.value.replace("_", "-")]
            hint = f"did you mean {near[0]!r}?" if near else f"one of: {', '.join(v.choices)}"
            yield ("env", name, "value"), f"{name}={v.value!r} is not a value the app accepts", hint


def _checklist(spec: TargetSpec) -> Iterator[Finding]:
    ext = {e.name: e for e in spec.extensions}
    for i, c in enumerate(spec.checklist):
        if c.kind == "kernel":
            if c.extension not in ext:
                yield ("checklist", i, "extension"), f"unknown extension {c.extension!r}", \
                    f"extensions of this spec: {', '.join(ext) or '(none)'}"
            elif not ext[c.extension].smoke:
                yield ("checklist", i, "extension"), f"extension {c.extension!r} has no `smoke:` code to run", None
