#!/usr/bin/env python3
"""Builds the HF transformers parity fixtures used by `crates/roformer/tests/hf_parity.rs`.

Run by hand (not by CI), from the repository root:

    python3 -m venv .venv && .venv/bin/pip install torch transformers safetensors numpy rjieba
    .venv/bin/python scripts/make_hf_fixtures.py

For each case it builds a small `RoFormerForMaskedLM`, randomizes every weight at
order-1 scale (HF's 0.02 init makes attention nearly uniform, which would hide rotation
and loading bugs), and writes to `crates/roformer/tests/fixtures/hf/<case>/`:

- `config.json`, `model.safetensors`: the model as `save_pretrained` writes it;
- `expected.safetensors`: `input_ids`, `attention_mask`, `token_type_ids` (int64) and the
  reference outputs `last_hidden_state`, `logits` and `hidden_states.N` (the embedding
  output, then each layer's; float32), computed in eval mode.

Each case directory is a complete HF model directory (plus `vocab.txt`, a placeholder
vocabulary) so that it loads through `roformer --model DIR`. Cases cover rotary_value on
and off, `embedding_size != hidden_size`, padding in a batch, a 1024-token sequence
(max positions 1536; no per-layer states, to keep it small), a `pytorch_model.bin` written
by `torch.save(state_dict)` (which, as older checkpoints do, also holds the tied decoder),
a bare `RoFormerModel` (no `cls.` head: `expected` has no `logits`), bf16 / f16 weight
files (the reference is computed in f32 from the rounded weights), non-default values of
every config field the model reads (`layer_norm_eps`, each `hidden_act`,
`type_vocab_size`, `pad_token_id`, `max_position_embeddings`, `embedding_size`,
`rotary_value`), and the `RoFormerForSequenceClassification` and
`RoFormerForTokenClassification` heads (`logits` are the head's).

`tokenizer_zh/` holds a Chinese/English `vocab.txt` and `cases.json`: sentences with the
ids HF's `RoFormerTokenizer` (jieba, `HMM=False`) gives them. NB: transformers 5.24's
`RoFormerTokenizer.from_pretrained(dir)` hands the vocabulary *file name* to its
`JiebaPreTokenizer`, so no jieba word is ever found "in the vocabulary"; the fixture is
made with the tokenizer built from the vocabulary itself (`RoFormerTokenizer(vocab=...)`),
which gives the documented behaviour (`今天天气非常好。` → `今 天 天 气 非常 好 。`).

It also writes `default_config.json` (HF's `RoFormerConfig()` defaults) and `VERSIONS.json`.
"""

import json
import math
import pathlib
import sys

import torch
from safetensors.torch import save_file
from transformers import (
    RoFormerConfig,
    RoFormerForMaskedLM,
    RoFormerForSequenceClassification,
    RoFormerForTokenClassification,
    RoFormerModel,
    RoFormerTokenizer,
)

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

# name: (config overrides, sequence lengths of the batch (shorter ones are right-padded),
#        how the weights are saved)
CASES = {
    "base": (dict(), [11, 11], "safetensors"),
    "rotary_value": (dict(rotary_value=True, hidden_act="gelu_new"), [13, 13], "safetensors"),
    "embedding_project": (dict(embedding_size=16, hidden_act="relu"), [9, 9], "safetensors"),
    "padding": (dict(), [12, 7, 3], "safetensors"),
    "long": (dict(max_position_embeddings=1536), [1024], "safetensors"),
    "pytorch_bin": (dict(), [10, 6], "bin"),
    "encoder_only": (dict(rotary_value=True), [8, 5], "encoder"),
    "bf16": (dict(), [9, 9], "bf16"),
    "f16": (dict(embedding_size=16), [9, 9], "f16"),
    # Non-default values of the config fields the model reads, so that ignoring one fails.
    "layer_norm_eps": (dict(layer_norm_eps=1e-3, hidden_act="silu"), [10, 10], "safetensors"),
    "config_variants": (
        dict(hidden_act="tanh", type_vocab_size=5, pad_token_id=3, max_position_embeddings=40),
        [12, 8],
        "safetensors",
    ),
    # The task heads.
    "sequence_classification": (dict(embedding_size=24, num_labels=3), [11, 6], "seqcls"),
    "token_classification": (
        dict(rotary_value=True, hidden_act="gelu_new", num_labels=5),
        [9, 5],
        "tokcls",
    ),
}

MODELS = {
    "encoder": RoFormerModel,
    "seqcls": RoFormerForSequenceClassification,
    "tokcls": RoFormerForTokenClassification,
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


def placeholder_vocab(size: int) -> list:
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(5, size)]


def make_case(name: str, overrides: dict, lengths: list, storage: str, seed: int) -> None:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    config = RoFormerConfig(**{**BASE, **overrides})
    model = MODELS.get(storage, RoFormerForMaskedLM)(config).eval()
    randomize(model, generator)
    if storage in ("bf16", "f16"):
        # Round the weights to the file's precision; the reference uses the rounded values.
        half = torch.bfloat16 if storage == "bf16" else torch.float16
        with torch.no_grad():
            for param_name, param in model.named_parameters():
                if "embed_positions" not in param_name:  # regenerated in f32 on loading
                    param.copy_(param.to(half).float())

    batch, seq = len(lengths), max(lengths)
    input_ids = torch.randint(1, config.vocab_size, (batch, seq), generator=generator)
    attention_mask = torch.zeros(batch, seq, dtype=torch.long)
    for row, length in enumerate(lengths):
        attention_mask[row, :length] = 1
    # The padding id after each sequence.
    input_ids = torch.where(attention_mask == 1, input_ids, config.pad_token_id)
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
    for stale in ("model.safetensors", "pytorch_model.bin"):
        (directory / stale).unlink(missing_ok=True)
    if storage == "bin":
        config.save_pretrained(directory)
        torch.save(model.state_dict(), directory / "pytorch_model.bin")
    elif storage in ("bf16", "f16"):
        model.to(torch.bfloat16 if storage == "bf16" else torch.float16).save_pretrained(directory)
    else:
        model.save_pretrained(directory)
    (directory / "vocab.txt").write_text("\n".join(placeholder_vocab(config.vocab_size)) + "\n")
    expected = {
        "input_ids": input_ids.contiguous(),
        "attention_mask": attention_mask.contiguous(),
        "token_type_ids": token_type_ids.contiguous(),
        "last_hidden_state": outputs.hidden_states[-1].float().contiguous(),
    }
    if storage != "encoder":
        # Masked-LM logits [batch, seq, vocab], or the head's: [batch, labels], [batch, seq, labels].
        expected["logits"] = outputs.logits.float().contiguous()
    if name != "long":
        # Embedding output and every layer's output, to localise a mismatch.
        for i, h in enumerate(outputs.hidden_states):
            expected[f"hidden_states.{i}"] = h.float().clone().contiguous()
    save_file(expected, directory / "expected.safetensors")
    print(f"{name}: batch {batch} x {seq}, mean max attention prob {peak:.3f}", file=sys.stderr)


ZH_SENTENCES = [
    "今天天气非常好。",
    "我爱北京天安门！",
    "RoFormer使用旋转位置编码(RoPE)，效果很好。",
    "Hello, World! 你好，世界。",
    "他说：“机器学习很有趣”。",
    "2021年，苏剑林提出了RoFormer模型。",
    "自然语言处理 NLP 是人工智能的一个分支",
    "今天[MASK]很好",
    "ÀÉÎ accents and UPPER case 中文分词",
    "emoji 😀 and\ttabs\nnew line，北京大学的学生",
    "unaffable 的 running 测试 tokenization 工具",
]


def make_tokenizer_case() -> None:
    """A vocabulary with every character of the sentences, some of jieba's words (so that
    both branches run: word kept whole, word split into characters) and WordPieces."""
    import rjieba

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words, chars = [], []
    for sentence in ZH_SENTENCES:
        for word in rjieba.cut(sentence.lower(), False):
            word = word.strip()
            if len(word) > 1 and any("\u4e00" <= c <= "\u9fff" for c in word) and word not in words:
                words.append(word)
        for c in sentence.lower():
            if not c.isspace() and c not in chars:
                chars.append(c)
    kept_words = words[::2]  # every other word: the rest falls back to characters
    english = ["hello", "world", "ro", "##former", "##pe", "nlp", "accents", "and", "upper",
               "case", "emoji", "tabs", "new", "line", "un", "##aff", "##able", "run",
               "##ning", "token", "##ization", "a", "##e", "##i"]
    vocab = specials + chars + [w for w in kept_words if w not in chars] + [
        w for w in english if w not in chars]
    vocab = list(dict.fromkeys(vocab))
    directory = OUT / "tokenizer_zh"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = RoFormerTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    cases = []
    for sentence in ZH_SENTENCES:
        ids = tokenizer(sentence).input_ids
        cases.append({"text": sentence, "input_ids": ids,
                      "tokens": tokenizer.convert_ids_to_tokens(ids)})
    (directory / "cases.json").write_text(json.dumps(cases, ensure_ascii=False, indent=1) + "\n")
    kept = sum(1 for c in cases for t in c["tokens"] if t in kept_words)
    print(f"tokenizer_zh: {len(vocab)} tokens, {kept} whole jieba words kept", file=sys.stderr)


def main() -> None:
    for index, (name, (overrides, lengths, storage)) in enumerate(CASES.items()):
        make_case(name, overrides, lengths, storage, seed=1000 + index)
    make_tokenizer_case()
    # HF's own defaults, to check that ours are the same.
    (OUT / "default_config.json").write_text(RoFormerConfig().to_json_string())
    versions = {"torch": torch.__version__, "transformers": __import__("transformers").__version__}
    (OUT / "VERSIONS.json").write_text(json.dumps(versions, indent=2) + "\n")


if __name__ == "__main__":
    main()
