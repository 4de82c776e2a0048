/*
 * cublas.h — cuBLAS, loaded at run time, as the CUDA backend's engine for the large-m linear
 * (prefill). The toolkit has no static cuBLAS and its shared libraries (~600 MB) are not shipped,
 * so libcublas is dlopen'ed and the few entry points aoq needs are looked up by name, with their
 * types declared here (no cuBLAS header at build time). When the library is missing or disabled,
 * everything runs on aoq's own kernels (kernels/gpu/linear.cu).
 *
 * Library search (AOQ_CUBLAS in the environment): "off" (or "0", "none") disables cuBLAS; a path
 * is tried first; then "libcublas.so.13" through the loader's search path.
 *
 * The linear (aoq_cublas_linear) for m >= the format's threshold: bf16 weights go straight to
 * cublasGemmEx (bf16 in, fp32 compute, bf16 out); packed formats are decoded chunk by chunk of
 * weight rows to the bf16 operand the format's GEMM multiplies (kernels/gpu/dequant.cu, exact)
 * in the workspace, each chunk multiplied by cublasGemmEx; the dynamic formats quantize their
 * activations first (act_quant.cu, bit-exact with the CPU), so every format keeps its reference
 * numerics (spec/formats.md) up to the fp32 summation order. int8dq multiplies its int8 weight
 * and its int8 per-token activations as they are (cublasGemmEx, CUBLAS_COMPUTE_32I: exact int32
 * sums, chunked over weight rows), then kernels/gpu's epilogue: bit-identical to aoq's own kernel
 * and to the CPU backend; where cuBLAS refuses that GEMM, the linear runs on aoq's own kernel.
 * Thresholds and the chunk budget: AOQ_CUBLAS_MIN_M (rows, both kinds), AOQ_CUBLAS_CHUNK_MB
 * (default 128), AOQ_CUBLAS_INT8 ("off": int8dq on aoq's kernel; "strict": a refused int8 GEMM is
 * an error instead of the fallback), read at open.
 *
 * Thread safety: calls may come from several threads on different streams; the handle's stream is
 * set before each GEMM under a mutex. The GEMMs use cuBLAS's default workspace pool (each
 * cublasSetStream resets a user workspace to it), so they are not meant for graph capture: the
 * backend switches to cuBLAS at 65 rows, past every decode graph bucket (<= 64 rows).
 */
#ifndef AOQ_DEVICES_CUDA_CUBLAS_H
#define AOQ_DEVICES_CUDA_CUBLAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/device.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aoq_cublas aoq_cublas;

/* Loads cuBLAS and creates a handle on the calling thread's current CUDA device. AOQ_ENOTFOUND
 * when the library is absent or disabled (the detail says which), AOQ_EDEVICE when cuBLAS fails.
 * Free with aoq_cublas_close (NULL is fine). */
aoq_status aoq_cublas_open(aoq_cublas **out);
void aoq_cublas_close(aoq_cublas *h);
/* "cublas 130001, m >= 65 (bf16) / 128 (packed), chunk 128 MiB, int8 gemm on (libcublas.so.13)"
 * — borrowed, valid until close. */
const char *aoq_cublas_describe(const aoq_cublas *h);

/* Column-major cuBLAS view of row-major aoq tensors: y[m, ldy] (columns c0.. of it, given as the
 * pointer) = x[m, k] @ W[rows, k]^T, bf16 inputs, fp32 accumulation; y bf16, or f32 if y_f32.
 * stream: a cudaStream_t. */
aoq_status aoq_cublas_gemm_bf16(aoq_cublas *h, const void *w, const void *x, void *y, int64_t rows,
                                int64_t m, int64_t k, int64_t ldy, bool y_f32, void *stream);

/* True if the linear of w at m rows runs on cuBLAS (format supported, m >= its threshold). */
bool aoq_cublas_linear_wants(const aoq_cublas *h, const aoq_qweight *w, int64_t m);
/* Workspace bytes of aoq_cublas_linear for m rows (non-decreasing in m, so a workspace sized for
 * the largest m serves every smaller one). */
size_t aoq_cublas_linear_workspace(const aoq_cublas *h, const aoq_qweight *w, int64_t m);
/* y[m, n] bf16 = x[m, k] bf16 @ W^T on `stream`; ws of aoq_cublas_linear_workspace(w, m) bytes.
 * Call only where aoq_cublas_linear_wants(h, w, m). */
aoq_status aoq_cublas_linear(aoq_cublas *h, const aoq_qweight *w, const void *x, void *y, int64_t m,
                             void *ws, void *stream);

#ifdef __cplusplus
}
#endif
#endif
