"""Hostile and unusual .wslconfig files and flags: `provision wslconfig --write --path F` keeps
the user's file as it was (encoding, BOM, line ends, symlink, mode, every other line), backs
it up under a name no later write reuses, and refuses values that would break it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hostile import judge, make_world, run

GOOD = "[wsl2]\r\nmemory=8GB\r\n# the user's comment\r\nkernelCommandLine = quiet\r\n"


def _world(tmp_path: Path):  # type: ignore[no-untyped-def]
    w = make_world(tmp_path)
    w.allowed = [w.root / "win"]
    (w.root / "win").mkdir()
    return w


def write(path: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run(["wslconfig", "triposr", "--write", "--path", str(path), "--windows-ram-gb", "32",
                "--windows-cpus", "16", *extra])


@pytest.mark.parametrize("cid,enc,bom", [("utf16-le-notepad", "utf-16-le", b"\xff\xfe"),
                                         ("utf16-be", "utf-16-be", b"\xfe\xff"),
                                         ("utf8-bom", "utf-8", b"\xef\xbb\xbf"),
                                         ("utf8-plain", "utf-8", b"")])
def test_the_file_is_written_back_in_its_own_encoding(tmp_path: Path, cid: str, enc: str, bom: bytes) -> None:
    w = _world(tmp_path)
    f = w.root / "win" / ".wslconfig"
    f.write_bytes(bom + GOOD.encode(enc))
    before = w.snapshot()
    r = write(f)
    judge(r, w, before, 0, ("written",))
    data = f.read_bytes()
    assert data.startswith(bom)
    text = data[len(bom):].decode(enc)
    assert "memory=" in text and "# the user's comment\r\n" in text and "kernelCommandLine = quiet" in text
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")  # its CRLF line ends kept
    assert run(["wslconfig", "triposr", "--lint", "--path", str(f), "--windows-ram-gb", "32"]).code == 0


def test_a_symlinked_wslconfig_stays_a_symlink_and_keeps_its_mode(tmp_path: Path) -> None:
    w = _world(tmp_path)
    real = w.root / "win" / "dotfiles" / "wslconfig"
    real.parent.mkdir()
    real.write_text("[wsl2]\nmemory=8GB\n")
    real.chmod(0o640)
    link = w.root / "win" / ".wslconfig"
    link.symlink_to(real)
    before = w.snapshot()
    judge(write(link), w, before, 0, ("written",))
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert "memory=24GB" in real.read_text()
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


def test_a_new_file_is_readable_like_any_config_not_0600(tmp_path: Path) -> None:
    w = _world(tmp_path)
    f = w.root / "win" / ".wslconfig"
    before = w.snapshot()
    judge(write(f), w, before, 0, ("written",))
    assert stat.S_IMODE(f.stat().st_mode) & 0o044  # group/other can read it, as with any file the user makes


def test_three_writes_in_one_second_keep_three_backups(tmp_path: Path) -> None:
    w = _world(tmp_path)
    f = w.root / "win" / ".wslconfig"
    f.write_text("[wsl2]\nmemory=4GB\n")
    contents = []
    for mem in ("10GB", "11GB", "12GB"):
        contents.append(f.read_text())
        assert write(f, "--memory", mem).code == 0
    backups = sorted(f.parent.glob(".wslconfig.*.bak"))
    assert len(backups) == 3 and sorted(b.read_text() for b in backups) == sorted(contents)


REFUSED = [
    # (id, extra flags, words)
    ("cpus-absurd", ["--windows-cpus", "100000000000000000000000"], "not a real machine"),
    ("cpus-zero", ["--windows-cpus", "0"], "not a real machine"),
    ("ram-negative", ["--windows-ram-gb", "-1"], "not a real machine"),
    ("ram-inf", ["--windows-ram-gb", "inf"], "not a real machine"),
    ("ram-nan", ["--windows-ram-gb", "nan"], "not a real machine"),
    ("ram-huge", ["--windows-ram-gb", "1e300"], "not a real machine"),
    ("swap-file-newline", ["--swap-file", "C:\\swap.vhdx\nkernel=C:\\evil"], "control character"),
    ("memory-newline", ["--memory", "16GB\nkernel=C:\\evil"], "control character"),
    ("memory-words", ["--memory", "lots"], "not a size"),
    ("memory-zero", ["--memory", "0"], "must be above zero"),
    ("processors-zero", ["--processors", "0"], "positive whole number"),
    ("processors-words", ["--processors", "many"], "valid integer"),
    ("reclaim-bogus", ["--auto-memory-reclaim", "sometimes"], "is not one of"),
]


@pytest.mark.parametrize("cid,flags,words", REFUSED, ids=[c[0] for c in REFUSED])
def test_a_bad_value_is_refused_and_nothing_is_written(tmp_path: Path, cid: str, flags: list[str], words: str) -> None:
    w = _world(tmp_path)
    f = w.root / "win" / ".wslconfig"
    f.write_bytes(GOOD.encode())
    w.allowed = []  # not even the target file may change
    before = w.snapshot()
    r = run(["wslconfig", "triposr", "--write", "--path", str(f), *(["--windows-ram-gb", "32"] if "--windows-ram-gb" not in flags else []),
             *(["--windows-cpus", "16"] if "--windows-cpus" not in flags else []), *flags])
    judge(r, w, before, 2, (words,))
    assert f.read_bytes() == GOOD.encode() and not list(f.parent.glob("*.bak"))


BROKEN_FILES = [
    ("binary-junk", bytes(range(256)) * 10, "binary data"),
    ("latin-1", "[wsl2]\n# caf\xe9\nmemory=8GB\n".encode("latin-1"), "not UTF-8"),
    ("key-outside-section", b"memory=8GB\n[wsl2]\n", "outside any section"),
    ("garbage-line", b"[wsl2]\nthis is not a setting\n", "cannot read"),
    ("too-large", b"[wsl2]\n" + b"# x\n" * 400_000, "too large"),
]


@pytest.mark.parametrize("cid,content,words", BROKEN_FILES, ids=[c[0] for c in BROKEN_FILES])
def test_a_broken_wslconfig_is_refused_and_left_as_it_is(tmp_path: Path, cid: str, content: bytes, words: str) -> None:
    w = _world(tmp_path)
    f = w.root / "win" / ".wslconfig"
    f.write_bytes(content)
    w.allowed = []
    before = w.snapshot()
    judge(write(f), w, before, 2, (words,))
    assert f.read_bytes() == content


def test_a_directory_given_as_the_wslconfig(tmp_path: Path) -> None:
    w = _world(tmp_path)
    d = w.root / "win" / ".wslconfig"
    d.mkdir()
    w.allowed = []
    before = w.snapshot()
    judge(write(d), w, before, 2, ("is a directory",))
    judge(run(["wslconfig", "triposr", "--lint", "--path", str(d)]), w, before, 2, ("is a directory",))
