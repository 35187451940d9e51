#!/usr/bin/env bash
# Side-by-side benchmark: `roformer bench` (roformer-rs) against Hugging Face transformers'
# RoFormerForMaskedLM in PyTorch (scripts/bench_pytorch.py), same model shape, same batch
# and sequence length, same work per step; on the CPU, or on an NVIDIA GPU (DEVICE=cuda).
#
#   scripts/bench_vs_pytorch.sh [--config configs/small.toml]
#   DEVICE=cuda ROFORMER_BINS="wgpu=./roformer-wgpu cuda=./roformer-cuda" scripts/bench_vs_pytorch.sh
#
# CPU rows (--config's model): inference 8x128, inference 1x512, train 8x128, train 1x512.
# GPU rows: small 8x128 inference and train step, base 32x512 inference, base 16x512 train
# step, with PyTorch on CUDA in fp32 eager and in bf16 autocast, and each build of ours in
# f32 and in bf16 (`--precision`). For each row, every build and precision of ours and
# every PyTorch precision run in turn, each in a fresh process, REPEATS times;
# the table keeps the best tokens/s and the largest peak memory (RSS on the CPU; on a GPU
# the device memory nvidia-smi sees in use during the run, above what was in use before)
# of each, and on the CPU also the ratio of the medians (less swayed by one lucky run on a
# noisy machine). The last line is `ratio ours/pytorch: min X median Y` over the rows (on a
# GPU: our fastest f32 build against PyTorch fp32; first a line per PyTorch precision, each
# against our fastest build in the same precision: f32 against fp32, bf16 against bf16).
#
# Environment:
#   DEVICE          cpu (default) or cuda: the GPU rows and PyTorch on CUDA
#   ROFORMER_BINS   space-separated LABEL=PATH builds of ours to compare, e.g.
#                   "wgpu=/tmp/roformer-wgpu cuda=/tmp/roformer-cuda"; nothing is built
#   PRECISIONS      PyTorch precisions, fp32 and/or bf16 (default: fp32 on the CPU,
#                   "fp32 bf16" with DEVICE=cuda)
#   OUR_PRECISIONS  precisions our builds run in, f32, bf16 and/or f16 (default: f32 on
#                   the CPU, "f32 bf16" with DEVICE=cuda)
#   ROWS            the rows to run instead, ';'-separated "MODE BATCH SEQ [CONFIG]"
#                   (MODE inference, encoder or train; CONFIG defaults to --config)
#   PYTHON          an interpreter that has torch and transformers; otherwise a virtualenv
#                   is made at .venv-bench and they are pip-installed there (once)
#   ANCHOR          pytorch (default) or onnxruntime: what ours is set beside
#                   (scripts/bench_ANCHOR.py; scripts/bench_vs_onnxruntime.sh sets it)
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
  "$rustc_version" "$commit" "$anchor" <<'EOF'
import json
import os
import statistics
import sys

log, config, cpu, nproc, threads, versions, rustc, commit, anchor = sys.argv[1:]
runs = [json.loads(line) for line in open(log) if line.strip()]

ours, theirs = "roformer-rs", anchor
anchor_name = {"pytorch": "PyTorch", "onnxruntime": "ONNX Runtime"}.get(anchor, anchor)
best = {}  # (variant, row) -> [best tok/s, max peak MB]
speeds = {}  # (variant, row) -> tok/s of every run
order = []  # rows: (config, mode, batch, seq)
variants = {ours: [], theirs: []}  # by implementation, in order of first appearance
backends = {}
for run in runs:
    impl = run["implementation"]
    variant = run.get("variant", impl)
    if variant not in variants[impl]:
        variants[impl].append(variant)
    backends.setdefault(variant, set()).add(run["backend"])
    key = (run.get("config", config), run["mode"], run["batch"], run["seq"])
    if key not in order:
        order.append(key)
    cell = best.setdefault((variant, key), [0.0, 0.0])
    cell[0] = max(cell[0], run["tokens_per_second"])
    cell[1] = max(cell[1], run.get("peak_gpu_mb", run["peak_rss_mb"]) or 0.0)
    speeds.setdefault((variant, key), []).append(run["tokens_per_second"])


def precision_of(variant):
    """A variant's precision, from the end of its label (f32 when it names none)."""
    last = variant.split()[-1]
    return {"fp32": "f32", "f32": "f32", "bf16": "bf16", "f16": "f16"}.get(last, "f32")


def ratios_against(other):
    """Per row: our fastest build in `other`'s precision, best tok/s over `other`'s."""
    ratios = []
    for key in order:
        mine = [best[(v, key)][0] for v in variants[ours]
                if (v, key) in best and precision_of(v) == precision_of(other)]
        if mine and (other, key) in best:
            ratios.append(max(mine) / best[(other, key)][0])
    return ratios


print()
print(f"machine: {cpu}, nproc {nproc}, threads {threads}")
print(f"versions: {versions}; roformer-rs {commit}, {rustc}")
for variant in variants[ours] + variants[theirs]:
    print(f"  {variant}: {', '.join(sorted(backends[variant]))}")
print()
if len(variants[ours]) == 1 and len(variants[theirs]) == 1:
    mine, other = variants[ours][0], variants[theirs][0]
    print(f"config: {config}")
    print()
    print(f"| mode | batch x seq | roformer-rs tok/s | {anchor_name} tok/s | ours/{anchor_name} "
          f"| median ratio | roformer-rs peak MB | {anchor_name} peak MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for key in order:
        _, mode, batch, seq = key
        a, b = best.get((mine, key)), best.get((other, key))
        if a is None or b is None:
            continue
        median_ratio = statistics.median(speeds[(mine, key)]) / statistics.median(
            speeds[(other, key)])
        print(f"| {mode} | {batch} x {seq} | {a[0]:.0f} | {b[0]:.0f} | {a[0] / b[0]:.2f} "
              f"| {median_ratio:.2f} | {a[1]:.0f} | {b[1]:.0f} |")
else:
    names = variants[ours] + variants[theirs]
    pairs = [(m, t) for m in variants[ours] for t in variants[theirs]
             if precision_of(m) == precision_of(t)]
    print("| config | mode | batch x seq | "
          + " | ".join(f"{v} tok/s" for v in names) + " | "
          + " | ".join(f"{m} / {t}" for m, t in pairs) + " | "
          + " | ".join(f"{v} peak MB" for v in names) + " |")
    print("|---|---|---|" + "---:|" * (2 * len(names) + len(pairs)))
    cell = lambda v, key, i: f"{best[(v, key)][i]:.0f}" if (v, key) in best else "-"
    for key in order:
        row_config, mode, batch, seq = key
        ratios = [f"{best[(m, key)][0] / best[(t, key)][0]:.2f}"
                  if (m, key) in best and (t, key) in best else "-" for m, t in pairs]
        print(f"| {os.path.basename(row_config)} | {mode} | {batch} x {seq} | "
              + " | ".join(cell(v, key, 0) for v in names) + " | " + " | ".join(ratios)
              + " | " + " | ".join(cell(v, key, 1) for v in names) + " |")
print()
print(f"runs: {log}")
if not variants[ours] or not variants[theirs]:
    sys.exit("no row has runs of both implementations")
if len(variants[theirs]) > 1:
    for other in variants[theirs]:
        r = ratios_against(other)
        if r:
            print(f"ratio ours/{other}: min {min(r):.2f} median {statistics.median(r):.2f}")
ratios = ratios_against(variants[theirs][0])
if not ratios:
    sys.exit("no row has runs of both implementations")
print(f"ratio ours/{anchor}: min {min(ratios):.2f} median {statistics.median(ratios):.2f}")
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
anchor="${ANCHOR:-pytorch}"
case "$anchor" in
  pytorch) anchor_modules="" ;;
  onnxruntime) anchor_modules="onnxruntime onnx" ;;
  *) echo "ANCHOR must be pytorch or onnxruntime, not $anchor" >&2; exit 2 ;;
esac
repeats="${REPEATS:-2}"
threads="${THREADS:-$(nproc)}"

if [ -n "${POOL:-}" ]; then
  pooled="$CARGO_TARGET_DIR/bench_vs_$anchor-pooled-$(date +%Y%m%d-%H%M%S).jsonl"
  mkdir -p "$CARGO_TARGET_DIR"
  # shellcheck disable=SC2086 # POOL is a list of files
  cat $POOL >"$pooled"
  summarise python3 "$pooled" "pooled from: $POOL"
  exit 0
fi

# --- (a) Python with torch + transformers -------------------------------------------
# bench_pytorch.py needs Python >= 3.11 (tomllib).
has_torch() {
  "$1" -c "import tomllib, torch, transformers${anchor_modules:+, ${anchor_modules// /, }}" >/dev/null 2>&1
}

if [ -n "${PYTHON:-}" ] && has_torch "$PYTHON"; then
  py="$PYTHON"
else
  if [ -n "${PYTHON:-}" ]; then
    echo "PYTHON=$PYTHON cannot import tomllib, torch, transformers ${anchor_modules}; using .venv-bench" >&2
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
    # shellcheck disable=SC2086 # a list of modules
    "$py" -m pip install --quiet torch transformers $anchor_modules
    has_torch "$py" || { echo "torch/transformers still not importable by $py" >&2; exit 1; }
  fi
fi

# --- (b) the roformer binary --------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ] && [ -z "${ROFORMER_BINS:-}" ]; then
  build=(cargo build --release -p roformer-cli)
  if [ -n "${CARGO_FEATURES:-}" ]; then
    build+=(--features "$CARGO_FEATURES")
  fi
  echo "== ${build[*]} (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)" >&2
  "${build[@]}"
fi
# Our builds: LABEL=PATH pairs, or the one binary (labelled by nothing).
builds=()
if [ -n "${ROFORMER_BINS:-}" ]; then
  read -ra builds <<<"$ROFORMER_BINS"
else
  builds=("=${ROFORMER_BIN:-$CARGO_TARGET_DIR/release/roformer}")
fi
for build in "${builds[@]}"; do
  if [ ! -x "${build#*=}" ]; then
    echo "roformer binary not found or not executable: ${build#*=} (in ROFORMER_BINS as LABEL=PATH?)" >&2
    exit 1
  fi
done

# --- (c) the runs -------------------------------------------------------------------
mkdir -p "$CARGO_TARGET_DIR"
log="${BENCH_LOG:-$CARGO_TARGET_DIR/bench_vs_$anchor-$(date +%Y%m%d-%H%M%S).jsonl}"
mkdir -p "$(dirname "$log")"
: >"$log"
errfile="$(mktemp)"
trap 'rm -f "$errfile"' EXIT

extra=()
if [ -n "${STEPS:-}" ]; then extra+=(--steps "$STEPS"); fi
if [ -n "${WARMUP:-}" ]; then extra+=(--warmup "$WARMUP"); fi

device="${DEVICE:-cpu}"
case "$device" in
  cpu)
    default_rows="inference 8 128;inference 1 512;train 8 128;train 1 512"
    if [ "$anchor" = onnxruntime ]; then
      default_rows=""
      for mode in inference encoder; do
        for shape in "8 128" "32 128" "64 64" "1 512" "4 512"; do
          default_rows+="${default_rows:+;}$mode $shape"
        done
      done
    fi
    precisions="${PRECISIONS:-fp32}"
    our_precisions="${OUR_PRECISIONS:-f32}" ;;
  cuda)
    default_rows="inference 8 128 configs/small.toml;train 8 128 configs/small.toml"
    default_rows+=";inference 32 512 configs/base.toml;train 16 512 configs/base.toml"
    precisions="${PRECISIONS:-fp32 bf16}"
    our_precisions="${OUR_PRECISIONS:-f32 bf16}" ;;
  *) echo "DEVICE must be cpu or cuda, not $device" >&2; exit 2 ;;
esac
IFS=';' read -ra rows <<<"${ROWS:-$default_rows}"
read -ra precisions <<<"$precisions"
read -ra our_precisions <<<"$our_precisions"

# GPU memory in use now (MiB), when nvidia-smi is there.
gpu_used() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -n 1 | tr -dc 0-9; }
have_smi=0
if [ -n "$(gpu_used || true)" ]; then have_smi=1; fi

# Runs one benchmark process; appends its JSON line, with the variant, the config and (with
# nvidia-smi) the peak GPU memory added, to the log and prints progress.
# Usage: run_one VARIANT CONFIG COMMAND...
run_one() {
  local variant="$1" run_config="$2" out line pid base=0 peak=0 used
  shift 2
  if [ "$have_smi" = 1 ]; then base="$(gpu_used)"; peak="$base"; fi
  "$@" >"$outfile" 2>"$errfile" &
  pid=$!
  if [ "$have_smi" = 1 ]; then
    while kill -0 "$pid" 2>/dev/null; do
      used="$(gpu_used)"
      if [ "${used:-0}" -gt "$peak" ]; then peak="$used"; fi
      sleep 0.2
    done
  fi
  if ! wait "$pid"; then
    echo "FAILED: $*" >&2
    cat "$outfile" "$errfile" >&2
    exit 1
  fi
  out="$(cat "$outfile")"
  line="$(printf '%s\n' "$out" | grep '^{' | tail -n 1 || true)"
  if [ -z "$line" ]; then
    echo "no JSON line on stdout from: $*" >&2
    printf '%s\n' "$out" >&2
    cat "$errfile" >&2
    exit 1
  fi
  line="{\"variant\":\"$variant\",\"config\":\"$run_config\",${line#\{}"
  if [ "$have_smi" = 1 ]; then line="${line%\}},\"peak_gpu_mb\":$((peak - base))}"; fi
  printf '%s\n' "$line" >>"$log"
  printf '  %-22s %.0f tok/s\n' "$variant" \
    "$(printf '%s\n' "$line" | sed -n 's/.*"tokens_per_second":\([-0-9.eE+]*\).*/\1/p')" >&2
}
outfile="$(mktemp)"
trap 'rm -f "$errfile" "$outfile"' EXIT

for row in "${rows[@]}"; do
  read -r mode batch seq row_config <<<"$row"
  row_config="${row_config:-$config}"
  if [ ! -f "$row_config" ]; then echo "config file not found: $row_config" >&2; exit 2; fi
  args=(--config "$row_config" --batch "$batch" --seq "$seq")
  case "$mode" in
    train) args+=(--train) ;;
    encoder) args+=(--encoder-only) ;;
    inference) ;;
    *) echo "a row's mode is inference, encoder or train, not $mode (row: $row)" >&2; exit 2 ;;
  esac
  args+=("${extra[@]}")
  for ((r = 1; r <= repeats; r++)); do
    echo "== $mode ${batch}x$seq $(basename "$row_config"), run $r/$repeats" >&2
    for build in "${builds[@]}"; do
      label="${build%%=*}"
      for precision in "${our_precisions[@]}"; do
        variant="roformer-rs${label:+ $label}"
        if [ "$device" != cpu ] || [ "${#our_precisions[@]}" -gt 1 ]; then variant="$variant $precision"; fi
        run_one "$variant" "$row_config" env RAYON_NUM_THREADS="$threads" \
          "${build#*=}" bench "${args[@]}" --precision "$precision" --json
      done
    done
    for precision in "${precisions[@]}"; do
      variant="$anchor"
      if [ "$device" != cpu ] || [ "${#precisions[@]}" -gt 1 ]; then variant="$anchor $precision"; fi
      run_one "$variant" "$row_config" "$py" "scripts/bench_$anchor.py" "${args[@]}" \
        --threads "$threads" --device "$device" --precision "$precision"
    done
  done
done

# --- (d) the table ------------------------------------------------------------------
versions="$("$py" -c 'import torch, transformers; print(f"torch {torch.__version__}, transformers {transformers.__version__}")')"
if [ "$anchor" = onnxruntime ]; then
  versions+=", onnxruntime $("$py" -c 'import onnxruntime; print(onnxruntime.__version__)')"
fi
summarise "$py" "$log" "$versions"
