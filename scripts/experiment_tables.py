#!/usr/bin/env python3
"""Prints the tables of docs/experiments.md from the runs of scripts/experiment_positions.sh.

    python3 scripts/experiment_tables.py runs/experiments

Experiment 1: per position encoding, the final validation MLM loss and accuracy (mean and
standard deviation over seeds), and the first evaluated step at which the mean curve
reaches the absolute-position runs' mean final loss. Experiment 2: masked-LM loss by
evaluation length (mean over seeds), per encoding and, for rotary, per scaling rule.
Standard library only.
"""

import json
import pathlib
import re
import statistics
import sys
from collections import defaultdict


def mean_std(values):
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "runs/experiments")
    curves = defaultdict(dict)  # kind -> seed -> [(step, loss, accuracy)]
    for run in sorted(root.glob("positions-*-seed*")):
        match = re.fullmatch(r"positions-(\w+)-seed(\d+)", run.name)
        metrics = run / "metrics.jsonl"
        if not match or not metrics.is_file():
            continue
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        curves[match[1]][int(match[2])] = [(r["step"], r["valid_loss"], r["valid_accuracy"]) for r in rows]
    # Only finished runs: those that reached the last step any run reached.
    last = max((run[-1][0] for seeds in curves.values() for run in seeds.values() if run), default=0)
    for kind in list(curves):
        curves[kind] = {seed: run for seed, run in curves[kind].items() if run and run[-1][0] == last}
        if not curves[kind]:
            del curves[kind]
    kinds = [k for k in ("rotary", "absolute", "sinusoidal", "none") if k in curves]
    if not kinds:
        print(f"no runs under {root}", file=sys.stderr)
        return 1

    def mean_curve(kind):
        runs = list(curves[kind].values())
        steps = [s for s, _, _ in runs[0]]
        return [(step, statistics.mean(run[i][1] for run in runs)) for i, step in enumerate(steps)]

    target = statistics.mean(run[-1][1] for run in curves["absolute"].values()) if "absolute" in curves else None
    print("| positions | seeds | final valid loss | final valid accuracy | first step at absolute's final loss |")
    print("| --- | ---: | --- | --- | ---: |")
    for kind in kinds:
        runs = list(curves[kind].values())
        losses = [run[-1][1] for run in runs]
        accuracies = [run[-1][2] for run in runs]
        reached = "—"
        if target is not None:
            hit = next((step for step, loss in mean_curve(kind) if loss <= target), None)
            reached = str(hit) if hit is not None else "not reached"
        print(f"| {kind} | {len(runs)} | {mean_std(losses)} | {mean_std(accuracies)} | {reached} |")

    results = defaultdict(list)  # (kind, rule) -> [rows of one seed]
    for path in sorted((root / "eval-mlm").glob("*.json")):
        match = re.fullmatch(r"(\w+)-seed(\d+)-([\w-]+)\.json", path.name)
        if match:
            results[(match[1], match[3])].append(json.loads(path.read_text()))
    if not results:
        return 0
    lengths = [row["length"] for row in next(iter(results.values()))[0]]
    print()
    print("| positions | scaling | " + " | ".join(f"loss @ {n}" for n in lengths) + " |")
    print("| --- | --- | " + " | ".join("---:" for _ in lengths) + " |")
    order = ["none", "linear", "ntk", "dynamic-ntk", "yarn"]
    for (kind, rule), seeds in sorted(results.items(), key=lambda kv: (kinds.index(kv[0][0]) if kv[0][0] in kinds else 9, order.index(kv[0][1]))):
        cells = []
        for i in range(len(lengths)):
            values = [seed[i]["loss"] for seed in seeds if seed[i]["loss"] is not None]
            cells.append(f"{statistics.mean(values):.3f}" if values else "n/a (table)")
        print(f"| {kind} | {rule} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
