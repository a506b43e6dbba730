"""The launch as data: what `provision run` will start, where, with which variables, and why.

`LaunchPlan` is decided by decide.py from the spec, the plan, the options and the `Observed`
facts observe.py gathered; process.py only carries it out. `model_dump(mode="json")` is
what `--json` prints and what the dry-run template reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ProvisionError


class LaunchError(ProvisionError):
    """The app could not be launched, or stopped before it answered; exit 2 (README)."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None, tail: list[str] | None = None,
                 log: str | None = None) -> None:
        super().__init__(message, hint)
        self.tail = tail or []
        self.log = log

    def lines(self) -> list[str]:
        out = [f"error: {self.message}"]
        if self.tail:
            out.append(f"  the app's last {len(self.tail)} line(s)" + (f" (all of them in {self.log})" if self.log else "")
                       + ":")
            out += [f"  | {line}" for line in self.tail]
        if self.hint:
            out.append(f"hint: {self.hint}")
        return out


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnvChange(_Model):
    """One variable the launch sets (`value`) or removes (`value` None), what it was, and why."""

    name: str
    value: str | None
    was: str | None = None  # in the environment provision was started with
    why: str


class Probe(_Model):
    """The readiness probe: GET `url` directly (never through a proxy) until any HTTP status answers."""

    url: str
    timeout_s: float
    interval_s: float = 0.25


class LaunchPlan(_Model):
    target: str
    variant: str
    mode: str  # app (the web UI: port, probe) | cli (the headless entry: neither)
    prefix: str
    python: str
    cwd: str
    argv: list[str]
    env: list[EnvChange]  # every variable set or removed, in the order they were decided
    host: str | None = None  # the address the app serves on
    port: int | None = None  # the port the app gets
    port_reason: str | None = None
    url: str | None = None  # where a browser opens it
    probe: Probe | None = None
    log_file: str
    offline: bool | None = None  # HF_HUB_OFFLINE forced (True), left to the app (False); None: no Hub weights
    weights_missing: list[str] = Field(default_factory=list)  # required Hub repos not in the cache
    notes: list[str] = Field(default_factory=list)  # what was decided and why, in words
    warnings: list[str] = Field(default_factory=list)

    def environment(self, environ: dict[str, str]) -> dict[str, str]:
        """The process environment: `environ` with every change applied."""
        out = dict(environ)
        for c in self.env:
            if c.value is None:
                out.pop(c.name, None)
            else:
                out[c.name] = c.value
        return out


@dataclass(frozen=True)
class LaunchOptions:
    cli_args: tuple[str, ...] | None = None  # --cli -- ARGS: the headless entry with these arguments
    port: int | None = None  # --port: this port or an error, never another
    share: bool = False  # --share: let Gradio make a public link (never otherwise)
    ready_timeout_s: float | None = None  # default: the spec's app.ready_timeout_s
    host: str | None = None  # --host-address: serve on this address instead of the spec's app.host (0.0.0.0 in a container)


@dataclass(frozen=True)
class PortState:
    """One port on the app's address: free, or taken (by whom, when /proc tells)."""

    port: int
    free: bool
    holder: str | None = None  # "pid 1234 (python3)"


@dataclass(frozen=True)
class Observed:
    """What observe.py found on this machine: the only facts decide.py reads besides its inputs."""

    environ: dict[str, str]  # the environment provision was started with
    env_made: bool  # PREFIX/share/provision/ is there (a marker or state.json): apply made this env
    prefix_exists: bool
    python_error: str | None  # why PREFIX/bin/python does not run; None when it does
    python_version: str | None
    upstream_exists: bool
    hf_missing: dict[str, str] = field(default_factory=dict)  # required Hub repo -> why it is not in the cache
    hf_checked: tuple[str, ...] = ()  # the required Hub repos looked for
    hub_cache: str = ""  # where they were looked for
    ports: tuple[PortState, ...] = ()  # from the wanted port up, to the first free one
    host_error: str | None = None  # the app's host does not resolve / cannot be bound
    hosts_file: str = "/etc/hosts"
    hosts_has_localhost: bool | None = True  # None: the file could not be read
