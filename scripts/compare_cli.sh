#!/usr/bin/env bash
# Compares the user-visible behaviour of two `roformer` binaries (e.g. before and after a
# restructuring of the crates): runs the same script of commands with each, captures each
# command's stdout, stderr and exit status, normalises what legitimately varies between
# runs (timings, throughput, peak memory, temporary and work-directory paths), and diffs.
#
#   scripts/compare_cli.sh OLD_BINARY NEW_BINARY [WORKDIR]
#
# WORKDIR (default: a new mktemp directory) receives
#   old/NNN-name.{out,err,rc}   raw captures of the old binary (old-work/: its files)
#   new/NNN-name.{out,err,rc}   the same for the new binary     (new-work/: its files)
#   norm/{old,new}/...          the normalised captures that are compared
#   diff/NNN-name.diff          `diff -u` of each capture that differs
# Prints one line per command (`same` / `DIFFERS`) and `N commands: S same, D differ`;
# exits 0 only when every command is the same (1 otherwise, 2 on a usage error).
#
# Each binary trains its own tiny run directory (same configs, same seeds) and every
# data-dependent command runs on what that binary produced, so the comparison includes the
# trained and fine-tuned models' outputs, which must match exactly when behaviour is
# unchanged. A few steps are not binary invocations but listings of files the binary wrote
# (names `files-*`: small text files in full, .safetensors files as a digest of their
# tensors, other files as sha256 and size; burn's checkpoint records only as present).
# Two steps kill the binary on purpose (a checkpoint write paused by
# ROFORMER_PAUSE_CHECKPOINT, then --resume): their .rc reads `137 paused`.
#
# Needs: bash, coreutils (timeout, sha256sum), GNU sed, diff, python3 (for the tensor
# digests; without it they are left out), and the repository's
# data/shakespeare (a small corpus is cut from it). Environment knobs:
#   COMPARE_CLI_TIMEOUT  seconds per command (default 300)
#   COMPARE_CLI_PORT     a free TCP port for the `coordinator` cases (default 47913)
# Takes about a minute per binary with the default CPU backend on 2 cores.

set -u
set -o pipefail

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
}

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    usage
fi
for bin in "$1" "$2"; do
    if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then
        echo "error: $bin is not an executable file" >&2
        exit 2
    fi
done
OLD_ARG=$(cd "$(dirname "$1")" && pwd -P)/$(basename "$1")
NEW_ARG=$(cd "$(dirname "$2")" && pwd -P)/$(basename "$2")
if [ $# -eq 3 ]; then
    mkdir -p "$3" || exit 2
    WORKDIR=$(cd "$3" && pwd -P) || exit 2
else
    WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/compare_cli.XXXXXX") || exit 2
    WORKDIR=$(cd "$WORKDIR" && pwd -P) || exit 2
fi
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
SHAKESPEARE=$REPO/data/shakespeare
for work in macbeth.txt tempest.txt sonnets.txt hamlet.txt; do
    if [ ! -f "$SHAKESPEARE/$work" ]; then
        echo "error: $SHAKESPEARE/$work is missing (the small corpus is cut from it)" >&2
        exit 2
    fi
done
# Each binary is copied to WORKDIR/bin/SIDE/roformer and run from there: clap prints the
# name the binary was invoked by in its usage lines, and a rebuild during the run must not
# swap a binary under it.
OLD_BIN=$WORKDIR/bin/old/roformer
NEW_BIN=$WORKDIR/bin/new/roformer
mkdir -p "$WORKDIR/bin/old" "$WORKDIR/bin/new"
if ! cp "$OLD_ARG" "$OLD_BIN" || ! cp "$NEW_ARG" "$NEW_BIN"; then
    exit 2
fi
TIMEOUT=${COMPARE_CLI_TIMEOUT:-300}
PORT=${COMPARE_CLI_PORT:-47913}

# The same environment for both binaries: no backtraces or log filters from the caller, no
# fault injection, a fixed width for clap's help, and (for GPU builds) a runtime dir so that
# WGPU's Wayland probe stays quiet, as the tests set it.
unset RUST_BACKTRACE RUST_LIB_BACKTRACE RUST_LOG ROFORMER_PAUSE_CHECKPOINT
export LC_ALL=C TZ=UTC COLUMNS=100 NO_COLOR=1
export XDG_RUNTIME_DIR=$WORKDIR/xdg-runtime
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

# ---------------------------------------------------------------------------------------
# Capturing

BIN=''   # the binary of the side being run
OUT=''   # its capture folder
WORK=''  # its work folder (the commands run in it, with relative paths)
COUNT=0

# Sets BASE to the capture base (OUT/NNN-name) of the next step (not called in a
# subshell, so that COUNT advances).
BASE=''
next_base() {
    COUNT=$((COUNT + 1))
    printf -v BASE '%s/%03d-%s' "$OUT" "$COUNT" "$1"
}

# step NAME [--stdin FILE] [--env VAR=VALUE]... [--] ARGS...: runs BIN ARGS in WORK
# (stdin from FILE, default /dev/null) under `timeout`; its exit status is data.
step() {
    local name=$1 stdin=/dev/null base
    local -a envs=()
    shift
    while [ $# -gt 0 ]; do
        case $1 in
            --stdin) stdin=$2; shift 2 ;;
            --env) envs+=("$2"); shift 2 ;;
            --) shift; break ;;
            *) break ;;
        esac
    done
    next_base "$name"
    base=$BASE
    (cd "$WORK" && env ${envs[@]+"${envs[@]}"} timeout "$TIMEOUT" "$BIN" "$@" \
        <"$stdin" >"$base.out" 2>"$base.err")
    echo $? >"$base.rc"
}

# Describes FILE (relative to WORK) on stdout: a small text file in full, anything else as
# its sha256 and size, a folder as the listing of its files.
describe() {
    local path=$1 full=$WORK/$1
    if [ -d "$full" ]; then
        echo "== $path/ (folder)"
        local file
        (cd "$full" && find . -type f | LC_ALL=C sort) | while read -r file; do
            describe "$path/${file#./}"
        done
    elif [ ! -e "$full" ]; then
        echo "== $path: missing"
    else
        case $path in
            # burn's records hold parameter ids drawn at random; only their presence counts.
            */checkpoint/*.mpk | */checkpoint.*/*.mpk)
                echo "== $path: present" ;;
            *.json | *.jsonl | *.toml | *.txt | *.tsv | *.csv | *.conll)
                if [ "$(wc -c <"$full")" -le 65536 ]; then
                    echo "== $path:"
                    cat "$full"
                    echo
                else
                    echo "== $path: $(sha256sum <"$full" | cut -d' ' -f1) $(wc -c <"$full") bytes"
                fi ;;
            *.safetensors)
                echo "== $path: $(safetensors_digest "$full") $(wc -c <"$full") bytes" ;;
            *)
                echo "== $path: $(sha256sum <"$full" | cut -d' ' -f1) $(wc -c <"$full") bytes" ;;
        esac
    fi
}

# The content of a .safetensors file: its tensors (name, dtype, shape, bytes) in name order
# and its metadata, hashed. Not the file's own bytes: the writer may lay the same tensors
# out in another order from one run to the next.
safetensors_digest() {
    if ! command -v python3 >/dev/null; then
        echo "(tensors not compared: no python3)"
        return
    fi
    python3 - "$1" <<'PYTHON' 2>&1
import hashlib, json, struct, sys
data = open(sys.argv[1], "rb").read()
size = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + size])
body = data[8 + size:]
digest = hashlib.sha256()
tensors = 0
for name in sorted(header):
    entry = header[name]
    if name == "__metadata__":
        digest.update(json.dumps([name, entry], sort_keys=True).encode())
        continue
    start, end = entry["data_offsets"]
    digest.update(json.dumps([name, entry["dtype"], entry["shape"]]).encode())
    digest.update(body[start:end])
    tensors += 1
print(f"{tensors} tensors, content sha256 {digest.hexdigest()},", end="")
PYTHON
}

# files NAME PATH...: a step that records what the binary wrote at PATHs (see describe).
files() {
    local name=$1 base path
    shift
    next_base "files-$name"
    base=$BASE
    for path in "$@"; do
        describe "$path"
    done >"$base.out" 2>"$base.err"
    echo 0 >"$base.rc"
}

# paused NAME STAGE STEP -- ARGS...: runs BIN ARGS in the background with the checkpoint
# write after step STEP paused at STAGE (ROFORMER_PAUSE_CHECKPOINT, the hook of
# tests/cli/kill_resume.rs), kills it with SIGKILL once it has paused, and records its
# exit status and whether it paused (`137 paused` when all went as planned).
paused() {
    local name=$1 stage=$2 at=$3 base marker pid rc ticks=0 state
    shift 4
    next_base "$name"
    base=$BASE
    marker=$WORK/$name.paused
    rm -f "$marker"
    (cd "$WORK" && ROFORMER_PAUSE_CHECKPOINT="$stage:$at:$marker" exec "$BIN" "$@" \
        </dev/null >"$base.out" 2>"$base.err") &
    pid=$!
    while [ ! -e "$marker" ] && kill -0 "$pid" 2>/dev/null && [ "$ticks" -lt $((TIMEOUT * 10)) ]; do
        sleep 0.1
        ticks=$((ticks + 1))
    done
    # The marker is written just before the process parks; give it that moment.
    [ -e "$marker" ] && sleep 0.2
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rc=$?
    state=ran-through
    [ -e "$marker" ] && state=paused
    echo "$rc $state" >"$base.rc"
}

# The coordinator cases: one coordinator on PORT (listening until this function stops it
# with SIGTERM; its output and status are a step), and a second one refused the port.
coordinator_cases() {
    local base pid ticks=0 rc
    next_base coordinator-listening
    base=$BASE
    (cd "$WORK" && exec "$BIN" coordinator --port "$PORT" \
        </dev/null >"$base.out" 2>"$base.err") &
    pid=$!
    while ! grep -q listening "$base.err" 2>/dev/null && kill -0 "$pid" 2>/dev/null \
        && [ "$ticks" -lt 300 ]; do
        sleep 0.1
        ticks=$((ticks + 1))
    done
    step coordinator-port-taken coordinator --port "$PORT"
    kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rc=$?
    echo "$rc" >"$base.rc"
}

# ---------------------------------------------------------------------------------------
# Inputs, written afresh into each side's work folder (so both sides read equal files)

WORDS=(the quick brown fox jumps over lazy dog to be or not that is question all world a
    stage and men women merely players)
THINGS=(fox dog stage world question)
RANDOM_STATE=1

# A MINSTD draw in 0..$1-1 into DRAW (deterministic, integer arithmetic only).
draw() {
    RANDOM_STATE=$(((RANDOM_STATE * 48271) % 2147483647))
    DRAW=$((RANDOM_STATE % $1))
}

# word_sets FILE COUNT SEED: labelled lines {"text", "label"} as tests/common's
# write_word_set_examples makes them: five words of the label's half of WORDS, two from
# anywhere.
word_sets() {
    local file=$1 count=$2 i j label half_start half_len text
    RANDOM_STATE=$3
    : >"$file"
    for ((i = 0; i < count; i++)); do
        if ((i % 2 == 0)); then
            label=first half_start=0
        else
            label=second half_start=$((${#WORDS[@]} / 2))
        fi
        half_len=$((${#WORDS[@]} / 2))
        text=''
        for ((j = 0; j < 5; j++)); do
            draw "$half_len"
            text+="${WORDS[half_start + DRAW]} "
        done
        for ((j = 0; j < 2; j++)); do
            draw "${#WORDS[@]}"
            text+="${WORDS[DRAW]} "
        done
        printf '{"text": "%s", "label": "%s"}\n' "${text% }" "$label" >>"$file"
    done
}

# tagged FILE COUNT SEED: token-classification lines in the fields a default config reads
# ("text" split at whitespace, "labels"): 4 to 9 words, THINGS tagged B-THING / I-THING.
tagged() {
    local file=$1 count=$2 i j len word text labels previous
    RANDOM_STATE=$3
    : >"$file"
    for ((i = 0; i < count; i++)); do
        draw 6
        len=$((4 + DRAW))
        text='' labels='' previous=O
        for ((j = 0; j < len; j++)); do
            draw 3
            if ((DRAW == 0)); then
                draw "${#THINGS[@]}"
                word=${THINGS[DRAW]}
            else
                draw "${#WORDS[@]}"
                word=${WORDS[DRAW]}
            fi
            case " ${THINGS[*]} " in
                *" $word "*)
                    if [ "$previous" = O ]; then previous=B-THING; else previous=I-THING; fi ;;
                *) previous=O ;;
            esac
            text+="$word "
            labels+="\"$previous\", "
        done
        printf '{"text": "%s", "labels": [%s]}\n' "${text% }" "${labels%, }" >>"$file"
    done
}

# The tests' small config (tests/common small_config_toml), two layers: CORPUS STEPS EVERY.
small_config() {
    cat <<EOF
[model]
vocab_size = 300
hidden_size = 32
num_hidden_layers = 2
num_attention_heads = 2
intermediate_size = 64
max_position_embeddings = 64
hidden_dropout_prob = 0.1
attention_probs_dropout_prob = 0.1

[data]
corpus = "$1"
validation_works = ["sonnets.txt"]
max_seq_len = 24

[tokenizer]
min_frequency = 1

[training]
batch_size = 16
learning_rate = 1e-2
warmup_steps = 5
steps = $2
eval_every = $3
checkpoint_every = $3
seed = 7
EOF
}

# A fine-tuning config (tests/common finetune_config_toml): TYPE INIT TRAIN VALID STEPS EVERY.
finetune_config() {
    cat <<EOF
[task]
type = "$1"
init_from = "$2"
max_seq_len = 16

[data]
train = "$3"
validation = "$4"

[training]
batch_size = 16
learning_rate = 1e-2
warmup_steps = 5
weight_decay = 0.0
steps = $5
eval_every = $6
checkpoint_every = $6
seed = 3
EOF
}

write_inputs() {
    local work
    # Three short works cut from the corpus (tests/common write_small_corpus), and the
    # same with a fourth and a works.tsv for `passages`.
    mkdir -p corpus corpus-genres
    for work in macbeth.txt tempest.txt sonnets.txt; do
        sed -n '101,500p' "$SHAKESPEARE/$work" >"corpus/$work"
        cp "corpus/$work" "corpus-genres/$work"
    done
    sed -n '101,500p' "$SHAKESPEARE/hamlet.txt" >corpus-genres/hamlet.txt
    printf 'file\tgenre\n%s\ttragedy\n%s\tcomedy\n%s\tpoetry\n%s\ttragedy\n' \
        macbeth.txt tempest.txt sonnets.txt hamlet.txt >corpus-genres/works.tsv

    small_config corpus 40 10 >small.toml
    small_config corpus 4 2 | sed 's/^seed = 7$/seed = 7\noutput_dir = "run4"/' >good.toml
    small_config corpus 2 2 \
        | sed 's/^attention_probs_dropout_prob = 0.1$/&\nposition_embedding_type = "absolute"/' \
        >absolute.toml
    small_config corpus 6 3 | sed 's/_dropout_prob = 0.1$/_dropout_prob = 0.0/' >nodrop.toml
    sed 's/batch_size/batchsize/' good.toml >typo.toml
    sed 's/max_seq_len = 24/max_seq_len = 4096/' good.toml >too_long.toml
    sed 's#^corpus = "corpus"#corpus = "/nonexistent/corpus"#' good.toml >no_corpus.toml
    printf '[model\nvocab_size = 3' >not_toml.toml

    word_sets cls-train.jsonl 64 1
    word_sets cls-valid.jsonl 16 2
    tagged tag-train.jsonl 64 1
    tagged tag-valid.jsonl 16 2
    finetune_config sequence-classification run cls-train.jsonl cls-valid.jsonl 30 10 >cls.toml
    finetune_config token-classification run tag-train.jsonl tag-valid.jsonl 30 10 >tag.toml
    sed 's/^seed = 3$/seed = 3\nbatchsize = 4/' cls.toml >cls-typo.toml
    finetune_config sequence-classification run genres/train.jsonl genres/validation.jsonl 30 10 \
        >genres.toml

    printf '%s\n' '{"text": "the quick brown fox jumps over the lazy dog"}' \
        '{"text": "to be or not to be"}' \
        '{"text": "all the world is a stage and all the men and women merely players"}' \
        >cls-in.jsonl
    printf '%s\n' '{"words": ["the", "fox", "is", "a", "question"]}' \
        '{"text": "all the world is a stage"}' \
        '{"text": "dog world to be or not"}' >tag-in.jsonl
    printf '%s\n' 'To be, or not to be, that is the question:' \
        'Good morrow, my lord.' '' 'Our revels now are ended.' >embed.txt
    printf '%s\n' '{"input_ids": [2, 40, 41, 42, 3]}' 'thou art more lovely' >embed-mixed.txt
    printf '%s\n' '{"text": "Shall I compare thee to a summer'"'"'s day?"}' \
        '{"text": "Fair is foul, and foul is fair"}' >encode-text.jsonl
    printf '%s\n' '{"input_ids": [2, 17, 18, 19, 3]}' \
        '{"input_ids": [2, 20, 21, 3], "attention_mask": [1, 1, 1, 1], "token_type_ids": [0, 0, 0, 0]}' \
        >encode-ids.jsonl
    sed -n '501,560p' "$SHAKESPEARE/macbeth.txt" >eval.txt

    # Bad inputs (tests/cli/bad_input.rs).
    printf '%s\n' '{"input_ids": [2, 99999, 3]}' >bad_id.jsonl
    printf '%s\n' '{"input_ids": [2, 5, 3]}' '{"input_ids": [2, ' >bad_json.jsonl
    printf '%s\n' '{"input_ids": [2, 5, 3], "attention_mask": [1, 2, 1]}' >bad_mask.jsonl
    printf '%s\n' '{"input_ids": [2, 5, 3], "attention_mask": [1, 1]}' >short_mask.jsonl
    printf '%s\n' '{"text": "to be or not"}' >text.jsonl
    printf '\n  \n' >empty.txt
    printf '%s\n' '{"text": "a", "label": "first"}' '{"text": "b"}' >bad-labels.jsonl
    finetune_config sequence-classification run bad-labels.jsonl cls-valid.jsonl 4 2 \
        >bad-labels.toml
}

# ---------------------------------------------------------------------------------------
# The commands

run_commands() {
    local sub
    # The command line itself.
    step help --help
    step help-short -h
    step version --version
    step version-short -V
    step no-arguments
    step help-subcommand help
    step help-subcommand-train help train
    for sub in train coordinator finetune classify tag baseline passages fill-mask eval-mlm \
        embed similarity encode bench import export-hf; do
        step "help-$sub" "$sub" --help
    done
    step unknown-command trian
    step unknown-flag fill-mask --bogus
    step unknown-flag-train train --config small.toml --bogus

    # Pretraining: a fresh run; the same run paused in a checkpoint write, killed and
    # resumed; a finished run resumed; a run into the config's output_dir.
    step train train --config small.toml --output run
    files train-run run
    paused train-paused records 20 -- train --config small.toml --output paused
    files train-paused paused/metrics.jsonl paused/checkpoint paused/checkpoint.tmp
    step train-resume train --resume paused
    files train-resumed paused
    step train-resume-finished train --resume paused
    files train-resumed-finished paused/model.safetensors paused/metrics.jsonl
    step train-default-output train --config good.toml
    files train-default-output run4/metrics.jsonl run4/model.safetensors
    step train-absolute train --config absolute.toml --output absolute
    step train-devices-2 train --config nodrop.toml --output run-2 --devices 2
    files train-devices-2 run-2/metrics.jsonl run-2/model.safetensors
    mkdir -p "$WORK/bare"
    cp "$WORK/run/config.json" "$WORK/run/model.safetensors" "$WORK/bare/" 2>/dev/null

    # Inference on the run.
    step fill-mask fill-mask --model run "To be or not to [MASK], that is the question."
    step fill-mask-json fill-mask --model run --json "Good [MASK], my [MASK]."
    step fill-mask-top-k fill-mask --model run --top-k 2 "the [MASK] of the world"
    step fill-mask-long fill-mask --model run \
        "the [MASK] is here $(printf 'and so %.0s' {1..60})"
    step embed embed --model run --input embed.txt
    step embed-json embed --model run --input embed.txt --json
    step embed-cls embed --model run --input embed.txt --pooling cls --json
    step embed-stdin --stdin embed.txt embed --model run
    step embed-mixed embed --model run --input embed-mixed.txt
    step embed-ids-bare --stdin encode-ids.jsonl embed --model bare --json
    step similarity similarity --model run "Good morrow, my lord." "Good night, sweet prince."
    step similarity-cls similarity --model run --pooling cls "to be" "not to be"
    step encode encode --model run --input encode-text.jsonl --output encoded.safetensors
    step encode-ids encode --model bare --input encode-ids.jsonl --output encoded-ids.safetensors
    step encode-mlm-logits encode --model run --input encode-text.jsonl \
        --output encoded-logits.safetensors --mlm-logits
    files encode encoded.safetensors encoded-ids.safetensors encoded-logits.safetensors
    step eval-mlm eval-mlm --model run --seq 8,16,24,48 --tokens 600
    step eval-mlm-json eval-mlm --model run --seq 8,16,24,48 --tokens 600 --json
    step eval-mlm-text eval-mlm --model run --text eval.txt --seq 16,48 --scaling ntk \
        --tokens 300 --seed 3 --batch 4
    step eval-mlm-yarn-json eval-mlm --model run --text eval.txt --seq 24,96 --scaling yarn \
        --trained-length 24 --tokens 300 --json
    step eval-mlm-defaults eval-mlm --model run --tokens 200
    step eval-mlm-absolute eval-mlm --model absolute --text eval.txt --seq 16,48,96 --tokens 300

    # Hugging Face layout and back.
    step export-hf export-hf --model run --output hf
    files export-hf hf
    step import import --from hf --to imported
    files import imported
    step fill-mask-imported fill-mask --model imported --json "Good [MASK], my lord."
    step fill-mask-hf fill-mask --model hf "Good [MASK], my lord."

    # Throughput (figures normalised; shapes, parameters and FLOPs compared).
    step bench bench --config small.toml --batch 2 --seq 8,12 --steps 1 --warmup 0
    step bench-json bench --config small.toml --batch 2 --seq 8 --steps 1 --warmup 0 --json
    step bench-train bench --config small.toml --batch 2 --seq 8 --steps 1 --warmup 0 --train
    step bench-products bench --config small.toml --batch 2 --seq 8 --steps 1 --warmup 0 \
        --products
    step bench-products-json bench --config small.toml --batch 2 --seq 8,12 --steps 1 \
        --warmup 0 --products --json

    # Genre passages: of the built-in corpus, and of a small corpus with a works.tsv.
    step passages passages --output passages-builtin
    files passages passages-builtin
    step passages-corpus passages --output genres --corpus corpus-genres --words 100 \
        --validation-works hamlet.txt
    files passages-corpus genres

    # Fine-tuning: sequence classification (fresh; paused and resumed) and tagging.
    step baseline baseline --config cls.toml
    step baseline-genres baseline --config genres.toml
    step baseline-tagging baseline --config tag.toml
    step finetune-cls finetune --config cls.toml --output cls
    files finetune-cls cls
    paused finetune-cls-paused records 20 -- finetune --config cls.toml --output cls-paused
    step finetune-cls-resume finetune --resume cls-paused
    files finetune-cls-resumed cls-paused/metrics.jsonl cls-paused/scores.json \
        cls-paused/model.safetensors
    step finetune-tag finetune --config tag.toml --output tagger
    files finetune-tag tagger

    step classify classify --model cls "the quick brown fox jumps over the lazy dog"
    step classify-json classify --model cls --json "all the world is a stage"
    step classify-top-k classify --model cls --top-k 1 "to be or not to be"
    step classify-pair classify --model cls "to be or not" "that is the question"
    step classify-input classify --model cls --input cls-in.jsonl --output cls-out.jsonl
    files classify-input cls-out.jsonl
    step tag tag --model tagger "the fox is a question of the world stage"
    step tag-json tag --model tagger --json "all the world is a stage and the dog"
    step tag-input tag --model tagger --input tag-in.jsonl --output tag-out.jsonl
    files tag-input tag-out.jsonl
    step tag-long tag --model tagger "$(printf 'the fox and the dog %.0s' {1..12})"
    step export-hf-cls export-hf --model cls --output hf-cls
    step export-hf-tagger export-hf --model tagger --output hf-tagger
    files export-hf-classifiers hf-cls hf-tagger
    step import-cls import --from hf-cls --to cls-imported
    step classify-imported classify --model cls-imported --json "to be or not to be"
    step import-tagger import --from hf-tagger --to tagger-imported
    step tag-imported tag --model tagger-imported "the fox is a question"

    # Bad input: each should be one `error:` line and a non-zero status, changing nothing.
    step bad-train-missing-config train --config /nonexistent.toml
    step bad-train-not-toml train --config not_toml.toml
    step bad-train-unknown-key train --config typo.toml
    step bad-train-seq-past-positions train --config too_long.toml
    step bad-train-missing-corpus train --config no_corpus.toml --output nocorpus-run
    step bad-train-output-holds-run train --config small.toml --output run
    step bad-train-default-output-holds-run train --config good.toml
    step bad-train-resume-nothing train --resume /nonexistent/run
    step bad-train-neither train
    step bad-train-config-and-resume train --config small.toml --resume run
    step bad-train-devices-past-batch train --config good.toml --devices 999
    step bad-train-rank-past-nodes train --config good.toml --nodes 2 --rank 2 \
        --coordinator 127.0.0.1:4100 --address 127.0.0.1:4101
    step bad-train-nodes-no-coordinator train --config good.toml --nodes 2
    step bad-train-bf16 train --config good.toml --precision bf16 --output precision-run
    step bad-train-f16-replicas train --config good.toml --devices 2 --precision f16
    step bad-train-precision-name train --config good.toml --precision fp8
    step bad-fill-mask-missing-model fill-mask --model /nonexistent/model "a [MASK]"
    step bad-fill-mask-no-mask fill-mask --model run "no mask here"
    step bad-fill-mask-empty-text fill-mask --model run ""
    step bad-fill-mask-top-k-0 fill-mask --model run --top-k 0 "a [MASK]"
    step bad-fill-mask-no-tokenizer fill-mask --model bare "a [MASK]"
    step bad-fill-mask-no-model-arg fill-mask "a [MASK]"
    step bad-fill-mask-bf16 fill-mask --model run --precision bf16 "a [MASK]"
    step bad-embed-missing-input embed --model run --input /nonexistent.txt
    step bad-embed-empty-input embed --model run --input empty.txt
    step bad-embed-empty-stdin embed --model run
    step bad-embed-id-outside-vocab embed --model run --input bad_id.jsonl
    step bad-embed-no-tokenizer embed --model bare --input text.jsonl
    step bad-embed-precision-name embed --model run --precision fp8
    step bad-similarity-missing-model similarity --model /nonexistent/model a b
    step bad-similarity-no-tokenizer similarity --model bare a b
    step bad-similarity-pooling similarity --model run --pooling max a b
    step bad-similarity-one-text similarity --model run a
    step bad-similarity-empty-text similarity --model run "" ""
    step bad-encode-missing-input encode --model run --input /nonexistent.jsonl --output out.safetensors
    step bad-encode-id-outside-vocab encode --model run --input bad_id.jsonl --output out.safetensors
    step bad-encode-malformed encode --model run --input bad_json.jsonl --output out.safetensors
    step bad-encode-mask-values encode --model run --input bad_mask.jsonl --output out.safetensors
    step bad-encode-mask-length encode --model run --input short_mask.jsonl --output out.safetensors
    step bad-encode-no-tokenizer encode --model bare --input text.jsonl --output out.safetensors
    step bad-encode-output-folder encode --model run --input text.jsonl \
        --output no/such/dir/out.safetensors
    step bad-eval-mlm-short-seq eval-mlm --model run --seq 2
    step bad-eval-mlm-trained-length-0 eval-mlm --model run --trained-length 0
    step bad-eval-mlm-missing-text eval-mlm --model run --text /nonexistent.txt
    step bad-eval-mlm-no-mlm-head eval-mlm --model cls --text eval.txt --seq 16
    step bad-eval-mlm-scaling eval-mlm --model run --scaling cubic
    step bad-eval-mlm-f16 eval-mlm --model run --precision f16
    step bad-classify-not-classifier classify --model run a
    step bad-classify-missing-model classify --model /nonexistent/model a
    step bad-classify-top-k-0 classify --model cls --top-k 0 a
    step bad-classify-empty-text classify --model cls ""
    step bad-classify-input-without-output classify --model cls --input cls-in.jsonl
    step bad-classify-input-and-text classify --model cls --input cls-in.jsonl \
        --output x.jsonl a
    step bad-classify-missing-input classify --model cls --input /nonexistent.jsonl \
        --output x.jsonl
    step bad-classify-malformed-input classify --model cls --input bad_json.jsonl \
        --output x.jsonl
    step bad-classify-no-text classify --model cls
    step bad-tag-not-tagger tag --model run a
    step bad-tag-classifier tag --model cls a
    step bad-tag-no-words tag --model tagger "  "
    step bad-tag-empty-text tag --model tagger ""
    step bad-tag-input-line tag --model tagger --input bad_json.jsonl --output out.jsonl
    step bad-tag-missing-input tag --model tagger --input /nonexistent.jsonl --output out.jsonl
    step bad-finetune-missing-config finetune --config /nonexistent/finetune.toml
    step bad-finetune-unknown-key finetune --config cls-typo.toml
    step bad-finetune-output-holds-run finetune --config cls.toml --output cls
    step bad-finetune-resume-nothing finetune --resume /nonexistent/run
    step bad-finetune-neither finetune
    step bad-finetune-bad-labels finetune --config bad-labels.toml --output bad-labels-run
    step bad-baseline-missing-config baseline --config /nonexistent/finetune.toml
    step bad-baseline-train-config baseline --config small.toml
    step bad-passages-no-words passages --output out --words 0
    step bad-passages-no-works-tsv passages --output out --corpus corpus
    step bad-passages-missing-corpus passages --output out --corpus /nonexistent/corpus
    step bad-passages-unknown-work passages --output out --corpus corpus-genres \
        --validation-works nosuch.txt
    step bad-import-from-nothing import --from /nonexistent/hf --to imported-x
    step bad-import-onto-model import --from run --to hf
    step bad-export-onto-model export-hf --model run --output hf
    step bad-export-absolute export-hf --model absolute --output nowhere
    step bad-export-no-model export-hf --model empty.txt --output nowhere
    step bad-bench-missing-config bench --config /nonexistent.toml
    step bad-bench-unknown-key bench --config typo.toml --steps 1 --warmup 0
    step bad-bench-batch-0 bench --config good.toml --batch 0
    step bad-bench-products-train bench --config good.toml --products --train
    step bad-bench-seq-not-number bench --config good.toml --seq 12x
    step bad-bench-bf16-train bench --config good.toml --train --precision bf16
    step bad-coordinator-port-not-number coordinator --port abc
    step bad-coordinator-port-out-of-range coordinator --port 70000
    step bad-coordinator-no-port coordinator
    coordinator_cases

    # Nothing a refused command touched changed, and it left nothing behind.
    files after-bad-input run hf cls tagger out out.safetensors out.jsonl x.jsonl imported-x \
        nowhere precision-run bad-labels-run nocorpus-run no
}

# run_side SIDE BINARY: the whole script with one binary.
run_side() {
    local side=$1
    BIN=$2
    OUT=$WORKDIR/$side
    WORK=$WORKDIR/$side-work
    COUNT=0
    rm -rf "$OUT" "$WORK"
    mkdir -p "$OUT" "$WORK"
    (cd "$WORK" && write_inputs)
    local started=$SECONDS
    run_commands
    echo "ran $COUNT commands with the $side binary in $((SECONDS - started)) s" >&2
}

# ---------------------------------------------------------------------------------------
# Normalising and comparing

# $1 as a literal in a sed ERE with `#` as delimiter.
literal() {
    printf '%s' "$1" | sed -e 's/[][\\.*^$+?(){}|#]/\\&/g'
}

# normalise WORK_DIR BINARY < raw > normalised
normalise() {
    local work bin number='([0-9]+(\.[0-9]+)?|inf|NaN)'
    work=$(literal "$1")
    bin=$(literal "$2")
    sed -E \
        -e "s#${work}#<WORK>#g" \
        -e "s#${bin}#<BIN>#g" \
        -e "s#$(literal "$WORKDIR")#<WORKDIR>#g" \
        -e 's#(/tmp|/var/tmp)/\.?tmp[._A-Za-z0-9-]*#<TMPDIR>#g' \
        -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z/<TIME>/g' \
        -e 's/done in [0-9]+(\.[0-9]+)? min/done in <T> min/g' \
        -e 's/ETA [0-9hms]+/ETA <ETA>/g' \
        -e "s#${number} tok/s#<N> tok/s#g" \
        -e "s#${number} tokens/s#<N> tokens/s#g" \
        -e "s#${number} ms/step#<N> ms/step#g" \
        -e "s#${number} us/token#<N> us/token#g" \
        -e "s#peak RSS (${number} MB|unknown)#peak RSS <RSS>#g" \
        -e "s#= ${number} GFLOP/s#= <N> GFLOP/s#g" \
        -e "s#: +${number} ms each, +${number} GFLOP/s#: <N> ms each, <N> GFLOP/s#g" \
        -e "s#all products of the step: ${number} ms#all products of the step: <N> ms#g" \
        -e 's/("(tokens_per_second|ms_per_step|peak_rss_mb|ms|gflops)": ?)(null|-?[0-9][0-9.eE+-]*|inf|NaN)/\1<N>/g' \
        -e '/^step ([0-9]+)\/\1 /!{/^step [0-9]+\/[0-9]+ /d}'
}

compare() {
    local names name ext same=0 differ=0 total=0 verdict
    rm -rf "$WORKDIR/norm" "$WORKDIR/diff"
    mkdir -p "$WORKDIR/norm/old" "$WORKDIR/norm/new" "$WORKDIR/diff"
    names=$( (cd "$WORKDIR/old" && ls; cd "$WORKDIR/new" && ls) 2>/dev/null \
        | sed -E 's/\.(out|err|rc)$//' | LC_ALL=C sort -u)
    for name in $names; do
        total=$((total + 1))
        verdict=same
        for ext in rc out err; do
            for side in old new; do
                local raw=$WORKDIR/$side/$name.$ext bin=$OLD_BIN
                [ "$side" = new ] && bin=$NEW_BIN
                if [ -f "$raw" ]; then
                    normalise "$WORKDIR/$side-work" "$bin" <"$raw" >"$WORKDIR/norm/$side/$name.$ext"
                else
                    echo "<no capture $name.$ext>" >"$WORKDIR/norm/$side/$name.$ext"
                fi
            done
            if ! diff -u --label "old/$name.$ext" --label "new/$name.$ext" \
                "$WORKDIR/norm/old/$name.$ext" "$WORKDIR/norm/new/$name.$ext" \
                >>"$WORKDIR/diff/$name.diff"; then
                verdict=DIFFERS
            fi
        done
        if [ "$verdict" = same ]; then
            same=$((same + 1))
            rm -f "$WORKDIR/diff/$name.diff"
            printf '%-48s same\n' "$name"
        else
            differ=$((differ + 1))
            printf '%-48s DIFFERS (%s)\n' "$name" "$WORKDIR/diff/$name.diff"
        fi
    done
    echo "$total commands: $same same, $differ differ"
    [ "$differ" -eq 0 ]
}

echo "work directory: $WORKDIR (old: $OLD_ARG, new: $NEW_ARG)" >&2
run_side old "$OLD_BIN"
run_side new "$NEW_BIN"
compare
exit $?
