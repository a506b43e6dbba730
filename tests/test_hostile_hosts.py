"""Hostile and broken host files: `provision plan --host F` reads a file written on another
machine (by PowerShell's `>`, a text editor, or an attacker) and either plans from it or
refuses it with exit 2 naming the file and the field. See tests/hostile.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import FIXTURES
from hostile import SECRETS, judge, make_world, run

GOOD = json.loads((FIXTURES / "hosts" / "rtx3090-wsl2-16g.json").read_text())


def _with(**changes: object) -> bytes:
    d = json.loads(json.dumps(GOOD))
    for k, v in changes.items():
        d[k] = v
    return json.dumps(d).encode()


def _gpu(**changes: object) -> bytes:
    g = dict(GOOD["gpus"][0], **changes)
    return _with(gpus=[g])


REFUSED = [
    # (id, file bytes, words)
    ("cc-without-dot", _gpu(compute_capability="86"), "compute capability like 8.6"),
    ("cc-sm-form", _gpu(compute_capability="sm_86"), "compute capability like 8.6"),
    ("cc-full-width-digit", _gpu(compute_capability="\uff18.6"), "compute capability like 8.6"),
    ("cc-leading-zero", _gpu(compute_capability="08.6"), "compute capability like 8.6"),
    ("wsl-as-a-word", _with(wsl="yes"), "valid boolean"),
    ("cc-empty", _gpu(compute_capability=""), "compute capability like 8.6"),
    ("cc-three-parts", _gpu(compute_capability="8.6.1"), "compute capability like 8.6"),
    ("cc-number", _gpu(compute_capability=8.6), "valid string"),
    ("cc-newline", _gpu(compute_capability="8.6\n"), "compute capability like 8.6"),
    ("gpu-name-newline", _gpu(name="RTX\ntouch INJECTED"), "control characters"),
    ("gpu-memory-negative", _gpu(memory_gb=-1), "greater than or equal to 0"),
    ("driver-words", _with(driver_version="latest"), "driver version like"),
    ("driver-cuda-words", _with(driver_cuda="CUDA 12.6"), "CUDA version like 12.4"),
    ("driver-cuda-three", _with(driver_cuda="12.6.1"), "CUDA version like 12.4"),
    ("cpu-zero", _with(cpu_count=0), "greater than or equal to 1"),
    ("cpu-negative", _with(cpu_count=-4), "greater than or equal to 1"),
    ("cpu-absurd", _with(cpu_count=10**23), "less than or equal to"),
    ("cpu-string", _with(cpu_count="sixteen"), "valid integer"),
    ("ram-zero", _with(ram_gb=0), "greater than 0"),
    ("ram-overflow", b'{"cpu_count": 2, "ram_gb": 1e400, "swap_gb": 0}', "overflows to infinity"),
    ("ram-nan", b'{"cpu_count": 2, "ram_gb": NaN, "swap_gb": 0}', "NaN is not a number"),
    ("ram-infinity", b'{"cpu_count": 2, "ram_gb": Infinity, "swap_gb": 0}', "Infinity is not a number"),
    ("ram-5000-digits", b'{"cpu_count": 2, "ram_gb": ' + b"9" * 5000 + b', "swap_gb": 0}', "5000-digit number"),
    ("label-newline", _with(label="host\ntouch INJECTED"), "control characters"),
    ("label-escape", _with(label="\x1b]0;pwned\x07"), "control characters"),
    ("nvcc-version-injects", _with(nvcc=[{"path": "/usr/bin/nvcc", "version": "12.4; rm -rf ~"}]), "CUDA version like 12.4"),
    ("nvcc-path-newline", _with(nvcc=[{"path": "/usr/bin/nvcc\nx", "version": "12.4"}]), "control characters"),
    ("port-out-of-range", _with(ports_in_use=[70000]), "less than or equal to 65535"),
    ("gpus-not-list", _with(gpus="RTX 3090"), "valid list"),
    ("unknown-key", _with(gpu="RTX 3090"), "Extra inputs are not permitted"),
    ("schema-2", _with(schema_version=2), "schema_version"),
    ("duplicate-key", b'{"cpu_count": 2, "cpu_count": 4, "ram_gb": 8, "swap_gb": 0}', "duplicate key"),
    ("deep-nesting", b'{"label": ' + b"[" * 20000 + b"]" * 20000 + b"}", "nested too deeply"),
    ("json-array", b"[1, 2, 3]", "a JSON object"),
    ("json-string", b'"host"', "a JSON object"),
    ("truncated", json.dumps(GOOD).encode()[:200], "not valid JSON"),
    ("empty", b"", "not valid JSON"),
    ("binary-junk", bytes(range(256)) * 20, "binary data"),
    ("latin-1", '{"label": "caf\xe9", "cpu_count": 2, "ram_gb": 8, "swap_gb": 0}'.encode("latin-1"), "not UTF-8"),
    ("utf16-broken", b"\xff\xfe" + b"\x00\xd8" * 10, "byte-order mark"),
    ("too-large", b'{"label": "' + b"x" * (2 << 20) + b'"}', "too large"),
    ("proxy-newline", _with(proxies={"HTTP_PROXY": "http://p:1\nx"}), "control characters"),
]


def _world(tmp_path: Path):  # type: ignore[no-untyped-def]
    w = make_world(tmp_path)
    w.allowed = [w.root / "hosts"]
    (w.root / "hosts").mkdir()
    return w


@pytest.mark.parametrize("cid,content,words", REFUSED, ids=[c[0] for c in REFUSED])
def test_a_hostile_host_file_is_refused_naming_the_field(tmp_path: Path, cid: str, content: bytes, words: str) -> None:
    w = _world(tmp_path)
    f = w.root / "hosts" / "host.json"
    f.write_bytes(content)
    before = w.snapshot()
    r = run(["plan", "triposr", "--host", str(f)], cwd=w.root)
    judge(r, w, before, 2, (words, "host.json"))


@pytest.mark.parametrize("cid,encode", [
    ("utf16-le-bom-powershell", lambda s: b"\xff\xfe" + s.encode("utf-16-le")),
    ("utf16-be-bom", lambda s: b"\xfe\xff" + s.encode("utf-16-be")),
    ("utf8-bom-notepad", lambda s: b"\xef\xbb\xbf" + s.encode()),
    ("utf16-le-no-bom", lambda s: s.encode("utf-16-le")),
    ("crlf-line-ends", lambda s: s.replace("\n", "\r\n").encode()),
])
def test_a_host_file_in_the_encodings_windows_writes_is_read(tmp_path: Path, cid: str, encode) -> None:  # type: ignore[no-untyped-def]
    w = _world(tmp_path)
    f = w.root / "hosts" / "host.json"
    f.write_bytes(encode(json.dumps(GOOD, indent=2)))
    before = w.snapshot()
    r = run(["plan", "triposr", "--host", str(f)], cwd=w.root)
    judge(r, w, before, 0, ("RTX 3090",))


@pytest.mark.parametrize("cid,value", [
    ("scheme-password", f"http://alice:{SECRETS[0]}@proxy.corp:8080"),
    ("scheme-less-password", f"alice:{SECRETS[0]}@proxy.corp:8080"),
    ("token-as-user", f"http://{SECRETS[1]}@proxy.corp:8080"),
    ("token-as-bare-user", f"{SECRETS[1]}@proxy.corp:8080"),
    ("github-token", f"https://{SECRETS[2]}:x-oauth-basic@proxy.corp"),
])
def test_a_proxy_credential_in_a_host_file_is_never_shown(tmp_path: Path, cid: str, value: str) -> None:
    w = _world(tmp_path)
    f = w.root / "hosts" / "host.json"
    f.write_bytes(_with(proxies={"HTTPS_PROXY": value}))
    before = w.snapshot()
    for args in (["plan", "triposr", "--host", str(f)], ["plan", "triposr", "--host", str(f), "--json"],
                 ["doctor", "triposr", "--host", str(f), "--json"]):
        r = run(args, cwd=w.root)
        assert r.code in (0, 1, 2)
        judge(r, w, before, r.code, ("proxy.corp",) if args[0] == "doctor" else ())


def test_a_directory_where_the_host_file_should_be(tmp_path: Path) -> None:
    w = _world(tmp_path)
    (w.root / "hosts" / "host.json").mkdir()
    before = w.snapshot()
    judge(run(["plan", "triposr", "--host", str(w.root / "hosts" / "host.json")], cwd=w.root), w, before, 2,
          ("is a directory",))


def test_a_missing_host_file_says_how_to_make_one(tmp_path: Path) -> None:
    w = _world(tmp_path)
    before = w.snapshot()
    judge(run(["plan", "triposr", "--host", str(w.root / "hosts" / "nope.json")], cwd=w.root), w, before, 2,
          ("no such file", "doctor --save"))


def test_a_device_or_a_pipe_as_the_host_file_is_read_to_its_cap_not_forever(tmp_path: Path) -> None:
    """`--host /dev/zero` has no size to check first: provision reads one byte past its cap and stops;
    a pipe of a real host (`--host <(cat host.json)`) is read whole."""
    w = _world(tmp_path)
    before = w.snapshot()
    judge(run(["plan", "triposr", "--host", "/dev/zero"], cwd=w.root), w, before, 2, ("/dev/zero", "too large"))
    read_fd, write_fd = os.pipe()
    os.write(write_fd, json.dumps(GOOD).encode())
    os.close(write_fd)
    try:
        r = run(["plan", "triposr", "--host", f"/dev/fd/{read_fd}", "--json"], cwd=w.root)
    finally:
        os.close(read_fd)
    assert r.code == 0 and json.loads(r.out)["variant"], r.text


def test_a_host_file_saved_on_native_windows_is_told_to_use_wsl2(tmp_path: Path) -> None:
    w = _world(tmp_path)
    f = w.root / "hosts" / "host.json"
    f.write_bytes(_with(os="windows", wsl=False))
    before = w.snapshot()
    judge(run(["plan", "triposr", "--host", str(f)], cwd=w.root), w, before, 2,
          ("this host runs windows", "inside WSL2"))


@pytest.mark.parametrize("cid,changes,words,refused", [
    ("cuda-beyond-the-driver", {"driver_version": "535.183.01", "driver_cuda": "13.0", "wsl": False},
     "CUDA 13.0 needs driver >= 580.65.06", False),
    ("cuda-below-the-driver", {"driver_version": "560.35.03", "driver_cuda": "12.0", "wsl": False},
     "driver 560.35.03 runs CUDA 12.4", True),
    ("a-linux-number-on-wsl", {"driver_version": "470.82.01", "driver_cuda": "12.2", "wsl": True},
     "CUDA 12.2 needs Windows driver >= ", False),
])
def test_a_driver_version_and_driver_cuda_a_branch_apart_are_said(tmp_path: Path, cid: str, changes: dict,
                                                                   words: str, refused: bool) -> None:
    """Said (planned from driver_cuda, as nvidia-smi reports it), first among the reasons when the
    plan is refused; never refused for it alone."""
    w = _world(tmp_path)
    f = w.root / "hosts" / "host.json"
    f.write_bytes(_with(**changes))
    before = w.snapshot()
    r = run(["plan", "trellis2", "--host", str(f)], cwd=w.root)
    judge(r, w, before, 2, ("the host facts disagree: driver_version", words, "doctor --save"))  # 16 GB VM: blocked
    assert ("error: no variant of trellis2 can run" in r.text) is refused and ("plan for trellis2" in r.text) is not refused


@pytest.mark.parametrize("driver,cuda,wsl", [
    ("560.70", "12.6", True),  # an early Windows 560 driver, before the 12.6 toolkit's 560.76
    ("536.23", "12.2", True),  # R535 on Windows, before 536.25
    ("550.40.07", "12.4", False),  # an early Linux 550, before 550.54.14
])
def test_an_early_driver_of_a_branch_is_not_called_a_contradiction(tmp_path: Path, driver: str, cuda: str,
                                                                    wsl: bool) -> None:
    w = _world(tmp_path)
    f = w.root / "hosts" / "host.json"
    f.write_bytes(_with(driver_version=driver, driver_cuda=cuda, wsl=wsl))
    r = run(["plan", "trellis2", "--host", str(f)], cwd=w.root)
    assert "disagree" not in r.text and "Traceback" not in r.text, r.text
