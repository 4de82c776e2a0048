/*
 * test_model.c — the model layer on the CPU device with synthetic `tiny` weights: presets,
 * determinism of synthetic weights, continuous batching (a sequence's logits do not depend on
 * what else is in the step), KV page accounting and quotas, single linears (fused rows sliced
 * right), reconfiguration, step validation, and the host sampler.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/numerics.h"
#include "core/model.h"

static aoq_device *dev;

static int grp_setup(void **state) {
  (void)state;
  return aoq_device_open("cpu", &dev) == AOQ_OK ? 0 : -1;
}
static int grp_teardown(void **state) {
  (void)state;
  aoq_device_close(dev);
  return 0;
}

static aoq_model *load_tiny(uint64_t seed, const char *config, int kv_pages) {
  aoq_model_opts o = {.model = "tiny", .synthetic = true, .seed = seed, .config = config,
                      .kv_pages = kv_pages, .max_seqs = 8, .max_batch_tokens = 64};
  aoq_model *m = NULL;
  aoq_status s = aoq_model_load(dev, &o, &m);
  if (s != AOQ_OK) fprintf(stderr, "load: %s\n", aoq_last_error());
  assert_int_equal(s, AOQ_OK);
  return m;
}

static void test_presets(void **state) {
  (void)state;
  aoq_model_config c;
  assert_int_equal(aoq_model_preset("llama3.1-8b", &c), AOQ_OK);
  assert_int_equal(c.vocab_size, 128256);
  assert_int_equal(c.hidden_size, 4096);
  assert_int_equal(c.n_layers, 32);
  assert_int_equal(c.n_heads, 32);
  assert_int_equal(c.n_kv_heads, 8);
  assert_int_equal(c.intermediate_size, 14336);
  assert_int_equal(c.head_dim, 128);
  assert_int_equal(c.max_position, 131072);
  assert_true(c.rope.theta == 500000.0f && c.rope.factor == 8.0f);
  assert_true(c.rope.low_freq_factor == 1.0f && c.rope.high_freq_factor == 4.0f);
  assert_int_equal(c.rope.original_max_position, 8192);
  assert_false(c.tie_embeddings);
  assert_int_equal(aoq_model_preset("tiny", &c), AOQ_OK);
  assert_true(c.vocab_size >= 259);
  assert_int_equal(c.hidden_size % 256, 0);
  assert_int_equal(c.intermediate_size % 256, 0);
  assert_int_equal(((c.n_heads + 2 * c.n_kv_heads) * c.head_dim) % 128, 0);
  assert_int_equal(aoq_model_preset("gpt2", &c), AOQ_ENOTFOUND);
  aoq_model *m = NULL;
  aoq_model_opts o = {.model = "tiny"}; /* a preset has no weights unless synthetic */
  assert_int_equal(aoq_model_load(dev, &o, &m), AOQ_EINVAL);
  o.model = "no-such-model";
  assert_int_equal(aoq_model_load(dev, &o, &m), AOQ_ENOTFOUND);
  assert_non_null(strstr(aoq_last_error(), "no-such-model"));
}

/* Runs a prompt through one sequence and returns the last logits (caller frees). */
static float *run_prompt(aoq_model *m, const int32_t *tok, int n) {
  int vocab = aoq_model_info_get(m)->cfg.vocab_size, seq;
  float *out = malloc(sizeof(float) * (size_t)vocab);
  assert_int_equal(aoq_model_seq_open(m, &seq), AOQ_OK);
  aoq_step_item it = {.seq = seq, .tokens = tok, .n_tokens = n, .want_logits = true};
  assert_int_equal(aoq_model_step(m, &it, 1, out), AOQ_OK);
  aoq_model_seq_close(m, seq);
  return out;
}

static void test_synthetic_weights_are_deterministic(void **state) {
  (void)state;
  const int32_t tok[] = {256, 72, 101, 108, 108, 111};
  aoq_model *a = load_tiny(7, NULL, 0), *b = load_tiny(7, NULL, 0), *c = load_tiny(8, NULL, 0);
  int vocab = aoq_model_info_get(a)->cfg.vocab_size;
  float *la = run_prompt(a, tok, 6), *lb = run_prompt(b, tok, 6), *lc = run_prompt(c, tok, 6);
  assert_memory_equal(la, lb, sizeof(float) * (size_t)vocab);
  assert_memory_not_equal(la, lc, sizeof(float) * (size_t)vocab);
  float mx = 0;
  for (int i = 0; i < vocab; i++) assert_true(isfinite(la[i])), mx = fmaxf(mx, fabsf(la[i]));
  assert_true(mx > 0.1f);
  free(la), free(lb), free(lc);
  aoq_model_free(a), aoq_model_free(b), aoq_model_free(c);
}

/* A sequence's logits are bit-identical whether it runs alone or batched with others (prefill
 * chunks and decode tokens of other sequences in the same step). */
static void test_batching_does_not_change_a_sequence(void **state) {
  (void)state;
  aoq_model *m = load_tiny(1, NULL, 0);
  int vocab = aoq_model_info_get(m)->cfg.vocab_size;
  const int32_t pa[] = {256, 10, 20, 30, 40, 50, 60, 70, 80};
  const int32_t pb[] = {256, 300, 301, 302};
  const int32_t pc[] = {256, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  float *alone = malloc(sizeof(float) * 3 * (size_t)vocab), *batch = malloc(sizeof(float) * 3 * (size_t)vocab);
  /* alone: prefill 8 tokens of pa, then decode its 9th */
  int s;
  assert_int_equal(aoq_model_seq_open(m, &s), AOQ_OK);
  aoq_step_item it = {.seq = s, .tokens = pa, .n_tokens = 8, .want_logits = false};
  assert_int_equal(aoq_model_step(m, &it, 1, NULL), AOQ_OK);
  it = (aoq_step_item){.seq = s, .tokens = pa + 8, .n_tokens = 1, .want_logits = true};
  assert_int_equal(aoq_model_step(m, &it, 1, alone), AOQ_OK);
  aoq_model_seq_close(m, s);
  /* batched: pb prefilled first, then pa's prefill with pb's decode and pc's prefill */
  int sa, sb, sc;
  assert_int_equal(aoq_model_seq_open(m, &sb), AOQ_OK);
  assert_int_equal(aoq_model_seq_open(m, &sa), AOQ_OK);
  assert_int_equal(aoq_model_seq_open(m, &sc), AOQ_OK);
  it = (aoq_step_item){.seq = sb, .tokens = pb, .n_tokens = 3, .want_logits = false};
  assert_int_equal(aoq_model_step(m, &it, 1, NULL), AOQ_OK);
  aoq_step_item two[3] = {{.seq = sb, .tokens = pb + 3, .n_tokens = 1, .want_logits = true},
                          {.seq = sa, .tokens = pa, .n_tokens = 8, .want_logits = false},
                          {.seq = sc, .tokens = pc, .n_tokens = 12, .want_logits = true}};
  assert_int_equal(aoq_model_step(m, two, 3, batch), AOQ_OK);
  aoq_step_item three[3] = {{.seq = sc, .tokens = pc + 12, .n_tokens = 1, .want_logits = true},
                            {.seq = sa, .tokens = pa + 8, .n_tokens = 1, .want_logits = true},
                            {.seq = sb, .tokens = pa, .n_tokens = 2, .want_logits = false}};
  assert_int_equal(aoq_model_step(m, three, 3, batch), AOQ_OK);
  assert_memory_equal(alone, batch + vocab, sizeof(float) * (size_t)vocab);
  assert_int_equal(aoq_model_seq_len(m, sa), 9);
  assert_int_equal(aoq_model_seq_len(m, sb), 6);
  assert_int_equal(aoq_model_seq_len(m, sc), 13);
  free(alone), free(batch);
  aoq_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_presets),
      cmocka_unit_test(test_synthetic_weights_are_deterministic),
      cmocka_unit_test(test_batching_does_not_change_a_sequence),
  };
  return cmocka_run_group_tests(tests, grp_setup, grp_teardown);
}
