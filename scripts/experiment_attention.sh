#!/usr/bin/env bash
# Experiment 3 of docs/experiments.md, with one command:
#
#   scripts/experiment_attention.sh
#
# RoPE with linear attention (Su et al. 2021, §3.3, eq. 19):
# 1. MLM loss: trains configs/experiments/attention-linear-{rotary,none}.toml and their
#    softmax counterparts positions-{rotary,none}.toml (shared with experiment 1) with
#    seeds SEEDS into runs/experiments/NAME-seedS (a run that exists is resumed).
#    `roformer eval-mlm` of the linear runs at EVAL_LENGTHS, as for the softmax runs in
#    experiment 2, into runs/experiments/eval-mlm/.
# 2. Inference time: `roformer bench` of the same model with softmax and with linear
#    attention, one sequence of each of LENGTHS tokens, as JSON lines in
#    runs/experiments/timing/{softmax,linear}.jsonl.
# Then prints the tables of docs/experiments.md and, where matplotlib is installed, draws
# its plots (scripts/experiment_plots.py).
#
# Environment: ROFORMER_BIN and SEEDS (scripts/experiment_common.sh), LENGTHS (default
# 512,1024,2048,4096,8192), EVAL_LENGTHS (default 128,256,512,1024,2048).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/experiment_common.sh
lengths="${LENGTHS:-512,1024,2048,4096,8192}"
eval_lengths="${EVAL_LENGTHS:-128,256,512,1024,2048}"

for name in attention-linear-rotary attention-linear-none positions-rotary positions-none; do
  train_seeds "$name"
done

mkdir -p "$out/eval-mlm"
for seed in $seeds; do
  for positions in rotary none; do
    name="attention-linear-$positions"
    result="$out/eval-mlm/$name-seed$seed-none.json"
    [ -s "$result" ] && continue
    echo "== eval-mlm $out/$name-seed$seed"
    "$bin" eval-mlm --model "$out/$name-seed$seed" --seq "$eval_lengths" --json > "$result.tmp"
    mv "$result.tmp" "$result"
  done
done

mkdir -p "$out/timing"
for attention in softmax linear; do
  config=configs/experiments/positions-rotary.toml
  [ "$attention" = linear ] && config=configs/experiments/attention-linear-rotary.toml
  echo "== bench $attention attention at $lengths tokens"
  "$bin" bench --config "$config" --batch 1 --seq "$lengths" --json > "$out/timing/$attention.jsonl.tmp"
  mv "$out/timing/$attention.jsonl.tmp" "$out/timing/$attention.jsonl"
done

python3 scripts/experiment_tables.py "$out"
draw_plots
