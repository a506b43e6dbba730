"""Lock stage: spec x variant x platform -> conda-lock file (conda via rattler, pip via uv).

A lock is made whole or not at all: both halves are solved in memory and the file is
written (atomically) only when both succeed.
"""

from __future__ import annotations

import datetime as dt
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LockError, Unreachable, UsageError
from ..fsutil import atomic_write_text
from ..settings import display_path
from ..spec import LoadedSpec
from ..templating import render
from . import conda as conda_half
from . import contents, lockfile
from . import pip as pip_half
from . import wheelfacts
from .inputs import PYPI, LockInputs, lock_inputs


@dataclass
class LockOptions:
    lockdir: Path
    platform: str = "linux-64"
    channel_snapshot: Path | None = None
    default_index: str = PYPI
    exclude_newer: str | None = None  # ISO date-time; default: the lockfile's, else today
    upgrade: bool = False  # ignore the lockfile's exclude-newer and take today's packages
    cuda_toolkit: bool = True  # False: lock without the conda CUDA toolkit, and record that
    wheel_facts: Path | None = None  # recorded wheels standing in for unreachable indexes (wheelfacts.py)
    refresh: bool = False  # ask the indexes again instead of trusting uv's cache (--check --resolve)


@dataclass
class LockResult:
    target: str
    variant: str
    path: Path
    written: bool
    conda: int
    pip: int
    git: int
    seconds: float
    exclude_newer: str
    categories: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"target": self.target, "variant": self.variant, "path": display_path(self.path),
                "written": self.written, "conda_packages": self.conda, "pip_packages": self.pip,
                "git_packages": self.git, "categories": self.categories,
                "exclude_newer": self.exclude_newer, "seconds": round(self.seconds, 2)}


def _parse_when(text: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def _exclude_newer(opts: LockOptions, path: Path) -> str:
    """The publication cutoff: what makes re-locking the same inputs give the same bytes."""
    if opts.exclude_newer:
        if opts.exclude_newer == "none":
            return "none"
        try:
            return _parse_when(opts.exclude_newer).strftime("%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            raise UsageError(f"--exclude-newer {opts.exclude_newer!r} is not a date-time",
                             hint="e.g. 2026-11-01 or 2026-11-01T00:00:00Z, or 'none' for no cutoff") from None
    if not opts.upgrade and path.is_file():
        try:
            prev = lockfile.custom(lockfile.read(path), lockfile.META_EXCLUDE_NEWER)
        except Exception:
            prev = None
        if prev:
            return prev
    today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return today.strftime("%Y-%m-%dT%H:%M:%SZ")


def lock_variant(loaded: LoadedSpec, variant: str, opts: LockOptions) -> LockResult:
    t0 = time.perf_counter()
    inputs: LockInputs = lock_inputs(loaded.spec, variant, opts.platform)
    path = lockfile.lockfile_path(opts.lockdir, loaded.name, variant)
    when = _exclude_newer(opts, path)
    cutoff = None if when == "none" else _parse_when(when)
    conda = conda_half.solve(inputs, opts.channel_snapshot, cutoff, with_cuda=opts.cuda_toolkit)
    py = next((r.version for r in conda if r.name == "python"), inputs.python)
    facts = wheelfacts.load(opts.wheel_facts) if opts.wheel_facts is not None else None
    try:
        pip = pip_half.resolve(inputs, py, opts.default_index, cutoff, _previous_pins(path, opts), facts,
                               refresh=opts.refresh)
    except Unreachable as e:
        alt = _same_cuda_without(loaded, variant, e.index, opts.platform)
        if alt and e.hint:
            e.hint += f"; or lock variant {alt}, the same CUDA build without that index: provision lock {loaded.name} --variant {alt}"
        raise
    pip = [*pip, *_prebuilt_records(loaded, variant, inputs)]
    conda_from = "snapshot" if opts.channel_snapshot else "live"
    cuda = (f"locked: {' '.join(inputs.cuda_specs)}" if opts.cuda_toolkit else
            "not locked (--no-cuda-toolkit): apply can build only with a system nvcc the plan accepts")
    toolkit = [r for r in conda if r.category != conda_half.MAIN] + [r for r in pip if "cuda-toolkit" in r.categories]
    if inputs.toolkit_requirements:
        cuda = f"locked: {' '.join(inputs.toolkit_requirements)} (wheels)"
    model = lockfile.build(inputs, conda, pip, _source_name(loaded), when, conda_from, cuda,
                           toolkit_digest=lockfile.toolkit_digest([r.sha256 for r in toolkit]) if toolkit else None)
    header = render(
        "conda-lock-header.j2", target=loaded.name, spec_ref=shlex.quote(_spec_ref(loaded)), variant=variant, platform=inputs.platform,
        source=_source_name(loaded), extra_args=_extra_args(opts), conda_count=len(conda),
        cuda_category=any(r.category != conda_half.MAIN for r in conda),
        cuda_count=sum(r.category != conda_half.MAIN for r in conda),
        conda_from=f"the channel snapshot in {opts.channel_snapshot.name}/" if opts.channel_snapshot
        else ", ".join(inputs.channels), pip_count=len(pip) - len(inputs.git),
        git=[f"{g.name}@{g.commit[:12]}" for g in inputs.git], cuda_toolkit=cuda, exclude_newer=when,
        prebuilt=inputs.prebuilt,
    )
    text = lockfile.render(model, header)
    old = path.read_text() if path.is_file() else None
    written = old != text
    if written:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    cats: dict[str, int] = {}
    for r in conda:
        cats[f"conda:{r.category}"] = cats.get(f"conda:{r.category}", 0) + 1
    return LockResult(loaded.name, variant, path, written, len(conda), len(pip) - len(inputs.git),
                      len(inputs.git), time.perf_counter() - t0, when, cats)


def _prebuilt_records(loaded: LoadedSpec, variant: str, inputs: LockInputs) -> list[pip_half.PipRecord]:
    """The prebuilt wheels the lock takes (prebuilt.py), as hashed pip files like the others:
    the pip half installs them, mirror carries them, and the plan builds nothing for them."""
    from packaging.utils import canonicalize_name

    exts = {e.name: e for e in loaded.spec.extensions_for(variant)}
    out = []
    for c in inputs.prebuilt:
        if c["kind"] != "wheel":
            continue
        e = exts[c["extension"]]
        deps = tuple(sorted({"torch", *(canonicalize_name(r.name) for r in e.requires)}))
        out.append(pip_half.PipRecord(name=c["dist"], version=c["version"], url=c["url"],
                                      sha256=c["sha256"], dependencies=deps))
    return out


def _previous_pins(path: Path, opts: LockOptions) -> dict[str, str] | None:
    """The versions the lockfile being replaced holds: the re-lock prefers them (uv's preferences)."""
    if opts.upgrade or not path.is_file():
        return None
    try:
        lock = lockfile.read(path)
        pins = [*lockfile.pip_pins(lock), *lockfile.pip_pins(lock, category="cuda-toolkit")]
        return {p.name: p.version for p in pins if not p.git}
    except LockError:
        return None  # unreadable: lock afresh, as if there were none


def _same_cuda_without(loaded: LoadedSpec, variant: str, index: str | None, platform: str) -> str | None:
    """Another variant of the same CUDA build that does not need `index` (kaolin's page -> cu121-pypi)."""
    if index is None:
        return None
    cuda = loaded.spec.variants[variant].cuda
    for k, v in loaded.spec.variants.items():
        if k != variant and v.cuda == cuda and index not in lock_inputs(loaded.spec, k, platform).sources.values():
            return k
    return None


def _shipped(loaded: LoadedSpec) -> bool:
    from ..settings import envs_dir

    return loaded.path.resolve().parent == envs_dir().resolve()


def _source_name(loaded: LoadedSpec) -> str:
    """The spec a lockfile was made from, as its header and metadata name it."""
    return f"envs/{loaded.path.name}" if _shipped(loaded) else _rel(loaded.path)


def _spec_ref(loaded: LoadedSpec) -> str:
    """What `provision lock` is given to make it again: the target's name for a shipped spec."""
    return loaded.name if _shipped(loaded) else _rel(loaded.path)


def _extra_args(opts: LockOptions) -> str:
    args = []
    if opts.channel_snapshot is not None:
        args.append(f"--channel-snapshot {shlex.quote(_rel(opts.channel_snapshot))}")
    if not opts.cuda_toolkit:
        args.append("--no-cuda-toolkit")
    if opts.wheel_facts is not None:
        args.append(f"--wheel-facts {shlex.quote(_rel(opts.wheel_facts))}")
    if opts.default_index != PYPI:
        args.append(f"--index-url {shlex.quote(opts.default_index)}")
    return "".join(" " + a for a in args)


def _rel(p: Path) -> str:
    """A path as the header's command should name it: relative to the checkout when inside it."""
    from ..settings import ROOT

    try:
        return str(p.resolve().relative_to(ROOT.resolve()))
    except ValueError:
        return str(p.resolve())  # not relative to wherever lock happened to run


def variants_to_lock(loaded: LoadedSpec, variant: str | None, all_variants: bool) -> list[str]:
    spec = loaded.spec
    if variant is not None:
        if variant not in spec.variants:
            raise UsageError(f"unknown variant {variant!r} for {spec.name}",
                             hint=f"variants of {spec.name}: {', '.join(spec.variants)}")
        return [variant]
    return list(spec.variants) if all_variants else [spec.default_variant()]


def header_options(path: Path, lockdir: Path) -> LockOptions:
    """The options of the command a lockfile's header says made it (what --check --resolve reruns)."""
    import shlex

    from ..settings import ROOT

    line = next((li.strip("# \n") for li in path.read_text(errors="replace").splitlines()[:6]
                 if li.startswith("#     provision lock ")), "")
    words = shlex.split(line)
    opts = LockOptions(lockdir=lockdir)
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if w == "--channel-snapshot":
            opts.channel_snapshot = (ROOT / nxt) if not Path(nxt).is_absolute() else Path(nxt)
        elif w == "--wheel-facts":
            opts.wheel_facts = (ROOT / nxt) if not Path(nxt).is_absolute() else Path(nxt)
        elif w == "--no-cuda-toolkit":
            opts.cuda_toolkit = False
        elif w == "--index-url":
            opts.default_index = nxt
    return opts


def resolves_the_same(loaded: LoadedSpec, path: Path, variant: str) -> tuple[bool, str]:
    """Re-run the header's lock command into a scratch copy: does it write the same bytes?"""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="provision-relock-") as tmp:
        copy = lockfile.lockfile_path(Path(tmp), loaded.name, variant)
        copy.parent.mkdir(parents=True)
        shutil.copyfile(path, copy)
        opts = header_options(path, Path(tmp))
        opts.refresh = True  # what the indexes say now, not what uv remembers of them
        lock_variant(loaded, variant, opts)
        same = copy.read_bytes() == path.read_bytes()
        if same:
            return True, "a re-resolve writes the same bytes"
        old = {p.name: p.version for p in lockfile.pip_pins(lockfile.read(path))}
        new = {p.name: p.version for p in lockfile.pip_pins(lockfile.read(copy))}
        moved = [f"{n} {old.get(n, '-')} -> {new.get(n, '-')}" for n in sorted(set(old) | set(new))
                 if old.get(n) != new.get(n)]
        return False, "a re-resolve would change it" + (f": {', '.join(moved[:8])}" if moved else " (not the pins)")


@dataclass
class CheckResult:
    target: str
    variant: str
    path: Path
    status: str  # fresh | stale | missing
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"target": self.target, "variant": self.variant, "path": display_path(self.path),
                "status": self.status, "detail": self.detail}


def _relock_command(loaded: LoadedSpec, variant: str, path: Path, lockdir: Path) -> str:
    """The header's lock command when it is this variant's (a copied file's is not), with --lockdir
    when the locks are elsewhere."""
    from ..settings import lockfiles_dir

    mine = f"provision lock {shlex.quote(_spec_ref(loaded))} --variant {variant}"
    header = next((line.strip("# \n") for line in path.read_text().splitlines()[:5]
                   if line.startswith("#     provision lock ")), "")
    cmd = header if header == mine or header.startswith(mine + " ") else mine
    if lockdir.resolve() != lockfiles_dir().resolve():
        cmd += f" --lockdir {shlex.quote(display_path(lockdir))}"
    return cmd


def check_locks(loaded: LoadedSpec, lockdir: Path, variants: list[str] | None = None,
                platform: str = "linux-64", resolve: bool = False) -> list[CheckResult]:
    """Compare each lockfile's recorded inputs with what the spec gives now (offline, fast).

    Without `variants`, checks the lockfiles that exist for the target."""
    out = []
    names = variants if variants is not None else [
        v for v in loaded.spec.variants if lockfile.lockfile_path(lockdir, loaded.name, v).is_file()]
    if variants is None:  # said, not failed: a variant may stay unlocked (no public hashes for it)
        out += [CheckResult(loaded.name, v, lockfile.lockfile_path(lockdir, loaded.name, v), "unlocked",
                            f"no lockfile: plans take a locked variant instead; `provision lock "
                            f"{shlex.quote(_spec_ref(loaded))} --variant {v}` makes one")
                for v in loaded.spec.variants if v not in names]
    for v in names:
        path = lockfile.lockfile_path(lockdir, loaded.name, v)
        if not path.is_file():
            out.append(CheckResult(loaded.name, v, path, "missing", "no lockfile"))
            continue
        inputs = lock_inputs(loaded.spec, v, platform)
        lock = lockfile.read(path)
        st = lockfile.check(path, inputs, lock)
        again = _relock_command(loaded, v, path, lockdir)
        detail = "matches the spec" if st.fresh else (
            f"the spec's lock inputs changed (lockfile {str(st.found)[:12]}, spec {st.expected[:12]}): run `{again}`")
        status = "fresh" if st.fresh else "stale"
        if st.fresh:
            edited = contents.problems(lock, inputs)
            if edited:
                out.append(CheckResult(loaded.name, v, path, "edited", "the lockfile's body contradicts its spec or "
                                       f"its own metadata: {contents.summary(edited)}: run `{again}` to write it "
                                       "again (or review the edit)"))
                continue
        if st.fresh and resolve:
            same, why = resolves_the_same(loaded, path, v)
            detail = f"matches the spec; {why}" + ("" if same else f": run `{again}` to take it")
            status = "fresh" if same else "stale"
        out.append(CheckResult(loaded.name, v, path, status, detail))
    return out


__all__ = ["CheckResult", "LockOptions", "LockResult", "check_locks", "lock_inputs", "lock_variant",
           "lockfile", "variants_to_lock"]
