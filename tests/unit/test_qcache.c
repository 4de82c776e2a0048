/*
 * test_qcache.c — the quantized-weight cache: round trip of several formats (bytes identical, no
 * re-quantization), and the errors for a cache of another format, version/layout, source
 * fingerprint, a missing file, a missing weight and a tampered size.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
// clang-format on

#include "base/error.h"
#include "base/numerics.h"
#include "core/format.h"
#include "core/qcache.h"
#include "core/safetensors.h"

static void make_path(char *buf, size_t n, const char *tag) {
  snprintf(buf, n, "/tmp/aoq_test_qcache_%d_%s.safetensors", (int)getpid(), tag);
}

static void quantize(const char *cfg, int64_t n, int64_t k, uint32_t seed, aoq_qweight *w) {
  aoq_format f;
  assert_int_equal(aoq_format_parse(cfg, &f), AOQ_OK);
  memset(w, 0, sizeof *w);
  assert_int_equal(aoq_format_plan(&f, n, k, w), AOQ_OK);
  assert_int_equal(aoq_qweight_host_alloc(w), AOQ_OK);
  uint16_t *x = malloc((size_t)(n * k) * 2);
  for (int64_t i = 0; i < n * k; i++) {
    seed = seed * 1664525u + 1013904223u;
    x[i] = aoq_f32_to_bf16(((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.1f);
  }
  assert_int_equal(aoq_quantize_ref(x, w), AOQ_OK);
  free(x);
}

static void same(const aoq_qweight *a, const aoq_qweight *b) {
  assert_int_equal(a->kind, b->kind);
  assert_int_equal(a->n, b->n);
  assert_int_equal(a->k, b->k);
  assert_int_equal(a->group, b->group);
  assert_int_equal(a->qdata_bytes, b->qdata_bytes);
  assert_int_equal(a->scale_bytes, b->scale_bytes);
  assert_int_equal(a->zero_bytes, b->zero_bytes);
  assert_int_equal(a->aux_bytes, b->aux_bytes);
  assert_memory_equal(a->qdata, b->qdata, a->qdata_bytes);
  if (a->scale_bytes) assert_memory_equal(a->scale, b->scale, a->scale_bytes);
  if (a->zero_bytes) assert_memory_equal(a->zero, b->zero, a->zero_bytes);
  if (a->aux_bytes) assert_memory_equal(a->aux, b->aux, a->aux_bytes);
}

static void test_round_trip(void **st) {
  (void)st;
  static const char *cfgs[] = {"nvfp4",     "mxfp4",    "fp8dq-row",
                               "int4wo-64", "fp6-e2m3", "int8-intx4"};
  for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
    aoq_format f;
    assert_int_equal(aoq_format_parse(cfgs[c], &f), AOQ_OK);
    aoq_qweight w[3];
    quantize(cfgs[c], 64, 128, 1, &w[0]);
    quantize(cfgs[c], 32, 256, 2, &w[1]);
    quantize(cfgs[c], 128, 64, 3, &w[2]);
    aoq_qcache_entry e[3] = {
        {"layers.0.mlp.down_proj", &w[0]}, {"layers.0.attn.q_proj", &w[1]}, {"lm_head", &w[2]}};
    char path[256];
    make_path(path, sizeof path, "rt");
    assert_int_equal(aoq_qcache_write(path, &f, "ckpt:/models/x:123", e, 3), AOQ_OK);
    aoq_qcache *qc;
    assert_int_equal(aoq_qcache_open(path, &f, "ckpt:/models/x:123", &qc), AOQ_OK);
    assert_int_equal(aoq_qcache_count(qc), 3);
    assert_string_equal(aoq_qcache_name(qc, 0), "layers.0.attn.q_proj");
    assert_string_equal(aoq_qcache_name(qc, 2), "lm_head");
    assert_null(aoq_qcache_name(qc, 3));
    for (int i = 0; i < 3; i++) {
      aoq_qweight back;
      assert_int_equal(aoq_qcache_load(qc, e[i].name, &back), AOQ_OK);
      same(&w[i], &back);
      aoq_qweight_host_free(&back);
    }
    aoq_qweight back;
    assert_int_equal(aoq_qcache_load(qc, "layers.1.mlp.up_proj", &back), AOQ_ENOTFOUND);
    aoq_qcache_close(qc);
    unlink(path);
    for (int i = 0; i < 3; i++) aoq_qweight_host_free(&w[i]);
  }
}

static void test_mismatches_are_clear_errors(void **st) {
  (void)st;
  aoq_format f, g;
  assert_int_equal(aoq_format_parse("mxfp8", &f), AOQ_OK);
  assert_int_equal(aoq_format_parse("nvfp4", &g), AOQ_OK);
  aoq_qweight w;
  quantize("mxfp8", 32, 64, 9, &w);
  aoq_qcache_entry e = {"w", &w};
  char path[256];
  make_path(path, sizeof path, "mm");
  aoq_qcache *qc = NULL;
  unlink(path);
  assert_int_equal(aoq_qcache_open(path, &f, "fp", &qc), AOQ_ENOTFOUND);
  assert_int_equal(aoq_qcache_write(path, &f, "fp", &e, 1), AOQ_OK);
  assert_int_equal(aoq_qcache_open(path, &g, "fp", &qc), AOQ_EFORMAT);
  assert_non_null(strstr(aoq_last_error(), "mxfp8"));
  assert_int_equal(aoq_qcache_open(path, &f, "other", &qc), AOQ_ENOTFOUND);
  assert_non_null(strstr(aoq_last_error(), "other source"));
  assert_null(qc);
  /* a weight of the wrong kind, a duplicate name, a wrong size are refused at write time */
  assert_int_equal(aoq_qcache_write(path, &g, "fp", &e, 1), AOQ_EINVAL);
  aoq_qcache_entry dup[2] = {{"w", &w}, {"w", &w}};
  assert_int_equal(aoq_qcache_write(path, &f, "fp", dup, 2), AOQ_EINVAL);
  w.scale_bytes--;
  assert_int_equal(aoq_qcache_write(path, &f, "fp", &e, 1), AOQ_ESHAPE);
  w.scale_bytes++;
  /* another layout version / aoq version, and a file that is not a cache at all */
  static const char *keys[][2] = {{"aoq.cache_layout", "0"}, {"aoq.version", "0.0.9"}};
  for (int i = 0; i < 3; i++) {
    aoq_st_writer *wr;
    assert_int_equal(aoq_st_writer_new(&wr), AOQ_OK);
    if (i < 2) {
      assert_int_equal(aoq_st_writer_meta(wr, "aoq.format", "mxfp8"), AOQ_OK);
      assert_int_equal(aoq_st_writer_meta(wr, "aoq.fingerprint", "fp"), AOQ_OK);
      assert_int_equal(
          aoq_st_writer_meta(wr, "aoq.version", i == 1 ? keys[1][1] : AOQ_VERSION_STRING), AOQ_OK);
      assert_int_equal(
          aoq_st_writer_meta(wr, "aoq.cache_layout", i == 0 ? keys[0][1] : AOQ_QCACHE_LAYOUT),
          AOQ_OK);
    }
    int64_t shape[1] = {4};
    uint8_t b[4] = {1, 2, 3, 4};
    assert_int_equal(aoq_st_writer_add(wr, "x", AOQ_DTYPE_U8, 1, shape, b, 4), AOQ_OK);
    assert_int_equal(aoq_st_writer_finish(wr, path), AOQ_OK);
    assert_int_equal(aoq_qcache_open(path, &f, "fp", &qc), AOQ_EFORMAT);
  }
  /* stored sizes that disagree with the plan: shape metadata says 64 rows, buffers hold 32 */
  {
    aoq_st_writer *wr;
    assert_int_equal(aoq_st_writer_new(&wr), AOQ_OK);
    aoq_st_writer_meta(wr, "aoq.format", "mxfp8");
    aoq_st_writer_meta(wr, "aoq.fingerprint", "fp");
    aoq_st_writer_meta(wr, "aoq.version", AOQ_VERSION_STRING);
    aoq_st_writer_meta(wr, "aoq.cache_layout", AOQ_QCACHE_LAYOUT);
    aoq_st_writer_meta(wr, "w.shape", "64 64");
    int64_t s1[1] = {(int64_t)w.qdata_bytes}, s2[1] = {(int64_t)w.scale_bytes};
    aoq_st_writer_add(wr, "w.qdata", AOQ_DTYPE_U8, 1, s1, w.qdata, w.qdata_bytes);
    aoq_st_writer_add(wr, "w.scale", AOQ_DTYPE_U8, 1, s2, w.scale, w.scale_bytes);
    assert_int_equal(aoq_st_writer_finish(wr, path), AOQ_OK);
    assert_int_equal(aoq_qcache_open(path, &f, "fp", &qc), AOQ_OK);
    aoq_qweight back;
    assert_int_equal(aoq_qcache_load(qc, "w", &back), AOQ_EFORMAT);
    aoq_qcache_close(qc);
  }
  unlink(path);
  aoq_qweight_host_free(&w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_mismatches_are_clear_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
