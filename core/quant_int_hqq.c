/*
 * quant_int_hqq.c — INT4WO_HQQ: torchao's _choose_qparams_and_quantize_affine_hqq with the
 * proximal refinement of the zero point (spec/formats.md §4), reproducing the arithmetic of the
 * CUDA run that made the golden file: setup in fp32, the proximal loop in fp16 (every op rounded
 * to fp16, reductions accumulated in fp32-or-wider then scaled by 1/N and rounded to fp16), the
 * final codes in fp32, then the conversion to tinygemm's form
 *   s = bf16(fp16(1 / inv)), z = bf16(fp16((8 - zero) * s)),  x^ = (q - 8) * s + z  (bf16 steps).
 * Python-scalar divisions `c / t` are `t.reciprocal() * c` in torch, and are computed so here.
 * The early stop compares the mean absolute error over the whole weight (as torchao does).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "core/quant_int_internal.h"

#define HQQ_ITERS 20
#define HQQ_BETA 10.0
#define HQQ_KAPPA 1.01
/* lp_norm - 1 = -0.3, converted by torch.pow to the tensor's dtype (fp16) before use. */
#define HQQ_P_EXP (-0.300048828125f)
#define HQQ_MAX_THREADS 16

/* One proximal iteration over groups [b0, b1): new zeros and each group's error sum. The error
 * sums are exact (fp16 values as multiples of 2^-24 in an int64) and added up in group order by
 * the caller, so the result does not depend on the number of threads. */
typedef struct hqq_slice {
  const float *wf, *inv, *zero, *powtab;
  float *znew;
  int64_t *gerr;
  int64_t b0, b1, g;
  float tb, grp_factor;
} hqq_slice;

static void *hqq_iterate(void *arg) {
  const hqq_slice *j = arg;
  for (int64_t b = j->b0; b < j->b1; b++) {
    float s = j->inv[b], z = j->zero[b];
    double zsum = 0.0;
    int64_t esum = 0;
    const float *wv = j->wf + b * j->g;
    for (int64_t i = 0; i < j->g; i++) {
      float v = wv[i];
      float q = rintf(hf(hf(v * s) + z));
      q = q > 0.0f ? (q < 15.0f ? q : 15.0f) : 0.0f; /* clamp(0, 15); NaN -> 0 */
      float r = hf(hf(q - z) / s);
      float x = hf(v - r);
      float ax = fabsf(x);
      /* shrink: sign(x) * relu(|x| - (1/beta) * |x|^(p-1)), each op rounded to fp16 */
      float t = hf(j->tb * j->powtab[hf_index(ax)]);
      float u = hf(ax - t);
      u = u > 0.0f ? u : 0.0f;
      float e = x > 0.0f ? u : (x < 0.0f ? -u : 0.0f);
      zsum += (double)hf(q - hf(hf(v - e) * s));
      /* exact: fp16 values are multiples of 2^-24 (non-finite only in overflowing groups) */
      esum += (int64_t)((ax <= 65504.0f ? ax : 65504.0f) * 16777216.0f);
    }
    j->znew[b] = hf((float)zsum * j->grp_factor);
    j->gerr[b] = esum;
  }
  return NULL;
}

aoq_status aoq_quant_int4_hqq(const uint16_t *w_bf16, aoq_qweight *w) {
  int64_t g = w->group, total = w->n * w->k, ng = total / g;
  float *wf = aoq_fault_hit() ? NULL : malloc((size_t)total * sizeof *wf); /* fp16-rounded W */
  float *inv = malloc((size_t)ng * sizeof *inv);                           /* fp16 1/scale */
  float *zero = malloc((size_t)ng * sizeof *zero);                         /* fp16 zero */
  float *znew = malloc((size_t)ng * sizeof *znew);
  if (!wf || !inv || !zero || !znew) {
    free(wf);
    free(inv);
    free(zero);
    free(znew);
    return aoq_err(AOQ_ENOMEM, "int4wo-hqq: cannot allocate scratch for %lld elements",
                   (long long)total);
  }

  /* fp32 setup: inv = min(15 / (max - min), 2e4), zero = round(-min * inv). Inputs are clamped to
   * +-AOQ_HQQ_LIM first (docs/formats.md): the loop below runs in fp16. */
  for (int64_t b = 0; b < ng; b++) {
    const uint16_t *x = w_bf16 + b * g;
    float mn = INFINITY, mx = -INFINITY;
    for (int64_t i = 0; i < g; i++) {
      float v = sanitize(bf16v(x, i), AOQ_HQQ_LIM);
      wf[b * g + i] = hf(v);
      mn = fminf(mn, v);
      mx = fmaxf(mx, v);
    }
    float sc = fminf((1.0f / (mx - mn)) * 15.0f, 2e4f); /* 15 / t is t.reciprocal() * 15 */
    float z = rintf(-mn * sc);
    inv[b] = hf(sc);
    zero[b] = hf(z);
  }

  /* |x|^(p-1) for every fp16 |x| (the argument is always an fp16 value). */
  float *powtab = malloc(32768 * sizeof *powtab);
  int64_t *gerr = malloc((size_t)ng * sizeof *gerr);
  if (!powtab || !gerr) {
    free(powtab);
    free(gerr);
    free(wf);
    free(inv);
    free(zero);
    free(znew);
    return aoq_err(AOQ_ENOMEM, "int4wo-hqq: cannot allocate scratch");
  }
  for (uint32_t h = 0; h < 32768; h++) powtab[h] = hf(powf(aoq_f16_to_f32((uint16_t)h), HQQ_P_EXP));

  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  int nt = ncpu < 1 ? 1 : (ncpu > HQQ_MAX_THREADS ? HQQ_MAX_THREADS : (int)ncpu);
  if (ng < 64 * nt) nt = 1; /* small weights: threads cost more than they save */
  hqq_slice sl[HQQ_MAX_THREADS];
  pthread_t th[HQQ_MAX_THREADS];

  double beta = HQQ_BETA, best = 1e4;
  /* torchao quantizes the weight padded to [n8, k1024] with zeros: the padding adds nothing to the
   * error sum but counts in the mean that decides the early stop. */
  float err_factor = 1.0f / (float)(aoq_int4_pad_n(w->n) * aoq_int4_pad_k(w->k));
  for (int it = 0; it < HQQ_ITERS; it++) {
    bool started[HQQ_MAX_THREADS] = {false};
    for (int t = 0; t < nt; t++) {
      sl[t] = (hqq_slice){wf,
                          inv,
                          zero,
                          powtab,
                          znew,
                          gerr,
                          ng * t / nt,
                          ng * (t + 1) / nt,
                          g,
                          (float)(1.0 / beta),
                          1.0f / (float)g};
      if (t > 0) started[t] = pthread_create(&th[t], NULL, hqq_iterate, &sl[t]) == 0;
    }
    hqq_iterate(&sl[0]);
    for (int t = 1; t < nt; t++) {
      if (started[t])
        pthread_join(th[t], NULL);
      else
        hqq_iterate(&sl[t]); /* no thread: do the slice here */
    }
    double err_sum = 0.0;
    for (int64_t b = 0; b < ng; b++) err_sum += (double)gerr[b];
    err_sum *= 0x1p-24;
    memcpy(zero, znew, (size_t)ng * sizeof *zero);
    beta *= HQQ_KAPPA;
    double cur = (double)hf((float)err_sum * err_factor);
    if (cur < best)
      best = cur;
    else
      break;
  }
  free(powtab);
  free(gerr);

  /* Final codes in fp32 with the fp16 qparams; tinygemm form in bf16. A group whose fp16
   * arithmetic overflowed (a constant group beyond +-3.27: zero = -v * 2e4 exceeds fp16; torchao
   * returns inf/NaN there) falls back to tinygemm's min/max qparams (docs/formats.md). */
  int64_t ngr = w->k / g;
  uint8_t *qd = w->qdata;
  uint16_t *sz = w->scale;
  memset(qd, 0, w->qdata_bytes);
  for (int64_t b = 0; b < ng; b++) {
    const uint16_t *x = w_bf16 + b * g;
    int64_t r = b / ngr, gi = b % ngr;
    float s = hf(1.0f / inv[b]);
    float zao = hf((8.0f - zero[b]) * s);
    uint16_t *szb = sz + (r * ngr + gi) * 2;
    if (!isfinite(zero[b]) || !isfinite(s) || !isfinite(zao)) {
      aoq_int4_tinygemm_group(x, (int)g, qd + r * (w->k / 2), gi * g, szb);
      continue;
    }
    for (int64_t i = 0; i < g; i++) {
      float v = sanitize(bf16v(x, i), AOQ_HQQ_LIM);
      float t = v * inv[b];
      int u = (int)fminf(fmaxf(rintf(t + zero[b]), 0.0f), 15.0f);
      int64_t e = b * g + i; /* groups are contiguous along rows: flat index = r*k + col */
      qd[e / 2] |= (uint8_t)(u << ((e & 1) * 4));
    }
    szb[0] = aoq_f32_to_bf16(s);
    szb[1] = aoq_f32_to_bf16(zao);
  }
  free(wf);
  free(inv);
  free(zero);
  free(znew);
  return AOQ_OK;
}
