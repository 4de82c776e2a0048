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
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "core/quant_int_internal.h"

#define HQQ_ITERS 20
#define HQQ_BETA 10.0
#define HQQ_KAPPA 1.01
/* lp_norm - 1 = -0.3, converted by torch.pow to the tensor's dtype (fp16) before use. */
#define HQQ_P_EXP (-0.300048828125f)

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

  double beta = HQQ_BETA, best = 1e4;
  /* torchao quantizes the weight padded to [n8, k1024] with zeros: the padding adds nothing to the
   * error sum but counts in the mean that decides the early stop. */
  float err_factor = 1.0f / (float)(aoq_int4_pad_n(w->n) * aoq_int4_pad_k(w->k));
  float grp_factor = 1.0f / (float)g;
  for (int it = 0; it < HQQ_ITERS; it++) {
    double err_sum = 0.0;
    float tb = (float)(1.0 / beta);
    for (int64_t b = 0; b < ng; b++) {
      float s = inv[b], z = zero[b];
      double zsum = 0.0;
      for (int64_t i = 0; i < g; i++) {
        float v = wf[b * g + i];
        float q = fminf(fmaxf(rintf(hf(hf(v * s) + z)), 0.0f), 15.0f);
        float r = hf(hf(q - z) / s);
        float x = hf(v - r);
        float ax = fabsf(x);
        float t = hf(tb * hf(powf(ax, HQQ_P_EXP)));
        float u = fmaxf(hf(ax - t), 0.0f);
        float e = x > 0.0f ? u : (x < 0.0f ? -u : 0.0f);
        zsum += (double)hf(q - hf(hf(v - e) * s));
        err_sum += (double)ax;
      }
      znew[b] = hf((float)zsum * grp_factor);
    }
    memcpy(zero, znew, (size_t)ng * sizeof *zero);
    beta *= HQQ_KAPPA;
    double cur = (double)hf((float)err_sum * err_factor);
    if (cur < best)
      best = cur;
    else
      break;
  }

  /* Final codes in fp32 with the fp16 qparams; tinygemm form in bf16. */
  int64_t ngr = w->k / g;
  uint8_t *qd = w->qdata;
  uint16_t *sz = w->scale;
  memset(qd, 0, w->qdata_bytes);
  for (int64_t b = 0; b < ng; b++) {
    const uint16_t *x = w_bf16 + b * g;
    for (int64_t i = 0; i < g; i++) {
      float v = sanitize(bf16v(x, i), AOQ_HQQ_LIM);
      float t = v * inv[b];
      int u = (int)fminf(fmaxf(rintf(t + zero[b]), 0.0f), 15.0f);
      int64_t e = b * g + i; /* groups are contiguous along rows: flat index = r*k + col */
      qd[e / 2] |= (uint8_t)(u << ((e & 1) * 4));
    }
    float s = hf(1.0f / inv[b]);
    float zao = hf((8.0f - zero[b]) * s);
    int64_t r = b / ngr, gi = b % ngr;
    sz[(r * ngr + gi) * 2] = aoq_f32_to_bf16(s);
    sz[(r * ngr + gi) * 2 + 1] = aoq_f32_to_bf16(zao);
  }
  free(wf);
  free(inv);
  free(zero);
  free(znew);
  return AOQ_OK;
}
