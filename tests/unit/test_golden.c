/*
 * test_golden.c — every torchao golden file in $AOQ_TEST_DATA/golden checks out with the same
 * functions as aoq-golden (tools/golden/golden_check.c): weight tensors, dequant and activation
 * tensors bit-exact, CPU linear within tolerance. Also proves the checker can fail: a golden file
 * with one flipped quantized byte and one with a contradicting name are reported.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/error.h"
#include "core/safetensors.h"
#include "tools/golden/golden_check.h"

static const char *golden_dir(char *buf, size_t len) {
  const char *d = getenv("AOQ_TEST_DATA");
  snprintf(buf, len, "%s/golden", d && *d ? d : AOQ_TEST_DATA);
  return buf;
}

/* Every config the golden set was made for (shared/golden/README.md). */
static const char *const expected[] = {
    "int8wo",    "int8dq",     "fp8wo",      "fp8dq",          "fp8dq-row",  "int4wo-32",
    "int4wo-64", "int4wo-128", "int4wo-256", "int4wo-128-hqq", "intx2wo-64", "intx4wo-32",
    "intx8wo",   "int8-intx4", "mxfp8",      "mxfp4",          "nvfp4",      "nvfp4wo",
};

static void golden_files_all_match(void **state) {
  (void)state;
  char dir[1024], path[1200];
  golden_dir(dir, sizeof dir);
  FILE *log = tmpfile();
  assert_non_null(log);
  aoq_golden_stats total = {0, 0, 0};
  for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, expected[i]);
    aoq_golden_stats st = {0, 0, 0};
    aoq_status s = aoq_golden_check_file(path, log, &st);
    if (s != AOQ_OK) fail_msg("%s: %s: %s", path, aoq_strerror(s), aoq_last_error());
    if (st.fail) {
      rewind(log);
      char line[512];
      while (fgets(line, sizeof line, log))
        if (strncmp(line, "FAIL", 4) == 0) print_error("%s", line);
      fail_msg("%s: %d mismatches", expected[i], st.fail);
    }
    /* weight + dequant + at least one linear: something was really compared */
    assert_true(st.pass >= 4);
    total.pass += st.pass, total.na += st.na;
  }
  fclose(log);
  /* every tensor has an aoq view (int4 q.qdata included: tinygemm's int4pack) */
  assert_int_equal(total.na, 0);
  assert_true(total.pass >= 145);
}

/* Shapes torchao pads before quantizing int4 (n % 8, k % 1024; tools/golden/int4_vectors.py made
 * these on an H100 with torch): the padded int4pack and scale_and_zero views, and HQQ's early stop,
 * which sees the zero padding in its mean error (n16_k2112 fails without that). */
static void int4_padded_shapes_match(void **state) {
  (void)state;
  static const char *const files[] = {
      "n9_k1024_g64/int4wo-64.safetensors",
      "n9_k1024_g64/int4wo-64-hqq.safetensors",
      "n16_k2112_g32/int4wo-32.safetensors",
      "n16_k2112_g32/int4wo-32-hqq.safetensors",
  };
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char path[1200];
    snprintf(path, sizeof path, "%s/tools/golden/vectors/%s", AOQ_SOURCE_DIR, files[i]);
    FILE *log = tmpfile();
    aoq_golden_stats st = {0, 0, 0};
    aoq_status s = aoq_golden_check_file(path, log, &st);
    fclose(log);
    if (s != AOQ_OK) fail_msg("%s: %s", path, aoq_last_error());
    if (st.fail || st.pass != 6) fail_msg("%s: %d passed, %d failed", files[i], st.pass, st.fail);
  }
}

/* No golden file in the folder is left unchecked: the list above covers the directory. */
static void golden_dir_has_no_unlisted_file(void **state) {
  (void)state;
  char dir[1024];
  DIR *d = opendir(golden_dir(dir, sizeof dir));
  assert_non_null(d);
  int files = 0;
  for (struct dirent *e; (e = readdir(d));) {
    size_t l = strlen(e->d_name);
    if (l < 13 || strcmp(e->d_name + l - 12, ".safetensors") != 0) continue;
    files++;
    bool listed = false;
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
      if (strlen(expected[i]) == l - 12 && strncmp(e->d_name, expected[i], l - 12) == 0)
        listed = true;
    if (!listed) fail_msg("golden file %s is not checked by this test", e->d_name);
  }
  closedir(d);
  assert_int_equal(files, (int)(sizeof expected / sizeof expected[0]));
}

/* Rewrites golden file `src` to `dst` with byte `flip_at` of tensor `victim` inverted. */
static void rewrite_golden(const char *src, const char *dst, const char *victim, size_t flip_at) {
  aoq_st_file *f;
  assert_int_equal(aoq_st_open(src, &f), AOQ_OK);
  aoq_st_writer *w;
  assert_int_equal(aoq_st_writer_new(&w), AOQ_OK);
  const char *cfg = aoq_st_meta(f, "config");
  if (cfg) assert_int_equal(aoq_st_writer_meta(w, "config", cfg), AOQ_OK);
  void *copy = NULL;
  for (size_t i = 0; i < aoq_st_count(f); i++) {
    const aoq_st_tensor *t = aoq_st_at(f, i);
    const void *data = t->data;
    if (victim && strcmp(t->name, victim) == 0) {
      copy = malloc(t->nbytes);
      memcpy(copy, t->data, t->nbytes);
      ((uint8_t *)copy)[flip_at] ^= 0xff;
      data = copy;
    }
    assert_int_equal(aoq_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, data, t->nbytes),
                     AOQ_OK);
  }
  assert_int_equal(aoq_st_writer_finish(w, dst), AOQ_OK);
  free(copy);
  aoq_st_close(f);
}

static void checker_reports_a_flipped_byte(void **state) {
  (void)state;
  char dir[1024], src[1200], dst[256];
  golden_dir(dir, sizeof dir);
  snprintf(src, sizeof src, "%s/int4wo-64.safetensors", dir);
  snprintf(dst, sizeof dst, "/tmp/aoq_test_golden_%d/int4wo-64.safetensors", (int)getpid());
  char tmpdir[256];
  snprintf(tmpdir, sizeof tmpdir, "/tmp/aoq_test_golden_%d", (int)getpid());
  assert_int_equal(mkdir(tmpdir, 0700), 0);
  rewrite_golden(src, dst, "ref.q_uint4", 777);

  FILE *log = tmpfile();
  aoq_golden_stats st = {0, 0, 0};
  assert_int_equal(aoq_golden_check_file(dst, log, &st), AOQ_OK);
  assert_int_equal(st.fail, 1);
  rewind(log);
  char line[512];
  bool seen = false;
  while (fgets(line, sizeof line, log))
    if (strstr(line, "FAIL int4wo-64.safetensors ref.q_uint4 first mismatch at index 777:"))
      seen = true;
  assert_true(seen);
  fclose(log);

  /* Same bytes under a name that contradicts the metadata: the cross-check fails. */
  char dst2[300];
  snprintf(dst2, sizeof dst2, "%s/int4wo-32.safetensors", tmpdir);
  rewrite_golden(src, dst2, NULL, 0);
  aoq_golden_stats st2 = {0, 0, 0};
  log = tmpfile();
  assert_int_equal(aoq_golden_check_file(dst2, log, &st2), AOQ_OK);
  assert_int_equal(st2.fail, 1);
  fclose(log);
  unlink(dst);
  unlink(dst2);
  rmdir(tmpdir);
}

/* The CLI: exit 0 when everything matches, 1 on a mismatch or unreadable file, 2 on usage. */
static int run_cli(const char *args) {
  char cmd[3000];
  snprintf(cmd, sizeof cmd, "%s/tools/golden/aoq-golden %s >/dev/null 2>&1", AOQ_BUILD_DIR, args);
  int rc = system(cmd);
  assert_true(rc != -1 && WIFEXITED(rc));
  return WEXITSTATUS(rc);
}

static void cli_exit_codes(void **state) {
  (void)state;
  char dir[1024], args[2600], tmpdir[256], bad[300];
  golden_dir(dir, sizeof dir);
  assert_int_equal(run_cli(""), 2);
  assert_int_equal(run_cli("--no-such-option x"), 2);
  assert_int_equal(run_cli("--help"), 0);
  assert_int_equal(run_cli("--version"), 0);
  snprintf(args, sizeof args, "%s/int8wo.safetensors %s/intx2wo-64.safetensors", dir, dir);
  assert_int_equal(run_cli(args), 0);
  assert_int_equal(run_cli("/nonexistent/int8wo.safetensors"), 1);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/aoq_test_golden_cli_%d", (int)getpid());
  assert_int_equal(mkdir(tmpdir, 0700), 0);
  snprintf(bad, sizeof bad, "%s/int8wo.safetensors", tmpdir);
  snprintf(args, sizeof args, "%s/int8wo.safetensors", dir);
  rewrite_golden(args, bad, "q.scale", 5);
  snprintf(args, sizeof args, "%s/int8wo.safetensors %s", dir, bad);
  assert_int_equal(run_cli(args), 1);
  unlink(bad);
  rmdir(tmpdir);
}

static void config_repr_maps_to_aoq_formats(void **state) {
  (void)state;
  static const struct {
    const char *repr, *want;
  } cases[] = {
      {"Int4WeightOnlyConfig(group_size=64, int4_packing_format='tile_packed_to_4d', "
       "int4_choose_qparams_algorithm=<Int4ChooseQParamsAlgorithm.TINYGEMM: 'tinygemm'>)",
       "int4wo-64"},
      {"Int4WeightOnlyConfig(group_size=128, int4_choose_qparams_algorithm='hqq')",
       "int4wo-128-hqq"},
      {"IntxWeightOnlyConfig(weight_dtype=torch.int3, granularity=PerAxis(axis=0), "
       "mapping_type=<MappingType.SYMMETRIC: 1>)",
       "intx3wo"},
      {"Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, "
       "weight_granularity=PerGroup(group_size=64), weight_mapping_type=<MappingType.SYMMETRIC: "
       "1>)",
       "int8-intx4-64"},
      {"Float8DynamicActivationFloat8WeightConfig(granularity=[PerRow(dim=-1), PerRow(dim=-1)])",
       "fp8dq-row"},
      {"CodebookWeightOnlyConfig(dtype=torch.uint4, block_size=(1, 1))", "codebook4"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    aoq_format f;
    char name[64];
    assert_int_equal(aoq_golden_config_from_repr(cases[i].repr, &f), AOQ_OK);
    assert_string_equal(aoq_format_name(&f, name, sizeof name), cases[i].want);
  }
  aoq_format f;
  assert_int_equal(aoq_golden_config_from_repr("GGUFWeightOnlyConfig()", &f), AOQ_ENOTFOUND);
  assert_int_equal(aoq_golden_config_from_repr("IntxWeightOnlyConfig(weight_dtype=torch.int4, "
                                               "mapping_type=<MappingType.ASYMMETRIC: 3>)",
                                               &f),
                   AOQ_EUNSUPPORTED);
  assert_int_equal(aoq_golden_config_from_repr("Float8DynamicActivationInt4WeightConfig("
                                               "int4_packing_format='preshuffled')",
                                               &f),
                   AOQ_EUNSUPPORTED);
  assert_int_equal(aoq_golden_config_from_repr("Float8DynamicActivationInt4WeightConfig("
                                               "int4_packing_format='plain')",
                                               &f),
                   AOQ_OK);
  assert_int_equal(f.kind, AOQ_FMT_FP8_INT4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(golden_files_all_match),   cmocka_unit_test(golden_dir_has_no_unlisted_file),
      cmocka_unit_test(int4_padded_shapes_match), cmocka_unit_test(checker_reports_a_flipped_byte),
      cmocka_unit_test(cli_exit_codes),           cmocka_unit_test(config_repr_maps_to_aoq_formats),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
