"""Load a target spec: resolve includes, validate, and report errors with file:line.

The pipeline's first stage. Everything after it receives a `LoadedSpec`, never YAML.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from functools import cache
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from ..errors import SpecError, SpecProblem, UnknownTargetError
from ..settings import display_path, envs_dir
from . import cache as spec_cache
from . import models as spec_models
from . import rules as spec_rules
from . import weights as weight_models
from .fields import SCHEMA_VERSION
from .models import TargetSpec
from .yamlloc import LMap, Loc, LSeq, load_located, locate, merge, plain


@dataclass(frozen=True)
class LoadedSpec:
    spec: TargetSpec
    path: Path
    files: tuple[str, ...]  # the spec and every fragment it included, in load order
    digest: str  # sha256 of the canonical merged spec: changes iff the spec's meaning does
    sources: tuple[Path, ...] = ()  # the same files, resolved: what a cache of anything built from it checks

    @property
    def name(self) -> str:
        return self.spec.name


def target_paths(directory: Path | None = None) -> dict[str, Path]:
    d = directory or envs_dir()
    return {p.stem: p for p in sorted(d.glob("*.yaml"))}


def resolve_target(name_or_path: str, directory: Path | None = None) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    targets = target_paths(directory)
    if name_or_path in targets:
        return targets[name_or_path]
    raise UnknownTargetError(name_or_path, list(targets))


def load_target(name_or_path: str, directory: Path | None = None) -> LoadedSpec:
    return load_spec(resolve_target(name_or_path, directory))


def load_spec(path: Path) -> LoadedSpec:
    """The validated spec. Its YAML is parsed only when it changed since it last loaded cleanly
    (cache.py); validation and the rules run either way."""
    hit = spec_cache.lookup(path)
    if hit is not None:
        data, sources = hit
        try:
            spec = TargetSpec.model_validate(data)
        except ValidationError:
            pass  # cannot happen for data that loaded before; if it does, the YAML says where
        else:
            if not spec_rules.check(spec):
                shown = [display_path(path)] + [display_path(p) for p in sources[1:]]  # as a fresh load names them
                return _loaded(spec, path, shown, sources, data)
    files: list[str] = []
    resolved: list[Path] = []
    data = _load_with_includes(path, files, stack=(), resolved=resolved)
    if not isinstance(data, LMap):
        raise SpecError([SpecProblem(display_path(path), 1, "", "a spec must be a YAML mapping",
                                     "start with `name: mytarget`")])
    try:
        spec = TargetSpec.model_validate(plain(data))
    except ValidationError as e:
        raise SpecError(_problems_from_pydantic(e, data, display_path(path))) from None
    problems = [_problem(data, p, msg, hint, display_path(path)) for p, msg, hint in spec_rules.check(spec)]
    if problems:
        raise SpecError(problems)
    spec_cache.remember(path, resolved, plain(data))
    return _loaded(spec, path, files, resolved, plain(data))


def _loaded(spec: TargetSpec, path: Path, files: list[str], sources: list[Path], data: Any) -> LoadedSpec:
    canonical = json.dumps({"schema": SCHEMA_VERSION, "spec": data}, sort_keys=True, separators=(",", ":"), default=str)
    return LoadedSpec(spec, path, tuple(files), hashlib.sha256(canonical.encode()).hexdigest(), tuple(sources))


def _load_with_includes(path: Path, files: list[str], stack: tuple[Path, ...], resolved: list[Path]) -> Any:
    shown = display_path(path)
    data = load_located(path, shown)
    files.append(shown)
    resolved.append(path.resolve())
    if not isinstance(data, LMap):
        return data
    includes = data.get("include", [])
    if not isinstance(includes, LSeq):
        return data  # the model reports the wrong type with its line
    merged: Any = None
    for i, inc in enumerate(includes):
        if not isinstance(inc, str):
            continue
        where = includes.item_locs[i]
        if inc.startswith(("/", "~")) or any(ord(c) < 32 for c in inc):
            raise SpecError([SpecProblem(where.file, where.line, f"include[{i}]",
                                         f"{inc!r}: an include is a relative path to a fragment next to the spec",
                                         f"paths are relative to {display_path(path.parent)}/")])
        target = (path.parent / inc).resolve()
        if target in stack or target == path.resolve():
            raise SpecError([SpecProblem(where.file, where.line, f"include[{i}]",
                                         f"include cycle: {inc} includes this file again")])
        if not target.exists():
            raise SpecError([SpecProblem(where.file, where.line, f"include[{i}]", f"no such file {inc!r}",
                                         f"paths are relative to {display_path(path.parent)}/")])
        frag = _load_with_includes(target, files, stack + (path.resolve(),), resolved)
        frag = _without(frag, "include")
        merged = frag if merged is None else merge(merged, frag)
    return data if merged is None else merge(merged, data)


def _without(data: Any, key: str) -> Any:
    if isinstance(data, LMap) and key in data:
        out = LMap(data.loc)
        for k, v in data.items():
            if k != key:
                out[k] = v
                out.key_locs[k] = data.key_locs[k]
        return out
    return data


def _problem(data: LMap, path: tuple[object, ...], msg: str, hint: str | None, default_file: str) -> SpecProblem:
    loc, shown = locate(data, path)
    loc = loc or Loc(default_file, 1)
    return SpecProblem(loc.file, loc.line, shown, msg, hint)


_ALL_FIELDS = sorted({f for mod in (spec_models, weight_models) for m in vars(mod).values()
                      if isinstance(m, type) and issubclass(m, BaseModel) for f in m.model_fields})


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in get_args(annotation) for m in _models_in(a)]


@cache
def _homes() -> dict[str, list[str]]:
    """field -> the keys it lives under (`ram_gb` -> `resources:`), to say where a misplaced key goes."""
    out: dict[str, set[str]] = {}
    todo: list[tuple[type[BaseModel], str]] = [(spec_models.TargetSpec, "the top level")]
    seen: set[type[BaseModel]] = set()
    while todo:
        model, where = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, f in model.model_fields.items():
            out.setdefault(name, set()).add(where)
            todo += [(m, f"`{name}:`") for m in _models_in(f.annotation)]
    return {k: sorted(v) for k, v in out.items()}


def _unknown_key_hint(key: str) -> str:
    homes = _homes().get(key)
    if homes:
        return f"{key!r} is not a key here: it belongs under {' or '.join(homes)}"
    near = difflib.get_close_matches(key, _ALL_FIELDS, n=1)
    return f"did you mean {near[0]!r}?" if near else "remove it: unknown keys are errors, not ignored"


def _problems_from_pydantic(err: ValidationError, data: LMap, default_file: str) -> list[SpecProblem]:
    out: list[SpecProblem] = []
    seen: set[tuple[str, int | None, str]] = set()
    for e in err.errors(include_url=False):
        kind, loc, value = e["type"], e["loc"], e.get("input")
        msg, hint = e["msg"], None
        if kind == "extra_forbidden":
            key = loc[-1]
            msg = f"unknown key {key!r}"
            hint = _unknown_key_hint(str(key))
        elif kind == "missing":
            msg = "missing required field"
        elif kind in ("string_type",) and isinstance(value, (int, float)) and not isinstance(value, bool):
            msg = f"expected a string, got the number {value!r}"
            hint = f"YAML reads unquoted {value!r} as a number (3.10 becomes 3.1): quote it"
        elif kind == "value_error":
            msg = msg.removeprefix("Value error, ")
        elif kind.endswith("_type"):
            msg = f"{msg}, got {type(value).__name__} {value!r}"[:200]
        problem = _problem(data, loc, msg, hint, default_file)
        key = (problem.file, problem.line, problem.path + problem.message)
        if key not in seen:
            seen.add(key)
            out.append(problem)
    return out
