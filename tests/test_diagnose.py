"""A failed build's log, as the tools print it, is turned into its cause and fix."""

from __future__ import annotations

import pytest

from provision.apply.diagnose import diagnose

CASES = [
    ("/usr/local/cuda-11.8/include/crt/host_config.h:132:2: error: #error -- unsupported GNU version! "
     "gcc versions later than 11 are not supported!", "compiler", "gcc"),
    ("    ModuleNotFoundError: No module named 'torch'\n  error: subprocess-exited-with-error",
     "build isolation", "--no-build-isolation"),
    ("RuntimeError:\nThe detected CUDA version (11.5) mismatches the version that was used to compile\n"
     "PyTorch (12.1). Please make sure to use the same CUDA versions.", "nvcc's CUDA differs", "CUDA_HOME"),
    ("nvcc fatal   : Unsupported gpu architecture 'compute_120'", "sm_120 needs CUDA >= 12.8", "newer nvcc"),
    ("ERROR: Cannot install foo==1.0 because these package versions have conflicting dependencies.\n\n"
     "The conflict is caused by:\n    foo 1.0 depends on torch>=2.5\n    The user requested (constraint) torch==2.4.0\n",
     "foo 1.0 depends on torch>=2.5", "override"),
    ("Successfully installed kaolin-0.1\nImportError: cannot import name 'check_tensor' from 'kaolin.utils.testing'",
     "placeholder", "kaolin index"),
    # kaolin v0.17.0 built against torch 2.11 on the H100 (benchmarks/device/apply_nvdr_h100.sh, KAOLIN=1)
    ('/tmp/kaolin-b/kaolin/csrc/ops/spc/query_cuda.cu(86): error: no suitable conversion function from '
     '"const at::DeprecatedTypeProperties" to "c10::ScalarType" exists', "older than this torch", "variant's torch"),
    ("  File \"setup.py\", line 11, in <module>\n    from pkg_resources import parse_version\n"
     "ModuleNotFoundError: No module named 'pkg_resources'", "removed in 82.0.0", "setuptools 81.0.0"),
    # torchmcubes through apply on the H100 with the machine's /opt/gcc (no lto-wrapper)
    ("[6/6] : && /opt/gcc/bin/g++ -fPIC -O3 -DNDEBUG -flto=auto -fno-fat-lto-objects -shared -o cxx/torchmcubes_module.so\n"
     "/usr/bin/ld: error: could not run lto-wrapper\ncollect2: error: ld returned 1 exit status", "lto-wrapper", "CXX=/usr/bin/g++"),
    # field note 004, problem 2
    ("ModuleNotFoundError: No module named 'scikit_build_core'", "scikit-build-core", "build_requires"),
    ("CMakeNotFoundError: Could not find CMake", "cmake", "pip-install"),
    ("[12/40] /usr/local/cuda/bin/nvcc ... forward.cu\nKilled\nninja: build stopped: subcommand failed.",
     "killed for memory", "MAX_JOBS"),
]


@pytest.mark.parametrize("log, cause, fix", CASES, ids=[c[1][:24] for c in CASES])
def test_the_cause_and_fix_are_named(log: str, cause: str, fix: str) -> None:
    d = diagnose(log)
    assert d is not None and cause in d.cause and fix in d.fix


def test_exit_137_is_memory_whatever_the_log_says() -> None:
    d = diagnose("", returncode=137)
    assert d is not None and "MAX_JOBS" in d.fix and "wslconfig" in d.fix


def test_an_unknown_failure_gets_no_made_up_cause() -> None:
    assert diagnose("error: something nobody has seen before") is None
