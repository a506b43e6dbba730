"""The effects of `provision wslconfig`: find the Windows profile, read the real file,
back it up, write the merged file atomically, show a diff. The decisions are config.py's.
"""

from __future__ import annotations

import difflib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from ..fsutil import atomic_write_bytes
from ..host.probe import is_wsl, run_command
from ..readers import InputError, Text, encode, read_text
from ..spec import TargetSpec
from ..templating import render
from .config import WslConfigError, check_host_numbers, check_value, lint, merge, optional_settings, size

DEFAULT_WINDOWS_RAM_GB = 32.0
DEFAULT_WINDOWS_CPUS = 16


def windows_profile() -> Path | None:
    """%UserProfile% seen from inside WSL (cmd.exe + wslpath), or None outside WSL."""
    out = run_command(["cmd.exe", "/c", "echo %USERPROFILE%"], timeout=10)
    if not out or "%" in out:
        return None
    linux = run_command(["wslpath", "-u", out.strip()], timeout=10)
    return Path(linux.strip()) if linux else None


def windows_resources() -> tuple[float | None, int | None]:
    """Windows' RAM (GB) and logical processors, when Windows can be asked."""
    ram = run_command(["powershell.exe", "-NoProfile", "-Command",
                       "(Get-CimInstance Win32_ComputerSystem).TotalPhysicalMemory"], timeout=20)
    cpus = run_command(["cmd.exe", "/c", "echo %NUMBER_OF_PROCESSORS%"], timeout=10)
    ram_gb = round(int(ram.strip()) / 2**30) if ram and ram.strip().isdigit() else None
    n = int(cpus.strip()) if cpus and cpus.strip().isdigit() else None
    return ram_gb, n


def render_fresh(spec: TargetSpec, ram: float, cpus: int, wsl2: dict[str, str], exp: dict[str, str],
                 reasons: dict[str, str]) -> str:
    return render("wslconfig.j2", target=spec.name, windows_ram_gb=f"{ram:g}", windows_cpus=cpus,
                  wsl2=wsl2, experimental=exp, reasons=reasons)


def values_for(spec: TargetSpec, ram: float, cpus: int, memory: str | None, processors: int | None,
               swap: str | None, **opts) -> tuple[dict[str, str], dict[str, str], dict[str, str], list[str]]:  # type: ignore[no-untyped-def]
    sizing = size(spec, ram, cpus)
    wsl2 = dict(sizing.values)
    reasons = dict(sizing.reasons)
    for key, value, kind in (("memory", memory, "size"), ("processors", None if processors is None else str(processors), "int"),
                             ("swap", swap, "size")):
        if value is None:
            continue
        bad = check_value(key, value, kind)
        if bad:
            raise WslConfigError(f"--{key}: {bad}", hint="sizes look like 16GB or 512MB; processors is a whole number >= 1")
        wsl2[key] = value
        reasons[key] = "given on the command line"
    extra, exp = optional_settings(**opts)
    wsl2.update(extra)
    return wsl2, exp, reasons, sizing.warnings


def run(spec: TargetSpec, *, windows_ram_gb: float | None, windows_cpus: int | None, memory: str | None,
        processors: int | None, swap: str | None, write: bool, path: Path | None, lint_only: bool,
        dry_run: bool, echo: Callable[..., None], **opts) -> int:  # type: ignore[no-untyped-def]
    import platform

    in_wsl = is_wsl(platform.release())
    if path is None and in_wsl:
        profile = windows_profile()
        path = profile / ".wslconfig" if profile else None
    if (windows_ram_gb is None or windows_cpus is None) and in_wsl:
        ram, cpus = windows_resources()
        windows_ram_gb = ram if windows_ram_gb is None else windows_ram_gb
        windows_cpus = cpus if windows_cpus is None else windows_cpus
    ram = DEFAULT_WINDOWS_RAM_GB if windows_ram_gb is None else windows_ram_gb  # 0 is an answer: a wrong one
    cpus = DEFAULT_WINDOWS_CPUS if windows_cpus is None else windows_cpus
    needs_swap = any(e.peak_job_memory_gb for e in spec.extensions)

    check_host_numbers(ram, cpus)
    if lint_only:
        if path is None or not path.exists():
            raise WslConfigError(f"no .wslconfig to lint{f' at {path}' if path else ''}", hint="pass --path FILE")
        problems = lint(read_wslconfig(path).text, str(path), ram, needs_swap)
        for p in problems:
            echo(p)
        echo(f"{len(problems)} problem(s) in {path}" if problems else f"ok   {path}")
        return 2 if problems else 0

    wsl2, exp, reasons, warnings = values_for(spec, ram, cpus, memory, processors, swap, **opts)
    fresh = render_fresh(spec, ram, cpus, wsl2, exp, reasons)
    for w in warnings:
        echo(f"warning: {w}", err=True)
    if not write:
        echo(fresh, nl=False)
        where = str(path) if path else r"%UserProfile%\.wslconfig on Windows"
        echo(f"\n# not written: run with --write to merge it into {where}" +
             ("" if in_wsl else " (this is not WSL: copy it there by hand)"), err=True)
        return 0
    if path is None:
        raise WslConfigError("cannot find the Windows profile from here",
                             hint="pass --path /mnt/c/Users/<you>/.wslconfig")
    current = read_wslconfig(path) if (path.exists() or path.is_symlink()) else Text("", "utf-8")
    old = current.text
    problems = [p for p in lint(old, str(path)) if "outside any section" in p or "cannot read" in p]
    if problems:
        raise WslConfigError(problems[0], hint="fix that line first; nothing was written")
    new = merge(old, {"wsl2": wsl2, **({"experimental": exp} if exp else {})}, str(path)) if old.strip("\ufeff \r\n") else fresh
    diff = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), str(path), str(path) + " (new)"))
    echo(diff or f"{path} already has these values: nothing to change")
    if dry_run or not diff:
        return 0
    target = Path(os.path.realpath(path))  # a symlinked .wslconfig stays a symlink: its target is updated
    if target.exists():
        backup = _backup(target)
        echo(f"backup: {backup}")
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
    atomic_write_bytes(target, encode(new, current.encoding), mode)  # same encoding and BOM as it was read
    echo(f"written: {path}\nnow run `wsl --shutdown` from Windows (PowerShell or cmd), then reopen WSL")
    return 0


def read_wslconfig(path: Path) -> Text:
    """The user's .wslconfig as text: UTF-8, or UTF-16 as Notepad may save it."""
    try:
        return read_text(path, "a .wslconfig", max_bytes=1 << 20)
    except InputError as e:
        raise WslConfigError(e.message, hint=e.hint or "pass --path to the .wslconfig file") from None


def _backup(path: Path) -> Path:
    """<name>.<time>.bak, never overwriting an earlier backup (two writes in one second get two)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        cand = path.with_name(f"{path.name}.{stamp}{'' if n == 0 else f'.{n}'}.bak")
        try:
            fd = os.open(cand, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(path.read_bytes())
        shutil.copystat(path, cand)
        return cand
    raise WslConfigError(f"cannot find a free backup name next to {path}", hint="remove old .bak files")
