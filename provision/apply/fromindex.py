"""Builds from the build index (`apply --cache-url URL`): the wheel whose version carries this
build's key digest, fetched through the download core against the sha256 the index page gives,
its embedded key compared with ours; nothing matching means apply builds, a wheel that does not
match its hash or its key is refused and never installed."""

from __future__ import annotations

from pathlib import Path

from .. import paths
from ..archives import extract_zip
from ..plan.binary import digest_of_label
from .context import ApplyError, Ctx


def _say(ctx: Ctx, log: Path, text: str, echo: bool = False) -> None:
    with open(log, "a") as f:
        f.write(text + "\n")
    if echo:
        ctx.echo(text)


def fetch_from_index(ctx: Ctx, name: str, key: dict[str, str], digest: str, log: Path) -> Path | None:
    """The verified wheel of this build from the index, or None (nothing matches: build it)."""
    from packaging.utils import parse_wheel_filename

    from ..offline.buildindex import BuildIndexError, canonical, project_links
    from ..offline.download import DownloadError, Job, Policy, fetch, session
    from ..offline.wheels import read_build_key

    url = ctx.opts.cache_url
    assert url is not None
    sess = session()
    try:
        links = project_links(url, name, sess)
    except BuildIndexError as e:
        _say(ctx, log, f"warning: {e.message}; building {name} here", echo=True)
        return None
    matches = []
    for link in links:
        try:
            project, version, _, _ = parse_wheel_filename(link.filename)
        except ValueError:
            continue
        if canonical(str(project)) == canonical(name) and digest_of_label(str(version)) == digest:
            matches.append(link)
    if not matches:
        _say(ctx, log, f"the build index has no {name} build for key {digest} ({len(links)} other build(s)): building")
        return None
    link = matches[0]
    if link.sha256 is None:
        raise ApplyError(f"the build index lists {link.filename} without a sha256: refused, nothing was installed",
                         hint="serve the index provision publish wrote (its pages carry #sha256=), or pypiserver "
                              "with --hash-algo sha256")
    dest = paths.owned_dir(ctx.data / "cache" / "index") / link.sha256 / link.filename  # named by what it must hash to
    try:
        fetch(Job(link.url, dest, sha256=link.sha256, label=link.filename), sess, Policy(attempts=2, backoff=0.2))
    except DownloadError as e:
        raise ApplyError(f"{link.filename} from the build index was refused, nothing was installed: {e.message}",
                         hint="the wheel in the index is not the one its page names (tampered, or republished with "
                              "other bytes): publish it again from its builder, or apply without --cache-url to "
                              "build here") from None
    embedded = read_build_key(dest)
    if not embedded or embedded.get("key") != key:
        raise ApplyError(f"{link.filename} from the build index carries another build key than its name says: "
                         "refused, nothing was installed",
                         hint="publish it again from its builder (provision publish), or apply without --cache-url")
    _say(ctx, log, f"from the build index: {link.filename} (sha256 {link.sha256} checked, build key {digest} matches)")
    return dest


def unpack_inplace(ctx: Ctx, wheel: Path, name: str, dest: Path) -> None:
    """The in-place tree a published wheel carries, put where apply builds in place."""
    from packaging.utils import parse_wheel_filename

    from ..offline.wheels import dist_name, inplace_tree_prefix

    _, version, _, _ = parse_wheel_filename(wheel.name)
    tree = inplace_tree_prefix(name, f"{dist_name(name)}-{version}").rstrip("/")
    scratch = dest.with_name(f".{dest.name}.wheel")
    paths.remove_tree(scratch, ctx.meta, "a half-unpacked wheel")
    extract_zip(wheel, scratch)  # every member checked before anything is written
    inner = scratch.joinpath(*tree.split("/"))
    if not inner.is_dir():
        paths.remove_tree(scratch, ctx.meta, "an unpacked wheel")
        raise ApplyError(f"{wheel.name} from the build index holds no in-place tree of {name}",
                         hint="publish it again from its builder (provision publish)")
    inner.rename(dest)
    paths.remove_tree(scratch, ctx.meta, "an unpacked wheel")
