"""The transformers twin of bench/decode (Go): prefill tokens/s and greedy
decoding ms/token of a causal LM with a KV cache, on the CPU, in float32.

    python3 bench/decode_twin.py -model DIR [-prompt N -new N -batch B -threads T -repeats K]
    python3 bench/decode_twin.py -arch llama|gpt2 -size tiny|gpt2-small [...]
    python3 bench/decode_twin.py -arch llama|gpt2 -size tiny|gpt2-small -save DIR

It takes bench/decode's flags and prints the same line. -model loads a
checkpoint with AutoModelForCausalLM.from_pretrained(dir, dtype=float32,
attn_implementation="eager") (golora runs transformers' eager attention);
-arch/-size build the random model in memory; with -save they write it
with save_pretrained into DIR and exit, so that both sides can load the
same checkpoint (bench/decode/run.sh does). The configurations are
bench/decode/main.go's ConfigJSON, field for field.

What is timed, as in Go: each repeat starts with an empty cache; the
prefill is one forward pass over the prompt, model(ids, use_cache=True,
logits_to_keep=1) (the last position's logits only, as generate's prefill),
whose argmax is the first new token; then -new decoding steps, a manual
greedy loop: model(next, past_key_values=past, use_cache=True,
logits_to_keep=1), next = argmax of the last logits (kept as a tensor, not
read back to the host until the end). This is generate(do_sample=False)'s
model work without its per-step bookkeeping (logits processors, stopping
criteria, the cat of the output ids, the host sync of "unfinished"), so
transformers is not charged for generate's overhead; the figures are the
model's forward passes on both sides. All under torch.inference_mode(),
with torch.set_num_threads(threads).
"""

import argparse
import os
import resource
import sys
import time

sys.path[:] = [p for p in sys.path if p not in ("", ".")]  # the repository's torch/ is Go

import torch  # noqa: E402
import transformers  # noqa: E402


def configs(arch, size):
    """The config.json fields of -arch/-size (main.go's ConfigJSON)."""
    if arch == "llama" and size == "tiny":  # models/llama/testdata/ckpt_llama
        return dict(vocab_size=128, hidden_size=64, intermediate_size=96,
                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                    max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=False,
                    initializer_range=0.1, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    if arch == "llama":
        return dict(vocab_size=50257, hidden_size=768, intermediate_size=2048,
                    num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=12,
                    max_position_embeddings=1024, rms_norm_eps=1e-5, tie_word_embeddings=True,
                    initializer_range=0.02, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    if size == "tiny":  # models/gpt2/testdata/gpt2_tiny with n_positions 1024
        return dict(vocab_size=97, n_embd=32, n_layer=3, n_head=4, n_positions=1024,
                    initializer_range=0.1, bos_token_id=1, eos_token_id=2)
    return dict(vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024,
                initializer_range=0.02)


def build(arch, size, seed):
    torch.manual_seed(seed)
    kw = configs(arch, size)
    if arch == "llama":
        cfg = transformers.LlamaConfig(**kw)
        cls = transformers.LlamaForCausalLM
    else:
        cfg = transformers.GPT2Config(**kw)
        cls = transformers.GPT2LMHeadModel
    cfg._attn_implementation = "eager"
    return cls(cfg).to(torch.float32).eval()


def once(a, model, prompt):
    """One repeat: (prefill s, decode s, decode CPU s, checksum)."""
    with torch.inference_mode():
        t0 = time.perf_counter()
        out = model(input_ids=prompt, use_cache=True, logits_to_keep=1)
        past = out.past_key_values
        nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)  # [B, 1]
        prefill = time.perf_counter() - t0
        toks = [nxt]
        c0, t1 = time.process_time(), time.perf_counter()
        for _ in range(a.new):
            out = model(input_ids=nxt, past_key_values=past, use_cache=True, logits_to_keep=1)
            past = out.past_key_values
            nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
            toks.append(nxt)
        decode, cpu = time.perf_counter() - t1, time.process_time() - c0
        ids = torch.cat(toks, 1).reshape(-1).tolist()
    n = a.new + 1
    return prefill, decode, cpu, sum(t * (i % n + 1) for i, t in enumerate(ids))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-model", default="")
    p.add_argument("-arch", default="", choices=["", "llama", "gpt2"])
    p.add_argument("-size", default="tiny", choices=["tiny", "gpt2-small"])
    p.add_argument("-prompt", type=int, default=32)
    p.add_argument("-new", type=int, default=64)
    p.add_argument("-batch", type=int, default=1)
    p.add_argument("-threads", type=int, default=1)
    p.add_argument("-repeats", type=int, default=3)
    p.add_argument("-seed", type=int, default=0)
    p.add_argument("-save", default="", help="write the -arch/-size model here and exit")
    p.add_argument("-cpuprofile", default="", help="ignored (Go's flag)")
    a = p.parse_args()
    if bool(a.model) == bool(a.arch):
        p.error("give exactly one of -model DIR and -arch llama|gpt2")
    for name in ("prompt", "new", "batch", "repeats"):
        if getattr(a, name) <= 0:
            p.error(f"-{name} must be positive")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    if a.save:
        if not a.arch:
            p.error("-save needs -arch")
        build(a.arch, a.size, a.seed).save_pretrained(a.save)
        return
    if a.model:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            a.model, dtype=torch.float32, attn_implementation="eager").eval()
    else:
        model = build(a.arch, a.size, a.seed)
    vocab = model.config.vocab_size
    prompt = torch.tensor([[(7 * t + 3 * b + 1) % vocab for t in range(a.prompt)] for b in range(a.batch)],
                          dtype=torch.int64)
    once(a, model, prompt)  # warm-up
    rs = [once(a, model, prompt) for _ in range(a.repeats)]
    pre = sorted(r[0] for r in rs)
    dec = sorted(r[1] for r in rs)
    cpu = min(r[2] for r in rs)
    toks = a.batch * a.prompt
    per = lambda s: s * 1e3 / a.new  # noqa: E731
    name = model.config.model_type
    print(f"py {name} B={a.batch} prompt={a.prompt} new={a.new} threads={torch.get_num_threads()} "
          f"repeats={a.repeats} libtorch={torch.__version__} tokens={rs[0][3]} prefill_ms={pre[0] * 1e3:.3f} "
          f"median_prefill_tok_s={toks / pre[len(pre) // 2]:.1f} median_decode_ms_per_token={per(dec[len(dec) // 2]):.4f} "
          f"cpu_ms_per_token={per(cpu):.4f} prefill_tok_s={toks / pre[0]:.1f} decode_ms_per_token={per(dec[0]):.4f}")


if __name__ == "__main__":
    main()
