"""provision compile: given a target and a host file, every artifact is written, and the same
inputs give the same bytes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from test_lock import run

from conftest import FIXTURES

HOST_5070 = str(FIXTURES / "hosts" / "rtx5070ti-wsl2.json")
HOST_A6000 = str(FIXTURES / "hosts" / "a6000-linux-535.json")


def compile_(out: Path, target: str = "triposr", host: str = HOST_5070, *extra: str):
    return run("compile", target, "--host", host, "--out", str(out), "--data-dir", "/data", *extra)


def test_triposr_on_the_rtx_5070_ti_gets_every_artifact(tmp_path: Path) -> None:
    code, out = compile_(tmp_path / "c")
    assert code == 0, out
    c = tmp_path / "c"
    names = {str(p.relative_to(c)) for p in c.rglob("*") if p.is_file()}
    assert {"conda-lock.yml", "requirements.txt", "activate.sh", "checklist.json", "plan.json", "README.md",
            "etc/conda/activate.d/provision-triposr.sh", "etc/conda/deactivate.d/provision-triposr.sh",
            "mirror/mirror.sh", "mirror/SHA256SUMS", "wslconfig/.wslconfig", "FILES.sha256",
            "site-packages/_provision_shims.py", "site-packages/_provision_shims.pth"} <= names  # gradio's shim
    plan = json.loads((c / "plan.json").read_text())
    assert plan["variant"] == "cu128" and plan["torch_cuda_arch_list"] == "12.0"  # Blackwell: sm_120
    req = (c / "requirements.txt").read_text()
    assert "torch @ https://files.pythonhosted.org/" in req and "--hash=sha256:" in req
    sums = (c / "mirror" / "SHA256SUMS").read_text().splitlines()
    assert all(len(line.split("  ")[0]) == 64 for line in sums)
    assert any(line.endswith(".whl") and "wheels/torch-2.8.0" in line for line in sums)
    assert subprocess.run(["sh", "-n", str(c / "mirror" / "mirror.sh")]).returncode == 0
    checks = {ch["id"]: ch for ch in json.loads((c / "checklist.json").read_text())["checks"]}
    assert checks["arch"]["expect"] == ["12.0"] and checks["arch"]["needs_gpu"]
    assert checks["locked-packages"]["expect"]["torch"] == "2.8.0"
    assert "binary-torchmcubes" in checks and "kernel-torchmcubes" in checks
    assert checks["gradio-boolean-schema"]["kind"] == "gradio-schema"  # verify proves the shim in the env


def test_compiling_twice_gives_identical_bytes(tmp_path: Path) -> None:
    assert compile_(tmp_path / "a")[0] == 0
    assert compile_(tmp_path / "b")[0] == 0
    a = {p.relative_to(tmp_path / "a"): p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()}
    b = {p.relative_to(tmp_path / "b"): p.read_bytes() for p in (tmp_path / "b").rglob("*") if p.is_file()}
    assert a == b
    assert compile_(tmp_path / "a")[0] == 0  # recompiling into its own output replaces it


def test_activation_sets_and_deactivation_restores(tmp_path: Path) -> None:
    assert compile_(tmp_path / "c")[0] == 0
    c = tmp_path / "c"
    script = (f'export HF_HOME=/mine; unset HF_HUB_OFFLINE; . {c}/etc/conda/activate.d/provision-triposr.sh; '
              f'echo "$HF_HOME $HF_HUB_OFFLINE"; . {c}/etc/conda/deactivate.d/provision-triposr.sh; '
              f'echo "$HF_HOME ${{HF_HUB_OFFLINE-unset}}"; . {c}/activate.sh; echo "$PATH" | cut -d: -f1; '
              f'provision_deactivate; echo "$HF_HOME"')
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:4] == ["/data/huggingface 1", "/mine unset", "/data/envs/triposr/bin", "/mine"]
    proxy = subprocess.run(["sh", "-c", f"export NO_PROXY=corp.example; . {c}/activate.sh; echo $NO_PROXY; "
                            "provision_deactivate; echo $NO_PROXY"], capture_output=True, text=True, check=True)
    assert proxy.stdout.split() == ["corp.example,localhost,127.0.0.1,::1", "corp.example"]  # extended, then restored


def test_trellis2_on_the_a6000_compiles_its_driver_535_line_in_full(tmp_path: Path) -> None:
    """Field note 002: driver 535 -> cu121, locked from recorded wheel facts: torch 2.5.1+cu121 from the
    cu121 index with its public sha256, triton 3.2.0 (the spec's override), nvcc 12.2 in the lock."""
    code, out = compile_(tmp_path / "c", "trellis2", HOST_A6000)
    assert code == 0, out
    c = tmp_path / "c"
    req = (c / "requirements.txt").read_text()
    assert ("torch @ https://download.pytorch.org/whl/cu121/torch-2.5.1%2Bcu121-cp310-cp310-linux_x86_64.whl \\\n"
            "    --hash=sha256:92af92c569de5da937dd1afb45ecfdd598ec1254cf2e49e3d698cb24d71aae14") in req
    assert "triton @ https://files.pythonhosted.org/" in req and "triton-3.2.0-" in req
    lock = (c / "conda-lock.yml").read_text()
    assert "name: cuda-nvcc\n  version: 12.2.140" in lock and "provision-toolkit: '12.2'" in lock
    shims = sorted(p.name for p in (c / "site-packages").iterdir())
    assert shims == ["provision-app.pth", "provision-flex-gemm.pth", "provision-o-voxel.pth"]  # the app itself, then the in-place builds
    assert (c / "site-packages" / "provision-flex-gemm.pth").read_text().splitlines()[-1] == \
        "/data/envs/trellis2/share/provision/ext/flex-gemm"
    assert not (c / "wslconfig").exists()  # a Linux host gets no .wslconfig
    assert "flash_attn-2.7.3.tar.gz" in (c / "mirror" / "SHA256SUMS").read_text()
    readme = (c / "README.md").read_text()
    assert "provision apply trellis2 --variant cu121" in readme  # what to do next, there
    assert "| nvdiffrast | https://github.com/NVlabs/nvdiffrast.git @ 253ac4fcea7d |" in readme
    assert "| flash-attn | flash_attn-2.7.3.tar.gz" in readme and "12.2 |" in readme
    assert "/data/envs/trellis2" in readme and str(Path.home()) not in readme


def test_without_its_lockfile_compile_says_how_to_make_it_or_goes_on_with_no_lock(tmp_path: Path) -> None:
    code, out = compile_(tmp_path / "c", "trellis2", HOST_A6000, "--lockdir", str(tmp_path / "none"))
    assert code == 2 and "no lockfile for trellis2/cu121" in out and "provision lock trellis2" in out
    assert not (tmp_path / "c").exists()
    code, out = compile_(tmp_path / "c", "trellis2", HOST_A6000, "--lockdir", str(tmp_path / "none"), "--no-lock")
    assert code == 0, out
    readme = (tmp_path / "c" / "README.md").read_text()
    assert "No lockfile was included" in readme
    assert readme.index("no lockfile was included (apply installs from a lock only)") < readme.index("## What to do next")
    assert "none/trellis2/cu121/conda-lock.yml does not exist" in readme and str(tmp_path) not in readme


def test_the_readme_leads_with_what_stops_apply_and_repeats_the_flags_apply_needs(tmp_path: Path) -> None:
    """trellis2 on the 16 GB RTX 5070 Ti: its line (cu128) is planned, the VRAM stops it; the README
    says that before it says to apply. The next command carries --data-dir and --ptx as given."""
    host = str(FIXTURES / "hosts" / "rtx5070ti-wsl2.json")
    code, out = compile_(tmp_path / "c", "trellis2", host, "--data-dir", "/srv/my data", "--ptx")
    assert code == 2 and "trellis2 needs 24 GB of VRAM" in out
    readme = (tmp_path / "c" / "README.md").read_text()
    assert readme.index("## First: what stops it") < readme.index("## What to do next")
    assert "provision apply trellis2 --variant cu128 --data-dir '/srv/my data' --ptx" in readme
    code, out = run("apply", "triposr", "--host", host, "--data-dir", str(tmp_path / "d"), "--ptx", "--dry-run")
    assert code == 0 and "archs 12.0+PTX" in out, out  # apply takes the --ptx it is told to repeat


def test_trellis_on_the_a6000_gets_its_locked_variant_and_compiles_it_twice_the_same(tmp_path: Path) -> None:
    """Upstream's default cu118 cannot be locked (no public cp310 hashes, kaolin from NVIDIA's page): the
    plan takes the locked cu121-pypi and says why; it compiles in full, twice the same."""
    for d in ("c", "d"):
        code, out = compile_(tmp_path / d, "trellis", HOST_A6000)
        assert code == 0, out
    c = tmp_path / "c"
    assert (c / "conda-lock.yml").read_bytes() == (tmp_path / "d" / "conda-lock.yml").read_bytes()
    assert all((c / f).read_bytes() == (tmp_path / "d" / f).read_bytes()
               for f in (c / "FILES.sha256").read_text().split()[1::2])
    req = (c / "requirements.txt").read_text()
    assert "torch @ https://files.pythonhosted.org/" in req
    assert not any(line.startswith("kaolin") for line in req.splitlines())  # built from source, not a wheel
    plan = json.loads((c / "plan.json").read_text())
    assert plan["variant"] == "cu121-pypi" and "kaolin" in [e["name"] for e in plan["extensions"]]
    assert "the default (cu118) has no lockfile" in plan["variant_reason"]
    checks = {ch["id"]: ch for ch in json.loads((c / "checklist.json").read_text())["checks"]}
    assert checks["binary-kaolin"]["dist"] == "kaolin"  # its binaries are found through its installed files
    assert checks["binary-kaolin"]["expect"] == ["8.6"] and "dist" not in checks.get("shim-kaolin", {})
    assert "kaolin" in (c / "mirror" / "SHA256SUMS").read_text() or "kaolin" in (c / "mirror" / "artifacts.json").read_text()


def test_compile_never_overwrites_a_directory_it_did_not_write(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, out = compile_(mine)
    assert code == 2 and "was not written by provision compile" in out
    assert (mine / "notes.txt").read_text() == "keep me"
