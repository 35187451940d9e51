#!/usr/bin/env python3
"""Draws the plots of docs/experiments.md from the runs of scripts/experiment_*.sh.

    python3 scripts/experiment_plots.py runs/experiments docs/experiments

Writes, where the runs exist: positions-convergence.png (validation MLM loss against step
per position encoding, the mean over seeds with the seeds' range shaded),
extrapolation.png (masked-LM loss against evaluation length per encoding and scaling
rule), attention-convergence.png (the same curves for softmax and linear attention) and
attention-timing.png (inference time per token against sequence length). Needs
matplotlib; the runs are read by scripts/experiment_tables.py.
"""

import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from experiment_tables import (  # noqa: E402
    ATTENTION_RUNS,
    POSITIONS,
    load_curves,
    load_extrapolation,
    load_timing,
    mean_curve,
)


def finish(figure, axes, x_label, y_label, title, path, legend_size=None):
    """Labels, grid and legend, then writes the PNG."""
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=legend_size)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    print(f"wrote {path}")


def convergence(curves, series, title, path):
    """`series`: [(label, run name)]; draws those present."""
    series = [(label, name) for label, name in series if name in curves]
    if not series:
        return
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for label, name in series:
        seeds = curves[name]
        steps = [step for step, _ in mean_curve(seeds)]
        mean = [loss for _, loss in mean_curve(seeds)]
        low = [min(run[i][1] for run in seeds.values()) for i in range(len(steps))]
        high = [max(run[i][1] for run in seeds.values()) for i in range(len(steps))]
        (line,) = axes.plot(steps, mean, label=f"{label} ({len(seeds)} seeds)")
        axes.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
    finish(figure, axes, "training step", "validation MLM loss", title, path)


def extrapolation(results, path):
    if not results:
        return
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for (kind, rule), seeds in results.items():
        lengths = [row["length"] for row in seeds[0]]
        points = []
        for i, length in enumerate(lengths):
            values = [seed[i]["loss"] for seed in seeds if seed[i]["loss"] is not None]
            if values:
                points.append((length, sum(values) / len(values)))
        label = kind if kind != "rotary" else f"rotary, scaling {rule}"
        # Dynamic NTK equals NTK on full-length sequences: dotted, so both lines show.
        style = {"dynamic-ntk": ":"}.get(rule, "-") if kind == "rotary" else "--"
        axes.plot(*zip(*points), style, marker="o", label=label)
    axes.set_xscale("log", base=2)
    finish(
        figure,
        axes,
        "evaluation length (tokens; trained at 128)",
        "masked-LM loss ([MASK] only)",
        "Length extrapolation (mean of 3 seeds)",
        path,
        legend_size=8,
    )


def timing(rows, path):
    if not rows:
        return
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for attention, points in rows.items():
        axes.plot(*zip(*points), marker="o", label=f"{attention} attention")
    axes.set_xscale("log", base=2)
    axes.set_ylim(bottom=0)
    finish(
        figure,
        axes,
        "sequence length (tokens, batch 1)",
        "inference time per token (µs)",
        "Inference time per token, tiny model, 2-core CPU",
        path,
    )


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "runs/experiments")
    out = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "docs/experiments")
    out.mkdir(parents=True, exist_ok=True)
    curves = load_curves(root)
    convergence(
        curves,
        [(kind, f"positions-{kind}") for kind in POSITIONS],
        "MLM convergence by position encoding",
        out / "positions-convergence.png",
    )
    extrapolation({k: v for k, v in load_extrapolation(root).items() if k[0] in POSITIONS}, out / "extrapolation.png")
    convergence(
        curves,
        [(f"{attention}, {positions}", name) for (attention, positions), name in ATTENTION_RUNS.items()],
        "MLM convergence: softmax and linear attention",
        out / "attention-convergence.png",
    )
    timing(load_timing(root), out / "attention-timing.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
