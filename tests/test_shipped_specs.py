"""The three shipped targets: valid, listed, and pinned as their upstream sources say."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from provision.spec import load_target, target_paths


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provision", *args], capture_output=True, text=True)


def test_all_shipped_specs_validate() -> None:
    proc = cli("validate")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("ok ") == 3


def test_validate_takes_a_target_name_as_every_command_does(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = cli("validate", "trellis2", "envs/triposr.yaml")
    assert proc.returncode == 0 and proc.stdout.split() == ["ok", "envs/trellis2.yaml", "ok", "envs/triposr.yaml"], proc
    typo = cli("validate", "trelis2")
    assert typo.returncode == 2 and "trelis2: neither a spec file nor a target" in typo.stderr
    assert "name a target (trellis, trellis2, triposr) or a spec file" in typo.stderr
    host = cli("validate", "tests/fixtures/hosts/h100-cuda13.json")
    assert host.returncode == 2 and "this is a host file (`provision doctor --save`), not a spec" in host.stderr
    (tmp_path / "triposr").mkdir()  # the upstream checkout a user keeps next to their work
    beside = subprocess.run([sys.executable, "-m", "provision", "validate", "triposr"], capture_output=True, text=True,
                            cwd=tmp_path)
    assert beside.returncode == 0 and beside.stdout.startswith("ok"), beside  # a triposr/ folder hides no target
    gone = cli("validate", "gone.yaml")
    assert gone.returncode == 2 and "gone.yaml: file not found" in gone.stderr and "UTF-8" not in gone.stderr


def test_list_names_three_targets() -> None:
    proc = cli("list", "--json")
    assert proc.returncode == 0
    names = [t["name"] for t in json.loads(proc.stdout)]
    assert names == ["trellis", "trellis2", "triposr"]


def test_show_prints_the_resolved_spec_with_its_includes() -> None:
    proc = cli("show", "trellis2", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["files"] == ["envs/trellis2.yaml", "envs/shared/cuda.yaml"] or data["files"][0].endswith("trellis2.yaml")
    spec = data["spec"]
    assert spec["cuda_toolkits"]["12.4"]["min_driver_linux"] == "550.54.14"  # from the shared CUDA base
    assert spec["variants"]["cu121"]["overrides"][0]["name"] == "triton"


def test_unknown_target_is_a_clear_error() -> None:
    proc = cli("show", "trelis")
    assert proc.returncode == 2
    assert "no target named 'trelis'" in proc.stderr and "known targets" in proc.stderr


def _pkg(spec, name, variant=None):
    pkgs = spec.variants[variant].packages if variant else spec.pip.packages
    return next(p for p in pkgs if p.key == name)


# Upstream facts, each read at the commit the spec records (see the spec's `why:` and read_from).
UPSTREAM = [
    ("trellis", lambda s: s.upstream.commit.startswith("6b0d6475")),
    ("trellis", lambda s: _pkg(s, "torch", "cu118").version == "2.4.0+cu118"),  # setup.sh conda pytorch==2.4.0
    ("trellis", lambda s: _pkg(s, "torchvision", "cu118").version == "0.19.0+cu118"),
    ("trellis", lambda s: _pkg(s, "xformers", "cu121").version == "0.0.27.post2"),  # setup.sh --xformers
    ("trellis", lambda s: _pkg(s, "gradio").version == "4.44.1"),  # setup.sh --demo
    ("trellis", lambda s: _pkg(s, "gradio-litmodel3d").version == "0.0.1"),
    ("trellis", lambda s: _pkg(s, "gradio-client").version == "1.3.0"),  # gradio 4.44.1 requirements.txt
    ("trellis", lambda s: _pkg(s, "utils3d").git.commit == "9a4eb15e4021b67b12c460c7057d642626897ec8"),
    ("trellis", lambda s: s.pip.indexes["kaolin-torch240-cu121"].url.endswith("torch-2.4.0_cu121.html")),
    ("trellis", lambda s: next(e for e in s.extensions if e.name == "diff-gaussian-rasterization").source.subdirectory
     == "submodules/diff-gaussian-rasterization"),
    # kaolin from source for cu121-pypi: the v0.17.0 tag, its setup.py's install_requires, and the
    # setuptools that still has pkg_resources (which that setup.py imports)
    ("trellis", lambda s: next(e for e in s.extensions if e.name == "kaolin").source.commit.startswith("ba9824e3")),
    ("trellis", lambda s: next(e for e in s.extensions if e.name == "kaolin").variants == ["cu121-pypi"]),
    ("trellis", lambda s: {(p.name, p.version) for p in next(e for e in s.extensions if e.name == "kaolin").build_requires}
     == {("cython", "0.29.37"), ("setuptools", "81.0.0")}),
    ("trellis", lambda s: ("numpy", "<2.0") in {(p.name, p.version) for p in next(
        e for e in s.extensions if e.name == "kaolin").requires}),
    ("trellis", lambda s: [p.name for p in s.variants["cu121-pypi"].packages]
     == [p.name for p in s.variants["cu121"].packages if p.name != "kaolin"]),
    ("trellis", lambda s: s.env["ATTN_BACKEND"].choices == ["xformers", "flash_attn", "sdpa", "naive"]),
    ("trellis", lambda s: s.env["SPCONV_ALGO"].choices == ["auto", "implicit_gemm", "native"]),
    ("trellis", lambda s: s.weights.torch_hub[0].entrypoints == ["dinov2_vitl14_reg"]),
    ("trellis2", lambda s: s.upstream.commit.startswith("5565d240")),
    ("trellis2", lambda s: _pkg(s, "torch", "cu124").version == "2.6.0"),  # setup.sh torch==2.6.0 cu124
    ("trellis2", lambda s: _pkg(s, "torchvision", "cu124").version == "0.21.0"),
    ("trellis2", lambda s: _pkg(s, "torch", "cu121").version == "2.5.1+cu121"),  # field note 002
    ("trellis2", lambda s: s.variants["cu121"].overrides[0].version == "3.2.0"),
    ("trellis2", lambda s: _pkg(s, "gradio").version == "6.0.1"),
    ("trellis2", lambda s: next(e for e in s.extensions if e.name == "flash-attn").source.sdist.endswith("flash_attn-2.7.3.tar.gz")),
    ("trellis2", lambda s: next(e for e in s.extensions if e.name == "nvdiffrast").source.tag == "v0.4.0"),
    ("trellis2", lambda s: next(e for e in s.extensions if e.name == "cumesh").source.commit.startswith("cf1a2f07")),
    ("trellis2", lambda s: next(e for e in s.extensions if e.name == "flex-gemm").source.commit.startswith("6dd94a85")),
    ("trellis2", lambda s: next(e for e in s.extensions if e.name == "o-voxel").source.upstream_path == "o-voxel"),
    ("trellis2", lambda s: {r.repo for r in s.weights.huggingface if r.gated}
     == {"facebook/dinov3-vitl16-pretrain-lvd1689m", "briaai/RMBG-2.0"}),
    ("trellis2", lambda s: s.env_value("OPENCV_IO_ENABLE_OPENEXR") == "1"),
    ("trellis2", lambda s: s.env_value("PYTORCH_CUDA_ALLOC_CONF") == "expandable_segments:True"),
    ("triposr", lambda s: s.upstream.commit.startswith("d26e3318")),
    ("triposr", lambda s: all(_pkg(s, n).version == v for n, v in {
        "omegaconf": "2.3.0", "pillow": "10.1.0", "einops": "0.7.0", "transformers": "4.35.0",
        "trimesh": "4.0.5", "xatlas": "0.0.9", "moderngl": "5.10.0"}.items())),  # requirements.txt
    ("triposr", lambda s: _pkg(s, "torch", "cu128").version == "2.8.0"),  # field note 004: 2.8.0+cu128
    ("triposr", lambda s: s.variants["cu128"].host.max_compute_capability == "12.0"),
    ("triposr", lambda s: s.extensions[0].source.git == "https://github.com/tatsy/torchmcubes.git"),
    ("triposr", lambda s: [r.files for r in s.weights.huggingface] == [["config.yaml", "model.ckpt"], ["config.json"]]),
]


@pytest.mark.parametrize("target,fact", UPSTREAM, ids=[f"{t}-{i}" for i, (t, _) in enumerate(UPSTREAM)])
def test_pins_match_upstream(target: str, fact) -> None:
    assert fact(load_target(target).spec)


@pytest.mark.parametrize("target", ["trellis", "trellis2", "triposr"])
def test_every_pin_says_where_it_was_read(target: str) -> None:
    spec = load_target(target).spec
    pkgs = list(spec.pip.packages) + [p for v in spec.variants.values() for p in v.packages]
    assert [p.name for p in pkgs if not p.why] == []
    assert [e.name for e in spec.extensions if not e.why] == []
    assert spec.upstream.read_from


def test_shared_parts_are_written_once() -> None:
    """DINOv2 and u2net live in envs/shared/ and are included, not copied."""
    for path in target_paths().values():
        text = path.read_text()
        assert "dinov2_vitl14_reg4_pretrain.pth" not in text
        assert "u2net.onnx" not in text
        assert "min_driver_linux" not in text
    assert load_target("trellis").spec.weights.urls[0].name == "u2net"
    assert load_target("triposr").spec.weights.urls[0].name == "u2net"
