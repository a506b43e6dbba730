#!/usr/bin/env bash
# On the device tool's GPU machine (issue 15): tinyext built by `provision apply` with CUDA_HOME at
# the toolkit prefix provision assembles from tests/fixtures/device/lockfiles/tk13 (PyPI's CUDA
# 13.0 toolkit wheels, carried in .device/c2 and .device/c2b: the machine has no network), into the
# machine's torch env (--existing), offline; then verify. Then an nvcc that says it is 13.0 in the
# host file but is 12.4 when run: apply must stop before any build. Results in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
source "$(dirname "$0")/common.sh"
D=/tmp/pdata-tk13; mkdir -p $D/wheelhouse
cp /tmp/keep/*.whl $D/wheelhouse/
$P doctor --save "$OUT/host-probed.json" > "$OUT/doctor.txt" 2>&1
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
h = json.load(open(f"{out}/host-probed.json"))
json.dump(dict(h, nvcc=[]), open(f"{out}/host.json", "w"))  # no system nvcc: only the toolkit can build
h["nvcc"] = [{"path": "/tmp/fake-cuda/bin/nvcc", "version": "13.0", "on_path": True}]
json.dump(h, open(f"{out}/host-mislabeled.json", "w"))
PY
mkdir -p /tmp/tk13-app/tests/fixtures/ext && cp -r tests/fixtures/ext/tinyext /tmp/tk13-app/tests/fixtures/ext/
L=tests/fixtures/device/lockfiles
$P plan tests/fixtures/device/tk13.yaml --host "$OUT/host.json" --lockdir $L --data-dir $D > "$OUT/plan.txt" 2>&1; echo "plan exit $?" >> "$OUT/plan.txt"
A=(tests/fixtures/device/tk13.yaml --existing --prefix /opt/torch/.venv --data-dir $D --host "$OUT/host.json" --lockdir $L
   --offline --source "tk13-upstream=/tmp/tk13-app")
/usr/bin/time -f "apply wall %e s" $P apply "${A[@]}" > "$OUT/apply.txt" 2>&1; echo "apply exit $?" >> "$OUT/apply.txt"
cp /opt/torch/.venv/share/provision/logs/toolkit.log /opt/torch/.venv/share/provision/logs/build-tinyext.log "$OUT/" 2>/dev/null
ls -la $D/toolkits/ >> "$OUT/apply.txt"; $D/toolkits/cuda-13.0-*/bin/nvcc --version | tail -2 >> "$OUT/apply.txt"
$P verify tests/fixtures/device/tk13.yaml --prefix /opt/torch/.venv --host "$OUT/host.json" --data-dir $D --lockdir $L > "$OUT/verify.txt" 2>&1
echo "verify exit $?" >> "$OUT/verify.txt"
# the mislabeled nvcc: says 13.0 in the facts, is 12.4 when run
mkdir -p /tmp/fake-cuda/bin && printf '#!/bin/sh\necho "Cuda compilation tools, release 12.4, V12.4.131"\n' > /tmp/fake-cuda/bin/nvcc && chmod +x /tmp/fake-cuda/bin/nvcc
mkdir -p /tmp/tinyx-app/tests/fixtures/ext && cp -r tests/fixtures/ext/tinyext /tmp/tinyx-app/tests/fixtures/ext/
rm -f /opt/torch/.venv/share/provision/logs/build-tinyext.log
$P apply tests/fixtures/device/tinyx.yaml --existing --prefix /opt/torch/.venv --data-dir /tmp/pdata-tinyx --offline \
   --host "$OUT/host-mislabeled.json" --source "tinyx-upstream=/tmp/tinyx-app" > "$OUT/mislabeled.txt" 2>&1
echo "apply exit $?; build log exists: $(test -e /opt/torch/.venv/share/provision/logs/build-tinyext.log && echo yes || echo no)" >> "$OUT/mislabeled.txt"
tail -n 30 "$OUT/plan.txt" "$OUT/apply.txt" "$OUT/verify.txt" "$OUT/mislabeled.txt"
