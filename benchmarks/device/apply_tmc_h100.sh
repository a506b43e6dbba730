#!/usr/bin/env bash
# On the device tool's GPU machine: `provision apply` of tests/fixtures/device/tmc.yaml into the
# machine's own torch env (--existing): TripoSR's torchmcubes (from .gpu-src/tmc, brought with the
# fetch tool, never committed) built with scikit-build-core + CMake as a wheel, with the planned arch
# list and CMAKE_BUILD_PARALLEL_LEVEL; then verify (SASS for the GPU, marching cubes on the GPU), a warm
# re-apply, and which SASS a build without TORCH_CUDA_ARCH_LIST gets (CMake's own default).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
TPY=/opt/torch/.venv/bin/python
UV=/tmp/site/bin/uv
FIXTURE=tmc EXT=torchmcubes SRC=.gpu-src/tmc WHEELS=".whl-tmc/*.whl" bash "$(dirname "$0")/apply_fixture_h100.sh"
grep -E "CMAKE_BUILD_PARALLEL_LEVEL|TORCH_CUDA_ARCH_LIST|gencode|arch=" "$OUT/logs1/build-torchmcubes.log" | head -5 > "$OUT/flags.txt"
for so in $(find /opt/torch/.venv/lib -name "torchmcubes_module*.so"); do echo "$so: $(/usr/local/cuda/bin/cuobjdump --list-elf $so | grep -o 'sm_[0-9]*' | sort -u | tr '\n' ' ')" >> "$OUT/flags.txt"; done
# the same build without TORCH_CUDA_ARCH_LIST: which SASS does it carry? (field note 004: no sm_120 by default)
rm -rf /tmp/tmc-b /tmp/tw && cp -r .gpu-src/tmc /tmp/tmc-b
PATH=/opt/torch/.venv/bin:/usr/local/cuda/bin:$PATH CMAKE_BUILD_PARALLEL_LEVEL=16 $UV build --wheel --no-build-isolation --no-config --no-cache --python $TPY --out-dir /tmp/tw /tmp/tmc-b > "$OUT/noarch-build.log" 2>&1
echo "no TORCH_CUDA_ARCH_LIST: rc=$?" >> "$OUT/flags.txt"
(cd /tmp/tw && python3 -m zipfile -e *.whl x && for so in $(find x -name "*.so"); do echo "$so: $(/usr/local/cuda/bin/cuobjdump --list-elf $so | grep -o 'sm_[0-9]*' | sort -u | tr '\n' ' ') PTX: $(/usr/local/cuda/bin/cuobjdump --list-ptx $so | grep -o 'sm_[0-9]*' | sort -u | tr '\n' ' ')" >> "$OUT/flags.txt"; done)
cat "$OUT/flags.txt"
