#!/usr/bin/env bash
# On the device tool's GPU machine, after apply_h100.sh: diff-gaussian-rasterization (mip-splatting
# @ dda02ab5, from .gpu-src/dgr) built with the planned arch list and with a broad one, MAX_JOBS=16,
# cold each, side by side; then where a warm re-apply of it spends its time.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
TPY=/opt/torch/.venv/bin/python
t() { local s=$(date +%s%N); "$@" > /dev/null 2>&1; local rc=$?; echo "rc=$rc $(( ($(date +%s%N) - s) / 1000000 )) ms"; }
for arch in ${ARCHS-"9.0" "7.5;8.0;8.6;8.9;9.0;10.0;12.0"}; do
  rm -rf /tmp/dgr-b /tmp/w && cp -r .gpu-src/dgr /tmp/dgr-b
  echo "dgr arch=[$arch] $(TORCH_CUDA_ARCH_LIST="$arch" MAX_JOBS=16 t $TPY -m pip wheel -q --no-build-isolation --no-deps -w /tmp/w /tmp/dgr-b)" >> "$OUT/bench.txt"
done
export PYTHONPATH=/tmp/site:$PWD
if [ -f /opt/torch/.venv/share/provision/state.json ]; then
  W=$(ls /tmp/pdata/cache/ext/diff-gaussian-rasterization-*/*.whl | head -1)
  C=/opt/torch/.venv/share/provision/constraints.txt
  echo "pip install cached wheel (verbose timing in pip-install.log)"
  s=$(date +%s%N); $TPY -m pip --disable-pip-version-check -v install --no-deps --no-index --force-reinstall -c $C $W 2>&1 | while IFS= read -r l; do echo "$(( ($(date +%s%N) - s) / 1000000 )) $l"; done > "$OUT/pip-install.log"
  echo "pip install cached wheel again: $(t $TPY -m pip --disable-pip-version-check install --no-deps --no-index --force-reinstall -c $C $W)" >> "$OUT/bench.txt"
  echo "pip list: $(t $TPY -m pip --disable-pip-version-check list --format=json)" >> "$OUT/bench.txt"
  echo "build key probe: $(t $TPY -c 'import importlib.metadata as m; m.distribution("torch").version')" >> "$OUT/bench.txt"
  echo "nvcc --version: $(t /usr/local/cuda/bin/nvcc --version)" >> "$OUT/bench.txt"
fi
cat "$OUT/bench.txt"
