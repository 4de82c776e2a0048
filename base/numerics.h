/*
 * numerics.h — scalar element conversions shared by core/, every backend and the GPU kernels.
 *
 * Header-only and dependency-free so that the GPU kernels (kernels/gpu) can include it too (AOQ_HD marks the
 * functions host+device there). All rounding is round-to-nearest-even unless a name says otherwise
 * (spec/formats.md "Conventions"). Formats add their element codecs here (e4m3, e5m2, e2m1, e8m0,
 * fp6), so that the CPU reference and the GPU kernels decode the same bytes the same way.
 */
#ifndef AOQ_BASE_NUMERICS_H
#define AOQ_BASE_NUMERICS_H

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

AOQ_HD float aoq_bf16_to_f32(uint16_t h) { return aoq_bits_f32((uint32_t)h << 16); }

/* Round an fp32 value to the nearest bf16 value, returned as fp32. */
AOQ_HD float aoq_round_bf16(float f) { return aoq_bf16_to_f32(aoq_f32_to_bf16(f)); }

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
  if ((b & 0x7fu) == 0x7fu) return aoq_bits_f32(0x7fc00000u | ((uint32_t)(b & 0x80u) << 24));
  float v = aoq_minifloat_decode_mag(b & 0x7fu, 3, 7);
  return (b & 0x80u) ? -v : v;
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
  if ((b & 0x7cu) == 0x7cu)
    return aoq_bits_f32(s | ((b & 3u) ? 0x7fc00000u : 0x7f800000u));
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
  float v = aoq_minifloat_decode_mag(c & 0x7u, 1, 1);
  return (c & 0x8u) ? -v : v;
}

/* FP6 E3M2 (bias 3, max 28) and E2M3 (bias 1, max 7.5), 6-bit codes with bit 5 = sign: RNE,
 * saturating, no NaN/Inf (NaN maps to ±max). */
AOQ_HD uint8_t aoq_f32_to_e3m2(float f) {
  uint32_t u = aoq_f32_bits(f), s = (u >> 26) & 0x20u;
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint8_t)(s | 0x1fu);
  return (uint8_t)(s | aoq_minifloat_encode_mag(aoq_bits_f32(u & 0x7fffffffu), 2, 3, 0x1fu));
}
AOQ_HD float aoq_e3m2_to_f32(uint8_t c) {
  float v = aoq_minifloat_decode_mag(c & 0x1fu, 2, 3);
  return (c & 0x20u) ? -v : v;
}
AOQ_HD uint8_t aoq_f32_to_e2m3(float f) {
  uint32_t u = aoq_f32_bits(f), s = (u >> 26) & 0x20u;
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint8_t)(s | 0x1fu);
  return (uint8_t)(s | aoq_minifloat_encode_mag(aoq_bits_f32(u & 0x7fffffffu), 3, 1, 0x1fu));
}
AOQ_HD float aoq_e2m3_to_f32(uint8_t c) {
  float v = aoq_minifloat_decode_mag(c & 0x1fu, 3, 1);
  return (c & 0x20u) ? -v : v;
}

/* E8M0 scale byte: 2^(b-127), b = 255 is NaN. */
AOQ_HD float aoq_e8m0_to_f32(uint8_t b) {
  if (b == 0xffu) return aoq_bits_f32(0x7fc00000u);
  return aoq_pow2f((int)b - 127);
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
AOQ_HD float aoq_fp8_scale(float amax, float maxv) { return aoq_round_bf16(amax / maxv); }

/* torchao int8 symmetric scale (§0, §2): bf16(amax / 127.5), clamped to fp32 eps, stored fp32. */
AOQ_HD float aoq_int8_scale(float amax) {
  float s = aoq_round_bf16(amax / 127.5f);
  return s < 1.1920929e-7f ? 1.1920929e-7f : s;
}

/* NVFP4 per-tensor scale (§7): fp32(amax / (448 * 6)). */
AOQ_HD float aoq_nvfp4_tensor_scale(float amax) { return amax / 2688.0f; }

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

#endif
