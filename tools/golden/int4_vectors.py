# int4_vectors.py OUTDIR — extra int4wo / int4wo-hqq reference vectors for shapes that torchao
# pads (n % 8, k % 1024), written with torch on a CUDA machine by the same sequence of torch ops as
# torchao's Int4TilePackedTo4dTensor.from_hp (tinygemm qparams in bf16; HQQ's proximal loop in
# fp16 on the zero-padded weight; aten._convert_weight_to_int4pack). Checked: with the golden
# weight it reproduces shared/golden/int4wo-*.safetensors byte for byte. aoq-golden reads the
# files (config from the file name). tools/golden/vectors/ holds two of the generated cases.
import os, sys, torch
from safetensors.torch import save_file

out = sys.argv[1]
dev = "cuda"

def pad(w):
    n, k = w.shape
    kp = (k + 1023) // 1024 * 1024
    np_ = (n + 7) // 8 * 8
    return torch.nn.functional.pad(w, (0, kp - k, 0, np_ - n))

def tinygemm(wp, g):
    x = wp.reshape(-1, g)
    mn = torch.amin(x, dim=1, keepdim=True)
    mx = torch.amax(x, dim=1, keepdim=True)
    s = (mx - mn) / float(15)
    s = torch.clamp(s, min=torch.finfo(torch.bfloat16).smallest_normal)
    z = mn + s * 8.0
    minv = z - s * 8.0
    q = torch.clamp(torch.round((x - minv) / s), 0, 15)
    return q.reshape(wp.shape).to(torch.int32), s.reshape(wp.shape[0], -1), z.reshape(wp.shape[0], -1)

def hqq(wp, g):
    W = wp.to(torch.float32)
    shape = W.shape
    W = W.reshape([-1, g])
    mn = W.min(axis=1, keepdim=True)[0]
    mx = W.max(axis=1, keepdim=True)[0]
    scale = (15 / (mx - mn)).clamp(max=2e4)
    zero = torch.round(-mn * scale)
    Wf = W.to(torch.float16)
    scale = scale.to(torch.float16)
    zero = zero.to(torch.float16)
    best, beta = 1e4, 1e1
    for _ in range(20):
        Wq = torch.round(Wf * scale + zero).clamp(0, 15)
        Wr = (Wq - zero) / scale
        x = Wf - Wr
        We = torch.sign(x) * torch.nn.functional.relu(torch.abs(x) - (1.0 / beta) * torch.pow(torch.abs(x), 0.7 - 1))
        zero = torch.mean(Wq - (Wf - We) * scale, axis=1, keepdim=True)
        beta *= 1.01
        cur = float(torch.abs(Wf - Wr).mean())
        if cur < best:
            best = cur
        else:
            break
    Wq = torch.round(W * scale + zero).clamp(0, 15)
    scale = 1.0 / scale
    zao = ((8 - zero.float()) * scale.float()).to(zero.dtype)
    q = Wq.reshape(shape).to(torch.uint8).to(torch.int32)
    return q, scale.to(torch.bfloat16).reshape(shape[0], -1), zao.to(torch.bfloat16).reshape(shape[0], -1)

def weight(n, k, seed):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    w = torch.randn(n, k, generator=gen) * 0.02
    w[0, :: max(1, k // 7)] = 0.5
    w[1 % n, :64] = 0
    if n > 2:
        w[2, 5] = 3.0
    if n > 3:
        w[3] = w[3].abs()
    return w.to(torch.bfloat16).to(dev)

cases = [(128, 1024, 128), (100, 768, 64), (37, 1536, 256), (64, 4096, 32), (24, 3072, 128), (16, 2112, 32), (9, 1024, 64)]
for ci, (n, k, g) in enumerate(cases):
    w = weight(n, k, 100 + ci)
    wp = pad(w)
    for algo in ("tinygemm", "hqq"):
        q, s, z = (hqq if algo == "hqq" else tinygemm)(wp, g)
        deq = ((q.reshape(-1, g).to(torch.bfloat16) - 8) * s.reshape(-1, 1) + z.reshape(-1, 1)).reshape(wp.shape)
        packed = torch.ops.aten._convert_weight_to_int4pack((q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8).contiguous(), 8)
        sz = torch.cat([s.reshape(s.shape[0], -1, 1), z.reshape(z.shape[0], -1, 1)], 2).transpose(0, 1).contiguous()
        name = f"int4wo-{g}" + ("-hqq" if algo == "hqq" else "")
        d = os.path.join(out, f"n{n}_k{k}_g{g}")
        os.makedirs(d, exist_ok=True)
        t = {
            "weight": w.cpu().contiguous(),
            "q.qdata": packed.cpu().contiguous(),
            "q.scale_and_zero": sz.cpu(),
            "ref.q_uint4": q[:n, :k].to(torch.uint8).cpu().contiguous(),
            "ref.scale": s[:n, : k // g].cpu().contiguous(),
            "ref.zero": z[:n, : k // g].cpu().contiguous(),
            "dequant": deq[:n, :k].cpu().contiguous(),
        }
        save_file(t, os.path.join(d, name + ".safetensors"))
        print(d, name, tuple(packed.shape), tuple(sz.shape))

