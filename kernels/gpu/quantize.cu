/*
 * quantize.cu — weight quantization on the device (AOQ_CAP_QUANTIZE) for the float formats whose
 * reference quantizer (core/quant_fp.c) is built from base/numerics.h's row codecs: fp8 per row /
 * per tensor, MXFP8, MXFP4, NVFP4(WO). Every block of the reference (a row, a 32- or 16-element
 * block) is independent and its amax is a max, so the device writes the same bytes.
 * The integer formats go to quantize_int.cu.
 */
#include "base/numerics.h"
#include "kernels/gpu/gpu_kernels.h"
#include "kernels/gpu/quantize_impl.h"
#include "kernels/gpu/vendor.h"

__global__ void k_wamax(const uint16_t *__restrict__ x, int64_t n, unsigned *out) {
  unsigned a = 0;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    a = max(a, (unsigned)(x[i] & 0x7fffu));
  for (int o = 16; o > 0; o >>= 1) a = max(a, (unsigned)AOQ_SHFL_XOR(a, o));
  if ((threadIdx.x & 31) == 0) atomicMax(out, a);
}

/* one block per row; per_tensor: the scale comes from *amax_all and row 0 stores it */
__global__ void k_wquant_fp8(const uint16_t *__restrict__ w, int64_t k, int per_tensor,
                             const unsigned *amax_all, uint8_t *__restrict__ q, float *scale) {
  __shared__ unsigned sh[32];
  const uint16_t *wr = w + blockIdx.x * k;
  unsigned a;
  if (per_tensor) {
    a = *amax_all;
  } else {
    a = 0;
    for (int64_t i = threadIdx.x; i < k; i += blockDim.x) a = max(a, (unsigned)(wr[i] & 0x7fffu));
    for (int o = 16; o > 0; o >>= 1) a = max(a, (unsigned)AOQ_SHFL_XOR(a, o));
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = a;
    __syncthreads();
    a = 0;
    for (int i = 0; i < (int)blockDim.x / 32; i++) a = max(a, sh[i]);
  }
  float s = aoq_fp8_scale(aoq_bf16_to_f32((uint16_t)a), AOQ_E4M3_MAX);
  if (threadIdx.x == 0 && (!per_tensor || blockIdx.x == 0)) scale[per_tensor ? 0 : blockIdx.x] = s;
  uint8_t *qr = q + blockIdx.x * k;
  for (int64_t i = threadIdx.x; i < k; i += blockDim.x)
    qr[i] = aoq_f32_to_e4m3(aoq_bf16_to_f32(wr[i]) / s);
}

/* one thread per 32-block (MX) or 16-block (NVFP4) */
__global__ void k_wquant_blocks(const uint16_t *__restrict__ w, int64_t nblocks, int kind,
                                const unsigned *amax_all, uint8_t *__restrict__ q,
                                uint8_t *__restrict__ scale, float *aux) {
  float pts = 0;
  if (kind == AOQ_FMT_NVFP4 || kind == AOQ_FMT_NVFP4WO) {
    pts = aoq_nvfp4_tensor_scale(aoq_bf16_to_f32((uint16_t)*amax_all));
    if (blockIdx.x == 0 && threadIdx.x == 0) *aux = pts;
  }
  for (int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; b < nblocks;
       b += (int64_t)gridDim.x * blockDim.x) {
    switch (kind) {
      case AOQ_FMT_MXFP8:
        aoq_mx_quant_row(w + b * 32, 32, 0, q + b * 32, scale + b);
        break;
      case AOQ_FMT_MXFP4:
        aoq_mx_quant_row(w + b * 32, 32, 1, q + b * 16, scale + b);
        break;
      default:
        aoq_nvfp4_quant_row(w + b * 16, 16, pts, q + b * 8, scale + b);
        break;
    }
  }
}

extern "C" uint64_t aoq_gk_quantize_formats(void) {
  return (1ull << AOQ_FMT_FP8WO) | (1ull << AOQ_FMT_FP8DQ) | (1ull << AOQ_FMT_FP8DQ_ROW) |
         (1ull << AOQ_FMT_MXFP8) | (1ull << AOQ_FMT_MXFP4) | (1ull << AOQ_FMT_NVFP4) |
         (1ull << AOQ_FMT_NVFP4WO) | aoq_quantize_int_formats();
}

static unsigned grid_for(int64_t n, int t) {
  int64_t g = (n + t - 1) / t;
  return (unsigned)(g < 1 ? 1 : g > 8192 ? 8192 : g);
}

extern "C" int aoq_gk_quantize(const uint16_t *src, aoq_qweight *w, void *scratch, void *stream) {
  aoq_gpu_stream_t st = (aoq_gpu_stream_t)stream;
  if (aoq_quantize_int_formats() >> w->kind & 1) return aoq_quantize_int(src, w, scratch, st);
  const int64_t n = w->n, k = w->k;
  unsigned *amax = (unsigned *)scratch;
  const bool need_amax =
      w->kind == AOQ_FMT_FP8DQ || w->kind == AOQ_FMT_NVFP4 || w->kind == AOQ_FMT_NVFP4WO;
  if (need_amax) {
    aoq_gpu_error_t e = aoq_gpu_memset_async(amax, 0, sizeof *amax, st);
    if (e != AOQ_GPU_SUCCESS) return (int)e;
    k_wamax<<<grid_for(n * k, 1024), 256, 0, st>>>(src, n * k, amax);
  }
  switch (w->kind) {
    case AOQ_FMT_FP8WO:
    case AOQ_FMT_FP8DQ_ROW:
    case AOQ_FMT_FP8DQ:
      k_wquant_fp8<<<(unsigned)n, 256, 0, st>>>(src, k, w->kind == AOQ_FMT_FP8DQ, amax,
                                                (uint8_t *)w->qdata, (float *)w->scale);
      break;
    case AOQ_FMT_MXFP8:
    case AOQ_FMT_MXFP4:
      k_wquant_blocks<<<grid_for(n * k / 32, 128), 128, 0, st>>>(
          src, n * k / 32, (int)w->kind, amax, (uint8_t *)w->qdata, (uint8_t *)w->scale, 0);
      break;
    default:
      k_wquant_blocks<<<grid_for(n * k / 16, 128), 128, 0, st>>>(
          src, n * k / 16, (int)w->kind, amax, (uint8_t *)w->qdata, (uint8_t *)w->scale,
          (float *)w->aux);
      break;
  }
  return (int)aoq_gpu_get_last_error();
}
