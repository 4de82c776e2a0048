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

/* 8 consecutive elements [c, c + 8) of weight row r (c % 8 == 0) as 4 packed bf16 pairs */
template <int KIND>
static __device__ __forceinline__ uint4 dq8(const aoq_qweight &w, int64_t r, int64_t c) {
  const int64_t k = w.k;
  const uint8_t *qd = (const uint8_t *)w.qdata;
  float o[8];
  if (KIND == AOQ_FMT_INT8WO || KIND == AOQ_FMT_FP8WO || KIND == AOQ_FMT_FP8DQ ||
      KIND == AOQ_FMT_FP8DQ_ROW || KIND == AOQ_FMT_MXFP8) {
    uint2 raw = *(const uint2 *)(qd + r * k + c);
    float s = 1.0f;
    if (KIND == AOQ_FMT_FP8WO) s = ((const float *)w.scale)[r];
    if (KIND == AOQ_FMT_MXFP8)
      s = aoq_e8m0_to_f32(((const uint8_t *)w.scale)[r * (k / 32) + c / 32]);
#pragma unroll
    for (int i = 0; i < 8; i++) {
      uint8_t b = (uint8_t)((i < 4 ? raw.x : raw.y) >> (8 * (i & 3)));
      if (KIND == AOQ_FMT_INT8WO)
        o[i] = (float)(int8_t)b;
      else if (KIND == AOQ_FMT_FP8WO || KIND == AOQ_FMT_MXFP8)
        o[i] = __fmul_rn(aoq_e4m3_to_f32(b), s);
      else
        o[i] = aoq_e4m3_to_f32(b);
    }
  } else if (KIND == AOQ_FMT_INT4WO || KIND == AOQ_FMT_INT4WO_HQQ) {
    uint32_t raw = *(const uint32_t *)(qd + r * (k / 2) + c / 2);
    const int64_t g = w.group;
    const uint16_t *sz = (const uint16_t *)w.scale + (r * (k / g) + c / g) * 2;
    float s = aoq_bf16_to_f32(sz[0]), z = aoq_bf16_to_f32(sz[1]);
#pragma unroll
    for (int i = 0; i < 8; i++) {
      int q = (int)((raw >> (4 * i)) & 15u) - 8; /* element 2j in the low nibble of byte j */
      o[i] = __fadd_rn(aoq_round_bf16(__fmul_rn((float)q, s)), z);
    }
  } else { /* MXFP4, NVFP4, NVFP4WO */
    uint32_t raw = *(const uint32_t *)(qd + r * (k / 2) + c / 2);
    float s;
    if (KIND == AOQ_FMT_MXFP4)
      s = aoq_e8m0_to_f32(((const uint8_t *)w.scale)[r * (k / 32) + c / 32]);
    else
      s = aoq_e4m3_to_f32(((const uint8_t *)w.scale)[r * (k / 16) + c / 16]);
    float pts = KIND == AOQ_FMT_NVFP4WO ? *(const float *)w.aux : 1.0f;
#pragma unroll
    for (int i = 0; i < 8; i++) {
      float v = __fmul_rn(aoq_e2m1_to_f32((uint8_t)((raw >> (4 * i)) & 15u)), s);
      o[i] = KIND == AOQ_FMT_NVFP4WO ? __fmul_rn(v, pts) : v;
    }
  }
  uint4 u;
  u.x = aoq_f32_to_bf16(o[0]) | (uint32_t)aoq_f32_to_bf16(o[1]) << 16;
  u.y = aoq_f32_to_bf16(o[2]) | (uint32_t)aoq_f32_to_bf16(o[3]) << 16;
  u.z = aoq_f32_to_bf16(o[4]) | (uint32_t)aoq_f32_to_bf16(o[5]) << 16;
  u.w = aoq_f32_to_bf16(o[6]) | (uint32_t)aoq_f32_to_bf16(o[7]) << 16;
  return u;
}

/* one thread per 8 output elements: 16-byte coalesced stores, 4- or 8-byte loads */
template <int KIND>
__global__ void k_dequant(aoq_qweight w, int64_t r0, int64_t rows, uint16_t *__restrict__ out) {
  const int64_t per_row = w.k / 8, total = rows * per_row;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = i / per_row, c = (i - r * per_row) * 8;
    *(uint4 *)(out + r * w.k + c) = dq8<KIND>(w, r0 + r, c);
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
  const unsigned g = grid_of(rows * (w->k / 8), 256);
  switch (w->kind) {
#define DQ(K)                                           \
  case K:                                               \
    k_dequant<K><<<g, 256, 0, st>>>(*w, r0, rows, out); \
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

/* fp8dq(-row): y[i, r0 + j] = bf16(c[j + i * rows] * x_s * w_s), c the GEMM's fp32 sums in
 * column-major [rows, m] (linear.cu's order: acc * xs[i] * ws[row], or acc * (xt * ws[0])) */
__global__ void k_epi_fp8(const float *__restrict__ c, int64_t m, int64_t n, int64_t r0,
                          int64_t rows, uint16_t *__restrict__ y, const float *xs, const float *xt,
                          const float *wsc, int per_tensor) {
  const int64_t total = m * rows;
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total;
       t += (int64_t)gridDim.x * blockDim.x) {
    int64_t i = t / rows, j = t - i * rows;
    float acc = c[t];
    float v = per_tensor ? acc * (xt[0] * wsc[0]) : acc * xs[i] * wsc[r0 + j];
    y[i * n + r0 + j] = aoq_f32_to_bf16(v);
  }
}

/* int8wo: y = bf16(y * bf16(s[col])); nvfp4: y = bf16(y * xt) — y already holds bf16(acc) */
__global__ void k_epi_post(uint16_t *__restrict__ y, int64_t m, int64_t n, const float *s,
                           const float *xt) {
  const int64_t total = m * n / 2;
  uint32_t *y2 = (uint32_t *)y;
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total;
       t += (int64_t)gridDim.x * blockDim.x) {
    int64_t col = (2 * t) % n; /* n even: a pair stays in one row */
    uint32_t u = y2[t];
    float f0 = s ? aoq_round_bf16(s[col]) : xt[0], f1 = s ? aoq_round_bf16(s[col + 1]) : xt[0];
    float a = aoq_bf16_to_f32((uint16_t)u) * f0, b = aoq_bf16_to_f32((uint16_t)(u >> 16)) * f1;
    y2[t] = aoq_f32_to_bf16(a) | (uint32_t)aoq_f32_to_bf16(b) << 16;
  }
}

__global__ void k_epi_post1(uint16_t *__restrict__ y, int64_t total, int64_t n, const float *s,
                            const float *xt) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total;
       t += (int64_t)gridDim.x * blockDim.x) {
    float f = s ? aoq_round_bf16(s[t % n]) : xt[0];
    y[t] = aoq_f32_to_bf16(aoq_bf16_to_f32(y[t]) * f);
  }
}

extern "C" int aoq_gk_gemm_epilogue(const aoq_qweight *w, const float *c, int64_t m, int64_t r0,
                                    int64_t rows, uint16_t *y, const float *xs, const float *xt,
                                    void *stream) {
  aoq_gpu_stream_t st = (aoq_gpu_stream_t)stream;
  const int64_t n = w->n;
  switch (w->kind) {
    case AOQ_FMT_FP8DQ:
    case AOQ_FMT_FP8DQ_ROW:
      k_epi_fp8<<<grid_of(m * rows, 256), 256, 0, st>>>(
          c, m, n, r0, rows, y, xs, xt, (const float *)w->scale, w->kind == AOQ_FMT_FP8DQ);
      break;
    case AOQ_FMT_INT8WO:
    case AOQ_FMT_NVFP4: {
      const float *s = w->kind == AOQ_FMT_INT8WO ? (const float *)w->scale : 0;
      if (n % 2 == 0 && ((uintptr_t)y & 3) == 0)
        k_epi_post<<<grid_of(m * n / 2, 256), 256, 0, st>>>(y, m, n, s, xt);
      else
        k_epi_post1<<<grid_of(m * n, 256), 256, 0, st>>>(y, m * n, n, s, xt);
      break;
    }
    default:
      return 0;
  }
  return (int)aoq_gpu_get_last_error();
}
