/*
 * quant_int_codebook.c — CODEBOOK (spec/formats.md §9; aoq's deterministic k-means, documented in
 * docs/formats.md): a scalar codebook of 2^b entries shared by the whole weight.
 *   scale per group of `group` elements along k (per row by default): s = bf16(max(amax, 1e-9))
 *   values v = x / s (fp32), codebook fitted by 1-D k-means (Lloyd) on all v:
 *     init c_j = the ((2j+1) / 2^(b+1)) quantile of the sorted values,
 *     at most AOQ_CODEBOOK_ITERS iterations, stopping when no centroid moves; an empty cluster
 *     keeps its centroid; then the centroids are rounded to bf16 and sorted,
 *   code = the nearest bf16 centroid (lowest index on a tie),  x^ = bf16(codebook[code] * s).
 * In one dimension every cluster is a contiguous run of the sorted values, so an iteration is
 * 2^b binary searches over prefix sums (fp64) of the values, radix-sorted once.
 */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "core/quant_int_internal.h"

#define AOQ_CODEBOOK_ITERS 100

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Order-preserving map of a float to uint32 (negatives reversed below positives). */
static uint32_t fkey(float f) {
  uint32_t u = aoq_f32_bits(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static float funkey(uint32_t k) {
  return aoq_bits_f32((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

/* out[0..n) = v sorted ascending (LSD radix sort, 11/11/10-bit digits). */
static aoq_status sort_floats(const float *v, int64_t n, float *out) {
  uint32_t *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
  if (!a || !b) {
    free(a);
    free(b);
    return aoq_err(AOQ_ENOMEM, "codebook: cannot allocate sort buffers");
  }
  for (int64_t i = 0; i < n; i++) a[i] = fkey(v[i]);
  static const int shift[3] = {0, 11, 22};
  for (int p = 0; p < 3; p++) {
    int64_t count[2049] = {0};
    for (int64_t i = 0; i < n; i++) count[((a[i] >> shift[p]) & 2047u) + 1]++;
    for (int d = 0; d < 2048; d++) count[d + 1] += count[d];
    for (int64_t i = 0; i < n; i++) b[count[(a[i] >> shift[p]) & 2047u]++] = a[i];
    uint32_t *t = a;
    a = b, b = t;
  }
  for (int64_t i = 0; i < n; i++) out[i] = funkey(a[i]);
  free(a);
  free(b);
  return AOQ_OK;
}

/* First index in sorted v[0..n) with v[i] > t. */
static int64_t upper_bound(const float *v, int64_t n, double t) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if ((double)v[mid] <= t)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Nearest entry of the sorted codebook c[0..kc) to v, lowest index on ties. */
static uint32_t nearest(const float *c, int kc, float v) {
  int lo = 0, hi = kc - 1;
  while (lo < hi) { /* first c[i] >= v */
    int mid = (lo + hi) / 2;
    if (c[mid] < v)
      lo = mid + 1;
    else
      hi = mid;
  }
  int best = lo;
  /* Walk left over equal-distance or closer entries (duplicates included). */
  while (best > 0 && fabs((double)v - c[best - 1]) <= fabs((double)v - c[best])) best--;
  return (uint32_t)best;
}

aoq_status aoq_quant_codebook(const uint16_t *w_bf16, aoq_qweight *w) {
  int64_t total = w->n * w->k, g = w->group, ngr = w->k / g;
  int kc = 1 << w->bits;
  float *v = aoq_fault_hit() ? NULL : malloc((size_t)total * sizeof *v);
  float *sorted = malloc((size_t)total * sizeof *sorted);
  double *prefix = NULL;
  double c[256], cn[256];
  if (!v || !sorted) {
    free(v);
    free(sorted);
    return aoq_err(AOQ_ENOMEM, "codebook: cannot allocate scratch for %lld elements",
                   (long long)total);
  }
  uint16_t *sc = w->scale;
  for (int64_t b = 0; b < w->n * ngr; b++) {
    const uint16_t *x = w_bf16 + b * g;
    float amax = 0.0f;
    for (int64_t i = 0; i < g; i++) amax = fmaxf(amax, fabsf(sanitize(bf16v(x, i), AOQ_SYM_LIM)));
    float s = bf(fmaxf(amax, 1e-9f));
    sc[b] = aoq_f32_to_bf16(s);
    for (int64_t i = 0; i < g; i++) v[b * g + i] = sanitize(bf16v(x, i), AOQ_SYM_LIM) / s;
  }
  aoq_status st = sort_floats(v, total, sorted);
  if (st == AOQ_OK && !(prefix = malloc((size_t)(total + 1) * sizeof *prefix)))
    st = aoq_err(AOQ_ENOMEM, "codebook: cannot allocate prefix sums");
  if (st != AOQ_OK) {
    free(v);
    free(sorted);
    return st;
  }
  prefix[0] = 0.0;
  for (int64_t i = 0; i < total; i++) prefix[i + 1] = prefix[i] + (double)sorted[i];

  for (int j = 0; j < kc; j++) {
    int64_t idx = (int64_t)(((2.0 * j + 1.0) * (double)total) / (2.0 * kc));
    if (idx >= total) idx = total - 1;
    c[j] = sorted[idx];
  }
  for (int it = 0; it < AOQ_CODEBOOK_ITERS; it++) {
    /* Cluster j = values in (mid(j-1), mid(j)]; centroids stay sorted. */
    int64_t start = 0;
    bool moved = false;
    for (int j = 0; j < kc; j++) {
      int64_t end = j == kc - 1 ? total : upper_bound(sorted, total, 0.5 * (c[j] + c[j + 1]));
      if (end < start) end = start;
      cn[j] = end > start ? (prefix[end] - prefix[start]) / (double)(end - start) : c[j];
      if (cn[j] != c[j]) moved = true;
      start = end;
    }
    memcpy(c, cn, sizeof(double) * (size_t)kc);
    qsort(c, (size_t)kc, sizeof *c, cmp_double); /* an empty cluster may have kept a stale one */
    if (!moved) break;
  }

  float cb[256];
  for (int j = 0; j < kc; j++) cb[j] = bf((float)c[j]);
  qsort(cb, (size_t)kc, sizeof *cb, cmp_float);
  uint16_t *cbo = w->aux;
  for (int j = 0; j < kc; j++) cbo[j] = aoq_f32_to_bf16(cb[j]);

  size_t rb = aoq_bitrow_bytes(w->k, w->bits);
  memset(w->qdata, 0, w->qdata_bytes);
  for (int64_t r = 0; r < w->n; r++) {
    uint8_t *row = (uint8_t *)w->qdata + r * rb;
    for (int64_t i = 0; i < w->k; i++)
      aoq_bits_put(row, i, w->bits, nearest(cb, kc, v[r * w->k + i]));
  }
  free(v);
  free(sorted);
  free(prefix);
  return AOQ_OK;
}
