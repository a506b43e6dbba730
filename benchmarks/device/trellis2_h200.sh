#!/usr/bin/env bash
# On the device tool's GPU machine (issue 17): `provision apply` installs TRELLIS.2's app from its real
# source (microsoft/TRELLIS.2 at envs/trellis2.yaml's commit, carried as an archive without assets/:
# the machine has no network) into the machine's torch 2.11.0+cu130 env (--existing), building CuMesh
# and FlexGEMM at the spec's commits for the planned arch list; verify then imports
# `from trellis2.pipelines import Trellis2ImageTo3DPipeline` from the env's copy, and
# `provision run trellis2x --dry-run` prints the whole launch. Results in $OUT/t2.
# CuMesh's cubvh submodule points at a fork (JeffreyXiang/cubvh @ ce92267a) that could not be fetched
# here: ashawkey/cubvh (its upstream) stands in, with Eigen 3.4.0 from Debian's libeigen3-dev.
# The pipeline module's pure-Python needs (transformers, easydict, torchvision, ...) are installed
# into the machine env from carried wheels when missing, and transformers 4.57.3 over the machine's 5.x
# (the spec's range is >=4.56,<5.4): apply --existing installs no packages.
set -uo pipefail
OUT=${OUT:-/tmp/out}/t2; mkdir -p "$OUT"
source "$(dirname "$0")/common.sh"
ENVPY=/opt/torch/.venv/bin/python
$ENVPY - /tmp/keep-t2/*.whl .device/c3/t2/*.whl > "$OUT/wheels.txt" <<'PY'
import importlib.metadata as md, subprocess, sys
FORCE = {"transformers", "tokenizers", "huggingface_hub"}  # the spec's transformers range: >=4.56,<5.4
todo = []
for w in sys.argv[1:]:
    name = w.rsplit("/", 1)[-1].split("-")[0]
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        have = None
    if have and name not in FORCE:
        print(f"{name}: the env has {have}")
    else:
        todo.append(w)
        print(f"{name}: installing {w.rsplit('/', 1)[-1]} (the env had {have})")
if todo:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", *todo], check=True)
PY
mkdir -p /tmp/t2in && for a in .device/c3/src/*.tar.xz; do tar xJf "$a" -C /tmp/t2in; done
$P doctor --save "$OUT/host.json" > "$OUT/doctor.txt" 2>&1
D=/tmp/pdata-t2
A=(tests/fixtures/device/trellis2x.yaml --existing --prefix /opt/torch/.venv --data-dir $D --host "$OUT/host.json" --offline
   --source trellis2x-upstream=/tmp/t2in/t2src --source cumesh=/tmp/t2in/CuMesh --source flex-gemm=/tmp/t2in/FlexGEMM)
$P plan tests/fixtures/device/trellis2x.yaml --host "$OUT/host.json" --data-dir $D > "$OUT/plan.txt" 2>&1
/usr/bin/time -f "apply wall %e s" $P apply "${A[@]}" > "$OUT/apply.txt" 2>&1; echo "apply exit $?" >> "$OUT/apply.txt"
cp /opt/torch/.venv/share/provision/logs/build-*.log /opt/torch/.venv/share/provision/logs/app.log "$OUT/" 2>/dev/null
$P verify tests/fixtures/device/trellis2x.yaml --prefix /opt/torch/.venv --host "$OUT/host.json" > "$OUT/verify.txt" 2>&1
echo "verify exit $?" >> "$OUT/verify.txt"
$P verify tests/fixtures/device/trellis2x.yaml --prefix /opt/torch/.venv --host "$OUT/host.json" --json > "$OUT/verify.json" 2>&1
(cd /tmp && $ENVPY -c "from trellis2.pipelines import Trellis2ImageTo3DPipeline as P; import trellis2, cumesh, flex_gemm; print(P, trellis2.__file__, cumesh.__file__, flex_gemm.__file__)") > "$OUT/import.txt" 2>&1
echo "import exit $?" >> "$OUT/import.txt"
$P run tests/fixtures/device/trellis2x.yaml --prefix /opt/torch/.venv --data-dir $D --dry-run > "$OUT/run-dry.txt" 2>&1; echo "run --dry-run exit $?" >> "$OUT/run-dry.txt"
for so in $(find /opt/torch/.venv/lib/python3.12/site-packages/cumesh /opt/torch/.venv/share/provision/ext/flex-gemm -name "*.so" 2>/dev/null); do
  echo "== $so"; cuobjdump --list-elf "$so" 2>&1 | head -5; cuobjdump --list-ptx "$so" 2>&1 | head -3
done > "$OUT/sass.txt"
tail -n 25 "$OUT/apply.txt" "$OUT/verify.txt" "$OUT/import.txt" "$OUT/run-dry.txt"; head -c 1500 "$OUT/sass.txt"
