"""Small real environments for the startup shims' tests: a venv of this Python that sees this
interpreter's packages (the CPU torch and gradio_client 1.3.0 of the test extra) through a .pth,
with or without the shims a compile of a shipped target writes, installed by apply's own code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from provision.apply.shims import env_purelib, install_shims
from provision.host import load_host
from provision.plan import PlanOptions, make_plan
from provision.render.checklist import compile_checklist
from provision.render.shims import shim_files
from provision.spec import load_target

from conftest import FIXTURES

PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
DINOV2_CHECKPOINT = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_reg4_pretrain.pth"

# What facebookresearch/dinov2's hubconf.py does for TRELLIS, small: build the model, then load its
# weights with torch.hub.load_state_dict_from_url (served from $TORCH_HOME/hub/checkpoints/).
HUBCONF = f"""\
import torch

dependencies = ["torch"]


def dinov2_vitl14_reg(pretrained=True, **kwargs):
    model = torch.nn.Linear(2, 2)
    if pretrained:
        model.load_state_dict(torch.hub.load_state_dict_from_url({DINOV2_CHECKPOINT!r}, map_location="cpu"))
    return model
"""

# TRELLIS's call (trellis/models/structured_latent_flow... -> DINOv2), watched by an audit hook:
# every network event is recorded; with TEST_NETWORK=cut a socket event is refused, as on a cut cable.
TRELLIS_LOAD = """\
import json, os, sys
NET = ("urllib.Request", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.connect",
       "socket.getnameinfo", "socket.sendto", "socket.sendmsg")
events = []
def hook(event, args):
    if event in NET:
        events.append(event)
        if os.environ.get("TEST_NETWORK") == "cut" and event.startswith("socket."):
            raise OSError("the network is cut (the test's audit hook)")
sys.addaudithook(hook)
import torch
out = {}
try:
    model = torch.hub.load(sys.argv[1], "dinov2_vitl14_reg", pretrained=True)
    out["weights"] = model.weight.flatten().tolist()
except Exception as e:
    out["error"] = "%s: %s" % (type(e).__name__, e)
shims = sys.modules.get("_provision_shims")
out.update(events=events, applied=getattr(shims, "APPLIED", None), errors=getattr(shims, "ERRORS", None))
print("@@" + json.dumps(out))
"""


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment without proxies, PYTHONPATH or a shim switch, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in PROXY_VARS and k not in ("PYTHONPATH", "PROVISION_SHIMS")}
    return {**env, "PYTHONNOUSERSITE": "1", **extra}


def make_env(root: Path, target: str | None = None, packages: bool = True) -> Path:
    """A venv at `root/env`; with `packages`, it imports this interpreter's; with `target`, the
    startup shims compiled for that target are in its site-packages. Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "env")], check=True)
    py = root / "env" / "bin" / "python"
    purelib = env_purelib(str(py))
    if packages:
        dirs = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
        (purelib / "_test_packages.pth").write_text("".join(f"{d}\n" for d in dirs))
    if target is not None:
        compiled = root / "compiled"
        for rel, text in shim_files(load_target(target).spec).items():
            (compiled / rel).parent.mkdir(parents=True, exist_ok=True)
            (compiled / rel).write_text(text)
        install_shims(str(py), compiled, print)
    return py


def seed_hub(torch_home: Path, *repos: str) -> Path:
    """$TORCH_HOME/hub as `provision seed` leaves it: each repo's source (owner_name_main/hubconf.py),
    the trusted list and the DINOv2 checkpoint (a tiny state dict, weights all 0.5)."""
    hub = torch_home / "hub"
    for repo in repos:
        (hub / f"{repo.replace('/', '_')}_main").mkdir(parents=True)
        (hub / f"{repo.replace('/', '_')}_main" / "hubconf.py").write_text(HUBCONF)
    (hub / "trusted_list").write_text("".join(f"{r.replace('/', '_')}\n" for r in repos))
    (hub / "checkpoints").mkdir(parents=True)
    subprocess.run([sys.executable, "-c", "import sys, torch; m = torch.nn.Linear(2, 2); "
                    "torch.nn.init.constant_(m.weight, 0.5); torch.save(m.state_dict(), sys.argv[1])",
                    str(hub / "checkpoints" / DINOV2_CHECKPOINT.rsplit("/", 1)[1])], check=True, capture_output=True)
    return torch_home


def trellis_load(py: Path, repo: str, **env: str) -> dict:
    """Run TRELLIS's torch.hub.load in the env; what it loaded (or its error) and every network event."""
    r = subprocess.run([str(py), "-c", TRELLIS_LOAD, repo], capture_output=True, text=True, env=child_env(**env),
                       timeout=300)
    assert "@@" in r.stdout, r.stderr[-2000:]
    return json.loads(r.stdout.rsplit("@@", 1)[1])


def run_python(py: Path, code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=child_env(**env), timeout=300)


def compiled_checklist(target: str, kinds: tuple[str, ...] = ()) -> dict:
    """The checklist `provision compile` writes for a shipped target (on the RTX 3090 WSL2 host of
    the field notes); with `kinds`, only the checks of those kinds."""
    loaded = load_target(target)
    plan = make_plan(loaded, load_host(FIXTURES / "hosts" / "rtx3090-wsl2-16g.json"), PlanOptions())
    checklist = compile_checklist(loaded.spec, plan, None)
    if kinds:
        checklist["checks"] = [c for c in checklist["checks"] if c["kind"] in kinds]
    return checklist
