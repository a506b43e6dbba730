"""provision verify: given a small real environment with the failures the field notes met,
the checklist names each one, its cause and its fix."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_lock import run

from provision.host import load_host
from provision.lock.lockfile import PipPin
from provision.plan import PlanOptions, make_plan
from provision.render.checklist import compile_checklist
from provision.spec import load_spec

from conftest import FIXTURES
from repofactory import wheel

PY = "%d.%d" % sys.version_info[:2]
SPEC = f"""\
schema_version: 1
name: vtoy
description: a target for verify tests
upstream: {{repo: "https://example.invalid/vtoy", commit: 0123456789abcdef0123456789abcdef01234567, read_from: [setup.sh]}}
include: [shared/cuda.yaml]
python: "{PY}"
conda: {{channels: [conda-forge], packages: [{{name: python}}]}}
pip:
  packages:
    - {{name: alpha, version: "1.0"}}
variants:
  cu128:
    cuda: "12.8"
    default: true
    description: toy
    packages: [{{name: torch, version: "2.8.0"}}]
    host: {{min_compute_capability: "7.0", max_compute_capability: "12.0"}}
extensions:
  - name: fakeext
    module: fakeext
    source: {{git: "https://example.invalid/fakeext.git", commit: 0123456789abcdef0123456789abcdef01234567}}
    build: inplace
    peak_job_memory_gb: 1
    smoke: "import fakeext; fakeext.run()"
  - name: cudalib
    module: cudalib
    source: {{git: "https://example.invalid/cudalib.git", commit: 0123456789abcdef0123456789abcdef01234567}}
    build: wheel
    peak_job_memory_gb: 1
weights:
  urls:
    - {{name: u2net, url: "https://example.invalid/u2net.onnx", sha256: "{'0' * 64}", dest: "{{U2NET_HOME}}/u2net.onnx"}}
  torch_hub:
    - {{repo: facebookresearch/dinov2, commit: 0123456789abcdef0123456789abcdef01234567, entrypoints: [x],
       checkpoints: [{{url: "https://example.invalid/c.pth", file: c.pth}}]}}
env:
  ATTN_BACKEND: {{value: flash_attn, choices: [xformers, flash_attn, sdpa]}}
  U2NET_HOME: "{{data}}/u2net"
resources: {{ram_gb: 1, swap_gb: 0, disk_gb: 1, vram_gb: 4}}
app: {{launch: python app.py, port: PORT}}
checklist:
  - {{kind: kernel, extension: fakeext}}
"""

NO_KERNEL = ("CUDA error: no kernel image is available for execution on the device\\n"
             "CUDA kernel errors might be asynchronously reported at some other API call")


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real venv: alpha 1.0 from a local wheelhouse, an extension whose kernel fails the way
    a wrong arch list does, one that needs a CUDA library that is not there, a stale .pth."""
    d = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(d / "env")], check=True)
    py = d / "env" / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    wh = d / "wheelhouse"
    wheel(wh, "alpha", "0.9")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--isolated", "--find-links", str(wh),
                    "--target", str(site), "alpha==0.9"], check=True, capture_output=True)
    (site / "fakeext.py").write_text(f"def run():\n    raise RuntimeError({NO_KERNEL!r})\n")
    (site / "cudalib.py").write_text(
        "raise ImportError('libcudart.so.12: cannot open shared object file: No such file or directory')\n")
    (site / "provision-fakeext.pth").write_text("# provision: fakeext built in place\n/tmp/build-fakeext-gone\n")
    return py


def checklist_for(tmp_path: Path, port: int) -> Path:
    envs = tmp_path / "envs"
    (envs / "shared").mkdir(parents=True)
    (envs / "shared" / "cuda.yaml").write_text((Path(__file__).resolve().parent.parent / "envs" / "shared" / "cuda.yaml").read_text())
    (envs / "vtoy.yaml").write_text(SPEC.replace("PORT", str(port)))
    loaded = load_spec(envs / "vtoy.yaml")
    host = load_host(FIXTURES / "hosts" / "rtx5070ti-wsl2.json")
    plan = make_plan(loaded, host, PlanOptions(prefix=str(tmp_path / "env"), data_dir=str(tmp_path / "data")))
    cl = compile_checklist(loaded.spec, plan, [PipPin("alpha", "1.0", "https://x/alpha.whl", "0" * 64, None)])
    path = tmp_path / "checklist.json"
    path.write_text(json.dumps(cl))
    return path


def verify(tmp_path: Path, venv: Path, port: int, *extra: str) -> tuple[int, dict]:
    cl = checklist_for(tmp_path, port)
    code, out = run("verify", str(tmp_path / "envs" / "vtoy.yaml"), "--python", str(venv), "--checklist", str(cl),
                    "--host", str(FIXTURES / "hosts" / "rtx5070ti-wsl2.json"), "--json", *extra)
    return code, json.loads(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_each_failure_is_named_with_its_cause_and_fix(tmp_path: Path, venv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVISION_VERIFY_GPU", "1")  # run the GPU checks' explanations without a GPU
    monkeypatch.setenv("ATTN_BACKEND", "flash-attn")  # field note 003
    u2 = tmp_path / "data" / "u2net" / "u2net.onnx"
    u2.parent.mkdir(parents=True)
    u2.write_bytes(b"truncated download")
    code, res = verify(tmp_path, venv, free_port())
    assert code == 2 and res["exit_code"] == 2  # a failed check: README exit code 2
    by = {c["id"]: c for c in res["checks"]}
    assert by["locked-packages"]["status"] == "fail" and "alpha 0.9 (locked 1.0)" in by["locked-packages"]["detail"]
    k = by["kernel-fakeext"]
    assert k["status"] == "fail" and "no kernel image" in k["detail"]
    assert "no code for this GPU" in k["why"] and "TORCH_CUDA_ARCH_LIST=12.0" in k["fix"]
    lib = by["import-cudalib"]
    assert lib["status"] == "fail" and "libcudart.so.12" in lib["why"] and "matches torch's CUDA" in lib["fix"]
    shim = by["shim-fakeext"]
    assert shim["status"] == "fail" and "/tmp/build-fakeext-gone" in shim["detail"] and "never /tmp" in shim["fix"]
    env = by["env-ATTN_BACKEND"]
    assert env["status"] == "fail" and "did you mean 'flash_attn'" in env["detail"]
    w = by["weight-u2net"]
    assert w["status"] == "fail" and "does not match" in w["detail"] and "provision seed" in w["fix"]
    assert by["torch-hub-facebookresearch/dinov2"]["status"] == "fail"
    assert by["python"]["status"] == "ok"


def test_without_a_gpu_the_gpu_checks_are_skipped_never_passed(tmp_path: Path, venv: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVISION_VERIFY_GPU", "0")
    code, res = verify(tmp_path, venv, free_port(), "--report", str(tmp_path / "r.md"))
    by = {c["id"]: c for c in res["checks"]}
    for cid in ("cuda-available", "arch", "kernel-fakeext"):
        assert by[cid]["status"] == "skipped" and by[cid]["detail"] == "skipped: no GPU"
    assert res["gpu"] is False
    report = (tmp_path / "r.md").read_text()
    assert "GPU checks are skipped, not passed" in report and "## What to do" in report


def test_a_busy_port_and_a_proxy_that_swallows_localhost(tmp_path: Path, venv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        code, res = verify(tmp_path / "a", venv, busy)
        port = next(c for c in res["checks"] if c["id"] == "port")
        assert port["status"] == "fail" and f"port {busy}" in port["detail"] and "in use" in port["detail"]
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    code, res = verify(tmp_path / "b", venv, free_port())
    port = next(c for c in res["checks"] if c["id"] == "port")
    assert port["status"] == "fail" and "through the proxy" in port["detail"] and "NO_PROXY" in port["fix"]
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1,::1")
    code, res = verify(tmp_path / "c", venv, free_port())
    assert next(c for c in res["checks"] if c["id"] == "port")["status"] == "ok"


def test_the_torch_hub_proxy_trap_is_caught(tmp_path: Path, venv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    th = tmp_path / "torch"
    (th / "hub" / "facebookresearch_dinov2_main").mkdir(parents=True)
    (th / "hub" / "facebookresearch_dinov2_main" / "hubconf.py").write_text("")
    (th / "hub" / "checkpoints").mkdir()
    (th / "hub" / "checkpoints" / "c.pth").write_bytes(b"x")
    (th / "hub" / "trusted_list").write_text("facebookresearch_dinov2\n")
    monkeypatch.setenv("TORCH_HOME", str(th))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    code, res = verify(tmp_path, venv, free_port())
    by = {c["id"]: c for c in res["checks"]}
    hub = by["torch-hub-facebookresearch/dinov2"]  # compiled with the startup shim: the proxy does not matter
    assert hub["status"] == "ok" and "startup shim" in hub["detail"]
    local = by["torch-hub-local-facebookresearch/dinov2"]  # ... once the env proves it (this one has no torch)
    assert local["status"] == "fail" and "torch.hub cannot be imported" in local["detail"]
    cl = checklist_for(tmp_path / "old", free_port())  # a checklist compiled before the shim: the trap is named
    old = json.loads(cl.read_text())
    old["checks"] = [{k: v for k, v in c.items() if k != "shim"} for c in old["checks"]]
    cl.write_text(json.dumps(old))
    code, out = run("verify", str(tmp_path / "old" / "envs" / "vtoy.yaml"), "--checklist", str(cl), "--json",
                    "--host", str(FIXTURES / "hosts" / "rtx5070ti-wsl2.json"))
    hub = next(c for c in json.loads(out)["checks"] if c["id"] == "torch-hub-facebookresearch/dinov2")
    assert hub["status"] == "warn" and "403/407" in hub["detail"]
    monkeypatch.setenv("NO_PROXY", "github.com,localhost,127.0.0.1")
    code, res = verify(tmp_path / "b", venv, free_port())
    assert next(c for c in res["checks"] if c["id"] == "torch-hub-facebookresearch/dinov2")["status"] == "ok"


def test_preflight_checks_the_host_and_the_bundle_before_installing(tmp_path: Path) -> None:
    code, out = run("verify", "triposr", "--preflight", "--host", str(FIXTURES / "hosts" / "rtx5070ti-wsl2.json"),
                    "--bundle", str(tmp_path / "nothing"), "--json")
    assert code == 2 and "is not a bundle" in out
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "manifest.json").write_text('{"schema": 1, "targets": {}, "artifacts": []}')
    code, out = run("verify", "triposr", "--preflight", "--host", str(FIXTURES / "hosts" / "rtx5070ti-wsl2.json"),
                    "--bundle", str(tmp_path / "b"), "--json")
    rows = {r["name"]: r for r in json.loads(out)["preflight"]}
    assert rows["bundle"]["status"] == "fail" and "provision mirror triposr" in rows["bundle"]["fix"]
    assert rows["gpu"]["status"] == "ok" and code == 2


def test_the_binary_check_finds_a_wheels_library_outside_its_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """nvdiffrast 0.4 installs its kernels as a top-level `_nvdiffrast_c*.so`, beside the
    `nvdiffrast` package (found on the H100: the check said "no .so file found"). The check reads
    the distribution's file list, so cuobjdump sees that library."""
    import zipfile

    from provision.verify import runner as verify_runner

    site = tmp_path / "site"
    w = wheel(tmp_path / "wh", "nvdlike", "0.4.0", extra_files={"_nvdlike_c.cpython-312-x86_64-linux-gnu.so": "ELF"})
    zipfile.ZipFile(w).extractall(site)
    fake = tmp_path / "cuobjdump"
    fake.write_text("#!/bin/sh\n[ \"$1\" = --list-elf ] && echo \"ELF file    1: $(basename $2).1.sm_90.cubin\"\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PROVISION_CUOBJDUMP", str(fake))
    monkeypatch.setattr(verify_runner, "HAS_GPU", False)
    check = {"module": "nvdlike", "expect": ["9.0"]}
    assert verify_runner.c_binary_arch(check)[:2] == ("warn", "no .so file found for nvdlike")
    status, detail, found = verify_runner.c_binary_arch(check | {"dist": "nvdlike"})
    assert status == "ok" and detail == "SASS sm_90, PTX none in 1 file(s)" and found["sass"] == ["90"]


def test_an_env_of_your_own_is_told_how_it_differs_from_the_lock_not_failed(tmp_path: Path) -> None:
    """apply --existing installs none of an env's packages: versions that differ from the lock
    are said (a warning, not required), while two torch installs stay a failure. The device run
    that showed it: tinyext built with the CUDA 13 toolkit into the machine's torch env, whose
    cuda-bindings and filelock were not the lock's."""
    from provision.verify.checks import exit_code
    from provision.verify.checks import verify as run_checks

    checklist = {"schema": 1, "checks": [{"id": "locked-packages", "kind": "packages", "title": "locked",
                                          "fix": "reinstall", "required": True, "expect": {"pytest": "0.0.1"}}]}
    yours, _ = run_checks(checklist, sys.executable, {}, own_env=True)
    assert yours[0].status == "warn" and not yours[0].required and exit_code(yours) == 0
    assert yours[0].detail.startswith("your own env (apply --existing installed none of its packages) differs")
    assert "pytest" in yours[0].detail and "(locked 0.0.1)" in yours[0].detail
    ours, _ = run_checks(checklist, sys.executable, {})
    assert ours[0].status == "fail" and exit_code(ours) == 2


def test_verify_python_of_an_env_applied_with_existing_warns_of_its_packages(tmp_path: Path) -> None:
    """`verify --python PREFIX/bin/python` reads the state apply left in PREFIX: an --existing env
    is told how its packages differ from the lock (exit 0), as it is with --prefix."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "mine")], check=True)
    py = tmp_path / "mine" / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    wheel(tmp_path / "wh", "alpha", "0.9")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--isolated", "--find-links", str(tmp_path / "wh"),
                    "--target", site, "alpha==0.9"], check=True, capture_output=True)
    meta = tmp_path / "mine" / "share" / "provision"
    meta.mkdir(parents=True)
    (meta / "state.json").write_text(json.dumps({"existing": True, "steps": {}}))
    cl = checklist_for(tmp_path, free_port())
    code, out = run("verify", str(tmp_path / "envs" / "vtoy.yaml"), "--python", str(py), "--checklist", str(cl),
                    "--host", str(FIXTURES / "hosts" / "rtx5070ti-wsl2.json"), "--json")
    by = {c["id"]: c for c in json.loads(out)["checks"]}
    assert by["locked-packages"]["status"] == "warn", by["locked-packages"]
    assert "alpha 0.9 (locked 1.0)" in by["locked-packages"]["detail"]


def test_a_missing_arch_is_given_the_fix_of_its_own_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    """trellis2 lists flash-attn first: an nvdiffrast built without this GPU's arch must not be told
    to rebuild (or un-prebuild) flash-attn."""
    from provision.verify import checks

    checklist = {"checks": [
        {"id": "binary-flash-attn", "kind": "binary-arch", "title": "fa", "fix": "drop flash-attn's prebuilt record"},
        {"id": "binary-nvdiffrast", "kind": "binary-arch", "title": "nd", "fix": "rebuild nvdiffrast for 8.6"},
        {"id": "kernel-nvdiffrast", "kind": "kernel", "title": "nd kernel", "fix": "rebuild nvdiffrast"}]}
    results = [{"id": "binary-nvdiffrast", "status": "fail", "detail": "SASS sm_80 only", "sass": ["sm_80"]},
               {"id": "kernel-nvdiffrast", "status": "fail", "detail": "no kernel image", "cause": "no-kernel-image"}]
    monkeypatch.setattr(checks, "run_in_env", lambda python, checklist, env: {"results": results, "gpu": True})
    by_id = {o.id: o for o in checks.verify(checklist, "python", {})[0]}
    assert by_id["binary-nvdiffrast"].fix == "rebuild nvdiffrast for 8.6"
    assert by_id["kernel-nvdiffrast"].fix == "rebuild nvdiffrast for 8.6"
