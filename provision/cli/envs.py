"""Commands that change or check an environment: apply, verify."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import UsageError
from .base import HostOpt, JsonOpt, VariantOpt, app, echo, echo_json, host_for, plan_dirs


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
    from ..lock import lockfile
    from ..plan import PlanOptions, make_plan
    from ..render.checklist import compile_checklist
    from ..settings import lockfiles_dir
    from ..spec import load_target
    from ..templating import render as render_t
    from ..verify.checks import exit_code, target_env, verify

    loaded = load_target(target)
    pfx, dd = plan_dirs(prefix, data)
    host = host_for(host_file, loaded.spec.app.port)
    plan_ = make_plan(loaded, host, PlanOptions(variant=variant, prefix=pfx, data_dir=dd))
    if preflight:
        from ..verify.doctor import diagnose
        from ..verify.doctor import exit_code as doctor_code

        checks = diagnose(host, loaded)
        rows = [c.as_dict() for c in checks]
        code = doctor_code(checks, strict)
        if bundle is not None:
            from ..offline.bundle import Bundle
            from ..offline.seed import verify_blobs

            b = Bundle.open(bundle)
            bad = verify_blobs(b)  # corrupt or absent blobs
            has = loaded.name in b.targets
            lacks = b.missing().get(loaded.name, [])  # what the last mirror could not fetch
            ok = has and not bad and not lacks
            detail = f"{bundle} holds {loaded.name}" if has else f"{bundle} does not hold {loaded.name}"
            if bad:
                detail += f"; {len(bad)} corrupt or missing blob(s): " + "; ".join(bad)
            if lacks:
                detail += f"; INCOMPLETE, never fetched: {', '.join(lacks)}"
            rows.append({"name": "bundle", "status": "ok" if ok else "fail", "detail": detail,
                         "fix": None if ok else f"provision mirror {loaded.name} --to {bundle} (repairs and completes "
                                                "it in place)"})
            code = code or (0 if ok else 2)
        if as_json:
            echo_json({"preflight": rows, "exit_code": code})
        else:
            for r in rows:
                echo(f"{r['status']:<4}  {r['name']:<22}  {r['detail']}" + (f"\n      fix: {r['fix']}" if r.get("fix") else ""))
        raise typer.Exit(code)
    if checklist_file is not None:
        from ..readers import load_json

        checklist = load_json(checklist_file, "a checklist (checklist.json from provision compile)")
        if not isinstance(checklist, dict) or not isinstance(checklist.get("checks"), list) or not all(
                isinstance(c, dict) and isinstance(c.get("id"), str) and isinstance(c.get("kind"), str)
                and isinstance(c.get("title"), str) for c in checklist["checks"]):
            raise UsageError(f"{checklist_file}: not a checklist written by `provision compile`",
                             hint="pass the checklist.json of a compile output, or leave --checklist out")
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
        from ..fsutil import atomic_write_text

        atomic_write_text(report, render_t("verify-report.md.j2", target=loaded.name, variant=plan_.variant, python=py,
                                           gpu=gpu, code=code, counts=counts, outcomes=[o.as_dict() for o in outcomes]))
    if as_json:
        echo_json({"target": loaded.name, "variant": plan_.variant, "python": py, "gpu": gpu, "exit_code": code,
                    "counts": counts, "checks": [o.as_dict() for o in outcomes]})
    else:
        width = min(48, max(len(o.title) for o in outcomes))
        for o in outcomes:
            echo(f"{o.status:<7} {o.title[:width]:<{width}}  {o.detail}")
            if o.status in ("fail", "warn"):
                if o.why:
                    echo(f"{'':<7} {'':<{width}}  why: {o.why}")
                if o.fix:
                    echo(f"{'':<7} {'':<{width}}  fix: {o.fix}")
        echo(", ".join(f"{v} {k}" for k, v in counts.items()) + ("" if gpu else "  (no GPU: GPU checks skipped, not passed)"))
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
           wait: bool = typer.Option(False, "--wait", help="If another apply is working on this prefix, wait for it instead of stopping."),
           lockdir: Optional[Path] = typer.Option(None, "--lockdir", help="Where lockfiles live (default: lockfiles/).")) -> None:
    """Build TARGET's environment from its lockfile; compile its CUDA extensions safely; resumable."""
    from ..apply import ApplyOptions, apply
    from ..plan import PlanOptions, make_plan
    from ..settings import lockfiles_dir
    from ..spec import load_target

    loaded = load_target(target)
    pfx, dd = plan_dirs(prefix, data)
    host = host_for(host_file, loaded.spec.app.port)
    plan_ = make_plan(loaded, host, PlanOptions(variant=variant, prefix=pfx, data_dir=dd))
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
                        cache=not no_cache, progress=sys.stderr.isatty(), wait=wait)
    raise typer.Exit(apply(loaded, host, plan_, opts, echo=echo))
