"""`provision run`: start the app an applied env holds (or its headless entry) and stop all of it."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import UsageError
from .base import HostOpt, JsonOpt, LockdirOpt, VariantOpt, app, echo, echo_json, host_for, plan_options


@app.command("run")
def run_(target: str = typer.Argument(..., help="Target name or spec file."),
         args: Optional[List[str]] = typer.Argument(None, help="With --cli, after `--`: the headless entry's arguments."),
         prefix: Optional[str] = typer.Option(None, "--prefix", help="The env to run (default: DATA/envs/TARGET)."),
         data: Optional[str] = typer.Option(None, "--data-dir", help="Where envs, sources and weights are."),
         host_file: Optional[Path] = HostOpt,
         variant: Optional[str] = VariantOpt,
         lockdir: Optional[Path] = LockdirOpt,
         port: Optional[int] = typer.Option(None, "--port", min=1, max=65535,
                                            help="This port or an error (default: the spec's, else the next free one)."),
         cli: bool = typer.Option(False, "--cli", help="Run the spec's headless entry (app.cli) with the arguments after `--`."),
         share: bool = typer.Option(False, "--share", help="Let Gradio make a public share link (never without this)."),
         ready_timeout: Optional[float] = typer.Option(None, "--ready-timeout", min=0.1, max=86400,
                                                       help="Seconds to wait for the app to answer (default: the spec's)."),
         host_address: Optional[str] = typer.Option(
             None, "--host-address", help="Serve on this address instead of the spec's app.host (127.0.0.1): 0.0.0.0 "
                                          "in a container, whose published port reaches it only so."),
         dry_run: bool = typer.Option(False, "--dry-run", help="Print the whole launch; start nothing."),
         as_json: bool = JsonOpt) -> None:
    """Start TARGET's app from its env: the env's Python in the upstream tree, a free port, probed until it answers."""
    from ..launch import LaunchOptions, make_launch, observe, run
    from ..plan import make_plan
    from ..settings import hosts_file
    from ..spec import load_target
    from ..templating import render

    if args and not cli:
        raise UsageError(f"unexpected argument(s) {' '.join(args)!r}: arguments after the target are for --cli",
                         hint="provision run TARGET --cli -- ARGS... runs the headless entry with them")
    if cli and (port is not None or share or ready_timeout is not None):
        raise UsageError("--port, --share and --ready-timeout are for the web app, not --cli",
                         hint="leave them out with --cli (the headless entry has no port and no probe)")
    if host_address is not None:
        _check_address(host_address)
    if cli and host_address is not None:
        raise UsageError("--host-address is for the web app, not --cli", hint="leave it out with --cli")
    loaded = load_target(target)
    host = host_for(host_file, loaded.spec.app.port)
    plan_ = make_plan(loaded, host, plan_options(loaded, host, variant, prefix, data, lockdir))
    opts = LaunchOptions(cli_args=tuple(args or ()) if cli else None, port=port, share=share,
                         ready_timeout_s=ready_timeout, host=host_address)
    environ = dict(os.environ)
    launch = make_launch(loaded.spec, plan_, opts, observe(loaded.spec, plan_, opts, environ, hosts_file()))
    shown = {"launch": launch.model_dump(mode="json"), "command": shlex.join(launch.argv)}
    if as_json:
        echo_json(shown["launch"])
    else:
        echo(render("launch.txt.j2", dry_run=dry_run, **shown), nl=False)
    if dry_run:
        raise typer.Exit(0)

    def say(line: str) -> None:  # with --json, stdout holds the JSON alone
        echo(line, err=as_json)

    raise typer.Exit(run(launch, environ, say, say))


def _check_address(value: str) -> None:
    """An IP address (0.0.0.0, ::, 127.0.0.1) or a host name; nothing else reaches Gradio."""
    import ipaddress

    from .. import ids

    try:
        ipaddress.ip_address(value)
        return
    except ValueError:
        pass
    try:
        ids.check_host_name(value)
    except ValueError as e:
        raise UsageError(f"--host-address {value!r}: {e}",
                         hint="an address of this machine: 0.0.0.0 (every interface: in a container), 127.0.0.1, "
                              "or a host name") from None
