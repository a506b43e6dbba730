"""The env's startup shims, from the spec alone (pure): a module and the one .pth line that imports it.

Two upstream failures are fixed where they happen, when the app imports the module at fault
(templates/compile/provision_shims.py.j2 says how):

- `torch.hub.load("owner/repo", ...)` without a ref asks github.com for the default branch
  before it looks at its cache; for every repo the spec seeds (`weights.torch_hub`), the
  cached source is used under the spec's ref with no connection at all;
- gradio_client < 1.8 crashes on `additionalProperties: true` (every gradio_client so far on
  `false`); with `app.shims: [gradio-boolean-schema]` a boolean schema reads as Any, only
  where the installed gradio_client fails on one.

`provision compile` writes both files under site-packages/; the activation step of `provision
apply` copies them into the env's purelib. The .pth holds one fixed line and no value
(templating.py refuses to print any into it); the settings are JSON inside the module.
"""

from __future__ import annotations

import json
from typing import Any

from ..spec import TargetSpec
from ..templating import render

MODULE = "_provision_shims"
DIR = "site-packages"  # in the compiled tree; apply copies these into the env's purelib
FILES = (f"{MODULE}.py", f"{MODULE}.pth")  # every file a shimmed env gets, in the order apply writes them
GRADIO_BOOLEAN_SCHEMA = "gradio-boolean-schema"

# What gradio_client must turn into a type: pydantic >= 2.11's schema of a `dict` field (gradio's
# FileData.meta), its `false` twin, and the same nested as gradio's own API schema nests it. The
# shim tries them to decide whether to patch; verify tries them to prove the env copes.
GRADIO_PROBES: list[dict[str, Any]] = [
    {"type": "object", "additionalProperties": True},
    {"type": "object", "additionalProperties": False},
    {"type": "object", "properties": {"meta": {"type": "object", "additionalProperties": True}}},
]


def shim_config(spec: TargetSpec) -> dict[str, Any]:
    """What the shims patch for this target; empty where there is nothing to patch."""
    repos = {h.repo: h.ref for h in spec.weights.torch_hub}
    shims = sorted(set(spec.app.shims))
    if not repos and not shims:
        return {}
    config: dict[str, Any] = {"schema": 1, "target": spec.name, "torch_hub": repos, "shims": shims}
    if GRADIO_BOOLEAN_SCHEMA in shims:
        config["gradio_probes"] = GRADIO_PROBES
    return config


def shim_files(spec: TargetSpec) -> dict[str, str]:
    """{relative path in the compiled tree: text}; none for a target that needs no shim."""
    config = shim_config(spec)
    if not config:
        return {}
    text = json.dumps(config, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return {f"{DIR}/{MODULE}.py": render("compile/provision_shims.py.j2", config=text),
            f"{DIR}/{MODULE}.pth": render("compile/shims.pth.j2")}


__all__ = ["DIR", "FILES", "GRADIO_BOOLEAN_SCHEMA", "GRADIO_PROBES", "MODULE", "shim_config", "shim_files"]
