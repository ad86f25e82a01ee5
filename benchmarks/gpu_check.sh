#!/usr/bin/env bash
# The GPU measurements of docs/benchmarks.md in one short script, for a machine with an NVIDIA GPU.
# Usage, from the repository root: bash benchmarks/gpu_check.sh [PATH/TO/cifar10/data]
set -euo pipefail
data_dir="${1:-${LR_ENV_DATA_DIR:-../shared/data/cifar10/data}}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

# Trainer against a plain loop: width 64, batch 128, bf16, channels_last, fused SGD.
python benchmarks/bench_trainer.py --device cuda --width 64 --steps 200 --rounds 5 --warmup 30
python benchmarks/bench_trainer.py --device cuda --width 64 --steps 200 --rounds 5 --warmup 60 --compile

# One resnet18-preset episode, split into SGD, validation and environment overhead.
python benchmarks/bench_env.py --preset resnet18 --device cuda --episodes 1 --data-dir "$data_dir"
