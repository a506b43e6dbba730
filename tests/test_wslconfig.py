"""Given a user's real .wslconfig, `provision wslconfig --write` changes only what it must.

Fifteen files shaped like ones found in the wild: comments with ; and #, [experimental],
odd casing, CRLF, a BOM, duplicate keys, an empty file, no file at all.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from provision.spec import load_target
from provision.wsl.config import WslConfigError, lint, merge
from provision.wsl.file import render_fresh, values_for

REPO = Path(__file__).resolve().parent.parent
CHANGES = {"wsl2": {"memory": "24GB", "processors": "16", "swap": "16GB"}}

FILES = {
    "plain": "[wsl2]\nmemory=8GB\nprocessors=4\n",
    "hash-comments": "# my config\n[wsl2]\n# RAM for builds\nmemory=8GB  # was 4\nguiApplications=false\n",
    "semicolon-comments": "; Windows 11\n[wsl2]\n; limit\nmemory = 8GB\n",
    "experimental": "[wsl2]\nmemory=8GB\n\n[experimental]\nautoMemoryReclaim=gradual\nsparseVhd=true\n",
    "odd-casing": "[WSL2]\nMemory=8GB\nPROCESSORS=4\n",
    "crlf": "[wsl2]\r\nmemory=8GB\r\nlocalhostForwarding=true\r\n",
    "bom": "\ufeff[wsl2]\nmemory=8GB\n",
    "bom-crlf": "\ufeff# comment\r\n[wsl2]\r\nswap=0\r\n",
    "duplicate-keys": "[wsl2]\nmemory=4GB\nmemory=8GB\n",
    "empty": "",
    "only-comments": "# nothing here yet\n; really\n",
    "no-wsl2-section": "[experimental]\nsparseVhd=true\n",
    "network-settings": "[wsl2]\nnetworkingMode=mirrored\ndnsTunneling=true\nautoProxy=true\nfirewall=true\n",
    "swapfile-path": "[wsl2]\nswapFile=C:\\\\temp\\\\wsl-swap.vhdx\nswap=4GB\nkernelCommandLine = vsyscall=emulate\n",
    "spaces-and-blank-lines": "\n\n[wsl2]\n\n   memory   =   8GB   \n\n\n[experimental]\n\nhostAddressLoopback=true\n",
    "no-trailing-newline": "[wsl2]\nmemory=8GB",
}


def _kv(text: str) -> dict[tuple[str, str], str]:
    """(section, key) -> last value, lower-cased keys: what WSL would read."""
    out, section = {}, None
    for raw in text.lstrip("\ufeff").replace("\r\n", "\n").split("\n"):
        s = raw.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("["):
            section = s.strip("[]").lower()
            continue
        k, _, v = s.partition("=")
        out[(section, k.strip().lower())] = v.split(" #")[0].strip()
    return out


@pytest.mark.parametrize("name", list(FILES))
def test_merge_changes_only_the_intended_keys(name: str) -> None:
    old = FILES[name]
    new = merge(old, CHANGES)
    before, after = _kv(old), _kv(new)
    for key in ("memory", "processors", "swap"):
        assert after[("wsl2", key)] == CHANGES["wsl2"][key]
    for k, v in before.items():  # everything else is kept
        if k[0] != "wsl2" or k[1] not in CHANGES["wsl2"]:
            assert after[k] == v, k
    old_other = [l for l in old.lstrip("\ufeff").splitlines() if l.strip() and not _is_changed(l)]
    new_lines = new.lstrip("\ufeff").splitlines()
    for line in old_other:  # comments, sections and other keys, byte for byte
        assert line in new_lines, line
    assert new.startswith("\ufeff") == old.startswith("\ufeff")
    if "\r\n" in old:
        assert new.count("\n") == new.count("\r\n")
    assert merge(new, CHANGES) == new  # idempotent


def _is_changed(line: str) -> bool:
    k = line.split("=")[0].strip().lower()
    return "=" in line and k in ("memory", "processors", "swap")


def test_merge_keeps_key_casing_and_inline_comment() -> None:
    assert merge("[WSL2]\nMemory=8GB  # was 4\n", CHANGES).splitlines()[1] == "Memory=24GB  # was 4"


def test_duplicate_key_changes_the_last_one_wsl_reads() -> None:
    new = merge(FILES["duplicate-keys"], CHANGES)
    assert new.splitlines()[1:3] == ["memory=4GB", "memory=24GB"]


def test_a_key_outside_any_section_is_refused_with_its_line() -> None:
    with pytest.raises(WslConfigError) as e:
        merge("memory=8GB\n[wsl2]\n", CHANGES, "x.wslconfig")
    assert "x.wslconfig:1" in e.value.message and "outside any section" in e.value.message


@pytest.mark.parametrize("text,words", [
    ("[wsl2]\nmemory=lots\n", "not a size"),
    ("[wsl2]\nprocessors=-1\n", "not a positive whole number"),
    ("[wsl2]\nautoMemoryReclaim=gradual\n", "it belongs in [experimental]"),
    ("[wsl2]\nmemroy=8GB\n", "unknown key 'memroy'"),
    ("[wsl2]\nmemory=128GB\n", "more than the 32 GB"),
    ("[wsl2]\nswap=0\n", "swap=0 but"),
    ("[wsl2]\nmemory=8GB\nmemory=9GB\n", "set again"),
    ("[wls2]\nmemory=8GB\n", "unknown section"),
])
def test_lint_names_line_and_problem(text: str, words: str) -> None:
    problems = lint(text, "c.wslconfig", host_ram_gb=32, needs_swap=True)
    assert any(words in p and p.startswith("c.wslconfig:") for p in problems), problems


def test_lint_passes_the_committed_files() -> None:
    for f in (REPO / "wslconfig").glob("*.wslconfig"):
        assert lint(f.read_text(), str(f), host_ram_gb=64, needs_swap=True) == []


@pytest.mark.parametrize("target", ["trellis", "trellis2", "triposr"])
@pytest.mark.parametrize("ram,cpus,suffix", [(32, 16, ""), (64, 24, "-64gb")])
def test_committed_wslconfig_files_are_what_the_command_renders(target: str, ram: int, cpus: int, suffix: str) -> None:
    spec = load_target(target).spec
    wsl2, exp, reasons, _ = values_for(spec, ram, cpus, None, None, None)
    assert (REPO / "wslconfig" / f"{target}{suffix}.wslconfig").read_text() == render_fresh(spec, ram, cpus, wsl2, exp, reasons)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provision", "wslconfig", *args], capture_output=True, text=True)


def test_write_merges_keeps_a_backup_and_says_wsl_shutdown(tmp_path: Path) -> None:
    f = tmp_path / ".wslconfig"
    f.write_bytes(FILES["bom-crlf"].encode())
    proc = cli("trellis", "--path", str(f), "--write", "--windows-ram-gb", "32", "--windows-cpus", "16", "--mirrored")
    assert proc.returncode == 0, proc.stderr
    assert "wsl --shutdown" in proc.stdout and "+memory=24GB" in proc.stdout
    backups = list(tmp_path.glob(".wslconfig.*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes() == FILES["bom-crlf"].encode()
    new = f.read_bytes().decode()
    assert new.startswith("\ufeff# comment\r\n") and "networkingMode=mirrored\r\n" in new


def test_write_into_no_file_creates_the_rendered_one(tmp_path: Path) -> None:
    f = tmp_path / ".wslconfig"
    proc = cli("triposr", "--path", str(f), "--write", "--windows-ram-gb", "64", "--windows-cpus", "24")
    assert proc.returncode == 0 and f.read_text() == (REPO / "wslconfig" / "triposr-64gb.wslconfig").read_text()


@pytest.mark.parametrize("args,words", [
    (["--memory", "lots"], "--memory: memory=lots is not a size"),
    (["--processors", "-1"], "processors"),
])
def test_bad_values_exit_2_and_leave_the_file_untouched(tmp_path: Path, args: list[str], words: str) -> None:
    f = tmp_path / ".wslconfig"
    f.write_text(FILES["plain"])
    proc = cli("trellis", "--path", str(f), "--write", *args)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr
    assert f.read_text() == FILES["plain"] and not list(tmp_path.glob("*.bak"))


def test_a_sectionless_key_in_the_real_file_stops_the_write(tmp_path: Path) -> None:
    f = tmp_path / ".wslconfig"
    f.write_text("memory=8GB\n[wsl2]\nswap=2GB\n")
    proc = cli("trellis", "--path", str(f), "--write")
    assert proc.returncode == 2 and ":1:" in proc.stderr and "outside any section" in proc.stderr
    assert f.read_text() == "memory=8GB\n[wsl2]\nswap=2GB\n"


def test_without_write_it_only_prints() -> None:
    proc = cli("trellis", "--windows-ram-gb", "32", "--windows-cpus", "16")
    assert proc.returncode == 0 and proc.stdout == (REPO / "wslconfig" / "trellis.wslconfig").read_text()
    assert "not written" in proc.stderr


def test_lint_cli_gives_line_numbers_and_exit_2(tmp_path: Path) -> None:
    f = tmp_path / ".wslconfig"
    f.write_text("[wsl2]\nmemory=lots\nprocessors=-1\n")
    proc = cli("trellis", "--path", str(f), "--lint", "--windows-ram-gb", "32", "--windows-cpus", "16")
    assert proc.returncode == 2
    assert f"{f}:2: memory=lots is not a size" in proc.stdout and f"{f}:3: processors=-1" in proc.stdout
    assert f.read_text() == "[wsl2]\nmemory=lots\nprocessors=-1\n"
