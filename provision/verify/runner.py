"""Runs a compiled checklist inside the target's own interpreter and prints JSON results.

    <env>/bin/python runner.py checklist.json

Standalone on purpose: it imports nothing of provision and only the standard library at
the top (the target's Python may be older and has none of provision's dependencies).
Each check returns status ok | warn | fail | skipped with a detail; the host side adds
the fix and the explanation. Nothing here writes anything.

Longer than 400 lines because it is one file on purpose: the env's Python runs it as a script,
with no package around it to import a second module from, and every in-env check lives here.
"""

import glob
import importlib
import importlib.metadata
import json
import os
import re
import site
import subprocess
import sys
import sysconfig
import traceback

RESULTS = []


def result(check, status, detail, **extra):
    r = {"id": check["id"], "status": status, "detail": detail}
    r.update(extra)
    RESULTS.append(r)


def gpu_present():
    """Whether this machine has an NVIDIA GPU at all (without importing torch).
    PROVISION_VERIFY_GPU=1/0 overrides the answer where detection is wrong."""
    forced = os.environ.get("PROVISION_VERIFY_GPU")
    if forced in ("0", "1"):
        return forced == "1"
    if os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/dxg"):
        return True
    return bool(glob.glob("/proc/driver/nvidia/gpus/*"))


HAS_GPU = gpu_present()


def _torch():
    import torch  # noqa: PLC0415 - imported once, by the checks that need it

    return torch


def c_python_version(c):
    have = "%d.%d" % sys.version_info[:2]
    return ("ok" if have == c["expect"] else "fail"), "Python %s (%s)" % (sys.version.split()[0], sys.executable)


def c_packages(c):
    from importlib import metadata

    wrong, missing = [], []
    for name, want in sorted(c["expect"].items()):
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        if have != want and have.split("+")[0] != want.split("+")[0]:
            wrong.append("%s %s (locked %s)" % (name, have, want))
    torches = set()
    for path in sys.path:
        torches.update(glob.glob(os.path.join(path, "torch-*.dist-info")))
    extra = ["%d torch installs: %s" % (len(torches), ", ".join(sorted(torches)))] if len(torches) > 1 else []
    if wrong or missing or extra:
        parts = (["missing: " + _few(missing, ", ")] if missing else []) + (["wrong: " + _few(wrong, "; ")] if wrong else []) + extra
        return "fail", " | ".join(parts)
    return "ok", "%d packages at their locked versions" % len(c["expect"])


def _few(items, sep, n=8):
    return sep.join(items[:n]) + (" and %d more" % (len(items) - n) if len(items) > n else "")


def c_torch_cuda(c):
    torch = _torch()
    v, cuda = torch.__version__, torch.version.cuda
    problems = []
    if c.get("expect_version") and v.split("+")[0] != c["expect_version"].split("+")[0]:
        problems.append("torch %s, locked %s" % (v, c["expect_version"]))
    if c.get("expect_cuda") and (cuda or "none")[: len(c["expect_cuda"])] != c["expect_cuda"]:
        problems.append("built for CUDA %s, the variant needs %s" % (cuda or "none (a CPU build)", c["expect_cuda"]))
    return ("fail" if problems else "ok"), "; ".join(problems) or "torch %s, CUDA %s" % (v, cuda)


def c_cuda_available(c):
    torch = _torch()
    if torch.cuda.is_available():
        return "ok", "%d GPU(s): %s" % (torch.cuda.device_count(), torch.cuda.get_device_name(0))
    return "fail", "torch.cuda.is_available() is False"


def c_arch(c):
    torch = _torch()
    major, minor = torch.cuda.get_device_capability(0)
    sm = "sm_%d%d" % (major, minor)
    archs = torch.cuda.get_arch_list()
    if sm in archs:
        return "ok", "%s is in torch's arch list %s" % (sm, " ".join(archs))
    ptx = [a for a in archs if a.startswith("compute_") and int(a[8:]) <= major * 10 + minor]
    if ptx:
        return "warn", "%s not in %s: runs through JIT from %s PTX (slow first start)" % (sm, " ".join(archs), ptx[-1])
    return "fail", "the GPU is %s; this torch has kernels for %s only" % (sm, " ".join(archs))


def _explain_import(e):
    text = "%s: %s" % (type(e).__name__, e)
    m = re.search(r"(lib[\w.+-]+\.so[\w.]*): cannot open shared object file", text)
    if m:
        return text, "missing-library", m.group(1)
    if "undefined symbol" in text:
        return text, "undefined-symbol", None
    if "No module named" in text:
        return text, "not-installed", None
    if "PackageNotFoundError" in text or "No package metadata" in text:
        return text, "no-metadata", None
    return text, "other", None


def c_import(c):
    try:
        importlib.import_module(c["module"])
    except BaseException as e:  # an extension may raise anything, even SystemExit
        text, cause, lib = _explain_import(e)
        return "fail", text, {"cause": cause, "library": lib}
    return "ok", "import %s" % c["module"]


def _module_files(module, dist=None):
    """The .so files of an extension: under its package, and every one its installed
    distribution lists (nvdiffrast's binary is a top-level `_nvdiffrast_c`, outside its package)."""
    mod = importlib.import_module(module.split(".")[0])
    paths = list(getattr(mod, "__path__", [])) or [os.path.dirname(getattr(mod, "__file__", "") or "")]
    sos = []
    for p in paths:
        sos += glob.glob(os.path.join(p, "**", "*.so"), recursive=True)
    f = getattr(mod, "__file__", "") or ""
    if f.endswith(".so"):
        sos.append(f)
    if dist:
        try:
            files = importlib.metadata.distribution(dist).files or []
        except importlib.metadata.PackageNotFoundError:
            files = []
        sos += [str(f.locate()) for f in files if f.name.endswith(".so") or ".so." in f.name]
    return sorted(set(os.path.realpath(s) for s in sos))


def c_binary_arch(c):
    """Which SASS / PTX the extension's .so files carry (cuobjdump), against the GPU."""
    try:
        sos = _module_files(c["module"], c.get("dist"))
    except BaseException as e:
        return "fail", "cannot import %s to find its binaries: %s" % (c["module"], e)
    if not sos:
        return "warn", "no .so file found for %s" % c["module"]
    cuobjdump = os.environ.get("PROVISION_CUOBJDUMP") or _which("cuobjdump")
    if not cuobjdump:
        return "skipped", "cuobjdump not found (it comes with the CUDA toolkit)"
    sass, ptx = set(), set()
    for so in sos:
        for flag, out in (("--list-elf", sass), ("--list-ptx", ptx)):
            r = subprocess.run([cuobjdump, flag, so], capture_output=True, text=True)
            out.update(re.findall(r"sm_(\d+)", r.stdout))
    need = None
    if HAS_GPU:
        try:
            major, minor = _torch().cuda.get_device_capability(0)
            need = "%d%d" % (major, minor)
        except BaseException:
            need = None
    expect = [a.replace(".", "") for a in c.get("expect", [])]
    detail = "SASS %s, PTX %s in %d file(s)" % (" ".join(sorted("sm_" + s for s in sass)) or "none",
                                               " ".join(sorted("compute_" + s for s in ptx)) or "none", len(sos))
    target = need or (expect[0] if expect else None)
    if target is None:
        return "ok", detail, {"sass": sorted(sass), "ptx": sorted(ptx)}
    if target in sass:
        return "ok", detail, {"sass": sorted(sass), "ptx": sorted(ptx)}
    # PTX runs on any GPU of the same or newer architecture, JIT-compiled at first use
    if any(int(p) <= int(target) for p in ptx):
        return "warn", detail + "; sm_%s only through PTX JIT" % target, {"sass": sorted(sass), "ptx": sorted(ptx)}
    return "fail", detail + "; nothing for sm_%s" % target, {"sass": sorted(sass), "ptx": sorted(ptx), "gpu": target}


def _which(name):
    for d in os.environ.get("PATH", "").split(os.pathsep) + [os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin")]:
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return None


def _run_code(code):
    ns = {"__name__": "__provision_check__"}
    exec(compile(code, "<check>", "exec"), ns)


def _kernel_cause(text):
    if "no kernel image is available" in text:
        return "no-kernel-image"
    m = re.search(r"Tried to allocate ([\d.]+) ([GT]i?B)", text)
    if m and float(m.group(1)) * (1024 if m.group(2).startswith("T") else 1) > 4096:
        return "absurd-allocation"  # sizes read back from kernels that never ran
    if "undefined symbol" in text:
        return "undefined-symbol"
    if "out of memory" in text:
        return "oom"
    return "other"


def c_kernel(c):
    try:
        _run_code(c["code"])
    except BaseException as e:
        text = "%s: %s" % (type(e).__name__, str(e).strip().splitlines()[0] if str(e).strip() else "")
        return "fail", text, {"cause": _kernel_cause(str(e))}
    return "ok", "ran"


def c_api(c):
    try:
        _run_code(c["code"])
    except BaseException as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return "fail", "%s: %s" % (type(e).__name__, msg)
    return "ok", c["title"]


def c_env_choice(c):
    v = os.environ.get(c["name"])
    if v is None:
        return "fail", "%s is not set" % c["name"]
    if v not in c["choices"]:
        close = [x for x in c["choices"] if x.replace("_", "-") == v.replace("_", "-")]
        hint = " (did you mean %r?)" % close[0] if close else ""
        return "fail", "%s=%r is not one of %s%s" % (c["name"], v, ", ".join(c["choices"]), hint)
    return "ok", "%s=%s" % (c["name"], v)


def c_pth_shim(c):
    dirs = [sysconfig.get_paths()["purelib"]] + list(getattr(site, "getsitepackages", lambda: [])())
    for d in dirs:
        p = os.path.join(d, c["file"])
        if os.path.isfile(p):
            lines = [l.strip() for l in open(p) if l.strip() and not l.startswith(("#", "import "))]
            bad = [l for l in lines if not os.path.isdir(l)]
            inside = os.path.realpath(sys.prefix) + os.sep
            tmp = [l for l in lines if l.startswith(("/tmp/", "/var/tmp/")) and not os.path.realpath(l).startswith(inside)]
            if bad:
                return "fail", "%s points at %s, which does not exist" % (p, ", ".join(bad))
            if tmp:
                return "fail", "%s points into %s, which the OS empties" % (p, ", ".join(tmp))
            return "ok", "%s -> %s" % (p, ", ".join(lines))
    return "fail", "no %s in %s" % (c["file"], ", ".join(sorted(set(dirs))))


def _local_snapshot(repo, revision):
    """The seeded snapshot of a Hugging Face repo at that revision, as the app's own
    huggingface_hub finds it offline (raises when it is not there)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from huggingface_hub import snapshot_download

    return snapshot_download(repo, revision=revision, local_files_only=True)


def c_hf_offline(c):
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        return "skipped", "huggingface_hub is not installed in this environment"
    try:
        path = _local_snapshot(c["repo"], c.get("revision"))
    except BaseException as e:
        return "fail", "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")
    return "ok", path


def c_app_import(c):
    """`from MODULE import NAME`, the app's own entry point, from wherever the env's path finds it."""
    try:
        mod = importlib.import_module(c["module"])
        getattr(mod, c["name"])
    except BaseException as e:
        text, cause, lib = _explain_import(e)
        return "fail", text, {"cause": cause, "library": lib}
    where = os.path.dirname(getattr(mod, "__file__", "") or "")
    if c.get("cwd") and not os.path.realpath(where).startswith(os.path.realpath(c["cwd"]) + os.sep):
        return "warn", "%s.%s comes from %s, not the app installed in the env (%s)" % (
            c["module"], c["name"], where, c["cwd"])
    return "ok", "from %s import %s (%s)" % (c["module"], c["name"], where)


def c_app_smoke(c):
    """The app's pipeline built from the local weights with the Hub offline. Without the
    weights seeded it is skipped (saying which are missing), never passed."""
    missing = []
    for w in c.get("weights", []):
        try:
            _local_snapshot(w["repo"], w["revision"])
        except BaseException:
            missing.append(w["repo"])
    if missing:
        return "skipped", "weights not seeded: %s" % ", ".join(missing)
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    here = os.getcwd()
    try:
        if c.get("cwd"):
            os.chdir(c["cwd"])
        _run_code(c["code"])
    except BaseException as e:
        text = "%s: %s" % (type(e).__name__, str(e).strip().splitlines()[0] if str(e).strip() else "")
        return "fail", text, {"cause": _kernel_cause(str(e))}
    finally:
        os.chdir(here)
    return "ok", "built from the local weights, offline"


# Every audit event by which Python reaches the network (names, then sockets): while a check is
# "offline" each is recorded and refused, so nothing leaves this machine and nothing is missed.
NET_EVENTS = frozenset(["urllib.Request", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
                        "socket.getnameinfo", "socket.connect", "socket.sendto", "socket.sendmsg"])
_NET = {"armed": False, "seen": [], "hooked": False}


def _net_hook(event, args):
    if _NET["armed"] and event in NET_EVENTS:
        _NET["seen"].append("%s %s" % (event, repr(args[1:] if event == "socket.connect" else args)[:120]))
        raise OSError("provision verify: %s refused, this check allows no network" % event)


def _offline(fn, *args):
    """fn(*args) with every network event refused: (its result or None, its error or None, the events)."""
    if not _NET["hooked"]:
        sys.addaudithook(_net_hook)
        _NET["hooked"] = True
    _NET["armed"], _NET["seen"] = True, []
    try:
        return fn(*args), None, list(_NET["seen"])
    except BaseException as e:
        return None, e, list(_NET["seen"])
    finally:
        _NET["armed"] = False


def _shims_state(what):
    """Why a startup shim may not be at work, for a failure's detail."""
    if os.environ.get("PROVISION_SHIMS", "").strip().lower() in ("0", "false", "no", "off"):
        return "PROVISION_SHIMS=%s turns the startup shims off" % os.environ["PROVISION_SHIMS"]
    mod = sys.modules.get("_provision_shims")
    if mod is None:
        return "the startup shims are not installed (no _provision_shims.pth in %s)" % sysconfig.get_paths()["purelib"]
    errors = [e for e in getattr(mod, "ERRORS", []) if e.startswith((what, "startup"))]
    return "the startup shim did not apply: %s" % "; ".join(errors) if errors else "the startup shim is not at work"


def c_torch_hub_local(c):
    try:
        hub = importlib.import_module("torch.hub")
    except BaseException as e:
        return "fail", "torch.hub cannot be imported in this env (%s: %s)" % (type(e).__name__, e), {"cause": "no-torch"}
    owner, name = c["repo"].split("/")
    cached = os.path.join(hub.get_dir(), "_".join([owner, name, c["ref"].replace("/", "_")]))
    resolve = getattr(hub, "_parse_repo_info", None)
    if resolve is None:
        return "fail", "this torch has no torch.hub._parse_repo_info: its ref resolution is not the one the shim knows"
    got, err, seen = _offline(resolve, c["repo"])
    if seen or err is not None:
        what = "asked the network first (%s)" % "; ".join(seen[:3]) if seen else "raised %s: %s" % (type(err).__name__, err)
        if not os.path.isfile(os.path.join(cached, "hubconf.py")):
            return "fail", "torch.hub %s: %s/hubconf.py is not there, so it must" % (what, cached), {"cause": "not-seeded"}
        return "fail", "torch.hub %s although %s is cached: %s" % (what, cached, _shims_state("torch.hub"))
    if tuple(got) != (owner, name, c["ref"]):
        return "fail", "torch.hub resolved %s to %r, not the seeded ref %s" % (c["repo"], got, c["ref"])
    by = "the provision startup shim" if getattr(resolve, "__provision_shim__", None) else "torch itself"
    return "ok", "%s -> %s with no connection (%s)" % (c["repo"], cached, by)


def c_gradio_schema(c):
    try:
        utils = importlib.import_module("gradio_client.utils")
        version = importlib.metadata.version("gradio_client")
    except BaseException as e:
        return "fail", "gradio_client cannot be imported in this env (%s: %s)" % (type(e).__name__, e)
    got, bad = [], []
    for schema in c["schemas"]:
        try:
            got.append(str(utils.json_schema_to_python_type(schema)))
        except BaseException as e:
            bad.append("%s -> %s: %s" % (json.dumps(schema), type(e).__name__, e))
    if bad:
        return "fail", "gradio_client %s: %s; %s" % (version, "; ".join(bad), _shims_state("gradio_client.utils"))
    by = "the provision startup shim" if getattr(utils.json_schema_to_python_type, "__provision_shim__", None) else "itself"
    return "ok", "gradio_client %s reads them (%s): %s" % (version, by, ", ".join(got))


CHECKS = {
    "python-version": c_python_version, "packages": c_packages, "torch-cuda": c_torch_cuda,
    "cuda-available": c_cuda_available, "arch": c_arch, "import": c_import, "binary-arch": c_binary_arch,
    "kernel": c_kernel, "api": c_api, "env-choice": c_env_choice, "pth-shim": c_pth_shim,
    "hf-offline": c_hf_offline, "app-import": c_app_import, "app-smoke": c_app_smoke,
    "torch-hub-local": c_torch_hub_local, "gradio-schema": c_gradio_schema,
}


def main():
    with open(sys.argv[1]) as f:
        checklist = json.load(f)
    for c in checklist["checks"]:
        fn = CHECKS.get(c["kind"])
        if fn is None:
            continue  # a host-side check
        if c.get("needs_gpu") and not HAS_GPU:
            result(c, "skipped", "skipped: no GPU")
            continue
        try:
            out = fn(c)
        except BaseException as e:  # a check must never take the others down
            out = ("fail", "%s: %s" % (type(e).__name__, e), {"trace": traceback.format_exc()[-800:]})
        status, detail = out[0], out[1]
        result(c, status, detail, **(out[2] if len(out) > 2 else {}))
    sys.stdout.write("\n@@PROVISION-RESULTS@@" + json.dumps({"results": RESULTS, "gpu": HAS_GPU}) + "\n")


if __name__ == "__main__":
    main()
