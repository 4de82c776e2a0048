/*
 * act_quant.cu — activation quantization of the dynamic formats, on the device, bit-exact with
 * core/act_quant.c and the CPU backend: the same scale rules and element codecs
 * (base/numerics.h), and every reduction is a max (order-free). The quantized activations are
 * written back as their exact values in bf16 (every e4m3 / e2m1 element times its power-of-two
 * or e4m3 block scale is a bf16 value), the GEMM operand of linear.cu; the scales the epilogues
 * need go to xs (per row) and xt (per tensor).
 *
 * Workspace: xb bf16 [m, k] | xs f32 [m] | xt f32 | amax u32 (see aoq_gk_act_layout); the
 * formats of linear_dec.h: int8dq writes int8 [m, k] where xb is, fp8dq-block its [m, k/128]
 * block scales where xs is (the scale region holds m * (k/128 + 1) + 2 floats).
 */
#include "base/numerics.h"
#include "kernels/gpu/gpu_kernels.h"
#include "kernels/gpu/vendor.h"

static size_t al256(size_t b) {
  return (b + 255) & ~(size_t)255;
}

extern "C" size_t aoq_gk_act_layout(int64_t m, int64_t k, size_t *off_xs) {
  *off_xs = al256((size_t)(m * k) * 2);
  return *off_xs + al256((size_t)(m * (k / 128 + 1) + 2) * 4);
}

/* max over the bf16 magnitude bits of the whole tensor (NaN bits sort above inf) */
__global__ void k_amax_bits(const uint16_t *__restrict__ x, int64_t n, unsigned *out) {
  AOQ_PDL_WAIT();
  unsigned a = 0;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    a = max(a, (unsigned)(x[i] & 0x7fffu));
  for (int o = 16; o > 0; o >>= 1) a = max(a, (unsigned)AOQ_SHFL_XOR(a, o));
  if ((threadIdx.x & 31) == 0) atomicMax(out, a);
}

/* fp8 e4m3 per row (kind FP8DQ_ROW) or per tensor (FP8DQ): one block per row */
__global__ void k_quant_fp8(const uint16_t *__restrict__ x, int64_t k, int per_tensor,
                            uint16_t *__restrict__ xb, float *xs, float *xt,
                            const unsigned *amax_all) {
  AOQ_PDL_WAIT();
  __shared__ unsigned sh[32];
  const uint16_t *xr = x + blockIdx.x * k;
  unsigned a;
  if (per_tensor) {
    a = *amax_all;
  } else {
    a = 0;
    for (int64_t i = threadIdx.x; i < k; i += blockDim.x) a = max(a, (unsigned)(xr[i] & 0x7fffu));
    for (int o = 16; o > 0; o >>= 1) a = max(a, (unsigned)AOQ_SHFL_XOR(a, o));
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = a;
    __syncthreads();
    a = 0;
    for (int i = 0; i < (int)blockDim.x / 32; i++) a = max(a, sh[i]);
  }
  /* aoq_amax_bf16 returns the first NaN it meets; any NaN gives a NaN scale all the same */
  float s = aoq_fp8_scale(aoq_bf16_to_f32((uint16_t)a), AOQ_E4M3_MAX);
  if (threadIdx.x == 0) {
    if (per_tensor) {
      if (blockIdx.x == 0) *xt = s;
    } else {
      xs[blockIdx.x] = s;
    }
  }
  uint16_t *br = xb + blockIdx.x * k;
  for (int64_t i = threadIdx.x; i < k; i += blockDim.x)
    br[i] = aoq_f32_to_bf16(aoq_e4m3_to_f32(aoq_f32_to_e4m3(aoq_bf16_to_f32(xr[i]) / s)));
}

/* MX (RCEIL) blocks of 32: one thread per block, aoq_mx_quant_row's steps for that block */
__global__ void k_quant_mx(const uint16_t *__restrict__ x, int64_t m, int64_t k, int fp4,
                           uint16_t *__restrict__ xb) {
  AOQ_PDL_WAIT();
  int64_t nb = m * (k / 32);
  for (int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; b < nb;
       b += (int64_t)gridDim.x * blockDim.x) {
    const uint16_t *xr = x + b * 32;
    uint8_t q[32], e;
    aoq_mx_quant_row(xr, 32, fp4, q, &e);
    float sc = aoq_e8m0_to_f32(e);
    for (int i = 0; i < 32; i++) {
      float v = fp4 ? aoq_e2m1_to_f32((uint8_t)(q[i / 2] >> (4 * (i & 1)))) : aoq_e4m3_to_f32(q[i]);
      xb[b * 32 + i] = aoq_f32_to_bf16(v * sc);
    }
  }
}

/* NVFP4 blocks of 16 with the activation's per-tensor scale pts_x = amax / 2688 */
__global__ void k_quant_nvfp4(const uint16_t *__restrict__ x, int64_t m, int64_t k,
                              uint16_t *__restrict__ xb, const unsigned *amax_all,
                              const float *pts_w, float *xt) {
  AOQ_PDL_WAIT();
  float pts = aoq_nvfp4_tensor_scale(aoq_bf16_to_f32((uint16_t)*amax_all));
  if (blockIdx.x == 0 && threadIdx.x == 0) *xt = aoq_round_bf16(pts * *pts_w);
  int64_t nb = m * (k / 16);
  for (int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; b < nb;
       b += (int64_t)gridDim.x * blockDim.x) {
    uint8_t q[8], sb;
    aoq_nvfp4_quant_row(x + b * 16, 16, pts, q, &sb);
    float sc = aoq_e4m3_to_f32(sb);
    for (int i = 0; i < 16; i++)
      xb[b * 16 + i] = aoq_f32_to_bf16(aoq_e2m1_to_f32((uint8_t)(q[i / 2] >> (4 * (i & 1)))) * sc);
  }
}

/* --- the dynamic formats of linear_dec.h: per token (int8, fp8), grid (m, S) ---
 * Every block of a row reduces the whole row (16-byte loads; x is 16-byte aligned and k % 32 == 0
 * here), then quantizes its 1/S of the row: at decode widths one row is spread over S blocks
 * instead of one SM (a 256-thread block took ~14 us for a 14336-wide row). */

static __device__ __forceinline__ unsigned max_mag8(uint4 v) {
  unsigned a = 0;
#pragma unroll
  for (int j = 0; j < 4; j++) {
    uint32_t w = (j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w) & 0x7fff7fffu;
    a = max(a, max(w & 0xffffu, w >> 16));
  }
  return a;
}

/* max |x| bits of row xr over the block, broadcast to every thread */
static __device__ unsigned row_amax_bits(const uint16_t *xr, int64_t k, unsigned *sh) {
  unsigned a = 0;
  for (int64_t i = threadIdx.x; i < k / 8; i += blockDim.x)
    a = max(a, max_mag8(((const uint4 *)xr)[i]));
  for (int o = 16; o > 0; o >>= 1) a = max(a, (unsigned)AOQ_SHFL_XOR(a, o));
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = a;
  __syncthreads();
  a = 0;
  for (int i = 0; i < (int)blockDim.x / 32; i++) a = max(a, sh[i]);
  return a;
}

/* int8 symmetric per token (INT8DQ): aoq_int8_quant_row's scale and elements; q int8 [m, k] */
__global__ void k_quant_int8(const uint16_t *__restrict__ x, int64_t k, int8_t *__restrict__ q,
                             float *xs) {
  AOQ_PDL_WAIT();
  __shared__ unsigned sh[32];
  const uint16_t *xr = x + blockIdx.x * k;
  unsigned a = row_amax_bits(xr, k, sh);
  const float s = aoq_int8_scale(aoq_bf16_to_f32((uint16_t)a)), inv = 1.0f / s;
  if (threadIdx.x == 0 && blockIdx.y == 0) xs[blockIdx.x] = s;
  int8_t *qr = q + blockIdx.x * k;
  for (int64_t i = blockIdx.y * blockDim.x + threadIdx.x; i < k; i += gridDim.y * blockDim.x)
    qr[i] = aoq_int8_q(aoq_bf16_to_f32(xr[i]), inv);
}

/* int8 asymmetric per token, fake-quantized (INT8_INTX, INT8_INT4: §5 and the CPU backend's
 * prepare_x): aoq_int8_asym_quant_row, then xb = bf16(bf16(q - zp) * scale) */
__global__ void k_quant_int8_asym(const uint16_t *__restrict__ x, int64_t k,
                                  uint16_t *__restrict__ xb) {
  AOQ_PDL_WAIT();
  __shared__ float smn[32], smx[32];
  const uint16_t *xr = x + blockIdx.x * k;
  float mn = 0.0f, mx = 0.0f;
  for (int64_t i = threadIdx.x; i < k / 8; i += blockDim.x) {
    uint4 v = ((const uint4 *)xr)[i];
#pragma unroll
    for (int j = 0; j < 4; j++) {
      uint32_t w = j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w;
      float lo = __uint_as_float(w << 16), hi = __uint_as_float(w & 0xffff0000u);
      mn = lo < mn ? lo : mn, mx = lo > mx ? lo : mx; /* NaN: skipped, as the reference does */
      mn = hi < mn ? hi : mn, mx = hi > mx ? hi : mx;
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    mn = fminf(mn, AOQ_SHFL_XOR(mn, o));
    mx = fmaxf(mx, AOQ_SHFL_XOR(mx, o));
  }
  if ((threadIdx.x & 31) == 0) smn[threadIdx.x >> 5] = mn, smx[threadIdx.x >> 5] = mx;
  __syncthreads();
  mn = 0.0f, mx = 0.0f;
  for (int i = 0; i < (int)blockDim.x / 32; i++) mn = fminf(mn, smn[i]), mx = fmaxf(mx, smx[i]);
  int z;
  const float s = aoq_int8_asym_params(mn, mx, &z), inv = aoq_round_bf16(1.0f / s);
  uint16_t *br = xb + blockIdx.x * k;
  for (int64_t i = blockIdx.y * blockDim.x + threadIdx.x; i < k; i += gridDim.y * blockDim.x) {
    int qi = aoq_int8_asym_q(aoq_bf16_to_f32(xr[i]), inv, z);
    br[i] = aoq_f32_to_bf16(aoq_round_bf16((float)(qi - z)) * s);
  }
}

/* fp8 e4m3 per token, MSLK (FP8_INT4): aoq_fp8_quant_row_mslk; xb = the e4m3 values in bf16 */
__global__ void k_quant_fp8_mslk(const uint16_t *__restrict__ x, int64_t k,
                                 uint16_t *__restrict__ xb, float *xs) {
  AOQ_PDL_WAIT();
  __shared__ unsigned sh[32];
  const uint16_t *xr = x + blockIdx.x * k;
  unsigned a = row_amax_bits(xr, k, sh);
  const float s = aoq_fp8_mslk_scale(aoq_bf16_to_f32((uint16_t)a));
  if (threadIdx.x == 0 && blockIdx.y == 0) xs[blockIdx.x] = s;
  uint16_t *br = xb + blockIdx.x * k;
  for (int64_t i = blockIdx.y * blockDim.x + threadIdx.x; i < k; i += gridDim.y * blockDim.x)
    br[i] = aoq_f32_to_bf16(aoq_e4m3_to_f32(aoq_f32_to_e4m3(aoq_bf16_to_f32(xr[i]) / s)));
}

/* blocks per row of the per-token kernels: ~2 per SM over all rows, 1..16, >= 256 elements */
static dim3 row_grid(int64_t m, int64_t k) {
  int64_t s = (264 + m - 1) / m;
  if (s > 16) s = 16;
  if (s > k / 256) s = k / 256;
  return dim3((unsigned)m, (unsigned)(s < 1 ? 1 : s));
}

/* fp8 e4m3 per 1 x 128 block (FP8DQ_BLOCK): one warp per block, scale bf16(amax / 448) */
__global__ void k_quant_fp8_block(const uint16_t *__restrict__ x, int64_t nb,
                                  uint16_t *__restrict__ xb, float *xs) {
  AOQ_PDL_WAIT(); /* before the early return: every block waits (vendor.h) */
  const int64_t b = blockIdx.x * (int64_t)(blockDim.x / 32) + (threadIdx.x >> 5);
  if (b >= nb) return;
  const int lane = threadIdx.x & 31;
  const uint16_t *xr = x + b * 128;
  unsigned a = 0;
  for (int i = lane; i < 128; i += 32) a = max(a, (unsigned)(xr[i] & 0x7fffu));
  for (int o = 16; o > 0; o >>= 1) a = max(a, (unsigned)AOQ_SHFL_XOR(a, o));
  const float s = aoq_fp8_scale(aoq_bf16_to_f32((uint16_t)a), AOQ_E4M3_MAX);
  if (lane == 0) xs[b] = s;
  for (int i = lane; i < 128; i += 32)
    xb[b * 128 + i] = aoq_f32_to_bf16(aoq_e4m3_to_f32(aoq_f32_to_e4m3(aoq_bf16_to_f32(xr[i]) / s)));
}

static unsigned grid_for(int64_t n, int t) {
  int64_t g = (n + t - 1) / t;
  return (unsigned)(g < 1 ? 1 : g > 4096 ? 4096 : g);
}

extern "C" int aoq_gk_act_quant(const aoq_qweight *w, const uint16_t *x, int64_t m, void *ws,
                                void *stream) {
  aoq_gpu_stream_t st = (aoq_gpu_stream_t)stream;
  const int64_t k = w->k;
  size_t off;
  aoq_gk_act_layout(m, k, &off);
  uint16_t *xb = (uint16_t *)ws;
  float *xs = (float *)((char *)ws + off), *xt = xs + m;
  unsigned *amax = (unsigned *)(xt + 1);
  int per_tensor = w->kind == AOQ_FMT_FP8DQ || w->kind == AOQ_FMT_NVFP4;
  aoq_gpu_error_t e = AOQ_GPU_SUCCESS;
  if (per_tensor) {
    e = aoq_gpu_memset_async(amax, 0, sizeof *amax, st);
    if (e != AOQ_GPU_SUCCESS) return (int)e;
    /* a plain launch: its predecessor is the memset, not a kernel */
    k_amax_bits<<<grid_for(m * k, 1024), 256, 0, st>>>(x, m * k, amax);
    if ((e = aoq_gpu_get_last_error()) != AOQ_GPU_SUCCESS) return (int)e;
  }
  switch (w->kind) {
    case AOQ_FMT_FP8DQ:
    case AOQ_FMT_FP8DQ_ROW:
      return aoq_launch(k_quant_fp8, (unsigned)m, 256, 0, st, x, k, per_tensor, xb, xs, xt,
                        (const unsigned *)amax);
    case AOQ_FMT_MXFP8:
    case AOQ_FMT_MXFP4:
      return aoq_launch(k_quant_mx, grid_for(m * k / 32, 128), 128, 0, st, x, m, k,
                        (int)(w->kind == AOQ_FMT_MXFP4), xb);
    case AOQ_FMT_NVFP4:
      return aoq_launch(k_quant_nvfp4, grid_for(m * k / 16, 128), 128, 0, st, x, m, k, xb,
                        (const unsigned *)amax, (const float *)w->aux, xt);
    /* the formats of linear_dec.h (their kernels wait first, like every aoq_launch kernel) */
    case AOQ_FMT_INT8DQ:
      return aoq_launch(k_quant_int8, row_grid(m, k), 256, 0, st, x, k, (int8_t *)xb, xs);
    case AOQ_FMT_INT8_INTX:
    case AOQ_FMT_INT8_INT4:
      return aoq_launch(k_quant_int8_asym, row_grid(m, k), 256, 0, st, x, k, xb);
    case AOQ_FMT_FP8_INT4:
      return aoq_launch(k_quant_fp8_mslk, row_grid(m, k), 256, 0, st, x, k, xb, xs);
    case AOQ_FMT_FP8DQ_BLOCK: /* k % 128 == 0 (aoq_gk_linear_check) */
      return aoq_launch(k_quant_fp8_block, (unsigned)((m * (k / 128) + 7) / 8), 256, 0, st, x,
                        m * (k / 128), xb, xs);
    default:
      return 0;
  }
}
