#!/usr/bin/env python3
"""PyTorch half of the side-by-side benchmark (`scripts/bench_vs_pytorch.sh` runs both).

    python scripts/bench_pytorch.py --config configs/small.toml --batch 8 --seq 128
        [--train | --encoder-only] [--steps N] [--warmup N] [--threads T] [--device cpu|cuda] [--precision fp32|bf16]

Builds `transformers.RoFormerForMaskedLM` (eager attention, fp32 weights) from the TOML
`[model]` table, which uses Hugging Face `RoFormerConfig` field names, on the CPU or a CUDA
GPU, and times the same work as `roformer bench`:

- inference: forward under `torch.inference_mode()`, vocabulary logits at every position;
- encoder (`--encoder-only`): the same with `RoFormerModel`, the last hidden state;
- train: forward + masked-LM cross-entropy on 15% of the positions + backward + AdamW step.

`--precision bf16` runs the forward (and the loss) under `torch.autocast` in bfloat16, the
usual mixed-precision setup (fp32 weights and optimizer, bf16 matrix products); on a GPU,
timing waits for the device (`torch.cuda.synchronize`) and the line also has
`peak_device_mb`, `torch.cuda.max_memory_allocated`. Timing excludes the warmup steps.
Prints one JSON line on stdout, in the schema of `roformer bench --json`:

    {"implementation":"pytorch","backend":"torch 2.x","mode":"inference","batch":8,"seq":128,
     "threads":2,"steps":16,"tokens_per_second":...,"ms_per_step":...,"peak_rss_mb":...,
     "params":...,"flops_per_token":...}
"""

import argparse
import json
import os
import resource
import sys
import time
import tomllib

import torch
from transformers import RoFormerConfig, RoFormerForMaskedLM, RoFormerModel

SEED = 0
MASK_PROBABILITY = 0.15
LEARNING_RATE = 1e-4
WEIGHT_DECAY = 0.01
# Default step counts aim at a few seconds per run: about this many tokens are timed.
INFERENCE_TOKENS = 16 * 1024
TRAIN_TOKENS = 8 * 1024
MIN_STEPS = 3


def matmul_params(vocab_size, hidden_size, num_layers, intermediate_size, embedding_size):
    """Parameters that take part in a matrix multiplication once per token (P_matmul).

    Per encoder layer: the query, key, value and attention-output projections (4*h*h) and
    the feed-forward pair (2*h*i). Plus the `embeddings_project` Linear (e*h) when
    embedding_size != hidden_size, and the masked-LM head: the transform dense (h*e) and
    the decoder tied to the word embeddings (V*e). Embedding lookups, biases and LayerNorm
    are not counted.
    """
    h, i, e, v = hidden_size, intermediate_size, embedding_size, vocab_size
    p = num_layers * (4 * h * h + 2 * h * i)
    if e != h:
        p += e * h
    p += h * e + v * e
    return p


def flops_per_token(vocab_size, hidden_size, num_layers, intermediate_size, embedding_size,
                    seq, train, encoder_only=False):
    """Model FLOPs per token of one step (the usual 2 FLOPs per multiply-add).

    inference: 2 * P_matmul + attention
    encoder:   2 * (P_matmul - h*e - V*e) + attention   (no masked-LM head)
    train:     6 * P_matmul + 3 * attention   (forward + backward, which costs twice the forward)

    where P_matmul is `matmul_params(...)` and attention = num_layers * 2 * 2 * seq * hidden:
    per token and layer, QK^T and the attention-weighted sum of V each take seq * hidden
    multiply-adds. Softmax, GELU, LayerNorm, rotary embeddings, the loss and the optimizer
    are not counted. Mirrored in Rust by `roformer bench`; keep the two in step.
    """
    p = matmul_params(vocab_size, hidden_size, num_layers, intermediate_size, embedding_size)
    attention = num_layers * 2 * 2 * seq * hidden_size
    if train:
        return float(6 * p + 3 * attention)
    if encoder_only:
        p -= hidden_size * embedding_size + vocab_size * embedding_size
    return float(2 * p + attention)


def build_config(model_table, seq, train):
    kwargs = dict(model_table)
    # HF's sinusoidal position table must cover the sequence.
    kwargs["max_position_embeddings"] = max(
        int(kwargs.get("max_position_embeddings", RoFormerConfig().max_position_embeddings)), seq
    )
    if train:
        # Dropout off in training so both implementations do the same work (roformer-rs's
        # bench does not draw dropout masks). Inference uses model.eval(), so it is off anyway.
        kwargs["hidden_dropout_prob"] = 0.0
        kwargs["attention_probs_dropout_prob"] = 0.0
    return RoFormerConfig(**kwargs)


def peak_rss_mb():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="TOML file with a [model] table")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--seq", type=int, required=True)
    parser.add_argument("--train", action="store_true", help="time training steps")
    parser.add_argument("--encoder-only", action="store_true",
                        help="time RoFormerModel's last hidden state instead of the logits")
    parser.add_argument("--steps", type=int, help="timed steps (default: about "
                        f"{INFERENCE_TOKENS} tokens for inference, {TRAIN_TOKENS} for train)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch intra-op threads (default: number of cores)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: forward and loss under torch.autocast(bfloat16)")
    parser.add_argument("--json", action="store_true",
                        help="accepted for symmetry with `roformer bench`; output is always JSON")
    args = parser.parse_args()
    if args.batch < 1 or args.seq < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--batch, --seq and --threads must be >= 1, --warmup >= 0")
    if args.train and args.encoder_only:
        parser.error("--train and --encoder-only do not go together")

    tokens_per_step = args.batch * args.seq
    steps = args.steps
    if steps is None:
        target = TRAIN_TOKENS if args.train else INFERENCE_TOKENS
        steps = max(MIN_STEPS, round(target / tokens_per_step))
    if steps < 1:
        parser.error("--steps must be >= 1")

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    device = torch.device(args.device)

    with open(args.config, "rb") as f:
        model_table = tomllib.load(f).get("model", {})

    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    config = build_config(model_table, args.seq, args.train)
    model_class = RoFormerModel if args.encoder_only else RoFormerForMaskedLM
    model = model_class._from_config(config, attn_implementation="eager").float()
    model = model.to(device)
    params = sum(p.numel() for p in model.parameters())  # the tied decoder counts once

    generator = torch.Generator().manual_seed(SEED)
    input_ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=args.precision == "bf16")

    if args.train:
        model.train()
        n_masked = max(1, round(MASK_PROBABILITY * tokens_per_step))
        masked = torch.randperm(tokens_per_step, generator=generator)[:n_masked]
        labels = torch.full((tokens_per_step,), -100, dtype=torch.long)
        labels[masked] = input_ids.reshape(-1)[masked]
        labels = labels.reshape(args.batch, args.seq).to(device)
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY
        )

        def step():
            with autocast:
                out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
            out.loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    else:
        model.eval()

        def step():
            with torch.inference_mode(), autocast:
                out = model(input_ids=input_ids, attention_mask=attention_mask)
            width = config.hidden_size if args.encoder_only else config.vocab_size
            assert out[0].shape == (args.batch, args.seq, width)

    # The steps read these at call time: on the device from here on.
    input_ids = input_ids.to(device)
    attention_mask = attention_mask.to(device)

    def wait():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    wait()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    wait()
    elapsed = time.perf_counter() - start

    result = {
        "implementation": "pytorch",
        "backend": f"torch {torch.__version__} {args.device} {args.precision}",
        "mode": "train" if args.train else "encoder" if args.encoder_only else "inference",
        "batch": args.batch,
        "seq": args.seq,
        "threads": torch.get_num_threads(),
        "steps": steps,
        "tokens_per_second": tokens_per_step * steps / elapsed,
        "ms_per_step": elapsed / steps * 1000,
        "peak_rss_mb": peak_rss_mb(),
        "params": params,
        "flops_per_token": flops_per_token(
            config.vocab_size,
            config.hidden_size,
            config.num_hidden_layers,
            config.intermediate_size,
            config.embedding_size,
            args.seq,
            args.train,
            args.encoder_only,
        ),
    }
    if device.type == "cuda":
        result["peak_device_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(result, separators=(",", ":")))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
