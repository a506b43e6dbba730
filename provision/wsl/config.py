"""WSL2's .wslconfig: size it for a target, merge it into the user's file, lint it.

Pure functions over text: `size()` decides the values, `merge()` changes only the keys
asked for and keeps every other line, comment, BOM and line ending as it was, `lint()`
reads an existing file. Finding the real file and writing it (with a backup) is the CLI's.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ..errors import ProvisionError
from ..ids import CONTROL
from ..host import HostFacts
from ..plan import build_memory_gb
from ..spec import TargetSpec

# Documented keys (learn.microsoft.com/windows/wsl/wsl-config), lower-cased -> kind.
WSL2_KEYS = {
    "kernel": "path", "kernelmodules": "path", "memory": "size", "processors": "int",
    "localhostforwarding": "bool", "kernelcommandline": "str", "safemode": "bool", "swap": "size",
    "swapfile": "path", "pagereporting": "bool", "guiapplications": "bool", "debugconsole": "bool",
    "nestedvirtualization": "bool", "vmidletimeout": "int", "dnsproxy": "bool",
    "networkingmode": "mode", "firewall": "bool", "dnstunneling": "bool", "autoproxy": "bool",
    "defaultvhdsize": "size", "maxcrashdumpcount": "int",
}
EXPERIMENTAL_KEYS = {
    "automemoryreclaim": "reclaim", "sparsevhd": "bool", "besteffortdnsparsing": "bool",
    "dnstunnelingipaddress": "str", "initialautoproxytimeout": "int", "ignoredports": "str",
    "hostaddressloopback": "bool",
    # older WSL releases read these here; still accepted
    "networkingmode": "mode", "dnstunneling": "bool", "firewall": "bool", "autoproxy": "bool",
}
SECTIONS = {"wsl2": WSL2_KEYS, "experimental": EXPERIMENTAL_KEYS}
CANONICAL = {"memory": "memory", "processors": "processors", "swap": "swap", "swapfile": "swapFile",
             "networkingmode": "networkingMode", "dnstunneling": "dnsTunneling", "autoproxy": "autoProxy",
             "localhostforwarding": "localhostForwarding", "automemoryreclaim": "autoMemoryReclaim",
             "sparsevhd": "sparseVhd"}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB)\s*$", re.I)
_SECTION = re.compile(r"^\s*\[([^\]]*)\]\s*(?:[#;].*)?$")
_KEY = re.compile(r"^(\s*)([^=#;\s][^=]*?)(\s*=\s*)(.*?)(\s*)$")
WINDOWS_RESERVE_FRACTION = 0.25  # what Windows keeps for itself
WINDOWS_RESERVE_MIN_GB = 4.0


class WslConfigError(ProvisionError):
    """A bad value or a malformed .wslconfig: names the line and the fix."""


@dataclass(frozen=True)
class Sizing:
    values: dict[str, str]  # canonical key -> value, [wsl2] and [experimental] together
    reasons: dict[str, str]
    warnings: list[str] = field(default_factory=list)


def parse_size_gb(text: str) -> float:
    m = _SIZE.fullmatch(text)
    if not m:
        raise ValueError(f"{text!r} is not a size like 16GB or 512MB")
    n, unit = float(m.group(1)), m.group(2).upper()
    return n * {"B": 1 / 2**30, "KB": 1 / 2**20, "MB": 1 / 1024, "GB": 1, "TB": 1024}[unit]


def check_host_numbers(ram: float, cpus: int) -> None:
    """A Windows host as Task Manager could show it: RAM 1-65536 GB, 1-4096 logical processors."""
    if not (math.isfinite(ram) and 1 <= ram <= 65536) or not (1 <= cpus <= 4096):
        raise WslConfigError(f"Windows RAM {ram:g} GB and {cpus} processors are not a real machine",
                             hint="pass --windows-ram-gb (1-65536) and --windows-cpus (1-4096) as Task Manager shows them")


def size(spec: TargetSpec, windows_ram_gb: float, windows_cpus: int, host: HostFacts | None = None) -> Sizing:
    """Values for [wsl2] from the target's needs and the Windows host, each with its reason."""
    check_host_numbers(windows_ram_gb, windows_cpus)
    leave = max(WINDOWS_RESERVE_MIN_GB, WINDOWS_RESERVE_FRACTION * windows_ram_gb)
    memory = max(1, math.floor(windows_ram_gb - leave))
    swap = max(1, math.ceil(spec.resources.swap_gb))
    biggest = max((e.peak_job_memory_gb for e in spec.extensions), default=0.0)
    budget = build_memory_gb(memory, swap)
    jobs = min(windows_cpus, int(budget // biggest)) if biggest else windows_cpus
    values = {"memory": f"{memory}GB", "processors": str(windows_cpus), "swap": f"{swap}GB"}
    reasons = {
        "memory": f"{windows_ram_gb:g} GB on Windows minus {leave:g} GB it keeps for itself "
                  f"({spec.name} needs {spec.resources.ram_gb:g} GB)",
        "processors": f"all {windows_cpus}: compile jobs are limited by memory (MAX_JOBS={max(jobs, 1)} here), "
                      "not by processors",
        "swap": f"{spec.name} asks for {spec.resources.swap_gb:g} GB: keeps a compile peak from being OOM-killed (exit 137)",
    }
    warnings = []
    if memory + swap < spec.resources.ram_gb:
        warnings.append(f"{memory} GB + {swap} GB swap is below the {spec.resources.ram_gb:g} GB {spec.name} needs: "
                        "the app may not load its models")
    if biggest and jobs < 1:
        warnings.append(f"not even one compile job ({biggest} GB) fits in {memory} GB: raise swap")
    return Sizing(values, reasons, warnings)


def optional_settings(mirrored: bool = False, dns_tunneling: bool = False, auto_proxy: bool = False,
                      localhost_forwarding: bool | None = None, swap_file: str | None = None,
                      auto_memory_reclaim: str | None = None, sparse_vhd: bool = False) -> tuple[dict[str, str], dict[str, str]]:
    """(wsl2 values, experimental values) for the opt-in flags."""
    wsl2: dict[str, str] = {}
    exp: dict[str, str] = {}
    if mirrored:
        wsl2["networkingMode"] = "mirrored"
    if dns_tunneling:
        wsl2["dnsTunneling"] = "true"
    if auto_proxy:
        wsl2["autoProxy"] = "true"
    if localhost_forwarding is not None:
        wsl2["localhostForwarding"] = "true" if localhost_forwarding else "false"
    if swap_file:
        bad = check_value("swapFile", swap_file, "path")
        if bad:
            raise WslConfigError(f"--swap-file: {bad}", hint="a Windows path on one line, e.g. C:/temp/swap.vhdx")
        wsl2["swapFile"] = swap_file.replace("\\", "\\\\")
    if auto_memory_reclaim:
        if auto_memory_reclaim not in ("disabled", "gradual", "dropcache"):
            raise WslConfigError(f"autoMemoryReclaim={auto_memory_reclaim!r} is not one of disabled, gradual, dropcache")
        exp["autoMemoryReclaim"] = auto_memory_reclaim
    if sparse_vhd:
        exp["sparseVhd"] = "true"
    return wsl2, exp


def check_value(key: str, value: str, kind: str) -> str | None:
    """Why a value is bad for its key kind, or None."""
    if CONTROL.search(value):
        return f"{key}={value!r} holds a control character (a newline would start a new line in the file)"
    v = value.strip().strip('"')
    if kind == "size":
        if v == "0":
            return None if key.lower() == "swap" else f"{key}=0 must be above zero"
        try:
            if parse_size_gb(v) <= 0:
                return f"{key}={value} must be above zero"
        except ValueError:
            return f"{key}={value} is not a size like 16GB"
    elif kind == "int":
        if not re.fullmatch(r"\d+", v) or int(v) < 1:
            return f"{key}={value} is not a positive whole number"
    elif kind == "bool":
        if v.lower() not in ("true", "false"):
            return f"{key}={value} is not true or false"
    elif kind == "mode":
        if v.lower() not in ("nat", "mirrored", "none", "bridged", "virtioproxy"):
            return f"{key}={value} is not NAT, mirrored or none"
    elif kind == "reclaim":
        if v.lower() not in ("disabled", "gradual", "dropcache"):
            return f"{key}={value} is not disabled, gradual or dropcache"
    return None


# --- text model -----------------------------------------------------------------------------


@dataclass
class _Line:
    raw: str  # without the line ending
    section: str | None  # lower-cased section it belongs to
    key: str | None = None  # lower-cased key, for key lines


def _split(text: str) -> tuple[str, str, list[str], bool]:
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    body = text[len(bom):]
    nl = "\r\n" if "\r\n" in body else "\n"
    lines = body.split(nl)
    trailing = body.endswith(nl)
    if trailing:
        lines = lines[:-1]
    return bom, nl, lines, trailing


def _parse(lines: list[str], path: str) -> list[_Line]:
    out: list[_Line] = []
    section: str | None = None
    for i, raw in enumerate(lines, 1):
        s = raw.strip()
        if not s or s[0] in "#;":
            out.append(_Line(raw, section))
            continue
        m = _SECTION.match(raw)
        if m:
            section = m.group(1).strip().lower()
            out.append(_Line(raw, section))
            continue
        k = _KEY.match(raw)
        if not k:
            raise WslConfigError(f"{path}:{i}: cannot read {raw.strip()!r}: expected `key=value` or `[section]`")
        if section is None:
            raise WslConfigError(f"{path}:{i}: {k.group(2).strip()!r} is outside any section",
                                 hint="put it under [wsl2] (WSL ignores keys before the first section)")
        out.append(_Line(raw, section, k.group(2).strip().lower()))
    return out


def merge(existing: str, changes: dict[str, dict[str, str]], path: str = ".wslconfig") -> str:
    """Set `changes` ({section: {key: value}}) in `existing`, keeping everything else byte for byte."""
    if not existing.strip("\ufeff \r\n\t"):
        bom, nl, lines, trailing = ("\ufeff" if existing.startswith("\ufeff") else ""), "\n", [], True
    else:
        bom, nl, lines, trailing = _split(existing)
    parsed = _parse(lines, path)
    for section, kv in changes.items():
        for key, value in kv.items():
            lk = key.lower()
            hits = [i for i, ln in enumerate(parsed) if ln.section == section and ln.key == lk]
            if hits:
                i = hits[-1]  # WSL reads the last duplicate
                m = _KEY.match(parsed[i].raw)
                assert m is not None
                rest = m.group(4)
                comment = re.search(r"\s+[#;].*$", rest)
                parsed[i] = _Line(f"{m.group(1)}{m.group(2)}{m.group(3)}{value}{comment.group(0) if comment else ''}"
                                  f"{m.group(5)}", section, lk)
                continue
            heads = [i for i, ln in enumerate(parsed) if ln.key is None and ln.section == section
                     and _SECTION.match(ln.raw)]
            if heads:
                end = heads[-1]
                for j in range(heads[-1] + 1, len(parsed)):
                    if parsed[j].section != section or _SECTION.match(parsed[j].raw):
                        break
                    if parsed[j].raw.strip():
                        end = j
                parsed.insert(end + 1, _Line(f"{key}={value}", section, lk))
            else:
                if parsed and parsed[-1].raw.strip():
                    parsed.append(_Line("", parsed[-1].section))
                parsed.append(_Line(f"[{section}]", section))
                parsed.append(_Line(f"{key}={value}", section, lk))
    text = nl.join(ln.raw for ln in parsed)
    return bom + text + (nl if trailing or not lines else "")


def lint(text: str, path: str = ".wslconfig", host_ram_gb: float | None = None,
         needs_swap: bool = False) -> list[str]:
    """Problems in an existing .wslconfig, each with its line number."""
    _, _, lines, _ = _split(text)
    problems: list[str] = []
    try:
        parsed = _parse(lines, path)
    except WslConfigError as e:
        return [e.message]
    seen: dict[tuple[str, str], int] = {}
    for i, ln in enumerate(parsed, 1):
        if ln.key is None:
            m = _SECTION.match(ln.raw)
            if m and m.group(1).strip().lower() not in SECTIONS:
                problems.append(f"{path}:{i}: unknown section [{m.group(1).strip()}]")
            continue
        sec = ln.section or ""
        known = SECTIONS.get(sec)
        if known is None:
            continue
        m = _KEY.match(ln.raw)
        assert m is not None
        key, value = m.group(2).strip(), re.sub(r"\s+[#;].*$", "", m.group(4)).strip()
        if ln.key not in known:
            other = [s for s, keys in SECTIONS.items() if ln.key in keys and s != sec]
            where = f": it belongs in [{other[0]}]" if other else ""
            problems.append(f"{path}:{i}: unknown key {key!r} in [{sec}]{where}")
            continue
        if (sec, ln.key) in seen:
            problems.append(f"{path}:{i}: {key} is set again (first on line {seen[(sec, ln.key)]}); WSL uses the last")
        seen[(sec, ln.key)] = i
        bad = check_value(key, value, known[ln.key])
        if bad:
            problems.append(f"{path}:{i}: {bad}")
        elif ln.key == "memory" and host_ram_gb and parse_size_gb(value) > host_ram_gb:
            problems.append(f"{path}:{i}: memory={value} is more than the {host_ram_gb:g} GB Windows has")
        elif ln.key == "swap" and needs_swap and (value == "0" or parse_size_gb(value) == 0):
            problems.append(f"{path}:{i}: swap=0 but this target's builds need swap to survive compile peaks")
    return problems
