#!/usr/bin/env bash
# Issue 4's checks for a session that has a CUDA GPU, as one script:
# the CUDA tests, the speed benchmark on the GPU, then (if that ran) its torch.compile row.
#
#   bash benchmarks/gpu.sh [OUT_FOLDER] [MNIST_FOLDER]
#
# Each stage has its own time limit, so a slow stage cannot lose the others' results.
set -uo pipefail
out=${1:-benchmarks/results}
data=${2:-../shared/data/mnist}
py=${PYTHON:-python3}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
"$py" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
timeout 110 "$py" -m pytest -q -p no:cacheprovider tests/test_cuda.py \
    tests/test_train.py::test_streamed_rows_train_on_a_gpu 2>&1 | tee "$out/gpu_tests.log"
timeout 260 "$py" benchmarks/speed.py --device cuda --data "$data" \
    --out "$out/speed_cuda.json" 2>&1 | tee "$out/speed_cuda.log" || exit
timeout 170 "$py" benchmarks/speed.py --device cuda --data "$data" --compile \
    --only "aekit fp32" --repeats 3 --out "$out/speed_cuda_compile.json" 2>&1 \
    | tee "$out/speed_cuda_compile.log"
