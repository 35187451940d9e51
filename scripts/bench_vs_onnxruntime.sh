#!/usr/bin/env bash
# Side-by-side benchmark: `roformer bench` against the same HF model exported to ONNX and
# run by ONNX Runtime on the CPU (scripts/bench_onnxruntime.py: torch.onnx.export, opset
# 17, output checked against PyTorch's; ORT_ENABLE_ALL, the same thread count as ours).
#
#   scripts/bench_vs_onnxruntime.sh [--config configs/small.toml]
#
# Rows: 8x128, 32x128, 64x64, 1x512 and 4x512, each with the masked-LM head (logits at
# every position; mode "inference") and as an encoder only (last hidden state; mode
# "encoder", `roformer bench --encoder-only`). Ends with
# `ratio ours/onnxruntime: min X median Y`. Everything else (ROWS, REPEATS, THREADS,
# SKIP_BUILD, ROFORMER_BIN, PYTHON, POOL, ...) is scripts/bench_vs_pytorch.sh's: this
# runs it with ANCHOR=onnxruntime; onnxruntime and onnx are pip-installed into
# .venv-bench beside torch and transformers when missing.
set -euo pipefail
ANCHOR=onnxruntime exec "$(dirname "${BASH_SOURCE[0]}")/bench_vs_pytorch.sh" "$@"
