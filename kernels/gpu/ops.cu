/*
 * ops.cu — the element-wise and row-wise ops of the GPU backends: rmsnorm, add, silu_mul, embed,
 * rope, kv_store, argmax, convert, and the fused add_rmsnorm and qkv_rope_store. Numerics follow
 * the CPU backend (devices/cpu/cpu_ops.c) step for step: fp32 math, bf16 rounding at the same
 * points (aoq_f32_to_bf16 of base/numerics.h), so results agree bit for bit except where a sum is
 * reassociated (rmsnorm's sum of squares).
 */
#include "base/numerics.h"
#include "kernels/gpu/gpu_kernels.h"
#include "kernels/gpu/rope_impl.h"
#include "kernels/gpu/vendor.h"

#define BF(u) aoq_bf16_to_f32(u)
#define TB(f) aoq_f32_to_bf16(f)

static __device__ __forceinline__ float block_sum(float v, float *sh) {
  for (int o = 16; o > 0; o >>= 1) v += AOQ_SHFL_XOR(v, o);
  int w = threadIdx.x / AOQ_LWARP, l = threadIdx.x % AOQ_LWARP, nw = blockDim.x / AOQ_LWARP;
  __syncthreads();
  if (l == 0) sh[w] = v;
  __syncthreads();
  float t = 0;
  for (int i = 0; i < nw; i++) t += sh[i];
  return t;
}

/* ---- batch-invariant mode (gpu_kernels.h) ---- */

static int g_batch_invariant;

extern "C" void aoq_gk_set_batch_invariant(int on) {
  g_batch_invariant = on != 0;
}

extern "C" int aoq_gk_batch_invariant(void) {
  return g_batch_invariant;
}

/* ---- programmatic dependent launch (gpu_kernels.h, vendor.h) ---- */

static int g_pdl;

__global__ void k_add(const uint16_t *__restrict__ a, const uint16_t *__restrict__ b,
                      uint16_t *__restrict__ y, int64_t n);

extern "C" int aoq_gk_set_pdl(int on) {
  g_pdl = 0;
#if !defined(__HIPCC__)
  /* the kernels wait (AOQ_PDL_WAIT) only in code built for sm_90+: ask what the device runs */
  cudaFuncAttributes fa;
  if (on && cudaFuncGetAttributes(&fa, k_add) == cudaSuccess)
    g_pdl = fa.binaryVersion >= 90 && fa.ptxVersion >= 90;
  cudaGetLastError();
#else
  (void)on;
#endif
  return g_pdl;
}

extern "C" int aoq_gk_pdl(void) {
  return g_pdl;
}

/* ---- rmsnorm: one block per row; with t, the residual add first (x += t, stored) ---- */

__global__ void k_rmsnorm(uint16_t *__restrict__ x, const uint16_t *__restrict__ t,
                          const uint16_t *__restrict__ w, uint16_t *__restrict__ y, int64_t n,
                          float eps) {
  AOQ_PDL_WAIT();
  __shared__ float sh[32];
  uint16_t *xr = x + blockIdx.x * n;
  const uint16_t *tr = t ? t + blockIdx.x * n : NULL;
  uint16_t *yr = y + blockIdx.x * n;
  float s = 0;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
    float a = BF(xr[c]);
    if (tr) { /* add's rounding; each thread reads back only what it wrote */
      uint16_t r = TB(a + BF(tr[c]));
      xr[c] = r;
      a = BF(r);
    }
    s += a * a;
  }
  s = block_sum(s, sh);
  float inv = 1.0f / sqrtf(s / (float)n + eps);
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
    float v = aoq_round_bf16(BF(xr[c]) * inv);
    yr[c] = TB(BF(w[c]) * v);
  }
}

/* Rows of n % 8 == 0 and n <= 8 * 4 * 1024 (every model's hidden size): each thread keeps up to
 * 4 chunks of 8 elements in registers, so x (and t) are read once with 16-byte loads and the
 * block needs one reduction — a decode row of 4096 is 128 threads instead of 1024. */
#define RMS_CHUNKS 4
__global__ void k_rmsnorm_vec(uint16_t *__restrict__ x, const uint16_t *__restrict__ t,
                              const uint16_t *__restrict__ w, uint16_t *__restrict__ y, int64_t n,
                              float eps) {
  __shared__ float sh[32];
  const int64_t nc = n / 8;
  uint4 *xr = (uint4 *)(x + blockIdx.x * n);
  const uint4 *tr = t ? (const uint4 *)(t + blockIdx.x * n) : NULL;
  uint4 *yr = (uint4 *)(y + blockIdx.x * n);
  const uint4 *wr = (const uint4 *)w;
  uint4 v[RMS_CHUNKS], wv[RMS_CHUNKS];
  /* the weight is constant: its loads overlap the previous kernel's tail */
#pragma unroll
  for (int j = 0; j < RMS_CHUNKS; j++) {
    int64_t c = threadIdx.x + (int64_t)j * blockDim.x;
    if (c < nc) wv[j] = wr[c];
  }
  AOQ_PDL_WAIT();
  float s = 0;
#pragma unroll
  for (int j = 0; j < RMS_CHUNKS; j++) {
    int64_t c = threadIdx.x + (int64_t)j * blockDim.x;
    if (c >= nc) break;
    v[j] = xr[c];
    uint16_t *e = (uint16_t *)&v[j];
    if (tr) {
      uint4 tv = tr[c];
      const uint16_t *te = (const uint16_t *)&tv;
#pragma unroll
      for (int i = 0; i < 8; i++) e[i] = TB(BF(e[i]) + BF(te[i]));
      xr[c] = v[j];
    }
#pragma unroll
    for (int i = 0; i < 8; i++) s += BF(e[i]) * BF(e[i]);
  }
  s = block_sum(s, sh);
  float inv = 1.0f / sqrtf(s / (float)n + eps);
#pragma unroll
  for (int j = 0; j < RMS_CHUNKS; j++) {
    int64_t c = threadIdx.x + (int64_t)j * blockDim.x;
    if (c >= nc) break;
    uint4 o;
    const uint16_t *e = (const uint16_t *)&v[j], *we = (const uint16_t *)&wv[j];
    uint16_t *oe = (uint16_t *)&o;
#pragma unroll
    for (int i = 0; i < 8; i++) oe[i] = TB(BF(we[i]) * aoq_round_bf16(BF(e[i]) * inv));
    yr[c] = o;
  }
}

static int launch_rmsnorm(uint16_t *x, const uint16_t *t, const uint16_t *w, uint16_t *y, int64_t m,
                          int64_t n, float eps, aoq_gpu_stream_t st) {
  bool aligned = ((uintptr_t)x | (uintptr_t)w | (uintptr_t)y | (uintptr_t)t) % 16 == 0;
  if (aligned && n % 8 == 0 && n / 8 <= (int64_t)RMS_CHUNKS * 1024) {
    int64_t per = (n / 8 + RMS_CHUNKS - 1) / RMS_CHUNKS; /* threads for RMS_CHUNKS chunks each */
    int threads = (int)((per + 31) / 32 * 32);
    return aoq_launch(k_rmsnorm_vec, (unsigned)m, threads, 0, st, x, t, w, y, n, eps);
  }
  int threads = n >= 4096 ? 1024 : n >= 1024 ? 256 : 128;
  return aoq_launch(k_rmsnorm, (unsigned)m, threads, 0, st, x, t, w, y, n, eps);
}

extern "C" int aoq_gk_rmsnorm(const uint16_t *x, const uint16_t *w, uint16_t *y, int64_t m,
                              int64_t n, float eps, void *stream) {
  if (m == 0 || n == 0) return 0;
  /* x is only read without t */
  return launch_rmsnorm((uint16_t *)x, NULL, w, y, m, n, eps, (aoq_gpu_stream_t)stream);
}

extern "C" int aoq_gk_add_rmsnorm(uint16_t *x, const uint16_t *t, const uint16_t *w, uint16_t *y,
                                  int64_t m, int64_t n, float eps, void *stream) {
  if (m == 0 || n == 0) return 0;
  return launch_rmsnorm(x, t, w, y, m, n, eps, (aoq_gpu_stream_t)stream);
}

/* ---- add ---- */

__global__ void k_add(const uint16_t *__restrict__ a, const uint16_t *__restrict__ b,
                      uint16_t *__restrict__ y, int64_t n) {
  AOQ_PDL_WAIT();
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    y[i] = TB(BF(a[i]) + BF(b[i]));
}

static unsigned grid_for(int64_t n, int threads) {
  int64_t g = (n + threads - 1) / threads;
  return (unsigned)(g > 65535 ? 65535 : g < 1 ? 1 : g);
}

extern "C" int aoq_gk_add(const uint16_t *a, const uint16_t *b, uint16_t *y, int64_t n,
                          void *stream) {
  if (n == 0) return 0;
  return aoq_launch(k_add, grid_for(n, 256), 256, 0, (aoq_gpu_stream_t)stream, a, b, y, n);
}

/* ---- silu_mul: gu[m, 2n] = gate | up ---- */

__global__ void k_silu_mul(const uint16_t *__restrict__ gu, uint16_t *__restrict__ y, int64_t m,
                           int64_t n) {
  AOQ_PDL_WAIT();
  int64_t total = m * n;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = i / n, c = i % n;
    y[i] = aoq_silu_mul_bf16(BF(gu[r * 2 * n + c]), BF(gu[r * 2 * n + n + c]));
  }
}

extern "C" int aoq_gk_silu_mul(const uint16_t *gu, uint16_t *y, int64_t m, int64_t n,
                               void *stream) {
  if (m == 0 || n == 0) return 0;
  return aoq_launch(k_silu_mul, grid_for(m * n, 256), 256, 0, (aoq_gpu_stream_t)stream, gu, y, m,
                    n);
}

/* ---- embed: one block per row; a bad id flags the error and zeroes the row ---- */

__global__ void k_embed(const uint16_t *__restrict__ table, int64_t n_rows,
                        const int32_t *__restrict__ ids, uint16_t *__restrict__ y, int64_t dim,
                        int *err) {
  AOQ_PDL_WAIT();
  int32_t id = ids[blockIdx.x];
  uint16_t *yr = y + blockIdx.x * dim;
  if (id < 0 || id >= n_rows) {
    if (threadIdx.x == 0) atomicCAS(err, 0, AOQ_GK_ERR_EMBED_ID);
    for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) yr[c] = 0;
    return;
  }
  const uint16_t *tr = table + (int64_t)id * dim;
  if (dim % 8 == 0) {
    const uint4 *s = (const uint4 *)tr;
    uint4 *d = (uint4 *)yr;
    for (int64_t c = threadIdx.x; c < dim / 8; c += blockDim.x) d[c] = s[c];
  } else {
    for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) yr[c] = tr[c];
  }
}

extern "C" int aoq_gk_embed(const uint16_t *table, int64_t n_rows, const int32_t *ids, uint16_t *y,
                            int64_t m, int64_t dim, int *err, void *stream) {
  if (m == 0 || dim == 0) return 0;
  return aoq_launch(k_embed, (unsigned)m, 256, 0, (aoq_gpu_stream_t)stream, table, n_rows, ids, y,
                    dim, err);
}

/* ---- rope: HF rotate_half, cos/sin rounded to bf16, each product and sum rounded ---- */

/* rope_rot: kernels/gpu/rope_impl.h */

static __device__ __forceinline__ void rope_pair(const uint16_t *src, uint16_t *dst, int d,
                                                 int half, float p, const aoq_gk_rope_freqs &f) {
  float ang = p * f.inv[d];
  rope_rot(src, dst, d, half, aoq_round_bf16(cosf(ang)), aoq_round_bf16(sinf(ang)));
}

__global__ void k_rope(uint16_t *__restrict__ x, const int32_t *__restrict__ pos, int n_heads,
                       int head_dim, int64_t stride, aoq_gk_rope_freqs f) {
  AOQ_PDL_WAIT();
  int half = head_dim / 2;
  int64_t r = blockIdx.x;
  float p = (float)pos[r];
  for (int i = threadIdx.x; i < n_heads * half; i += blockDim.x) {
    int h = i / half, d = i % half;
    uint16_t *hp = x + r * stride + (int64_t)h * head_dim;
    rope_pair(hp, hp, d, half, p, f);
  }
}

extern "C" int aoq_gk_rope(uint16_t *x, const int32_t *pos, int64_t m, int n_heads, int head_dim,
                           int64_t row_stride, const aoq_gk_rope_freqs *f, void *stream) {
  if (m == 0) return 0;
  int work = n_heads * head_dim / 2;
  int t = work >= 1024 ? 512 : work >= 256 ? 256 : 64;
  return aoq_launch(k_rope, (unsigned)m, t, 0, (aoq_gpu_stream_t)stream, x, pos, n_heads, head_dim,
                    row_stride, *f);
}

/* ---- qkv_rope_store: one block per row: rope(q) -> q_out, rope(k) and v -> the cache ---- */

__global__ void k_qkv_rope_store(const uint16_t *__restrict__ qkv, uint16_t *__restrict__ q_out,
                                 uint16_t *__restrict__ kc, uint16_t *__restrict__ vc,
                                 const int32_t *__restrict__ pos, const int32_t *__restrict__ slots,
                                 int64_t n_slots, int n_heads, int nkv, int head_dim,
                                 aoq_gk_rope_freqs f, int *err) {
  __shared__ float cs[512], sn[512]; /* bf16(cos), bf16(sin) of the row's angles */
  const int half = head_dim / 2;
  const int64_t r = blockIdx.x, kvw = (int64_t)nkv * head_dim;
  const uint16_t *row = qkv + r * ((int64_t)(n_heads + 2 * nkv) * head_dim);
  /* positions and slots are step metadata (host copies): the angles are ready before the wait */
  const float p = (float)pos[r];
  const int32_t slot = slots[r];
  const bool ok = slot >= 0 && slot < n_slots;
  if (!ok && threadIdx.x == 0) atomicCAS(err, 0, AOQ_GK_ERR_KV_SLOT);
  for (int d = threadIdx.x; d < half; d += blockDim.x) {
    float ang = p * f.inv[d];
    cs[d] = aoq_round_bf16(cosf(ang)), sn[d] = aoq_round_bf16(sinf(ang));
  }
  AOQ_PDL_WAIT();
  __syncthreads();
  /* q heads then k heads: (n_heads + nkv) * half rotated pairs */
  for (int i = threadIdx.x; i < (n_heads + nkv) * half; i += blockDim.x) {
    int h = i / half, d = i % half;
    const uint16_t *src = row + (int64_t)h * head_dim;
    if (h < n_heads)
      rope_rot(src, q_out + r * ((int64_t)n_heads * head_dim) + (int64_t)h * head_dim, d, half,
               cs[d], sn[d]);
    else if (ok)
      rope_rot(src, kc + (int64_t)slot * kvw + (int64_t)(h - n_heads) * head_dim, d, half, cs[d],
               sn[d]);
  }
  if (!ok) return;
  const uint16_t *v = row + (int64_t)(n_heads + nkv) * head_dim;
  for (int64_t c = threadIdx.x; c < kvw; c += blockDim.x) vc[(int64_t)slot * kvw + c] = v[c];
}

extern "C" int aoq_gk_qkv_rope_store(const aoq_kv_cache *kv, const uint16_t *qkv, uint16_t *q_out,
                                     const int32_t *pos, const int32_t *slots, int64_t m,
                                     int n_heads, const aoq_gk_rope_freqs *f, int *err,
                                     void *stream) {
  if (m == 0) return 0;
  int work = (n_heads + kv->n_kv_heads) * kv->head_dim / 2;
  int t = work >= 1024 ? 512 : work >= 256 ? 256 : 64;
  return aoq_launch(k_qkv_rope_store, (unsigned)m, t, 0, (aoq_gpu_stream_t)stream, qkv, q_out,
                    (uint16_t *)kv->k, (uint16_t *)kv->v, pos, slots,
                    (int64_t)kv->n_pages * kv->page_size, n_heads, kv->n_kv_heads, kv->head_dim, *f,
                    err);
}

/* ---- kv_store: one block per row (bf16 cache) ---- */

__global__ void k_kv_store(uint16_t *__restrict__ kc, uint16_t *__restrict__ vc,
                           const uint16_t *__restrict__ k, const uint16_t *__restrict__ v,
                           const int32_t *__restrict__ slots, int64_t n_slots, int64_t w,
                           int *err) {
  AOQ_PDL_WAIT();
  int32_t s = slots[blockIdx.x];
  if (s < 0 || s >= n_slots) {
    if (threadIdx.x == 0) atomicCAS(err, 0, AOQ_GK_ERR_KV_SLOT);
    return;
  }
  int64_t dst = (int64_t)s * w, src = blockIdx.x * w;
  for (int64_t c = threadIdx.x; c < w; c += blockDim.x) {
    kc[dst + c] = k[src + c];
    vc[dst + c] = v[src + c];
  }
}

extern "C" int aoq_gk_kv_store(const aoq_kv_cache *kv, const uint16_t *k, const uint16_t *v,
                               const int32_t *slots, int64_t m, int *err, void *stream) {
  if (m == 0) return 0;
  int64_t w = (int64_t)kv->n_kv_heads * kv->head_dim;
  int64_t n_slots = (int64_t)kv->n_pages * kv->page_size;
  return aoq_launch(k_kv_store, (unsigned)m, 256, 0, (aoq_gpu_stream_t)stream, (uint16_t *)kv->k,
                    (uint16_t *)kv->v, k, v, slots, n_slots, w, err);
}

/* ---- argmax: one block per row; NaN counts as -inf; the first maximum wins ---- */

static __device__ __forceinline__ void amax_merge(float &bv, int &bi, float v, int i) {
  if (v > bv || (v == bv && i < bi)) bv = v, bi = i;
}

__global__ void k_argmax(const uint16_t *__restrict__ lg, int32_t *__restrict__ out,
                         int64_t vocab) {
  AOQ_PDL_WAIT();
  __shared__ float sv[32];
  __shared__ int si[32];
  const uint16_t *r = lg + blockIdx.x * vocab;
  float bv = -INFINITY;
  int bi = 0x7fffffff;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    float v = BF(r[i]);
    if (v != v) v = -INFINITY;
    amax_merge(bv, bi, v, (int)i);
  }
  for (int o = 16; o > 0; o >>= 1) amax_merge(bv, bi, AOQ_SHFL_XOR(bv, o), AOQ_SHFL_XOR(bi, o));
  int w = threadIdx.x / AOQ_LWARP, l = threadIdx.x % AOQ_LWARP;
  if (l == 0) sv[w] = bv, si[w] = bi;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int i = 1; i < (int)blockDim.x / AOQ_LWARP; i++) amax_merge(bv, bi, sv[i], si[i]);
    out[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;
  }
}

extern "C" int aoq_gk_argmax(const uint16_t *logits, int32_t *out, int64_t m, int64_t vocab,
                             void *stream) {
  if (m == 0) return 0;
  return aoq_launch(k_argmax, (unsigned)m, 1024, 0, (aoq_gpu_stream_t)stream, logits, out, vocab);
}

/* ---- convert ---- */

__global__ void k_to_f32(const uint16_t *__restrict__ s, float *__restrict__ d, int64_t n) {
  AOQ_PDL_WAIT();
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    d[i] = BF(s[i]);
}

__global__ void k_to_bf16(const float *__restrict__ s, uint16_t *__restrict__ d, int64_t n) {
  AOQ_PDL_WAIT();
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    d[i] = TB(s[i]);
}

extern "C" int aoq_gk_convert(const void *src, void *dst, int64_t n, int to_f32, void *stream) {
  if (n == 0) return 0;
  aoq_gpu_stream_t st = (aoq_gpu_stream_t)stream;
  if (to_f32)
    return aoq_launch(k_to_f32, grid_for(n, 256), 256, 0, st, (const uint16_t *)src, (float *)dst,
                      n);
  return aoq_launch(k_to_bf16, grid_for(n, 256), 256, 0, st, (const float *)src, (uint16_t *)dst,
                    n);
}
