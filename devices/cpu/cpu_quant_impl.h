/*
 * cpu_quant_impl.h — what the files of the CPU quantized linear share (cpu_quant.c: activation
 * quantization, kernel, epilogues; cpu_quant_deq.c: layout sizes; cpu_quant_deq.h: readers).
 */
#ifndef AOQ_DEVICES_CPU_QUANT_IMPL_H
#define AOQ_DEVICES_CPU_QUANT_IMPL_H

#include "devices/cpu/cpu_internal.h"

/* Checks that w's buffers hold its layout (docs/layouts.md); AOQ_ESHAPE / AOQ_EUNSUPPORTED. */
aoq_status aoq_cpu_quant_check(const aoq_qweight *w);

#endif
