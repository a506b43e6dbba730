"""Commands about specs: list, show, validate."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import ProvisionError, SpecError, SpecProblem
from .base import JsonOpt, app, echo, echo_json


@app.command("list")
def list_targets(as_json: bool = JsonOpt) -> None:
    """List the shipped targets with a one-line description."""
    from ..spec import load_spec, target_paths

    rows = []
    for name, path in target_paths().items():
        loaded = load_spec(path)
        rows.append({"name": name, "description": loaded.spec.description,
                     "variants": list(loaded.spec.variants), "default_variant": loaded.spec.default_variant()})
    if as_json:
        echo_json(rows)
        return
    width = max((len(r["name"]) for r in rows), default=0)
    for r in rows:
        echo(f"{r['name']:<{width}}  {r['description']}  [{', '.join(r['variants'])}]")


@app.command()
def show(target: str = typer.Argument(..., help="Target name (see `provision list`) or a spec file."),
         as_json: bool = JsonOpt) -> None:
    """Print a target's resolved spec: its includes merged, defaults filled in."""
    from ..spec import load_target

    loaded = load_target(target)
    data = {"target": loaded.name, "files": list(loaded.files), "digest": loaded.digest,
            "spec": loaded.spec.model_dump(mode="json")}
    if as_json:
        echo_json(data)
    else:
        import yaml

        echo(yaml.safe_dump(data, sort_keys=False, width=100), nl=False)


def _host_file(p: Path) -> bool:
    """A host file handed to validate by mistake: say so, not 34 spec errors."""
    if p.suffix != ".json":
        return False
    from ..host import load_host

    try:
        load_host(p)
    except ProvisionError:  # not a host file either: the spec loader says what it is
        return False
    return True


@app.command()
def validate(files: Optional[List[Path]] = typer.Argument(None, help="Spec files or target names (default: every target in envs/)."),
             as_json: bool = JsonOpt) -> None:
    """Validate specs; list every problem with file:line and the fix. Exit 2 on any problem."""
    from ..settings import display_path
    from ..spec import load_spec, target_paths

    targets = target_paths()
    # as every other command reads TARGET: an existing .yaml/.yml file is that file, else a target's name
    # is its spec (a `triposr/` checkout beside you does not hide the target triposr)
    paths = [f if (f.suffix in (".yaml", ".yml") and f.is_file()) or str(f) not in targets else targets[str(f)]
             for f in files] if files else list(targets.values())
    results, failed = [], False
    for p in paths:
        try:
            if not p.exists() and p.suffix not in (".yaml", ".yml"):
                raise SpecError([SpecProblem(str(p), None, "", "neither a spec file nor a target",
                                             f"name a target ({', '.join(targets) or 'none in envs/'}) or a spec file")])
            if _host_file(p):
                raise SpecError([SpecProblem(str(p), None, "", "this is a host file (`provision doctor --save`), not a "
                                             "spec", f"give it to --host: provision plan TARGET --host {p}")])
            loaded = load_spec(p)
            results.append({"file": display_path(p), "ok": True, "digest": loaded.digest, "problems": []})
        except SpecError as e:
            failed = True
            results.append({"file": display_path(p), "ok": False,
                            "problems": [vars(pr) for pr in e.problems]})
            if not as_json:
                for line in e.lines():
                    echo(line, err=True)
    if as_json:
        echo_json(results)
    else:
        for r in results:
            if r["ok"]:
                echo(f"ok   {r['file']}")
        if failed:
            n = sum(len(r["problems"]) for r in results)
            echo(f"{n} problem(s) in {sum(not r['ok'] for r in results)} of {len(results)} spec(s)", err=True)
    if failed:
        raise typer.Exit(2)
