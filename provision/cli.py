"""The `provision` command line: wiring only.

Each command parses its arguments, calls the pipeline stages and prints. The one place
that turns a ProvisionError into a message, a hint and an exit code is `main()`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .errors import ProvisionError, SpecError, UsageError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Declarative environments for GPU image-to-3D apps (TRELLIS, TRELLIS.2, TripoSR).",
    pretty_exceptions_enable=False,
)

JsonOpt = typer.Option(False, "--json", help="Machine-readable output on stdout.")


def _echo_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=False))


@app.command("list")
def list_targets(as_json: bool = JsonOpt) -> None:
    """List the shipped targets with a one-line description."""
    from .specload import load_spec, target_paths

    rows = []
    for name, path in target_paths().items():
        loaded = load_spec(path)
        rows.append({"name": name, "description": loaded.spec.description,
                     "variants": list(loaded.spec.variants), "default_variant": loaded.spec.default_variant()})
    if as_json:
        _echo_json(rows)
        return
    width = max((len(r["name"]) for r in rows), default=0)
    for r in rows:
        typer.echo(f"{r['name']:<{width}}  {r['description']}  [{', '.join(r['variants'])}]")


@app.command()
def show(target: str = typer.Argument(..., help="Target name (see `provision list`) or a spec file."),
         as_json: bool = JsonOpt) -> None:
    """Print a target's resolved spec: its includes merged, defaults filled in."""
    from .specload import load_target

    loaded = load_target(target)
    data = {"target": loaded.name, "files": list(loaded.files), "digest": loaded.digest,
            "spec": loaded.spec.model_dump(mode="json")}
    if as_json:
        _echo_json(data)
    else:
        import yaml

        typer.echo(yaml.safe_dump(data, sort_keys=False, width=100), nl=False)


@app.command()
def validate(files: Optional[List[Path]] = typer.Argument(None, help="Spec files (default: every target in envs/)."),
             as_json: bool = JsonOpt) -> None:
    """Validate specs; list every problem with file:line and the fix. Exit 2 on any problem."""
    from .settings import display_path
    from .specload import load_spec, target_paths

    paths = list(files) if files else list(target_paths().values())
    results, failed = [], False
    for p in paths:
        try:
            loaded = load_spec(p)
            results.append({"file": display_path(p), "ok": True, "digest": loaded.digest, "problems": []})
        except SpecError as e:
            failed = True
            results.append({"file": display_path(p), "ok": False,
                            "problems": [vars(pr) for pr in e.problems]})
            if not as_json:
                for line in e.lines():
                    typer.echo(line, err=True)
    if as_json:
        _echo_json(results)
    else:
        for r in results:
            if r["ok"]:
                typer.echo(f"ok   {r['file']}")
        if failed:
            n = sum(len(r["problems"]) for r in results)
            typer.echo(f"{n} problem(s) in {sum(not r['ok'] for r in results)} of {len(results)} spec(s)", err=True)
    if failed:
        raise typer.Exit(2)


HostOpt = typer.Option(None, "--host", help="Plan for the machine described by this file (from `provision doctor --save`).")
VariantOpt = typer.Option(None, "--variant", help="Use this variant instead of the one the host allows.")


def _host(path: Optional[Path], target_port: int | None = None):  # type: ignore[no-untyped-def]
    if path is not None:
        from .host import load_host

        return load_host(path)
    from .probe import probe
    from .settings import data_dir

    ports = tuple(sorted({7860, target_port} - {None}))  # type: ignore[arg-type]
    return probe(paths={"data": data_dir()}, ports=ports)


@app.command()
def doctor(target: Optional[str] = typer.Argument(None, help="Also check this target's needs."),
           host_file: Optional[Path] = HostOpt,
           save: Optional[Path] = typer.Option(None, "--save", help="Write the host facts to this JSON file."),
           strict: bool = typer.Option(False, "--strict", help="Exit 1 on warnings."),
           as_json: bool = JsonOpt) -> None:
    """Check this machine: GPU, driver, nvcc, compiler, memory, proxies, port. Exit 0 / 1 (--strict) / 2."""
    from .doctor import diagnose, exit_code
    from .specload import load_target

    loaded = load_target(target) if target else None
    host = _host(host_file, loaded.spec.app.port if loaded else None)
    if save is not None:
        from .fsutil import atomic_write_text

        atomic_write_text(save, host.to_json())
    checks = diagnose(host, loaded)
    code = exit_code(checks, strict)
    if as_json:
        _echo_json({"host": host.model_dump(mode="json"), "checks": [c.as_dict() for c in checks], "exit_code": code})
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            typer.echo(f"{c.status:<4}  {c.name:<{width}}  {c.detail}")
            if c.fix:
                typer.echo(f"{'':<4}  {'':<{width}}  fix: {c.fix}")
        if save is not None:
            typer.echo(f"host facts written to {save}")
    raise typer.Exit(code)


@app.command()
def plan(target: str = typer.Argument(..., help="Target name or spec file."),
         host_file: Optional[Path] = HostOpt,
         variant: Optional[str] = VariantOpt,
         ptx: bool = typer.Option(False, "--ptx", help="Add +PTX to the highest arch (forward compatibility)."),
         prefix: Optional[str] = typer.Option(None, "--prefix", help="Environment prefix (default: DATA/envs/TARGET)."),
         data: Optional[str] = typer.Option(None, "--data-dir", help="Where envs, sources and weights go."),
         as_json: bool = JsonOpt) -> None:
    """Decide everything apply will do on a host: variant, arch list, nvcc, MAX_JOBS, steps, blockers."""
    from .plan import PlanOptions, make_plan
    from .render import render
    from .settings import data_dir
    from .specload import load_target

    loaded = load_target(target)
    host = _host(host_file, loaded.spec.app.port)
    opts = PlanOptions(variant=variant, ptx=ptx, prefix=prefix, data_dir=data or str(data_dir()))
    result = make_plan(loaded, host, opts)
    if as_json:
        _echo_json(result.model_dump(mode="json"))
    else:
        typer.echo(render("plan.txt.j2", plan=result.model_dump(mode="json")), nl=False)
    raise typer.Exit(2 if result.blockers else 0)


@app.command()
def wslconfig(target: str = typer.Argument(..., help="Target name or spec file."),
              windows_ram_gb: Optional[float] = typer.Option(None, "--windows-ram-gb", help="Windows RAM (default: read from Windows, else 32)."),
              windows_cpus: Optional[int] = typer.Option(None, "--windows-cpus", help="Logical processors (default: from Windows, else 16)."),
              memory: Optional[str] = typer.Option(None, "--memory", help="Override memory, e.g. 24GB."),
              processors: Optional[int] = typer.Option(None, "--processors", help="Override processors."),
              swap: Optional[str] = typer.Option(None, "--swap", help="Override swap, e.g. 16GB."),
              mirrored: bool = typer.Option(False, "--mirrored", help="networkingMode=mirrored (proxy trouble, localhost)."),
              dns_tunneling: bool = typer.Option(False, "--dns-tunneling", help="dnsTunneling=true."),
              auto_proxy: bool = typer.Option(False, "--auto-proxy", help="autoProxy=true: use Windows' proxy."),
              localhost_forwarding: Optional[bool] = typer.Option(None, "--localhost-forwarding/--no-localhost-forwarding"),
              swap_file: Optional[str] = typer.Option(None, "--swap-file", help="swapFile path (Windows path)."),
              auto_memory_reclaim: Optional[str] = typer.Option(None, "--auto-memory-reclaim", help="disabled|gradual|dropcache."),
              sparse_vhd: bool = typer.Option(False, "--sparse-vhd", help="[experimental] sparseVhd=true."),
              write: bool = typer.Option(False, "--write", help="Merge into the real .wslconfig (backup first)."),
              path: Optional[Path] = typer.Option(None, "--path", help="The .wslconfig to merge into / lint."),
              lint_only: bool = typer.Option(False, "--lint", help="Only lint the existing file."),
              dry_run: bool = typer.Option(False, "--dry-run", help="With --write: show the diff, change nothing.")) -> None:
    """Size a .wslconfig for TARGET; print it, or merge it into the real file with --write."""
    from . import wslfile
    from .specload import load_target

    spec = load_target(target).spec
    code = wslfile.run(spec, windows_ram_gb=windows_ram_gb, windows_cpus=windows_cpus, memory=memory,
                       processors=processors, swap=swap, mirrored=mirrored, dns_tunneling=dns_tunneling,
                       auto_proxy=auto_proxy, localhost_forwarding=localhost_forwarding, swap_file=swap_file,
                       auto_memory_reclaim=auto_memory_reclaim, sparse_vhd=sparse_vhd, write=write, path=path,
                       lint_only=lint_only, dry_run=dry_run, echo=typer.echo)
    raise typer.Exit(code)


@app.command()
def lock(target: Optional[str] = typer.Argument(None, help="Target name or spec file (with --check: default all)."),
         variant: Optional[str] = typer.Option(None, "--variant", help="Lock this variant (default: the spec's default)."),
         all_variants: bool = typer.Option(False, "--all-variants", help="Lock every variant; report each."),
         platform: str = typer.Option("linux-64", "--platform", help="Target platform (linux-64; WSL2 is linux-64)."),
         check: bool = typer.Option(False, "--check", help="Only say whether committed lockfiles match their spec; exit 1 if not."),
         channel_snapshot: Optional[Path] = typer.Option(None, "--channel-snapshot", help="Solve conda packages from this snapshot directory (e.g. channels/) instead of the live channels."),
         no_cuda_toolkit: bool = typer.Option(False, "--no-cuda-toolkit", help="Lock without the conda CUDA toolkit category, and record that in the lockfile."),
         index_url: str = typer.Option("https://pypi.org/simple", "--index-url", help="The default pip index (a PyPI mirror)."),
         exclude_newer: Optional[str] = typer.Option(None, "--exclude-newer", help="Ignore files published after this date-time, or none (default: the lockfile's, else today)."),
         upgrade: bool = typer.Option(False, "--upgrade", help="Take the newest allowed packages (ignore the lockfile's date)."),
         lockdir: Optional[Path] = typer.Option(None, "--lockdir", help="Where lockfiles live (default: lockfiles/)."),
         as_json: bool = JsonOpt) -> None:
    """Write lockfiles/TARGET/VARIANT/conda-lock.yml: conda part by rattler, pip part by uv, all hashed."""
    from .lock import LockOptions, check_locks, lock_variant, variants_to_lock
    from .lock.inputs import PLATFORMS
    from .settings import display_path, lockfiles_dir
    from .specload import load_target, target_paths

    if platform not in PLATFORMS:
        raise UsageError(f"unsupported platform {platform!r}", hint=f"one of: {', '.join(PLATFORMS)}")
    lockdir = lockdir or lockfiles_dir()
    if check:
        names = [target] if target else list(target_paths())
        results = []
        for name in names:
            loaded = load_target(name)
            wanted = variants_to_lock(loaded, variant, all_variants) if (variant or all_variants) else None
            results += check_locks(loaded, lockdir, wanted, platform)
        bad = [r for r in results if r.status != "fresh"]
        if as_json:
            _echo_json([r.as_dict() for r in results])
        else:
            for r in results:
                typer.echo(f"{r.status:<7}  {display_path(r.path)}  {r.detail}")
            if not results:
                typer.echo("no lockfiles to check")
        raise typer.Exit(1 if bad else 0)
    if target is None:
        raise UsageError("which target?", hint="provision lock TARGET (`provision list` shows them)")
    loaded = load_target(target)
    opts = LockOptions(lockdir=lockdir, platform=platform, channel_snapshot=channel_snapshot,
                       default_index=index_url, exclude_newer=exclude_newer, upgrade=upgrade,
                       cuda_toolkit=not no_cuda_toolkit)
    done, failed = [], []
    for v in variants_to_lock(loaded, variant, all_variants):
        if not as_json:
            typer.echo(f"locking {loaded.name}/{v} for {platform} ...", err=True)
        try:
            r = lock_variant(loaded, v, opts)
        except ProvisionError as e:
            if not all_variants:
                raise
            failed.append({"variant": v, "error": e.message, "hint": e.hint})
            if not as_json:
                for line in e.lines():
                    typer.echo(f"  {line}", err=True)
            continue
        done.append(r)
        if not as_json:
            what = "wrote" if r.written else "unchanged"
            typer.echo(f"{what} {display_path(r.path)}: {r.conda} conda, {r.pip} pip, {r.git} git packages "
                       f"in {r.seconds:.1f} s")
    if as_json:
        _echo_json({"locked": [r.as_dict() for r in done], "failed": failed})
    raise typer.Exit(1 if failed else 0)


@app.command("compile")
def compile_(target: str = typer.Argument(..., help="Target name or spec file."),
             out: Path = typer.Option(..., "--out", help="Directory to write (new, empty, or an earlier compile output)."),
             host_file: Optional[Path] = HostOpt,
             variant: Optional[str] = VariantOpt,
             prefix: Optional[str] = typer.Option(None, "--prefix", help="Environment prefix (default: DATA/envs/TARGET)."),
             data: Optional[str] = typer.Option(None, "--data-dir", help="Where envs, sources and weights go."),
             ptx: bool = typer.Option(False, "--ptx", help="Add +PTX to the highest arch."),
             no_lock: bool = typer.Option(False, "--no-lock", help="Compile without the lockfile when the variant has none yet."),
             windows_ram_gb: float = typer.Option(32, "--windows-ram-gb", help="Windows RAM, for the .wslconfig of a WSL host."),
             windows_cpus: int = typer.Option(16, "--windows-cpus", help="Windows logical processors, for the .wslconfig."),
             lockdir: Optional[Path] = typer.Option(None, "--lockdir", help="Where lockfiles live (default: lockfiles/)."),
             as_json: bool = JsonOpt) -> None:
    """Write every artifact of TARGET for a host: lockfile, requirements, activation, .pth shims,
    mirror script + SHA256SUMS, checklist, .wslconfig (WSL), README. Same inputs, same bytes."""
    from .compile import CompileOptions, artifacts_for, write_tree
    from .plan import PlanOptions
    from .settings import data_dir, display_path, lockfiles_dir
    from .specload import load_target

    loaded = load_target(target)
    host = _host(host_file, loaded.spec.app.port)
    opts = CompileOptions(lockdir=lockdir or lockfiles_dir(), require_lock=not no_lock,
                          windows_ram_gb=windows_ram_gb, windows_cpus=windows_cpus,
                          plan=PlanOptions(variant=variant, ptx=ptx, prefix=prefix, data_dir=data or str(data_dir())))
    result, files = artifacts_for(loaded, host, opts)
    write_tree(files, out)
    if as_json:
        _echo_json({"out": display_path(out), "variant": result.variant, "files": sorted(files),
                    "blockers": [b.model_dump() for b in result.blockers]})
    else:
        typer.echo(f"wrote {len(files)} files for {loaded.name}/{result.variant} to {display_path(out)}")
        for b in result.blockers:
            typer.echo(f"blocker: {b.what}\n  fix: {b.fix}", err=True)
    raise typer.Exit(2 if result.blockers else 0)


def _human(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def _echo_problem(label: str, p) -> None:  # type: ignore[no-untyped-def]
    typer.echo(f"{label}: {p.message}" + (f"\n  hint: {p.hint}" if p.hint else ""), err=True)


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
           dry_run: bool = typer.Option(False, "--dry-run", help="List every artifact, its size and the total; download nothing."),
           quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
           lockdir: Optional[Path] = typer.Option(None, "--lockdir", help="Where lockfiles live (default: lockfiles/)."),
           as_json: bool = JsonOpt) -> None:
    """Download everything TARGET needs (weights, DINOv2 source, sources, packages) into an offline bundle."""
    from . import mirror as m
    from .bundle import Bundle
    from .download import hf_token, session
    from .hfhub import endpoint
    from .lock import lockfile
    from .settings import display_path, lockfiles_dir
    from .specload import load_target

    loaded = load_target(target)
    spec = loaded.spec
    if variant is None and host_file is not None:
        from .plan import PlanOptions, make_plan

        variant = make_plan(loaded, _host(host_file), PlanOptions()).variant
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
            _echo_json({"target": spec.name, "variant": v, "artifacts": [e.as_dict() for e in entries],
                        "total_bytes": total, "unknown_sizes": unknown, "already_in_bundle": len(have),
                        "problems": [p.as_dict() for p in problems]})
        else:
            for e in entries:
                typer.echo(f"{e.kind:<20} {_human(e.size):>9}  {e.name}")
            typer.echo(f"{len(entries)} artifacts, {_human(total)}" + (f" + {unknown} of unknown size" if unknown else "")
                       + f"; {len(have)} already in {display_path(to)}")
            for p in problems:
                _echo_problem("problem" if p.fatal else "warning", p)
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

    report = m.run(bundle, entries, sess, token, ep, workers=workers,
                   on_bytes=(bar.update if bar is not None else (lambda n: None)), on_done=done, file_bar=file_bar)
    if bar is not None:
        bar.close()
    if builds_from is not None:
        builds = m.add_builds(bundle, builds_from, spec.name)
        if not as_json:
            typer.echo(f"{len(builds)} cached extension build file(s) from {builds_from} added")
    failed = [p for p in problems if p.fatal] + report.failed
    warnings = [p for p in problems if not p.fatal]
    if as_json:
        _echo_json({"bundle": display_path(to), "target": spec.name, "variant": v, **report.as_dict(),
                    "failed": [p.as_dict() for p in failed], "warnings": [p.as_dict() for p in warnings]})
    else:
        if not report.downloaded and not report.failed:
            typer.echo(f"{display_path(to)}: complete, nothing to download ({len(report.skipped)} artifacts)")
        else:
            typer.echo(f"{display_path(to)}: {len(report.downloaded)} downloaded ({_human(report.bytes_fetched)}), "
                       f"{len(report.skipped)} already there, {len(failed)} failed")
        for p in failed:
            _echo_problem("failed", p)
        for p in warnings:
            _echo_problem("warning", p)
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

    from . import seed as s
    from .bundle import Bundle, BundleError
    from .settings import data_dir

    b = Bundle.open(bundle_dir)
    bad = s.verify_blobs(b)
    if bad:
        raise BundleError(f"{bundle_dir}: {len(bad)} problem(s), nothing was seeded:\n  " + "\n  ".join(bad),
                          hint="re-run `provision mirror` into the same directory to repair it")
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
        _echo_json({"dry_run": dry_run, "actions": [a.as_dict() for a in rep.actions], "counts": counts, "env": rep.env})
    else:
        verb = "would write" if dry_run else "wrote"
        typer.echo(f"{bundle_dir}: {len(b.entries)} artifacts verified; {verb} {counts.get('new', 0) + counts.get('replaced', 0)}, "
                   f"{counts.get('same', 0)} already in place, {counts.get('conflict', 0)} kept (content differs)")
        for a in rep.conflicts:
            typer.echo(f"kept: {a.dst} differs from the bundle's {a.what}" + ("" if force else " (--force replaces it, keeping a .bak)"), err=True)
        if not dry_run and prefix is not None:
            typer.echo("activation now sets them: " + (", ".join(str(w) for w in written) or
                                                       f"no etc/conda/activate.d in {prefix}"))
        typer.echo("export these (the app then never reaches for the network):")
        for k, v in rep.env.items():
            typer.echo(f"  export {k}={v}")
    raise typer.Exit(1 if rep.conflicts and not force else 0)


@app.command("verify")
def verify_(target: str = typer.Argument(..., help="Target name or spec file."),
            prefix: Optional[str] = typer.Option(None, "--prefix", help="The environment to check (default: the plan's)."),
            python: Optional[str] = typer.Option(None, "--python", help="Its interpreter (default: PREFIX/bin/python)."),
            host_file: Optional[Path] = HostOpt,
            variant: Optional[str] = VariantOpt,
            data: Optional[str] = typer.Option(None, "--data-dir", help="Where envs, sources and weights go."),
            checklist_file: Optional[Path] = typer.Option(None, "--checklist", help="A checklist.json from `provision compile`."),
            lockdir: Optional[Path] = typer.Option(None, "--lockdir", help="Where lockfiles live (default: lockfiles/)."),
            preflight: bool = typer.Option(False, "--preflight", help="Before installing: this host against the spec (and --bundle)."),
            bundle: Optional[Path] = typer.Option(None, "--bundle", help="With --preflight: check this bundle holds the target."),
            strict: bool = typer.Option(False, "--strict", help="Exit 1 on warnings and skipped checks too."),
            report: Optional[Path] = typer.Option(None, "--report", help="Also write a Markdown report to this file."),
            as_json: bool = JsonOpt) -> None:
    """Run the post-install checklist: one subprocess of the env's Python plus host checks; each failure with its fix."""
    from .checklist import compile_checklist
    from .lock import lockfile
    from .plan import PlanOptions, make_plan
    from .render import render as render_t
    from .settings import data_dir, lockfiles_dir
    from .specload import load_target
    from .verify import exit_code, target_env, verify

    loaded = load_target(target)
    host = _host(host_file, loaded.spec.app.port)
    plan_ = make_plan(loaded, host, PlanOptions(variant=variant, prefix=prefix, data_dir=data or str(data_dir())))
    if preflight:
        from .doctor import diagnose, exit_code as doctor_code

        checks = diagnose(host, loaded)
        rows = [c.as_dict() for c in checks]
        code = doctor_code(checks, strict)
        if bundle is not None:
            from .bundle import Bundle
            from .seed import verify_blobs

            b = Bundle.open(bundle)
            bad = verify_blobs(b)
            has = loaded.name in b.targets
            rows.append({"name": "bundle", "status": "ok" if has and not bad else "fail",
                         "detail": (f"{bundle} holds {loaded.name}" if has else f"{bundle} does not hold {loaded.name}")
                         + (f"; {len(bad)} problem(s): {bad[0]}" if bad else ""),
                         "fix": None if has and not bad else f"provision mirror {loaded.name} --to {bundle}"})
            code = code or (0 if has and not bad else 2)
        if as_json:
            _echo_json({"preflight": rows, "exit_code": code})
        else:
            for r in rows:
                typer.echo(f"{r['status']:<4}  {r['name']:<22}  {r['detail']}" + (f"\n      fix: {r['fix']}" if r.get("fix") else ""))
        raise typer.Exit(code)
    if checklist_file is not None:
        checklist = json.loads(checklist_file.read_text())
    else:
        lp = lockfile.lockfile_path(lockdir or lockfiles_dir(), loaded.name, plan_.variant)
        pins = lockfile.pip_pins(lockfile.read(lp)) if lp.is_file() else None
        checklist = compile_checklist(loaded.spec, plan_, pins)
    py = python or f"{plan_.prefix}/bin/python"
    outcomes, gpu = verify(checklist, py, target_env(plan_.env))
    code = exit_code(outcomes, strict)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    if report is not None:
        from .fsutil import atomic_write_text

        atomic_write_text(report, render_t("verify-report.md.j2", target=loaded.name, variant=plan_.variant, python=py,
                                           gpu=gpu, code=code, counts=counts, outcomes=[o.as_dict() for o in outcomes]))
    if as_json:
        _echo_json({"target": loaded.name, "variant": plan_.variant, "python": py, "gpu": gpu, "exit_code": code,
                    "counts": counts, "checks": [o.as_dict() for o in outcomes]})
    else:
        width = min(48, max(len(o.title) for o in outcomes))
        for o in outcomes:
            typer.echo(f"{o.status:<7} {o.title[:width]:<{width}}  {o.detail}")
            if o.status in ("fail", "warn"):
                if o.why:
                    typer.echo(f"{'':<7} {'':<{width}}  why: {o.why}")
                if o.fix:
                    typer.echo(f"{'':<7} {'':<{width}}  fix: {o.fix}")
        typer.echo(", ".join(f"{v} {k}" for k, v in counts.items()) + ("" if gpu else "  (no GPU: GPU checks skipped, not passed)"))
    raise typer.Exit(code)


@app.command("apply")
def apply_(target: str = typer.Argument(..., help="Target name or spec file."),
           host_file: Optional[Path] = HostOpt,
           variant: Optional[str] = VariantOpt,
           prefix: Optional[str] = typer.Option(None, "--prefix", help="Environment prefix (default: DATA/envs/TARGET)."),
           data: Optional[str] = typer.Option(None, "--data-dir", help="Where envs, sources, wheels and weights go."),
           offline: bool = typer.Option(False, "--offline", help="Use only what a seeded bundle put in the data dir."),
           bundle: Optional[Path] = typer.Option(None, "--bundle", help="Seed weights (and check sources) from this bundle."),
           venv: bool = typer.Option(False, "--venv", help="A plain venv from a host Python instead of a conda prefix."),
           existing: bool = typer.Option(False, "--existing", help="Use the env already at --prefix: build extensions, activation, verify."),
           no_cache: bool = typer.Option(False, "--no-cache", help="Rebuild extensions even when a cached build matches."),
           python: Optional[str] = typer.Option(None, "--python", help="With --venv: the host Python to use."),
           source: Optional[List[str]] = typer.Option(None, "--source", help="NAME=DIR: build NAME from this local checkout (repeatable)."),
           from_step: Optional[str] = typer.Option(None, "--from-step", help="Run this step and every later one again."),
           no_verify: bool = typer.Option(False, "--no-verify", help="Skip the final checklist."),
           dry_run: bool = typer.Option(False, "--dry-run", help="Print every step with its command and environment; change nothing."),
           lockdir: Optional[Path] = typer.Option(None, "--lockdir", help="Where lockfiles live (default: lockfiles/).")) -> None:
    """Build TARGET's environment from its lockfile; compile its CUDA extensions safely; resumable."""
    from .apply import ApplyOptions, apply
    from .plan import PlanOptions, make_plan
    from .settings import data_dir, lockfiles_dir
    from .specload import load_target

    loaded = load_target(target)
    host = _host(host_file, loaded.spec.app.port)
    plan_ = make_plan(loaded, host, PlanOptions(variant=variant, prefix=prefix, data_dir=data or str(data_dir())))
    if no_verify:
        plan_.steps[:] = [s for s in plan_.steps if s.id != "verify"]
    sources = {}
    for item in source or []:
        name, sep, d = item.partition("=")
        if not sep or not Path(d).is_dir():
            raise UsageError(f"--source {item!r}: expected NAME=DIR with an existing directory")
        sources[name] = Path(d).resolve()
    opts = ApplyOptions(lockdir=lockdir or lockfiles_dir(), offline=offline, bundle=bundle, dry_run=dry_run,
                        from_step=from_step, venv=venv, python=python, sources=sources, existing=existing,
                        cache=not no_cache, progress=sys.stderr.isatty())
    raise typer.Exit(apply(loaded, host, plan_, opts, echo=typer.echo))


def main() -> None:
    """Entry point: run the app, turning known errors into messages and exit codes."""
    try:
        rc = app(standalone_mode=False)  # click returns the code of typer.Exit here
    except ProvisionError as e:
        for line in e.lines():
            typer.echo(line, err=True)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # click usage errors arrive here in standalone_mode=False
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(2 if isinstance(e, click.UsageError) else e.exit_code)
        raise
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
