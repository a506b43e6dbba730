"""Commands for offline machines: mirror (online side) and seed (offline side)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import UsageError
from .base import JsonOpt, VariantOpt, app, echo, echo_json, echo_problem, host_for, human, plan_options


@app.command()
def mirror(target: str = typer.Argument(..., help="Target name or spec file."),
           to: Path = typer.Option(..., "--to", help="Bundle directory (created, or completed if partial)."),
           variant: Optional[str] = VariantOpt,
           host_file: Optional[Path] = typer.Option(None, "--host", help="Pick the variant this host would get."),
           hf_endpoint: Optional[str] = typer.Option(None, "--hf-endpoint", help="A mirror of the Hub (default: $HF_ENDPOINT or huggingface.co)."),
           github_base: str = typer.Option("https://github.com", "--github-base", help="Where GitHub archives come from."),
           url_map: Optional[List[str]] = typer.Option(None, "--url-map", help="PREFIX=REPLACEMENT: fetch URLs starting with PREFIX from a mirror (repeatable)."),
           no_packages: bool = typer.Option(False, "--no-packages", help="Leave out the lockfile's wheels and conda packages."),
           builds_from: Optional[Path] = typer.Option(None, "--builds-from", help="Also carry the extension builds `provision apply` cached in this data dir."),
           workers: int = typer.Option(4, "--workers", min=1, max=32, help="Files downloaded at once."),
           stall_timeout: float = typer.Option(10.0, "--stall-timeout", min=1.0, max=600.0, help="Seconds without a byte before a download is dropped and resumed."),
           dry_run: bool = typer.Option(False, "--dry-run", help="List every artifact, its size and the total; download nothing."),
           quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
           lockdir: Optional[Path] = typer.Option(None, "--lockdir", help="Where lockfiles live (default: lockfiles/)."),
           as_json: bool = JsonOpt) -> None:
    """Download everything TARGET needs (weights, DINOv2 source, sources, packages) into an offline bundle."""
    from ..lock import lockfile
    from ..offline import mirror as m
    from ..offline.bundle import Bundle
    from ..offline.download import hf_token, session
    from ..offline.hfhub import endpoint
    from ..settings import display_path, lockfiles_dir
    from ..spec import load_target

    loaded = load_target(target)
    spec = loaded.spec
    if variant is None and host_file is not None:
        from ..plan import make_plan

        host = host_for(host_file)
        variant = make_plan(loaded, host, plan_options(loaded, host, None, None, None, lockdir)).variant
    v = variant or spec.default_variant()
    if v not in spec.variants:
        raise UsageError(f"unknown variant {v!r} for {spec.name}", hint=f"variants: {', '.join(spec.variants)}")
    maps = {}
    for item in url_map or []:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            raise UsageError(f"--url-map {item!r}: expected PREFIX=REPLACEMENT")
        maps[old] = new
    ep = m.Endpoints(hf=endpoint(hf_endpoint), github=github_base.rstrip("/"), url_map=maps)
    lock_path = lockfile.lockfile_path(lockdir or lockfiles_dir(), spec.name, v)
    lock = lockfile.read(lock_path) if (lock_path.is_file() and not no_packages) else None
    sess, token = session(), hf_token()
    entries, problems = m.plan_entries(spec, v, lock, ep, sess, token, listing=dry_run)
    bundle = Bundle.open(to, create=True)
    if dry_run:
        have = [e for e in entries if e.key in bundle.entries and bundle.complete(bundle.entries[e.key])]
        total = sum(e.size or 0 for e in entries)
        unknown = sum(e.size is None for e in entries)
        if as_json:
            echo_json({"target": spec.name, "variant": v, "artifacts": [e.as_dict() for e in entries],
                        "total_bytes": total, "unknown_sizes": unknown, "already_in_bundle": len(have),
                        "problems": [p.as_dict() for p in problems]})
        else:
            for e in entries:
                echo(f"{e.kind:<20} {human(e.size):>9}  {e.name}")
            echo(f"{len(entries)} artifacts, {human(total)}" + (f" + {unknown} of unknown size" if unknown else "")
                       + f"; {len(have)} already in {display_path(to)}")
            for p in problems:
                echo_problem("problem" if p.fatal else "warning", p)
        raise typer.Exit(1 if any(p.fatal for p in problems) else 0)
    bundle.targets[spec.name] = {"variant": v, "spec_digest": loaded.digest, "env": spec.env_values()}
    bundle.save()
    bar = file_bar = None
    if not quiet and not as_json and sys.stderr.isatty():
        import itertools
        import threading

        from tqdm import tqdm

        bar = tqdm(total=sum(e.size or 0 for e in entries), unit="B", unit_scale=True, unit_divisor=1000,
                   desc=f"mirror {spec.name}", file=sys.stderr, position=0)
        slots, lock_ = itertools.cycle(range(1, workers + 1)), threading.Lock()

        def file_bar(name: str, size: int | None):  # type: ignore[no-untyped-def]
            with lock_:
                pos = next(slots)
            return tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1000, desc=name[-40:], leave=False,
                        file=sys.stderr, position=pos)

    def done(e, skipped: bool) -> None:  # type: ignore[no-untyped-def]
        if bar is not None:
            if skipped:
                bar.update(e.size or 0)
            bar.set_postfix_str(e.name[-40:])

    def said(name: str, text: str) -> None:  # with bars, the file's own bar says it (its postfix)
        if bar is None and text and not quiet:
            echo(f"{name}: {text}", err=True)

    from ..offline.download import Policy

    report = m.run(bundle, entries, sess, token, ep, workers=workers, policy=Policy(stall_timeout=stall_timeout),
                   on_bytes=(bar.update if bar is not None else (lambda n: None)), on_done=done, file_bar=file_bar,
                   on_status=said)
    if bar is not None:
        bar.close()
    if builds_from is not None:
        builds = m.add_builds(bundle, builds_from, spec.name)
        if not as_json:
            echo(f"{len(builds)} cached extension build file(s) from {builds_from} added")
    failed = [p for p in problems if p.fatal] + report.failed
    warnings = [p for p in problems if not p.fatal]
    missing = m.record_outcome(bundle, spec.name, problems, report)
    if as_json:
        echo_json({"bundle": display_path(to), "target": spec.name, "variant": v, **report.as_dict(),
                   "complete": not missing, "missing": missing,
                   "failed": [p.as_dict() for p in failed], "warnings": [p.as_dict() for p in warnings]})
    else:
        if not report.downloaded and not missing:
            echo(f"{display_path(to)}: complete, nothing to download ({len(report.skipped)} artifacts)")
        else:
            echo(f"{display_path(to)}: {len(report.downloaded)} downloaded ({human(report.bytes_fetched)}), "
                 f"{len(report.skipped)} already there, {len(failed)} failed"
                 + ("" if missing else "; complete"))
        if report.repaired:
            echo(f"repaired: {', '.join(report.repaired)} (truncated or changed in the bundle; fetched again)")
        for p in failed:
            echo_problem("failed", p)
        for p in warnings:
            echo_problem("warning", p)
        if missing:
            echo(f"the bundle is INCOMPLETE for {spec.name}: {len(missing)} artifact(s) missing; "
                 "re-run the same command to fetch them (finished files are kept)", err=True)
    raise typer.Exit(1 if failed else 0)


@app.command()
def seed(bundle_dir: Path = typer.Argument(..., help="A bundle made by `provision mirror`."),
         hf_home: Optional[Path] = typer.Option(None, "--hf-home", help="Default: $HF_HOME or ~/.cache/huggingface."),
         torch_home: Optional[Path] = typer.Option(None, "--torch-home", help="Default: $TORCH_HOME or ~/.cache/torch."),
         data: Optional[Path] = typer.Option(None, "--data-dir", help="Wheelhouse, channel, sources and {data} weights (default: provision's data dir)."),
         local_dir: Optional[Path] = typer.Option(None, "--local-dir", help="Also copy each Hugging Face repo to DIR/<org>/<name>."),
         prefix: Optional[Path] = typer.Option(None, "--prefix", help="An env made by provision: write the exports into its activation scripts."),
         dry_run: bool = typer.Option(False, "--dry-run", help="Verify and say what would be written; write nothing."),
         force: bool = typer.Option(False, "--force", help="Replace files whose content differs (the old one is kept as .bak)."),
         as_json: bool = JsonOpt) -> None:
    """Verify a bundle and place every artifact where huggingface_hub, torch.hub, rembg and apply look."""
    import os

    from ..offline import seed as s
    from ..offline.bundle import Bundle, BundleError
    from ..settings import data_dir

    b = Bundle.open(bundle_dir)
    bad = s.verify_blobs(b)
    if bad:
        raise BundleError(f"{bundle_dir}: {len(bad)} problem(s), nothing was seeded:\n  " + "\n  ".join(bad),
                          hint="re-run `provision mirror` into the same directory to repair it")
    missing = b.missing()
    if prefix is not None:  # only its activate.d/deactivate.d get a file, provision-seed.sh (a differing one is backed up)
        from ..paths import refuse_prefix

        refuse_prefix(prefix, "--prefix")
        if not prefix.is_dir():
            raise BundleError(f"--prefix {prefix} is not an environment directory",
                              hint="pass the env's prefix (the directory with bin/ and etc/conda/), or leave it out")
    home = Path(os.path.expanduser("~"))
    hf = hf_home or Path(os.environ.get("HF_HOME") or home / ".cache" / "huggingface")
    th = torch_home or Path(os.environ.get("TORCH_HOME") or home / ".cache" / "torch")
    rep = s.plan_seed(b, hf, th, data or data_dir(), local_dir)
    if not dry_run:
        s.apply_seed(rep, force)
        if any(a.dst.suffix in (".conda", ".bz2") and a.status != "same" for a in rep.actions):
            s.index_channel((data or data_dir()) / "channel")
        written = s.write_activation(prefix, rep.env) if prefix is not None else []
    counts: dict[str, int] = {}
    for a in rep.actions:
        counts[a.status] = counts.get(a.status, 0) + 1
    if as_json:
        echo_json({"dry_run": dry_run, "actions": [a.as_dict() for a in rep.actions], "counts": counts, "env": rep.env,
                   "complete": not missing, "missing": missing})
    else:
        verb = "would write" if dry_run else "wrote"
        echo(f"{bundle_dir}: {len(b.entries)} artifacts verified; {verb} {counts.get('new', 0) + counts.get('replaced', 0)}, "
                   f"{counts.get('same', 0)} already in place, {counts.get('conflict', 0)} kept (content differs)")
        for a in rep.conflicts:
            echo(f"kept: {a.dst} differs from the bundle's {a.what}" + ("" if force else " (--force replaces it, keeping a .bak)"), err=True)
        if not dry_run and prefix is not None:
            echo("activation now sets them: " + (", ".join(str(w) for w in written) or
                                                       f"no etc/conda/activate.d in {prefix}"))
        echo("export these (the app then never reaches for the network):")
        for k, v in rep.env.items():
            echo(f"  export {k}={shlex.quote(v)}")
        for t, names in missing.items():
            echo(f"INCOMPLETE: the bundle lacks {len(names)} artifact(s) of {t}: {', '.join(names[:8])}"
                 + (f" and {len(names) - 8} more" if len(names) > 8 else ""), err=True)
            echo(f"  on the online machine: provision mirror {t} --to BUNDLE (the same directory), then seed again",
                 err=True)
    raise typer.Exit(1 if (rep.conflicts and not force) or missing else 0)
