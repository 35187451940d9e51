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
# Then prints the tables of docs/experiments.md (python3, standard library only).
#
# Environment: ROFORMER_BIN (default $CARGO_TARGET_DIR/release/roformer, building it
# when missing), SEEDS (default "1 2 3"), LENGTHS (default 128,256,512,1024,2048),
# KINDS (default "rotary absolute sinusoidal none").
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-$HOME/.cache/roformer-rs/target}"
bin="${ROFORMER_BIN:-$target/release/roformer}"
if [ ! -x "$bin" ]; then
  cargo build --release
fi
seeds="${SEEDS:-1 2 3}"
lengths="${LENGTHS:-128,256,512,1024,2048}"
kinds="${KINDS:-rotary absolute sinusoidal none}"
out=runs/experiments
mkdir -p "$out/eval-mlm"

for seed in $seeds; do
  for kind in $kinds; do
    run="$out/positions-$kind-seed$seed"
    config="$out/positions-$kind-seed$seed.toml"
    sed -e "s/^seed = .*/seed = $seed/" \
        -e "s|^output_dir = .*|output_dir = \"$run\"|" \
        "configs/experiments/positions-$kind.toml" > "$config"
    if [ -d "$run" ]; then
      echo "== $run: resuming (a finished run stays as it is)"
      "$bin" train --resume "$run"
    else
      echo "== $run: training"
      "$bin" train --config "$config"
    fi
  done
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
