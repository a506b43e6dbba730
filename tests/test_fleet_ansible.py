"""The generated playbook, run by ansible-playbook itself against localhost (local connection) on
two fixture "hosts" of one build group (two prefixes and data dirs): the first run builds once on
the builder, publishes, and installs once from the build index on the other; the second run
changes nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import test_apply
from test_lock import run

from repofactory import serve

ROOT = Path(__file__).resolve().parent.parent
world = test_apply.world  # this module's copy of the fixture: lock, mirror and seed the toy target


def _ansible_playbook() -> str:
    exe = Path(sys.executable).parent / "ansible-playbook"
    found = str(exe) if exe.is_file() else shutil.which("ansible-playbook")
    if not found:
        pytest.skip("ansible-playbook is not installed (ansible-core is in the test extra)")
    return found


def _hosts(tmp: Path) -> list[str]:
    """Two identical hosts: this machine's own facts (so the toolchain apply measures is the one the
    fleet predicted) with a GPU the toy target accepts, as `doctor --save` would write on a GPU box."""
    code, out = run("doctor", "--save", str(tmp / "here.json"))
    facts = json.loads((tmp / "here.json").read_text())
    facts.update(driver_version="570.124.06", driver_cuda="12.8", gpu_source="fixture", gpu_error=None,
                 gpus=[{"index": 0, "name": "NVIDIA GeForce RTX 3090", "compute_capability": "8.6", "memory_gb": 24.0}],
                 ports_in_use=[], proxies={}, ram_gb=max(facts["ram_gb"], 8.0),
                 disk_free_gb={k: max(v, 50.0) for k, v in facts["disk_free_gb"].items()})
    out = []
    for name in ("box-a", "box-b"):
        p = tmp / f"{name}.json"
        p.write_text(json.dumps(dict(facts, label=f"{name}: this machine with an RTX 3090"), indent=2))
        out.append(str(p))
    return out


def _play(playbook: str, out: Path) -> tuple[int, str, dict[str, dict[str, int]]]:
    env = os.environ | {"PYTHONPATH": str(ROOT), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "ANSIBLE_NOCOLOR": "1",
                        "ANSIBLE_HOST_KEY_CHECKING": "0", "ANSIBLE_RETRY_FILES_ENABLED": "0",
                        "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}
    r = subprocess.run([playbook, "-i", str(out / "inventory.yml"), str(out / "playbook.yml")], env=env,
                       capture_output=True, text=True, timeout=900)
    text = r.stdout + r.stderr
    recap = {m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
             for m in re.finditer(r"^(box-\w)\s*:\s*(.*)$", text.split("PLAY RECAP")[-1], re.M)}
    return r.returncode, text, recap


def test_the_playbook_builds_once_installs_once_from_the_index_and_a_second_run_changes_nothing(
        world: dict, tmp_path: Path) -> None:
    playbook = _ansible_playbook()
    t = world["t"]
    cache = tmp_path / "cache"
    cache.mkdir()
    rehearsal, out = tmp_path / "fleet", tmp_path / "ansible"
    hosts = _hosts(tmp_path)
    code, said = run("fleet", "plan", str(world["spec"]), *hosts, "--json")
    assert code == 0, said
    fleet = json.loads(said)
    assert len(fleet["groups"]) == 1 and fleet["groups"][0]["builder"] == "box-a"
    group = fleet["groups"][0]["digest"]
    with serve(cache) as url:
        code, said = run("fleet", "ansible", str(world["spec"]), *hosts, "--out", str(out),
                         "--cache-url", f"{url}/simple/", "--publish-to", str(cache), "--bundle", str(t / "bundle"),
                         "--provision-cmd", f"{sys.executable} -m provision", "--lockdir", str(t / "lockfiles"),
                         "--rehearse", str(rehearsal), "--apply-arg=--offline", "--apply-arg=--venv",
                         f"--apply-arg=--python={sys.executable}", f"--apply-arg=--source=cext={world['src']}",
                         f"--apply-arg=--source=wext={world['wsrc']}",
                         f"--apply-arg=--source=gext={world['gsrc']}",
                         f"--apply-arg=--source=apptoy-upstream={world['asrc']}")
        assert code == 0, said
        rc, text, recap = _play(playbook, out)
        assert rc == 0, text[-6000:]
        assert recap["box-a"]["failed"] == 0 and recap["box-b"]["failed"] == 0, text[-3000:]
        assert recap["box-a"]["changed"] > 0 and recap["box-b"]["changed"] > 0, recap
        logs = {h: rehearsal / h / "env" / "share" / "provision" / "logs" for h in ("box-a", "box-b")}
        for name in ("cext", "wext", "gext"):
            built = (logs["box-a"] / f"build-{name}.log").read_text()
            assert "from the build index" not in built and ("build_ext" in built or "build --wheel" in built), built
            got = (logs["box-b"] / f"build-{name}.log").read_text()
            assert "from the build index:" in got and "build_ext" not in got and "build --wheel" not in got, got
            # the toolchain apply measured on the builder is the one the fleet grouped the hosts by
            key = json.loads(re.search(r"^build key \w+: (\{.*\})$", built, re.M).group(1))
            from provision.plan.binary import Toolchain

            measured = {k: key[k] for k in Toolchain.__dataclass_fields__}
            if name != "gext":  # an extension that never runs nvcc keys it as "none": a new nvcc is no rebuild
                assert measured["nvcc"] == "none"
                measured["nvcc"] = fleet["groups"][0]["toolchain"]["nvcc"]
            assert Toolchain(**measured).digest() == group, (json.dumps(key), json.dumps(fleet["groups"][0]))
        assert len(list((cache / "files").glob("*.whl"))) == 3  # built once, published once
        r = subprocess.run([str(rehearsal / "box-b" / "env" / "bin" / "python"), "-c", "import cext, wext; print(cext.hello())"],
                           capture_output=True, text=True)
        assert r.stdout.strip() == "hello from C", r.stderr

        rc, text, recap = _play(playbook, out)
        assert rc == 0, text[-6000:]
        assert recap["box-a"]["changed"] == 0 and recap["box-b"]["changed"] == 0, text[-4000:]
        assert recap["box-a"]["failed"] == 0 and recap["box-b"]["failed"] == 0
