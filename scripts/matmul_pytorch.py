#!/usr/bin/env python3
"""Matrix products through PyTorch, set beside ours.

Without --products: the products of one `small`-config inference step at 8x128 tokens on
the CPU (MKL on x86), on 2 threads: the counterpart of
`cargo run --release -p roformer-kernels --example machine_ceiling`, which times the same
products with the `gemm` crate the Rust kernels use.

With --products FILE: the products `roformer bench --products --json` timed on its build's
backend (FILE holds its lines), each timed again through torch.matmul with the same shapes
and precision on --device, side by side, with their totals in a step. In f32 on CUDA both
PyTorch's strict fp32 (its default) and TF32 are timed: cubecl's CUDA matrix products take
f32 inputs as TF32.

    python scripts/matmul_pytorch.py [--threads N]
    roformer bench --config configs/base.toml --batch 32 --seq 512 --products --json > p.jsonl
    python scripts/matmul_pytorch.py --products p.jsonl --device cuda

Needs torch (scripts/bench_vs_pytorch.sh makes a virtualenv with it: .venv-bench).
"""
import argparse
import json
import time

import torch


def median_ms(f, repeats=9, sync=lambda: None):
    f()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return times[len(times) // 2]


DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def compare_products(path, device):
    """Times each product of `roformer bench --products --json` (the lines of `path`) with
    torch.matmul on `device`, and prints both sides and the totals of a step."""
    with open(path) as lines:
        ours = [json.loads(line) for line in lines if line.startswith("{")]
    ours = [p for p in ours if p.get("mode") == "product"]
    if not ours:
        raise SystemExit(f"{path}: no product lines of `roformer bench --products --json`")
    steps = {(p["sequences"], p["seq"], p["precision"]) for p in ours}
    if len(steps) > 1:
        raise SystemExit(f"{path}: products of {len(steps)} steps (sequences, seq, precision: "
                         f"{sorted(steps)}); the totals need one, from a single --seq")
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    precision = ours[0]["precision"]
    variants = [("torch", False)]
    if cuda and precision == "f32":
        variants = [("torch fp32", False), ("torch tf32", True)]
    first = ours[0]
    print(f"{first['backend']} {precision} against torch {torch.__version__} on {device}, "
          f"products of an inference step at {first['sequences']}x{first['seq']}; ms per call:")
    header = "".join(f"{label:>12}" for label, _ in variants)
    print(f"  {'product':26} {'ours':>10}{header}")
    totals = [0.0] * (1 + len(variants))
    with torch.inference_mode():
        for p in ours:
            shape_a, shape_b = (p["batch"], p["m"], p["k"]), (p["batch"], p["k"], p["n"])
            dtype = DTYPES[p["precision"]]
            a = torch.rand(shape_a, device=device, dtype=dtype)
            b = torch.rand(shape_b, device=device, dtype=dtype)
            row = [p["ms"]]
            for _, tf32 in variants:
                if cuda:
                    torch.backends.cuda.matmul.allow_tf32 = tf32
                row.append(median_ms(lambda: torch.matmul(a, b), sync=sync))
            for i, ms in enumerate(row):
                totals[i] += ms * p["per_step"]
            cells = "".join(f"{ms:12.3f}" for ms in row[1:])
            print(f"  {p['name']:26} {row[0]:10.3f}{cells}  x{p['per_step']}")
    cells = "".join(f"{ms:12.2f}" for ms in totals[1:])
    print(f"  {'all products of the step':26} {totals[0]:10.2f}{cells}")
    ratios = ", ".join(f"{label} {total / totals[0]:.2f}"
                       for (label, _), total in zip(variants, totals[1:]))
    print(f"ratio of the step's products, torch time / ours: {ratios}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--products", metavar="FILE",
                        help="the lines of `roformer bench --products --json` to compare with")
    parser.add_argument("--device", default="cpu", help="torch device for --products "
                        "(default cpu)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.products:
        compare_products(args.products, args.device)
        return
    batch, seq, hidden, intermediate, vocab, heads, layers = 8, 128, 256, 1024, 8000, 4, 4
    rows = batch * seq
    products = [
        ("q/k/v/output projections", rows, hidden, hidden, 4 * layers),
        ("feed-forward expansion", rows, hidden, intermediate, layers),
        ("feed-forward contraction", rows, intermediate, hidden, layers),
        ("head dense", rows, hidden, hidden, 1),
        ("vocabulary projection", rows, hidden, vocab, 1),
    ]
    print(f"torch {torch.__version__}, {args.threads} threads")
    total = 0.0
    with torch.inference_mode():
        for name, m, k, n, count in products:
            a, b = torch.rand(m, k), torch.rand(k, n)
            ms = median_ms(lambda: torch.mm(a, b))
            total += ms * count
            print(f"  {name:26} [{m},{k}]x[{k},{n}] x{count:2}: {ms:7.3f} ms each, "
                  f"{2 * m * k * n / ms / 1e6:4.0f} GFLOP/s")
        d = hidden // heads
        q, k_t = torch.rand(batch * heads, seq, d), torch.rand(batch * heads, d, seq)
        ms = median_ms(lambda: torch.bmm(torch.bmm(q, k_t), q))
        total += ms * layers
        flops = 4 * batch * heads * seq * seq * d
        print(f"  {'attention scores, context':26} {batch * heads} heads x{layers}: "
              f"{ms:7.3f} ms each, {flops / ms / 1e6:4.0f} GFLOP/s")
    print(f"  all products of the step: {total:.1f} ms")


if __name__ == "__main__":
    main()
