"""What makes two builds of an extension the same binary: one definition for apply's build
cache (measured in the env), the fleet's build groups (predicted from host files) and the
build index's version labels.

A `Toolchain` is what a host builds with: the variant, torch and the CUDA it was built for,
the Python ABI, the arch list, the C++ compiler and nvcc. Apply measures it in the env
(`provision.apply.extensions.build_key`), the planner predicts it from a host file
(`toolchain_of_plan`); both go through the same normalising functions below, so a fleet
group and the cache key of the builds it shares agree by construction. An extension's key
adds its own name, build kind, source pin and build variables (`ext_key`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass

from ..host import HostFacts
from ..spec import Extension, TargetSpec
from .model import Plan

# Bump when the key's fields or their normal forms change: every cached build then misses once.
KEY_VERSION = 2
DIGEST_LEN = 20


@dataclass(frozen=True)
class Toolchain:
    variant: str
    torch: str  # "2.8.0": the release, without a local label (its CUDA is torch_cuda)
    torch_cuda: str  # "12.8", or "none" for a CPU build
    python: str  # "cpython-310-x86_64": interpreter, ABI and machine
    arch_list: str  # TORCH_CUDA_ARCH_LIST as the build sees it: "8.6;9.0"
    cxx: str  # "gcc 11.4.0"
    nvcc: str  # "12.4", or "none"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def digest(self) -> str:
        return digest_of(self.as_dict())


def norm_torch(version: str | None) -> str:
    return (version or "none").split("+", 1)[0]


def norm_cuda(version: str | None) -> str:
    m = re.match(r"(\d+)\.(\d+)", version or "")
    return f"{int(m.group(1))}.{int(m.group(2))}" if m else "none"


def norm_python(cache_tag: str, abiflags: str, machine: str) -> str:
    """`cpython-310` + abiflags (`t` free-threaded, `d` debug) + machine: what an extension links against."""
    return f"{cache_tag}{abiflags}-{machine}"


def python_of_spec(spec: TargetSpec, host: HostFacts) -> str:
    """The spec's Python on that host: conda and the venvs provision makes are CPython."""
    return norm_python("cpython-" + spec.python.replace(".", ""), "", host.arch)


def norm_cxx(name: str | None, version: str | None) -> str:
    return f"{name} {version}" if name and version else "none"


def toolchain_of_plan(spec: TargetSpec, host: HostFacts, plan: Plan) -> Toolchain:
    """The toolchain apply will measure on that host, predicted from its host file (pure)."""
    return Toolchain(
        variant=plan.variant, torch=norm_torch(plan.torch), torch_cuda=norm_cuda(plan.cuda),
        python=python_of_spec(spec, host), arch_list=plan.torch_cuda_arch_list,
        cxx=norm_cxx(host.cxx.name, host.cxx.version) if host.cxx else "none",
        nvcc=norm_cuda(plan.nvcc.version) if plan.nvcc.needed else "none")


def ext_key(tc: Toolchain, ext: Extension, source_pin: str) -> dict[str, str]:
    """Everything that changes one extension's binary; its digest names the cached build."""
    key = tc.as_dict()
    if ext.nvcc == "none":
        key["nvcc"] = "none"
    key.update({"v": str(KEY_VERSION), "name": ext.name, "build": ext.build, "source": source_pin,
                "env": json.dumps(dict(sorted(ext.env.items())))})
    return key


def digest_of(key: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:DIGEST_LEN]


def local_label(key: dict[str, str], digest: str) -> str:
    """A PEP 440 local version label naming torch, CUDA and the archs, then the key's digest:
    `torch2.8.0.cu128.sm86.sm90.b0123456789abcdef0123` (in the spirit of `+cu.12.8.torch.2.11`)."""
    parts = [f"torch{key.get('torch', 'none')}"]
    cuda = key.get("torch_cuda", "none")
    parts.append("cpu" if cuda == "none" else "cu" + cuda.replace(".", ""))
    for a in filter(None, key.get("arch_list", "").split(";")):
        ptx = a.endswith("+PTX")
        parts.append("sm" + a.removesuffix("+PTX").replace(".", "") + ("ptx" if ptx else ""))
    parts.append(f"b{digest}")
    label = ".".join(re.sub(r"[^a-z0-9.]", "", p.lower()) for p in parts)
    return re.sub(r"\.+", ".", label).strip(".")


def digest_of_label(version: str) -> str | None:
    """The build key digest a published version carries (`...+....b<digest>`), if any."""
    local = version.partition("+")[2]
    m = re.search(rf"(?:^|\.)b([0-9a-f]{{{DIGEST_LEN}}})$", local)
    return m.group(1) if m else None
