/*
 * rope_impl.h — the rotation of one RoPE pair, shared by ops.cu (rope, qkv_rope_store) and
 * attention.cu (the decode attention that ropes its own q and k): HF rotate_half with cos and sin
 * rounded to bf16 and each product and sum rounded, the CPU backend's numerics.
 */
#ifndef AOQ_KERNELS_GPU_ROPE_IMPL_H
#define AOQ_KERNELS_GPU_ROPE_IMPL_H

#include "base/numerics.h"
#include "kernels/gpu/vendor.h"

/* Rotates the pair (d, d + half) of one head by (c, sn) = bf16(cos, sin): src -> dst (may
 * alias). */
static __device__ __forceinline__ void rope_rot(const uint16_t *src, uint16_t *dst, int d, int half,
                                                float c, float sn) {
  float x1 = aoq_bf16_to_f32(src[d]), x2 = aoq_bf16_to_f32(src[d + half]);
  float a = aoq_round_bf16(x1 * c) - aoq_round_bf16(x2 * sn);
  float b = aoq_round_bf16(x2 * c) + aoq_round_bf16(x1 * sn);
  dst[d] = aoq_f32_to_bf16(a);
  dst[d + half] = aoq_f32_to_bf16(b);
}

#endif
