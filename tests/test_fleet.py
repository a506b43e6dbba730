"""provision fleet plan: five host files -> build groups, one builder each, and the hosts that
cannot run the target with the planner's reasons; and the Ansible files fleet ansible writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_lock import run

from conftest import FIXTURES

FLEET = FIXTURES / "hosts" / "fleet"
FIVE = [str(FLEET / f"{n}.json") for n in ("rtx3090-a", "rtx3090-b", "a6000", "h100", "no-gpu")]

# target -> (variant, arch list, compiler, nvcc, builder, installers) per group, and the hosts that cannot run it
TABLE = {
    "trellis2": (
        {("cu124", "8.6", "gcc 11.4.0", "12.4", "rtx3090-a", ("rtx3090-b",)),  # two identical 3090s: one build
         ("cu121", "8.6", "gcc 11.4.0", "12.2", "a6000", ()),  # same arch, but driver 535 gets the CUDA 12.1
         # variant, built with its locked toolkit (nvcc 12.2: the system's 11.5 is too old)
         ("cu124", "9.0", "gcc 13.3.0", "12.6", "h100", ())},  # the 3090s' variant, another arch and compiler,
        # and the locked toolkit's nvcc 12.6 (the system's 13.0 is the wrong major)
        {"no-gpu": "no NVIDIA GPU found"}),
    "triposr": (
        {("cu121", "8.6", "gcc 11.4.0", "12.4", "rtx3090-a", ("rtx3090-b",)),  # their system nvcc 12.4 fits cu121
         ("cu121", "8.6", "gcc 11.4.0", "12.2", "a6000", ()),  # same variant and arch, but nvcc 11.5 does not fit:
         ("cu121", "9.0", "gcc 13.3.0", "12.2", "h100", ())},  # the locked toolkit's nvcc 12.2 makes other SASS
        {"no-gpu": "no NVIDIA GPU found"}),
}


@pytest.mark.parametrize("target", sorted(TABLE))
def test_fleet_plan_groups_five_hosts_by_what_changes_a_binary(target: str) -> None:
    from provision.fleet import plan_fleet
    from provision.host import load_host
    from provision.spec import load_target

    groups, unfit = TABLE[target]
    fleet = plan_fleet(load_target(target), [(Path(f).stem, f, load_host(Path(f))) for f in FIVE])
    got = {(g.toolchain["variant"], g.toolchain["arch_list"], g.toolchain["cxx"], g.toolchain["nvcc"], g.builder,
            tuple(g.installers))
           for g in fleet.groups}
    assert got == groups
    assert {u.name for u in fleet.unfit} == set(unfit)
    for u in fleet.unfit:
        assert unfit[u.name] in u.reasons[0]
    assert len({g.digest for g in fleet.groups}) == len(fleet.groups)


def test_the_group_key_is_the_toolchain_apply_keys_its_cache_by() -> None:
    """One definition: the fleet's group digest is the digest of the toolchain the plan predicts,
    and an extension's cache key is that toolchain plus the extension's own inputs."""
    from provision.host import load_host
    from provision.plan import make_plan
    from provision.plan.binary import digest_of, ext_key, toolchain_of_plan
    from provision.spec import load_target

    loaded = load_target("trellis2")
    host = load_host(FLEET / "rtx3090-a.json")
    plan = make_plan(loaded, host)
    tc = toolchain_of_plan(loaded.spec, host, plan)
    assert tc.as_dict() == {"variant": "cu124", "torch": "2.6.0", "torch_cuda": "12.4", "python": "cpython-310-x86_64",
                            "arch_list": "8.6", "cxx": "gcc 11.4.0", "nvcc": "12.4"}
    ext = loaded.spec.extensions_for(plan.variant)[0]
    key = ext_key(tc, ext, "abc")
    assert {k: key[k] for k in tc.as_dict()} == tc.as_dict() | ({"nvcc": "none"} if ext.nvcc == "none" else {})
    assert len(digest_of(key)) == 20


def test_fleet_plan_cli_prints_the_groups_and_exits_1_when_a_host_cannot_run_it() -> None:
    code, out = run("fleet", "plan", "trellis2", *FIVE)
    assert code == 1, out
    assert "5 hosts, 3 build group(s), 1 cannot run it" in out
    assert "builder     rtx3090-a" in out and "installs    rtx3090-b" in out
    assert "cannot run trellis2" in out and "no-gpu" in out and "no NVIDIA GPU found" in out
    code, out = run("fleet", "plan", "trellis2", "--json", *FIVE[:2])
    assert code == 0, out
    data = json.loads(out)
    assert [g["builder"] for g in data["groups"]] == ["rtx3090-a"] and data["groups"][0]["installers"] == ["rtx3090-b"]
    code, out = run("fleet", "plan", "trellis2", FIVE[-1])
    assert code == 2, out  # nobody can run it


def test_a_blackwell_host_is_refused_with_the_planners_reasons() -> None:
    """TRELLIS has no torch build with sm_120 kernels: each variant's reason is listed."""
    code, out = run("fleet", "plan", "trellis", FIVE[0], str(FIXTURES / "hosts" / "rtx5070ti-wsl2.json"))
    assert code == 1, out
    assert "rtx5070ti-wsl2" in out and "sm_120" in out


def test_a_blackwell_host_too_small_for_trellis2_is_refused_for_its_memory() -> None:
    """TRELLIS.2 has a Blackwell line (cu128), so the 16 GB card's only reason is VRAM."""
    code, out = run("fleet", "plan", "trellis2", FIVE[0], str(FIXTURES / "hosts" / "rtx5070ti-wsl2.json"))
    assert code == 1, out
    assert "rtx5070ti-wsl2" in out and "needs 24 GB of VRAM" in out and "sm_120" not in out


@pytest.mark.parametrize("bad", ["two words=x.json", "a..b=x.json", "{{x}}=x.json", "_a=x.json"])
def test_host_names_are_checked(bad: str) -> None:
    code, out = run("fleet", "plan", "trellis2", bad.replace("x.json", FIVE[0]))
    assert code == 2 and "host name" in out, out


def test_two_hosts_of_one_name_are_refused() -> None:
    code, out = run("fleet", "plan", "trellis2", FIVE[0], f"rtx3090-a={FIVE[1]}")
    assert code == 2 and "two hosts are named" in out, out


def _ansible(tmp_path: Path, *extra: str) -> tuple[int, str]:
    return run("fleet", "ansible", "trellis2", *FIVE, "--out", str(tmp_path / "out"), *extra)


def test_fleet_ansible_writes_an_inventory_of_builders_installers_and_groups(tmp_path: Path) -> None:
    code, out = _ansible(tmp_path, "--cache-url", "http://cache.lab:8080/simple/", "--publish-to",
                         "http://cache.lab:8080/", "--bundle", "/mnt/bundle")
    assert code == 1, out  # a host left out
    assert "3 builder(s), 1 installer(s), 1 host(s) left out" in out
    inv = yaml.safe_load((tmp_path / "out" / "inventory.yml").read_text())
    kids = inv["all"]["children"]
    assert set(kids["provision_builders"]["hosts"]) == {"rtx3090-a", "a6000", "h100"}
    assert set(kids["provision_installers"]["hosts"]) == {"rtx3090-b"}
    assert "no NVIDIA GPU" in kids["provision_unfit"]["hosts"]["no-gpu"]["provision_unfit_reason"]
    groups = {k: v for k, v in kids.items() if k.startswith("provision_group_")}
    assert len(groups) == 3
    g = next(v for v in groups.values() if "rtx3090-b" in v["hosts"])
    assert set(g["hosts"]) == {"rtx3090-a", "rtx3090-b"} and g["vars"]["provision_builder"] == "rtx3090-a"
    v = inv["all"]["vars"]
    assert v["provision_cache_url"] == "http://cache.lab:8080/simple/" and v["provision_bundle"] == "/mnt/bundle"
    assert v["provision_probe"] is True and v["provision_cmd"] == ["provision"] and v["provision_mirror"] is False
    assert "--only" in v["provision_publish_only"] and "flash-attn" in v["provision_publish_only"]
    play = yaml.safe_load((tmp_path / "out" / "playbook.yml").read_text())
    assert [p["hosts"] for p in play] == ["provision_builders", "provision_installers"]
    tasks = yaml.safe_load((tmp_path / "out" / "tasks.yml").read_text())
    assert [t["name"].split(" (")[0] for t in tasks if t["name"].startswith("provision")] == [
        "provision doctor", "provision mirror", "provision seed", "provision apply", "provision publish",
        "provision verify"]
    assert json.loads((tmp_path / "out" / "hosts" / "h100.json").read_text())["gpus"][0]["compute_capability"] == "9.0"
    # written again: the same files, no backups
    code, out = _ansible(tmp_path, "--cache-url", "http://cache.lab:8080/simple/", "--publish-to",
                         "http://cache.lab:8080/", "--bundle", "/mnt/bundle")
    assert code == 1 and "kept your earlier" not in out and not list((tmp_path / "out").rglob("*.bak*"))


def test_weights_from_a_hub_mirror_or_plain_http_are_mirrored_into_each_hosts_bundle(tmp_path: Path) -> None:
    code, out = _ansible(tmp_path, "--hf-endpoint", "http://hub-mirror.lab", "--url-map",
                         "https://github.com=http://files.lab/github")
    assert code == 1, out
    v = yaml.safe_load((tmp_path / "out" / "inventory.yml").read_text())["all"]["vars"]
    assert v["provision_hf_endpoint"] == "http://hub-mirror.lab" and v["provision_bundle"] == "provision-fleet/trellis2-bundle"
    assert v["provision_url_map"] == ["https://github.com=http://files.lab/github"]
    assert v["provision_mirror"] is True
    code, out = _ansible(tmp_path, "--url-map", "nothing-to-map")
    assert code == 2 and "PREFIX=REPLACEMENT" in out, out
    code, out = _ansible(tmp_path, "--bundle", "/mnt/b", "--hf-endpoint", "http://hub-mirror.lab")
    assert code == 2 and "one or the other" in out, out


def test_a_users_file_in_the_way_is_kept_as_a_backup(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "inventory.yml").write_text("mine: true\n")
    code, out = _ansible(tmp_path)
    assert code == 1 and "kept your earlier inventory.yml" in out, out
    assert (tmp_path / "out" / "inventory.yml.bak").read_text() == "mine: true\n"


@pytest.mark.parametrize("flag,value", [
    ("--bundle", "/mnt/{{ lookup('pipe', 'id') }}"),  # Ansible would run it
    ("--apply-arg", "--source=x={% raw %}"),
    ("--cache-url", "http://user:pw@cache/simple/"),  # credentials belong in ~/.netrc
    ("--prefix", "relative/env"),
])
def test_values_ansible_would_evaluate_or_that_leak_are_refused(tmp_path: Path, flag: str, value: str) -> None:
    code, out = _ansible(tmp_path, f"{flag}={value}")
    assert code == 2, out
    assert not (tmp_path / "out" / "inventory.yml").exists()


def test_publish_to_needs_a_cache_url(tmp_path: Path) -> None:
    code, out = _ansible(tmp_path, "--publish-to", "/srv/cache")
    assert code == 2 and "--cache-url" in out, out


def test_ansible_itself_reads_the_inventory_and_the_playbook(tmp_path: Path) -> None:
    import os
    import shutil
    import subprocess
    import sys

    bindir = Path(sys.executable).parent
    tools = {t: str(bindir / t) if (bindir / t).is_file() else shutil.which(t)
             for t in ("ansible-inventory", "ansible-playbook")}
    if not all(tools.values()):
        pytest.skip("ansible-core is not installed (it is in the test extra)")
    code, out = _ansible(tmp_path, "--cache-url", "http://cache.lab:8080/simple/", "--publish-to", "/srv/cache")
    assert code == 1, out
    env = os.environ | {"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "ANSIBLE_NOCOLOR": "1"}
    inv = str(tmp_path / "out" / "inventory.yml")
    r = subprocess.run([tools["ansible-inventory"], "-i", inv, "--list"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    assert set(listed["provision_builders"]["hosts"]) == {"rtx3090-a", "a6000", "h100"}
    assert listed["_meta"]["hostvars"]["rtx3090-b"]["provision_builder"] == "rtx3090-a"
    r = subprocess.run([tools["ansible-playbook"], "-i", inv, "--syntax-check", str(tmp_path / "out" / "playbook.yml")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
