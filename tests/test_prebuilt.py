"""An extension's own prebuilt wheel instead of hours of compiling (issue 19, part 3).

Given a spec whose CUDA extension lists the wheels its project publishes (flash-attn's release
assets), the lock takes the one built for exactly this torch / CUDA major / C++ ABI / Python when
a public record gives its sha256 (a hashed pip file of the lock like any other: mirrored, seeded,
installed with --require-hashes), the plan builds nothing for it, and apply installs it offline;
without such a record the extension is built as before and the lock says why.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
from test_lock import run

from conftest import FIXTURES
from provision.lock import lockfile
from provision.lock.facts import read as read_facts
from provision.lock.prebuilt import choose, torch_build, torch_cxx11_abi
from provision.spec import Extension, TargetSpec, load_target
from repofactory import repack_installed, serve, simple_index, toy_channel, wheel

PY = "%d.%d" % sys.version_info[:2]
CP = f"cp{PY.replace('.', '')}"
HOST = str(FIXTURES / "hosts" / "rtx5070ti-wsl2.json")
PEXT = "1.0+cu12torch2.8cxx11abiTRUE"

SPEC = f"""\
schema_version: 1
name: pretoy
description: a target whose CUDA extension comes as its project's prebuilt wheel
upstream: {{repo: "https://example.invalid/pretoy", commit: 0123456789abcdef0123456789abcdef01234567, read_from: [setup.py]}}
python: "{PY}"
cuda_toolkits:
  "12.8": {{min_driver_linux: "570.26", min_driver_windows: "570.65", nvcc_min_arch: "5.0",
           nvcc_max_arch: "12.0", conda_channel: "CHAN", conda_packages: [cuda-nvcc], max_gcc: "14"}}
conda:
  channels: ["CHAN"]
  packages: [{{name: python, version: "{PY}.*"}}]
pip: {{packages: []}}
variants:
  cu128:
    cuda: "12.8"
    default: true
    description: toy
    packages: [{{name: torch, version: "2.8.0"}}]
    host: {{min_compute_capability: "7.0", max_compute_capability: "12.0"}}
extensions:
  - name: pext
    module: pext
    source: {{sdist: "https://example.invalid/pext-1.0.tar.gz", sha256: "{'0' * 64}"}}
    build: wheel
    peak_job_memory_gb: 20
    prebuilt:
      - {{url: "WURL", torch: "2.8", cuda: "12", cxx11_abi: true, python: "{PY}", sha256: "WSHA",
          record: "the project's release notes"}}
      - {{url: "https://example.invalid/pext-1.0+cu12torch2.6cxx11abiFALSE-{CP}-{CP}-linux_x86_64.whl",
          torch: "2.6", cuda: "12", cxx11_abi: false, python: "{PY}", record: "none found"}}
resources: {{ram_gb: 1, swap_gb: 0, disk_gb: 1, vram_gb: 1}}
app: {{launch: python app.py, port: 7860}}
checklist:
  - {{kind: import, module: pext}}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    t = tmp_path_factory.mktemp("prebuilt")
    root = t / "repos"
    toy_channel(root / "chan")
    files = root / "pypi" / "files"
    wheel(files, "torch", "2.8.0", extra_files={"torch/__init__.py": "__version__ = '2.8.0+cu128'\nfrom . import version\n",
                                                "torch/version.py": "cuda = '12.8'\n"})
    repack_installed("setuptools", files)
    simple_index(root / "pypi")
    # the project's own wheel, published beside its sdist (not on the package index)
    pw = wheel(root / "releases", "pext", PEXT, tag=f"{CP}-{CP}-linux_x86_64",
               extra_files={"pext/__init__.py": "def hello():\n    return 'prebuilt'\n"})
    (t / "app").mkdir()
    host = json.loads(Path(HOST).read_text()) | {"nvcc": []}  # no nvcc at all: nothing may need one
    (t / "host.json").write_text(json.dumps(host))
    spec = t / "envs" / "pretoy.yaml"
    spec.parent.mkdir()
    with serve(root) as url:
        spec.write_text(SPEC.replace("CHAN", f"{url}/chan").replace("WURL", f"{url}/releases/{pw.name}")
                        .replace("WSHA", hashlib.sha256(pw.read_bytes()).hexdigest()))
        code, out = run("lock", str(spec), "--lockdir", str(t / "lockfiles"), "--index-url", f"{url}/pypi/simple",
                        "--exclude-newer", "none")
        assert code == 0, out
        code, out = run("mirror", str(spec), "--to", str(t / "bundle"), "--lockdir", str(t / "lockfiles"))
    return {"t": t, "spec": spec, "wheel": pw, "host": str(t / "host.json"), "mirror": out}


def test_the_lock_takes_the_hashed_wheel_built_for_this_torch_cuda_abi_and_python(world: dict) -> None:
    path = world["t"] / "lockfiles" / "pretoy" / "cu128" / "conda-lock.yml"
    text = path.read_text()
    sha = hashlib.sha256(world["wheel"].read_bytes()).hexdigest()
    assert f"# pext: prebuilt {world['wheel'].name} (sha256 {sha}, record: the project's release notes), not compiled" in text
    lock = lockfile.read(path)  # conda-lock's own parser
    pins = {p.name: p for p in lockfile.pip_pins(lock)}
    assert pins["pext"].version == PEXT.lower() and pins["pext"].sha256 == sha and pins["pext"].url.endswith(world["wheel"].name)
    assert read_facts(path).prebuilt == ("pext",)


def test_the_plan_builds_nothing_and_needs_no_nvcc_for_it(world: dict) -> None:
    t = world["t"]
    code, out = run("plan", str(world["spec"]), "--host", world["host"], "--lockdir", str(t / "lockfiles"),
                    "--data-dir", str(t / "data"), "--json")
    assert code == 0, out
    plan = json.loads(out)
    assert [s["id"] for s in plan["steps"] if s["id"].startswith("build-")] == []
    assert plan["extensions"] == [{"name": "pext", "build": "prebuilt", "max_jobs": 0, "peak_gb": 0.0}]
    assert not plan["nvcc"]["needed"] and plan["blockers"] == []  # 20 GB a job on a 16 GB host: no warning either
    code, out = run("plan", str(world["spec"]), "--host", world["host"], "--lockdir", str(t / "lockfiles"))
    assert "pext prebuilt (a hashed wheel in the lock, not compiled)" in out


def test_apply_installs_it_offline_from_the_bundle_checking_its_hash(world: dict) -> None:
    t = world["t"]
    code, out = run("seed", str(t / "bundle"), "--data-dir", str(t / "data"), "--hf-home", str(t / "hf"),
                    "--torch-home", str(t / "th"))
    # the wheel is in the bundle, the extension's sdist is not asked for; only the app's (fake) repo is missing
    assert code == 1 and "lacks 1 artifact(s) of pretoy: pretoy-upstream" in out, out
    code, out = run("apply", str(world["spec"]), "--host", world["host"], "--offline", "--venv", "--python",
                    sys.executable, "--prefix", str(t / "env"), "--data-dir", str(t / "data"),
                    "--lockdir", str(t / "lockfiles"), "--source", f"pretoy-upstream={t / 'app'}")
    assert code == 0, out
    assert "build-pext" not in out and "pip-install: done" in out
    assert (t / "data" / "wheelhouse" / world["wheel"].name).is_file()
    import subprocess

    r = subprocess.run([str(t / "env" / "bin" / "python"), "-c", "import pext; print(pext.hello())"],
                       capture_output=True, text=True)
    assert r.stdout.strip() == "prebuilt", r.stderr


def _ext(**wheel: object) -> Extension:
    return Extension.model_validate({
        "name": "flash-attn", "module": "flash_attn", "build": "wheel", "peak_job_memory_gb": 5,
        "source": {"sdist": "https://files.example/flash_attn-2.7.3.tar.gz", "sha256": "9" * 64},
        "prebuilt": [{"url": "https://github.example/flash_attn-2.7.3+cu12torch2.6cxx11abiFALSE-cp310-cp310-linux_x86_64.whl",
                      "torch": "2.6", "cuda": "12", "cxx11_abi": False, "python": "3.10", "record": "searched"} | wheel]})


def test_without_a_hash_record_or_a_wheel_for_this_build_it_is_built_and_the_lock_says_why() -> None:
    no_hash = choose(_ext(), "2.6.0", "12.4", "3.10")
    assert no_hash is not None and no_hash.kind == "build"
    assert no_hash.text == ("built from its sdist flash_attn-2.7.3.tar.gz (sha256 999999999999...): the release wheel for "
                            "torch 2.6 / CUDA 12 / pre-C++11 ABI / cp310, flash_attn-2.7.3+cu12torch2.6cxx11abiFALSE-"
                            "cp310-cp310-linux_x86_64.whl, has no public sha256 record: searched")
    none_for_it = choose(_ext(sha256="a" * 64), "2.8.0", "12.8", "3.10")
    assert none_for_it is not None and none_for_it.kind == "build"
    assert "its project publishes no wheel for torch 2.8 / CUDA 12 / C++11 ABI / cp310" in none_for_it.text
    hashed = choose(_ext(sha256="a" * 64), "2.6.0", "12.4", "3.10")
    assert hashed is not None and hashed.kind == "wheel" and hashed.version == "2.7.3+cu12torch2.6cxx11abifalse"
    assert hashed.dist == "flash-attn"  # what pip matches the file by, whatever the extension is called
    assert choose(_ext(sha256="a" * 64), "2.6.0+cu126", "12.6", "3.10").kind == "build"  # that build has the C++11 ABI
    with pytest.raises(ValueError, match="wheel file name"):
        _ext(url="https://github.example/flash_attn-2.7.3.whl")


def test_the_abi_of_torch_builds_as_read_from_their_wheels() -> None:
    assert [torch_cxx11_abi(v) for v in ("2.4.0", "2.5.1+cu121", "2.6.0", "2.6.0+cu124", "2.6.0+cu126", "2.7.0",
                                         "2.8.0", "2.11.0+cu130")] == [False, False, False, False, True, True, True, True]


def test_a_bare_torch_pin_is_the_build_its_index_serves() -> None:
    """torch "2.6.0" from download.pytorch.org/whl/cu126 is 2.6.0+cu126 (C++11 ABI), not PyPI's 2.6.0."""
    import yaml

    doc = yaml.safe_load(SPEC.replace("CHAN", "https://example.invalid/chan").replace("WURL", "https://example.invalid/"
                                      f"pext-{PEXT}-{CP}-{CP}-linux_x86_64.whl").replace("WSHA", "a" * 64))
    doc["pip"]["indexes"] = {"pytorch-cu126": {"url": "https://download.pytorch.org/whl/cu126"}}
    packages = doc["variants"]["cu128"]["packages"]
    builds = []
    for torch in ({"name": "torch", "version": "2.6.0", "index": "pytorch-cu126"},
                  {"name": "torch", "version": "2.6.0+cu124", "index": "pytorch-cu126"},
                  {"name": "torch", "version": "2.6.0"}, {"name": "torch", "version": ">=2.6"}):
        packages[:] = [torch]
        builds.append(torch_build(TargetSpec.model_validate(doc), "cu128"))
    assert builds == ["2.6.0+cu126", "2.6.0+cu124", "2.6.0", None]
    assert torch_cxx11_abi(builds[0]) and not torch_cxx11_abi(builds[2])


def test_the_trellis2_locks_say_flash_attn_is_built_and_why() -> None:
    root = Path(__file__).resolve().parent.parent
    for v, why in (("cu121", "the release wheel for torch 2.5 / CUDA 12 / pre-C++11 ABI / cp310"),
                   ("cu124", "the release wheel for torch 2.6 / CUDA 12 / pre-C++11 ABI / cp310"),
                   ("cu128", "its project publishes no wheel for torch 2.8 / CUDA 12 / C++11 ABI / cp310")):
        text = (root / "lockfiles" / "trellis2" / v / "conda-lock.yml").read_text()
        line = next(li for li in text.splitlines() if li.startswith("# flash-attn: "))
        assert line.startswith("# flash-attn: built from its sdist flash_attn-2.7.3.tar.gz") and why in line, line
        assert "provision-prebuilt: none" in text
    assert load_target("trellis2").spec  # the records validate


def test_into_an_env_of_your_own_nothing_comes_from_the_lock_so_it_is_built(world: dict, tmp_path: Path) -> None:
    """--existing installs no package of the lock, its prebuilt wheel included: the extension is built."""
    t = world["t"]
    (tmp_path / "mine" / "bin").mkdir(parents=True)
    (tmp_path / "mine" / "bin" / "python").symlink_to(sys.executable)
    code, out = run("apply", str(world["spec"]), "--host", world["host"], "--existing", "--prefix", str(tmp_path / "mine"),
                    "--data-dir", str(t / "data"), "--lockdir", str(t / "lockfiles"), "--dry-run")
    assert code == 0 and "build-pext: build pext" in out and "toolkit: the CUDA 12.8 build toolkit" in out, out
