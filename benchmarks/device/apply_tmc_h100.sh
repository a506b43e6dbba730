#!/usr/bin/env bash
# On the device tool's GPU machine: `provision apply` of tests/fixtures/device/tmc.yaml into the
# machine's own torch env (--existing): TripoSR's torchmcubes (from .gpu-src/tmc, brought with the
# fetch tool, never committed) built with scikit-build-core + CMake as a wheel, with the planned arch
# list and CMAKE_BUILD_PARALLEL_LEVEL; then verify (SASS for the GPU, marching cubes on the GPU), a warm
# re-apply, and which SASS a build without TORCH_CUDA_ARCH_LIST gets (CMake's own default).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
TPY=/opt/torch/.venv/bin/python
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>&1 | grep -v "already exists" | tail -2
export PYTHONPATH=/tmp/site:$PWD
UV=/tmp/site/bin/uv
$TPY -m pip --version > /dev/null 2>&1 || $UV pip install -q --python $TPY --no-index .whl/pip-*.whl
$TPY -c "import setuptools" 2>/dev/null || $UV pip install -q --python $TPY --no-index .whl/setuptools-*.whl
$UV pip install -q --python $TPY --no-index .whl-tmc/*.whl  # scikit-build-core, cmake, pybind11 (the spec's build_requires)
P="python3 -m provision"
$P doctor --save "$OUT/host.json" > /dev/null 2>&1
D=/tmp/pdata-tmc
A=(tests/fixtures/device/tmc.yaml --existing --prefix /opt/torch/.venv --data-dir $D --host "$OUT/host.json"
   --source "torchmcubes=$PWD/.gpu-src/tmc")
/usr/bin/time -f "apply1 wall %e s" $P apply "${A[@]}" > "$OUT/apply1.txt" 2>&1; echo "apply1 exit $?" >> "$OUT/apply1.txt"
cp -r /opt/torch/.venv/share/provision/logs "$OUT/logs1"
/usr/bin/time -f "apply2 wall %e s" $P apply "${A[@]}" --from-step build-torchmcubes > "$OUT/apply2.txt" 2>&1; echo "apply2 exit $?" >> "$OUT/apply2.txt"
cp /opt/torch/.venv/share/provision/state.json "$OUT/state2.json"
$P verify tests/fixtures/device/tmc.yaml --prefix /opt/torch/.venv --host "$OUT/host.json" --data-dir $D --report "$OUT/verify.md" > "$OUT/verify.txt" 2>&1
echo "verify exit $?" >> "$OUT/verify.txt"
cat "$OUT/apply1.txt" "$OUT/apply2.txt" "$OUT/verify.txt"
grep -E "CMAKE_BUILD_PARALLEL_LEVEL|TORCH_CUDA_ARCH_LIST|gencode|arch=" "$OUT/logs1/build-torchmcubes.log" | head -5 > "$OUT/flags.txt"
for so in $(find /opt/torch/.venv/lib -name "torchmcubes_module*.so"); do echo "$so: $(/usr/local/cuda/bin/cuobjdump --list-elf $so | grep -o 'sm_[0-9]*' | sort -u | tr '\n' ' ')" >> "$OUT/flags.txt"; done
# the same build without TORCH_CUDA_ARCH_LIST: which SASS does it carry? (field note 004: no sm_120 by default)
rm -rf /tmp/tmc-b /tmp/tw && cp -r .gpu-src/tmc /tmp/tmc-b
PATH=/opt/torch/.venv/bin:/usr/local/cuda/bin:$PATH CMAKE_BUILD_PARALLEL_LEVEL=16 $UV build --wheel --no-build-isolation --no-config --no-cache --python $TPY --out-dir /tmp/tw /tmp/tmc-b > "$OUT/noarch-build.log" 2>&1
echo "no TORCH_CUDA_ARCH_LIST: rc=$?" >> "$OUT/flags.txt"
(cd /tmp/tw && python3 -m zipfile -e *.whl x && for so in $(find x -name "*.so"); do echo "$so: $(/usr/local/cuda/bin/cuobjdump --list-elf $so | grep -o 'sm_[0-9]*' | sort -u | tr '\n' ' ') PTX: $(/usr/local/cuda/bin/cuobjdump --list-ptx $so | grep -o 'sm_[0-9]*' | sort -u | tr '\n' ' ')" >> "$OUT/flags.txt"; done)
cat "$OUT/flags.txt"
