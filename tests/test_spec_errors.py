"""Given a malformed spec, `provision validate` exits 2 and names file, line, field and fix.

Each case starts from tests/fixtures/specs/minimal.yaml, changes one thing, and marks the line
the error must point at with `# <-`. No case may produce a traceback.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES

# (id, old text, new text, expected field path, expected words in the message)
CASES = [
    ("bad-yaml", "name: minimal", "name: [minimal  # <-", "", "YAML syntax error"),
    ("tab-indent", "description: A tiny target for tests", "description: A tiny\n\tbad: x  # <-", "", "YAML"),
    ("unknown-top-key", "python: \"3.10\"", "python: \"3.10\"\npyhton_extra: 1  # <-", "pyhton_extra", "unknown key"),
    ("typo-key-suggests", "    build: inplace", "    buld: inplace  # <-", "extensions[0].buld", "did you mean 'build'"),
    ("key-in-the-wrong-place", "python: \"3.10\"", "python: \"3.10\"\nram_gb: 8  # <-", "ram_gb",
     "'ram_gb' is not a key here: it belongs under `resources:`"),
    ("python-as-float", "python: \"3.10\"", "python: 3.10  # <-", "python", "quote it"),
    ("wrong-type-list", "  channels: [conda-forge]", "  channels: conda-forge  # <-", "conda.channels", "valid list"),
    ("bad-version", "    - {name: numpy, version: \"1.26.4\"}", "    - {name: numpy, version: \"2.5.1+cu12\"}  # <-",
     "pip.packages[0].version", "is not a valid version"),
    ("garbage-version", "    - {name: numpy, version: \"1.26.4\"}", "    - {name: numpy, version: \"latest!\"}  # <-",
     "pip.packages[0].version", "is not a valid version"),
    ("cuda-build-in-common", "    - {name: numpy, version: \"1.26.4\"}", "    - {name: numpy, version: \"1.26.4+cu121\"}  # <-",
     "pip.packages[0].version", "belongs to a variant"),
    ("missing-version", "    - {name: tqdm, version: \"*\"}", "    - {name: tqdm}  # <-", "pip.packages[1].version", "missing version"),
    ("duplicate-package", "    - {name: tqdm, version: \"*\"}", "    - {name: tqdm, version: \"*\"}\n    - {name: TQDM, version: \"4.0\"}  # <-",
     "pip.packages[2].name", "duplicate package"),
    ("unknown-index", "    - {name: tqdm, version: \"*\"}", "    - {name: tqdm, version: \"*\", index: nowhere}  # <-",
     "pip.packages[1].index", "unknown index"),
    ("duplicate-yaml-key", "  ram_gb: 8", "", "", ""),  # placeholder replaced below
    ("unknown-variant-ref", "    smoke: \"import tinyext\"", "    smoke: \"import tinyext\"\n    variants: [cu999]  # <-",
     "extensions[0].variants[0]", "unknown variant"),
    ("variant-key-not-cuda", "  cu121:", "  gpu121:  # <-", "variants.gpu121", "not a CUDA build tag"),
    ("variant-key-suffix-keeps-the-tag", "  cu121:\n    cuda: \"12.1\"", "  cu124-pypi:\n    cuda: \"12.1\"  # <-", "variants.cu124-pypi.cuda",
     "the key cu124-pypi means CUDA 12.4"),
    ("variant-cuda-mismatch", "    cuda: \"12.1\"", "    cuda: \"12.4\"  # <-", "variants.cu121.cuda", "variant cu121 says cuda"),
    ("variant-without-torch", "    packages:\n      - {name: torch, version: \"2.4.0\"}",
     "    packages:  # <-\n      - {name: numpyx, version: \"2.4.0\"}",
     "variants.cu121.packages", "no torch"),
    ("variant-loose-pin", "      - {name: torch, version: \"2.4.0\"}", "      - {name: torch, version: \">=2.4\"}  # <-",
     "variants.cu121.packages[0].version", "not an exact pin"),
    ("variant-wrong-local", "      - {name: torch, version: \"2.4.0\"}", "      - {name: torch, version: \"2.4.0+cu118\"}  # <-",
     "variants.cu121.packages[0].version", "cu118 build inside variant cu121"),
    ("extension-without-source", "    source: {git: \"https://example.invalid/tinyext.git\", commit: abcdef0}", "",
     "extensions[0].source", "missing required field"),
    ("extension-bad-source", "    source: {git: \"https://example.invalid/tinyext.git\", commit: abcdef0}",
     "    source: {url: \"https://example.invalid/x.tgz\"}  # <-", "extensions[0].source", "needs one of"),
    ("extension-branch-not-commit", "    source: {git: \"https://example.invalid/tinyext.git\", commit: abcdef0}",
     "    source: {git: \"https://example.invalid/tinyext.git\", commit: main}  # <-", "extensions[0].source.commit",
     "not a git commit"),
    ("extension-bad-build", "    build: inplace", "    build: setup.py  # <-", "extensions[0].build", "'wheel' or 'inplace'"),
    ("missing-weight-revision", "    - {repo: org/model, revision: 0123456789abcdef0123456789abcdef01234567, files: [config.json]}",
     "    - {repo: org/model, files: [config.json]}  # <-", "weights.huggingface[0].revision", "missing required field"),
    ("unpinned-weight-revision", "    - {repo: org/model, revision: 0123456789abcdef0123456789abcdef01234567, files: [config.json]}",
     "    - {repo: org/model, revision: main, files: [config.json]}  # <-", "weights.huggingface[0]", "not pinned"),
    ("bad-repo-id", "    - {repo: org/model, revision: 0123456789abcdef0123456789abcdef01234567, files: [config.json]}",
     "    - {repo: just-a-name, revision: 0123456789abcdef0123456789abcdef01234567}  # <-",
     "weights.huggingface[0].repo", "not a Hugging Face repo id"),
    ("env-wrong-spelling", "  ATTN_BACKEND: {value: xformers, choices: [xformers, flash_attn]}",
     "  ATTN_BACKEND: {value: flash-attn, choices: [xformers, flash_attn]}  # <-", "env.ATTN_BACKEND.value",
     "did you mean 'flash_attn'"),
    ("env-bad-name", "  HF_HOME: \"{data}/hf\"", "  HF_HOME: \"{data}/hf\"\n  hf-home: x  # <-", "env.hf-home", "not an environment variable name"),
    ("env-unknown-placeholder", "  HF_HOME: \"{data}/hf\"", "  HF_HOME: \"{datadir}/hf\"  # <-", "env.HF_HOME",
     "unknown placeholder {datadir}"),
    ("negative-resource", "resources: {ram_gb: 8, swap_gb: 4, disk_gb: 10, vram_gb: 4}",
     "resources: {ram_gb: -8, swap_gb: 4, disk_gb: 10, vram_gb: 4}  # <-", "resources.ram_gb", "greater than 0"),
    ("bad-port", "app: {launch: python app.py, port: 7860}", "app: {launch: python app.py, port: 78600}  # <-",
     "app.port", "less than or equal to 65535"),
    ("checklist-unknown-kind", "  - {kind: import, module: tinyext}", "  - {kind: imports, module: tinyext}  # <-",
     "checklist[0]", "kind"),
    ("checklist-unknown-extension", "  - {kind: kernel, extension: tinyext}", "  - {kind: kernel, extension: nope}  # <-",
     "checklist[1].extension", "unknown extension"),
    ("include-missing", "  - shared/cuda.yaml", "  - shared/nope.yaml  # <-", "include[0]", "no such file"),
    ("bad-upstream-commit", "  commit: 0123456789abcdef0123456789abcdef01234567\n  read_from",
     "  commit: HEAD  # <-\n  read_from", "upstream.commit", "not a git commit"),
    ("empty-file", None, "", "", "file is empty"),
]


def _case_text(base: str, old: str | None, new: str, cid: str) -> str:
    if cid == "duplicate-yaml-key":
        return base.replace("app: {launch", "name: again  # <-\napp: {launch")
    if old is None:
        return new
    assert old in base, f"case {cid}: {old!r} not in the base spec"
    return base.replace(old, new, 1)


@pytest.mark.parametrize("cid,old,new,path,words", CASES, ids=[c[0] for c in CASES])
def test_malformed_spec_is_rejected_with_location(tmp_path: Path, minimal_spec_text: str,
                                                  cid: str, old: str | None, new: str, path: str, words: str) -> None:
    shutil.copytree(FIXTURES / "specs" / "shared", tmp_path / "shared")
    text = _case_text(minimal_spec_text, old, new, cid)
    if cid == "duplicate-yaml-key":
        path, words = "name", "duplicate key 'name'"
    spec = tmp_path / "broken.yaml"
    spec.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "provision", "validate", str(spec)],
                          capture_output=True, text=True, cwd=tmp_path)
    err = proc.stderr
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    assert words in err, err
    marked = [i + 1 for i, line in enumerate(text.splitlines()) if "# <-" in line]
    first = err.splitlines()[0]
    assert first.startswith("error: broken.yaml"), first
    if marked:
        assert f"broken.yaml:{marked[0]} " in err or f"broken.yaml:{marked[0]}:" in err, (marked, err)
    if path:
        assert f" {path}" in err, err


def test_every_problem_is_listed_not_just_the_first(tmp_path: Path, minimal_spec_text: str) -> None:
    shutil.copytree(FIXTURES / "specs" / "shared", tmp_path / "shared")
    text = minimal_spec_text.replace("    build: inplace", "    build: nope").replace(
        "app: {launch: python app.py, port: 7860}", "app: {launch: python app.py, port: 0}")
    (tmp_path / "two.yaml").write_text(text)
    proc = subprocess.run([sys.executable, "-m", "provision", "validate", "two.yaml"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "extensions[0].build" in proc.stderr and "app.port" in proc.stderr


def test_error_in_an_included_fragment_names_the_fragment(tmp_path: Path, minimal_spec_text: str) -> None:
    (tmp_path / "shared").mkdir()
    frag = (FIXTURES / "specs" / "shared" / "cuda.yaml").read_text().replace(
        'nvcc_max_arch: "9.0"', 'nvcc_max_arch: "nine"')
    (tmp_path / "shared" / "cuda.yaml").write_text(frag)
    (tmp_path / "t.yaml").write_text(minimal_spec_text)
    proc = subprocess.run([sys.executable, "-m", "provision", "validate", "t.yaml"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    line = next(i + 1 for i, l in enumerate(frag.splitlines()) if "nine" in l)
    assert f"shared/cuda.yaml:{line} cuda_toolkits.12.1.nvcc_max_arch" in proc.stderr, proc.stderr
