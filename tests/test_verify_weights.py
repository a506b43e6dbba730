"""verify proves the weights are complete: given a seeded Hugging Face cache (laid out as
huggingface_hub lays it out, and read back by the real huggingface_hub offline), every model
the pipeline.json names is there with its .json and .safetensors, each blob matches the
checksum it is named by, and what is missing is named (field note 000 §4, field note 001's
404 on ckpts/<model>.json)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from provision.host import load_host
from provision.plan import PlanOptions, make_plan
from provision.render.checklist import compile_checklist
from provision.spec import load_target
from provision.verify.weights import Stamps, hf_complete

from conftest import FIXTURES

MAIN, OTHER = "microsoft/TRELLIS.2-4B", "microsoft/TRELLIS-image-large"
C_MAIN, C_OTHER = "af44b45f2e35a493886929c6d786e563ec68364d", "25e0d31ffbebe4b5a97464dd851910efc3002d96"
PIPELINE = {"name": "Trellis2ImageTo3DPipeline", "args": {"models": {
    "shape_slat_flow_model_512": "ckpts/slat_flow_img2shape_dit_1_3B_512_bf16",
    "sparse_structure_decoder": f"{OTHER}/ckpts/ss_dec_conv3d_16l8_fp16"}}}


def put(hub: Path, repo: str, commit: str, files: dict[str, bytes], lfs: bool = True) -> Path:
    """One repo in the cache: blobs named by sha256 (LFS) or the git blob sha1, relative links."""
    d = hub / ("models--" + repo.replace("/", "--"))
    (d / "refs").mkdir(parents=True, exist_ok=True)
    (d / "refs" / "main").write_text(commit)
    snap = d / "snapshots" / commit
    for rel, data in files.items():
        big = lfs and not rel.endswith(".json")
        name = hashlib.sha256(data).hexdigest() if big else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        (d / "blobs").mkdir(exist_ok=True)
        (d / "blobs" / name).write_bytes(data)
        link = snap / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(d / "blobs" / name, link.parent))
    return snap


def check(repo: str = MAIN, revision: str = C_MAIN, files: list[str] | None = None) -> dict:
    return {"repo": repo, "revision": revision, "files": files or ["pipeline.json", "ckpts/*"],
            "repos": {MAIN: C_MAIN, OTHER: C_OTHER}}


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, dict]:
    hub = tmp_path / "hf" / "hub"
    snap = put(hub, MAIN, C_MAIN, {"pipeline.json": json.dumps(PIPELINE).encode(),
                                   "ckpts/slat_flow_img2shape_dit_1_3B_512_bf16.json": b"{}",
                                   "ckpts/slat_flow_img2shape_dit_1_3B_512_bf16.safetensors": b"W" * 4096})
    put(hub, OTHER, C_OTHER, {"ckpts/ss_dec_conv3d_16l8_fp16.json": b"{}",
                              "ckpts/ss_dec_conv3d_16l8_fp16.safetensors": b"D" * 2048})
    return snap, {"HF_HOME": str(tmp_path / "hf"), "PROVISION_DATA": str(tmp_path / "data")}


def test_a_complete_seed_passes_and_the_real_client_reads_the_same_files(seeded: tuple[Path, dict]) -> None:
    from huggingface_hub import hf_hub_download

    snap, env = seeded
    status, detail = hf_complete(check(), env, Stamps(None))
    assert status == "ok" and "the 2 model(s) pipeline.json names" in detail, detail
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        got = hf_hub_download(OTHER, "ckpts/ss_dec_conv3d_16l8_fp16.json", revision=C_OTHER,
                              cache_dir=str(Path(env["HF_HOME"]) / "hub"), local_files_only=True)
    finally:
        del os.environ["HF_HUB_OFFLINE"]
    assert Path(got).read_bytes() == b"{}"


def test_a_checkpoint_json_the_pipeline_names_is_missing(seeded: tuple[Path, dict]) -> None:
    snap, env = seeded
    (snap / "ckpts" / "slat_flow_img2shape_dit_1_3B_512_bf16.json").unlink()  # field note 001: a 404 at load
    status, detail = hf_complete(check(), env, Stamps(None))
    assert status == "fail" and "pipeline.json names ckpts/slat_flow_img2shape_dit_1_3B_512_bf16: " \
        "ckpts/slat_flow_img2shape_dit_1_3B_512_bf16.json missing" in detail, detail


def test_a_model_in_another_repo_that_is_not_seeded_is_named(seeded: tuple[Path, dict], tmp_path: Path) -> None:
    snap, env = seeded
    import shutil

    shutil.rmtree(tmp_path / "hf" / "hub" / ("models--" + OTHER.replace("/", "--")))
    status, detail = hf_complete(check(), env, Stamps(None))
    assert status == "fail" and f"names {OTHER}/ckpts/ss_dec_conv3d_16l8_fp16, but {OTHER} is not seeded" in detail


def test_a_truncated_blob_and_a_broken_link_are_caught(seeded: tuple[Path, dict]) -> None:
    snap, env = seeded
    blob = (snap / "ckpts" / "slat_flow_img2shape_dit_1_3B_512_bf16.safetensors").resolve()
    blob.write_bytes(b"W" * 100)  # a download cut short
    status, detail = hf_complete(check(), env, Stamps(None))
    assert status == "fail" and "safetensors (its content does not match its checksum)" in detail, detail
    (snap / "pipeline.json").resolve().unlink()
    status, detail = hf_complete(check(), env, Stamps(None))
    assert "pipeline.json (a broken link)" in detail, detail


def test_an_unseeded_repo_and_an_unmatched_file_pattern(seeded: tuple[Path, dict]) -> None:
    _, env = seeded
    status, detail = hf_complete(check("facebook/dinov3-vitl16-pretrain-lvd1689m", "main"), env, Stamps(None))
    assert status == "fail" and "is not in" in detail and "(not seeded)" in detail
    status, detail = hf_complete(check(files=["pipeline.json", "texturing_pipeline.json"]), env, Stamps(None))
    assert status == "fail" and "nothing matches texturing_pipeline.json" in detail


def test_proven_checksums_are_remembered_until_the_blob_changes(seeded: tuple[Path, dict], tmp_path: Path) -> None:
    snap, env = seeded
    stamps = tmp_path / "data" / "cache" / "verified-weights.json"
    assert hf_complete(check(), env, Stamps(stamps))[0] == "ok"
    known = json.loads(stamps.read_text())
    assert len(known) == 3  # every blob of the main repo
    blob = (snap / "ckpts" / "slat_flow_img2shape_dit_1_3B_512_bf16.safetensors").resolve()
    blob.write_bytes(b"X" * 4096)  # same size, new mtime: proven again, and found wrong
    assert hf_complete(check(), env, Stamps(stamps))[0] == "fail"


@pytest.mark.parametrize("target,host,imports", [
    ("trellis", "rtx3090-wsl2-16g.json", ["from trellis.pipelines import TrellisImageTo3DPipeline"]),
    ("trellis2", "h100-cuda13.json", ["from trellis2.pipelines import Trellis2ImageTo3DPipeline"]),
    ("triposr", "a6000-linux-535.json", ["from tsr.system import TSR"]),
])
def test_each_targets_checklist_imports_the_app_and_proves_its_weights(target: str, host: str, imports: list[str]) -> None:
    loaded = load_target(target)
    plan = make_plan(loaded, load_host(FIXTURES / "hosts" / host), PlanOptions(prefix="/opt/e", data_dir="/d"))
    checks = compile_checklist(loaded.spec, plan, None)["checks"]
    titles = {c["title"] for c in checks if c["kind"] == "app-import"}
    assert titles == set(imports)
    complete = {c["repo"] for c in checks if c["kind"] == "hf-complete"}
    assert complete == {r.repo for r in loaded.spec.weights.huggingface}
    smoke = next(c for c in checks if c["kind"] == "app-smoke")
    assert smoke["needs_gpu"] and smoke["cwd"] == "/opt/e/share/provision/app"
    assert {w["repo"] for w in smoke["weights"]} == {r.repo for r in loaded.spec.weights.huggingface if not r.optional}
    shim = next(c for c in checks if c["id"] == "shim-app")
    assert shim["expect"] == "/opt/e/share/provision/app"


def _run_smoke(tmp_path: Path, env: dict, code: str) -> dict:
    import subprocess
    import sys

    from provision.verify.checks import RUNNER

    cl = {"checks": [{"id": "app-smoke", "kind": "app-smoke", "title": "t", "needs_gpu": True, "code": code,
                      "cwd": str(tmp_path), "weights": [{"repo": MAIN, "revision": C_MAIN}]}]}
    (tmp_path / "cl.json").write_text(json.dumps(cl))
    r = subprocess.run([sys.executable, str(RUNNER), str(tmp_path / "cl.json")], capture_output=True, text=True,
                       env={**os.environ, **env, "PROVISION_VERIFY_GPU": "1"})
    return json.loads(r.stdout.rsplit("@@PROVISION-RESULTS@@", 1)[1])["results"][0]


def test_the_pipeline_smoke_runs_offline_in_the_app_dir_only_when_the_weights_are_seeded(
        seeded: tuple[Path, dict], tmp_path: Path) -> None:
    _, env = seeded
    code = "import os\nassert os.environ['HF_HUB_OFFLINE'] == '1'\nopen('built', 'w').write('yes')\n"
    res = _run_smoke(tmp_path, env, code)
    assert res["status"] == "ok" and (tmp_path / "built").read_text() == "yes", res
    res = _run_smoke(tmp_path, env, "raise RuntimeError('CUDA error: no kernel image is available')")
    assert res["status"] == "fail" and res["cause"] == "no-kernel-image", res
    res = _run_smoke(tmp_path, {"HF_HOME": str(tmp_path / "empty")}, code)
    assert res["status"] == "skipped" and f"weights not seeded: {MAIN}" in res["detail"], res  # never passed
