/*
 * bench_gemm.c — `aoq-bench gemm`: GFLOP/s of a device's bf16 linear (y = x W^T, bf16 x and W,
 * fp32 accumulation) at M=1 (decode GEMV) and M=64 (a prefill/batch GEMM), next to a naive
 * triple loop on the host in the same run, printed as a table with their ratio. Goes through
 * aoq_device_open, so any backend can be measured: --device cpu, cpu:4, cuda:0, ...
 * The device result is also compared with the naive one (max relative difference).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
/* numerics.h's header comment holds a slash-star sequence (-Wcomment) */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcomment"
#include "base/numerics.h"
#pragma GCC diagnostic pop
#include "devices/device.h"
#include "tools/bench/bench_util.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: aoq-bench gemm [--device NAME] [--n N] [--k K] [--m LIST] [--repeat R]\n"
          "                      [--naive-repeat R]\n"
          "  y[m,n] = x[m,k] @ W[n,k]^T in bf16 with fp32 accumulation, on the device and in a\n"
          "  naive host loop. Defaults: --device cpu --n 4096 --k 4096 --m 1,64 --repeat 10\n"
          "  --naive-repeat 3 (M >= 16: 1).\n");
}

static uint64_t rng = 0x243f6a8885a308d3ull;
static float frand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(rng >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

/* The obvious loop: one fp32 dot product per output, in index order. */
static void naive(const uint16_t *w, const uint16_t *x, float *y, int64_t m, int64_t n, int64_t k) {
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      float acc = 0;
      for (int64_t c = 0; c < k; c++)
        acc += aoq_bf16_to_f32(w[j * k + c]) * aoq_bf16_to_f32(x[i * k + c]);
      y[i * n + j] = acc;
    }
}

typedef struct row {
  int64_t m;
  double dev_ms, naive_ms, max_rel;
} row;

static int run_one(aoq_device *d, const uint16_t *hw, void *dw, int64_t m, int64_t n, int64_t k,
                   int repeat, int naive_repeat, row *out) {
  uint16_t *hx = malloc((size_t)(m * k) * 2), *hy = malloc((size_t)(m * n) * 2);
  float *ny = malloc((size_t)(m * n) * 4);
  double *t = malloc(sizeof(double) * (size_t)(repeat > naive_repeat ? repeat : naive_repeat));
  void *dx = NULL, *dy = NULL, *ws = NULL;
  int rc = 1;
  aoq_qweight w = {.kind = AOQ_FMT_BF16,
                   .bits = 16,
                   .group = (int)k,
                   .n = n,
                   .k = k,
                   .qdata = dw,
                   .qdata_bytes = (size_t)(n * k) * 2};
  if (!hx || !hy || !ny || !t) goto done;
  for (int64_t i = 0; i < m * k; i++) hx[i] = aoq_f32_to_bf16(frand());
  size_t wsb = aoq_dev_linear_workspace(d, &w, m);
  if (aoq_dev_alloc(d, (size_t)(m * k) * 2, &dx) || aoq_dev_alloc(d, (size_t)(m * n) * 2, &dy) ||
      (wsb && aoq_dev_alloc(d, wsb, &ws)) || aoq_dev_copy_h2d(d, dx, hx, (size_t)(m * k) * 2, NULL))
    goto fail;
  /* warm-up, then timed runs, each synchronised */
  if (aoq_dev_linear(d, &w, dx, dy, m, AOQ_DTYPE_BF16, ws, NULL) || aoq_dev_stream_sync(d, NULL))
    goto fail;
  for (int r = 0; r < repeat; r++) {
    double t0 = aoq_bench_now();
    if (aoq_dev_linear(d, &w, dx, dy, m, AOQ_DTYPE_BF16, ws, NULL) || aoq_dev_stream_sync(d, NULL))
      goto fail;
    t[r] = aoq_bench_now() - t0;
  }
  out->dev_ms = aoq_bench_median(t, repeat) * 1e3;
  if (aoq_dev_copy_d2h(d, hy, dy, (size_t)(m * n) * 2, NULL)) goto fail;
  for (int r = 0; r < naive_repeat; r++) {
    double t0 = aoq_bench_now();
    naive(hw, hx, ny, m, n, k);
    t[r] = aoq_bench_now() - t0;
  }
  out->naive_ms = aoq_bench_median(t, naive_repeat) * 1e3;
  out->max_rel = 0;
  for (int64_t i = 0; i < m * n; i++) {
    double ref = ny[i], got = aoq_bf16_to_f32(hy[i]);
    double rel = fabs(got - ref) / (fabs(ref) + 1e-3 * sqrt((double)k));
    if (rel > out->max_rel) out->max_rel = rel;
  }
  out->m = m;
  rc = 0;
  goto done;
fail:
  fprintf(stderr, "aoq-bench gemm: M=%lld: %s\n", (long long)m, aoq_last_error());
done:
  aoq_dev_free(d, dx);
  aoq_dev_free(d, dy);
  aoq_dev_free(d, ws);
  free(hx);
  free(hy);
  free(ny);
  free(t);
  return rc;
}

int aoq_bench_gemm(int argc, char **argv) {
  const char *dev_name = "cpu", *mlist = "1,64";
  int64_t n = 4096, k = 4096, repeat = 10, naive_repeat = -1;
  const aoq_bench_opt opts[] = {
      {"device", AOQ_OPT_STR, &dev_name},
      {"m", AOQ_OPT_STR, &mlist},
      {"n", AOQ_OPT_I64, &n},
      {"k", AOQ_OPT_I64, &k},
      {"repeat", AOQ_OPT_I64, &repeat},
      {"naive-repeat", AOQ_OPT_I64, &naive_repeat},
  };
  int pr = AOQ_BENCH_PARSE(argc, argv, opts, usage);
  if (pr) return pr == 1 ? 0 : 2;
  if (n <= 0 || k <= 0 || repeat <= 0 || repeat > 100000 || n * k > ((int64_t)1 << 34)) {
    fprintf(stderr, "aoq-bench gemm: need n, k, repeat > 0 (and n*k <= 2^34)\n");
    return 2;
  }
  int64_t ms[16];
  int n_m = 0;
  for (const char *p = mlist; *p && n_m < 16;) {
    char *end;
    long long v = strtoll(p, &end, 10);
    if (end == p || v <= 0 || v > 65536 || (*end && *end != ',')) {
      fprintf(stderr, "aoq-bench gemm: --m '%s': expected a list like 1,64\n", mlist);
      return 2;
    }
    ms[n_m++] = v;
    p = *end ? end + 1 : end;
  }

  aoq_device *d = NULL;
  if (aoq_device_open(dev_name, &d) != AOQ_OK) {
    fprintf(stderr, "aoq-bench gemm: %s\n", aoq_last_error());
    return 1;
  }
  aoq_device_info info;
  aoq_device_info_get(d, &info);
  uint16_t *hw = malloc((size_t)(n * k) * 2);
  void *dw = NULL;
  int rc = 1;
  if (!hw) goto out;
  for (int64_t i = 0; i < n * k; i++) hw[i] = aoq_f32_to_bf16(frand());
  if (aoq_dev_alloc(d, (size_t)(n * k) * 2, &dw) ||
      aoq_dev_copy_h2d(d, dw, hw, (size_t)(n * k) * 2, NULL)) {
    fprintf(stderr, "aoq-bench gemm: weight upload: %s\n", aoq_last_error());
    goto out;
  }
  printf("gemm bf16: y[M,%lld] = x[M,%lld] @ W^T on %s (%s); median of %lld\n", (long long)n,
         (long long)k, aoq_device_name(d), info.name, (long long)repeat);
  printf("%6s %12s %10s %12s %10s %8s %10s\n", "M", "dev GFLOP/s", "dev ms", "naive GF/s",
         "naive ms", "ratio", "max rel");
  for (int i = 0; i < n_m; i++) {
    int nr = naive_repeat > 0 ? (int)naive_repeat : ms[i] >= 16 ? 1 : 3;
    row r;
    if (run_one(d, hw, dw, ms[i], n, k, (int)repeat, nr, &r)) goto out;
    double flop = 2.0 * (double)ms[i] * (double)n * (double)k;
    printf("%6lld %12.2f %10.3f %12.2f %10.1f %7.1fx %10.2e\n", (long long)r.m,
           flop / (r.dev_ms * 1e6), r.dev_ms, flop / (r.naive_ms * 1e6), r.naive_ms,
           r.naive_ms / r.dev_ms, r.max_rel);
    fflush(stdout);
  }
  rc = 0;
out:
  aoq_dev_free(d, dw);
  free(hw);
  aoq_device_close(d);
  return rc;
}
