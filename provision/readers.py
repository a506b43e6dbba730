"""Reading files a user or a USB stick hands us, defensively.

- a missing file, a directory where a file is expected, an unreadable or oversized file,
  binary junk: each a clear error naming the file;
- text decoded by its byte-order mark: UTF-8 (with or without BOM), UTF-16 LE/BE (what
  PowerShell's `>` and Notepad write); anything else must be UTF-8, and a Latin-1 file says so;
- JSON without NaN/Infinity, without duplicate keys, with bounded nesting and number size.

Errors are `InputError` (exit 2) with the file, the line where known, and the fix.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ProvisionError

MiB = 1 << 20
MAX_DEPTH = 64
MAX_NUMBER_DIGITS = 100


class InputError(ProvisionError):
    """A file we were given cannot be read as what it should be."""


@dataclass(frozen=True)
class Text:
    text: str
    encoding: str  # utf-8, utf-8-sig, utf-16-le, utf-16-be: how to write it back the same way


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def read_bytes(path: Path, what: str, max_bytes: int) -> bytes:
    path = Path(path)
    try:
        if path.is_dir():
            raise InputError(f"{path}: is a directory, expected {what}", hint="give the path of the file itself")
        size = path.stat().st_size
        if size <= max_bytes:
            with path.open("rb") as f:  # read at most one byte past the cap: /dev/zero or a pipe has no st_size
                data = f.read(max_bytes + 1)
            if len(data) <= max_bytes:
                return data
        said = f"{size} bytes" if size > max_bytes else "what it gives (a device or a pipe, no size)"
        raise InputError(f"{path}: {said} is too large for {what} (at most {max_bytes // MiB or 1} MiB)",
                         hint="is this the right file?")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file ({what})") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied ({what})", hint="check the file's owner and mode") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected {what}") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read {what}: {e.strerror or e}") from None


def decode(data: bytes, path: Path | str, what: str) -> Text:
    """Text by its BOM; without one it must be UTF-8 and not binary."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                text = data[len(bom):].decode(enc.removesuffix("-sig"))
            except UnicodeDecodeError as e:
                raise InputError(f"{path}: {what} starts with a {enc} byte-order mark but is not {enc} ({e.reason})",
                                 hint="save it again as UTF-8") from None
            return Text(text, enc)
    if b"\x00" in data:
        if len(data) > 1 and (data[1::2].count(0) > len(data) // 4 or data[0::2].count(0) > len(data) // 4):
            enc = "utf-16-le" if data[1::2].count(0) > data[0::2].count(0) else "utf-16-be"
            try:
                return Text(data.decode(enc), enc)
            except UnicodeDecodeError:
                pass
        raise InputError(f"{path}: {what} is binary data, not text", hint="is this the right file?")
    try:
        return Text(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: {what} is not UTF-8 (byte 0x{data[e.start]:02x}; Latin-1 or another "
                         "legacy encoding?)", hint="save it as UTF-8") from None


def read_text(path: Path, what: str, max_bytes: int = 4 * MiB) -> Text:
    return decode(read_bytes(path, what, max_bytes), path, what)


def encode(text: str, encoding: str) -> bytes:
    """Write back the way it was read: the same encoding, and its BOM if it had one."""
    boms = {"utf-8-sig": codecs.BOM_UTF8, "utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE,
            "utf-32-le": codecs.BOM_UTF32_LE, "utf-32-be": codecs.BOM_UTF32_BE}
    return boms.get(encoding, b"") + text.encode(encoding.removesuffix("-sig"))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise ValueError(f"a {len(text)}-digit number")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_DIGITS:
        raise ValueError(f"a {len(text)}-character number")
    v = float(text)
    if v in (float("inf"), float("-inf")):
        raise ValueError(f"{text} overflows to infinity")
    return v


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _depth(obj: Any, limit: int) -> int:
    stack, deepest = [(obj, 1)], 0
    while stack:
        o, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(o, dict):
            stack += [(v, d + 1) for v in o.values()]
        elif isinstance(o, list):
            stack += [(v, d + 1) for v in o]
    return deepest


def parse_json(text: str, path: Path | str, what: str) -> Any:
    """Strict JSON: NaN/Infinity, duplicate keys, huge numbers and deep nesting are errors."""
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_int=_int, parse_float=_float,
                          object_pairs_hook=_pairs)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: {what} is not valid JSON ({e.msg}, column {e.colno})") from None
    except RecursionError:
        raise InputError(f"{path}: {what} is nested too deeply (more than {MAX_DEPTH} levels)") from None
    except ValueError as e:
        raise InputError(f"{path}: {what} is not valid JSON: {e}") from None
    if _depth(data, MAX_DEPTH) > MAX_DEPTH:
        raise InputError(f"{path}: {what} is nested more than {MAX_DEPTH} levels deep")
    return data


def load_json(path: Path, what: str, max_bytes: int = 16 * MiB) -> Any:
    return parse_json(read_text(path, what, max_bytes).text, path, what)
