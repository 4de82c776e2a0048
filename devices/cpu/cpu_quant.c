/* Quantized linear kernels of the CPU backend — filled in per format by the formats work. */
#include "base/error.h"
#include "devices/cpu/cpu_internal.h"

uint64_t aoq_cpu_quant_formats(void) { return 0; }

size_t aoq_cpu_quant_workspace(const aoq_qweight *w, int64_t m) {
  (void)w;
  (void)m;
  return 0;
}

aoq_status aoq_cpu_linear_quant(aoq_cpu_ctx *c, const aoq_qweight *w, const uint16_t *x,
                                uint16_t *y, int64_t m, void *ws) {
  (void)c, (void)x, (void)y, (void)m, (void)ws;
  return aoq_err(AOQ_EUNSUPPORTED, "cpu: linear for format kind %d is not built", (int)w->kind);
}
