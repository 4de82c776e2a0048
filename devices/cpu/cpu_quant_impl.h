/*
 * cpu_quant_impl.h — what the files of the CPU quantized linear share (cpu_quant.c: activation
 * quantization, kernel, epilogues; cpu_quant_deq.c: per-format weight readers).
 */
#ifndef AOQ_DEVICES_CPU_QUANT_IMPL_H
#define AOQ_DEVICES_CPU_QUANT_IMPL_H

#include "devices/cpu/cpu_internal.h"

/* Checks that w's buffers hold its layout (docs/layouts.md); AOQ_ESHAPE / AOQ_EUNSUPPORTED. */
aoq_status aoq_cpu_quant_check(const aoq_qweight *w);
/* Weight row r, columns [c0, c0+len), decoded to the fp32 operand of that format's GEMM. */
void aoq_cpu_quant_deq(const aoq_qweight *w, int64_t r, int64_t c0, int64_t len, float *out);

#endif
