/*
 * test_cpu_sample.c — argmax (first maximum wins, NaN never wins) and sampling of the CPU
 * backend: determinism per seed, greedy at temperature 0 and top_k 1, frequencies that follow
 * the softmax, top-k and top-p sets (a token outside them is never drawn over many seeds, each
 * token inside is), top-p applied to the renormalized top-k, bf16 logits, argument checks.
 */
#include "tests/unit/test_cpu_util.h"

/* ---- argmax and sampling ---- */

static void test_argmax_first_max_wins(void **state) {
  (void)state;
  aoq_device *d = open_cpu(0, 2);
  for (size_t t = 0; t < 2; t++) {
    aoq_dtype dt = dts[t];
    const int64_t m = 5, vocab = 1001;
    tens lg = tens_new(d, m * vocab, dt, 4.0);
    int32_t want[5] = {0, 1000, 500, 17, 3};
    for (int64_t r = 0; r < m; r++) {
      aoq_cpu_st(lg.p, r * vocab + want[r], 9.0f, dt);
      if (r == 2) aoq_cpu_st(lg.p, r * vocab + 900, 9.0f, dt); /* tie: 500 comes first */
      if (r == 3) aoq_cpu_st(lg.p, r * vocab + 16, NAN, dt);   /* NaN never wins */
    }
    int32_t out[5];
    assert_int_equal(aoq_dev_argmax(d, lg.p, out, m, vocab, dt, NULL), AOQ_OK);
    assert_memory_equal(out, want, sizeof want);
    assert_int_equal(aoq_dev_argmax(d, lg.p, out, m, 0, dt, NULL), AOQ_EINVAL);
    assert_int_equal(aoq_dev_argmax(d, lg.p, NULL, m, vocab, dt, NULL), AOQ_EINVAL);
    tens_free(d, &lg);
  }
  aoq_device_close(d);
}

static int32_t sample1(aoq_device *d, const float *lg, int64_t vocab, float temp, int top_k,
                       float top_p, uint64_t seed) {
  aoq_sample_params p = {temp, top_p, top_k, seed};
  int32_t out = -1;
  aoq_status st = aoq_dev_sample(d, lg, &out, 1, vocab, &p, AOQ_DTYPE_F32, NULL);
  if (st != AOQ_OK) print_message("sample: %s\n", aoq_last_error());
  assert_int_equal(st, AOQ_OK);
  return out;
}

static void test_sample_is_deterministic_and_greedy_at_zero(void **state) {
  (void)state;
  aoq_device *d = open_cpu(0, 2);
  float lg[100];
  for (int i = 0; i < 100; i++) lg[i] = (float)urand();
  lg[42] = 1.5f;
  int distinct[100] = {0}, n_distinct = 0;
  for (uint64_t seed = 0; seed < 300; seed++) {
    int32_t a = sample1(d, lg, 100, 1.0f, 0, 1.0f, seed);
    int32_t b = sample1(d, lg, 100, 1.0f, 0, 1.0f, seed);
    assert_int_equal(a, b);
    assert_true(a >= 0 && a < 100);
    if (!distinct[a]++) n_distinct++;
    assert_int_equal(sample1(d, lg, 100, 0.0f, 0, 1.0f, seed), 42);
    assert_int_equal(sample1(d, lg, 100, 1.0f, 1, 1.0f, seed), 42); /* top_k 1 = greedy */
  }
  assert_true(n_distinct > 50);
  /* Several rows in one call, each with its own parameters, match single-row calls. */
  float rows[3 * 100];
  aoq_sample_params ps[3] = {{0.7f, 0.9f, 0, 11}, {0.0f, 1.0f, 0, 12}, {1.3f, 1.0f, 10, 13}};
  for (int r = 0; r < 3; r++) memcpy(rows + r * 100, lg, sizeof lg);
  int32_t out[3];
  assert_int_equal(aoq_dev_sample(d, rows, out, 3, 100, ps, AOQ_DTYPE_F32, NULL), AOQ_OK);
  for (int r = 0; r < 3; r++)
    assert_int_equal(out[r],
                     sample1(d, lg, 100, ps[r].temperature, ps[r].top_k, ps[r].top_p, ps[r].seed));
  aoq_sample_params bad = {NAN, 1.0f, 0, 1};
  assert_int_equal(aoq_dev_sample(d, lg, out, 1, 100, &bad, AOQ_DTYPE_F32, NULL), AOQ_EINVAL);
  bad.temperature = 1;
  bad.top_k = -2;
  assert_int_equal(aoq_dev_sample(d, lg, out, 1, 100, &bad, AOQ_DTYPE_F32, NULL), AOQ_EINVAL);
  assert_int_equal(aoq_dev_sample(d, lg, out, 1, 100, NULL, AOQ_DTYPE_F32, NULL), AOQ_EINVAL);
  aoq_device_close(d);
}

static void test_sample_distribution_top_k_top_p(void **state) {
  (void)state;
  aoq_device *d = open_cpu(0, 2);
  /* Plain softmax sampling follows the probabilities: p = [.1 .2 .3 .4]. */
  float lg4[4] = {logf(0.1f), logf(0.2f), logf(0.3f), logf(0.4f)};
  int cnt[4] = {0};
  const int N = 4000;
  for (int s = 0; s < N; s++) cnt[sample1(d, lg4, 4, 1.0f, 0, 1.0f, (uint64_t)s * 7919)]++;
  for (int i = 0; i < 4; i++) {
    double f = (double)cnt[i] / N;
    if (fabs(f - 0.1 * (i + 1)) > 0.03) print_message("token %d freq %.3f\n", i, f);
    assert_true(fabs(f - 0.1 * (i + 1)) <= 0.03);
  }
  /* top-k: a token outside the k largest is never chosen, each of the k is. */
  float lg[64];
  for (int i = 0; i < 64; i++) lg[i] = (float)urand() * 0.5f;
  int order[64];
  for (int i = 0; i < 64; i++) order[i] = i;
  for (int i = 0; i < 64; i++) /* selection sort, descending */
    for (int j = i + 1; j < 64; j++)
      if (lg[order[j]] > lg[order[i]]) {
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
      }
  int in_top[64] = {0}, seen[64] = {0};
  for (int i = 0; i < 5; i++) in_top[order[i]] = 1;
  for (int s = 0; s < 1000; s++) {
    int32_t t = sample1(d, lg, 64, 1.0f, 5, 1.0f, (uint64_t)s);
    assert_true(in_top[t]);
    seen[t]++;
  }
  for (int i = 0; i < 5; i++) assert_true(seen[order[i]] > 0);
  /* top-p: p = [.5 .3 .1 .05 .05] (+ 59 tokens at -inf): top_p .75 keeps {0, 1} only, in
   * proportion .625 / .375. */
  float lp[64];
  for (int i = 0; i < 64; i++) lp[i] = -INFINITY;
  const float pr[5] = {0.5f, 0.3f, 0.1f, 0.05f, 0.05f};
  for (int i = 0; i < 5; i++) lp[i * 11] = logf(pr[i]);
  int c0 = 0, c1 = 0;
  for (int s = 0; s < 2000; s++) {
    int32_t t = sample1(d, lp, 64, 1.0f, 0, 0.75f, (uint64_t)s * 31 + 1);
    assert_true(t == 0 || t == 11);
    c0 += t == 0;
    c1 += t == 11;
  }
  assert_true(fabs((double)c0 / 2000 - 0.625) < 0.04);
  /* top_p 0.45 keeps only the first token; 0.85 keeps three. */
  for (int s = 0; s < 200; s++) assert_int_equal(sample1(d, lp, 64, 1.0f, 0, 0.45f, s), 0);
  int seen3[64] = {0};
  for (int s = 0; s < 1000; s++) {
    int32_t t = sample1(d, lp, 64, 1.0f, 0, 0.85f, s);
    assert_true(t == 0 || t == 11 || t == 22);
    seen3[t]++;
  }
  assert_true(seen3[22] > 0);
  /* top-k then top-p on the renormalized top-k: k=3 -> [.5 .3 .1]/.9; top_p .85 is reached by
   * (.5 + .3)/.9 = .89 -> {0, 11} (over the whole vocabulary .8 < .85 would also keep 22). */
  for (int s = 0; s < 500; s++) {
    int32_t t = sample1(d, lp, 64, 1.0f, 3, 0.85f, s);
    assert_true(t == 0 || t == 11);
  }
  /* Low temperature sharpens: at T = 0.02 the others have odds below e^-14 each. */
  for (int s = 0; s < 500; s++) assert_int_equal(sample1(d, lg4, 4, 0.02f, 0, 1.0f, s), 3);
  /* bf16 logits sample the same way as their f32 values. */
  uint16_t lb[4];
  float lf[4];
  for (int i = 0; i < 4; i++) lb[i] = aoq_f32_to_bf16(lg4[i]), lf[i] = aoq_bf16_to_f32(lb[i]);
  for (uint64_t s = 0; s < 200; s++) {
    aoq_sample_params p = {0.9f, 0.95f, 3, s};
    int32_t a = -1, b = -2;
    assert_int_equal(aoq_dev_sample(d, lb, &a, 1, 4, &p, AOQ_DTYPE_BF16, NULL), AOQ_OK);
    assert_int_equal(aoq_dev_sample(d, lf, &b, 1, 4, &p, AOQ_DTYPE_F32, NULL), AOQ_OK);
    assert_int_equal(a, b);
  }
  aoq_device_close(d);
}

/* An infinite temperature flattens the kept tokens but never revives a masked (-inf or NaN)
 * one: -inf * (1/inf) is NaN, which must still weigh nothing. */
static void test_infinite_temperature_keeps_masked_tokens_out(void **state) {
  (void)state;
  aoq_device *d = open_cpu(0, 2);
  int seen[8] = {0};
  float lg[8] = {1, -INFINITY, 1, NAN, 1, -INFINITY, 1, -INFINITY};
  for (uint64_t s = 0; s < 200; s++) {
    int32_t t = sample1(d, lg, 8, INFINITY, 0, 1.0f, s);
    if (t < 0 || t >= 8 || t % 2) fail_msg("seed %llu: token %d", (unsigned long long)s, t);
    seen[t] = 1;
  }
  /* uniform over the four kept tokens: 200 draws see every one */
  assert_true(seen[0] && seen[2] && seen[4] && seen[6]);
  aoq_device_close(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_argmax_first_max_wins),
      cmocka_unit_test(test_sample_is_deterministic_and_greedy_at_zero),
      cmocka_unit_test(test_sample_distribution_top_k_top_p),
      cmocka_unit_test(test_infinite_temperature_keeps_masked_tokens_out),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
