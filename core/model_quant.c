/*
 * model_quant.c — quantizing a model's linears at load/reconfigure time. Formats the device
 * quantizes itself go through aoq_qweight_quantize. Formats quantized by the host reference
 * quantizer are split into row blocks quantized on several threads: for the formats listed in
 * row_separable() every row (or 128-row block) is quantized independently, so the bytes are the
 * same as one call over the whole weight (tested in test_model.c) — the 8B model's host-side
 * int4/int8 quantization otherwise takes minutes on one core.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "core/llama_internal.h"

/* Kinds whose packed buffers are row-major with a fixed byte count per row (scales per row or
 * per group along k, or per 128-row block), with no per-tensor statistic. */
static bool row_separable(aoq_format_kind k) {
  switch (k) {
    case AOQ_FMT_INT8WO:
    case AOQ_FMT_INT8DQ:
    case AOQ_FMT_FP8WO:
    case AOQ_FMT_FP8DQ_ROW:
    case AOQ_FMT_FP8DQ_BLOCK:
    case AOQ_FMT_INT4WO:
    case AOQ_FMT_INTXWO:
    case AOQ_FMT_INT8_INTX:
    case AOQ_FMT_INT8_INT4:
    case AOQ_FMT_FP8_INT4:
    case AOQ_FMT_MXFP8:
    case AOQ_FMT_MXFP4:
    case AOQ_FMT_FP6_E3M2:
    case AOQ_FMT_FP6_E2M3:
      return true;
    default:
      return false;
  }
}

typedef struct qjob {
  const uint16_t *src;
  aoq_qweight w; /* a row block of the whole host weight */
  aoq_status st;
  char err[256];
} qjob;

static void *qjob_run(void *arg) {
  qjob *j = arg;
  j->st = aoq_quantize_ref(j->src, &j->w);
  if (j->st) snprintf(j->err, sizeof j->err, "%s", aoq_last_error());
  return NULL;
}

/* Host weight `h` (planned, allocated) quantized from src with nt threads over row blocks.
 * Returns AOQ_EUNSUPPORTED (nothing done) when the plan is not row-separable after all. */
static aoq_status quantize_rows(const aoq_format *f, const uint16_t *src, aoq_qweight *h, int nt) {
  int64_t n = h->n, k = h->k, unit = 128; /* block rows: 128 covers FP8DQ_BLOCK's row blocks */
  if (n % unit || h->aux_bytes) return AOQ_EUNSUPPORTED;
  size_t per[3] = {h->qdata_bytes / (size_t)n, h->scale_bytes / (size_t)n,
                   h->zero_bytes / (size_t)n};
  if (per[0] * (size_t)n != h->qdata_bytes || per[1] * (size_t)n != h->scale_bytes ||
      per[2] * (size_t)n != h->zero_bytes)
    return AOQ_EUNSUPPORTED;
  enum { MAX_T = 16 };
  if (nt > MAX_T) nt = MAX_T;
  if (nt > n / unit) nt = (int)(n / unit);
  if (nt < 2) return AOQ_EUNSUPPORTED;
  static const qjob zero_job;
  qjob jobs[MAX_T];
  for (int t = 0; t < MAX_T; t++) jobs[t] = zero_job;
  pthread_t th[MAX_T];
  bool started[MAX_T] = {false};
  int64_t blocks = n / unit;
  for (int t = 0; t < nt; t++) {
    int64_t r0 = blocks * t / nt * unit, r1 = blocks * (t + 1) / nt * unit;
    qjob *j = &jobs[t];
    memset(j, 0, sizeof *j);
    j->src = src + r0 * k;
    AOQ_TRY(aoq_format_plan(f, r1 - r0, k, &j->w));
    if (j->w.qdata_bytes != per[0] * (size_t)(r1 - r0) ||
        j->w.scale_bytes != per[1] * (size_t)(r1 - r0) ||
        j->w.zero_bytes != per[2] * (size_t)(r1 - r0) || j->w.aux_bytes)
      return AOQ_EUNSUPPORTED;
    j->w.qdata = (char *)h->qdata + per[0] * (size_t)r0;
    j->w.scale = h->scale ? (char *)h->scale + per[1] * (size_t)r0 : NULL;
    j->w.zero = h->zero ? (char *)h->zero + per[2] * (size_t)r0 : NULL;
  }
  for (int t = 1; t < nt; t++) started[t] = pthread_create(&th[t], NULL, qjob_run, &jobs[t]) == 0;
  qjob_run(&jobs[0]);
  for (int t = 1; t < nt; t++) {
    if (started[t])
      pthread_join(th[t], NULL);
    else
      qjob_run(&jobs[t]);
  }
  for (int t = 0; t < nt; t++)
    if (jobs[t].st) return aoq_err(jobs[t].st, "%s", jobs[t].err);
  return AOQ_OK;
}

aoq_status aoq_model_quantize_linear(aoq_device *d, const aoq_device_info *di, const aoq_format *f,
                                     const uint16_t *src, int64_t n, int64_t k, int threads,
                                     aoq_qweight *w) {
  bool on_device = (di->caps & AOQ_CAP_QUANTIZE) && (di->quantize_formats & (1ull << f->kind));
  if (threads <= 0) {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n * k < (1 << 22) ? 1 : (int)(c < 1 ? 1 : c);
  }
  if (on_device || threads < 2 || !row_separable(f->kind))
    return aoq_qweight_quantize(d, f, src, n, k, NULL, w);
  aoq_qweight h;
  AOQ_TRY(aoq_format_plan(f, n, k, &h));
  AOQ_TRY(aoq_qweight_host_alloc(&h));
  aoq_status s = quantize_rows(f, src, &h, threads);
  if (s == AOQ_EUNSUPPORTED) {
    aoq_err_clear();
    aoq_qweight_host_free(&h);
    return aoq_qweight_quantize(d, f, src, n, k, NULL, w);
  }
  *w = h;
  w->qdata = w->scale = w->zero = w->aux = NULL;
  const void *hp[4] = {h.qdata, h.scale, h.zero, h.aux};
  void **dp[4] = {&w->qdata, &w->scale, &w->zero, &w->aux};
  size_t sz[4] = {h.qdata_bytes, h.scale_bytes, h.zero_bytes, h.aux_bytes};
  for (int i = 0; i < 4 && s == AOQ_OK; i++) {
    if (!sz[i]) continue;
    s = aoq_dev_alloc(d, sz[i], dp[i]);
    if (s == AOQ_OK) s = aoq_dev_copy_h2d(d, *dp[i], hp[i], sz[i], NULL);
  }
  if (s == AOQ_OK) s = aoq_dev_stream_sync(d, NULL);
  aoq_qweight_host_free(&h);
  if (s != AOQ_OK) aoq_qweight_dev_free(d, w);
  return s;
}
