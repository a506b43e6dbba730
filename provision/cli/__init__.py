"""The `provision` command line: wiring only.

Each command parses its arguments, calls the pipeline stages and prints. The one place
that turns a ProvisionError into a message, a hint and an exit code is `main()`.

typer (and every command module) is imported only when a command runs: `main()` first asks
memo.py whether this exact `provision plan --host F` ran before with the same inputs, and
replays it without them.
"""

from __future__ import annotations

import sys

from ..errors import ProvisionError
from ..ids import CONTROL
from ..secrets import redact


def _load():  # type: ignore[no-untyped-def]
    from .base import app

    # Each module registers its commands on `app`; this order is the order `--help` lists them.
    from . import specs, hosts, locks, offline, envs, run, docker, fleet  # noqa: F401  # isort: skip

    globals()["app"] = app
    return app


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    """`from provision.cli import app`: the typer app, every command registered on it."""
    if name == "app":
        return _load()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _kind(e: BaseException, name: str) -> bool:
    """By class name, so click's exceptions and typer's vendored copies of them (typer >= 0.29
    raises `typer._click.exceptions.*`, not click's) are both recognised."""
    return any(c.__name__ == name for c in type(e).__mro__)


def _say(text: str) -> None:
    import typer

    typer.echo(redact(text), err=True)


def _wants_json() -> bool:
    args = sys.argv[1:]
    return "--json" in (args[:args.index("--")] if "--" in args else args)


def _fail(code: int, error: str, hint: str | None = None, **more: object) -> None:
    """Exit with `code`; a --json run also gets the error as JSON on stdout (a script reading it
    must not find nothing), the text stays on stderr."""
    base = sys.modules.get(__name__ + ".base")
    if _wants_json() and not getattr(base, "JSON_WRITTEN", False):  # one JSON document, the command's own if it wrote one
        import json

        doc = {"error": error, "hint": hint, **more, "exit_code": code}
        sys.stdout.write(redact(json.dumps(doc, indent=2, default=str)) + "\n")
        sys.stdout.flush()
    sys.exit(code)


def main() -> None:
    """Entry point: run the app, turning every anticipated failure into a message and an exit code.

    0 ok; 1 warnings (--strict), stale lockfiles, failed downloads, kept files; 2 bad input, a
    refused plan or lock, a failed check or step, a file that cannot be written; 3 an index or
    channel out of reach; 130 interrupted. A traceback is a bug."""
    for i, arg in enumerate(sys.argv[1:], 1):  # one check for every option: no value may hide a newline
        if CONTROL.search(arg):
            _say(f"error: argument {i} ({redact(arg)[:60]!r}) holds a control character (a newline, a tab, an escape)")
            _say("hint: paths, names and values given to provision are single lines")
            sys.exit(2)
    from . import memo

    replayed = memo.replay(sys.argv[1:])
    if replayed is not None:
        output, code = replayed
        sys.stdout.write(redact(output))
        sys.stdout.flush()
        sys.exit(code)
    try:
        app = _load()
        sys.modules[__name__ + ".base"].JSON_WRITTEN = False  # type: ignore[attr-defined]  # per run, in one process too
        rc = app(standalone_mode=False)  # click returns the code of typer.Exit here
    except ProvisionError as e:
        for line in e.lines():
            _say(line)
        more = {k: [vars(p) if hasattr(p, "__dict__") else p for p in getattr(e, k)]
                for k in ("problems", "reasons", "tail") if getattr(e, k, None)}
        _fail(e.exit_code, e.message, e.hint, **more)
    except KeyboardInterrupt:
        _say("interrupted")
        sys.exit(130)
    except Exception as e:  # usage errors arrive here in standalone_mode=False
        if _kind(e, "Exit"):
            sys.exit(getattr(e, "exit_code", 0))
        if _kind(e, "Abort"):
            _say("aborted")
            sys.exit(130)
        if _kind(e, "ClickException"):
            e.show()  # type: ignore[attr-defined]
            _fail(2 if _kind(e, "UsageError") else getattr(e, "exit_code", 2), e.format_message(),  # type: ignore[attr-defined]
                  "see --help")
        if isinstance(e, OSError):  # a full disk, a read-only file, a directory where a file should be
            where = f"{e.filename}: " if e.filename else ""
            hint = "free space, fix the permissions, or give another path; nothing else was changed"
            _say(f"error: {where}{e.strerror or e}")
            _say(f"hint: {hint}")
            _fail(2, f"{where}{e.strerror or e}", hint)
        raise
    finally:
        memo.forget()  # a run that did not record itself leaves nothing for the next one to misuse
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
