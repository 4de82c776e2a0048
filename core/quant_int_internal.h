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

static inline float bf(float x) { return aoq_round_bf16(x); }
static inline float hf(float x) { return aoq_f16_to_f32(aoq_f32_to_f16(x)); }
static inline float bf16v(const uint16_t *p, int64_t i) { return aoq_bf16_to_f32(p[i]); }

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
static inline int64_t aoq_int4_pad_n(int64_t n) { return (n + 7) / 8 * 8; }
static inline int64_t aoq_int4_pad_k(int64_t k) { return (k + 1023) / 1024 * 1024; }

/* HQQ qparams + codes for INT4WO_HQQ (spec/formats.md §4), core/quant_int_hqq.c. */
aoq_status aoq_quant_int4_hqq(const uint16_t *w_bf16, aoq_qweight *w);
/* Scalar codebook (spec/formats.md §9, aoq's k-means), core/quant_int_codebook.c. */
aoq_status aoq_quant_codebook(const uint16_t *w_bf16, aoq_qweight *w);

#endif
