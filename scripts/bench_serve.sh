#!/usr/bin/env bash
# Serving benchmark: `roformer serve` with a model of configs/small.toml's shape (one
# training step: seeded weights, trained tokenizer) driven by scripts/serve_load.rs (a
# standard-library Rust load generator, built here with rustc) on POST /embed with real
# sentences of the corpus, at concurrency 1, 8, 32 and 128, then a 60-second soak at 64;
# beside it, in the same run, our offline embedding throughput (`roformer embed` over the
# same sentences at batch 1, at the mean batch the server formed at concurrency 32, and
# at 32) and PyTorch's (transformers RoFormerModel, 2 threads, scripts/embed_pytorch.py,
# at those batch sizes). Everything runs on this machine, over the loopback address.
#
# Usage: scripts/bench_serve.sh [WORKDIR]
#   BIN=path/to/roformer   the binary (default: cargo build --release -p roformer-cli)
#   DURATION=20            seconds per concurrency level
#   SOAK=60                seconds of the soak at concurrency 64
#   PYTHON=python3         an interpreter with torch and transformers (default: .venv-bench,
#                          made as scripts/bench_vs_pytorch.sh makes it)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
duration="${DURATION:-20}"
soak="${SOAK:-60}"

if [ -z "${BIN:-}" ]; then
  (cd "$root" && cargo build --release -p roformer-cli >&2)
  BIN="${CARGO_TARGET_DIR:-$root/target}/release/roformer"
fi
py="${PYTHON:-$root/.venv-bench/bin/python}"
rustc -O --edition 2024 -o "$work/serve_load" "$root/scripts/serve_load.rs"

# A model of the small shape: one step of training gives seeded weights and a tokenizer.
if [ ! -f "$work/small/config.json" ]; then
  sed -e 's/^steps = .*/steps = 1/' -e 's/^eval_every = .*/eval_every = 1/' \
      -e 's/^checkpoint_every = .*/checkpoint_every = 1/' \
      -e "s|^output_dir = .*|output_dir = \"$work/small\"|" "$root/configs/small.toml" > "$work/small.toml"
  "$BIN" train --config "$work/small.toml" >&2
fi

# Sentences of 6 to 40 words from the corpus (8 to about 64 tokens).
# (head ends the pipe early: its SIGPIPE is expected.)
cat "$root"/data/shakespeare/*.txt | tr -s ' \t' ' ' \
  | awk 'NF >= 6 && NF <= 40' | head -n 4000 > "$work/sentences.txt" || true

"$BIN" serve --model "$work/small" --port 0 --max-concurrent-requests 4096 2> "$work/serve.log" &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  url=$(grep -o 'http://[0-9.:]*' "$work/serve.log" | head -n1 || true)
  [ -n "$url" ] && break
  sleep 0.2
done
[ -n "$url" ] || { cat "$work/serve.log" >&2; exit 1; }
echo "== server $url (pid $server)" >&2

: > "$work/load.jsonl"
for concurrency in 1 8 32 128; do
  "$work/serve_load" --url "$url" --sentences "$work/sentences.txt" \
    --concurrency "$concurrency" --duration "$duration" | tee -a "$work/load.jsonl"
done

# The soak: RSS after its first 10 s and at its end.
"$work/serve_load" --url "$url" --sentences "$work/sentences.txt" \
  --concurrency 64 --duration "$soak" > "$work/soak.json" &
soaker=$!
sleep 10
rss_10=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
wait "$soaker"
rss_end=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
peak=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
echo "soak: $(cat "$work/soak.json") rss_after_10s_kb=$rss_10 rss_end_kb=$rss_end peak_rss_kb=$peak"

# Our offline throughput: `roformer embed` over 2,048 sentences, less a one-sentence run
# (the load), tokens counted by the server; at batch 1 (its time per sentence is the
# offline single-input time), at the mean batch the server formed at concurrency 32, and
# at 32.
head -n 2048 "$work/sentences.txt" > "$work/offline.txt"
head -n 1 "$work/sentences.txt" > "$work/one.txt"
tokens=$(python3 - "$url" "$work/offline.txt" <<'PY'
import json, sys, urllib.request
texts = [l.strip() for l in open(sys.argv[2]) if l.strip()]
request = urllib.request.Request(sys.argv[1] + "/embed", json.dumps({"inputs": texts}).encode(),
                                 {"Content-Type": "application/json"})
print(urllib.request.urlopen(request).headers["x-compute-tokens"])
PY
)
kill "$server"; wait "$server" 2>/dev/null || true
trap - EXIT
formed=$(python3 -c "import json,sys; rows=[json.loads(l) for l in open(sys.argv[1])]; print(max(1, round(next(r for r in rows if r['concurrency'] == 32)['mean_batch_size'])))" "$work/load.jsonl")
# The offline single-input time at the 99th percentile of length: the sentences between
# the 98.5th and 99.5th percentiles of words, ten times over, at batch 1.
python3 - "$work/sentences.txt" > "$work/p99.txt" <<'PY'
import sys
lines = sorted((l.strip() for l in open(sys.argv[1]) if l.strip()), key=lambda l: len(l.split()))
band = lines[int(0.985 * len(lines)):int(0.995 * len(lines))]
print("\n".join(band * 10))
PY
p99_lines=$(wc -l < "$work/p99.txt")
t0=$(date +%s.%N); "$BIN" embed --model "$work/small" --input "$work/one.txt" > /dev/null; t1=$(date +%s.%N)
"$BIN" embed --model "$work/small" --input "$work/p99.txt" --batch-size 1 > /dev/null; t2=$(date +%s.%N)
python3 -c "import json; load=$t1-$t0; run=$t2-$t1; print(json.dumps({'implementation': 'roformer-rs offline', 'batch': 1, 'input': 'p99 length', 'ms_per_sentence': 1000 * (run - load) / $p99_lines}))"
for batch in 1 "$formed" 32; do
  t0=$(date +%s.%N); "$BIN" embed --model "$work/small" --input "$work/one.txt" > /dev/null; t1=$(date +%s.%N)
  "$BIN" embed --model "$work/small" --input "$work/offline.txt" --batch-size "$batch" > /dev/null; t2=$(date +%s.%N)
  python3 -c "import json; load=$t1-$t0; run=$t2-$t1; print(json.dumps({'implementation': 'roformer-rs offline', 'batch': $batch, 'tokens_per_second': $tokens / (run - load), 'ms_per_sentence': 1000 * (run - load) / 2048}))"
done

# PyTorch's offline throughput on the same directory and sentences.
if "$py" -c 'import torch, transformers' 2>/dev/null; then
  for batch in "$formed" 32; do
    "$py" "$root/scripts/embed_pytorch.py" --model "$work/small" --sentences "$work/offline.txt" --batch "$batch"
  done
else
  echo "no torch/transformers for $py: PyTorch's offline throughput left out" >&2
fi
