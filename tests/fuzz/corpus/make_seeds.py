#!/usr/bin/env python3
"""Writes the small seed files of tests/fuzz/corpus/safetensors/ (valid and invalid images).

Run from anywhere: python3 tests/fuzz/corpus/make_seeds.py. The output is committed; rerun only
when adding seeds. The torchao golden files (tests/data/golden) are the large valid seeds.
"""
import json
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "safetensors")
SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
         "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
         "F8_E8M0": 1, "F4_E2M1X2": 1}


def image(header_text, data, pad=True, hlen=None):
    h = header_text.encode()
    if pad:
        h += b" " * (-len(h) % 8)
    n = len(h) if hlen is None else hlen
    return struct.pack("<Q", n) + h + data


def valid(tensors, meta=None):
    """tensors: list of (name, dtype, shape); data is a counting byte pattern."""
    hdr, off = {}, 0
    if meta is not None:
        hdr["__metadata__"] = meta
    for name, dt, shape in tensors:
        n = SIZES[dt]
        for d in shape:
            n *= d
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    return image(json.dumps(hdr, separators=(",", ":")), bytes(i % 251 for i in range(off)))


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {
        "valid_empty.safetensors": valid([]),
        "valid_one_f32.safetensors": valid([("w", "F32", [2, 3])]),
        "valid_all_dtypes.safetensors": valid(
            [("t_" + dt, dt, [2, 3]) for dt in SIZES], {"format": "pt", "note": "all dtypes"}),
        "valid_scalar_empty_8d.safetensors": valid(
            [("scalar", "F64", []), ("empty", "BF16", [4, 0]), ("d8", "U8", [1, 2, 1, 2, 1, 2, 1, 2])]),
        "valid_torchao_like.safetensors": valid(
            [("q.qdata", "F8_E4M3", [4, 32]), ("q.scale", "U8", [4, 1]), ("weight", "BF16", [4, 32])],
            {"q.scale.dtype": "torch.float8_e8m0fnu", "subclass": "MXTensor"}),
        "valid_escaped_names.safetensors": image(
            '{"a\\"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
            '"\\u00e9\\n":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', b"xy"),
        "valid_f4_codes.safetensors": image(
            '{"a":{"dtype":"F4","shape":[2,4],"data_offsets":[0,4]},'
            '"b":{"dtype":"F8_E8M0","shape":[2],"data_offsets":[4,6]}}', bytes(range(6))),
        "bad_f4_odd.safetensors": image(
            '{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}', bytes(2)),
        "bad_overlap.safetensors": image(
            '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
            '"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', bytes(12)),
        "bad_size_mismatch.safetensors": image(
            '{"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,4]}}', bytes(4)),
        "bad_dtype.safetensors": image(
            '{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}', bytes(16)),
        "bad_header_too_long.safetensors": image('{}', b"", hlen=4096),
        "bad_not_object.safetensors": image('[{"dtype":"F32"}]', b""),
        "bad_offsets_past_end.safetensors": image(
            '{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}', bytes(4)),
        "bad_deep_nesting.safetensors": image('{"a":' + "[" * 2000 + "]" * 2000 + "}", b""),
        "bad_metadata_number.safetensors": image('{"__metadata__":{"total_size":12}}', b""),
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
