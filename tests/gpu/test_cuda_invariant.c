/*
 * test_cuda_invariant.c — batch-invariant mode (AOQ_BATCH_INVARIANT=1, aoqd --batch-invariant)
 * on cuda:0: a sequence's logits are the same bits whether it runs alone or batched with others
 * (its prefill beside other sequences' decode rows, then decode batches of 2 to 71 rows: across
 * the default kernels' row paths at 1, 2, 9, 33 and past 64, attention over different maximum
 * positions), for bf16, int8wo and int4wo-128. Exits 77 only without a CUDA device.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* cmocka needs the headers above first */
// clang-format off
#include <cmocka.h>
// clang-format on

#include "core/model.h"
#include "devices/device.h"

static aoq_device *g_dev;

static aoq_model *load(const char *config) {
  aoq_model_opts o = {.model = "tiny",
                      .synthetic = true,
                      .seed = 11,
                      .config = config,
                      .max_seqs = 80,
                      .max_batch_tokens = 512};
  aoq_model *m = NULL;
  aoq_status s = aoq_model_load(g_dev, &o, &m);
  if (s != AOQ_OK) fprintf(stderr, "load %s: %s\n", config, aoq_last_error());
  assert_int_equal(s, AOQ_OK);
  return m;
}

/* prompt of sequence i: 3 to 7 tokens */
static int prompt_of(int i, int32_t *p) {
  int n = 3 + (i * 7) % 5;
  for (int t = 0; t < n; t++) p[t] = (int32_t)((i * 131 + t * 17 + 3) % 256);
  return n;
}

/* Sequence 0 alone: prefill, then 4 greedy decode steps; its logits at each of the 5 points. */
static void alone(aoq_model *m, int vocab, float *out) {
  int32_t p[8];
  int n = prompt_of(0, p), s;
  assert_int_equal(aoq_model_seq_open(m, &s), AOQ_OK);
  aoq_step_item it = {.seq = s, .tokens = p, .n_tokens = n, .want_logits = true};
  int32_t tok;
  for (int k = 0; k < 5; k++) {
    assert_int_equal(aoq_model_step_sample(m, &it, 1, NULL, &tok, out + (size_t)k * vocab), AOQ_OK);
    it = (aoq_step_item){.seq = s, .tokens = &tok, .n_tokens = 1, .want_logits = true};
  }
  aoq_model_seq_close(m, s);
}

/* Sequence 0 among `others` sequences that are prefilled and decoded in the same steps. */
static void batched(aoq_model *m, int vocab, int others, float *out) {
  int32_t prompts[80][8], tok[80];
  int n[80] = {0}, s[80] = {0};
  aoq_step_item it[80] = {{0}};
  float *lg = malloc(sizeof(float) * 80 * (size_t)vocab);
  for (int i = 0; i <= others; i++) {
    n[i] = prompt_of(i, prompts[i]);
    assert_int_equal(aoq_model_seq_open(m, &s[i]), AOQ_OK);
  }
  /* the others are a step ahead: sequence 0's prefill shares a step with their decode rows */
  for (int i = 1; i <= others; i++)
    it[i - 1] =
        (aoq_step_item){.seq = s[i], .tokens = prompts[i], .n_tokens = n[i], .want_logits = true};
  if (others) assert_int_equal(aoq_model_step_sample(m, it, others, NULL, tok + 1, NULL), AOQ_OK);
  it[0] = (aoq_step_item){.seq = s[0], .tokens = prompts[0], .n_tokens = n[0], .want_logits = true};
  for (int i = 1; i <= others; i++)
    it[i] = (aoq_step_item){.seq = s[i], .tokens = &tok[i], .n_tokens = 1, .want_logits = true};
  for (int k = 0; k < 5; k++) {
    assert_int_equal(aoq_model_step_sample(m, it, others + 1, NULL, tok, lg), AOQ_OK);
    memcpy(out + (size_t)k * vocab, lg, sizeof(float) * (size_t)vocab); /* row 0: sequence 0 */
    it[0] = (aoq_step_item){.seq = s[0], .tokens = &tok[0], .n_tokens = 1, .want_logits = true};
  }
  for (int i = 0; i <= others; i++) aoq_model_seq_close(m, s[i]);
  free(lg);
}

static void model_case(const char *config) {
  aoq_model *m = load(config);
  int vocab = aoq_model_info_get(m)->cfg.vocab_size;
  float *a = malloc(sizeof(float) * 5 * (size_t)vocab),
        *b = malloc(sizeof(float) * 5 * (size_t)vocab);
  alone(m, vocab, a);
  const int others[] = {1, 2, 8, 20, 39, 70};
  for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
    batched(m, vocab, others[i], b);
    for (int k = 0; k < 5; k++)
      if (memcmp(a + (size_t)k * vocab, b + (size_t)k * vocab, sizeof(float) * (size_t)vocab))
        fail_msg("%s: sequence 0 with %d others differs from alone at step %d", config, others[i],
                 k);
  }
  free(a), free(b);
  aoq_model_free(m);
}

static void test_model_bf16(void **state) {
  (void)state;
  model_case("bf16");
}
static void test_model_int8wo(void **state) {
  (void)state;
  model_case("int8wo");
}
static void test_model_int4wo(void **state) {
  (void)state;
  model_case("int4wo-128");
}

static int setup(void **state) {
  (void)state;
  setenv("AOQ_BATCH_INVARIANT", "1", 1);
  aoq_status st = aoq_device_open("cuda:0", &g_dev);
  if (st == AOQ_ENODEV) {
    fprintf(stderr, "no CUDA device: %s -- skipping\n", aoq_last_error());
    exit(77);
  }
  return st == AOQ_OK ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  aoq_device_close(g_dev);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_model_bf16),
      cmocka_unit_test(test_model_int8wo),
      cmocka_unit_test(test_model_int4wo),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
