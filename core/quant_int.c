/*
 * quant_int.c — reference quantizers and dequantizers of the integer families (spec/formats.md
 * §0, §1, §2, §4, §5; aoq's own definitions for W158 in docs/formats.md), in aoq's packed layouts
 * (docs/layouts.md), and their views in torchao's layouts for the golden checks.
 *
 * Arithmetic follows torchao step by step: where torchao computes in the weight's dtype (bf16),
 * every step is rounded to bf16 here too (bf()); where it computes in fp32, so does this file.
 */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "core/format_impl.h"
#include "core/quant_int_internal.h"

#define BF16_SMALLEST_NORMAL 0x1p-126f /* torch.finfo(bfloat16).smallest_normal */
#define F32_EPS 0x1p-23f               /* torch.finfo(float32).eps */
#define INT4_TINYGEMM_LIM 0x1p125f     /* keeps (max - min) * 8/15 finite in bf16 */

static float clampf(float v, float lo, float hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

/* RNE then clamp; NaN (only from 0*inf style corners, inputs are sanitized) maps to 0. */
static int round_clamp(float t, int qmin, int qmax) {
  if (t != t) return 0;
  return (int)clampf(rintf(t), (float)qmin, (float)qmax);
}

/* --------------------------------------------------------------------------------------------
 * INT8WO / INT8DQ weights: spec §0/§2. scale = bf16(amax_row / 127.5) clamped to fp32 eps,
 * stored fp32; q = RNE(x * fp32(1/scale)) clamped to [-128, 127].
 * ------------------------------------------------------------------------------------------ */

static void quant_int8(const uint16_t *w, aoq_qweight *q) {
  int8_t *qd = q->qdata;
  float *sc = q->scale;
  for (int64_t r = 0; r < q->n; r++) {
    const uint16_t *row = w + r * q->k;
    float amax = 0.0f;
    for (int64_t i = 0; i < q->k; i++)
      amax = fmaxf(amax, fabsf(sanitize(bf16v(row, i), AOQ_SYM_LIM)));
    float s = fmaxf(bf(amax / 127.5f), F32_EPS);
    float inv = 1.0f / s;
    sc[r] = s;
    for (int64_t i = 0; i < q->k; i++)
      qd[r * q->k + i] = (int8_t)round_clamp(sanitize(bf16v(row, i), AOQ_SYM_LIM) * inv, -128, 127);
  }
}

static void dequant_int8(const aoq_qweight *q, uint16_t *out) {
  const int8_t *qd = q->qdata;
  const float *sc = q->scale;
  for (int64_t r = 0; r < q->n; r++)
    for (int64_t i = 0; i < q->k; i++)
      out[r * q->k + i] = aoq_f32_to_bf16((float)qd[r * q->k + i] * sc[r]);
}

/* --------------------------------------------------------------------------------------------
 * INT4WO (tinygemm numerics, spec §0/§1/§4), every step in bf16:
 *   s = bf16(bf16(max - min) / 15) clamped to 2^-126, z = bf16(min + bf16(s * 8)),
 *   q = clamp(RNE(bf16(bf16(x - bf16(z - bf16(s*8))) / s)), 0, 15),
 *   x^ = bf16(bf16((q - 8) * s) + z).
 * qdata u8[n, k/2] even k in the low nibble; scale bf16[n, k/g, 2] = {s, z}.
 * ------------------------------------------------------------------------------------------ */

void aoq_int4_tinygemm_group(const uint16_t *x, int g, uint8_t *row, int64_t e0, uint16_t *sz) {
  float mn = INFINITY, mx = -INFINITY;
  for (int i = 0; i < g; i++) {
    float v = sanitize(bf16v(x, i), INT4_TINYGEMM_LIM);
    mn = fminf(mn, v);
    mx = fmaxf(mx, v);
  }
  float s = fmaxf(bf(bf(mx - mn) / 15.0f), BF16_SMALLEST_NORMAL);
  float s8 = bf(s * 8.0f);
  float z = bf(mn + s8);
  float minv = bf(z - s8);
  sz[0] = aoq_f32_to_bf16(s);
  sz[1] = aoq_f32_to_bf16(z);
  for (int i = 0; i < g; i++) {
    float v = sanitize(bf16v(x, i), INT4_TINYGEMM_LIM);
    int u = round_clamp(bf(bf(v - minv) / s), 0, 15);
    int64_t e = e0 + i;
    row[e / 2] = (uint8_t)((row[e / 2] & (0xf0u >> ((e & 1) * 4))) | (u << ((e & 1) * 4)));
  }
}

static void quant_int4_tinygemm(const uint16_t *w, aoq_qweight *q) {
  int64_t ng = q->k / q->group;
  uint16_t *sz = q->scale;
  for (int64_t r = 0; r < q->n; r++)
    for (int64_t g = 0; g < ng; g++)
      aoq_int4_tinygemm_group(w + r * q->k + g * q->group, q->group,
                              (uint8_t *)q->qdata + r * (q->k / 2), g * q->group,
                              sz + (r * ng + g) * 2);
}

static void dequant_int4_tinygemm(const aoq_qweight *q, uint16_t *out) {
  int64_t ng = q->k / q->group;
  const uint8_t *qd = q->qdata;
  const uint16_t *sz = q->scale;
  for (int64_t r = 0; r < q->n; r++)
    for (int64_t e = 0; e < q->k; e++) {
      int64_t g = e / q->group;
      float s = aoq_bf16_to_f32(sz[(r * ng + g) * 2]);
      float z = aoq_bf16_to_f32(sz[(r * ng + g) * 2 + 1]);
      int u = (qd[r * (q->k / 2) + e / 2] >> ((e & 1) * 4)) & 15;
      out[r * q->k + e] = aoq_f32_to_bf16(bf((float)(u - 8) * s) + z);
    }
}

/* --------------------------------------------------------------------------------------------
 * Symmetric group formats stored as signed bit streams with bf16 group scales:
 *   INTXWO, INT8_INTX, INT8_INT4 (spec §0/§1/§5, torchao's quantize_affine in bf16):
 *     s = max(bf16(amax / ((qmax - qmin) / 2)), 2^-126), q = clamp(RNE(bf16(x * bf16(1/s))))
 *     x^ = bf16(q * s)
 *   FP8_INT4 (spec §4 'plain' MSLK int4_row_quantize, fp32, scale stored f32):
 *     s = max(amax, 1e-6) / 8, q = clamp(RNE(x / s), -8, 7), x^ = bf16(q * s)
 * ------------------------------------------------------------------------------------------ */

static void quant_sym_stream(const uint16_t *w, aoq_qweight *q) {
  int bits = q->bits;
  int qmin = -(1 << (bits - 1)), qmax = (1 << (bits - 1)) - 1;
  int64_t ng = q->k / q->group;
  size_t rb = aoq_bitrow_bytes(q->k, bits);
  bool mslk = q->kind == AOQ_FMT_FP8_INT4;
  memset(q->qdata, 0, q->qdata_bytes);
  for (int64_t r = 0; r < q->n; r++) {
    uint8_t *row = (uint8_t *)q->qdata + r * rb;
    for (int64_t g = 0; g < ng; g++) {
      const uint16_t *x = w + r * q->k + g * q->group;
      float amax = 0.0f;
      for (int i = 0; i < q->group; i++)
        amax = fmaxf(amax, fabsf(sanitize(bf16v(x, i), AOQ_SYM_LIM)));
      float s, inv;
      if (mslk) {
        s = fmaxf(amax, 1e-6f) / 8.0f;
        inv = 0.0f;
        ((float *)q->scale)[r * ng + g] = s;
      } else {
        s = fmaxf(bf(amax / ((float)(qmax - qmin) / 2.0f)), BF16_SMALLEST_NORMAL);
        inv = bf(1.0f / s);
        ((uint16_t *)q->scale)[r * ng + g] = aoq_f32_to_bf16(s);
      }
      for (int i = 0; i < q->group; i++) {
        float v = sanitize(bf16v(x, i), AOQ_SYM_LIM);
        int qv = mslk ? round_clamp(v / s, qmin, qmax) : round_clamp(bf(v * inv), qmin, qmax);
        aoq_bits_put(row, g * q->group + i, bits, (uint32_t)qv);
      }
    }
  }
}

static void dequant_sym_stream(const aoq_qweight *q, uint16_t *out) {
  int64_t ng = q->k / q->group;
  size_t rb = aoq_bitrow_bytes(q->k, q->bits);
  bool mslk = q->kind == AOQ_FMT_FP8_INT4;
  for (int64_t r = 0; r < q->n; r++) {
    const uint8_t *row = (const uint8_t *)q->qdata + r * rb;
    for (int64_t e = 0; e < q->k; e++) {
      int64_t g = e / q->group;
      float s = mslk ? ((const float *)q->scale)[r * ng + g]
                     : aoq_bf16_to_f32(((const uint16_t *)q->scale)[r * ng + g]);
      int qv = aoq_sext(aoq_bits_get(row, e, q->bits), q->bits);
      out[r * q->k + e] = aoq_f32_to_bf16((float)qv * s);
    }
  }
}

/* --------------------------------------------------------------------------------------------
 * W158 (ternary; aoq's definition, docs/formats.md): per-tensor s = bf16(max(mean|W|, 1e-5))
 * with the mean accumulated in fp64 over the whole weight; q = clamp(RNE(x / s), -1, 1) in fp32;
 * stored 2-bit as q + 1, four per byte LSB-first; x^ = bf16(q * s).
 * ------------------------------------------------------------------------------------------ */

static void quant_w158(const uint16_t *w, aoq_qweight *q) {
  size_t rb = aoq_bitrow_bytes(q->k, 2);
  double sum = 0.0;
  for (int64_t i = 0; i < q->n * q->k; i++) sum += fabs((double)sanitize(bf16v(w, i), AOQ_SYM_LIM));
  float mean = (float)(sum / ((double)q->n * (double)q->k));
  float s = bf(fmaxf(mean, 1e-5f));
  *(uint16_t *)q->scale = aoq_f32_to_bf16(s);
  memset(q->qdata, 0, q->qdata_bytes);
  for (int64_t r = 0; r < q->n; r++) {
    uint8_t *row = (uint8_t *)q->qdata + r * rb;
    for (int64_t i = 0; i < q->k; i++) {
      int t = round_clamp(sanitize(bf16v(w, r * q->k + i), AOQ_SYM_LIM) / s, -1, 1);
      aoq_bits_put(row, i, 2, (uint32_t)(t + 1));
    }
  }
}

static void dequant_w158(const aoq_qweight *q, uint16_t *out) {
  size_t rb = aoq_bitrow_bytes(q->k, 2);
  float s = aoq_bf16_to_f32(*(const uint16_t *)q->scale);
  for (int64_t r = 0; r < q->n; r++) {
    const uint8_t *row = (const uint8_t *)q->qdata + r * rb;
    for (int64_t i = 0; i < q->k; i++) {
      int t = (int)aoq_bits_get(row, i, 2) - 1;
      out[r * q->k + i] = aoq_f32_to_bf16((float)t * s);
    }
  }
}

/* --------------------------------------------------------------------------------------------
 * CODEBOOK dequant: x^ = bf16(codebook[code] * scale_group), codes unsigned bit stream.
 * ------------------------------------------------------------------------------------------ */

static void dequant_codebook(const aoq_qweight *q, uint16_t *out) {
  int64_t ng = q->k / q->group;
  size_t rb = aoq_bitrow_bytes(q->k, q->bits);
  const uint16_t *cb = q->aux, *sc = q->scale;
  for (int64_t r = 0; r < q->n; r++) {
    const uint8_t *row = (const uint8_t *)q->qdata + r * rb;
    for (int64_t e = 0; e < q->k; e++) {
      float c = aoq_bf16_to_f32(cb[aoq_bits_get(row, e, q->bits)]);
      float s = aoq_bf16_to_f32(sc[r * ng + e / q->group]);
      out[r * q->k + e] = aoq_f32_to_bf16(c * s);
    }
  }
}

/* --------------------------------------------------------------------------------------------
 * Dispatch
 * ------------------------------------------------------------------------------------------ */

aoq_status aoq_quantize_ref_int(const uint16_t *w_bf16, aoq_qweight *w) {
  switch (w->kind) {
    case AOQ_FMT_INT8WO:
    case AOQ_FMT_INT8DQ:
      quant_int8(w_bf16, w);
      return AOQ_OK;
    case AOQ_FMT_INT4WO:
      quant_int4_tinygemm(w_bf16, w);
      return AOQ_OK;
    case AOQ_FMT_INT4WO_HQQ:
      return aoq_quant_int4_hqq(w_bf16, w);
    case AOQ_FMT_INTXWO:
    case AOQ_FMT_INT8_INTX:
    case AOQ_FMT_INT8_INT4:
    case AOQ_FMT_FP8_INT4:
      quant_sym_stream(w_bf16, w);
      return AOQ_OK;
    case AOQ_FMT_W158:
      quant_w158(w_bf16, w);
      return AOQ_OK;
    case AOQ_FMT_CODEBOOK:
      return aoq_quant_codebook(w_bf16, w);
    default:
      return aoq_err(AOQ_EINTERNAL, "quant_int: kind %d is not an integer format", (int)w->kind);
  }
}

aoq_status aoq_dequantize_ref_int(const aoq_qweight *w, uint16_t *out) {
  switch (w->kind) {
    case AOQ_FMT_INT8WO:
    case AOQ_FMT_INT8DQ:
      dequant_int8(w, out);
      return AOQ_OK;
    case AOQ_FMT_INT4WO:
    case AOQ_FMT_INT4WO_HQQ:
      dequant_int4_tinygemm(w, out);
      return AOQ_OK;
    case AOQ_FMT_INTXWO:
    case AOQ_FMT_INT8_INTX:
    case AOQ_FMT_INT8_INT4:
    case AOQ_FMT_FP8_INT4:
      dequant_sym_stream(w, out);
      return AOQ_OK;
    case AOQ_FMT_W158:
      dequant_w158(w, out);
      return AOQ_OK;
    case AOQ_FMT_CODEBOOK:
      dequant_codebook(w, out);
      return AOQ_OK;
    default:
      return aoq_err(AOQ_EINTERNAL, "dequant_int: kind %d is not an integer format", (int)w->kind);
  }
}

/* --------------------------------------------------------------------------------------------
 * torchao views (golden "q.<attr>" / "ref.<attr>")
 * ------------------------------------------------------------------------------------------ */

static aoq_status view_alloc(size_t bytes, void **out, size_t *n) {
  *out = aoq_fault_hit() ? NULL : calloc(1, bytes ? bytes : 1);
  if (!*out) return aoq_err(AOQ_ENOMEM, "torchao view: cannot allocate %zu bytes", bytes);
  *n = bytes;
  return AOQ_OK;
}

/* Signed values of a symmetric stream format unpacked to int8 [n, k]. */
static aoq_status view_unpacked_i8(const aoq_qweight *w, void **bytes, size_t *n) {
  AOQ_TRY(view_alloc((size_t)(w->n * w->k), bytes, n));
  int8_t *o = *bytes;
  size_t rb = aoq_bitrow_bytes(w->k, w->bits);
  for (int64_t r = 0; r < w->n; r++)
    for (int64_t i = 0; i < w->k; i++) {
      const uint8_t *row = (const uint8_t *)w->qdata + r * rb;
      o[r * w->k + i] =
          (int8_t)(w->kind == AOQ_FMT_W158 ? (int)aoq_bits_get(row, i, 2) - 1
                                           : aoq_sext(aoq_bits_get(row, i, w->bits), w->bits));
    }
  return AOQ_OK;
}

/* torchao pads the weight of Int4TilePackedTo4dTensor to n % 8 == 0 and k % 1024 == 0 before
 * quantizing; the padding is zeros, i.e. all-zero groups: code 0 and the algorithm's qparams for
 * an all-zero group (tinygemm: s = 2^-126, z = bf16(8 s); HQQ: inv = 2e4, zero = 0). */
static void int4_zero_group_qparams(aoq_format_kind kind, uint16_t *s, uint16_t *z) {
  if (kind == AOQ_FMT_INT4WO_HQQ) {
    float inv = hf(2e4f), sc = hf(1.0f / inv);
    *s = aoq_f32_to_bf16(sc);
    *z = aoq_f32_to_bf16(hf(8.0f * sc));
  } else {
    *s = aoq_f32_to_bf16(BF16_SMALLEST_NORMAL);
    *z = aoq_f32_to_bf16(bf(bf(BF16_SMALLEST_NORMAL * 8.0f)));
  }
}

/* scale_and_zero bf16 [k_pad/g, n_pad, 2] (torchao's pack_tinygemm_scales_and_zeros). */
static aoq_status view_scale_and_zero(const aoq_qweight *w, void **bytes, size_t *n) {
  int64_t np = aoq_int4_pad_n(w->n), kp = aoq_int4_pad_k(w->k);
  int64_t ng = w->k / w->group, ngp = kp / w->group;
  uint16_t ps, pz;
  int4_zero_group_qparams(w->kind, &ps, &pz);
  AOQ_TRY(view_alloc((size_t)(np * ngp) * 4, bytes, n));
  uint16_t *o = *bytes;
  const uint16_t *sz = w->scale;
  for (int64_t g = 0; g < ngp; g++)
    for (int64_t r = 0; r < np; r++) {
      bool real = r < w->n && g < ng;
      o[(g * np + r) * 2] = real ? sz[(r * ng + g) * 2] : ps;
      o[(g * np + r) * 2 + 1] = real ? sz[(r * ng + g) * 2 + 1] : pz;
    }
  return AOQ_OK;
}

/* tinygemm's int4pack (aten._convert_weight_to_int4pack, CUDA, inner_k_tiles = 8): int32
 * [n_pad/8][k_pad/128][32][4]. Lane t of n-tile T holds row T*8 + t/4; word j of a lane packs the
 * bytes b0..b3 at k-byte offsets base + t%4, +4, +8 + t%4, +12 (base = (kt*8 + 2j) * 8) of the
 * pre-packed row (byte i = q[2i] << 4 | q[2i+1]) as b3.lo b2.lo b1.lo b0.lo b3.hi b2.hi b1.hi b0.hi
 * from the most significant nibble down. */
static aoq_status view_int4pack(const aoq_qweight *w, void **bytes, size_t *n) {
  int64_t np = aoq_int4_pad_n(w->n), kp = aoq_int4_pad_k(w->k), kt_n = kp / 128;
  AOQ_TRY(view_alloc((size_t)(np * kp / 2), bytes, n));
  int32_t *o = *bytes;
  const uint8_t *qd = w->qdata;
  for (int64_t nt = 0; nt < np / 8; nt++)
    for (int64_t kt = 0; kt < kt_n; kt++)
      for (int t = 0; t < 32; t++) {
        int64_t row = nt * 8 + t / 4;
        for (int j = 0; j < 4; j++) {
          int64_t base = (kt * 8 + 2 * j) * 8;
          int64_t ks[4] = {base + t % 4, base + t % 4 + 4, base + 8 + t % 4, base + 12 + t % 4};
          uint32_t v[4];
          for (int i = 0; i < 4; i++) {
            v[i] = 0;
            int64_t e = ks[i] * 2; /* first k element of this pre-packed byte */
            if (row < w->n && e < w->k) {
              uint32_t lo = qd[row * (w->k / 2) + e / 2]; /* aoq: even element in the low nibble */
              v[i] = ((lo & 15u) << 4) | (lo >> 4);       /* tinygemm: even element high */
            }
          }
          uint32_t pack = ((v[3] & 15u) << 28) | ((v[2] & 15u) << 24) | ((v[1] & 15u) << 20) |
                          ((v[0] & 15u) << 16) | ((v[3] & 0xf0u) << 8) | ((v[2] & 0xf0u) << 4) |
                          (v[1] & 0xf0u) | ((v[0] & 0xf0u) >> 4);
          o[((nt * kt_n + kt) * 32 + t) * 4 + j] = (int32_t)pack;
        }
      }
  return AOQ_OK;
}

aoq_status aoq_torchao_tensor_int(const aoq_qweight *w, const char *attr, void **bytes, size_t *n) {
  int64_t ng = w->k / w->group;
  size_t nk = (size_t)(w->n * w->k);
  switch (w->kind) {
    case AOQ_FMT_INT8WO:
    case AOQ_FMT_INT8DQ: /* Int8Tensor: qdata i8 [n,k], scale f32 [n,1], zero_point i8 [n,1] */
      if (strcmp(attr, "qdata") == 0) {
        AOQ_TRY(view_alloc(nk, bytes, n));
        memcpy(*bytes, w->qdata, nk);
        return AOQ_OK;
      }
      if (strcmp(attr, "scale") == 0) {
        AOQ_TRY(view_alloc((size_t)w->n * 4, bytes, n));
        memcpy(*bytes, w->scale, (size_t)w->n * 4);
        return AOQ_OK;
      }
      if (strcmp(attr, "zero_point") == 0) return view_alloc((size_t)w->n, bytes, n);
      break;
    case AOQ_FMT_INT4WO:
    case AOQ_FMT_INT4WO_HQQ: {
      /* Int4TilePackedTo4dTensor: scale_and_zero bf16 [k/g, n, 2]; the unpacked reference values
       * ref.q_uint4 u8 [n,k], ref.scale / ref.zero bf16 [n, k/g]. q.qdata is tinygemm's opaque
       * int4pack layout: not reproduced (the same bits are checked through ref.q_uint4). */
      const uint16_t *sz = w->scale;
      if (strcmp(attr, "ref.q_uint4") == 0) {
        AOQ_TRY(view_alloc(nk, bytes, n));
        uint8_t *o = *bytes;
        const uint8_t *qd = w->qdata;
        for (size_t i = 0; i < nk; i++) o[i] = (qd[i / 2] >> ((i & 1) * 4)) & 15;
        return AOQ_OK;
      }
      if (strcmp(attr, "ref.scale") == 0 || strcmp(attr, "ref.zero") == 0) {
        int off = strcmp(attr, "ref.zero") == 0;
        AOQ_TRY(view_alloc((size_t)(w->n * ng) * 2, bytes, n));
        uint16_t *o = *bytes;
        for (int64_t i = 0; i < w->n * ng; i++) o[i] = sz[i * 2 + off];
        return AOQ_OK;
      }
      if (strcmp(attr, "scale_and_zero") == 0) return view_scale_and_zero(w, bytes, n);
      if (strcmp(attr, "qdata") == 0) return view_int4pack(w, bytes, n);
      break;
    }
    case AOQ_FMT_INTXWO:
    case AOQ_FMT_INT8_INTX:
    case AOQ_FMT_INT8_INT4:
    case AOQ_FMT_W158:
      /* IntxUnpackedToInt8Tensor: qdata i8 [n,k], scale bf16 [n,k/g], zero_point i8 [n,k/g].
       * W158 (aoq's own): qdata i8 in -1..1, scale bf16 [1]. */
      if (strcmp(attr, "qdata") == 0) return view_unpacked_i8(w, bytes, n);
      if (strcmp(attr, "scale") == 0) {
        AOQ_TRY(view_alloc(w->scale_bytes, bytes, n));
        memcpy(*bytes, w->scale, w->scale_bytes);
        return AOQ_OK;
      }
      if (strcmp(attr, "zero_point") == 0 && w->kind != AOQ_FMT_W158)
        return view_alloc((size_t)(w->n * ng), bytes, n);
      break;
    case AOQ_FMT_FP8_INT4:
      /* Int4Tensor (plain): qdata i8 [n, k/2] = (q[2i] & 0xF) | (q[2i+1] << 4), scale [k/g, n]
       * (fp32 as MSLK computes it). */
      if (strcmp(attr, "qdata") == 0) {
        AOQ_TRY(view_alloc(nk / 2, bytes, n));
        size_t rb = aoq_bitrow_bytes(w->k, 4);
        for (int64_t r = 0; r < w->n; r++)
          memcpy((uint8_t *)*bytes + r * (w->k / 2), (const uint8_t *)w->qdata + r * rb,
                 (size_t)(w->k / 2));
        return AOQ_OK;
      }
      if (strcmp(attr, "scale") == 0) {
        AOQ_TRY(view_alloc((size_t)(w->n * ng) * 4, bytes, n));
        float *o = *bytes;
        const float *s = w->scale;
        for (int64_t r = 0; r < w->n; r++)
          for (int64_t g = 0; g < ng; g++) o[g * w->n + r] = s[r * ng + g];
        return AOQ_OK;
      }
      break;
    case AOQ_FMT_CODEBOOK:
      /* codes u8 [n,k], codebook bf16 [2^b], scale bf16 [n, k/g] */
      if (strcmp(attr, "codes") == 0) {
        AOQ_TRY(view_alloc(nk, bytes, n));
        size_t rb = aoq_bitrow_bytes(w->k, w->bits);
        uint8_t *o = *bytes;
        for (int64_t r = 0; r < w->n; r++)
          for (int64_t i = 0; i < w->k; i++)
            o[r * w->k + i] = (uint8_t)aoq_bits_get((const uint8_t *)w->qdata + r * rb, i, w->bits);
        return AOQ_OK;
      }
      if (strcmp(attr, "codebook") == 0 || strcmp(attr, "scale") == 0) {
        bool cb = strcmp(attr, "codebook") == 0;
        size_t sz = cb ? w->aux_bytes : w->scale_bytes;
        AOQ_TRY(view_alloc(sz, bytes, n));
        memcpy(*bytes, cb ? w->aux : w->scale, sz);
        return AOQ_OK;
      }
      break;
    default:
      return aoq_err(AOQ_EINTERNAL, "torchao view: kind %d is not an integer format", (int)w->kind);
  }
  return aoq_err(AOQ_ENOTFOUND, "format has no torchao tensor '%s'", attr);
}
