"""Every error provision raises on purpose, in one place.

Each carries a one-line message and, where we know it, a `hint` saying what to do
(uv's `hint:` lines). The CLI is the only place that turns them into exit codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class ProvisionError(Exception):
    """Base class: a failure we anticipated and can explain."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def lines(self) -> list[str]:
        out = [f"error: {self.message}"]
        if self.hint:
            out.append(f"hint: {self.hint}")
        return out

    def as_dict(self) -> dict[str, str | None]:
        return {"error": self.message, "hint": self.hint}


@dataclass(frozen=True)
class SpecProblem:
    """One thing wrong in a spec, located as precisely as we can."""

    file: str
    line: int | None
    path: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


@dataclass
class SpecError(ProvisionError):
    """A spec (or a fragment it includes) is not valid; lists every problem found."""

    problems: list[SpecProblem] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.problems)
        super().__init__(f"{n} problem{'s' if n != 1 else ''} in spec")

    def lines(self) -> list[str]:
        return [f"error: {p}" for p in self.problems]


class UnknownTargetError(ProvisionError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"no target named {name!r}",
            hint=f"known targets: {', '.join(known) or '(none)'}; `provision list` shows them",
        )


class HostFileError(ProvisionError):
    """A saved host-facts file is missing or malformed."""


class PlanRefused(ProvisionError):
    """No variant of the target can run on this host; the message says why."""

    def __init__(self, message: str, reasons: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.reasons = reasons

    def lines(self) -> list[str]:
        out = [f"error: {self.message}"]
        out += [f"  - {r}" for r in self.reasons]
        if self.hint:
            out.append(f"hint: {self.hint}")
        return out


class UsageError(ProvisionError):
    """Bad command-line input that typer cannot catch by itself."""


class LockError(ProvisionError):
    """A lock could not be made: unsatisfiable, or an index or channel out of reach."""


class Unreachable(LockError):
    """An index or channel the lock needs cannot be reached from this machine."""

    exit_code = 3

    def __init__(self, message: str, hint: str | None = None, index: str | None = None) -> None:
        super().__init__(message, hint)
        self.index = index  # the spec's name of the index, when it is one of the spec's
