"""Writes the torch-made files of tests/data/st: python3 make_torch_files.py OUT_DIR.

Run on the GPU machine (torch 2.11.0+cu130, safetensors 0.8.0, huggingface_hub): torch_all_dtypes
(+ .json: torch dtype, shape and bytes of every tensor), torch_f8_e8m0, torch_f4_e2m1fn_x2 (what
safetensors names "F4"), and hf_sharded/ (a 3-shard checkpoint from save_torch_state_dict, + the
first 32 bytes of each tensor in hf_sharded.json).
"""
import os, sys, json, torch
from safetensors.torch import save_file
out = sys.argv[1]
torch.manual_seed(0)
ts = {}
dts = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32,
       torch.int16, torch.int8, torch.uint8, torch.bool, torch.float8_e4m3fn, torch.float8_e5m2]
for i, dt in enumerate(dts):
    x = torch.randn(3, 7 + i) * 4
    ts[f"t{i:02d}"] = (x > 0) if dt == torch.bool else x.to(dt)
ts["scalar"] = torch.tensor(2.5, dtype=torch.float32)
ts["empty"] = torch.zeros(0, 4, dtype=torch.bfloat16)
for name, dt in [("e8m0", getattr(torch, "float8_e8m0fnu", None)), ("fp4x2", getattr(torch, "float4_e2m1fn_x2", None))]:
    if dt is None:
        continue
    try:
        t = torch.randint(0, 255, (4, 8), dtype=torch.uint8).view(dt)
        save_file({name: t}, os.path.join(out, "torch_" + {"e8m0": "f8_e8m0", "fp4x2": "f4_e2m1fn_x2"}[name] + ".safetensors"))
    except Exception as e:
        print("cannot save", name, repr(e))
save_file(ts, os.path.join(out, "torch_all_dtypes.safetensors"), metadata={"format": "pt"})
# expected: name -> [dtype name, shape, bytes hex]
exp = {k: [str(v.dtype), list(v.shape), v.reshape(-1).view(torch.uint8).numpy().tobytes().hex() if v.numel() else ""] for k, v in ts.items()}
json.dump(exp, open(os.path.join(out, "torch_all_dtypes.json"), "w"))
# a sharded HF checkpoint
try:
    from huggingface_hub import save_torch_state_dict
    os.makedirs(os.path.join(out, "hf_sharded"), exist_ok=True)
    sd = {f"model.layers.{i}.w": torch.randn(64, 64, dtype=torch.bfloat16) for i in range(6)}
    save_torch_state_dict(sd, os.path.join(out, "hf_sharded"), max_shard_size="20KB")
    json.dump({k: v.view(torch.uint8).numpy().tobytes().hex()[:64] for k, v in sd.items()}, open(os.path.join(out, "hf_sharded.json"), "w"))
except Exception as e:
    print("no sharded:", repr(e))
import safetensors
print("written with safetensors", safetensors.__version__, sorted(os.listdir(out)), os.listdir(os.path.join(out, "hf_sharded")) if os.path.isdir(os.path.join(out, "hf_sharded")) else None)
