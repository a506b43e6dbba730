"""Given a host from the field notes and a target, the plan is ...

Table-driven: each row is one (target, host) story with the variant, arch list, nvcc source,
MAX_JOBS and blockers the planner must decide. Hosts are JSON fixtures; no GPU is needed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from provision.errors import PlanRefused, UsageError
from provision.host import HostFacts, Nvcc, load_host
from provision.plan import PlanOptions, make_plan
from provision.lock.facts import current
from provision.settings import lockfiles_dir
from provision.spec import load_target

from conftest import FIXTURES

HOSTS = FIXTURES / "hosts"


def host(name: str) -> HostFacts:
    return load_host(HOSTS / f"{name}.json")


def plan(target: str, host_name: str, **opts):  # type: ignore[no-untyped-def]
    """As the CLI plans: with what the committed lockfiles say (unless `locks` is given)."""
    loaded = load_target(target)
    opts.setdefault("locks", current(loaded.spec, lockfiles_dir()))
    return make_plan(loaded, host(host_name), PlanOptions(data_dir="/data", **opts))


# target, host, variant, TORCH_CUDA_ARCH_LIST, nvcc source (version), MAX_JOBS of the first extension, blockers
TABLE = [
    # field note 000: TRELLIS on a 16 GB WSL VM with nvcc 11.8: upstream's cu118 has no lock (its cp310 wheels
    # have no public hashes), so the locked cu121-pypi; nvcc 11.8 is the wrong major -> the lock's 12.2 toolkit
    ("trellis", "rtx3090-wsl2-16g", "cu121-pypi", "8.6", ("toolkit", "12.2"), 6, []),
    # field note 002: driver 535 stops at CUDA 12.2 -> cu121, never cu124; nvcc 11.5 -> the locked 12.2 toolkit
    ("trellis2", "a6000-linux-535", "cu121", "8.6", ("toolkit", "12.2"), 22, []),
    ("trellis", "a6000-linux-535", "cu121-pypi", "8.6", ("toolkit", "12.2"), 32, []),
    ("triposr", "a6000-linux-535", "cu121", "8.6", ("toolkit", "12.2"), 32, []),
    # field note 004: Blackwell gets the cu128 build and 12.0 in the arch list, system nvcc 12.8 fits
    ("triposr", "rtx5070ti-wsl2", "cu128", "12.0", ("system", "12.8"), 18, []),
    # the H100: nvcc 13.0 is the wrong major for any cu12 torch -> the lock's toolkit
    ("trellis2", "h100-cuda13", "cu124", "9.0", ("toolkit", "12.6"), 16, []),
    ("triposr", "h100-cuda13", "cu121", "9.0", ("toolkit", "12.2"), 16, []),
    ("trellis", "h100-cuda13", "cu121-pypi", "9.0", ("toolkit", "12.2"), 16, []),
    # an RTX 4090 on driver 550 without nvcc: cu124 runs, the toolkit comes from the lock
    ("trellis2", "rtx4090-linux-550", "cu124", "8.9", ("toolkit", "12.6"), 11, []),
    # no GPU: the plan is shown, but apply is blocked
    ("triposr", "no-gpu", "cu121", "", ("toolkit", "12.2"), 2, ["no NVIDIA GPU found"]),
    ("trellis2", "no-gpu", "cu124", "", ("toolkit", "12.6"), 2,
     ["no NVIDIA GPU found", "GB RAM + 0 GB swap < 32 GB", "free disk < 60 GB"]),
    # a 16 GB VM is too small for TRELLIS.2's 32 GB
    ("trellis2", "rtx3090-wsl2-16g", "cu124", "8.6", ("toolkit", "12.6"), 2, ["GB swap < 32 GB trellis2 needs"]),
]


@pytest.mark.parametrize("target,host_name,variant,arch,nvcc,jobs,blockers", TABLE,
                         ids=[f"{r[0]}@{r[1]}" for r in TABLE])
def test_plan_table(target, host_name, variant, arch, nvcc, jobs, blockers) -> None:  # type: ignore[no-untyped-def]
    p = plan(target, host_name)
    assert p.variant == variant
    assert p.torch_cuda_arch_list == arch
    assert (p.nvcc.source, p.nvcc.version) == nvcc
    assert p.extensions[0].max_jobs == jobs
    assert len(p.blockers) == len(blockers), [b.what for b in p.blockers]
    for want, got in zip(blockers, p.blockers):
        assert want in got.what
    if p.nvcc.source == "toolkit":  # the toolkit's nvcc major is torch's
        assert p.nvcc.version.split(".")[0] == p.cuda.split(".")[0]


def test_driver_535_never_gets_a_cuda_above_12_2() -> None:
    for target in ("trellis", "trellis2", "triposr"):
        p = plan(target, "a6000-linux-535")
        assert tuple(int(x) for x in p.cuda.split(".")) <= (12, 2), (target, p.cuda)
    p = plan("trellis2", "a6000-linux-535")
    assert p.rejected_variants["cu124"] == [
        "cu124 needs CUDA 12.4 but driver 535.183.01 supports CUDA <= 12.2 (CUDA 12.4 needs driver >= 550.54.14)"]


def test_driver_cuda_is_derived_from_the_driver_version_when_not_reported() -> None:
    h = host("a6000-linux-535").model_copy(update={"driver_cuda": None})
    p = make_plan(load_target("trellis2"), h)
    assert p.variant == "cu121"


def test_trellis_is_refused_on_blackwell_with_the_reason() -> None:
    with pytest.raises(PlanRefused) as e:
        plan("trellis", "rtx5070ti-wsl2")
    assert all("sm_120" in r and "up to sm_90" in r for r in e.value.reasons)
    assert "CUDA >= 12.8" in (e.value.hint or "") and "update" not in (e.value.hint or "")


def test_forced_variant_that_cannot_run_is_refused() -> None:
    with pytest.raises(PlanRefused) as e:
        plan("trellis2", "a6000-linux-535", variant="cu124")
    assert "driver 535.183.01 supports CUDA <= 12.2" in e.value.reasons[0]


def test_unknown_variant_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        plan("trellis2", "a6000-linux-535", variant="cu999")


def test_the_toolkit_is_one_shared_prefix_named_by_its_version_and_files() -> None:
    p = plan("trellis2", "a6000-linux-535")
    facts = current(load_target("trellis2").spec, lockfiles_dir())["cu121"]
    assert p.nvcc.cuda_home == f"/data/toolkits/cuda-12.2-{facts.toolkit_sha256[:12]}"
    assert "11.5" in p.nvcc.reason and "major version differs" in p.nvcc.reason
    build = next(s for s in p.steps if s.id == "build-nvdiffrast")
    assert build.env["CUDA_HOME"] == p.nvcc.cuda_home and build.env["TORCH_CUDA_ARCH_LIST"] == "8.6"
    ids = [s.id for s in p.steps]
    assert ids.index("toolkit") < ids.index("pip-install")  # checked before the pip half is downloaded
    assert plan("triposr", "a6000-linux-535").nvcc.cuda_home == p.nvcc.cuda_home  # two targets, one toolkit


def test_a_host_gcc_too_new_for_nvcc_builds_with_the_toolkits_own_gcc() -> None:
    p = plan("triposr", "h100-cuda13")  # gcc 13 on the H100; nvcc 12.2 accepts <= 12
    assert p.nvcc.cxx == f"{p.nvcc.cuda_home}/bin/x86_64-conda-linux-gnu-g++"
    build = next(s for s in p.steps if s.id.startswith("build-"))
    assert build.env["CXX"] == p.nvcc.cxx and build.env["CC"].endswith("x86_64-conda-linux-gnu-gcc")
    assert not any("unsupported GNU version" in w.what for w in p.warnings)


def test_a_host_without_a_cxx_builds_with_the_toolkits_gcc_or_is_told_to_install_one() -> None:
    """No g++ on the host: the lock's toolkit brings one (trellis2 on the A6000 builds with it); a
    system nvcc brings none (triposr on the RTX 5070 Ti), so the plan blocks before any install."""
    bare = host("a6000-linux-535").model_copy(update={"cxx": None})
    p = make_plan(load_target("trellis2"), bare, PlanOptions(data_dir="/d", locks=current(load_target("trellis2").spec,
                                                                                           lockfiles_dir())))
    assert p.nvcc.cxx == f"{p.nvcc.cuda_home}/bin/x86_64-conda-linux-gnu-g++" and not p.blockers, p.blockers
    assert "no host C++ compiler found: the toolkit's own g++" in p.nvcc.reason
    bare = host("rtx5070ti-wsl2").model_copy(update={"cxx": None})
    p = make_plan(load_target("triposr"), bare, PlanOptions(data_dir="/d"))
    assert [b.what for b in p.blockers] == ["no C++ compiler found (g++): the CUDA extensions (torchmcubes) need one, "
                                            "for their C++ code and as nvcc's host compiler"]
    assert "sudo apt install build-essential" in p.blockers[0].fix


def test_ptx_option_adds_ptx_to_the_highest_arch_only() -> None:
    h = host("a6000-linux-535")
    h = h.model_copy(update={"gpus": h.gpus + [h.gpus[0].model_copy(update={"index": 1, "compute_capability": "8.9",
                                                                             "name": "RTX 4090"})]})
    p = make_plan(load_target("trellis2"), h, PlanOptions(ptx=True))
    assert p.torch_cuda_arch_list == "8.6;8.9+PTX"


def test_arch_list_never_misses_a_gpu_present() -> None:
    for name in ("rtx3090-wsl2-16g", "a6000-linux-535", "rtx5070ti-wsl2", "h100-cuda13"):
        h = host(name)
        try:
            p = make_plan(load_target("triposr"), h)
        except PlanRefused:
            continue
        for g in h.gpus:
            assert g.compute_capability in p.torch_cuda_arch_list.split(";")


def test_an_old_nvcc_that_cannot_compile_for_the_gpu_is_not_chosen() -> None:
    h = host("rtx5070ti-wsl2")
    h = h.model_copy(update={"nvcc": [h.nvcc[0].model_copy(update={"path": "/usr/local/cuda-12.4/bin/nvcc",
                                                                    "version": "12.4"})]})
    p = make_plan(load_target("triposr"), h)
    assert p.nvcc.source == "toolkit" and p.nvcc.version == "12.8"
    assert "older than torch's CUDA 12.8" in p.nvcc.reason


def test_an_nvcc_without_the_gpus_arch_is_unfit_even_when_new_enough() -> None:
    from provision.host import Nvcc
    from provision.plan.toolchain import _nvcc_unfit
    from provision.versions import Dotted

    spec = load_target("triposr").spec
    why = _nvcc_unfit(spec, Nvcc(path="/x/nvcc", version="12.6"), Dotted("12.1"), Dotted("12.1"), [Dotted("12.0")])
    assert why == "cannot compile for sm_120 (max sm_90)"


def test_max_jobs_follows_memory_and_warns_when_one_job_does_not_fit() -> None:
    small = host("rtx3090-wsl2-16g").model_copy(update={"ram_gb": 4.0, "swap_gb": 0.0})
    p = make_plan(load_target("trellis"), small)
    assert all(e.max_jobs == 1 for e in p.extensions)
    oom = [w for w in p.warnings if "exit 137" in w.what]
    assert oom and "provision wslconfig" in oom[0].fix and "wsl --shutdown" in oom[0].fix


def test_the_job_limit_reaches_cmake_builds_too() -> None:
    """torchmcubes builds with scikit-build-core (CMake + ninja), which ignores MAX_JOBS: without
    CMAKE_BUILD_PARALLEL_LEVEL ninja starts one job per core, and a 16 GB WSL VM is OOM-killed."""
    p = plan("triposr", "rtx5070ti-wsl2")
    step = next(s for s in p.steps if s.id == "build-torchmcubes")
    assert step.env["CMAKE_BUILD_PARALLEL_LEVEL"] == step.env["MAX_JOBS"] == str(p.extensions[0].max_jobs)


def test_the_build_path_puts_the_env_first_then_the_toolkit() -> None:
    p = plan("trellis2", "a6000-linux-535")  # system nvcc 11.5 cannot build for torch's CUDA 12.1: the toolkit's
    step = next(s for s in p.steps if s.id == "build-nvdiffrast")
    assert step.env["CUDA_HOME"] == p.nvcc.cuda_home
    assert step.env["PATH"] == f"{p.prefix}/bin:{p.nvcc.cuda_home}/bin:$PATH"


def test_proxy_without_no_proxy_and_busy_port_are_warnings_with_fixes() -> None:
    p = plan("trellis", "rtx3090-wsl2-16g")
    text = " ".join(w.what + " " + w.fix for w in p.warnings)
    assert "NO_PROXY" in text and "localhost" in text
    assert "port 7860 is in use" in text and "GRADIO_SERVER_PORT" in text


def test_gcc_newer_than_nvcc_accepts_is_a_warning() -> None:
    p = plan("triposr", "h100-cuda13", locks=None)  # gcc 13.3, nvcc 12.2 (max gcc 12), no toolkit g++ known
    assert any("unsupported GNU version" in w.what for w in p.warnings)


def test_steps_are_ordered_and_extensions_build_after_the_torch_guard() -> None:
    ids = [s.id for s in plan("trellis2", "a6000-linux-535").steps]
    assert ids[:6] == ["compile", "sources", "create-env", "toolkit", "pip-install", "torch-guard"]
    assert ids.index("build-o-voxel") > ids.index("build-cumesh") > ids.index("torch-guard")
    assert ids[-1] == "verify"


def test_inplace_builds_live_in_the_env_never_tmp() -> None:
    p = plan("trellis2", "a6000-linux-535")
    for s in p.steps:
        if s.id in ("build-flex-gemm", "build-o-voxel"):
            assert "/data/envs/trellis2/share/provision/ext/" in s.command and "/tmp" not in s.command
    wheel = next(s for s in p.steps if s.id == "build-nvdiffrast").command
    assert "--no-build-isolation" in wheel and "install --no-deps" in wheel and "-c /data/envs/trellis2/share/provision/constraints.txt" in wheel


def test_the_plan_is_a_pure_function() -> None:
    a = plan("trellis2", "a6000-linux-535").model_dump_json()
    b = plan("trellis2", "a6000-linux-535").model_dump_json()
    assert a == b


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provision", *args], capture_output=True, text=True)


def test_cli_plan_json_for_a_saved_host() -> None:
    proc = cli("plan", "triposr", "--host", str(HOSTS / "rtx5070ti-wsl2.json"), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["variant"] == "cu128" and data["torch_cuda_arch_list"] == "12.0"


def test_cli_plan_summary_is_readable() -> None:
    proc = cli("plan", "trellis2", "--host", str(HOSTS / "a6000-linux-535.json"))
    assert proc.returncode == 0, proc.stderr
    assert "TORCH_CUDA_ARCH_LIST=8.6" in proc.stdout and "not cu124" in proc.stdout
    assert "no blockers" in proc.stdout


def test_cli_refusal_exits_2_without_traceback() -> None:
    proc = cli("plan", "trellis", "--host", str(HOSTS / "rtx5070ti-wsl2.json"))
    assert proc.returncode == 2
    assert "no variant of trellis can run on this host" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_blockers_exit_2() -> None:
    proc = cli("plan", "triposr", "--host", str(HOSTS / "no-gpu.json"))
    assert proc.returncode == 2 and "no NVIDIA GPU found" in proc.stdout


@pytest.mark.parametrize("content,words", [
    ("{not json", "not valid JSON"),
    ('{"cpu_count": 0, "ram_gb": 1, "swap_gb": 0}', "cpu_count"),
    ('{"cpu_count": 2, "ram_gb": 8, "swap_gb": 0, "gpus": [{"name": "x"}]}', "gpus[0].compute_capability"),
])
def test_bad_host_file_is_a_clear_error(tmp_path: Path, content: str, words: str) -> None:
    f = tmp_path / "host.json"
    f.write_text(content)
    proc = cli("plan", "trellis", "--host", str(f))
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


def test_missing_host_file_says_how_to_make_one(tmp_path: Path) -> None:
    proc = cli("plan", "trellis", "--host", str(tmp_path / "nope.json"))
    assert proc.returncode == 2 and "provision doctor --save" in proc.stderr


# --- plan and lock agree -------------------------------------------------------------------------------------


def test_when_the_default_variant_has_no_lock_the_best_locked_one_is_chosen_and_said_why() -> None:
    p = plan("trellis", "rtx3090-wsl2-16g")  # field note 000's host
    assert p.variant == "cu121-pypi" and not p.blockers
    assert "the default (cu118) has no lockfile" in p.variant_reason


def test_a_variant_without_a_lockfile_is_a_blocker_naming_the_lock_command() -> None:
    p = plan("trellis2", "a6000-linux-535", locks={})
    assert p.variant == "cu121"
    b = [x for x in p.blockers if "no current lockfile" in x.what]
    assert b and "provision lock trellis2 --variant cu121" in b[0].fix
    assert "https://download.pytorch.org/whl/cu121" in b[0].fix  # what the lock must reach
    p = plan("triposr", "a6000-linux-535", locks={})
    assert "needs PyPI only" in next(x.fix for x in p.blockers if "no current lockfile" in x.what)


def test_plan_json_prints_the_refusal_too(tmp_path: Path) -> None:
    proc = cli("plan", "trellis", "--host", str(HOSTS / "rtx5070ti-wsl2.json"), "--json")
    assert proc.returncode == 2
    d = json.loads(proc.stdout)
    assert d["refused"] is True and d["reasons"] and d["blockers"]


def test_apply_dry_run_is_refused_on_a_plan_with_a_lock_blocker(tmp_path: Path) -> None:
    proc = cli("apply", "trellis2", "--host", str(HOSTS / "a6000-linux-535.json"), "--dry-run",
               "--lockdir", str(tmp_path / "no-locks"), "--data-dir", str(tmp_path / "d"))
    assert proc.returncode == 2 and "no current lockfile for trellis2/cu121" in proc.stderr


# --- planner corrections: each a table of hosts the test suite did not have -----------------------------------


def _gpu_host(cc: str, driver: str, cuda: str, wsl: bool = False, name: str = "GPU") -> HostFacts:
    h = host("a6000-linux-535")
    return h.model_copy(update={"driver_version": driver, "driver_cuda": cuda, "wsl": wsl,
                                "gpus": [h.gpus[0].model_copy(update={"compute_capability": cc, "name": name})]})


@pytest.mark.parametrize("cc,driver,cuda,variant,rejected_reason", [
    ("7.0", "575.51.02", "12.9", "cu121", "cu128 needs >= 7.5"),  # a V100: cu128 torch has no sm_70 kernels
    ("7.5", "575.51.02", "12.9", "cu121", None),  # a T4: the default, both would run
    ("12.0", "575.51.02", "12.9", "cu128", "carries kernels only up to sm_90"),  # Blackwell
])
def test_a_variant_is_planned_only_for_gpus_its_torch_has_kernels_for(cc: str, driver: str, cuda: str, variant: str,
                                                                     rejected_reason: str | None) -> None:
    p = make_plan(load_target("triposr"), _gpu_host(cc, driver, cuda), PlanOptions(data_dir="/d"))
    assert p.variant == variant
    other = "cu128" if variant == "cu121" else "cu121"
    try:
        forced = make_plan(load_target("triposr"), _gpu_host(cc, driver, cuda), PlanOptions(variant=other, data_dir="/d"))
    except PlanRefused as e:
        assert rejected_reason and any(rejected_reason in r for r in e.reasons), e.reasons
    else:
        assert rejected_reason is None and forced.variant == other


@pytest.mark.parametrize("target,cc,driver,cuda,wsl,wanted,hint_has,hint_lacks", [
    # Blackwell on a new driver: no driver update helps; say what does
    ("trellis", "12.0", "576.02", "12.9", True, None, "CUDA >= 12.8", "update"),
    # an old driver: the update named is newer than the host's
    ("trellis2", "8.6", "470.82.01", "11.4", False, None, "update the NVIDIA driver to >= 530.30.02", "Windows"),
    # forced variant: the hint does not say "pass --variant"; WSL names the Windows driver
    ("trellis2", "8.6", "531.18", "12.1", True, "cu124", "Windows NVIDIA driver", "--variant"),
    # a GPU older than any build
    ("trellis2", "3.5", "550.90.07", "12.4", False, None, "older than any build", "update"),
    # Blackwell (and sm_100) on driver 535: only cu128 has their kernels, so its driver is the fix, not cu124's
    ("trellis2", "12.0", "535.183.01", "12.2", False, None, "update the NVIDIA driver to >= 570.26", "550.54"),
    ("trellis2", "10.0", "535.183.01", "12.2", False, None, "(what cu128, CUDA 12.8, needs)", "cu124"),
])
def test_refusal_hints_name_what_would_actually_fix_it(target: str, cc: str, driver: str, cuda: str, wsl: bool,
                                                       wanted: str | None, hint_has: str, hint_lacks: str) -> None:
    with pytest.raises(PlanRefused) as e:
        make_plan(load_target(target), _gpu_host(cc, driver, cuda, wsl), PlanOptions(variant=wanted, data_dir="/d"))
    hint = e.value.hint or ""
    assert hint_has in hint and hint_lacks not in hint, hint
    for m in __import__("re").findall(r"driver[^>]*>= (\d+\.\d+(?:\.\d+)?)", hint):  # never older than the host's
        from provision.versions import Dotted

        assert Dotted(m) > Dotted(driver), hint


def test_gpus_no_one_variant_has_kernels_for_are_not_told_to_update_the_driver() -> None:
    """A V100 (sm_70: cu121 only) beside an RTX 5070 Ti (sm_120: cu128 only) on a new driver."""
    h = _gpu_host("7.0", "575.51.02", "12.9")
    h = h.model_copy(update={"gpus": [h.gpus[0], h.gpus[0].model_copy(update={"index": 1, "compute_capability": "12.0"})]})
    with pytest.raises(PlanRefused) as e:
        make_plan(load_target("triposr"), h, PlanOptions(data_dir="/d"))
    hint = e.value.hint or ""
    assert "no variant of triposr carries kernels for every GPU here (sm_70, sm_120)" in hint and "update the" not in hint


def test_a_forced_variant_the_driver_cannot_run_is_refused_with_the_reason() -> None:
    with pytest.raises(PlanRefused) as e:
        make_plan(load_target("trellis2"), host("a6000-linux-535"), PlanOptions(variant="cu124", data_dir="/d"))
    assert "variant cu124 of trellis2 cannot run" in e.value.message
    assert "driver 535.183.01 supports CUDA <= 12.2" in e.value.reasons[0]


def test_an_unknown_driver_is_said_not_silently_passed() -> None:
    h = host("a6000-linux-535").model_copy(update={"driver_version": None, "driver_cuda": None})
    p = plan("trellis2", "a6000-linux-535") if False else make_plan(load_target("trellis2"), h, PlanOptions(data_dir="/d"))
    assert any("driver version is unknown" in w.what for w in p.warnings)


def test_a_toolkit_newer_than_the_driver_is_a_minor_version_compatibility_warning() -> None:
    p = plan("trellis2", "rtx4090-linux-550")  # driver 550, the cu124 lock's toolkit is 12.6 (needs 560)
    assert any("minor-version compatibility" in w.what for w in p.warnings)
    assert not plan("trellis2", "a6000-linux-535").warnings  # 12.2 on 535: no caveat


def test_a_system_nvcc_newer_than_the_driver_gets_the_same_warning() -> None:
    """nvcc 12.9 from /usr/local on a driver that ships CUDA 12.8: judged like the lock's toolkit."""
    h = host("rtx5070ti-wsl2").model_copy(update={"driver_version": "572.16", "driver_cuda": "12.8", "nvcc": [
        Nvcc(path="/usr/local/cuda-12.9/bin/nvcc", version="12.9", on_path=True)]})
    p = make_plan(load_target("triposr"), h, PlanOptions(data_dir="/d"))
    assert p.nvcc.source == "system" and p.nvcc.version == "12.9"
    w = [w for w in p.warnings if "minor-version compatibility" in w.what]
    assert w and "driver 572.16 (which ships CUDA <= 12.8)" in w[0].what and "CUDA >= 12.9" in w[0].fix, p.warnings


def test_the_no_gpu_fix_speaks_of_windows_only_on_wsl() -> None:
    linux = make_plan(load_target("triposr"), host("no-gpu"), PlanOptions(data_dir="/d"))
    assert "Windows" not in " ".join(b.fix for b in linux.blockers)
    wsl = make_plan(load_target("triposr"), host("no-gpu").model_copy(update={"wsl": True}), PlanOptions(data_dir="/d"))
    assert "Windows NVIDIA driver" in " ".join(b.fix for b in wsl.blockers)


def test_a_plan_for_another_host_uses_that_hosts_paths(tmp_path: Path) -> None:
    proc = cli("plan", "triposr", "--host", str(HOSTS / "rtx4090-linux-550.json"), "--json")
    d = json.loads(proc.stdout)
    assert d["data_dir"] == "/home/ada/.local/share/provision" and d["prefix"].startswith("/home/ada/")
    assert str(Path.home()) not in proc.stdout


@pytest.mark.parametrize("ccs,digits", [
    (["8.6"], "80"),  # flash-attn builds 80/90/100/120 only: an A6000 runs the sm_80 build
    (["8.6", "8.9", "9.0"], "80;90"),  # field note 003's team: two archs, not a silently missing sm_86
    (["12.0"], "120"),
    (["9.0", "12.0"], "90;120"),
])
def test_an_extension_that_knows_only_some_archs_is_built_for_the_nearest_one_below(ccs: list[str], digits: str) -> None:
    h = host("rtx5070ti-wsl2")
    h = h.model_copy(update={"gpus": [h.gpus[0].model_copy(update={"index": i, "compute_capability": c})
                                      for i, c in enumerate(ccs)]})
    p = make_plan(load_target("trellis2"), h, PlanOptions(variant="cu128", data_dir="/d"))
    flash = next(s for s in p.steps if s.id == "build-flash-attn")
    assert flash.env["FLASH_ATTN_CUDA_ARCHS"] == digits
    assert flash.env["TORCH_CUDA_ARCH_LIST"] == ";".join(ccs)  # the other extensions: every planned arch


def test_trellis2_plans_its_blackwell_line_on_the_rtx_5070_ti() -> None:
    p = plan("trellis2", "rtx5070ti-wsl2")
    assert p.variant == "cu128" and p.torch == "2.8.0" and p.torch_cuda_arch_list == "12.0"
    assert [b.what for b in p.blockers] == ["NVIDIA GeForce RTX 5070 Ti has 15.9 GB; trellis2 needs 24 GB of VRAM"]


def test_an_explicit_arch_list_is_not_overruled_by_this_hosts_own_gpu() -> None:
    """An image for Ada GPUs built on a machine with an RTX 5070 Ti: cu124 carries sm_89, so it is
    chosen; the local Blackwell card does not enter into it."""
    p = plan("trellis2", "rtx5070ti-wsl2", arch_list=("8.9",))
    assert p.variant == "cu124" and p.torch_cuda_arch_list == "8.9"


def test_an_explicit_arch_list_plans_for_gpus_that_are_not_here() -> None:
    """A build machine (or an image's build stage) with no GPU plans for the GPUs of others: their
    archs, no "no NVIDIA GPU found" blocker, and a warning that the GPU checks happen where it runs."""
    p = plan("trellis", "no-gpu", arch_list=("9.0", "8.6", "8.9"))
    assert p.torch_cuda_arch_list == "8.6;8.9;9.0" and p.arch_list == ["8.6", "8.9", "9.0"]
    assert not p.blockers, p.blockers
    assert any("not for this machine's GPUs" in w.what for w in p.warnings)
    build = next(s for s in p.steps if s.id == "build-nvdiffrast")
    assert build.env["TORCH_CUDA_ARCH_LIST"] == "8.6;8.9;9.0"
    assert any("no NVIDIA GPU" in b.what for b in plan("trellis", "no-gpu").blockers)  # without it: blocked
    with pytest.raises(PlanRefused, match="no variant of trellis") as e:
        plan("trellis", "no-gpu", arch_list=("8.6", "12.0"))
    assert any("sm_120" in r for r in e.value.reasons)


def test_a_variant_for_several_hosts_must_run_on_each() -> None:
    p = plan("trellis", "no-gpu", arch_list=("8.6", "9.0"), runs_on=(host("rtx3090-wsl2-16g"), host("h100-cuda13")))
    assert p.variant == "cu121-pypi" and "the 2 host(s) given" in p.variant_reason
    with pytest.raises(PlanRefused, match="every host given") as e:
        plan("trellis", "no-gpu", arch_list=("8.6",), runs_on=(host("rtx3090-wsl2-16g"), host("rtx5070ti-wsl2")))
    assert any(r.startswith("cu121-pypi: host 2 (RTX 5070 Ti") for r in e.value.reasons), e.value.reasons
    assert "host 2" in (e.value.hint or "") and "sm_120" in (e.value.hint or "")


@pytest.mark.parametrize("text,words", [("86", "write it 8.6"), ("sm_86", "write it 8.6"), ("", "empty arch list"),
                                        ("8.6;;9.0", "empty item"), ("8.6+PTX", "--ptx"), ("8.6.1", "major.minor")])
def test_an_arch_list_is_parsed_strictly(text: str, words: str) -> None:
    from provision.plan import parse_arch_list

    with pytest.raises(ValueError, match=words.replace("+", r"\+")):
        parse_arch_list(text)
    assert parse_arch_list(" 9.0;8.6 ;8.6") == ("8.6", "9.0")
