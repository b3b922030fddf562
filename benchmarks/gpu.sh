#!/usr/bin/env bash
# The accelerator benchmark: featcache's embed and train on one NVIDIA GPU, under KERAS_BACKEND=jax (or
# torch), without TensorFlow. Run from the repository root, once, within a time limit:
#
#   bash benchmarks/gpu.sh                    # KERAS_BACKEND=jax, results in $OUT (or benchmarks/results)
#   KERAS_BACKEND=torch bash benchmarks/gpu.sh
#
# Where Keras is not installed (the workplace's GPU image has JAX, PyTorch, h5py, OpenCV, typer and
# scikit-learn but no Keras), first run `make gpu-wheels` on a machine with PyPI and carry `.whl/`:
# the wheels are installed into /tmp/site. With the device tool:  run(command="bash benchmarks/gpu.sh",
# carry=[".whl"], timeout_s=600). Targets (issue 4): embed >= 500 UCF-like videos/s and a head epoch on a
# 9,537 x 10 x 1280 cache <= 0.5 s on one H100/H200 with 16 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -d .whl ] && compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export KERAS_BACKEND="${KERAS_BACKEND:-jax}"
export PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi failed: no NVIDIA GPU visible"
python3 - <<'PY'
import importlib.util
for name in ("tensorflow", "keras", "jax", "torch", "cv2", "h5py"):
    print(f"{name}: {'present' if importlib.util.find_spec(name) else 'absent'}")
PY

out="${OUT:-benchmarks/results}"
# The whole run must end inside the device tool's 10-minute command limit, with time to write the report.
timeout "${GPU_BENCH_TIMEOUT_S:-540}" python3 -m benchmarks.gpu --out "$out" "$@"
