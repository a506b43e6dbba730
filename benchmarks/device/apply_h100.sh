#!/usr/bin/env bash
# On the device tool's GPU machine: `provision apply` of tests/fixtures/device/gsplat.yaml into the
# machine's own torch env (--existing): TRELLIS's diff-gaussian-rasterization (mip-splatting @
# dda02ab5, brought with the fetch tool into .gpu-src/dgr, never committed) as a wheel, and tinyext
# in place, with the planned arch list; verify; a warm re-apply from the build steps (cache); and the
# build time of dgr with the planned arch list against a broad one, side by side. Results in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
TPY=/opt/torch/.venv/bin/python
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site:$PWD
if ! $TPY -m pip --version >/dev/null 2>&1; then  # uv-made venvs have no pip
  $TPY .whl/pip-*.whl/pip install -q --no-index .whl/pip-*.whl .whl/setuptools-*.whl 2>&1 | tail -2
fi
$TPY -c "import setuptools" 2>/dev/null || $TPY -m pip install -q --no-index .whl/setuptools-*.whl
P="python3 -m provision"
$P doctor --save "$OUT/host.json" > /dev/null 2>&1
D=/tmp/pdata
A=(tests/fixtures/device/gsplat.yaml --existing --prefix /opt/torch/.venv --data-dir $D --host "$OUT/host.json"
   --source "diff-gaussian-rasterization=$PWD/.gpu-src/dgr" --source "tinyext=$PWD/tests/fixtures/ext/tinyext")
/usr/bin/time -f "apply1 wall %e s" $P apply "${A[@]}" > "$OUT/apply1.txt" 2>&1; echo "apply1 exit $?" >> "$OUT/apply1.txt"
cp /opt/torch/.venv/share/provision/state.json "$OUT/state1.json"
cp -r /opt/torch/.venv/share/provision/logs "$OUT/logs1"
/usr/bin/time -f "apply2 wall %e s" $P apply "${A[@]}" --from-step build-diff-gaussian-rasterization > "$OUT/apply2.txt" 2>&1; echo "apply2 exit $?" >> "$OUT/apply2.txt"
cp /opt/torch/.venv/share/provision/state.json "$OUT/state2.json"
$P verify tests/fixtures/device/gsplat.yaml --prefix /opt/torch/.venv --host "$OUT/host.json" --data-dir $D --report "$OUT/verify.md" > "$OUT/verify.txt" 2>&1
echo "verify exit $?" >> "$OUT/verify.txt"
# side by side: dgr built with the planned arch list and with a broad one (arch_bench_h100.sh does it too)
[ -n "${NO_BENCH:-}" ] || for arch in "9.0" "7.5;8.0;8.6;8.9;9.0;10.0;12.0" "9.0" "7.5;8.0;8.6;8.9;9.0;10.0;12.0"; do
  rm -rf /tmp/dgr-b /tmp/w && cp -r .gpu-src/dgr /tmp/dgr-b
  s=$(date +%s.%N)
  TORCH_CUDA_ARCH_LIST="$arch" MAX_JOBS=16 $TPY -m pip wheel -q --no-build-isolation --no-deps -w /tmp/w /tmp/dgr-b > /dev/null 2>&1
  rc=$?; e=$(date +%s.%N)
  echo "dgr arch=[$arch] rc=$rc $(python3 -c "print(round($e - $s, 1))") s" >> "$OUT/bench.txt"
done
cat "$OUT/apply1.txt" "$OUT/apply2.txt" "$OUT/verify.txt" "$OUT/bench.txt"
