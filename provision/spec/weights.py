"""The weights a target downloads: Hugging Face repos, plain URLs and torch.hub repos.

Each is pinned (a commit, a checksum) or says why it cannot be (`unpinned:`), so a mirror
fetches the same bytes every time and seed can check them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .. import ids
from .fields import (Commit, EnvName, FileName, GitHubRepo, Glob, HFRepoId, Identifier, Md5, Number, Place, Prose,
                     Revision, Sha256, StrictModel, Text, Url)


class HFRepo(StrictModel):
    repo: HFRepoId
    revision: Revision  # a commit sha: `main` moves
    unpinned: Prose | None = None  # why no commit is known yet; then revision may be a branch
    optional: bool = False  # not needed by the default app (e.g. text-to-3D models)
    files: list[Glob] = Field(default_factory=lambda: ["*"])
    repo_type: Literal["model", "dataset", "space"] = "model"
    gated: bool = False
    licence_url: Url | None = None
    size_gb: Number | None = Field(default=None, ge=0)
    local_dir_env: EnvName | None = None  # env var the app reads a local path from
    why: Prose | None = None

    @model_validator(mode="after")
    def _rev(self) -> "HFRepo":
        if not ids.FULL_COMMIT.fullmatch(self.revision) and not self.unpinned:
            raise ValueError(f"revision {self.revision!r} is not pinned (a 40-hex commit sha); "
                             "if no commit is known yet, say why in `unpinned:`")
        return self


class Checksum(StrictModel):
    sha256: Sha256 | None = None
    md5: Md5 | None = None  # only where upstream publishes nothing stronger


class UrlWeight(StrictModel):
    name: Text
    url: Url
    sha256: Sha256 | None = None
    md5: Md5 | None = None
    size: int | None = Field(default=None, ge=0, le=1 << 50)
    dest: Place  # where the app looks, e.g. {U2NET_HOME}/u2net.onnx
    why: Prose | None = None

    @model_validator(mode="after")
    def _sum(self) -> "UrlWeight":
        if not self.sha256 and not self.md5:
            raise ValueError("needs a checksum: sha256 (or md5 where upstream publishes only that)")
        ids.url_file_name(self.url)  # a bundle keeps it under that name
        return self


class HubCheckpoint(StrictModel):
    url: Url
    file: FileName  # name under $TORCH_HOME/hub/checkpoints/
    sha256: Sha256 | None = None
    size: int | None = Field(default=None, ge=0, le=1 << 50)


class TorchHubRepo(StrictModel):
    """A torch.hub repo: its source at a commit, and the checkpoints its entrypoints load."""

    repo: GitHubRepo  # owner/name on GitHub
    commit: Commit
    ref: Revision = "main"  # the branch name torch.hub caches it under (owner_name_ref)
    entrypoints: list[Identifier] = Field(min_length=1)
    checkpoints: list[HubCheckpoint] = Field(default_factory=list)
    why: Prose | None = None


class Weights(StrictModel):
    huggingface: list[HFRepo] = Field(default_factory=list)
    urls: list[UrlWeight] = Field(default_factory=list)
    torch_hub: list[TorchHubRepo] = Field(default_factory=list)
