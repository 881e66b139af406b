"""Twin of bench/gptstep: one training step of a causal LM with
transformers + PEFT (LoRA on PEFT's "all-linear", alpha 2r, no dropout) or
full fine-tuning, AdamW (lr 1e-4), timed.

    python3 bench/gpt_step_peft.py -base DIR -mode lora|full -batch B -seq T -steps N -r R [-threads K]

prints one line like gptstep's: us/step, tok/s, peak_rss_mib=.
"""
import argparse
import resource
import sys
import time

import torch
from transformers import AutoModelForCausalLM


def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    p = argparse.ArgumentParser()
    p.add_argument("-base", required=True)
    p.add_argument("-mode", default="lora", choices=["lora", "full"])
    p.add_argument("-batch", type=int, default=8)
    p.add_argument("-seq", type=int, default=128)
    p.add_argument("-steps", type=int, default=10)
    p.add_argument("-warmup", type=int, default=2)
    p.add_argument("-r", type=int, default=8)
    p.add_argument("-threads", type=int, default=0)
    p.add_argument("-seed", type=int, default=0)
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    rss_start = rss_mib()
    model = AutoModelForCausalLM.from_pretrained(a.base, dtype=torch.float32, attn_implementation="eager")
    torch.manual_seed(a.seed)
    if a.mode == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=a.r, lora_alpha=2 * a.r, lora_dropout=0.0,
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))
    model.train()
    params = [q for q in model.parameters() if q.requires_grad]
    total = sum(q.numel() for q in model.parameters())
    trainable = sum(q.numel() for q in params)
    opt = torch.optim.AdamW(params, lr=1e-4)
    V = model.config.vocab_size
    g = torch.Generator().manual_seed(a.seed)
    loss_v = 0.0

    def step():
        nonlocal loss_v
        x = torch.randint(0, V, (a.batch, a.seq), generator=g)
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, V), x[:, 1:].reshape(-1))
        loss.backward()
        loss_v = loss.item()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    us = (time.perf_counter() - t0) / a.steps * 1e6
    state = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values() if torch.is_tensor(t))
    cfg = model.config
    print(f"gptstep py mode={a.mode} hidden={cfg.hidden_size} layers={cfg.num_hidden_layers} batch={a.batch} "
          f"seq={a.seq} r={a.r} params={total} trainable={trainable} opt_state_mib={state / 2**20:.1f} "
          f"threads={torch.get_num_threads()} loss={loss_v:.4f} rss_start_mib={rss_start:.1f} "
          f"peak_rss_mib={rss_mib():.1f} tok/s={a.batch * a.seq / (us / 1e6):.0f} {us:.0f} us/step")


if __name__ == "__main__":
    sys.exit(main())
