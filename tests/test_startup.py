"""Start-up: `--help` and `plan --host F` import only what they need; a cached spec and a
replayed plan give exactly what a fresh load and a fresh plan give, and nothing stale.

- spec/cache.py: a spec that loaded cleanly is validated from its remembered data while every
  file it read has the same bytes; anything else (a changed include, a garbage, foreign or
  tampered entry, another provision) loads from the YAML again.
- cli/memo.py: `provision plan --host F` is replayed while its inputs are unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hostile import run

from provision.errors import SpecError
from provision.spec import cache as spec_cache
from provision.spec import load_spec, load_target
from provision.spec import yamlloc

from conftest import FIXTURES, REPO

HOSTS = FIXTURES / "hosts"
HEAVY = {"jinja2", "rattler", "requests", "conda_lock", "tqdm", "torch", "pynvml", "rich", "markdown_it"}


def _imported(args: list[str], cache: Path) -> set[str]:
    """The top-level modules `provision ARGS` has imported when it exits (a fresh interpreter)."""
    code = ("import atexit, json, runpy, sys\n"
            "atexit.register(lambda: print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr))\n"
            "sys.argv = ['provision', *sys.argv[1:]]\n"
            "runpy.run_module('provision', run_name='__main__', alter_sys=True)\n")
    env = os.environ | {"PROVISION_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True, text=True)
    assert r.returncode in (0, 2), r.stderr
    return set(json.loads(r.stderr.strip().splitlines()[-1]))


def test_help_imports_typer_and_nothing_heavy(tmp_path: Path) -> None:
    mods = _imported(["--help"], tmp_path / "cache")
    assert "typer" in mods
    assert not mods & (HEAVY | {"pydantic", "yaml", "packaging"}), mods & (HEAVY | {"pydantic", "yaml"})


def test_plan_from_a_host_file_imports_no_heavy_library_and_replayed_nothing_at_all(tmp_path: Path) -> None:
    host = str(HOSTS / "h100-cuda13.json")
    cache = tmp_path / "cache"
    cold_json = _imported(["plan", "triposr", "--host", host, "--json"], cache)
    assert not cold_json & (HEAVY | {"jinja2"}), cold_json & HEAVY
    cold_text = _imported(["plan", "triposr", "--host", host], cache)
    assert not cold_text & (HEAVY - {"jinja2"})  # the text is templates/plan.txt.j2, rendered once
    for args in (["plan", "triposr", "--host", host], ["plan", "triposr", "--host", host, "--json"]):
        replayed = _imported(args, cache)
        assert not replayed & (HEAVY | {"typer", "click", "pydantic", "yaml", "jinja2", "packaging"}), replayed


# --- the spec cache ----------------------------------------------------------------------

def _spec_dir(tmp_path: Path) -> Path:
    d = tmp_path / "envs"
    shutil.copytree(REPO / "envs", d)
    return d


def _same(a, b) -> None:  # type: ignore[no-untyped-def]
    assert (a.digest, a.files, a.sources, a.path) == (b.digest, b.files, b.sources, b.path)
    assert a.spec.model_dump_json() == b.spec.model_dump_json()  # the same values in the same order


def _no_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("the YAML was parsed")
    monkeypatch.setattr(yamlloc, "load_located", refuse)
    monkeypatch.setattr("provision.spec.load.load_located", refuse)


def test_a_cached_spec_is_what_a_fresh_load_gives_without_parsing_yaml(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from provision.settings import cache_dir

    d = _spec_dir(tmp_path)
    for name in ("trellis", "trellis2", "triposr"):
        fresh = load_spec(d / f"{name}.yaml")
        assert spec_cache._entry_path((d / f"{name}.yaml").resolve()).parent == cache_dir() / "specs-v1"
        with monkeypatch.context() as m:
            _no_yaml(m)
            _same(load_spec(d / f"{name}.yaml"), fresh)


def test_the_cache_lives_under_cache_dir_and_is_written_whole(tmp_path: Path) -> None:
    from provision.settings import cache_dir

    load_target("triposr")
    entries = list((cache_dir() / "specs-v1").iterdir())
    assert len(entries) == 1 and entries[0].suffix == ".json"  # no temporary file left beside it
    e = json.loads(entries[0].read_text())
    assert [Path(p).name for p, _ in e["files"]] == ["triposr.yaml", "cuda.yaml", "rembg-u2net.yaml"]


def test_any_changed_byte_in_an_include_loads_the_yaml_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = _spec_dir(tmp_path)
    before = load_spec(d / "triposr.yaml")
    cuda = d / "shared" / "cuda.yaml"
    cuda.write_text(cuda.read_text() + "\n# a comment changes no value, but it changes the bytes\n")
    parsed = []
    real = yamlloc.load_located
    monkeypatch.setattr("provision.spec.load.load_located", lambda p, s: (parsed.append(Path(p).name), real(p, s))[1])
    after = load_spec(d / "triposr.yaml")
    assert parsed == ["triposr.yaml", "cuda.yaml", "rembg-u2net.yaml"]
    assert after.digest == before.digest  # same meaning
    cuda.write_text(cuda.read_text() + "bogus_key: 1\n")  # now wrong: said with the fragment's file and line
    with pytest.raises(SpecError) as e:
        load_spec(d / "triposr.yaml")
    assert any("cuda.yaml:" in line and "bogus_key" in line for line in e.value.lines()), e.value.lines()


@pytest.mark.parametrize("entry", [
    b"", b"not json", b"[]", b'{"format": 1}', b"\xff\xfe\x00garbage",
    b'{"format": 1, "provision": "0.1.0", "schema": 1, "code": "x", "path": "/", "files": [], "data": {}}',
])
def test_an_entry_that_is_garbage_or_of_another_shape_is_ignored_and_replaced(tmp_path: Path, entry: bytes,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    d = _spec_dir(tmp_path)
    fresh = load_spec(d / "triposr.yaml")
    path = spec_cache._entry_path((d / "triposr.yaml").resolve())
    path.write_bytes(entry)
    _same(load_spec(d / "triposr.yaml"), fresh)
    with monkeypatch.context() as m:  # replaced by a good one
        _no_yaml(m)
        _same(load_spec(d / "triposr.yaml"), fresh)


def test_an_unreadable_entry_is_ignored(tmp_path: Path) -> None:
    d = _spec_dir(tmp_path)
    fresh = load_spec(d / "triposr.yaml")
    path = spec_cache._entry_path((d / "triposr.yaml").resolve())
    path.unlink()
    path.mkdir()  # a directory where the entry should be: it cannot be read, nor replaced
    _same(load_spec(d / "triposr.yaml"), fresh)


def test_remembered_data_is_validated_like_a_spec(tmp_path: Path) -> None:
    """An entry edited on disk (its files' digests kept) is still checked: a bad value in it is
    refused, and the YAML is read instead."""
    d = _spec_dir(tmp_path)
    fresh = load_spec(d / "triposr.yaml")
    path = spec_cache._entry_path((d / "triposr.yaml").resolve())
    e = json.loads(path.read_text())
    e["data"]["name"] = "../../etc"
    e["data"]["extensions"][0]["source"]["commit"] = "main; rm -rf ~"
    path.write_text(json.dumps(e))
    _same(load_spec(d / "triposr.yaml"), fresh)


def test_another_provision_or_schema_never_reads_an_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = _spec_dir(tmp_path)
    load_spec(d / "triposr.yaml")
    assert spec_cache.lookup(d / "triposr.yaml") is not None
    monkeypatch.setattr(spec_cache, "code_fingerprint", lambda: "an edited checkout")
    assert spec_cache.lookup(d / "triposr.yaml") is None
    monkeypatch.undo()
    monkeypatch.setattr(spec_cache, "SCHEMA_VERSION", 999)
    assert spec_cache.lookup(d / "triposr.yaml") is None


def test_a_spec_with_problems_is_never_remembered(tmp_path: Path) -> None:
    from provision.settings import cache_dir

    bad = tmp_path / "bad.yaml"
    bad.write_text((FIXTURES / "specs" / "minimal.yaml").read_text() + "\nunknown_key: 1\n")
    with pytest.raises(SpecError):
        load_spec(bad)
    assert not (cache_dir() / "specs-v1").exists() or not any((cache_dir() / "specs-v1").iterdir())


# --- plan, replayed -----------------------------------------------------------------------

CASES = [("triposr", "h100-cuda13", []), ("trellis2", "rtx3090-wsl2-16g", []),  # the second: blockers, exit 2
         ("triposr", "rtx5070ti-wsl2", ["--json"]), ("trellis", "a6000-linux-535", ["--variant", "cu121-pypi", "--ptx"])]


def _replays(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    from provision.cli import memo

    seen: list[bool] = []
    real = memo.replay
    monkeypatch.setattr(memo, "replay", lambda argv: (lambda r: (seen.append(r is not None), r)[1])(real(argv)))
    return seen


@pytest.mark.parametrize("target,host,extra", CASES, ids=[f"{c[0]}@{c[1]}{''.join(c[2])}" for c in CASES])
def test_a_replayed_plan_is_byte_for_byte_the_planned_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          target: str, host: str, extra: list[str]) -> None:
    seen = _replays(monkeypatch)
    args = ["plan", target, "--host", str(HOSTS / f"{host}.json"), *extra]
    first = run(args, env={"PROVISION_CACHE": str(tmp_path / "a")})
    again = run(args, env={"PROVISION_CACHE": str(tmp_path / "a")})
    other = run(args, env={"PROVISION_CACHE": str(tmp_path / "b")})  # planned afresh elsewhere
    assert seen == [False, True, False]
    assert (first.code, first.out, first.err) == (again.code, again.out, again.err) == (other.code, other.out, other.err)
    assert first.code == (2 if host == "rtx3090-wsl2-16g" else 0) and first.out


def test_each_input_of_a_plan_changes_what_is_replayed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _replays(monkeypatch)
    d = _spec_dir(tmp_path)
    host = tmp_path / "host.json"
    host.write_text((HOSTS / "a6000-linux-535.json").read_text())
    cache = {"PROVISION_CACHE": str(tmp_path / "cache")}
    args = ["plan", str(d / "triposr.yaml"), "--host", str(host)]

    def fresh(env: dict[str, str] | None = None) -> str:
        return run(args, env=(env or {}) | {"PROVISION_CACHE": str(tmp_path / f"fresh{len(seen)}")}).out

    base = run(args, env=cache).out
    assert run(args, env=cache).out == base and seen[-1]
    # the host file
    facts = json.loads(host.read_text())
    facts["ram_gb"] = facts.get("ram_gb", 64) / 2
    host.write_text(json.dumps(facts))
    out = run(args, env=cache).out
    assert not seen[-1] and out == fresh()
    # an included fragment
    cuda = d / "shared" / "cuda.yaml"
    cuda.write_text(cuda.read_text() + "\n")
    out = run(args, env=cache).out
    assert not seen[-1] and out == fresh()
    assert run(args, env=cache).out == out and seen[-1]
    # a variable provision reads, and the working directory
    # (the host file names its own data dir, which the plan uses: the variable still re-plans)
    out = run(args, env=cache | {"PROVISION_DATA": str(tmp_path / "elsewhere")}).out
    assert not seen[-1] and out == fresh({"PROVISION_DATA": str(tmp_path / "elsewhere")})
    run(args, env=cache, cwd=tmp_path)
    assert not seen[-1]
    # a secret now set is masked: not replayed from a run without it
    run(args, env=cache | {"HF_TOKEN": "hf_abcdefghijklmnop"})
    assert not seen[-1]
    # the lockfiles: one that appears (a variant newly locked) and one that changes
    locks = tmp_path / "locks"
    largs = [*args, "--lockdir", str(locks)]
    without = run(largs, env=cache).out
    assert run(largs, env=cache).out == without and seen[-1]
    lock = locks / "triposr" / "cu121" / "conda-lock.yml"
    lock.parent.mkdir(parents=True)
    lock.write_text((REPO / "lockfiles" / "triposr" / "cu121" / "conda-lock.yml").read_text())
    run(largs, env=cache)
    assert not seen[-1]
    lock.write_text(lock.read_text() + "\n")
    run(largs, env=cache)
    assert not seen[-1]


def test_a_garbage_or_foreign_record_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _replays(monkeypatch)
    cache = tmp_path / "cache"
    args = ["plan", "triposr", "--host", str(HOSTS / "h100-cuda13.json")]
    base = run(args, env={"PROVISION_CACHE": str(cache)})
    (entry,) = (cache / "plans-v1").iterdir()
    good = json.loads(entry.read_text())
    for bad in ("", "[]", json.dumps({**good, "code": 1}), json.dumps({**good, "key": "0" * 64}),
                json.dumps({**good, "inputs": []}), json.dumps({**good, "output": 3}),
                json.dumps({**good, "extra": 1}), json.dumps({**good, "inputs": [[str(tmp_path / "gone"), "0" * 64]]})):
        entry.write_text(bad)
        r = run(args, env={"PROVISION_CACHE": str(cache)})
        assert not seen[-1] and (r.code, r.out) == (base.code, base.out)


def test_plans_without_a_host_file_or_that_fail_are_never_recorded(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    run(["plan", "triposr", "--host", str(tmp_path / "missing.json")], env={"PROVISION_CACHE": str(cache)})
    run(["plan", "nosuchtarget", "--host", str(HOSTS / "h100-cuda13.json")], env={"PROVISION_CACHE": str(cache)})
    run(["plan", "--help"], env={"PROVISION_CACHE": str(cache)})
    assert not (cache / "plans-v1").exists()
