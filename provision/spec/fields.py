"""The building blocks of the spec schema: a strict base model and the field checks.

Every model forbids unknown keys (a typo must fail, not be ignored) and coerces nothing;
the checks here are the ones several models share (versions, commits, URLs, names).
"""

from __future__ import annotations

import re
from typing import Annotated

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, BeforeValidator, ConfigDict

from ..versions import Dotted

SCHEMA_VERSION = 1

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
PKG_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
COMMIT_RE = re.compile(r"^[0-9a-f]{7,40}$")
FULL_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
VARIANT_KEY = re.compile(r"^(cu\d{3}|cpu)(-[a-z0-9]+)*$")  # cu121, or cu121-pypi: a second way to the same build
CU_LOCAL_RE = re.compile(r"^cu\d+$")


class StrictModel(BaseModel):
    """conda-lock's StrictModel: unknown keys are errors, values are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- field types -------------------------------------------------------------------


def _int_to_float(v: object) -> object:
    """Strict mode refuses 16 for a float field; a whole number of GB is fine."""
    return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


Number = Annotated[float, BeforeValidator(_int_to_float)]


def check_dotted(v: str) -> str:
    Dotted(v)  # raises ValueError with a clear message
    return v


def check_commit(v: str) -> str:
    if not COMMIT_RE.match(v):
        raise ValueError(f"{v!r} is not a git commit (7 to 40 lowercase hex digits)")
    return v


def check_url(v: str) -> str:
    if not re.match(r"^(https?|file)://[^\s]+$", v):
        raise ValueError(f"{v!r} is not an http(s) or file URL")
    return v


def check_pkg_name(v: str) -> str:
    if not PKG_RE.match(v):
        raise ValueError(f"{v!r} is not a valid package name")
    return v


def pip_version(v: str) -> str:
    """An exact PEP 440 version, '*' (upstream leaves it open), or a specifier set."""
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
    if parsed.local and CU_LOCAL_RE.match(parsed.local) and not re.match(r"^cu\d{3}$", parsed.local):
        raise ValueError(f"{v!r} is not a valid version: CUDA local labels are 'cu' and three digits (+cu121)")
    return v

