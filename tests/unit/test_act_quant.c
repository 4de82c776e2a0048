/*
 * test_act_quant.c — dynamic activation quantizers (core/act_quant.c + the row quantizers of
 * base/numerics.h) against torchao's xq1/xq16 golden tensors, bit for bit, and error bounds for
 * the dynamic formats torchao's golden files do not cover.
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
#include "core/format_impl.h"
#include "core/safetensors.h"

static aoq_st_file *golden(const char *name) {
  char path[512];
  const char *dir = getenv("AOQ_TEST_DATA");
  snprintf(path, sizeof path, "%s/golden/%s.safetensors", dir ? dir : AOQ_TEST_DATA, name);
  aoq_st_file *f = NULL;
  if (aoq_st_open(path, &f)) fail_msg("cannot open %s: %s", path, aoq_last_error());
  return f;
}

static void golden_act(const char *file, aoq_format_kind kind) {
  aoq_st_file *f = golden(file);
  aoq_format fmt = {kind, 8, 0};
  static const char *attrs[] = {"qdata", "scale", "zero_point", "per_tensor_scale", "dequant"};
  for (int mi = 0; mi < 2; mi++) {
    int m = mi ? 16 : 1;
    char xn[16];
    snprintf(xn, sizeof xn, "x%d", m);
    const aoq_st_tensor *x = aoq_st_find(f, xn);
    assert_non_null(x);
    int compared = 0;
    for (int a = 0; a < 5; a++) {
      char name[64];
      snprintf(name, sizeof name, "xq%d.%s", m, attrs[a]);
      const aoq_st_tensor *g = aoq_st_find(f, name);
      if (!g) continue;
      void *b = NULL;
      size_t nb = 0;
      uint16_t *xa = malloc(x->nbytes); /* file data need not be 2-byte aligned */
      memcpy(xa, x->data, x->nbytes);
      aoq_status s = aoq_torchao_act_tensor(&fmt, xa, m, x->shape[1], attrs[a], &b, &nb);
      free(xa);
      if (s) fail_msg("%s %s: %s", file, name, aoq_last_error());
      if (nb != g->nbytes) fail_msg("%s %s: %zu bytes, golden %zu", file, name, nb, g->nbytes);
      const uint8_t *p = b, *q = g->data;
      size_t bad = 0, first = 0;
      for (size_t i = 0; i < nb; i++)
        if (p[i] != q[i] && !bad++) first = i;
      if (bad)
        fail_msg("%s %s: %zu of %zu bytes differ, first at %zu (0x%02x vs 0x%02x)", file, name, bad,
                 nb, first, p[first], q[first]);
      free(b);
      compared++;
    }
    assert_true(compared >= 3); /* qdata, scale, dequant at least */
  }
  aoq_st_close(f);
}

static void test_golden_int8dq(void **st) {
  (void)st, golden_act("int8dq", AOQ_FMT_INT8DQ);
}
static void test_golden_fp8dq(void **st) {
  (void)st, golden_act("fp8dq", AOQ_FMT_FP8DQ);
}
static void test_golden_fp8dq_row(void **st) {
  (void)st, golden_act("fp8dq-row", AOQ_FMT_FP8DQ_ROW);
}
static void test_golden_mxfp8(void **st) {
  (void)st, golden_act("mxfp8", AOQ_FMT_MXFP8);
}
static void test_golden_mxfp4(void **st) {
  (void)st, golden_act("mxfp4", AOQ_FMT_MXFP4);
}
static void test_golden_nvfp4(void **st) {
  (void)st, golden_act("nvfp4", AOQ_FMT_NVFP4);
}

/* Formats without torchao activations in the golden files: the dequantized activation stays
 * within the element precision of its scale, and the asymmetric zero point maps 0 exactly. */
static void test_other_dynamic_formats_bounds(void **st) {
  (void)st;
  const int64_t m = 5, k = 384;
  uint16_t x[5 * 384];
  uint64_t s = 99;
  for (int64_t i = 0; i < m * k; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    double u = (double)(s >> 11) * 0x1.0p-53 * 2 - 1;
    x[i] = aoq_f32_to_bf16((float)(u * (i / k == 2 ? 30.0 : 1.0) + (i / k == 4 ? 2.0 : 0.0)));
  }
  const struct {
    aoq_format_kind kind;
    double rel, floor; /* |err| <= rel * max(|x|, floor * amax_row) */
  } cases[] = {{AOQ_FMT_FP8DQ_BLOCK, 0.066, 0.02},
               {AOQ_FMT_FP8_INT4, 0.066, 0.02},
               {AOQ_FMT_INT8_INTX, 0.02, 0.5},
               {AOQ_FMT_INT8_INT4, 0.02, 0.5}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    aoq_format f = {cases[c].kind, 8, 0};
    void *dq;
    size_t n;
    assert_int_equal(aoq_torchao_act_tensor(&f, x, m, k, "dequant", &dq, &n), AOQ_OK);
    assert_int_equal(n, (size_t)(m * k) * 2);
    const uint16_t *d = dq;
    for (int64_t r = 0; r < m; r++) {
      float amax = aoq_amax_bf16(x + r * k, k);
      for (int64_t i = 0; i < k; i++) {
        double xv = aoq_bf16_to_f32(x[r * k + i]), e = fabs(aoq_bf16_to_f32(d[r * k + i]) - xv);
        double lim = cases[c].rel * fmax(fabs(xv), cases[c].floor * amax);
        if (e > lim)
          fail_msg("kind %d [%lld,%lld]: x %g err %g > %g", cases[c].kind, (long long)r,
                   (long long)i, xv, e, lim);
      }
    }
    free(dq);
  }
  /* asymmetric: row 4 is all positive, so mn = 0 and the zero point is -128 */
  aoq_format f = {AOQ_FMT_INT8_INTX, 8, 0};
  void *zp;
  size_t n;
  assert_int_equal(aoq_torchao_act_tensor(&f, x, m, k, "zero_point", &zp, &n), AOQ_OK);
  assert_int_equal(n, (size_t)m);
  assert_int_equal(((int8_t *)zp)[4], -128);
  free(zp);
}

static void test_errors(void **st) {
  (void)st;
  uint16_t x[64] = {0};
  void *b;
  size_t n;
  aoq_format wo = {AOQ_FMT_FP8WO, 8, 0}, mx = {AOQ_FMT_MXFP8, 8, 0}, nv = {AOQ_FMT_NVFP4, 4, 0};
  assert_int_equal(aoq_torchao_act_tensor(&wo, x, 1, 64, "qdata", &b, &n), AOQ_ENOTFOUND);
  assert_int_equal(aoq_torchao_act_tensor(&mx, x, 1, 48, "qdata", &b, &n), AOQ_ESHAPE);
  assert_int_equal(aoq_torchao_act_tensor(&mx, x, 0, 64, "qdata", &b, &n), AOQ_ESHAPE);
  assert_int_equal(aoq_torchao_act_tensor(&mx, x, 1, 64, "per_tensor_scale", &b, &n),
                   AOQ_ENOTFOUND);
  assert_int_equal(aoq_torchao_act_tensor(&nv, x, 1, 64, "per_tensor_scale", &b, &n), AOQ_OK);
  assert_int_equal(n, 4);
  free(b);
  assert_int_equal(aoq_torchao_act_tensor(&nv, NULL, 1, 64, "qdata", &b, &n), AOQ_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_golden_int8dq),
      cmocka_unit_test(test_golden_fp8dq),
      cmocka_unit_test(test_golden_fp8dq_row),
      cmocka_unit_test(test_golden_mxfp8),
      cmocka_unit_test(test_golden_mxfp4),
      cmocka_unit_test(test_golden_nvfp4),
      cmocka_unit_test(test_other_dynamic_formats_bounds),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
