"""provision mirror and seed, for each shipped target, against a fake Hub and file server.

Each target's spec is re-written with the checksums of the bytes the fake server serves
(the real ones belong to multi-GB files), everything else as shipped: the same repos, file
patterns, torch.hub repo, extension sources and URL weights. After seeding, the real
clients (huggingface_hub, torch.hub with the real CPU torch) find everything offline.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_lock import run

from provision.spec import GitSource, load_target

from fakeserver import FakeServer

TARGETS = ["trellis", "trellis2", "triposr"]
HUBCONF = b'''
import torch
dependencies = ["torch"]

def dinov2_vitl14_reg(pretrained=True, **kw):
    model = torch.nn.Linear(2, 2)
    if pretrained:
        sd = torch.hub.load_state_dict_from_url(
            "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_reg4_pretrain.pth",
            map_location="cpu")
        model.load_state_dict(sd)
    return model
'''


def _checkpoint() -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(torch.nn.Linear(2, 2).state_dict(), buf)
    return buf.getvalue()


def _fake_files(patterns: list[str], repo: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {"README.md": f"# {repo}\n".encode()}  # matches no pattern unless '*'
    for p in patterns:
        if p.endswith(".*"):  # ckpts/ss_dec_conv3d_16l8_fp16.* -> its .json and .safetensors
            files[p[:-2] + ".json"] = json.dumps({"repo": repo, "file": p[:-2] + ".json"}).encode()
            files[p[:-2] + ".safetensors"] = hashlib.sha256(p.encode()).digest() * 300
        elif "*" in p:
            base = p.split("*")[0]
            files[f"{base}model.json"] = b'{"name": "%s"}' % repo.encode()
            files[f"{base}model.safetensors"] = hashlib.sha256(repo.encode()).digest() * 300  # "LFS"
        else:
            files[p] = (json.dumps({"repo": repo, "file": p}).encode() if p.endswith(".json")
                        else hashlib.sha256(p.encode()).digest() * 300)
    return files


def stage(server: FakeServer, target: str, d: Path) -> Path:
    """Serve the target's artifacts; write a spec file whose checksums are the served bytes'."""
    loaded = load_target(target)
    spec = loaded.spec.model_dump(mode="json")
    spec["include"] = []
    for r in spec["weights"]["huggingface"]:
        files = _fake_files(r["files"], r["repo"])
        if r["repo"] in server.state.repos:  # a repo two targets share: one repo, both file sets
            files = server.state.repos[r["repo"]].files | files
        server.add_repo(r["repo"], hashlib.sha1(r["repo"].encode()).hexdigest(), files, gated=r["gated"])
    up = spec["upstream"]  # the app itself
    server.state.archives[f"{up['repo'].removeprefix('https://github.com/')}@{up['commit']}"] = {
        "app.py": b"print('the app')\n"}
    for h in spec["weights"]["torch_hub"]:
        server.state.archives[f"{h['repo']}@{h['commit']}"] = {"hubconf.py": HUBCONF, "README.md": b"dinov2"}
        for c in h["checkpoints"]:
            data = _checkpoint()
            server.state.files["fb/" + c["url"].split("dl.fbaipublicfiles.com/", 1)[1]] = data
            c["sha256"], c["size"] = hashlib.sha256(data).hexdigest(), len(data)
    for u in spec["weights"]["urls"]:
        data = f"onnx model {u['name']}".encode() * 1000
        server.state.files["gh-releases/" + u["url"].split("github.com/", 1)[1]] = data
        u["md5"], u["sha256"] = hashlib.md5(data).hexdigest(), None
    for e, model in zip(spec["extensions"], loaded.spec.extensions):
        src = e["source"]
        if isinstance(model.source, GitSource):
            owner_repo = src["git"].removeprefix("https://github.com/").removesuffix(".git")
            server.state.archives[f"{owner_repo}@{src['commit']}"] = {"setup.py": b"# " + e["name"].encode()}
        elif "sdist" in src:
            data = b"sdist of " + e["name"].encode()
            server.state.files["pypi/" + src["sdist"].split("files.pythonhosted.org/", 1)[1]] = data
            src["sha256"] = hashlib.sha256(data).hexdigest()
    for p in spec["pip"]["packages"]:
        if p.get("git"):
            owner_repo = p["git"]["git"].removeprefix("https://github.com/").removesuffix(".git")
            server.state.archives[f"{owner_repo}@{p['git']['commit']}"] = {"pyproject.toml": b"[project]"}
    path = d / f"{target}.yaml"
    d.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def mirror_args(server: FakeServer, spec: Path, bundle: Path, *extra: str) -> list[str]:
    return ["mirror", str(spec), "--to", str(bundle), "--no-packages", "--hf-endpoint", server.url,
            "--github-base", f"{server.url}/gh",
            "--url-map", f"https://dl.fbaipublicfiles.com={server.url}/files/fb",
            "--url-map", f"https://github.com/danielgatis={server.url}/files/gh-releases/danielgatis",
            "--url-map", f"https://files.pythonhosted.org={server.url}/files/pypi", *extra]


@pytest.fixture
def server():
    with FakeServer() as s:
        s.state.token = "hf_test_token_123"
        yield s


def _offline_env(hf: Path, th: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    return env | {"HF_HOME": str(hf), "TORCH_HOME": str(th), "HF_HUB_OFFLINE": "1",
                  "HF_HUB_DISABLE_TELEMETRY": "1", "NO_PROXY": "*"}


@pytest.mark.parametrize("target", TARGETS)
def test_a_bundle_is_planned_built_rerun_seeded_and_read_offline(server: FakeServer, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    spec = stage(server, target, tmp_path / "envs")
    bundle = tmp_path / "bundle"
    code, out = run(*mirror_args(server, spec, bundle, "--dry-run"))
    import re

    total = re.search(r"^(\d+) artifacts, ([\d.]+ [KMG]?B)", out, re.M)
    assert total and int(total.group(1)) >= 3, out  # every artifact, with its size when known, and the total
    assert not (bundle / "blobs").exists()  # a dry run downloads nothing
    gated = [r.repo for r in load_target(target).spec.weights.huggingface if r.gated]

    code, out = run(*mirror_args(server, spec, bundle))
    if gated:  # no token: those repos fail, with the licence page and how to pass a token; the rest completes
        assert code == 1 and all(g in out for g in gated) and "HF_TOKEN" in out
        monkeypatch.setenv("HF_TOKEN", server.state.token)
        code, out = run(*mirror_args(server, spec, bundle))
    assert code == 0, out
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["schema"] == 1 and target in manifest["targets"]
    assert all(a["sha256"] and a["url"] and a["dest"] for a in manifest["artifacts"])
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=bundle).returncode == 0
    assert not any(a["path"] == "README.md" for a in manifest["artifacts"] if a["kind"] == "hf-file"
                   and "*" not in str(load_target(target).spec.weights.huggingface))

    before = server.state.bytes_sent
    code, out = run(*mirror_args(server, spec, bundle))
    assert code == 0 and "nothing to download" in out
    assert server.state.bytes_sent - before < 50_000  # only the Hub's file lists were asked again

    hf, th, data = tmp_path / "hf", tmp_path / "torch", tmp_path / "data"
    env_prefix = tmp_path / "env"
    (env_prefix / "etc" / "conda" / "activate.d").mkdir(parents=True)
    (env_prefix / "etc" / "conda" / "deactivate.d").mkdir(parents=True)
    code, out = run("seed", str(bundle), "--hf-home", str(hf), "--torch-home", str(th), "--data-dir", str(data),
                    "--prefix", str(env_prefix))
    assert code == 0, out
    assert "export HF_HUB_OFFLINE=1" in out
    act = (env_prefix / "etc" / "conda" / "activate.d" / "provision-seed.sh").read_text()
    assert f"export HF_HOME={hf}" in act and "export HF_HUB_OFFLINE=1" in act
    code, out = run("seed", str(bundle), "--hf-home", str(hf), "--torch-home", str(th), "--data-dir", str(data))
    assert code == 0 and "0 kept" in out and "wrote 0" in out  # idempotent

    env = _offline_env(hf, th)
    repos = load_target(target).spec.weights.huggingface
    check = "from huggingface_hub import snapshot_download, hf_hub_download\nimport os\n"
    for r in repos:
        f = next(a["path"] for a in manifest["artifacts"] if a.get("repo") == r.repo and a["kind"] == "hf-file")
        check += (f"p = hf_hub_download({r.repo!r}, {f!r})\nassert os.path.getsize(p) > 0, p\n"
                  f"d = snapshot_download({r.repo!r})\nassert os.path.isdir(d)\n")
    r = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    if load_target(target).spec.weights.torch_hub:
        r = subprocess.run([sys.executable, "-c", "import torch; m = torch.hub.load('facebookresearch/dinov2', "
                            "'dinov2_vitl14_reg'); print(type(m).__name__)"], env=env, capture_output=True, text=True)
        assert r.returncode == 0 and "Linear" in r.stdout, r.stderr[-2000:]
    if load_target(target).spec.weights.urls:
        assert (data / "u2net" / "u2net.onnx").is_file() or any(data.rglob("u2net.onnx"))


def test_two_targets_share_one_blob_and_a_kill_9_resumes(server: FakeServer, tmp_path: Path) -> None:
    trellis = stage(server, "trellis", tmp_path / "envs")
    big = os.urandom(6 << 20)
    ckpt_path = "fb/dinov2/dinov2_vitl14/dinov2_vitl14_reg4_pretrain.pth"
    server.state.files[ckpt_path] = big
    spec = yaml.safe_load(trellis.read_text())
    spec["weights"]["torch_hub"][0]["checkpoints"][0].update(sha256=hashlib.sha256(big).hexdigest(), size=len(big))
    trellis.write_text(yaml.safe_dump(spec, sort_keys=False))
    server.fault("dinov2_vitl14_reg4_pretrain.pth", "slow", times=1)
    bundle = tmp_path / "bundle"
    args = [sys.executable, "-m", "provision", *mirror_args(server, trellis, bundle, "--workers", "1", "-q")]
    p = subprocess.Popen(args, cwd=Path(__file__).resolve().parent.parent,
                         env=os.environ | {"HF_TOKEN": server.state.token}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline and server.state.bytes_sent < len(big) // 2:
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    sent_before = server.state.bytes_sent
    assert not (bundle / "blobs" / hashlib.sha256(big).hexdigest()).exists()  # nothing wrong under a final name
    code, out = run(*mirror_args(server, trellis, bundle))
    assert code == 0, out
    again = server.state.bytes_sent - sent_before
    assert again < len(big) * 0.6, f"re-sent {again} of {len(big)}"  # resumed, not restarted
    # TRELLIS.2 needs a decoder from TRELLIS-image-large too: mirrored into the same bundle, it is stored once
    trellis2 = stage(server, "trellis2", tmp_path / "envs")
    code, out = run(*mirror_args(server, trellis2, bundle), )
    assert code in (0, 1), out  # 1: its gated repos, without a token here
    manifest = json.loads((bundle / "manifest.json").read_text())
    shared = [a for a in manifest["artifacts"] if a.get("path") == "ckpts/ss_dec_conv3d_16l8_fp16.json"]
    assert len(shared) == 1 and shared[0]["targets"] == ["trellis", "trellis2"]
    n_blobs = len(list((bundle / "blobs").iterdir()))
    assert n_blobs == len({a["sha256"] for a in manifest["artifacts"]})


def test_seed_refuses_a_manifest_that_escapes_and_keeps_differing_files(server: FakeServer, tmp_path: Path) -> None:
    spec = stage(server, "triposr", tmp_path / "envs")
    bundle = tmp_path / "bundle"
    assert run(*mirror_args(server, spec, bundle))[0] == 0
    hf, th, data = tmp_path / "hf", tmp_path / "torch", tmp_path / "data"
    # a file of the user's where a weight goes: kept, reported, exit 1; --force keeps a .bak
    u2 = data / "u2net" / "u2net.onnx"
    u2.parent.mkdir(parents=True)
    u2.write_bytes(b"mine")
    seed = ["seed", str(bundle), "--hf-home", str(hf), "--torch-home", str(th), "--data-dir", str(data)]
    code, out = run(*seed)
    assert code == 1 and "kept" in out and u2.read_bytes() == b"mine"
    code, out = run(*seed, "--force")
    assert code == 0 and (u2.parent / "u2net.onnx.bak").read_bytes() == b"mine" and u2.read_bytes() != b"mine"
    # a tampered blob: nothing is seeded, the blob is named
    m = json.loads((bundle / "manifest.json").read_text())
    victim = bundle / "blobs" / m["artifacts"][0]["sha256"]
    victim.write_bytes(b"tampered")
    code, out = run(*seed, "--dry-run")
    assert code == 2 and m["artifacts"][0]["sha256"] in out and "nothing was seeded" in out
    # a manifest entry whose path escapes
    m["artifacts"][0]["dest"] = "../../etc/passwd"
    (bundle / "manifest.json").write_text(json.dumps(m))
    code, out = run(*seed)
    assert code == 2 and "must not contain '..'" in out and "refused whole" in out


def test_locked_packages_go_to_a_wheelhouse_and_a_local_channel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lockfile's wheels and conda packages are mirrored by URL and hash, and seeded where
    apply installs from offline: a wheelhouse pip can use with --no-index, an indexed channel."""
    import asyncio

    import rattler
    from test_lock import lock, write_spec

    from repofactory import flat_page, serve, simple_index, toy_channel, wheel

    monkeypatch.setenv("PROVISION_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "repos"
    toy_channel(root / "chan")
    files = root / "pypi" / "files"
    for name, ver, req in [("alpha", "1.0", ("beta>=2",)), ("beta", "1.0", ()), ("beta", "2.0", ()),
                           ("torch", "2.8.0", ("beta",)), ("setuptools", "70.1.0", ()), ("wheel", "0.43.0", ())]:
        wheel(files, name, ver, req)
    simple_index(root / "pypi")
    wheel(root / "pypi" / "flatfiles", "gamma", "0.5")
    flat_page(root / "pypi", "flat.html", "flatfiles")
    with serve(root) as url:
        repos = {"root": root, "chan": f"{url}/chan", "pip": f"{url}/pypi", "index": f"{url}/pypi/simple"}
        spec = write_spec(tmp_path / "envs", repos)
        assert lock(tmp_path, repos, spec=spec)[0] == 0
        bundle = tmp_path / "bundle"
        code, out = run("mirror", str(spec), "--to", str(bundle), "--lockdir", str(tmp_path / "lockfiles"))
        assert code == 1 and "utilz" in out and "not on GitHub" in out  # the one source it cannot mirror
        kinds = {a["kind"] for a in json.loads((bundle / "manifest.json").read_text())["artifacts"]}
        assert {"wheel", "conda"} <= kinds
    data = tmp_path / "data"  # the servers are gone from here on: offline
    code, out = run("seed", str(bundle), "--hf-home", str(tmp_path / "hf"), "--torch-home", str(tmp_path / "th"),
                    "--data-dir", str(data))
    assert code == 1 and "INCOMPLETE" in out and "utilz" in out, out  # seeded, and honest about the missing source
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--no-index", "--find-links",
                        str(data / "wheelhouse"), "--target", str(tmp_path / "site"), "--no-deps", "alpha", "beta==1.0", "gamma"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    recs = asyncio.run(rattler.solve([str(data / "channel")], ["python 3.10.*", "cuda-nvcc"],
                                     gateway=rattler.Gateway(cache_dir=tmp_path / "rc"), platforms=["linux-64", "noarch"],
                                     virtual_packages=[rattler.GenericVirtualPackage(
                                         rattler.PackageName("__cuda"), rattler.Version("12.8"), rattler.BuildString("0")),
                                         rattler.GenericVirtualPackage(rattler.PackageName("__glibc"),
                                                                       rattler.Version("2.28"), rattler.BuildString("0"))]))
    assert {r.name.normalized for r in recs} >= {"python", "cuda-nvcc", "libzlib"}


def test_each_file_gets_its_own_progress_and_the_total_adds_up(server: FakeServer, tmp_path: Path) -> None:
    from provision.offline import mirror as m
    from provision.offline.bundle import Bundle
    from provision.offline.download import session

    spec_path = stage(server, "triposr", tmp_path / "envs")
    from provision.spec import load_spec

    spec = load_spec(spec_path).spec
    ep = m.Endpoints(hf=server.url, github=f"{server.url}/gh",
                     url_map={"https://github.com/danielgatis": f"{server.url}/files/gh-releases/danielgatis"})
    entries, problems = m.plan_entries(spec, spec.default_variant(), None, ep, session(), None)
    bars: dict[str, list[int]] = {}

    class Bar:
        def __init__(self, name: str, size: int | None) -> None:
            self.name = name
            bars[name] = []

        def __enter__(self) -> "Bar":
            return self

        def __exit__(self, *a: object) -> None:
            pass

        def update(self, n: int) -> None:
            bars[self.name].append(n)

    total: list[int] = []
    r = m.run(Bundle.open(tmp_path / "b", create=True), entries, session(), None, ep, on_bytes=total.append,
              file_bar=Bar)
    assert not r.failed and set(bars) == {e.name for e in entries}
    assert sum(map(sum, bars.values())) == sum(total) == r.bytes_fetched


def test_a_stalled_download_is_said_on_its_bar_and_on_stderr_and_resumed(server: FakeServer, tmp_path: Path) -> None:
    """One weight's server goes silent half way (the connection stays open): the file's bar says
    so, the download resumes with Range, and the bundle completes, all well within 15 s."""
    from provision.offline import mirror as m
    from provision.offline.bundle import Bundle
    from provision.offline.download import Policy, session

    spec_path = stage(server, "triposr", tmp_path / "envs")
    from provision.spec import load_spec

    spec = load_spec(spec_path).spec
    ep = m.Endpoints(hf=server.url, github=f"{server.url}/gh",
                     url_map={"https://github.com/danielgatis": f"{server.url}/files/gh-releases/danielgatis"})
    entries, _ = m.plan_entries(spec, spec.default_variant(), None, ep, session(), None)
    victim = max(entries, key=lambda e: e.size or 0)
    server.fault(victim.url.rsplit("/", 1)[-1], "hang")
    postfix: dict[str, list[str]] = {}

    class Bar:
        def __init__(self, name: str, size: int | None) -> None:
            self.name = name

        def __enter__(self) -> "Bar":
            return self

        def __exit__(self, *a: object) -> None:
            pass

        def update(self, n: int) -> None:
            pass

        def set_postfix_str(self, text: str) -> None:
            postfix.setdefault(self.name, []).append(text)

    t = time.monotonic()
    r = m.run(Bundle.open(tmp_path / "b", create=True), entries, session(), None, ep, file_bar=Bar,
              policy=Policy(stall_timeout=1.0, backoff=0.01))
    assert time.monotonic() - t < 15
    assert not r.failed and postfix == {victim.name: ["stalled, reconnecting", ""]}
    # the command line, without a terminal: one line on stderr
    server.fault(victim.url.rsplit("/", 1)[-1], "hang")
    code, out = run(*mirror_args(server, spec_path, tmp_path / "b2", "--stall-timeout", "1"))
    assert code == 0, out
    assert f"{victim.name}: stalled, reconnecting" in out


def test_a_truncated_blob_and_a_missing_weight_are_named_then_repaired_by_mirror(server: FakeServer,
                                                                                tmp_path: Path) -> None:
    """Given a bundle whose checkpoint was truncated on the USB stick and whose u2net weight was
    deleted: seed and preflight name both and exit non-zero, writing nothing; mirror re-run into
    the same directory re-fetches exactly those two; then seed succeeds."""
    spec = stage(server, "triposr", tmp_path / "envs")
    bundle = tmp_path / "bundle"
    assert run(*mirror_args(server, spec, bundle))[0] == 0
    m = json.loads((bundle / "manifest.json").read_text())
    by_name = {a["name"]: a for a in m["artifacts"]}
    ckpt = by_name["stabilityai/TripoSR/model.ckpt"]
    u2 = next(a for a in m["artifacts"] if a["kind"] == "url")
    truncated, deleted = bundle / "blobs" / ckpt["sha256"], bundle / "blobs" / u2["sha256"]
    truncated.write_bytes(truncated.read_bytes()[:100])
    deleted.unlink()
    seed = ["seed", str(bundle), "--hf-home", str(tmp_path / "hf"), "--torch-home", str(tmp_path / "th"),
            "--data-dir", str(tmp_path / "data")]
    code, out = run(*seed)
    assert code == 2 and "nothing was seeded" in out, out
    assert f"blobs/{ckpt['sha256']}: content does not match" in out and f"blobs/{u2['sha256']}: missing" in out
    assert not (tmp_path / "hf").exists() and not (tmp_path / "data").exists()
    code, out = run("verify", str(spec), "--preflight", "--bundle", str(bundle), "--host",
                    str(Path(__file__).parent / "fixtures" / "hosts" / "rtx5070ti-wsl2.json"))
    assert code == 2 and ckpt["sha256"] in out and u2["sha256"] in out, out
    code, out = run(*mirror_args(server, spec, bundle))
    assert code == 0 and "repaired: stabilityai/TripoSR/model.ckpt" in out and "2 downloaded" in out, out
    code, out = run(*seed)
    assert code == 0, out
    code, out = run(*mirror_args(server, spec, bundle))  # and now a re-run is a no-op again
    assert code == 0 and "complete, nothing to download" in out, out
