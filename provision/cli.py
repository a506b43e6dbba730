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

from .errors import ProvisionError, SpecError

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
