/*
 * dequant.cu — the large-m linear through a BLAS GEMM (devices/cuda/cublas.c): packed weight rows
 * decoded to the bf16 operand that the format's GEMM multiplies, and the format's epilogue on the
 * GEMM's output.
 *
 * The operand is the CPU backend's (devices/cpu/cpu_quant_deq.h), rounded to bf16, and every one
 * is a bf16 value already or is rounded as the reference rounds it, so the decode is exact:
 *   BF16 w; INT8WO q (post-scaled after the GEMM); FP8WO rnd(e4m3 * s); FP8DQ(_ROW) e4m3 (scales
 *   after the GEMM, on its fp32 sums); MXFP8 / MXFP4 elem * 2^e; NVFP4 fp4 * s_b (per-tensor
 *   scales after the GEMM); NVFP4WO rnd(fp4 * s_b * pts); INT4WO(_HQQ) rnd(rnd((q - 8) * s) + z).
 * Portable (no PTX): compiled for CUDA and HIP alike.
 */
#include "base/numerics.h"
#include "kernels/gpu/gpu_kernels.h"
#include "kernels/gpu/vendor.h"

/* 8 consecutive elements [c, c + 8) of weight row r (c % 8 == 0): the packed bits (8 or 4
 * bytes) and the format parameters, loaded first so that a thread has U units' loads in flight
 * before the first decode (the kernel is memory-bound: bytes in flight set its speed) */
struct Unit {
  uint32_t a, b; /* packed bits: 8-bit formats a|b, 4-bit formats a */
  float s, z;    /* scale (and int4 zero); NVFP4WO: z = pts */
};

template <int KIND>
static __device__ __forceinline__ Unit ld8(const aoq_qweight &w, int64_t r, int64_t c) {
  const int64_t k = w.k;
  const uint8_t *qd = (const uint8_t *)w.qdata;
  Unit u;
  u.b = 0, u.s = 1.0f, u.z = 0.0f;
  if (KIND == AOQ_FMT_INT8WO || KIND == AOQ_FMT_FP8WO || KIND == AOQ_FMT_FP8DQ ||
      KIND == AOQ_FMT_FP8DQ_ROW || KIND == AOQ_FMT_MXFP8) {
    uint2 raw = *(const uint2 *)(qd + r * k + c);
    u.a = raw.x, u.b = raw.y;
    if (KIND == AOQ_FMT_FP8WO) u.s = ((const float *)w.scale)[r];
    if (KIND == AOQ_FMT_MXFP8)
      u.s = aoq_e8m0_to_f32(((const uint8_t *)w.scale)[r * (k / 32) + c / 32]);
  } else if (KIND == AOQ_FMT_INT4WO || KIND == AOQ_FMT_INT4WO_HQQ) {
    u.a = *(const uint32_t *)(qd + r * (k / 2) + c / 2);
    const int64_t g = w.group;
    uint32_t sz = *(const uint32_t *)((const uint16_t *)w.scale + (r * (k / g) + c / g) * 2);
    u.s = aoq_bf16_to_f32((uint16_t)sz), u.z = aoq_bf16_to_f32((uint16_t)(sz >> 16));
  } else { /* MXFP4, NVFP4, NVFP4WO */
    u.a = *(const uint32_t *)(qd + r * (k / 2) + c / 2);
    if (KIND == AOQ_FMT_MXFP4)
      u.s = aoq_e8m0_to_f32(((const uint8_t *)w.scale)[r * (k / 32) + c / 32]);
    else
      u.s = aoq_e4m3_to_f32(((const uint8_t *)w.scale)[r * (k / 16) + c / 16]);
    if (KIND == AOQ_FMT_NVFP4WO) u.z = *(const float *)w.aux;
  }
  return u;
}

/* the unit's 8 elements as 4 packed bf16 pairs */
template <int KIND>
static __device__ __forceinline__ uint4 cvt8(const Unit &u) {
  float o[8];
  if (KIND == AOQ_FMT_INT8WO || KIND == AOQ_FMT_FP8WO || KIND == AOQ_FMT_FP8DQ ||
      KIND == AOQ_FMT_FP8DQ_ROW || KIND == AOQ_FMT_MXFP8) {
#pragma unroll
    for (int i = 0; i < 8; i++) {
      uint8_t b = (uint8_t)((i < 4 ? u.a : u.b) >> (8 * (i & 3)));
      if (KIND == AOQ_FMT_INT8WO)
        o[i] = (float)(int8_t)b;
      else if (KIND == AOQ_FMT_FP8WO || KIND == AOQ_FMT_MXFP8)
        o[i] = __fmul_rn(aoq_e4m3_to_f32(b), u.s);
      else
        o[i] = aoq_e4m3_to_f32(b);
    }
  } else if (KIND == AOQ_FMT_INT4WO || KIND == AOQ_FMT_INT4WO_HQQ) {
#pragma unroll
    for (int i = 0; i < 8; i++) {
      int q = (int)((u.a >> (4 * i)) & 15u) - 8; /* element 2j in the low nibble of byte j */
      o[i] = __fadd_rn(aoq_round_bf16(__fmul_rn((float)q, u.s)), u.z);
    }
  } else {
#pragma unroll
    for (int i = 0; i < 8; i++) {
      float v = __fmul_rn(aoq_e2m1_to_f32((uint8_t)((u.a >> (4 * i)) & 15u)), u.s);
      o[i] = KIND == AOQ_FMT_NVFP4WO ? __fmul_rn(v, u.z) : v;
    }
  }
  uint4 r;
  r.x = aoq_f32_to_bf16(o[0]) | (uint32_t)aoq_f32_to_bf16(o[1]) << 16;
  r.y = aoq_f32_to_bf16(o[2]) | (uint32_t)aoq_f32_to_bf16(o[3]) << 16;
  r.z = aoq_f32_to_bf16(o[4]) | (uint32_t)aoq_f32_to_bf16(o[5]) << 16;
  r.w = aoq_f32_to_bf16(o[6]) | (uint32_t)aoq_f32_to_bf16(o[7]) << 16;
  return r;
}

#define DQ_THREADS 256
#define DQ_UNITS 4 /* units of 8 elements per thread, DQ_THREADS apart: coalesced loads/stores */

/* A block covers DQ_UNITS * DQ_THREADS consecutive units (8 elements, 16 output bytes each) of
 * the row-major [rows, k] output; every thread issues its units' loads, then decodes and stores. */
template <int KIND>
__global__ void __launch_bounds__(DQ_THREADS)
    k_dequant(aoq_qweight w, int64_t r0, int64_t rows, uint16_t *__restrict__ out) {
  const int64_t per_row = w.k / 8, total = rows * per_row;
  for (int64_t base = blockIdx.x * (int64_t)(DQ_UNITS * DQ_THREADS); base < total;
       base += (int64_t)gridDim.x * (DQ_UNITS * DQ_THREADS)) {
    Unit u[DQ_UNITS];
#pragma unroll
    for (int j = 0; j < DQ_UNITS; j++) {
      int64_t i = base + j * DQ_THREADS + threadIdx.x;
      u[j] = Unit{0, 0, 0.0f, 0.0f};
      if (i < total) {
        int64_t r = total < INT32_MAX ? (int64_t)((uint32_t)i / (uint32_t)per_row) : i / per_row;
        u[j] = ld8<KIND>(w, r0 + r, (i - r * per_row) * 8);
      }
    }
#pragma unroll
    for (int j = 0; j < DQ_UNITS; j++) {
      int64_t i = base + j * DQ_THREADS + threadIdx.x;
      if (i < total) *(uint4 *)(out + i * 8) = cvt8<KIND>(u[j]);
    }
  }
}

static unsigned grid_of(int64_t n, int t) {
  int64_t g = (n + t - 1) / t;
  return (unsigned)(g < 1 ? 1 : g > 65535 ? 65535 : g);
}

extern "C" int aoq_gk_dequant_rows(const aoq_qweight *w, int64_t r0, int64_t rows, uint16_t *out,
                                   void *stream) {
  aoq_gpu_stream_t st = (aoq_gpu_stream_t)stream;
  if (rows <= 0) return 0;
  if (w->k % 8) return (int)cudaErrorInvalidValue;
  if (w->kind == AOQ_FMT_BF16)
    return (int)cudaMemcpyAsync(out, (const uint16_t *)w->qdata + r0 * w->k,
                                (size_t)(rows * w->k) * 2, cudaMemcpyDeviceToDevice, st);
  const unsigned g = grid_of(rows * (w->k / 8), DQ_UNITS * DQ_THREADS);
  switch (w->kind) {
#define DQ(K)                                                  \
  case K:                                                      \
    k_dequant<K><<<g, DQ_THREADS, 0, st>>>(*w, r0, rows, out); \
    break;
    DQ(AOQ_FMT_INT8WO)
    DQ(AOQ_FMT_FP8WO)
    DQ(AOQ_FMT_FP8DQ)
    DQ(AOQ_FMT_FP8DQ_ROW)
    DQ(AOQ_FMT_MXFP8)
    DQ(AOQ_FMT_INT4WO)
    DQ(AOQ_FMT_INT4WO_HQQ)
    DQ(AOQ_FMT_MXFP4)
    DQ(AOQ_FMT_NVFP4)
    DQ(AOQ_FMT_NVFP4WO)
#undef DQ
    default:
      return (int)cudaErrorInvalidValue;
  }
  return (int)aoq_gpu_get_last_error();
}

/* Epilogues: a 2-D grid, y = output row i (strided over gridDim.y), x = 4 consecutive columns
 * per thread (no per-element division). */
#define EPI_THREADS 256

/* fp8dq(-row): y[i, r0 + j] = bf16(c[j + i * rows] * x_s * w_s), c the GEMM's fp32 sums in
 * column-major [rows, m] (linear.cu's order: acc * xs[i] * ws[row], or acc * (xt * ws[0])) */
__global__ void __launch_bounds__(EPI_THREADS)
    k_epi_fp8(const float *__restrict__ c, int64_t m, int64_t n, int64_t r0, int64_t rows,
              uint16_t *__restrict__ y, const float *xs, const float *xt, const float *wsc,
              int per_tensor, int y8) {
  const int64_t j0 = ((int64_t)blockIdx.x * EPI_THREADS + threadIdx.x) * 4;
  if (j0 >= rows) return;
  const bool vec = y8 && j0 + 3 < rows && rows % 4 == 0 && n % 4 == 0 && r0 % 4 == 0;
  float ws4[4];
#pragma unroll
  for (int q = 0; q < 4; q++) ws4[q] = per_tensor || j0 + q >= rows ? 0.0f : wsc[r0 + j0 + q];
  for (int64_t i = blockIdx.y; i < m; i += gridDim.y) {
    const float a = per_tensor ? xt[0] * wsc[0] : xs[i];
    float acc[4];
    if (vec) {
      float4 v = *(const float4 *)(c + i * rows + j0);
      acc[0] = v.x, acc[1] = v.y, acc[2] = v.z, acc[3] = v.w;
    } else {
#pragma unroll
      for (int q = 0; q < 4; q++) acc[q] = j0 + q < rows ? c[i * rows + j0 + q] : 0.0f;
    }
    uint16_t o[4];
#pragma unroll
    for (int q = 0; q < 4; q++)
      o[q] = aoq_f32_to_bf16(per_tensor ? acc[q] * a : acc[q] * a * ws4[q]);
    uint16_t *p = y + i * n + r0 + j0;
    if (vec) {
      *(uint2 *)p = make_uint2(o[0] | (uint32_t)o[1] << 16, o[2] | (uint32_t)o[3] << 16);
    } else {
#pragma unroll
      for (int q = 0; q < 4; q++)
        if (j0 + q < rows) p[q] = o[q];
    }
  }
}

/* int8wo: y = bf16(y * bf16(s[col])); nvfp4: y = bf16(y * xt) — y already holds bf16(acc) */
__global__ void __launch_bounds__(EPI_THREADS)
    k_epi_post(uint16_t *__restrict__ y, int64_t m, int64_t n, const float *s, const float *xt,
               int y8) {
  const int64_t j0 = ((int64_t)blockIdx.x * EPI_THREADS + threadIdx.x) * 4;
  if (j0 >= n) return;
  float f[4];
#pragma unroll
  for (int q = 0; q < 4; q++) f[q] = j0 + q < n ? (s ? aoq_round_bf16(s[j0 + q]) : xt[0]) : 0.0f;
  const bool vec = y8 && j0 + 3 < n && n % 4 == 0;
  for (int64_t i = blockIdx.y; i < m; i += gridDim.y) {
    uint16_t *p = y + i * n + j0;
    if (vec) {
      uint2 v = *(const uint2 *)p;
      uint32_t h[4] = {v.x & 0xffffu, v.x >> 16, v.y & 0xffffu, v.y >> 16};
#pragma unroll
      for (int q = 0; q < 4; q++) h[q] = aoq_f32_to_bf16(aoq_bf16_to_f32((uint16_t)h[q]) * f[q]);
      *(uint2 *)p = make_uint2(h[0] | h[1] << 16, h[2] | h[3] << 16);
    } else {
#pragma unroll
      for (int q = 0; q < 4; q++)
        if (j0 + q < n) p[q] = aoq_f32_to_bf16(aoq_bf16_to_f32(p[q]) * f[q]);
    }
  }
}

static dim3 epi_grid(int64_t m, int64_t cols) {
  int64_t gx = (cols + 4 * EPI_THREADS - 1) / (4 * EPI_THREADS);
  int64_t gy = m < 65535 ? m : 65535;
  return dim3((unsigned)gx, (unsigned)(gy < 1 ? 1 : gy));
}

extern "C" int aoq_gk_gemm_epilogue(const aoq_qweight *w, const float *c, int64_t m, int64_t r0,
                                    int64_t rows, uint16_t *y, const float *xs, const float *xt,
                                    void *stream) {
  aoq_gpu_stream_t st = (aoq_gpu_stream_t)stream;
  const int64_t n = w->n;
  const int y8 = ((uintptr_t)y & 7) == 0; /* 8-byte accesses of 4 outputs */
  switch (w->kind) {
    case AOQ_FMT_FP8DQ:
    case AOQ_FMT_FP8DQ_ROW:
      k_epi_fp8<<<epi_grid(m, rows), EPI_THREADS, 0, st>>>(
          c, m, n, r0, rows, y, xs, xt, (const float *)w->scale, w->kind == AOQ_FMT_FP8DQ, y8);
      break;
    case AOQ_FMT_INT8WO:
    case AOQ_FMT_NVFP4:
      k_epi_post<<<epi_grid(m, n), EPI_THREADS, 0, st>>>(
          y, m, n, w->kind == AOQ_FMT_INT8WO ? (const float *)w->scale : 0, xt, y8);
      break;
    default:
      return 0;
  }
  return (int)aoq_gpu_get_last_error();
}
