"""Python twin of the Go benchmarks BenchmarkEncode and BenchmarkEncodeBatch
(tokenizer_interop_test.go): times the `tokenizers` library on the same
tokenizer.json files and the same text. Needs the outputs of
interop_tokenizers.py (make interop-refs). Run from the repository root:

    /tmp/venv/bin/python3 tokenizer/testdata/bench_twin.py

It prints one line per tokenizer: MB/s of Tokenizer.encode (one call on one
text: single-threaded), of encode_batch on the reference strings (Rayon, all
cores), and of encode_batch_fast([text]) (one text without offsets), as the
Go benchmarks report them. Each figure is the best of several rounds of at
least 0.2 s over about 2 s.
"""
import json
import os
import sys
import time

from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
IN = os.path.join(HERE, "interop")


def best_rate(fn, nbytes, min_time=2.0):
    # Best of several rounds, each long enough to be measured well.
    n, t = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t = time.perf_counter() - t0
        if t > 0.2:
            break
        n *= 2
    rates = []
    end = time.perf_counter() + min_time
    while time.perf_counter() < end or len(rates) < 3:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        rates.append(n * nbytes / (time.perf_counter() - t0) / 1e6)
    return max(rates)


def main():
    with open(os.path.join(IN, "expected.json"), encoding="utf-8") as f:
        ref = json.load(f)
    strings = ref["strings"]
    long = max(strings, key=len)
    text = (long + "\n") * 8
    nbytes = len(text.encode("utf-8"))
    batch_bytes = sum(len(s.encode("utf-8")) for s in strings)
    names = sys.argv[1:] or sorted(ref["tokenizers"])
    print("tokenizer          encode MB/s  encode_batch MB/s  encode_fast MB/s  (text %d bytes, batch %d strings)"
          % (nbytes, len(strings)))
    for name in names:
        tok = Tokenizer.from_file(os.path.join(IN, name, "tokenizer.json"))
        bare = Tokenizer.from_file(os.path.join(IN, name, "tokenizer.json"))
        bare.no_padding()
        bare.no_truncation()
        single = best_rate(lambda: bare.encode(text, add_special_tokens=True), nbytes)
        # encode_batch_fast skips the offsets: the closest to Go's Encode,
        # which returns ids only (one text: one thread).
        fast = best_rate(lambda: bare.encode_batch_fast([text], add_special_tokens=True), nbytes)
        batch = best_rate(lambda: tok.encode_batch(strings, add_special_tokens=True), batch_bytes)
        print("%-18s %11.2f  %17.2f  %16.2f" % (name, single, batch, fast))


if __name__ == "__main__":
    main()
