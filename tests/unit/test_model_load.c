/*
 * test_model_load.c — loading HF checkpoints: bad checkpoints fail with clear errors (missing
 * tensor named, wrong shape with expected vs got, unsupported architecture/model_type, missing
 * config), transformers 4.x and 5.x rope configs parse alike, tied embeddings load without an
 * lm_head tensor, and per-layer overrides reach the right fused linears. Checkpoints are built in
 * a temporary directory from the fixture's tensors with the safetensors writer.
 */
#include <cjson/cJSON.h>
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

#include "core/llama_internal.h"
#include "core/safetensors.h"

#define FIXTURE AOQ_TEST_DATA "/fixture"

static aoq_device *dev;
static aoq_st_file *src;
static char *config_text;

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) b[0] = 0;
  if (b) b[n] = 0;
  fclose(f);
  return b;
}

static int grp_setup(void **state) {
  (void)state;
  if (aoq_device_open("cpu", &dev) != AOQ_OK) return -1;
  if (aoq_st_open(FIXTURE "/model.safetensors", &src) != AOQ_OK) return -1;
  config_text = slurp(FIXTURE "/config.json");
  return config_text ? 0 : -1;
}

static int grp_teardown(void **state) {
  (void)state;
  aoq_st_close(src);
  aoq_device_close(dev);
  free(config_text);
  return 0;
}

typedef struct ckpt {
  char dir[256];
} ckpt;

/* Writes a checkpoint dir: the fixture's tensors except `drop`, with `reshape` (if set) cut to
 * `rows` rows, and config.json edited by `edit` (may be NULL). */
static void make_ckpt(ckpt *c, const char *drop, const char *reshape, int64_t rows,
                      void (*edit)(cJSON *)) {
  snprintf(c->dir, sizeof c->dir, "/tmp/aoq_test_ckpt_XXXXXX");
  assert_non_null(mkdtemp(c->dir));
  aoq_st_writer *w;
  assert_int_equal(aoq_st_writer_new(&w), AOQ_OK);
  for (size_t i = 0; i < aoq_st_count(src); i++) {
    const aoq_st_tensor *t = aoq_st_at(src, i);
    if (drop && !strcmp(t->name, drop)) continue;
    int64_t shape[AOQ_ST_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    size_t nbytes = t->nbytes;
    if (reshape && !strcmp(t->name, reshape)) {
      nbytes = nbytes / (size_t)shape[0] * (size_t)rows;
      shape[0] = rows;
    }
    assert_int_equal(aoq_st_writer_add(w, t->name, t->dtype, t->ndim, shape, t->data, nbytes),
                     AOQ_OK);
  }
  char path[512];
  snprintf(path, sizeof path, "%s/model.safetensors", c->dir);
  assert_int_equal(aoq_st_writer_finish(w, path), AOQ_OK);
  cJSON *cfg = cJSON_Parse(config_text);
  assert_non_null(cfg);
  if (edit) edit(cfg);
  char *text = cJSON_Print(cfg);
  snprintf(path, sizeof path, "%s/config.json", c->dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  free(text);
  cJSON_Delete(cfg);
}

static void rm_ckpt(ckpt *c) {
  char path[512];
  snprintf(path, sizeof path, "%s/model.safetensors", c->dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/config.json", c->dir);
  unlink(path);
  rmdir(c->dir);
}

static aoq_status try_load(const ckpt *c, aoq_model **out) {
  aoq_model_opts o = {.model = c->dir, .max_seqs = 2, .max_batch_tokens = 32};
  *out = NULL;
  return aoq_model_load(dev, &o, out);
}

static void test_missing_tensor_is_named(void **state) {
  (void)state;
  ckpt c;
  make_ckpt(&c, "model.layers.1.mlp.down_proj.weight", NULL, 0, NULL);
  aoq_model *m;
  assert_int_equal(try_load(&c, &m), AOQ_ENOTFOUND);
  assert_null(m);
  assert_non_null(strstr(aoq_last_error(), "'model.layers.1.mlp.down_proj.weight'"));
  rm_ckpt(&c);
}

static void test_wrong_shape_says_expected_and_got(void **state) {
  (void)state;
  ckpt c;
  make_ckpt(&c, NULL, "model.layers.0.self_attn.k_proj.weight", 32, NULL);
  aoq_model *m;
  assert_int_equal(try_load(&c, &m), AOQ_ESHAPE);
  const char *e = aoq_last_error();
  assert_non_null(strstr(e, "model.layers.0.self_attn.k_proj.weight"));
  assert_non_null(strstr(e, "expected shape [64, 256], got [32, 256]"));
  rm_ckpt(&c);
}

static void set_gpt2(cJSON *c) {
  cJSON_ReplaceItemInObject(c, "model_type", cJSON_CreateString("gpt2"));
}
static void set_mistral(cJSON *c) {
  cJSON *a = cJSON_CreateArray();
  cJSON_AddItemToArray(a, cJSON_CreateString("MistralForCausalLM"));
  cJSON_ReplaceItemInObject(c, "architectures", a);
}
static void set_rope_yarn(cJSON *c) {
  cJSON *rp = cJSON_GetObjectItem(c, "rope_parameters");
  cJSON_ReplaceItemInObject(rp, "rope_type", cJSON_CreateString("yarn"));
}

static void test_unsupported_architecture_and_model_type(void **state) {
  (void)state;
  void (*edits[])(cJSON *) = {set_gpt2, set_mistral, set_rope_yarn};
  const char *needle[] = {"model_type 'gpt2'", "architecture 'MistralForCausalLM'",
                          "rope_type 'yarn'"};
  for (int i = 0; i < 3; i++) {
    ckpt c;
    make_ckpt(&c, NULL, NULL, 0, edits[i]);
    aoq_model *m;
    assert_int_equal(try_load(&c, &m), AOQ_EUNSUPPORTED);
    assert_non_null(strstr(aoq_last_error(), needle[i]));
    assert_non_null(strstr(aoq_last_error(), "config.json"));
    rm_ckpt(&c);
  }
}

static void test_missing_config_is_named(void **state) {
  (void)state;
  char dir[] = "/tmp/aoq_test_empty_XXXXXX";
  assert_non_null(mkdtemp(dir));
  aoq_model_opts o = {.model = dir};
  aoq_model *m = NULL;
  assert_int_equal(aoq_model_load(dev, &o, &m), AOQ_ENOTFOUND);
  assert_non_null(strstr(aoq_last_error(), "config.json"));
  rmdir(dir);
}

/* transformers 4.x (`rope_theta` + `rope_scaling`) and 5.x (`rope_parameters`) parse alike. */
static void test_rope_config_both_transformers_styles(void **state) {
  (void)state;
  aoq_model_config a, b;
  assert_int_equal(aoq_hf_config_parse(config_text, &a), AOQ_OK);
  const char *v4 =
      "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":512,"
      "\"hidden_size\":256,\"intermediate_size\":768,\"num_hidden_layers\":2,"
      "\"num_attention_heads\":8,\"num_key_value_heads\":2,\"head_dim\":32,"
      "\"max_position_embeddings\":2048,\"rms_norm_eps\":1e-05,\"rope_theta\":500000.0,"
      "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,"
      "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":64},"
      "\"tie_word_embeddings\":false,\"bos_token_id\":256,\"eos_token_id\":[257,258]}";
  assert_int_equal(aoq_hf_config_parse(v4, &b), AOQ_OK);
  assert_memory_equal(&a, &b, sizeof a);
  assert_true(a.rope.theta == 500000.0f && a.rope.factor == 8.0f);
  assert_int_equal(a.rope.original_max_position, 64);
  assert_int_equal(a.n_kv_heads, 2);
  assert_int_equal(a.head_dim, 32);
  assert_int_equal(a.n_eos, 2);
  assert_int_equal(a.eos_ids[1], 258);
  /* malformed values are format errors */
  assert_int_equal(aoq_hf_config_parse("[1,2]", &b), AOQ_EFORMAT);
  char *bad = strdup(v4);
  memcpy(strstr(bad, "\"num_key_value_heads\":2"), "\"num_key_value_heads\":3", 23);
  assert_int_equal(aoq_hf_config_parse(bad, &b), AOQ_EFORMAT);
  assert_non_null(strstr(aoq_last_error(), "num_key_value_heads"));
  free(bad);
}

/* A config.json whose values would overflow size arithmetic or index outside the vocabulary is a
 * format error, never a model built with wrapped sizes. */
static void test_config_huge_or_lying_values_are_format_errors(void **state) {
  (void)state;
  static const char base[] =
      "{\"model_type\":\"llama\",\"vocab_size\":512,\"hidden_size\":256,"
      "\"intermediate_size\":768,\"num_hidden_layers\":2,\"rms_norm_eps\":1e-05,"
      "\"bos_token_id\":256,%s}";
  static const struct {
    const char *fields, *said;
  } bad[] = {
      /* (heads + 2 * kv_heads) * head_dim wraps a 32-bit int */
      {"\"num_attention_heads\":2000000000,\"num_key_value_heads\":1000000000,\"head_dim\":2",
       "too large"},
      {"\"num_attention_heads\":8,\"head_dim\":32,\"max_position_embeddings\":2147483647",
       "max_position_embeddings"},
      {"\"num_attention_heads\":8,\"head_dim\":32,\"eos_token_id\":1e20", "eos_token_id"},
      {"\"num_attention_heads\":8,\"head_dim\":32,\"eos_token_id\":[257,2.5]", "eos_token_id"},
      {"\"num_attention_heads\":8,\"head_dim\":32,\"eos_token_id\":512", "eos_token_id"},
      {"\"num_attention_heads\":8,\"head_dim\":32,\"eos_token_id\":-3", "eos_token_id"},
      {"\"num_attention_heads\":8,\"head_dim\":32,\"max_position_embeddings\":1e10", "numeric"},
      {"\"num_attention_heads\":8,\"num_key_value_heads\":8,\"head_dim\":4000000", "too large"},
      /* beyond float range: would convert to float with undefined behaviour */
      {"\"num_attention_heads\":8,\"head_dim\":32,\"rope_theta\":1e300", "numeric"},
      {"\"num_attention_heads\":8,\"head_dim\":32,\"rope_scaling\":{\"rope_type\":\"llama3\","
       "\"factor\":1e39,\"original_max_position_embeddings\":64}",
       "factor"},
  };
  char text[1024];
  aoq_model_config c;
  snprintf(text, sizeof text, base, "\"num_attention_heads\":8,\"head_dim\":32");
  assert_int_equal(aoq_hf_config_parse(text, &c), AOQ_OK);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(text, sizeof text, base, bad[i].fields);
    aoq_status st = aoq_hf_config_parse(text, &c);
    if (st != AOQ_EFORMAT || !strstr(aoq_last_error(), bad[i].said))
      fail_msg("case %zu (%s): status %d, detail '%s'", i, bad[i].fields, (int)st,
               aoq_last_error());
  }
  /* generation_config.json may not point bos/eos outside the vocabulary either */
  char dir[] = "/tmp/aoq_test_gencfg_XXXXXX", path[256];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/config.json", dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  snprintf(text, sizeof text, base, "\"num_attention_heads\":8,\"head_dim\":32");
  fputs(text, f);
  fclose(f);
  char gpath[256];
  snprintf(gpath, sizeof gpath, "%s/generation_config.json", dir);
  f = fopen(gpath, "w");
  assert_non_null(f);
  fputs("{\"bos_token_id\":100000,\"eos_token_id\":257}", f);
  fclose(f);
  assert_int_equal(aoq_hf_config_load(dir, &c), AOQ_EFORMAT);
  assert_non_null(strstr(aoq_last_error(), "bos_token_id"));
  unlink(gpath);
  unlink(path);
  rmdir(dir);
}

static void set_tied(cJSON *c) {
  cJSON_ReplaceItemInObject(c, "tie_word_embeddings", cJSON_CreateTrue());
}

/* With tied embeddings lm_head.weight is not needed and lm_head applies embed_tokens. */
static void test_tied_embeddings(void **state) {
  (void)state;
  ckpt c;
  make_ckpt(&c, "lm_head.weight", NULL, 0, set_tied);
  aoq_model *m;
  aoq_status s = try_load(&c, &m);
  if (s) fprintf(stderr, "%s\n", aoq_last_error());
  assert_int_equal(s, AOQ_OK);
  /* lm_head(e_j) = column j of embed^T = embed[:, j] for every vocab row */
  uint16_t x[256] = {0};
  x[5] = 0x3f80; /* 1.0 */
  uint16_t y[512];
  int64_t n, k;
  assert_int_equal(aoq_model_linear(m, "lm_head", x, y, 1, &n, &k), AOQ_OK);
  assert_int_equal(n, 512);
  const aoq_st_tensor *e = aoq_st_find(src, "model.embed_tokens.weight");
  const uint16_t *ew = e->data;
  for (int v = 0; v < 512; v++) assert_int_equal(y[v], ew[v * 256 + 5]);
  aoq_model_free(m);
  rm_ckpt(&c);
}

/* The fixture split into two shards with model.safetensors.index.json (HF's layout) loads and
 * gives bit-identical logits to the single-file checkpoint. */
static void test_sharded_checkpoint_matches_single_file(void **state) {
  (void)state;
  char dir[] = "/tmp/aoq_test_shards_XXXXXX";
  assert_non_null(mkdtemp(dir));
  aoq_st_writer *w[2];
  assert_int_equal(aoq_st_writer_new(&w[0]), AOQ_OK);
  assert_int_equal(aoq_st_writer_new(&w[1]), AOQ_OK);
  cJSON *idx = cJSON_CreateObject(), *map = cJSON_AddObjectToObject(idx, "weight_map");
  cJSON_AddObjectToObject(idx, "metadata");
  for (size_t i = 0; i < aoq_st_count(src); i++) {
    const aoq_st_tensor *t = aoq_st_at(src, i);
    int sh = strstr(t->name, "layers.1.") != NULL || !strcmp(t->name, "lm_head.weight");
    assert_int_equal(
        aoq_st_writer_add(w[sh], t->name, t->dtype, t->ndim, t->shape, t->data, t->nbytes), AOQ_OK);
    cJSON_AddStringToObject(
        map, t->name, sh ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors");
  }
  char path[512];
  for (int i = 0; i < 2; i++) {
    snprintf(path, sizeof path, "%s/model-0000%d-of-00002.safetensors", dir, i + 1);
    assert_int_equal(aoq_st_writer_finish(w[i], path), AOQ_OK);
  }
  char *text = cJSON_Print(idx);
  snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
  snprintf(path, sizeof path, "%s/config.json", dir);
  f = fopen(path, "w");
  fputs(config_text, f);
  fclose(f);
  free(text);
  cJSON_Delete(idx);

  const char *dirs[2] = {FIXTURE, dir};
  float *lg[2];
  const int32_t tok[] = {256, 72, 105, 33, 10, 300};
  for (int d = 0; d < 2; d++) {
    aoq_model_opts o = {.model = dirs[d], .max_seqs = 2, .max_batch_tokens = 32};
    aoq_model *m = NULL;
    assert_int_equal(aoq_model_load(dev, &o, &m), AOQ_OK);
    lg[d] = malloc(sizeof(float) * 512);
    int s;
    assert_int_equal(aoq_model_seq_open(m, &s), AOQ_OK);
    aoq_step_item it = {.seq = s, .tokens = tok, .n_tokens = 6, .want_logits = true};
    assert_int_equal(aoq_model_step(m, &it, 1, lg[d]), AOQ_OK);
    aoq_model_free(m);
  }
  assert_memory_equal(lg[0], lg[1], sizeof(float) * 512);
  free(lg[0]), free(lg[1]);
  static const char *files[] = {"model-00001-of-00002.safetensors",
                                "model-00002-of-00002.safetensors", "model.safetensors.index.json",
                                "config.json"};
  for (int i = 0; i < 4; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_missing_tensor_is_named),
      cmocka_unit_test(test_wrong_shape_says_expected_and_got),
      cmocka_unit_test(test_unsupported_architecture_and_model_type),
      cmocka_unit_test(test_missing_config_is_named),
      cmocka_unit_test(test_rope_config_both_transformers_styles),
      cmocka_unit_test(test_config_huge_or_lying_values_are_format_errors),
      cmocka_unit_test(test_tied_embeddings),
      cmocka_unit_test(test_sharded_checkpoint_matches_single_file),
  };
  return cmocka_run_group_tests(tests, grp_setup, grp_teardown);
}
