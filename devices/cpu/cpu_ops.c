/*
 * cpu_ops.c — the element-wise and attention ops of the CPU backend: rmsnorm, add, silu_mul,
 * embed, rope, kv_store, attention, convert.
 *
 * Numerics follow Hugging Face's Llama in the activation dtype: every op computes in fp32, and
 * with BF16 activations rounds (RNE) wherever torch would hand back a bf16 tensor between two
 * operations (noted per op), so that the CPU backend is an oracle for the model, not just for the
 * formula. With F32 activations nothing is rounded.
 */
#include <math.h>
#include <string.h>

#include "base/error.h"
#include "devices/cpu/cpu_kernels.h"

#define MAX_HEAD_DIM 1024 /* rope and attention keep one head in fp32 on the stack */

static size_t esize(aoq_dtype dt) {
  return dt == AOQ_DTYPE_F32 ? 4 : 2;
}

static aoq_status check_rows(const char *op, int64_t m, int64_t n) {
  if (m < 0 || n < 0)
    return aoq_err(AOQ_EINVAL, "cpu %s: negative size (m=%lld, n=%lld)", op, (long long)m,
                   (long long)n);
  return AOQ_OK;
}

/* Grain (items per chunk) so that one chunk is roughly `work` scalar operations. */
static int64_t grain_for(int64_t per_item, int64_t work) {
  if (per_item <= 0) per_item = 1;
  return per_item >= work ? 1 : work / per_item;
}

/* ---- rmsnorm: HF LlamaRMSNorm, x*rsqrt(mean(x^2)+eps) in fp32, cast to dt, then * w ---- */

typedef struct norm_job {
  const void *x, *w;
  void *y;
  int64_t n;
  float eps;
  aoq_dtype dt;
} norm_job;

static void rmsnorm_task(void *arg, int64_t b, int64_t e) {
  const norm_job *j = arg;
  for (int64_t r = b; r < e; r++) {
    int64_t o = r * j->n;
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t c = 0;
    for (; c + 4 <= j->n; c += 4) {
      float a0 = aoq_cpu_ld(j->x, o + c, j->dt), a1 = aoq_cpu_ld(j->x, o + c + 1, j->dt);
      float a2 = aoq_cpu_ld(j->x, o + c + 2, j->dt), a3 = aoq_cpu_ld(j->x, o + c + 3, j->dt);
      s0 += a0 * a0, s1 += a1 * a1, s2 += a2 * a2, s3 += a3 * a3;
    }
    for (; c < j->n; c++) {
      float a = aoq_cpu_ld(j->x, o + c, j->dt);
      s0 += a * a;
    }
    float inv = 1.0f / sqrtf(((s0 + s1) + (s2 + s3)) / (float)j->n + j->eps);
    for (c = 0; c < j->n; c++) {
      float v = aoq_cpu_rnd(aoq_cpu_ld(j->x, o + c, j->dt) * inv, j->dt);
      aoq_cpu_st(j->y, o + c, aoq_cpu_ld(j->w, c, j->dt) * v, j->dt);
    }
  }
}

aoq_status aoq_cpu_rmsnorm(void *ctx, const void *x, const void *w, void *y, int64_t m, int64_t n,
                           float eps, aoq_dtype dt, aoq_stream *s) {
  (void)s;
  AOQ_TRY(aoq_cpu_check_dt(dt, "rmsnorm"));
  AOQ_TRY(check_rows("rmsnorm", m, n));
  if (m == 0 || n == 0) return AOQ_OK;
  if (!x || !w || !y) return aoq_err(AOQ_EINVAL, "cpu rmsnorm: NULL x, w or y");
  if (!(eps >= 0) || isinf(eps))
    return aoq_err(AOQ_EINVAL, "cpu rmsnorm: eps %g (expected a finite value >= 0)", (double)eps);
  norm_job j = {x, w, y, n, eps, dt};
  aoq_cpu_parallel(ctx, m, grain_for(2 * n, 32768), rmsnorm_task, &j);
  return AOQ_OK;
}

/* ---- add ---- */

typedef struct add_job {
  const void *a, *b;
  void *y;
  aoq_dtype dt;
} add_job;

static void add_task(void *arg, int64_t b, int64_t e) {
  const add_job *j = arg;
  if (j->dt == AOQ_DTYPE_F32) {
    const float *pa = j->a, *pb = j->b;
    float *py = j->y;
    for (int64_t i = b; i < e; i++) py[i] = pa[i] + pb[i];
  } else {
    for (int64_t i = b; i < e; i++)
      aoq_cpu_st(j->y, i, aoq_cpu_ld(j->a, i, j->dt) + aoq_cpu_ld(j->b, i, j->dt), j->dt);
  }
}

aoq_status aoq_cpu_add(void *ctx, const void *a, const void *b, void *y, int64_t n, aoq_dtype dt,
                       aoq_stream *s) {
  (void)s;
  AOQ_TRY(aoq_cpu_check_dt(dt, "add"));
  AOQ_TRY(check_rows("add", 1, n));
  if (n == 0) return AOQ_OK;
  if (!a || !b || !y) return aoq_err(AOQ_EINVAL, "cpu add: NULL a, b or y");
  add_job j = {a, b, y, dt};
  aoq_cpu_parallel(ctx, n, 32768, add_task, &j);
  return AOQ_OK;
}

/* ---- silu_mul: HF LlamaMLP act_fn(gate) * up — silu rounded to dt, then the product ---- */

typedef struct silu_job {
  const void *gu;
  void *y;
  int64_t n;
  aoq_dtype dt;
} silu_job;

static void silu_task(void *arg, int64_t b, int64_t e) {
  const silu_job *j = arg;
  for (int64_t r = b; r < e; r++) {
    int64_t gi = r * 2 * j->n, yi = r * j->n;
    for (int64_t c = 0; c < j->n; c++) {
      float g = aoq_cpu_ld(j->gu, gi + c, j->dt), u = aoq_cpu_ld(j->gu, gi + j->n + c, j->dt);
      float a = aoq_cpu_rnd(g / (1.0f + expf(-g)), j->dt);
      aoq_cpu_st(j->y, yi + c, a * u, j->dt);
    }
  }
}

aoq_status aoq_cpu_silu_mul(void *ctx, const void *gu, void *y, int64_t m, int64_t n, aoq_dtype dt,
                            aoq_stream *s) {
  (void)s;
  AOQ_TRY(aoq_cpu_check_dt(dt, "silu_mul"));
  AOQ_TRY(check_rows("silu_mul", m, n));
  if (m == 0 || n == 0) return AOQ_OK;
  if (!gu || !y) return aoq_err(AOQ_EINVAL, "cpu silu_mul: NULL gu or y");
  silu_job j = {gu, y, n, dt};
  aoq_cpu_parallel(ctx, m, grain_for(8 * n, 32768), silu_task, &j);
  return AOQ_OK;
}

/* ---- embed ---- */

aoq_status aoq_cpu_embed(void *ctx, const void *table, int64_t n_rows, const int32_t *ids, void *y,
                         int64_t m, int64_t dim, aoq_dtype dt, aoq_stream *s) {
  (void)ctx, (void)s;
  AOQ_TRY(aoq_cpu_check_dt(dt, "embed"));
  AOQ_TRY(check_rows("embed", m, dim));
  if (n_rows < 0) return aoq_err(AOQ_EINVAL, "cpu embed: %lld table rows", (long long)n_rows);
  if (m == 0 || dim == 0) return AOQ_OK;
  if (!table || !ids || !y) return aoq_err(AOQ_EINVAL, "cpu embed: NULL table, ids or y");
  for (int64_t i = 0; i < m; i++)
    if (ids[i] < 0 || ids[i] >= n_rows)
      return aoq_err(AOQ_EINVAL, "cpu embed: token id %d at row %lld is outside [0, %lld)",
                     (int)ids[i], (long long)i, (long long)n_rows);
  size_t row = (size_t)dim * esize(dt);
  for (int64_t i = 0; i < m; i++)
    memcpy((char *)y + (size_t)i * row, (const char *)table + (size_t)ids[i] * row, row);
  return AOQ_OK;
}

/* ---- rope ---- */

/* HF _compute_default_rope_parameters + _compute_llama3_parameters, in fp32 like torch:
 * inv_freq[d] = 1 / theta^(2d/dim), then the Llama-3.1 wavelength-dependent scaling. */
static void rope_inv_freq(const aoq_rope *r, int head_dim, float *inv) {
  int half = head_dim / 2;
  for (int d = 0; d < half; d++) {
    float ex = (float)(2 * d) / (float)head_dim;
    float p = (float)pow((double)r->theta, (double)ex); /* fp32 pow, correctly rounded */
    inv[d] = 1.0f / p;
  }
  if (!(r->factor > 0)) return;
  float orig = (float)r->original_max_position;
  float low_wl = orig / r->low_freq_factor, high_wl = orig / r->high_freq_factor;
  const float two_pi = (float)(2.0 * 3.14159265358979323846);
  for (int d = 0; d < half; d++) {
    float wl = two_pi / inv[d];
    if (wl > low_wl) {
      inv[d] = inv[d] / r->factor;
    } else if (!(wl < high_wl)) { /* medium band: blend between scaled and unscaled */
      float smooth = (orig / wl - r->low_freq_factor) / (r->high_freq_factor - r->low_freq_factor);
      inv[d] = (1.0f - smooth) * inv[d] / r->factor + smooth * inv[d];
    }
  }
}

typedef struct rope_job {
  void *x;
  const int32_t *pos;
  int n_heads, head_dim;
  int64_t stride;
  const float *inv;
  aoq_dtype dt;
} rope_job;

/* HF apply_rotary_pos_emb: cos/sin in fp32 from angle = pos * inv_freq (fp32), cast to dt;
 * out = x*cos + rotate_half(x)*sin with each product and the sum rounded to dt. */
static void rope_task(void *arg, int64_t b, int64_t e) {
  const rope_job *j = arg;
  int half = j->head_dim / 2;
  for (int64_t r = b; r < e; r++) {
    float p = (float)j->pos[r];
    for (int d = 0; d < half; d++) {
      float ang = p * j->inv[d];
      float c = aoq_cpu_rnd(cosf(ang), j->dt), sn = aoq_cpu_rnd(sinf(ang), j->dt);
      for (int h = 0; h < j->n_heads; h++) {
        int64_t i1 = r * j->stride + (int64_t)h * j->head_dim + d, i2 = i1 + half;
        float x1 = aoq_cpu_ld(j->x, i1, j->dt), x2 = aoq_cpu_ld(j->x, i2, j->dt);
        float a = aoq_cpu_rnd(x1 * c, j->dt) - aoq_cpu_rnd(x2 * sn, j->dt);
        float bb = aoq_cpu_rnd(x2 * c, j->dt) + aoq_cpu_rnd(x1 * sn, j->dt);
        aoq_cpu_st(j->x, i1, a, j->dt);
        aoq_cpu_st(j->x, i2, bb, j->dt);
      }
    }
  }
}

aoq_status aoq_cpu_rope(void *ctx, void *x, const int32_t *pos, int64_t m, int n_heads,
                        int head_dim, int64_t row_stride, const aoq_rope *r, aoq_dtype dt,
                        aoq_stream *s) {
  (void)s;
  AOQ_TRY(aoq_cpu_check_dt(dt, "rope"));
  AOQ_TRY(check_rows("rope", m, row_stride));
  AOQ_TRY(aoq_rope_check(r, n_heads, head_dim, MAX_HEAD_DIM, row_stride, "cpu"));
  if (m == 0) return AOQ_OK;
  if (!x || !pos) return aoq_err(AOQ_EINVAL, "cpu rope: NULL x or pos");
  for (int64_t i = 0; i < m; i++)
    if (pos[i] < 0)
      return aoq_err(AOQ_EINVAL, "cpu rope: negative position %d at row %lld", (int)pos[i],
                     (long long)i);
  float inv[MAX_HEAD_DIM / 2];
  rope_inv_freq(r, head_dim, inv);
  rope_job j = {x, pos, n_heads, head_dim, row_stride, inv, dt};
  aoq_cpu_parallel(ctx, m, grain_for((int64_t)n_heads * head_dim * 4, 32768), rope_task, &j);
  return AOQ_OK;
}

/* ---- kv_store ---- */

static aoq_status check_kv(const aoq_kv_cache *kv, const char *op) {
  AOQ_TRY(aoq_kv_cache_check(kv, "cpu", op));
  if (kv->dtype != AOQ_DTYPE_BF16 && kv->dtype != AOQ_DTYPE_F32)
    return aoq_err(AOQ_EUNSUPPORTED, "cpu %s: kv cache dtype %d (BF16 or F32)", op, (int)kv->dtype);
  return AOQ_OK;
}

aoq_status aoq_cpu_kv_store(void *ctx, const aoq_kv_cache *kv, const void *k, const void *v,
                            const int32_t *slots, int64_t m, aoq_dtype dt, aoq_stream *s) {
  (void)ctx, (void)s;
  AOQ_TRY(aoq_cpu_check_dt(dt, "kv_store"));
  AOQ_TRY(check_kv(kv, "kv_store"));
  AOQ_TRY(check_rows("kv_store", m, 0));
  if (m == 0) return AOQ_OK;
  if (!k || !v || !slots) return aoq_err(AOQ_EINVAL, "cpu kv_store: NULL k, v or slots");
  int64_t n_slots = (int64_t)kv->n_pages * kv->page_size;
  for (int64_t i = 0; i < m; i++)
    if (slots[i] < 0 || slots[i] >= n_slots)
      return aoq_err(AOQ_EINVAL, "cpu kv_store: slot %d at row %lld is outside [0, %lld)",
                     (int)slots[i], (long long)i, (long long)n_slots);
  int64_t w = (int64_t)kv->n_kv_heads * kv->head_dim;
  for (int64_t i = 0; i < m; i++) {
    int64_t dst = (int64_t)slots[i] * w, src = i * w;
    if (kv->dtype == dt) {
      size_t es = esize(dt);
      memcpy((char *)kv->k + dst * es, (const char *)k + src * es, (size_t)w * es);
      memcpy((char *)kv->v + dst * es, (const char *)v + src * es, (size_t)w * es);
    } else {
      for (int64_t c = 0; c < w; c++) {
        aoq_cpu_st(kv->k, dst + c, aoq_cpu_ld(k, src + c, dt), kv->dtype);
        aoq_cpu_st(kv->v, dst + c, aoq_cpu_ld(v, src + c, dt), kv->dtype);
      }
    }
  }
  return AOQ_OK;
}

/* ---- attention ---- */

size_t aoq_cpu_attention_workspace(void *ctx, const aoq_kv_cache *kv, int64_t m, int n_heads,
                                   int max_pos) {
  (void)ctx, (void)kv, (void)m, (void)n_heads, (void)max_pos;
  return 0; /* streaming softmax: one head's accumulator lives on the stack */
}

typedef struct attn_job {
  const aoq_kv_cache *kv;
  const aoq_attn_batch *b;
  const void *q;
  void *out;
  int n_heads, group;
  float scale;
  aoq_dtype dt;
  float (*dot)(const float *q, const void *k, int n);      /* q . k, k of the cache dtype */
  void (*axpy)(float *acc, float w, const void *v, int n); /* acc += w * v */
} attn_job;

#define ATTN_BLOCK 128 /* keys scored per pass of the streaming softmax */

/* q . k and acc += w * v over one head, v/k of the cache dtype: portable versions (eight
 * independent partial sums, which the compiler may vectorize without reassociating one sum) and
 * AVX2 / AVX-512 versions chosen by the device's ISA. */
static float dot_bf16(const float *q, const void *kp, int n) {
  const uint16_t *k = kp;
  float s[8] = {0}, t = 0;
  int d = 0;
  for (; d + 8 <= n; d += 8)
    for (int l = 0; l < 8; l++) s[l] += q[d + l] * aoq_bf16_to_f32(k[d + l]);
  for (; d < n; d++) t += q[d] * aoq_bf16_to_f32(k[d]);
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + t;
}

static float dot_f32(const float *q, const void *kp, int n) {
  const float *k = kp;
  float s[8] = {0}, t = 0;
  int d = 0;
  for (; d + 8 <= n; d += 8)
    for (int l = 0; l < 8; l++) s[l] += q[d + l] * k[d + l];
  for (; d < n; d++) t += q[d] * k[d];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + t;
}

static void axpy_bf16(float *acc, float w, const void *vp, int n) {
  const uint16_t *v = vp;
  for (int d = 0; d < n; d++) acc[d] += w * aoq_bf16_to_f32(v[d]);
}

static void axpy_f32(float *acc, float w, const void *vp, int n) {
  const float *v = vp;
  for (int d = 0; d < n; d++) acc[d] += w * v[d];
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define T256 __attribute__((target("avx2,fma")))

T512 static float dot_bf16_512(const float *q, const void *kp, int n) {
  const uint16_t *k = kp;
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int d = 0;
  for (; d + 32 <= n; d += 32) {
    __m512i k0 = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(k + d)));
    __m512i k1 = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(k + d + 16)));
    a0 =
        _mm512_fmadd_ps(_mm512_loadu_ps(q + d), _mm512_castsi512_ps(_mm512_slli_epi32(k0, 16)), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + d + 16),
                         _mm512_castsi512_ps(_mm512_slli_epi32(k1, 16)), a1);
  }
  float t = 0;
  for (; d < n; d++) t += q[d] * aoq_bf16_to_f32(k[d]);
  return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) + t;
}

T512 static float dot_f32_512(const float *q, const void *kp, int n) {
  const float *k = kp;
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int d = 0;
  for (; d + 32 <= n; d += 32) {
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), _mm512_loadu_ps(k + d), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + d + 16), _mm512_loadu_ps(k + d + 16), a1);
  }
  float t = 0;
  for (; d < n; d++) t += q[d] * k[d];
  return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) + t;
}

T512 static void axpy_bf16_512(float *acc, float w, const void *vp, int n) {
  const uint16_t *v = vp;
  __m512 wv = _mm512_set1_ps(w);
  int d = 0;
  for (; d + 16 <= n; d += 16) {
    __m512i x = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(v + d)));
    _mm512_storeu_ps(acc + d, _mm512_fmadd_ps(wv, _mm512_castsi512_ps(_mm512_slli_epi32(x, 16)),
                                              _mm512_loadu_ps(acc + d)));
  }
  for (; d < n; d++) acc[d] += w * aoq_bf16_to_f32(v[d]);
}

T512 static void axpy_f32_512(float *acc, float w, const void *vp, int n) {
  const float *v = vp;
  __m512 wv = _mm512_set1_ps(w);
  int d = 0;
  for (; d + 16 <= n; d += 16)
    _mm512_storeu_ps(acc + d,
                     _mm512_fmadd_ps(wv, _mm512_loadu_ps(v + d), _mm512_loadu_ps(acc + d)));
  for (; d < n; d++) acc[d] += w * v[d];
}

T256 static float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

T256 static float dot_bf16_256(const float *q, const void *kp, int n) {
  const uint16_t *k = kp;
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int d = 0;
  for (; d + 16 <= n; d += 16) {
    __m256i k0 = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(k + d)));
    __m256i k1 = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(k + d + 8)));
    a0 =
        _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_castsi256_ps(_mm256_slli_epi32(k0, 16)), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d + 8), _mm256_castsi256_ps(_mm256_slli_epi32(k1, 16)),
                         a1);
  }
  float t = 0;
  for (; d < n; d++) t += q[d] * aoq_bf16_to_f32(k[d]);
  return hsum8(_mm256_add_ps(a0, a1)) + t;
}

T256 static float dot_f32_256(const float *q, const void *kp, int n) {
  const float *k = kp;
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int d = 0;
  for (; d + 16 <= n; d += 16) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + d), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d + 8), _mm256_loadu_ps(k + d + 8), a1);
  }
  float t = 0;
  for (; d < n; d++) t += q[d] * k[d];
  return hsum8(_mm256_add_ps(a0, a1)) + t;
}

T256 static void axpy_bf16_256(float *acc, float w, const void *vp, int n) {
  const uint16_t *v = vp;
  __m256 wv = _mm256_set1_ps(w);
  int d = 0;
  for (; d + 8 <= n; d += 8) {
    __m256i x = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(v + d)));
    _mm256_storeu_ps(acc + d, _mm256_fmadd_ps(wv, _mm256_castsi256_ps(_mm256_slli_epi32(x, 16)),
                                              _mm256_loadu_ps(acc + d)));
  }
  for (; d < n; d++) acc[d] += w * aoq_bf16_to_f32(v[d]);
}

T256 static void axpy_f32_256(float *acc, float w, const void *vp, int n) {
  const float *v = vp;
  __m256 wv = _mm256_set1_ps(w);
  int d = 0;
  for (; d + 8 <= n; d += 8)
    _mm256_storeu_ps(acc + d,
                     _mm256_fmadd_ps(wv, _mm256_loadu_ps(v + d), _mm256_loadu_ps(acc + d)));
  for (; d < n; d++) acc[d] += w * v[d];
}
#endif

static void attn_kernels(aoq_cpu_isa isa, aoq_dtype kdt, attn_job *j) {
  int f32 = kdt == AOQ_DTYPE_F32;
  j->dot = f32 ? dot_f32 : dot_bf16;
  j->axpy = f32 ? axpy_f32 : axpy_bf16;
#if defined(__x86_64__) || defined(__i386__)
  if (isa >= AOQ_CPU_ISA_AVX512) {
    j->dot = f32 ? dot_f32_512 : dot_bf16_512;
    j->axpy = f32 ? axpy_f32_512 : axpy_bf16_512;
  } else if (isa == AOQ_CPU_ISA_AVX2) {
    j->dot = f32 ? dot_f32_256 : dot_bf16_256;
    j->axpy = f32 ? axpy_f32_256 : axpy_bf16_256;
  }
#else
  (void)isa;
#endif
}

#define ATTN_FLOATS 4096 /* fp32 q and accumulators of the heads handled together */

/* Heads of one GQA group processed together (they read the same K/V rows). */
static int attn_heads_per_item(int group, int hd) {
  int cap = ATTN_FLOATS / hd < 8 ? ATTN_FLOATS / hd : 8;
  return group < cap ? group : cap;
}

/* One (row, kv head, chunk of its query heads): softmax(q.K^T * scale) V over positions 0..pos,
 * fp32, max-subtracted, in blocks of ATTN_BLOCK keys (online rescaling when a later block raises
 * the maximum). Each K and V row is read once for all the chunk's query heads. */
static void attn_task(void *arg, int64_t b, int64_t e) {
  const attn_job *j = arg;
  const aoq_kv_cache *kv = j->kv;
  const int hd = kv->head_dim, nkv = kv->n_kv_heads, ps = kv->page_size;
  const int hpi = attn_heads_per_item(j->group, hd), chunks = (j->group + hpi - 1) / hpi;
  const size_t kes = esize(kv->dtype);
  float qf[ATTN_FLOATS], acc[ATTN_FLOATS], sc[8][ATTN_BLOCK], mx[8], l[8];
  for (int64_t it = b; it < e; it++) {
    int64_t row = it / ((int64_t)nkv * chunks);
    int kvh = (int)(it / chunks % nkv), h0 = kvh * j->group + (int)(it % chunks) * hpi;
    int hn = j->group - (h0 - kvh * j->group) < hpi ? j->group - (h0 - kvh * j->group) : hpi;
    int seq = j->b->row_seq[row], pos = j->b->row_pos[row];
    const int32_t *bt = j->b->block_tables + (int64_t)seq * j->b->max_blocks;
    int64_t qo = row * (int64_t)j->n_heads * hd + (int64_t)h0 * hd;
    for (int d = 0; d < hn * hd; d++) {
      qf[d] = aoq_cpu_ld(j->q, qo + d, j->dt);
      acc[d] = 0;
    }
    for (int g = 0; g < hn; g++) mx[g] = -INFINITY, l[g] = 0;
    for (int t0 = 0; t0 <= pos; t0 += ATTN_BLOCK) {
      int nt = pos + 1 - t0 < ATTN_BLOCK ? pos + 1 - t0 : ATTN_BLOCK;
      float bmax[8];
      for (int g = 0; g < hn; g++) bmax[g] = -INFINITY;
      for (int t = 0; t < nt; t++) {
        int p = t0 + t;
        int64_t slot = (int64_t)bt[p / ps] * ps + p % ps;
        const char *kp = (const char *)kv->k + ((slot * nkv + kvh) * hd) * kes;
        for (int g = 0; g < hn; g++) {
          float v = j->dot(qf + g * hd, kp, hd) * j->scale;
          sc[g][t] = v;
          if (v > bmax[g]) bmax[g] = v;
        }
      }
      for (int g = 0; g < hn; g++)
        if (bmax[g] > mx[g]) {
          float corr = expf(mx[g] - bmax[g]); /* 0 on the first block */
          l[g] *= corr;
          for (int d = 0; d < hd; d++) acc[g * hd + d] *= corr;
          mx[g] = bmax[g];
        }
      for (int t = 0; t < nt; t++) {
        int p = t0 + t;
        int64_t slot = (int64_t)bt[p / ps] * ps + p % ps;
        const char *vp = (const char *)kv->v + ((slot * nkv + kvh) * hd) * kes;
        for (int g = 0; g < hn; g++) {
          float w = expf(sc[g][t] - mx[g]);
          l[g] += w;
          /* With bf16 activations the weights enter P.V rounded to bf16, as in torch (CPU flash
           * and eager attention) and FlashAttention; the normalizer l sums them unrounded. */
          j->axpy(acc + g * hd, aoq_cpu_rnd(w, j->dt), vp, hd);
        }
      }
    }
    for (int g = 0; g < hn; g++) {
      float inv = l[g] > 0 ? 1.0f / l[g] : 0.0f;
      for (int d = 0; d < hd; d++)
        aoq_cpu_st(j->out, qo + g * hd + d, acc[g * hd + d] * inv, j->dt);
    }
  }
}

aoq_status aoq_cpu_attention(void *ctx, const aoq_kv_cache *kv, const aoq_attn_batch *b,
                             const void *q, void *out, int64_t m, int n_heads, float scale,
                             aoq_dtype dt, void *ws, aoq_stream *s) {
  (void)ws, (void)s;
  AOQ_TRY(aoq_cpu_check_dt(dt, "attention"));
  AOQ_TRY(check_kv(kv, "attention"));
  AOQ_TRY(check_rows("attention", m, 0));
  if (kv->head_dim > MAX_HEAD_DIM)
    return aoq_err(AOQ_EUNSUPPORTED, "cpu attention: head_dim %d > %d", kv->head_dim, MAX_HEAD_DIM);
  if (n_heads <= 0 || n_heads % kv->n_kv_heads)
    return aoq_err(AOQ_EINVAL, "cpu attention: %d query heads is not a multiple of %d kv heads",
                   n_heads, kv->n_kv_heads);
  if (!isfinite(scale)) return aoq_err(AOQ_EINVAL, "cpu attention: scale %g", (double)scale);
  if (m == 0) return AOQ_OK;
  if (!b || !q || !out) return aoq_err(AOQ_EINVAL, "cpu attention: NULL batch, q or out");
  if (!b->row_seq || !b->row_pos || !b->block_tables || b->n_seqs <= 0 || b->max_blocks <= 0)
    return aoq_err(AOQ_EINVAL, "cpu attention: batch with NULL arrays or %d seqs x %d blocks",
                   b->n_seqs, b->max_blocks);
  /* Every page a row will read is checked here, so the parallel part cannot fail. */
  int64_t cap = (int64_t)b->max_blocks * kv->page_size;
  for (int64_t i = 0; i < m; i++) {
    int seq = b->row_seq[i], pos = b->row_pos[i];
    if (seq < 0 || seq >= b->n_seqs)
      return aoq_err(AOQ_EINVAL, "cpu attention: row %lld names sequence %d of %d", (long long)i,
                     seq, b->n_seqs);
    if (pos < 0 || pos >= cap || pos > b->max_pos)
      return aoq_err(AOQ_EINVAL,
                     "cpu attention: row %lld at position %d (expected 0..min(max_pos %d, %lld))",
                     (long long)i, pos, b->max_pos, (long long)(cap - 1));
    const int32_t *bt = b->block_tables + (int64_t)seq * b->max_blocks;
    for (int blk = 0; blk <= pos / kv->page_size; blk++)
      if (bt[blk] < 0 || bt[blk] >= kv->n_pages)
        return aoq_err(AOQ_EINVAL, "cpu attention: sequence %d block %d -> page %d of %d", seq, blk,
                       (int)bt[blk], kv->n_pages);
  }
  attn_job j = {kv, b, q, out, n_heads, n_heads / kv->n_kv_heads, scale, dt, NULL, NULL};
  attn_kernels(((aoq_cpu_ctx *)ctx)->isa, kv->dtype, &j);
  int hpi = attn_heads_per_item(j.group, kv->head_dim);
  int64_t items = m * kv->n_kv_heads * ((j.group + hpi - 1) / hpi);
  int64_t per_item = (int64_t)(b->max_pos + 1) * kv->head_dim * 2 * hpi;
  aoq_cpu_parallel(ctx, items, grain_for(per_item, 65536), attn_task, &j);
  return AOQ_OK;
}

/* ---- convert ---- */

typedef struct conv_job {
  const void *src;
  void *dst;
  aoq_dtype sdt, ddt;
} conv_job;

static void conv_task(void *arg, int64_t b, int64_t e) {
  const conv_job *j = arg;
  if (j->sdt == AOQ_DTYPE_F32) {
    const float *s = j->src;
    uint16_t *d = j->dst;
    for (int64_t i = b; i < e; i++) d[i] = aoq_f32_to_bf16(s[i]);
  } else {
    const uint16_t *s = j->src;
    float *d = j->dst;
    for (int64_t i = b; i < e; i++) d[i] = aoq_bf16_to_f32(s[i]);
  }
}

aoq_status aoq_cpu_convert(void *ctx, const void *src, aoq_dtype sdt, void *dst, aoq_dtype ddt,
                           int64_t n, aoq_stream *s) {
  (void)s;
  AOQ_TRY(aoq_cpu_check_dt(sdt, "convert (source)"));
  AOQ_TRY(aoq_cpu_check_dt(ddt, "convert (destination)"));
  AOQ_TRY(check_rows("convert", 1, n));
  if (n == 0) return AOQ_OK;
  if (!src || !dst) return aoq_err(AOQ_EINVAL, "cpu convert: NULL src or dst");
  if (sdt == ddt) {
    memmove(dst, src, (size_t)n * esize(sdt));
    return AOQ_OK;
  }
  conv_job j = {src, dst, sdt, ddt};
  aoq_cpu_parallel(ctx, n, 65536, conv_task, &j);
  return AOQ_OK;
}
