"""The download core under faults: every fault ends in a verified file or a clear failure."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from provision.offline.download import (
    AuthRequired,
    DownloadError,
    Job,
    Policy,
    fetch,
    retry_after,
    session,
)

from fakeserver import FakeServer

DATA = os.urandom(3 * (1 << 20) + 12345)
SHA = hashlib.sha256(DATA).hexdigest()
FAST = Policy(attempts=4, backoff=0.01, read_timeout=1.0, connect_timeout=2.0)


@pytest.fixture
def server():
    with FakeServer() as s:
        s.state.files["big.bin"] = DATA
        s.state.stall_seconds = 2.0
        yield s


def job(server: FakeServer, tmp_path: Path, **kw) -> Job:
    return Job(url=f"{server.url}/files/big.bin", dest=tmp_path / "big.bin", sha256=SHA, size=len(DATA), **kw)


def test_a_clean_download_is_checked_and_renamed_into_place(server: FakeServer, tmp_path: Path) -> None:
    r = fetch(job(server, tmp_path), session(), FAST)
    assert r.sha256 == SHA and r.fetched == len(DATA)
    assert (tmp_path / "big.bin").read_bytes() == DATA and not (tmp_path / "big.bin.part").exists()
    again = fetch(job(server, tmp_path), session(), FAST)
    assert again.skipped and again.fetched == 0


@pytest.mark.parametrize("fault", ["drop", "500", "429", "truncate", "wrong", "stall", "norange"])
def test_each_fault_ends_in_a_verified_file(server: FakeServer, tmp_path: Path, fault: str) -> None:
    server.fault("big.bin", fault)
    if fault == "norange":  # needs a .part to resume first
        server.fault("big.bin", "drop")
    r = fetch(job(server, tmp_path), session(), FAST)
    assert r.sha256 == SHA and (tmp_path / "big.bin").read_bytes() == DATA


def test_a_dropped_connection_resumes_with_range_instead_of_starting_over(server: FakeServer, tmp_path: Path) -> None:
    server.fault("big.bin", "drop")
    r = fetch(job(server, tmp_path), session(), FAST)
    # half the file on the first try, the other half on the resumed one: nothing twice
    assert r.fetched <= len(DATA) + (1 << 20)
    assert server.state.bytes_sent <= len(DATA) + (1 << 20)


def test_wrong_bytes_every_time_fail_naming_the_file_and_keep_nothing(server: FakeServer, tmp_path: Path) -> None:
    server.fault("big.bin", "wrong", times=10)
    with pytest.raises(DownloadError) as e:
        fetch(job(server, tmp_path, label="weights/big.bin"), session(), FAST)
    assert "weights/big.bin" in e.value.message and "checksum mismatch" in e.value.message
    assert not (tmp_path / "big.bin").exists() and not (tmp_path / "big.bin.part").exists()


def test_401_is_an_auth_error_with_a_hint(server: FakeServer, tmp_path: Path) -> None:
    server.fault("big.bin", "401")
    with pytest.raises(AuthRequired) as e:
        fetch(job(server, tmp_path), session(), FAST)
    assert "HF_TOKEN" in (e.value.hint or "")


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after("3") == 3.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after(None) is None and retry_after("soon") is None
