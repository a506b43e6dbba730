"""The app step: the upstream app's tree, at the spec's commit, copied into the env and made
importable by a .pth shim, as in-place extensions are (the upstream repositories are not
packages: `python app.py` imports `trellis` from its own directory).

The env gets its own copy (PREFIX/share/provision/app) rather than a path into the data
dir's checkout: that checkout is shared by every env built from it and is replaced when a
spec moves to another commit, which must not change an env already installed."""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import paths
from ..fsutil import write_ours
from ..plan import Step, app_dir, upstream_dir
from .commands import purelib
from .context import ApplyError, Ctx
from .sources import source_marker

# what a checkout carries that the app never reads
IGNORED = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build", ".provision-source")


def do_app(ctx: Ctx, step: Step, log: Path) -> None:
    src = Path(upstream_dir(ctx.spec, str(ctx.data)))
    if not source_marker(src).is_file():
        raise ApplyError(f"the {ctx.spec.name} app is not checked out at {src}",
                         hint=f"provision apply {ctx.spec.name} --from-step sources")
    dest = Path(app_dir(str(ctx.prefix)))
    paths.remove_tree(dest, ctx.meta, "the env's earlier copy of the app")
    shutil.copytree(src, dest, ignore=IGNORED, symlinks=True)
    pin = source_marker(src).read_text().strip()
    (dest / ".provision-app").write_text(f"{ctx.spec.upstream.repo} {pin}\n")
    shim = ctx.compiled / "site-packages" / "provision-app.pth"
    text = shim.read_text() if shim.is_file() else f"{dest}\n"
    backup = write_ours(purelib(ctx) / "provision-app.pth", text)
    with open(log, "a") as f:
        f.write(f"copied {src} ({pin}) to {dest}\n")
        if backup is not None:
            f.write(f"kept the earlier provision-app.pth as {backup}\n")
