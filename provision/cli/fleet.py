"""Commands for many machines: `provision fleet plan` and `provision fleet ansible`."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import List, Optional

import typer

from .. import ids
from ..errors import UsageError
from .base import JsonOpt, VariantOpt, app, echo, echo_json

fleet_app = typer.Typer(no_args_is_help=True, help="Plan builds over many machines; generate the Ansible that runs them.")
app.add_typer(fleet_app, name="fleet")

HostsArg = typer.Argument(..., help="Host files saved by `provision doctor --save` on each machine; NAME=FILE names one "
                                    "(default: the file's name without .json).")


def _hosts(items: list[str]):  # type: ignore[no-untyped-def]
    """[(name, file, facts)], every name checked and unique."""
    from ..host import load_host

    out, seen = [], set()
    for item in items:
        name, sep, file = item.partition("=")
        if not sep:
            file, name = item, Path(item).name.removesuffix(".json")
        try:
            ids.check_host_name(name)
        except ValueError as e:
            raise UsageError(f"host {item!r}: {e}", hint="name it on the command line: NAME=FILE") from None
        if name in seen:
            raise UsageError(f"two hosts are named {name!r}", hint="name them apart: NAME=FILE")
        seen.add(name)
        out.append((name, file, load_host(Path(file))))
    return out


def _fleet(target: str, hosts: list[str], variant: Optional[str]):  # type: ignore[no-untyped-def]
    from ..fleet import plan_fleet
    from ..plan import PlanOptions
    from ..spec import load_target

    loaded = load_target(target)
    hs = _hosts(hosts)
    return loaded, hs, plan_fleet(loaded, hs, PlanOptions(variant=variant))


@fleet_app.command("plan")
def plan_(target: str = typer.Argument(..., help="Target name or spec file."),
          hosts: List[str] = HostsArg,
          variant: Optional[str] = VariantOpt,
          as_json: bool = JsonOpt) -> None:
    """Group the hosts by what changes a built binary; name one builder per group. Exit 1 if a host cannot run TARGET, 2 if none can."""
    from ..templating import render

    _, _, fleet = _fleet(target, hosts, variant)
    if as_json:
        echo_json(fleet.model_dump(mode="json"))
    else:
        echo(render("fleet-plan.txt.j2", fleet=fleet.model_dump(mode="json")), nl=False)
    raise typer.Exit(2 if not fleet.groups else 1 if fleet.unfit else 0)


@fleet_app.command("ansible")
def ansible_(target: str = typer.Argument(..., help="Target name or spec file."),
             hosts: List[str] = HostsArg,
             out: Path = typer.Option(..., "--out", help="Directory for inventory.yml, playbook.yml, tasks.yml, hosts/."),
             variant: Optional[str] = VariantOpt,
             cache_url: Optional[str] = typer.Option(None, "--cache-url", help="The build index every host reads (its simple/ URL)."),
             publish_to: Optional[str] = typer.Option(None, "--publish-to", help="Where builders publish: a directory they see (served at --cache-url), or an index's upload URL."),
             bundle: Optional[str] = typer.Option(None, "--bundle", help="A bundle directory as the hosts see it: seeded before apply (with --hf-endpoint/--url-map: where each host mirrors into)."),
             hf_endpoint: Optional[str] = typer.Option(None, "--hf-endpoint", help="A mirror of the Hub: each host mirrors the weights from it into its bundle."),
             url_map: Optional[List[str]] = typer.Option(None, "--url-map", help="PREFIX=REPLACEMENT: each host fetches URLs starting with PREFIX from a plain HTTP mirror (repeatable)."),
             provision_cmd: str = typer.Option("provision", "--provision-cmd", help="How the hosts run provision, e.g. '/opt/provision/bin/python -m provision'."),
             apply_arg: Optional[List[str]] = typer.Option(None, "--apply-arg", help="One more argument for every apply, e.g. --apply-arg=--venv (repeatable)."),
             prefix: Optional[str] = typer.Option(None, "--prefix", help="The env prefix on every host."),
             data: Optional[str] = typer.Option(None, "--data-dir", help="The data dir on every host."),
             lockdir: Optional[str] = typer.Option(None, "--lockdir", help="Where the hosts find the lockfiles."),
             no_probe: bool = typer.Option(False, "--no-probe", help="Apply with the saved host files instead of probing each host."),
             rehearse: Optional[str] = typer.Option(None, "--rehearse", help="Run every host on this machine (local connection), each in DIR/NAME/."),
             ) -> None:
    """Write an Ansible inventory and playbook: doctor, apply (builders first, publishing to the build index; the rest installing from it), verify."""
    from ..fleet import AnsibleOptions, ansible_files, write_files

    loaded, hs, fleet = _fleet(target, hosts, variant)
    if not fleet.groups:
        raise UsageError(f"no host can run {loaded.name}: " + "; ".join(f"{u.name}: {u.reasons[0]}" for u in fleet.unfit),
                         hint=f"provision fleet plan {target} HOSTS... says why for each")
    as_given = os.path.abspath(target) if Path(target).is_file() else target
    absolute = {k: (os.path.abspath(v) if v and not v.startswith(("http://", "https://")) else v)
                for k, v in (("publish_to", publish_to), ("rehearse", rehearse))}
    exts = sorted({e.name for v in loaded.spec.variants for e in loaded.spec.extensions_for(v)})
    opts = AnsibleOptions(target=as_given, cache_url=cache_url, publish_to=absolute["publish_to"], bundle=bundle,
                          hf_endpoint=hf_endpoint, url_map=tuple(url_map or ()), provision_cmd=tuple(shlex.split(provision_cmd)),
                          apply_args=tuple(apply_arg or ()), prefix=prefix, data_dir=data, lockdir=lockdir,
                          probe=not no_probe, rehearse=absolute["rehearse"], extensions=tuple(exts))
    files = ansible_files(loaded, fleet, {n: f for n, _, f in hs}, opts)
    backups = write_files(files, out)
    for b in backups:
        echo(f"kept your earlier {b.name.rsplit('.bak', 1)[0]} as {b}")
    n_inst = sum(len(g.installers) for g in fleet.groups)
    echo(f"wrote {len(files)} files to {out}: {len(fleet.groups)} builder(s), {n_inst} installer(s)"
         + (f", {len(fleet.unfit)} host(s) left out (provision_unfit)" if fleet.unfit else ""))
    echo(f"run: ansible-playbook -i {out / 'inventory.yml'} {out / 'playbook.yml'}")
    if cache_url is None:
        echo("no --cache-url: every host builds for itself", err=True)
    raise typer.Exit(1 if fleet.unfit else 0)
