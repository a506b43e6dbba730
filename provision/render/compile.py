"""Compile stage: spec x host (x lockfile) -> every artifact of a target, as files.

`artifacts_for` is pure (a dict of relative path -> text) so it is easy to test and
deterministic by construction; `write_tree` is the one effect: it builds the directory
beside the destination and swaps it in, so a reader never sees half of it, and it
refuses to replace a directory provision did not write.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .. import paths
from ..errors import LockError, ProvisionError, UsageError
from ..host import HostFacts
from ..ids import url_file_name
from ..lock import contents as lock_contents
from ..lock import lockfile
from ..lock.prebuilt import taken
from ..lock.facts import current
from ..lock.inputs import lock_inputs
from ..offline.artifacts import Artifact, lock_artifacts, spec_artifacts
from ..plan import Plan, PlanOptions, app_dir, make_plan
from ..spec import GitSource, LoadedSpec, SdistSource, TargetSpec
from ..templating import render
from .checklist import compile_checklist
from .shims import shim_config, shim_files

MARKER = "FILES.sha256"


@dataclass(frozen=True)
class CompileOptions:
    lockdir: Path
    plan: PlanOptions
    windows_ram_gb: float = 32
    windows_cpus: int = 16
    require_lock: bool = True
    # what the user gave compile that apply on the host must be given too (--data-dir, --ptx)
    apply_args: tuple[str, ...] = ()


def _json(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def mirror_files(target: str, variant: str, arts: list[Artifact]) -> dict[str, str]:
    """mirror/mirror.sh with its SHA256SUMS (and MD5SUMS where upstream gives only md5)."""
    files = [a for a in arts if a.kind not in ("git", "hf-repo") and (a.sha256 or a.md5)]
    sha = "".join(f"{a.sha256}  {a.dest}\n" for a in sorted(files, key=lambda a: a.dest) if a.sha256)
    md5 = "".join(f"{a.md5}  {a.dest}\n" for a in sorted(files, key=lambda a: a.dest) if a.md5 and not a.sha256)
    out = {
        "mirror/mirror.sh": render(
            "compile/mirror.sh.j2", target=target, variant=variant, md5=bool(md5),
            files=[asdict(a) for a in files],
            git=[asdict(a) for a in arts if a.kind == "git"],
            hf=[asdict(a) for a in arts if a.kind == "hf-repo"],
            unchecked=[asdict(a) for a in arts if a.kind == "torch-hub-source"]),
        "mirror/SHA256SUMS": sha,
        "mirror/artifacts.json": _json([a.as_dict() for a in arts]),
    }
    if md5:
        out["mirror/MD5SUMS"] = md5
    return out


def _locked_variants_for(loaded: LoadedSpec, host: HostFacts, opts: CompileOptions) -> list[str]:
    """Variants with a current lockfile that the plan accepts for this host (no blockers)."""
    out = []
    for k in loaded.spec.variants:
        path = lockfile.lockfile_path(opts.lockdir, loaded.name, k)
        if not path.is_file() or not lockfile.check(path, lock_inputs(loaded.spec, k)).fresh:
            continue
        try:
            if not make_plan(loaded, host, replace(opts.plan, variant=k)).blockers:
                out.append(k)
        except ProvisionError:  # this variant cannot run here at all
            continue
    return out


def artifacts_for(loaded: LoadedSpec, host: HostFacts, opts: CompileOptions) -> tuple[Plan, dict[str, str]]:
    spec = loaded.spec
    if opts.plan.locks is None and opts.require_lock:  # plan and lock agree: it knows which variants are locked
        opts = replace(opts, plan=replace(opts.plan, locks=current(spec, opts.lockdir)))
    plan = make_plan(loaded, host, opts.plan)
    v = plan.variant
    lock_path = lockfile.lockfile_path(opts.lockdir, spec.name, v)
    lock = None
    no_lock_reason = ""
    if lock_path.is_file():
        lock = lockfile.read(lock_path)
        inputs = lock_inputs(spec, v)
        st = lockfile.check(lock_path, inputs, lock)
        if not st.fresh:
            raise LockError(f"{lock_path} is stale for {spec.name}/{v}: the spec's pins changed since it was made",
                            hint=f"provision lock {spec.name} --variant {v}")
        edited = lock_contents.problems(lock, inputs)
        if edited:  # installing it would install what nobody locked
            raise LockError(f"{lock_path} was edited: its body contradicts its spec or its own metadata: "
                            f"{lock_contents.summary(edited)}",
                            hint=f"provision lock {spec.name} --variant {v} writes it again (review the edit first: "
                                 "`git diff` of the lockfile)")
    elif opts.require_lock:
        hint = f"provision lock {spec.name} --variant {v}, or compile everything else with --no-lock"
        locked = [] if opts.plan.variant else _locked_variants_for(loaded, host, opts)
        if locked:
            hint += f"; or take a variant that is locked and fits this host: --variant {' / '.join(locked)}"
        raise LockError(f"no lockfile for {spec.name}/{v} (the variant the plan chose for this host): {lock_path}",
                        hint=hint)
    else:
        shown = lockfile.lockfile_path(Path(opts.lockdir.name), spec.name, v)  # never this machine's own path
        no_lock_reason = f"{shown} does not exist; make it with `provision lock {spec.name} --variant {v}`"

    env = sorted(plan.env.items())  # quoted by the shell templates themselves (templating.py)
    ctx = {"target": spec.name, "variant": v, "env": env, "prefix": plan.prefix}
    files: dict[str, str] = {
        "plan.json": _json(plan.model_dump(mode="json")),
        "activate.sh": render("compile/activate.sh.j2", **ctx),
        f"etc/conda/activate.d/provision-{spec.name}.sh": render("compile/conda-activate.sh.j2", **ctx),
        f"etc/conda/deactivate.d/provision-{spec.name}.sh": render("compile/conda-deactivate.sh.j2", **ctx),
    }
    shims = []
    prebuilt = plan.prebuilt
    for e in spec.extensions_for(v):
        if e.build == "inplace" and e.name not in prebuilt:
            shims.append(e.name)
            files[f"site-packages/provision-{e.name}.pth"] = render(
                "compile/pth.j2", what=f"{e.name} (built in place, `build_ext --inplace`)",
                path=f"{plan.prefix}/share/provision/ext/{e.name}")
    files["site-packages/provision-app.pth"] = render(
        "compile/pth.j2", what=f"the {spec.name} app ({spec.upstream.repo} at {spec.upstream.commit[:12]})",
        path=app_dir(plan.prefix))
    files.update(shim_files(spec))
    pins = lockfile.pip_pins(lock) if lock is not None else None
    if lock is not None:
        files["conda-lock.yml"] = lock_path.read_text()
        files["requirements.txt"] = render("requirements.txt.j2", target=spec.name, variant=v, pins=pins,
                                           git=[p for p in pins or [] if p.git])
    files["checklist.json"] = _json(compile_checklist(spec, plan, pins))
    arts = (spec_artifacts(spec, v, taken(spec, v, lock)) + lock_artifacts(lock) if lock is not None
            else spec_artifacts(spec, v))
    files.update(mirror_files(spec.name, v, arts))
    wsl = bool(host.wsl)
    if wsl:
        from ..wsl.file import render_fresh, values_for

        wsl2, exp, reasons, _ = values_for(spec, opts.windows_ram_gb, opts.windows_cpus, None, None, None)
        files["wslconfig/.wslconfig"] = render_fresh(spec, opts.windows_ram_gb, opts.windows_cpus, wsl2, exp, reasons)
    files["README.md"] = render(
        "compile/README.md.j2", target=spec.name, variant=v, host_label=plan.host_label or "this host",
        spec_digest=plan.spec_digest, variant_reason=plan.variant_reason, torch=plan.torch, cuda=plan.cuda,
        arch_list=plan.torch_cuda_arch_list, nvcc_reason=plan.nvcc.reason, prefix=plan.prefix, lock=lock is not None,
        shims=shims, startup_shims=_startup_shim_rows(spec), artifact_count=len(arts), wslconfig=wsl,
        no_lock_reason=no_lock_reason,
        apply=_apply_command(spec.name, v, opts), extensions=_extension_rows(spec, plan),
        blockers=[b.model_dump() for b in plan.blockers], warnings=[w.model_dump() for w in plan.warnings])
    files[MARKER] = "".join(f"{hashlib.sha256(t.encode()).hexdigest()}  {p}\n" for p, t in sorted(files.items()))
    return plan, files


def _apply_command(target: str, variant: str, opts: CompileOptions) -> str:
    """The next step, as the user types it on the target host (which plans for itself again)."""
    args = [f"provision apply {target} --variant {variant}"]
    if opts.plan.prefix:
        args.append(f"--prefix {shlex.quote(opts.plan.prefix)}")
    return " ".join([*args, *map(shlex.quote, opts.apply_args)])


def _startup_shim_rows(spec: TargetSpec) -> list[str]:
    """What the startup shims fix for this target, one line each (the compiled README lists them)."""
    config = shim_config(spec)
    rows = [f"torch.hub takes {repo} at `{ref}` from its cache without asking github.com"
            for repo, ref in sorted(config.get("torch_hub", {}).items())]
    if "gradio-boolean-schema" in config.get("shims", []):
        rows.append("gradio_client reads boolean JSON schemas (`additionalProperties: true`) as Any, where it would crash")
    return rows


def _extension_rows(spec: TargetSpec, plan: Plan) -> list[dict[str, str]]:
    """Each CUDA extension apply builds (none of them is in the lockfile): from what, and how."""
    rows = []
    by_name = {e.name: e for e in spec.extensions_for(plan.variant)}
    for ep in plan.extensions:
        e = by_name[ep.name]
        src = e.source
        where = (f"{src.git} @ {src.commit[:12]}" + (f" ({src.subdirectory})" if src.subdirectory else "")
                 if isinstance(src, GitSource) else f"{url_file_name(src.sdist)} (sha256 {src.sha256[:12]})"
                 if isinstance(src, SdistSource) else f"{src.upstream_path}/ of the upstream checkout")
        how = ("its project's prebuilt wheel, a hashed file of the lockfile (installed with the pip half, not "
               "compiled)" if ep.build == "prebuilt" else "a wheel (uv build --no-build-isolation), installed --no-deps"
               if e.build == "wheel" else "in place under the env, imported through a .pth shim")
        rows.append({"name": e.name, "source": where, "how": how, "jobs": str(ep.max_jobs) if ep.max_jobs else "-",
                     "nvcc": "no CUDA" if e.nvcc == "none" else (plan.nvcc.version or "?")})
    return rows


EXECUTABLE = ("activate.sh", "mirror/mirror.sh")


def _foreign(out: Path) -> list[str]:
    """Files in an earlier output that compile did not write as they are now: added or edited
    by someone. Compile replaces its own output only, so these stop it."""
    listed: dict[str, str] = {}
    for line in (out / MARKER).read_text(errors="replace").splitlines():
        digest, _, rel = line.partition("  ")
        listed[rel] = digest
    bad = []
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if rel in (MARKER, paths.MARKER) or p.is_dir() and not p.is_symlink():
            continue
        if p.is_symlink() or rel not in listed or hashlib.sha256(p.read_bytes()).hexdigest() != listed[rel]:
            bad.append(rel)
    return bad


def write_tree(files: dict[str, str], out: Path) -> None:
    """Write `files` under `out` all at once. `out` must be new, empty, or an earlier compile
    output nobody changed since: provision never deletes or overwrites a file it did not write."""
    out = Path(out)
    paths.refuse_prefix(out, "--out")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UsageError(f"{out} exists and is not a directory", hint="choose a new or empty directory for --out")
    empty = out.is_dir() and not any(out.iterdir())
    if out.is_dir() and not empty:
        if not (out / MARKER).is_file():
            raise UsageError(f"{out} exists and was not written by provision compile",
                             hint="choose an empty or new directory for --out; provision never overwrites your files")
        changed = _foreign(out)
        if changed:
            shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
            raise UsageError(f"{out} holds files compile did not write, or changed since: {shown}",
                             hint="move them elsewhere (or choose another --out): compile replaces only its own files")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = paths.scratch_dir(out.parent, f".{out.name}.")
    try:
        for rel, text in files.items():
            p = paths.inside(tmp, rel, "a compiled file")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
            if rel in EXECUTABLE:
                p.chmod(0o755)
        if empty:  # the user's own (empty) directory stays; the files move into it, the marker last
            for child in sorted(tmp.iterdir(), key=lambda c: c.name == MARKER):
                os.replace(child, out / child.name)
            tmp.rmdir()
        elif out.exists():
            old = out.with_name(f".{out.name}.old")
            if old.exists():
                paths.remove_tree(old, out.parent, "a previous compile output")
            paths.owned_dir(out)  # verified above to be compile's own, file by file
            out.rename(old)
            tmp.rename(out)
            paths.remove_tree(old, out.parent, "the compile output it replaces")
        else:
            tmp.rename(out)
    except BaseException:
        if tmp.exists():
            paths.remove_tree(tmp, out.parent, "a half-written compile output")
        raise


__all__ = ["CompileOptions", "artifacts_for", "write_tree"]
