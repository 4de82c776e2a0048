/*
 * sample.cu — temperature / top-k / top-p sampling, one block per row, the CPU backend's algorithm
 * (devices/cpu/cpu_sample.c) on the GPU: radix selection of the top-k and top-p thresholds over
 * order-preserving 32-bit keys of z = logit / temperature (four passes of a 256-bucket histogram),
 * then one uniform draw u = splitmix64(seed) over the kept tokens in index order. Counts are exact;
 * probability masses are sums of doubles in another order than the CPU's, so a draw that lands
 * within ~1e-15 of a bucket or token boundary may differ. Parameters travel by value in the
 * launch (no host->device copy), so the op can be captured into a graph.
 */
#include "base/numerics.h"
#include "kernels/gpu/gpu_kernels.h"
#include "kernels/gpu/vendor.h"

#define ST 1024
#define ROWS_PER_LAUNCH 64

typedef struct samp_params {
  aoq_sample_params p[ROWS_PER_LAUNCH];
} samp_params;

static __device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static __device__ __forceinline__ uint32_t fkey(float f) {
  uint32_t u = aoq_f32_bits(f);
  return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

static __device__ __forceinline__ float logit(const uint16_t *r, int64_t i) {
  float v = aoq_bf16_to_f32(r[i]);
  return v != v ? -INFINITY : v;
}

static __device__ double block_sum_d(double v, double *sh) {
  for (int o = 16; o > 0; o >>= 1) v += AOQ_SHFL_XOR(v, o);
  __syncthreads();
  if (threadIdx.x % AOQ_LWARP == 0) sh[threadIdx.x / AOQ_LWARP] = v;
  __syncthreads();
  double t = 0;
  for (int i = 0; i < ST / AOQ_LWARP; i++) t += sh[i];
  __syncthreads();
  return t;
}

typedef struct row_view {
  const uint16_t *lg;
  int64_t vocab;
  float inv_t, zmax;
} row_view;

/* Largest key K with weight({key >= K, key >= floor}) >= target (cpu_sample.c select_key). */
static __device__ uint32_t select_key(const row_view &r, uint32_t floor, int by_mass, double target,
                                      double *hist) {
  __shared__ uint32_t s_prefix;
  __shared__ double s_above;
  if (threadIdx.x == 0) s_prefix = 0, s_above = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += ST) hist[i] = 0;
    __syncthreads();
    uint32_t prefix = s_prefix, hi_mask = shift == 24 ? 0 : ~0u << (shift + 8);
    for (int64_t i = threadIdx.x; i < r.vocab; i += ST) {
      float z = logit(r.lg, i) * r.inv_t;
      uint32_t k = fkey(z);
      if (k < floor || (k & hi_mask) != prefix) continue;
      atomicAdd(&hist[(k >> shift) & 255], by_mass ? exp((double)z - (double)r.zmax) : 1.0);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      double above = s_above;
      int bkt = 255;
      for (; bkt > 0; bkt--) {
        if (above + hist[bkt] >= target) break;
        above += hist[bkt];
      }
      s_above = above;
      s_prefix = prefix | (uint32_t)bkt << shift;
    }
    __syncthreads();
  }
  return s_prefix;
}

static __device__ double kept_mass(const row_view &r, uint32_t floor, double *sh) {
  double t = 0;
  for (int64_t i = threadIdx.x; i < r.vocab; i += ST) {
    float z = logit(r.lg, i) * r.inv_t;
    if (fkey(z) >= floor) t += exp((double)z - (double)r.zmax);
  }
  return block_sum_d(t, sh);
}

__global__ void __launch_bounds__(ST)
    k_sample(const uint16_t *__restrict__ logits, int32_t *__restrict__ out, int64_t vocab,
             samp_params sp) {
  __shared__ double hist[256];
  __shared__ double sh[ST / AOQ_LWARP];
  AOQ_PDL_WAIT();
  __shared__ float sv[ST / AOQ_LWARP];
  __shared__ int si[ST / AOQ_LWARP];
  __shared__ double csum[ST];
  __shared__ int s_res;
  const aoq_sample_params p = sp.p[blockIdx.x];
  const uint16_t *lg = logits + blockIdx.x * vocab;
  /* argmax (first maximum) */
  float bv = -INFINITY;
  int bi = 0x7fffffff;
  for (int64_t i = threadIdx.x; i < vocab; i += ST) {
    float v = logit(lg, i);
    if (v > bv || (v == bv && (int)i < bi)) bv = v, bi = (int)i;
  }
  for (int o = 16; o > 0; o >>= 1) {
    float ov = AOQ_SHFL_XOR(bv, o);
    int oi = AOQ_SHFL_XOR(bi, o);
    if (ov > bv || (ov == bv && oi < bi)) bv = ov, bi = oi;
  }
  if (threadIdx.x % AOQ_LWARP == 0)
    sv[threadIdx.x / AOQ_LWARP] = bv, si[threadIdx.x / AOQ_LWARP] = bi;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int i = 1; i < ST / AOQ_LWARP; i++)
      if (sv[i] > bv || (sv[i] == bv && si[i] < bi)) bv = sv[i], bi = si[i];
    sv[0] = bv, si[0] = bi == 0x7fffffff ? 0 : bi;
  }
  __syncthreads();
  const float top = sv[0];
  const int am = si[0];
  const float inv_t = 1.0f / p.temperature;
  if (!(p.temperature > 0) || p.top_k == 1 || (isinf(top) && top < 0) || !isfinite(top * inv_t)) {
    if (threadIdx.x == 0) out[blockIdx.x] = am;
    return;
  }
  row_view r = {lg, vocab, inv_t, top * inv_t};
  uint32_t floor = 0;
  if (p.top_k > 0 && p.top_k < vocab) floor = select_key(r, 0, 0, (double)p.top_k, hist);
  double total = kept_mass(r, floor, sh);
  if (p.top_p > 0 && p.top_p < 1) {
    uint32_t kp = select_key(r, floor, 1, (double)p.top_p * total, hist);
    if (kp > floor) {
      floor = kp;
      total = kept_mass(r, floor, sh);
    }
  }
  const double u = (double)(splitmix64(p.seed) >> 11) * 0x1.0p-53 * total;
  /* each thread owns a contiguous chunk of the vocabulary; prefix sums find the chunk holding u */
  const int64_t chunk = (vocab + ST - 1) / ST;
  const int64_t b0 = threadIdx.x * chunk, b1 = min(vocab, b0 + chunk);
  double mine = 0;
  int last = -1;
  for (int64_t i = b0; i < b1; i++) {
    float z = logit(lg, i) * inv_t;
    if (fkey(z) < floor) continue;
    double w = exp((double)z - (double)r.zmax);
    if (w <= 0) continue;
    mine += w;
    last = (int)i;
  }
  csum[threadIdx.x] = mine;
  if (threadIdx.x == 0) s_res = -1;
  __syncthreads();
  if (threadIdx.x == 0) {
    double c = 0;
    for (int t = 0; t < ST; t++) {
      double nc = c + csum[t];
      csum[t] = c; /* exclusive prefix */
      c = nc;
    }
  }
  __syncthreads();
  double cum = csum[threadIdx.x];
  bool has_next = threadIdx.x + 1 < ST;
  double next = has_next ? csum[threadIdx.x + 1] : 0;
  if (mine > 0 && u >= cum && (!has_next || u < next || threadIdx.x == ST - 1)) {
    for (int64_t i = b0; i < b1; i++) {
      float z = logit(lg, i) * inv_t;
      if (fkey(z) < floor) continue;
      double w = exp((double)z - (double)r.zmax);
      if (w <= 0) continue;
      cum += w;
      if (u < cum) {
        atomicMax(&s_res, (int)i);
        break;
      }
    }
  }
  __syncthreads();
  /* rounding left u at the very top: the last kept token */
  __shared__ int s_last;
  if (threadIdx.x == 0) s_last = -1;
  __syncthreads();
  if (last >= 0) atomicMax(&s_last, last);
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = s_res >= 0 ? s_res : s_last;
}

extern "C" int aoq_gk_sample(const uint16_t *logits, int32_t *out, int64_t m, int64_t vocab,
                             const aoq_sample_params *p, void *stream) {
  for (int64_t r0 = 0; r0 < m; r0 += ROWS_PER_LAUNCH) {
    int64_t n = m - r0 < ROWS_PER_LAUNCH ? m - r0 : ROWS_PER_LAUNCH;
    samp_params sp;
    memset(&sp, 0, sizeof sp);
    memcpy(sp.p, p + r0, (size_t)n * sizeof *p);
    int rc = aoq_launch(k_sample, (unsigned)n, ST, 0, (aoq_gpu_stream_t)stream, logits + r0 * vocab,
                        out + r0, vocab, sp);
    if (rc) return rc;
  }
  return 0;
}
