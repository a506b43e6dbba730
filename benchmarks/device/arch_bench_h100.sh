#!/usr/bin/env bash
# On the device tool's GPU machine: diff-gaussian-rasterization (mip-splatting @ dda02ab5, from
# .gpu-src/dgr, brought with the fetch tool, never committed) built the way `provision apply`
# builds it (uv build --wheel --no-build-isolation, MAX_JOBS=16), cold each time, with the planned
# arch list and with a broad one, side by side in one machine start. Also: whether ninja is there
# (without it torch compiles one file at a time), and each build's .ninja_log (where the time goes).
# ORDER overrides the sequence, e.g. ORDER="9.0 broad 9.0 broad".
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
TPY=/opt/torch/.venv/bin/python
BROAD="7.5;8.0;8.6;8.9;9.0;10.0;12.0"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>&1 | tail -2
export PATH=/opt/torch/.venv/bin:/usr/local/cuda/bin:$PATH  # what apply's build step sets
UV=/tmp/site/bin/uv
$TPY -c "import setuptools" 2>/dev/null || $UV pip install -q --python $TPY --no-index .whl/setuptools-*.whl
{
  echo "cpu: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
  echo "mem: $(free -g | awk '/Mem/{print $2}') GiB"
  echo "ninja on PATH: $(command -v ninja || echo none)"
  for i in 1 2; do s=$(date +%s%N); $TPY -c "import torch" ; echo "import torch: $(( ($(date +%s%N) - s) / 1000000 )) ms"; done
} >> "$OUT/bench.txt" 2>&1
build() {  # $1 label, $2 arch list
  rm -rf /tmp/dgr-b /tmp/w && cp -r .gpu-src/dgr /tmp/dgr-b
  local s=$(date +%s%N)
  TORCH_CUDA_ARCH_LIST="$2" MAX_JOBS=16 $UV build --wheel --no-build-isolation --no-config --no-cache \
    --python $TPY --out-dir /tmp/w /tmp/dgr-b > "$OUT/build-$1.log" 2>&1
  local rc=$? ms=$(( ($(date +%s%N) - s) / 1000000 ))
  echo "dgr $1 arch=[$2] rc=$rc $ms ms" >> "$OUT/bench.txt"
  find /tmp/dgr-b/build -name .ninja_log -exec cp {} "$OUT/ninja-$1.log" \; 2>/dev/null
}
n=0
if ! command -v ninja > /dev/null; then
  build "noninja-9.0" "9.0"
  $UV pip install -q --python $TPY --no-index .whl/ninja-*.whl 2>&1 | tail -1
  echo "ninja now: $(command -v ninja || echo none)" >> "$OUT/bench.txt"
fi
for a in ${ORDER:-9.0 broad 9.0}; do
  n=$((n + 1)); [ "$a" = broad ] && build "$n-broad" "$BROAD" || build "$n-$a" "$a"
done
cat "$OUT/bench.txt"
