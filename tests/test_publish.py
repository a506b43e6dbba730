"""The build index: one machine builds the toy target's extensions (an in-place C extension and a
wheel), `provision publish` turns its cached builds into wheels in a PEP 503 index, a static
server (and pypiserver) serves it on 127.0.0.1, and a second machine applies from it without
compiling, every wheel checked against its sha256; a tampered wheel is refused."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_apply
from test_apply import apply_args
from test_lock import run

from repofactory import serve

world = test_apply.world  # the module's own copy of the fixture: lock, mirror and seed the toy target


def _second_machine(w: dict, tmp: Path, name: str, *extra: str) -> tuple[int, str, Path]:
    """A fresh data dir seeded from the same bundle, a fresh prefix: another machine."""
    data = tmp / f"data-{name}"
    code, out = run("seed", str(w["t"] / "bundle"), "--hf-home", str(tmp / f"hf-{name}"), "--torch-home",
                    str(tmp / f"th-{name}"), "--data-dir", str(data))
    assert code == 1 and "INCOMPLETE" in out, out  # the sources are not in it: builds come from the index
    args = apply_args(w, *extra)
    args[args.index("--prefix") + 1] = str(tmp / f"env-{name}")
    args[args.index("--data-dir") + 1] = str(data)
    code, out = run(*args)
    return code, out, tmp / f"env-{name}"


@pytest.fixture(scope="module")
def published(world: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    t = world["t"]
    code, out = run(*apply_args(world, "--bundle", str(t / "bundle")))  # the builder: compiles all three
    assert code == 0, out
    index = tmp_path_factory.mktemp("index") / "cache"
    code, out = run("publish", str(index), "--data-dir", str(t / "data"))
    assert code == 0, out
    assert out.count("published ") == 3 and "publish: 3 new" in out, out
    return {"index": index, "out": out}


def test_publish_writes_a_pep503_index_with_hashes_and_pep658_metadata(published: dict) -> None:
    index = published["index"]
    wheels = sorted(p.name for p in (index / "files").glob("*.whl"))
    assert len(wheels) == 3, wheels  # cext, wext and gext (built with the toolkit)
    cext = next(w for w in wheels if w.startswith("cext-"))
    # the local version label names torch, CUDA and the archs, then the build key's digest
    assert "+torch2.8.0.cu128.sm120.b" in cext and cext.endswith(f"-cp{sys.version_info[0]}{sys.version_info[1]}-"
                                                                    f"cp{sys.version_info[0]}{sys.version_info[1]}-linux_x86_64.whl")
    wext = next(w for w in wheels if w.startswith("wext-"))
    assert wext.startswith("wext-0.3+torch2.8.0.cu128.sm120.b")
    page = (index / "simple" / "cext" / "index.html").read_text()
    import hashlib

    sha = hashlib.sha256((index / "files" / cext).read_bytes()).hexdigest()
    meta = hashlib.sha256((index / "files" / f"{cext}.metadata").read_bytes()).hexdigest()
    assert f"#sha256={sha}" in page and f'data-core-metadata="sha256={meta}"' in page
    assert f'data-dist-info-metadata="sha256={meta}"' in page
    assert '<a href="cext/">cext</a>' in (index / "simple" / "index.html").read_text()
    # real wheels: RECORD hashes every file, METADATA names the labelled version
    with zipfile.ZipFile(index / "files" / cext) as z:
        names = z.namelist()
        di = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        assert f"Version: {di.removeprefix('cext-').removesuffix('.dist-info')}" in z.read(f"{di}/METADATA").decode()
        assert any(n.startswith(di.replace(".dist-info", ".data/data/share/provision/ext/cext/cext.")) and
                   n.endswith(".so") for n in names), names
        record = z.read(f"{di}/RECORD").decode()
        assert all(f"{n},sha256=" in record for n in names if not n.endswith("RECORD"))
        assert json.loads(z.read(f"{di}/provision-build.json"))["key"]["name"] == "cext"


def test_publishing_again_changes_nothing(world: dict, published: dict) -> None:
    before = {p.name: p.read_bytes() for p in (published["index"] / "files").iterdir()}
    code, out = run("publish", str(published["index"]), "--data-dir", str(world["t"] / "data"))
    assert code == 0 and "publish: 0 new, 3 already there" in out, out
    assert {p.name: p.read_bytes() for p in (published["index"] / "files").iterdir()} == before


def test_a_published_wheel_installs_with_plain_pip(published: dict, tmp_path: Path) -> None:
    """It is a real package index: pip installs the in-place build from it and imports it."""
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "v")], check=True)
    py = tmp_path / "v" / "bin" / "python"
    with serve(published["index"]) as url:
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                            "--index-url", f"{url}/simple/", "cext"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([str(py), "-c", "import cext; print(cext.hello())"], capture_output=True, text=True)
    assert r.stdout.strip() == "hello from C", r.stderr


def test_a_second_machine_installs_from_the_index_without_compiling(world: dict, published: dict,
                                                                     tmp_path: Path) -> None:
    with serve(published["index"]) as url:
        code, out, env = _second_machine(world, tmp_path, "b", "--cache-url", f"{url}/simple/")
    assert code == 0, out
    state = json.loads((env / "share" / "provision" / "state.json").read_text())
    for name in ("cext", "wext", "gext"):
        log = (env / "share" / "provision" / "logs" / f"build-{name}.log").read_text()
        assert "from the build index:" in log and "checked, build key" in log, log
        assert "build_ext" not in log and "build --wheel" not in log, log  # nothing compiled here
        assert state["steps"][f"build-{name}"]["seconds"] < 5, state["steps"]
    r = subprocess.run([str(env / "bin" / "python"), "-c", "import cext, wext; print(cext.hello(), wext.__version__)"],
                       capture_output=True, text=True)
    assert r.stdout.split()[-1].startswith("0.3+torch2.8.0"), r.stdout + r.stderr
    assert "hello from C" in r.stdout
    assert (env / "share" / "provision" / "ext" / "cext" / "setup.py").is_file()  # the built tree, as in place
    assert "verify: done" in out, out


def test_a_tampered_wheel_in_the_index_is_refused_and_never_installed(world: dict, published: dict,
                                                                       tmp_path: Path) -> None:
    index = tmp_path / "tampered"
    shutil.copytree(published["index"], index)
    victim = next((index / "files").glob("cext-*.whl"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with serve(index) as url:
        code, out, env = _second_machine(world, tmp_path, "c", "--cache-url", f"{url}/simple/")
    assert code == 2, out
    assert "from the build index was refused, nothing was installed" in out and "sha256" in out, out
    assert not (env / "share" / "provision" / "ext" / "cext").exists()
    assert not list((tmp_path / "data-c" / "cache" / "index").rglob("cext-*.whl"))  # wrong bytes are not kept


def test_nothing_matching_in_the_index_means_apply_builds(world: dict, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    code, out = run("publish", str(empty), "--data-dir", str(tmp_path / "no-data"))
    assert code == 0 and "publish: 0 new" in out, out
    with serve(empty) as url:
        code, out, env = _second_machine(world, tmp_path, "d", "--cache-url", f"{url}/simple/")
    assert code == 0, out
    log = (env / "share" / "provision" / "logs" / "build-cext.log").read_text()
    assert "the build index has no cext build for key" in log and "build_ext" in log


@contextlib.contextmanager
def _pypiserver(packages: Path) -> Iterator[str]:
    """pypiserver on 127.0.0.1 over `packages`, uploads open (-a . -P .), sha256 in its pages."""
    pytest.importorskip("pypiserver")
    import socket
    import time

    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "pypiserver", "run", "-i", "127.0.0.1", "-p", str(port),
                               "--hash-algo", "sha256", "-a", ".", "-P", ".", str(packages)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                requests.get(f"http://127.0.0.1:{port}/simple/", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_pypiserver_serves_the_same_directory(world: dict, published: dict, tmp_path: Path) -> None:
    """pypiserver lists the wheels of the index directory itself, with their sha256: apply takes them."""
    with _pypiserver(published["index"] / "files") as url:
        code, out, env = _second_machine(world, tmp_path, "e", "--cache-url", f"{url}/simple/")
    assert code == 0, out
    assert "from the build index:" in (env / "share" / "provision" / "logs" / "build-cext.log").read_text()


def test_publish_uploads_to_pypiserver_and_apply_installs_from_it(world: dict, published: dict,
                                                                  tmp_path: Path) -> None:
    packages = tmp_path / "packages"
    packages.mkdir()
    with _pypiserver(packages) as url:
        code, out = run("publish", f"{url}/", "--data-dir", str(world["t"] / "data"))
        assert code == 0 and "publish: 3 new" in out, out
        assert sorted(p.name for p in packages.iterdir()) == sorted(p.name for p in (published["index"] / "files").glob("*.whl"))
        code, out = run("publish", f"{url}/", "--data-dir", str(world["t"] / "data"))
        assert code == 0 and "publish: 0 new, 3 already there" in out, out
        code, out, env = _second_machine(world, tmp_path, "f", "--cache-url", f"{url}/simple/")
    assert code == 0, out
    assert "from the build index:" in (env / "share" / "provision" / "logs" / "build-wext.log").read_text()


def _fake_cache(data: Path, name: str, members: dict[str, bytes], key_extra: dict | None = None) -> Path:
    """A cached in-place build as apply stores it, with `members` in its tar."""
    import io
    import tarfile

    from provision.plan.binary import digest_of

    key = {"name": name, "build": "inplace", "python": "cpython-311-x86_64", "torch": "2.8.0", "torch_cuda": "12.8",
           "arch_list": "8.6", "v": "2", **(key_extra or {})}
    d = data / "cache" / "ext" / f"{name}-{digest_of(key)}"
    d.mkdir(parents=True)
    (d / "key.json").write_text(json.dumps(key))
    with tarfile.open(d / "inplace.tar", "w") as t:
        for n, b in members.items():
            info = tarfile.TarInfo(n)
            info.size = len(b)
            t.addfile(info, io.BytesIO(b))
    return d


def test_a_cached_build_that_climbs_out_or_lies_about_its_key_is_skipped_not_published(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _fake_cache(data, "good", {"./good.cpython-311-x86_64-linux-gnu.so": b"\x7fELF", "./good.c": b"int x;"})
    _fake_cache(data, "evil", {"../../etc/cron.d/x": b"boom", "./evil.so": b"\x7fELF"})
    liar = _fake_cache(data, "liar", {"./liar.so": b"\x7fELF"})
    (liar / "key.json").write_text(json.dumps({"name": "liar", "build": "inplace", "torch": "9.9"}))
    _fake_cache(data, "nolib", {"./nolib.py": b"x = 1\n"})
    code, out = run("publish", str(tmp_path / "index"), "--data-dir", str(data))
    assert code == 1, out  # done, with something to look at
    assert "published good-0+torch2.8.0.cu128.sm86.b" in out
    assert "evil" in out and "'..'" in out and "liar" in out and "hashes to" in out and "no built library" in out
    assert [p.name.split("-")[0] for p in (tmp_path / "index" / "files").glob("*.whl")] == ["good"]


def test_publish_refuses_a_directory_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me\n")
    code, out = run("publish", str(tmp_path / "mine"), "--data-dir", str(tmp_path / "data"))
    assert code == 2 and "not a build index provision made" in out, out
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


def test_an_index_link_without_a_sha256_is_never_used() -> None:
    from provision.offline.buildindex import parse_page

    links = parse_page('<a href="/p/x-1.0-py3-none-any.whl">x</a><a href="../../files/y-1.0-py3-none-any.whl#sha256='
                       + "a" * 64 + '" data-core-metadata="sha256=' + "b" * 64 + '">y</a>'
                       '<a href="../../files/..%2F..%2Fetc-1.0-py3-none-any.whl#sha256=' + "c" * 64 + '">z</a>',
                       "http://h/simple/x/")
    assert [(link.filename, link.sha256 is not None) for link in links] == [("x-1.0-py3-none-any.whl", False),
                                                                          ("y-1.0-py3-none-any.whl", True)]
    assert links[1].url == "http://h/files/y-1.0-py3-none-any.whl" and links[1].metadata_sha256 == "b" * 64
