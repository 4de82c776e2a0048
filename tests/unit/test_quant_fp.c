/*
 * test_quant_fp.c — the float element codecs of base/numerics.h (exhaustive over every code) and
 * the float-format reference quantizers of core/quant_fp.c against torchao's golden files.
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
#include "core/quant_fp_util.h"
#include "core/safetensors.h"

typedef struct codec {
  const char *name;
  int codes;
  uint8_t (*enc)(float);
  float (*dec)(uint8_t);
  float maxv;
} codec;

static const codec codecs[] = {
    {"e4m3fn", 256, aoq_f32_to_e4m3, aoq_e4m3_to_f32, 448.0f},
    {"e5m2", 256, aoq_f32_to_e5m2, aoq_e5m2_to_f32, 57344.0f},
    {"e4m3fnuz", 256, aoq_f32_to_e4m3fnuz, aoq_e4m3fnuz_to_f32, 240.0f},
    {"e2m1", 16, aoq_f32_to_e2m1, aoq_e2m1_to_f32, 6.0f},
    {"e3m2", 64, aoq_f32_to_e3m2, aoq_e3m2_to_f32, 28.0f},
    {"e2m3", 64, aoq_f32_to_e2m3, aoq_e2m3_to_f32, 7.5f},
};

/* Every code decodes; every finite code round-trips; values between neighbours round to nearest,
 * ties to the even code; beyond max saturates. */
static void test_codecs_exhaustive(void **st) {
  (void)st;
  for (size_t ci = 0; ci < sizeof codecs / sizeof codecs[0]; ci++) {
    const codec *c = &codecs[ci];
    int finite = 0;
    for (int b = 0; b < c->codes; b++) {
      float v = c->dec((uint8_t)b);
      if (isnan(v) || isinf(v)) continue;
      finite++;
      uint8_t back = c->enc(v);
      if (v == 0.0f && b != 0 && strcmp(c->name, "e4m3fnuz")) {
        assert_int_equal(back, b); /* -0 keeps its sign */
        continue;
      }
      if (back != b) fail_msg("%s: code 0x%02x (%g) encodes back to 0x%02x", c->name, b, v, back);
      assert_true(fabsf(v) <= c->maxv);
    }
    /* positive finite magnitudes in code order: check midpoints and just-around-midpoints */
    int half = c->codes / 2;
    for (int b = 0; b + 1 < half; b++) {
      float lo = c->dec((uint8_t)b), hi = c->dec((uint8_t)(b + 1));
      if (!isfinite(hi) || !isfinite(lo) || hi > c->maxv) continue;
      float mid = (float)(((double)lo + (double)hi) / 2);
      uint8_t want = (b & 1) ? (uint8_t)(b + 1) : (uint8_t)b; /* ties to even mantissa */
      if (c->enc(mid) != want)
        fail_msg("%s: tie %g between 0x%02x and 0x%02x -> 0x%02x", c->name, mid, b, b + 1,
                 c->enc(mid));
      assert_int_equal(c->enc(nextafterf(mid, 0.0f)), b);
      assert_int_equal(c->enc(nextafterf(mid, INFINITY)), b + 1);
      /* negative side mirrors (fnuz has no -0, so skip its zero) */
      if (b > 0 || strcmp(c->name, "e4m3fnuz"))
        assert_int_equal(c->enc(-nextafterf(mid, 0.0f)), (uint8_t)(b | half));
    }
    float maxv = c->maxv;
    uint8_t maxc = c->enc(maxv);
    assert_true(c->dec(maxc) == maxv);
    assert_int_equal(c->enc(maxv * 1.5f), maxc);
    assert_int_equal(c->enc(INFINITY), maxc);
    assert_int_equal(c->enc(1e30f), maxc);
    assert_true(c->dec(c->enc(-1e30f)) == -maxv);
    assert_true(finite >= c->codes - 8);
  }
  /* special codes */
  assert_true(isnan(aoq_e4m3_to_f32(0x7f)) && isnan(aoq_e4m3_to_f32(0xff)));
  assert_int_equal(aoq_f32_to_e4m3(NAN) & 0x7f, 0x7f);
  assert_true(isinf(aoq_e5m2_to_f32(0x7c)) && isnan(aoq_e5m2_to_f32(0x7d)));
  assert_true(isnan(aoq_e4m3fnuz_to_f32(0x80)));
  assert_int_equal(aoq_f32_to_e4m3fnuz(NAN), 0x80);
  assert_int_equal(aoq_f32_to_e4m3fnuz(-1e-9f), 0x00);
  assert_true(aoq_e4m3_to_f32(0x01) == 0x1p-9f);
  assert_true(aoq_e5m2_to_f32(0x01) == 0x1p-16f);
  assert_true(aoq_e4m3fnuz_to_f32(0x01) == 0x1p-10f);
  assert_true(aoq_e3m2_to_f32(0x01) == 0.0625f && aoq_e2m3_to_f32(0x01) == 0.125f);
  const float e2m1[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  for (int i = 0; i < 8; i++) assert_true(aoq_e2m1_to_f32((uint8_t)i) == e2m1[i]);
}

/* Every code's value against the textbook formula (-1)^s 2^(e-bias) (1 + m/2^mbits), subnormal
 * 2^(1-bias) m/2^mbits, computed in double — independent of numerics.h's bit tricks. */
static void test_decode_matches_formula(void **st) {
  (void)st;
  const struct {
    float (*dec)(uint8_t);
    int ebits, mbits, bias;
    const char *name;
  } f[] = {{aoq_e4m3_to_f32, 4, 3, 7, "e4m3"},     {aoq_e5m2_to_f32, 5, 2, 15, "e5m2"},
           {aoq_e4m3fnuz_to_f32, 4, 3, 8, "fnuz"}, {aoq_e2m1_to_f32, 2, 1, 1, "e2m1"},
           {aoq_e3m2_to_f32, 3, 2, 3, "e3m2"},     {aoq_e2m3_to_f32, 2, 3, 1, "e2m3"}};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
    int nb = 1 + f[i].ebits + f[i].mbits;
    for (int c = 0; c < (1 << nb); c++) {
      int s = c >> (nb - 1), e = (c >> f[i].mbits) & ((1 << f[i].ebits) - 1),
          m = c & ((1 << f[i].mbits) - 1);
      double v = e ? ldexp(1.0 + ldexp(m, -f[i].mbits), e - f[i].bias)
                   : ldexp(m, 1 - f[i].bias - f[i].mbits);
      v = s ? -v : v;
      float got = f[i].dec((uint8_t)c);
      if (isnan(got) || isinf(got)) continue; /* special codes are checked elsewhere */
      if (got != (float)v && !(c == 0x80 && !strcmp(f[i].name, "fnuz")))
        fail_msg("%s code 0x%02x: %g, formula %g", f[i].name, c, got, v);
    }
  }
}

static void test_e8m0(void **st) {
  (void)st;
  for (int b = 0; b < 255; b++) assert_true(aoq_e8m0_to_f32((uint8_t)b) == ldexpf(1.0f, b - 127));
  assert_true(isnan(aoq_e8m0_to_f32(255)));
  const float inv = 1.0f / 448.0f;
  assert_int_equal(aoq_e8m0_rceil(448.0f, inv), 127); /* exactly 1 */
  assert_int_equal(aoq_e8m0_rceil(449.0f, inv), 128); /* rounds up */
  assert_int_equal(aoq_e8m0_rceil(224.0f, inv), 126);
  assert_int_equal(aoq_e8m0_rceil(0.0f, inv), 0);
  assert_int_equal(aoq_e8m0_rceil(INFINITY, inv), 255);
  assert_int_equal(aoq_e8m0_rceil(NAN, inv), 255);
  assert_int_equal(aoq_e8m0_rceil(6.0f, 1.0f / 6.0f), 127);
  /* fp32-subnormal d: 2^-127 exactly -> 0, anything above -> 1 */
  assert_int_equal(aoq_e8m0_rceil(0x1p-127f, 1.0f), 0);
  assert_int_equal(aoq_e8m0_rceil(0x1.8p-127f, 1.0f), 1);
  /* RCEIL never clips: the block max / scale stays <= max_pos for many amax values */
  for (float a = 1e-30f; a < 1e30f; a *= 1.37f) {
    uint8_t e = aoq_e8m0_rceil(a, inv);
    assert_true(a / aoq_e8m0_to_f32(e) <= 448.0f);
    assert_true(a / aoq_e8m0_to_f32(e) > 224.0f * 0.999f || e == 0);
  }
}

static void test_swizzle_is_a_permutation(void **st) {
  (void)st;
  const int64_t R = 200, C = 9;
  int64_t sz = aoq_scale_swizzle_size(R, C);
  assert_int_equal(sz, 256 * 12);
  char *seen = calloc((size_t)sz, 1);
  for (int64_t r = 0; r < R; r++)
    for (int64_t c = 0; c < C; c++) {
      int64_t o = aoq_scale_swizzle_offset(r, c, C);
      assert_true(o >= 0 && o < sz);
      assert_int_equal(seen[o], 0);
      seen[o] = 1;
    }
  assert_int_equal(aoq_scale_swizzle_offset(0, 1, C), 1);
  assert_int_equal(aoq_scale_swizzle_offset(32, 0, C), 4);
  assert_int_equal(aoq_scale_swizzle_offset(1, 0, C), 16);
  assert_int_equal(aoq_scale_swizzle_offset(0, 4, C), 512);
  free(seen);
}

/* --- golden files --- */

static aoq_st_file *golden(const char *name) {
  char path[512];
  const char *dir = getenv("AOQ_TEST_DATA");
  snprintf(path, sizeof path, "%s/golden/%s.safetensors", dir ? dir : AOQ_TEST_DATA, name);
  aoq_st_file *f = NULL;
  aoq_status s = aoq_st_open(path, &f);
  if (s) fail_msg("cannot open %s: %s", path, aoq_last_error());
  return f;
}

static const aoq_st_tensor *gt(aoq_st_file *f, const char *name) {
  const aoq_st_tensor *t = aoq_st_find(f, name);
  if (!t) fail_msg("golden tensor %s missing", name);
  return t;
}

static void alloc_fp(aoq_qweight *w, aoq_format_kind kind, int64_t n, int64_t k) {
  memset(w, 0, sizeof *w);
  w->kind = kind, w->n = n, w->k = k, w->group = 0;
  assert_int_equal(aoq_fp_sizes(kind, n, k, &w->qdata_bytes, &w->scale_bytes, &w->aux_bytes), 0);
  w->qdata = malloc(w->qdata_bytes);
  w->scale = malloc(w->scale_bytes);
  w->aux = w->aux_bytes ? malloc(w->aux_bytes) : NULL;
}

static void free_fp(aoq_qweight *w) {
  free(w->qdata), free(w->scale), free(w->aux);
}

static void expect_bytes(const char *what, const void *got, size_t ng, const aoq_st_tensor *t) {
  if (ng != t->nbytes) fail_msg("%s: %zu bytes, golden %zu", what, ng, t->nbytes);
  const uint8_t *a = got, *b = t->data;
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < ng; i++)
    if (a[i] != b[i] && !bad++) first = i;
  if (bad)
    fail_msg("%s: %zu of %zu bytes differ, first at %zu (0x%02x vs golden 0x%02x)", what, bad, ng,
             first, a[first], b[first]);
}

static void golden_weight(const char *file, aoq_format_kind kind) {
  aoq_st_file *f = golden(file);
  const aoq_st_tensor *wt = gt(f, "weight");
  int64_t n = wt->shape[0], k = wt->shape[1];
  aoq_qweight w;
  alloc_fp(&w, kind, n, k);
  uint16_t *wa = malloc(wt->nbytes); /* file data need not be 2-byte aligned */
  memcpy(wa, wt->data, wt->nbytes);
  assert_int_equal(aoq_quantize_ref_fp(wa, &w), AOQ_OK);
  free(wa);
  static const char *attrs[] = {"qdata", "scale", "per_tensor_scale"};
  for (int i = 0; i < 3; i++) {
    char name[64];
    snprintf(name, sizeof name, "q.%s", attrs[i]);
    const aoq_st_tensor *g = aoq_st_find(f, name);
    void *b = NULL;
    size_t nb = 0;
    aoq_status s = aoq_torchao_tensor_fp(&w, attrs[i], &b, &nb);
    if (!g) {
      assert_int_equal(s, AOQ_ENOTFOUND);
      continue;
    }
    assert_int_equal(s, AOQ_OK);
    char what[128];
    snprintf(what, sizeof what, "%s %s", file, name);
    expect_bytes(what, b, nb, g);
    free(b);
  }
  uint16_t *dq = malloc((size_t)(n * k) * 2);
  assert_int_equal(aoq_dequantize_ref_fp(&w, dq), AOQ_OK);
  char what[128];
  snprintf(what, sizeof what, "%s dequant", file);
  expect_bytes(what, dq, (size_t)(n * k) * 2, gt(f, "dequant"));
  free(dq);
  free_fp(&w);
  aoq_st_close(f);
}

static void test_golden_fp8wo(void **st) {
  (void)st, golden_weight("fp8wo", AOQ_FMT_FP8WO);
}
static void test_golden_fp8dq(void **st) {
  (void)st, golden_weight("fp8dq", AOQ_FMT_FP8DQ);
}
static void test_golden_fp8dq_row(void **st) {
  (void)st, golden_weight("fp8dq-row", AOQ_FMT_FP8DQ_ROW);
}
static void test_golden_mxfp8(void **st) {
  (void)st, golden_weight("mxfp8", AOQ_FMT_MXFP8);
}
static void test_golden_mxfp4(void **st) {
  (void)st, golden_weight("mxfp4", AOQ_FMT_MXFP4);
}
static void test_golden_nvfp4(void **st) {
  (void)st, golden_weight("nvfp4", AOQ_FMT_NVFP4);
}
static void test_golden_nvfp4wo(void **st) {
  (void)st, golden_weight("nvfp4wo", AOQ_FMT_NVFP4WO);
}

/* Formats without a torchao golden: dequant error stays within the element's relative precision
 * of the block scale, and the fp6 packing round-trips through the dequantizer. */
static void test_fp6_and_block_fp8_error_bound(void **st) {
  (void)st;
  const int64_t n = 256, k = 384 + 4; /* k not a multiple of 16: padded fp6 rows */
  uint16_t *x = malloc((size_t)(n * k) * 2), *dq = malloc((size_t)(n * k) * 2);
  uint64_t s = 7;
  for (int64_t i = 0; i < n * k; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    double u = (double)(s >> 11) * 0x1.0p-53 * 2 - 1;
    x[i] = aoq_f32_to_bf16((float)(u * (i % 97 == 0 ? 8.0 : 1.0)));
  }
  const struct {
    aoq_format_kind kind;
    double rel; /* half an ulp of the element, plus bf16 rounding */
  } cases[] = {{AOQ_FMT_FP6_E3M2, 0.13}, {AOQ_FMT_FP6_E2M3, 0.066}, {AOQ_FMT_FP8DQ_BLOCK, 0.066}};
  for (size_t c = 0; c < 3; c++) {
    aoq_qweight w;
    alloc_fp(&w, cases[c].kind, n, k);
    assert_int_equal(aoq_quantize_ref_fp(x, &w), AOQ_OK);
    assert_int_equal(aoq_dequantize_ref_fp(&w, dq), AOQ_OK);
    for (int64_t r = 0; r < n; r++) {
      float amax = aoq_amax_bf16(x + r * k, k);
      if (cases[c].kind == AOQ_FMT_FP8DQ_BLOCK) amax = 8.0f; /* blocks contain outliers */
      for (int64_t i = 0; i < k; i++) {
        double e = fabs(aoq_bf16_to_f32(dq[r * k + i]) - aoq_bf16_to_f32(x[r * k + i]));
        double lim = cases[c].rel * fmax(fabs(aoq_bf16_to_f32(x[r * k + i])), amax / 4);
        if (e > lim)
          fail_msg("kind %d row %lld col %lld: |err| %g > %g", cases[c].kind, (long long)r,
                   (long long)i, e, lim);
      }
    }
    free_fp(&w);
  }
  free(x), free(dq);
}

static void test_bad_shapes_and_buffers(void **st) {
  (void)st;
  size_t a, b, c;
  assert_int_equal(aoq_fp_sizes(AOQ_FMT_MXFP4, 4, 48, &a, &b, &c), AOQ_ESHAPE);
  assert_int_equal(aoq_fp_sizes(AOQ_FMT_NVFP4, 4, 40, &a, &b, &c), AOQ_ESHAPE);
  assert_int_equal(aoq_fp_sizes(AOQ_FMT_FP6_E3M2, 4, 42, &a, &b, &c), AOQ_OK);
  assert_int_equal(a, 4 * 32); /* 252 bits per row, padded to 8 words */
  assert_int_equal(aoq_fp_sizes(AOQ_FMT_FP8WO, 0, 42, &a, &b, &c), AOQ_ESHAPE);
  assert_int_equal(aoq_fp_sizes(AOQ_FMT_INT4WO, 4, 64, &a, &b, &c), AOQ_EINVAL);
  aoq_qweight w;
  alloc_fp(&w, AOQ_FMT_NVFP4, 16, 64);
  uint16_t x[16 * 64] = {0};
  w.scale_bytes--;
  assert_int_equal(aoq_quantize_ref_fp(x, &w), AOQ_ESHAPE);
  assert_non_null(strstr(aoq_last_error(), "scale"));
  w.scale_bytes++;
  void *aux = w.aux;
  w.aux = NULL;
  assert_int_equal(aoq_quantize_ref_fp(x, &w), AOQ_ESHAPE);
  w.aux = aux;
  assert_int_equal(aoq_quantize_ref_fp(NULL, &w), AOQ_EINVAL);
  void *p;
  size_t np;
  assert_int_equal(aoq_quantize_ref_fp(x, &w), AOQ_OK);
  assert_int_equal(aoq_torchao_tensor_fp(&w, "zero_point", &p, &np), AOQ_ENOTFOUND);
  free_fp(&w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_codecs_exhaustive),
      cmocka_unit_test(test_decode_matches_formula),
      cmocka_unit_test(test_e8m0),
      cmocka_unit_test(test_swizzle_is_a_permutation),
      cmocka_unit_test(test_golden_fp8wo),
      cmocka_unit_test(test_golden_fp8dq),
      cmocka_unit_test(test_golden_fp8dq_row),
      cmocka_unit_test(test_golden_mxfp8),
      cmocka_unit_test(test_golden_mxfp4),
      cmocka_unit_test(test_golden_nvfp4),
      cmocka_unit_test(test_golden_nvfp4wo),
      cmocka_unit_test(test_fp6_and_block_fp8_error_bound),
      cmocka_unit_test(test_bad_shapes_and_buffers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
