/*
 * aoq_cl.h — prepended to every kernels/cl/<name>.cl (clang `-include` for SPIR-V, a second source
 * string for clCreateProgramWithSource): element codecs and the argument convention.
 *
 * Pointer arguments: every tensor is passed as a pair (base pointer, byte offset), declared with
 * AOQ_PTR and read with AOQ_AT. Level Zero passes the USM pointer itself and offset 0; an OpenCL
 * host without SVM passes the cl_mem holding the tensor and the tensor's offset in it. So the same
 * kernel runs under both runtimes with the device interface's raw-pointer semantics.
 *
 * Numerics mirror base/numerics.h (round to nearest even, NaN stays quiet NaN) and the CPU
 * backend's order of roundings. Contraction into fma is off, as in the C11 host code.
 */
#ifndef AOQ_KERNELS_CL_AOQ_CL_H
#define AOQ_KERNELS_CL_AOQ_CL_H

#pragma OPENCL FP_CONTRACT OFF

#define AOQ_PTR(T, n) __global T *n##_p, ulong n##_o
#define AOQ_AT(T, n) ((__global T *)((__global char *)(n##_p) + (n##_o)))

/* Data-dependent error codes a kernel writes into its `err` argument (first one wins). Same
 * values as kernels/gpu/gpu_kernels.h. */
#define AOQ_CL_ERR_EMBED_ID 1
#define AOQ_CL_ERR_KV_SLOT 2
#define AOQ_CL_ERR_ATTN_INDEX 3

static inline void aoq_flag(__global int *err, int code) { atomic_cmpxchg(err, 0, code); }

static inline float aoq_bf2f(ushort h) { return as_float((uint)h << 16); }

static inline ushort aoq_f2bf(float f) {
  uint u = as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (ushort)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (ushort)(u >> 16);
}

static inline float aoq_rbf(float f) { return aoq_bf2f(aoq_f2bf(f)); }

/* 2^p for -149 <= p <= 127, exact. */
static inline float aoq_pow2(int p) {
  if (p >= -126) return as_float((uint)(p + 127) << 23);
  return as_float(1u << (p + 149));
}

static inline uint aoq_rne_u32(float v) {
  uint q = (uint)v;
  float rem = v - (float)q;
  if (rem > 0.5f || (rem == 0.5f && (q & 1u))) q++;
  return q;
}

/* Minifloat magnitude codecs, spec/formats.md §12 (same algorithm as base/numerics.h). */
static inline uint aoq_mf_encode_mag(float a, int mbits, int bias, uint maxcode) {
  int emin = 1 - bias;
  if (!(a < aoq_pow2(emin))) {
    uint u = as_uint(a);
    int shift = 23 - mbits;
    if (u >= 0x7f800000u) return maxcode;
    u += (1u << (shift - 1)) - 1u + ((u >> shift) & 1u);
    int e = (int)(u >> 23) - 127;
    uint code = ((uint)(e + bias) << mbits) | ((u >> shift) & ((1u << mbits) - 1u));
    return code > maxcode ? maxcode : code;
  }
  uint q = aoq_rne_u32(a * aoq_pow2(mbits - emin));
  return q > maxcode ? maxcode : q;
}

static inline float aoq_mf_decode_mag(uint c, int mbits, int bias) {
  uint e = c >> mbits, m = c & ((1u << mbits) - 1u);
  if (e == 0) return (float)m * aoq_pow2(1 - bias - mbits);
  return (1.0f + (float)m * aoq_pow2(-mbits)) * aoq_pow2((int)e - bias);
}

/* float8_e4m3fn (saturating, NaN -> 0x7f|sign). */
static inline uchar aoq_f2e4m3(float f) {
  uint u = as_uint(f), s = (u >> 24) & 0x80u;
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uchar)(s | 0x7fu);
  return (uchar)(s | aoq_mf_encode_mag(as_float(u & 0x7fffffffu), 3, 7, 0x7eu));
}
static inline float aoq_e4m32f(uchar b) {
  if ((b & 0x7fu) == 0x7fu) return as_float(0x7fc00000u | ((uint)(b & 0x80u) << 24));
  float v = aoq_mf_decode_mag(b & 0x7fu, 3, 7);
  return (b & 0x80u) ? -v : v;
}

/* FP4 E2M1 code (bit 3 = sign). */
static inline uchar aoq_f2e2m1(float f) {
  uint u = as_uint(f), s = (u >> 28) & 0x8u;
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uchar)(s | 0x7u);
  return (uchar)(s | aoq_mf_encode_mag(as_float(u & 0x7fffffffu), 1, 1, 0x7u));
}
static inline float aoq_e2m12f(uchar c) {
  float v = aoq_mf_decode_mag(c & 0x7u, 1, 1);
  return (c & 0x8u) ? -v : v;
}

/* FP6 codes (bit 5 = sign): E3M2 (bias 3) and E2M3 (bias 1), no NaN/Inf. */
static inline float aoq_e3m22f(uchar c) {
  float v = aoq_mf_decode_mag(c & 0x1fu, 2, 3);
  return (c & 0x20u) ? -v : v;
}
static inline float aoq_e2m32f(uchar c) {
  float v = aoq_mf_decode_mag(c & 0x1fu, 3, 1);
  return (c & 0x20u) ? -v : v;
}

/* Element i (bits wide, 1..8) of an LSB-first bit stream (docs/layouts.md). */
static inline uint aoq_bits_get(__global const uchar *row, long i, int bits) {
  ulong bit = (ulong)i * (ulong)bits;
  uint sh = (uint)(bit & 7);
  uint v = row[bit >> 3];
  if (sh + (uint)bits > 8) v |= (uint)row[(bit >> 3) + 1] << 8;
  return (v >> sh) & ((1u << bits) - 1u);
}

/* Bytes of one bit-stream row: padded to 4 bytes. */
static inline long aoq_bitrow(long k, int bits) { return ((k * bits + 31) / 32) * 4; }

/* Sign extension of a bits-wide two's complement value. */
static inline int aoq_sext(uint v, int bits) {
  return (int)(v ^ (1u << (bits - 1))) - (1 << (bits - 1));
}

/* E8M0 scale byte: 2^(b-127); 255 is NaN. */
static inline float aoq_e8m02f(uchar b) {
  if (b == 0xffu) return as_float(0x7fc00000u);
  return aoq_pow2((int)b - 127);
}

#endif
