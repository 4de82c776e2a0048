/*
 * cuda.c — the CUDA backend. Its body is devices/gpu_backend_impl.h, shared with the HIP backend;
 * this file picks the CUDA runtime and the parts only CUDA has: the cuBLAS engine for large m
 * (cublas.h), mem_range (device buffers passed by clients), the fused ops and kernels reading
 * registered host memory (AOQ_CAP_HOST_MAPPED).
 */
#include <cuda_runtime_api.h>

#include "devices/cuda/cublas.h"

#define AOQ_GPU_CUDA 1
#define AOQ_GPU_VENDOR "cuda"
#define AOQ_GPU_KIND AOQ_DEVICE_CUDA
#define AOQ_GPU_CREATE aoq_cuda_device_create
#define AOQ_GPU_NO_DEVICE "CUDA driver or device"
#define AOQ_GPU_PROP struct cudaDeviceProp
#define AOQ_GPU_GRAPH_INSTANTIATE(exec, graph) cudaGraphInstantiate(exec, graph, 0)

#include "devices/gpu_backend_impl.h"
