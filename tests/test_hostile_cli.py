"""Hostile and mistyped command lines and environment variables: every usage error exits 2 with
click's message (whatever click or typer's vendored copy raises it), every path that would
land where it must not is refused, and nothing a user owns is overwritten or deleted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import FIXTURES
from hostile import SECRETS, judge, make_world, run

HOST = str(FIXTURES / "hosts" / "h100-cuda13.json")
HOST_5070 = str(FIXTURES / "hosts" / "rtx5070ti-wsl2.json")

USAGE = [
    # (id, argv, words)
    ("no-command", [], "Usage"),
    ("unknown-command", ["destroy"], "No such command"),
    ("unknown-option", ["plan", "triposr", "--bogus"], "No such option"),
    ("missing-argument", ["plan"], "Missing argument"),
    ("missing-option", ["compile", "triposr"], "Missing option '--out'"),
    ("bad-integer", ["mirror", "triposr", "--to", "b", "--workers", "abc"], "Invalid value for '--workers'"),
    ("integer-out-of-range", ["mirror", "triposr", "--to", "b", "--workers", "0"], "Invalid value for '--workers'"),
    ("bad-float", ["compile", "triposr", "--out", "o", "--windows-ram-gb", "lots"], "Invalid value"),
    ("bool-flag-with-value", ["plan", "triposr", "--ptx=maybe"], "does not take a value"),
    ("newline-in-prefix", ["plan", "triposr", "--host", HOST, "--prefix", "/tmp/a\ntouch INJECTED"], "control character"),
    ("newline-in-data-dir", ["plan", "triposr", "--host", HOST, "--data-dir", "/tmp/d\n"], "control character"),
    ("tab-in-target", ["plan", "trip\tosr"], "control character"),
    ("escape-in-out", ["compile", "triposr", "--out", "\x1b[2Jout"], "control character"),
    ("unknown-target", ["plan", "nosuch"], "no target named 'nosuch'"),
    ("target-climbs", ["plan", "../../outside/etc/passwd"], "no target named"),
    ("unknown-variant", ["plan", "triposr", "--host", HOST, "--variant", "cu999"], "unknown variant 'cu999'"),
    ("unknown-platform", ["lock", "triposr", "--platform", "win-64"], "unsupported platform"),
    ("bad-exclude-newer", ["lock", "triposr", "--exclude-newer", "yesterday-ish", "--lockdir", "LOCKS"], "is not a date-time"),
    ("source-without-equals", ["apply", "triposr", "--host", HOST, "--dry-run", "--source", "torchmcubes"],
     "expected NAME=DIR"),
    ("source-missing-dir", ["apply", "triposr", "--host", HOST, "--dry-run", "--source", "torchmcubes=/nonexistent/x"],
     "expected NAME=DIR"),
    ("url-map-without-equals", ["mirror", "triposr", "--to", "BUNDLE", "--url-map", "https://x"], "expected PREFIX=REPLACEMENT"),
    ("from-step-unknown", ["apply", "triposr", "--host", HOST, "--dry-run", "--from-step", "nope"], "no step 'nope'"),
    ("host-missing", ["plan", "triposr", "--host", "/nonexistent/host.json"], "no such file"),
    ("checklist-junk", ["verify", "triposr", "--host", HOST, "--checklist", "JUNK"], "not a checklist"),
    ("checklist-missing", ["verify", "triposr", "--host", HOST, "--checklist", "/nonexistent.json"], "no such file"),
    ("lockdir-empty", ["compile", "triposr", "--host", HOST, "--out", "OUT", "--lockdir", "EMPTY"], "no lockfile"),
    ("compile-nan-ram", ["compile", "triposr", "--host", HOST_5070, "--out", "OUT", "--windows-ram-gb", "nan"],
     "not a real machine"),
    ("wslconfig-write-no-path", ["wslconfig", "triposr", "--write"], "cannot find the Windows profile"),
    ("seed-not-a-bundle", ["seed", "EMPTY"], "is not a bundle"),
    ("refused-plan", ["plan", "trellis", "--host", HOST_5070], "no variant of trellis can run on this host"),
    ("run-stray-argument", ["run", "triposr", "stray"], "arguments after the target are for --cli"),
    ("run-port-0", ["run", "triposr", "--port", "0"], "Invalid value for '--port'"),
    ("run-no-env", ["run", "triposr", "--host", HOST, "--data-dir", "EMPTY"], "no env at"),
    ("run-host-address-space", ["run", "triposr", "--host-address", "every where"], "--host-address 'every where'"),
    ("plan-arch-list-sm", ["plan", "triposr", "--host", HOST, "--arch-list", "sm_120"], "write it 12.0"),
    ("apply-arch-list-trailing", ["apply", "triposr", "--host", HOST, "--dry-run", "--arch-list", "8.6;"], "empty item"),
    ("dockerfile-arch-86", ["dockerfile", "trellis", "--arch-list", "86", "--out", "OUT"],
     "'86' is not a compute capability"),
    ("dockerfile-arch-sm86", ["dockerfile", "trellis", "--arch-list", "sm_86", "--out", "OUT"], "write it 8.6"),
    ("dockerfile-arch-empty", ["dockerfile", "trellis", "--arch-list", "", "--out", "OUT"], "an empty arch list"),
    ("dockerfile-host-not-json", ["dockerfile", "trellis", "--host", "NOTJSON", "--out", "OUT"], "not valid JSON"),
    ("dockerfile-host-missing", ["dockerfile", "trellis", "--host", "/nonexistent/h.json", "--out", "OUT"],
     "no such file"),
    ("dockerfile-out-is-a-file", ["dockerfile", "trellis", "--arch-list", "8.6", "--out", "JUNK"], "is not a directory"),
    ("dockerfile-out-is-root", ["dockerfile", "trellis", "--arch-list", "8.6", "--out", "/"], "system directory"),
    ("dockerfile-which-gpus", ["dockerfile", "trellis", "--out", "OUT"], "which GPUs is the image for"),
    ("dockerfile-hosts-and-archs", ["dockerfile", "trellis", "--host", HOST, "--arch-list", "9.0", "--out", "OUT"],
     "not both"),
    ("dockerfile-spec-file", ["dockerfile", "JUNK", "--arch-list", "9.0", "--out", "OUT"], "is not a target of"),
    ("dockerfile-not-a-bundle", ["dockerfile", "trellis", "--arch-list", "9.0", "--bundle", "EMPTY", "--out", "OUT"],
     "is not a bundle"),
    ("dockerfile-no-out", ["dockerfile", "trellis", "--arch-list", "9.0"], "Missing option '--out'"),
]


def _w(tmp_path: Path):  # type: ignore[no-untyped-def]
    w = make_world(tmp_path)
    (w.root / "EMPTY").mkdir()
    (w.root / "JUNK").write_text('{"not": "a checklist"}')
    (w.root / "NOTJSON").write_text("GPU: RTX 4090, driver 550\n")
    w.allowed = [w.root / "OUT", w.root / "LOCKS"]
    return w


@pytest.mark.parametrize("cid,argv,words", USAGE, ids=[c[0] for c in USAGE])
def test_a_mistyped_or_hostile_command_line_exits_2_with_the_reason(tmp_path: Path, cid: str, argv: list[str],
                                                                    words: str) -> None:
    w = _w(tmp_path)
    before = w.snapshot()
    judge(run(argv, cwd=w.root), w, before, 2, (words,))
    assert not (w.root / "OUT").exists()


@pytest.mark.parametrize("cid,argv,words", [
    ("no-host-file", ["plan", "triposr", "--host", "NOWHERE", "--json"], "no such file"),
    ("unknown-variant", ["plan", "triposr", "--variant", "cu999", "--json"], "unknown variant"),
    ("unknown-option", ["plan", "triposr", "--hots", "x", "--json"], "No such option"),
    ("unknown-target", ["compile", "tripsr", "--out", "OUT", "--json"], "no target named"),
    ("refused-compile", ["compile", "trellis2", "--host", "A6000", "--variant", "cu124", "--out", "OUT", "--json"],
     "cannot run"),
])
def test_a_json_run_that_fails_says_why_in_json_on_stdout(tmp_path: Path, cid: str, argv: list[str], words: str) -> None:
    """A script that asked for --json reads an error object, never an empty stdout."""
    w = _w(tmp_path)
    before = w.snapshot()
    a6000 = str(Path(HOST).parent / "a6000-linux-535.json")
    argv = [{"NOWHERE": str(w.root / "nowhere.json"), "OUT": str(w.root / "OUT"), "A6000": a6000}.get(a, a) for a in argv]
    r = run(argv, cwd=w.root)
    judge(r, w, before, 2, (words,))
    doc = json.loads(r.out)
    assert doc["exit_code"] == 2 and words in doc["error"], doc


def test_the_help_of_every_command_exits_0(tmp_path: Path) -> None:
    w = _w(tmp_path)
    before = w.snapshot()
    for cmd in ("list", "show", "validate", "doctor", "plan", "wslconfig", "lock", "compile", "mirror", "seed",
                "verify", "apply", "run", "dockerfile"):
        r = run([cmd, "--help"], cwd=w.root)
        judge(r, w, before, 0, ("Usage",))


@pytest.mark.parametrize("cid,prefix", [
    ("root", "/"),
    ("usr", "/usr"),
    ("etc", "/etc"),
    ("home-dir", "HOME"),
    ("above-home", "HOMEPARENT"),
    ("users-files", "USERDIR"),
    ("a-file", "USERFILE"),
])
def test_apply_refuses_a_prefix_that_is_not_its_own(tmp_path: Path, cid: str, prefix: str) -> None:
    w = _w(tmp_path)
    user = w.outside / "my-project"
    user.mkdir()
    (user / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (user / "bin").mkdir()
    (user / "bin" / "activate").write_text("# mine\n")
    real = {"HOME": os.environ["HOME"], "HOMEPARENT": str(Path(os.environ["HOME"]).parent), "USERDIR": str(user),
            "USERFILE": str(w.outside / "user-notes.txt")}.get(prefix, prefix)
    w.allowed = [w.root / "data"]
    before = w.snapshot()
    for dry in ([], ["--dry-run"]):
        r = run(["apply", "triposr", "--host", HOST, "--prefix", real, "--data-dir", str(w.root / "data"), *dry],
                cwd=w.root)
        judge(r, w, before, 2, ())
        assert any(s in r.text for s in ("system directory or a home", "not an environment provision made",
                                         "is not a directory"))
    assert (user / "bin" / "activate").read_text() == "# mine\n"


@pytest.mark.parametrize("cid,setup,words", [
    ("out-is-root", lambda w: "/", "system directory or a home"),
    ("out-is-a-file", lambda w: str(w.outside / "user-notes.txt"), "is not a directory"),
    ("out-is-users-dir", lambda w: str(w.outside), "was not written by provision compile"),
    ("out-is-home", lambda w: os.environ["HOME"], "system directory or a home"),
])
def test_compile_never_replaces_a_directory_it_did_not_write(tmp_path: Path, cid: str, setup, words: str) -> None:  # type: ignore[no-untyped-def]
    w = _w(tmp_path)
    out = setup(w)
    Path(os.environ["HOME"]).mkdir(parents=True, exist_ok=True)
    w.allowed = []
    before = w.snapshot()
    r = run(["compile", "triposr", "--host", HOST, "--out", out, "--data-dir", "/data/p"], cwd=w.root)
    judge(r, w, before, 2, (words,))


def test_compile_keeps_a_file_a_user_added_to_its_output(tmp_path: Path) -> None:
    w = _w(tmp_path)
    out = w.root / "OUT"
    args = ["compile", "triposr", "--host", HOST, "--out", str(out), "--data-dir", "/data/p"]
    assert run(args, cwd=w.root).code == 0
    (out / "my-notes.md").write_text("mine\n")
    (out / "README.md").write_text("edited by me\n")
    w.allowed = []
    before = w.snapshot()
    judge(run(args, cwd=w.root), w, before, 2, ("my-notes.md", "README.md", "compile did not write"))
    (out / "my-notes.md").unlink()
    (out / "README.md").unlink()
    w.allowed = [out]
    assert run(args, cwd=w.root).code == 0  # README.md missing is fine: compile writes it again
    assert "FILES.sha256" in os.listdir(out)


def test_compile_writes_into_an_empty_directory_the_user_made(tmp_path: Path) -> None:
    w = _w(tmp_path)
    out = w.root / "OUT"
    out.mkdir()
    out.chmod(0o750)
    ino = out.stat().st_ino
    assert run(["compile", "triposr", "--host", HOST, "--out", str(out), "--data-dir", "/data/p"], cwd=w.root).code == 0
    assert out.stat().st_ino == ino and (out / "FILES.sha256").is_file()  # the same directory, not a replacement


@pytest.mark.parametrize("cid,target", [("report-is-dir", "REPORTDIR"), ("save-is-dir", "SAVEDIR")])
def test_an_output_file_that_is_a_directory_is_a_clear_error(tmp_path: Path, cid: str, target: str) -> None:
    w = _w(tmp_path)
    d = w.root / "adir"
    d.mkdir()
    w.allowed = []
    before = w.snapshot()
    if target == "SAVEDIR":
        r = run(["doctor", "--host", HOST, "--save", str(d)], cwd=w.root)
    else:
        r = run(["verify", "triposr", "--host", HOST, "--preflight", "--report", str(d)], cwd=w.root)
        r = run(["verify", "triposr", "--host", HOST, "--python", "/nonexistent/python", "--report", str(d)], cwd=w.root)
    judge(r, w, before, 2, ())
    assert "error:" in r.text


# --- environment variables -----------------------------------------------------------------------------


@pytest.mark.parametrize("cid,env", [
    ("http-proxy-password", {"HTTP_PROXY": f"http://alice:{SECRETS[0]}@proxy.corp:3128"}),
    ("scheme-less-proxy", {"https_proxy": f"alice:{SECRETS[0]}@proxy.corp:3128"}),
    ("token-as-proxy-user", {"HTTPS_PROXY": f"http://{SECRETS[1]}@proxy.corp:3128"}),
    ("all-proxy-token-bare", {"ALL_PROXY": f"{SECRETS[1]}@proxy.corp:1080"}),
    ("github-token-proxy", {"HTTP_PROXY": f"https://{SECRETS[2]}@proxy.corp"}),
])
def test_doctor_never_shows_or_saves_a_proxy_credential(tmp_path: Path, cid: str, env: dict[str, str]) -> None:
    w = _w(tmp_path)
    saved = w.root / "OUT" / "host.json"
    saved.parent.mkdir()
    before = w.snapshot()
    for args in (["doctor"], ["doctor", "--json"], ["doctor", "--save", str(saved)]):
        r = run(args, env=env, cwd=w.root)
        judge(r, w, before, r.code, ("proxy.corp",) if args != ["doctor", "--save", str(saved)] else ())
    assert "proxy.corp" in saved.read_text() and json.loads(saved.read_text())["proxies"]


@pytest.mark.parametrize("cid,args", [
    ("hf-endpoint-credentials", ["mirror", "MINI", "--to", "BUNDLE", "--dry-run", "--hf-endpoint",
                                 f"http://user:{SECRETS[0]}@127.0.0.1:9"]),
    ("url-map-credentials", ["mirror", "MINI", "--to", "BUNDLE", "--dry-run", "--hf-endpoint", "http://127.0.0.1:9",
                             "--url-map", f"https://example.invalid=https://u:{SECRETS[0]}@127.0.0.1:9"]),
])
def test_credentials_in_a_mirror_url_are_masked_in_every_message_and_file(tmp_path: Path, cid: str,
                                                                          args: list[str]) -> None:
    w = _w(tmp_path)
    (w.root / "specs" / "shared").mkdir(parents=True)
    (w.root / "specs" / "shared" / "cuda.yaml").write_text((FIXTURES / "specs" / "shared" / "cuda.yaml").read_text())
    (w.root / "specs" / "mini.yaml").write_text((FIXTURES / "specs" / "minimal.yaml").read_text())
    args = [a.replace("MINI", str(w.root / "specs" / "mini.yaml")).replace("BUNDLE", str(w.root / "OUT")) for a in args]
    before = w.snapshot()
    r = run(args, env={"HF_TOKEN": SECRETS[1]}, cwd=w.root)
    judge(r, w, before, r.code, ("org/model",))


@pytest.mark.parametrize("cid,env,args,code", [
    ("provision-data-newline", {"PROVISION_DATA": "/tmp/d\ntouch INJECTED"}, ["doctor"], 2),
    ("xdg-data-home-escape", {"XDG_DATA_HOME": "/tmp/\x1b[31m"}, ["doctor", "triposr"], 2),
    ("no-proxy-newline", {"NO_PROXY": "localhost\ntouch INJECTED"}, ["doctor", "--json"], None),
    ("cxx-injects", {"CXX": "g++; touch INJECTED"}, ["doctor", "--json"], None),
    ("path-empty", {"PATH": ""}, ["doctor"], None),
    ("hf-token-in-env", {"HF_TOKEN": SECRETS[1]}, ["doctor", "--json"], None),
    ("provision-envs-is-a-file", {"PROVISION_ENVS": "/etc/hostname"}, ["list"], 0),
])
def test_hostile_environment_variables_change_nothing_they_should_not(tmp_path: Path, cid: str, env: dict[str, str],
                                                                     args: list[str], code: int | None) -> None:
    w = _w(tmp_path)
    before = w.snapshot()
    r = run(args, env=env, cwd=w.root)
    judge(r, w, before, r.code if code is None else code, ())


@pytest.mark.parametrize("cid,argv", [
    ("compile-disk-full", ["compile", "triposr", "--host", HOST, "--out", "OUT", "--data-dir", "/data/p"]),
    ("doctor-save-disk-full", ["doctor", "--host", HOST, "--save", "OUT/host.json"]),
    ("lock-check-report", ["verify", "triposr", "--host", HOST, "--python", "/nonexistent/python", "--report", "OUT/r.md"]),
])
def test_a_full_disk_is_a_message_and_leaves_nothing_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 cid: str, argv: list[str]) -> None:
    import errno

    w = _w(tmp_path)
    (w.root / "OUT").mkdir()

    def full(fd: int) -> None:  # the data does not fit: fsync reports it (delayed allocation), as on ext4/xfs
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    monkeypatch.setattr(Path, "write_text", lambda self, *a, **k: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device", str(self))))
    w.allowed = []
    before = w.snapshot()
    r = run(argv, cwd=w.root)
    monkeypatch.undo()
    judge(r, w, before, 2, ("No space left on device",))
    assert list((w.root / "OUT").iterdir()) == []
