/*
 * vendor.h — the one header of kernels/gpu that knows CUDA from HIP (STYLE.md rule 9).
 *
 * Kernel files include only this header (plus base/numerics.h and gpu_kernels.h) and use the
 * aliases below: the stream and error types, the "last error" call, warp shuffles over a logical
 * warp of 32 lanes (AMD wavefronts of 64 run two logical warps; kernels never assume more than
 * 32 lanes per shuffle group), read-only loads and the bf16 type.
 */
#ifndef AOQ_KERNELS_GPU_VENDOR_H
#define AOQ_KERNELS_GPU_VENDOR_H

#if defined(__HIPCC__)
#include <hip/hip_bf16.h>
#include <hip/hip_runtime.h>
typedef hipStream_t aoq_gpu_stream_t;
typedef hipError_t aoq_gpu_error_t;
#define AOQ_GPU_SUCCESS hipSuccess
#define aoq_gpu_get_last_error hipGetLastError
#define AOQ_SHFL_XOR(v, m) __shfl_xor((v), (m), 32)
#define AOQ_SHFL(v, l) __shfl((v), (l), 32)
#define AOQ_LDG(p) __ldg(p)
#else
#include <cuda_bf16.h>
#include <cuda_runtime.h>
typedef cudaStream_t aoq_gpu_stream_t;
typedef cudaError_t aoq_gpu_error_t;
#define AOQ_GPU_SUCCESS cudaSuccess
#define aoq_gpu_get_last_error cudaGetLastError
#define AOQ_SHFL_XOR(v, m) __shfl_xor_sync(0xffffffffu, (v), (m), 32)
#define AOQ_SHFL(v, l) __shfl_sync(0xffffffffu, (v), (l), 32)
#define AOQ_LDG(p) __ldg(p)
#endif

#if defined(__HIPCC__)
typedef __hip_bfloat162 aoq_bf162;
/* 16-byte read-only load of data used once (weights): no L1 allocation where the ISA has it. */
__device__ __forceinline__ uint4 aoq_ld_stream16(const void *p) {
  return __builtin_nontemporal_load((const uint4 *)p);
}
#else
typedef __nv_bfloat162 aoq_bf162;
__device__ __forceinline__ uint4 aoq_ld_stream16(const void *p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
}
#endif

#define AOQ_LWARP 32 /* lanes of a logical warp */

#endif
