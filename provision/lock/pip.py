"""The pip half of a lock: resolved by uv for the target's Python and platform.

uv reads a generated project (pyproject.toml with explicit per-package indexes, so a
torch pinned to the PyTorch index can never come from PyPI) and writes a PEP 751
`pylock.toml`: one URL and sha256 per file. We keep, per package, the one file the
target machine will install. Git packages are not given to uv: they are locked by
commit and their declared requirements are resolved in their place. Nothing is built
here that needs CUDA: extensions are not pip requirements of the lock.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

from ..errors import LockError, Unreachable
from ..settings import cache_dir
from .inputs import PLATFORMS, PYPI, IndexRef, LockInputs
from .wheelfacts import WheelFact, stub_wheel

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class PipRecord:
    name: str
    version: str
    url: str
    sha256: str | None  # None only for git packages, which the commit pins
    dependencies: tuple[str, ...]
    source_url: str | None = None  # git+...@commit
    categories: tuple[str, ...] = ("main",)  # cuda-toolkit: the toolkit's wheels (never installed into the env)


def uv_bin() -> str:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        import shutil

        found = shutil.which("uv")
        if not found:
            raise LockError("uv is not installed", hint="pip install uv") from None
        return found


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def project_toml(inputs: LockInputs, local: dict[str, str] | None = None) -> str:
    """The project uv resolves: requirements, and which index each pinned package must use.

    `local` maps an index name to a flat directory standing in for it (recorded wheel facts)."""
    local = local or {}
    lines = [
        "[project]",
        'name = "provision-lock-input"',
        'version = "0"',
        f"requires-python = {_toml_str('==' + inputs.python + '.*')}",
        "dependencies = [",
        *(f"  {_toml_str(r)}," for r in [*inputs.requirements, *inputs.toolkit_requirements]),
        "]",
    ]
    for ix in inputs.indexes:
        url = local.get(ix.name, ix.url)
        lines += ["", "[[tool.uv.index]]", f"name = {_toml_str(ix.name)}", f"url = {_toml_str(url)}",
                  "explicit = true"]
        if ix.kind == "find_links" or ix.name in local:
            lines.append('format = "flat"')
    if inputs.sources:
        lines += ["", "[tool.uv.sources]"]
        lines += [f"{_toml_str(p)} = {{ index = {_toml_str(i)} }}" for p, i in inputs.sources.items()]
    return "\n".join(lines) + "\n"


def target_tags(python: str, platform: str) -> list[Tag]:
    """Wheel tags the target accepts, best first (cp310 manylinux_2_28 down to py3-none-any)."""
    major, minor = (int(x) for x in python.split(".")[:2])
    arch = "x86_64"
    floor = int(PLATFORMS[platform]["glibc"].split(".")[1])
    plats = [f"manylinux_2_{m}_{arch}" for m in range(floor, 4, -1)]
    plats += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}", f"linux_{arch}"]
    return [*cpython_tags((major, minor), platforms=plats), *compatible_tags((major, minor), platforms=plats)]


def _choose(pkg: dict, tags: list[Tag]) -> tuple[str, str]:
    rank = {t: i for i, t in enumerate(tags)}
    best: tuple[int, dict] | None = None
    for w in pkg.get("wheels", []):
        fname = w.get("name") or w["url"].rsplit("/", 1)[-1]
        _, _, _, wtags = parse_wheel_filename(fname.replace("%2B", "+"))
        score = min((rank[t] for t in wtags if t in rank), default=None)
        if score is not None and (best is None or score < best[0]):
            best = (score, w)
    art = best[1] if best else pkg.get("sdist")
    if not art:
        raise LockError(f"{pkg['name']} {pkg['version']} has no file for this platform",
                        hint="its index offers no wheel for the target's Python/platform and no sdist")
    sha = art.get("hashes", {}).get("sha256")
    if not sha:
        raise LockError(f"{pkg['name']} {pkg['version']}: its index gives no sha256 for {art['url']}",
                        hint="provision never locks a file it cannot check; use an index that publishes hashes")
    return art["url"], sha


_VIA = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==\S+\s+#\s+via\s+(.*)$")


def _dependencies(annotated: str) -> dict[str, list[str]]:
    """Invert uv's `# via` annotations into each package's dependencies."""
    deps: dict[str, list[str]] = {}
    for line in annotated.splitlines():
        m = _VIA.match(line.strip())
        if not m:
            continue
        child = canonicalize_name(m.group(1))
        for parent in m.group(2).split(","):
            parent = parent.strip().split(" ")[0]
            if parent and not parent.startswith("-") and parent != "provision-lock-input":
                deps.setdefault(canonicalize_name(parent), []).append(child)
    return deps


# uv's settings that change how long it waits, never what it resolves: a slow network may want them
UV_PASS = ("UV_HTTP_RETRIES", "UV_HTTP_TIMEOUT", "UV_CONCURRENT_DOWNLOADS")


def _run_uv(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # every other UV_ variable (an index, a config file, pre-releases) would change the lock: not passed
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_") or k in UV_PASS}
    env |= {"UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"}
    return subprocess.run([uv_bin(), *args], cwd=cwd, env=env, capture_output=True, text=True)


_NET = re.compile(r"(Failed to fetch|dns error|error sending request|Connect|timed out|connection refused)", re.I)
_URL = re.compile(r"https?://[^\s`'\"]+")


def _which_index(urls: list[str], inputs: LockInputs) -> IndexRef | None:
    for ix in inputs.indexes:
        if any(u.startswith(ix.url.rstrip("/")) for u in urls):
            return ix
    for ix in inputs.indexes:
        if any(urlsplit(u).netloc == urlsplit(ix.url).netloc for u in urls):
            return ix
    return None


def _diagnose(stderr: str, inputs: LockInputs, default_index: str) -> LockError:
    text = "\n".join(l for l in stderr.splitlines() if "requested Python version" not in l
                     and "will be used to build" not in l).strip()
    if _NET.search(text):
        urls = [u.rstrip("`.,:") for u in _URL.findall(text)]
        ix = _which_index(urls, inputs)
        if ix is not None:
            users = ", ".join(inputs.index_users(ix.name))
            return Unreachable(
                f"cannot reach index {ix.name!r} ({ix.url}), needed by {users}",
                hint=f"lock {inputs.target}/{inputs.variant} on a machine that reaches it; nothing was written",
                index=ix.name,
            )
        return Unreachable(f"cannot reach the package index ({urls[0] if urls else default_index}):\n{text}",
                           hint="check the network and proxy variables; nothing was written")
    return LockError(f"pip packages of {inputs.target}/{inputs.variant} cannot be resolved:\n{text}",
                     hint="the pins under pip.packages and the variant contradict each other; "
                          "a deliberate contradiction belongs in the variant's overrides")


def resolve(inputs: LockInputs, python_version: str, default_index: str = PYPI,
            exclude_newer: dt.datetime | None = None, preferences: dict[str, str] | None = None,
            facts: dict[str, list[WheelFact]] | None = None, refresh: bool = False) -> list[PipRecord]:
    """Resolve the pip requirements; one record per package, plus the git pins.

    `preferences` (name -> version, from the lockfile being replaced) keeps every package at
    its locked version unless the spec now forbids it: an index that publishes a new file
    under an old date (or loses one) cannot move a re-lock, so the same command on the same
    cutoff writes the same bytes. `facts` stand in for indexes this machine cannot reach."""
    with tempfile.TemporaryDirectory(prefix="provision-lock-") as tmp:
        d = Path(tmp)
        local, by_file = _fact_indexes(inputs, facts or {}, d / "facts")
        (d / "pyproject.toml").write_text(project_toml(inputs, local))
        (d / "overrides.txt").write_text("".join(o + "\n" for o in inputs.overrides))
        common = [
            "pip", "compile", "pyproject.toml", "--no-config", "--quiet", "--no-header",
            "--python-version", python_version,
            "--python-platform", PLATFORMS[inputs.platform]["uv"],
            "--default-index", default_index,
            "--override", "overrides.txt",
            "--cache-dir", str(cache_dir() / "uv"),
        ]
        if exclude_newer is not None:
            common += ["--exclude-newer", exclude_newer.strftime("%Y-%m-%dT%H:%M:%SZ")]
            # Indexes such as download.pytorch.org publish no upload times: a cutoff would hide
            # every file. Packages pinned to them are pinned exactly anyway.
            for pkg in inputs.sources:
                common += ["--exclude-newer-package", f"{pkg}=false"]
        # Two views of one resolution. First the annotated requirements (which package pulled in
        # which), into a file uv reads back as preferences: the previous lock's versions. Then
        # pylock.toml (files and hashes), constrained to exactly those pins and read from what
        # the first pass cached (--offline): the same answer, no second round of index requests.
        (d / "pins.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted((preferences or {}).items())))
        ann = _run_uv([*common, *(["--refresh"] if refresh else []), "--annotation-style", "line", "-o", "pins.txt"], d)
        if ann.returncode != 0:
            raise _diagnose(ann.stderr, inputs, default_index)
        pinned = [*common, "--constraint", "pins.txt", "--format", "pylock.toml", "-o", "pylock.toml"]
        run = _run_uv([*pinned, "--offline"], d)
        if run.returncode != 0:  # uv does not cache find-links pages: ask again online
            run = _run_uv(pinned, d)
        if run.returncode != 0:
            raise _diagnose(run.stderr, inputs, default_index)
        annotated = (d / "pins.txt").read_text()
        lock = tomllib.loads((d / "pylock.toml").read_text())
        facts_root = (d / "facts").as_uri() + "/"
    deps = _dependencies(annotated)
    tags = target_tags(python_version, inputs.platform)
    out = []
    for pkg in lock.get("packages", []):
        name = canonicalize_name(pkg["name"])
        url, sha = _choose(pkg, tags)
        if url.startswith(facts_root):  # a stub: the lock records the real file of the fact
            fact = by_file[url.rsplit("/", 1)[-1].replace("%2B", "+")]
            url, sha = fact.url, fact.sha256
        out.append(PipRecord(name, str(pkg["version"]), url, sha, tuple(sorted(set(deps.get(name, []))))))
    out = _categorised(out, inputs, deps)
    for g in inputs.git:
        reqdeps = tuple(sorted({canonicalize_name(re.split(r"[\s<>=!~;\[(]", r, 1)[0]) for r in g.requires}))
        out.append(PipRecord(canonicalize_name(g.name), f"0+g{g.commit[:12]}", g.pip_url, None, reqdeps,
                             source_url=g.pip_url))
    return sorted(out, key=lambda r: r.name)


def _names(reqs: list[str]) -> set[str]:
    return {canonicalize_name(re.split(r"[\s<>=!~;\[(@]", r, 1)[0]) for r in reqs}


def _reach(roots: set[str], deps: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo += deps.get(n, [])
    return seen


def _categorised(records: list[PipRecord], inputs: LockInputs, deps: dict[str, list[str]]) -> list[PipRecord]:
    """main: what the env installs; cuda-toolkit: what the toolkit's wheels need (a package both
    need is in both categories, at the one version the resolution chose)."""
    if not inputs.toolkit_requirements:
        return records
    main = _reach(_names(inputs.requirements) | {n for g in inputs.git for n in _names(g.requires)}, deps)
    toolkit = _reach(_names(inputs.toolkit_requirements), deps)
    out = []
    for r in records:
        cats = tuple(c for c, inside in (("main", r.name in main), ("cuda-toolkit", r.name in toolkit)) if inside)
        out.append(PipRecord(r.name, r.version, r.url, r.sha256, r.dependencies, r.source_url, cats or ("main",)))
    return out


def _fact_indexes(inputs: LockInputs, facts: dict[str, list[WheelFact]], root: Path
                  ) -> tuple[dict[str, str], dict[str, WheelFact]]:
    """A flat directory of stub wheels for every index the facts cover: (index name -> dir, file -> fact)."""
    local: dict[str, str] = {}
    by_file: dict[str, WheelFact] = {}
    for ix in inputs.indexes:
        recorded = facts.get(ix.url.rstrip("/"))
        if not recorded:
            continue
        d = root / ix.name
        d.mkdir(parents=True, exist_ok=True)
        for f in recorded:
            stub_wheel(d, f)
            by_file[f.file] = f
        local[ix.name] = str(d)
    return local, by_file
