"""Where what is built from source comes from: a git commit, an sdist by its hash, or a
directory of the upstream checkout. Split from models.py, which re-exports these names."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Discriminator, Tag, field_validator

from .. import ids
from .fields import Commit, RelPath, Sha256, StrictModel, Text, Url


class GitSource(StrictModel):
    """A git repository at a fixed commit (never a branch: branches move)."""

    git: Url
    commit: Commit
    tag: Text | None = None  # informational: the tag that commit carries
    subdirectory: RelPath | None = None  # inside the checkout: never a way out of it
    submodules: bool = False


class SdistSource(StrictModel):
    """A source archive by URL, checked by sha256."""

    sdist: Url
    sha256: Sha256

    @field_validator("sdist")
    @classmethod
    def _name(cls, v: str) -> str:
        ids.url_file_name(v)  # it is saved under that name: it must be one safe file name
        return v


class UpstreamPathSource(StrictModel):
    """A directory inside the target's own upstream checkout (o-voxel in TRELLIS.2)."""

    upstream_path: RelPath  # inside the upstream checkout


def _source_tag(v: object) -> str | None:
    if isinstance(v, dict):
        for key, tag in (("git", "Git"), ("sdist", "Sdist"), ("upstream_path", "UpstreamPath")):
            if key in v:
                return tag
        return None
    return {GitSource: "Git", SdistSource: "Sdist", UpstreamPathSource: "UpstreamPath"}.get(type(v))


Source = Annotated[
    Union[
        Annotated[GitSource, Tag("Git")],
        Annotated[SdistSource, Tag("Sdist")],
        Annotated[UpstreamPathSource, Tag("UpstreamPath")],
    ],
    Discriminator(_source_tag, custom_error_type="source_kind",
                  custom_error_message="a source needs one of `git:` (with `commit:`), `sdist:` (with `sha256:`) "
                                       "or `upstream_path:`"),
]
