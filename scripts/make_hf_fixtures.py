#!/usr/bin/env python3
"""Builds the HF transformers parity fixtures used by `crates/roformer/tests/hf_parity.rs`.

Run by hand (not by CI), from the repository root:

    python3 -m venv .venv && .venv/bin/pip install torch transformers safetensors numpy
    .venv/bin/python scripts/make_hf_fixtures.py

For each case it builds a small `RoFormerForMaskedLM`, randomizes every weight at
order-1 scale (HF's 0.02 init makes attention nearly uniform, which would hide rotation
and loading bugs), and writes to `crates/roformer/tests/fixtures/hf/<case>/`:

- `config.json`, `model.safetensors`: the model as `save_pretrained` writes it;
- `expected.safetensors`: `input_ids`, `attention_mask`, `token_type_ids` (int64) and the
  reference outputs `last_hidden_state`, `logits` and `hidden_states.N` (the embedding
  output, then each layer's; float32), computed in eval mode.

It also writes `default_config.json` (HF's `RoFormerConfig()` defaults) and `VERSIONS.json`.
"""

import json
import math
import pathlib
import sys

import torch
from safetensors.torch import save_file
from transformers import RoFormerConfig, RoFormerForMaskedLM

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates" / "roformer" / "tests" / "fixtures" / "hf"

BASE = dict(
    vocab_size=97,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=48,
    max_position_embeddings=64,
    type_vocab_size=2,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    pad_token_id=0,
)

# name: (config overrides, sequence lengths of the batch; shorter ones are right-padded)
CASES = {
    "base": (dict(), [11, 11]),
    "rotary_value": (dict(rotary_value=True, hidden_act="gelu_new"), [13, 13]),
    "embedding_project": (dict(embedding_size=16, hidden_act="relu"), [9, 9]),
    "padding": (dict(), [12, 7, 3]),
}


def randomize(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Every parameter at order-1 scale, so attention is far from uniform."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "embed_positions" in name:
                continue  # the deterministic sinusoidal table, not a learned weight
            noise = torch.randn(param.shape, generator=generator)
            if "LayerNorm.weight" in name:
                param.copy_(1.0 + 0.3 * noise)
            elif param.dim() == 2 and "embeddings" in name:
                param.copy_(noise)
            elif param.dim() == 2:
                fan_in = param.shape[1]
                param.copy_(1.5 * noise / math.sqrt(fan_in))
            else:
                param.copy_(0.5 * noise)


def make_case(name: str, overrides: dict, lengths: list, seed: int) -> None:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    config = RoFormerConfig(**{**BASE, **overrides})
    model = RoFormerForMaskedLM(config).eval()
    randomize(model, generator)

    batch, seq = len(lengths), max(lengths)
    input_ids = torch.randint(1, config.vocab_size, (batch, seq), generator=generator)
    attention_mask = torch.zeros(batch, seq, dtype=torch.long)
    for row, length in enumerate(lengths):
        attention_mask[row, :length] = 1
    input_ids = input_ids * attention_mask  # padding id 0 after each sequence
    token_type_ids = torch.randint(0, config.type_vocab_size, (batch, seq), generator=generator)
    token_type_ids = token_type_ids * attention_mask

    with torch.no_grad():
        outputs = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            output_hidden_states=True,
            output_attentions=True,
        )
    # Evidence that the fixture exercises attention: report how peaked it is.
    peak = max(a.max(dim=-1).values.mean().item() for a in outputs.attentions)

    directory = OUT / name
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    save_file(
        {
            "input_ids": input_ids.contiguous(),
            "attention_mask": attention_mask.contiguous(),
            "token_type_ids": token_type_ids.contiguous(),
            "last_hidden_state": outputs.hidden_states[-1].float().contiguous(),
            "logits": outputs.logits.float().contiguous(),
            # Embedding output and every layer's output, to localise a mismatch.
            **{
                f"hidden_states.{i}": h.float().clone().contiguous()
                for i, h in enumerate(outputs.hidden_states)
            },
        },
        directory / "expected.safetensors",
    )
    print(f"{name}: batch {batch} x {seq}, mean max attention prob {peak:.3f}", file=sys.stderr)


def main() -> None:
    for index, (name, (overrides, lengths)) in enumerate(CASES.items()):
        make_case(name, overrides, lengths, seed=1000 + index)
    # HF's own defaults, to check that ours are the same.
    (OUT / "default_config.json").write_text(RoFormerConfig().to_json_string())
    versions = {"torch": torch.__version__, "transformers": __import__("transformers").__version__}
    (OUT / "VERSIONS.json").write_text(json.dumps(versions, indent=2) + "\n")


if __name__ == "__main__":
    main()
