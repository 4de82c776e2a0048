/*
 * test_cuda_step.c — how a decode step is launched on cuda:0 must not change its bits.
 * - Programmatic dependent launch (kernels/gpu/vendor.h, AOQ_PDL): every kernel may launch before
 *   its predecessor ends and must wait for it before touching memory; one that forgot would read
 *   stale activations or overwrite live ones. The same steps with PDL on and off give the same
 *   logits: tiny synthetic models in bf16, int4wo-128, fp8dq-row (an activation-quantization
 *   kernel before each GEMV) and nvfp4 (a memset and two of them), and linear_dec.h's formats
 *   (k_dec after act_quant.cu's int8, int8 asymmetric, MSLK fp8 and fp8 1x128 quantizers, and
 *   k_dec alone for intx with groups of 16; session 4); prefill of three sequences,
 *   decode steps of three and of one through the captured graphs, and without graphs.
 * - Graph context classes (core/llama_internal.h, AOQ_GRAPH_CTX): a batch-1 decode crossing the
 *   128- and 512-position class bounds gives the same logits through the class graphs, through
 *   one graph planned for the whole block table, and without graphs.
 * Exits 77 only without a CUDA device.
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
#include "kernels/gpu/gpu_kernels.h"

#define SEQS 3
#define STEPS 6
/* logit rows per run: the prefill (SEQS), STEPS steps of SEQS, STEPS steps of 1, each with and
 * without graphs */
#define ROWS (SEQS + 2 * (STEPS * SEQS + STEPS))

static aoq_device *g_dev;
static int g_pdl_on; /* what aoq_gk_set_pdl(1) gave at setup: 1 on an sm_90+ device */

/* One run on a freshly loaded model (no graph captured under the other setting); logits of
 * every step into out[ROWS][vocab]. */
static void run(const char *config, int pdl, float *out, int vocab) {
  assert_int_equal(aoq_gk_set_pdl(pdl), pdl ? g_pdl_on : 0);
  aoq_model_opts o = {.model = "tiny",
                      .synthetic = true,
                      .seed = 5,
                      .config = config,
                      .max_seqs = 8,
                      .max_batch_tokens = 64};
  aoq_model *m = NULL;
  aoq_status st = aoq_model_load(g_dev, &o, &m);
  if (st != AOQ_OK) fail_msg("load %s: %s", config, aoq_last_error());
  assert_int_equal(aoq_model_info_get(m)->cfg.vocab_size, vocab);
  size_t row = 0;
  for (int graphs = 1; graphs >= 0; graphs--) {
    aoq_model_use_graphs(m, graphs);
    int s[SEQS];
    int32_t prompt[SEQS][5], tok[SEQS];
    aoq_step_item it[SEQS];
    for (int i = 0; i < SEQS; i++) {
      assert_int_equal(aoq_model_seq_open(m, &s[i]), AOQ_OK);
      for (int t = 0; t < 5; t++) prompt[i][t] = (int32_t)((i * 37 + t * 11 + 1) % 256);
      it[i] =
          (aoq_step_item){.seq = s[i], .tokens = prompt[i], .n_tokens = 5 - i, .want_logits = true};
    }
    if (graphs) { /* the prefill once: its logits do not depend on the graphs */
      assert_int_equal(aoq_model_step_sample(m, it, SEQS, NULL, tok, out + row * vocab), AOQ_OK);
      row += SEQS;
    } else {
      assert_int_equal(aoq_model_step_sample(m, it, SEQS, NULL, tok, NULL), AOQ_OK);
    }
    for (int k = 0; k < STEPS; k++) {
      for (int i = 0; i < SEQS; i++)
        it[i] = (aoq_step_item){.seq = s[i], .tokens = &tok[i], .n_tokens = 1, .want_logits = true};
      assert_int_equal(aoq_model_step_sample(m, it, SEQS, NULL, tok, out + row * vocab), AOQ_OK);
      row += SEQS;
    }
    for (int k = 0; k < STEPS; k++) {
      it[0] = (aoq_step_item){.seq = s[0], .tokens = &tok[0], .n_tokens = 1, .want_logits = true};
      assert_int_equal(aoq_model_step_sample(m, it, 1, NULL, tok, out + row * vocab), AOQ_OK);
      row += 1;
    }
    for (int i = 0; i < SEQS; i++) aoq_model_seq_close(m, s[i]);
  }
  assert_int_equal(row, ROWS);
  aoq_model_free(m);
}

static void pdl_case(const char *config) {
  const int vocab = 512; /* the tiny preset's */
  float *on = malloc(sizeof(float) * ROWS * vocab), *off = malloc(sizeof(float) * ROWS * vocab);
  assert_non_null(on);
  assert_non_null(off);
  run(config, 1, on, vocab);
  run(config, 0, off, vocab);
  for (int r = 0; r < ROWS; r++)
    if (memcmp(on + (size_t)r * vocab, off + (size_t)r * vocab, sizeof(float) * vocab))
      fail_msg("%s: logit row %d differs between PDL on (%d) and off", config, r, g_pdl_on);
  printf("%s: %d logit rows equal with PDL %s and off\n", config, ROWS,
         g_pdl_on ? "on" : "unavailable");
  free(on), free(off);
}

static void test_pdl_bf16(void **state) {
  (void)state;
  pdl_case("bf16");
}
static void test_pdl_int4wo(void **state) {
  (void)state;
  pdl_case("int4wo-128");
}
static void test_pdl_fp8dq_row(void **state) {
  (void)state;
  pdl_case("fp8dq-row");
}
static void test_pdl_nvfp4(void **state) {
  (void)state;
  pdl_case("nvfp4");
}
static void test_pdl_dec_formats(void **state) {
  (void)state;
  static const char *const cfgs[] = {"int8dq", "fp8-int4", "int8-intx4", "fp8dq-block",
                                     "intx4wo-16"};
  for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) pdl_case(cfgs[i]);
}

#define CTX_STEPS 600 /* decode steps after a 100-token prompt: positions 100..699 */

/* Sequence of one: prompt, then CTX_STEPS greedy steps; logits of each step into out. */
static void ctx_run(const char *graph_ctx, bool graphs, float *out, int vocab) {
  setenv("AOQ_GRAPH_CTX", graph_ctx, 1); /* read at load */
  aoq_model_opts o = {.model = "tiny",
                      .synthetic = true,
                      .seed = 9,
                      .config = "bf16",
                      .max_seqs = 2,
                      .max_batch_tokens = 128};
  aoq_model *m = NULL;
  aoq_status st = aoq_model_load(g_dev, &o, &m);
  unsetenv("AOQ_GRAPH_CTX");
  if (st != AOQ_OK) fail_msg("load: %s", aoq_last_error());
  assert_int_equal(aoq_model_info_get(m)->cfg.vocab_size, vocab);
  aoq_model_use_graphs(m, graphs);
  int32_t prompt[100], tok;
  for (int t = 0; t < 100; t++) prompt[t] = (int32_t)((t * 29 + 7) % 256);
  int s;
  assert_int_equal(aoq_model_seq_open(m, &s), AOQ_OK);
  aoq_step_item it = {.seq = s, .tokens = prompt, .n_tokens = 100, .want_logits = true};
  assert_int_equal(aoq_model_step_sample(m, &it, 1, NULL, &tok, NULL), AOQ_OK);
  for (int k = 0; k < CTX_STEPS; k++) {
    it = (aoq_step_item){.seq = s, .tokens = &tok, .n_tokens = 1, .want_logits = true};
    assert_int_equal(aoq_model_step_sample(m, &it, 1, NULL, &tok, out + (size_t)k * vocab), AOQ_OK);
  }
  aoq_model_seq_close(m, s);
  aoq_model_free(m);
}

static void test_graph_ctx_classes(void **state) {
  (void)state;
  const int vocab = 512;
  float *cls = malloc(sizeof(float) * CTX_STEPS * vocab),
        *one = malloc(sizeof(float) * CTX_STEPS * vocab),
        *none = malloc(sizeof(float) * CTX_STEPS * vocab);
  assert_non_null(cls);
  assert_non_null(one);
  assert_non_null(none);
  ctx_run("1", true, cls, vocab);
  ctx_run("0", true, one, vocab);
  ctx_run("1", false, none, vocab);
  for (int k = 0; k < CTX_STEPS; k++) {
    size_t off = (size_t)k * vocab;
    if (memcmp(cls + off, one + off, sizeof(float) * vocab))
      fail_msg("position %d: class graphs differ from one graph planned for the whole table",
               100 + k);
    if (memcmp(cls + off, none + off, sizeof(float) * vocab))
      fail_msg("position %d: class graphs differ from the steps without graphs", 100 + k);
  }
  printf("batch-1 decode at positions 100..%d: class graphs = one graph = no graphs\n",
         99 + CTX_STEPS);
  free(cls), free(one), free(none);
}

static int setup(void **state) {
  (void)state;
  aoq_status st = aoq_device_open("cuda:0", &g_dev);
  if (st == AOQ_ENODEV) {
    fprintf(stderr, "no CUDA device: %s -- skipping\n", aoq_last_error());
    exit(77);
  }
  if (st != AOQ_OK) return -1;
  aoq_device_info info;
  if (aoq_device_info_get(g_dev, &info) != AOQ_OK) return -1;
  g_pdl_on = aoq_gk_set_pdl(1);
  printf("cuda:0 (%s): programmatic dependent launch %s\n", info.name,
         g_pdl_on ? "available" : "unavailable (before sm_90, or kernels built without it)");
  /* the project's builds for these GPUs include sm_90a code: there PDL must be on */
  if (!g_pdl_on && (strstr(info.name, "H100") || strstr(info.name, "H200"))) {
    fprintf(stderr, "PDL unavailable on %s\n", info.name);
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  aoq_gk_set_pdl(1);
  aoq_device_close(g_dev);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pdl_bf16),        cmocka_unit_test(test_pdl_int4wo),
      cmocka_unit_test(test_pdl_fp8dq_row),   cmocka_unit_test(test_pdl_nvfp4),
      cmocka_unit_test(test_pdl_dec_formats), cmocka_unit_test(test_graph_ctx_classes),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
