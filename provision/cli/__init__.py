"""The `provision` command line: wiring only.

Each command parses its arguments, calls the pipeline stages and prints. The one place
that turns a ProvisionError into a message, a hint and an exit code is `main()`.
"""

from __future__ import annotations

import sys

import typer

from ..errors import ProvisionError
from .app import app

# Each module registers its commands on `app`; this order is the order `--help` lists them.
from . import specs, hosts, locks, offline, envs  # noqa: E402, F401  # isort: skip


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
