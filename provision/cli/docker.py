"""`provision dockerfile`: a container image's build context for a target (Dockerfile, compose.yaml)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import UsageError
from .base import ArchListOpt, JsonOpt, LockdirOpt, VariantOpt, app, arch_list, echo, echo_json


def _hosts(files: list[Path]):  # type: ignore[no-untyped-def]
    from ..host import load_host

    return [load_host(f) for f in files]


def _bundle(path: Path, target: str, variant: str) -> str:
    """The bundle's absolute path, once it is known to hold this target's variant, complete."""
    import os

    from ..offline.bundle import Bundle

    b = Bundle.open(path)
    t = b.targets.get(target)
    mirror = f"provision mirror {target} --variant {variant} --to {path}"
    if t is None:
        raise UsageError(f"--bundle {path} holds no {target} (it holds: {', '.join(sorted(b.targets)) or 'nothing'})",
                         hint=f"on a machine that reaches the internet: {mirror}")
    if t.get("variant") != variant:
        raise UsageError(f"--bundle {path} holds {target} {t.get('variant')}, the image is {variant}",
                         hint=f"{mirror} (or --variant {t.get('variant')} if that variant fits the hosts)")
    if b.missing().get(target):
        raise UsageError(f"--bundle {path} is incomplete for {target}: {', '.join(b.missing()[target][:5])}",
                         hint=f"run `{mirror}` again: it fetches what is missing")
    return os.path.abspath(path)


@app.command("dockerfile")
def dockerfile_(target: str = typer.Argument(..., help="A target of envs/ (see `provision list`)."),
                host_files: Optional[List[Path]] = typer.Option(
                    None, "--host", help="A machine the image runs on (from `provision doctor --save`); repeatable: "
                                         "the extensions are built for every host's GPUs."),
                archs: Optional[str] = ArchListOpt,
                variant: Optional[str] = VariantOpt,
                bundle: Optional[Path] = typer.Option(None, "--bundle", help="Build offline from this bundle "
                                                      "(`provision mirror`): a named build context, never copied."),
                wheels: Optional[Path] = typer.Option(None, "--wheels", help="A wheelhouse of provision's own "
                                                      "dependencies (CPython 3.10, linux x86_64): required with --bundle."),
                out: Path = typer.Option(..., "--out", help="The build context directory to write."),
                lockdir: Optional[Path] = LockdirOpt,
                dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be written; write nothing."),
                as_json: bool = JsonOpt) -> None:
    """Write a Dockerfile and compose.yaml that build TARGET's env for the hosts' GPUs (multi-stage, offline with --bundle)."""
    from ..lock.facts import current
    from ..render import dockercontext as ctx
    from ..render.dockerfile import ImageInputs, image_files, image_plan, next_steps
    from ..settings import envs_dir, lockfiles_dir
    from ..spec import load_target, target_paths

    explicit = arch_list(archs)
    if host_files and explicit is not None:
        raise UsageError("give --host files or --arch-list, not both",
                         hint="--host FILE (repeatable) builds for those machines' GPUs and checks their drivers; "
                              "--arch-list for GPUs you have no host file of")
    if not host_files and explicit is None:
        raise UsageError("which GPUs is the image for? give --host FILE (repeatable) or --arch-list '8.6;8.9;9.0'",
                         hint="`provision doctor --save host.json` on each machine writes its host file")
    if target not in target_paths():
        raise UsageError(f"{target!r} is not a target of {envs_dir()}: the image carries provision's envs/ and finds "
                         "the spec there by name", hint=f"targets: {', '.join(target_paths())}; a spec of your own "
                                                         "goes into a directory named by PROVISION_ENVS")
    if wheels is not None and not wheels.is_dir():
        raise UsageError(f"--wheels {wheels} is not a directory", hint="give the directory `pip download` wrote into")
    loaded = load_target(target)
    hosts = _hosts(list(host_files or []))
    reqs = ctx.requirements()
    lockdir = lockdir or lockfiles_dir()
    inputs = ImageInputs(hosts=tuple(hosts), host_names=tuple(str(h) for h in host_files or []), arch_list=explicit,
                         variant=variant, wheels=wheels is not None, requirements=reqs,
                         locks=current(loaded.spec, lockdir))
    ip = image_plan(loaded, inputs)
    v = ip.plan.variant
    if bundle is not None:
        inputs = replace(inputs, bundle=_bundle(bundle, target, v))
        if wheels is None:
            raise UsageError("--bundle builds offline, so provision's own dependencies must come from --wheels DIR",
                             hint=ctx.wheelhouse_hint(reqs, "WHEELS") + "; then --wheels WHEELS")
    wheel_tree: dict[str, Path] = {}
    if wheels is not None:
        lacking = ctx.check_wheelhouse(wheels, reqs)
        if lacking:
            shown = ", ".join(lacking[:8]) + (f" and {len(lacking) - 8} more" if len(lacking) > 8 else "")
            raise UsageError(f"--wheels {wheels} lacks a CPython 3.10 linux x86_64 wheel of: {shown}",
                             hint=ctx.wheelhouse_hint(reqs, str(wheels)))
        wheel_tree = {p.name: p for p in sorted(wheels.glob("*.whl"))}
    text = image_files(loaded, ip, inputs)
    files = {k: t.encode() for k, t in text.items() if "/" not in k}
    src: dict[str, bytes | Path] = {**ctx.source_tree(target, v, lockdir),
                                    "requirements.txt": text["provision-src/requirements.txt"].encode()}
    trees: dict[str, dict[str, bytes | Path]] = {"provision-src": src}
    if wheel_tree:
        trees["wheels"] = dict(wheel_tree)
    writes = ctx.plan_writes(out, files, trees) if dry_run else ctx.write_context(out, files, trees)
    steps = next_steps(str(out), target, v)
    if as_json:
        echo_json({"target": target, "variant": v, "variant_reason": ip.plan.variant_reason,
                   "arch_list": ip.plan.torch_cuda_arch_list, "toolkit": ip.toolkit, "build_image": ip.build_image,
                   "final_image": ip.final_image, "offline": bundle is not None, "bundle": inputs.bundle,
                   "out": str(out), "dry_run": dry_run, "files": [w.as_dict() for w in writes], "next": steps,
                   "warnings": [w.model_dump() for w in ip.plan.warnings]})
        raise typer.Exit(0)
    if dry_run:
        for name in ("Dockerfile", "compose.yaml"):
            echo(f"--- {out / name}")
            echo(text[name], nl=False)
    verb = "would write" if dry_run else "wrote"
    echo(f"{target} {v} for TORCH_CUDA_ARCH_LIST={ip.plan.torch_cuda_arch_list}: {ip.plan.variant_reason}")
    echo(f"  build stage  {ip.build_image}")
    echo(f"  final stage  {ip.final_image}")
    echo("  " + ("offline from " + str(inputs.bundle) if bundle is not None else
                 "online: the build mirrors what it needs (give --bundle to build offline)"))
    for w in writes:
        said = {"new": verb, "replaced": f"{verb} (replacing its own)", "unchanged": "unchanged",
                "backed-up": f"{verb}, keeping yours as {w.backup}"}[w.action]
        echo(f"  {said:<12} {out / w.path}")
    for f in ip.plan.warnings:
        echo(f"note: {f.what}")
    echo("next: " + "\n      ".join(steps) + ("  (dry run: nothing was written)" if dry_run else ""))
    raise typer.Exit(0)
