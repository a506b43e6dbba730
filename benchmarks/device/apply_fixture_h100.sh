#!/usr/bin/env bash
# On the device tool's GPU machine: `provision apply` of one device fixture into the machine's own
# torch env (--existing), its extension from a local source (brought with the fetch tool into
# .gpu-src/, never committed), built with the planned arch list; a warm re-apply of the build step;
# verify. Results in $OUT (apply1.txt, apply2.txt, verify.txt, verify.md, logs1/).
#   FIXTURE=nvdr EXT=nvdiffrast SRC=.gpu-src/nvdiffrast WHEELS=".whl/numpy-*.whl" bash apply_fixture_h100.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
TPY=/opt/torch/.venv/bin/python
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>&1 | grep -v "already exists" | tail -2
export PYTHONPATH=/tmp/site:$PWD
UV=/tmp/site/bin/uv
$TPY -m pip --version > /dev/null 2>&1 || $UV pip install -q --python $TPY --no-index .whl/pip-*.whl
$TPY -c "import setuptools" 2>/dev/null || $UV pip install -q --python $TPY --no-index .whl/setuptools-*.whl
[ -z "${WHEELS:-}" ] || $UV pip install -q --python $TPY --no-index $WHEELS  # what the spec's build_requires / runtime needs
P="python3 -m provision"
$P doctor --save "$OUT/host.json" > /dev/null 2>&1
D=/tmp/pdata-$FIXTURE
A=(tests/fixtures/device/$FIXTURE.yaml --existing --prefix /opt/torch/.venv --data-dir $D --host "$OUT/host.json"
   --source "$EXT=$PWD/$SRC")
/usr/bin/time -f "apply1 wall %e s" $P apply "${A[@]}" > "$OUT/apply1.txt" 2>&1; echo "apply1 exit $?" >> "$OUT/apply1.txt"
cp -r /opt/torch/.venv/share/provision/logs "$OUT/logs1"
/usr/bin/time -f "apply2 wall %e s" $P apply "${A[@]}" --from-step "build-$EXT" > "$OUT/apply2.txt" 2>&1; echo "apply2 exit $?" >> "$OUT/apply2.txt"
cp /opt/torch/.venv/share/provision/state.json "$OUT/state2.json"
$P verify tests/fixtures/device/$FIXTURE.yaml --prefix /opt/torch/.venv --host "$OUT/host.json" --data-dir $D --report "$OUT/verify.md" > "$OUT/verify.txt" 2>&1
echo "verify exit $?" >> "$OUT/verify.txt"
cat "$OUT/apply1.txt" "$OUT/apply2.txt" "$OUT/verify.txt"
