"""The commands apply runs, in order, with their environments (pure text: no I/O)."""

from __future__ import annotations

import shlex

from ..ids import url_file_name
from ..versions import Dotted, cc_arch
from ..spec import Extension, LoadedSpec, SdistSource, TargetSpec, UpstreamPathSource
from .model import ExtensionPlan, NvccPlan, Step


def upstream_name(spec: TargetSpec) -> str:
    """The upstream app's source name (`--source NAME=DIR`; in a bundle sources/NAME-COMMIT.zip)."""
    return f"{spec.name}-upstream"


def upstream_dir(spec: TargetSpec, data: str) -> str:
    """The upstream checkout in the data dir, shared by the envs that build from it."""
    return f"{data}/src/{upstream_name(spec)}"


def app_dir(prefix: str) -> str:
    """The env's own copy of the app, at the commit it was installed with: a later checkout of
    another commit in the data dir never changes an env under it."""
    return f"{prefix}/share/provision/app"


def source_dir(spec: TargetSpec, ext: Extension, data: str) -> str:
    """Where an extension's source is checked out (or its sdist saved) under the data dir."""
    src = ext.source
    if isinstance(src, UpstreamPathSource):
        return f"{upstream_dir(spec, data)}/{src.upstream_path}"
    if isinstance(src, SdistSource):
        return f"{data}/src/{url_file_name(src.sdist)}"
    base = f"{data}/src/{ext.name}"
    return f"{base}/{src.subdirectory}" if src.subdirectory else base


def fill(text: str, subst: dict[str, str]) -> str:
    """Replace each {key} of `subst` in `text`; other braces stay as they are."""
    for k, v in subst.items():
        text = text.replace("{" + k + "}", v)
    return text


def ext_arch_digits(e: Extension, archs: list[Dotted]) -> str:
    """The planned archs as the extension's build knows them: each the highest of its build_archs of
    the same major not above it (flash-attn builds 80/90/100/120 only: an sm_86 GPU runs sm_80 SASS).
    A planned arch with none of its major stays as it is (the build then falls back to torch's list)."""
    known = sorted(Dotted(a) for a in e.build_archs or [])
    out = []
    for a in archs:
        fit = [k for k in known if k.major == a.major and k <= a]
        out.append(cc_arch(fit[-1] if fit else a).removeprefix("sm_"))
    return ";".join(dict.fromkeys(out))


def plan_steps(loaded: LoadedSpec, variant: str, exts: list[Extension], ext_plans: list[ExtensionPlan],
               nvcc: NvccPlan, arch_list: str, prefix: str, data: str, env: dict[str, str],
               subst: dict[str, str], archs: list[Dotted]) -> list[Step]:
    spec = loaded.spec
    q = shlex.quote
    py = f"{prefix}/bin/python"
    compiled = f"{prefix}/share/provision/compiled"  # per env: its shims and activation name this prefix
    constraints = f"{prefix}/share/provision/constraints.txt"
    steps = [
        Step(id="compile", title="compile the lockfile, hashed requirements, activation and shims for this host",
             command=f"provision compile {spec.name} --variant {variant} --out {q(compiled)}"),
        Step(id="sources", title="fetch the app and the extension sources at their pinned commits (bundle, else git)",
             command=f"git clone URL {q(data + '/src')}/NAME && git -C {q(data + '/src')}/NAME checkout COMMIT   # per source"),
        Step(id="create-env", title=f"create the environment (Python {spec.python}) from the lockfile",
             command=f"py-rattler: install the conda packages of {q(compiled + '/conda-lock.yml')} into {q(prefix)}"),
    ]
    if nvcc.needed:  # before the pip half: a wrong nvcc stops apply before gigabytes of downloads
        check = (f"check {nvcc.path}: it runs, its CUDA major is torch's ({spec.variants[variant].cuda}), it compiles "
                 f"for {arch_list or 'the GPU'}, it accepts the host compiler")
        if nvcc.source == "toolkit":
            steps.append(Step(id="toolkit", title=f"the CUDA {nvcc.version} build toolkit (nvcc, headers) in the shared "
                                                  f"prefix {nvcc.cuda_home}, then {check}",
                              command=f"py-rattler: install the cuda-toolkit category of {q(compiled + '/conda-lock.yml')} into "
                                      f"{q(nvcc.cuda_home or '')} (once per toolkit; sha256 checked); {check}"))
        else:
            steps.append(Step(id="toolkit", title=f"check the nvcc the builds use ({nvcc.path})", command=check))
    steps.append(Step(id="pip-install", title="install the locked pip packages, hashes enforced",
                      command=f"{q(py)} -m pip install --no-deps --require-hashes -r {q(compiled + '/requirements.txt')}"))
    torch = spec.torch_version(variant)
    steps.append(Step(id="torch-guard", title=f"pin torch {torch} and every installed package for later steps",
                      command=f"{q(py)} -m pip list > {q(constraints)} (as name==version); check torch is {torch}; "
                              "after every build, check nothing pinned moved"))
    for e, ep in zip(exts, ext_plans):
        # MAX_JOBS is torch's (setup.py builds); CMake builds (scikit-build-core: torchmcubes) read
        # CMAKE_BUILD_PARALLEL_LEVEL instead, and without it ninja runs one job per core
        build_env = {"TORCH_CUDA_ARCH_LIST": arch_list, "MAX_JOBS": str(ep.max_jobs),
                     "CMAKE_BUILD_PARALLEL_LEVEL": str(ep.max_jobs)}
        # the env's bin first, as when it is activated: torch runs `ninja` from PATH, and without
        # it compiles the sources one by one, whatever MAX_JOBS says
        if nvcc.cuda_home:
            build_env["CUDA_HOME"] = nvcc.cuda_home
        if nvcc.cc and nvcc.cxx:  # torch hands CC to nvcc as -ccbin
            build_env["CC"], build_env["CXX"] = nvcc.cc, nvcc.cxx
        dirs = [f"{prefix}/bin", *([f"{nvcc.cuda_home}/bin"] if nvcc.cuda_home else []), "$PATH"]
        build_env["PATH"] = ":".join(dict.fromkeys(dirs))
        build_env.update({k: fill(v, {**subst, "ext_arch_digits": ext_arch_digits(e, archs)}) for k, v in e.env.items()})
        src = source_dir(spec, e, data)
        if e.build == "wheel":
            wheels = f"{data}/wheels/{e.name}"
            cmd = (f"uv build --wheel --no-build-isolation --python {q(py)} --out-dir {q(wheels)} {q(src)} && "
                   f"{q(py)} -m pip install --no-deps --no-index -c {q(constraints)} {q(wheels)}/*.whl")
        else:
            # built where it stays: a directory inside the env (never /tmp), named by a .pth shim
            dest = f"{prefix}/share/provision/ext/{e.name}"
            cmd = (f"mkdir -p {q(dest)} && cp -a {q(src)}/. {q(dest)}/ && cd {q(dest)} && {q(py)} setup.py build_ext "
                   f"--inplace && echo {q(dest)} > \"$({q(py)} -c 'import sysconfig; print(sysconfig.get_path(\"purelib\"))')"
                   f"/provision-{e.name}.pth\"")
        steps.append(Step(id=f"build-{e.name}", title=f"build {e.name} ({e.build}, {ep.max_jobs} jobs, archs {arch_list or 'none'})",
                          command=cmd, env=build_env))
    app = app_dir(prefix)
    steps.append(Step(id="app", title=f"install the {spec.name} app ({spec.upstream.repo} at {spec.upstream.commit[:12]}) "
                                      "into the env and make it importable",
                      command=f"cp -a {q(upstream_dir(spec, data))}/. {q(app)}/ && echo {q(app)} > "
                              f"\"$({q(py)} -c 'import sysconfig; print(sysconfig.get_path(\"purelib\"))')/provision-app.pth\""))
    steps.append(Step(id="activation", title="install the activate.d / deactivate.d scripts with the spec's variables",
                      command=f"cp -r {q(compiled + '/etc')} {q(prefix)}/", env=env))
    if spec.weights.huggingface or spec.weights.urls or spec.weights.torch_hub:
        bundle = f"{data}/bundles/{spec.name}"
        steps.append(Step(id="weights", title="fetch and place the weights",
                          command=f"provision mirror {spec.name} --to {q(bundle)} && provision seed {q(bundle)}"))
    steps.append(Step(id="verify", title="run the post-install checklist",
                      command=f"provision verify {spec.name} --prefix {q(prefix)}"))
    return steps
