/*
 * quant_fp_util.h — helpers shared by the float-format files (core/quant_fp.c, core/act_quant.c,
 * core/qcache.c, tools/bench): buffer sizes of aoq's float layouts, one-row quantizers that the
 * weight and activation paths share, and the §6 scale swizzle. Not a public contract.
 */
#ifndef AOQ_CORE_QUANT_FP_UTIL_H
#define AOQ_CORE_QUANT_FP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/format.h"

/* True for the kinds quant_fp.c implements. */
bool aoq_fp_kind(aoq_format_kind kind);
/* Element bits of a float kind (8, 6 or 4). */
int aoq_fp_elem_bits(aoq_format_kind kind);
/* Byte sizes of aoq's buffers for a float kind (docs/layouts.md "Float formats"). AOQ_ESHAPE for
 * shapes the format cannot hold, AOQ_EINVAL for a non-float kind. */
aoq_status aoq_fp_sizes(aoq_format_kind kind, int64_t n, int64_t k, size_t *qdata, size_t *scale,
                        size_t *aux);
/* Row r of a float qweight dequantized to fp32 (before the final bf16 rounding). */
aoq_status aoq_fp_dequant_row(const aoq_qweight *w, int64_t r, float *out);
/* Row-major [R, C] scale bytes to torchao's swizzled layout (§6); *bytes malloc'ed. */
aoq_status aoq_swizzle_scales(const uint8_t *src, int64_t R, int64_t C, void **bytes, size_t *n);

#endif
