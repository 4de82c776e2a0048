/*
 * quantize_impl.h — what the two weight-quantization kernel files share: quantize.cu (the float
 * formats and the entry points of gpu_kernels.h) hands the integer formats to quantize_int.cu.
 */
#ifndef AOQ_KERNELS_GPU_QUANTIZE_IMPL_H
#define AOQ_KERNELS_GPU_QUANTIZE_IMPL_H

#include "kernels/gpu/gpu_kernels.h"
#include "kernels/gpu/vendor.h"

/* The integer formats quantize_int.cu writes bit-exact with core/quant_int.c: int8wo/int8dq,
 * int4wo (tinygemm), intxwo, int8-intx, int8-int4, fp8-int4 and w158 (not HQQ, not codebook). */
uint64_t aoq_quantize_int_formats(void);

/* bf16 src[n,k] -> w (one of aoq_quantize_int_formats). scratch: 256 device bytes, used by w158
 * (its fp64 sum and the tensor scale); one call at a time per scratch. Returns the launch error. */
int aoq_quantize_int(const uint16_t *src, aoq_qweight *w, void *scratch, aoq_gpu_stream_t st);

#endif
