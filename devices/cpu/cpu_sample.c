/*
 * cpu_sample.c — argmax and sampling (temperature, top-k, top-p) of the CPU backend.
 *
 * Sampling needs no scratch memory: instead of sorting the vocabulary it finds the value
 * thresholds of the top-k and top-p sets by radix selection over the 32-bit order-preserving
 * keys of the scaled logits (four passes of a 256-bucket histogram, counts for top-k, probability
 * mass for top-p), then draws from the kept tokens in index order with one uniform number.
 * Semantics (HF order): z = logit / temperature; keep the top_k largest z (all tokens tied with the
 * k-th are kept); of those keep the smallest prefix, by descending z, whose softmax mass reaches
 * top_p (ties at the cut kept); sample proportionally to exp(z - max). NaN logits count as -inf.
 * The draw is u = splitmix64(seed) -> [0, 1): same seed + same logits -> same token. The caller
 * advances the seed between steps.
 */
#include <math.h>
#include <string.h>

#include "base/error.h"
#include "devices/cpu/cpu_kernels.h"

static float ld_logit(const void *p, int64_t i, aoq_dtype dt) {
  float v = aoq_cpu_ld(p, i, dt);
  return isnan(v) ? -INFINITY : v;
}

static int32_t argmax_row(const void *lg, int64_t off, int64_t vocab, aoq_dtype dt) {
  int64_t best = 0;
  float bv = ld_logit(lg, off, dt);
  for (int64_t i = 1; i < vocab; i++) {
    float v = ld_logit(lg, off + i, dt);
    if (v > bv) bv = v, best = i; /* strict: the first maximum wins ties */
  }
  return (int32_t)best;
}

typedef struct amax_job {
  const void *lg;
  int32_t *out;
  int64_t vocab;
  aoq_dtype dt;
} amax_job;

static void argmax_task(void *arg, int64_t b, int64_t e) {
  const amax_job *j = arg;
  for (int64_t r = b; r < e; r++) j->out[r] = argmax_row(j->lg, r * j->vocab, j->vocab, j->dt);
}

static aoq_status check_logits(const char *op, const void *lg, const int32_t *out, int64_t m,
                               int64_t vocab, aoq_dtype dt) {
  AOQ_TRY(aoq_cpu_check_dt(dt, op));
  if (m < 0 || vocab <= 0)
    return aoq_err(AOQ_EINVAL, "cpu %s: %lld rows of vocab %lld", op, (long long)m,
                   (long long)vocab);
  if (vocab > INT32_MAX) return aoq_err(AOQ_EINVAL, "cpu %s: vocab %lld", op, (long long)vocab);
  if (m > 0 && (!lg || !out)) return aoq_err(AOQ_EINVAL, "cpu %s: NULL logits or out", op);
  return AOQ_OK;
}

aoq_status aoq_cpu_argmax(void *ctx, const void *logits, int32_t *out, int64_t m, int64_t vocab,
                          aoq_dtype dt, aoq_stream *s) {
  (void)s;
  AOQ_TRY(check_logits("argmax", logits, out, m, vocab, dt));
  amax_job j = {logits, out, vocab, dt};
  aoq_cpu_parallel(ctx, m, vocab >= 16384 ? 1 : 16384 / vocab, argmax_task, &j);
  return AOQ_OK;
}

/* ---- sampling ---- */

static uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* Monotone map float -> uint32: a < b  <=>  key(a) < key(b) (for non-NaN values). */
static uint32_t fkey(float f) {
  uint32_t u = aoq_f32_bits(f);
  return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

typedef struct row_ctx {
  const void *lg;
  int64_t off, vocab;
  aoq_dtype dt;
  float inv_t, zmax;
} row_ctx;

/* z = logit / T; a masked (-inf) logit stays -inf even at T = inf, where -inf * 0 is NaN (a NaN
 * z would take the top key and a NaN weight). */
static float zval(const row_ctx *r, int64_t i) {
  float z = ld_logit(r->lg, r->off + i, r->dt) * r->inv_t;
  return isnan(z) ? -INFINITY : z;
}

/* The largest key K such that weight({i : key(z_i) >= K, key(z_i) >= floor}) >= target, where
 * the weight of a token is 1 (by_mass = 0) or exp(z - zmax) (by_mass = 1). Radix select, most
 * significant byte first; the returned K is the key of an actual token. */
static uint32_t select_key(const row_ctx *r, uint32_t floor, int by_mass, double target) {
  uint32_t prefix = 0;
  double above = 0; /* weight of tokens whose key is > every key still in play */
  for (int shift = 24; shift >= 0; shift -= 8) {
    double hist[256];
    memset(hist, 0, sizeof hist);
    uint32_t hi_mask = shift == 24 ? 0 : ~0u << (shift + 8);
    for (int64_t i = 0; i < r->vocab; i++) {
      float z = zval(r, i);
      uint32_t k = fkey(z);
      if (k < floor || (k & hi_mask) != prefix) continue;
      hist[(k >> shift) & 255] += by_mass ? exp((double)z - (double)r->zmax) : 1.0;
    }
    int bkt = 255;
    for (; bkt > 0; bkt--) {
      if (above + hist[bkt] >= target) break;
      above += hist[bkt];
    }
    /* Not reached (rounding of a top-p target): bucket 0, and so in the end a key that keeps
     * every token in play. */
    prefix |= (uint32_t)bkt << shift;
  }
  return prefix;
}

static int32_t sample_row(const row_ctx *r, const aoq_sample_params *p) {
  uint32_t floor = 0;
  if (p->top_k > 0 && p->top_k < r->vocab) floor = select_key(r, 0, 0, (double)p->top_k);
  double total = 0;
  for (int64_t i = 0; i < r->vocab; i++) {
    float z = zval(r, i);
    if (fkey(z) >= floor) total += exp((double)z - (double)r->zmax);
  }
  if (p->top_p > 0 && p->top_p < 1) {
    uint32_t kp = select_key(r, floor, 1, (double)p->top_p * total);
    if (kp > floor) {
      floor = kp;
      total = 0;
      for (int64_t i = 0; i < r->vocab; i++) {
        float z = zval(r, i);
        if (fkey(z) >= floor) total += exp((double)z - (double)r->zmax);
      }
    }
  }
  double u = (double)(splitmix64(p->seed) >> 11) * 0x1.0p-53 * total;
  double cum = 0;
  int32_t last = -1;
  for (int64_t i = 0; i < r->vocab; i++) {
    float z = zval(r, i);
    if (fkey(z) < floor) continue;
    double w = exp((double)z - (double)r->zmax);
    if (w <= 0) continue;
    last = (int32_t)i;
    cum += w;
    if (u < cum) return last;
  }
  return last; /* rounding left u at the very top: the last kept token */
}

typedef struct samp_job {
  const void *lg;
  int32_t *out;
  int64_t vocab;
  const aoq_sample_params *p;
  aoq_dtype dt;
} samp_job;

static void sample_task(void *arg, int64_t b, int64_t e) {
  const samp_job *j = arg;
  for (int64_t rw = b; rw < e; rw++) {
    const aoq_sample_params *p = &j->p[rw];
    int32_t am = argmax_row(j->lg, rw * j->vocab, j->vocab, j->dt);
    float top = ld_logit(j->lg, rw * j->vocab + am, j->dt);
    if (!(p->temperature > 0) || p->top_k == 1 || (isinf(top) && top < 0)) {
      j->out[rw] = am; /* greedy, or nothing but -inf to choose from */
      continue;
    }
    row_ctx r = {j->lg, rw * j->vocab, j->vocab, j->dt, 1.0f / p->temperature, 0};
    r.zmax = top * r.inv_t;
    if (!isfinite(r.zmax)) {
      j->out[rw] = am; /* +inf logit, or a temperature so small that z overflows: greedy */
      continue;
    }
    j->out[rw] = sample_row(&r, p);
  }
}

aoq_status aoq_cpu_sample(void *ctx, const void *logits, int32_t *out, int64_t m, int64_t vocab,
                          const aoq_sample_params *p, aoq_dtype dt, aoq_stream *s) {
  (void)s;
  AOQ_TRY(check_logits("sample", logits, out, m, vocab, dt));
  if (m > 0 && !p) return aoq_err(AOQ_EINVAL, "cpu sample: NULL parameters");
  for (int64_t i = 0; i < m; i++)
    if (isnan(p[i].temperature) || isnan(p[i].top_p) || p[i].top_p < 0 || p[i].top_k < 0)
      return aoq_err(AOQ_EINVAL, "cpu sample: row %lld: temperature %g, top_p %g, top_k %d",
                     (long long)i, (double)p[i].temperature, (double)p[i].top_p, p[i].top_k);
  samp_job j = {logits, out, vocab, p, dt};
  aoq_cpu_parallel(ctx, m, 1, sample_task, &j);
  return AOQ_OK;
}
