/*
 * cpu_linear.c — y[m,n] = x[m,k] @ W^T for bf16 W on the CPU, fp32 accumulation, y rounded
 * (RNE) to the activation dtype; quantized formats go to aoq_cpu_linear_quant (cpu_quant*.c).
 *
 * One register-blocked micro-kernel computes an MR x NR tile of y as MR*NR dot products over k:
 * it keeps MR rows of x and one row of W in registers at a time and FMAs them into MR*NR vector
 * accumulators, which are summed horizontally at the end. M=1 (decode, GEMV, memory-bound) uses
 * 1 x 8 tiles so that eight W rows stream at once; M>1 uses 4 x 4 (AVX-512) or 2 x 4 (AVX2, 16
 * registers) tiles with the W tile outermost, so each W row is read from memory once per call and
 * x is re-read from cache. Work is split over output rows (W rows) across the pool.
 *
 * bf16 -> fp32 widening without shuffles: a 32-bit lane holding bf16 pair (a, b) gives b as
 * `lane & 0xffff0000` and a as `lane << 16`. When x is bf16 too, both operands are split into
 * (even, odd) halves the same way, which a dot product does not mind. With f32 x, W is widened in
 * natural order (vpmovzxwd + shift) to match x's plain loads. The order of the fp32 sums differs
 * between the SIMD levels and the scalar path, so results agree to rounding, not bit for bit.
 */
#include <string.h>

#include "base/error.h"
#include "devices/cpu/cpu_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define AOQ_X86 1
#endif

#define ALWAYS static inline __attribute__((always_inline))
#define GEMV_NR 8 /* W rows per M=1 tile */

/* ---------------------------------------------------------------------------------------------
 * Portable fallback: four partial sums per dot product (the order the compiler cannot change).
 * ------------------------------------------------------------------------------------------- */

static float dot_scalar(const uint16_t *w, const void *x, int64_t k, aoq_dtype dt) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  if (dt == AOQ_DTYPE_F32) {
    const float *xf = x;
    for (; i + 4 <= k; i += 4) {
      s0 += aoq_bf16_to_f32(w[i]) * xf[i];
      s1 += aoq_bf16_to_f32(w[i + 1]) * xf[i + 1];
      s2 += aoq_bf16_to_f32(w[i + 2]) * xf[i + 2];
      s3 += aoq_bf16_to_f32(w[i + 3]) * xf[i + 3];
    }
    for (; i < k; i++) s0 += aoq_bf16_to_f32(w[i]) * xf[i];
  } else {
    const uint16_t *xb = x;
    for (; i + 4 <= k; i += 4) {
      s0 += aoq_bf16_to_f32(w[i]) * aoq_bf16_to_f32(xb[i]);
      s1 += aoq_bf16_to_f32(w[i + 1]) * aoq_bf16_to_f32(xb[i + 1]);
      s2 += aoq_bf16_to_f32(w[i + 2]) * aoq_bf16_to_f32(xb[i + 2]);
      s3 += aoq_bf16_to_f32(w[i + 3]) * aoq_bf16_to_f32(xb[i + 3]);
    }
    for (; i < k; i++) s0 += aoq_bf16_to_f32(w[i]) * aoq_bf16_to_f32(xb[i]);
  }
  return (s0 + s1) + (s2 + s3);
}

/* Scalar dot of the k-tail [k0, k) that a SIMD loop left over. */
ALWAYS float dot_tail(const uint16_t *w, const void *x, int64_t k0, int64_t k, int xbf) {
  float s = 0;
  for (int64_t i = k0; i < k; i++)
    s += aoq_bf16_to_f32(w[i]) *
         (xbf ? aoq_bf16_to_f32(((const uint16_t *)x)[i]) : ((const float *)x)[i]);
  return s;
}

#ifdef AOQ_X86
/* ---------------------------------------------------------------------------------------------
 * AVX-512: 16 fp32 lanes, 32 k per step, up to 4 x 4 (or 1 x 8) accumulators.
 * ------------------------------------------------------------------------------------------- */
#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

T512 ALWAYS void ld512_pair(const uint16_t *p, __m512 *e, __m512 *o) {
  __m512i v = _mm512_loadu_si512((const void *)p);
  *e = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  *o = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int)0xffff0000u)));
}

T512 ALWAYS __m512 ld512_widen(const uint16_t *p) {
  __m256i v = _mm256_loadu_si256((const __m256i *)p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

/* out[i*NR + j] = dot(x row i, W row j) for i < MR, j < NR. */
T512 ALWAYS void tile512(const uint16_t *w, int64_t k, const void *x, int xbf, int MR, int NR,
                         float *out) {
  __m512 acc[4][8];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) acc[i][j] = _mm512_setzero_ps();
  int64_t kk = 0;
  for (; kk + 32 <= k; kk += 32) {
    __m512 xe[4], xo[4];
    for (int i = 0; i < MR; i++) {
      if (xbf) {
        ld512_pair((const uint16_t *)x + i * k + kk, &xe[i], &xo[i]);
      } else {
        xe[i] = _mm512_loadu_ps((const float *)x + i * k + kk);
        xo[i] = _mm512_loadu_ps((const float *)x + i * k + kk + 16);
      }
    }
    for (int j = 0; j < NR; j++) {
      __m512 we, wo;
      if (xbf) {
        ld512_pair(w + j * k + kk, &we, &wo);
      } else {
        we = ld512_widen(w + j * k + kk);
        wo = ld512_widen(w + j * k + kk + 16);
      }
      for (int i = 0; i < MR; i++) {
        acc[i][j] = _mm512_fmadd_ps(we, xe[i], acc[i][j]);
        acc[i][j] = _mm512_fmadd_ps(wo, xo[i], acc[i][j]);
      }
    }
  }
  for (int i = 0; i < MR; i++) {
    const void *xi = xbf ? (const void *)((const uint16_t *)x + i * k)
                         : (const void *)((const float *)x + i * k);
    for (int j = 0; j < NR; j++)
      out[i * NR + j] = _mm512_reduce_add_ps(acc[i][j]) + dot_tail(w + j * k, xi, kk, k, xbf);
  }
}

/* One function per (x dtype, MR, NR) so that every loop above unrolls into registers. */
#define TILE512(NAME, XBF, MR, NR)                                                 \
  T512 static void NAME(const uint16_t *w, int64_t k, const void *x, float *out) { \
    tile512(w, k, x, XBF, MR, NR, out);                                            \
  }
TILE512(t512_b_1x8, 1, 1, 8)
TILE512(t512_b_1x1, 1, 1, 1)
TILE512(t512_b_4x4, 1, 4, 4)
TILE512(t512_b_3x4, 1, 3, 4)
TILE512(t512_b_2x4, 1, 2, 4)
TILE512(t512_b_4x1, 1, 4, 1)
TILE512(t512_f_1x8, 0, 1, 8)
TILE512(t512_f_1x1, 0, 1, 1)
TILE512(t512_f_4x4, 0, 4, 4)
TILE512(t512_f_3x4, 0, 3, 4)
TILE512(t512_f_2x4, 0, 2, 4)
TILE512(t512_f_4x1, 0, 4, 1)

/* ---------------------------------------------------------------------------------------------
 * AVX2 + FMA: 8 fp32 lanes, 16 k per step, up to 2 x 4 (or 1 x 8) accumulators (16 registers).
 * ------------------------------------------------------------------------------------------- */
#define T256 __attribute__((target("avx2,fma")))

T256 ALWAYS void ld256_pair(const uint16_t *p, __m256 *e, __m256 *o) {
  __m256i v = _mm256_loadu_si256((const __m256i *)p);
  *e = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  *o = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)0xffff0000u)));
}

T256 ALWAYS __m256 ld256_widen(const uint16_t *p) {
  __m128i v = _mm_loadu_si128((const __m128i *)p);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
}

T256 ALWAYS float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

T256 ALWAYS void tile256(const uint16_t *w, int64_t k, const void *x, int xbf, int MR, int NR,
                         float *out) {
  __m256 acc[2][8];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) acc[i][j] = _mm256_setzero_ps();
  int64_t kk = 0;
  for (; kk + 16 <= k; kk += 16) {
    __m256 xe[2], xo[2];
    for (int i = 0; i < MR; i++) {
      if (xbf) {
        ld256_pair((const uint16_t *)x + i * k + kk, &xe[i], &xo[i]);
      } else {
        xe[i] = _mm256_loadu_ps((const float *)x + i * k + kk);
        xo[i] = _mm256_loadu_ps((const float *)x + i * k + kk + 8);
      }
    }
    for (int j = 0; j < NR; j++) {
      __m256 we, wo;
      if (xbf) {
        ld256_pair(w + j * k + kk, &we, &wo);
      } else {
        we = ld256_widen(w + j * k + kk);
        wo = ld256_widen(w + j * k + kk + 8);
      }
      for (int i = 0; i < MR; i++) {
        acc[i][j] = _mm256_fmadd_ps(we, xe[i], acc[i][j]);
        acc[i][j] = _mm256_fmadd_ps(wo, xo[i], acc[i][j]);
      }
    }
  }
  for (int i = 0; i < MR; i++) {
    const void *xi = xbf ? (const void *)((const uint16_t *)x + i * k)
                         : (const void *)((const float *)x + i * k);
    for (int j = 0; j < NR; j++)
      out[i * NR + j] = hsum256(acc[i][j]) + dot_tail(w + j * k, xi, kk, k, xbf);
  }
}

#define TILE256(NAME, XBF, MR, NR)                                                 \
  T256 static void NAME(const uint16_t *w, int64_t k, const void *x, float *out) { \
    tile256(w, k, x, XBF, MR, NR, out);                                            \
  }
TILE256(t256_b_1x8, 1, 1, 8)
TILE256(t256_b_1x1, 1, 1, 1)
TILE256(t256_b_2x4, 1, 2, 4)
TILE256(t256_b_2x1, 1, 2, 1)
TILE256(t256_f_1x8, 0, 1, 8)
TILE256(t256_f_1x1, 0, 1, 1)
TILE256(t256_f_2x4, 0, 2, 4)
TILE256(t256_f_2x1, 0, 2, 1)
#endif /* AOQ_X86 */

typedef void (*tile_fn)(const uint16_t *w, int64_t k, const void *x, float *out);

/* The tiles of one ISA and x dtype: gemv[NR=8], gemv1 (NR=1), and for M>1 tiles of MR rows with
 * NR=4 (index MR-1, NULL where a smaller MR must be used) plus NR=1 tiles for leftover W rows. */
typedef struct tile_set {
  tile_fn gemv8, gemv1;
  int mr;         /* largest MR */
  tile_fn blk[4]; /* blk[r-1]: r x 4, or NULL */
  tile_fn col[4]; /* col[r-1]: r x 1, or NULL */
} tile_set;

#ifdef AOQ_X86
static const tile_set set512_b = {t512_b_1x8,
                                  t512_b_1x1,
                                  4,
                                  {NULL, t512_b_2x4, t512_b_3x4, t512_b_4x4},
                                  {t512_b_1x1, NULL, NULL, t512_b_4x1}};
static const tile_set set512_f = {t512_f_1x8,
                                  t512_f_1x1,
                                  4,
                                  {NULL, t512_f_2x4, t512_f_3x4, t512_f_4x4},
                                  {t512_f_1x1, NULL, NULL, t512_f_4x1}};
static const tile_set set256_b = {t256_b_1x8,
                                  t256_b_1x1,
                                  2,
                                  {NULL, t256_b_2x4, NULL, NULL},
                                  {t256_b_1x1, t256_b_2x1, NULL, NULL}};
static const tile_set set256_f = {t256_f_1x8,
                                  t256_f_1x1,
                                  2,
                                  {NULL, t256_f_2x4, NULL, NULL},
                                  {t256_f_1x1, t256_f_2x1, NULL, NULL}};
#endif

typedef struct lin_job {
  const uint16_t *w;
  const void *x;
  void *y;
  int64_t m, n, k;
  aoq_dtype dt;
  const tile_set *ts; /* NULL: scalar */
} lin_job;

#define ROW_UNIT 8 /* W rows per parallel work item */

static void store_tile(const lin_job *j, int64_t i0, int64_t n0, int mr, int nr, const float *t) {
  for (int i = 0; i < mr; i++)
    for (int c = 0; c < nr; c++) aoq_cpu_st(j->y, (i0 + i) * j->n + n0 + c, t[i * nr + c], j->dt);
}

static const void *x_row(const lin_job *j, int64_t i) {
  size_t es = j->dt == AOQ_DTYPE_F32 ? 4 : 2;
  return (const char *)j->x + (size_t)(i * j->k) * es;
}

static void lin_task(void *arg, int64_t ub, int64_t ue) {
  const lin_job *j = arg;
  int64_t n0 = ub * ROW_UNIT, n1 = ue * ROW_UNIT < j->n ? ue * ROW_UNIT : j->n;
  const int64_t k = j->k;
  float t[32];
  if (!j->ts) {
    for (int64_t r = n0; r < n1; r++)
      for (int64_t i = 0; i < j->m; i++)
        aoq_cpu_st(j->y, i * j->n + r, dot_scalar(j->w + r * k, x_row(j, i), k, j->dt), j->dt);
    return;
  }
  const tile_set *ts = j->ts;
  if (j->m == 1) {
    int64_t r = n0;
    for (; r + GEMV_NR <= n1; r += GEMV_NR) {
      ts->gemv8(j->w + r * k, k, j->x, t);
      store_tile(j, 0, r, 1, GEMV_NR, t);
    }
    for (; r < n1; r++) {
      ts->gemv1(j->w + r * k, k, j->x, t);
      store_tile(j, 0, r, 1, 1, t);
    }
    return;
  }
  int64_t r = n0;
  for (; r + 4 <= n1; r += 4) { /* W tile of 4 rows stays in cache while all of x passes by */
    for (int64_t i = 0; i < j->m;) {
      int mr = j->m - i < ts->mr ? (int)(j->m - i) : ts->mr;
      if (mr == 1) {
        for (int c = 0; c < 4; c++) {
          ts->gemv1(j->w + (r + c) * k, k, x_row(j, i), t + c);
        }
        store_tile(j, i, r, 1, 4, t);
      } else {
        ts->blk[mr - 1](j->w + r * k, k, x_row(j, i), t);
        store_tile(j, i, r, mr, 4, t);
      }
      i += mr;
    }
  }
  for (; r < n1; r++) {
    for (int64_t i = 0; i < j->m;) {
      int mr = j->m - i < ts->mr ? (int)(j->m - i) : ts->mr;
      while (!ts->col[mr - 1]) mr--;
      ts->col[mr - 1](j->w + r * k, k, x_row(j, i), t);
      store_tile(j, i, r, mr, 1, t);
      i += mr;
    }
  }
}

/* Bytes at the start of the quantized path's workspace for f32 <-> bf16 staging of x and y. */
static size_t conv_bytes(const aoq_qweight *w, int64_t m) {
  size_t b = (size_t)m * (size_t)(w->k + w->n) * sizeof(uint16_t);
  return (b + 255) & ~(size_t)255;
}

size_t aoq_cpu_linear_workspace(void *ctx, const aoq_qweight *w, int64_t m) {
  (void)ctx;
  if (!w || m < 0 || w->kind == AOQ_FMT_BF16) return 0;
  /* f32 activations are narrowed to bf16 (x) and widened back (y) around the quantized kernels. */
  return conv_bytes(w, m) + aoq_cpu_quant_workspace(w, m);
}

static aoq_status check_qweight(const aoq_qweight *w) {
  if (w->n <= 0 || w->k <= 0)
    return aoq_err(AOQ_ESHAPE, "cpu linear: weight shape [%lld, %lld]", (long long)w->n,
                   (long long)w->k);
  if (!w->qdata) return aoq_err(AOQ_EINVAL, "cpu linear: weight without qdata");
  return AOQ_OK;
}

aoq_status aoq_cpu_linear(void *ctx, const aoq_qweight *w, const void *x, void *y, int64_t m,
                          aoq_dtype dt, void *ws, aoq_stream *s) {
  aoq_cpu_ctx *c = ctx;
  (void)s;
  if (!w || !x || !y) return aoq_err(AOQ_EINVAL, "cpu linear: NULL weight, x or y");
  if (m < 0) return aoq_err(AOQ_EINVAL, "cpu linear: %lld rows", (long long)m);
  AOQ_TRY(aoq_cpu_check_dt(dt, "linear"));
  AOQ_TRY(check_qweight(w));
  if (m == 0) return AOQ_OK;
  if (w->kind != AOQ_FMT_BF16) {
    if (!((aoq_cpu_quant_formats() >> w->kind) & 1))
      return aoq_err(AOQ_EUNSUPPORTED, "cpu linear: no kernel for format kind %d", (int)w->kind);
    size_t need = (dt == AOQ_DTYPE_F32 || aoq_cpu_quant_workspace(w, m))
                      ? aoq_cpu_linear_workspace(ctx, w, m)
                      : 0;
    if (need && !ws)
      return aoq_err(AOQ_EINVAL, "cpu linear: format kind %d needs %zu workspace bytes, got NULL",
                     (int)w->kind, need);
    void *qws = ws ? (char *)ws + conv_bytes(w, m) : NULL;
    if (dt == AOQ_DTYPE_BF16) return aoq_cpu_linear_quant(c, w, x, y, m, qws);
    /* F32 activations: the quantized kernels take bf16 x (torchao's activations are bf16). */
    uint16_t *xb = ws, *yb = xb + m * w->k;
    for (int64_t i = 0; i < m * w->k; i++) xb[i] = aoq_f32_to_bf16(((const float *)x)[i]);
    AOQ_TRY(aoq_cpu_linear_quant(c, w, xb, yb, m, qws));
    for (int64_t i = 0; i < m * w->n; i++) ((float *)y)[i] = aoq_bf16_to_f32(yb[i]);
    return AOQ_OK;
  }
  if (w->qdata_bytes && w->qdata_bytes < (size_t)(w->n * w->k) * 2)
    return aoq_err(AOQ_ESHAPE, "cpu linear: bf16 weight [%lld, %lld] needs %lld bytes, has %zu",
                   (long long)w->n, (long long)w->k, (long long)(w->n * w->k * 2), w->qdata_bytes);
  lin_job j = {w->qdata, x, y, m, w->n, w->k, dt, NULL};
#ifdef AOQ_X86
  if (c->isa == AOQ_CPU_ISA_AVX512)
    j.ts = dt == AOQ_DTYPE_BF16 ? &set512_b : &set512_f;
  else if (c->isa == AOQ_CPU_ISA_AVX2)
    j.ts = dt == AOQ_DTYPE_BF16 ? &set256_b : &set256_f;
#endif
  int64_t units = (w->n + ROW_UNIT - 1) / ROW_UNIT;
  /* Enough work per item to be worth a hand-off: ~64k multiply-adds. */
  int64_t per_unit = ROW_UNIT * w->k * m;
  int64_t grain = per_unit >= 65536 ? 1 : 65536 / (per_unit ? per_unit : 1);
  aoq_cpu_parallel(c, units, grain, lin_task, &j);
  return AOQ_OK;
}
