"""The sources step: the upstream app's tree and each extension's and git package's source at
its pinned commit, from a local checkout (--source NAME=DIR), a seeded bundle, or git; each
directory carries a marker naming the pin it holds, so an unchanged source is never fetched
twice. An extension built from inside the app's tree (`upstream_path:`) is that tree."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from .. import paths
from ..archives import extract_zip
from ..fsutil import file_digest
from ..plan import Step, source_dir, upstream_dir, upstream_name
from ..spec import GitSource, SdistSource, Upstream, UpstreamPathSource
from .commands import run_logged
from .context import ApplyError, Ctx


def source_marker(d: Path) -> Path:
    return d / ".provision-source"


def source_list(ctx: Ctx) -> list[tuple[str, object, Path]]:
    """(name, source, directory), the app first: extensions may live inside it."""
    out: list[tuple[str, object, Path]] = [(upstream_name(ctx.spec), ctx.spec.upstream,
                                            Path(upstream_dir(ctx.spec, str(ctx.data))))]
    prebuilt = ctx.plan.prebuilt  # installed from the lock's wheel
    for e in ctx.spec.extensions_for(ctx.plan.variant):
        if e.name not in prebuilt:
            out.append((e.name, e.source, Path(source_dir(ctx.spec, e, str(ctx.data)))))
    for p in [*ctx.spec.pip.packages, *ctx.spec.variants[ctx.plan.variant].packages]:
        if p.git is not None:
            out.append((p.name, p.git, ctx.data / "src" / p.name))
    return out


def do_sources(ctx: Ctx, step: Step, log: Path) -> None:
    src_root = paths.owned_dir(ctx.data / "src")  # every checkout lives here; only here is anything replaced
    for name, src, dest in source_list(ctx):
        if not paths.within(src_root, dest):  # the spec's paths are checked at load; this is the last word
            raise ApplyError(f"{name}: its source directory {dest} is outside {src_root}",
                             hint="the spec's source path climbs out of the data dir; nothing was changed")
        if isinstance(src, UpstreamPathSource):
            if name in ctx.opts.sources:  # a checkout of just this part of the app's tree
                _copy_local(ctx, name, dest, src_root)
            elif not dest.is_dir():
                raise ApplyError(f"{name}: {src.upstream_path} is not in the {ctx.spec.name} tree at "
                                 f"{ctx.spec.upstream.commit[:12]} ({dest})",
                                 hint="the spec's upstream_path names a directory the app's repository lacks")
            continue
        if isinstance(src, Upstream):
            root, pin, url, sub = dest, src.commit, src.repo, src.submodules
        elif isinstance(src, SdistSource):
            _fetch_sdist(ctx, name, src, dest, log)
            continue
        else:
            assert isinstance(src, GitSource)
            root = ctx.data / "src" / name
            pin, url, sub = src.commit, src.git, src.submodules
        if name in ctx.opts.sources:  # a checkout the user points at: copied, not touched
            _copy_local(ctx, name, dest, src_root)
            continue
        if source_marker(root).is_file() and source_marker(root).read_text().split()[0] == pin:
            continue
        archive = ctx.data / "sources" / f"{name}-{pin}.zip"
        if archive.is_file():  # seeded from a bundle
            paths.remove_tree(root, src_root, f"the earlier checkout of {name}")
            extract_zip(archive, root, strip_top=True)
        elif ctx.opts.offline:
            raise ApplyError(f"{name}: source {url}@{pin[:12]} is not in {ctx.data / 'sources'} and apply is offline",
                             hint=f"provision mirror {ctx.spec.name} --to BUNDLE online, then apply --offline --bundle BUNDLE")
        else:
            paths.remove_tree(root, src_root, f"the earlier checkout of {name}")
            run_logged(ctx, ["git", "clone", "--quiet", url, str(root)], log)
            run_logged(ctx, ["git", "-C", str(root), "checkout", "--quiet", pin], log)
            if sub:
                run_logged(ctx, ["git", "-C", str(root), "submodule", "update", "--init", "--recursive"], log)
        source_marker(root).write_text(f"{pin}\n")


def _copy_local(ctx: Ctx, name: str, dest: Path, src_root: Path) -> None:
    local = ctx.opts.sources[name]
    paths.remove_tree(dest, src_root, f"the earlier copy of {name}'s source")
    shutil.copytree(local, dest, ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__"))
    # pinned by content, read now: the build writes into the tree later
    source_marker(dest).write_text(f"local:{dir_digest(dest)} {local}\n")


def _fetch_sdist(ctx: Ctx, name: str, src: SdistSource, dest: Path, log: Path) -> None:
    if dest.is_file() and file_digest(dest) == src.sha256:
        return
    seeded = ctx.data / "wheelhouse" / dest.name
    if seeded.is_file():
        shutil.copyfile(seeded, dest)
        return
    if ctx.opts.offline:
        raise ApplyError(f"{name}: {dest.name} is not in the wheelhouse and apply is offline")
    from ..offline.download import Job, fetch, session

    fetch(Job(src.sdist, dest, sha256=src.sha256, label=name), session())


def dir_digest(d: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        if p.is_file() and ".git" not in p.parts and "build" not in p.relative_to(d).parts[:1]:
            h.update(str(p.relative_to(d)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()
