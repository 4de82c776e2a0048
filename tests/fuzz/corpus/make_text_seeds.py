#!/usr/bin/env python3
"""Writes the seed files of tests/fuzz/corpus/{config,tokenizer,hfconfig,proto}/.

Run from anywhere: python3 tests/fuzz/corpus/make_text_seeds.py. The output is committed; rerun
only when adding seeds (regression seeds found by fuzzing are added by hand, named regress_*).
The tokenizer seeds are small hand-made tokenizer.json files built like mini_json() in
tests/unit/test_tokenizer.c (GPT-2 byte-level vocab + a few merges), never the 9 MB Llama one.
The proto seeds are encoded here by hand (no protobuf package needed): field key = tag << 3 | type.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(folder, name, data):
    d = os.path.join(HERE, folder)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- config strings and overrides files (core/format.c) ----------------------------------------
CONFIGS = ["bf16", "int8wo", "int8dq", "fp8wo", "fp8dq", "fp8dq-row", "fp8dq-block", "fp8-int4",
           "int8-int4", "mxfp8", "mxfp4", "nvfp4", "nvfp4wo", "fp6", "fp6-e2m3", "w158",
           "int4wo-128", "int4wo-32", "int4wo-64-hqq", "intx3wo", "intx2wo-g64", "intx8wo-32",
           "int8-intx4", "int8-intx2-64", "codebook4", "codebook3-128",
           "int4wo-7", "intx9wo", "fp8", ""]
for c in CONFIGS:
    write("config", "cfg_" + (c or "empty").replace("-", "_"), c)
write("config", "overrides_basic",
      "# per-layer overrides\n*  int4wo-128\nlm_head bf16\n"
      "re:^model\\.layers\\.[0-3]\\.mlp\\. int8wo\nmodel.layers.0.self_attn.q_proj fp8dq-row\n")
write("config", "overrides_regex",
      "re:(q|k|v)_proj$ mxfp4\nre:down_proj int8-intx4\n\t* nvfp4 # trailing comment\n\r\n")
write("config", "overrides_bad_second_default", "* bf16\n* int8wo\n")
write("config", "overrides_bad_regex", "re:([a-z ^int4wo-128\n")
write("config", "overrides_bad_extra", "lm_head bf16 extra\n")

# ---- tokenizer.json (core/tokenizer.c) -----------------------------------------------------------
LLAMA3_RE = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
             "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


def byte_vocab():
    vocab, nxt = {}, 256
    for b in range(256):
        printable = ord("!") <= b <= ord("~") or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF
        cp = b if printable else nxt
        if not printable:
            nxt += 1
        vocab[chr(cp)] = b
    return vocab


def tokenizer(extra, merges, added, ignore_merges=False, pattern=LLAMA3_RE):
    vocab = byte_vocab()
    vocab.update(extra)
    return json.dumps({
        "version": "1.0",
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": False}]},
        "model": {"type": "BPE", "ignore_merges": ignore_merges, "vocab": vocab,
                  "merges": merges},
    }, ensure_ascii=False)


EXTRA = {"ab": 256, "bc": 257, "abc": 258, "aa": 259, "aaa": 260, "xyz": 261}
MERGES = ["b c", ["a", "b"], "a bc", "a a"]
SPECIAL = [{"id": 262, "content": "<eot>", "special": True}]
LLAMA_SPECIALS = [{"id": 263, "content": "<|begin_of_text|>", "special": True},
                  {"id": 264, "content": "<|end_of_text|>", "special": True},
                  {"id": 265, "content": "<|eot_id|>", "special": True}]
write("tokenizer", "mini_rules.json", tokenizer(EXTRA, MERGES, SPECIAL))
write("tokenizer", "mini_ignore_merges.json", tokenizer(EXTRA, MERGES, [], ignore_merges=True))
write("tokenizer", "mini_llama_specials.json",
      tokenizer(dict(EXTRA, **{"\u0120the": 266, "\u0120t": 267, "he": 268}),
                MERGES + ["\u0120 t", "h e", "\u0120t he"], SPECIAL + LLAMA_SPECIALS))
write("tokenizer", "bytes_only.json", tokenizer({}, [], []))
write("tokenizer", "bad_merge_not_in_vocab.json", tokenizer({}, ["a q_nope"], []))
write("tokenizer", "bad_dup_id.json", tokenizer({"ab": 5}, [], []))
write("tokenizer", "bad_pattern.json", tokenizer({}, [], [], pattern="\\s+"))
write("tokenizer", "bad_lstrip.json",
      tokenizer({}, [], [{"id": 300, "content": "<m>", "lstrip": True}]))

# ---- config.json / generation_config.json (core/hfconfig.c) ------------------------------------
LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 512,
         "hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 2,
         "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 32,
         "max_position_embeddings": 2048, "rms_norm_eps": 1e-05, "bos_token_id": 256,
         "eos_token_id": [257, 258], "hidden_act": "silu", "tie_word_embeddings": False,
         "rope_theta": 500000.0,
         "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                          "original_max_position_embeddings": 8192, "rope_type": "llama3"}}
write("hfconfig", "llama_tf4.json", json.dumps(LLAMA, indent=2))
tf5 = dict(LLAMA)
del tf5["rope_scaling"], tf5["rope_theta"]
tf5["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0}
tf5["eos_token_id"] = 2
tf5["tie_word_embeddings"] = True
write("hfconfig", "llama_tf5_default_rope.json", json.dumps(tf5))
minimal = {"model_type": "llama", "vocab_size": 32, "hidden_size": 16, "intermediate_size": 32,
           "num_hidden_layers": 1, "num_attention_heads": 2}
write("hfconfig", "llama_minimal.json", json.dumps(minimal))
write("hfconfig", "bad_model_type.json", json.dumps(dict(LLAMA, model_type="mistral")))
write("hfconfig", "bad_fraction.json", json.dumps(dict(LLAMA, hidden_size=256.5)))
write("hfconfig", "bad_heads.json", json.dumps(dict(LLAMA, num_key_value_heads=3)))
write("hfconfig", "generation_config.json",
      json.dumps({"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
                  "do_sample": True, "temperature": 0.6}))

# ---- aoq.Request / aoq.Reply frames (proto/aoq.proto) --------------------------------------------


def varint(v):
    if v < 0:
        v += 1 << 64
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def key(tag, wt):
    return varint(tag << 3 | wt)


def vi(tag, v):
    return key(tag, 0) + varint(v)


def ld(tag, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return key(tag, 2) + varint(len(payload)) + payload


def f32(tag, x):
    return key(tag, 5) + struct.pack("<f", x)


def packed(tag, vals):
    return ld(tag, b"".join(varint(v) for v in vals))


REQUESTS = {
    "hello": vi(1, 1) + ld(10, vi(1, 1) + ld(2, "aoqctl") + ld(3, "alice") + vi(5, 4242)),
    "generate": vi(1, 2) + ld(11, ld(1, "tiny") + packed(3, [256, 72, 105, -1]) +
                               ld(4, f32(1, 0.7) + f32(2, 0.9) + vi(3, 40) + vi(4, 7)) +
                               vi(5, 16) + packed(6, [257, 258]) + vi(7, 1) + vi(8, 1)),
    "generate_prompt": vi(1, 3) + ld(11, ld(1, "tiny") + ld(2, "Hello, world") + vi(5, 4)),
    "cancel": vi(1, 4) + ld(12, vi(1, 2)),
    "forward": vi(1, 5) + ld(13, ld(1, "tiny") + packed(2, [1, 2, 3]) + vi(3, 1) + vi(4, 64)),
    "matmul": vi(1, 6) + ld(14, ld(1, "tiny") + ld(2, "model.layers.0.mlp.down_proj") +
                             vi(3, 1) + vi(4, 0) + vi(5, 8) + vi(6, 2) + vi(7, 4096)),
    "tokenize": vi(1, 7) + ld(15, ld(1, "tiny") + ld(2, "caf\u00e9") + vi(3, 1)),
    "detokenize": vi(1, 8) + ld(16, ld(1, "tiny") + packed(2, [104, 105]) + vi(3, 1)),
    "models": vi(1, 9) + ld(17, b""),
    "buffer_register": vi(1, 10) + ld(18, ld(1, "/aoq-client-1") + vi(2, 1 << 20)),
    "buffer_create": vi(1, 11) + ld(19, vi(1, 65536)),
    "buffer_unregister": vi(1, 12) + ld(20, vi(1, 3)),
    "admin_quota": vi(1, 13) + ld(21, vi(1, 2) + ld(5, ld(1, "alice") + vi(2, 64) + vi(3, 4) +
                                                    vi(4, -5))),
    "admin_load": vi(1, 14) + ld(21, vi(1, 3) + ld(2, "tiny") + ld(3, "int4wo-128") + vi(4, 1)),
    "ping": vi(1, 15) + ld(22, b""),
    "unknown_field": vi(1, 16) + ld(22, b"") + ld(99, "kept as an unknown field"),
    "two_bodies": vi(1, 17) + ld(22, b"") + ld(19, vi(1, 4096)),
    "empty": b"",
}
for n, b in REQUESTS.items():
    write("proto", "req_" + n, b)
REPLIES = {
    "error": vi(1, 1) + ld(10, vi(1, 3) + ld(2, "model 'x' is not loaded")),
    "hello": vi(1, 2) + ld(11, vi(1, 1) + vi(2, 5) + ld(3, "uid1000") + ld(4, "0.1.0")),
    "generate": vi(1, 3) + ld(12, packed(1, [72, 105]) + ld(2, "Hi") + vi(3, 4) + ld(4, "stop")),
    "token": vi(1, 4) + vi(2, 1) + ld(13, vi(1, 72) + ld(2, "H") + vi(3, 0)),
    "models": vi(1, 5) + ld(18, ld(1, ld(1, "tiny") + ld(2, "bf16") + vi(3, 1 << 20) +
                                    vi(5, 512) + vi(6, 256) + vi(7, 4) + ld(11, "ready")) +
                               ld(1, ld(1, "b") + ld(11, "reconfiguring"))),
    "buffer": vi(1, 6) + ld(19, vi(1, 1) + ld(2, "/aoqd-1-1") + vi(3, 65536)),
    "admin": vi(1, 7) + ld(20, ld(1, "{\"models\": []}")),
    "empty": vi(1, 8) + ld(21, b""),
}
for n, b in REPLIES.items():
    write("proto", "rep_" + n, b)
