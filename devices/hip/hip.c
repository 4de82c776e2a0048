/*
 * hip.c — the AMD backend on HIP. Its body is devices/gpu_backend_impl.h, shared with the CUDA
 * backend and written against the CUDA runtime's names, which hip_runtime_names.h maps to HIP's;
 * the kernels are those of kernels/gpu compiled by hipcc (their aoq_gk_* entry points renamed to
 * aoq_hip_gk_* by hip_prelude.h, so that a build with both backends links). Not offered on HIP
 * yet: cuBLAS (hipBLAS would be the counterpart), mem_range, the fused ops (their kernels compile
 * for HIP but have not run on AMD hardware), host-mapped embedding tables.
 * FP8: the kernels decode aoq's e4m3fn bytes on every target, gfx940 included (docs/backends.md).
 */
#include <hip/hip_runtime_api.h>

#include "devices/hip/hip_prelude.h" /* aoq_gk_* -> aoq_hip_gk_*: first, before gpu_kernels.h */
#include "devices/hip/hip_runtime_names.h"

#define AOQ_GPU_VENDOR "hip"
#define AOQ_GPU_KIND AOQ_DEVICE_HIP
#define AOQ_GPU_CREATE aoq_hip_device_create
#define AOQ_GPU_NO_DEVICE "HIP driver or AMD GPU (ROCm needs the amdgpu kernel driver and /dev/kfd)"
#define AOQ_GPU_PROP hipDeviceProp_t
#define AOQ_GPU_GRAPH_INSTANTIATE(exec, graph) hipGraphInstantiate(exec, graph, NULL, NULL, 0)

#include "devices/gpu_backend_impl.h"
