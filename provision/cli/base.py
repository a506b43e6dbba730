"""The typer app and what its commands share: common options, host facts, JSON and size printing."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

from .. import ids
from ..errors import UsageError
from ..secrets import redact, redact_obj


class _Commands(typer.core.TyperGroup):
    """`--help` lists each command with its first sentence, wrapped (click cuts it at the width)."""

    def format_commands(self, ctx, formatter) -> None:  # type: ignore[no-untyped-def]
        rows = [(name, cmd.get_short_help_str(limit=1000)) for name in self.list_commands(ctx)
                if (cmd := self.get_command(ctx, name)) is not None and not cmd.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


app = typer.Typer(
    cls=_Commands,
    add_completion=False,
    no_args_is_help=True,
    help="Declarative environments for GPU image-to-3D apps (TRELLIS, TRELLIS.2, TripoSR).",
    pretty_exceptions_enable=False,
    # click's plain help: rich (and markdown-it under it) would double the start-up of `--help`
    rich_markup_mode=None,
)


JsonOpt = typer.Option(False, "--json", help="Machine-readable output on stdout.")

HostOpt = typer.Option(None, "--host", help="Plan for the machine described by this file (from `provision doctor --save`).")
VariantOpt = typer.Option(None, "--variant", help="Use this variant instead of the one the host allows.")


def echo(text: object = "", err: bool = False, nl: bool = True) -> str:
    """Every line the CLI prints goes through here: secrets are masked on the way out. Returns
    what it printed."""
    out = redact(str(text))
    typer.echo(out, err=err, nl=nl)
    return out + ("\n" if nl else "")


JSON_WRITTEN = False  # main() adds no second document to a stdout that already holds one


def echo_json(data: object) -> str:
    global JSON_WRITTEN
    JSON_WRITTEN = True
    return echo(json.dumps(redact_obj(data), indent=2, sort_keys=False))


LockdirOpt = typer.Option(None, "--lockdir", help="Where lockfiles live (default: lockfiles/).")


def plan_dirs(prefix: Optional[str], data: Optional[str], host=None) -> tuple[str | None, str]:  # type: ignore[no-untyped-def]
    """--prefix and --data-dir as the absolute paths every generated script will name (a
    relative one would mean something else in each shell that sources them). The data dir
    defaults to the one the host file names: a plan for another machine uses its paths, never
    this machine's home."""
    from ..settings import data_dir

    if data is None and host is not None and host.data_dir:
        data = host.data_dir

    def absolute(v: str, flag: str) -> str:
        try:
            return ids.check_abs_path(os.path.abspath(os.path.expanduser(v)), flag)
        except ValueError as e:
            raise UsageError(f"{flag}: {e}", hint="give a directory path on one line") from None

    return (absolute(prefix, "--prefix") if prefix else None), absolute(data or str(data_dir()), "--data-dir")


ArchListOpt = typer.Option(None, "--arch-list", help="Build for these compute capabilities (8.6;8.9;9.0) "
                                                       "instead of this host's GPUs: for GPUs of other machines.")


def arch_list(text: Optional[str]) -> tuple[str, ...] | None:
    """--arch-list, strictly: `8.6;9.0`; `86`, `sm_86` or an empty list are usage errors."""
    if text is None:
        return None
    from ..plan import parse_arch_list

    try:
        return parse_arch_list(text)
    except ValueError as e:
        raise UsageError(f"--arch-list {text!r}: {e}",
                         hint="compute capabilities as TORCH_CUDA_ARCH_LIST writes them, e.g. --arch-list '8.6;8.9;9.0' "
                              "(`nvidia-smi --query-gpu=compute_cap --format=csv` prints each GPU's)") from None


def plan_options(loaded, host, variant: Optional[str], prefix: Optional[str], data: Optional[str],  # type: ignore[no-untyped-def]
                 lockdir: Optional[Path], ptx: bool = False, archs: tuple[str, ...] | None = None):
    """PlanOptions as every command builds them: the host's paths, and what the lockfiles say."""
    from ..lock.facts import current
    from ..plan import PlanOptions
    from ..settings import lockfiles_dir

    pfx, dd = plan_dirs(prefix, data, host)
    return PlanOptions(variant=variant, ptx=ptx, prefix=pfx, data_dir=dd,
                       locks=current(loaded.spec, lockdir or lockfiles_dir()), arch_list=archs)


def host_for(path: Optional[Path], target_port: int | None = None):  # type: ignore[no-untyped-def]
    if path is not None:
        from ..host import load_host

        return load_host(path)
    from ..host.probe import probe
    from ..settings import data_dir

    ports = tuple(sorted({7860, target_port} - {None}))  # type: ignore[arg-type]
    return probe(paths={"data": data_dir()}, ports=ports)


def human(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def echo_problem(label: str, p) -> None:  # type: ignore[no-untyped-def]
    echo(f"{label}: {p.message}" + (f"\n  hint: {p.hint}" if p.hint else ""), err=True)
