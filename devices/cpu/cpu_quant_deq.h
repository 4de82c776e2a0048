/*
 * cpu_quant_deq.h — per-format readers of aoq's packed weights (docs/layouts.md, device.h) for the
 * CPU quantized linear: chunk [c0, c0+len) of weight row r decoded to the fp32 operand that
 * torchao's GEMM multiplies for that format (see cpu_quant.c for the epilogues). Static inline so
 * that they are compiled into each SIMD clone of the kernel; loops are branch-free per element
 * (table look-ups per group, bit-trick decoders) so that the compiler vectorizes them.
 * c0 is a multiple of 128; len is 128 except for the last chunk of a row.
 */
#ifndef AOQ_DEVICES_CPU_QUANT_DEQ_H
#define AOQ_DEVICES_CPU_QUANT_DEQ_H

#include <string.h>

#include "base/numerics.h"
#include "devices/device.h"

static inline size_t aoq_cpu_bitrow(int64_t k, int bits) {
  return (size_t)(((k * bits + 31) / 32) * 4);
}

/* Element i (bits wide) of an LSB-first bit stream. */
static inline uint32_t aoq_cpu_bits_get(const uint8_t *row, int64_t i, int bits) {
  uint64_t bit = (uint64_t)i * (uint64_t)bits;
  unsigned sh = (unsigned)(bit & 7);
  uint32_t v = row[bit >> 3];
  if (sh + (unsigned)bits > 8) v |= (uint32_t)row[(bit >> 3) + 1] << 8;
  return (v >> sh) & ((1u << bits) - 1u);
}

/* Round fp32 to bf16 precision without the NaN branch (quiet NaNs stay NaN): vectorizes. */
static inline float aoq_cpu_rbf16(float f) {
  uint32_t u = aoq_f32_bits(f);
  return aoq_bits_f32((u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u);
}

/* The tables of a task, lut[512]: lut[0..255] the table the decode reads, lut[256..511] the
 * unscaled element values that aoq_cpu_quant_rowlut scales per row. fp4 kinds: the 16 E2M1
 * values; mxfp8: the 256 e4m3 values (measured: a gather per byte beats the arithmetic decode
 * there, not for fp8wo/fp8dq, whose arithmetic decode stays); fp6: the 64 element values. */
static inline void aoq_cpu_quant_lut(const aoq_qweight *w, float *lut) {
  switch (w->kind) {
    case AOQ_FMT_MXFP4:
    case AOQ_FMT_NVFP4:
    case AOQ_FMT_NVFP4WO:
      for (int b = 0; b < 16; b++) lut[b] = aoq_e2m1_to_f32((uint8_t)b);
      break;
    case AOQ_FMT_MXFP8:
      for (int b = 0; b < 256; b++) lut[b] = aoq_e4m3_to_f32((uint8_t)b);
      break;
    case AOQ_FMT_FP6_E3M2:
      for (int c = 0; c < 64; c++) lut[256 + c] = aoq_e3m2_to_f32((uint8_t)c);
      break;
    case AOQ_FMT_FP6_E2M3:
      for (int c = 0; c < 64; c++) lut[256 + c] = aoq_e2m3_to_f32((uint8_t)c);
      break;
    default:
      break;
  }
}

/* fp6's table for weight row r, once per row (4 vectors of work, not 64 scalar decodes per
 * 128-column chunk): every code's bf16(fp6 * s), so that the decode is one look-up per element.
 * Other kinds: nothing. */
static inline __attribute__((always_inline)) void aoq_cpu_quant_rowlut(const aoq_qweight *w,
                                                                       int64_t r, float *lut) {
  if (w->kind != AOQ_FMT_FP6_E3M2 && w->kind != AOQ_FMT_FP6_E2M3) return;
  const float s = aoq_bf16_to_f32(((const uint16_t *)w->scale)[r]);
  for (int c = 0; c < 64; c++) lut[c] = aoq_cpu_rbf16(lut[256 + c] * s);
}

static inline int aoq_cpu_sext(uint32_t v, int bits) {
  return (int)(v ^ (1u << (bits - 1))) - (1 << (bits - 1));
}

typedef float aoq_cpu_v16f __attribute__((vector_size(64)));
typedef int32_t aoq_cpu_v16i __attribute__((vector_size(64)));
typedef uint32_t aoq_cpu_v16u __attribute__((vector_size(64)));

/* n nibbles (n % 16 == 0; element 2i in the low nibble of p[i]) through a 16-entry table: one
 * variable shift and one table permute per 16 elements (vpsrlvd + vpermps on AVX-512). */
static inline __attribute__((always_inline)) void aoq_cpu_nib16(const uint8_t *p, const float *tab,
                                                                float *out, int64_t n) {
#if defined(__clang__) /* clang has no variable-index vector shuffle builtin */
  for (int64_t i = 0; i < n / 2; i++) out[2 * i] = tab[p[i] & 15u], out[2 * i + 1] = tab[p[i] >> 4];
#else
  aoq_cpu_v16f t;
  memcpy(&t, tab, 64);
  const aoq_cpu_v16u sh = {0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28};
  for (int64_t i = 0; i < n; i += 16) {
    uint32_t lo, hi;
    memcpy(&lo, p + i / 2, 4), memcpy(&hi, p + i / 2 + 4, 4);
    aoq_cpu_v16u src = {lo, lo, lo, lo, lo, lo, lo, lo, hi, hi, hi, hi, hi, hi, hi, hi};
    aoq_cpu_v16i idx = (aoq_cpu_v16i)((src >> sh) & 15u);
    aoq_cpu_v16f o = __builtin_shuffle(t, idx);
    memcpy(out + i, &o, 64);
  }
#endif
}

/* n 2-bit codes (n % 16 == 0; element 4i in bits 0-1 of p[i]) through a 4-entry table. */
static inline __attribute__((always_inline)) void aoq_cpu_crumb16(const uint8_t *p,
                                                                  const float *tab, float *out,
                                                                  int64_t n) {
#if defined(__clang__)
  for (int64_t i = 0; i < n; i++) out[i] = tab[(p[i / 4] >> (2 * (i & 3))) & 3u];
#else
  aoq_cpu_v16f t = {tab[0], tab[1], tab[2], tab[3]};
  const aoq_cpu_v16u sh = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
  for (int64_t i = 0; i < n; i += 16) {
    uint32_t u;
    memcpy(&u, p + i / 4, 4);
    aoq_cpu_v16u src = {u, u, u, u, u, u, u, u, u, u, u, u, u, u, u, u};
    aoq_cpu_v16f o = __builtin_shuffle(t, (aoq_cpu_v16i)((src >> sh) & 3u));
    memcpy(out + i, &o, 64);
  }
#endif
}

/* n 6-bit codes (16 codes = 12 bytes from p, LSB-first; the caller guarantees 16 readable bytes
 * per group of 16) through a 64-entry table: the three 32-bit words of a group are spread to the
 * lanes (one permute each for the word holding a code's low bits and the next word), shifted into
 * place, and looked up by two two-table permutes and a select (vpermd, vpsrlvd, vpermt2ps). */
static inline __attribute__((always_inline)) void aoq_cpu_fp6x16(const uint8_t *p, const float *tab,
                                                                 float *out, int64_t n) {
#if defined(__clang__)
  for (int64_t i = 0; i < n; i++) out[i] = tab[aoq_cpu_bits_get(p, i, 6)];
#else
  aoq_cpu_v16f t0, t1, t2, t3;
  memcpy(&t0, tab, 64), memcpy(&t1, tab + 16, 64), memcpy(&t2, tab + 32, 64),
      memcpy(&t3, tab + 48, 64);
  /* code e starts at bit 6e: word 6e / 32, shift 6e % 32 */
  const aoq_cpu_v16i wlo = {0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2};
  const aoq_cpu_v16i whi = {1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3};
  const aoq_cpu_v16u sh = {0, 6, 12, 18, 24, 30, 4, 10, 16, 22, 28, 2, 8, 14, 20, 26};
  for (int64_t i = 0; i < n; i += 16) {
    uint32_t w4[4];
    memcpy(w4, p + i / 16 * 12, 16);
    aoq_cpu_v16u wd = {w4[0], w4[1], w4[2], w4[3]}; /* built in registers: no store forward */
    aoq_cpu_v16u lo = __builtin_shuffle(wd, wlo), hi = __builtin_shuffle(wd, whi);
    /* hi << (32 - sh) without a 32-bit shift; its bits reach the code only where sh > 26 */
    aoq_cpu_v16u c = ((lo >> sh) | ((hi << 1u) << (31u - sh))) & 63u;
    aoq_cpu_v16i ci = (aoq_cpu_v16i)c;
    aoq_cpu_v16f a = __builtin_shuffle(t0, t1, ci), b = __builtin_shuffle(t2, t3, ci);
    aoq_cpu_v16i m = (aoq_cpu_v16i)(c & 32u) != 0, ab, bb;
    memcpy(&ab, &a, 64), memcpy(&bb, &b, 64);
    ab = (bb & m) | (ab & ~m);
    memcpy(out + i, &ab, 64);
  }
#endif
}

/* Group-wise decode through a table: tab[code] for each of the 2^bits codes of one group, then a
 * gather per element. `mk(code, group)` gives the value. Fast paths for 2/4/8-bit streams. */
#define AOQ_CPU_TABLE_DECODE(row, bits, g, c0, len, out, MK)                                     \
  do {                                                                                           \
    float tab_[256];                                                                             \
    for (int64_t c_ = (c0); c_ < (c0) + (len);) {                                                \
      int64_t gi_ = c_ / (g), e_ = (gi_ + 1) * (g);                                              \
      if (e_ > (c0) + (len)) e_ = (c0) + (len);                                                  \
      float *o_ = (out) + (c_ - (c0));                                                           \
      if ((int64_t)(1u << (bits)) > e_ - c_) { /* table longer than the segment: no table */     \
        for (int64_t j_ = 0; j_ < e_ - c_; j_++) {                                               \
          uint32_t q_ = (bits) == 8 ? (row)[c_ + j_] : aoq_cpu_bits_get((row), c_ + j_, (bits)); \
          o_[j_] = MK(q_, gi_);                                                                  \
        }                                                                                        \
        c_ = e_;                                                                                 \
        continue;                                                                                \
      }                                                                                          \
      for (uint32_t q_ = 0; q_ < (1u << (bits)); q_++) tab_[q_] = MK(q_, gi_);                   \
      if ((bits) == 4 && !(c_ & 15) && !((e_ - c_) & 15)) {                                      \
        aoq_cpu_nib16((row) + c_ / 2, tab_, o_, e_ - c_);                                        \
      } else if ((bits) == 2 && !(c_ & 15) && !((e_ - c_) & 15)) {                               \
        aoq_cpu_crumb16((row) + c_ / 4, tab_, o_, e_ - c_);                                      \
      } else if ((bits) == 4 && !(c_ & 1) && !((e_ - c_) & 1)) {                                 \
        const uint8_t *p_ = (row) + c_ / 2;                                                      \
        for (int64_t j_ = 0; j_ < (e_ - c_) / 2; j_++) {                                         \
          o_[2 * j_] = tab_[p_[j_] & 15u];                                                       \
          o_[2 * j_ + 1] = tab_[p_[j_] >> 4];                                                    \
        }                                                                                        \
      } else if ((bits) == 8) {                                                                  \
        const uint8_t *p_ = (row) + c_;                                                          \
        for (int64_t j_ = 0; j_ < e_ - c_; j_++) o_[j_] = tab_[p_[j_]];                          \
      } else {                                                                                   \
        for (int64_t j_ = 0; j_ < e_ - c_; j_++)                                                 \
          o_[j_] = tab_[aoq_cpu_bits_get((row), c_ + j_, (bits))];                               \
      }                                                                                          \
      c_ = e_;                                                                                   \
    }                                                                                            \
  } while (0)

/* lut: the row's element table from aoq_cpu_quant_lut (fp8 and fp4 kinds). */
static inline __attribute__((always_inline)) void aoq_cpu_quant_deq(const aoq_qweight *w, int64_t r,
                                                                    int64_t c0, int64_t len,
                                                                    const float *lut, float *out) {
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
      const float s = ((const float *)w->scale)[r];
      for (int64_t i = 0; i < len; i++) out[i] = aoq_cpu_rbf16(aoq_e4m3_to_f32(q[i]) * s);
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
      const uint8_t *q = qd + r * k + c0, *s = (const uint8_t *)w->scale + r * (k / 32) + c0 / 32;
      for (int64_t b = 0; b < len / 32; b++) {
        const float sc = aoq_e8m0_to_f32(s[b]);
        for (int i = 0; i < 32; i++) out[b * 32 + i] = lut[q[b * 32 + i]] * sc;
      }
      break;
    }
    case AOQ_FMT_MXFP4:
    case AOQ_FMT_NVFP4:
    case AOQ_FMT_NVFP4WO: {
      const int bs = w->kind == AOQ_FMT_MXFP4 ? 32 : 16;
      const uint8_t *q = qd + r * (k / 2) + c0 / 2,
                    *s = (const uint8_t *)w->scale + r * (k / bs) + c0 / bs;
      float pts = 1.0f;
      if (w->kind == AOQ_FMT_NVFP4WO) memcpy(&pts, w->aux, 4);
      for (int64_t b = 0; b < len / bs; b++) {
        const float sc = w->kind == AOQ_FMT_MXFP4 ? aoq_e8m0_to_f32(s[b]) : aoq_e4m3_to_f32(s[b]);
        float tab[16] __attribute__((aligned(64)));
        aoq_cpu_v16f t;
        memcpy(&t, lut, 64);
        t = t * sc; /* mx: exact; nvfp4: fp4 * s_b exact, pts after the GEMM */
        if (w->kind == AOQ_FMT_NVFP4WO) { /* weight-only: the bf16 dequant fp4 * s_b * pts (§7) */
          aoq_cpu_v16u u;
          t = t * pts;
          memcpy(&u, &t, 64);
          u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u; /* aoq_cpu_rbf16 per lane */
          memcpy(&t, &u, 64);
        }
        memcpy(tab, &t, 64);
        aoq_cpu_nib16(q + b * bs / 2, tab, out + b * bs, bs);
      }
      break;
    }
    case AOQ_FMT_FP6_E3M2:
    case AOQ_FMT_FP6_E2M3: {
      const uint8_t *q = qd + r * (int64_t)aoq_cpu_bitrow(k, 6);
      const float *tab = lut;          /* the row's bf16(fp6 * s) per code */
      int64_t i = (len - 8) / 16 * 16; /* groups of 16 whose 16-byte load stays in the row */
      if (i > 0) aoq_cpu_fp6x16(q + c0 / 4 * 3, tab, out, i);
      const uint8_t *p = q + (c0 + i) / 4 * 3; /* c0 % 16 == 0: 4 elements in 3 bytes */
      for (; i + 4 <= len; i += 4, p += 3) {
        uint32_t v = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16);
        out[i] = tab[v & 63u], out[i + 1] = tab[(v >> 6) & 63u];
        out[i + 2] = tab[(v >> 12) & 63u], out[i + 3] = tab[v >> 18];
      }
      for (; i < len; i++) out[i] = tab[aoq_fp6_get(q, c0 + i)];
      break;
    }
    case AOQ_FMT_INT4WO:
    case AOQ_FMT_INT4WO_HQQ: { /* tinygemm: bf16(bf16((q - 8) * s) + z) (§0, §4) */
      const uint8_t *q = qd + r * (k / 2);
      const uint16_t *sz = (const uint16_t *)w->scale + r * (k / g) * 2;
#define MK_INT4(qv, gi)                                                             \
  aoq_cpu_rbf16(aoq_cpu_rbf16((float)((int)(qv)-8) * aoq_bf16_to_f32(sz[(gi)*2])) + \
                aoq_bf16_to_f32(sz[(gi)*2 + 1]))
      AOQ_CPU_TABLE_DECODE(q, 4, g, c0, len, out, MK_INT4);
#undef MK_INT4
      break;
    }
    case AOQ_FMT_FP8_INT4: { /* MSLK symmetric int4, fp32 group scales (§4) */
      const uint8_t *q = qd + r * (int64_t)aoq_cpu_bitrow(k, 4);
      const float *s = (const float *)w->scale + r * (k / g);
#define MK_F8I4(qv, gi) ((float)aoq_cpu_sext((qv), 4) * s[gi])
      AOQ_CPU_TABLE_DECODE(q, 4, g, c0, len, out, MK_F8I4);
#undef MK_F8I4
      break;
    }
    case AOQ_FMT_INT8_INT4:
    case AOQ_FMT_INTXWO:
    case AOQ_FMT_INT8_INTX: { /* bf16(q * s) (§0 IntX) */
      const int bits = w->bits;
      const uint8_t *q = qd + r * (int64_t)aoq_cpu_bitrow(k, bits);
      const uint16_t *s = (const uint16_t *)w->scale + r * (k / g);
#define MK_INTX(qv, gi) aoq_cpu_rbf16((float)aoq_cpu_sext((qv), bits) * aoq_bf16_to_f32(s[gi]))
      AOQ_CPU_TABLE_DECODE(q, bits, g, c0, len, out, MK_INTX);
#undef MK_INTX
      break;
    }
    case AOQ_FMT_CODEBOOK: { /* bf16(codebook[code] * s) (§9) */
      const int bits = w->bits;
      const uint8_t *q = qd + r * (int64_t)aoq_cpu_bitrow(k, bits);
      const uint16_t *s = (const uint16_t *)w->scale + r * (k / g), *cb = w->aux;
#define MK_CB(qv, gi) aoq_cpu_rbf16(aoq_bf16_to_f32(cb[qv]) * aoq_bf16_to_f32(s[gi]))
      AOQ_CPU_TABLE_DECODE(q, bits, g, c0, len, out, MK_CB);
#undef MK_CB
      break;
    }
    case AOQ_FMT_W158: { /* ternary: code - 1 in {-1, 0, 1} times the per-tensor scale */
      const uint8_t *q = qd + r * (int64_t)aoq_cpu_bitrow(k, 2);
      const float s = aoq_bf16_to_f32(*(const uint16_t *)w->scale);
#define MK_W158(qv, gi) ((void)(gi), aoq_cpu_rbf16((float)((int)(qv)-1) * s))
      AOQ_CPU_TABLE_DECODE(q, 2, k, c0, len, out, MK_W158);
#undef MK_W158
      break;
    }
    default:
      break; /* unreachable: aoq_cpu_quant_check refused the kind */
  }
}

#endif
