/*
 * quant_fp.c — reference quantizers and dequantizers of the float families (spec/formats.md §3,
 * §6, §7, §8, §12): FP8WO, FP8DQ, FP8DQ_ROW, FP8DQ_BLOCK, MXFP8, MXFP4, NVFP4, NVFP4WO,
 * FP6_E3M2, FP6_E2M3, in aoq's layouts (docs/layouts.md "Float formats"), plus torchao's views of
 * them for the golden checks. Bit-exact with torchao where torchao has the format.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/numerics.h"
#include "core/format_impl.h"
#include "core/quant_fp_util.h"

static float bf(const uint16_t *p, int64_t i) {
  return aoq_bf16_to_f32(p[i]);
}

bool aoq_fp_kind(aoq_format_kind kind) {
  switch (kind) {
    case AOQ_FMT_FP8WO:
    case AOQ_FMT_FP8DQ:
    case AOQ_FMT_FP8DQ_ROW:
    case AOQ_FMT_FP8DQ_BLOCK:
    case AOQ_FMT_MXFP8:
    case AOQ_FMT_MXFP4:
    case AOQ_FMT_NVFP4:
    case AOQ_FMT_NVFP4WO:
    case AOQ_FMT_FP6_E3M2:
    case AOQ_FMT_FP6_E2M3:
      return true;
    default:
      return false;
  }
}

aoq_status aoq_fp_sizes(aoq_format_kind kind, int64_t n, int64_t k, size_t *qdata, size_t *scale,
                        size_t *aux) {
  if (n <= 0 || k <= 0 || n > ((int64_t)1 << 31) || k > ((int64_t)1 << 31))
    return aoq_err(AOQ_ESHAPE, "float format: bad weight shape [%lld, %lld]", (long long)n,
                   (long long)k);
  if (!aoq_fp_kind(kind)) return aoq_err(AOQ_EINVAL, "format kind %d is not a float format", kind);
  size_t nn = (size_t)n, kk = (size_t)k; /* both <= 2^31: products fit in 64 bits */
  *aux = 0;
  switch (kind) {
    case AOQ_FMT_FP8WO:
    case AOQ_FMT_FP8DQ_ROW:
      *qdata = nn * kk, *scale = 4 * nn;
      break;
    case AOQ_FMT_FP8DQ:
      *qdata = nn * kk, *scale = 4;
      break;
    case AOQ_FMT_FP8DQ_BLOCK:
      *qdata = nn * kk, *scale = 4 * ((nn + 127) / 128) * ((kk + 127) / 128);
      break;
    case AOQ_FMT_MXFP8:
    case AOQ_FMT_MXFP4:
      if (k % 32)
        return aoq_err(AOQ_ESHAPE, "mx formats need k %% 32 == 0, got k=%lld", (long long)k);
      *qdata = kind == AOQ_FMT_MXFP8 ? nn * kk : nn * kk / 2, *scale = nn * kk / 32;
      break;
    case AOQ_FMT_NVFP4:
    case AOQ_FMT_NVFP4WO:
      if (k % 16) return aoq_err(AOQ_ESHAPE, "nvfp4 needs k %% 16 == 0, got k=%lld", (long long)k);
      *qdata = nn * kk / 2, *scale = nn * kk / 16, *aux = 4;
      break;
    default: /* FP6: LSB-first 6-bit stream per row, rows padded to 4 bytes */
      *qdata = nn * aoq_fp6_row_bytes(k), *scale = 2 * nn;
      break;
  }
  return AOQ_OK;
}

/* Checks w's shape, kind and that every planned buffer is present and large enough. */
static aoq_status check_buffers(const aoq_qweight *w) {
  size_t q, s, a;
  AOQ_TRY(aoq_fp_sizes(w->kind, w->n, w->k, &q, &s, &a));
  if (!w->qdata || w->qdata_bytes < q || !w->scale || w->scale_bytes < s ||
      (a && (!w->aux || w->aux_bytes < a)))
    return aoq_err(
        AOQ_ESHAPE,
        "float qweight [%lld, %lld] kind %d: buffers too small or missing (qdata %zu/%zu, "
        "scale %zu/%zu, aux %zu/%zu)",
        (long long)w->n, (long long)w->k, (int)w->kind, w->qdata_bytes, q, w->scale_bytes, s,
        w->aux_bytes, a);
  return AOQ_OK;
}

/* §3: one fp8 scale per (row range, column range) block, q = e4m3(x / scale). */
static void fp8_block(const uint16_t *w, int64_t k, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                      uint8_t *q, float *scale) {
  float amax = 0.0f;
  for (int64_t r = r0; r < r1; r++) {
    float a = aoq_amax_bf16(w + r * k + c0, c1 - c0);
    if (a > amax || a != a) amax = a;
  }
  float s = aoq_fp8_scale(amax, AOQ_E4M3_MAX);
  *scale = s;
  for (int64_t r = r0; r < r1; r++)
    for (int64_t c = c0; c < c1; c++) q[r * k + c] = aoq_f32_to_e4m3(bf(w, r * k + c) / s);
}

/* §8: per-row scale = max(amax, 1e-12) / max_normal in fp32 (elements use it), stored bf16.
 * Element i occupies bits [6i, 6i+6) of the row, LSB first. */
static void fp6_row(const uint16_t *x, int64_t k, bool e3m2, uint8_t *q, uint16_t *scale) {
  float s = fmaxf(aoq_amax_bf16(x, k), 1e-12f) / (e3m2 ? AOQ_E3M2_MAX : AOQ_E2M3_MAX);
  *scale = aoq_f32_to_bf16(s);
  memset(q, 0, aoq_fp6_row_bytes(k));
  for (int64_t i = 0; i < k; i++) {
    float f = aoq_bf16_to_f32(x[i]) / s;
    uint32_t c = e3m2 ? aoq_f32_to_e3m2(f) : aoq_f32_to_e2m3(f);
    int64_t bit = 6 * i;
    uint32_t v = c << (bit & 7);
    q[bit >> 3] |= (uint8_t)v;
    if ((bit & 7) > 2) q[(bit >> 3) + 1] |= (uint8_t)(v >> 8);
  }
}

aoq_status aoq_quantize_ref_fp(const uint16_t *w_bf16, aoq_qweight *w) {
  if (!w_bf16 || !w) return aoq_err(AOQ_EINVAL, "quantize_ref_fp: NULL argument");
  AOQ_TRY(check_buffers(w));
  const int64_t n = w->n, k = w->k;
  uint8_t *q = w->qdata;
  switch (w->kind) {
    case AOQ_FMT_FP8WO:
    case AOQ_FMT_FP8DQ_ROW:
      for (int64_t r = 0; r < n; r++)
        fp8_block(w_bf16, k, r, r + 1, 0, k, q, (float *)w->scale + r);
      break;
    case AOQ_FMT_FP8DQ:
      fp8_block(w_bf16, k, 0, n, 0, k, q, (float *)w->scale);
      break;
    case AOQ_FMT_FP8DQ_BLOCK: {
      int64_t kb = (k + 127) / 128;
      for (int64_t rb = 0; rb < (n + 127) / 128; rb++)
        for (int64_t cb = 0; cb < kb; cb++)
          fp8_block(w_bf16, k, rb * 128, rb * 128 + 128 < n ? rb * 128 + 128 : n, cb * 128,
                    cb * 128 + 128 < k ? cb * 128 + 128 : k, q, (float *)w->scale + rb * kb + cb);
      break;
    }
    case AOQ_FMT_MXFP8:
    case AOQ_FMT_MXFP4: {
      bool fp4 = w->kind == AOQ_FMT_MXFP4;
      int64_t qrow = fp4 ? k / 2 : k;
      for (int64_t r = 0; r < n; r++)
        aoq_mx_quant_row(w_bf16 + r * k, k, fp4, q + r * qrow, (uint8_t *)w->scale + r * (k / 32));
      break;
    }
    case AOQ_FMT_NVFP4:
    case AOQ_FMT_NVFP4WO: {
      float pts = aoq_nvfp4_tensor_scale(aoq_amax_bf16(w_bf16, n * k));
      memcpy(w->aux, &pts, 4);
      for (int64_t r = 0; r < n; r++)
        aoq_nvfp4_quant_row(w_bf16 + r * k, k, pts, q + r * (k / 2),
                            (uint8_t *)w->scale + r * (k / 16));
      break;
    }
    default:
      for (int64_t r = 0; r < n; r++)
        fp6_row(w_bf16 + r * k, k, w->kind == AOQ_FMT_FP6_E3M2, q + r * aoq_fp6_row_bytes(k),
                (uint16_t *)w->scale + r);
      break;
  }
  w->bits = aoq_fp_elem_bits(w->kind);
  return AOQ_OK;
}

int aoq_fp_elem_bits(aoq_format_kind kind) {
  switch (kind) {
    case AOQ_FMT_MXFP4:
    case AOQ_FMT_NVFP4:
    case AOQ_FMT_NVFP4WO:
      return 4;
    case AOQ_FMT_FP6_E3M2:
    case AOQ_FMT_FP6_E2M3:
      return 6;
    default:
      return 8;
  }
}

aoq_status aoq_fp_dequant_row(const aoq_qweight *w, int64_t r, float *out) {
  const int64_t k = w->k;
  const uint8_t *q = w->qdata;
  switch (w->kind) {
    case AOQ_FMT_FP8WO:
    case AOQ_FMT_FP8DQ_ROW:
    case AOQ_FMT_FP8DQ:
    case AOQ_FMT_FP8DQ_BLOCK: {
      const float *sc = w->scale;
      const uint8_t *qr = q + r * k;
      if (w->kind == AOQ_FMT_FP8DQ_BLOCK) {
        const float *srow = sc + (r / 128) * ((k + 127) / 128);
        for (int64_t c = 0; c < k; c++) out[c] = aoq_e4m3_to_f32(qr[c]) * srow[c / 128];
      } else {
        float s = sc[w->kind == AOQ_FMT_FP8DQ ? 0 : r];
        for (int64_t c = 0; c < k; c++) out[c] = aoq_e4m3_to_f32(qr[c]) * s;
      }
      break;
    }
    case AOQ_FMT_MXFP8:
    case AOQ_FMT_MXFP4: {
      const uint8_t *sr = (const uint8_t *)w->scale + r * (k / 32);
      if (w->kind == AOQ_FMT_MXFP8) {
        const uint8_t *qr = q + r * k;
        for (int64_t c = 0; c < k; c++)
          out[c] = aoq_e4m3_to_f32(qr[c]) * aoq_e8m0_to_f32(sr[c / 32]);
      } else {
        const uint8_t *qr = q + r * (k / 2);
        for (int64_t c = 0; c < k; c++)
          out[c] =
              aoq_e2m1_to_f32((uint8_t)(qr[c / 2] >> (4 * (c & 1)))) * aoq_e8m0_to_f32(sr[c / 32]);
      }
      break;
    }
    case AOQ_FMT_NVFP4:
    case AOQ_FMT_NVFP4WO: {
      float pts;
      memcpy(&pts, w->aux, 4);
      const uint8_t *sr = (const uint8_t *)w->scale + r * (k / 16), *qr = q + r * (k / 2);
      for (int64_t c = 0; c < k; c++)
        out[c] = aoq_e2m1_to_f32((uint8_t)(qr[c / 2] >> (4 * (c & 1)))) *
                 aoq_e4m3_to_f32(sr[c / 16]) * pts;
      break;
    }
    case AOQ_FMT_FP6_E3M2:
    case AOQ_FMT_FP6_E2M3: {
      bool e3m2 = w->kind == AOQ_FMT_FP6_E3M2;
      float s = aoq_bf16_to_f32(((const uint16_t *)w->scale)[r]);
      const uint8_t *qr = q + r * (int64_t)aoq_fp6_row_bytes(k);
      for (int64_t c = 0; c < k; c++) {
        uint8_t code = aoq_fp6_get(qr, c);
        out[c] = (e3m2 ? aoq_e3m2_to_f32(code) : aoq_e2m3_to_f32(code)) * s;
      }
      break;
    }
    default:
      return aoq_err(AOQ_EINVAL, "format kind %d is not a float format", (int)w->kind);
  }
  return AOQ_OK;
}

aoq_status aoq_dequantize_ref_fp(const aoq_qweight *w, uint16_t *out_bf16) {
  if (!w || !out_bf16) return aoq_err(AOQ_EINVAL, "dequantize_ref_fp: NULL argument");
  AOQ_TRY(check_buffers(w));
  float *row = malloc((size_t)w->k * sizeof(float));
  if (!row) return aoq_err(AOQ_ENOMEM, "dequantize_ref_fp: %lld floats", (long long)w->k);
  for (int64_t r = 0; r < w->n; r++) {
    aoq_status s = aoq_fp_dequant_row(w, r, row);
    if (s) {
      free(row);
      return s;
    }
    for (int64_t c = 0; c < w->k; c++) out_bf16[r * w->k + c] = aoq_f32_to_bf16(row[c]);
  }
  free(row);
  return AOQ_OK;
}

aoq_status aoq_swizzle_scales(const uint8_t *src, int64_t R, int64_t C, void **bytes, size_t *n) {
  size_t sz = (size_t)aoq_scale_swizzle_size(R, C);
  uint8_t *o = calloc(sz ? sz : 1, 1);
  if (!o) return aoq_err(AOQ_ENOMEM, "swizzle: %zu bytes", sz);
  for (int64_t r = 0; r < R; r++)
    for (int64_t c = 0; c < C; c++) o[aoq_scale_swizzle_offset(r, c, C)] = src[r * C + c];
  *bytes = o;
  *n = sz;
  return AOQ_OK;
}

static aoq_status copy_out(const void *src, size_t len, void **bytes, size_t *n) {
  void *o = malloc(len ? len : 1);
  if (!o) return aoq_err(AOQ_ENOMEM, "torchao view: %zu bytes", len);
  memcpy(o, src, len);
  *bytes = o;
  *n = len;
  return AOQ_OK;
}

aoq_status aoq_torchao_tensor_fp(const aoq_qweight *w, const char *attr, void **bytes, size_t *n) {
  if (!w || !attr || !bytes || !n) return aoq_err(AOQ_EINVAL, "torchao_tensor_fp: NULL argument");
  AOQ_TRY(check_buffers(w));
  size_t qb, sb, ab;
  AOQ_TRY(aoq_fp_sizes(w->kind, w->n, w->k, &qb, &sb, &ab));
  bool fp6 = w->kind == AOQ_FMT_FP6_E3M2 || w->kind == AOQ_FMT_FP6_E2M3;
  if (fp6) /* torchao's FPx layout (TC-FP6) is gone from torchao main: nothing to compare with */
    return aoq_err(AOQ_ENOTFOUND, "fp6: torchao has no current layout for '%s'", attr);
  if (!strcmp(attr, "qdata")) return copy_out(w->qdata, qb, bytes, n);
  if (!strcmp(attr, "scale")) {
    switch (w->kind) {
      case AOQ_FMT_MXFP8:
      case AOQ_FMT_MXFP4:
        return aoq_swizzle_scales(w->scale, w->n, w->k / 32, bytes, n);
      case AOQ_FMT_NVFP4:
      case AOQ_FMT_NVFP4WO:
        return aoq_swizzle_scales(w->scale, w->n, w->k / 16, bytes, n);
      default:
        return copy_out(w->scale, sb, bytes, n); /* fp8: f32 [n,1], [1,1] or blocks */
    }
  }
  if (!strcmp(attr, "per_tensor_scale") && ab) return copy_out(w->aux, ab, bytes, n);
  return aoq_err(AOQ_ENOTFOUND, "format kind %d has no torchao tensor '%s'", (int)w->kind, attr);
}
