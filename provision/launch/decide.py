"""spec x plan x options x observed facts -> LaunchPlan, or an error naming the fix. No I/O.

The variables are the env's activation, as `conda activate` (or activate.sh) would set them:
the plan's values replace the user's (each replacement said), NO_PROXY and no_proxy are
extended, never replaced, and PREFIX/bin goes first on PATH. On top of that, what only a
launch decides: Hugging Face offline mode from what is in the cache, the port, the address
Gradio serves on, and sharing (off unless --share).
"""

from __future__ import annotations

import shlex

from ..errors import UsageError
from ..plan import Plan, app_dir
from ..spec import TargetSpec
from .model import EnvChange, LaunchError, LaunchOptions, LaunchPlan, Observed, PortState, Probe

LOOPBACK = ("localhost", "127.0.0.1", "::1")
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
TRUE = ("1", "true", "yes", "on")


def log_file(plan: Plan, cli: bool) -> str:
    return f"{plan.prefix}/share/provision/logs/{'cli' if cli else 'run'}.log"


def hub_cache(env: dict[str, str]) -> str:
    """Where huggingface_hub looks for repos, by its own rules: HF_HUB_CACHE, else HF_HOME/hub,
    else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub."""
    if env.get("HF_HUB_CACHE"):
        return env["HF_HUB_CACHE"]
    if env.get("HF_HOME"):
        return f"{env['HF_HOME'].rstrip('/')}/hub"
    cache = env.get("XDG_CACHE_HOME") or f"{env.get('HOME', '~').rstrip('/')}/.cache"
    return f"{cache.rstrip('/')}/huggingface/hub"


def _no_proxy(environ: dict[str, str], plan_env: dict[str, str], host: str | None) -> str:
    """The user's entries first (both spellings), then the plan's, then loopback and the app's host."""
    entries: list[str] = []
    for text in (environ.get("NO_PROXY"), environ.get("no_proxy"), plan_env.get("NO_PROXY"), plan_env.get("no_proxy")):
        entries += [e.strip() for e in (text or "").split(",") if e.strip()]
    entries += list(LOOPBACK)
    if host and host not in ("0.0.0.0", "::"):
        entries.append(host)
    seen: dict[str, str] = {}
    for e in entries:
        seen.setdefault(e.lower(), e)
    return ",".join(seen.values())


class _Env:
    """The changes, in the order decided; a later decision about a variable replaces the earlier one."""

    def __init__(self, environ: dict[str, str]) -> None:
        self.environ = environ
        self.changes: dict[str, EnvChange] = {}

    def set(self, name: str, value: str | None, why: str) -> None:
        was = self.environ.get(name)
        earlier = self.changes.pop(name, None)
        if value != was or earlier is not None:  # undoing an earlier decision is said too
            self.changes[name] = EnvChange(name=name, value=value, was=was, why=why)

    def value(self, name: str) -> str | None:
        return self.changes[name].value if name in self.changes else self.environ.get(name)


def base_env(plan: Plan, environ: dict[str, str], host: str | None = None) -> _Env:
    env = _Env(environ)
    for name, value in plan.env.items():
        if name in ("NO_PROXY", "no_proxy"):
            continue
        env.set(name, value, "the env's activation")
    merged = _no_proxy(environ, plan.env, host)
    extra = [host] if host and host not in (*LOOPBACK, "0.0.0.0", "::") else []
    for name in ("NO_PROXY", "no_proxy"):
        env.set(name, merged, f"your entries kept, plus {', '.join([*LOOPBACK, *extra])}: the app's requests to "
                              "itself and the probe never go through a proxy")
    path = environ.get("PATH", "")
    bin_dir = f"{plan.prefix}/bin"
    rest = [p for p in path.split(":") if p and p != bin_dir]
    env.set("PATH", ":".join([bin_dir, *rest]), "the env's bin first, as activating it does")
    env.set("PYTHONNOUSERSITE", "1", "packages in ~/.local never shadow the env's")
    env.set("PYTHONUNBUFFERED", "1", "the app's output reaches the terminal and the log as it is written")
    return env


def _offline(spec: TargetSpec, obs: Observed, env: _Env, lp: LaunchPlan) -> None:
    if not obs.hf_checked:
        lp.notes.append("the spec needs no Hugging Face weights: HF_HUB_OFFLINE stays as the env's activation has it")
        return
    if not obs.hf_missing:
        lp.offline = True
        lp.notes.append(f"the {len(obs.hf_checked)} Hugging Face repo(s) the app needs are in {obs.hub_cache}: "
                        "offline mode, the app asks the Hub nothing")
        for var in OFFLINE_VARS:
            mine = obs.environ.get(var)
            if mine is not None and mine.lower() not in TRUE:
                env.set(var, mine, "yours, kept")
                lp.notes.append(f"your {var}={mine} is kept: the app may still ask the Hub")
            else:
                env.set(var, "1", "the weights the app needs are in the cache: no request to the Hub")
        return
    lp.offline = False
    by_repo = {r.repo: r for r in spec.weights.huggingface}
    for repo, why in obs.hf_missing.items():
        r = by_repo.get(repo)
        gated = f" (gated: needs HF_TOKEN and its licence accepted at {r.licence_url or 'its Hub page'})" \
            if r is not None and r.gated else ""
        lp.weights_missing.append(f"{repo}@{r.revision[:12] if r else '?'}: {why}{gated}")
    for var in OFFLINE_VARS:
        mine = obs.environ.get(var)
        if mine is not None:
            env.set(var, mine, "yours, kept")
        else:
            env.set(var, None, "the env's activation sets it, but weights the app needs are missing from the "
                               "cache, and offline it could not fetch them")
    blocked = [v for v in OFFLINE_VARS if (env.value(v) or "").lower() in TRUE]
    missing = "; ".join(lp.weights_missing)
    fix = f"`provision apply {spec.name} --from-step weights` online, or `provision seed BUNDLE`"
    if blocked:
        lp.warnings.append(f"Hugging Face weights the app needs are not in {obs.hub_cache}: {missing}; your "
                           f"{'/'.join(blocked)}=1 stays, so the app cannot download them and fails when it loads "
                           f"them ({fix})")
    else:
        through = next((v for v in PROXY_VARS if obs.environ.get(v)), None)
        lp.warnings.append(f"Hugging Face weights the app needs are not in {obs.hub_cache}: {missing}; the app will "
                           "try to download them from the Hub" + (f" (through {through})" if through else "")
                           + f" when it loads them ({fix} puts them there beforehand)")


def _show(host: str) -> str:
    """The address a browser and the probe use: a wildcard means this machine's loopback."""
    h = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"[{h}]" if ":" in h else h


def _taken(p: PortState) -> str:
    return f"port {p.port} is taken" + (f" by {p.holder}" if p.holder else "")


def _port(spec: TargetSpec, opts: LaunchOptions, obs: Observed) -> tuple[int, str]:
    app = spec.app
    where = opts.host or app.host
    can_pass = bool(app.port_env) or "{port}" in app.launch
    wanted = opts.port or app.port
    if opts.port is not None and opts.port != app.port and not can_pass:
        raise UsageError(f"--port {opts.port}: {spec.name}'s app cannot be given a port (its spec has neither "
                         "app.port_env nor {port} in app.launch)",
                         hint=f"leave --port out: the app listens on {app.port}")
    if obs.host_error:
        said_host = f"--host-address {opts.host!r}" if opts.host else f"app.host {app.host!r}"
        raise UsageError(f"the app's address ({said_host}): {obs.host_error}",
                         hint="app.host in the spec must be an address of this machine (127.0.0.1 by default); a port "
                              "below 1024 needs root: give --port 1024 or above")
    if not obs.ports or obs.ports[0].port != wanted:
        raise LaunchError(f"port {wanted} was not checked (a bug)")
    first = obs.ports[0]
    said = "--port" if opts.port is not None else "the spec's app.port"
    if first.free:
        return wanted, f"port {wanted} ({said}) is free"
    if opts.port is not None:
        raise UsageError(f"--port {wanted}: {_taken(first)} on {where}",
                         hint=f"choose another --port, or leave --port out: provision then takes the next free port "
                              f"from {app.port} on")
    if not can_pass:
        raise UsageError(f"{_taken(first)} on {where}, and {spec.name}'s app cannot be given another: its spec has "
                         "neither app.port_env nor {port} in app.launch",
                         hint=f"stop what holds it (`ss -ltnp | grep :{wanted}`), then run again")
    free = next((p for p in obs.ports if p.free), None)
    if free is None:
        raise LaunchError(f"ports {obs.ports[0].port}-{obs.ports[-1].port} on {where} are all taken",
                          hint="stop what holds them (`ss -ltnp`), or give a free one with --port")
    return free.port, f"{_taken(first)}; the app gets {free.port}"


def _fill(words: list[str], python: str, port: int, host: str) -> list[str]:
    out = [python]
    for w in words[1:]:
        out.append(w.replace("{port}", str(port)).replace("{host}", host))
    return out


def make_launch(spec: TargetSpec, plan: Plan, opts: LaunchOptions, obs: Observed) -> LaunchPlan:
    app = spec.app
    cli = opts.cli_args is not None
    t = spec.name
    if cli and app.cli is None:
        raise UsageError(f"--cli: {t}'s spec has no headless entry (app.cli)",
                         hint="run the web app without --cli, or add `cli: python SCRIPT` under `app:` in the spec")
    prefix = plan.prefix
    if not obs.env_made:
        if not obs.prefix_exists:
            where = "" if prefix == f"{plan.data_dir}/envs/{t}" else f" --prefix {shlex.quote(prefix)}"
            raise UsageError(f"no env at {prefix}: run `provision apply {t}{where}`",
                             hint="or pass the --prefix (or --data-dir) of the env `provision apply` made")
        raise UsageError(f"{prefix} is not an env provision made (no {prefix}/share/provision/)",
                         hint=f"run `provision apply {t} --prefix {prefix}` (or `--existing --prefix {prefix}` for an "
                              "env of your own), or pass the --prefix of the env apply made")
    python = f"{prefix}/bin/python"
    if obs.python_error:
        raise UsageError(f"the env's interpreter {python} does not run: {obs.python_error}",
                         hint=f"run `provision apply {t} --from-step create-env` to make the env again")
    cwd = app_dir(prefix)  # the env's own copy, at the commit it was installed with
    if not obs.upstream_exists:
        raise UsageError(f"the {t} app is not in the env: {cwd} is missing",
                         hint=f"run `provision apply {t} --from-step sources` (it checks out {spec.upstream.repo} "
                              f"at {spec.upstream.commit[:12]})")
    host = opts.host or app.host
    env = base_env(plan, obs.environ, None if cli else host)
    lp = LaunchPlan(target=t, variant=plan.variant, mode="cli" if cli else "app", prefix=prefix, python=python,
                    cwd=cwd, argv=[], env=[], log_file=log_file(plan, cli))
    if obs.python_version and obs.python_version != spec.python:
        lp.warnings.append(f"{python} is Python {obs.python_version}, the spec's is {spec.python}: packages built for "
                           f"{spec.python} will not import (`provision apply {t} --from-step create-env`)")
    if any(obs.environ.get(v) for v in PROXY_VARS):
        lp.notes.append("your proxy variables stay for the rest of the world; loopback is in NO_PROXY and no_proxy")
    if obs.hosts_has_localhost is False:
        lp.warnings.append(f"{obs.hosts_file} has no line for localhost: the name may not resolve to 127.0.0.1 (Gradio "
                           "and some apps reach their own server as localhost); add `127.0.0.1 localhost` and "
                           "`::1 localhost` to it")
    elif obs.hosts_has_localhost is None:
        lp.warnings.append(f"{obs.hosts_file} could not be read: localhost may not resolve")
    _offline(spec, obs, env, lp)
    if cli:
        assert app.cli is not None and opts.cli_args is not None
        lp.argv = _fill(shlex.split(app.cli), python, app.port, host) + list(opts.cli_args)
        lp.notes.append("the headless entry (app.cli): no port, no readiness probe")
    else:
        port, why = _port(spec, opts, obs)
        lp.host, lp.port, lp.port_reason = host, port, why
        if app.port_env:
            env.set(app.port_env, str(port), "the port the app listens on (app.port_env)")
        lp.argv = _fill(shlex.split(app.launch), python, port, host)
        env.set("GRADIO_SERVER_NAME", host, "the address Gradio serves on (--host-address)" if opts.host
                else "the address Gradio serves on (app.host)")
        if app.port_env != "GRADIO_SERVER_PORT":
            env.set("GRADIO_SERVER_PORT", str(port), "Gradio's default port: the one the probe asks")
        env.set("GRADIO_SHARE", "True" if opts.share else "False",
                "--share: a public gradio.live link" if opts.share else "never a public link unless --share")
        shown = _show(host)
        lp.url = f"http://{shown}:{port}/"
        timeout = opts.ready_timeout_s if opts.ready_timeout_s is not None else float(app.ready_timeout_s)
        lp.probe = Probe(url=f"http://{shown}:{port}{app.ready_path}", timeout_s=timeout)
    lp.env = list(env.changes.values())
    return lp
