#!/usr/bin/env bash
# tests/gpu and tests/unit/kernels on a CUDA machine whose python3 already has pip, torch, triton, onnx,
# onnxruntime, numpy, scikit-learn, transformers and pytest, and no network, Ray or MLflow: the project runs from
# PYTHONPATH, plus the small pure-Python wheels that `make gpu-wheels` put in .gpu-wheels/
# (copy that folder along with the checkout). Arguments go to pytest.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
site=${SLIMSWEEP_GPU_SITE:-/tmp/slimsweep-gpu-site}
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$site" \
    "$root"/.gpu-wheels/*.whl
# The folders install as slimsweep.<name> (pyproject's package-dir): the same names here.
mkdir -p "$site/slimsweep"
for part in sweeps compressors kernels cluster conf; do
    ln -sfn "$root/$part" "$site/slimsweep/$part"
done
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
cd "$root"
# The kernels' own tests run compiled here (under the interpreter on CPU machines).
exec python3 -m pytest -p no:cacheprovider tests/gpu tests/unit/kernels "$@"
