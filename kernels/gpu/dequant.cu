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

/* eight floats (bf16 values) -> eight bf16 */
static __device__ __forceinline__ uint4 pack8(const float o[8]) {
  uint4 r;
  r.x = aoq_f32_to_bf16(o[0]) | (uint32_t)aoq_f32_to_bf16(o[1]) << 16;
  r.y = aoq_f32_to_bf16(o[2]) | (uint32_t)aoq_f32_to_bf16(o[3]) << 16;
  r.z = aoq_f32_to_bf16(o[4]) | (uint32_t)aoq_f32_to_bf16(o[5]) << 16;
  r.w = aoq_f32_to_bf16(o[6]) | (uint32_t)aoq_f32_to_bf16(o[7]) << 16;
  return r;
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
  return pack8(o);
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
    default: /* the weight-only formats of linear_dec.h */
      return aoq_gk_dec_dequant_rows(w, r0, rows, out, stream);
  }
  return (int)aoq_gpu_get_last_error();
}

/* Epilogues: a 2-D grid, y = output row i (strided over gridDim.y), x = 4 consecutive columns
 * per thread (no per-element division). */
#define EPI_THREADS 256

/* 4 sums of a row at p (fp32 or int32): one 16-byte load where vec, else the first `left` and
 * zeros */
template <class T>
static __device__ __forceinline__ void load4(const T *p, bool vec, int64_t left, T acc[4]) {
  if (vec) {
    const uint4 v = *(const uint4 *)p;
    memcpy(acc, &v, 16);
  } else {
#pragma unroll
    for (int q = 0; q < 4; q++) acc[q] = q < left ? p[q] : T(0);
  }
}

/* the 4 bf16 outputs o of a row at p: one 8-byte store where vec, else the first `left` */
static __device__ __forceinline__ void store4(uint16_t *p, const uint16_t o[4], bool vec,
                                              int64_t left) {
  if (vec) {
    *(uint2 *)p = make_uint2(o[0] | (uint32_t)o[1] << 16, o[2] | (uint32_t)o[3] << 16);
  } else {
#pragma unroll
    for (int q = 0; q < 4; q++)
      if (q < left) p[q] = o[q];
  }
}

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
    load4(c + i * rows + j0, vec, rows - j0, acc);
    uint16_t o[4];
#pragma unroll
    for (int q = 0; q < 4; q++)
      o[q] = aoq_f32_to_bf16(per_tensor ? acc[q] * a : acc[q] * a * ws4[q]);
    store4(y + i * n + r0 + j0, o, vec, rows - j0);
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

/* int8dq: y[i, r0 + j] = bf16(bf16(c[j + i * ldc] * xs[i]) * ws[r0 + j]), c the int8 GEMM's int32
 * sums (linear_dec.h's DxI8::epi, devices/cpu/cpu_quant.c's order) */
__global__ void __launch_bounds__(EPI_THREADS)
    k_epi_i8(const int32_t *__restrict__ c, int64_t ldc, int64_t m, int64_t n, int64_t r0,
             int64_t rows, uint16_t *__restrict__ y, const float *xs, const float *wsc, int y8) {
  const int64_t j0 = ((int64_t)blockIdx.x * EPI_THREADS + threadIdx.x) * 4;
  if (j0 >= rows) return;
  const bool cvec = ldc % 4 == 0 && ((uintptr_t)c & 15) == 0 && j0 + 3 < rows;
  const bool yvec = y8 && j0 + 3 < rows && n % 4 == 0 && r0 % 4 == 0;
  float ws4[4];
#pragma unroll
  for (int q = 0; q < 4; q++) ws4[q] = j0 + q < rows ? wsc[r0 + j0 + q] : 0.0f;
  for (int64_t i = blockIdx.y; i < m; i += gridDim.y) {
    const float a = xs[i];
    int32_t acc[4];
    load4(c + i * ldc + j0, cvec, rows - j0, acc);
    uint16_t o[4];
#pragma unroll
    for (int q = 0; q < 4; q++) o[q] = aoq_f32_to_bf16(aoq_round_bf16((float)acc[q] * a) * ws4[q]);
    store4(y + i * n + r0 + j0, o, yvec, rows - j0);
  }
}

extern "C" int aoq_gk_i8_epilogue(const aoq_qweight *w, const int32_t *c, int64_t ldc, int64_t m,
                                  int64_t r0, int64_t rows, uint16_t *y, const float *xs,
                                  void *stream) {
  if (w->kind != AOQ_FMT_INT8DQ || ldc < rows || rows <= 0 || m <= 0 || r0 < 0 || r0 + rows > w->n)
    return (int)cudaErrorInvalidValue;
  const int y8 = ((uintptr_t)y & 7) == 0;
  /* a plain launch: the GEMM before it is cuBLAS's (no PDL wait), as the other epilogues here */
  k_epi_i8<<<epi_grid(m, rows), EPI_THREADS, 0, (aoq_gpu_stream_t)stream>>>(
      c, ldc, m, w->n, r0, rows, y, xs, (const float *)w->scale, y8);
  return (int)aoq_gpu_get_last_error();
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

/* ---- activation quantization for many rows (the BLAS path) ----
 * The bytes of act_quant.cu (the same codecs of base/numerics.h, max reductions only, so
 * bit-exact with core/act_quant.c) and its workspace layout, organized for wide inputs: each
 * thread owns 8 elements (one 16-byte load, one 16-byte store) and the 4 (MX) or 2 (NVFP4) lanes
 * of a block reduce its amax with shuffles; fp8 rows are one thread block each. */
#define AQ_THREADS 256

static __device__ __forceinline__ unsigned bmax8(const uint4 &v) {
  unsigned a =
      max(max(v.x & 0x7fffu, v.x >> 16 & 0x7fffu), max(v.y & 0x7fffu, v.y >> 16 & 0x7fffu));
  return max(a,
             max(max(v.z & 0x7fffu, v.z >> 16 & 0x7fffu), max(v.w & 0x7fffu, v.w >> 16 & 0x7fffu)));
}

static __device__ __forceinline__ float elem(const uint4 &v, int i) {
  uint32_t w = i < 2 ? v.x : i < 4 ? v.y : i < 6 ? v.z : v.w;
  return aoq_bf16_to_f32((uint16_t)(i & 1 ? w >> 16 : w));
}

/* max of the bf16 magnitude bits of n8 units (NaN bits sort above inf), into *out */
__global__ void __launch_bounds__(AQ_THREADS)
    k_aq_amax(const uint4 *__restrict__ x, int64_t n8, unsigned *out) {
  unsigned a = 0;
  for (int64_t i = blockIdx.x * (int64_t)AQ_THREADS + threadIdx.x; i < n8;
       i += (int64_t)gridDim.x * AQ_THREADS)
    a = max(a, bmax8(x[i]));
  for (int o = 16; o > 0; o >>= 1) a = max(a, (unsigned)AOQ_SHFL_XOR(a, o));
  if ((threadIdx.x & 31) == 0) atomicMax(out, a);
}

/* MX (32-blocks, 4 lanes) and NVFP4 (16-blocks, 2 lanes). Every lane of a warp runs the loop
 * the same number of times (the shuffles need them all); a block's lanes are all in or all out
 * of range because k % 32 == 0. */
template <int KIND>
__global__ void __launch_bounds__(AQ_THREADS)
    k_aq_blocks(const uint4 *__restrict__ x, int64_t n8, uint4 *__restrict__ xb,
                const unsigned *amax_all, const float *pts_w, float *xt) {
  float pts = 1.0f, inv_pts = 1.0f;
  if (KIND == AOQ_FMT_NVFP4) {
    pts = aoq_nvfp4_tensor_scale(aoq_bf16_to_f32((uint16_t)*amax_all));
    inv_pts = 1.0f / pts;
    if (blockIdx.x == 0 && threadIdx.x == 0) *xt = aoq_round_bf16(pts * *pts_w);
  }
  for (int64_t base = blockIdx.x * (int64_t)AQ_THREADS; base < n8;
       base += (int64_t)gridDim.x * AQ_THREADS) {
    const int64_t i = base + threadIdx.x;
    uint4 v = i < n8 ? x[i] : make_uint4(0, 0, 0, 0);
    unsigned a = bmax8(v);
    a = max(a, (unsigned)AOQ_SHFL_XOR(a, 1));
    if (KIND != AOQ_FMT_NVFP4) a = max(a, (unsigned)AOQ_SHFL_XOR(a, 2));
    if (i >= n8) continue;
    const float amax = aoq_bf16_to_f32((uint16_t)a);
    float o[8];
    if (KIND == AOQ_FMT_NVFP4) {
      const uint8_t sb = aoq_nvfp4_block_scale(amax, pts);
      const float sc = aoq_e4m3_to_f32(sb), mul = inv_pts / sc;
#pragma unroll
      for (int j = 0; j < 8; j++) o[j] = aoq_e2m1_to_f32(aoq_f32_to_e2m1(elem(v, j) * mul)) * sc;
    } else {
      const bool fp4 = KIND == AOQ_FMT_MXFP4;
      const uint8_t e = aoq_e8m0_rceil(amax, fp4 ? 1.0f / AOQ_E2M1_MAX : 1.0f / AOQ_E4M3_MAX);
      const float mul = e == 0xffu ? __uint_as_float(0x7fc00000u) : aoq_pow2f(127 - (int)e);
      const float sc = aoq_e8m0_to_f32(e);
#pragma unroll
      for (int j = 0; j < 8; j++) {
        float t = elem(v, j) * mul;
        o[j] =
            (fp4 ? aoq_e2m1_to_f32(aoq_f32_to_e2m1(t)) : aoq_e4m3_to_f32(aoq_f32_to_e4m3(t))) * sc;
      }
    }
    xb[i] = pack8(o);
  }
}

/* fp8 e4m3 per row (FP8DQ_ROW) or per tensor (FP8DQ): one thread block per row */
__global__ void __launch_bounds__(AQ_THREADS)
    k_aq_fp8(const uint4 *__restrict__ x, int64_t m, int64_t k8, int per_tensor,
             uint4 *__restrict__ xb, float *xs, float *xt, const unsigned *amax_all) {
  __shared__ unsigned sh[AQ_THREADS / 32];
  for (int64_t r = blockIdx.x; r < m; r += gridDim.x) {
    const uint4 *xr = x + r * k8;
    unsigned a;
    if (per_tensor) {
      a = *amax_all;
    } else {
      a = 0;
      for (int64_t i = threadIdx.x; i < k8; i += AQ_THREADS) a = max(a, bmax8(xr[i]));
      for (int o = 16; o > 0; o >>= 1) a = max(a, (unsigned)AOQ_SHFL_XOR(a, o));
      if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = a;
      __syncthreads();
      a = 0;
      for (int j = 0; j < AQ_THREADS / 32; j++) a = max(a, sh[j]);
      __syncthreads(); /* sh is reused by the next row */
    }
    const float s = aoq_fp8_scale(aoq_bf16_to_f32((uint16_t)a), AOQ_E4M3_MAX);
    if (threadIdx.x == 0) {
      if (!per_tensor)
        xs[r] = s;
      else if (r == 0)
        *xt = s;
    }
    for (int64_t i = threadIdx.x; i < k8; i += AQ_THREADS) {
      uint4 v = xr[i];
      float o[8];
#pragma unroll
      for (int j = 0; j < 8; j++) o[j] = aoq_e4m3_to_f32(aoq_f32_to_e4m3(elem(v, j) / s));
      xb[r * k8 + i] = pack8(o);
    }
  }
}

extern "C" int aoq_gk_act_quant_rows(const aoq_qweight *w, const uint16_t *x, int64_t m, void *ws,
                                     void *stream) {
  aoq_gpu_stream_t st = (aoq_gpu_stream_t)stream;
  const int64_t k = w->k, n8 = m * k / 8;
  if (k % 32 || ((uintptr_t)x & 15)) return (int)cudaErrorInvalidValue;
  size_t off;
  aoq_gk_act_layout(m, k, &off);
  uint4 *xb = (uint4 *)ws;
  float *xs = (float *)((char *)ws + off), *xt = xs + m;
  unsigned *amax = (unsigned *)(xt + 1);
  const uint4 *x8 = (const uint4 *)x;
  const int per_tensor = w->kind == AOQ_FMT_FP8DQ || w->kind == AOQ_FMT_NVFP4;
  const unsigned g = grid_of(n8, AQ_THREADS);
  if (per_tensor) {
    aoq_gpu_error_t e = aoq_gpu_memset_async(amax, 0, sizeof *amax, st);
    if (e != AOQ_GPU_SUCCESS) return (int)e;
    const unsigned ga = g < 2048 ? g : 2048;
    k_aq_amax<<<ga, AQ_THREADS, 0, st>>>(x8, n8, amax);
  }
  switch (w->kind) {
    case AOQ_FMT_FP8DQ:
    case AOQ_FMT_FP8DQ_ROW:
      k_aq_fp8<<<(unsigned)(m < 65535 ? m : 65535), AQ_THREADS, 0, st>>>(x8, m, k / 8, per_tensor,
                                                                         xb, xs, xt, amax);
      break;
    case AOQ_FMT_MXFP8:
      k_aq_blocks<AOQ_FMT_MXFP8><<<g, AQ_THREADS, 0, st>>>(x8, n8, xb, amax, 0, xt);
      break;
    case AOQ_FMT_MXFP4:
      k_aq_blocks<AOQ_FMT_MXFP4><<<g, AQ_THREADS, 0, st>>>(x8, n8, xb, amax, 0, xt);
      break;
    case AOQ_FMT_NVFP4:
      k_aq_blocks<AOQ_FMT_NVFP4>
          <<<g, AQ_THREADS, 0, st>>>(x8, n8, xb, amax, (const float *)w->aux, xt);
      break;
    default: /* int8-intx / int8-int4's fake quantization (act_quant.cu); others: nothing */
      return aoq_gk_act_quant(w, x, m, ws, stream);
  }
  return (int)aoq_gpu_get_last_error();
}
