"""Commands that change or check an environment: apply, verify, publish."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import UsageError
from .base import (ArchListOpt, HostOpt, JsonOpt, VariantOpt, app, arch_list, echo, echo_json, host_for, plan_dirs,
                   plan_options)


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
    from ..plan import make_plan
    from ..render.checklist import compile_checklist
    from ..settings import lockfiles_dir
    from ..spec import load_target
    from ..templating import render as render_t
    from ..verify.checks import exit_code, target_env, verify

    loaded = load_target(target)
    host = host_for(host_file, loaded.spec.app.port)
    state = recorded_state(prefix) if prefix is not None else {}
    if data is None:
        data = recorded_data_dir(state)  # the data dir apply built this env with
    plan_ = make_plan(loaded, host, plan_options(loaded, host, variant, prefix, data, lockdir))
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
    # the env checked is the one --python lives in (PREFIX/bin/python), else the plan's
    env_prefix = plan_.prefix if not python else str(Path(python).parent.parent) if Path(python).is_absolute() else None
    if env_prefix != prefix:
        state = recorded_state(env_prefix) if env_prefix else {}
    missing = None if python or Path(py).exists() else f"no env at {plan_.prefix}: run `provision apply {loaded.name}`"
    outcomes, gpu = verify(checklist, None if missing else py, target_env(plan_.env, plan_.data_dir),
                           no_env="skipped: no env to run it in",
                           own_env=state.get("existing") is True)
    code = 2 if missing else exit_code(outcomes, strict)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    if report is not None:
        from ..fsutil import atomic_write_text

        atomic_write_text(report, render_t("verify-report.md.j2", target=loaded.name, variant=plan_.variant, python=py,
                                           gpu=gpu, code=code, counts=counts, outcomes=[o.as_dict() for o in outcomes]))
    if as_json:
        echo_json({"target": loaded.name, "variant": plan_.variant, "python": py, "gpu": gpu, "exit_code": code,
                    "counts": counts, "checks": [o.as_dict() for o in outcomes], "error": missing})
    else:
        shown = [o for o in outcomes if not (missing and o.status == "skipped")]  # said once, below
        width = min(48, max([len(o.title) for o in shown] or [1]))
        for o in shown:
            echo(f"{o.status:<7} {o.title[:width]:<{width}}  {o.detail}")
            if o.status in ("fail", "warn"):
                if o.why:
                    echo(f"{'':<7} {'':<{width}}  why: {o.why}")
                if o.fix:
                    echo(f"{'':<7} {'':<{width}}  fix: {o.fix}")
        echo(", ".join(f"{v} {k}" for k, v in counts.items()) + ("" if gpu else "  (no GPU: GPU checks skipped, not passed)"))
        if missing:
            echo(f"error: {missing} (the {len(outcomes) - len(shown)} checks that run inside the env were skipped)")
    raise typer.Exit(code)


def recorded_state(prefix: str) -> dict:
    """What apply recorded about the env at prefix (state.json), or {} when it says nothing."""
    from ..readers import load_json

    state = Path(prefix).expanduser() / "share" / "provision" / "state.json"
    if not state.is_file():
        return {}
    try:
        d = load_json(state, "the env's apply state")
    except Exception:  # an unreadable state is no reason to refuse verify: the defaults apply
        return {}
    return d if isinstance(d, dict) else {}


def recorded_data_dir(state: dict) -> str | None:
    """The data dir an env provision made was applied with, if its state says."""
    d = state.get("data_dir")
    return d if isinstance(d, str) and d.startswith("/") and "\n" not in d else None


@app.command("apply")
def apply_(target: str = typer.Argument(..., help="Target name or spec file."),
           host_file: Optional[Path] = HostOpt,
           variant: Optional[str] = VariantOpt,
           archs: Optional[str] = ArchListOpt,
           ptx: bool = typer.Option(False, "--ptx", help="Add +PTX to the highest arch (GPUs newer than any planned JIT it)."),
           prefix: Optional[str] = typer.Option(None, "--prefix", help="Environment prefix (default: DATA/envs/TARGET)."),
           data: Optional[str] = typer.Option(None, "--data-dir", help="Where envs, sources, wheels and weights go."),
           offline: bool = typer.Option(False, "--offline", help="Use only what a seeded bundle put in the data dir."),
           bundle: Optional[Path] = typer.Option(None, "--bundle", help="Seed weights (and check sources) from this bundle."),
           venv: bool = typer.Option(False, "--venv", help="A plain venv from a host Python instead of a conda prefix."),
           existing: bool = typer.Option(False, "--existing", help="Use the env already at --prefix: build extensions, activation, verify."),
           no_cache: bool = typer.Option(False, "--no-cache", help="Rebuild extensions even when a cached build (or one in the --cache-url index) matches."),
           cache_url: Optional[str] = typer.Option(None, "--cache-url", help="A build index (its simple/ URL, as pip's --index-url): install matching builds from it, hash-checked, instead of compiling."),
           fleet_group: Optional[str] = typer.Option(None, "--fleet-group", help="The toolchain digest `provision fleet` grouped this host by: refuse to run if this host's facts now give another."),
           python: Optional[str] = typer.Option(None, "--python", help="With --venv: the host Python to use."),
           source: Optional[List[str]] = typer.Option(None, "--source", help="NAME=DIR: build NAME from this local checkout (repeatable)."),
           from_step: Optional[str] = typer.Option(None, "--from-step", help="Run this step and every later one again."),
           no_verify: bool = typer.Option(False, "--no-verify", help="Skip the final checklist."),
           dry_run: bool = typer.Option(False, "--dry-run", help="Print every step with its command and environment; change nothing."),
           wait: bool = typer.Option(False, "--wait", help="If another apply is working on this prefix, wait for it instead of stopping."),
           lockdir: Optional[Path] = typer.Option(None, "--lockdir", help="Where lockfiles live (default: lockfiles/).")) -> None:
    """Build TARGET's environment from its lockfile; compile its CUDA extensions safely; resumable."""
    from ..apply import ApplyOptions, apply
    from ..plan import make_plan
    from ..settings import lockfiles_dir
    from ..spec import load_target

    explicit = arch_list(archs)
    loaded = load_target(target)
    host = host_for(host_file, loaded.spec.app.port)
    po = plan_options(loaded, host, variant, prefix, data, lockdir, ptx, explicit)
    if existing:  # into an env that is there: nothing is installed from a lock
        from dataclasses import replace

        # ... not even an extension's prebuilt wheel: with --existing every extension is built
        po = replace(po, locks={k: replace(f, prebuilt=()) for k, f in po.locks.items()} if po.locks else None)
    plan_ = make_plan(loaded, host, po)
    if no_verify:
        plan_.steps[:] = [s for s in plan_.steps if s.id != "verify"]
    if cache_url is not None:
        from .. import ids

        try:
            ids.check_url(cache_url, "--cache-url")
        except ValueError as e:
            raise UsageError(f"--cache-url: {e}", hint="the index's simple URL, e.g. http://cache:8080/simple/") from None
    if fleet_group is not None and not re.fullmatch(r"[0-9a-f]{20}", fleet_group):
        raise UsageError(f"--fleet-group {fleet_group!r}: expected the 20 hex digits `provision fleet plan` prints")
    sources = {}
    for item in source or []:
        name, sep, d = item.partition("=")
        if not sep or not Path(d).is_dir():
            raise UsageError(f"--source {item!r}: expected NAME=DIR with an existing directory")
        sources[name] = Path(d).resolve()
    opts = ApplyOptions(lockdir=lockdir or lockfiles_dir(), offline=offline, bundle=bundle, dry_run=dry_run,
                        from_step=from_step, venv=venv, python=python, sources=sources, existing=existing,
                        cache=not no_cache, cache_url=cache_url, fleet_group=fleet_group,
                        progress=sys.stderr.isatty(), wait=wait, arch_list=explicit)
    raise typer.Exit(apply(loaded, host, plan_, opts, echo=echo))


@app.command("publish")
def publish_(dest: str = typer.Argument(..., help="A directory to write the build index into (any static HTTP server, "
                                                  "or pypiserver, serves it), or an index server's upload URL."),
             data: Optional[str] = typer.Option(None, "--data-dir", help="Whose cached builds (default: the data dir)."),
             only: Optional[List[str]] = typer.Option(None, "--only", help="Only this extension (repeatable)."),
             as_json: bool = JsonOpt) -> None:
    """Publish the extension builds apply cached as wheels in a PEP 503 build index (PEP 658 metadata beside them)."""
    from ..offline.publish import is_url, publish

    _, dd = plan_dirs(None, data)
    if not is_url(dest):
        from .. import ids

        try:
            ids.check_abs_path(os_path_abs(dest), "the index directory")
        except ValueError as e:
            raise UsageError(f"{dest!r}: {e}", hint="give a directory path on one line") from None
        dest = os_path_abs(dest)
    rep = publish(Path(dd), dest, set(only) if only else None)
    if as_json:
        echo_json({"added": rep.added, "unchanged": rep.unchanged, "kept": rep.kept, "skipped": rep.skipped})
    else:
        for f in rep.added:
            echo(f"published {f}")
        for f in rep.kept:
            echo(f"kept      {f}: the index holds other bytes under this name (the first published stays)")
        for s in rep.skipped:
            echo(f"skipped   {s}", err=True)
        echo(f"publish: {len(rep.added)} new, {len(rep.unchanged)} already there"
             + (f", {len(rep.skipped)} skipped" if rep.skipped else "")
             + ("" if is_url(dest) else f"; serve {dest} and pass --cache-url URL/simple/ to apply"))
    raise typer.Exit(1 if rep.skipped else 0)


def os_path_abs(p: str) -> str:
    import os

    return os.path.abspath(os.path.expanduser(p))
