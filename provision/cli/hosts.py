"""Commands about a host: doctor, plan, wslconfig."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .base import (ArchListOpt, HostOpt, JsonOpt, LockdirOpt, VariantOpt, app, arch_list, echo, echo_json, host_for,
                   plan_options)


@app.command()
def doctor(target: Optional[str] = typer.Argument(None, help="Also check this target's needs."),
           host_file: Optional[Path] = HostOpt,
           save: Optional[Path] = typer.Option(None, "--save", help="Write the host facts to this JSON file."),
           strict: bool = typer.Option(False, "--strict", help="Exit 1 on warnings."),
           lockdir: Optional[Path] = LockdirOpt,
           as_json: bool = JsonOpt) -> None:
    """Check this machine: GPU, driver, nvcc, compiler, memory, proxies, port. Exit 0 / 1 (--strict) / 2."""
    from ..spec import load_target
    from ..verify.doctor import diagnose, exit_code

    loaded = load_target(target) if target else None
    host = host_for(host_file, loaded.spec.app.port if loaded else None)
    if save is not None:
        from ..fsutil import atomic_write_text

        atomic_write_text(save, host.to_json())
    checks = diagnose(host, loaded, plan_options(loaded, host, None, None, None, lockdir)) if loaded else diagnose(host)
    code = exit_code(checks, strict)
    if as_json:
        echo_json({"host": host.model_dump(mode="json"), "checks": [c.as_dict() for c in checks], "exit_code": code})
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            echo(f"{c.status:<4}  {c.name:<{width}}  {c.detail}")
            if c.fix:
                echo(f"{'':<4}  {'':<{width}}  fix: {c.fix}")
        if save is not None:
            echo(f"host facts written to {save}")
    raise typer.Exit(code)


@app.command()
def plan(target: str = typer.Argument(..., help="Target name or spec file."),
         host_file: Optional[Path] = HostOpt,
         variant: Optional[str] = VariantOpt,
         ptx: bool = typer.Option(False, "--ptx", help="Add +PTX to the highest arch (forward compatibility)."),
         archs: Optional[str] = ArchListOpt,
         prefix: Optional[str] = typer.Option(None, "--prefix", help="Environment prefix (default: DATA/envs/TARGET)."),
         data: Optional[str] = typer.Option(None, "--data-dir", help="Where envs, sources and weights go (default: the host file's)."),
         lockdir: Optional[Path] = LockdirOpt,
         as_json: bool = JsonOpt) -> None:
    """Decide everything apply will do on a host: variant, arch list, nvcc, MAX_JOBS, steps, blockers."""
    from ..errors import PlanRefused
    from ..plan import make_plan
    from ..spec import load_target
    from ..templating import render

    explicit = arch_list(archs)
    loaded = load_target(target)
    host = host_for(host_file, loaded.spec.app.port)
    opts = plan_options(loaded, host, variant, prefix, data, lockdir, ptx, explicit)
    try:
        result = make_plan(loaded, host, opts)
    except PlanRefused as e:
        if not as_json:
            raise
        echo_json({"target": loaded.name, "refused": True, "error": e.message, "reasons": e.reasons, "hint": e.hint,
                   "blockers": [{"what": e.message, "fix": e.hint or ""}]})
        raise typer.Exit(2) from None
    if as_json:
        out = echo_json(result.model_dump(mode="json"))
    else:
        out = echo(render("plan.txt.j2", plan=result.model_dump(mode="json")), nl=False)
    code = 2 if result.blockers else 0
    if host_file is not None:  # pure from here: the next identical command line may replay it (memo.py)
        from ..settings import templates_dir
        from . import memo

        from ..lock.lockfile import lockfile_path
        from ..settings import lockfiles_dir

        templates = [] if as_json else sorted(p for p in templates_dir().glob("*.j2") if p.is_file())
        locks = [lockfile_path(lockdir or lockfiles_dir(), loaded.name, v) for v in loaded.spec.variants]
        memo.record([*loaded.sources, host_file, *templates, *locks], out, code)
    raise typer.Exit(code)


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
    from ..spec import load_target
    from ..wsl import file as wslfile

    spec = load_target(target).spec
    code = wslfile.run(spec, windows_ram_gb=windows_ram_gb, windows_cpus=windows_cpus, memory=memory,
                       processors=processors, swap=swap, mirrored=mirrored, dns_tunneling=dns_tunneling,
                       auto_proxy=auto_proxy, localhost_forwarding=localhost_forwarding, swap_file=swap_file,
                       auto_memory_reclaim=auto_memory_reclaim, sparse_vhd=sparse_vhd, write=write, path=path,
                       lint_only=lint_only, dry_run=dry_run, echo=echo)
    raise typer.Exit(code)
