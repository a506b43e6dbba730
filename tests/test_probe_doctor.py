"""Probing this machine never crashes, and doctor turns facts into ok / warn / fail with fixes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from provision.host import load_host
from provision.host import probe as pr
from provision.spec import load_target
from provision.verify.doctor import FAIL, WARN, diagnose, exit_code

from conftest import FIXTURES

SMI = FIXTURES / "nvidia-smi"


def test_nvidia_smi_query_and_header_from_the_h100_parse() -> None:
    gpus, driver = pr.parse_smi_query((SMI / "h100-query.csv").read_text())
    assert driver == "580.159.04"
    assert [(g.name, g.compute_capability, g.memory_gb) for g in gpus] == [("NVIDIA H100 80GB HBM3", "9.0", 79.6)]
    assert pr.parse_smi_cuda((SMI / "h100-header.txt").read_text()) == "13.0"


def test_nvcc_version_lines() -> None:
    assert pr.parse_nvcc_version("Cuda compilation tools, release 13.0, V13.0.88") == "13.0"
    assert pr.parse_nvcc_version("Cuda compilation tools, release 11.5, V11.5.119") == "11.5"
    assert pr.parse_nvcc_version("garbage") is None


def test_proxy_passwords_are_masked() -> None:
    env = {"HTTPS_PROXY": "http://alice:s3cret@proxy.corp:8080", "http_proxy": "http://127.0.0.1:7890"}
    masked = pr.mask_proxies(env)
    assert masked["HTTPS_PROXY"] == "http://***@proxy.corp:8080"  # the user name too: it may be a token
    assert "s3cret" not in json.dumps(masked)
    assert masked["http_proxy"] == "http://127.0.0.1:7890"


def test_meminfo_parsing(tmp_path: Path) -> None:
    f = tmp_path / "meminfo"
    f.write_text("MemTotal:       16318480 kB\nSwapTotal:       4194304 kB\n")
    assert pr.read_meminfo(str(f)) == {"MemTotal": 16318480, "SwapTotal": 4194304}
    assert pr.read_meminfo(str(tmp_path / "missing")) == {}


def test_a_busy_port_is_seen() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not pr.port_free(port)


def test_probe_on_this_machine_has_no_gpu_and_no_traceback(tmp_path: Path) -> None:
    """The test machine has no NVIDIA GPU: the record says so, with why."""
    calls: list[list[str]] = []

    def fake_run(argv: list[str]) -> str | None:
        calls.append(argv)
        return None  # as if nvidia-smi, nvcc... all failed

    facts = pr.probe(paths={"data": tmp_path}, run=fake_run, env={"PATH": "/nonexistent",
                                                                   "HTTPS_PROXY": "http://u:pw@p:1"})
    assert facts.cpu_count >= 1 and facts.ram_gb > 0
    assert facts.proxies == {"HTTPS_PROXY": "http://***@p:1"}
    if not facts.gpus:
        assert facts.gpu_source == "none" and facts.gpu_error


def test_doctor_without_gpu_fails_clearly_and_exits_2() -> None:
    checks = diagnose(load_host(FIXTURES / "hosts" / "no-gpu.json"))
    gpu = next(c for c in checks if c.name == "gpu")
    assert gpu.status == FAIL and "no NVIDIA GPU found" in gpu.detail and gpu.fix
    assert exit_code(checks, strict=False) == 2


def test_doctor_with_target_reports_variant_and_nvcc() -> None:
    checks = diagnose(load_host(FIXTURES / "hosts" / "a6000-linux-535.json"), load_target("trellis2"))
    by = {c.name: c for c in checks}
    assert by["driver"].detail == "driver 535.183.01 supports CUDA <= 12.2"
    assert by["trellis2: variant"].detail.startswith("cu121")
    assert by["trellis2: nvcc"].status == "ok" and "CUDA 12.2 toolkit" in by["trellis2: nvcc"].detail
    assert exit_code(checks, strict=False) == 0 and exit_code(checks, strict=True) == 0  # nothing to warn of


def test_doctor_with_target_on_blackwell_explains_the_refusal() -> None:
    checks = diagnose(load_host(FIXTURES / "hosts" / "rtx5070ti-wsl2.json"), load_target("trellis"))
    v = next(c for c in checks if c.name == "trellis: variant")
    assert v.status == FAIL and "sm_120" in v.detail and "cu128" in v.fix


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provision", *args], capture_output=True, text=True)


def test_doctor_cli_on_this_machine(tmp_path: Path) -> None:
    out = tmp_path / "host.json"
    proc = cli("doctor", "--save", str(out))
    assert proc.returncode in (0, 1, 2) and "Traceback" not in proc.stderr
    assert "gpu" in proc.stdout
    saved = load_host(out)  # round-trips through the host-file loader
    again = cli("doctor", "--host", str(out), "--json")
    assert json.loads(again.stdout)["host"]["cpu_count"] == saved.cpu_count


def test_doctor_json_for_a_fixture_host() -> None:
    proc = cli("doctor", "trellis", "--host", str(FIXTURES / "hosts" / "rtx3090-wsl2-16g.json"), "--json")
    data = json.loads(proc.stdout)
    assert proc.returncode == 0 and data["exit_code"] == 0
    statuses = {c["name"]: c["status"] for c in data["checks"]}
    assert statuses["proxy"] == "warn" and statuses["port"] == "warn"


def test_a_gcc_without_lto_wrapper_is_found_before_a_build_fails_on_it(tmp_path: Path) -> None:
    """The H100 machine's $CXX (/opt/gcc/bin/g++) had no lto-wrapper: torchmcubes failed at link after
    a minute and a half. The probe asks gcc where lto-wrapper is; the plan warns, with the fix."""
    from provision.plan import make_plan
    from provision.spec import load_target

    gxx = tmp_path / "opt" / "bin" / "g++"
    gxx.parent.mkdir(parents=True)
    gxx.write_text("#!/bin/sh\n")
    gxx.chmod(0o755)

    def fake_run(argv: list[str]) -> str | None:
        if argv[1:] == ["-dumpfullversion", "-dumpversion"]:
            return "13.3.0\n"
        if argv[1:] == ["-print-prog-name=lto-wrapper"]:
            return "lto-wrapper\n"  # what a gcc without it prints
        return None

    cxx = pr.find_cxx(fake_run, {"CXX": str(gxx), "PATH": "/nonexistent"})
    assert cxx is not None and cxx.path == str(gxx) and cxx.lto is False
    host = load_host(FIXTURES / "hosts" / "rtx5070ti-wsl2.json").model_copy(update={"cxx": cxx})
    warn = [w for w in make_plan(load_target("triposr"), host).warnings if "lto-wrapper" in w.what]
    assert warn and "CXX=/usr/bin/g++" in warn[0].fix
    c = next(c for c in diagnose(host) if c.name == "c++")
    assert c.status == WARN and "without lto-wrapper" in c.detail
    ok = pr.gcc_has_lto(lambda argv: str(gxx) + "\n", str(gxx))  # a full path that exists: it has one
    assert ok is True
