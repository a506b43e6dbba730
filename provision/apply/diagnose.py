"""What a failed build or install log means, and the fix (pure: log text in, diagnosis out).

Each rule is a failure the field notes met, matched on the words the tools really print.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..host.facts import LTO_FIX


@dataclass(frozen=True)
class Diagnosis:
    cause: str
    fix: str


def _rule(pattern: str, cause: str, fix: str) -> tuple[re.Pattern[str], str, str]:
    return re.compile(pattern, re.I | re.M), cause, fix


RULES = [
    _rule(r"unsupported GNU version|gcc versions later than \d+ are not supported",
          "the host C++ compiler is newer than this nvcc accepts",
          "install an older gcc (e.g. gcc-12) and export CC/CXX to it, or use the conda nvcc the plan offers"),
    _rule(r"No module named '?torch'?",
          "the build ran in an isolated environment without the installed torch (build isolation)",
          "build with --no-build-isolation (provision always does; this was a pip call without it)"),
    _rule(r"The detected CUDA version \(([\d.]+)\) mismatches the version that was used to compile\s+PyTorch \(([\d.]+)\)",
          "nvcc's CUDA differs from torch's CUDA",
          "point CUDA_HOME at an nvcc of torch's CUDA major version; `provision plan` adds conda's nvcc when the host's does not fit"),
    _rule(r"Unsupported gpu architecture '(compute_\d+)'",
          "this nvcc cannot compile for an architecture in TORCH_CUDA_ARCH_LIST (e.g. sm_120 needs CUDA >= 12.8)",
          "use a newer nvcc (the variant's CUDA), or drop that arch from the list"),
    _rule(r"user requested \(constraint\) ([\w.-]+)==([\w.+]+)",
          "a package asked for another version of a pinned package (the constraints file refused it)",
          "the package named above `The conflict is caused by` wants another version: pin a release of it that "
          "accepts the locked one, or add a deliberate override to the variant"),
    _rule(r"Could not find a version that satisfies the requirement kaolin|kaolin-0\.1\b|kaolin 0\.1\b",
          "PyPI's `kaolin` is a placeholder: the real wheels are on NVIDIA's find-links pages",
          "install kaolin from the torch/CUDA page of the variant (the spec's kaolin index)"),
    _rule(r'no suitable conversion function from "const at::DeprecatedTypeProperties" to "c10::ScalarType"',
          "the extension's source is older than this torch: it dispatches on `tensor.type()`, which newer torch "
          "no longer converts to a ScalarType (seen building kaolin 0.17.0 against torch 2.11 on the H100)",
          "build it against the variant's torch (kaolin 0.17.0 supports torch <= 2.5.1), or pin a release of the "
          "extension made for this torch"),
    _rule(r"No module named '?pkg_resources'?",
          "setup.py imports pkg_resources, which setuptools removed in 82.0.0",
          "pin setuptools 81.0.0 in the extension's build_requires (as envs/trellis.yaml does for kaolin)"),
    _rule(r"could not run lto-wrapper|lto-wrapper: (fatal error|not found)",
          "the C++ compiler cannot run its link-time optimizer (lto-wrapper is missing: an incomplete gcc install); "
          "CMake projects that ask for INTERPROCEDURAL_OPTIMIZATION (torchmcubes) link with -flto",
          LTO_FIX + ", then provision apply --from-step build-<extension>"),
    _rule(r"No module named '?scikit_build_core'?|CMakeNotFoundError|Could not find CMake",
          "the build needs scikit-build-core / cmake / ninja in the env (builds run without isolation)",
          "they are the extension's build_requires in the spec: provision apply --from-step pip-install installs them"),
    _rule(r"(^|\s)Killed(\s|$)|signal 9|exit status 137|returned non-zero exit status 137|-9\b.*Killed",
          "the build was killed for memory: too many parallel compile jobs for this RAM",
          "lower MAX_JOBS (provision plan sizes it from RAM and swap), and on WSL2 raise memory/swap "
          "with `provision wslconfig TARGET --write` then `wsl --shutdown`"),
]


def diagnose(log: str, returncode: int | None = None) -> Diagnosis | None:
    if returncode in (137, -9):
        return Diagnosis(RULES[-1][1], RULES[-1][2])
    for pattern, cause, fix in RULES:
        m = pattern.search(log)
        if m:
            if "constraint" in pattern.pattern:
                who = re.search(r"^\s*([\w.-]+ [\w.+!-]+) depends on ([^\n]+)", log, re.M)
                cause = f"{cause}: {m.group(1)} is pinned to {m.group(2)}" + (
                    f"; {who.group(1)} depends on {who.group(2).strip()}" if who else "")
            return Diagnosis(cause, fix)
    return None
