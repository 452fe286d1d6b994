#!/usr/bin/env bash
# Issue 4's checks for a session that has a CUDA GPU, as one script:
#   tests    the CUDA tests (tests/test_cuda.py and the streamed-rows GPU test)
#   suite    the whole test suite, on a machine where device="auto" means CUDA
#   speed    benchmarks/speed.py --device cuda
#   compile  its torch.compile row (only if the speed stage ran)
#
#   [STAGES="tests speed"] bash benchmarks/gpu.sh [OUT_FOLDER] [MNIST_FOLDER]
#
# Each stage has its own time limit, so a slow stage cannot lose the others' results.
set -uo pipefail
out=${1:-benchmarks/results}
data=${2:-../shared/data/mnist}
py=${PYTHON:-python3}
stages=" ${STAGES:-tests suite speed compile} "
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
"$py" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
if [[ $stages == *" tests "* ]]; then
    timeout 110 "$py" -m pytest -q -p no:cacheprovider tests/test_cuda.py \
        tests/test_train.py::test_streamed_rows_train_on_a_gpu 2>&1 | tee "$out/gpu_tests.log"
fi
if [[ $stages == *" suite "* ]]; then
    timeout 150 "$py" -m pytest -q -p no:cacheprovider -p no:benchmark -n 8 2>&1 | tail -40 > "$out/gpu_suite.log"
    tail -3 "$out/gpu_suite.log"
fi
if [[ $stages == *" speed "* ]]; then
    timeout 260 "$py" benchmarks/speed.py --device cuda --data "$data" \
        --out "$out/speed_cuda.json" 2>&1 | tee "$out/speed_cuda.log" || exit
fi
if [[ $stages == *" compile "* ]]; then
    timeout 170 "$py" benchmarks/speed.py --device cuda --data "$data" --compile \
        --only "aekit fp32" --repeats 3 --out "$out/speed_cuda_compile.json" 2>&1 \
        | tee "$out/speed_cuda_compile.log"
fi
