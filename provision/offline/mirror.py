"""Mirror stage: everything a target downloads -> one offline bundle (see bundle.py).

Planning turns the spec's artifacts (artifacts.py) and the lockfile's packages into bundle
entries, asking the Hub for each repo's file list (size, sha256 or git blob id). Running
fetches what the bundle lacks through the download core, several files at a time, and
records each finished file in the manifest at once. A gated repo ends only its own
entries; the rest of the bundle still completes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .. import paths
from ..archives import ArchiveError, check_zip
from ..errors import ProvisionError
from . import hfhub
from .artifacts import GITHUB, Artifact, lock_artifacts, spec_artifacts, url_basename
from .bundle import Bundle, Entry, free_bytes
from .download import DiskFull, DownloadError, Job, Policy, Progress, fetch

if TYPE_CHECKING:  # the spec stage (pydantic) is imported by whoever loads a spec, not to download
    from ..spec import TargetSpec


@dataclass
class Endpoints:
    hf: str = hfhub.DEFAULT_ENDPOINT
    github: str = GITHUB  # archive base: {github}/{owner}/{repo}/archive/{commit}.zip
    url_map: dict[str, str] = field(default_factory=dict)  # URL prefix -> replacement (mirrors)

    def map(self, url: str) -> str:
        for old, new in self.url_map.items():
            if url.startswith(old):
                return new + url[len(old):]
        if self.github != GITHUB and url.startswith(GITHUB + "/"):
            return self.github + url[len(GITHUB):]
        return url


@dataclass
class Problem:
    name: str
    message: str
    hint: str | None = None
    fatal: bool = True  # False: a warning; the bundle is still complete for what it holds

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "message": self.message, "hint": self.hint, "fatal": self.fatal}


def _github_repo(url: str) -> str | None:
    m = re.match(r"^https://github\.com/([^/]+)/([^/]+?)(?:\.git)?/?$", url)
    return f"{m.group(1)}/{m.group(2)}" if m else None


def plan_entries(spec: TargetSpec, variant: str, lock: object | None, ep: Endpoints, sess,  # type: ignore[no-untyped-def]
                 token: str | None, listing: bool = False) -> tuple[list[Entry], list[Problem]]:
    """Bundle entries for one target variant. With `listing` (dry runs), a repo the Hub will
    not list is still shown, sized from the spec."""
    entries: list[Entry] = []
    problems: list[Problem] = []
    t = [spec.name]
    hf_repos = {r.repo: r for r in spec.weights.huggingface}
    arts: list[Artifact] = spec_artifacts(spec, variant)
    if lock is not None:
        from ..lock.prebuilt import taken  # the caller read the lock: its package is loaded

        arts = spec_artifacts(spec, variant, taken(spec, variant, lock)) + lock_artifacts(lock)
    for a in arts:
        if a.kind == "git":
            gh = _github_repo(a.url)
            if gh is None:
                problems.append(Problem(a.name, f"{a.url} is not on GitHub: no archive URL to mirror it by",
                                        "clone it at the pinned commit by hand into the bundle's sources/"))
                continue
            entries.append(Entry("git-archive", a.name, ep.map(f"{GITHUB}/{gh}/archive/{a.revision}.zip"),
                                 f"sources/{a.name}-{a.revision}.zip", repo=gh, revision=a.revision, targets=t))
            if a.submodules:
                problems.append(Problem(a.name, f"{a.name}: GitHub archives leave out submodules: this source is incomplete "
                                        "in the bundle", "apply fetches its submodules with git when online", fatal=False))
        elif a.kind == "hf-repo":
            r = hf_repos[a.name]
            try:
                commit, files = hfhub.repo_files(sess, ep.hf, r.repo, r.revision, token, r.files, r.licence_url)
            except DownloadError as e:
                problems.append(Problem(r.repo, e.message, e.hint))
                if listing:  # still list it, sized from the spec
                    entries.append(Entry("hf-repo", r.repo, f"{ep.hf}/{r.repo}", f"hf/{r.repo}", repo=r.repo,
                                         requested_revision=r.revision,
                                         size=int(r.size_gb * 1e9) if r.size_gb else None, targets=t))
                continue
            if not files:
                problems.append(Problem(r.repo, f"no file at {commit[:12]} matches {list(r.files)}",
                                        "check `files:` in the spec"))
            for f in files:
                entries.append(Entry("hf-file", f"{r.repo}/{f.path}", hfhub.resolve_url(ep.hf, r.repo, commit, f.path),
                                     f"hf/{r.repo}/{f.path}", sha256=f.sha256, size=f.size, git_sha1=f.git_sha1, etag=f.etag,
                                     repo=r.repo, revision=commit, requested_revision=r.revision, path=f.path,
                                     targets=t))
        elif a.kind == "url":
            u = next(w for w in spec.weights.urls if w.name == a.name)
            entries.append(Entry("url", a.name, ep.map(a.url), a.dest, sha256=a.sha256, md5=a.md5, size=a.size,
                                 place=u.dest, targets=t))
        elif a.kind == "torch-hub-source":
            h = next(x for x in spec.weights.torch_hub if x.repo == a.name)
            entries.append(Entry("torch-hub-source", h.repo, ep.map(a.url),
                                 a.dest, repo=h.repo, revision=h.commit, path=h.ref, targets=t))
        elif a.kind == "torch-hub-checkpoint":
            entries.append(Entry("torch-hub-checkpoint", a.name, ep.map(a.url), a.dest, sha256=a.sha256,
                                 size=a.size, targets=t))
        elif a.kind in ("sdist", "wheel"):
            entries.append(Entry(a.kind, a.name, ep.map(a.url), a.dest, sha256=a.sha256, size=a.size, targets=t))
        elif a.kind == "conda":
            subdir = urlsplit(a.url).path.rstrip("/").split("/")[-2]
            entries.append(Entry("conda", a.name, ep.map(a.url), f"conda/{subdir}/{url_basename(a.url)}",
                                 sha256=a.sha256, md5=a.md5, targets=t))
    return entries, problems


@dataclass
class Report:
    downloaded: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)  # found truncated or tampered, fetched again
    skipped: list[str] = field(default_factory=list)
    failed: list[Problem] = field(default_factory=list)
    bytes_fetched: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"downloaded": len(self.downloaded), "already_there": len(self.skipped), "repaired": self.repaired,
                "bytes_fetched": self.bytes_fetched, "failed": [p.as_dict() for p in self.failed]}


def _partial_name(e: Entry) -> str:
    return hashlib.sha256(e.key.encode()).hexdigest()[:24] + "-" + url_basename(e.dest)[-60:]


def run(bundle: Bundle, entries: list[Entry], sess, token: str | None, ep: Endpoints,  # type: ignore[no-untyped-def]
        workers: int = 4, policy: Policy = Policy(), on_bytes: Callable[[int], None] = lambda n: None,
        on_done: Callable[[Entry, bool], None] = lambda e, skipped: None,
        file_bar: Callable[[str, int | None], object] | None = None,
        on_status: Callable[[str, str], None] = lambda name, text: None) -> Report:
    """Fetch every entry the bundle does not hold yet; record each one as it completes.

    `file_bar(name, size)`, when given, makes a per-file progress bar (a context manager
    with update(n), and set_postfix_str(text) for what the download says: "stalled,
    reconnecting"); the total goes to `on_bytes`, and that text to `on_status(name, text)`."""
    report = Report()
    todo: list[Entry] = []
    for e in entries:
        prev = bundle.entries.get(e.key)
        for sha in {x.sha256 for x in (prev, e) if x is not None and x.sha256}:
            if bundle.blob(sha).is_file() and not bundle.verify_blob(sha):  # truncated or tampered: fetch it again
                bundle.forget_blob(sha)
                report.repaired.append(e.name)
        if prev is not None and prev.url == e.url and prev.revision == e.revision and bundle.complete(prev):
            bundle.record(Entry(**{**prev.__dict__, "targets": sorted(set(prev.targets) | set(e.targets))}), flush=False)
            report.skipped.append(e.name)
            on_done(e, True)
        elif e.sha256 and bundle.blob(e.sha256).is_file():
            bundle.record(e, flush=False)  # the blob is there already (another target shares it)
            report.skipped.append(e.name)
            on_done(e, True)
        else:
            todo.append(e)
    need = sum(e.size or 0 for e in todo)
    free = free_bytes(bundle.root)
    if need > free:
        raise DiskFull(f"the bundle needs {need / 1e9:.1f} GB more, {free / 1e9:.1f} GB are free on {bundle.root}",
                       hint="free space, or mirror to another disk with --to")
    hf_host = urlsplit(ep.hf).netloc
    progress = Progress(on_bytes)

    def one(e: Entry):  # type: ignore[no-untyped-def]
        tok = token if urlsplit(e.url).netloc == hf_host else None
        dest = bundle.blob(e.sha256) if e.sha256 else bundle.partial(_partial_name(e) + ".done")
        job = Job(e.url, dest, sha256=e.sha256, md5=e.md5, git_sha1=e.git_sha1, size=e.size, token=tok, label=e.name)
        if file_bar is None:
            return fetch(job, sess, policy, Progress(progress.add, lambda text: on_status(e.name, text)))
        with file_bar(e.name, e.size) as bar:  # type: ignore[attr-defined]
            def said(text: str) -> None:
                if hasattr(bar, "set_postfix_str"):
                    bar.set_postfix_str(text)
                on_status(e.name, text)
            return fetch(job, sess, policy, Progress(lambda n: (bar.update(n), progress.add(n)), said))

    by_blob: dict[str, list[Entry]] = {}
    for e in todo:  # one download per distinct blob, however many entries share it
        by_blob.setdefault(e.sha256 or f"?{e.key}", []).append(e)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(one, group[0]): group for group in by_blob.values()}
        for fut in as_completed(futures):
            group = futures[fut]
            try:
                res = fut.result()
            except DiskFull:
                raise
            except ProvisionError as err:
                for e in group:
                    report.failed.append(Problem(e.name, err.message, err.hint))
                continue
            bad = _archive_problem(group[0], res.job.dest)
            if bad is not None:  # a proxy's error page is not an archive: never keep it as one
                paths.remove_file(res.job.dest, bundle.root, "a download that is not the archive it should be")
                for e in group:
                    report.failed.append(Problem(e.name, bad.message, bad.hint))
                continue
            sha = res.sha256
            if not group[0].sha256:  # learnt while downloading: move it to its content address
                blob = bundle.blob(sha)
                blob.parent.mkdir(parents=True, exist_ok=True)
                if blob.exists():
                    paths.remove_file(res.job.dest, bundle.root, "a duplicate download")
                else:
                    os.replace(res.job.dest, blob)
            bundle.stamp(sha)
            report.bytes_fetched += res.fetched
            for e in group:
                e.sha256 = e.sha256 or sha
                e.size = e.size or res.size
                bundle.record(e, flush=False)
                report.downloaded.append(e.name)
                on_done(e, False)
            bundle.save_every(1.0)
    bundle.save()
    if not report.failed and (bundle.root / ".partial").is_dir():
        paths.owned_dir(bundle.root / ".partial")
        paths.remove_tree(bundle.root / ".partial", bundle.root, "finished downloads' scratch space")
    return report


def _archive_problem(e: Entry, path: Path) -> ProvisionError | None:
    """GitHub archives carry no published checksum: what makes one trustworthy is that it is
    a zip of one `<repo>-<commit>/` tree (with hubconf.py, for torch.hub) and nothing else."""
    if e.kind not in ("git-archive", "torch-hub-source"):
        return None
    try:
        names = check_zip(path, strip_top=True)
    except ArchiveError as err:
        return err
    if e.kind == "torch-hub-source" and "hubconf.py" not in names:
        return ArchiveError(f"{e.name}: the archive from {e.url} has no hubconf.py: not a torch.hub repository",
                            hint="check --github-base / --url-map; re-run to fetch it again")
    return None


def record_outcome(bundle: Bundle, target: str, problems: list[Problem], report: Report) -> list[str]:
    """Write into the manifest what this target still lacks, so seed and `verify --preflight`
    say "incomplete" (and what) instead of "complete"."""
    missing = sorted({p.name for p in problems if p.fatal} | {p.name for p in report.failed})
    rec = dict(bundle.targets.get(target, {}))
    rec["missing"] = missing
    rec["complete"] = not missing
    bundle.targets[target] = rec
    bundle.save()
    return missing


def add_builds(bundle: Bundle, data_dir: Path, target: str) -> list[Entry]:
    """Carry the extension builds `provision apply` cached under DATA/cache/ext, so a machine
    seeded from this bundle finds them and compiles nothing (same key: same binary inputs)."""
    from ..fsutil import file_digest

    added = []
    root = data_dir / "cache" / "ext"
    for d in sorted(p for p in root.glob("*") if (p / "key.json").is_file()) if root.is_dir() else []:
        for f in sorted(d.iterdir()):
            sha = file_digest(f)
            blob = bundle.blob(sha)
            if not blob.is_file():
                blob.parent.mkdir(parents=True, exist_ok=True)
                tmp = blob.with_name(blob.name + ".part")
                shutil.copyfile(f, tmp)
                os.replace(tmp, blob)
            e = Entry("ext-build", f"{d.name}/{f.name}", f.resolve().as_uri(), f"builds/{d.name}/{f.name}",
                      sha256=sha, size=f.stat().st_size, targets=[target])
            bundle.record(e, flush=False)
            added.append(e)
    bundle.save()
    return added
