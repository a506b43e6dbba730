"""Commands that make and render lockfiles: lock, compile."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import ProvisionError, UsageError
from .base import HostOpt, JsonOpt, VariantOpt, app, echo, echo_json, host_for, plan_dirs


@app.command()
def lock(target: Optional[str] = typer.Argument(None, help="Target name or spec file (with --check: default all)."),
         variant: Optional[str] = typer.Option(None, "--variant", help="Lock this variant (default: the spec's default)."),
         all_variants: bool = typer.Option(False, "--all-variants", help="Lock every variant; report each."),
         platform: str = typer.Option("linux-64", "--platform", help="Target platform (linux-64; WSL2 is linux-64)."),
         check: bool = typer.Option(False, "--check", help="Only say whether committed lockfiles match their spec; exit 1 if not."),
         resolve: bool = typer.Option(False, "--resolve", help="With --check: also re-run each lockfile's own lock command (network) and fail if it would write other bytes."),
         channel_snapshot: Optional[Path] = typer.Option(None, "--channel-snapshot", help="Solve conda packages from this snapshot directory (e.g. channels/) instead of the live channels."),
         no_cuda_toolkit: bool = typer.Option(False, "--no-cuda-toolkit", help="Lock without the conda CUDA toolkit category, and record that in the lockfile."),
         wheel_facts: Optional[Path] = typer.Option(None, "--wheel-facts", help="Recorded wheels (file, URL, sha256, Requires-Dist) for indexes this machine cannot reach, e.g. channels/wheel-facts.json."),
         index_url: str = typer.Option("https://pypi.org/simple", "--index-url", help="The default pip index (a PyPI mirror)."),
         exclude_newer: Optional[str] = typer.Option(None, "--exclude-newer", help="Ignore files published after this date-time, or none (default: the lockfile's, else today)."),
         upgrade: bool = typer.Option(False, "--upgrade", help="Take the newest allowed packages (ignore the lockfile's date)."),
         lockdir: Optional[Path] = typer.Option(None, "--lockdir", help="Where lockfiles live (default: lockfiles/)."),
         as_json: bool = JsonOpt) -> None:
    """Write lockfiles/TARGET/VARIANT/conda-lock.yml: conda part by rattler, pip part by uv, all hashed."""
    from ..lock import LockOptions, check_locks, lock_variant, variants_to_lock
    from ..lock.inputs import PLATFORMS
    from ..settings import display_path, lockfiles_dir
    from ..spec import load_target, target_paths

    if platform not in PLATFORMS:
        raise UsageError(f"unsupported platform {platform!r}", hint=f"one of: {', '.join(PLATFORMS)}")
    lockdir = lockdir or lockfiles_dir()
    if check:
        if not lockdir.is_dir():  # checking nothing must not pass a CI gate
            raise UsageError(f"--lockdir {display_path(lockdir)}: {'not a directory' if lockdir.exists() else 'no such directory'}",
                             hint="pass the folder that holds TARGET/VARIANT/conda-lock.yml (default: lockfiles/)")
        names = [target] if target else list(target_paths())
        results = []
        for name in names:
            loaded = load_target(name)
            wanted = variants_to_lock(loaded, variant, all_variants) if (variant or all_variants) else None
            results += check_locks(loaded, lockdir, wanted, platform, resolve=resolve)
        bad = [r for r in results if r.status not in ("fresh", "unlocked")]
        checked = [r for r in results if r.status != "unlocked"]
        if as_json:
            echo_json([r.as_dict() for r in results])
        else:
            for r in results:
                echo(f"{r.status:<8}  {display_path(r.path)}  {r.detail}")
            if not checked:
                echo(f"no lockfiles to check{f' for {target}' if target else ''} in {display_path(lockdir)}", err=True)
        raise typer.Exit(1 if bad or not checked else 0)
    if target is None:
        raise UsageError("which target?", hint="provision lock TARGET (`provision list` shows them)")
    loaded = load_target(target)
    opts = LockOptions(lockdir=lockdir, platform=platform, channel_snapshot=channel_snapshot,
                       default_index=index_url, exclude_newer=exclude_newer, upgrade=upgrade,
                       cuda_toolkit=not no_cuda_toolkit, wheel_facts=wheel_facts)
    done, failed = [], []
    for v in variants_to_lock(loaded, variant, all_variants):
        if not as_json:
            echo(f"locking {loaded.name}/{v} for {platform} ...", err=True)
        try:
            r = lock_variant(loaded, v, opts)
        except ProvisionError as e:
            if not all_variants:
                raise
            failed.append({"variant": v, "error": e.message, "hint": e.hint})
            if not as_json:
                for line in e.lines():
                    echo(f"  {line}", err=True)
            continue
        done.append(r)
        if not as_json:
            what = "wrote" if r.written else "unchanged"
            echo(f"{what} {display_path(r.path)}: {r.conda} conda, {r.pip} pip, {r.git} git packages "
                       f"in {r.seconds:.1f} s")
    if as_json:
        echo_json({"locked": [r.as_dict() for r in done], "failed": failed})
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
    from ..plan import PlanOptions
    from ..render.compile import CompileOptions, artifacts_for, write_tree
    from ..settings import display_path, lockfiles_dir
    from ..spec import load_target

    loaded = load_target(target)
    host = host_for(host_file, loaded.spec.app.port)
    pfx, dd = plan_dirs(prefix, data, host)
    # the flags the host's apply must repeat; --lockdir names a folder of this machine, not of the host
    again = [*(["--data-dir", dd] if data is not None else []), *(["--ptx"] if ptx else [])]
    opts = CompileOptions(lockdir=lockdir or lockfiles_dir(), require_lock=not no_lock,
                          windows_ram_gb=windows_ram_gb, windows_cpus=windows_cpus, apply_args=tuple(again),
                          plan=PlanOptions(variant=variant, ptx=ptx, prefix=pfx, data_dir=dd))
    result, files = artifacts_for(loaded, host, opts)
    write_tree(files, out)
    if as_json:
        echo_json({"out": display_path(out), "variant": result.variant, "files": sorted(files),
                    "blockers": [b.model_dump() for b in result.blockers]})
    else:
        echo(f"wrote {len(files)} files for {loaded.name}/{result.variant} to {display_path(out)}")
        for b in result.blockers:
            echo(f"blocker: {b.what}\n  fix: {b.fix}", err=True)
    raise typer.Exit(2 if result.blockers else 0)
