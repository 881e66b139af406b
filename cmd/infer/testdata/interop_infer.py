"""Reference outputs of transformers, tokenizers and PEFT for cmd/infer's
interop tests (infer_interop_test.go).

Writes, next to this file:

  llama_tok/   LlamaForCausalLM (GQA, untied head) with a byte-level BPE
               tokenizer.json trained here, whose post-processor puts <s>
               first; generation_config.json has eos </s>.
  gpt2_tok/    GPT2LMHeadModel (tied head) with its own byte-level BPE
               tokenizer.json (no special tokens added).
  bert_tiny/   BertModel (an encoder, no tokenizer).
  adapter_llama/  a PEFT LoRA adapter for llama_tok (q_proj, v_proj, r 4,
               lora_B non-zero: init_lora_weights=False).
  adapter_gpt2/   a PEFT LoRA adapter for gpt2_tok (c_attn): an adapter for
               another base when given with llama_tok.
  score_<name>.safetensors  input_ids and attention_mask (left padding for
               the causal LMs, right padding for BERT) and transformers'
               float32 output: logits, or last_hidden_state for BERT, of
               model(input_ids=..., attention_mask=...). For
               llama_tok+adapter the logits are the PEFT model's.
  refs.json    tokenize cases (tokenizers' ids with and without special
               tokens) and greedy generation cases (prompt, transformers'
               generate(do_sample=False) new ids and their decoded text;
               then with stop_strings=[stop], a stop string taken from the
               middle of that text).

Every weight is re-drawn at std 0.3 (transformers' 0.02 gives near-zero
logits and near ties in greedy decoding). Deterministic: fixed seeds, one
thread.

Run from anywhere with the interop venv (make interop-refs):
    /tmp/venv/bin/python3 cmd/infer/testdata/interop_infer.py
"""

import json
import os

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(1)

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A journey of a thousand miles begins with a single step.",
    "Go programs call libtorch through cgo; tensors live in C++ memory.",
    "Low-rank adapters train a small update B·A on a frozen weight.",
    "func main() { fmt.Println(\"hello, world\") }",
    "Café, naïve, déjà vu — accents and dashes.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 3.14159",
    "日本語のテキストも少し。 emoji 🙂🚀",
    "    indented code\n\tand tabs\n\nnew paragraphs",
] * 20

TOKENIZE = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "  leading spaces and trailing  ",
    "Café déjà vu 🙂 日本語",
    "line one\nline two\n\n\ttab",
    "special <s> inside </s> text",
    "",
]

PROMPTS = ["The quick brown", "Go programs call"]


def train_tokenizer(bos_template, vocab_size, seed_text_order):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "</s>", "<pad>"] if bos_template else ["<|endoftext|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = CORPUS if seed_text_order == 0 else list(reversed(CORPUS))
    tok.train_from_iterator(corpus, trainer)
    if bos_template:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def reinit(model, norm_suffixes):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(norm_suffixes):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.normal_(0, 0.1)
            else:
                p.normal_(0, 0.3)


def save_adapter(peft_model, name, base_name):
    """save_pretrained, then make adapter_config.json deterministic: PEFT
    keeps target_modules in a set (its order follows the hash seed) and
    writes the base's absolute path."""
    out = os.path.join(HERE, name)
    peft_model.save_pretrained(out)
    path = os.path.join(out, "adapter_config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["target_modules"] = sorted(cfg["target_modules"])
    cfg["base_model_name_or_path"] = base_name
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)


def save_score(name, ids, mask, key, out):
    save_file(
        {"input_ids": ids.contiguous(), "attention_mask": mask.contiguous(), key: out.float().contiguous()},
        os.path.join(HERE, f"score_{name}.safetensors"),
    )


def left_padded(tok, texts, pad):
    enc = [tok.encode(t).ids for t in texts]
    T = max(len(e) for e in enc)
    ids = torch.tensor([[pad] * (T - len(e)) + e for e in enc])
    mask = torch.tensor([[0] * (T - len(e)) + [1] * len(e) for e in enc])
    return ids, mask


def generation_cases(model, tok, eos, pad, new=12):
    cases = []
    for p in PROMPTS:
        ids = tok.encode(p).ids
        x = torch.tensor([ids])
        with torch.no_grad():
            out = model.generate(
                input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=new, do_sample=False,
                eos_token_id=eos, pad_token_id=pad,
            )
        newids = out[0, len(ids):].tolist()
        text = tok.decode(newids, skip_special_tokens=True)
        case = {
            "prompt": p, "max_new_tokens": new, "prompt_ids": ids, "new_ids": newids, "text": text,
        }
        # A stop string taken from the middle of the greedy text: the
        # first 2 characters from the 4th on, without U+FFFD, that do not
        # occur earlier; transformers' stop_strings then cuts there.
        for i in range(3, len(text) - 2):
            stop = text[i:i + 2]
            if "\ufffd" not in stop and text.find(stop) == i:
                break
        else:
            raise SystemExit(f"no stop string in {text!r}")
        with torch.no_grad():
            out = model.generate(
                input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=new, do_sample=False,
                eos_token_id=eos, pad_token_id=pad, stop_strings=[stop],
                tokenizer=PreTrainedTokenizerFast(tokenizer_object=tok),
            )
        stopped = out[0, len(ids):].tolist()
        assert len(stopped) < len(newids), (stop, text)
        case["stop"] = stop
        case["stop_ids"] = stopped
        case["stop_text"] = tok.decode(stopped, skip_special_tokens=True)
        cases.append(case)
    return cases


def main():
    refs = {"tokenize": {}, "generate": {}}

    # Llama with a BOS template.
    tok = train_tokenizer(True, 300, 0)
    V = tok.get_vocab_size()
    bos, eos, pad = tok.token_to_id("<s>"), tok.token_to_id("</s>"), tok.token_to_id("<pad>")
    torch.manual_seed(31)
    cfg = LlamaConfig(
        vocab_size=V, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=False,
        bos_token_id=bos, eos_token_id=eos, pad_token_id=pad,
    )
    llama = LlamaForCausalLM._from_config(cfg, attn_implementation="eager").float().eval()
    reinit(llama, ("norm.weight", "layernorm.weight"))
    d = os.path.join(HERE, "llama_tok")
    llama.save_pretrained(d)
    tok.save(os.path.join(d, "tokenizer.json"))
    refs["tokenize"]["llama_tok"] = [
        {"text": t, "special": tok.encode(t).ids, "plain": tok.encode(t, add_special_tokens=False).ids}
        for t in TOKENIZE
    ]
    refs["generate"]["llama_tok"] = generation_cases(llama, tok, eos, pad)
    ids, mask = left_padded(tok, ["The lazy dog", "A journey of a thousand miles", "Café"], pad)
    with torch.no_grad():
        save_score("llama_tok", ids, mask, "logits", llama(input_ids=ids, attention_mask=mask).logits)

    # The adapter, on a copy of the model.
    torch.manual_seed(32)
    base = LlamaForCausalLM.from_pretrained(d, attn_implementation="eager").float().eval()
    peft_model = get_peft_model(base, LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False, lora_dropout=0.0,
    )).eval()
    save_adapter(peft_model, "adapter_llama", "llama_tok")
    with torch.no_grad():
        save_score("llama_tok_adapter", ids, mask, "logits", peft_model(input_ids=ids, attention_mask=mask).logits)
    refs["generate"]["llama_tok_adapter"] = generation_cases(peft_model, tok, eos, pad)

    # GPT-2 with a plain byte-level tokenizer.
    tok2 = train_tokenizer(False, 280, 1)
    V2 = tok2.get_vocab_size()
    eot = tok2.token_to_id("<|endoftext|>")
    torch.manual_seed(33)
    cfg2 = GPT2Config(vocab_size=V2, n_positions=64, n_embd=48, n_layer=2, n_head=4, bos_token_id=eot, eos_token_id=eot)
    gpt2 = GPT2LMHeadModel._from_config(cfg2, attn_implementation="eager").float().eval()
    reinit(gpt2, ("ln_1.weight", "ln_2.weight", "ln_f.weight"))
    d2 = os.path.join(HERE, "gpt2_tok")
    gpt2.save_pretrained(d2)
    tok2.save(os.path.join(d2, "tokenizer.json"))
    refs["tokenize"]["gpt2_tok"] = [
        {"text": t, "special": tok2.encode(t).ids, "plain": tok2.encode(t, add_special_tokens=False).ids}
        for t in TOKENIZE
    ]
    refs["generate"]["gpt2_tok"] = generation_cases(gpt2, tok2, eot, eot)
    ids2, mask2 = left_padded(tok2, ["Numbers: 3.14", "The quick brown fox jumps", "emoji 🙂"], eot)
    with torch.no_grad():
        save_score("gpt2_tok", ids2, mask2, "logits", gpt2(input_ids=ids2, attention_mask=mask2).logits)
    torch.manual_seed(34)
    base2 = GPT2LMHeadModel.from_pretrained(d2).float().eval()
    save_adapter(get_peft_model(base2, LoraConfig(r=2, target_modules=["c_attn"], init_lora_weights=False,
                                                  fan_in_fan_out=True)), "adapter_gpt2", "gpt2_tok")

    # BERT, an encoder.
    torch.manual_seed(35)
    cfg3 = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=48, max_position_embeddings=40)
    bert = BertModel._from_config(cfg3, attn_implementation="eager").float().eval()
    reinit(bert, ("LayerNorm.weight",))
    d3 = os.path.join(HERE, "bert_tiny")
    bert.save_pretrained(d3)
    g = torch.Generator().manual_seed(36)
    ids3 = torch.randint(1, 120, (2, 9), generator=g)
    mask3 = torch.ones_like(ids3)
    mask3[1, 6:] = 0
    ids3[1, 6:] = 0
    with torch.no_grad():
        save_score("bert_tiny", ids3, mask3, "last_hidden_state",
                   bert(input_ids=ids3, attention_mask=mask3).last_hidden_state)

    with open(os.path.join(HERE, "refs.json"), "w") as f:
        json.dump(refs, f, indent=1, ensure_ascii=False)
    for name, cases in refs["generate"].items():
        for c in cases:
            print(name, repr(c["prompt"]), "->", repr(c["text"]), c["new_ids"], "stop", repr(c["stop"]), c["stop_ids"])


if __name__ == "__main__":
    main()
