/*
 * test_sampler.c — aoq_sample_host: greedy is argmax (first index on ties, NaN never wins);
 * sampling is deterministic per seed and advances it; top-k and top-p restrict the support;
 * temperature sharpens/flattens the empirical distribution as the softmax says.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
/* cmocka needs the headers above first */
// clang-format off
#include <cmocka.h>
// clang-format on

#include "core/model.h"

static void test_greedy(void **state) {
  (void)state;
  float l[6] = {0.5f, 2.0f, NAN, 2.0f, -1.0f, 1.0f};
  aoq_sample_params p = {.temperature = 0, .top_p = 1, .top_k = 0, .seed = 9};
  assert_int_equal(aoq_sample_host(l, 6, &p), 1);
  assert_int_equal(p.seed, 9); /* greedy draws nothing */
  assert_int_equal(aoq_sample_host(l, 6, NULL), 1);
  assert_int_equal(aoq_sample_host(NULL, 6, &p), -1);
  assert_int_equal(aoq_sample_host(l, 0, &p), -1);
}

static void test_seeded_sampling_is_deterministic(void **state) {
  (void)state;
  float l[100];
  for (int i = 0; i < 100; i++) l[i] = sinf((float)i) * 2.0f;
  aoq_sample_params a = {.temperature = 1.0f, .top_p = 1, .seed = 42}, b = a, c = a;
  c.seed = 43;
  int diff = 0;
  for (int i = 0; i < 50; i++) {
    int32_t x = aoq_sample_host(l, 100, &a), y = aoq_sample_host(l, 100, &b),
            z = aoq_sample_host(l, 100, &c);
    assert_int_equal(x, y);
    assert_true(x >= 0 && x < 100);
    diff += x != z;
  }
  assert_int_equal(a.seed, b.seed);
  assert_int_not_equal(a.seed, 42);
  assert_true(diff > 10); /* another seed gives another stream */
}

/* Empirical frequencies over many draws match softmax(l / T) for three tokens. */
static void test_temperature_matches_softmax(void **state) {
  (void)state;
  float l[3] = {1.0f, 0.0f, -1.0f};
  const float temps[2] = {1.0f, 0.5f};
  for (int t = 0; t < 2; t++) {
    aoq_sample_params p = {.temperature = temps[t], .top_p = 1, .seed = 1};
    int count[3] = {0};
    const int n = 20000;
    for (int i = 0; i < n; i++) count[aoq_sample_host(l, 3, &p)]++;
    double z = 0, pr[3];
    for (int i = 0; i < 3; i++) z += exp(l[i] / temps[t]);
    for (int i = 0; i < 3; i++) {
      pr[i] = exp(l[i] / temps[t]) / z;
      assert_true(fabs((double)count[i] / n - pr[i]) < 0.015);
    }
  }
}

static void test_top_k_and_top_p_restrict_support(void **state) {
  (void)state;
  float l[8] = {3.0f, 2.9f, 2.8f, 0.0f, -1.0f, 2.7f, -5.0f, 1.0f};
  aoq_sample_params p = {.temperature = 1.0f, .top_p = 1, .top_k = 2, .seed = 5};
  int seen[8] = {0};
  for (int i = 0; i < 2000; i++) seen[aoq_sample_host(l, 8, &p)]++;
  assert_true(seen[0] > 0 && seen[1] > 0);
  for (int i = 2; i < 8; i++) assert_int_equal(seen[i], 0);
  /* top-p 0.5 keeps the smallest prefix with mass >= 0.5: tokens 0 and 1 here
   * (probabilities ~0.27, 0.25, 0.22, 0.20, ...) */
  memset(seen, 0, sizeof seen);
  p = (aoq_sample_params){.temperature = 1.0f, .top_p = 0.5f, .top_k = 0, .seed = 5};
  for (int i = 0; i < 2000; i++) seen[aoq_sample_host(l, 8, &p)]++;
  assert_true(seen[0] > 0 && seen[1] > 0);
  for (int i = 2; i < 8; i++) assert_int_equal(seen[i], 0);
  /* a tiny top-p is greedy */
  p.top_p = 1e-6f;
  for (int i = 0; i < 100; i++) assert_int_equal(aoq_sample_host(l, 8, &p), 0);
  /* top-k 1 is greedy */
  p = (aoq_sample_params){.temperature = 5.0f, .top_p = 1, .top_k = 1, .seed = 5};
  for (int i = 0; i < 100; i++) assert_int_equal(aoq_sample_host(l, 8, &p), 0);
}

/* A large vocabulary (128256) with top-p: only high-probability tokens come out. */
static void test_large_vocab_top_p(void **state) {
  (void)state;
  const int V = 128256;
  float *l = malloc(sizeof(float) * V);
  for (int i = 0; i < V; i++) l[i] = -10.0f;
  l[1000] = 10.0f, l[99999] = 9.5f;
  aoq_sample_params p = {.temperature = 1.0f, .top_p = 0.9f, .top_k = 0, .seed = 3};
  int a = 0, b = 0;
  for (int i = 0; i < 200; i++) {
    int32_t t = aoq_sample_host(l, V, &p);
    assert_true(t == 1000 || t == 99999);
    a += t == 1000, b += t == 99999;
  }
  assert_true(a > b && b > 0);
  free(l);
}

/* Logit and temperature edge cases still give the token the math says: NaN first never wins,
 * +inf wins, a denormal temperature is greedy, an infinite one never picks a masked (-inf) token,
 * all -inf returns a valid index. Every path (plain temperature, top-k, top-p) is covered. */
static void test_nonfinite_logits_and_extreme_temperatures(void **state) {
  (void)state;
  float nan_first[8] = {NAN, 0, 0, 0, 0, 9.0f, 0, 0};
  float pinf[8] = {0, 1, 2, INFINITY, 0, 0, 0, 0};
  float masked[8] = {-INFINITY, 1, -INFINITY, 1, -INFINITY, 1, -INFINITY, 1};
  float all_ninf[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
  const struct {
    int top_k;
    float top_p;
  } modes[] = {{0, 0}, {3, 0}, {0, 0.9f}, {100, 0.5f}};
  aoq_sample_params g = {0};
  assert_int_equal(aoq_sample_host(nan_first, 8, &g), 5);
  for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
    for (uint64_t seed = 0; seed < 20; seed++) {
      aoq_sample_params p = {
          .temperature = 1e-45f, .top_k = modes[m].top_k, .top_p = modes[m].top_p, .seed = seed};
      if (aoq_sample_host(nan_first, 8, &p) != 5) fail_msg("mode %zu: nan_first", m);
      p.temperature = 1.0f;
      if (aoq_sample_host(pinf, 8, &p) != 3) fail_msg("mode %zu: +inf", m);
      p.temperature = 1e-45f;
      if (aoq_sample_host(pinf, 8, &p) != 3) fail_msg("mode %zu: +inf, tiny T", m);
      p.temperature = INFINITY;
      int32_t t = aoq_sample_host(masked, 8, &p);
      if (t < 0 || t >= 8 || t % 2 == 0) fail_msg("mode %zu: masked token %d at T=inf", m, t);
      p.temperature = 1.0f;
      t = aoq_sample_host(all_ninf, 4, &p);
      if (t < 0 || t >= 4) fail_msg("mode %zu: all -inf gave %d", m, t);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_greedy),
      cmocka_unit_test(test_seeded_sampling_is_deterministic),
      cmocka_unit_test(test_temperature_matches_softmax),
      cmocka_unit_test(test_top_k_and_top_p_restrict_support),
      cmocka_unit_test(test_large_vocab_top_p),
      cmocka_unit_test(test_nonfinite_logits_and_extreme_temperatures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
