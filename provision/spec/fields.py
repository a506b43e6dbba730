"""The building blocks of the spec schema: a strict base model and typed, checked fields.

Every model forbids unknown keys (a typo must fail, not be ignored), coerces nothing and
refuses infinite numbers. Every string field is one of the types below, each checked by
its validator in provision.ids at load time: a value that would escape a directory, break
a script or hide a control character never gets past the spec stage.
"""

from __future__ import annotations

import re
from typing import Annotated

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StrictStr

from .. import ids
from ..versions import Dotted

SCHEMA_VERSION = 1

ENV_NAME = ids.ENV_NAME
VARIANT_KEY = ids.VARIANT
_CU_LOCAL = re.compile(r"cu\d+")
_PROSE_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # prose may span lines; nothing else


class StrictModel(BaseModel):
    """conda-lock's StrictModel: unknown keys are errors, values are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def _int_to_float(v: object) -> object:
    """Strict mode refuses 16 for a float field; a whole number of GB is fine."""
    return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


def check_dotted(v: str) -> str:
    ids.check_text(v, "a version")
    Dotted(v)  # raises ValueError with a clear message
    return v


def pip_version(v: str) -> str:
    """An exact PEP 440 version, '*' (upstream leaves it open), or a specifier set."""
    ids.check_text(v, "a version")
    if v == "*":
        return v
    if v[:1] in "<>=!~":
        try:
            SpecifierSet(v)
        except InvalidSpecifier:
            raise ValueError(f"{v!r} is not a valid version specifier") from None
        return v
    try:
        parsed = Version(v)
    except InvalidVersion:
        raise ValueError(f"{v!r} is not a valid version") from None
    if parsed.local and _CU_LOCAL.fullmatch(parsed.local) and not re.fullmatch(r"cu\d{3}", parsed.local):
        raise ValueError(f"{v!r} is not a valid version: CUDA local labels are 'cu' and three digits (+cu121)")
    return v


def check_prose(v: str) -> str:
    """Free text (why:, notes, descriptions): lines allowed, other control characters (a
    terminal escape, a NUL) not."""
    if _PROSE_CONTROL.search(v):
        raise ValueError(f"{v[:60]!r}: text must not contain control characters")
    if len(v) > 20_000:
        raise ValueError(f"text of {len(v)} characters is too long (at most 20000)")
    return v


def check_glob(v: str) -> str:
    """A file pattern inside a repo (`ckpts/*`, `*.json`): relative, no way out."""
    return ids.check_rel_path(v, "a file pattern")


check_place = ids.check_place


def check_code(v: str) -> str:
    """Python that verify runs inside the env (smoke tests, API checks): any lines, no NUL."""
    if "\x00" in v or len(v) > 20_000:
        raise ValueError("code must be text without NUL characters, at most 20000 characters")
    return v


def check_command(v: str) -> str:
    """An app command: `python SCRIPT [ARGS]`, run with the env's Python in the upstream tree.
    {port} and {host} are filled at launch; nothing else is a placeholder."""
    import shlex

    ids.check_text(v, "a command")
    try:
        words = shlex.split(v)
    except ValueError as e:
        raise ValueError(f"{v!r} is not a command line ({e})") from None
    if len(words) < 2 or words[0] != "python":
        raise ValueError(f"{v!r}: an app command is `python SCRIPT [ARGS]` (the env's Python runs it)")
    for w in words[1:]:
        for name in re.findall(r"\{([^{}]*)\}", w):
            if name not in ("port", "host"):
                raise ValueError(f"{v!r}: {{{name}}} is not a placeholder here (only {{port}} and {{host}})")
    return v


def _t(fn):  # type: ignore[no-untyped-def]
    return Annotated[StrictStr, AfterValidator(fn)]


Text = _t(lambda v: ids.check_text(v, "a value"))  # one line, no control characters
Prose = _t(check_prose)
TargetName = _t(ids.check_target)
PackageName = _t(ids.check_package)
EnvName = _t(ids.check_env_name)
VariantKey = _t(lambda v: v)  # checked by rules.py, which says what a key should look like
Commit = _t(ids.check_commit)
Sha256 = _t(ids.check_sha256)
Md5 = _t(ids.check_md5)
Url = _t(ids.check_url)
RelPath = _t(ids.check_rel_path)
FileName = _t(ids.check_file_name)
ModuleName = _t(ids.check_module)
Identifier = _t(ids.check_identifier)
HFRepoId = _t(ids.check_hf_repo)
GitHubRepo = _t(ids.check_github_repo)
Revision = _t(ids.check_revision)
Glob = _t(check_glob)
Place = _t(check_place)
Code = _t(check_code)
Command = _t(check_command)
DottedStr = _t(check_dotted)
PipVersion = _t(pip_version)
Number = Annotated[float, BeforeValidator(_int_to_float)]
