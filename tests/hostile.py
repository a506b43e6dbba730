"""The harness of the hostile-input suite (tests/test_hostile_*.py).

Every case runs provision in-process, through `provision.cli.main` exactly as the console
script does, inside a world of temp directories, and is judged on the trust boundary's
contract:

- the exit code is the documented one, and the message names what is wrong;
- no traceback (main re-raises what it does not know, so an unexpected exception fails here);
- no file outside the allowed roots is created, changed or deleted (snapshot before and after);
- no injected command ran: a canary file such a command would create does not exist, also
  after every generated script is sourced in bash and dash and every .pth is loaded;
- no secret is shown or stored: none of SECRETS appears in the output or in any file written.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

SECRETS = ["s3cr3t-PW-7731", "hf_HostileTokenValue1234567890abcd", "ghp_0123456789abcdefABCDEF0123456789ab"]
CANARY_NAME = "INJECTED"


@dataclass
class World:
    root: Path
    canary: Path
    outside: Path  # files no case may touch
    allowed: list[Path] = field(default_factory=list)  # where a case may write
    inputs_before: dict[str, str] = field(default_factory=dict)

    def inputs(self) -> dict[str, str]:
        """Every file now under root, with its hash: what the case wrote before running provision."""
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in self.root.rglob("*")
                if p.is_file() and not p.is_symlink()}

    def snapshot(self) -> dict[str, tuple[object, ...]]:
        """Everything under root except the allowed directories: type, size, content hash, mode, link target."""
        self.inputs_before = self.inputs()
        out: dict[str, tuple[object, ...]] = {}
        allowed = [os.path.abspath(a) for a in self.allowed]
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            if any(dirpath == a or dirpath.startswith(a + os.sep) for a in allowed):
                dirnames[:] = []
                continue
            for name in dirnames + filenames:
                p = os.path.join(dirpath, name)
                if any(p == a or p.startswith(a + os.sep) for a in allowed):
                    continue
                st = os.lstat(p)
                if stat.S_ISLNK(st.st_mode):
                    out[p] = ("link", os.readlink(p))
                elif stat.S_ISDIR(st.st_mode):
                    out[p] = ("dir", stat.S_IMODE(st.st_mode))
                else:
                    out[p] = ("file", st.st_size, stat.S_IMODE(st.st_mode),
                              hashlib.sha256(Path(p).read_bytes()).hexdigest())
        return out


def make_world(tmp_path: Path) -> World:
    root = tmp_path / "world"
    outside = root / "outside"
    (outside / "etc").mkdir(parents=True)
    (outside / "etc" / "passwd").write_text("root:x:0:0\n")
    (outside / "user-notes.txt").write_text("mine, never touch\n")
    (outside / "bin").mkdir()
    (outside / "bin" / "activate").write_text("# a user's own script\n")
    w = World(root=root, canary=root / CANARY_NAME, outside=outside)
    return w


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Result:
    """provision ARGS in-process, as the console script runs it (argv, main(), SystemExit)."""
    from provision.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_argv, saved_cwd = dict(os.environ), sys.argv[:], os.getcwd()
    os.environ.update(env or {})
    sys.argv = ["provision", *args]
    code = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main()
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
    return Result(code, out.getvalue(), err.getvalue())


def no_secret_anywhere(r: Result, world: World, inputs: dict[str, str]) -> None:
    """Not printed, and not in any file the run wrote (the case's own input files may hold one)."""
    for s in SECRETS:
        assert s not in r.text, f"secret {s[:6]}... printed:\n{r.text}"
    for p in world.root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes()
            if inputs.get(str(p)) == hashlib.sha256(data).hexdigest():
                continue
            for s in SECRETS:
                assert s.encode() not in data, f"secret {s[:6]}... stored in {p}"


def judge(r: Result, world: World, before: dict[str, tuple[object, ...]], code: int, words: tuple[str, ...] = ()) -> None:
    assert "Traceback" not in r.text, r.text
    assert r.code == code, f"exit {r.code}, expected {code}:\n{r.text}"
    for w in words:
        assert w in r.text, f"{w!r} not in the output:\n{r.text}"
    assert not world.canary.exists(), "an injected command ran"
    after = world.snapshot()
    changed = sorted(set(before) ^ set(after) | {k for k in before if k in after and before[k] != after[k]})
    assert not changed, f"written or deleted outside the allowed roots: {changed[:10]}"
    no_secret_anywhere(r, world, world.inputs_before)


def source_scripts(out_dir: Path, world: World) -> None:
    """Source every activation script in bash and dash and run mirror.sh against stub tools;
    load every .pth: an injected command would create the canary."""
    shells = [s for s in ("bash", "dash") if shutil.which(s)]
    assert shells
    scripts = [p for p in out_dir.rglob("*.sh") if p.name != "mirror.sh"]
    env = {"PATH": os.environ["PATH"], "HOME": str(world.root / "shell-home")}
    for sh in shells:
        for s in scripts:
            cmd = f'. "{s}"; type provision_deactivate >/dev/null 2>&1 && provision_deactivate; true'
            r = subprocess.run([sh, "-c", cmd], cwd=world.root, env=env, capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, (sh, s, r.stderr)
            assert not world.canary.exists(), f"sourcing {s} in {sh} ran an injected command"
    mirror = out_dir / "mirror" / "mirror.sh"
    if mirror.is_file():
        stubs = world.root / "stubs"
        stubs.mkdir(exist_ok=True)
        for tool in ("curl", "git", "hf", "sha256sum", "md5sum"):
            (stubs / tool).write_text("#!/bin/sh\nexit 0\n")
            (stubs / tool).chmod(0o755)
        dest = world.root / "mirror-dest"
        for sh in shells:
            subprocess.run([sh, str(mirror), str(dest)], cwd=world.root, capture_output=True, text=True, timeout=60,
                           env={"PATH": f"{stubs}:{os.environ['PATH']}", "HOME": env["HOME"]})
            assert not world.canary.exists(), f"mirror.sh in {sh} ran an injected command"
    for pth in out_dir.rglob("*.pth"):
        site_dir = world.root / "site-check"
        site_dir.mkdir(exist_ok=True)
        shutil.copy(pth, site_dir / pth.name)
        for module in pth.parent.glob("*.py"):  # what a .pth imports (the startup shims) runs as well
            shutil.copy(module, site_dir / module.name)
        subprocess.run([sys.executable, "-S", "-c", f"import site; site.addsitedir({str(site_dir)!r})"],
                       capture_output=True, timeout=30)
        assert not world.canary.exists(), f"{pth.name} ran an injected command"
