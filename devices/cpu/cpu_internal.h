/*
 * cpu_internal.h — what the files of the CPU backend share: the context, the thread pool, and the
 * entry of the quantized linear kernels (cpu_quant*.c).
 */
#ifndef AOQ_DEVICES_CPU_INTERNAL_H
#define AOQ_DEVICES_CPU_INTERNAL_H

#include "devices/device.h"

typedef struct aoq_cpu_ctx aoq_cpu_ctx;

/* fn(arg, begin, end) over [0, n) split into chunks of at least `grain` items, run on the
 * context's worker threads plus the caller; returns when all chunks are done. */
typedef void (*aoq_cpu_task)(void *arg, int64_t begin, int64_t end);
void aoq_cpu_parallel(aoq_cpu_ctx *c, int64_t n, int64_t grain, aoq_cpu_task fn, void *arg);
int aoq_cpu_threads(const aoq_cpu_ctx *c);

/* Formats (other than BF16) whose linear the CPU backend implements: bit per aoq_format_kind. */
uint64_t aoq_cpu_quant_formats(void);
/* Scratch bytes for m rows of x through w (activation quantization buffers). */
size_t aoq_cpu_quant_workspace(const aoq_qweight *w, int64_t m);
/* y[m,n] = x[m,k] (bf16) @ W^T for a quantized W, dequantizing in registers; ws as sized above. */
aoq_status aoq_cpu_linear_quant(aoq_cpu_ctx *c, const aoq_qweight *w, const uint16_t *x,
                                uint16_t *y, int64_t m, void *ws);

#endif
