/*
 * act_quant.c — dynamic activation quantization of every dynamic format, exposed as torchao's
 * inner tensors for the golden checks (spec/formats.md §0, §2, §3, §4, §5, §6, §7). The row
 * quantizers live in base/numerics.h so that the backends' linear kernels quantize x with the same
 * code; this file only lays their results out the way torchao's tensors look.
 */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/numerics.h"
#include "core/format_impl.h"
#include "core/quant_fp_util.h"

/* All of torchao's views of one quantized activation; unused members stay NULL. */
typedef struct act_q {
  void *qdata;
  size_t qdata_bytes;
  void *scale; /* row-major; swizzled later where torchao swizzles */
  size_t scale_bytes;
  int8_t *zero; /* [m] */
  float pts;
  int has_pts;
  uint16_t *dequant; /* bf16 [m,k] */
} act_q;

static void act_q_free(act_q *a) {
  free(a->qdata), free(a->scale), free(a->zero), free(a->dequant);
}

static aoq_status act_alloc(act_q *a, size_t qb, size_t sb, int64_t m, int64_t k, int zero) {
  a->qdata = malloc(qb ? qb : 1), a->qdata_bytes = qb;
  a->scale = malloc(sb ? sb : 1), a->scale_bytes = sb;
  a->dequant = malloc((size_t)(m * k) * 2);
  a->zero = zero ? calloc((size_t)m, 1) : NULL;
  if (!a->qdata || !a->scale || !a->dequant || (zero && !a->zero))
    return aoq_err(AOQ_ENOMEM, "activation quantization of [%lld, %lld]", (long long)m,
                   (long long)k);
  return AOQ_OK;
}

static aoq_status quantize(aoq_format_kind kind, const uint16_t *x, int64_t m, int64_t k,
                           act_q *a) {
  const size_t mk = (size_t)(m * k);
  uint16_t *dq;
  switch (kind) {
    case AOQ_FMT_INT8DQ:
    case AOQ_FMT_INT8_INTX:
    case AOQ_FMT_INT8_INT4: {
      AOQ_TRY(act_alloc(a, mk, (size_t)m * 4, m, k, 1));
      int8_t *q = a->qdata;
      float *s = a->scale;
      dq = a->dequant;
      for (int64_t r = 0; r < m; r++) {
        if (kind == AOQ_FMT_INT8DQ) {
          s[r] = aoq_int8_quant_row(x + r * k, k, q + r * k);
          for (int64_t i = 0; i < k; i++)
            dq[r * k + i] = aoq_f32_to_bf16((float)q[r * k + i] * s[r]);
        } else {
          int32_t zp;
          aoq_int8_asym_quant_row(x + r * k, k, q + r * k, &s[r], &zp);
          a->zero[r] = (int8_t)zp;
          for (int64_t i = 0; i < k; i++)
            dq[r * k + i] = aoq_f32_to_bf16(aoq_round_bf16((float)(q[r * k + i] - zp)) * s[r]);
        }
      }
      return AOQ_OK;
    }
    case AOQ_FMT_FP8DQ:
    case AOQ_FMT_FP8DQ_ROW:
    case AOQ_FMT_FP8DQ_BLOCK:
    case AOQ_FMT_FP8_INT4: {
      int64_t per_row = kind == AOQ_FMT_FP8DQ         ? 0
                        : kind == AOQ_FMT_FP8DQ_BLOCK ? (k + 127) / 128
                                                      : 1;
      AOQ_TRY(act_alloc(a, mk, 4 * (size_t)(per_row ? m * per_row : 1), m, k, 0));
      uint8_t *q = a->qdata;
      float *s = a->scale;
      if (kind == AOQ_FMT_FP8DQ) s[0] = aoq_fp8_scale(aoq_amax_bf16(x, m * k), AOQ_E4M3_MAX);
      for (int64_t r = 0; r < m; r++) {
        const uint16_t *xr = x + r * k;
        if (kind == AOQ_FMT_FP8DQ) {
          aoq_fp8_quant_row(xr, k, s[0], q + r * k);
        } else if (kind == AOQ_FMT_FP8_INT4) {
          s[r] = aoq_fp8_quant_row_mslk(xr, k, q + r * k);
        } else {
          for (int64_t c = 0; c < k; c += (per_row == 1 ? k : 128)) {
            int64_t len = per_row == 1 ? k : (k - c < 128 ? k - c : 128);
            float sc = aoq_fp8_scale(aoq_amax_bf16(xr + c, len), AOQ_E4M3_MAX);
            s[r * per_row + c / 128] = sc;
            aoq_fp8_quant_row(xr + c, len, sc, q + r * k + c);
          }
        }
        for (int64_t i = 0; i < k; i++) {
          float sc = s[per_row == 0 ? 0 : per_row == 1 ? r : r * per_row + i / 128];
          a->dequant[r * k + i] = aoq_f32_to_bf16(aoq_e4m3_to_f32(q[r * k + i]) * sc);
        }
      }
      return AOQ_OK;
    }
    case AOQ_FMT_MXFP8:
    case AOQ_FMT_MXFP4: {
      if (k % 32)
        return aoq_err(AOQ_ESHAPE, "mx activations need k %% 32 == 0, got %lld", (long long)k);
      int fp4 = kind == AOQ_FMT_MXFP4;
      int64_t qrow = fp4 ? k / 2 : k;
      AOQ_TRY(act_alloc(a, (size_t)(m * qrow), (size_t)(m * k / 32), m, k, 0));
      for (int64_t r = 0; r < m; r++) {
        uint8_t *q = (uint8_t *)a->qdata + r * qrow, *s = (uint8_t *)a->scale + r * (k / 32);
        aoq_mx_quant_row(x + r * k, k, fp4, q, s);
        for (int64_t i = 0; i < k; i++) {
          float e =
              fp4 ? aoq_e2m1_to_f32((uint8_t)(q[i / 2] >> (4 * (i & 1)))) : aoq_e4m3_to_f32(q[i]);
          a->dequant[r * k + i] = aoq_f32_to_bf16(e * aoq_e8m0_to_f32(s[i / 32]));
        }
      }
      return AOQ_OK;
    }
    case AOQ_FMT_NVFP4: {
      if (k % 16)
        return aoq_err(AOQ_ESHAPE, "nvfp4 activations need k %% 16 == 0, got %lld", (long long)k);
      AOQ_TRY(act_alloc(a, mk / 2, mk / 16, m, k, 0));
      a->pts = aoq_nvfp4_tensor_scale(aoq_amax_bf16(x, m * k));
      a->has_pts = 1;
      for (int64_t r = 0; r < m; r++) {
        uint8_t *q = (uint8_t *)a->qdata + r * (k / 2), *s = (uint8_t *)a->scale + r * (k / 16);
        aoq_nvfp4_quant_row(x + r * k, k, a->pts, q, s);
        for (int64_t i = 0; i < k; i++) {
          float e = aoq_e2m1_to_f32((uint8_t)(q[i / 2] >> (4 * (i & 1))));
          a->dequant[r * k + i] = aoq_f32_to_bf16(e * aoq_e4m3_to_f32(s[i / 16]) * a->pts);
        }
      }
      return AOQ_OK;
    }
    default:
      return aoq_err(AOQ_ENOTFOUND, "format kind %d does not quantize activations", (int)kind);
  }
}

static aoq_status give(const void *src, size_t len, void **bytes, size_t *n) {
  void *o = malloc(len ? len : 1);
  if (!o) return aoq_err(AOQ_ENOMEM, "activation view: %zu bytes", len);
  memcpy(o, src, len);
  *bytes = o, *n = len;
  return AOQ_OK;
}

aoq_status aoq_torchao_act_tensor(const aoq_format *f, const uint16_t *x, int64_t m, int64_t k,
                                  const char *attr, void **bytes, size_t *n) {
  if (!f || !x || !attr || !bytes || !n)
    return aoq_err(AOQ_EINVAL, "torchao_act_tensor: NULL argument");
  if (m <= 0 || k <= 0 || m > (1 << 24) || k > (1 << 24))
    return aoq_err(AOQ_ESHAPE, "activation shape [%lld, %lld]", (long long)m, (long long)k);
  act_q a = {0};
  aoq_status s = quantize(f->kind, x, m, k, &a);
  if (s == AOQ_OK) {
    if (!strcmp(attr, "qdata"))
      s = give(a.qdata, a.qdata_bytes, bytes, n);
    else if (!strcmp(attr, "dequant"))
      s = give(a.dequant, (size_t)(m * k) * 2, bytes, n);
    else if (!strcmp(attr, "scale") && f->kind == AOQ_FMT_NVFP4)
      s = aoq_swizzle_scales(a.scale, m, k / 16, bytes, n);
    else if (!strcmp(attr, "scale"))
      s = give(a.scale, a.scale_bytes, bytes, n);
    else if (!strcmp(attr, "zero_point") && (a.zero || f->kind == AOQ_FMT_INT8DQ)) {
      /* symmetric int8: torchao keeps an all-zero int8 zero point */
      int8_t *z = calloc((size_t)m, 1);
      if (!z)
        s = aoq_err(AOQ_ENOMEM, "zero point");
      else {
        if (a.zero) memcpy(z, a.zero, (size_t)m);
        *bytes = z, *n = (size_t)m;
      }
    } else if (!strcmp(attr, "per_tensor_scale") && a.has_pts)
      s = give(&a.pts, 4, bytes, n);
    else
      s = aoq_err(AOQ_ENOTFOUND, "activation of format kind %d has no tensor '%s'", (int)f->kind,
                  attr);
  }
  act_q_free(&a);
  return s;
}
