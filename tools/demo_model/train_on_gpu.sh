#!/usr/bin/env bash
# Trains the demo model on a CUDA GPU from corpora prepared beforehand on any
# machine with the build (train.py --save-data: the corpus needs sluice-kb and
# sluice-tokenize, the training only PyTorch). The schedule follows the clock:
# warm-up, then a cosine decay that ends at the time budget.
#
# Usage: tools/demo_model/train_on_gpu.sh OUT.gguf CORPUS.npz[,CORPUS.npz...] [SECONDS]
# models/README.md gives the commands that made the committed file.
set -euo pipefail
out=$1
data=$2
budget=${3:-390}
exec python3 "$(dirname "$0")/train.py" --data "$data" --device cuda --bf16 --layers 8 \
  --time-budget "$budget" --batch-tokens 65536 --lr 3e-3 --warmup 150 --seed 21 --out "$out"
