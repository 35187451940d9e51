# Shared by scripts/experiment_*.sh (sourced, not run): the binary, and training one
# experiment config per seed.
#
# Environment: ROFORMER_BIN (default $CARGO_TARGET_DIR/release/roformer, building it
# when missing), SEEDS (default "1 2 3").

target="${CARGO_TARGET_DIR:-$HOME/.cache/roformer-rs/target}"
bin="${ROFORMER_BIN:-$target/release/roformer}"
if [ ! -x "$bin" ]; then
  cargo build --release
fi
seeds="${SEEDS:-1 2 3}"
out=runs/experiments
mkdir -p "$out"

# train_seeds NAME: trains configs/experiments/NAME.toml with each seed into
# runs/experiments/NAME-seedS. A run that exists is resumed, so a finished one stays as
# it is and an interrupted one continues.
train_seeds() {
  local name="$1" seed run config
  for seed in $seeds; do
    run="$out/$name-seed$seed"
    config="$out/$name-seed$seed.toml"
    sed -e "s/^seed = .*/seed = $seed/" \
        -e "s|^output_dir = .*|output_dir = \"$run\"|" \
        "configs/experiments/$name.toml" > "$config"
    if [ -d "$run" ]; then
      echo "== $run: resuming (a finished run stays as it is)"
      "$bin" train --resume "$run"
    else
      echo "== $run: training"
      "$bin" train --config "$config"
    fi
  done
}

# draw_plots: the PNGs of docs/experiments.md from runs/experiments, when python3 has
# matplotlib (the tables need only the standard library).
draw_plots() {
  if python3 -c "import matplotlib" 2>/dev/null; then
    python3 scripts/experiment_plots.py "$out" docs/experiments
  else
    echo "matplotlib is not installed: no plots (pip install matplotlib)"
  fi
}
