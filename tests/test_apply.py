"""provision apply, end to end on this machine and offline: a small target whose packages come
from a local channel and wheelhouse the test builds, mirrors and seeds, with a C extension
built in place and made importable by its .pth shim."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_lock import run

from conftest import FIXTURES
from repofactory import repack_installed, serve, simple_index, toy_channel, wheel

ROOT = Path(__file__).resolve().parent.parent
PY = "%d.%d" % sys.version_info[:2]
HOST = str(FIXTURES / "hosts" / "rtx5070ti-wsl2.json")

SPEC = f"""\
schema_version: 1
name: apptoy
description: a target for apply tests
upstream: {{repo: "https://example.invalid/apptoy", commit: 0123456789abcdef0123456789abcdef01234567, read_from: [setup.py]}}
python: "{PY}"
cuda_toolkits:
  "12.8": {{min_driver_linux: "570.26", min_driver_windows: "570.65", nvcc_min_arch: "5.0",
           nvcc_max_arch: "12.0", conda_channel: "CHAN", conda_packages: [cuda-nvcc], max_gcc: "14"}}
conda:
  channels: ["CHAN"]
  packages: [{{name: python, version: "{PY}.*"}}]
pip:
  packages:
    - {{name: alpha, version: "1.0"}}
variants:
  cu128:
    cuda: "12.8"
    default: true
    description: toy
    packages: [{{name: torch, version: "2.8.0"}}, {{name: beta, version: "1.0"}}]
    host: {{min_compute_capability: "7.0", max_compute_capability: "12.0"}}
extensions:
  - name: cext
    module: cext
    source: {{git: "https://github.com/example/cext.git", commit: 0123456789abcdef0123456789abcdef01234567}}
    build: inplace
    nvcc: none
    peak_job_memory_gb: 1
  - name: wext
    module: wext
    source: {{git: "https://github.com/example/wext.git", commit: 89abcdef0123456789abcdef0123456789abcdef}}
    build: wheel
    nvcc: none
    peak_job_memory_gb: 1
  - name: gext
    module: gext
    source: {{git: "https://github.com/example/gext.git", commit: 456789abcdef0123456789abcdef0123456789ab}}
    build: wheel
    peak_job_memory_gb: 1
weights:
  urls:
    - {{name: model, url: "WURL", sha256: "WSHA", dest: "{{data}}/weights/model.bin"}}
env:
  APPTOY_MODE: {{value: fast, choices: [fast, slow]}}
resources: {{ram_gb: 1, swap_gb: 0, disk_gb: 1, vram_gb: 1}}
app: {{launch: python app.py, port: 7860, imports: [{{module: apptoy, name: Pipeline}}]}}
"""

SETUP = """\
import os, subprocess, sys, time
from setuptools import Extension, setup
if os.environ.get("CEXT_SLOW"):
    time.sleep(float(os.environ["CEXT_SLOW"]))
if os.environ.get("CEXT_UPGRADE"):  # what a careless setup.py does: installs what it likes
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links",
                           os.environ["CEXT_UPGRADE"], "alpha==2.0"])
setup(name="cext", version="0.1", ext_modules=[Extension("cext", ["cext.c"])])
"""
# Like nvdiffrast 0.4: the package reads its own distribution metadata at import, so it must be
# installed as a wheel (an in-place build + .pth would fail with PackageNotFoundError).
WSETUP = """\
from setuptools import Extension, setup
setup(name="wext", version="0.3", packages=["wext"], ext_modules=[Extension("wext._c", ["wext/_c.c"])])
"""
WINIT = "import importlib.metadata\n__version__ = importlib.metadata.version('wext')\nfrom ._c import hello\n"
# A "CUDA" extension: its build asks $CUDA_HOME's nvcc for its version, as torch's cpp_extension does,
# and records what it saw (the toolkit apply assembled, its headers, the stubs on LIBRARY_PATH).
GSETUP = """\
import os, pathlib, subprocess
from setuptools import setup
home = os.environ["CUDA_HOME"]
out = subprocess.run([home + "/bin/nvcc", "--version"], capture_output=True, text=True, check=True).stdout
assert pathlib.Path(home, "include", "cuda_runtime.h").is_file(), "no $CUDA_HOME/include/cuda_runtime.h"
pathlib.Path("gext").mkdir(exist_ok=True)
pathlib.Path("gext/__init__.py").write_text(
    f"CUDA_HOME = {home!r}\\nNVCC = {out.splitlines()[-1]!r}\\nLIBRARY_PATH = {os.environ.get('LIBRARY_PATH', '')!r}\\n")
setup(name="gext", version="0.1", packages=["gext"])
"""
CSRC = """\
#include <Python.h>
static PyObject *hello(PyObject *self, PyObject *args) { return PyUnicode_FromString("hello from C"); }
static PyMethodDef M[] = {{"hello", hello, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef D = {PyModuleDef_HEAD_INIT, "cext", NULL, -1, M};
PyMODINIT_FUNC PyInit_cext(void) { return PyModule_Create(&D); }
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Lock the target against loopback repos, mirror and seed: afterwards everything is offline."""
    os.environ.setdefault("PROVISION_CACHE", str(tmp_path_factory.mktemp("cache")))
    t = tmp_path_factory.mktemp("apply")
    root = t / "repos"
    toy_channel(root / "chan")
    files = root / "pypi" / "files"
    wheel(files, "alpha", "1.0")
    wheel(files, "beta", "1.0")
    # a stand-in torch: the version and CUDA build the checks read, nothing else
    wheel(files, "torch", "2.8.0", extra_files={"torch/__init__.py": "__version__ = '2.8.0+cu128'\nfrom . import version\n",
                                                "torch/version.py": "cuda = '12.8'\n"})
    repack_installed("setuptools", files)
    simple_index(root / "pypi")
    wheel(t / "upgrades", "alpha", "2.0")
    weights = b"model weights " * 1000
    (root / "w").mkdir()
    (root / "w" / "model.bin").write_bytes(weights)
    src = t / "cext-src"
    src.mkdir()
    (src / "setup.py").write_text(SETUP)
    (src / "cext.c").write_text(CSRC)
    gsrc = t / "gext-src"
    gsrc.mkdir()
    (gsrc / "setup.py").write_text(GSETUP)
    asrc = t / "app-src"  # the upstream app: not a package, imported from its own tree
    (asrc / "apptoy").mkdir(parents=True)
    (asrc / "apptoy" / "__init__.py").write_text("class Pipeline:\n    pass\n")
    (asrc / "app.py").write_text("import apptoy\nprint('apptoy app')\n")
    host = json.loads(Path(HOST).read_text()) | {"nvcc": []}  # no nvcc here: the lock's toolkit builds
    (t / "host.json").write_text(json.dumps(host))
    wsrc = t / "wext-src"
    (wsrc / "wext").mkdir(parents=True)
    (wsrc / "setup.py").write_text(WSETUP)
    (wsrc / "wext" / "__init__.py").write_text(WINIT)
    (wsrc / "wext" / "_c.c").write_text(CSRC.replace("cext", "_c"))
    envs = t / "envs"
    (envs / "shared").mkdir(parents=True)
    (envs / "shared" / "cuda.yaml").write_text((ROOT / "envs" / "shared" / "cuda.yaml").read_text())
    with serve(root) as url:
        spec = envs / "apptoy.yaml"
        import hashlib

        spec.write_text(SPEC.replace("CHAN", f"{url}/chan").replace("WURL", f"{url}/w/model.bin")
                        .replace("WSHA", hashlib.sha256(weights).hexdigest()))
        code, out = run("lock", str(spec), "--lockdir", str(t / "lockfiles"), "--index-url", f"{url}/pypi/simple",
                        "--exclude-newer", "none")
        assert code == 0, out
        code, out = run("mirror", str(spec), "--to", str(t / "bundle"), "--lockdir", str(t / "lockfiles"))
        assert "cext" in out  # its GitHub archive is not on this loopback server: built from --source here
    code, out = run("seed", str(t / "bundle"), "--hf-home", str(t / "hf"), "--torch-home", str(t / "th"),
                    "--data-dir", str(t / "data"))
    # seeded, and said to be incomplete: the two sources are not in it (apply builds them from --source)
    assert code == 1 and "INCOMPLETE" in out and "cext, gext, wext" in out, out
    return {"t": t, "spec": spec, "src": src, "wsrc": wsrc, "gsrc": gsrc, "asrc": asrc, "host": str(t / "host.json")}


def apply_args(w: dict, *extra: str) -> list[str]:
    t = w["t"]
    return ["apply", str(w["spec"]), "--host", w["host"], "--offline", "--venv", "--python", sys.executable,
            "--prefix", str(t / "env"), "--data-dir", str(t / "data"), "--lockdir", str(t / "lockfiles"),
            "--source", f"cext={w['src']}", "--source", f"wext={w['wsrc']}", "--source", f"gext={w['gsrc']}",
            "--source", f"apptoy-upstream={w['asrc']}", *extra]


def test_apply_builds_the_env_offline_and_verify_is_green(world: dict) -> None:
    t = world["t"]
    code, out = run(*apply_args(world, "--bundle", str(t / "bundle")))
    assert code == 0, out
    py = t / "env" / "bin" / "python"
    r = subprocess.run([str(py), "-c", "import alpha, beta, cext; print(alpha.__version__, cext.hello())"],
                       capture_output=True, text=True)
    assert r.stdout.strip() == "1.0 hello from C", r.stderr
    r = subprocess.run([str(py), "-c", "import wext; print(wext.__version__, wext.hello())"], capture_output=True, text=True)
    assert r.stdout.strip() == "0.3 hello from C", r.stderr  # built as a wheel: its metadata is installed
    assert "build --wheel --no-build-isolation" in (t / "env" / "share" / "provision" / "logs" / "build-wext.log").read_text()
    log = (t / "env" / "share" / "provision" / "logs" / "pip-install.log").read_text()
    assert "--require-hashes" in log and "--no-index" in log
    pth = next((t / "env" / "lib").rglob("provision-cext.pth")).read_text()
    assert f"{t}/env/share/provision/ext/cext" in pth and "/tmp/" not in pth.split("\n", 2)[-1].replace(str(t), "")
    act = t / "env" / "etc" / "conda" / "activate.d" / "provision-apptoy.sh"
    deact = t / "env" / "etc" / "conda" / "deactivate.d" / "provision-apptoy.sh"
    sh = subprocess.run(["sh", "-c", f". {act}; echo $APPTOY_MODE; . {deact}; echo ${{APPTOY_MODE-unset}}"],
                        capture_output=True, text=True, check=True).stdout.split()
    assert sh == ["fast", "unset"]
    assert "verify" in out and "done" in out.split("verify")[-1]
    assert "weights: done" in out and (t / "data" / "weights" / "model.bin").is_file()  # seeded, and verified


def test_apply_installs_the_app_itself_importable_from_anywhere_and_verify_imports_it(world: dict,
                                                                                   tmp_path: Path) -> None:
    """The upstream repo is not a package: apply copies it into the env at its pinned commit
    (here: the --source checkout) and a .pth makes `from apptoy import Pipeline` work from any
    directory; the copy is the env's own, so a later checkout in the data dir never changes it."""
    t = world["t"]
    py = t / "env" / "bin" / "python"
    app = t / "env" / "share" / "provision" / "app"
    assert (app / "app.py").is_file() and (app / ".provision-app").read_text().startswith("https://example.invalid/apptoy local:")
    r = subprocess.run([str(py), "-c", "import apptoy; from apptoy import Pipeline; print(apptoy.__file__)"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == str(app / "apptoy" / "__init__.py"), r.stderr
    state = json.loads((t / "env" / "share" / "provision" / "state.json").read_text())
    assert "app" in state["steps"] and state["data_dir"] == str(t / "data")
    shared = t / "data" / "src" / "apptoy-upstream" / "apptoy" / "__init__.py"
    before = shared.read_bytes()
    shared.write_text("raise ImportError('moved')\n")
    try:
        r = subprocess.run([str(py), "-c", "from apptoy import Pipeline"], capture_output=True, text=True, cwd=tmp_path)
    finally:
        shared.write_bytes(before)  # later tests in this module re-run the app step from this checkout
    assert r.returncode == 0, r.stderr  # the env's copy, not the shared checkout
    code, out = run("verify", str(world["spec"]), "--host", world["host"], "--prefix", str(t / "env"),
                    "--lockdir", str(t / "lockfiles"))  # no --data-dir: the one apply used is remembered
    assert "ok      from apptoy import Pipeline" in out, out
    assert "ok      the apptoy app is installed in the env and on it" in out, out


def test_verify_with_no_env_says_so_once(world: dict, tmp_path: Path) -> None:
    code, out = run("verify", str(world["spec"]), "--host", world["host"], "--prefix", str(tmp_path / "nothing"),
                    "--data-dir", str(world["t"] / "data"), "--lockdir", str(world["t"] / "lockfiles"))
    assert code == 2, out
    assert out.count("no env at") == 1 and f"no env at {tmp_path / 'nothing'}: run `provision apply apptoy`" in out
    assert "checks that run inside the env were skipped" in out and "import cext" not in out, out
    code, out = run("verify", str(world["spec"]), "--host", world["host"], "--prefix", str(tmp_path / "nothing"),
                    "--data-dir", str(world["t"] / "data"), "--lockdir", str(world["t"] / "lockfiles"), "--json")
    rep = json.loads(out)
    assert code == 2 and rep["error"].startswith("no env at") and rep["exit_code"] == 2
    assert {c["status"] for c in rep["checks"] if c["id"].startswith("import-")} == {"skipped"}


def test_a_second_apply_does_nothing(world: dict) -> None:
    code, out = run(*apply_args(world))
    assert code == 0, out
    ran = [line for line in out.splitlines() if line.endswith(" ...")]
    assert ran == [] or all("compile" in line for line in ran), out
    assert out.count("skipped") >= 6


def test_apply_killed_during_a_build_resumes_there(world: dict) -> None:
    t = world["t"]
    args = [sys.executable, "-m", "provision", *apply_args(world, "--from-step", "build-cext", "--no-cache")]
    (t / "env" / "share" / "provision" / "logs" / "build-cext.log").unlink(missing_ok=True)
    p = subprocess.Popen(args, cwd=ROOT, env=os.environ | {"CEXT_SLOW": "20"}, stdout=subprocess.PIPE, text=True)
    log = t / "env" / "share" / "provision" / "logs" / "build-cext.log"
    deadline = time.time() + 30
    while time.time() < deadline and not (log.is_file() and "setup.py" in log.read_text()):
        time.sleep(0.1)
    time.sleep(0.5)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    code, out = run(*apply_args(world))
    assert code == 0, out
    assert "build-cext: build cext" in out and "build-cext: done" in out  # resumed at the build
    assert "pip-install: done before, inputs unchanged - skipped" in out


def test_a_build_that_moves_a_pinned_package_is_stopped_naming_it(world: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEXT_UPGRADE", str(world["t"] / "upgrades"))
    code, out = run(*apply_args(world, "--from-step", "build-cext", "--no-cache"))
    assert code == 2  # a failed step: README exit code 2
    assert "building cext changed pinned packages: alpha 1.0 -> 2.0" in out
    monkeypatch.delenv("CEXT_UPGRADE")
    code, out = run(*apply_args(world, "--from-step", "pip-install"))  # the hint's repair
    assert code == 0, out


def test_dry_run_prints_every_step_and_changes_nothing(world: dict, tmp_path: Path) -> None:
    code, out = run("apply", str(world["spec"]), "--host", world["host"], "--prefix", str(tmp_path / "env"),
                    "--data-dir", str(tmp_path / "data"), "--lockdir", str(world["t"] / "lockfiles"), "--dry-run")
    assert code == 0 and "[1/" in out and "build-cext" in out and "TORCH_CUDA_ARCH_LIST" in out
    assert "toolkit: the CUDA 12.8 build toolkit" in out  # before pip-install, in the listing too
    assert "dry run: nothing was changed" in out and not (tmp_path / "env").exists()
    code, out = run("apply", str(world["spec"]), "--host", world["host"], "--prefix", str(tmp_path / "env"),
                    "--data-dir", str(tmp_path / "data"), "--lockdir", str(tmp_path / "no-locks"), "--dry-run")
    assert code == 2 and "no current lockfile for apptoy/cu128" in out  # plan and lock agree, before step 1


def test_a_venv_dry_run_shows_the_venv_it_makes_and_a_wrong_python_stops_it(world: dict, tmp_path: Path) -> None:
    """--venv makes the env with `python -m venv`, not from the lock's conda half: the dry run says
    that, and a --python of another version than the spec's is refused before anything runs."""
    base = ["apply", str(world["spec"]), "--host", world["host"], "--prefix", str(tmp_path / "env"), "--venv",
            "--data-dir", str(tmp_path / "data"), "--lockdir", str(world["t"] / "lockfiles"), "--dry-run"]
    code, out = run(*base, "--python", sys.executable)
    assert code == 0 and f"{sys.executable} -m venv {tmp_path / 'env'}" in out and "install the conda packages" not in out, out
    other = tmp_path / "python"
    other.write_text("#!/bin/sh\necho 2.7\n")
    other.chmod(0o755)
    code, out = run(*base, "--python", str(other))
    assert code == 2 and f"--python {other} is Python 2.7; the spec's env is Python {PY}" in out, out
    assert not (tmp_path / "env").exists() and not (tmp_path / "data").exists()


def test_a_new_env_reuses_the_cached_extension_build(world: dict, tmp_path: Path) -> None:
    """Same source, Python, compiler and arch list: the second env compiles nothing."""
    t = world["t"]
    args = apply_args(world)
    args[args.index("--prefix") + 1] = str(tmp_path / "env2")
    code, out = run(*args)
    assert code == 0, out
    log = (tmp_path / "env2" / "share" / "provision" / "logs" / "build-cext.log").read_text()
    assert "from the cache" in log and "build_ext" not in log
    r = subprocess.run([str(tmp_path / "env2" / "bin" / "python"), "-c", "import cext; print(cext.hello())"],
                       capture_output=True, text=True)
    assert r.stdout.strip() == "hello from C", r.stderr
    assert any((t / "data" / "cache" / "ext").glob("cext-*/inplace.tar"))


def test_existing_env_builds_extensions_without_touching_packages(world: dict) -> None:
    """--existing: the env at --prefix stays as it is; extensions, activation and verify run."""
    args = [a for a in apply_args(world) if a not in ("--venv",)]
    code, out = run(*args, "--existing", "--from-step", "build-cext")
    assert code == 0, out
    assert "create-env" not in out and "pip-install" not in out and "build-cext: done" in out


def test_the_conda_half_installs_offline_from_the_seeded_channel_checking_hashes(world: dict, tmp_path: Path) -> None:
    """py-rattler installs the lockfile's conda packages from DATA/channel (file:// URLs, which
    rattler does not hash-check: apply does), and refuses a file whose sha256 differs."""
    from provision.apply import ApplyError, ApplyOptions, Ctx
    from provision.apply.envsteps import rattler_install
    from provision.host import load_host
    from provision.lock import lockfile
    from provision.plan import PlanOptions, make_plan
    from provision.spec import load_spec

    t = world["t"]
    loaded = load_spec(world["spec"])
    plan = make_plan(loaded, load_host(Path(HOST)), PlanOptions(prefix=str(tmp_path / "cenv"), data_dir=str(t / "data")))
    ctx = Ctx(loaded, plan, ApplyOptions(lockdir=t / "lockfiles", offline=True), print)
    lock = lockfile.read(t / "lockfiles" / "apptoy" / "cu128" / "conda-lock.yml")
    recs = lockfile.conda_records(lock, categories={"main"})
    log = tmp_path / "create.log"
    rattler_install(ctx, recs, log, ctx.prefix)
    assert (tmp_path / "cenv" / "share" / "python" / "README").is_file()
    assert (tmp_path / "cenv" / "conda-meta").is_dir()
    victim = next((t / "data" / "channel" / "linux-64").glob("libzlib-*.conda"))
    good = victim.read_bytes()
    try:
        victim.write_bytes(good[:-10] + b"0123456789")
        with pytest.raises(ApplyError, match="sha256 does not match"):
            rattler_install(ctx, recs, log, ctx.prefix)
    finally:
        victim.write_bytes(good)


def test_another_machine_fed_by_a_bundle_with_the_builds_compiles_nothing(world: dict, tmp_path: Path) -> None:
    """Machine A applied (and so cached its builds); its bundle carries them; machine B, seeded
    from it, gets the extension from the cache."""
    t = world["t"]
    bundle = tmp_path / "bundle"
    shutil.copytree(t / "bundle", bundle)
    code, out = run("mirror", str(world["spec"]), "--to", str(bundle), "--lockdir", str(t / "lockfiles"),
                    "--no-packages", "--builds-from", str(t / "data"))
    assert "cached extension build file(s)" in out
    data_b = tmp_path / "data-b"
    code, out = run("seed", str(bundle), "--hf-home", str(tmp_path / "hf"), "--torch-home", str(tmp_path / "th"),
                    "--data-dir", str(data_b))
    assert code == 1 and "INCOMPLETE" in out, out  # the sources' archives are not in it: builds come from the cache
    args = apply_args(world)
    args[args.index("--prefix") + 1] = str(tmp_path / "env-b")
    args[args.index("--data-dir") + 1] = str(data_b)
    code, out = run(*args)
    assert code == 0, out
    log = (tmp_path / "env-b" / "share" / "provision" / "logs" / "build-cext.log").read_text()
    assert "from the cache" in log and "build_ext" not in log


def test_a_cuda_build_without_ninja_is_warned_about(tmp_path: Path) -> None:
    """torch's BuildExtension quietly compiles one file at a time without ninja: MAX_JOBS is then moot."""
    from types import SimpleNamespace

    from provision.apply.extensions import warn_without_ninja

    said: list[str] = []
    ctx = SimpleNamespace(py=str(tmp_path / "env" / "bin" / "python"), echo=said.append)
    log = tmp_path / "build.log"
    env = {"PATH": f"{tmp_path}/env/bin", "MAX_JOBS": "6"}
    warn_without_ninja(ctx, SimpleNamespace(name="dgr", nvcc="build"), env, log)
    assert said and "no `ninja`" in said[0] and "MAX_JOBS=6 has no effect" in said[0] and said[0] in log.read_text()
    ninja = tmp_path / "env" / "bin" / "ninja"
    ninja.parent.mkdir(parents=True)
    ninja.write_text("#!/bin/sh\n")
    ninja.chmod(0o755)
    said.clear()
    warn_without_ninja(ctx, SimpleNamespace(name="dgr", nvcc="build"), env, log)
    assert said == []


def test_a_cold_build_does_not_reuse_a_build_dir_left_by_an_earlier_try(world: dict) -> None:
    """On the H100 a failed torchmcubes build left build/CMakeCache.txt naming the compiler of that
    try; the retry with another CXX reused it. A cold build now starts without build/."""
    stale = world["t"] / "data" / "src" / "wext" / "build" / "CMakeCache.txt"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("CMAKE_CXX_COMPILER:FILEPATH=/opt/gcc/bin/g++\n")
    code, out = run(*apply_args(world, "--from-step", "build-wext", "--no-cache"))
    assert code == 0, out
    assert not stale.exists()


def test_a_running_step_shows_its_time_and_ninjas_progress() -> None:
    from provision.apply.commands import status_line

    log = ("$ uv build --wheel ...\n[11/44] /usr/local/cuda/bin/nvcc -gencode arch=compute_90,code=sm_90 "
           "-c /src/kaolin/csrc/ops/spc/query_cuda.cu -o build/query_cuda.o\n")
    assert status_line(42.3, log) == "       42 s  [11/44] query_cuda.cu"
    assert status_line(3, "Building wheel for cext\n\n") == "        3 s  Building wheel for cext"
    assert len(status_line(1, "x" * 500, width=60)) == 60


def test_two_applies_on_one_prefix_never_run_at_once(world: dict) -> None:
    """The first holds the prefix; the second stops at once naming it (or, with --wait, queues
    behind it); both leave the state consistent: a third apply finds everything done."""
    t = world["t"]
    args = [sys.executable, "-m", "provision", *apply_args(world, "--from-step", "build-cext", "--no-cache")]
    log = t / "env" / "share" / "provision" / "logs" / "build-cext.log"
    log.unlink(missing_ok=True)
    first = subprocess.Popen(args, cwd=ROOT, env=os.environ | {"CEXT_SLOW": "6"}, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (log.is_file() and "setup.py" in log.read_text()):
        time.sleep(0.1)
    code, out = run(*apply_args(world, "--from-step", "build-cext"))
    assert code == 2 and "another provision apply is working on" in out and "pid " in out, out
    queued = subprocess.Popen([sys.executable, "-m", "provision", *apply_args(world, "--wait")], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert first.wait(timeout=120) == 0, first.stdout.read()  # type: ignore[union-attr]
    out_q = queued.communicate(timeout=120)[0]
    assert queued.returncode == 0, out_q
    code, out = run(*apply_args(world))
    assert code == 0 and "build-cext: done before, inputs unchanged - skipped" in out, out


def test_an_apply_with_another_data_dir_on_the_same_prefix_waits_its_turn_too(world: dict, tmp_path: Path) -> None:
    """The lock is the prefix's, not the data dir's: naming another --data-dir is no way around it."""
    from provision.apply.guard import PrefixLock

    t = world["t"]
    args = [a if a != str(t / "data") else str(tmp_path / "other-data") for a in apply_args(world)]
    with PrefixLock(t / "env", t / "env" / "share" / "provision" / "locks", wait=False):
        code, out = run(*args)
    assert code == 2 and f"another provision apply is working on {t / 'env'}" in out, out


# --- the CUDA build toolkit: one shared prefix from the lockfile, checked before the pip half ----------------


def _toolkit_home(world: dict) -> Path:
    homes = sorted((world["t"] / "data" / "toolkits").glob("cuda-12.8-*"))
    assert len(homes) == 1, homes
    return homes[0]


def test_a_venv_env_builds_with_the_lockfiles_toolkit_from_a_shared_prefix(world: dict) -> None:
    """Given a host without nvcc and a --venv env, apply installs the lock's cuda-toolkit category
    (offline, from the seeded channel) into DATA/toolkits/cuda-12.8-<files>, checks its nvcc, and
    the CUDA extension's build sees it as CUDA_HOME, with include/ and the stubs where torch looks."""
    t = world["t"]
    code, out = run(*apply_args(world))
    assert code == 0, out
    home = _toolkit_home(world)
    assert (home / "include" / "cuda_runtime.h").is_file() and (home / "lib64" / "stubs" / "libcuda.so").exists()
    r = subprocess.run([str(t / "env" / "bin" / "python"), "-c", "import gext; print(gext.CUDA_HOME); print(gext.NVCC); "
                        "print(gext.LIBRARY_PATH)"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cuda_home, nvcc, library_path = r.stdout.splitlines()
    assert cuda_home == str(home) and "release 12.8" in nvcc
    assert library_path.split(":")[0] == str(home / "lib64" / "stubs")
    log = (t / "env" / "share" / "provision" / "logs" / "toolkit.log").read_text()
    assert "release 12.8" in log and "compiled a test kernel: exit 0" in log
    assert not (t / "env" / "bin" / "nvcc").exists()  # the toolkit is not inside the env


def test_a_second_env_shares_the_toolkit_prefix_without_reinstalling_it(world: dict, tmp_path: Path) -> None:
    args = apply_args(world)
    args[args.index("--prefix") + 1] = str(tmp_path / "env-2")
    code, out = run(*args)
    assert code == 0, out
    log = (tmp_path / "env-2" / "share" / "provision" / "logs" / "toolkit.log").read_text()
    assert "already holds these" in log


@pytest.mark.parametrize("cid,break_it,words", [
    ("wrong-major", lambda nvcc: nvcc.write_text(nvcc.read_text().replace("${STANDIN_NVCC_RELEASE:-12.8}", "11.8")),
     "nvcc 11.8"),
    ("missing", lambda nvcc: nvcc.unlink(), "no nvcc at"),
])
def test_apply_stops_before_the_pip_half_when_nvcc_is_missing_or_of_the_wrong_major(
        world: dict, tmp_path: Path, cid: str, break_it, words: str) -> None:  # type: ignore[no-untyped-def]
    nvcc = _toolkit_home(world) / "bin" / "nvcc"
    saved = nvcc.read_bytes()
    try:
        break_it(nvcc)
        args = apply_args(world)
        args[args.index("--prefix") + 1] = str(tmp_path / "env-3")
        code, out = run(*args)
    finally:
        nvcc.write_bytes(saved)
        nvcc.chmod(0o755)
    assert code == 2 and words in out, out
    if cid == "wrong-major":
        assert "torch refuses to build with another CUDA major" in out and "nothing was downloaded" in out
    assert "[5/" not in out.split("toolkit")[-1]  # nothing after the toolkit step ran
    logs = tmp_path / "env-3" / "share" / "provision" / "logs"
    assert not (logs / "pip-install.log").exists()
