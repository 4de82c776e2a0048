/*
 * format_impl.h — the split of the format registry's work between its files:
 *   core/format.c     registry, parser, plan, overrides, dispatch (calls the two below by kind)
 *   core/quant_int.c  integer families: INT8*, INT4WO*, INTX*, INT8_INT4, FP8_INT4, W158, CODEBOOK
 *   core/quant_fp.c   float families: FP8*, MXFP8, MXFP4, NVFP4*, FP6_*
 * and their views in torchao's layouts, used by the golden checks (tools/golden, tests).
 */
#ifndef AOQ_CORE_FORMAT_IMPL_H
#define AOQ_CORE_FORMAT_IMPL_H

#include "core/format.h"

aoq_status aoq_quantize_ref_int(const uint16_t *w_bf16, aoq_qweight *w);
aoq_status aoq_dequantize_ref_int(const aoq_qweight *w, uint16_t *out_bf16);
aoq_status aoq_quantize_ref_fp(const uint16_t *w_bf16, aoq_qweight *w);
aoq_status aoq_dequantize_ref_fp(const aoq_qweight *w, uint16_t *out_bf16);

/* torchao's inner tensor `attr` of the quantized weight (golden name "q.<attr>", e.g. "qdata",
 * "scale", "zero_point", "scale_and_zero", "per_tensor_scale"), or for int4 the unpacked
 * "ref.q_uint4" / "ref.scale" / "ref.zero", in torchao's layout and dtype. *bytes is malloc'ed.
 * AOQ_ENOTFOUND when the format has no such tensor. */
aoq_status aoq_torchao_tensor_int(const aoq_qweight *w, const char *attr, void **bytes, size_t *n);
aoq_status aoq_torchao_tensor_fp(const aoq_qweight *w, const char *attr, void **bytes, size_t *n);

/* Dynamic activation quantization of x bf16[m,k] as torchao's linear does it for `kind`, exposed
 * as torchao's inner tensors (golden "xq<m>.<attr>": "qdata", "scale", "zero_point",
 * "per_tensor_scale", "dequant"). *bytes is malloc'ed. AOQ_ENOTFOUND when not applicable. */
aoq_status aoq_torchao_act_tensor(const aoq_format *f, const uint16_t *x, int64_t m, int64_t k,
                                  const char *attr, void **bytes, size_t *n);

#endif
