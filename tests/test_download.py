"""The download core under faults: every fault ends in a verified file or a clear failure."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from pathlib import Path

import pytest

from provision.offline import stream
from provision.offline.download import (
    AuthRequired,
    DownloadError,
    Job,
    Policy,
    Progress,
    fetch,
    retry_after,
    session,
)

from fakeserver import FakeServer

DATA = os.urandom(3 * (1 << 20) + 12345)  # hashed inline, as it is read
SHA = hashlib.sha256(DATA).hexdigest()
LARGE = os.urandom(stream.BIG + 3 * (1 << 20) + 777)  # hashed by the second thread, behind the writer
LARGE_SHA = hashlib.sha256(LARGE).hexdigest()
FAST = Policy(attempts=4, backoff=0.01, read_timeout=1.0, connect_timeout=2.0, stall_timeout=1.0)
# the three ways a body comes in (stream.py): (file, policy)
WAYS = {"inline": ("big.bin", FAST), "splice": ("large.bin", FAST),
        "read1+thread": ("large.bin", dataclasses.replace(FAST, splice=False))}


@pytest.fixture
def server():
    with FakeServer() as s:
        s.state.files["big.bin"] = DATA
        s.state.files["large.bin"] = LARGE
        s.state.stall_seconds = 2.0
        yield s


def job(server: FakeServer, tmp_path: Path, name: str = "big.bin", **kw) -> Job:
    data = {"big.bin": DATA, "large.bin": LARGE}[name]
    return Job(url=f"{server.url}/files/{name}", dest=tmp_path / name, sha256=hashlib.sha256(data).hexdigest(),
               size=len(data), **kw)


def test_a_clean_download_is_checked_and_renamed_into_place(server: FakeServer, tmp_path: Path) -> None:
    r = fetch(job(server, tmp_path), session(), FAST)
    assert r.sha256 == SHA and r.fetched == len(DATA)
    assert (tmp_path / "big.bin").read_bytes() == DATA and not (tmp_path / "big.bin.part").exists()
    again = fetch(job(server, tmp_path), session(), FAST)
    assert again.skipped and again.fetched == 0


@pytest.mark.parametrize("way", sorted(WAYS))
@pytest.mark.parametrize("fault", ["drop", "500", "429", "truncate", "wrong", "stall", "norange", "hang"])
def test_each_fault_ends_in_a_verified_file(server: FakeServer, tmp_path: Path, fault: str, way: str) -> None:
    name, policy = WAYS[way]
    server.fault(name, fault)
    if fault == "norange":  # needs a .part to resume first
        server.fault(name, "drop")
    j = job(server, tmp_path, name)
    r = fetch(j, session(), policy)
    assert r.sha256 == j.sha256 and j.dest.read_bytes() == server.state.files[name]


@pytest.mark.parametrize("way", sorted(WAYS))
def test_each_way_in_is_the_one_taken(server: FakeServer, tmp_path: Path, way: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    taken = []
    for fn in ("_splice", "_http_read1", "_read1"):
        real = getattr(stream, fn)
        monkeypatch.setattr(stream, fn, lambda *a, _f=fn, _r=real, **k: (taken.append(_f), _r(*a, **k))[1])
    name, policy = WAYS[way]
    j = job(server, tmp_path, name)
    assert fetch(j, session(), policy).sha256 == j.sha256
    assert taken == [{"inline": "_http_read1", "splice": "_splice", "read1+thread": "_http_read1"}[way]]


@pytest.mark.parametrize("way", sorted(WAYS))
def test_a_transfer_stalled_mid_file_is_said_dropped_and_resumed_with_range_within_15_s(
        server: FakeServer, tmp_path: Path, way: str) -> None:
    """The server sends half the file, then nothing on an open connection for 2 minutes."""
    name, policy = WAYS[way]
    server.fault(name, "hang")
    said: list[str] = []
    j = job(server, tmp_path, name)
    t = time.monotonic()
    r = fetch(j, session(), policy, Progress(on_status=said.append))
    took = time.monotonic() - t
    assert r.sha256 == j.sha256 and j.dest.read_bytes() == server.state.files[name]
    assert took < 15, f"resumed after {took:.1f} s"
    assert said == ["stalled, reconnecting", ""]  # on the progress line, then cleared as bytes flow again
    size = len(server.state.files[name])
    assert server.state.bytes_sent <= size + (1 << 20), "resumed with Range, not from the start"
    assert r.fetched <= size + (1 << 20)


@pytest.mark.parametrize("way", sorted(WAYS))
def test_a_dropped_connection_resumes_with_range_instead_of_starting_over(server: FakeServer, tmp_path: Path,
                                                                         way: str) -> None:
    name, policy = WAYS[way]
    server.fault(name, "drop")
    r = fetch(job(server, tmp_path, name), session(), policy)
    # half the file on the first try, the other half on the resumed one: nothing twice
    size = len(server.state.files[name])
    assert r.fetched <= size + (1 << 20)
    assert server.state.bytes_sent <= size + (1 << 20)


@pytest.mark.parametrize("way", sorted(WAYS))
def test_a_part_left_by_a_killed_run_is_hashed_again_and_completed(server: FakeServer, tmp_path: Path,
                                                                   way: str) -> None:
    name, policy = WAYS[way]
    data = server.state.files[name]
    (tmp_path / f"{name}.part").write_bytes(data[: len(data) * 2 // 3])
    r = fetch(job(server, tmp_path, name), session(), policy)
    assert r.sha256 == hashlib.sha256(data).hexdigest() and r.fetched == len(data) - len(data) * 2 // 3
    assert server.state.bytes_sent == r.fetched


def test_md5_is_checked_beside_sha256_on_every_way_in(server: FakeServer, tmp_path: Path) -> None:
    for way, (name, policy) in WAYS.items():
        data = server.state.files[name]
        j = dataclasses.replace(job(server, tmp_path / way, name), md5=hashlib.md5(data).hexdigest())
        assert fetch(j, session(), policy).sha256 == j.sha256
        bad = dataclasses.replace(job(server, tmp_path / f"{way}-bad", name), md5="0" * 32)
        with pytest.raises(DownloadError, match="md5"):
            fetch(bad, session(), dataclasses.replace(policy, attempts=1))


def test_wrong_bytes_every_time_fail_naming_the_file_and_keep_nothing(server: FakeServer, tmp_path: Path) -> None:
    server.fault("big.bin", "wrong", times=10)
    with pytest.raises(DownloadError) as e:
        fetch(job(server, tmp_path, label="weights/big.bin"), session(), FAST)
    assert "weights/big.bin" in e.value.message and "checksum mismatch" in e.value.message
    assert not (tmp_path / "big.bin").exists() and not (tmp_path / "big.bin.part").exists()


@pytest.fixture(scope="module")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate for the HTTPS server")
    d = tmp_path_factory.mktemp("tls")
    cert, key = str(d / "cert.pem"), str(d / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


@pytest.mark.parametrize("name", ["big.bin", "large.bin"])
@pytest.mark.parametrize("fault", [None, "hang", "drop"])
def test_https_bodies_come_in_by_read1_and_a_stall_there_is_resumed_too(
        tls_cert: tuple[str, str], tmp_path: Path, name: str, fault: str | None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """TLS: the bytes are decrypted in Python, so no splice; the same stall limit and resume."""
    taken = []
    real = stream._http_read1
    monkeypatch.setattr(stream, "_http_read1", lambda *a, **k: (taken.append(1), real(*a, **k))[1])
    with FakeServer(tls=tls_cert) as s:
        s.state.files[name] = {"big.bin": DATA, "large.bin": LARGE}[name]
        if fault:
            s.fault(name, fault)
        sess = session()
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_cert[0])  # requests prefers it to Session.verify
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        said: list[str] = []
        j = job(s, tmp_path, name)
        t = time.monotonic()
        r = fetch(j, sess, FAST, Progress(on_status=said.append))
        assert time.monotonic() - t < 15
    assert r.sha256 == j.sha256 and j.dest.read_bytes() == s.state.files[name]
    assert taken and said == (["stalled, reconnecting", ""] if fault == "hang" else [])
    assert s.state.bytes_sent <= len(s.state.files[name]) + (1 << 20)


def test_401_is_an_auth_error_with_a_hint(server: FakeServer, tmp_path: Path) -> None:
    server.fault("big.bin", "401")
    with pytest.raises(AuthRequired) as e:
        fetch(job(server, tmp_path), session(), FAST)
    assert "HF_TOKEN" in (e.value.hint or "")


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after("3") == 3.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after(None) is None and retry_after("soon") is None
