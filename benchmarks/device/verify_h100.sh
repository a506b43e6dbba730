#!/usr/bin/env bash
# On the device tool's GPU machine: build tests/fixtures/ext/tinyext against the machine's own
# torch twice (the planned arch list, and a wrong one), run `provision verify` on each, and time
# the checklist without GPU kernels against `import torch`. Results land in $OUT.
# Needs: .whl/ (pydantic, requests, ... for the machine's Python) carried with the tree.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
TPY=/opt/torch/.venv/bin/python
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site:$PWD
P="python3 -m provision"
$P doctor --save "$OUT/host.json" > "$OUT/doctor.txt" 2>&1
$P plan tests/fixtures/device/tinyx.yaml --host "$OUT/host.json" > "$OUT/plan.txt" 2>&1
for arch in 9.0 8.6; do
  d=/tmp/build-$arch; rm -rf "$d"; cp -r tests/fixtures/ext/tinyext "$d"
  ( cd "$d" && TORCH_CUDA_ARCH_LIST=$arch MAX_JOBS=16 /usr/bin/time -f "%e s" $TPY setup.py build_ext --inplace > build.log 2>&1 ); echo "build $arch: rc=$? $(tail -1 $d/build.log)" >> "$OUT/builds.txt"
  so=$(ls $d/tinyext*.so)
  { echo "== $arch: cuobjdump --list-elf / --list-ptx"; cuobjdump --list-elf "$so"; cuobjdump --list-ptx "$so"; } >> "$OUT/cuobjdump.txt" 2>&1
  PYTHONPATH=$d:$PYTHONPATH $P verify tests/fixtures/device/tinyx.yaml --python $TPY --prefix /opt/torch/.venv \
      --host "$OUT/host.json" --report "$OUT/verify-$arch.md" > "$OUT/verify-$arch.txt" 2>&1
  echo "verify $arch: exit $?" >> "$OUT/builds.txt"
  PYTHONPATH=$d:$PYTHONPATH $P verify tests/fixtures/device/tinyx.yaml --python $TPY --prefix /opt/torch/.venv \
      --host "$OUT/host.json" --json > "$OUT/verify-$arch.json" 2>/dev/null
done
# timing: the whole checklist without GPU kernels vs importing torch (5 runs each, interleaved)
for i in 1 2 3 4 5; do
  /usr/bin/time -f "import_torch %e" $TPY -c "import torch" 2>> "$OUT/timing.txt"
  PYTHONPATH=/tmp/build-9.0:$PYTHONPATH PROVISION_VERIFY_GPU=0 /usr/bin/time -f "verify_nogpu %e" $P verify tests/fixtures/device/tinyx.yaml --python $TPY --prefix /opt/torch/.venv --host "$OUT/host.json" > /dev/null 2>> "$OUT/timing.txt"
  PYTHONPATH=/tmp/build-9.0:$PYTHONPATH /usr/bin/time -f "verify_gpu %e" $P verify tests/fixtures/device/tinyx.yaml --python $TPY --prefix /opt/torch/.venv --host "$OUT/host.json" > /dev/null 2>> "$OUT/timing.txt"
done
cat "$OUT/builds.txt" "$OUT/timing.txt"
