"""The conda half of a lock: solved with py-rattler, for a named platform, never this machine.

Virtual packages are set explicitly (__glibc of the platform floor, __cuda of the
variant), so the same inputs solve the same way wherever the lock runs. Channels are
read live, or from a *channel snapshot*: a directory holding, per channel, a
`<subdir>/repodata.json` of real records whose `info.base_url` points back at the real
channel, so the lockfile carries the real URLs and hashes (CEP-15 repodata).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from ..errors import LockError, Unreachable
from ..settings import cache_dir
from .inputs import PLATFORMS, LockInputs

CHANNEL_ALIAS = "https://conda.anaconda.org"
MAIN, CUDA = "main", "cuda-toolkit"


@dataclass(frozen=True)
class CondaRecord:
    name: str
    version: str
    build: str
    subdir: str
    url: str
    md5: str
    sha256: str
    depends: tuple[str, ...]
    category: str


def channel_url(channel: str) -> str:
    return channel if "://" in channel else f"{CHANNEL_ALIAS}/{channel}"


def snapshot_path(snapshot: Path, channel: str) -> Path:
    """Where a snapshot keeps `channel`: conda-forge -> SNAP/conda-forge."""
    return snapshot / channel.split("://", 1)[-1].removeprefix("conda.anaconda.org/").strip("/")


def _sources(channels: list[str], snapshot: Path | None, platform: str) -> list[str]:
    out = []
    for ch in channels:
        if snapshot is None:
            out.append(channel_url(ch))
            continue
        d = snapshot_path(snapshot, ch)
        missing = [s for s in (platform, "noarch") if not (d / s / "repodata.json").is_file()]
        if missing:
            raise LockError(
                f"channel snapshot {snapshot} has no {', '.join(s + '/repodata.json' for s in missing)} "
                f"for channel {ch!r} (looked in {d})",
                hint="lock against the live channel (drop --channel-snapshot) on a machine that reaches it",
            )
        out.append(str(d.resolve()))
    return out


def _virtual_packages(inputs: LockInputs) -> list[object]:
    import rattler

    def vp(name: str, version: str, build: str = "0") -> object:
        return rattler.GenericVirtualPackage(
            rattler.PackageName(name), rattler.Version(version), rattler.BuildString(build)
        )

    return [
        vp("__unix", "0"),
        vp("__linux", "5.15"),
        vp("__glibc", PLATFORMS[inputs.platform]["glibc"]),
        vp("__cuda", inputs.cuda),
        vp("__archspec", "1", "x86_64"),
    ]


def solve(inputs: LockInputs, snapshot: Path | None = None, exclude_newer: dt.datetime | None = None,
          with_cuda: bool = True) -> list[CondaRecord]:
    """Solve main (python, pip) and the CUDA toolkit together; label each record's category.

    Together, so that installing the toolkit later never changes a package of main."""
    import rattler
    import rattler.exceptions as rx

    channels = list(dict.fromkeys([*inputs.channels, *([inputs.cuda_channel] if with_cuda else [])]))
    sources = _sources(channels, snapshot, inputs.platform)
    specs = [*inputs.conda_specs, *(inputs.cuda_specs if with_cuda else [])]
    gateway = rattler.Gateway(cache_dir=cache_dir() / "rattler")
    try:
        records = asyncio.run(
            rattler.solve(
                sources,
                specs,
                gateway=gateway,
                platforms=[inputs.platform, "noarch"],
                virtual_packages=_virtual_packages(inputs),
                exclude_newer=exclude_newer if snapshot is None else None,
                timestamp_policy="allow-missing",
            )
        )
    except rx.SolverError as e:
        where = f"channel snapshot {snapshot}" if snapshot else ", ".join(channels)
        raise LockError(
            f"conda packages of {inputs.target}/{inputs.variant} cannot be solved from {where}:\n{e}",
            hint=("a channel snapshot holds only the records it was built from (channels/SOURCES.md); "
                  "--no-cuda-toolkit locks without the conda CUDA toolkit and says so in the lockfile")
            if snapshot else "check the versions under conda.packages and the variant's CUDA version",
        ) from None
    except (rx.FetchRepoDataError, rx.GatewayError) as e:
        raise Unreachable(
            f"cannot read conda channel(s) {', '.join(channels)}: {e}",
            hint="lock on a machine that reaches them, or pass --channel-snapshot DIR",
        ) from None
    by_name = {r.name.normalized: r for r in records}
    main = _closure([s.split()[0] for s in inputs.conda_specs], by_name)
    out = []
    for r in records:
        name = r.name.normalized
        if name.startswith("__"):
            continue
        out.append(CondaRecord(
            name=name,
            version=str(r.version),
            build=str(r.build),
            subdir=r.subdir,
            url=r.url,
            md5=r.md5.hex() if r.md5 else "",
            sha256=r.sha256.hex() if r.sha256 else "",
            depends=tuple(r.depends),
            category=MAIN if name in main else CUDA,
        ))
    for rec in out:
        if not (rec.md5 and rec.sha256):
            raise LockError(f"conda record {rec.name} {rec.version} {rec.build} has no "
                            f"{'md5' if not rec.md5 else 'sha256'}: refusing to lock a package it cannot check",
                            hint="fix the channel (or snapshot) record; provision never invents a hash")
    return sorted(out, key=lambda r: r.name)


def _closure(roots: list[str], by_name: dict[str, object]) -> set[str]:
    seen: set[str] = set()
    todo = [r for r in roots if r in by_name]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        for d in by_name[n].depends:  # type: ignore[attr-defined]
            dn = d.split()[0]
            if dn in by_name and dn not in seen:
                todo.append(dn)
    return seen
