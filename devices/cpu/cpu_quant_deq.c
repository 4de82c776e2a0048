/*
 * cpu_quant_deq.c — per-format readers of aoq's packed weights (docs/layouts.md, devices/device.h)
 * for the CPU quantized linear: a chunk [c0, c0+len) of one weight row decoded to fp32, the value
 * that multiplies x in torchao's computation for that format (see cpu_quant.c for the epilogues).
 * Also the byte sizes each layout needs, checked before a linear runs.
 */
#include "base/error.h"
#include "base/numerics.h"
#include "devices/cpu/cpu_quant_impl.h"

static size_t bitrow(int64_t k, int bits) { return (size_t)(((k * bits + 31) / 32) * 4); }

/* Element i (bits wide) of an LSB-first bit stream. */
static inline uint32_t bits_get(const uint8_t *row, int64_t i, int bits) {
  uint64_t bit = (uint64_t)i * (uint64_t)bits;
  unsigned sh = (unsigned)(bit & 7);
  uint32_t v = row[bit >> 3];
  if (sh + (unsigned)bits > 8) v |= (uint32_t)row[(bit >> 3) + 1] << 8;
  return (v >> sh) & ((1u << bits) - 1u);
}

static inline int sext(uint32_t v, int bits) {
  return (int)(v ^ (1u << (bits - 1))) - (1 << (bits - 1));
}

aoq_status aoq_cpu_quant_check(const aoq_qweight *w) {
  const int64_t n = w->n, k = w->k;
  const size_t N = (size_t)n, K = (size_t)k;
  int64_t g = w->group > 0 ? w->group : k;
  size_t q = 0, s = 0, a = 0;
  int bits = w->bits;
  switch (w->kind) {
  case AOQ_FMT_INT8WO:
  case AOQ_FMT_INT8DQ:
  case AOQ_FMT_FP8WO:
  case AOQ_FMT_FP8DQ_ROW: q = N * K, s = 4 * N; break;
  case AOQ_FMT_FP8DQ: q = N * K, s = 4; break;
  case AOQ_FMT_FP8DQ_BLOCK: q = N * K, s = 4 * ((N + 127) / 128) * ((K + 127) / 128); break;
  case AOQ_FMT_MXFP8:
  case AOQ_FMT_MXFP4:
    if (k % 32) return aoq_err(AOQ_ESHAPE, "cpu linear: mx weight k=%lld", (long long)k);
    q = w->kind == AOQ_FMT_MXFP8 ? N * K : N * K / 2, s = N * K / 32;
    break;
  case AOQ_FMT_NVFP4:
  case AOQ_FMT_NVFP4WO:
    if (k % 16) return aoq_err(AOQ_ESHAPE, "cpu linear: nvfp4 weight k=%lld", (long long)k);
    q = N * K / 2, s = N * K / 16, a = 4;
    break;
  case AOQ_FMT_FP6_E3M2:
  case AOQ_FMT_FP6_E2M3: q = N * bitrow(k, 6), s = 2 * N; break;
  case AOQ_FMT_INT4WO:
  case AOQ_FMT_INT4WO_HQQ:
    if (k % g || k % 2) return aoq_err(AOQ_ESHAPE, "cpu linear: int4 group %lld, k %lld", (long long)g, (long long)k);
    q = N * K / 2, s = N * (K / (size_t)g) * 4;
    break;
  case AOQ_FMT_FP8_INT4:
    if (k % g) return aoq_err(AOQ_ESHAPE, "cpu linear: group %lld, k %lld", (long long)g, (long long)k);
    q = N * bitrow(k, 4), s = N * (K / (size_t)g) * 4;
    break;
  case AOQ_FMT_INT8_INT4:
  case AOQ_FMT_INTXWO:
  case AOQ_FMT_INT8_INTX:
  case AOQ_FMT_CODEBOOK:
    if (bits < 1 || bits > 8) return aoq_err(AOQ_EINVAL, "cpu linear: %d-bit weight", bits);
    if (k % g) return aoq_err(AOQ_ESHAPE, "cpu linear: group %lld, k %lld", (long long)g, (long long)k);
    q = N * bitrow(k, bits), s = N * (K / (size_t)g) * 2;
    if (w->kind == AOQ_FMT_CODEBOOK) a = ((size_t)1 << bits) * 2;
    break;
  case AOQ_FMT_W158: q = N * bitrow(k, 2), s = 2; break;
  default: return aoq_err(AOQ_EUNSUPPORTED, "cpu linear: format kind %d", (int)w->kind);
  }
  if (w->qdata_bytes < q || !w->scale || w->scale_bytes < s || (a && (!w->aux || w->aux_bytes < a)))
    return aoq_err(AOQ_ESHAPE,
                   "cpu linear: kind %d weight [%lld, %lld] buffers too small (qdata %zu/%zu, "
                   "scale %zu/%zu, aux %zu/%zu)",
                   (int)w->kind, (long long)n, (long long)k, w->qdata_bytes, q, w->scale_bytes, s,
                   w->aux_bytes, a);
  return AOQ_OK;
}

void aoq_cpu_quant_deq(const aoq_qweight *w, int64_t r, int64_t c0, int64_t len, float *out) {
  const int64_t k = w->k, g = w->group > 0 ? w->group : k;
  const uint8_t *qd = w->qdata;
  switch (w->kind) {
  case AOQ_FMT_INT8WO: /* raw int8: torchao scales after the matmul (§2) */
  case AOQ_FMT_INT8DQ: {
    const int8_t *q = (const int8_t *)qd + r * k + c0;
    for (int64_t i = 0; i < len; i++) out[i] = (float)q[i];
    break;
  }
  case AOQ_FMT_FP8WO: { /* weight-only = matmul with the bf16 dequantized weight (§3) */
    const uint8_t *q = qd + r * k + c0;
    float s = ((const float *)w->scale)[r];
    for (int64_t i = 0; i < len; i++) out[i] = aoq_round_bf16(aoq_e4m3_to_f32(q[i]) * s);
    break;
  }
  case AOQ_FMT_FP8DQ:
  case AOQ_FMT_FP8DQ_ROW:
  case AOQ_FMT_FP8DQ_BLOCK: { /* raw e4m3: scaled_mm applies the scales to the fp32 sums */
    const uint8_t *q = qd + r * k + c0;
    for (int64_t i = 0; i < len; i++) out[i] = aoq_e4m3_to_f32(q[i]);
    break;
  }
  case AOQ_FMT_MXFP8: { /* elem * 2^e is exact: the scales fold into the operands */
    const uint8_t *q = qd + r * k, *s = (const uint8_t *)w->scale + r * (k / 32);
    for (int64_t i = 0; i < len; i++)
      out[i] = aoq_e4m3_to_f32(q[c0 + i]) * aoq_e8m0_to_f32(s[(c0 + i) / 32]);
    break;
  }
  case AOQ_FMT_MXFP4: {
    const uint8_t *q = qd + r * (k / 2), *s = (const uint8_t *)w->scale + r * (k / 32);
    for (int64_t i = 0; i < len; i++) {
      int64_t c = c0 + i;
      out[i] = aoq_e2m1_to_f32((uint8_t)(q[c / 2] >> (4 * (c & 1)))) * aoq_e8m0_to_f32(s[c / 32]);
    }
    break;
  }
  case AOQ_FMT_NVFP4:
  case AOQ_FMT_NVFP4WO: {
    const uint8_t *q = qd + r * (k / 2), *s = (const uint8_t *)w->scale + r * (k / 16);
    float pts = 1.0f;
    if (w->kind == AOQ_FMT_NVFP4WO) memcpy(&pts, w->aux, 4);
    for (int64_t i = 0; i < len; i++) {
      int64_t c = c0 + i;
      float v = aoq_e2m1_to_f32((uint8_t)(q[c / 2] >> (4 * (c & 1)))) * aoq_e4m3_to_f32(s[c / 16]);
      /* dynamic: fp4 * s_b exactly, pts after the GEMM (§7); weight-only: bf16 dequant */
      out[i] = w->kind == AOQ_FMT_NVFP4WO ? aoq_round_bf16(v * pts) : v;
    }
    break;
  }
  case AOQ_FMT_FP6_E3M2:
  case AOQ_FMT_FP6_E2M3: {
    const uint8_t *q = qd + r * (int64_t)bitrow(k, 6);
    float s = aoq_bf16_to_f32(((const uint16_t *)w->scale)[r]);
    for (int64_t i = 0; i < len; i++) {
      uint8_t code = aoq_fp6_get(q, c0 + i);
      float e = w->kind == AOQ_FMT_FP6_E3M2 ? aoq_e3m2_to_f32(code) : aoq_e2m3_to_f32(code);
      out[i] = aoq_round_bf16(e * s);
    }
    break;
  }
  case AOQ_FMT_INT4WO:
  case AOQ_FMT_INT4WO_HQQ: { /* tinygemm: bf16(bf16((q - 8) * s) + z) (§0, §4) */
    const uint8_t *q = qd + r * (k / 2);
    const uint16_t *sz = (const uint16_t *)w->scale + r * (k / g) * 2;
    for (int64_t i = 0; i < len; i++) {
      int64_t c = c0 + i;
      int qv = (q[c / 2] >> (4 * (c & 1))) & 0xf;
      float s = aoq_bf16_to_f32(sz[(c / g) * 2]), z = aoq_bf16_to_f32(sz[(c / g) * 2 + 1]);
      out[i] = aoq_round_bf16(aoq_round_bf16((float)(qv - 8) * s) + z);
    }
    break;
  }
  case AOQ_FMT_FP8_INT4: { /* MSLK symmetric int4, fp32 group scales (§4) */
    const uint8_t *q = qd + r * (int64_t)bitrow(k, 4);
    const float *s = (const float *)w->scale + r * (k / g);
    for (int64_t i = 0; i < len; i++)
      out[i] = (float)sext(bits_get(q, c0 + i, 4), 4) * s[(c0 + i) / g];
    break;
  }
  case AOQ_FMT_INT8_INT4:
  case AOQ_FMT_INTXWO:
  case AOQ_FMT_INT8_INTX: { /* bf16(q * s) (§0 IntX) */
    const uint8_t *q = qd + r * (int64_t)bitrow(k, w->bits);
    const uint16_t *s = (const uint16_t *)w->scale + r * (k / g);
    for (int64_t i = 0; i < len; i++)
      out[i] = aoq_round_bf16((float)sext(bits_get(q, c0 + i, w->bits), w->bits) *
                              aoq_bf16_to_f32(s[(c0 + i) / g]));
    break;
  }
  case AOQ_FMT_CODEBOOK: { /* bf16(codebook[code] * s) (§9) */
    const uint8_t *q = qd + r * (int64_t)bitrow(k, w->bits);
    const uint16_t *s = (const uint16_t *)w->scale + r * (k / g), *cb = w->aux;
    for (int64_t i = 0; i < len; i++)
      out[i] = aoq_round_bf16(aoq_bf16_to_f32(cb[bits_get(q, c0 + i, w->bits)]) *
                              aoq_bf16_to_f32(s[(c0 + i) / g]));
    break;
  }
  case AOQ_FMT_W158: { /* ternary: code - 1 in {-1, 0, 1} times the per-tensor scale */
    const uint8_t *q = qd + r * (int64_t)bitrow(k, 2);
    float s = aoq_bf16_to_f32(*(const uint16_t *)w->scale);
    for (int64_t i = 0; i < len; i++)
      out[i] = aoq_round_bf16((float)((int)bits_get(q, c0 + i, 2) - 1) * s);
    break;
  }
  default:
    for (int64_t i = 0; i < len; i++) out[i] = 0.0f;
    break;
  }
}
