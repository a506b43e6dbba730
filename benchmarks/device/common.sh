# Sourced by the device scripts: provision and its dependencies from the carried cp312 wheels
# (.device/c3/deps; the machine has no network) into /tmp/site, on the path.
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .device/c3/deps/*.whl 2>&1 | grep -v "already exists" | tail -2
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH
P="python3 -m provision"
