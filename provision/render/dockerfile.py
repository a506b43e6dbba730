"""A container image of a target: spec x host files (or an arch list) x lock -> Dockerfile, compose.yaml.

Pure: `image_plan` decides (through the planner) which variant one image can be for the
union of the hosts' GPUs, and `image_files` renders the text of the build context's files
from templates/dockerfile/. Writing them, and copying provision's own tree beside them, is
dockercontext.py's job.

The image is two stages. The build stage is NVIDIA's CUDA `devel` image of the toolkit the
lockfile builds with: provision runs there on Ubuntu's python3, seeds the bundle (or mirrors
one, online) and `provision apply`s the target for the planned archs, offline. The final stage
is the `base` image of torch's CUDA (what the hosts' drivers were checked against; the env
brings torch's own CUDA libraries): the env, provision and the weights are copied into it,
no compiler. Paths are fixed, so the plan made here is the one the build makes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import PlanRefused, UsageError
from ..host import Compiler, HostFacts, Nvcc
from ..lock.facts import LockFacts
from ..plan import Plan, PlanOptions, build_toolkit, choose_variant, make_plan
from ..spec import LoadedSpec
from ..templating import render
from ..versions import Dotted, cc_arch

DATA = "/opt/provision"  # the data dir in the image: envs/, weights, and (build stage only) sources and wheels
TOOL = "/opt/provision-tool"  # provision itself: src/ (its tree), bootstrap/ (build stage), cli/ (the final venv)
BUNDLE_MOUNT = "/mnt/provision-bundle"
WHEELS_MOUNT = "/mnt/provision-wheels"
OS = "ubuntu22.04"  # its python3 is 3.10, the Python of every target and of the wheels provision needs
OS_PYTHON = "3.10"
USER_ID = 1000
MARK = "# provision dockerfile"  # the first line of every file provision writes here: it may replace them


@dataclass(frozen=True)
class ImageInputs:
    """What the command line says, checked: the hosts (or archs), the variant, the bundle."""

    hosts: tuple[HostFacts, ...] = ()
    host_names: tuple[str, ...] = ()  # their file names, for the comments
    arch_list: tuple[str, ...] | None = None  # --arch-list (else the union of the hosts' GPUs)
    variant: str | None = None
    bundle: str | None = None  # the bundle's absolute path (a named build context), or None: mirror online
    wheels: bool = False  # wheels/ in the context holds provision's dependencies: no index
    requirements: tuple[str, ...] = ()  # provision's own dependencies (its metadata's Requires-Dist)
    locks: Mapping[str, LockFacts] = field(default_factory=dict)


@dataclass(frozen=True)
class ImagePlan:
    plan: Plan  # made for the build stage: the variant, the archs, the env
    toolkit: str  # the CUDA toolkit the extensions build with (the lock's)
    build_image: str
    final_image: str
    images_why: tuple[str, ...]
    runtime_nvcc: bool  # an extension compiles at run time: the final stage keeps the toolkit


def _image_host(spec_python: str, toolkit: str, ram_gb: float, swap_gb: float) -> HostFacts:
    """The build stage as a host: what NVIDIA's devel image has, known without running it. The
    build's own `provision apply` probes the machine it runs on for memory and cores."""
    return HostFacts(label=f"the image's build stage (nvidia/cuda {toolkit} devel, {OS})", os="linux",
                     distro="Ubuntu 22.04", home="/root", data_dir=DATA, cpu_count=1, ram_gb=ram_gb, swap_gb=swap_gb,
                     nvcc=[Nvcc(path="/usr/local/cuda/bin/nvcc", version=toolkit, on_path=True)],
                     cxx=Compiler(path="/usr/bin/g++", name="gcc", version="11.4.0", lto=True),
                     pythons={"/usr/bin/python3": f"{spec_python}.12"})


def _image(spec, cuda: str, kind: str, field_name: str) -> str:  # type: ignore[no-untyped-def]
    tk = spec.cuda_toolkits.get(cuda)
    if tk is None or tk.image_version is None:
        raise UsageError(f"no nvidia/cuda image is known for CUDA {cuda} ({field_name}): envs/shared/cuda.yaml "
                         f"cuda_toolkits.\"{cuda}\".image_version is not set",
                         hint=f"add the newest {cuda}.x tag NVIDIA publishes for {OS} (e.g. image_version: \"{cuda}.0\" "
                              f"if nvidia/cuda:{cuda}.0-{kind}-{OS} exists), or choose another --variant")
    if Dotted(tk.image_version).major_minor() != Dotted(cuda).major_minor():
        raise UsageError(f"envs/shared/cuda.yaml cuda_toolkits.\"{cuda}\".image_version {tk.image_version} is not a "
                         f"CUDA {cuda} release", hint=f"give a {cuda}.x version")
    return f"nvidia/cuda:{tk.image_version}-{kind}-{OS}"


def image_plan(loaded: LoadedSpec, inputs: ImageInputs) -> ImagePlan:
    """The variant every host can run, its build toolkit and base images, and the plan the build makes."""
    spec = loaded.spec
    if inputs.arch_list is not None:
        archs = [Dotted(a) for a in inputs.arch_list]
    else:
        archs = sorted({a for h in inputs.hosts for a in h.compute_capabilities()})
    if not archs:
        raise UsageError("the host files name no GPU, so there is no arch to build for",
                         hint="pass host files of the machines with the GPUs (`provision doctor --save host.json` "
                              "there), or --arch-list 8.6;8.9;9.0")
    blank = _image_host(spec.python, "0.0", spec.resources.ram_gb, spec.resources.swap_gb)
    given = archs if inputs.arch_list is not None else []  # the hosts' own GPUs are checked with each host
    variant, why, _ = choose_variant(spec, blank, inputs.variant, set(inputs.locks), given, inputs.hosts)
    toolkit = build_toolkit(spec.variants[variant], inputs.locks.get(variant))
    host = _image_host(spec.python, toolkit, spec.resources.ram_gb, spec.resources.swap_gb)
    opts = PlanOptions(variant=variant, data_dir=DATA, prefix=f"{DATA}/envs/{spec.name}", locks=inputs.locks,
                       arch_list=tuple(a.text for a in archs), runs_on=inputs.hosts)
    plan = make_plan(loaded, host, opts)
    if plan.blockers:
        raise PlanRefused(f"the image of {spec.name} ({variant}) cannot be built", [
            f"{b.what} (fix: {b.fix})" for b in plan.blockers], hint=plan.blockers[0].fix)
    plan = plan.model_copy(update={"variant_reason": why})
    cuda = spec.variants[variant].cuda
    runtime_nvcc = any(e.nvcc == "runtime" for e in spec.extensions_for(variant))
    build = _image(spec, toolkit, "devel", f"the toolkit {variant} builds with")
    final = build if runtime_nvcc else _image(spec, cuda, "base", f"torch's CUDA in {variant}")
    lock_says = (f"lockfiles/{spec.name}/{variant}/conda-lock.yml records provision-toolkit {toolkit}"
                 if inputs.locks.get(variant) and inputs.locks[variant].toolkit else
                 f"envs/{spec.name}.yaml variants.{variant}.toolkit is {toolkit}")
    why_images = (
        f"build: {build}: nvcc {toolkit}, the CUDA toolkit the extensions build with ({lock_says}); apply uses "
        "its nvcc, which fits, so no conda toolkit is installed",
        f"final: {final}: " + (f"an extension of {variant} compiles at run time, so the final stage keeps nvcc"
                               if runtime_nvcc else
                               f"torch's CUDA {cuda} (variants.{variant}.cuda), the CUDA each host's driver was checked "
                               "for; the env carries torch's own CUDA libraries, so `base` (no compiler, no second "
                               "copy of cuBLAS) is enough"),
        f"tags: envs/shared/cuda.yaml cuda_toolkits.<version>.image_version ({OS})")
    return ImagePlan(plan=plan, toolkit=toolkit, build_image=build, final_image=final, images_why=why_images,
                     runtime_nvcc=runtime_nvcc)


def image_env(loaded: LoadedSpec, plan: Plan) -> dict[str, str]:
    """The plan's activation variables, plus where the Hub and torch.hub caches are when the spec
    names none: seed puts the weights there, the final stage copies them, the app reads them."""
    spec = loaded.spec
    env = dict(plan.env)
    if spec.weights.huggingface and "HF_HOME" not in env:
        env["HF_HOME"] = f"{DATA}/huggingface"
    if spec.weights.torch_hub and "TORCH_HOME" not in env:
        env["TORCH_HOME"] = f"{DATA}/torch"
    return dict(sorted(env.items()))


def _data_dirs(env: Mapping[str, str], prefix: str) -> list[str]:
    """The directories under the data dir the app reads at run time (the env's variables name them):
    copied into the final stage; sources, wheelhouse, channel and build caches stay behind."""
    dirs = sorted({v.rstrip("/") for v in env.values() if v.startswith(DATA + "/") and "," not in v and ":" not in v})
    keep = [d for d in dirs if not any(d != o and d.startswith(o + "/") for o in dirs)]
    return [d for d in keep if d != prefix and not d.startswith(prefix + "/")]


def _shm(gb: float) -> str:
    return f"{int(gb)}gb" if float(gb).is_integer() else f"{round(gb * 1024)}mb"


def _runs(loaded: LoadedSpec, ip: ImagePlan, inputs: ImageInputs, env: Mapping[str, str]) -> list[dict[str, object]]:
    """The build stage's RUNs after python3: each an argv (exec form: no shell), the mount it needs, why."""
    spec, plan = loaded.spec, ip.plan
    boot, cli = f"{TOOL}/bootstrap/bin/python", f"{TOOL}/cli/bin/python"
    req = f"{TOOL}/src/requirements.txt"
    wheels = f"--mount=type=bind,source=wheels,target={WHEELS_MOUNT}" if inputs.wheels else ""
    no_index = ["--no-index", "--find-links", WHEELS_MOUNT] if inputs.wheels else []
    from_where = "from wheels/ in the context (no index)" if inputs.wheels else "from PyPI (online)"
    pth = ("import pathlib, sysconfig; pathlib.Path(sysconfig.get_path('purelib'), 'provision-src.pth')"
           f".write_text('{TOOL}/src')")
    bundle = BUNDLE_MOUNT if inputs.bundle else f"{DATA}/bundles/{spec.name}"
    mount = f"--mount=type=bind,from=bundle,target={BUNDLE_MOUNT}" if inputs.bundle else ""
    runs: list[dict[str, object]] = [
        {"why": "a venv for provision while the env does not exist yet", "argv": ["python3", "-m", "venv",
                                                                                  f"{TOOL}/bootstrap"]},
        {"why": f"provision's dependencies, {from_where}", "mount": wheels,
         "argv": [boot, "-m", "pip", "install", "--no-cache-dir", *no_index, "-r", req]},
        {"why": f"provision itself: its tree in {TOOL}/src, on the venv's path", "argv": [boot, "-c", pth]},
    ]
    if not inputs.bundle:
        runs.append({"why": f"the online step: everything {spec.name} needs, into a bundle in the build stage (the "
                            "Hub, GitHub, PyPI, download.pytorch.org as the lockfile says); give --bundle to build "
                            "offline instead",
                     "argv": [boot, "-m", "provision", "mirror", spec.name, "--variant", plan.variant, "--to", bundle]})
    seed = [boot, "-m", "provision", "seed", bundle, "--data-dir", DATA]
    seed += ["--hf-home", env["HF_HOME"]] if "HF_HOME" in env else []
    seed += ["--torch-home", env["TORCH_HOME"]] if "TORCH_HOME" in env else []
    runs += [
        {"why": "every blob of the bundle checked, then placed: weights, wheelhouse, conda channel, sources",
         "mount": mount, "argv": seed},
        {"why": f"the env, offline from what seed placed: extensions built for {plan.torch_cuda_arch_list}, then "
                "verify (its GPU checks are skipped here: no GPU in a build)", "mount": mount,
         "argv": [boot, "-m", "provision", "apply", spec.name, "--variant", plan.variant, "--arch-list",
                  plan.torch_cuda_arch_list, "--data-dir", DATA, "--prefix", plan.prefix, "--offline", "--bundle",
                  bundle]},
        {"why": "provision for the final stage, on the env's own Python (the final stage has no other)",
         "argv": [f"{plan.prefix}/bin/python", "-m", "venv", f"{TOOL}/cli"]},
        {"why": f"its dependencies, {from_where}", "mount": wheels,
         "argv": [cli, "-m", "pip", "install", "--no-cache-dir", *no_index, "-r", req]},
        {"why": "provision itself, on that venv's path", "argv": [cli, "-c", pth]},
    ]
    data_dirs = _data_dirs(env, plan.prefix)
    if data_dirs:
        runs.append({"why": "the data directories the final stage copies, there even if nothing was placed in one",
                     "argv": ["mkdir", "-p", *data_dirs]})
    return [{"mount": "", **r} for r in runs]


def image_files(loaded: LoadedSpec, ip: ImagePlan, inputs: ImageInputs) -> dict[str, str]:
    """Dockerfile, compose.yaml, .dockerignore and provision-src/requirements.txt, as text."""
    spec, plan = loaded.spec, ip.plan
    if spec.resources.shm_gb is None:
        raise UsageError(f"envs/{spec.name}.yaml: resources.shm_gb is not set: compose.yaml's shm_size comes from it",
                         hint="add `shm_gb: N` (GB of /dev/shm the app's container gets) under resources:, with a why")
    env = image_env(loaded, plan)
    port = spec.app.port
    probe = f"http://127.0.0.1:{port}{spec.app.ready_path}"
    health = f"import urllib.request as u; u.build_opener(u.ProxyHandler({{}})).open({probe!r}, timeout=5)"
    ctx = {
        "mark": MARK, "target": spec.name, "variant": plan.variant, "variant_reason": plan.variant_reason,
        "cuda": plan.cuda, "toolkit": ip.toolkit, "arch_list": plan.torch_cuda_arch_list,
        "sms": ", ".join(cc_arch(Dotted(a)) for a in plan.arch_list), "hosts": list(inputs.host_names),
        "build_image": ip.build_image, "final_image": ip.final_image, "images_why": list(ip.images_why),
        "bundle": inputs.bundle, "wheels": inputs.wheels, "tool": TOOL, "data": DATA, "prefix": plan.prefix,
        "runs": _runs(loaded, ip, inputs, env), "env": list(env.items()), "uid": USER_ID,
        "copies": [plan.prefix, *_data_dirs(env, plan.prefix), f"{TOOL}/src", f"{TOOL}/cli"],
        "path": f"{plan.prefix}/bin:{TOOL}/cli/bin", "port": port, "start_period": spec.app.ready_timeout_s,
        "health": [f"{plan.prefix}/bin/python", "-c", health], "probe": probe,
        "entrypoint": [f"{TOOL}/cli/bin/python", "-m", "provision"],
        "cmd": ["run", spec.name, "--variant", plan.variant, "--host-address", "0.0.0.0", "--port", str(port)],
        "shm": _shm(spec.resources.shm_gb), "shm_gb": spec.resources.shm_gb, "ram_gb": spec.resources.ram_gb,
        "vram_gb": spec.resources.vram_gb, "image": f"provision-{spec.name}:{plan.variant}",
        "labels": [("org.opencontainers.image.title", f"provision {spec.name}"), ("provision.target", spec.name),
                   ("provision.variant", plan.variant), ("provision.arch-list", plan.torch_cuda_arch_list),
                   ("provision.cuda", plan.cuda), ("provision.toolkit", ip.toolkit),
                   ("provision.spec-digest", plan.spec_digest)],
    }
    return {
        "Dockerfile": render("dockerfile/Dockerfile.j2", **ctx),
        "compose.yaml": render("dockerfile/compose.yaml.j2", **ctx),
        ".dockerignore": render("dockerfile/dockerignore.j2", **ctx),
        "provision-src/requirements.txt": render("dockerfile/requirements.txt.j2", requirements=inputs.requirements),
    }


def next_steps(out: str, target: str, variant: str) -> list[str]:
    """What to type after the files are written (the user's shell quotes `out` if it needs it)."""
    import shlex

    c = f"docker compose -f {shlex.quote(out.rstrip('/') + '/compose.yaml')}"
    return [f"{c} build", f"{c} up", f"{c} run --rm {target} verify {target} --variant {variant}   "
                                     "# the GPU checks, on a machine with the GPU"]


__all__ = ["DATA", "MARK", "TOOL", "ImageInputs", "ImagePlan", "image_env", "image_files", "image_plan",
           "next_steps"]
