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

#endif
