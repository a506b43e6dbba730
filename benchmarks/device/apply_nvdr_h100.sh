#!/usr/bin/env bash
# On the device tool's GPU machine: `provision apply` of tests/fixtures/device/nvdr.yaml into the
# machine's own torch env (--existing): nvdiffrast v0.4.0 (from .gpu-src/nvdiffrast, brought with the
# fetch tool, never committed) built as a wheel with uv and the planned arch list, then verify (its
# import reads its own metadata; a triangle rasterized on the GPU; SASS for the GPU); a warm re-apply.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
TPY=/opt/torch/.venv/bin/python
UV=/tmp/site/bin/uv
FIXTURE=nvdr EXT=nvdiffrast SRC=.gpu-src/nvdiffrast WHEELS=".whl/numpy-*.whl" bash "$(dirname "$0")/apply_fixture_h100.sh"
# kaolin v0.17.0 (TRELLIS cu121-pypi builds it from source) against this machine's torch 2.11 / CUDA 13:
# does its build go through with the planned arch list, and in how long (a different torch than the
# variant's 2.4.0: IGNORE_TORCH_VER=1; FORCE_CUDA=1 as in the spec)
if [ -n "${KAOLIN:-}" ]; then
  $UV pip install -q --python $TPY --no-index .whl/kaolin/*.whl  # cython 0.29.37, setuptools 81.0.0 (pkg_resources)
  rm -rf /tmp/kaolin-b && cp -r .gpu-src/kaolin /tmp/kaolin-b
  s=$(date +%s%N)
  PATH=/opt/torch/.venv/bin:/usr/local/cuda/bin:$PATH TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 FORCE_CUDA=1 IGNORE_TORCH_VER=1 \
    timeout ${KAOLIN_LIMIT:-360} $UV build --wheel --no-build-isolation --no-config --no-cache --python $TPY --out-dir /tmp/kw /tmp/kaolin-b > "$OUT/kaolin-build.log" 2>&1
  echo "kaolin build rc=$? $(( ($(date +%s%N) - s) / 1000000 )) ms; wheel: $(ls /tmp/kw 2>/dev/null)" | tee "$OUT/kaolin.txt"
  find /tmp/kaolin-b/build -name .ninja_log -exec cp {} "$OUT/ninja-kaolin.log" \; 2>/dev/null
  grep -m5 -E "error|Error" "$OUT/kaolin-build.log" >> "$OUT/kaolin.txt"
fi
