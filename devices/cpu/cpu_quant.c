/*
 * cpu_quant.c — the CPU linear for every quantized format: y[m,n] = x[m,k] @ W^T with W read in
 * its packed layout and decoded 128 columns at a time into a stack buffer (never a bf16 copy of
 * the weight, never more than one chunk of one row).
 *
 * Dynamic formats first quantize x into the workspace with the row quantizers of base/numerics.h
 * (the same code as core/act_quant.c, so bit-exact with torchao's activation quantizers), then
 * follow torchao's GEMM epilogue order (spec/formats.md):
 *   int8dq     acc int32 -> * x_scale (fp32) -> bf16 -> * w_scale (fp32) -> bf16       (§2)
 *   int8wo     bf16(x @ W_q) -> * bf16(w_scale) -> bf16                                 (§2)
 *   fp8dq(-row) fp32 sum of e4m3 products * x_scale * w_scale -> bf16 (scaled_mm)       (§3)
 *   fp8dq-block per 128-wide K block: sum * x_scale[m,kb] * w_scale[nb,kb], fp32 -> bf16 (§3)
 *   mxfp8/mxfp4 the e8m0 scales are powers of two, folded into both operands exactly  (§6)
 *   nvfp4      fp32 sum of (fp4*s_b) products -> bf16 -> * bf16(pts_x * pts_w) -> bf16 (§7)
 *   fp8-int4   fp32 sum of e4m3 x (q * s_g) -> * x_scale -> bf16                       (§4)
 *   int8-intx / int8-int4  fake-quantized x (bf16) @ bf16 dequantized W                (§5)
 *   weight-only formats    x @ bf16 dequantized W, fp32 sums -> bf16                   (§3 §5 §7)
 * Work is split over output rows with aoq_cpu_parallel; the inner loops are plain fp32/int32
 * dot products with eight independent partial sums, which the compiler vectorizes.
 */
#include <string.h>

#include "base/error.h"
#include "base/numerics.h"
#include "devices/cpu/cpu_quant_deq.h"
#include "devices/cpu/cpu_quant_impl.h"

#define CH 128 /* K columns decoded per step: also the fp8dq-block block width */
#define MT 16  /* activation rows per accumulator tile */

uint64_t aoq_cpu_quant_formats(void) {
  return ((1ull << AOQ_FMT_COUNT) - 1ull) & ~(1ull << AOQ_FMT_BF16);
}

static size_t al(size_t b) {
  return (b + 63) & ~(size_t)63;
}

/* Workspace: xf f32[m,k] | xs f32[m, kb+1] | xq u8[m,k] | xsc u8[m, k/16 + 1]. */
static size_t ws_parts(int64_t m, int64_t k, size_t *o_xs, size_t *o_xq, size_t *o_xsc) {
  size_t M = (size_t)m, K = (size_t)k, kb = (K + 127) / 128;
  size_t xf = al(M * K * 4), xs = al(M * (kb + 1) * 4 + 4), xq = al(M * K),
         xsc = al(M * (K / 16 + 1));
  *o_xs = xf, *o_xq = xf + xs, *o_xsc = xf + xs + xq;
  return xf + xs + xq + xsc;
}

size_t aoq_cpu_quant_workspace(const aoq_qweight *w, int64_t m) {
  if (!w || m <= 0 || w->k <= 0 || w->kind == AOQ_FMT_BF16) return 0;
  size_t a, b, c;
  return ws_parts(m, w->k, &a, &b, &c) + 64;
}

/* Eight-lane vectors of GCC/clang's vector extension: each SIMD clone of rows_task maps them to
 * its registers (two SSE halves, one AVX register, half an AVX-512 one). */
typedef float v8f __attribute__((vector_size(32)));

typedef struct qjob {
  const aoq_qweight *w;
  const float *xf; /* [m,k] the activation operand */
  const float *xs; /* activation scales */
  int64_t m, kb;
  float pts; /* nvfp4: bf16(pts_x * pts_w) */
  uint16_t *y;
} qjob;

/* Adds the eight-lane partial sums of a·b over n elements to *acc (the tail of a row goes into
 * lane 0); the caller keeps them across chunks and reduces once per output. Pointer, not return
 * value: a vector return would change the ABI between the SIMD clones. */
static inline __attribute__((always_inline)) void dot_acc(const float *a, const float *b, int64_t n,
                                                          v8f *acc) {
  v8f s0 = {0}, s1 = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    v8f a0, a1, b0, b1;
    memcpy(&a0, a + i, 32), memcpy(&a1, a + i + 8, 32);
    memcpy(&b0, b + i, 32), memcpy(&b1, b + i + 8, 32);
    s0 += a0 * b0, s1 += a1 * b1;
  }
  for (; i < n; i++) s0[0] += a[i] * b[i];
  *acc += s0 + s1;
}

static inline __attribute__((always_inline)) float hsum(const v8f *p) {
  v8f s = *p;
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* Four activation rows against one decoded weight chunk: each weight vector is loaded once for
 * four FMAs-worth of products (register blocking, as the bf16 GEMM does). */
static inline __attribute__((always_inline)) void dot_acc4(const float *a0, const float *a1,
                                                           const float *a2, const float *a3,
                                                           const float *b, int64_t n, v8f *acc) {
  v8f s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    v8f bv, x0, x1, x2, x3;
    memcpy(&bv, b + i, 32);
    memcpy(&x0, a0 + i, 32), memcpy(&x1, a1 + i, 32), memcpy(&x2, a2 + i, 32),
        memcpy(&x3, a3 + i, 32);
    s0 += x0 * bv, s1 += x1 * bv, s2 += x2 * bv, s3 += x3 * bv;
  }
  for (; i < n; i++)
    s0[0] += a0[i] * b[i], s1[0] += a1[i] * b[i], s2[0] += a2[i] * b[i], s3[0] += a3[i] * b[i];
  acc[0] += s0, acc[1] += s1, acc[2] += s2, acc[3] += s3;
}

/* Compiled for x86-64-v4 (AVX-512), v3 (AVX2 + FMA) and baseline x86-64, picked at load time
 * (GCC target_clones); multiply-adds contract to FMA (sums are already in a kernel-specific
 * order, so this changes results only within fp32 rounding, and y is rounded to bf16). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define AOQ_SIMD_CLONES                                                        \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), \
                 optimize("fp-contract=fast")))
#else
#define AOQ_SIMD_CLONES
#endif

AOQ_SIMD_CLONES static void rows_task(void *arg, int64_t begin, int64_t end) {
  const qjob *j = arg;
  const aoq_qweight *w = j->w;
  const int64_t k = w->k, N = w->n, m = j->m;
  const aoq_format_kind kind = w->kind;
  const float *wsc = w->scale;
  /* lut: the element table of the format (aoq_cpu_quant_lut, aoq_cpu_quant_rowlut) */
  float wbuf[CH] __attribute__((aligned(64))), lut[512] __attribute__((aligned(64)));
  aoq_cpu_quant_lut(w, lut);
  const uintptr_t qb = (uintptr_t)w->qdata; /* packed bytes per row, for the prefetch */
  const int64_t qrow = (int64_t)(w->qdata_bytes / (size_t)N);
  for (int64_t r = begin; r < end; r++) {
    aoq_cpu_quant_rowlut(w, r, lut);
    for (int64_t m0 = 0; m0 < m; m0 += MT) {
      int64_t mt = m - m0 < MT ? m - m0 : MT;
      v8f acc[MT];
      for (int i = 0; i < MT; i++) acc[i] = (v8f){0};
      int32_t iacc[MT] = {0};
      for (int64_t c0 = 0; c0 < k; c0 += CH) {
        int64_t len = k - c0 < CH ? k - c0 : CH;
        /* the packed bytes ~2 KiB ahead (rows are a page or less: the hardware prefetcher
         * stops at page ends); prefetches are hints, so past the end of qdata is harmless */
        const uintptr_t pf = qb + (uintptr_t)(r * qrow + c0 * qrow / k) + 2048;
        __builtin_prefetch((const void *)pf), __builtin_prefetch((const void *)(pf + 64));
        aoq_cpu_quant_deq(w, r, c0, len, lut, wbuf);
        const float *xc = j->xf + m0 * k + c0;
        if (kind == AOQ_FMT_FP8DQ_BLOCK || kind == AOQ_FMT_INT8DQ) {
          /* per-chunk sums: fp8dq-block scales each 128 block (§3); int8dq's int8 products
           * summed over <= 128 columns stay below 2^21, so the fp32 sum is the exact integer */
          v8f blk[MT];
          for (int i = 0; i < MT; i++) blk[i] = (v8f){0};
          int64_t i = 0;
          for (; i + 4 <= mt; i += 4)
            dot_acc4(xc + i * k, xc + (i + 1) * k, xc + (i + 2) * k, xc + (i + 3) * k, wbuf, len,
                     &blk[i]);
          for (; i < mt; i++) dot_acc(xc + i * k, wbuf, len, &blk[i]);
          for (i = 0; i < mt; i++) {
            if (kind == AOQ_FMT_INT8DQ) /* |sum| < 2^14 * k: int32 for k < 131072 */
              iacc[i] += (int32_t)hsum(&blk[i]);
            else
              acc[i][0] += hsum(&blk[i]) *
                           (j->xs[(m0 + i) * j->kb + c0 / 128] * wsc[(r / 128) * j->kb + c0 / 128]);
          }
        } else {
          int64_t i = 0;
          for (; i + 4 <= mt; i += 4)
            dot_acc4(xc + i * k, xc + (i + 1) * k, xc + (i + 2) * k, xc + (i + 3) * k, wbuf, len,
                     &acc[i]);
          for (; i < mt; i++) dot_acc(xc + i * k, wbuf, len, &acc[i]);
        }
      }
      for (int64_t i = 0; i < mt; i++) {
        int64_t mi = m0 + i;
        float v, a = hsum(&acc[i]);
        switch (kind) {
          case AOQ_FMT_INT8WO:
            v = aoq_round_bf16(a) * aoq_round_bf16(wsc[r]);
            break;
          case AOQ_FMT_INT8DQ:
            v = aoq_round_bf16((float)iacc[i] * j->xs[mi]) * wsc[r];
            break;
          case AOQ_FMT_FP8DQ:
            v = a * j->xs[0] * wsc[0];
            break;
          case AOQ_FMT_FP8DQ_ROW:
            v = a * j->xs[mi] * wsc[r];
            break;
          case AOQ_FMT_NVFP4:
            v = aoq_round_bf16(a) * j->pts;
            break;
          case AOQ_FMT_FP8_INT4:
            v = a * j->xs[mi];
            break;
          default:
            v = a;
            break;
        }
        j->y[mi * N + r] = aoq_f32_to_bf16(v);
      }
    }
  }
}

/* Quantizes x as the format's activation quantizer does and leaves the GEMM operand in xf. */
static void prepare_x(qjob *j, const uint16_t *x, uint8_t *xq, uint8_t *xsc, float *xf, float *xs) {
  const aoq_qweight *w = j->w;
  const int64_t m = j->m, k = w->k;
  switch (w->kind) {
    case AOQ_FMT_INT8DQ:
      for (int64_t r = 0; r < m; r++) {
        xs[r] = aoq_int8_quant_row(x + r * k, k, (int8_t *)xq + r * k);
        for (int64_t i = 0; i < k; i++) xf[r * k + i] = (float)((const int8_t *)xq)[r * k + i];
      }
      break;
    case AOQ_FMT_INT8_INTX:
    case AOQ_FMT_INT8_INT4: /* fake quantization (§5): x -> int8 asym per token -> bf16 */
      for (int64_t r = 0; r < m; r++) {
        float s;
        int32_t zp;
        const int8_t *q = (const int8_t *)xq + r * k;
        aoq_int8_asym_quant_row(x + r * k, k, (int8_t *)xq + r * k, &s, &zp);
        for (int64_t i = 0; i < k; i++)
          xf[r * k + i] = aoq_round_bf16(aoq_round_bf16((float)(q[i] - zp)) * s);
      }
      break;
    case AOQ_FMT_FP8DQ:
    case AOQ_FMT_FP8DQ_ROW:
    case AOQ_FMT_FP8DQ_BLOCK:
    case AOQ_FMT_FP8_INT4:
      if (w->kind == AOQ_FMT_FP8DQ) xs[0] = aoq_fp8_scale(aoq_amax_bf16(x, m * k), AOQ_E4M3_MAX);
      for (int64_t r = 0; r < m; r++) {
        const uint16_t *xr = x + r * k;
        uint8_t *q = xq + r * k;
        if (w->kind == AOQ_FMT_FP8DQ) {
          aoq_fp8_quant_row(xr, k, xs[0], q);
        } else if (w->kind == AOQ_FMT_FP8DQ_ROW) {
          xs[r] = aoq_fp8_scale(aoq_amax_bf16(xr, k), AOQ_E4M3_MAX);
          aoq_fp8_quant_row(xr, k, xs[r], q);
        } else if (w->kind == AOQ_FMT_FP8_INT4) {
          xs[r] = aoq_fp8_quant_row_mslk(xr, k, q);
        } else {
          for (int64_t c = 0; c < k; c += 128) {
            int64_t len = k - c < 128 ? k - c : 128;
            float s = aoq_fp8_scale(aoq_amax_bf16(xr + c, len), AOQ_E4M3_MAX);
            xs[r * j->kb + c / 128] = s;
            aoq_fp8_quant_row(xr + c, len, s, q + c);
          }
        }
        for (int64_t i = 0; i < k; i++) xf[r * k + i] = aoq_e4m3_to_f32(q[i]);
      }
      break;
    case AOQ_FMT_MXFP8:
    case AOQ_FMT_MXFP4: {
      int fp4 = w->kind == AOQ_FMT_MXFP4;
      for (int64_t r = 0; r < m; r++) {
        uint8_t *q = xq + r * k, *s = xsc + r * (k / 32);
        aoq_mx_quant_row(x + r * k, k, fp4, q, s);
        for (int64_t i = 0; i < k; i++) {
          float e =
              fp4 ? aoq_e2m1_to_f32((uint8_t)(q[i / 2] >> (4 * (i & 1)))) : aoq_e4m3_to_f32(q[i]);
          xf[r * k + i] = e * aoq_e8m0_to_f32(s[i / 32]);
        }
      }
      break;
    }
    case AOQ_FMT_NVFP4: {
      float pts_x = aoq_nvfp4_tensor_scale(aoq_amax_bf16(x, m * k)), pts_w;
      memcpy(&pts_w, w->aux, 4);
      j->pts = aoq_round_bf16(pts_x * pts_w);
      for (int64_t r = 0; r < m; r++) {
        uint8_t *q = xq + r * (k / 2), *s = xsc + r * (k / 16);
        aoq_nvfp4_quant_row(x + r * k, k, pts_x, q, s);
        for (int64_t i = 0; i < k; i++)
          xf[r * k + i] =
              aoq_e2m1_to_f32((uint8_t)(q[i / 2] >> (4 * (i & 1)))) * aoq_e4m3_to_f32(s[i / 16]);
      }
      break;
    }
    default: /* weight-only formats: x as is */
      for (int64_t i = 0; i < m * k; i++) xf[i] = aoq_bf16_to_f32(x[i]);
      break;
  }
}

aoq_status aoq_cpu_linear_quant(aoq_cpu_ctx *c, const aoq_qweight *w, const uint16_t *x,
                                uint16_t *y, int64_t m, void *ws) {
  if (!w || !x || !y) return aoq_err(AOQ_EINVAL, "cpu quantized linear: NULL argument");
  if (m <= 0 || w->n <= 0 || w->k <= 0)
    return aoq_err(AOQ_ESHAPE, "cpu quantized linear: m=%lld, weight [%lld, %lld]", (long long)m,
                   (long long)w->n, (long long)w->k);
  AOQ_TRY(aoq_cpu_quant_check(w));
  if (!ws)
    return aoq_err(AOQ_EINVAL, "cpu quantized linear: kind %d needs a workspace", (int)w->kind);
  char *base = (char *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
  size_t o_xs, o_xq, o_xsc;
  ws_parts(m, w->k, &o_xs, &o_xq, &o_xsc);
  qjob j = {w, (float *)base, (float *)(base + o_xs), m, (w->k + 127) / 128, 1.0f, y};
  prepare_x(&j, x, (uint8_t *)(base + o_xq), (uint8_t *)(base + o_xsc), (float *)base,
            (float *)(base + o_xs));
  int64_t grain = 16384 / (w->k * m) + 1;
  aoq_cpu_parallel(c, w->n, grain, rows_task, &j);
  return AOQ_OK;
}
