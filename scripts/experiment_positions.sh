#!/usr/bin/env bash
# Experiments 1 and 2 of docs/experiments.md, with one command:
#
#   scripts/experiment_positions.sh
#
# 1. MLM convergence by position encoding (Su et al. 2021, Fig. 3): trains the tiny model
#    of configs/experiments/positions-KIND.toml for KIND in rotary, absolute, sinusoidal,
#    none, with seeds SEEDS, into runs/experiments/positions-KIND-seedS (a run that
#    exists is resumed). Each run's metrics.jsonl holds its validation curve.
# 2. Length extrapolation: `roformer eval-mlm` of each run at LENGTHS on the held-out
#    works; the rotary runs also with every scaling rule. JSON per run and rule in
#    runs/experiments/eval-mlm/.
# Then prints the tables of docs/experiments.md (python3, standard library only) and,
# where matplotlib is installed, draws its plots (scripts/experiment_plots.py).
#
# Environment: ROFORMER_BIN and SEEDS (scripts/experiment_common.sh), LENGTHS (default
# 128,256,512,1024,2048), KINDS (default "rotary absolute sinusoidal none").
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/experiment_common.sh
lengths="${LENGTHS:-128,256,512,1024,2048}"
kinds="${KINDS:-rotary absolute sinusoidal none}"
mkdir -p "$out/eval-mlm"

for kind in $kinds; do
  train_seeds "positions-$kind"
done

for seed in $seeds; do
  for kind in $kinds; do
    run="$out/positions-$kind-seed$seed"
    rules=none
    [ "$kind" = rotary ] && rules="none linear ntk dynamic-ntk yarn"
    for rule in $rules; do
      result="$out/eval-mlm/$kind-seed$seed-$rule.json"
      [ -s "$result" ] && continue
      echo "== eval-mlm $run --scaling $rule"
      "$bin" eval-mlm --model "$run" --seq "$lengths" --scaling "$rule" --json > "$result.tmp"
      mv "$result.tmp" "$result"
    done
  done
done

python3 scripts/experiment_tables.py "$out"
draw_plots
