#!/usr/bin/env python3
"""Offline embedding throughput of HF transformers' RoFormerModel (PyTorch eager, fp32) on
a model directory: batches of sentences padded to their longest, the mean of the real
tokens' last hidden states, as `roformer embed` computes. Prints one JSON object with
tokens/s (real tokens, as the server's x-compute-tokens counts them)."""

import argparse
import json
import time

import torch
from transformers import AutoTokenizer, RoFormerModel


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--sentences", required=True)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--count", type=int, default=2048, help="sentences timed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = RoFormerModel.from_pretrained(args.model).eval()
    with open(args.sentences, encoding="utf-8") as file:
        sentences = [line.strip() for line in file if line.strip()]
    sentences = (sentences * (args.count // len(sentences) + 1))[: args.count]
    batches = [sentences[i : i + args.batch] for i in range(0, len(sentences), args.batch)]
    encoded = [tokenizer(b, padding=True, return_tensors="pt") for b in batches]
    with torch.inference_mode():
        model(**encoded[0])  # warm-up
        tokens = 0
        started = time.perf_counter()
        for inputs in encoded:
            hidden = model(**inputs).last_hidden_state
            mask = inputs["attention_mask"].unsqueeze(-1).float()
            _ = (hidden * mask).sum(1) / mask.sum(1)
            tokens += int(inputs["attention_mask"].sum())
        seconds = time.perf_counter() - started
    print(json.dumps({"implementation": "pytorch", "batch": args.batch,
                      "tokens_per_second": tokens / seconds, "seconds": seconds}))


if __name__ == "__main__":
    main()
