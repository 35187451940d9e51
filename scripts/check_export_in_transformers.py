#!/usr/bin/env python3
"""Exports a model of ours with `roformer export-hf` and checks it in HF transformers.

Run by hand (not by CI), from the repository root, after training (e.g. the README's
`configs/tiny.toml` run):

    python3 -m venv .venv && .venv/bin/pip install torch transformers safetensors numpy
    cargo build --release
    .venv/bin/python scripts/check_export_in_transformers.py --model runs/tiny

A fine-tuned classifier (a `roformer finetune` run directory) is checked too:

    .venv/bin/python scripts/check_export_in_transformers.py --model runs/genres-128

and so is a token classifier (the tagging run of the README's fine-tuning section).

It checks that:
- `RoFormerForMaskedLM.from_pretrained(export)` (or
  `RoFormerForSequenceClassification` for a classifier) reports no missing, unexpected
  or mismatched keys, and a classifier keeps its `id2label`;
- `AutoTokenizer.from_pretrained(export)` gives the same token ids as our tokenizer;
- the masked-LM logits of transformers and of `roformer encode --mlm-logits` agree
  within 1e-3 (max absolute difference over real tokens); for a classifier, the class
  probabilities of transformers and of `roformer classify --json` agree within 1e-4; for
  a token classifier (`RoFormerForTokenClassification`), the probability of each word's
  label at its first token (words passed with `is_split_into_words`) and that of
  `roformer tag --json` agree within 1e-4, and so do the labels.
Exit status 0 when all hold.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file
from transformers import (
    AutoTokenizer,
    RoFormerForMaskedLM,
    RoFormerForSequenceClassification,
    RoFormerForTokenClassification,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEXTS = [
    "Good [MASK], my lord.",
    "To be, or not to be, that is the question.",
    "Now is the winter of our discontent made glorious summer by this sun of York.",
    "O Romeo, Romeo! wherefore art thou Romeo?",
]
TOLERANCE = 1e-3
PROBABILITY_TOLERANCE = 1e-4
CLASSIFIER = "RoFormerForSequenceClassification"
TAGGER = "RoFormerForTokenClassification"


def roformer_binary() -> str:
    target = os.environ.get("CARGO_TARGET_DIR", str(pathlib.Path.home() / ".cache/roformer-rs/target"))
    return os.environ.get("ROFORMER_BIN", str(pathlib.Path(target) / "release" / "roformer"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/tiny", help="a run or model directory of ours")
    args = parser.parse_args()
    binary = roformer_binary()
    work = pathlib.Path(tempfile.mkdtemp(prefix="roformer-export-"))
    export = work / "hf"
    subprocess.run([binary, "export-hf", "--model", args.model, "--output", str(export)], check=True)

    architectures = json.loads((export / "config.json").read_text()).get("architectures", [])
    if CLASSIFIER in architectures:
        return check_classifier(binary, export)
    if TAGGER in architectures:
        return check_tagger(binary, export)
    return check_masked_lm(binary, export, work)


def check_classifier(binary: str, export: pathlib.Path) -> int:
    model, info = RoFormerForSequenceClassification.from_pretrained(export, output_loading_info=True)
    model.eval()
    problems = {k: v for k, v in info.items() if v}
    print(f"loading info: {info}; id2label {model.config.id2label}")
    tokenizer = AutoTokenizer.from_pretrained(export)
    worst = 0.0
    for text in TEXTS:
        ids = tokenizer(text, truncation=True, max_length=model.config.max_position_embeddings).input_ids
        with torch.no_grad():
            theirs = torch.softmax(model(input_ids=torch.tensor([ids])).logits[0], -1)
        result = subprocess.run(
            [binary, "classify", "--model", str(export), "--json", text], check=True, capture_output=True, text=True
        )
        ours = {p["label"]: p["probability"] for p in json.loads(result.stdout)["probabilities"]}
        for index, label in model.config.id2label.items():
            if label not in ours:
                problems[f"label {label!r}"] = "missing from classify's answer"
                continue
            worst = max(worst, abs(theirs[int(index)].item() - ours[label]))
        print(f"{text!r}: {len(ids)} tokens, transformers {[round(p, 4) for p in theirs.tolist()]}")
    if worst > PROBABILITY_TOLERANCE:
        problems["probabilities"] = f"max |diff| {worst:.2e} > {PROBABILITY_TOLERANCE}"
    if problems:
        print(f"FAILED: {problems}", file=sys.stderr)
        return 1
    print(f"OK: transformers loads {export} as {CLASSIFIER} with no missing or unexpected keys; "
          f"max |probability diff| {worst:.2e} (tolerance {PROBABILITY_TOLERANCE})")
    return 0


def check_tagger(binary: str, export: pathlib.Path) -> int:
    model, info = RoFormerForTokenClassification.from_pretrained(export, output_loading_info=True)
    model.eval()
    problems = {k: v for k, v in info.items() if v}
    print(f"loading info: {info}; id2label {model.config.id2label}")
    tokenizer = AutoTokenizer.from_pretrained(export)
    worst = 0.0
    for text in TEXTS:
        words = text.split()
        encoding = tokenizer(words, is_split_into_words=True)
        with torch.no_grad():
            probabilities = torch.softmax(model(input_ids=torch.tensor([encoding.input_ids])).logits[0], -1)
        first = {}
        for position, word in enumerate(encoding.word_ids()):
            if word is not None and word not in first:
                first[word] = position
        result = subprocess.run(
            [binary, "tag", "--model", str(export), "--json", text], check=True, capture_output=True, text=True
        )
        ours = json.loads(result.stdout)["words"]
        if len(ours) != len(words) or len(first) != len(words):
            problems[f"words of {text!r}"] = f"{len(words)} words, {len(first)} read by transformers, {len(ours)} tagged"
            continue
        for index, tagged in enumerate(ours):
            row = probabilities[first[index]]
            label = model.config.id2label[int(row.argmax())]
            if label != tagged["label"]:
                problems[f"word {index} of {text!r}"] = f"transformers {label}, ours {tagged['label']}"
            worst = max(worst, abs(row.max().item() - tagged["probability"]))
        print(f"{text!r}: {len(encoding.input_ids)} tokens, labels {[w['label'] for w in ours]}")
    if worst > PROBABILITY_TOLERANCE:
        problems["probabilities"] = f"max |diff| {worst:.2e} > {PROBABILITY_TOLERANCE}"
    if problems:
        print(f"FAILED: {problems}", file=sys.stderr)
        return 1
    print(f"OK: transformers loads {export} as {TAGGER} with no missing or unexpected keys; "
          f"same word labels; max |probability diff| {worst:.2e} (tolerance {PROBABILITY_TOLERANCE})")
    return 0


def check_masked_lm(binary: str, export: pathlib.Path, work: pathlib.Path) -> int:
    model, info = RoFormerForMaskedLM.from_pretrained(export, output_loading_info=True)
    model.eval()
    problems = {k: v for k, v in info.items() if v}
    print(f"loading info: {info}")

    tokenizer = AutoTokenizer.from_pretrained(export)
    lines = work / "inputs.jsonl"
    lines.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    ours_file = work / "ours.safetensors"
    subprocess.run(
        [binary, "encode", "--model", str(export), "--input", str(lines), "--output", str(ours_file), "--mlm-logits"],
        check=True,
    )
    ours = load_file(ours_file)

    worst = 0.0
    for row, text in enumerate(TEXTS):
        ids = tokenizer(text).input_ids
        length = int(ours["attention_mask"][row].sum())
        if length != len(ids):
            problems[f"tokenizer: {text!r}"] = f"{len(ids)} tokens in transformers vs {length} here"
            continue
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0]
        diff = (logits - ours["mlm_logits"][row, :length]).abs().max().item()
        worst = max(worst, diff)
        print(f"{text!r}: {len(ids)} tokens, max |logits diff| {diff:.2e}")
    if worst > TOLERANCE:
        problems["logits"] = f"max |diff| {worst:.2e} > {TOLERANCE}"
    if problems:
        print(f"FAILED: {problems}", file=sys.stderr)
        return 1
    print(f"OK: transformers loads {export} with no missing or unexpected keys; "
          f"same token ids; max |logits diff| {worst:.2e} (tolerance {TOLERANCE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
