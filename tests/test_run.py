"""provision run: a tiny web app (the test writes it) in a fake env prefix and upstream tree, started
as the real command line starts it, behind a dead proxy with its port already taken; and the launch
decided without starting anything (--dry-run, --json), each refusal a clear error with exit 2."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import FIXTURES
from hostile import run as run_inproc

ROOT = Path(__file__).resolve().parent.parent
PY = "%d.%d" % sys.version_info[:2]
HOST = str(FIXTURES / "hosts" / "no-gpu.json")  # no GPU: the plan picks the default variant, unchecked
COMMIT = "0123456789abcdef0123456789abcdef01234567"
MODEL_REV = "89abcdef0123456789abcdef0123456789abcdef"
PROXY_PW = "s3cr3t-PW-7731"

SPEC = """\
schema_version: 1
name: webtoy
description: a tiny web app for the run tests
upstream: {{repo: "https://example.invalid/webtoy", commit: {commit}, read_from: [app.py]}}
python: "{py}"
cuda_toolkits:
  "12.8": {{min_driver_linux: "570.26", min_driver_windows: "570.65", nvcc_min_arch: "5.0",
           nvcc_max_arch: "12.0", conda_channel: conda-forge, conda_packages: [cuda-nvcc], max_gcc: "14"}}
conda: {{channels: [conda-forge], packages: [{{name: python, version: "{py}.*"}}]}}
pip: {{packages: []}}
variants:
  cu128:
    cuda: "12.8"
    default: true
    description: toy
    packages: [{{name: torch, version: "2.8.0"}}]
    host: {{min_compute_capability: "7.0", max_compute_capability: "12.0"}}
weights:
  huggingface:
    - {{repo: org/webtoy-model, revision: {rev}, files: [config.json]}}
    - {{repo: org/webtoy-extra, revision: {rev}, optional: true}}
env:
  HF_HOME: "{{data}}/huggingface"
  HF_HUB_OFFLINE: "1"
  WEBTOY_MODE_DIR: "{{data}}/models"
  NO_PROXY: "localhost,127.0.0.1,::1"
resources: {{ram_gb: 1, swap_gb: 0, disk_gb: 1, vram_gb: 1}}
app: {app}
"""
APP_SECTION = "{{launch: 'python app.py --listen {{host}}', cli: python cli.py, port: {port}, port_env: WEBTOY_PORT}}"

# The app: serves on $WEBTOY_PORT after a moment, with a child process of its own (the whole group must go).
APP = """\
import http.server, json, os, subprocess, sys, time
port = int(os.environ["WEBTOY_PORT"])
mode = os.environ.get("WEBTOY_MODE", "ok")
print("webtoy starting on", port, "args", sys.argv[1:], flush=True)
if mode == "crash":
    print("Traceback (most recent call last):", file=sys.stderr)
    print("OSError: boom: the weights are not where I look", file=sys.stderr)
    sys.exit(3)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(os.environ["WEBTOY_PIDS"], "w") as f:
    f.write(f"{os.getpid()} {child.pid}\\n")
if mode == "hang":
    time.sleep(600)
time.sleep(0.5)
seen = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "NO_PROXY", "no_proxy", "HTTP_PROXY",
                                       "GRADIO_SHARE", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "PATH", "HF_HOME")}
seen.update(cwd=os.getcwd(), exe=sys.executable, argv=sys.argv[1:])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        print("request", self.path, flush=True)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""
CLI = """\
import json, os, sys
print("cli args:", json.dumps(sys.argv[1:]), "offline:", os.environ.get("HF_HUB_OFFLINE"), "cwd:", os.getcwd())
sys.exit(int(sys.argv[sys.argv.index("--code") + 1]) if "--code" in sys.argv else 0)
"""


def _free_pair() -> tuple[socket.socket, int]:
    """A listening socket on a port P whose next port is free: the test holds P, the app should get P+1."""
    for _ in range(50):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        if port < 65535:
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port + 1))
                except OSError:
                    s.close()
                    continue
            s.listen()
            return s, port
        s.close()
    raise RuntimeError("no free pair of ports")


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class World:
    def __init__(self, tmp: Path, port: int, app: str | None = None) -> None:
        self.tmp, self.port = tmp, port
        self.data = tmp / "data"
        self.prefix = self.data / "envs" / "webtoy"
        self.upstream = self.prefix / "share" / "provision" / "app"  # the env's copy of the app
        self.envs = tmp / "envs"
        self.pids = tmp / "app.pids"
        self.hosts = tmp / "hosts"
        self.hosts.write_text("127.0.0.1\tlocalhost\n::1 localhost ip6-localhost\n")
        self.envs.mkdir()
        self.write_spec(app or APP_SECTION.format(port=port))
        # an env as apply leaves it: its marker and state under share/provision/, its bin/python
        meta = self.prefix / "share" / "provision"
        meta.mkdir(parents=True)
        (meta / ".provision-owned").write_text("created by provision; provision may delete what is inside\n")
        (meta / "state.json").write_text(json.dumps({"steps": {"compile": {"inputs": "x", "seconds": 0.1}}}))
        (self.prefix / "bin").mkdir()
        (self.prefix / "bin" / "python").symlink_to(sys.executable)
        self.upstream.mkdir(parents=True)
        (self.upstream / "app.py").write_text(APP)
        (self.upstream / "cli.py").write_text(CLI)
        self.dead = _dead_port()

    def write_spec(self, app: str) -> None:
        (self.envs / "webtoy.yaml").write_text(SPEC.format(commit=COMMIT, py=PY, rev=MODEL_REV, app=app))

    def seed(self) -> None:
        repo = self.data / "huggingface" / "hub" / "models--org--webtoy-model"
        (repo / "blobs").mkdir(parents=True)
        (repo / "blobs" / "abc123").write_text("{}")
        snap = repo / "snapshots" / MODEL_REV
        snap.mkdir(parents=True)
        (snap / "config.json").symlink_to("../../blobs/abc123")
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(MODEL_REV)

    def env(self, **extra: str) -> dict[str, str]:
        proxy = f"http://user:{PROXY_PW}@127.0.0.1:{self.dead}"
        return {"PROVISION_ENVS": str(self.envs), "PROVISION_HOSTS_FILE": str(self.hosts),
                "WEBTOY_PIDS": str(self.pids), "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "ALL_PROXY": proxy,
                "http_proxy": proxy, "NO_PROXY": "intranet.example", **extra}

    def args(self, *more: str) -> list[str]:
        return ["run", "webtoy", "--data-dir", str(self.data), "--host", HOST, *more]

    def popen(self, *more: str, **extra: str) -> subprocess.Popen:  # type: ignore[type-arg]
        env = {**os.environ, "PYTHONPATH": str(ROOT), **self.env(**extra)}
        return subprocess.Popen([sys.executable, "-m", "provision", *self.args(*more)], cwd=self.tmp, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def cli(self, *more: str, **extra: str):  # type: ignore[no-untyped-def]
        """In-process (nothing started): the dry runs and the refusals."""
        return run_inproc(self.args(*more), env=self.env(**extra), cwd=self.tmp)


class Lines:
    """provision's merged output, read by a thread so the test can wait for a line."""

    def __init__(self, proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
        self.q: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.t = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.t.start()

    def _read(self, proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
        for line in proc.stdout:  # type: ignore[union-attr]
            self.q.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.q.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} in {timeout} s:\n" + "\n".join(self.seen))

    def rest(self) -> str:
        self.t.join(timeout=10)
        while not self.q.empty():
            self.seen.append(self.q.get())
        return "\n".join(self.seen)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:][:1] not in ("Z", "X")


def _pids(w: World, timeout: float = 20) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if w.pids.is_file() and w.pids.read_text().endswith("\n"):
            a, b = w.pids.read_text().split()
            return int(a), int(b)
        time.sleep(0.05)
    raise AssertionError("the app never wrote its pids")


def _gone(*pids: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return not any(_alive(p) for p in pids)


@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    hold, port = _free_pair()
    w = World(tmp_path, port)
    w.hold = hold  # type: ignore[attr-defined]
    yield w
    hold.close()
    if w.pids.is_file():  # whatever a failed test left running
        for p in w.pids.read_text().split():
            try:
                os.kill(int(p), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


# --- the app, started for real ---------------------------------------------------------------


def test_run_behind_a_dead_proxy_on_a_taken_port_answers_then_ctrl_c_leaves_nothing_behind(world: World) -> None:
    world.seed()
    proc = world.popen("--ready-timeout", "30")
    out = Lines(proc)
    try:
        ready = out.wait_for("ready: http://")
        url = ready.split()[1]
        text = "\n".join(out.seen)
        assert f"port {world.port} is taken by pid {os.getpid()} (" in text, text
        assert f"the app gets {world.port + 1}" in text, text
        assert url == f"http://127.0.0.1:{world.port + 1}/"
        # the printed URL answers, fetched directly (the proxy variables point at a closed port)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        seen = json.loads(opener.open(url, timeout=10).read())
        app_pid, child_pid = _pids(world)
        assert _alive(app_pid) and _alive(child_pid)
    except BaseException:
        proc.kill()
        raise
    assert seen["cwd"] == str(world.upstream)
    assert seen["exe"] == str(world.prefix / "bin" / "python")
    assert seen["argv"] == ["--listen", "127.0.0.1"]  # {host} filled, no shell
    assert seen["PATH"].split(":")[0] == str(world.prefix / "bin")
    assert seen["HF_HOME"] == str(world.data / "huggingface")
    assert seen["HF_HUB_OFFLINE"] == "1" and seen["TRANSFORMERS_OFFLINE"] == "1"  # the required repo is seeded
    for var in ("NO_PROXY", "no_proxy"):
        entries = seen[var].split(",")
        assert entries[0] == "intranet.example"  # the user's entry kept, first
        assert {"localhost", "127.0.0.1", "::1"} <= set(entries)
    assert seen["HTTP_PROXY"].endswith(f"127.0.0.1:{world.dead}")  # the rest of the world still goes through it
    assert seen["GRADIO_SHARE"] == "False" and seen["GRADIO_SERVER_NAME"] == "127.0.0.1"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    rest = out.rest()
    assert _gone(app_pid, child_pid), f"left running: app {app_pid} {_alive(app_pid)}, child {child_pid}"
    assert "stopped the app" in rest
    assert PROXY_PW not in rest and "Traceback" not in rest
    log = (world.prefix / "share" / "provision" / "logs" / "run.log").read_text()
    assert "webtoy starting on" in log and "request /" in log
    assert "webtoy starting on" in rest  # teed to the terminal too


def test_sigterm_to_provision_stops_the_app_and_its_child(world: World) -> None:
    proc = world.popen("--ready-timeout", "30")
    out = Lines(proc)
    try:
        out.wait_for("ready: http://")
        app_pid, child_pid = _pids(world)
    except BaseException:
        proc.kill()
        raise
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert _gone(app_pid, child_pid)


def test_an_app_that_crashes_at_start_is_an_error_with_its_last_lines(world: World) -> None:
    proc = world.popen("--ready-timeout", "30", WEBTOY_MODE="crash")
    out = Lines(proc)
    code = proc.wait(timeout=60)
    text = out.rest()
    assert code == 2, text
    assert "the app exited with code 3 before it answered" in text
    tail = text[text.index("error:"):]
    assert "boom: the weights are not where I look" in tail and "last" in tail
    assert "Traceback (most recent call last)" in tail  # the app's own, shown as its output


def test_with_json_a_crash_leaves_stdout_one_json_document(world: World) -> None:
    """`run --json` writes its launch plan first; the crash that follows is said on stderr, and
    stdout stays one document a script can load."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **world.env(WEBTOY_MODE="crash")}
    r = subprocess.run([sys.executable, "-m", "provision", *world.args("--json", "--ready-timeout", "30")],
                       cwd=world.tmp, env=env, capture_output=True, text=True, timeout=90)
    assert r.returncode == 2 and "the app exited with code 3 before it answered" in r.stderr, r.stderr
    assert isinstance(json.loads(r.stdout), dict), r.stdout


def test_a_probe_timeout_is_an_error_and_the_app_is_stopped(world: World) -> None:
    proc = world.popen("--ready-timeout", "1.5", WEBTOY_MODE="hang")
    out = Lines(proc)
    app_pid, child_pid = _pids(world)
    code = proc.wait(timeout=60)
    text = out.rest()
    assert code == 2, text
    assert "did not answer" in text and "within 1.5 s" in text and "--ready-timeout" in text
    assert "webtoy starting on" in text[text.index("error:"):]  # its last lines
    assert _gone(app_pid, child_pid)


def test_cli_passes_its_arguments_and_its_exit_code_through(world: World) -> None:
    world.seed()
    proc = world.popen("--cli", "--", "--name", "a b; touch INJECTED", "--code", "7")
    out = Lines(proc)
    assert proc.wait(timeout=60) == 7
    text = out.rest()
    assert 'cli args: ["--name", "a b; touch INJECTED", "--code", "7"]' in text, text
    assert "offline: 1" in text and f"cwd: {world.upstream}" in text
    assert not (world.tmp / "INJECTED").exists() and not (world.upstream / "INJECTED").exists()
    assert "ready:" not in text  # no port, no probe


def test_cli_exit_0_is_0(world: World) -> None:
    proc = world.popen("--cli")
    out = Lines(proc)
    assert proc.wait(timeout=60) == 0, out.rest()


# --- decided, not started ----------------------------------------------------------------------


def test_dry_run_prints_the_whole_launch_and_starts_nothing(world: World) -> None:
    world.seed()
    r = world.cli("--dry-run")
    assert r.code == 0, r.text
    for words in (f"cwd      {world.upstream}", f"{world.prefix}/bin/python app.py --listen 127.0.0.1",
                  f"WEBTOY_PORT={world.port + 1}", "GRADIO_SHARE=False", "GRADIO_SERVER_NAME=127.0.0.1",
                  "HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1", "NO_PROXY=intranet.example,localhost,127.0.0.1,::1",
                  "no_proxy=intranet.example,localhost,127.0.0.1,::1", f"PATH={world.prefix}/bin:",
                  f"port {world.port} is taken by pid {os.getpid()} (", f"the app gets {world.port + 1}",
                  f"url      http://127.0.0.1:{world.port + 1}/", f"GET http://127.0.0.1:{world.port + 1}/ directly",
                  "run.log", "dry run: nothing was started"):
        assert words in r.out, (words, r.out)
    assert PROXY_PW not in r.text
    assert not world.pids.exists()
    assert not (world.prefix / "share" / "provision" / "logs").exists()


def test_json_is_the_launch_plan(world: World) -> None:
    world.seed()
    r = world.cli("--dry-run", "--json", "--share", "--port", str(world.port + 1))
    assert r.code == 0, r.text
    lp = json.loads(r.out)
    assert lp["argv"] == [str(world.prefix / "bin" / "python"), "app.py", "--listen", "127.0.0.1"]
    assert lp["cwd"] == str(world.upstream) and lp["mode"] == "app" and lp["port"] == world.port + 1
    assert "--port" in lp["port_reason"] and lp["probe"]["url"] == f"http://127.0.0.1:{world.port + 1}/"
    env = {c["name"]: c for c in lp["env"]}
    assert env["GRADIO_SHARE"]["value"] == "True" and env["WEBTOY_PORT"]["value"] == str(world.port + 1)
    assert lp["offline"] is True and lp["weights_missing"] == []
    assert PROXY_PW not in r.out  # the proxy URL is masked wherever it appears


def test_missing_weights_are_named_and_offline_is_not_forced(world: World) -> None:
    r = world.cli("--dry-run", "--json")
    assert r.code == 0, r.text
    lp = json.loads(r.out)
    assert lp["offline"] is False
    assert [m.split(":")[0] for m in lp["weights_missing"]] == ["org/webtoy-model@89abcdef0123"]  # not the optional one
    env = {c["name"]: c for c in lp["env"]}
    assert env["HF_HUB_OFFLINE"]["value"] is None  # the spec's "1" is not set: the app could not fetch them
    assert any("will try to download them" in w and "through HTTP_PROXY" in w for w in lp["warnings"])
    r = world.cli("--dry-run", HF_HUB_OFFLINE="1")  # the user's own choice stays, and is warned about
    assert r.code == 0 and "cannot download them" in r.text and "org/webtoy-model" in r.text, r.text


def test_a_hosts_file_without_localhost_is_warned_about(world: World) -> None:
    world.hosts.write_text("127.0.0.1 myhost\n# localhost\n")
    r = world.cli("--dry-run")
    assert r.code == 0, r.text
    assert f"warning: {world.hosts} has no line for localhost" in r.text


# --- refusals: exit 2, the reason and the fix -------------------------------------------------


def test_no_env_at_the_prefix(world: World) -> None:
    r = world.cli("--prefix", str(world.tmp / "nowhere"), "--dry-run")
    assert r.code == 2, r.text
    assert f"no env at {world.tmp / 'nowhere'}: run `provision apply webtoy --prefix" in r.err
    mine = world.tmp / "mine"
    (mine / "bin").mkdir(parents=True)
    r = world.cli("--prefix", str(mine))
    assert r.code == 2 and "is not an env provision made" in r.err and "--existing" in r.err, r.text


def test_a_missing_app_copy(world: World) -> None:
    (world.upstream / "app.py").rename(world.tmp / "app.py")
    (world.upstream / "cli.py").unlink()
    world.upstream.rmdir()
    r = world.cli()
    assert r.code == 2, r.text
    assert f"the webtoy app is not in the env: {world.upstream} is missing" in r.err
    assert "provision apply webtoy --from-step sources" in r.err


def test_an_interpreter_that_does_not_run(world: World) -> None:
    py = world.prefix / "bin" / "python"
    py.unlink()
    py.write_text("#!/bin/sh\necho 'cannot open shared object file' >&2\nexit 127\n")
    py.chmod(0o755)
    r = world.cli("--dry-run")
    assert r.code == 2 and "does not run" in r.err and "exit" in r.err and "--from-step create-env" in r.err, r.text
    py.unlink()
    py.symlink_to(world.tmp / "gone")
    r = world.cli("--dry-run")
    assert r.code == 2 and "does not exist" in r.err, r.text


def test_an_explicit_port_that_is_taken(world: World) -> None:
    r = world.cli("--port", str(world.port))
    assert r.code == 2, r.text
    assert f"--port {world.port}: port {world.port} is taken by pid {os.getpid()} (" in r.err
    assert "leave --port out" in r.err
    assert not world.pids.exists()


def test_an_app_that_cannot_be_given_a_port(world: World) -> None:
    world.write_spec(f"{{launch: python app.py, port: {world.port}}}")
    r = world.cli("--dry-run")
    assert r.code == 2, r.text
    assert "cannot be given another" in r.err and "app.port_env" in r.err and f"ss -ltnp | grep :{world.port}" in r.err
    r = world.cli("--dry-run", "--port", str(world.port + 1))
    assert r.code == 2 and "cannot be given a port" in r.err, r.text


def test_port_through_the_command_line_when_there_is_no_port_env(world: World) -> None:
    world.write_spec(f"{{launch: 'python app.py --port {{port}}', port: {world.port}}}")
    r = world.cli("--dry-run", "--json")
    assert r.code == 0, r.text
    lp = json.loads(r.out)
    assert lp["argv"][1:] == ["app.py", "--port", str(world.port + 1)]


def test_cli_without_a_cli_entry(world: World) -> None:
    world.write_spec(f"{{launch: python app.py, port: {world.port}, port_env: WEBTOY_PORT}}")
    r = world.cli("--cli", "--", "x")
    assert r.code == 2 and "has no headless entry (app.cli)" in r.err, r.text


@pytest.mark.parametrize("argv,words", [
    (["--port", "0"], "Invalid value for '--port'"),
    (["--port", "lots"], "Invalid value for '--port'"),
    (["--ready-timeout", "0"], "Invalid value for '--ready-timeout'"),
    (["stray"], "arguments after the target are for --cli"),
    (["--cli", "--port", "8000"], "are for the web app, not --cli"),
    (["--bogus"], "No such option"),
    (["--host-address", "0.0.0.0;touch x"], "--host-address '0.0.0.0;touch x'"),
    (["--cli", "--host-address", "0.0.0.0"], "--host-address is for the web app"),
], ids=["port-0", "port-text", "timeout-0", "stray-argument", "cli-with-port", "unknown-option", "bad-address",
        "cli-with-address"])
def test_usage_errors_exit_2(world: World, argv: list[str], words: str) -> None:
    r = world.cli(*argv)
    assert r.code == 2 and words in r.text, r.text
    assert not world.pids.exists()


def test_a_spec_may_not_pass_the_port_through_a_loader_variable(world: World) -> None:
    world.write_spec(f"{{launch: python app.py, port: {world.port}, port_env: LD_PRELOAD}}")
    r = run_inproc(["validate", str(world.envs / "webtoy.yaml")])
    assert r.code == 2 and "app.port_env" in r.text and "LD_PRELOAD" in r.text, r.text


# --- the pure part: spec x plan x options x observed facts -> LaunchPlan ----------------------


def _decide(world: World, app: str, ports: tuple, **opts):  # type: ignore[no-untyped-def]
    from provision.host import load_host
    from provision.launch import LaunchOptions, Observed, make_launch
    from provision.plan import PlanOptions, make_plan
    from provision.spec import load_spec

    world.write_spec(app)
    loaded = load_spec(world.envs / "webtoy.yaml")
    plan = make_plan(loaded, load_host(Path(HOST)), PlanOptions(data_dir=str(world.data)))
    obs = Observed(environ={"PATH": "/usr/bin", "no_proxy": "corp.example,LOCALHOST"}, env_made=True,
                   prefix_exists=True, python_error=None, python_version=PY, upstream_exists=True, ports=ports)
    return make_launch(loaded.spec, plan, LaunchOptions(**opts), obs)


def test_a_wildcard_host_is_probed_on_loopback_and_an_ipv6_one_in_brackets(world: World) -> None:
    from provision.launch import PortState

    lp = _decide(world, "{launch: python app.py, host: 0.0.0.0, port: 9000, port_env: P}", (PortState(9000, True),))
    assert lp.url == "http://127.0.0.1:9000/" and lp.probe is not None and lp.probe.url == lp.url
    env = {c.name: c.value for c in lp.env}
    assert env["GRADIO_SERVER_NAME"] == "0.0.0.0" and env["P"] == "9000"
    # the user's no_proxy entries first, in their spelling; no duplicate of LOCALHOST; no wildcard address added
    assert env["NO_PROXY"] == env["no_proxy"] == "corp.example,LOCALHOST,127.0.0.1,::1"
    lp = _decide(world, "{launch: python app.py, host: '::1', port: 9000, ready_path: /health, port_env: P}",
                 (PortState(9000, True),))
    assert lp.url == "http://[::1]:9000/" and lp.probe.url == "http://[::1]:9000/health"  # type: ignore[union-attr]
    lp = _decide(world, "{launch: python app.py, host: 10.1.2.3, port: 9000, port_env: P}", (PortState(9000, True),))
    assert {c.name: c.value for c in lp.env}["NO_PROXY"].endswith(",10.1.2.3")


def test_in_a_container_the_app_serves_on_every_interface_and_is_probed_on_loopback(world: World) -> None:
    """A published port reaches a container's app only if it listens on 0.0.0.0, whatever app.host says;
    `provision dockerfile`'s CMD passes --host-address 0.0.0.0 (and compose publishes it on 127.0.0.1)."""
    from provision.launch import PortState

    app = "{launch: 'python app.py --listen {host}', port: 9000, port_env: P}"
    lp = _decide(world, app, (PortState(9000, True),), host="0.0.0.0")
    env = {c.name: c for c in lp.env}
    assert lp.host == "0.0.0.0" and lp.argv[-1] == "0.0.0.0" and env["GRADIO_SERVER_NAME"].value == "0.0.0.0"
    assert "--host-address" in env["GRADIO_SERVER_NAME"].why
    assert lp.url == "http://127.0.0.1:9000/" and lp.probe is not None and lp.probe.url == lp.url
    lp = _decide(world, app, (PortState(9000, True),))  # without it: the spec's app.host, loopback
    assert lp.host == "127.0.0.1" and lp.argv[-1] == "127.0.0.1"


def test_every_port_taken_is_an_error_and_a_pid_less_one_is_just_taken(world: World) -> None:
    from provision.launch import LaunchError, PortState

    app = "{launch: python app.py, port: 9000, port_env: P, ready_timeout_s: 5}"
    lp = _decide(world, app, (PortState(9000, False), PortState(9001, True)))
    assert lp.port == 9001 and lp.port_reason == "port 9000 is taken; the app gets 9001"
    assert lp.probe is not None and lp.probe.timeout_s == 5
    with pytest.raises(LaunchError, match="ports 9000-9001 .* are all taken"):
        _decide(world, app, (PortState(9000, False), PortState(9001, False)))
    assert lp.environment({"PATH": "/usr/bin", "HF_HUB_OFFLINE": "0"})["P"] == "9001"


def test_an_app_host_that_does_not_resolve(world: World) -> None:
    world.write_spec(f"{{launch: python app.py, host: no-such-host.invalid, port: {world.port}, port_env: P}}")
    r = world.cli("--dry-run")
    assert r.code == 2 and "app.host 'no-such-host.invalid'" in r.err and "does not resolve" in r.err, r.text
