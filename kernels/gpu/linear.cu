/*
 * linear.cu — y[m,n] = x[m,k] @ W^T with W in its packed format (devices/device.h summary,
 * docs/layouts.md): GEMV (m <= 8, and up to 64 for the formats where it is faster), skinny
 * tensor-core GEMM (m = 9..64 for the 4-bit formats, 33..64 for the others; CUDA sm_90), tiled
 * GEMM (m > 64).
 *
 * FMA GEMV (HIP, and bf16/int8wo at m <= 2 on CUDA): each warp owns R weight rows; every lane
 * streams 16-byte chunks of its rows (ld.global.nc, no L1 allocation: each weight byte is read
 * once), dequantizes them in registers 8 elements at a time, and multiply-accumulates against the
 * M activation rows (read through L1/L2, shared by the R rows), fp32 accumulation, then a warp
 * reduction. The mma GEMV is described at its kernel, the skinny GEMM in linear_skinny.h. For
 * m > 64 without cuBLAS a tiled tensor-core GEMM (wmma, linear_gemm.h) dequantizes weight tiles
 * into shared memory. With aoq_gk_batch_invariant() the row paths stop depending on m.
 *
 * Dequantization numerics (spec/formats.md; torchao's weight-only formats are dequantize-then-mm):
 *   BF16     w = W
 *   INT8WO   y = rnd(rnd(x . q) * rnd(scale))         (post-scale in bf16, §2)
 *   FP8WO    w = rnd(e4m3(q) * scale)                  (dequantize to bf16, §3)
 *   INT4WO   w = rnd(rnd((q - 8) * s) + z)  bf16 steps (tinygemm, §4; HQQ uses the same form)
 */
#include <stdio.h>
#include <stdlib.h>

#include <type_traits>

#include "base/numerics.h"
#include "kernels/gpu/gpu_kernels.h"
#include "kernels/gpu/vendor.h"
#ifdef AOQ_HAVE_MMA_BF16
#include <cooperative_groups.h>
#endif

#define LIN_WARPS 4

typedef struct wargs {
  const uint8_t *q;
  const void *scale;
  const void *aux; /* device f32[1] per-tensor weight scale (NVFP4WO) */
  const float *xs; /* dynamic formats: per-row activation scales [m] (workspace) */
  const float *xt; /* dynamic formats: per-tensor value (fp8dq x scale, nvfp4 combined pts) */
  int64_t n, k, row_bytes;
  int group;
  int lg; /* int4: log2(group) where group is a power of two, else 0 */
  int pf; /* bit 1: mma GEMV weight loads with the L2 256-byte prefetch */
} wargs;

static __device__ __forceinline__ float bf_lo(uint32_t u) {
  return __uint_as_float(u << 16);
}
static __device__ __forceinline__ float bf_hi(uint32_t u) {
  return __uint_as_float(u & 0xffff0000u);
}

static __device__ __forceinline__ uint32_t word(const uint4 &r, int i) {
  return i == 0 ? r.x : i == 1 ? r.y : i == 2 ? r.z : r.w;
}

/* One LOP3 for a 3-input logic function where nvcc splits the C form into two (SASS, session 4):
 * LUT 0xEA = (a & b) | c, 0xF8 = a | (b & c). */
template <unsigned LUT>
static __device__ __forceinline__ uint32_t lop3(uint32_t a, uint32_t b, uint32_t c) {
  static_assert(LUT == 0xEA || LUT == 0xF8, "lop3: add the C form of this LUT");
#if defined(__CUDA_ARCH__) && !defined(__HIPCC__)
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, %4;" : "=r"(r) : "r"(a), "r"(b), "r"(c), "n"(LUT));
  return r;
#else
  return LUT == 0xEA ? (a & b) | c : a | (b & c);
#endif
}

/* --- decoders: EPL elements per 16-byte chunk; dec8 writes elements [8*sub, 8*sub + 8) --- */

struct DecBF16 {
  enum { EPL = 8, PWMAX = 0 };
  struct P {};
  static __device__ P prm(const wargs &, int64_t, int64_t) {
    return P();
  }
  static __device__ P prm0(const wargs &, int64_t) {
    return P();
  }
  static __device__ void dec8(const uint4 &r, int, const P &, float o[8]) {
#pragma unroll
    for (int i = 0; i < 4; i++) o[2 * i] = bf_lo(word(r, i)), o[2 * i + 1] = bf_hi(word(r, i));
  }
  enum { PAIR = 0 };
  static __device__ void dec8p(const uint4 &r, int, const P &, uint32_t o[4]) {
#pragma unroll
    for (int i = 0; i < 4; i++) o[i] = word(r, i);
  }
  static __device__ float epi(float acc, const wargs &, int64_t, int) {
    return acc;
  }
};

static __device__ __forceinline__ uint32_t pack_bf2(float lo, float hi) {
  aoq_bf162 v = __floats2bfloat162_rn(lo, hi);
  return *(uint32_t *)&v;
}

/* int8 -> float exactly: 0x4B000000 | (b ^ 0x80) is 2^23 + 128 + b */
static __device__ __forceinline__ void i8x4(uint32_t wd, float *o) {
  uint32_t u = wd ^ 0x80808080u;
#pragma unroll
  for (int j = 0; j < 4; j++)
    o[j] = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7540 + j)) - 8388736.0f;
}

struct DecI8 {
  enum { EPL = 16, PWMAX = 0 };
  struct P {};
  static __device__ P prm(const wargs &, int64_t, int64_t) {
    return P();
  }
  static __device__ P prm0(const wargs &, int64_t) {
    return P();
  }
  static __device__ void dec8(const uint4 &r, int sub, const P &, float o[8]) {
    i8x4(word(r, 2 * sub), o);
    i8x4(word(r, 2 * sub + 1), o + 4);
  }
  enum { PAIR = 0 };
  static __device__ void dec8p(const uint4 &r, int sub, const P &p, uint32_t o[4]) {
    float f[8];
    dec8(r, sub, p, f);
#pragma unroll
    for (int i = 0; i < 4; i++) o[i] = pack_bf2(f[2 * i], f[2 * i + 1]); /* exact: |q| <= 128 */
  }
  static __device__ float epi(float acc, const wargs &w, int64_t row, int) {
    float s = aoq_round_bf16(((const float *)w.scale)[row]);
    return aoq_round_bf16(acc) * s;
  }
};

/* e4m3fn -> float exactly: magnitude bits placed at the fp32 mantissa top, times 2^120 (handles
 * subnormals); 0x7f is the only NaN magnitude. */
static __device__ __forceinline__ float e4m3(uint32_t b) {
  float f = __uint_as_float((b & 0x7fu) << 20) * 0x1p120f;
  if ((b & 0x7fu) == 0x7fu) f = __uint_as_float(0x7fc00000u);
  return (b & 0x80u) ? -f : f;
}

struct DecFP8 {
  enum { EPL = 16, PWMAX = 0 };
  struct P {
    float s;
  };
  static __device__ P prm(const wargs &w, int64_t row, int64_t) {
    P p;
    p.s = ((const float *)w.scale)[row];
    return p;
  }
  static __device__ P prm0(const wargs &w, int64_t row) {
    return prm(w, row, 0);
  }
  static __device__ void dec8(const uint4 &r, int sub, const P &p, float o[8]) {
#pragma unroll
    for (int h = 0; h < 2; h++) {
      uint32_t wd = word(r, 2 * sub + h);
#pragma unroll
      for (int j = 0; j < 4; j++)
        o[4 * h + j] = aoq_round_bf16(e4m3((wd >> (8 * j)) & 0xffu) * p.s);
    }
  }
  enum { PAIR = 0 };
  static __device__ void dec8p(const uint4 &r, int sub, const P &p, uint32_t o[4]) {
#pragma unroll
    for (int h = 0; h < 2; h++) {
      uint32_t wd = word(r, 2 * sub + h);
      float2 a = aoq_e4m3x2_to_f32x2(wd), b = aoq_e4m3x2_to_f32x2(wd >> 16);
      o[2 * h] = pack_bf2(a.x * p.s, a.y * p.s); /* RNE to bf16: torchao's dequantize */
      o[2 * h + 1] = pack_bf2(b.x * p.s, b.y * p.s);
    }
  }
  static __device__ float epi(float acc, const wargs &, int64_t, int) {
    return acc;
  }
};

/* tinygemm int4: 8 nibbles of one word; pairs (j, j+4) go through bf16x2 math, which rounds each
 * step to bf16 as torch does: (128 + q) - 136 = q - 8 exactly, * s, + z. */
struct DecI4 {
  enum { EPL = 32, PWMAX = 4 };
  struct P {
    aoq_bf162 s, z;
  };
  static __device__ P of_word(uint32_t both) { /* {scale, zero} */
    P p;
    uint32_t ss = (both & 0xffffu) * 0x10001u, zz = (both >> 16) * 0x10001u;
    p.s = *(aoq_bf162 *)&ss;
    p.z = *(aoq_bf162 *)&zz;
    return p;
  }
  /* the group of chunk c: shifts where the group is a power of two (w.lg, set by aoq_gk_linear;
   * a division by the run-time group cost ~20 instructions per chunk and row in the GEMV) */
  static __device__ P prm(const wargs &w, int64_t row, int64_t c) {
    const int64_t gi =
        w.lg ? row * (w.k >> w.lg) + ((c * 32) >> w.lg) : row * (w.k / w.group) + c * 32 / w.group;
    return of_word(((const uint32_t *)w.scale)[gi]);
  }
  /* staged parameters (skinny GEMM): the {scale, zero} words of one row over a 128-k stage */
  static __device__ P prm0(const wargs &, int64_t) {
    return P();
  }
  static __device__ int pwords(const wargs &w) { /* groups are powers of two here */
    return w.lg < 7 ? 128 >> w.lg : 1;
  }
  static __device__ int64_t pword0(const wargs &w, int64_t row, int64_t k0) {
    return row * (w.k >> w.lg) + (k0 >> w.lg);
  }
  static __device__ P prms(const P &, const uint32_t *pw, int c, const wargs &w, int64_t, int64_t) {
    return of_word(pw[w.lg < 7 ? (c * 32) >> w.lg : 0]);
  }
  static __device__ void dec8(const uint4 &r, int sub, const P &p, float o[8]) {
    uint32_t wd = word(r, sub);
    const uint32_t c136 = 0x43084308u; /* bf16 136.0 twice */
    aoq_bf162 k136 = *(const aoq_bf162 *)&c136;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      uint32_t v = ((wd >> (4 * j)) & 0x000f000fu) | 0x43004300u;
      aoq_bf162 q = __hsub2_rn(*(aoq_bf162 *)&v, k136);
      aoq_bf162 d = __hadd2_rn(__hmul2_rn(q, p.s), p.z); /* _rn: no contraction into fma */
      uint32_t u = *(uint32_t *)&d;
      o[j] = bf_lo(u);
      o[j + 4] = bf_hi(u);
    }
  }
  enum { PAIR = 1 }; /* pair j holds elements (j, j + 4) */
  static __device__ void dec8p(const uint4 &r, int sub, const P &p, uint32_t o[4]) {
    uint32_t wd = word(r, sub);
    const uint32_t c136 = 0x43084308u;
    aoq_bf162 k136 = *(const aoq_bf162 *)&c136;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      uint32_t v = lop3<0xEA>(wd >> (4 * j), 0x000f000fu, 0x43004300u);
      aoq_bf162 d = __hadd2_rn(__hmul2_rn(__hsub2_rn(*(aoq_bf162 *)&v, k136), p.s), p.z);
      o[j] = *(uint32_t *)&d;
    }
  }
  static __device__ float epi(float acc, const wargs &, int64_t, int) {
    return acc;
  }
};

/* int4 with groups of 128 k or more (a power of two), in the mma GEMV and the skinny GEMM up to
 * m = 16 (i4_folds, linear_gemv.h): the tensor core sums the raw magic-number bf16 values 128 + q
 * of a group, and the group's scale and zero are applied once to that fp32 sum: (q - 8) s + z
 * summed over the group is s * sum((128 + q) x) + (z - 136 s) * sum(x), the second sum from an mma
 * with A = 1. One LOP3 per pair instead of LOP3 + HSUB2 + HMUL2 + HADD2; the weight is no longer
 * rounded to bf16 per element (tinygemm's dequantization steps), so the result is the exact sum of
 * the unrounded weights up to fp32 reassociation (test_cuda_linear holds it to that reference)
 * and differs from dequantize-then-matmul by those roundings. A quad of lanes (c = 0..3) covers 4
 * consecutive 32-k chunks = 128 k of one group, which is why the group must be >= 128. */
struct DecI4F : DecI4 {
  struct P { /* {scale, zero} as {s, z - 136 s} */
    float s, c;
  };
  static __device__ P of_wordf(uint32_t both) {
    P f;
    f.s = bf_lo(both);
    f.c = fmaf(-136.0f, f.s, bf_hi(both));
    return f;
  }
  /* DecI4's parameter words (groups of >= 128: the shift form, one staged word per half) */
  static __device__ P prm(const wargs &w, int64_t row, int64_t c) {
    return of_wordf(((const uint32_t *)w.scale)[pword0(w, row, c * 32)]);
  }
  static __device__ P prm0(const wargs &, int64_t) {
    return P();
  }
  static __device__ P prms(const P &, const uint32_t *pw, int, const wargs &, int64_t, int64_t) {
    return of_wordf(pw[0]);
  }
  static __device__ void raw8p(const uint4 &r, int sub, uint32_t o[4]) {
    const uint32_t wd = word(r, sub);
#pragma unroll
    for (int j = 0; j < 4; j++) o[j] = lop3<0xEA>(wd >> (4 * j), 0x000f000fu, 0x43004300u);
  }
};
template <class D>
struct i4fold {
  enum { v = 0 };
};
template <>
struct i4fold<DecI4F> {
  enum { v = 1 };
};

/* raw e4m3 (fp8dq, fp8dq-row): scaled_mm applies the scales to the fp32 sums (§3) */
struct DecF8Raw {
  enum { EPL = 16, PAIR = 0, PWMAX = 0 };
  struct P {};
  static __device__ P prm(const wargs &, int64_t, int64_t) {
    return P();
  }
  static __device__ P prm0(const wargs &, int64_t) {
    return P();
  }
  static __device__ void dec8(const uint4 &r, int sub, const P &, float o[8]) {
#pragma unroll
    for (int h = 0; h < 2; h++) {
      uint32_t wd = word(r, 2 * sub + h);
      float2 a = aoq_e4m3x2_to_f32x2(wd), b = aoq_e4m3x2_to_f32x2(wd >> 16);
      o[4 * h] = a.x, o[4 * h + 1] = a.y, o[4 * h + 2] = b.x, o[4 * h + 3] = b.y;
    }
  }
  static __device__ void dec8p(const uint4 &r, int sub, const P &p, uint32_t o[4]) {
    float f[8];
    dec8(r, sub, p, f);
#pragma unroll
    for (int i = 0; i < 4; i++) o[i] = pack_bf2(f[2 * i], f[2 * i + 1]); /* exact */
  }
};
struct DecF8Row : DecF8Raw {
  static __device__ float epi(float acc, const wargs &w, int64_t row, int col) {
    return acc * w.xs[col] * ((const float *)w.scale)[row];
  }
};
struct DecF8Tensor : DecF8Raw {
  static __device__ float epi(float acc, const wargs &w, int64_t, int) {
    return acc * (w.xt[0] * ((const float *)w.scale)[0]);
  }
};

/* MXFP8: e4m3 * 2^(e-127), exact; a 16-element chunk lies in one 32-block (§6) */
struct DecMX8 {
  enum { EPL = 16, PAIR = 0, PWMAX = 1 };
  struct P {
    float s;
  };
  static __device__ P prm(const wargs &w, int64_t row, int64_t c) {
    P p;
    p.s = aoq_e8m0_to_f32(((const uint8_t *)w.scale)[row * (w.k / 32) + c / 2]);
    return p;
  }
  /* staged: the aligned word holding the row's two e8m0 bytes of a 64-k stage (k % 64 == 0, so
   * they sit at byte 0 or 2 of the word) */
  static __device__ P prm0(const wargs &, int64_t) {
    return P();
  }
  static __device__ int pwords(const wargs &) {
    return 1;
  }
  static __device__ int64_t pword0(const wargs &w, int64_t row, int64_t k0) {
    return (row * (w.k / 32) + k0 / 32) >> 2;
  }
  static __device__ P prms(const P &, const uint32_t *pw, int c, const wargs &w, int64_t row,
                           int64_t k0) {
    const int b = (int)((row * (w.k / 32) + k0 / 32) & 3);
    P p;
    p.s = aoq_e8m0_to_f32((uint8_t)(pw[0] >> (8 * (b + c / 2))));
    return p;
  }
  static __device__ void dec8(const uint4 &r, int sub, const P &p, float o[8]) {
    DecF8Raw::dec8(r, sub, DecF8Raw::P(), o);
#pragma unroll
    for (int i = 0; i < 8; i++) o[i] *= p.s;
  }
  static __device__ void dec8p(const uint4 &r, int sub, const P &p, uint32_t o[4]) {
    float f[8];
    dec8(r, sub, p, f);
#pragma unroll
    for (int i = 0; i < 4; i++) o[i] = pack_bf2(f[2 * i], f[2 * i + 1]);
  }
  static __device__ float epi(float acc, const wargs &, int64_t, int) {
    return acc;
  }
};

/* e2m1 nibble -> float: the code's exponent/mantissa bits placed at the top of an fp32 exponent
 * field are 2^-126 times the value (fp32 subnormal for code 1), so one multiply by 2^126 decodes */
static __device__ __forceinline__ float e2m1(uint32_t c) {
  float f = __uint_as_float(((c & 7u) << 22) | ((c & 8u) << 28));
  return f * 0x1p126f;
}

/* FP4 (MXFP4: e8m0 per 32; NVFP4: e4m3 per 16; NVFP4WO: also * pts and rounded to bf16) */
template <int KIND>
struct DecFP4 {
  enum { EPL = 32 };
  struct P {
    float s0, s1, pts;
  };
  static __device__ P prm(const wargs &w, int64_t row, int64_t c) {
    P p;
    const uint8_t *sc = (const uint8_t *)w.scale;
    if (KIND == AOQ_FMT_MXFP4) {
      p.s0 = p.s1 = aoq_e8m0_to_f32(sc[row * (w.k / 32) + c]);
    } else {
      p.s0 = aoq_e4m3_to_f32(sc[row * (w.k / 16) + 2 * c]);
      p.s1 = aoq_e4m3_to_f32(sc[row * (w.k / 16) + 2 * c + 1]);
    }
    p.pts = KIND == AOQ_FMT_NVFP4WO ? *(const float *)w.aux : 1.0f;
    return p;
  }
  /* staged (skinny GEMM): a 128-k stage has 4 e8m0 (1 word) or 8 e4m3 block scales (2 words) per
   * row, word-aligned when k % 128 == 0; the per-tensor scale is loaded once (prm0) */
  enum { PWMAX = KIND == AOQ_FMT_MXFP4 ? 1 : 2 };
  static __device__ P prm0(const wargs &w, int64_t) {
    P p;
    p.s0 = p.s1 = 0;
    p.pts = KIND == AOQ_FMT_NVFP4WO ? *(const float *)w.aux : 1.0f;
    return p;
  }
  static __device__ int pwords(const wargs &) {
    return PWMAX;
  }
  static __device__ int64_t pword0(const wargs &w, int64_t row, int64_t k0) {
    return KIND == AOQ_FMT_MXFP4 ? (row * (w.k / 32) + k0 / 32) >> 2
                                 : (row * (w.k / 16) + k0 / 16) >> 2;
  }
  static __device__ P prms(const P &p0, const uint32_t *pw, int c, const wargs &, int64_t,
                           int64_t) {
    P p = p0;
    if (KIND == AOQ_FMT_MXFP4) {
      p.s0 = p.s1 = aoq_e8m0_to_f32((uint8_t)(pw[0] >> (8 * c)));
    } else {
      uint32_t two = pw[c >> 1] >> (16 * (c & 1));
      p.s0 = aoq_e4m3_to_f32((uint8_t)two);
      p.s1 = aoq_e4m3_to_f32((uint8_t)(two >> 8));
    }
    return p;
  }
  static __device__ void dec8(const uint4 &r, int sub, const P &p, float o[8]) {
    uint32_t wd = word(r, sub);
    float s = sub < 2 ? p.s0 : p.s1;
#pragma unroll
    for (int j = 0; j < 8; j++) {
      float v = e2m1(wd >> (4 * j)) * s;
      o[j] = KIND == AOQ_FMT_NVFP4WO ? aoq_round_bf16(v * p.pts) : v;
    }
  }
  /* pairs (j, j + 4) straight into bf16x2: the 3 magnitude bits under the bf16 exponent field
   * (x 2^126 gives the value, code 1 being the bf16 subnormal 2^-127), the sign bit on top, then
   * the block scale: every product is exact in bf16, except NVFP4WO's * pts, done in fp32 and
   * rounded once as the reference does */
  enum { PAIR = 1 };
  static __device__ void dec8p(const uint4 &r, int sub, const P &p, uint32_t o[4]) {
    const uint32_t wd = word(r, sub), c126 = 0x7e807e80u;
    const aoq_bf162 k126 = *(const aoq_bf162 *)&c126;
    const float s = sub < 2 ? p.s0 : p.s1;
    const aoq_bf162 s2 = __floats2bfloat162_rn(s, s); /* exact: e8m0 / e4m3 values */
#pragma unroll
    for (int j = 0; j < 4; j++) {
      /* nibble j's magnitude to bits 6..8 and its sign to bit 15 (of both halves): 2 shifts and
       * 2 LOP3 (the same bits as ((t << 6) & M) | ((t << 12) & S) with t = wd >> 4j) */
      const uint32_t mg = j < 2 ? wd << (6 - 4 * j) : wd >> (4 * j - 6);
      uint32_t v = lop3<0xF8>(mg & 0x01c001c0u, wd << (12 - 4 * j), 0x80008000u);
      aoq_bf162 d = __hmul2_rn(__hmul2_rn(*(aoq_bf162 *)&v, k126), s2);
      uint32_t u = *(uint32_t *)&d;
      if (KIND == AOQ_FMT_NVFP4WO) u = pack_bf2(bf_lo(u) * p.pts, bf_hi(u) * p.pts);
      o[j] = u;
    }
  }
  static __device__ float epi(float acc, const wargs &w, int64_t, int) {
    return KIND == AOQ_FMT_NVFP4 ? aoq_round_bf16(acc) * w.xt[0] : acc;
  }
};

/* Calls f(D{}) with the decoder type of a format (int4wo and HQQ: DecI4), so that each kernel
 * family dispatches on the format in one place. */
template <class F>
static int with_decoder(aoq_format_kind kind, F &&f) {
  switch (kind) {
    case AOQ_FMT_BF16:
      return f(DecBF16{});
    case AOQ_FMT_INT8WO:
      return f(DecI8{});
    case AOQ_FMT_FP8WO:
      return f(DecFP8{});
    case AOQ_FMT_FP8DQ:
      return f(DecF8Tensor{});
    case AOQ_FMT_FP8DQ_ROW:
      return f(DecF8Row{});
    case AOQ_FMT_MXFP8:
      return f(DecMX8{});
    case AOQ_FMT_MXFP4:
      return f(DecFP4<AOQ_FMT_MXFP4>{});
    case AOQ_FMT_NVFP4:
      return f(DecFP4<AOQ_FMT_NVFP4>{});
    case AOQ_FMT_NVFP4WO:
      return f(DecFP4<AOQ_FMT_NVFP4WO>{});
    default:
      return f(DecI4{});
  }
}

#include "kernels/gpu/linear_gemv.h"
#ifdef AOQ_HAVE_MMA_BF16
#include "kernels/gpu/linear_dec.h"
#include "kernels/gpu/linear_skinny.h"
#endif

#include "kernels/gpu/linear_gemm.h"

extern "C" uint64_t aoq_gk_linear_formats(void) {
  return (1ull << AOQ_FMT_BF16) | (1ull << AOQ_FMT_INT8WO) | (1ull << AOQ_FMT_FP8WO) |
         (1ull << AOQ_FMT_INT4WO) | (1ull << AOQ_FMT_INT4WO_HQQ) | (1ull << AOQ_FMT_FP8DQ) |
         (1ull << AOQ_FMT_FP8DQ_ROW) | (1ull << AOQ_FMT_MXFP8) | (1ull << AOQ_FMT_MXFP4) |
         (1ull << AOQ_FMT_NVFP4) |
         (1ull << AOQ_FMT_NVFP4WO)
#ifdef AOQ_HAVE_MMA_BF16
         /* linear_dec.h */
         | (1ull << AOQ_FMT_INT8DQ) | (1ull << AOQ_FMT_FP8DQ_BLOCK) | (1ull << AOQ_FMT_INTXWO) |
         (1ull << AOQ_FMT_INT8_INTX) | (1ull << AOQ_FMT_INT8_INT4) | (1ull << AOQ_FMT_FP8_INT4) |
         (1ull << AOQ_FMT_W158) | (1ull << AOQ_FMT_FP6_E3M2) | (1ull << AOQ_FMT_FP6_E2M3) |
         (1ull << AOQ_FMT_CODEBOOK)
#endif
      ;
}

static bool is_dynamic(aoq_format_kind k) {
  return k == AOQ_FMT_FP8DQ || k == AOQ_FMT_FP8DQ_ROW || k == AOQ_FMT_MXFP8 || k == AOQ_FMT_MXFP4 ||
         k == AOQ_FMT_NVFP4 || k == AOQ_FMT_INT8DQ || k == AOQ_FMT_FP8DQ_BLOCK ||
         k == AOQ_FMT_INT8_INTX || k == AOQ_FMT_INT8_INT4 || k == AOQ_FMT_FP8_INT4;
}

static int epl_of(aoq_format_kind k) {
  switch (k) {
    case AOQ_FMT_BF16:
      return 8;
    case AOQ_FMT_INT8WO:
    case AOQ_FMT_FP8WO:
    case AOQ_FMT_FP8DQ:
    case AOQ_FMT_FP8DQ_ROW:
    case AOQ_FMT_MXFP8:
      return 16;
    case AOQ_FMT_INT4WO:
    case AOQ_FMT_INT4WO_HQQ:
    case AOQ_FMT_MXFP4:
    case AOQ_FMT_NVFP4:
    case AOQ_FMT_NVFP4WO:
      return 32;
    default:
      return 0;
  }
}

extern "C" const char *aoq_gk_linear_check(const aoq_qweight *w) {
#ifdef AOQ_HAVE_MMA_BF16
  if (dec_format(w->kind)) return dec_check(w);
#endif
  int epl = epl_of(w->kind);
  if (!epl) return "no GPU kernel for this format";
  if (w->n <= 0 || w->k <= 0) return "empty weight";
  if (w->k % epl) return "k is not a multiple of the kernel's 16-byte chunk";
  if (!w->qdata || ((uintptr_t)w->qdata & 15)) return "qdata NULL or not 16-byte aligned";
  if (w->kind != AOQ_FMT_BF16 && !w->scale) return "scale NULL";
  if (w->kind == AOQ_FMT_INT4WO || w->kind == AOQ_FMT_INT4WO_HQQ) {
    if (w->group < 32 || w->group % 32 || w->k % w->group)
      return "int4 group must be 32*j and divide k";
    if ((uintptr_t)w->scale & 3) return "int4 scale not 4-byte aligned";
  }
  if ((w->kind == AOQ_FMT_NVFP4 || w->kind == AOQ_FMT_NVFP4WO) && !w->aux)
    return "nvfp4 per-tensor scale (aux) NULL";
  return 0;
}

#ifdef AOQ_HAVE_SKINNY
/* The skinny GEMM's k splits for this weight (>= 1), or 0 where it cannot take it (k not a whole
 * number of halves, int4 groups that straddle a half). The plan depends on the shape only (no
 * workspace: the splits meet in a cluster). */
static int sk_plan(const aoq_qweight *w) {
  const int64_t kh = 4 * (int64_t)epl_of(w->kind);
  if (!kh || w->k % kh) return 0;
  if ((w->kind == AOQ_FMT_INT4WO || w->kind == AOQ_FMT_INT4WO_HQQ) && (w->group & (w->group - 1)))
    return 0;
  const int64_t blocks = (w->n + SK_W * 32 - 1) / (SK_W * 32), nh = w->k / kh;
  int64_t s = SK_SMS * SK_BPS / blocks; /* as many splits as fill the SMs' block slots once */
  if (s > nh / 4) s = nh / 4;           /* ... with at least 4 halves each */
  if (s > SK_MAX_SPLIT) s = SK_MAX_SPLIT;
  return s < 1 ? 1 : (int)s;
}

static int skinny_fmt(aoq_format_kind kind, const wargs &a, const uint16_t *x, uint16_t *y, int m,
                      int ns, aoq_gpu_stream_t st) {
  return with_decoder(kind, [&](auto d) { return launch_skinny<decltype(d)>(a, x, y, m, ns, st); });
}
#endif

extern "C" int aoq_gk_dec_dequant_rows(const aoq_qweight *w, int64_t r0, int64_t rows,
                                       uint16_t *out, void *stream) {
#ifdef AOQ_HAVE_MMA_BF16
  return dec_dequant_rows(w, r0, rows, out, (aoq_gpu_stream_t)stream);
#else
  (void)w, (void)r0, (void)rows, (void)out, (void)stream;
  return (int)cudaErrorInvalidValue;
#endif
}

extern "C" size_t aoq_gk_linear_workspace(const aoq_qweight *w, int64_t m) {
  if (!is_dynamic(w->kind) || m <= 0) return 0;
  size_t off;
  return aoq_gk_act_layout(m, w->k, &off);
}

/* log2 of an int4 weight's group where it is a power of two (wargs.lg), else 0 */
static int int4_lg(const aoq_qweight *w) {
  int lg = 0;
  if ((w->kind == AOQ_FMT_INT4WO || w->kind == AOQ_FMT_INT4WO_HQQ) && !(w->group & (w->group - 1)))
    while ((1 << lg) < w->group) lg++;
  return lg;
}

/* The kernel arguments that depend on the weight alone (the plans of linear_tma.h read them). */
static wargs weight_args(const aoq_qweight *w) {
  wargs a;
  a.q = (const uint8_t *)w->qdata;
  a.scale = w->scale;
  a.aux = w->aux;
  a.xs = a.xt = 0;
  /* int4 groups that are powers of two: shifts instead of divisions in the parameter addressing */
  a.n = w->n, a.k = w->k, a.group = w->group, a.lg = int4_lg(w), a.pf = 0;
  a.row_bytes = w->k * 16 / epl_of(w->kind);
  return a;
}

/* The kernel arguments of w; dynamic formats quantize x into ws first (*x then points there). */
static int prep_args(const aoq_qweight *w, const uint16_t **x, int64_t m, void *ws, void *stream,
                     wargs *out) {
  wargs a = weight_args(w);
  if (is_dynamic(w->kind)) {
    if (!ws) return (int)cudaErrorInvalidValue;
    /* the wide kernels of dequant.cu write act_quant.cu's bytes with 16-byte accesses */
    int rc = w->k % 32 == 0 && ((uintptr_t)*x & 15) == 0
                 ? aoq_gk_act_quant_rows(w, *x, m, ws, stream)
                 : aoq_gk_act_quant(w, *x, m, ws, stream);
    if (rc) return rc;
    size_t off;
    aoq_gk_act_layout(m, w->k, &off);
    *x = (const uint16_t *)ws;
    a.xs = (const float *)((const char *)ws + off);
    a.xt = a.xs + m;
  }
  *out = a;
  return 0;
}

/* Whether aoq_gk_linear of m rows sums the unrounded int4 weights (DecI4F) instead of
 * dequantize-then-matmul's bf16 ones: for the tests, which hold each path to its reference. At
 * m <= 16 both of its paths fold (the GEMV, the skinny GEMM), so i4_folds decides. */
extern "C" int aoq_gk_linear_folded(const aoq_qweight *w, int64_t m) {
#ifdef AOQ_HAVE_MMA_BF16
  if (dec_format(w->kind) || aoq_gk_linear_check(w) || m < 1) return 0;
  wargs a = {};
  a.lg = int4_lg(w); /* 0 for every other format */
  return i4_folds(a, m);
#else
  (void)w, (void)m;
  return 0;
#endif
}

extern "C" int aoq_gk_set_gemv_tma(int mode) {
#ifdef AOQ_HAVE_MMA_BF16
  const int old = tma_mode();
  if (mode >= 0 && mode <= 3) g_tma_mode = mode;
  return old;
#else
  (void)mode;
  return 0;
#endif
}

/* Whether aoq_gk_linear of m rows runs the bulk-copy GEMV (linear_tma.h): for the tests, which
 * count the calls that exercised it. */
extern "C" int aoq_gk_linear_tma(const aoq_qweight *w, int64_t m) {
#ifdef AOQ_HAVE_MMA_BF16
  if (dec_format(w->kind) || aoq_gk_linear_check(w) || m < 1 || m > 8) return 0;
  const wargs a = weight_args(w);
  return with_decoder(w->kind, [&](auto d) {
    typedef decltype(d) D;
    targs tp;
    if (std::is_same<D, DecI4>::value && i4_folds(a, m))
      return (int)tma_plan<DecI4F>(a, (int)m, false, &tp);
    return (int)tma_plan<D>(a, (int)m, false, &tp);
  });
#else
  (void)w, (void)m;
  return 0;
#endif
}

extern "C" int aoq_gk_linear(const aoq_qweight *w, const uint16_t *x, uint16_t *y, int64_t m,
                             void *ws, int num_sms, void *stream) {
  (void)num_sms;
  aoq_gpu_stream_t st = (aoq_gpu_stream_t)stream;
#ifdef AOQ_HAVE_MMA_BF16
  if (dec_format(w->kind)) return dec_linear(w, x, y, m, ws, st);
#endif
  wargs a;
  int prc = prep_args(w, &x, m, ws, stream, &a);
  if (prc) return prc;
#ifdef AOQ_HAVE_SKINNY
  /* The skinny GEMM takes the 4-bit formats from m = 9, bf16 and mxfp8 from m = 33, where the
   * decode step / the linears measured faster than with the GEMV (docs/cuda.md, session 3:
   * int4wo-128 batch 16 5.54 vs 5.84 ms, nvfp4 batch 32 8.50 vs 9.44 ms); int8wo and the fp8
   * formats stay on the GEMV up to m = 64 (batch-64 step: int8wo 9.70 vs 10.35 ms, fp8wo 9.77 vs
   * 10.18, fp8dq-row 10.70 vs 11.07; batch 32 within 0.04 ms either way). AOQ_SKINNY overrides
   * that for diagnosis: "0" keeps the GEMV everywhere, "1,MIN_M,PF" sets the smallest m (0: the
   * default above) and wargs.pf. */
  const bool b4 = epl_of(w->kind) == 32;
  int sk_on = 1, sk_min = 0;
  if (const char *ev = getenv("AOQ_SKINNY")) {
    if (sscanf(ev, "%d,%d,%d", &sk_on, &sk_min, &a.pf) >= 1 && sk_on == 0) sk_min = 65;
  }
  const bool gemv8 = w->kind == AOQ_FMT_INT8WO || w->kind == AOQ_FMT_FP8WO ||
                     w->kind == AOQ_FMT_FP8DQ || w->kind == AOQ_FMT_FP8DQ_ROW;
  if (sk_min <= 0) sk_min = b4 ? SK_MIN_M : gemv8 ? 65 : 33;
  if (m >= sk_min && m <= 64 && !aoq_gk_batch_invariant()) {
    int ns = sk_plan(w);
    /* staged scale words are read with 4-byte copies */
    if (ns && w->kind != AOQ_FMT_BF16 && ((uintptr_t)w->scale & 3)) ns = 0;
    if (ns > 1) { /* k splits are thread-block clusters: sm_90 and later */
      int dev = 0, major = 0;
      if (cudaGetDevice(&dev) != cudaSuccess ||
          cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
          major < 9)
        ns = 0;
    }
    if (ns) return skinny_fmt(w->kind, a, x, y, (int)m, ns, st);
  }
#endif
#ifdef AOQ_HAVE_GEMM
  if (m > GEMV_SLICE && w->k % GB == 0 && !aoq_gk_batch_invariant()) {
    return with_decoder(w->kind, [&](auto d) { return launch_gemm<decltype(d)>(a, x, y, m, st); });
  }
#endif
  for (int64_t r0 = 0; r0 < m; r0 += GEMV_SLICE) {
    int mm = (int)(m - r0 < GEMV_SLICE ? m - r0 : GEMV_SLICE);
    const uint16_t *xs = x + r0 * w->k;
    uint16_t *ys = y + r0 * w->n;
    wargs as = a;
    if (a.xs) as.xs = a.xs + r0;
    int rc = with_decoder(w->kind, [&](auto d) { return launch<decltype(d)>(as, xs, ys, mm, st); });
    if (rc) return rc;
  }
  return 0;
}

/* silu_mul fused into the gate | up GEMV where the plain path would run the mma GEMV of one
 * n-tile or the bulk-copy GEMV (m <= 8; not where bf16 / int8wo take the FMA GEMV, at m = 1 or
 * m = 2 from AOQ_GEMV_FMA_MIN_N; not batch-invariant): then the fused kernel sums every row as
 * the plain one does. */
extern "C" int aoq_gk_linear_silu_ok(const aoq_qweight *w, int64_t m) {
#ifdef AOQ_HAVE_MMA_BF16
  if (!w || dec_format(w->kind) || m < 1 || m > 8 || w->n < 2 || w->n % 2 ||
      aoq_gk_batch_invariant() || aoq_gk_linear_check(w))
    return 0;
  const wargs a = weight_args(w);
  return with_decoder(w->kind, [&](auto d) {
    typedef decltype(d) D;
    if (!gemv_pick<D>::gated) return 0;
    /* the FMA GEMV has no gated form; where the bulk-copy GEMV takes its place, both launches
     * run that one */
    targs tp;
    return (int)(!fma_case<D>(a, m) || tma_plan<D>(a, (int)m, false, &tp));
  });
#else
  (void)w, (void)m;
  return 0;
#endif
}

extern "C" int aoq_gk_linear_silu(const aoq_qweight *w, const uint16_t *x, uint16_t *y, int64_t m,
                                  void *ws, void *stream) {
  if (!aoq_gk_linear_silu_ok(w, m)) return (int)cudaErrorInvalidValue;
#ifdef AOQ_HAVE_MMA_BF16
  wargs a;
  int rc = prep_args(w, &x, m, ws, stream, &a);
  if (rc) return rc;
  return with_decoder(w->kind, [&](auto d) {
    return launch_gated<decltype(d)>(a, x, y, (int)m, (aoq_gpu_stream_t)stream);
  });
#else
  (void)x, (void)y, (void)ws, (void)stream;
  return (int)cudaErrorInvalidValue;
#endif
}
