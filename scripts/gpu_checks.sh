#!/usr/bin/env bash
# The GPU checks of docs/performance.md in one run that logs everything, for a machine with
# an NVIDIA GPU, python3 with torch and transformers, and perhaps no Rust toolchain: build
# the binaries elsewhere (scripts/gpu_bundle.sh), carry them with a checkout (configs/,
# scripts/), and run from its root:
#
#   ROFORMER_BINS="wgpu=.gpu/roformer-wgpu cuda=.gpu/roformer-cuda" scripts/gpu_checks.sh [LOG_DIR]
#
# 1. the GPU (nvidia-smi) and, per build, the backend it runs on (`roformer bench`);
# 2. the attention kernel autotuning picks per build and precision (cubecl's autotune log),
#    and the side-by-side benchmark, DEVICE=cuda scripts/bench_vs_pytorch.sh (REPEATS runs
#    per row and variant, default 1);
# 3. the matrix products of a base inference step at 32x512, per build and precision (f32,
#    bf16), timed alone by `roformer bench --products` and by PyTorch on the same shapes
#    (scripts/matmul_pytorch.py --products): how much of the gap is the products;
# 4. configs/tiny.toml trained by each build for each of TRAIN_SEEDS (default "42"), each
#    of TRAIN_DROPOUTS (default "0.1 0.0": dropout on and off) and each of
#    TRAIN_PRECISIONS (default "f32 bf16"; a build whose device lacks one says so), to set
#    against the CPU's final valid losses (docs/performance.md, "the valid-loss gap") and
#    mixed precision against f32; TRAIN_SEEDS="" skips this.
#
# SECTIONS picks among 2, 3 and 4 (default "bench products train"; the machine is always
# described), so that each fits a command's time limit on a lent machine. PYTHON names the
# interpreter (default python3). The wgpu build needs a Vulkan loader (libvulkan1) and the
# NVIDIA Vulkan driver. Writes LOG_DIR/gpu_checks.log (default: a new folder under /tmp)
# and the runs' files beside it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${ROFORMER_BINS:?set ROFORMER_BINS to LABEL=PATH builds, e.g. \"wgpu=/tmp/roformer-wgpu\"}"
logs="${1:-$(mktemp -d /tmp/gpu_checks.XXXXXX)}"
mkdir -p "$logs"
log="$logs/gpu_checks.log"
exec > >(tee -a "$log") 2>&1
started=$(date +%s)
section() { echo; echo "=== $* ($(( $(date +%s) - started ))s)"; }

section "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "nvidia-smi failed"
python="${PYTHON:-python3}"
"$python" -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "transformers", transformers.__version__)' ||
  echo "$python cannot import torch and transformers"
read -ra builds <<<"$ROFORMER_BINS"
for build in "${builds[@]}"; do
  label="${build%%=*}" bin="${build#*=}"
  echo "$label: $("$bin" bench --config configs/tiny.toml --batch 1 --seq 8 --steps 1 --warmup 0 --json | grep '^{' || echo 'bench failed')"
done

sections=" ${SECTIONS:-bench products train} "
if [[ "$sections" == *" bench "* ]]; then
  # Which attention kernel autotuning picks (burn's flash kernels or its unfused fallback),
  # from cubecl's autotune log, for the base size in each precision.
  section "autotuned attention kernels"
  for build in "${builds[@]}"; do
    label="${build%%=*}" bin="${build#*=}"
    for precision in f32 bf16; do
      cubecl_log="$logs/cubecl-$label-$precision.log"
      CUBECL_DEBUG_LOG="$cubecl_log" "$bin" bench --config configs/base.toml --batch 8 \
        --seq 512 --steps 1 --warmup 1 --precision "$precision" >/dev/null 2>&1 ||
        echo "$label $precision: bench failed"
      picked=$(grep -h -A6 'Fastest result .*AttentionAutotuneKey' "$cubecl_log" 2>/dev/null |
        grep -E 'Fastest|=>' | cut -c1-200 || true)
      echo "${picked:-not tuned (burn runs its unfused attention)}" | sed "s/^/$label $precision: /"
      gzip -f "$cubecl_log" 2>/dev/null || true
    done
  done

  section "benchmark against PyTorch CUDA"
  DEVICE=cuda PYTHON="$python" REPEATS="${REPEATS:-1}" \
    BENCH_LOG="$logs/bench.jsonl" scripts/bench_vs_pytorch.sh || echo "benchmark failed: $?"
fi

if [[ "$sections" == *" products "* ]]; then
  for build in "${builds[@]}"; do
    label="${build%%=*}" bin="${build#*=}"
    for precision in f32 bf16; do
      section "matrix products, $label $precision, base 32x512"
      products="$logs/products-$label-$precision.jsonl"
      if "$bin" bench --config configs/base.toml --batch 32 --seq 512 --products \
        --precision "$precision" --json >"$products"; then
        "$python" scripts/matmul_pytorch.py --products "$products" --device cuda ||
          echo "PyTorch products failed: $?"
      else
        echo "$label $precision: bench --products failed"
      fi
    done
  done
fi

read -ra seeds <<<"${TRAIN_SEEDS-42}"
if [[ "$sections" != *" train "* ]]; then seeds=(); fi
read -ra dropouts <<<"${TRAIN_DROPOUTS-0.1 0.0}"
read -ra train_precisions <<<"${TRAIN_PRECISIONS-f32 bf16}"
for build in "${builds[@]}"; do
  label="${build%%=*}" bin="${build#*=}"
  for seed in "${seeds[@]}"; do
    for dropout in "${dropouts[@]}"; do
      for precision in "${train_precisions[@]}"; do
        name="tiny-$label-seed$seed-dropout$dropout-$precision"
        section "train $name"
        sed -e "s/^seed = .*/seed = $seed/" \
          -e "s/^hidden_dropout_prob = .*/hidden_dropout_prob = $dropout/" \
          -e "s/^attention_probs_dropout_prob = .*/attention_probs_dropout_prob = $dropout/" \
          configs/tiny.toml >"$logs/$name.toml"
        "$bin" train --config "$logs/$name.toml" --precision "$precision" \
          --output "$logs/$name" 2>&1 | grep -v '^step ' || echo "training failed: $?"
      done
    done
  done
done

section "done; log: $log"
