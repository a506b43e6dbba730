"""Apply stage: execute a plan, step by step, idempotent and resumable.

The plan (provision.plan) says what to do; this module does it. Each step has an executor and a
hash of its inputs; `PREFIX/share/provision/state.json` records the steps that finished and
with which inputs, so a re-run skips them ("unchanged"), an interrupted run resumes at the
first unfinished step, and `--from-step` forces a step and everything after it. Each step's
output goes to `PREFIX/share/provision/logs/<step>.log`; a failure prints the log's tail and
what it means (diagnose.py).

The steps themselves live beside this module: sources.py, envsteps.py (env, pip half, pin
guard), extensions.py (builds and their cache); compile, activation, weights and verify,
each a few lines, are here.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .. import paths
from ..fsutil import atomic_write_text, write_ours
from ..plan import Plan, Step
from ..spec import LoadedSpec
from .context import ApplyError, ApplyOptions, Ctx
from .guard import PrefixLock, check_prefix
from .envsteps import do_create_env, do_pip_install, do_torch_guard
from .toolkit import do_toolkit
from .app import do_app
from .extensions import do_build
from .sources import do_sources, source_list, source_marker


def do_compile(ctx: Ctx, step: Step, log: Path) -> None:
    from ..plan import PlanOptions
    from ..render.compile import CompileOptions, artifacts_for, write_tree

    _, files = artifacts_for(ctx.loaded, ctx.host, CompileOptions(
        lockdir=ctx.opts.lockdir, require_lock=not ctx.opts.existing,
        plan=PlanOptions(variant=ctx.plan.variant, prefix=ctx.plan.prefix, data_dir=ctx.plan.data_dir,
                         arch_list=ctx.opts.arch_list, ptx=ctx.plan.torch_cuda_arch_list.endswith("+PTX"))))
    write_tree(files, ctx.compiled)


def do_activation(ctx: Ctx, step: Step, log: Path) -> None:
    for rel in (f"etc/conda/activate.d/provision-{ctx.spec.name}.sh", f"etc/conda/deactivate.d/provision-{ctx.spec.name}.sh"):
        backup = write_ours(ctx.prefix / rel, (ctx.compiled / rel).read_text())
        if backup is not None:
            ctx.echo(f"kept your earlier {rel} as {backup}")
    write_ours(ctx.meta / "activate.sh", (ctx.compiled / "activate.sh").read_text())
    from .shims import install_shims  # the startup shims, into the env's site-packages

    install_shims(ctx.py, ctx.compiled, ctx.echo)


def do_weights(ctx: Ctx, step: Step, log: Path) -> None:
    if ctx.opts.bundle is None:
        raise ApplyError("no bundle to take the weights from",
                         hint=f"provision mirror {ctx.spec.name} --to BUNDLE, then apply --bundle BUNDLE")
    from ..offline.bundle import Bundle
    from ..offline.seed import apply_seed, plan_seed, verify_blobs

    b = Bundle.open(ctx.opts.bundle)
    bad = verify_blobs(b)
    if bad:
        raise ApplyError(f"{ctx.opts.bundle}: {bad[0]}" + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
    env = ctx.plan.env
    rep = plan_seed(b, Path(env.get("HF_HOME") or ctx.data / "huggingface"),
                    Path(env.get("TORCH_HOME") or ctx.data / "torch"), ctx.data)
    apply_seed(rep)


def do_verify(ctx: Ctx, step: Step, log: Path) -> None:
    from ..verify.checks import exit_code, target_env, verify

    checklist = json.loads((ctx.compiled / "checklist.json").read_text())
    outcomes, _ = verify(checklist, ctx.py, target_env(ctx.plan.env, ctx.plan.data_dir), own_env=ctx.opts.existing)
    with open(log, "w") as f:
        for o in outcomes:
            f.write(f"{o.status:<7} {o.title}: {o.detail}\n" + (f"        fix: {o.fix}\n" if o.status == "fail" else ""))
    if exit_code(outcomes):
        bad = [o for o in outcomes if o.status == "fail" and o.required]
        raise ApplyError(f"verify: {len(bad)} required check(s) fail: " + "; ".join(f"{o.title}: {o.detail}" for o in bad[:3]),
                         hint=f"provision verify {ctx.spec.name} shows every check and its fix ({log})")


EXECUTORS: dict[str, Callable[[Ctx, Step, Path], None]] = {
    "compile": do_compile, "sources": do_sources, "create-env": do_create_env, "pip-install": do_pip_install,
    "torch-guard": do_torch_guard, "toolkit": do_toolkit, "app": do_app, "activation": do_activation, "weights": do_weights,
    "verify": do_verify,
}


def executor(step: Step) -> Callable[[Ctx, Step, Path], None] | None:
    if step.id.startswith("build-deps-"):
        return None  # build tools are in the lock's main category
    if step.id.startswith("build-"):
        return do_build
    return EXECUTORS.get(step.id)

# --- state, skipping and resuming ------------------------------------------------------------


def step_inputs(ctx: Ctx, step: Step) -> str:
    """A hash of everything that, changed, means the step must run again."""
    h = hashlib.sha256(json.dumps({"id": step.id, "command": step.command, "env": step.env,
                                   "variant": ctx.plan.variant, "spec": ctx.plan.spec_digest,
                                   "offline": ctx.opts.offline}, sort_keys=True).encode())
    for f in ("conda-lock.yml", "requirements.txt"):
        p = ctx.compiled / f
        if step.id != "compile" and p.is_file():
            h.update(p.read_bytes())
    if step.id.startswith("build-") or step.id in ("sources", "app"):
        for name, _, d in source_list(ctx):
            m = source_marker(d if source_marker(d).exists() else d.parent)
            h.update(f"{name}:{m.read_text() if m.is_file() else ''}".encode())
    return h.hexdigest()


def _load_state(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {"steps": {}}


def apply(loaded: LoadedSpec, host, plan: Plan, opts: ApplyOptions, echo: Callable[[str], None] = print) -> int:  # type: ignore[no-untyped-def]
    if plan.blockers:
        raise ApplyError(f"the plan for {loaded.name} has {len(plan.blockers)} blocker(s): {plan.blockers[0].what}",
                         hint=plan.blockers[0].fix)
    if opts.fleet_group:
        _check_fleet_group(loaded, host, plan, opts.fleet_group)
    ctx = Ctx(loaded, plan, opts, echo, host)
    skip = {"create-env", "pip-install"} if opts.existing else set()
    steps = [s for s in plan.steps
             if s.id not in skip and not (s.id == "weights" and opts.bundle is None and (opts.offline or opts.existing))]
    check_prefix(ctx.prefix, ctx.data, opts.existing)
    if opts.venv:  # the env comes from a host Python, not from the lock's conda half: say so, check it first
        from .envsteps import host_python

        py = host_python(loaded.spec.python, opts.python)
        ctx.opts = opts = replace(opts, python=py)  # checked here once: create-env runs this one
        steps = [s.model_copy(update={"title": f"create a venv from the host's Python {loaded.spec.python} ({py})",
                                      "command": f"{shlex.quote(py)} -m venv {shlex.quote(str(ctx.prefix))}"})
                 if s.id == "create-env" else s for s in steps]
    ids = [s.id for s in steps]
    if opts.from_step and opts.from_step not in ids:
        raise ApplyError(f"no step {opts.from_step!r} in the plan", hint=f"steps: {', '.join(ids)}")
    if opts.dry_run:
        for i, s in enumerate(steps, 1):
            echo(f"[{i}/{len(steps)}] {s.id}: {s.title}")
            echo(f"    $ {s.command}")
            if s.env:
                echo("    env: " + " ".join(f"{k}={_shell_value(v)}" for k, v in s.env.items()))
        echo("dry run: nothing was changed")
        return 0
    # in the env itself: every apply on this prefix, whatever its --data-dir, user or cache, meets it there
    with PrefixLock(ctx.prefix, ctx.meta / "locks", opts.wait):
        return _run_steps(ctx, steps, ids)


def _shell_value(v: str) -> str:
    """As a shell reads it back: quoted, a trailing :$PATH left to expand."""
    head, sep, _ = v.rpartition(":$PATH") if v.endswith(":$PATH") else (v, "", "")
    return shlex.quote(head) + ('":$PATH"' if sep else "")


def _check_fleet_group(loaded: LoadedSpec, host, plan: Plan, group: str) -> None:  # type: ignore[no-untyped-def]
    """A host whose facts moved since `fleet plan` grouped it would build something else than its
    group shares: stop before anything is done."""
    from ..plan.binary import toolchain_of_plan

    tc = toolchain_of_plan(loaded.spec, host, plan)
    if tc.digest() != group:
        said = ", ".join(f"{k} {v}" for k, v in tc.as_dict().items())
        raise ApplyError(f"this host now builds with {said} (toolchain {tc.digest()}), not the toolchain {group} "
                         "`provision fleet` grouped it by", hint="its facts changed since the fleet was planned: "
                         "save them again (provision doctor --save) and re-run provision fleet ansible")


def _run_steps(ctx: Ctx, steps: list[Step], ids: list[str]) -> int:
    opts, echo = ctx.opts, ctx.echo
    paths.owned_dir(ctx.meta)  # from now on the prefix is an env provision made (check_prefix lets it in again)
    state_path = ctx.meta / "state.json"
    state = _load_state(state_path)
    forced = False
    ran: list[str] = []
    for i, s in enumerate(steps, 1):
        run = executor(s)
        label = f"[{i}/{len(steps)}] {s.id}"
        if run is None:
            echo(f"{label}: included in another step")
            continue
        forced = forced or s.id == opts.from_step
        inputs = step_inputs(ctx, s)
        done = state["steps"].get(s.id)
        env_alive = Path(ctx.py).exists() or s.id in ("compile", "sources", "create-env")
        if not forced and done and done.get("inputs") == inputs and env_alive:
            echo(f"{label}: done before, inputs unchanged - skipped")
            continue
        # from here on this step and every later one are unfinished, until each completes:
        # a run killed now resumes here, not after it
        for later in ids[ids.index(s.id):]:
            state["steps"].pop(later, None)
        if state_path.parent.is_dir():
            atomic_write_text(state_path, json.dumps(state, indent=1, sort_keys=True) + "\n")
        log = ctx.meta / "logs" / f"{s.id}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        t = time.monotonic()
        echo(f"{label}: {s.title} ...")
        run(ctx, s, log)
        state = _load_state(state_path)
        state["steps"][s.id] = {"inputs": step_inputs(ctx, s), "seconds": round(time.monotonic() - t, 1)}
        # verify and run read these
        # `existing`: the env is the user's, none of its packages came from the lock (an env apply once
        # installed from the lock stays provision's when a later run says --existing)
        mine = opts.existing and not state["steps"].get("pip-install")
        state.update(target=ctx.spec.name, variant=ctx.plan.variant, data_dir=str(ctx.data), existing=mine)
        atomic_write_text(state_path, json.dumps(state, indent=1, sort_keys=True) + "\n")
        echo(f"{label}: done in {time.monotonic() - t:.1f} s")
        ran.append(s.id)
    # one line a caller (Ansible's changed_when) can read: did this run change anything?
    echo(f"apply: {len(ran)} step(s) ran" + ("" if ran else ", nothing to do"))
    return 0



