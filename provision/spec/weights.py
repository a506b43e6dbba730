"""The weights a target downloads: Hugging Face repos, plain URLs and torch.hub repos.

Each is pinned (a commit, a checksum) or says why it cannot be (`unpinned:`), so a mirror
fetches the same bytes every time and seed can check them.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, StrictStr, field_validator, model_validator

from .fields import FULL_COMMIT_RE, SHA256_RE, Number, StrictModel, check_commit, check_url


class HFRepo(StrictModel):
    repo: StrictStr
    revision: StrictStr  # a commit sha: `main` moves
    unpinned: StrictStr | None = None  # why no commit is known yet; then revision may be a branch
    optional: bool = False  # not needed by the default app (e.g. text-to-3D models)
    files: list[StrictStr] = Field(default_factory=lambda: ["*"])
    repo_type: Literal["model", "dataset", "space"] = "model"
    gated: bool = False
    licence_url: StrictStr | None = None
    size_gb: Number | None = None
    local_dir_env: StrictStr | None = None  # env var the app reads a local path from
    why: StrictStr | None = None

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$", v):
            raise ValueError(f"{v!r} is not a Hugging Face repo id (owner/name)")
        return v

    @model_validator(mode="after")
    def _rev(self) -> "HFRepo":
        if not FULL_COMMIT_RE.match(self.revision) and not self.unpinned:
            raise ValueError(f"revision {self.revision!r} is not pinned (a 40-hex commit sha); "
                             "if no commit is known yet, say why in `unpinned:`")
        return self


class Checksum(StrictModel):
    sha256: StrictStr | None = None
    md5: StrictStr | None = None  # only where upstream publishes nothing stronger

    @model_validator(mode="after")
    def _one(self) -> "Checksum":
        if self.sha256 and not SHA256_RE.match(self.sha256):
            raise ValueError(f"sha256 {self.sha256!r} is not 64 lowercase hex digits")
        if self.md5 and not re.match(r"^[0-9a-f]{32}$", self.md5):
            raise ValueError(f"md5 {self.md5!r} is not 32 lowercase hex digits")
        return self


class UrlWeight(StrictModel):
    name: StrictStr
    url: StrictStr
    sha256: StrictStr | None = None
    md5: StrictStr | None = None
    size: int | None = None
    dest: StrictStr  # where the app looks, e.g. {U2NET_HOME}/u2net.onnx
    why: StrictStr | None = None

    _u = field_validator("url")(classmethod(lambda cls, v: check_url(v)))

    @model_validator(mode="after")
    def _sum(self) -> "UrlWeight":
        if not self.sha256 and not self.md5:
            raise ValueError("needs a checksum: sha256 (or md5 where upstream publishes only that)")
        Checksum(sha256=self.sha256, md5=self.md5)
        return self


class HubCheckpoint(StrictModel):
    url: StrictStr
    file: StrictStr  # name under $TORCH_HOME/hub/checkpoints/
    sha256: StrictStr | None = None
    size: int | None = None

    _u = field_validator("url")(classmethod(lambda cls, v: check_url(v)))


class TorchHubRepo(StrictModel):
    """A torch.hub repo: its source at a commit, and the checkpoints its entrypoints load."""

    repo: StrictStr  # owner/name on GitHub
    commit: StrictStr
    ref: StrictStr = "main"  # the branch name torch.hub caches it under (owner_name_ref)
    entrypoints: list[StrictStr] = Field(min_length=1)
    checkpoints: list[HubCheckpoint] = Field(default_factory=list)
    why: StrictStr | None = None

    _c = field_validator("commit")(classmethod(lambda cls, v: check_commit(v)))


class Weights(StrictModel):
    huggingface: list[HFRepo] = Field(default_factory=list)
    urls: list[UrlWeight] = Field(default_factory=list)
    torch_hub: list[TorchHubRepo] = Field(default_factory=list)
