/*
 * test_cpu_hf_golden.c — the CPU backend's bf16 ops against the outputs of Hugging Face's own
 * Llama code (transformers LlamaRotaryEmbedding with llama3 scaling + apply_rotary_pos_emb,
 * LlamaRMSNorm, silu * up, F.linear, +, and torch's scaled_dot_product_attention with causal
 * mask and GQA, which HF's sdpa attention calls) recorded in test_cpu_hf_golden.h by
 * test_cpu_hf_golden.py. Inputs are rebuilt here from the same integer hash, bit for bit.
 *
 * What is asserted: every output within 1 bf16 ulp of torch's, and at least 97% bit-identical
 * (add: 100%); attention has its own bound (see the test). The 1-ulp cases come from fp32 libm
 * differences (cos/sin/exp/rsqrt) or summation order landing an fp32 intermediate on the other side
 * of a bf16 rounding boundary.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs the headers above it */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "devices/cpu/cpu_kernels.h"
#include "devices/device.h"
#include "tests/unit/test_cpu_hf_golden.h"

/* Twin of bits() in test_cpu_hf_golden.py. */
static void golden_bits(uint16_t *out, int n, uint32_t salt, uint32_t e0, uint32_t ne) {
  for (int i = 0; i < n; i++) {
    uint32_t h = (uint32_t)i * 2654435761u + salt * 40503u;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    out[i] = (uint16_t)(((h & 1u) << 15) | ((e0 + ((h >> 1) % ne)) << 7) | ((h >> 4) & 0x7fu));
  }
}

/* Distance in bf16 steps (ordered representation). */
static int ulps(uint16_t a, uint16_t b) {
  int ia = a & 0x8000 ? -(int)(a & 0x7fff) : (int)a, ib = b & 0x8000 ? -(int)(b & 0x7fff) : (int)b;
  return abs(ia - ib);
}

static void compare(const char *what, const uint16_t *got, const uint16_t *want, int n,
                    double min_exact) {
  int exact = 0, worst = 0, at = 0;
  for (int i = 0; i < n; i++) {
    int u = ulps(got[i], want[i]);
    exact += u == 0;
    if (u > worst) worst = u, at = i;
  }
  print_message("%-14s %4d/%4d bit-identical to HF, worst %d ulp\n", what, exact, n, worst);
  if (worst > 1)
    print_message("  [%d]: got 0x%04x (%g), HF 0x%04x (%g)\n", at, got[at],
                  (double)aoq_bf16_to_f32(got[at]), want[at], (double)aoq_bf16_to_f32(want[at]));
  assert_true(worst <= 1);
  assert_true((double)exact >= min_exact * n);
}

static aoq_device *open_dev(void) {
  aoq_device *d = NULL;
  assert_int_equal(aoq_device_open("cpu:2", &d), AOQ_OK);
  return d;
}

static void check_rope(aoq_device *d, const char *what, const aoq_rope *r, int hd, int nh,
                       const int32_t *pos, int m, uint32_t salt, const uint16_t *want) {
  uint16_t *x = malloc(sizeof(uint16_t) * (size_t)(m * nh * hd));
  golden_bits(x, m * nh * hd, salt, 0x7b, 6);
  assert_int_equal(aoq_dev_rope(d, x, pos, m, nh, hd, (int64_t)nh * hd, r, AOQ_DTYPE_BF16, NULL),
                   AOQ_OK);
  compare(what, x, want, m * nh * hd, 0.97);
  free(x);
}

static void test_rope_matches_hf_llama3_and_plain(void **state) {
  (void)state;
  aoq_device *d = open_dev();
  const aoq_rope l31 = {500000.0f, 8.0f, 1.0f, 4.0f, 8192};
  const int32_t p1[6] = {0, 1, 17, 4095, 9000, 70000};
  check_rope(d, "rope llama3", &l31, 128, 2, p1, 6, 1, hf_rope_l31);
  const aoq_rope plain = {10000.0f, 0, 0, 0, 0};
  const int32_t p2[4] = {0, 3, 100, 2047};
  check_rope(d, "rope plain", &plain, 64, 3, p2, 4, 2, hf_rope_plain);
  aoq_device_close(d);
}

static void test_rmsnorm_silu_add_match_hf(void **state) {
  (void)state;
  aoq_device *d = open_dev();
  uint16_t x[600], w[200], y[600];
  golden_bits(x, 600, 3, 0x7b, 6);
  golden_bits(w, 200, 4, 0x7e, 2);
  assert_int_equal(aoq_dev_rmsnorm(d, x, w, y, 3, 200, 1e-5f, AOQ_DTYPE_BF16, NULL), AOQ_OK);
  compare("rmsnorm", y, hf_rmsnorm, 600, 0.97);

  uint16_t gu[600], s[300];
  golden_bits(gu, 600, 5, 0x7c, 5);
  /* HF slices gate | up per row of [3, 200]; aoq's gu[m, 2n] is the same layout. */
  assert_int_equal(aoq_dev_silu_mul(d, gu, s, 3, 100, AOQ_DTYPE_BF16, NULL), AOQ_OK);
  compare("silu_mul", s, hf_silu_mul, 300, 0.97);

  uint16_t a[999], b[999], c[999];
  golden_bits(a, 999, 8, 0x7b, 6);
  golden_bits(b, 999, 9, 0x74, 12);
  assert_int_equal(aoq_dev_add(d, a, b, c, 999, AOQ_DTYPE_BF16, NULL), AOQ_OK);
  compare("add", c, hf_add, 999, 1.0);
  aoq_device_close(d);
}

static void test_linear_matches_torch_every_isa(void **state) {
  (void)state;
  static const char *isa[] = {"scalar", "avx2", "avx512"};
  uint16_t x[3 * 512], w[16 * 512], y[48];
  golden_bits(x, 3 * 512, 6, 0x7b, 6);
  golden_bits(w, 16 * 512, 7, 0x78, 4);
  aoq_qweight qw = {.kind = AOQ_FMT_BF16,
                    .bits = 16,
                    .group = 512,
                    .n = 16,
                    .k = 512,
                    .qdata = w,
                    .qdata_bytes = sizeof w};
  for (int i = 0; i <= (int)aoq_cpu_isa_detect(); i++) {
    setenv("AOQ_CPU_ISA", isa[i], 1);
    aoq_device *d = open_dev();
    unsetenv("AOQ_CPU_ISA");
    assert_int_equal(aoq_dev_linear(d, &qw, x, y, 3, AOQ_DTYPE_BF16, NULL, NULL), AOQ_OK);
    char what[32];
    snprintf(what, sizeof what, "linear %s", isa[i]);
    compare(what, y, hf_linear, 48, 0.9);
    aoq_device_close(d);
  }
}

/* One sequence of 19 positions in pages scattered over the cache, queried as a whole prefill:
 * row i at position i attends to 0..i. */
static void test_attention_matches_torch_sdpa_gqa(void **state) {
  (void)state;
  enum { S = 19, H = 8, KVH = 2, D = 64, PAGE = 4, PAGES = 9, BLOCKS = 5 };
  aoq_device *d = open_dev();
  uint16_t *q = malloc(sizeof(uint16_t) * S * H * D), *out = malloc(sizeof(uint16_t) * S * H * D);
  uint16_t *k = malloc(sizeof(uint16_t) * S * KVH * D), *v = malloc(sizeof(uint16_t) * S * KVH * D);
  golden_bits(q, S * H * D, 10, 0x79, 5);
  golden_bits(k, S * KVH * D, 11, 0x79, 5);
  golden_bits(v, S * KVH * D, 12, 0x79, 5);
  aoq_kv_cache kv = {NULL, NULL, PAGES, PAGE, KVH, D, AOQ_DTYPE_BF16};
  size_t bytes = sizeof(uint16_t) * PAGES * PAGE * KVH * D;
  assert_int_equal(aoq_dev_alloc(d, bytes, &kv.k), AOQ_OK);
  assert_int_equal(aoq_dev_alloc(d, bytes, &kv.v), AOQ_OK);
  int32_t bt[BLOCKS] = {7, 2, 8, 0, 5}, slots[S], rs[S], rp[S];
  for (int p = 0; p < S; p++) {
    slots[p] = bt[p / PAGE] * PAGE + p % PAGE;
    rs[p] = 0;
    rp[p] = p;
  }
  assert_int_equal(aoq_dev_kv_store(d, &kv, k, v, slots, S, AOQ_DTYPE_BF16, NULL), AOQ_OK);
  aoq_attn_batch b = {rs, rp, bt, 1, BLOCKS, S - 1};
  assert_int_equal(aoq_dev_attention(d, &kv, &b, q, out, S, H, 1.0f / sqrtf((float)D),
                                     AOQ_DTYPE_BF16, NULL, NULL),
                   AOQ_OK);
  /* torch picks its CPU flash kernel here: P = exp(s - max) rounded to bf16 before P.V, the
   * normalizer from unrounded P — aoq's formula too. Two fp32 evaluations of it (torch's own
   * plain-tensor version included) still disagree on a few bf16 roundings of P, each moving
   * an output by at most 2^-8 * p * |v|; so: |aoq - torch| <= 2^-8 * max|v| + 1 ulp of the output,
   * and most outputs bit-identical (measured: 9304 of 9728, the same count that torch's
   * plain-tensor formula reaches against its kernel). */
  int same = 0;
  for (int i = 0; i < S * H * D; i++) {
    double got = aoq_bf16_to_f32(out[i]), want = aoq_bf16_to_f32(hf_attention[i]);
    double tol = 0x1.0p-8 * 0.5 + 0x1.0p-8 * fabs(want);
    if (!(fabs(got - want) <= tol)) {
      print_message("attention [%d]: got %g, torch %g (tol %g)\n", i, got, want, tol);
      fail();
    }
    same += out[i] == hf_attention[i];
  }
  print_message("%-14s %4d/%4d bit-identical to torch sdpa\n", "attention", same, S * H * D);
  assert_true(same >= 0.9 * S * H * D);
  aoq_dev_free(d, kv.k);
  aoq_dev_free(d, kv.v);
  free(q);
  free(out);
  free(k);
  free(v);
  aoq_device_close(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rope_matches_hf_llama3_and_plain),
      cmocka_unit_test(test_rmsnorm_silu_add_match_hf),
      cmocka_unit_test(test_linear_matches_torch_every_isa),
      cmocka_unit_test(test_attention_matches_torch_sdpa_gqa),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
