/*
 * cpu_quant_deq.c — the byte sizes each packed layout needs (docs/layouts.md, devices/device.h),
 * checked before a CPU quantized linear runs; the readers are in cpu_quant_deq.h.
 */
#include "base/error.h"
#include "base/numerics.h"
#include "devices/cpu/cpu_quant_impl.h"

static size_t bitrow(int64_t k, int bits) {
  return (size_t)(((k * bits + 31) / 32) * 4);
}

aoq_status aoq_cpu_quant_check(const aoq_qweight *w) {
  const int64_t n = w->n, k = w->k;
  const size_t N = (size_t)n, K = (size_t)k;
  int64_t g = w->group > 0 ? w->group : k;
  size_t q = 0, s = 0, a = 0;
  int bits = w->bits;
  switch (w->kind) {
    case AOQ_FMT_INT8DQ:
      if (k >= 131072) /* int32 sums of int8 products: 128 * 128 * k must stay below 2^31 */
        return aoq_err(AOQ_EUNSUPPORTED, "cpu linear: int8dq with k=%lld > 131071", (long long)k);
      q = N * K, s = 4 * N;
      break;
    case AOQ_FMT_INT8WO:
    case AOQ_FMT_FP8WO:
    case AOQ_FMT_FP8DQ_ROW:
      q = N * K, s = 4 * N;
      break;
    case AOQ_FMT_FP8DQ:
      q = N * K, s = 4;
      break;
    case AOQ_FMT_FP8DQ_BLOCK:
      q = N * K, s = 4 * ((N + 127) / 128) * ((K + 127) / 128);
      break;
    case AOQ_FMT_MXFP8:
    case AOQ_FMT_MXFP4:
      if (k % 32) return aoq_err(AOQ_ESHAPE, "cpu linear: mx weight k=%lld", (long long)k);
      q = w->kind == AOQ_FMT_MXFP8 ? N * K : N * K / 2, s = N * K / 32;
      break;
    case AOQ_FMT_NVFP4:
    case AOQ_FMT_NVFP4WO:
      if (k % 16) return aoq_err(AOQ_ESHAPE, "cpu linear: nvfp4 weight k=%lld", (long long)k);
      q = N * K / 2, s = N * K / 16, a = 4;
      break;
    case AOQ_FMT_FP6_E3M2:
    case AOQ_FMT_FP6_E2M3:
      q = N * bitrow(k, 6), s = 2 * N;
      break;
    case AOQ_FMT_INT4WO:
    case AOQ_FMT_INT4WO_HQQ:
      if (k % g || k % 2)
        return aoq_err(AOQ_ESHAPE, "cpu linear: int4 group %lld, k %lld", (long long)g,
                       (long long)k);
      q = N * K / 2, s = N * (K / (size_t)g) * 4;
      break;
    case AOQ_FMT_FP8_INT4:
      if (k % g)
        return aoq_err(AOQ_ESHAPE, "cpu linear: group %lld, k %lld", (long long)g, (long long)k);
      q = N * bitrow(k, 4), s = N * (K / (size_t)g) * 4;
      break;
    case AOQ_FMT_INT8_INT4:
    case AOQ_FMT_INTXWO:
    case AOQ_FMT_INT8_INTX:
    case AOQ_FMT_CODEBOOK:
      if (bits < 1 || bits > 8) return aoq_err(AOQ_EINVAL, "cpu linear: %d-bit weight", bits);
      if (k % g)
        return aoq_err(AOQ_ESHAPE, "cpu linear: group %lld, k %lld", (long long)g, (long long)k);
      q = N * bitrow(k, bits), s = N * (K / (size_t)g) * 2;
      if (w->kind == AOQ_FMT_CODEBOOK) a = ((size_t)1 << bits) * 2;
      break;
    case AOQ_FMT_W158:
      q = N * bitrow(k, 2), s = 2;
      break;
    default:
      return aoq_err(AOQ_EUNSUPPORTED, "cpu linear: format kind %d", (int)w->kind);
  }
  if (w->qdata_bytes < q || !w->scale || w->scale_bytes < s || (a && (!w->aux || w->aux_bytes < a)))
    return aoq_err(AOQ_ESHAPE,
                   "cpu linear: kind %d weight [%lld, %lld] buffers too small (qdata %zu/%zu, "
                   "scale %zu/%zu, aux %zu/%zu)",
                   (int)w->kind, (long long)n, (long long)k, w->qdata_bytes, q, w->scale_bytes, s,
                   w->aux_bytes, a);
  return AOQ_OK;
}
