/*
 * test_cpu_quant.c — the CPU quantized linear (devices/cpu/cpu_quant*.c) for every format:
 *  - against dequantize-then-matmul in double (x and W as torchao's GEMM sees them: the dynamic
 *    formats' activations through aoq_torchao_act_tensor "dequant", W through aoq_dequantize_ref),
 *    on random weights with outliers, m in {1, 3, 16}, with a per-format tolerance;
 *  - against torchao's own outputs y1/y16 of the golden files.
 */
// clang-format off
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
// clang-format on

#include "base/error.h"
#include "base/numerics.h"
#include "core/format.h"
#include "core/format_impl.h"
#include "core/safetensors.h"
#include "devices/device.h"

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static double urand(void) { /* [-1, 1) */
  uint64_t x = (rs += 0x9e3779b97f4a7c15ull);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  return (double)(x >> 11) * 0x1.0p-52 - 1.0;
}

/* Runs the device linear of w (host memory = CPU device memory) on x[m,k]. */
static void run_linear(aoq_device *d, const aoq_qweight *w, const uint16_t *x, uint16_t *y,
                       int64_t m) {
  size_t wsb = aoq_dev_linear_workspace(d, w, m);
  void *ws = NULL;
  if (wsb) assert_int_equal(aoq_dev_alloc(d, wsb, &ws), AOQ_OK);
  aoq_status s = aoq_dev_linear(d, w, x, y, m, AOQ_DTYPE_BF16, ws, NULL);
  if (s) fail_msg("linear kind %d: %s", (int)w->kind, aoq_last_error());
  aoq_dev_free(d, ws);
}

typedef struct fcase {
  const char *cfg;
  double rel; /* tolerance: |y - ref| <= rel * sum|x_i w_i| + 2^-7 |ref| */
} fcase;

/* Weight-only formats: the kernel multiplies exactly the bf16 values the reference multiplies, so
 * only fp32 summation order differs (rel 1e-5). Dynamic formats: the reference's activation is
 * torchao's bf16 dequant, the kernel keeps elem*scale unrounded and (int8dq, nvfp4) rounds its
 * epilogue to bf16 as torchao does: about one bf16 ulp of the sum of |products| (rel 8e-3). */
static const fcase cases[] = {
    {"int8wo", 8e-3},     {"int8dq", 8e-3},      {"fp8wo", 1e-5},       {"fp8dq", 8e-3},
    {"fp8dq-row", 8e-3},  {"fp8dq-block", 8e-3}, {"int4wo-64", 1e-5},   {"int4wo-128-hqq", 1e-5},
    {"fp8-int4", 8e-3},   {"int8-int4", 1e-5},   {"intx3wo-g64", 1e-5}, {"intx8wo", 1e-5},
    {"int8-intx4", 1e-5}, {"mxfp8", 8e-3},       {"mxfp4", 8e-3},       {"nvfp4", 8e-3},
    {"nvfp4wo", 1e-5},    {"fp6-e3m2", 1e-5},    {"fp6-e2m3", 1e-5},    {"codebook4", 1e-5},
    {"w158", 1e-5},
};

static void check_format(aoq_device *d, const fcase *fc, const uint16_t *wb, int64_t n, int64_t k,
                         const uint16_t *x, int64_t m) {
  aoq_format f;
  if (aoq_format_parse(fc->cfg, &f)) fail_msg("%s: %s", fc->cfg, aoq_last_error());
  aoq_qweight w;
  memset(&w, 0, sizeof w);
  if (aoq_format_plan(&f, n, k, &w)) fail_msg("%s: plan: %s", fc->cfg, aoq_last_error());
  assert_int_equal(aoq_qweight_host_alloc(&w), AOQ_OK);
  if (aoq_quantize_ref(wb, &w)) fail_msg("%s: quantize: %s", fc->cfg, aoq_last_error());
  uint16_t *wd = malloc((size_t)(n * k) * 2), *y = malloc((size_t)(m * n) * 2);
  assert_int_equal(aoq_dequantize_ref(&w, wd), AOQ_OK);
  const uint16_t *xo = x;
  void *xdq = NULL;
  size_t nb;
  if (aoq_format_is_dynamic(f.kind)) {
    if (aoq_torchao_act_tensor(&f, x, m, k, "dequant", &xdq, &nb))
      fail_msg("%s: act quant: %s", fc->cfg, aoq_last_error());
    xo = xdq;
  }
  run_linear(d, &w, x, y, m);
  for (int64_t i = 0; i < m; i++)
    for (int64_t r = 0; r < n; r++) {
      double ref = 0, norm = 0;
      for (int64_t c = 0; c < k; c++) {
        double p = (double)aoq_bf16_to_f32(xo[i * k + c]) * aoq_bf16_to_f32(wd[r * k + c]);
        ref += p, norm += fabs(p);
      }
      double got = aoq_bf16_to_f32(y[i * n + r]);
      double tol = fc->rel * norm + fabs(ref) * 0x1p-7 + 1e-30;
      if (!(fabs(got - ref) <= tol))
        fail_msg("%s m=%lld: y[%lld,%lld] = %g, reference %g (tol %g)", fc->cfg, (long long)m,
                 (long long)i, (long long)r, got, ref, tol);
    }
  free(xdq), free(wd), free(y);
  aoq_qweight_host_free(&w);
}

static void test_every_format_vs_dequant_matmul(void **st) {
  (void)st;
  aoq_device *d;
  assert_int_equal(aoq_device_open("cpu:2", &d), AOQ_OK);
  aoq_device_info info;
  assert_int_equal(aoq_device_info_get(d, &info), AOQ_OK);
  const int64_t n = 128, k = 256;
  uint16_t *wb = malloc((size_t)(n * k) * 2), *x = malloc(16 * (size_t)k * 2);
  for (int64_t i = 0; i < n * k; i++)
    wb[i] = aoq_f32_to_bf16((float)(urand() * 0.05 * (i % 211 == 0 ? 12.0 : 1.0)));
  for (int64_t i = 0; i < 16 * k; i++)
    x[i] = aoq_f32_to_bf16((float)(urand() * (i / k == 2 ? 20.0 : 1.0)));
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    aoq_format f;
    assert_int_equal(aoq_format_parse(cases[c].cfg, &f), AOQ_OK);
    if (!((info.linear_formats >> f.kind) & 1)) fail_msg("cpu lacks a linear for %s", cases[c].cfg);
    const int64_t ms[] = {1, 3, 16};
    for (int i = 0; i < 3; i++) check_format(d, &cases[c], wb, n, k, x, ms[i]);
  }
  /* every kind except bf16 is claimed, and all of them were exercised above */
  for (int kind = 1; kind < AOQ_FMT_COUNT; kind++) {
    int seen = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
      aoq_format f;
      aoq_format_parse(cases[c].cfg, &f);
      seen |= (int)f.kind == kind;
    }
    if (!seen) fail_msg("format kind %d not tested", kind);
  }
  free(wb), free(x);
  aoq_device_close(d);
}

/* torchao's own linear outputs. Where aoq follows torchao's epilogue order and the GEMM sums
 * exactly-representable products (int8, fp8 weight-only, mx, nvfp4wo, intx, int8-intx), at least
 * 99% of the outputs are bit-identical and the rest differ by summation order only. fp8dq(-row)
 * (cuBLAS fast accumulation) and int4wo (tinygemm's own kernel arithmetic) cannot be reproduced
 * bit for bit: |y - y_torchao| <= 2^-6 |y_torchao| + 2^-6 max|y_torchao|. */
static void test_golden_outputs(void **st) {
  (void)st;
  static const struct {
    const char *file;
    int exact;
  } files[] = {{"int8wo", 1},     {"int8dq", 1},     {"fp8wo", 1},          {"fp8dq", 0},
               {"fp8dq-row", 0},  {"mxfp8", 1},      {"mxfp4", 1},          {"nvfp4wo", 1},
               {"int4wo-128", 0}, {"int4wo-32", 0},  {"int4wo-128-hqq", 0}, {"intx4wo-32", 1},
               {"intx8wo", 1},    {"intx2wo-64", 1}, {"int8-intx4", 1}};
  aoq_device *d;
  assert_int_equal(aoq_device_open("cpu:2", &d), AOQ_OK);
  for (size_t fi = 0; fi < sizeof files / sizeof files[0]; fi++) {
    char path[512];
    const char *dir = getenv("AOQ_TEST_DATA");
    const char *name = files[fi].file;
    snprintf(path, sizeof path, "%s/golden/%s.safetensors", dir ? dir : AOQ_TEST_DATA, name);
    aoq_st_file *sf;
    if (aoq_st_open(path, &sf)) fail_msg("%s: %s", path, aoq_last_error());
    aoq_format f;
    assert_int_equal(aoq_format_parse(name, &f), AOQ_OK);
    const aoq_st_tensor *wt = aoq_st_find(sf, "weight");
    assert_non_null(wt);
    int64_t n = wt->shape[0], k = wt->shape[1];
    uint16_t *wb = malloc(wt->nbytes);
    memcpy(wb, wt->data, wt->nbytes);
    aoq_qweight w;
    memset(&w, 0, sizeof w);
    assert_int_equal(aoq_format_plan(&f, n, k, &w), AOQ_OK);
    assert_int_equal(aoq_qweight_host_alloc(&w), AOQ_OK);
    if (aoq_quantize_ref(wb, &w)) fail_msg("%s: %s", name, aoq_last_error());
    for (int mi = 0; mi < 2; mi++) {
      int m = mi ? 16 : 1;
      char xn[8], yn[8];
      snprintf(xn, sizeof xn, "x%d", m), snprintf(yn, sizeof yn, "y%d", m);
      const aoq_st_tensor *xt = aoq_st_find(sf, xn), *yt = aoq_st_find(sf, yn);
      assert_non_null(xt);
      assert_non_null(yt);
      uint16_t *x = malloc(xt->nbytes), *yg = malloc(yt->nbytes), *y = malloc(yt->nbytes);
      memcpy(x, xt->data, xt->nbytes), memcpy(yg, yt->data, yt->nbytes);
      run_linear(d, &w, x, y, m);
      double ymax = 0;
      int64_t same = 0;
      for (int64_t i = 0; i < m * n; i++) ymax = fmax(ymax, fabs(aoq_bf16_to_f32(yg[i])));
      for (int64_t i = 0; i < m * n; i++) {
        double a = aoq_bf16_to_f32(y[i]), b = aoq_bf16_to_f32(yg[i]);
        same += y[i] == yg[i];
        double tol =
            files[fi].exact ? 0x1p-7 * fabs(b) + 0x1p-12 * ymax : 0x1p-6 * fabs(b) + 0x1p-6 * ymax;
        if (!(fabs(a - b) <= tol))
          fail_msg("%s y%d[%lld]: %g vs torchao %g", name, m, (long long)i, a, b);
      }
      if (files[fi].exact && same * 100 < m * n * 99)
        fail_msg("%s y%d: only %lld of %lld outputs bit-identical to torchao's", name, m,
                 (long long)same, (long long)(m * n));
      free(x), free(yg), free(y);
    }
    aoq_qweight_host_free(&w);
    free(wb);
    aoq_st_close(sf);
  }
  aoq_device_close(d);
}

/* k not a multiple of the 128-column chunk (and groups of 32 straddling chunk ends), n odd. */
static void test_ragged_shapes(void **st) {
  (void)st;
  static const fcase ragged[] = {
      {"int8wo", 8e-3},    {"int8dq", 8e-3},      {"fp8wo", 1e-5},      {"fp8dq-row", 8e-3},
      {"int4wo-32", 1e-5}, {"intx3wo-g32", 1e-5}, {"int8-intx4", 1e-5}, {"int8-int4", 1e-5},
      {"mxfp8", 8e-3},     {"mxfp4", 8e-3},       {"nvfp4", 8e-3},      {"nvfp4wo", 1e-5},
      {"fp6-e3m2", 1e-5},  {"fp6-e2m3", 1e-5},    {"codebook3", 1e-5},  {"w158", 1e-5},
  };
  aoq_device *d;
  assert_int_equal(aoq_device_open("cpu:2", &d), AOQ_OK);
  const int64_t n = 47, k = 416; /* 3 full chunks + 32 */
  uint16_t *wb = malloc((size_t)(n * k) * 2), *x = malloc(5 * (size_t)k * 2);
  for (int64_t i = 0; i < n * k; i++) wb[i] = aoq_f32_to_bf16((float)(urand() * 0.1));
  for (int64_t i = 0; i < 5 * k; i++) x[i] = aoq_f32_to_bf16((float)urand());
  for (size_t c = 0; c < sizeof ragged / sizeof ragged[0]; c++) {
    check_format(d, &ragged[c], wb, n, k, x, 1);
    check_format(d, &ragged[c], wb, n, k, x, 5);
  }
  free(wb), free(x);
  aoq_device_close(d);
}

static void test_bad_weights_are_errors(void **st) {
  (void)st;
  aoq_device *d;
  assert_int_equal(aoq_device_open("cpu:1", &d), AOQ_OK);
  aoq_format f;
  assert_int_equal(aoq_format_parse("nvfp4", &f), AOQ_OK);
  aoq_qweight w;
  memset(&w, 0, sizeof w);
  assert_int_equal(aoq_format_plan(&f, 16, 64, &w), AOQ_OK);
  assert_int_equal(aoq_qweight_host_alloc(&w), AOQ_OK);
  uint16_t wb[16 * 64], x[64], y[16];
  for (int i = 0; i < 16 * 64; i++) wb[i] = aoq_f32_to_bf16((float)urand());
  for (int i = 0; i < 64; i++) x[i] = aoq_f32_to_bf16((float)urand());
  assert_int_equal(aoq_quantize_ref(wb, &w), AOQ_OK);
  size_t wsb = aoq_dev_linear_workspace(d, &w, 1);
  assert_true(wsb > 0);
  void *ws;
  assert_int_equal(aoq_dev_alloc(d, wsb, &ws), AOQ_OK);
  void *aux = w.aux;
  w.aux = NULL; /* per-tensor scale missing */
  assert_int_equal(aoq_dev_linear(d, &w, x, y, 1, AOQ_DTYPE_BF16, ws, NULL), AOQ_ESHAPE);
  w.aux = aux;
  w.scale_bytes /= 2;
  assert_int_equal(aoq_dev_linear(d, &w, x, y, 1, AOQ_DTYPE_BF16, ws, NULL), AOQ_ESHAPE);
  w.scale_bytes *= 2;
  assert_int_equal(aoq_dev_linear(d, &w, x, y, 1, AOQ_DTYPE_BF16, NULL, NULL), AOQ_EINVAL);
  assert_int_equal(aoq_dev_linear(d, &w, x, y, 1, AOQ_DTYPE_BF16, ws, NULL), AOQ_OK);
  /* f32 activations go through the same kernel */
  float xf[64], yf[16];
  for (int i = 0; i < 64; i++) xf[i] = aoq_bf16_to_f32(x[i]);
  aoq_dev_free(d, ws);
  wsb = aoq_dev_linear_workspace(d, &w, 1);
  assert_int_equal(aoq_dev_alloc(d, wsb, &ws), AOQ_OK);
  assert_int_equal(aoq_dev_linear(d, &w, xf, yf, 1, AOQ_DTYPE_F32, ws, NULL), AOQ_OK);
  for (int i = 0; i < 16; i++) assert_true(yf[i] == aoq_bf16_to_f32(y[i]));
  aoq_dev_free(d, ws);
  aoq_qweight_host_free(&w);
  aoq_device_close(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_format_vs_dequant_matmul),
      cmocka_unit_test(test_golden_outputs),
      cmocka_unit_test(test_ragged_shapes),
      cmocka_unit_test(test_bad_weights_are_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
