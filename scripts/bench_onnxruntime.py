#!/usr/bin/env python3
"""ONNX Runtime half of the side-by-side benchmark (`scripts/bench_vs_onnxruntime.sh`).

    python scripts/bench_onnxruntime.py --config configs/small.toml --batch 8 --seq 128
        [--encoder-only] [--steps N] [--warmup N] [--threads T]

Builds the same HF model as `scripts/bench_pytorch.py` (`RoFormerForMaskedLM`, or
`RoFormerModel` with `--encoder-only`, from the TOML `[model]` table, seed 0), exports it
with `torch.onnx.export` (opset 17, batch and sequence axes dynamic, inputs `input_ids` and
`attention_mask` as the PyTorch side passes them), checks ONNX Runtime's output on the
benchmark's input against PyTorch's (max abs difference at most 1e-4 of the largest
value, else exit 1; model, export and reference run in a child process, so the peak memory
is ONNX Runtime's), and times `InferenceSession.run` on the CPU with `--threads`
intra-op threads, one inter-op thread and every graph optimisation (ORT_ENABLE_ALL), as
Hugging Face optimum and text-embeddings-inference's ONNX backend run it. Prints one JSON
line in the schema of `roformer bench --json`, with `max_abs_diff_vs_pytorch` added.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

# The export's imports (torch, transformers, scripts/bench_pytorch.py) happen in the child
# process only, so that they do not count in the measured process's memory.
OPSET = 17
# ONNX Runtime's output against PyTorch's, relative to the largest PyTorch value.
RELATIVE_TOLERANCE = 1e-4


def export(model, input_ids, attention_mask, path):
    """Writes `model` as ONNX with dynamic batch and sequence axes."""
    import warnings

    import torch

    dynamic = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's tracer warnings about HF's code
        torch.onnx.export(
            model,
            (input_ids, attention_mask),
            path,
            input_names=["input_ids", "attention_mask"],
            output_names=["output"],
            dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "output": dynamic},
            opset_version=OPSET,
            dynamo=False,
        )


def session(path, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def export_with_reference(args, out_dir):
    """Builds the HF model, runs it on the benchmark's input and exports it: `model.onnx`,
    `input_ids.npy`, PyTorch's output `expected.npy` and `meta.json` in `out_dir`."""
    import tomllib

    import torch
    from transformers import RoFormerForMaskedLM, RoFormerModel

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_pytorch import INFERENCE_TOKENS, MIN_STEPS, SEED, build_config, flops_per_token

    with open(args.config, "rb") as f:
        model_table = tomllib.load(f).get("model", {})
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    config = build_config(model_table, args.seq, train=False)
    model_class = RoFormerModel if args.encoder_only else RoFormerForMaskedLM
    model = model_class._from_config(config, attn_implementation="eager").float().eval()
    generator = torch.Generator().manual_seed(SEED)
    input_ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    with torch.inference_mode():
        expected = model(input_ids=input_ids, attention_mask=attention_mask)[0].numpy()
    export(model, input_ids, attention_mask, os.path.join(out_dir, "model.onnx"))
    np.save(os.path.join(out_dir, "input_ids.npy"), input_ids.numpy())
    np.save(os.path.join(out_dir, "expected.npy"), expected)
    tokens_per_step = args.batch * args.seq
    meta = {
        "steps": args.steps or max(MIN_STEPS, round(INFERENCE_TOKENS / tokens_per_step)),
        "torch": torch.__version__,
        "params": sum(p.numel() for p in model.parameters()),
        "largest": float(np.abs(expected).max()),
        "flops_per_token": flops_per_token(
            config.vocab_size, config.hidden_size, config.num_hidden_layers,
            config.intermediate_size, config.embedding_size, args.seq, False,
            args.encoder_only,
        ),
    }
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="TOML file with a [model] table")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--seq", type=int, required=True)
    parser.add_argument("--encoder-only", action="store_true",
                        help="RoFormerModel's last hidden state instead of the logits")
    parser.add_argument("--steps", type=int,
                        help="timed steps (default: about 16k tokens, as bench_pytorch.py)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="ONNX Runtime intra-op threads (default: number of cores)")
    parser.add_argument("--device", choices=["cpu"], default="cpu")
    parser.add_argument("--precision", choices=["fp32"], default="fp32")
    parser.add_argument("--json", action="store_true",
                        help="accepted for symmetry with `roformer bench`; output is always JSON")
    parser.add_argument("--export-to", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.batch < 1 or args.seq < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--batch, --seq and --threads must be >= 1, --warmup >= 0")

    if args.export_to:
        export_with_reference(args, args.export_to)
        return
    with tempfile.TemporaryDirectory() as tmp:
        # A child process builds, runs and exports the PyTorch model, so the peak memory
        # reported here is ONNX Runtime's alone.
        subprocess.run([sys.executable, *sys.argv, "--export-to", tmp], check=True)
        with open(os.path.join(tmp, "meta.json")) as f:
            meta = json.load(f)
        feed = {"input_ids": np.load(os.path.join(tmp, "input_ids.npy"))}
        feed["attention_mask"] = np.ones_like(feed["input_ids"])
        expected = np.load(os.path.join(tmp, "expected.npy"))
        runner = session(os.path.join(tmp, "model.onnx"), args.threads)
    got = runner.run(None, feed)[0]
    difference = float(np.abs(got - expected).max())
    del expected, got
    if difference > RELATIVE_TOLERANCE * meta["largest"]:
        sys.exit(f"ONNX Runtime's output differs from PyTorch's by {difference:.3g}")

    steps = meta["steps"]
    for _ in range(args.warmup):
        runner.run(None, feed)
    start = time.perf_counter()
    for _ in range(steps):
        runner.run(None, feed)
    elapsed = time.perf_counter() - start

    tokens_per_step = args.batch * args.seq
    result = {
        "implementation": "onnxruntime",
        "backend": f"onnxruntime {ort.__version__} cpu fp32 (opset {OPSET}, torch "
                   f"{meta['torch']} export)",
        "mode": "encoder" if args.encoder_only else "inference",
        "batch": args.batch,
        "seq": args.seq,
        "threads": args.threads,
        "steps": steps,
        "tokens_per_second": tokens_per_step * steps / elapsed,
        "ms_per_step": elapsed / steps * 1000,
        # ru_maxrss is in KiB on Linux.
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "params": meta["params"],
        "flops_per_token": meta["flops_per_token"],
        "max_abs_diff_vs_pytorch": difference,
    }
    print(json.dumps(result, separators=(",", ":")))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
