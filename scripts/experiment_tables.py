#!/usr/bin/env python3
"""Prints the tables of docs/experiments.md from the runs of scripts/experiment_*.sh.

    python3 scripts/experiment_tables.py runs/experiments

Experiment 1: per position encoding, the final validation MLM loss and accuracy (mean and
standard deviation over seeds), and the first evaluated step at which the mean curve
reaches the absolute-position runs' mean final loss. Experiment 2: masked-LM loss by
evaluation length (mean over seeds), per encoding and, for rotary, per scaling rule.
Experiment 3: final loss and accuracy of softmax and linear attention, with and without
rotation, and the inference time per token by sequence length. Tables whose runs are
missing are left out. Standard library only; scripts/experiment_plots.py reads the runs
through the functions here.
"""

import json
import pathlib
import re
import statistics
import sys
from collections import defaultdict

POSITIONS = ("rotary", "absolute", "sinusoidal", "none")
SCALING_RULES = ("none", "linear", "ntk", "dynamic-ntk", "yarn")
# Experiment 3's runs: (attention, positions) -> run name.
ATTENTION_RUNS = {
    ("softmax", "rotary"): "positions-rotary",
    ("linear", "rotary"): "attention-linear-rotary",
    ("softmax", "none"): "positions-none",
    ("linear", "none"): "attention-linear-none",
}


def load_curves(root):
    """Run name -> seed -> [(step, valid loss, valid accuracy)], finished runs only (those
    that reached the last step of any run of the same experiment prefix)."""
    curves = defaultdict(dict)
    for run in sorted(root.glob("*-seed*")):
        match = re.fullmatch(r"([\w-]+)-seed(\d+)", run.name)
        metrics = run / "metrics.jsonl"
        if not match or not metrics.is_file():
            continue
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        if rows:
            curves[match[1]][int(match[2])] = [(r["step"], r["valid_loss"], r["valid_accuracy"]) for r in rows]
    last = max((run[-1][0] for seeds in curves.values() for run in seeds.values()), default=0)
    finished = {}
    for name, seeds in curves.items():
        kept = {seed: run for seed, run in seeds.items() if run[-1][0] == last}
        if kept:
            finished[name] = kept
    return finished


def mean_curve(seeds):
    """[(step, mean valid loss over seeds)] of one run name."""
    runs = list(seeds.values())
    steps = [s for s, _, _ in runs[0]]
    return [(step, statistics.mean(run[i][1] for run in runs)) for i, step in enumerate(steps)]


def load_extrapolation(root):
    """(evaluated name, scaling rule) -> [eval-mlm rows of one seed]. The name is a position
    encoding for experiment 1's runs (`rotary-seed1-ntk.json`) and the run name otherwise
    (`attention-linear-rotary-seed1-none.json`)."""
    results = defaultdict(list)
    for path in sorted((root / "eval-mlm").glob("*.json")):
        match = re.fullmatch(r"([\w-]+?)-seed(\d+)-([\w-]+)\.json", path.name)
        if match and match[3] in SCALING_RULES:
            results[(match[1], match[3])].append(json.loads(path.read_text()))
    return dict(
        sorted(
            results.items(),
            key=lambda kv: (POSITIONS.index(kv[0][0]) if kv[0][0] in POSITIONS else 9, kv[0][0], SCALING_RULES.index(kv[0][1])),
        )
    )


def mean_loss_at(seeds, length):
    """Mean eval-mlm loss over seeds at `length`, or None where not evaluated."""
    values = [row["loss"] for seed in seeds for row in seed if row["length"] == length and row["loss"] is not None]
    return statistics.mean(values) if values else None


def load_timing(root):
    """Attention -> [(sequence length, microseconds per token)] from `roformer bench`."""
    timing = {}
    for attention in ("softmax", "linear"):
        path = root / "timing" / f"{attention}.jsonl"
        if path.is_file():
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            timing[attention] = [(r["seq"], 1000.0 * r["ms_per_step"] / (r["batch"] * r["seq"])) for r in rows]
    return timing


def mean_std(values):
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def final_columns(seeds):
    runs = list(seeds.values())
    return mean_std([run[-1][1] for run in runs]), mean_std([run[-1][2] for run in runs])


def positions_table(curves):
    kinds = [k for k in POSITIONS if f"positions-{k}" in curves]
    if not kinds:
        return
    absolute = curves.get("positions-absolute")
    target = statistics.mean(run[-1][1] for run in absolute.values()) if absolute else None
    print("| positions | seeds | final valid loss | final valid accuracy | first step at absolute's final loss |")
    print("| --- | ---: | --- | --- | ---: |")
    for kind in kinds:
        seeds = curves[f"positions-{kind}"]
        loss, accuracy = final_columns(seeds)
        reached = "—"
        if target is not None:
            hit = next((step for step, value in mean_curve(seeds) if value <= target), None)
            reached = str(hit) if hit is not None else "not reached"
        print(f"| {kind} | {len(seeds)} | {loss} | {accuracy} | {reached} |")
    print()


def extrapolation_table(results):
    results = {key: seeds for key, seeds in results.items() if key[0] in POSITIONS}
    if not results:
        return
    lengths = [row["length"] for row in next(iter(results.values()))[0]]
    print("| positions | scaling | " + " | ".join(f"loss @ {n}" for n in lengths) + " |")
    print("| --- | --- | " + " | ".join("---:" for _ in lengths) + " |")
    for (kind, rule), seeds in results.items():
        cells = []
        for i in range(len(lengths)):
            values = [seed[i]["loss"] for seed in seeds if seed[i]["loss"] is not None]
            cells.append(f"{statistics.mean(values):.3f}" if values else "n/a (table)")
        print(f"| {kind} | {rule} | " + " | ".join(cells) + " |")
    print()


def attention_table(curves, results):
    """Final training-validation loss and accuracy, and the [MASK]-only loss of eval-mlm
    at the trained length and at the longest evaluated one."""
    present = [(key, name) for key, name in ATTENTION_RUNS.items() if name in curves]
    if not any(attention == "linear" for (attention, _), _ in present):
        return
    lengths = sorted({row["length"] for seeds in results.values() for seed in seeds for row in seed})
    shown = sorted({lengths[0], lengths[-1]}) if lengths else []
    header = "| attention | positions | seeds | final valid loss | final valid accuracy |"
    header += "".join(f" [MASK]-only loss @ {n} |" for n in shown)
    print(header)
    print("| --- | --- | ---: | --- | --- |" + " ---: |" * len(shown))
    for (attention, positions), name in present:
        loss, accuracy = final_columns(curves[name])
        evaluated = results.get((positions if attention == "softmax" else name, "none"), [])
        cells = ""
        for n in shown:
            value = mean_loss_at(evaluated, n)
            cells += f" {value:.3f} |" if value is not None else " — |"
        print(f"| {attention} | {positions} | {len(curves[name])} | {loss} | {accuracy} |{cells}")
    print()


def timing_table(timing):
    if not timing:
        return
    lengths = [seq for seq, _ in next(iter(timing.values()))]
    print("| attention | " + " | ".join(f"µs/token @ {n}" for n in lengths) + " |")
    print("| --- | " + " | ".join("---:" for _ in lengths) + " |")
    for attention, rows in timing.items():
        print(f"| {attention} | " + " | ".join(f"{us:.1f}" for _, us in rows) + " |")
    print()


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "runs/experiments")
    curves = load_curves(root)
    if not curves:
        print(f"no runs under {root}", file=sys.stderr)
        return 1
    results = load_extrapolation(root)
    positions_table(curves)
    extrapolation_table(results)
    attention_table(curves, results)
    timing_table(load_timing(root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
