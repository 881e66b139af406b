"""Reference outputs of transformers' GPT2LMHeadModel for models/gpt2's
interop tests (gpt2_interop_test.go).

Builds two tiny random GPT-2 checkpoints with save_pretrained (safetensors):
gpt2_tiny/ (tied lm_head, the defaults) and gpt2_untied/ (untied lm_head,
n_inner, scale_attn_by_inverse_layer_idx). Every parameter is re-drawn with a
non-trivial scale (transformers' std 0.02 gives near-zero logits and a weak
test). Then records, per model, in interop_gpt2.safetensors:

  <name>.input_ids, <name>.attention_mask   a left-padded batch
  <name>.position_ids                        as generate makes them from the mask
  <name>.logits                              eager attention, float32
  <name>.plain_ids, <name>.plain_logits      an unpadded batch, no mask
  <name>.generated                           greedy generate(), new tokens only

Run from anywhere with the interop venv (make interop-refs):
    /tmp/venv/bin/python3 models/gpt2/testdata/interop_gpt2.py
"""

import json
import os

import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(1)

MODELS = {
    "gpt2_tiny": dict(vocab_size=97, n_positions=48, n_embd=32, n_layer=3, n_head=4),
    "gpt2_untied": dict(
        vocab_size=89, n_positions=40, n_embd=24, n_layer=2, n_head=3, n_inner=40,
        tie_word_embeddings=False, scale_attn_by_inverse_layer_idx=True,
    ),
}
NEW_TOKENS = 10


def build(name, kw, seed):
    torch.manual_seed(seed)
    cfg = GPT2Config(bos_token_id=1, eos_token_id=2, **kw)
    model = GPT2LMHeadModel._from_config(cfg, attn_implementation="eager").float().eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.copy_(1 + 0.3 * torch.randn_like(p))
            else:
                p.normal_(0, 0.3)
    out = os.path.join(HERE, name)
    model.save_pretrained(out)
    return model, out


def main():
    refs, dirs = {}, {}
    for i, (name, kw) in enumerate(MODELS.items()):
        model, out = build(name, kw, seed=1234 + i)
        dirs[name] = out
        V = kw["vocab_size"]
        g = torch.Generator().manual_seed(99 + i)
        B, T = 3, 9
        ids = torch.randint(3, V, (B, T), generator=g)
        mask = torch.ones(B, T, dtype=torch.long)
        for b, pad in enumerate([0, 3, 5]):  # left padding
            mask[b, :pad] = 0
            ids[b, :pad] = 0  # pad token id 0
        pos = mask.cumsum(-1) - 1
        pos = pos.masked_fill(mask == 0, 0)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
            plain = torch.randint(0, V, (2, 7), generator=g)
            plain_logits = model(input_ids=plain).logits
            gen = model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                do_sample=False, pad_token_id=0, num_beams=1, output_scores=True, return_dict_in_generate=True,
            )
        # Greedy must not hinge on a near tie, which another libtorch could
        # break the other way: the best token leads the second by a margin.
        margin = min((s.topk(2).values[:, 0] - s.topk(2).values[:, 1]).min().item() for s in gen.scores)
        assert margin > 1e-3 * logits.abs().max().item(), f"{name}: a near tie in greedy decoding ({margin})"
        gen = gen.sequences
        assert gen.shape == (B, T + NEW_TOKENS), gen.shape
        refs.update({
            f"{name}.input_ids": ids, f"{name}.attention_mask": mask, f"{name}.position_ids": pos,
            f"{name}.logits": logits.float().contiguous(),
            f"{name}.plain_ids": plain, f"{name}.plain_logits": plain_logits.float().contiguous(),
            f"{name}.generated": gen[:, T:].contiguous(),
        })
        print(f"{name}: max|logit| {logits.abs().max().item():.3f}, generated {gen[:, T:].tolist()}, "
              f"smallest greedy margin {margin:.3g}")
    meta = {"torch": torch.__version__, "models": json.dumps(list(dirs)), "new_tokens": str(NEW_TOKENS)}
    save_file(refs, os.path.join(HERE, "interop_gpt2.safetensors"), metadata=meta)


if __name__ == "__main__":
    main()
