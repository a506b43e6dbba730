"""Spec stage: a target's YAML (and the fragments it includes) -> a validated `LoadedSpec`.

    fields.py   the strict base model and the field checks models share
    models.py   the target schema (packages, variants, extensions, env, app, checklist)
    sources.py  where what is built comes from (git commit, sdist by hash, upstream directory)
    weights.py  Hugging Face repos, URL weights and torch.hub repos
    rules.py    rules that relate one part of a spec to another
    yamlloc.py  YAML loading that keeps file:line for every value
    load.py     includes, validation, located errors, the spec digest
    cache.py    specs that loaded cleanly, remembered: unchanged bytes are not parsed again

Every later stage receives a `LoadedSpec`, never YAML.
"""

from .load import LoadedSpec, load_spec, load_target, resolve_target, target_paths
from .models import (ApiCheck, App, AppImport, Check, Conda, CondaPackage, CudaToolkit, EnvVar, Extension, FileCheck, GitSource,
                     HostConstraints, ImportCheck, Index, KernelCheck, Override, Pip, PipPackage, Resources,
                     SdistSource, TargetSpec, Upstream, UpstreamPathSource, Variant)
from .weights import Checksum, HFRepo, HubCheckpoint, TorchHubRepo, UrlWeight, Weights

__all__ = [
    "ApiCheck", "App", "AppImport", "Check", "Checksum", "Conda", "CondaPackage", "CudaToolkit", "EnvVar", "Extension",
    "FileCheck", "GitSource", "HFRepo", "HostConstraints", "HubCheckpoint", "ImportCheck", "Index", "KernelCheck",
    "LoadedSpec", "Override", "Pip", "PipPackage", "Resources", "SdistSource", "TargetSpec", "TorchHubRepo",
    "Upstream", "UpstreamPathSource", "UrlWeight", "Variant", "Weights", "load_spec", "load_target", "resolve_target",
    "target_paths",
]
