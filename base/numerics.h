/*
 * numerics.h — scalar element conversions shared by core/, every backend and the GPU kernels.
 *
 * Header-only and dependency-free so that the GPU kernels (kernels/gpu) can include it too (AOQ_HD
 * marks the functions host+device there). All rounding is round-to-nearest-even unless a name says
 * otherwise (spec/formats.md "Conventions"). Formats add their element codecs here (e4m3, e5m2,
 * e2m1, e8m0, fp6), so that the CPU reference and the GPU kernels decode the same bytes the same
 * way.
 */
#ifndef AOQ_BASE_NUMERICS_H
#define AOQ_BASE_NUMERICS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define AOQ_HD __host__ __device__ __forceinline__
#else
#define AOQ_HD static inline
#endif

AOQ_HD uint32_t aoq_f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

AOQ_HD float aoq_bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* fp32 -> bf16 bits, round to nearest even; NaN stays a quiet NaN. */
AOQ_HD uint16_t aoq_f32_to_bf16(float f) {
  uint32_t u = aoq_f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

AOQ_HD float aoq_bf16_to_f32(uint16_t h) {
  return aoq_bits_f32((uint32_t)h << 16);
}

/* Round an fp32 value to the nearest bf16 value, returned as fp32. */
AOQ_HD float aoq_round_bf16(float f) {
  return aoq_bf16_to_f32(aoq_f32_to_bf16(f));
}

/* IEEE half <-> fp32 (RNE). */
AOQ_HD float aoq_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1f) return aoq_bits_f32(sign | 0x7f800000u | (man << 13));
  if (exp == 0) {
    if (man == 0) return aoq_bits_f32(sign);
    float v = (float)man * (1.0f / 16777216.0f); /* man * 2^-24 */
    return sign ? -v : v;
  }
  return aoq_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

AOQ_HD uint16_t aoq_f32_to_f16(float f) {
  uint32_t u = aoq_f32_bits(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to inf */
  if (a < 0x38800000u) {                                   /* subnormal half or zero */
    float v = aoq_bits_f32(a) * 16777216.0f;               /* exact scaling by 2^24 */
    uint32_t m = (uint32_t)v;
    float rem = v - (float)m;
    if (rem > 0.5f || (rem == 0.5f && (m & 1u))) m++;
    return (uint16_t)(sign | m);
  }
  uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
  return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

/*
 * Minifloat element codecs (spec/formats.md §12). The generic pair works on magnitudes: a format
 * with `mbits` mantissa bits and exponent bias `bias` has subnormals below 2^(1-bias); encoding
 * rounds to nearest even and saturates to the largest finite code `maxcode` (torchao clamps to
 * ±max before every cast, so saturation is what it computes). Sign and special codes are handled
 * by the per-format wrappers below.
 */

/* 2^p as fp32 for -149 <= p <= 127 (exact, subnormal below -126). */
AOQ_HD float aoq_pow2f(int p) {
  if (p >= -126) return aoq_bits_f32((uint32_t)(p + 127) << 23);
  return aoq_bits_f32(1u << (p + 149));
}

/* Round a non-negative fp32 to the nearest integer, ties to even (valid below 2^23). */
AOQ_HD uint32_t aoq_rne_u32(float v) {
  uint32_t q = (uint32_t)v;
  float rem = v - (float)q;
  if (rem > 0.5f || (rem == 0.5f && (q & 1u))) q++;
  return q;
}

/* Magnitude code of a >= 0 (NaN excluded by the caller; +inf saturates). */
AOQ_HD uint32_t aoq_minifloat_encode_mag(float a, int mbits, int bias, uint32_t maxcode) {
  int emin = 1 - bias; /* exponent of the smallest normal */
  if (!(a < aoq_pow2f(emin))) {
    uint32_t u = aoq_f32_bits(a);
    int shift = 23 - mbits;
    if (u >= 0x7f800000u) return maxcode;
    u += (1u << (shift - 1)) - 1u + ((u >> shift) & 1u);
    int e = (int)(u >> 23) - 127;
    uint32_t code = ((uint32_t)(e + bias) << mbits) | ((u >> shift) & ((1u << mbits) - 1u));
    return code > maxcode ? maxcode : code;
  }
  /* subnormal range: a * 2^(mbits - emin) is exact and below 2^mbits; code 2^mbits = min normal */
  uint32_t q = aoq_rne_u32(a * aoq_pow2f(mbits - emin));
  return q > maxcode ? maxcode : q;
}

/* Value of magnitude code c (no special codes). */
AOQ_HD float aoq_minifloat_decode_mag(uint32_t c, int mbits, int bias) {
  uint32_t e = c >> mbits, m = c & ((1u << mbits) - 1u);
  if (e == 0) return (float)m * aoq_pow2f(1 - bias - mbits);
  return (1.0f + (float)m * aoq_pow2f(-mbits)) * aoq_pow2f((int)e - bias);
}

/* Same value as aoq_minifloat_decode_mag, branch-free (integer selects) so that decode loops
 * vectorize: normals get their exponent rebiased in the integer domain (no fp32-subnormal
 * intermediate, which would cost a microcode assist per element), subnormals are
 * m * 2^(1-bias-mbits). */
AOQ_HD float aoq_minifloat_decode_fast(uint32_t c, int mbits, int bias) {
  uint32_t nrm = (c << (23 - mbits)) + ((uint32_t)(127 - bias) << 23);
  uint32_t sub =
      aoq_f32_bits((float)(int32_t)(c & ((1u << mbits) - 1u)) * aoq_pow2f(1 - bias - mbits));
  uint32_t normal = 0u - (uint32_t)((c >> mbits) != 0); /* all ones for normal codes */
  return aoq_bits_f32((nrm & normal) | (sub & ~normal));
}

#define AOQ_E4M3_MAX 448.0f
#define AOQ_E5M2_MAX 57344.0f
#define AOQ_E4M3FNUZ_MAX 240.0f
#define AOQ_E2M1_MAX 6.0f
#define AOQ_E3M2_MAX 28.0f
#define AOQ_E2M3_MAX 7.5f

/* float8_e4m3fn: bias 7, no Inf, NaN = S.1111.111. Encode saturates to ±448; NaN -> 0x7f|sign. */
AOQ_HD uint8_t aoq_f32_to_e4m3(float f) {
  uint32_t u = aoq_f32_bits(f), s = (u >> 24) & 0x80u;
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint8_t)(s | 0x7fu);
  return (uint8_t)(s | aoq_minifloat_encode_mag(aoq_bits_f32(u & 0x7fffffffu), 3, 7, 0x7eu));
}
AOQ_HD float aoq_e4m3_to_f32(uint8_t b) {
  uint32_t m = b & 0x7fu;
  uint32_t v = aoq_f32_bits(aoq_minifloat_decode_fast(m, 3, 7));
  uint32_t nan = 0u - (uint32_t)(m == 0x7fu); /* S.1111.111 */
  v = (v & ~nan) | (0x7fc00000u & nan);
  return aoq_bits_f32(v | ((uint32_t)(b & 0x80u) << 24));
}

/* float8_e5m2: bias 15, Inf = S.11111.00, NaN = S.11111.{01,10,11}. Encode saturates to ±57344
 * (torchao clamps first), NaN -> 0x7f|sign. */
AOQ_HD uint8_t aoq_f32_to_e5m2(float f) {
  uint32_t u = aoq_f32_bits(f), s = (u >> 24) & 0x80u;
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint8_t)(s | 0x7fu);
  return (uint8_t)(s | aoq_minifloat_encode_mag(aoq_bits_f32(u & 0x7fffffffu), 2, 15, 0x7bu));
}
AOQ_HD float aoq_e5m2_to_f32(uint8_t b) {
  uint32_t s = (uint32_t)(b & 0x80u) << 24;
  if ((b & 0x7cu) == 0x7cu) return aoq_bits_f32(s | ((b & 3u) ? 0x7fc00000u : 0x7f800000u));
  float v = aoq_minifloat_decode_mag(b & 0x7fu, 2, 15);
  return s ? -v : v;
}

/* float8_e4m3fnuz (AMD): bias 8, no Inf, no -0, NaN = 0x80 only. Encode saturates to ±240; a
 * negative value that rounds to zero encodes as +0. */
AOQ_HD uint8_t aoq_f32_to_e4m3fnuz(float f) {
  uint32_t u = aoq_f32_bits(f), s = (u >> 24) & 0x80u;
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x80u;
  uint32_t m = aoq_minifloat_encode_mag(aoq_bits_f32(u & 0x7fffffffu), 3, 8, 0x7fu);
  return (uint8_t)(m ? (s | m) : 0u);
}
AOQ_HD float aoq_e4m3fnuz_to_f32(uint8_t b) {
  if (b == 0x80u) return aoq_bits_f32(0x7fc00000u);
  float v = aoq_minifloat_decode_mag(b & 0x7fu, 3, 8);
  return (b & 0x80u) ? -v : v;
}

/* FP4 E2M1 code (bit 3 = sign; magnitudes 0,.5,1,1.5,2,3,4,6): RNE, saturating to ±6, no NaN
 * encoding (NaN maps to ±6). */
AOQ_HD uint8_t aoq_f32_to_e2m1(float f) {
  uint32_t u = aoq_f32_bits(f), s = (u >> 28) & 0x8u;
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint8_t)(s | 0x7u);
  return (uint8_t)(s | aoq_minifloat_encode_mag(aoq_bits_f32(u & 0x7fffffffu), 1, 1, 0x7u));
}
AOQ_HD float aoq_e2m1_to_f32(uint8_t c) {
  float v = aoq_minifloat_decode_fast(c & 0x7u, 1, 1);
  return aoq_bits_f32(aoq_f32_bits(v) | ((uint32_t)(c & 0x8u) << 28));
}

/* FP6 E3M2 (bias 3, max 28) and E2M3 (bias 1, max 7.5), 6-bit codes with bit 5 = sign: RNE,
 * saturating, no NaN/Inf (NaN maps to ±max). */
AOQ_HD uint8_t aoq_f32_to_e3m2(float f) {
  uint32_t u = aoq_f32_bits(f), s = (u >> 26) & 0x20u;
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint8_t)(s | 0x1fu);
  return (uint8_t)(s | aoq_minifloat_encode_mag(aoq_bits_f32(u & 0x7fffffffu), 2, 3, 0x1fu));
}
AOQ_HD float aoq_e3m2_to_f32(uint8_t c) {
  float v = aoq_minifloat_decode_fast(c & 0x1fu, 2, 3);
  return aoq_bits_f32(aoq_f32_bits(v) | ((uint32_t)(c & 0x20u) << 26));
}
AOQ_HD uint8_t aoq_f32_to_e2m3(float f) {
  uint32_t u = aoq_f32_bits(f), s = (u >> 26) & 0x20u;
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint8_t)(s | 0x1fu);
  return (uint8_t)(s | aoq_minifloat_encode_mag(aoq_bits_f32(u & 0x7fffffffu), 3, 1, 0x1fu));
}
AOQ_HD float aoq_e2m3_to_f32(uint8_t c) {
  float v = aoq_minifloat_decode_fast(c & 0x1fu, 3, 1);
  return aoq_bits_f32(aoq_f32_bits(v) | ((uint32_t)(c & 0x20u) << 26));
}

/* E8M0 scale byte: 2^(b-127), b = 255 is NaN. */
AOQ_HD float aoq_e8m0_to_f32(uint8_t b) {
  if (b == 0xffu) return aoq_bits_f32(0x7fc00000u);
  return aoq_bits_f32(b ? (uint32_t)b << 23 : 0x00400000u);
}

/* E8M0 scale of an MX block by RCEIL (spec/formats.md §6): d = amax * fl32(1/max_pos); the byte
 * is d's biased exponent, plus one when any mantissa bit is set (round up to a power of two);
 * fp32-subnormal d gives 0 when d <= 2^-127 else 1; non-finite amax gives 255 (NaN). */
AOQ_HD uint8_t aoq_e8m0_rceil(float amax, float inv_max_pos) {
  uint32_t ua = aoq_f32_bits(amax) & 0x7fffffffu;
  if (ua >= 0x7f800000u) return 0xffu;
  float d = aoq_bits_f32(ua) * inv_max_pos;
  uint32_t u = aoq_f32_bits(d), e = u >> 23, m = u & 0x7fffffu;
  if (e == 0) return (uint8_t)(u <= 0x00400000u ? 0u : 1u);
  if (e >= 0xffu) return 0xfeu;
  e += (m != 0);
  return (uint8_t)(e > 0xfeu ? 0xfeu : e);
}

/*
 * Scale rules shared by the weight quantizers, the activation quantizers and every backend's
 * kernels (spec/formats.md §0, §2, §3, §6, §7), so all of them compute the same bytes.
 */

/* torchao fp8 scale (§0, §3): amax / max computed in bf16 (the weight's dtype), stored as fp32. */
AOQ_HD float aoq_fp8_scale(float amax, float maxv) {
  return aoq_round_bf16(amax / maxv);
}

/* torchao int8 symmetric scale (§0, §2): bf16(amax / 127.5), clamped to fp32 eps, stored fp32. */
AOQ_HD float aoq_int8_scale(float amax) {
  float s = aoq_round_bf16(amax / 127.5f);
  return s < 1.1920929e-7f ? 1.1920929e-7f : s;
}

/* NVFP4 per-tensor scale (§7): fp32(amax / (448 * 6)). */
AOQ_HD float aoq_nvfp4_tensor_scale(float amax) {
  return amax / 2688.0f;
}

/* NVFP4 block scale byte (§7): e4m3_RNE(clamp((amax_b / 6) / pts, 2^-6, 448)). */
AOQ_HD uint8_t aoq_nvfp4_block_scale(float amax_b, float pts) {
  float s = (amax_b / 6.0f) / pts;
  if (!(s >= 0.015625f)) s = 0.015625f; /* also catches NaN from pts = 0 */
  if (s > 448.0f) s = 448.0f;
  return aoq_f32_to_e4m3(s);
}

/* Offset of scale (r, c) of a [R, C] scale matrix in the swizzled cuBLAS block-scaling layout
 * (torchao to_blocked, §6), padded to R%128 = 0 and C%4 = 0. */
AOQ_HD int64_t aoq_scale_swizzle_offset(int64_t r, int64_t c, int64_t C) {
  int64_t cb = (C + 3) / 4;
  return ((r / 128) * cb + c / 4) * 512 + (r % 32) * 16 + ((r % 128) / 32) * 4 + c % 4;
}
/* Bytes of the swizzled layout of a [R, C] scale matrix. */
AOQ_HD int64_t aoq_scale_swizzle_size(int64_t R, int64_t C) {
  return ((R + 127) / 128) * 128 * ((C + 3) / 4) * 4;
}

/*
 * Row quantizers shared by the weight quantizers (core/quant_fp.c), the activation quantizers
 * (core/act_quant.c) and the backends' linear kernels: one row of k bf16 values at a time.
 */

/* max |x| over n bf16 values; NaN propagates. */
AOQ_HD float aoq_amax_bf16(const uint16_t *x, int64_t n) {
  uint32_t a = 0;
  for (int64_t i = 0; i < n; i++) {
    uint32_t v = x[i] & 0x7fffu;
    if (v > 0x7f80u) return aoq_bf16_to_f32((uint16_t)v);
    a = v > a ? v : a;
  }
  return aoq_bf16_to_f32((uint16_t)a);
}

/* MX (§6, RCEIL): q e4m3[k] (fp4: fp4x2[k/2], even index in the low nibble), scale e8m0[k/32]. */
AOQ_HD void aoq_mx_quant_row(const uint16_t *x, int64_t k, int fp4, uint8_t *q, uint8_t *scale) {
  const float inv = fp4 ? 1.0f / AOQ_E2M1_MAX : 1.0f / AOQ_E4M3_MAX;
  for (int64_t b = 0; b < k / 32; b++) {
    const uint16_t *xb = x + b * 32;
    uint8_t e = aoq_e8m0_rceil(aoq_amax_bf16(xb, 32), inv);
    scale[b] = e;
    /* exact reciprocal power of two; byte 255 makes the block NaN */
    float mul = e == 0xffu ? aoq_bits_f32(0x7fc00000u) : aoq_pow2f(127 - (int)e);
    if (fp4) {
      for (int i = 0; i < 32; i += 2) {
        uint8_t lo = aoq_f32_to_e2m1(aoq_bf16_to_f32(xb[i]) * mul);
        uint8_t hi = aoq_f32_to_e2m1(aoq_bf16_to_f32(xb[i + 1]) * mul);
        q[b * 16 + i / 2] = (uint8_t)(lo | (hi << 4));
      }
    } else {
      for (int i = 0; i < 32; i++) q[b * 32 + i] = aoq_f32_to_e4m3(aoq_bf16_to_f32(xb[i]) * mul);
    }
  }
}

/* NVFP4 (§7) with per-tensor scale pts: q fp4x2[k/2], scale e4m3[k/16];
 * elements x * ((1/pts) / s_b), clamped to ±6, RNE. */
AOQ_HD void aoq_nvfp4_quant_row(const uint16_t *x, int64_t k, float pts, uint8_t *q,
                                uint8_t *scale) {
  const float inv_pts = 1.0f / pts;
  for (int64_t b = 0; b < k / 16; b++) {
    const uint16_t *xb = x + b * 16;
    uint8_t sb = aoq_nvfp4_block_scale(aoq_amax_bf16(xb, 16), pts);
    scale[b] = sb;
    float mul = inv_pts / aoq_e4m3_to_f32(sb);
    for (int i = 0; i < 16; i += 2) {
      uint8_t lo = aoq_f32_to_e2m1(aoq_bf16_to_f32(xb[i]) * mul);
      uint8_t hi = aoq_f32_to_e2m1(aoq_bf16_to_f32(xb[i + 1]) * mul);
      q[b * 8 + i / 2] = (uint8_t)(lo | (hi << 4));
    }
  }
}

/* fp8 e4m3 with a given scale (§3): q = e4m3(x / scale), true division, saturating. */
AOQ_HD void aoq_fp8_quant_row(const uint16_t *x, int64_t k, float scale, uint8_t *q) {
  for (int64_t i = 0; i < k; i++) q[i] = aoq_f32_to_e4m3(aoq_bf16_to_f32(x[i]) / scale);
}

/* MSLK quantize_fp8_row (§3, fp8-int4 activations): amax floored at 1/512, scale = amax / 448
 * in fp32, q = e4m3(x / scale). Returns the scale. */
AOQ_HD float aoq_fp8_mslk_scale(float amax) {
  return (amax > 0.001953125f ? amax : 0.001953125f) / 448.0f;
}
AOQ_HD float aoq_fp8_quant_row_mslk(const uint16_t *x, int64_t k, uint8_t *q) {
  float s = aoq_fp8_mslk_scale(aoq_amax_bf16(x, k));
  aoq_fp8_quant_row(x, k, s, q);
  return s;
}

/* int8 symmetric per-token (§0, §2): scale = bf16(amax / 127.5) (fp32 eps floor),
 * q = clamp(RNE(x * fp32(1/scale)), -128, 127). Returns the scale. */
AOQ_HD int8_t aoq_int8_q(float x, float inv) { /* one element: clamp(RNE(x * inv)) */
  float v = x * inv, a = v < 0 ? -v : v;
  float r = (float)aoq_rne_u32(a > 200.0f ? 200.0f : a);
  r = v < 0 ? -r : r;
  return (int8_t)(r > 127.0f ? 127 : r < -128.0f ? -128 : (int)r);
}
AOQ_HD float aoq_int8_quant_row(const uint16_t *x, int64_t k, int8_t *q) {
  float s = aoq_int8_scale(aoq_amax_bf16(x, k)), inv = 1.0f / s;
  for (int64_t i = 0; i < k; i++) q[i] = aoq_int8_q(aoq_bf16_to_f32(x[i]), inv);
  return s;
}

/* int8 asymmetric per-token (§1 ASYMMETRIC, §5 activations): mn = min(x, 0), mx = max(x, 0),
 * scale = (mx - mn) / 255 computed in bf16 (the activation dtype; fp32 eps floor),
 * zp = clamp(-128 - RNE(mn / scale), -128, 127), q = clamp(RNE(x * (1/scale)) + zp, -128, 127).
 * Dequant (q - zp) * scale. */
/* The scale and zero point of a row whose min(x, 0) / max(x, 0) are mn / mx. */
AOQ_HD float aoq_int8_asym_params(float mn, float mx, int *zp) {
  float s = aoq_round_bf16(aoq_round_bf16(mx - mn) / 255.0f);
  if (!(s >= 1.1920929e-7f)) s = 1.1920929e-7f;
  float t = aoq_round_bf16(mn / s), at = t < 0 ? -t : t;
  float rt = (float)aoq_rne_u32(at > 1e6f ? 1e6f : at);
  int z = -128 - (int)(t < 0 ? -rt : rt);
  *zp = z < -128 ? -128 : z > 127 ? 127 : z;
  return s;
}
/* One element: clamp(RNE(bf16(x * inv)) + zp), inv = bf16(1 / scale). */
AOQ_HD int aoq_int8_asym_q(float x, float inv, int zp) {
  float v = aoq_round_bf16(x * inv), a = v < 0 ? -v : v;
  float r = (float)aoq_rne_u32(a > 1e6f ? 1e6f : a);
  int qi = (int)(v < 0 ? -r : r) + zp;
  return qi < -128 ? -128 : qi > 127 ? 127 : qi;
}
AOQ_HD void aoq_int8_asym_quant_row(const uint16_t *x, int64_t k, int8_t *q, float *scale,
                                    int32_t *zp) {
  float mn = 0.0f, mx = 0.0f;
  for (int64_t i = 0; i < k; i++) {
    float v = aoq_bf16_to_f32(x[i]);
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
  }
  int z;
  float s = aoq_int8_asym_params(mn, mx, &z);
  float inv = aoq_round_bf16(1.0f / s);
  for (int64_t i = 0; i < k; i++) q[i] = (int8_t)aoq_int8_asym_q(aoq_bf16_to_f32(x[i]), inv, z);
  *scale = s;
  *zp = z;
}

/* FP6 rows (docs/layouts.md "Float formats"): element i at bits [6i, 6i+6) LSB first, each row
 * padded to a multiple of 4 bytes. */
AOQ_HD size_t aoq_fp6_row_bytes(int64_t k) {
  return (size_t)(((k * 6 + 31) / 32) * 4);
}
AOQ_HD uint8_t aoq_fp6_get(const uint8_t *row, int64_t i) {
  int64_t bit = 6 * i;
  uint32_t v = row[bit >> 3];
  if ((bit & 7) > 2) v |= (uint32_t)row[(bit >> 3) + 1] << 8;
  return (uint8_t)((v >> (bit & 7)) & 0x3fu);
}

#endif
