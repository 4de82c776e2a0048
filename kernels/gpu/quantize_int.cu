/*
 * quantize_int.cu — device quantization of the integer formats, bit-exact with the reference
 * quantizers of core/quant_int.c (spec/formats.md §0-§5, docs/formats.md for w158), written in
 * aoq's packed layouts (docs/layouts.md).
 *
 * One kernel for every group format: a group (a row for the per-row formats) is handled by a
 * power-of-two segment of lanes of one warp, each lane owning chunks of 8 elements, so that a
 * chunk's codes fill exactly `bits` whole bytes of the LSB-first bit stream (every group starts on
 * a byte boundary: its size is a multiple of 16 or the row). Pass 1 reduces the group's min / max /
 * amax with shuffles (max and min are exact, so the order does not matter); pass 2 rereads the
 * chunks and writes the codes. Every float step repeats the reference's: the same bf16
 * roundings, divisions as divisions and multiplications by the same reciprocal, written with the
 * _rn intrinsics so that nothing is contracted or approximated; rintf is round-half-even.
 *
 * w158's scale is the mean of |W| accumulated sequentially in fp64 by the reference. The device
 * sums in parallel and bounds the difference to any summation order (all terms are >= 0: both
 * sums lie within gamma_{N} * sum of the exact one); when both ends of that interval give the
 * same bf16 scale the result is the reference's, otherwise one block repeats the sequential sum.
 *
 * Not here: HQQ (an optimizer loop) and the codebook (k-means) stay on the host.
 */
#include "base/numerics.h"
#include "kernels/gpu/quantize_impl.h"

enum { QI_INT8, QI_TINYGEMM, QI_SYM, QI_MSLK, QI_W158 };

#define QI_BF16_SMALLEST_NORMAL 0x1p-126f /* torch.finfo(bfloat16).smallest_normal */
#define QI_F32_EPS 0x1p-23f               /* torch.finfo(float32).eps */
#define QI_SYM_LIM 0x1p126f               /* core/quant_int_internal.h AOQ_SYM_LIM */
#define QI_TINYGEMM_LIM 0x1p125f          /* core/quant_int.c INT4_TINYGEMM_LIM */
#define QI_THREADS 256

struct qi_args {
  const uint16_t *w;
  int64_t n, k, ngr;  /* ngr: groups per row */
  int64_t groups;     /* n * ngr */
  int g, bits, lanes; /* lanes: power of two <= 32 per group */
  int vec;            /* every chunk starts 16-byte aligned */
  size_t row_bytes;
  uint8_t *q;
  void *scale;
  const float *tscale; /* w158: the tensor scale (device) */
};

__device__ __forceinline__ float qi_bf(float x) {
  return aoq_round_bf16(x);
}

/* core/quant_int_internal.h sanitize(): NaN -> 0, clamp to [-lim, lim] */
__device__ __forceinline__ float qi_sanitize(float v, float lim) {
  if (v != v) return 0.0f;
  return v > lim ? lim : (v < -lim ? -lim : v);
}

/* core/quant_int.c round_clamp(): RNE, clamp, NaN -> 0 */
__device__ __forceinline__ int qi_round_clamp(float t, int qmin, int qmax) {
  if (t != t) return 0;
  float r = rintf(t);
  return (int)(r < (float)qmin ? (float)qmin : (r > (float)qmax ? (float)qmax : r));
}

/* The up to 8 elements of chunk c of a group starting at x (cnt = elements present). */
__device__ __forceinline__ int qi_load(const uint16_t *x, int g, int c, int vec, float v[8]) {
  int e0 = c * 8, cnt = g - e0 < 8 ? g - e0 : 8;
  if (vec) {
    uint4 u = *(const uint4 *)(x + e0);
    uint32_t p[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int j = 0; j < 4; j++) {
      v[2 * j] = aoq_bf16_to_f32((uint16_t)(p[j] & 0xffffu));
      v[2 * j + 1] = aoq_bf16_to_f32((uint16_t)(p[j] >> 16));
    }
  } else {
#pragma unroll
    for (int j = 0; j < 8; j++) v[j] = j < cnt ? aoq_bf16_to_f32(x[e0 + j]) : 0.0f;
  }
  return cnt;
}

template <int ALG>
__global__ void __launch_bounds__(QI_THREADS) k_wquant_int(qi_args a) {
  const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  const int64_t gid = tid / a.lanes;
  const int sub = (int)(tid % a.lanes);
  /* a whole lane segment is live or not: dead segments still join the shuffles */
  const bool live = gid < a.groups;
  const int64_t r = live ? gid / a.ngr : 0, gi = live ? gid % a.ngr : 0;
  const uint16_t *x = a.w + r * a.k + gi * a.g;
  const int chunks = (a.g + 7) / 8;
  const float lim = ALG == QI_TINYGEMM ? QI_TINYGEMM_LIM : QI_SYM_LIM;

  /* pass 1: amax (symmetric formats) or min / max (tinygemm) */
  float mn = INFINITY, mx = ALG == QI_TINYGEMM ? -INFINITY : 0.0f;
  if (ALG != QI_W158 && live)
    for (int c = sub; c < chunks; c += a.lanes) {
      float v[8];
      int cnt = qi_load(x, a.g, c, a.vec, v);
      for (int j = 0; j < cnt; j++) {
        float s = qi_sanitize(v[j], lim);
        if (ALG == QI_TINYGEMM) {
          mn = fminf(mn, s);
          mx = fmaxf(mx, s);
        } else {
          mx = fmaxf(mx, fabsf(s));
        }
      }
    }
  if (ALG != QI_W158)
    for (int o = 1; o < a.lanes; o <<= 1) {
      mx = fmaxf(mx, AOQ_SHFL_XOR(mx, o));
      if (ALG == QI_TINYGEMM) mn = fminf(mn, AOQ_SHFL_XOR(mn, o));
    }
  if (!live) return;

  /* qparams, step by step as core/quant_int.c */
  const int qmin = -(1 << (a.bits - 1)), qmax = (1 << (a.bits - 1)) - 1;
  float s = 0.0f, inv = 0.0f, minv = 0.0f;
  if (ALG == QI_INT8) {
    s = fmaxf(qi_bf(__fdiv_rn(mx, 127.5f)), QI_F32_EPS);
    inv = __fdiv_rn(1.0f, s);
    if (sub == 0) ((float *)a.scale)[r] = s;
  } else if (ALG == QI_TINYGEMM) {
    s = fmaxf(qi_bf(__fdiv_rn(qi_bf(__fsub_rn(mx, mn)), 15.0f)), QI_BF16_SMALLEST_NORMAL);
    float s8 = qi_bf(__fmul_rn(s, 8.0f));
    float z = qi_bf(__fadd_rn(mn, s8));
    minv = qi_bf(__fsub_rn(z, s8));
    if (sub == 0) {
      uint16_t *sz = (uint16_t *)a.scale + gid * 2;
      sz[0] = aoq_f32_to_bf16(s);
      sz[1] = aoq_f32_to_bf16(z);
    }
  } else if (ALG == QI_SYM) {
    s = fmaxf(qi_bf(__fdiv_rn(mx, __fdiv_rn((float)(qmax - qmin), 2.0f))), QI_BF16_SMALLEST_NORMAL);
    inv = qi_bf(__fdiv_rn(1.0f, s));
    if (sub == 0) ((uint16_t *)a.scale)[gid] = aoq_f32_to_bf16(s);
  } else if (ALG == QI_MSLK) {
    s = __fdiv_rn(fmaxf(mx, 1e-6f), 8.0f);
    if (sub == 0) ((float *)a.scale)[gid] = s;
  } else {
    s = *a.tscale;
  }

  /* pass 2: codes, 8 per chunk = `bits` whole bytes */
  uint8_t *row = a.q + r * a.row_bytes + (size_t)(gi * a.g) * (size_t)a.bits / 8;
  const uint32_t mask = (1u << a.bits) - 1u;
  for (int c = sub; c < chunks; c += a.lanes) {
    float v[8];
    int cnt = qi_load(x, a.g, c, a.vec, v);
    uint64_t acc = 0;
    for (int j = 0; j < cnt; j++) {
      uint32_t code;
      if (ALG == QI_TINYGEMM) {
        float t = qi_sanitize(v[j], lim);
        code = (uint32_t)qi_round_clamp(qi_bf(__fdiv_rn(qi_bf(__fsub_rn(t, minv)), s)), 0, 15);
      } else {
        float t = qi_sanitize(v[j], lim);
        int qv;
        if (ALG == QI_INT8)
          qv = qi_round_clamp(__fmul_rn(t, inv), -128, 127);
        else if (ALG == QI_SYM)
          qv = qi_round_clamp(qi_bf(__fmul_rn(t, inv)), qmin, qmax);
        else if (ALG == QI_MSLK)
          qv = qi_round_clamp(__fdiv_rn(t, s), qmin, qmax);
        else
          qv = qi_round_clamp(__fdiv_rn(t, s), -1, 1) + 1;
        code = (uint32_t)qv & mask;
      }
      acc |= (uint64_t)code << (j * a.bits);
    }
    uint8_t *o = row + (size_t)c * (size_t)a.bits;
    int nb = (cnt * a.bits + 7) / 8;
    for (int b = 0; b < nb; b++) o[b] = (uint8_t)(acc >> (8 * b));
  }
}

/* w158 pass 1: the fp64 sum of |sanitize(x)| in any order (scratch: double at offset 0). */
__global__ void k_w158_sum(const uint16_t *__restrict__ w, int64_t total, double *sum) {
  double acc = 0.0;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x)
    acc += (double)fabsf(qi_sanitize(aoq_bf16_to_f32(w[i]), QI_SYM_LIM));
  for (int o = 16; o > 0; o >>= 1) acc += AOQ_SHFL_XOR(acc, o);
  if ((threadIdx.x & 31) == 0) atomicAdd(sum, acc);
}

/* the reference's scale from a sum: bf16(max(float(sum / N), 1e-5)); monotone in sum */
__device__ __forceinline__ float qi_w158_scale(double sum, double count) {
  return qi_bf(fmaxf((float)__ddiv_rn(sum, count), 1e-5f));
}

/* w158 pass 2 (one block): the scale, from the parallel sum when its error bound decides it,
 * else from the reference's sequential sum, repeated here in its order. */
__global__ void k_w158_scale(const uint16_t *__restrict__ w, int64_t n, int64_t k, double *sum,
                             float *tscale, uint16_t *scale_out) {
  __shared__ float tile[1024];
  __shared__ int decided;
  const int64_t total = n * k;
  const double count = (double)n * (double)k;
  if (threadIdx.x == 0) {
    /* Any order of N >= 0 terms: |computed - exact| <= gamma_{N-1} exact, gamma_m = m u/(1-m u);
     * so |seq - par| <= 2 gamma exact <= 2 gamma par / (1 - gamma); 3 gamma_{max(N,2)} covers
     * that and the rounding of lo / hi. */
    double par = *sum, nu = (double)(total < 2 ? 2 : total) * 0x1p-53;
    double gam = nu / (1.0 - nu), b = 3.0 * gam * par / (1.0 - gam);
    float lo = qi_w158_scale(par - b < 0.0 ? 0.0 : par - b, count),
          hi = qi_w158_scale(par + b, count);
    decided = lo == hi;
    if (decided) {
      *tscale = lo;
      *scale_out = aoq_f32_to_bf16(lo);
    }
  }
  __syncthreads();
  if (decided) return;
  double seq = 0.0;
  for (int64_t base = 0; base < total; base += 1024) {
    for (int i = threadIdx.x; i < 1024; i += blockDim.x)
      tile[i] =
          base + i < total ? fabsf(qi_sanitize(aoq_bf16_to_f32(w[base + i]), QI_SYM_LIM)) : 0.0f;
    __syncthreads();
    if (threadIdx.x == 0) {
      int64_t m = total - base < 1024 ? total - base : 1024;
      for (int64_t i = 0; i < m; i++) seq = __dadd_rn(seq, (double)tile[i]);
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    float s = qi_w158_scale(seq, count);
    *tscale = s;
    *scale_out = aoq_f32_to_bf16(s);
  }
}

uint64_t aoq_quantize_int_formats(void) {
  return (1ull << AOQ_FMT_INT8WO) | (1ull << AOQ_FMT_INT8DQ) | (1ull << AOQ_FMT_INT4WO) |
         (1ull << AOQ_FMT_INTXWO) | (1ull << AOQ_FMT_INT8_INTX) | (1ull << AOQ_FMT_INT8_INT4) |
         (1ull << AOQ_FMT_FP8_INT4) | (1ull << AOQ_FMT_W158);
}

template <int ALG>
static void qi_launch(const qi_args &a, aoq_gpu_stream_t st) {
  int64_t threads = a.groups * a.lanes;
  unsigned blocks = (unsigned)((threads + QI_THREADS - 1) / QI_THREADS);
  k_wquant_int<ALG><<<blocks, QI_THREADS, 0, st>>>(a);
}

int aoq_quantize_int(const uint16_t *src, aoq_qweight *w, void *scratch, aoq_gpu_stream_t st) {
  qi_args a;
  a.w = src;
  a.n = w->n;
  a.k = w->k;
  a.g = w->group > 0 ? w->group : (int)w->k;
  a.bits = w->bits;
  a.q = (uint8_t *)w->qdata;
  a.scale = w->scale;
  a.tscale = (const float *)((char *)scratch + 8);
  int alg;
  switch (w->kind) {
    case AOQ_FMT_INT8WO:
    case AOQ_FMT_INT8DQ:
      alg = QI_INT8;
      a.g = (int)w->k;
      a.bits = 8;
      a.row_bytes = (size_t)w->k;
      break;
    case AOQ_FMT_INT4WO:
      alg = QI_TINYGEMM;
      a.bits = 4;
      a.row_bytes = (size_t)(w->k / 2);
      break;
    case AOQ_FMT_W158:
      alg = QI_W158;
      a.g = (int)w->k;
      a.bits = 2;
      a.row_bytes = (size_t)(((w->k * 2 + 31) / 32) * 4);
      break;
    default:
      alg = w->kind == AOQ_FMT_FP8_INT4 ? QI_MSLK : QI_SYM;
      a.row_bytes = (size_t)(((w->k * a.bits + 31) / 32) * 4);
      break;
  }
  a.ngr = w->k / a.g;
  a.groups = a.n * a.ngr;
  const int chunks = (a.g + 7) / 8;
  a.lanes = 1;
  while (a.lanes < 32 && a.lanes < chunks) a.lanes *= 2;
  a.vec = a.g % 8 == 0 && a.k % 8 == 0 && ((uintptr_t)src & 15) == 0;

  /* the reference zeroes the stream; only the 4-byte row padding is not written below */
  if (a.row_bytes * 8 > (size_t)(a.k * a.bits)) {
    aoq_gpu_error_t e = aoq_gpu_memset_async(a.q, 0, (size_t)a.n * a.row_bytes, st);
    if (e != AOQ_GPU_SUCCESS) return (int)e;
  }
  if (alg == QI_W158) {
    aoq_gpu_error_t e = aoq_gpu_memset_async(scratch, 0, sizeof(double), st);
    if (e != AOQ_GPU_SUCCESS) return (int)e;
    int64_t total = a.n * a.k, g = (total + 4095) / 4096;
    unsigned grid = (unsigned)(g > 4096 ? 4096 : g);
    k_w158_sum<<<grid, 256, 0, st>>>(src, total, (double *)scratch);
    k_w158_scale<<<1, 256, 0, st>>>(src, a.n, a.k, (double *)scratch, (float *)a.tscale,
                                    (uint16_t *)w->scale);
  }
  switch (alg) {
    case QI_INT8:
      qi_launch<QI_INT8>(a, st);
      break;
    case QI_TINYGEMM:
      qi_launch<QI_TINYGEMM>(a, st);
      break;
    case QI_SYM:
      qi_launch<QI_SYM>(a, st);
      break;
    case QI_MSLK:
      qi_launch<QI_MSLK>(a, st);
      break;
    default:
      qi_launch<QI_W158>(a, st);
      break;
  }
  return (int)aoq_gpu_get_last_error();
}
