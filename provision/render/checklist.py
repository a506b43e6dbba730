"""The post-install checklist, compiled from spec x plan x lock (pure).

`provision compile` writes it as checklist.json; `provision verify` runs it inside the
target's interpreter. Every check carries the fix a person needs when it fails, and says
whether it needs a GPU (then, without one, it is reported as skipped, never as passed).
"""

from __future__ import annotations

from typing import Any

from ..lock.lockfile import PipPin
from ..plan import Plan, app_dir, fill
from ..spec import ApiCheck, FileCheck, ImportCheck, KernelCheck, TargetSpec
from .shims import GRADIO_BOOLEAN_SCHEMA, GRADIO_PROBES

SCHEMA = 1


def _check(id_: str, kind: str, title: str, fix: str, *, gpu: bool = False, required: bool = True,
           **args: Any) -> dict[str, Any]:
    return {"id": id_, "kind": kind, "title": title, "needs_gpu": gpu, "required": required, "fix": fix, **args}


def _resolve(template: str, plan: Plan) -> str:
    """{NAME} from the plan's environment, {data} and {prefix}: the paths the app will use."""
    return fill(template, {**plan.env, "data": plan.data_dir, "prefix": plan.prefix})


def compile_checklist(spec: TargetSpec, plan: Plan, pins: list[PipPin] | None) -> dict[str, Any]:
    exts = {e.name: e for e in spec.extensions_for(plan.variant)}
    checks = [
        _check("python", "python-version", f"Python {spec.python}", f"recreate the env with Python {spec.python}",
               expect=spec.python),
    ]
    if pins is not None:
        checks.append(_check("locked-packages", "packages", "every locked pip package at its locked version",
                             "reinstall from the lock: pip install --no-deps --require-hashes -r requirements.txt",
                             expect={p.name: p.version for p in pins if not p.git}))
    if plan.torch:  # a target without torch (a test fixture) has no torch checks
        checks += [
            _check("torch-cuda", "torch-cuda", f"torch {plan.torch} built for CUDA {plan.cuda}, one torch installed",
                   "an extension build replaced torch: reinstall it from the lock with the constraints file",
                   expect_version=plan.torch, expect_cuda=plan.cuda),
            _check("cuda-available", "cuda-available", "torch sees the GPU",
                   "check the driver (nvidia-smi) and, on WSL2, that /usr/lib/wsl/lib is on the loader path", gpu=True),
            _check("arch", "arch", f"the GPU's architecture is one torch was built for ({', '.join(plan.arch_list) or 'none'})",
                   "use a variant whose torch covers this GPU (`provision plan` says which)", gpu=True,
                   expect=list(plan.arch_list)),
        ]
    prebuilt = plan.prebuilt
    for e in exts.values():
        redo = (f"reinstall its prebuilt wheel from the lock: provision apply {spec.name} --from-step pip-install"
                if e.name in prebuilt else f"rebuild {e.name}: provision apply {spec.name} --from-step build-{e.name}")
        checks.append(_check(f"import-{e.name}", "import", f"import {e.module}", redo, module=e.module))
        if e.nvcc != "none":
            fix = (f"the prebuilt wheel of {e.name} lacks this GPU's arch: drop its `prebuilt:` record for this build "
                   f"in the spec and lock again (it is then built for {plan.torch_cuda_arch_list})" if e.name in prebuilt
                   else f"rebuild {e.name} with TORCH_CUDA_ARCH_LIST={plan.torch_cuda_arch_list}: "
                        f"provision apply {spec.name} --from-step build-{e.name}")
            checks.append(_check(f"binary-{e.name}", "binary-arch", f"{e.name} carries SASS or PTX for the GPU",
                                 fix, module=e.module, expect=list(plan.arch_list),
                                 **({"dist": e.name} if e.build == "wheel" or e.name in prebuilt else {})))
        if e.build == "inplace" and e.name not in prebuilt:
            checks.append(_check(f"shim-{e.name}", "pth-shim", f"the .pth shim of {e.name} points into the env",
                                 f"rebuild {e.name} in place under the env (never /tmp)",
                                 file=f"provision-{e.name}.pth", expect=f"{plan.prefix}/share/provision/ext/{e.name}"))
    for i, c in enumerate(spec.checklist):
        if isinstance(c, ImportCheck):
            checks.append(_check(f"import:{c.module}", "import", f"import {c.module}",
                                 f"reinstall the package that provides {c.module}", module=c.module))
        elif isinstance(c, KernelCheck):
            e = exts.get(c.extension)
            if e is not None and e.smoke:
                checks.append(_check(f"kernel-{e.name}", "kernel", f"{e.name} runs a kernel on the GPU",
                                     f"rebuild {e.name} with TORCH_CUDA_ARCH_LIST={plan.torch_cuda_arch_list}",
                                     gpu=True, code=e.smoke))
        elif isinstance(c, ApiCheck):
            checks.append(_check(f"api-{i}", "api", c.name, c.fix, code=c.code))
        elif isinstance(c, FileCheck):
            checks.append(_check(f"file-{i}", "file", f"{c.path} exists", "run provision seed", path=c.path))
    checks += _app_checks(spec, plan)
    for name, var in spec.env.items():
        choices = getattr(var, "choices", None)
        if choices:
            checks.append(_check(f"env-{name}", "env-choice", f"{name} is one of {', '.join(choices)}",
                                 f"export {name}={plan.env.get(name, choices[0])}", name=name, choices=list(choices)))
    for r in spec.weights.huggingface:
        checks.append(_check(f"hf-{r.repo}", "hf-offline", f"{r.repo} resolves with HF_HUB_OFFLINE=1",
                             f"provision mirror {spec.name} --to BUNDLE && provision seed BUNDLE",
                             required=not r.optional, repo=r.repo, revision=r.revision, files=list(r.files)))
        checks.append(_check(f"hf-complete-{r.repo}", "hf-complete",
                             f"every file of {r.repo} its pipeline names is there, each matching its checksum",
                             f"provision mirror {spec.name} --to BUNDLE (repairs it) && provision seed BUNDLE --force",
                             required=not r.optional, repo=r.repo, revision=r.revision, files=list(r.files),
                             repos={x.repo: x.revision for x in spec.weights.huggingface}))
    shim_fix = f"provision apply {spec.name} --from-step activation (it installs the startup shims, _provision_shims.pth)"
    for h in spec.weights.torch_hub:
        checks.append(_check(f"torch-hub-{h.repo}", "torch-hub-offline", f"torch.hub finds {h.repo} offline",
                             f"provision mirror {spec.name} --to BUNDLE && provision seed BUNDLE", repo=h.repo,
                             ref=h.ref, checkpoints=[c.file for c in h.checkpoints], shim=True))
        checks.append(_check(f"torch-hub-local-{h.repo}", "torch-hub-local",
                             f"torch.hub resolves {h.repo} from its cache with no connection (proxy or not)",
                             shim_fix, repo=h.repo, ref=h.ref))
    if GRADIO_BOOLEAN_SCHEMA in spec.app.shims:
        checks.append(_check("gradio-boolean-schema", "gradio-schema",
                             "gradio_client turns boolean JSON schemas (additionalProperties: true) into types",
                             shim_fix, schemas=GRADIO_PROBES))
    for u in spec.weights.urls:
        checks.append(_check(f"weight-{u.name}", "file-checksum", f"{u.name} present and its checksum matches",
                             "provision seed BUNDLE", path=_resolve(u.dest, plan), sha256=u.sha256, md5=u.md5))
    checks.append(_check("port", "port", f"port {spec.app.port} is free and {spec.app.host} is reachable with the proxy variables set",
                         "free the port or set " + (spec.app.port_env or "the app's port") + "; add localhost to NO_PROXY",
                         port=spec.app.port, host=spec.app.host))
    res = spec.resources
    checks.append(_check("resources", "resources", "RAM, swap, VRAM and disk meet the spec",
                         f"provision wslconfig {spec.name} (WSL2), or free disk space", required=False,
                         ram_gb=res.ram_gb, swap_gb=res.swap_gb, vram_gb=res.vram_gb, disk_gb=res.disk_gb))
    return {"schema": SCHEMA, "target": spec.name, "variant": plan.variant, "prefix": plan.prefix,
            "spec_digest": plan.spec_digest, "checks": checks}


def _app_checks(spec: TargetSpec, plan: Plan) -> list[dict[str, Any]]:
    """The app itself: its tree importable from the env, its own entry points, and on a GPU
    machine with the weights seeded, its pipeline built from the local cache offline."""
    app = app_dir(plan.prefix)
    again = f"provision apply {spec.name} --from-step app"
    out = [_check("shim-app", "pth-shim", f"the {spec.name} app is installed in the env and on its path",
                  again, file="provision-app.pth", expect=app)]
    for i in spec.app.imports:
        out.append(_check(f"app-import-{i.module}", "app-import", f"from {i.module} import {i.name}",
                          f"{again} (a missing module of the env: provision apply {spec.name} --from-step pip-install)",
                          module=i.module, name=i.name, cwd=app))
    if spec.app.smoke:
        need = [{"repo": r.repo, "revision": r.revision} for r in spec.weights.huggingface if not r.optional]
        out.append(_check("app-smoke", "app-smoke", f"the {spec.name} pipeline loads from the local weights, offline",
                          f"provision seed BUNDLE for the weights; then provision verify {spec.name} names what fails",
                          gpu=True, code=spec.app.smoke, cwd=app, weights=need))
    return out
