"""Reference outputs of transformers' generation for models/generate's
interop tests (generate_interop_test.go).

1. processors.safetensors: random logits (B, V) and token ids, and the
   outputs of transformers.generation.logits_process' own classes on them:
   TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper,
   RepetitionPenaltyLogitsProcessor, and the chain generate() builds for
   do_sample=True with all four (in its order).

2. Two tiny random checkpoints written with save_pretrained (safetensors):
   llama_tiny/ (LlamaForCausalLM, grouped-query attention, untied head) and
   gpt2_tiny/ (GPT2LMHeadModel, tied head), every weight re-drawn at std 0.3
   (transformers' 0.02 gives near-zero logits and near ties), and
   greedy.json with transformers' generate(do_sample=False) on them:
   one prompt, a left-padded batch with its attention mask, an EOS that
   stops a row early (finished rows padded with the pad id), and a
   repetition penalty. "margin" is the smallest gap between the best and
   the second-best score over all greedy steps, so a test can tell a
   near tie from a bug.

Run from anywhere with the interop venv (make interop-refs):
    /tmp/venv/bin/python3 models/generate/testdata/interop_generate.py
"""

import json
import os

import torch
from safetensors.torch import save_file
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    LogitsProcessorList,
)
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(1)


def processors():
    g = torch.Generator().manual_seed(20261123)
    B, V, L = 6, 64, 12
    logits = torch.randn(B, V, generator=g) * 3
    logits[0, :8] = -torch.rand(8, generator=g) * 2  # negative scores of seen tokens
    ids = torch.randint(0, V, (B, L), generator=g)
    ids[1, :4] = ids[1, 0]  # repeats count once
    out = {"logits": logits, "input_ids": ids}
    cases = {
        "temperature_0.7": TemperatureLogitsWarper(0.7),
        "temperature_1.9": TemperatureLogitsWarper(1.9),
        "top_k_1": TopKLogitsWarper(1),
        "top_k_5": TopKLogitsWarper(5),
        "top_k_200": TopKLogitsWarper(200),
        "top_p_0.9": TopPLogitsWarper(0.9),
        "top_p_0.3": TopPLogitsWarper(0.3),
        "top_p_1e-06": TopPLogitsWarper(1e-6),
        "top_p_1.0": TopPLogitsWarper(1.0),
        "repetition_1.3": RepetitionPenaltyLogitsProcessor(1.3),
        "repetition_0.7": RepetitionPenaltyLogitsProcessor(0.7),
    }
    for name, p in cases.items():
        out[name] = p(ids, logits.clone())
    chain = LogitsProcessorList([
        RepetitionPenaltyLogitsProcessor(1.2),
        TemperatureLogitsWarper(0.8),
        TopKLogitsWarper(10),
        TopPLogitsWarper(0.85),
    ])
    out["chain"] = chain(ids, logits.clone())
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(HERE, "processors.safetensors"))


def reinit(model, norm_names):
    # The references stop on EOS only where a case asks for it.
    model.generation_config.eos_token_id = None
    model.generation_config.bos_token_id = None
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(norm_names):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.normal_(0, 0.3)


def build_llama():
    torch.manual_seed(11)
    cfg = LlamaConfig(
        vocab_size=96, hidden_size=64, intermediate_size=112, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        rope_theta=10000.0, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2, pad_token_id=None,
    )
    model = LlamaForCausalLM._from_config(cfg, attn_implementation="eager").float().eval()
    reinit(model, ("norm.weight", "layernorm.weight"))
    return model


def build_gpt2():
    torch.manual_seed(12)
    cfg = GPT2Config(
        vocab_size=90, n_positions=64, n_embd=48, n_layer=2, n_head=4,
        bos_token_id=1, eos_token_id=2, pad_token_id=None,
    )
    model = GPT2LMHeadModel._from_config(cfg, attn_implementation="eager").float().eval()
    reinit(model, ("ln_1.weight", "ln_2.weight", "ln_f.weight"))
    return model


class Margin:
    """A logits processor that records the gap between the two best scores."""

    def __init__(self):
        self.min = float("inf")

    def __call__(self, input_ids, scores):
        top = scores.topk(2, dim=-1).values
        self.min = min(self.min, float((top[:, 0] - top[:, 1]).min()))
        return scores


def greedy(model, ids, mask, new, **kw):
    m = Margin()
    with torch.no_grad():
        out = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=new, do_sample=False,
            logits_processor=LogitsProcessorList([m]), **kw,
        )
    return out[:, ids.shape[1]:].tolist(), m.min


def cases(model, V, seed):
    g = torch.Generator().manual_seed(seed)
    lens = [7, 3, 5]
    P = max(lens)
    pad = 0
    prompts = [torch.randint(1, V, (n,), generator=g).tolist() for n in lens]
    ids = torch.tensor([[pad] * (P - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in prompts])
    new = 16
    res = {"prompts": prompts, "pad": pad, "max_new_tokens": new}

    single, m1 = greedy(model, ids[:1], mask[:1], new, pad_token_id=pad)
    res["single"] = single[0]
    batch, m2 = greedy(model, ids, mask, new, pad_token_id=pad)
    res["batch"] = batch
    # An EOS that row 1 produces at its 4th step (and that is not its 1st..3rd).
    eos = batch[1][3]
    stopped, m3 = greedy(model, ids, mask, new, pad_token_id=pad, eos_token_id=eos)
    res["eos"] = eos
    res["batch_eos"] = stopped
    rep, m4 = greedy(model, ids, mask, new, pad_token_id=pad, repetition_penalty=1.5)
    res["repetition_penalty"] = 1.5
    res["batch_repetition"] = rep
    res["margin"] = min(m1, m2, m3, m4)
    return res


def main():
    processors()
    refs = {}
    for name, build, seed in (("llama_tiny", build_llama, 21), ("gpt2_tiny", build_gpt2, 22)):
        model = build()
        model.save_pretrained(os.path.join(HERE, name))
        refs[name] = cases(model, model.config.vocab_size, seed)
        print(name, "margin", refs[name]["margin"], "batch_eos", refs[name]["batch_eos"])
    with open(os.path.join(HERE, "greedy.json"), "w") as f:
        json.dump(refs, f, indent=1)


if __name__ == "__main__":
    main()
