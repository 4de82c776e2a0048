/*
 * test_llama_formats.c — the fixture model (tests/data/fixture) run with every weight format of
 * DESIGN.md on the CPU device: each loads, runs the forward pass at every position of the three
 * prompts, and its top-1 token agrees with aoq's bf16 run on at least a stated share of the
 * positions (a table with the agreement with bf16 and with transformers is printed), and every
 * logit is finite. The floors come from the measured agreements with a margin of ~5 positions;
 * a format whose linear were wrong would fall to chance (~1/512). This random model has small
 * top-1 margins (logits ~4, bf16 steps of 1/32), so 4-bit formats agree on only ~half the
 * positions.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* cmocka needs the headers above first */
// clang-format off
#include <cmocka.h>
// clang-format on

#include "core/model.h"
#include "core/safetensors.h"

#define FIXTURE AOQ_TEST_DATA "/fixture"
#define N_PROMPTS 3
#define MAX_POS 24 /* positions per prompt (prompt 1 is cut): keeps the test quick */

static aoq_device *dev;
static aoq_st_file *ref;
static int n_pos; /* positions over all prompts */
static int top_bf16[MAX_POS * N_PROMPTS], top_hf[MAX_POS * N_PROMPTS];

static int argmax(const float *x, int n) {
  int b = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[b]) b = i;
  return b;
}

/* Top-1 token at every position of every prompt (batched one-token steps). */
static aoq_status run_all(const char *config, int *top) {
  aoq_model_opts o = {.model = FIXTURE, .config = config, .max_seqs = 4, .max_batch_tokens = 16};
  aoq_model *m = NULL;
  aoq_status s = aoq_model_load(dev, &o, &m);
  if (s) return s;
  int vocab = aoq_model_info_get(m)->cfg.vocab_size, seq[N_PROMPTS], len[N_PROMPTS], maxlen = 0;
  const int32_t *tok[N_PROMPTS];
  for (int i = 0; i < N_PROMPTS && !s; i++) {
    char name[32];
    snprintf(name, sizeof name, "prompt_%d", i);
    const aoq_st_tensor *t = aoq_st_find(ref, name);
    tok[i] = t->data, len[i] = t->shape[0] < MAX_POS ? (int)t->shape[0] : MAX_POS;
    if (len[i] > maxlen) maxlen = len[i];
    s = aoq_model_seq_open(m, &seq[i]);
  }
  float *out = malloc(sizeof(float) * N_PROMPTS * (size_t)vocab);
  for (int p = 0; p < maxlen && !s; p++) {
    aoq_step_item it[N_PROMPTS];
    int map[N_PROMPTS], n = 0;
    for (int i = 0; i < N_PROMPTS; i++)
      if (p < len[i]) {
        it[n] = (aoq_step_item){
            .seq = seq[i], .tokens = tok[i] + p, .n_tokens = 1, .want_logits = true};
        map[n++] = i;
      }
    s = aoq_model_step(m, it, n, out);
    for (int j = 0; j < n && !s; j++)
      top[map[j] * MAX_POS + p] = argmax(out + (size_t)j * vocab, vocab);
    for (int j = 0; j < n * vocab && !s; j++)
      if (!isfinite(out[j])) s = AOQ_EINTERNAL, fprintf(stderr, "%s: non-finite logit\n", config);
  }
  free(out);
  aoq_model_free(m);
  return s;
}

static int grp_setup(void **state) {
  (void)state;
  if (aoq_device_open("cpu", &dev) || aoq_st_open(FIXTURE "/reference.safetensors", &ref))
    return -1;
  if (run_all("bf16", top_bf16)) return -1;
  for (int i = 0; i < N_PROMPTS; i++) {
    char name[32];
    snprintf(name, sizeof name, "logits_%d", i);
    const aoq_st_tensor *t = aoq_st_find(ref, name);
    int len = t->shape[0] < MAX_POS ? (int)t->shape[0] : MAX_POS;
    for (int p = 0; p < len; p++, n_pos++)
      top_hf[i * MAX_POS + p] =
          argmax((const float *)t->data + (size_t)p * t->shape[1], (int)t->shape[1]);
    for (int p = len; p < MAX_POS; p++) top_hf[i * MAX_POS + p] = -1;
  }
  printf("%-16s %12s %12s\n", "config", "top1=bf16", "top1=HF");
  return 0;
}

static int grp_teardown(void **state) {
  (void)state;
  aoq_st_close(ref);
  aoq_device_close(dev);
  return 0;
}

typedef struct fmt_case {
  const char *config;
  double floor; /* minimum share of positions whose top-1 equals aoq bf16's */
} fmt_case;

static void check_format(const fmt_case *c) {
  int top[MAX_POS * N_PROMPTS];
  aoq_status s = run_all(c->config, top);
  if (s) fprintf(stderr, "%s: %s: %s\n", c->config, aoq_strerror(s), aoq_last_error());
  assert_int_equal(s, AOQ_OK);
  int eq_bf16 = 0, eq_hf = 0;
  for (int i = 0; i < N_PROMPTS * MAX_POS; i++) {
    if (top_hf[i] < 0) continue;
    eq_bf16 += top[i] == top_bf16[i];
    eq_hf += top[i] == top_hf[i];
  }
  printf("%-16s %7d/%-4d %7d/%-4d\n", c->config, eq_bf16, n_pos, eq_hf, n_pos);
  assert_true(eq_bf16 >= c->floor * n_pos);
}

#define FMT_TEST(fn, cfg, fl)            \
  static void fn(void **state) {         \
    (void)state;                         \
    static const fmt_case c = {cfg, fl}; \
    check_format(&c);                    \
  }
FMT_TEST(test_int8wo, "int8wo", 0.85)
FMT_TEST(test_int8dq, "int8dq", 0.8)
FMT_TEST(test_fp8wo, "fp8wo", 0.8)
FMT_TEST(test_fp8dq, "fp8dq", 0.75)
FMT_TEST(test_fp8dq_row, "fp8dq-row", 0.75)
FMT_TEST(test_fp8dq_block, "fp8dq-block", 0.55)
FMT_TEST(test_int4wo_32, "int4wo-32", 0.35)
FMT_TEST(test_int4wo_128, "int4wo-128", 0.35)
FMT_TEST(test_int4wo_128_hqq, "int4wo-128-hqq", 0.35)
FMT_TEST(test_fp8_int4, "fp8-int4", 0.3)
FMT_TEST(test_int8_int4, "int8-int4", 0.35)
FMT_TEST(test_intx4wo, "intx4wo", 0.25)
FMT_TEST(test_int8_intx4, "int8-intx4", 0.35)
FMT_TEST(test_mxfp8, "mxfp8", 0.55)
FMT_TEST(test_mxfp4, "mxfp4", 0.2)
FMT_TEST(test_nvfp4, "nvfp4", 0.3)
FMT_TEST(test_nvfp4wo, "nvfp4wo", 0.35)
FMT_TEST(test_fp6_e3m2, "fp6-e3m2", 0.55)
FMT_TEST(test_fp6_e2m3, "fp6-e2m3", 0.6)
FMT_TEST(test_codebook4, "codebook4", 0.35)
/* Ternary weights on a model not trained for them: no agreement expected; this proves the format
 * loads and gives finite logits. */
FMT_TEST(test_w158, "w158", 0.0)

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_int8wo),         cmocka_unit_test(test_int8dq),
      cmocka_unit_test(test_fp8wo),          cmocka_unit_test(test_fp8dq),
      cmocka_unit_test(test_fp8dq_row),      cmocka_unit_test(test_fp8dq_block),
      cmocka_unit_test(test_int4wo_32),      cmocka_unit_test(test_int4wo_128),
      cmocka_unit_test(test_int4wo_128_hqq), cmocka_unit_test(test_fp8_int4),
      cmocka_unit_test(test_int8_int4),      cmocka_unit_test(test_intx4wo),
      cmocka_unit_test(test_int8_intx4),     cmocka_unit_test(test_mxfp8),
      cmocka_unit_test(test_mxfp4),          cmocka_unit_test(test_nvfp4),
      cmocka_unit_test(test_nvfp4wo),        cmocka_unit_test(test_fp6_e3m2),
      cmocka_unit_test(test_fp6_e2m3),       cmocka_unit_test(test_codebook4),
      cmocka_unit_test(test_w158),
  };
  return cmocka_run_group_tests(tests, grp_setup, grp_teardown);
}
