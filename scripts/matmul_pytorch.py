#!/usr/bin/env python3
"""The matrix products of one `small`-config inference step at 8x128 tokens through PyTorch
(MKL on x86), on 2 threads: the counterpart of
`cargo run --release -p roformer-kernels --example machine_ceiling`, which times the same
products with the `gemm` crate the Rust kernels use.

    python scripts/matmul_pytorch.py [--threads N]

Needs torch (scripts/bench_vs_pytorch.sh makes a virtualenv with it: .venv-bench).
"""
import argparse
import time

import torch


def median_ms(f, repeats=9):
    f()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return times[len(times) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
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
