"""PEFT LoRA adapters on real transformers checkpoints, for models/'s
interop tests (lora_interop_test.go): LoRA v2 (lora/) on the Hugging Face
models (models/) against PEFT 0.21.2 and transformers 5.

Writes, under lora_interop/ next to this file (gitignored):

  llama/   a tiny random LlamaForCausalLM (GQA: 4 heads, 2 kv heads; untied
           head), save_pretrained;
  gpt2/    a tiny random GPT2LMHeadModel (tied head), save_pretrained.
           Every weight is re-drawn at std ~0.3 (transformers' 0.02 gives
           near-zero logits and a weak test).
  <case>/  a PEFT adapter for one of them, made with get_peft_model on the
           real model class and saved with save_pretrained (a second adapter
           in <case>/second/, as PEFT writes it). Every lora_B, every
           embedding A and B, and every DoRA magnitude are randomised, so
           each adapter changes the output. The cases (CASES below):
             llama_qv      q_proj, v_proj, r 4
             llama_dora    use_dora, "all-linear"
             llama_rslora  use_rslora, "all-linear", r 8
             llama_two     two adapters ("default": q_proj, v_proj;
                           "second": k_proj, o_proj, down_proj and the
                           embedding embed_tokens, rsLoRA)
             gpt2_conv1d   c_attn, c_fc (Conv1D, fan_in_fan_out=True)
             gpt2_wte      c_attn, c_fc and the (tied) embedding wte
             gpt2_dora     use_dora on c_attn, c_proj (Conv1D)
             gpt2_two      two adapters ("default": c_attn, c_fc;
                           "second": c_proj, c_attn, r 2)
  refs.safetensors  (metadata "refs": JSON {cases, mixed, versions})
           <model>.ids             int64 [4, 10]
           <model>.base            transformers' float32 logits [4, 10, V]
           <case>.logits           PEFT's logits with the adapter ("default")
           <case>.logits.second    the second adapter alone (two-adapter cases)
           <case>.mixed            forward(adapter_names=MIXED), one adapter
                                   per sample (two-adapter cases)
           <case>.merged           logits after merge_and_unload() (of the
                                   active adapter, "default"). For gpt2_wte
                                   they differ from .logits: GPT-2's head is
                                   tied to wte, and PEFT merges the embedding
                                   update into that shared weight, so the
                                   merged head changes too.

The reference logits are computed after reloading each adapter from its
files (PeftModel.from_pretrained on a base from from_pretrained), so they are
what the files hold. Deterministic: fixed seeds, one thread, sorted
target_modules and a fixed base_model_name_or_path in adapter_config.json.

Run (make interop-refs): /tmp/venv/bin/python3 models/testdata/interop_lora_models.py
"""

import json
import os
import shutil
import warnings

import peft
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
from transformers.utils import logging as hf_logging

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "lora_interop")
MIXED = ["default", "second", "__base__", "default"]

torch.set_num_threads(1)
warnings.simplefilter("ignore")
hf_logging.disable_progress_bar()

LLAMA = dict(
    vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
    rms_norm_eps=1e-5, pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
)
GPT2 = dict(vocab_size=97, n_positions=48, n_embd=32, n_layer=2, n_head=4, bos_token_id=1, eos_token_id=2)

# case -> (model, {adapter name: LoraConfig kwargs}); "default" first.
CASES = {
    "llama_qv": ("llama", {"default": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])}),
    "llama_dora": ("llama", {"default": dict(r=4, lora_alpha=8, target_modules="all-linear", use_dora=True)}),
    "llama_rslora": ("llama", {"default": dict(r=8, lora_alpha=16, target_modules="all-linear", use_rslora=True)}),
    "llama_two": ("llama", {
        "default": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
        "second": dict(r=2, lora_alpha=4, target_modules=["k_proj", "o_proj", "down_proj", "embed_tokens"],
                       use_rslora=True),
    }),
    "gpt2_conv1d": ("gpt2", {"default": dict(r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"], fan_in_fan_out=True)}),
    "gpt2_wte": ("gpt2", {"default": dict(r=4, lora_alpha=8, target_modules=["c_attn", "c_fc", "wte"],
                                          fan_in_fan_out=True)}),
    "gpt2_dora": ("gpt2", {"default": dict(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj"], fan_in_fan_out=True,
                                           use_dora=True)}),
    "gpt2_two": ("gpt2", {
        "default": dict(r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"], fan_in_fan_out=True),
        "second": dict(r=2, lora_alpha=4, target_modules=["c_proj", "c_attn"], fan_in_fan_out=True),
    }),
}


def build_bases():
    torch.manual_seed(0)
    llama = LlamaForCausalLM(LlamaConfig(**LLAMA))
    with torch.no_grad():
        for name, p in llama.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif "embed_tokens" in name:
                p.normal_(0, 0.5)
            else:
                p.normal_(0, 0.25)
    llama.save_pretrained(os.path.join(OUT, "llama"))

    torch.manual_seed(1)
    gpt2 = GPT2LMHeadModel(GPT2Config(**GPT2))
    with torch.no_grad():
        for name, p in gpt2.named_parameters():
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.copy_(1 + 0.3 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.normal_(0, 0.1)
            else:
                p.normal_(0, 0.3)
    gpt2.save_pretrained(os.path.join(OUT, "gpt2"))


def load_base(model):
    m = AutoModelForCausalLM.from_pretrained(os.path.join(OUT, model), attn_implementation="eager",
                                             dtype=torch.float32)
    return m.eval()


def randomise(pm, names):
    """Every lora_B, embedding A and B and DoRA magnitude of the adapters
    names gets random values: each adapter then changes the output."""
    with torch.no_grad():
        for _, m in pm.named_modules():
            if not isinstance(m, LoraLayer):
                continue
            for a in names:
                if a in m.lora_B:
                    m.lora_B[a].weight.normal_(0, 0.2)
                if a in m.lora_embedding_A:
                    m.lora_embedding_A[a].normal_(0, 0.3)
                    m.lora_embedding_B[a].normal_(0, 0.3)
                if a in m.lora_magnitude_vector:
                    w = m.lora_magnitude_vector[a].weight
                    w.mul_(1 + 0.2 * torch.randn_like(w))


def fix_config(d, base):
    """PEFT keeps target_modules in a set (its order follows the hash seed)
    and writes the base's absolute path: make the file deterministic."""
    path = os.path.join(d, "adapter_config.json")
    with open(path) as f:
        cfg = json.load(f)
    if isinstance(cfg["target_modules"], list):
        cfg["target_modules"] = sorted(cfg["target_modules"])
    cfg["base_model_name_or_path"] = base
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)


def logits(model, ids, **kw):
    with torch.no_grad():
        return model(input_ids=ids, **kw).logits.float().contiguous()


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    build_bases()
    refs = {}
    for i, model in enumerate(["llama", "gpt2"]):
        base = load_base(model)
        g = torch.Generator().manual_seed(10 + i)
        ids = torch.randint(3, base.config.vocab_size, (len(MIXED), 10), generator=g)
        refs[model + ".ids"] = ids
        refs[model + ".base"] = logits(base, ids)
        print(f"{model}: max|logit| {refs[model + '.base'].abs().max().item():.3f}")

    for ci, (case, (model, adapters)) in enumerate(CASES.items()):
        ids, base_logits = refs[model + ".ids"], refs[model + ".base"]
        d = os.path.join(OUT, case)
        # Create, randomise and save with PEFT.
        torch.manual_seed(100 + ci)
        names = list(adapters)
        pm = None
        for a in names:
            cfg = LoraConfig(**adapters[a])
            if pm is None:
                pm = get_peft_model(load_base(model), cfg, adapter_name=a)
            else:
                pm.add_adapter(a, cfg)
        randomise(pm, names)
        pm.save_pretrained(d, selected_adapters=names)
        for a in names:
            fix_config(d if a == "default" else os.path.join(d, a), model)

        # Reload from the files, as a user would, and record the logits.
        pm = PeftModel.from_pretrained(load_base(model), d, adapter_name="default").eval()
        for a in names[1:]:
            pm.load_adapter(os.path.join(d, a), adapter_name=a)
        pm.set_adapter("default")
        y = logits(pm, ids)
        refs[case + ".logits"] = y
        msg = f"{case}: vs base {rel(y, base_logits):.3f}"
        assert rel(y, base_logits) > 1e-2, f"{case}: the adapter does not change the output"
        if len(names) > 1:
            pm.set_adapter("second")
            y2 = logits(pm, ids)
            assert rel(y2, base_logits) > 1e-2 and rel(y2, y) > 1e-2, case
            refs[case + ".logits.second"] = y2
            pm.set_adapter("default")
            mixed = logits(pm, ids, adapter_names=MIXED)
            refs[case + ".mixed"] = mixed
            # The mixed batch is each sample's own adapter.
            per = {"default": y, "second": y2, "__base__": base_logits}
            for b, a in enumerate(MIXED):
                assert rel(mixed[b], per[a][b]) < 1e-5, (case, b, a)
            msg += f", second vs base {rel(y2, base_logits):.3f}"
        merged = pm.merge_and_unload()
        refs[case + ".merged"] = logits(merged, ids)
        msg += f", merged vs unmerged {rel(refs[case + '.merged'], y):.2e}"
        print(msg, "files", sorted(os.listdir(d)))

    # One metadata key: safetensors writes several in hash order, and the
    # file would not be byte-for-byte reproducible.
    meta = {"refs": json.dumps({
        "cases": {c: {"model": m, "adapters": list(a)} for c, (m, a) in CASES.items()},
        "mixed": MIXED,
        "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
    }, sort_keys=True)}
    save_file({k: v.contiguous() for k, v in refs.items()}, os.path.join(OUT, "refs.safetensors"), metadata=meta)


if __name__ == "__main__":
    main()
