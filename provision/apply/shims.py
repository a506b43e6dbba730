"""The activation step's second half: the startup shims (render/shims.py) into the env's purelib,
where its Python imports them at every start. A target that no longer needs them loses the ones
an earlier apply wrote (only those: a file without provision's marker is never touched)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from .. import paths
from ..fsutil import write_ours
from ..render.shims import DIR, FILES
from .context import ApplyError

MARKER = "# provision"


def env_purelib(python: str) -> Path:
    """The env's own site-packages, as its interpreter reports it."""
    try:
        r = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ApplyError(f"cannot ask {python} for its site-packages: {e}",
                         hint="the env's Python does not run: provision apply TARGET --from-step create-env") from e
    if r.returncode != 0 or not r.stdout.strip():
        raise ApplyError(f"{python} did not name its site-packages: {r.stderr.strip()[-300:]}",
                         hint="the env's Python does not run: provision apply TARGET --from-step create-env")
    return Path(r.stdout.strip())


def _byte_compile(python: str, module: Path) -> None:
    """The module's .pyc, made by the env's own Python, as pip does for what it installs: every start
    then loads it (an env that may not write bytecode would compile it at every start), and a
    module that does not compile in that Python stops here, before the .pth would import it."""
    r = subprocess.run([python, "-c", "import py_compile, sys; py_compile.compile(sys.argv[1], doraise=True)",
                        str(module)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise ApplyError(f"{python} cannot compile the startup shims {module}: {r.stderr.strip()[-300:]}",
                         hint="this is a bug in provision's shim template for this Python; PROVISION_SHIMS=0 is "
                              "not needed: without its .pth the module is never imported")


def install_shims(python: str, compiled: Path, echo: Callable[[str], None]) -> list[Path]:
    """Copy the compiled shims into the env (module first, byte-compiled, then the .pth that
    imports it); returns the files written."""
    purelib = env_purelib(python)
    written = []
    for name in FILES:
        src, dest = compiled / DIR / name, purelib / name
        if src.is_file():
            backup = write_ours(dest, src.read_text())
            if backup is not None:
                echo(f"kept your earlier {dest} as {backup}")
            if dest.suffix == ".py":
                _byte_compile(python, dest)
            written.append(dest)
    if not written:
        for name in reversed(FILES):  # the .pth first: never a line importing a module that is gone
            dest = purelib / name
            if dest.is_file() and dest.read_text(errors="replace").startswith(MARKER):
                paths.remove_file(dest, purelib, "a startup shim this target no longer has")
    return written


__all__ = ["env_purelib", "install_shims"]
