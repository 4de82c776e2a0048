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

#include <stdint.h>

#if defined(__HIPCC__)
#include <hip/hip_runtime.h>
#if __has_include(<hip/hip_bf16.h>)
#include <hip/hip_bf16.h>
#define AOQ_HIP_HAS_BF16 1 /* ROCm >= 5.7; ROCm 5.2 (Debian 12) has neither header nor bf16x2 */
#endif
typedef hipStream_t aoq_gpu_stream_t;
typedef hipError_t aoq_gpu_error_t;
#define AOQ_GPU_SUCCESS hipSuccess
#define aoq_gpu_get_last_error hipGetLastError
/* CUDA runtime names used by the launchers in kernels/gpu, mapped for the HIP build */
#define cudaErrorInvalidValue hipErrorInvalidValue
#define cudaMemsetAsync hipMemsetAsync
#define cudaMemcpyAsync hipMemcpyAsync
#define cudaMemcpyDeviceToDevice hipMemcpyDeviceToDevice
#define aoq_gpu_memset_async hipMemsetAsync
#define AOQ_SHFL_XOR(v, m) __shfl_xor((v), (m), 32)
#define AOQ_SHFL(v, l) __shfl((v), (l), 32)
#define AOQ_LDG(p) __ldg(p)
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>
typedef cudaStream_t aoq_gpu_stream_t;
typedef cudaError_t aoq_gpu_error_t;
#define AOQ_GPU_SUCCESS cudaSuccess
#define aoq_gpu_get_last_error cudaGetLastError
#define aoq_gpu_memset_async cudaMemsetAsync
#define AOQ_SHFL_XOR(v, m) __shfl_xor_sync(0xffffffffu, (v), (m), 32)
#define AOQ_SHFL(v, l) __shfl_sync(0xffffffffu, (v), (l), 32)
#define AOQ_LDG(p) __ldg(p)
#endif
/* after the runtime headers (AOQ_HD needs __host__ / __device__): aoq_silu_mul_bf16's rounding */
#include "base/numerics.h"

#if defined(__HIPCC__) && defined(AOQ_HIP_HAS_BF16)
typedef __hip_bfloat162 aoq_bf162;
#elif defined(__HIPCC__)
/* ROCm without hip_bf16.h (5.2): a bf16 pair and the three CUDA bf16x2 operations the
 * kernels use, each computed in fp32 and rounded to bf16 (RNE) like the native instructions. */
#include "base/numerics.h"
struct aoq_bf162 {
  uint16_t x, y;
};
__device__ __forceinline__ aoq_bf162 aoq_bf162_of(float a, float b) {
  return {aoq_f32_to_bf16(a), aoq_f32_to_bf16(b)};
}
__device__ __forceinline__ aoq_bf162 __floats2bfloat162_rn(float a, float b) {
  return aoq_bf162_of(a, b);
}
__device__ __forceinline__ aoq_bf162 __hadd2(aoq_bf162 a, aoq_bf162 b) {
  return aoq_bf162_of(aoq_bf16_to_f32(a.x) + aoq_bf16_to_f32(b.x),
                      aoq_bf16_to_f32(a.y) + aoq_bf16_to_f32(b.y));
}
__device__ __forceinline__ aoq_bf162 __hsub2(aoq_bf162 a, aoq_bf162 b) {
  return aoq_bf162_of(aoq_bf16_to_f32(a.x) - aoq_bf16_to_f32(b.x),
                      aoq_bf16_to_f32(a.y) - aoq_bf16_to_f32(b.y));
}
__device__ __forceinline__ aoq_bf162 __hmul2(aoq_bf162 a, aoq_bf162 b) {
  return aoq_bf162_of(aoq_bf16_to_f32(a.x) * aoq_bf16_to_f32(b.x),
                      aoq_bf16_to_f32(a.y) * aoq_bf16_to_f32(b.y));
}
/* the _rn forms (no contraction into fma) are the same here: each operation rounds on its own */
__device__ __forceinline__ aoq_bf162 __hadd2_rn(aoq_bf162 a, aoq_bf162 b) {
  return __hadd2(a, b);
}
__device__ __forceinline__ aoq_bf162 __hsub2_rn(aoq_bf162 a, aoq_bf162 b) {
  return __hsub2(a, b);
}
__device__ __forceinline__ aoq_bf162 __hmul2_rn(aoq_bf162 a, aoq_bf162 b) {
  return __hmul2(a, b);
}
__device__ __forceinline__ float __low2float(aoq_bf162 a) {
  return aoq_bf16_to_f32(a.x);
}
__device__ __forceinline__ float __high2float(aoq_bf162 a) {
  return aoq_bf16_to_f32(a.y);
}
#endif
#if defined(__HIPCC__)
/* 16-byte read-only load of data used once (weights): no L1 allocation where the ISA has it. */
__device__ __forceinline__ uint4 aoq_ld_stream16(const void *p) {
  /* the builtin takes clang vector types only, not HIP's uint4 struct */
  typedef unsigned int u32x4 __attribute__((ext_vector_type(4)));
  u32x4 v = __builtin_nontemporal_load((const u32x4 *)p);
  return make_uint4(v.x, v.y, v.z, v.w);
}
#if HIP_VERSION_MAJOR < 6
/* ROCm 5 has no __syncwarp: the lanes of a logical warp are lanes of one wavefront, which run in
 * lockstep; order their LDS accesses with a wavefront-scope fence. */
__device__ __forceinline__ void __syncwarp() {
  __builtin_amdgcn_fence(__ATOMIC_SEQ_CST, "wavefront");
  __builtin_amdgcn_wave_barrier();
}
#endif
__device__ __forceinline__ void aoq_prefetch_l2(const void *p) {
  (void)p;
}
/* two e4m3fn bytes (low byte = first element) -> two floats, exact */
__device__ __forceinline__ float2 aoq_e4m3x2_to_f32x2(uint32_t b2) {
  float2 r;
  uint32_t lo = b2 & 0xffu, hi = (b2 >> 8) & 0xffu;
  r.x = __uint_as_float((lo & 0x7fu) << 20) * 0x1p120f;
  r.y = __uint_as_float((hi & 0x7fu) << 20) * 0x1p120f;
  if ((lo & 0x7fu) == 0x7fu) r.x = __uint_as_float(0x7fc00000u);
  if ((hi & 0x7fu) == 0x7fu) r.y = __uint_as_float(0x7fc00000u);
  if (lo & 0x80u) r.x = -r.x;
  if (hi & 0x80u) r.y = -r.y;
  return r;
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
/* A hint to bring the 128-byte line at p into L2 (coherent for every SM: safe even for memory a
 * running kernel still writes). */
__device__ __forceinline__ void aoq_prefetch_l2(const void *p) {
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}
/* two e4m3fn bytes (low byte = first element) -> two floats, exact (e4m3 is a subset of fp16) */
__device__ __forceinline__ float2 aoq_e4m3x2_to_f32x2(uint32_t b2) {
  __half2_raw h = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(b2 & 0xffffu), __NV_E4M3);
  return __half22float2(*(__half2 *)&h);
}
#define AOQ_HAVE_MMA_BF16 1 /* mma.sync m16n8k16 bf16 (sm_80+) */
#endif

#define AOQ_LWARP 32 /* lanes of a logical warp */

/* silu_mul of one element (bf16 gate and up as floats): a = rnd(g / (1 + exp(-g))), rnd(a * u),
 * the CPU backend's steps; ops.cu's silu_mul and linear.cu's gated GEMV share it */
static __device__ __forceinline__ uint16_t aoq_silu_mul_bf16(float g, float u) {
  float a = aoq_round_bf16(g / (1.0f + expf(-g)));
  return aoq_f32_to_bf16(a * u);
}

/* Programmatic dependent launch (sm_90+). A kernel started with aoq_launch may begin while the
 * kernel before it in the stream is still running (its launch and ramp overlap that kernel's
 * tail; captured into a graph this is a programmatic edge). So every kernel aoq_launch starts
 * runs AOQ_PDL_WAIT() before it touches memory: it waits until the previous kernel has completed
 * and its writes are visible, then lets the next kernel launch (once every block of this one got
 * there). Every block of every kernel must execute it (a grid that finished without waiting
 * could complete before its own predecessor), before any read of an activation and any write
 * (the predecessor may still read the buffer). What no kernel writes — weights, and the step
 * metadata (positions, slots, block tables) that only host copies write — may be read before it,
 * so those loads overlap the predecessor's tail. Built with -DAOQ_PDL_TRIGGER_FIRST=1, the next
 * kernel may launch before this one waits (still ordered: a kernel completes only after its own
 * wait, so a wait that returned implies every earlier kernel completed); then kernels cascade,
 * each queued at its own wait, and the H100 step was slower (docs/cuda.md, session 3). Without
 * PDL (off, HIP, before sm_90) the wait returns at once and aoq_launch is <<<>>>. */
#ifndef AOQ_PDL_TRIGGER_FIRST
#define AOQ_PDL_TRIGGER_FIRST 0
#endif
#if !defined(__HIPCC__) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && AOQ_PDL_TRIGGER_FIRST
#define AOQ_PDL_WAIT() \
  asm volatile("griddepcontrol.launch_dependents;\n\tgriddepcontrol.wait;" ::: "memory")
#elif !defined(__HIPCC__) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define AOQ_PDL_WAIT() \
  asm volatile("griddepcontrol.wait;\n\tgriddepcontrol.launch_dependents;" ::: "memory")
#else
#define AOQ_PDL_WAIT() ((void)0)
#endif

#ifdef __cplusplus
extern "C" int aoq_gk_pdl(void); /* gpu_kernels.h: whether launches carry the PDL attribute */
#endif

/* Launches k<<<grid, block, smem, st>>>(args...), with the programmatic-serialization attribute
 * when aoq_gk_pdl() is on; returns the launch error (0 = success). */
template <typename... P, typename... A>
static inline int aoq_launch(void (*k)(P...), dim3 grid, dim3 block, size_t smem,
                             aoq_gpu_stream_t st, A... args) {
#if defined(__HIPCC__)
  k<<<grid, block, smem, st>>>(args...);
  return (int)hipGetLastError();
#else
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = st;
  cudaLaunchAttribute at[1];
  at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  at[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = at;
  cfg.numAttrs = aoq_gk_pdl() ? 1 : 0;
  cudaError_t e = cudaLaunchKernelEx(&cfg, k, args...);
  cudaError_t l = cudaGetLastError(); /* also clears a launch error recorded there */
  return (int)(e != cudaSuccess ? e : l);
#endif
}

/* Lanes of the hardware warp/wavefront of the target being compiled: 64 on CDNA (gfx90a, gfx940),
 * 32 on RDNA (gfx1030) and NVIDIA. Kernels index shuffles with AOQ_LWARP; this is for code that
 * must know the real width (occupancy, ballots). The HIP host pass has no target: 64 there. */
#if defined(__HIPCC__) && defined(__AMDGCN_WAVEFRONT_SIZE)
#define AOQ_WARP_SIZE __AMDGCN_WAVEFRONT_SIZE
#elif defined(__HIPCC__)
#define AOQ_WARP_SIZE 64
#else
#define AOQ_WARP_SIZE 32
#endif

#endif
