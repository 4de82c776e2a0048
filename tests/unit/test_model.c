/*
 * test_model.c — the model layer on the CPU device with synthetic `tiny` weights: presets,
 * determinism of synthetic weights, continuous batching (a sequence's logits do not depend on
 * what else is in the step), KV page accounting and quotas, single linears (fused rows sliced
 * right), reconfiguration, step validation, and the host sampler.
 */
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* cmocka needs the headers above first */
// clang-format off
#include <cmocka.h>
// clang-format on

#include "base/error.h"
#include "base/numerics.h"
#include "core/llama_internal.h"
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
  aoq_model_opts o = {.model = "tiny",
                      .synthetic = true,
                      .seed = seed,
                      .config = config,
                      .kv_pages = kv_pages,
                      .max_seqs = 8,
                      .max_batch_tokens = 64};
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

/* aoq-bench decode --ablate: each AOQ_ABLATE_* bit leaves its kernels out of the step (the step
 * still runs; the logits change), 0 leaves the model as it was. */
static void test_ablation_leaves_out_kernels(void **state) {
  (void)state;
  const int32_t tok[] = {256, 72, 101, 108, 108, 111};
  aoq_model *a = load_tiny(7, NULL, 0);
  int vocab = aoq_model_info_get(a)->cfg.vocab_size;
  float *la = run_prompt(a, tok, 6);
  const unsigned bits[] = {0, AOQ_ABLATE_SILU, AOQ_ABLATE_NORM, AOQ_ABLATE_ATTN, AOQ_ABLATE_ROPE,
                           AOQ_ABLATE_SILU | AOQ_ABLATE_NORM | AOQ_ABLATE_ATTN | AOQ_ABLATE_ROPE};
  for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++) {
    aoq_model_opts o = {.model = "tiny", .synthetic = true, .seed = 7, .kv_pages = 0,
                        .max_seqs = 8, .max_batch_tokens = 64, .ablate = bits[i]};
    aoq_model *b = NULL;
    assert_int_equal(aoq_model_load(dev, &o, &b), AOQ_OK);
    float *lb = run_prompt(b, tok, 6);
    if (bits[i] == 0)
      assert_memory_equal(la, lb, sizeof(float) * (size_t)vocab);
    else if (!memcmp(la, lb, sizeof(float) * (size_t)vocab))
      fail_msg("ablate 0x%x: the logits did not change", bits[i]);
    free(lb);
    aoq_model_free(b);
  }
  free(la);
  aoq_model_free(a);
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
  float *alone = malloc(sizeof(float) * 3 * (size_t)vocab),
        *batch = malloc(sizeof(float) * 3 * (size_t)vocab);
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

/* aoq_model_step_sample picks on the device what the host would pick from the logits: the greedy
 * argmax of aoq_sample_host, and with a temperature the device sampler's draw on the same logits
 * (the seed advanced one draw per token, as aoq_sample_host advances it). */
static void test_step_sample_matches_host_picks(void **state) {
  (void)state;
  aoq_model *a = load_tiny(3, NULL, 0), *b = load_tiny(3, NULL, 0);
  int vocab = aoq_model_info_get(a)->cfg.vocab_size;
  const int32_t p0[] = {256, 7, 8, 9}, p1[] = {256, 40, 41};
  float *lg = malloc(sizeof(float) * 2 * (size_t)vocab),
        *lg2 = malloc(sizeof(float) * 2 * (size_t)vocab);
  int sa[2], sb[2];
  for (int i = 0; i < 2; i++) {
    assert_int_equal(aoq_model_seq_open(a, &sa[i]), AOQ_OK);
    assert_int_equal(aoq_model_seq_open(b, &sb[i]), AOQ_OK);
  }
  aoq_step_item ia[2] = {{.seq = sa[0], .tokens = p0, .n_tokens = 4, .want_logits = true},
                         {.seq = sa[1], .tokens = p1, .n_tokens = 3, .want_logits = true}};
  aoq_step_item ib[2] = {{.seq = sb[0], .tokens = p0, .n_tokens = 4, .want_logits = true},
                         {.seq = sb[1], .tokens = p1, .n_tokens = 3, .want_logits = true}};
  aoq_sample_params host[2] = {{.temperature = 0}, {.temperature = 0.9f, .top_k = 20, .seed = 77}};
  aoq_sample_params dev_p[2] = {host[0], host[1]};
  int32_t ta[2], tb[2];
  uint16_t *row_bf16 = malloc(sizeof(uint16_t) * (size_t)vocab);
  for (int step = 0; step < 6; step++) {
    assert_int_equal(aoq_model_step(a, ia, 2, lg), AOQ_OK);
    /* row 0: the host's greedy pick; row 1: the device sampler on the same (bf16-exact) logits */
    ta[0] = aoq_sample_host(lg, vocab, &host[0]);
    for (int i = 0; i < vocab; i++) row_bf16[i] = aoq_f32_to_bf16(lg[(size_t)vocab + i]);
    assert_int_equal(
        aoq_dev_sample(dev, row_bf16, &ta[1], 1, vocab, &host[1], AOQ_DTYPE_BF16, NULL), AOQ_OK);
    host[1].seed += 0x9e3779b97f4a7c15ull;
    /* with logits as well: they must equal the plain step's */
    assert_int_equal(aoq_model_step_sample(b, ib, 2, dev_p, tb, step % 2 ? lg2 : NULL), AOQ_OK);
    if (step % 2) assert_memory_equal(lg, lg2, sizeof(float) * 2 * (size_t)vocab);
    for (int j = 0; j < 2; j++) {
      assert_int_equal(ta[j], tb[j]);
      assert_true(ta[j] >= 0 && ta[j] < vocab);
    }
    assert_true(dev_p[1].seed == host[1].seed);
    for (int j = 0; j < 2; j++) {
      ia[j] = (aoq_step_item){.seq = sa[j], .tokens = &ta[j], .n_tokens = 1, .want_logits = true};
      ib[j] = (aoq_step_item){.seq = sb[j], .tokens = &tb[j], .n_tokens = 1, .want_logits = true};
    }
  }
  assert_int_equal(aoq_model_step_sample(b, ib, 2, NULL, NULL, NULL), AOQ_EINVAL);
  free(lg), free(lg2), free(row_bf16);
  aoq_model_free(a);
  aoq_model_free(b);
}

static void test_kv_pages_quota_and_reuse(void **state) {
  (void)state;
  aoq_model *m =
      load_tiny(1, NULL, 8); /* at least 8 pages of 16 tokens (more if 64-token steps need) */
  const aoq_model_info *i = aoq_model_info_get(m);
  int total = i->kv_pages_total, ps = i->page_size;
  assert_int_equal(ps, 16);
  assert_int_equal(i->kv_pages_free, total);
  int a, b;
  assert_int_equal(aoq_model_seq_open(m, &a), AOQ_OK);
  assert_int_equal(aoq_model_seq_reserve(m, a, 17), AOQ_OK);
  assert_int_equal(aoq_model_seq_pages(m, a), 2);
  assert_int_equal(aoq_model_seq_reserve(m, a, 5), AOQ_OK); /* never shrinks */
  assert_int_equal(aoq_model_seq_pages(m, a), 2);
  assert_int_equal(aoq_model_info_get(m)->kv_pages_free, total - 2);
  assert_int_equal(aoq_model_seq_open(m, &b), AOQ_OK);
  assert_int_equal(aoq_model_seq_reserve(m, b, (total - 2) * ps + 1), AOQ_EQUOTA);
  assert_non_null(strstr(aoq_last_error(), "pages"));
  assert_int_equal(aoq_model_seq_pages(m, b), 0);
  assert_int_equal(aoq_model_seq_reserve(m, b, (total - 2) * ps), AOQ_OK);
  assert_int_equal(aoq_model_info_get(m)->kv_pages_free, 0);
  assert_int_equal(aoq_model_info_get(m)->live_seqs, 2);
  /* a step that needs one more page fails with EQUOTA and leaves the sequence as it was */
  int32_t tok[40] = {0}; /* 40 tokens need a third page */
  aoq_step_item it = {.seq = a, .tokens = tok, .n_tokens = 40, .want_logits = false};
  assert_int_equal(aoq_model_step(m, &it, 1, NULL), AOQ_EQUOTA);
  assert_int_equal(aoq_model_seq_len(m, a), 0);
  aoq_model_seq_close(m, b);
  assert_int_equal(aoq_model_info_get(m)->kv_pages_free, total - 2);
  assert_int_equal(aoq_model_step(m, &it, 1, NULL), AOQ_OK);
  assert_int_equal(aoq_model_seq_len(m, a), 40);
  assert_int_equal(aoq_model_seq_pages(m, a), 3);
  aoq_model_seq_close(m, a);
  aoq_model_seq_close(m, a); /* closing twice is harmless */
  assert_int_equal(aoq_model_info_get(m)->kv_pages_free, total);
  assert_int_equal(aoq_model_info_get(m)->live_seqs, 0);
  assert_int_equal(aoq_model_seq_len(m, a), -1);
  /* sequence slots are a quota too */
  int s[8], extra;
  for (int j = 0; j < 8; j++) assert_int_equal(aoq_model_seq_open(m, &s[j]), AOQ_OK);
  assert_int_equal(aoq_model_seq_open(m, &extra), AOQ_EQUOTA);
  for (int j = 0; j < 8; j++) aoq_model_seq_close(m, s[j]);
  aoq_model_free(m);
}

/* Pool sizes that would wrap the int32 KV slot arithmetic are refused before anything is built. */
static void test_load_rejects_oversized_pools(void **state) {
  (void)state;
  static const struct {
    int kv_pages, page_size, max_seqs, max_batch_tokens;
  } bad[] = {
      {0, INT_MAX, 0, 0}, {INT_MAX, 0, 0, 0}, {1 << 20, 1 << 16, 0, 0},
      {0, 0, INT_MAX, 0}, {0, 0, 0, INT_MAX},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    aoq_model_opts o = {.model = "tiny",
                        .synthetic = true,
                        .kv_pages = bad[i].kv_pages,
                        .page_size = bad[i].page_size,
                        .max_seqs = bad[i].max_seqs,
                        .max_batch_tokens = bad[i].max_batch_tokens};
    aoq_model *m = NULL;
    aoq_status st = aoq_model_load(dev, &o, &m);
    if (st != AOQ_EINVAL || m) fail_msg("case %zu: status %d (%s)", i, (int)st, aoq_last_error());
    assert_non_null(strstr(aoq_last_error(), "model options"));
  }
}

/* Every allocation that can fail during a load (device buffers, quantization scratch) fails
 * cleanly: an error status, no model, and nothing leaked (LeakSanitizer checks at exit). */
static void test_load_survives_every_allocation_failure(void **state) {
  (void)state;
  const char *configs[] = {"bf16", "int4wo-128"};
  for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++) {
    long n = 1;
    for (;; n++) {
      aoq_model_opts o = {.model = "tiny",
                          .synthetic = true,
                          .config = configs[c],
                          .max_seqs = 2,
                          .max_batch_tokens = 16};
      aoq_model *m = NULL;
      aoq_fault_arm(n);
      aoq_status st = aoq_model_load(dev, &o, &m);
      aoq_fault_arm(0);
      if (st == AOQ_OK) {
        assert_non_null(m);
        aoq_model_free(m);
        break;
      }
      if (m) fail_msg("%s, fault %ld: status %d but a model", configs[c], n, (int)st);
      assert_true(n < 10000);
    }
    assert_true(n > 10); /* the sweep did reach the allocations */
  }
}

static void test_step_rejects_bad_items(void **state) {
  (void)state;
  aoq_model *m = load_tiny(1, NULL, 0);
  int vocab = aoq_model_info_get(m)->cfg.vocab_size;
  float *out = malloc(sizeof(float) * 2 * (size_t)vocab);
  int a;
  assert_int_equal(aoq_model_seq_open(m, &a), AOQ_OK);
  int32_t ok[2] = {1, 2}, bad[2] = {1, 512}, many[65] = {0};
  aoq_step_item it = {.seq = a, .tokens = bad, .n_tokens = 2, .want_logits = true};
  assert_int_equal(aoq_model_step(m, &it, 1, out), AOQ_EINVAL);
  assert_non_null(strstr(aoq_last_error(), "512"));
  it.seq = 5; /* not open */
  it.tokens = ok;
  assert_int_equal(aoq_model_step(m, &it, 1, out), AOQ_ENOTFOUND);
  aoq_step_item twice[2] = {{.seq = a, .tokens = ok, .n_tokens = 1},
                            {.seq = a, .tokens = ok, .n_tokens = 1}};
  assert_int_equal(aoq_model_step(m, twice, 2, out), AOQ_EINVAL);
  it = (aoq_step_item){.seq = a, .tokens = many, .n_tokens = 65}; /* max_batch_tokens 64 */
  assert_int_equal(aoq_model_step(m, &it, 1, out), AOQ_EINVAL);
  it = (aoq_step_item){.seq = a, .tokens = ok, .n_tokens = 0};
  assert_int_equal(aoq_model_step(m, &it, 1, out), AOQ_EINVAL);
  it = (aoq_step_item){.seq = a, .tokens = ok, .n_tokens = 2, .want_logits = true};
  assert_int_equal(aoq_model_step(m, &it, 1, NULL), AOQ_EINVAL);
  assert_int_equal(aoq_model_seq_len(m, a), 0); /* nothing was appended by failed steps */
  assert_int_equal(aoq_model_step(m, &it, 1, out), AOQ_OK);
  assert_int_equal(aoq_model_seq_len(m, a), 2);
  free(out);
  aoq_model_free(m);
}

/* y = x W^T on the host from the synthetic bf16 weight, fp32 accumulation. */
static void host_linear(const char *wname, const uint16_t *x, int64_t rows, int64_t n, int64_t k,
                        float *y) {
  uint16_t *w = malloc((size_t)(n * k) * 2);
  aoq_synth_fill(1, wname, w, n, k);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < n; j++) {
      float acc = 0;
      for (int64_t c = 0; c < k; c++)
        acc += aoq_bf16_to_f32(x[r * k + c]) * aoq_bf16_to_f32(w[j * k + c]);
      y[r * n + j] = acc;
    }
  free(w);
}

/* Every checkpoint linear, applied alone, gives its own rows of the fused device weight. */
static void test_single_linears_slice_fused_weights(void **state) {
  (void)state;
  aoq_model *m = load_tiny(1, NULL, 0);
  static const char *names[] = {
      "model.layers.2.self_attn.q_proj",        "model.layers.2.self_attn.k_proj",
      "model.layers.2.self_attn.v_proj.weight", "model.layers.0.self_attn.o_proj",
      "model.layers.3.mlp.gate_proj",           "model.layers.3.mlp.up_proj",
      "model.layers.1.mlp.down_proj",           "lm_head"};
  static const int64_t want_n[] = {256, 64, 64, 256, 768, 768, 256, 512};
  static const int64_t want_k[] = {256, 256, 256, 256, 256, 256, 768, 256};
  const int64_t rows = 37; /* several chunks for the wide slices (max_batch_tokens 64) */
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    int64_t n, k;
    assert_int_equal(aoq_model_linear_shape(m, names[i], &n, &k), AOQ_OK);
    assert_int_equal(n, want_n[i]);
    assert_int_equal(k, want_k[i]);
    uint16_t *x = malloc((size_t)(rows * k) * 2), *y = malloc((size_t)(rows * n) * 2);
    float *ref = malloc(sizeof(float) * (size_t)(rows * n));
    for (int64_t j = 0; j < rows * k; j++)
      x[j] = aoq_f32_to_bf16((float)((j * 37) % 17 - 8) / 8.0f);
    int64_t n2, k2;
    assert_int_equal(aoq_model_linear(m, names[i], x, y, rows, &n2, &k2), AOQ_OK);
    assert_int_equal(n2, n);
    char wname[128];
    snprintf(wname, sizeof wname, "%s", names[i]);
    char *dot = strstr(wname, ".weight");
    if (dot) *dot = 0;
    strcat(wname, ".weight");
    host_linear(wname, x, rows, n, k, ref);
    for (int64_t j = 0; j < rows * n; j++) {
      float got = aoq_bf16_to_f32(y[j]);
      assert_true(fabsf(got - ref[j]) <= 1e-2f * fabsf(ref[j]) + 1e-3f);
    }
    free(x), free(y), free(ref);
  }
  int64_t n, k;
  assert_int_equal(aoq_model_linear_shape(m, "model.layers.4.mlp.down_proj", &n, &k),
                   AOQ_ENOTFOUND);
  assert_int_equal(aoq_model_linear_shape(m, "model.layers.0.mlp.foo", &n, &k), AOQ_ENOTFOUND);
  assert_non_null(strstr(aoq_last_error(), "model.layers.0.mlp.foo"));
  /* A client names layers: a number that wraps int, or one written loosely, names no layer
   * (2^32 used to wrap to layer 0). */
  static const char *no_layer[] = {
      "model.layers.4294967296.mlp.down_proj", "model.layers.-0.mlp.down_proj",
      "model.layers.+1.mlp.down_proj",         "model.layers. 1.mlp.down_proj",
      "model.layers.01.mlp.down_proj",         "model.layers.99999999999999999999.mlp.down_proj"};
  for (size_t i = 0; i < sizeof no_layer / sizeof no_layer[0]; i++)
    if (aoq_model_linear_shape(m, no_layer[i], &n, &k) != AOQ_ENOTFOUND)
      fail_msg("'%s' resolved to a layer", no_layer[i]);
  aoq_model_free(m);
}

/* prepare/commit swaps formats between steps; a sequence keeps its KV cache across the swap. */
static void test_reconfigure_keeps_sequences(void **state) {
  (void)state;
  aoq_model *m = load_tiny(1, NULL, 0);
  int vocab = aoq_model_info_get(m)->cfg.vocab_size;
  uint64_t bf16_bytes = aoq_model_info_get(m)->weight_bytes;
  const int32_t p[] = {256, 5, 6, 7, 8, 9};
  float *a = malloc(sizeof(float) * (size_t)vocab), *b = malloc(sizeof(float) * (size_t)vocab);
  int s;
  assert_int_equal(aoq_model_seq_open(m, &s), AOQ_OK);
  aoq_step_item it = {.seq = s, .tokens = p, .n_tokens = 5, .want_logits = true};
  assert_int_equal(aoq_model_step(m, &it, 1, a), AOQ_OK);
  aoq_model_weights *w = NULL;
  assert_int_equal(aoq_model_prepare(m, "no-such-format", &w), AOQ_EFORMAT);
  assert_int_equal(aoq_model_prepare(m, "int8wo", &w), AOQ_OK);
  aoq_model_commit(m, w);
  const aoq_model_info *i = aoq_model_info_get(m);
  assert_string_equal(i->format, "int8wo");
  assert_true(i->weight_bytes < bf16_bytes);
  it = (aoq_step_item){.seq = s, .tokens = p + 5, .n_tokens = 1, .want_logits = true};
  assert_int_equal(aoq_model_step(m, &it, 1, a), AOQ_OK);
  assert_int_equal(aoq_model_seq_len(m, s), 6);
  /* the same token on a fresh bf16 model: int8wo logits are close, not equal */
  aoq_model *r = load_tiny(1, NULL, 0);
  int s2;
  assert_int_equal(aoq_model_seq_open(r, &s2), AOQ_OK);
  it = (aoq_step_item){.seq = s2, .tokens = p, .n_tokens = 6, .want_logits = true};
  assert_int_equal(aoq_model_step(r, &it, 1, b), AOQ_OK);
  float mx = 0, d = 0;
  for (int v = 0; v < vocab; v++) mx = fmaxf(mx, fabsf(b[v])), d = fmaxf(d, fabsf(a[v] - b[v]));
  assert_true(d > 0);
  assert_true(d < 0.2f * mx);
  /* a prepared set that is never committed is freed */
  assert_int_equal(aoq_model_prepare(m, "bf16", &w), AOQ_OK);
  aoq_model_weights_free(m, w);
  free(a), free(b);
  aoq_model_free(r);
  aoq_model_free(m);
}

static void test_overrides_pick_formats_per_layer(void **state) {
  (void)state;
  const char *path = "/tmp/aoq_test_overrides.txt";
  FILE *f = fopen(path, "w");
  fputs("model.layers.1.mlp.down_proj int8wo\nre:.*layers\\.2\\.mlp\\..* int8wo\n", f);
  fclose(f);
  aoq_model_opts o = {.model = "tiny",
                      .synthetic = true,
                      .seed = 1,
                      .overrides = path,
                      .max_seqs = 2,
                      .max_batch_tokens = 16};
  aoq_model *m = NULL, *ref = load_tiny(1, NULL, 0);
  assert_int_equal(aoq_model_load(dev, &o, &m), AOQ_OK);
  /* down_proj of layer 1 (256x768) and gate_up + down of layer 2 shrink from 2 to ~1 byte per
   * weight */
  uint64_t saved = aoq_model_info_get(ref)->weight_bytes - aoq_model_info_get(m)->weight_bytes;
  uint64_t n_int8 = 256 * 768 + 1536 * 256 + 256 * 768;
  assert_true(saved > n_int8 * 9 / 10 && saved <= n_int8);
  aoq_model_free(m);
  /* q and k share one fused linear: different formats are refused */
  f = fopen(path, "w");
  fputs("model.layers.0.self_attn.k_proj int8wo\n", f);
  fclose(f);
  assert_int_equal(aoq_model_load(dev, &o, &m), AOQ_EINVAL);
  assert_non_null(strstr(aoq_last_error(), "k_proj"));
  unlink(path);
  aoq_model_free(ref);
}

/* The threaded row-block quantization gives the bytes of one aoq_qweight_quantize call, for
 * every format it applies to (and falls back for the others: int4wo-hqq, which is not
 * row-separable, nvfp4wo/fp8dq with a per-tensor scale, codebook, w158). */
static void test_parallel_quantize_is_bit_exact(void **state) {
  (void)state;
  static const char *cfgs[] = {
      "int8wo",    "int8dq",         "fp8wo",     "fp8dq-row",  "fp8dq-block",
      "int4wo-64", "int4wo-128-hqq", "intx3wo",   "int8-intx4", "int8-int4",
      "fp8-int4",  "mxfp8",          "mxfp4",     "fp6-e3m2",   "fp6-e2m3",
      "nvfp4wo",   "fp8dq",          "codebook4", "w158"};
  const int64_t n = 640, k = 512;
  uint16_t *src = malloc((size_t)(n * k) * 2);
  aoq_synth_fill(3, "model.layers.0.mlp.gate_proj.weight", src, n, k);
  aoq_device_info di;
  assert_int_equal(aoq_device_info_get(dev, &di), AOQ_OK);
  for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
    aoq_format f;
    assert_int_equal(aoq_format_parse(cfgs[i], &f), AOQ_OK);
    aoq_qweight a, b;
    assert_int_equal(aoq_qweight_quantize(dev, &f, src, n, k, NULL, &a), AOQ_OK);
    aoq_status s = aoq_model_quantize_linear(dev, &di, &f, src, n, k, 3, &b);
    if (s) fprintf(stderr, "%s: %s\n", cfgs[i], aoq_last_error());
    assert_int_equal(s, AOQ_OK);
    assert_int_equal(a.qdata_bytes, b.qdata_bytes);
    assert_int_equal(a.scale_bytes, b.scale_bytes);
    assert_int_equal(a.zero_bytes, b.zero_bytes);
    assert_int_equal(a.aux_bytes, b.aux_bytes);
    /* the CPU device's memory is host memory */
    assert_memory_equal(a.qdata, b.qdata, a.qdata_bytes);
    if (a.scale_bytes) assert_memory_equal(a.scale, b.scale, a.scale_bytes);
    if (a.zero_bytes) assert_memory_equal(a.zero, b.zero, a.zero_bytes);
    if (a.aux_bytes) assert_memory_equal(a.aux, b.aux, a.aux_bytes);
    aoq_qweight_dev_free(dev, &a);
    aoq_qweight_dev_free(dev, &b);
  }
  free(src);
}

static void count_stage(void *ctx, const char *stage, int done, int total) {
  (void)done, (void)total;
  if (!strcmp(stage, "cache")) ++*(int *)ctx;
}

static int count_files(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) n += e->d_name[0] != '.';
  if (d) closedir(d);
  return n;
}

static void rm_files(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char path[512];
  while (d && (e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') snprintf(path, sizeof path, "%s/%s", dir, e->d_name), unlink(path);
  if (d) closedir(d);
  rmdir(dir);
}

/* cache_dir: the first load writes the quantized layers, the next one reads them (no
 * re-quantization, same logits); another seed is another cache; a damaged cache is rebuilt;
 * overrides bypass the cache. */
static void test_quantized_weight_cache(void **state) {
  (void)state;
  char dir[] = "/tmp/aoq_test_qcache_XXXXXX";
  assert_non_null(mkdtemp(dir));
  const int32_t p[] = {256, 40, 41, 42};
  int hits = 0;
  aoq_model_opts o = {.model = "tiny",
                      .synthetic = true,
                      .seed = 1,
                      .config = "int8wo",
                      .cache_dir = dir,
                      .max_seqs = 2,
                      .max_batch_tokens = 16,
                      .progress = count_stage,
                      .progress_ctx = &hits};
  aoq_model *m = NULL;
  assert_int_equal(aoq_model_load(dev, &o, &m), AOQ_OK);
  assert_int_equal(hits, 0);
  assert_int_equal(count_files(dir), 1);
  float *a = run_prompt(m, p, 4);
  aoq_model_free(m);
  assert_int_equal(aoq_model_load(dev, &o, &m), AOQ_OK);
  assert_int_equal(hits, 1);
  float *b = run_prompt(m, p, 4);
  assert_memory_equal(a, b, sizeof(float) * 512);
  /* reconfigure to the cached format reads the cache too */
  aoq_model_weights *w;
  assert_int_equal(aoq_model_prepare(m, "int8wo", &w), AOQ_OK);
  assert_int_equal(hits, 2);
  aoq_model_weights_free(m, w);
  aoq_model_free(m);
  o.seed = 2;
  assert_int_equal(aoq_model_load(dev, &o, &m), AOQ_OK);
  assert_int_equal(hits, 2);
  assert_int_equal(count_files(dir), 2);
  aoq_model_free(m);
  /* damage every cache file: loads rebuild them and compute the same */
  DIR *d = opendir(dir);
  struct dirent *e;
  char path[512];
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') {
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      FILE *f = fopen(path, "r+b");
      fseek(f, 100, SEEK_SET);
      fputs("garbage", f);
      fclose(f);
    }
  closedir(d);
  o.seed = 1;
  assert_int_equal(aoq_model_load(dev, &o, &m), AOQ_OK);
  assert_int_equal(hits, 2);
  float *c = run_prompt(m, p, 4);
  assert_memory_equal(a, c, sizeof(float) * 512);
  aoq_model_free(m);
  assert_int_equal(aoq_model_load(dev, &o, &m), AOQ_OK); /* rewritten: a hit again */
  assert_int_equal(hits, 3);
  aoq_model_free(m);
  rm_files(dir);
  free(a), free(b), free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_presets),
      cmocka_unit_test(test_synthetic_weights_are_deterministic),
      cmocka_unit_test(test_batching_does_not_change_a_sequence),
      cmocka_unit_test(test_step_sample_matches_host_picks),
      cmocka_unit_test(test_kv_pages_quota_and_reuse),
      cmocka_unit_test(test_step_rejects_bad_items),
      cmocka_unit_test(test_load_rejects_oversized_pools),
      cmocka_unit_test(test_load_survives_every_allocation_failure),
      cmocka_unit_test(test_single_linears_slice_fused_weights),
      cmocka_unit_test(test_reconfigure_keeps_sequences),
      cmocka_unit_test(test_overrides_pick_formats_per_layer),
      cmocka_unit_test(test_parallel_quantize_is_bit_exact),
      cmocka_unit_test(test_quantized_weight_cache),
      cmocka_unit_test(test_ablation_leaves_out_kernels),
  };
  return cmocka_run_group_tests(tests, grp_setup, grp_teardown);
}
