/*
 * bench_formats.c — `aoq-bench formats`: for one synthetic weight (deterministic, Gaussian-ish
 * with a few large outliers), every format side by side: bits per weight (scales included), the
 * SQNR of the dequantized weight against the bf16 weight, the SQNR of the device linear's output
 * (M = 16 activation rows, one of them an outlier token) against the bf16 linear, and the device
 * linear time at M=1 relative to the bf16 linear, timed right before each format (medians of
 * --repeat runs each), so that drifting machine load affects both sides of every ratio alike;
 * and the same ratio at M = --m rows (batched decode / prefill).
 * Quantization uses the host reference quantizer; the packed bytes are uploaded to the device.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcomment"
#include "base/numerics.h"
#pragma GCC diagnostic pop
#include "core/format.h"
#include "devices/device.h"
#include "tools/bench/bench_util.h"

static const char *const configs[] = {
    "int8wo",     "int8dq",         "fp8wo",    "fp8dq",     "fp8dq-row",   "fp8dq-block",
    "int4wo-128", "int4wo-128-hqq", "fp8-int4", "int8-int4", "intx4wo-g32", "intx2wo-g64",
    "int8-intx4", "mxfp8",          "mxfp4",    "nvfp4",     "nvfp4wo",     "fp6-e3m2",
    "fp6-e2m3",   "codebook4",      "w158",
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: aoq-bench formats [--device NAME] [--n N] [--k K] [--m M] [--repeat R]\n"
          "                         [--formats LIST]\n"
          "  Quality and speed of every format on one synthetic weight [n, k].\n"
          "  Defaults: --device cpu --n 4096 --k 4096 --m 16 --repeat 5, all formats\n"
          "  (or a comma-separated list such as mxfp4,nvfp4).\n");
}

static uint64_t rng = 0x6a09e667f3bcc908ull;
static double urand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return ((double)(rng >> 11) + 0.5) * 0x1.0p-53;
}
static double gauss(void) { /* Box-Muller */
  return sqrt(-2.0 * log(urand())) * cos(6.283185307179586 * urand());
}

static double sqnr_db(const uint16_t *ref, const uint16_t *got, int64_t n) {
  double s = 0, e = 0;
  for (int64_t i = 0; i < n; i++) {
    double a = aoq_bf16_to_f32(ref[i]), b = aoq_bf16_to_f32(got[i]);
    s += a * a, e += (a - b) * (a - b);
  }
  return e > 0 ? 10.0 * log10(s / e) : INFINITY;
}

/* Uploads the host qweight h to the device as w. */
static aoq_status upload(aoq_device *d, const aoq_qweight *h, aoq_qweight *w) {
  *w = *h;
  w->qdata = w->scale = w->zero = w->aux = NULL;
  void **dst[4] = {&w->qdata, &w->scale, &w->zero, &w->aux};
  const void *src[4] = {h->qdata, h->scale, h->zero, h->aux};
  size_t b[4] = {h->qdata_bytes, h->scale_bytes, h->zero_bytes, h->aux_bytes};
  for (int i = 0; i < 4; i++) {
    if (!b[i]) continue;
    AOQ_TRY(aoq_dev_alloc(d, b[i], dst[i]));
    AOQ_TRY(aoq_dev_copy_h2d(d, *dst[i], src[i], b[i], NULL));
  }
  return AOQ_OK;
}

/* Median time (ms) of the device linear at m rows, and its output copied to y (host). */
static aoq_status time_linear(aoq_device *d, const aoq_qweight *w, const void *dx, void *dy,
                              int64_t m, int repeat, uint16_t *y, double *ms) {
  size_t wsb = aoq_dev_linear_workspace(d, w, m);
  void *ws = NULL;
  double t[64];
  if (repeat > 64) repeat = 64;
  if (wsb) AOQ_TRY(aoq_dev_alloc(d, wsb, &ws));
  aoq_status s = aoq_dev_linear(d, w, dx, dy, m, AOQ_DTYPE_BF16, ws, NULL);
  if (!s) s = aoq_dev_stream_sync(d, NULL);
  for (int r = 0; r < repeat && !s; r++) {
    double t0 = aoq_bench_now();
    s = aoq_dev_linear(d, w, dx, dy, m, AOQ_DTYPE_BF16, ws, NULL);
    if (!s) s = aoq_dev_stream_sync(d, NULL);
    t[r] = aoq_bench_now() - t0;
  }
  if (!s && ms) *ms = aoq_bench_median(t, repeat) * 1e3;
  if (!s && y) s = aoq_dev_copy_d2h(d, y, dy, (size_t)(m * w->n) * 2, NULL);
  aoq_dev_free(d, ws);
  return s;
}

static int listed(const char *list, const char *name) {
  if (!list) return 1;
  size_t n = strlen(name);
  for (const char *p = list; p && *p;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == n && !strncmp(p, name, n)) return 1;
    p = e ? e + 1 : NULL;
  }
  return 0;
}

int aoq_bench_formats(int argc, char **argv) {
  const char *dev_name = "cpu", *list = NULL;
  int64_t n = 4096, k = 4096, m = 16, repeat = 5;
  const aoq_bench_opt opts[] = {
      {"device", AOQ_OPT_STR, &dev_name},
      {"formats", AOQ_OPT_STR, &list},
      {"n", AOQ_OPT_I64, &n},
      {"k", AOQ_OPT_I64, &k},
      {"m", AOQ_OPT_I64, &m},
      {"repeat", AOQ_OPT_I64, &repeat},
  };
  int pr = AOQ_BENCH_PARSE(argc, argv, opts, usage);
  if (pr) return pr == 1 ? 0 : 2;
  if (n <= 0 || k <= 0 || m <= 0 || m > 4096 || repeat <= 0 || repeat > 64 ||
      n * k > ((int64_t)1 << 30)) {
    fprintf(stderr,
            "aoq-bench formats: need n, k > 0 (n*k <= 2^30), 1 <= m <= 4096, 1 <= repeat <= 64\n");
    return 2;
  }
  for (const char *p = list; p && *p;) { /* every listed name must be a known config */
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    int known = 0;
    for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++)
      known |= strlen(configs[c]) == len && !strncmp(configs[c], p, len);
    if (!known) {
      fprintf(stderr, "aoq-bench formats: --formats: unknown format '%.*s'\n", (int)len, p);
      return 2;
    }
    p = e ? e + 1 : NULL;
  }
  aoq_device *d;
  if (aoq_device_open(dev_name, &d)) {
    fprintf(stderr, "aoq-bench formats: %s\n", aoq_last_error());
    return 1;
  }
  int rc = 1;
  size_t nk = (size_t)(n * k);
  uint16_t *hw = malloc(nk * 2), *dq = malloc(nk * 2), *hx = malloc((size_t)(m * k) * 2);
  uint16_t *yref = malloc((size_t)(m * n) * 2), *y = malloc((size_t)(m * n) * 2);
  void *dx = NULL, *dy = NULL, *dwb = NULL;
  if (!hw || !dq || !hx || !yref || !y) goto out;
  /* weight: N(0, 0.02) with one outlier of 10-30 sigma in ~1 of 1000 values */
  for (size_t i = 0; i < nk; i++) {
    double v = 0.02 * gauss();
    if (urand() < 1e-3) v *= 10.0 + 20.0 * urand();
    hw[i] = aoq_f32_to_bf16((float)v);
  }
  for (int64_t i = 0; i < m * k; i++)
    hx[i] = aoq_f32_to_bf16((float)(gauss() * (i / k == 1 ? 20.0 : 1.0)));
  if (aoq_dev_alloc(d, (size_t)(m * k) * 2, &dx) || aoq_dev_alloc(d, (size_t)(m * n) * 2, &dy) ||
      aoq_dev_alloc(d, nk * 2, &dwb) || aoq_dev_copy_h2d(d, dx, hx, (size_t)(m * k) * 2, NULL) ||
      aoq_dev_copy_h2d(d, dwb, hw, nk * 2, NULL))
    goto fail;
  aoq_qweight wb = {.kind = AOQ_FMT_BF16,
                    .bits = 16,
                    .group = (int)k,
                    .n = n,
                    .k = k,
                    .qdata = dwb,
                    .qdata_bytes = nk * 2};
  double t_bf16;
  if (time_linear(d, &wb, dx, dy, m, 1, yref, NULL) ||
      time_linear(d, &wb, dx, dy, 1, (int)repeat, NULL, &t_bf16))
    goto fail;
  printf(
      "aoq-bench formats: W [%lld x %lld] N(0,0.02) + 0.1%% outliers, x [%lld x %lld] (row 1 x20), "
      "device %s\n",
      (long long)n, (long long)k, (long long)m, (long long)k, aoq_device_name(d));
  char mcol[32];
  snprintf(mcol, sizeof mcol, "M=%lld vs", (long long)m);
  printf("%-15s %7s %10s %10s %10s %10s %8s %9s %8s\n", "format", "bits/w", "SQNR W dB",
         "SQNR y dB", "M=1 ms", "bf16 ms", "vs bf16", mcol, "quant s");
  printf("%-15s %7.2f %10s %10s %10.3f %10.3f %8.2f %9.2f %8s\n", "bf16", 16.0, "inf", "inf",
         t_bf16, t_bf16, 1.0, 1.0, "-");
  fflush(stdout);
  for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++) {
    if (!listed(list, configs[c])) continue;
    aoq_format f;
    aoq_qweight h, w;
    memset(&h, 0, sizeof h);
    memset(&w, 0, sizeof w);
    double t0 = aoq_bench_now(), tq, tl, tm, tmb;
    aoq_status s = aoq_format_parse(configs[c], &f);
    if (!s) s = aoq_format_plan(&f, n, k, &h);
    if (!s) s = aoq_qweight_host_alloc(&h);
    if (!s) s = aoq_quantize_ref(hw, &h);
    tq = aoq_bench_now() - t0;
    if (!s) s = aoq_dequantize_ref(&h, dq);
    if (!s) s = upload(d, &h, &w);
    if (!s) s = time_linear(d, &w, dx, dy, m, 1, y, NULL);
    if (!s) s = time_linear(d, &wb, dx, dy, 1, (int)repeat, NULL, &t_bf16);
    if (!s) s = time_linear(d, &w, dx, dy, 1, (int)repeat, NULL, &tl);
    if (!s) s = time_linear(d, &wb, dx, dy, m, (int)repeat, NULL, &tmb);
    if (!s) s = time_linear(d, &w, dx, dy, m, (int)repeat, NULL, &tm);
    if (s) {
      printf("%-15s %s\n", configs[c], aoq_last_error());
    } else {
      printf("%-15s %7.2f %10.2f %10.2f %10.3f %10.3f %8.2f %9.2f %8.2f\n", configs[c],
             aoq_format_bits_per_weight(&f, n, k), sqnr_db(hw, dq, (int64_t)nk),
             sqnr_db(yref, y, m * n), tl, t_bf16, tl / t_bf16, tm / tmb, tq);
    }
    fflush(stdout);
    aoq_qweight_dev_free(d, &w);
    aoq_qweight_host_free(&h);
  }
  rc = 0;
  goto out;
fail:
  fprintf(stderr, "aoq-bench formats: %s\n", aoq_last_error());
out:
  aoq_dev_free(d, dx);
  aoq_dev_free(d, dy);
  aoq_dev_free(d, dwb);
  free(hw), free(dq), free(hx), free(yref), free(y);
  aoq_device_close(d);
  return rc;
}
