"""Reference outputs of transformers' Llama-family models for models/llama.

Builds tiny random checkpoints with save_pretrained (safetensors), reloads
each with from_pretrained(attn_implementation="eager") and records, per
model, in refs_<name>.safetensors next to this script:

  ids            int64 [2, 12]   no padding
  logits         float32 [2, 12, V]
  pad_ids        int64 [3, 10]   left padding (pad id 0)
  pad_mask       int64 [3, 10]
  pad_pos        int64 [3, 10]   cumsum(mask) - 1, 0 at padding (generate's positions)
  pad_logits     float32 [3, 10, V]   model(pad_ids, attention_mask, position_ids)
  gen_ids        int64 [3, 10 + N]    generate(pad_ids, pad_mask, greedy, N new tokens, KV cache)
  gen_logits     float32 [N, 3, V]    the raw logits of each generation step
  bf16_logits    float32 [2, 12, V]   (llama only) the bfloat16 model's logits of ids

Checkpoints (ckpt_<name>/):
  llama    untied, GQA 4 heads / 2 kv heads, default RoPE, sharded (index.json)
  llama3   tied, rope_scaling "llama3" (rope_theta 500000, all three bands)
  linear   rope_scaling "linear", attention_bias and mlp_bias; config.json
           rewritten in the old style (top-level rope_theta, rope_scaling,
           torch_dtype)
  qwen2    q/k/v biases, tied, 4 heads / 1 kv head
  qwen2_sliding  untied, use_sliding_window: layer 1 slides (window 4), layer 0 not
  mistral  head_dim 32 != hidden/heads, sliding_window 5 < sequence length

Run from the repository root: /tmp/venv/bin/python3 models/llama/testdata/interop_llama.py
"""

import json
import os
import shutil

import torch
from safetensors.torch import save_file
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB = 128
NEW_TOKENS = 8

torch.set_num_threads(1)

COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
    rms_norm_eps=1e-5,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)


def models():
    yield "llama", LlamaForCausalLM, LlamaConfig(**COMMON, tie_word_embeddings=False), dict(max_shard_size="40KB")
    yield "llama3", LlamaForCausalLM, LlamaConfig(
        **COMMON,
        tie_word_embeddings=True,
        rope_parameters=dict(
            rope_type="llama3",
            rope_theta=500000.0,
            factor=8.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=1024,
        ),
    ), {}
    yield "linear", LlamaForCausalLM, LlamaConfig(
        **COMMON,
        tie_word_embeddings=False,
        attention_bias=True,
        mlp_bias=True,
        rope_parameters=dict(rope_type="linear", rope_theta=10000.0, factor=4.0),
    ), {}
    qwen = dict(COMMON, num_key_value_heads=1)
    yield "qwen2", Qwen2ForCausalLM, Qwen2Config(**qwen, tie_word_embeddings=True), {}
    yield "qwen2_sliding", Qwen2ForCausalLM, Qwen2Config(
        **qwen, tie_word_embeddings=False, use_sliding_window=True, sliding_window=4, max_window_layers=1
    ), {}
    yield "mistral", MistralForCausalLM, MistralConfig(
        **COMMON, head_dim=32, sliding_window=5, tie_word_embeddings=False
    ), {}


def reinit(model):
    """Non-trivial scales: transformers' std 0.02 gives near-zero logits."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.normal_(0, 0.1)
            elif "embed_tokens" in name:
                p.normal_(0, 0.5)
            else:
                p.normal_(0, 0.25)


def old_style(ckpt):
    """Rewrite config.json as most Hub checkpoints have it."""
    path = os.path.join(ckpt, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    rope = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rope.pop("rope_theta")
    rope["type"] = rope.pop("rope_type")
    cfg["rope_scaling"] = rope
    cfg["torch_dtype"] = cfg.pop("dtype", "float32")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
    return cfg


def main():
    for name, cls, config, save_kw in models():
        torch.manual_seed(0)
        model = cls(config)
        reinit(model)
        ckpt = os.path.join(HERE, "ckpt_" + name)
        shutil.rmtree(ckpt, ignore_errors=True)
        model.save_pretrained(ckpt, **save_kw)
        if name == "linear":
            cfg = old_style(ckpt)
            assert "rope_parameters" not in cfg and "rope_theta" in cfg
        if name == "llama":
            assert os.path.exists(os.path.join(ckpt, "model.safetensors.index.json")), os.listdir(ckpt)

        # What transformers itself reads back from the files.
        model = AutoModelForCausalLM.from_pretrained(ckpt, attn_implementation="eager", dtype=torch.float32)
        model.eval()
        assert model.config.rope_parameters is not None

        g = torch.Generator().manual_seed(1)
        ids = torch.randint(3, VOCAB, (2, 12), generator=g)
        pad_ids = torch.randint(3, VOCAB, (3, 10), generator=g)
        pad_mask = torch.ones(3, 10, dtype=torch.long)
        for row, n in ((1, 3), (2, 6)):
            pad_ids[row, :n] = 0
            pad_mask[row, :n] = 0
        pad_pos = (pad_mask.cumsum(-1) - 1).masked_fill(pad_mask == 0, 0)

        out = {"ids": ids, "pad_ids": pad_ids, "pad_mask": pad_mask, "pad_pos": pad_pos}
        with torch.no_grad():
            out["logits"] = model(input_ids=ids).logits.float()
            out["pad_logits"] = model(input_ids=pad_ids, attention_mask=pad_mask, position_ids=pad_pos).logits.float()
            gen = model.generate(
                input_ids=pad_ids,
                attention_mask=pad_mask,
                do_sample=False,
                max_new_tokens=NEW_TOKENS,
                min_new_tokens=NEW_TOKENS,
                eos_token_id=None,
                pad_token_id=0,
                use_cache=True,
                return_dict_in_generate=True,
                output_logits=True,
            )
            out["gen_ids"] = gen.sequences
            out["gen_logits"] = torch.stack(gen.logits).float()
            assert out["gen_ids"].shape == (3, 10 + NEW_TOKENS)
            if name == "llama":
                bf = AutoModelForCausalLM.from_pretrained(ckpt, attn_implementation="eager", dtype=torch.bfloat16)
                bf.eval()
                out["bf16_logits"] = bf(input_ids=ids).logits.float()
        out = {k: v.contiguous() for k, v in out.items()}
        save_file(out, os.path.join(HERE, "refs_" + name + ".safetensors"),
                  metadata={"transformers": __import__("transformers").__version__, "torch": torch.__version__})
        print(name, "max|logit|", out["logits"].abs().max().item(), "files", sorted(os.listdir(ckpt)))


if __name__ == "__main__":
    main()
