/*
 * quant_int_internal.h — helpers shared by the integer-format reference files (core/quant_int*.c):
 * element rounding in bf16/fp16 steps, the LSB-first bit streams of docs/layouts.md, and the
 * per-algorithm entry points that quant_int.c dispatches to.
 */
#ifndef AOQ_CORE_QUANT_INT_INTERNAL_H
#define AOQ_CORE_QUANT_INT_INTERNAL_H

#include <math.h>
#include <stdint.h>

#include "base/numerics.h"
#include "core/format.h"

/* Input clamps (docs/formats.md "Non-finite and huge inputs"): the largest magnitudes for which
 * every scale, code and dequantized value of the format stays finite. Symmetric formats: q_min * s
 * reaches 2 * amax for int1. HQQ runs in fp16: (8 - zero) * s must stay below 65504. */
#define AOQ_SYM_LIM 0x1p126f
#define AOQ_HQQ_LIM 16384.0f

static inline float bf(float x) {
  return aoq_round_bf16(x);
}
/* Round to the nearest fp16 value (RNE), returned as fp32, without a trip through the 16-bit
 * encoding: normal range: drop 13 mantissa bits (RNE on the bits); subnormal range: round to a
 * multiple of 2^-24 by adding and removing 0.5 (whose ulp is 2^-24); overflow, Inf and NaN take
 * the full conversion. Identical to aoq_f16_to_f32(aoq_f32_to_f16(x)) for every float (checked
 * exhaustively). */
static inline float hf(float x) {
  uint32_t u = aoq_f32_bits(x), a = u & 0x7fffffffu;
  if (a < 0x477ff000u) {
    if (a >= 0x38800000u) {
      u += 0xfffu + ((u >> 13) & 1u);
      return aoq_bits_f32(u & ~0x1fffu);
    }
    return copysignf((fabsf(x) + 0.5f) - 0.5f, x);
  }
  return aoq_f16_to_f32(aoq_f32_to_f16(x));
}

/* The fp16 encoding (without sign) of |x| when x is already an fp16 value. */
static inline uint32_t hf_index(float x) {
  uint32_t a = aoq_f32_bits(x) & 0x7fffffffu;
  if (a >= 0x38800000u && a < 0x47800000u) return (a - 0x38000000u) >> 13;
  if (a < 0x38800000u) return (uint32_t)(aoq_bits_f32(a) * 16777216.0f);
  return aoq_f32_to_f16(x) & 0x7fffu;
}

static inline float bf16v(const uint16_t *p, int64_t i) {
  return aoq_bf16_to_f32(p[i]);
}

/* docs/formats.md "Non-finite and huge inputs": NaN quantizes as 0, everything else is clamped to
 * [-lim, lim] (identity for every finite bf16 input within the format's safe range). */
static inline float sanitize(float v, float lim) {
  if (v != v) return 0.0f;
  return v > lim ? lim : (v < -lim ? -lim : v);
}

/* Bytes of one row of a `bits`-wide bit stream of k elements, padded to 4 bytes. */
static inline size_t aoq_bitrow_bytes(int64_t k, int bits) {
  return (size_t)(((k * bits + 31) / 32) * 4);
}

/* Element i of an LSB-first bit stream (bits 1..8): bit j of element i is bit (i*bits + j). */
static inline void aoq_bits_put(uint8_t *row, int64_t i, int bits, uint32_t v) {
  uint64_t bit = (uint64_t)i * (uint64_t)bits;
  size_t b = (size_t)(bit >> 3);
  unsigned sh = (unsigned)(bit & 7);
  uint32_t m = ((1u << bits) - 1u) << sh;
  uint32_t w = row[b];
  if (sh + (unsigned)bits > 8) w |= (uint32_t)row[b + 1] << 8;
  w = (w & ~m) | ((v << sh) & m);
  row[b] = (uint8_t)w;
  if (sh + (unsigned)bits > 8) row[b + 1] = (uint8_t)(w >> 8);
}

static inline uint32_t aoq_bits_get(const uint8_t *row, int64_t i, int bits) {
  uint64_t bit = (uint64_t)i * (uint64_t)bits;
  unsigned sh = (unsigned)(bit & 7);
  uint32_t w = row[bit >> 3];
  if (sh + (unsigned)bits > 8) w |= (uint32_t)row[(bit >> 3) + 1] << 8;
  return (w >> sh) & ((1u << bits) - 1u);
}

/* Signed `bits`-wide two's-complement field -> int. */
static inline int aoq_sext(uint32_t v, int bits) {
  return (int)(v ^ (1u << (bits - 1))) - (1 << (bits - 1));
}

/* torchao's Int4TilePackedTo4dTensor pads the weight to these before quantizing. */
static inline int64_t aoq_int4_pad_n(int64_t n) {
  return (n + 7) / 8 * 8;
}
static inline int64_t aoq_int4_pad_k(int64_t k) {
  return (k + 1023) / 1024 * 1024;
}

/* Tinygemm qparams and codes of one group of g bf16 values x (core/quant_int.c): codes go to
 * elements e0.. of the uint4 row (even element low nibble), {scale, zero} to sz[0..1]. */
void aoq_int4_tinygemm_group(const uint16_t *x, int g, uint8_t *row, int64_t e0, uint16_t *sz);

/* HQQ qparams + codes for INT4WO_HQQ (spec/formats.md §4), core/quant_int_hqq.c. */
aoq_status aoq_quant_int4_hqq(const uint16_t *w_bf16, aoq_qweight *w);
/* Scalar codebook (spec/formats.md §9, aoq's k-means), core/quant_int_codebook.c. */
aoq_status aoq_quant_codebook(const uint16_t *w_bf16, aoq_qweight *w);

#endif
