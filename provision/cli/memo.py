"""`provision plan --host F`, replayed: a pure command's output, kept with everything it read.

Planning from a host file is a pure function of its inputs (the plan stage does no I/O): the
command line, the working directory, the environment variables provision reads, the spec and
every file it includes, the host file, the template, and provision's own code. So when such a
run finishes, its output and exit code are written to `cache_dir()/plans-v1/`, named by a
digest of the command line, the directory, those variables and provision's code fingerprint,
beside the path and sha256 of every file it read. The next identical command line reads each
of those files again and, only when every byte is the same, prints the recorded output: no
typer, no pydantic, no YAML, no template engine. Anything else (a changed or missing file, an
entry that cannot be read or is not of the shape below) runs the command as usual, which
records it anew. Runs without `--host` probe the machine and are never replayed; nor are runs
that failed, or printed anything besides the plan. To forget everything: delete the directory.

This module is imported before typer: it uses the standard library and the bottom layer only.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

FORMAT = 1
MAX_ENTRY = 4 << 20
MAX_INPUT = 16 << 20
_ENV = ("HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME")  # and every PROVISION_*: what settings.py reads

_pending: str | None = None  # the key of the run main() is making, if it may be recorded


def _key(argv: list[str]) -> str | None:
    if not argv or argv[0] != "plan" or "--help" in argv:
        return None
    from ..secrets import is_secret_name
    from ..settings import code_fingerprint

    env = {k: v for k, v in os.environ.items() if k.startswith("PROVISION_") or k in _ENV}
    secrets = sorted(v for k, v in os.environ.items() if is_secret_name(k))  # they change what is masked
    material = {"format": FORMAT, "code": code_fingerprint(), "python": sys.version, "argv": argv,
                "cwd": os.getcwd(), "env": sorted(env.items()),
                "secrets": hashlib.sha256("\0".join(secrets).encode()).hexdigest()}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _entry_path(key: str) -> Path:
    from ..settings import cache_dir

    return cache_dir() / f"plans-v{FORMAT}" / f"{key[:40]}.json"


ABSENT = "absent"  # a file the run looked for and did not find (a variant's lockfile): its
# appearing later changes the plan as much as an edit does


def _digest(path: str) -> str | None:
    from ..readers import InputError, read_bytes

    if not os.path.lexists(path):
        return ABSENT
    if not os.path.isfile(path):  # a pipe or a device: read once by the command, never again here
        return None
    try:
        return hashlib.sha256(read_bytes(Path(path), "an input", MAX_INPUT)).hexdigest()
    except InputError:
        return None


def replay(argv: list[str]) -> tuple[str, int] | None:
    """(output, exit code) of an earlier identical run whose inputs are all unchanged; else None,
    and the run main() makes next may be recorded under this command line."""
    global _pending
    _pending = None
    try:
        key = _key(argv)
    except ValueError:  # an unusable $PROVISION_CACHE or $HOME: the command itself says so
        return None
    if key is None:
        return None
    _pending = key
    from ..readers import InputError, load_json

    try:
        e = load_json(_entry_path(key), "a recorded plan", MAX_ENTRY)
    except (InputError, ValueError):
        return None
    if not isinstance(e, dict) or set(e) != {"format", "key", "inputs", "output", "code"}:
        return None
    if e["format"] != FORMAT or e["key"] != key or not isinstance(e["output"], str) or e["code"] not in (0, 2):
        return None
    inputs = e["inputs"]
    if not isinstance(inputs, list) or not inputs or not all(
            isinstance(i, list) and len(i) == 2 and all(isinstance(x, str) for x in i) for i in inputs):
        return None
    if any(_digest(p) != sha for p, sha in inputs):
        return None
    return e["output"], e["code"]


def record(inputs: list[Path], output: str, code: int) -> None:
    """Called by the command once it has printed `output` (already masked) and will exit with
    `code`: remember it, if main() began this run and every input can be read."""
    global _pending
    key, _pending = _pending, None
    if key is None:
        return
    digests = [[str(p.resolve()), _digest(str(p))] for p in inputs]
    if any(d is None for _, d in digests):
        return
    from ..fsutil import atomic_write_text

    try:
        atomic_write_text(_entry_path(key), json.dumps({"format": FORMAT, "key": key, "inputs": digests,
                                                        "output": output, "code": code}))
    except (OSError, ValueError):
        pass  # a cache that cannot be written is no error


def forget() -> None:
    """The run printed something else too (a warning): never record it."""
    global _pending
    _pending = None
