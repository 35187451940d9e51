#!/usr/bin/env bash
# Side-by-side CPU benchmark: `roformer bench` (roformer-rs) against Hugging Face
# transformers' RoFormerForMaskedLM in PyTorch (scripts/bench_pytorch.py), same model
# shape, same batch and sequence length, same work per step.
#
#   scripts/bench_vs_pytorch.sh [--config configs/small.toml]
#
# Rows: inference 8x128, inference 1x512, train 8x128, train 1x512. Each row runs ours,
# then PyTorch, each in a fresh process, REPEATS times; the table keeps the best tokens/s
# and the largest peak RSS of each side, and also gives the ratio of the two sides' median
# tokens/s (less swayed by one lucky run on a noisy machine).
#
# Environment:
#   PYTHON          an interpreter that has torch and transformers; otherwise a virtualenv
#                   is made at .venv-bench and they are pip-installed there (once)
#   TORCH_INDEX_URL pip index for torch when installing it, e.g.
#                   https://download.pytorch.org/whl/cpu (a much smaller CPU-only wheel)
#   CARGO_TARGET_DIR  default $HOME/.cache/roformer-rs/target
#   CARGO_FEATURES  passed to `cargo build` as --features "$CARGO_FEATURES"
#   SKIP_BUILD=1    do not run cargo build
#   ROFORMER_BIN    the roformer binary (default $CARGO_TARGET_DIR/release/roformer)
#   REPEATS         runs per row and implementation (default 2)
#   THREADS         threads for both sides (default: nproc); PyTorch gets --threads,
#                   roformer-rs gets RAYON_NUM_THREADS
#   STEPS, WARMUP   passed as --steps / --warmup to both sides when set
#   BENCH_LOG       where the JSON lines of every run go
#                   (default $CARGO_TARGET_DIR/bench_vs_pytorch-<date>.jsonl)
#   POOL            space-separated JSON-line logs of earlier invocations: run nothing,
#                   print the table over all their runs together (python3 only)
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# --- the table, over every run in a JSON-line log ----------------------------------
# Usage: summarise PYTHON LOG VERSIONS
summarise() {
  local python="$1" log="$2" versions="$3" cpu rustc_version commit
  cpu="$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | sed 's/^[^:]*: *//' || true)"
  rustc_version="$(rustc --version 2>/dev/null || echo 'rustc: unknown')"
  commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  if ! git diff --quiet HEAD 2>/dev/null; then commit="$commit (dirty)"; fi
"$python" - "$log" "$config" "${cpu:-$(uname -m)}" "$(nproc)" "$threads" "$versions" \
  "$rustc_version" "$commit" <<'EOF'
import json
import statistics
import sys

log, config, cpu, nproc, threads, versions, rustc, commit = sys.argv[1:]
runs = [json.loads(line) for line in open(log) if line.strip()]

best = {}  # (implementation, mode, batch, seq) -> [best tok/s, max peak MB]
speeds = {}  # (implementation, mode, batch, seq) -> tok/s of every run
order = []
backends = {}
for run in runs:
    impl = run["implementation"]
    backends.setdefault(impl, set()).add(run["backend"])
    key = (run["mode"], run["batch"], run["seq"])
    if key not in order:
        order.append(key)
    cell = best.setdefault((impl,) + key, [0.0, 0.0])
    cell[0] = max(cell[0], run["tokens_per_second"])
    cell[1] = max(cell[1], run["peak_rss_mb"] or 0.0)
    speeds.setdefault((impl,) + key, []).append(run["tokens_per_second"])

ours, theirs = "roformer-rs", "pytorch"
print()
print(f"machine: {cpu}, nproc {nproc}, threads {threads}")
print(f"versions: {versions}; roformer-rs {commit}, "
      f"backend {', '.join(sorted(backends.get(ours, {'?'})))}, {rustc}")
print(f"config: {config}")
print()
print("| mode | batch x seq | roformer-rs tok/s | PyTorch tok/s | ours/PyTorch "
      "| median ratio | roformer-rs peak MB | PyTorch peak MB |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
ratios = []
for mode, batch, seq in order:
    a = best.get((ours, mode, batch, seq))
    b = best.get((theirs, mode, batch, seq))
    if a is None or b is None:
        continue
    ratio = a[0] / b[0]
    ratios.append(ratio)
    median_ratio = statistics.median(speeds[(ours, mode, batch, seq)]) / statistics.median(
        speeds[(theirs, mode, batch, seq)])
    print(f"| {mode} | {batch} x {seq} | {a[0]:.0f} | {b[0]:.0f} | {ratio:.2f} "
          f"| {median_ratio:.2f} | {a[1]:.0f} | {b[1]:.0f} |")
print()
print(f"runs: {log}")
if not ratios:
    sys.exit("no row has runs of both implementations")
print(f"ratio ours/pytorch: min {min(ratios):.2f} median {statistics.median(ratios):.2f}")
EOF
}


config=configs/small.toml
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config="${2:?--config needs a file}"; shift 2 ;;
    --config=*) config="${1#--config=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

# A config given relative to the caller's directory; the rest runs from the repository root.
if [ -f "$config" ]; then
  config="$(cd "$(dirname "$config")" && pwd)/$(basename "$config")"
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"
if [ ! -f "$config" ]; then
  echo "config file not found: $config" >&2
  exit 2
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roformer-rs/target}"
repeats="${REPEATS:-2}"
threads="${THREADS:-$(nproc)}"

if [ -n "${POOL:-}" ]; then
  pooled="$CARGO_TARGET_DIR/bench_vs_pytorch-pooled-$(date +%Y%m%d-%H%M%S).jsonl"
  mkdir -p "$CARGO_TARGET_DIR"
  # shellcheck disable=SC2086 # POOL is a list of files
  cat $POOL >"$pooled"
  summarise python3 "$pooled" "pooled from: $POOL"
  exit 0
fi

# --- (a) Python with torch + transformers -------------------------------------------
# bench_pytorch.py needs Python >= 3.11 (tomllib).
has_torch() { "$1" -c 'import tomllib, torch, transformers' >/dev/null 2>&1; }

if [ -n "${PYTHON:-}" ] && has_torch "$PYTHON"; then
  py="$PYTHON"
else
  if [ -n "${PYTHON:-}" ]; then
    echo "PYTHON=$PYTHON cannot import tomllib, torch and transformers; using .venv-bench" >&2
  fi
  venv="$root/.venv-bench"
  py="$venv/bin/python"
  if [ ! -x "$py" ]; then
    if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      echo "python3 is $(python3 --version 2>&1); scripts/bench_pytorch.py needs >= 3.11" >&2
      exit 1
    fi
    echo "== creating virtualenv $venv" >&2
    python3 -m venv "$venv"
  fi
  if ! has_torch "$py"; then
    echo "== installing torch and transformers into $venv (this may take a few minutes)" >&2
    "$py" -m pip install --quiet --upgrade pip
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
      "$py" -m pip install --quiet torch --index-url "$TORCH_INDEX_URL"
    fi
    "$py" -m pip install --quiet torch transformers
    has_torch "$py" || { echo "torch/transformers still not importable by $py" >&2; exit 1; }
  fi
fi

# --- (b) the roformer binary --------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  build=(cargo build --release -p roformer-train)
  if [ -n "${CARGO_FEATURES:-}" ]; then
    build+=(--features "$CARGO_FEATURES")
  fi
  echo "== ${build[*]} (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)" >&2
  "${build[@]}"
fi
bin="${ROFORMER_BIN:-$CARGO_TARGET_DIR/release/roformer}"
if [ ! -x "$bin" ]; then
  echo "roformer binary not found or not executable: $bin" >&2
  exit 1
fi

# --- (c) the runs -------------------------------------------------------------------
mkdir -p "$CARGO_TARGET_DIR"
log="${BENCH_LOG:-$CARGO_TARGET_DIR/bench_vs_pytorch-$(date +%Y%m%d-%H%M%S).jsonl}"
mkdir -p "$(dirname "$log")"
: >"$log"
errfile="$(mktemp)"
trap 'rm -f "$errfile"' EXIT

extra=()
if [ -n "${STEPS:-}" ]; then extra+=(--steps "$STEPS"); fi
if [ -n "${WARMUP:-}" ]; then extra+=(--warmup "$WARMUP"); fi

# Runs one benchmark process; appends its JSON line to the log and prints progress.
# Usage: run_one LABEL COMMAND...
run_one() {
  local label="$1" out line
  shift
  if ! out="$("$@" 2>"$errfile")"; then
    echo "FAILED: $*" >&2
    cat "$errfile" >&2
    exit 1
  fi
  line="$(printf '%s\n' "$out" | grep '^{' | tail -n 1 || true)"
  if [ -z "$line" ]; then
    echo "no JSON line on stdout from: $*" >&2
    printf '%s\n' "$out" >&2
    cat "$errfile" >&2
    exit 1
  fi
  printf '%s\n' "$line" >>"$log"
  printf '  %-12s %.0f tok/s\n' "$label" \
    "$(printf '%s\n' "$line" | sed -n 's/.*"tokens_per_second":\([-0-9.eE+]*\).*/\1/p')" >&2
}

rows=("inference 8 128" "inference 1 512" "train 8 128" "train 1 512")
for row in "${rows[@]}"; do
  read -r mode batch seq <<<"$row"
  args=(--config "$config" --batch "$batch" --seq "$seq")
  if [ "$mode" = train ]; then args+=(--train); fi
  args+=("${extra[@]}")
  for ((r = 1; r <= repeats; r++)); do
    echo "== $mode ${batch}x$seq, run $r/$repeats" >&2
    run_one roformer-rs env RAYON_NUM_THREADS="$threads" "$bin" bench "${args[@]}" --json
    run_one pytorch "$py" scripts/bench_pytorch.py "${args[@]}" --threads "$threads"
  done
done

# --- (d) the table ------------------------------------------------------------------
summarise "$py" "$log" "$("$py" -c 'import torch, transformers; print(f"torch {torch.__version__}, transformers {transformers.__version__}")')"
