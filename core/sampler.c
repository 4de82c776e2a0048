/*
 * sampler.c — sampling on host logits: greedy, temperature, top-k, top-p (nucleus), seeded.
 * Same logits and seed give the same token everywhere; the seed (the row's RNG state) advances
 * by one draw per sampled token.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/model.h"

static uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* First index of the largest value; NaN never wins (all NaN: 0). */
static int32_t argmax_f32(const float *x, int64_t n) {
  int64_t best = 0;
  while (best < n - 1 && x[best] != x[best]) best++;
  for (int64_t i = best + 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return (int32_t)best;
}

/* Unnormalised softmax weight of logit v against the largest logit top; NaN (a NaN logit, or
 * -inf * 0 at an infinite temperature) weighs nothing. */
static double weight(float v, double top, double inv_t) {
  double w = exp((v - top) * inv_t);
  return w == w ? w : 0.0;
}

/* Keeps the K largest (value, index) pairs in a min-heap of size k. */
typedef struct cand {
  float v;
  int32_t i;
} cand;

static void heap_down(cand *h, int n, int i) {
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && h[l].v < h[m].v) m = l;
    if (r < n && h[r].v < h[m].v) m = r;
    if (m == i) return;
    cand t = h[i];
    h[i] = h[m], h[m] = t, i = m;
  }
}

static int cmp_desc(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->v != y->v) return x->v < y->v ? 1 : -1;
  return x->i - y->i;
}

/* Candidate pool for top-k / top-p, on the stack: top-k is capped at this many tokens, and top-p
 * without top-k considers the AOQ_SAMPLE_POOL most likely tokens (the mass beyond is dropped). */
#define AOQ_SAMPLE_POOL 4096

int32_t aoq_sample_host(const float *logits, int64_t vocab, aoq_sample_params *p) {
  if (!logits || vocab <= 0) return -1;
  if (!p || !(p->temperature > 0)) return argmax_f32(logits, vocab);
  p->seed += 0x9e3779b97f4a7c15ull;
  double u = (double)(mix(p->seed) >> 11) * (1.0 / 9007199254740992.0); /* [0, 1) */
  double inv_t = 1.0 / p->temperature;
  int32_t best = argmax_f32(logits, vocab);
  double top = logits[best];
  /* A denormal temperature (1/T = inf) or a +inf logit leaves all the mass on the argmax; all
   * -inf or NaN has no mass at all: both are greedy, not NaN sums. */
  if (!isfinite(inv_t) || !isfinite(top)) return best;
  bool top_p = p->top_p > 0 && p->top_p < 1;
  if (p->top_k <= 0 && !top_p) { /* plain temperature over the whole vocabulary */
    double sum = 0;
    for (int64_t i = 0; i < vocab; i++) sum += weight(logits[i], top, inv_t);
    double target = u * sum, acc = 0;
    int32_t last = best;
    for (int64_t i = 0; i < vocab; i++) {
      double w = weight(logits[i], top, inv_t);
      if (w == 0) continue;
      last = (int32_t)i;
      acc += w;
      if (acc > target) return (int32_t)i;
    }
    return last;
  }
  int k = p->top_k > 0 && p->top_k < AOQ_SAMPLE_POOL ? p->top_k : AOQ_SAMPLE_POOL;
  if (k > vocab) k = (int)vocab;
  cand c[AOQ_SAMPLE_POOL];
  int n = 0;
  for (int64_t i = 0; i < vocab; i++) {
    float v = logits[i];
    if (v != v) continue; /* NaN never wins */
    if (n < k) {
      c[n++] = (cand){v, (int32_t)i};
      if (n == k)
        for (int j = k / 2 - 1; j >= 0; j--) heap_down(c, k, j);
    } else if (v > c[0].v) {
      c[0] = (cand){v, (int32_t)i};
      heap_down(c, k, 0);
    }
  }
  if (n == 0) return best;
  qsort(c, (size_t)n, sizeof *c, cmp_desc);
  double sum = 0;
  for (int j = 0; j < n; j++) sum += weight(c[j].v, top, inv_t);
  int keep = n; /* top-p: the smallest prefix whose mass reaches top_p (at least one token) */
  if (top_p) {
    double acc = 0;
    for (int j = 0; j < n; j++) {
      acc += weight(c[j].v, top, inv_t) / sum;
      if (acc >= p->top_p) {
        keep = j + 1;
        break;
      }
    }
    sum = 0;
    for (int j = 0; j < keep; j++) sum += weight(c[j].v, top, inv_t);
  }
  double target = u * sum, acc = 0;
  int32_t last = best;
  for (int j = 0; j < keep; j++) {
    double w = weight(c[j].v, top, inv_t);
    if (w == 0) continue;
    last = c[j].i;
    acc += w;
    if (acc > target) return c[j].i;
  }
  return last;
}
