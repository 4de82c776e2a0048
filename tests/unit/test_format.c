/*
 * test_format.c — the format registry (core/format.c): every config string parses to the right
 * kind/bits/group and prints back canonically, every invalid class is rejected with its detail,
 * shape checks, buffer plans (docs/layouts.md), per-layer overrides and their precedence, host and
 * device qweights (upload path and in-place path, fault injection).
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "base/numerics.h"
#include "core/format.h"

typedef struct {
  const char *s;
  aoq_format_kind kind;
  int bits, group;
  const char *canon;
} parse_case;

static const parse_case valid[] = {
    {"bf16", AOQ_FMT_BF16, 16, 0, "bf16"},
    {"int8wo", AOQ_FMT_INT8WO, 8, 0, "int8wo"},
    {"int8dq", AOQ_FMT_INT8DQ, 8, 0, "int8dq"},
    {"fp8wo", AOQ_FMT_FP8WO, 8, 0, "fp8wo"},
    {"fp8dq", AOQ_FMT_FP8DQ, 8, 0, "fp8dq"},
    {"fp8dq-row", AOQ_FMT_FP8DQ_ROW, 8, 0, "fp8dq-row"},
    {"fp8dq-block", AOQ_FMT_FP8DQ_BLOCK, 8, 128, "fp8dq-block"},
    {"int4wo-32", AOQ_FMT_INT4WO, 4, 32, "int4wo-32"},
    {"int4wo-64", AOQ_FMT_INT4WO, 4, 64, "int4wo-64"},
    {"int4wo-128", AOQ_FMT_INT4WO, 4, 128, "int4wo-128"},
    {"int4wo-256", AOQ_FMT_INT4WO, 4, 256, "int4wo-256"},
    {"int4wo", AOQ_FMT_INT4WO, 4, 128, "int4wo-128"}, /* torchao's default group */
    {"int4wo-32-hqq", AOQ_FMT_INT4WO_HQQ, 4, 32, "int4wo-32-hqq"},
    {"int4wo-64-hqq", AOQ_FMT_INT4WO_HQQ, 4, 64, "int4wo-64-hqq"},
    {"int4wo-128-hqq", AOQ_FMT_INT4WO_HQQ, 4, 128, "int4wo-128-hqq"},
    {"int4wo-256-hqq", AOQ_FMT_INT4WO_HQQ, 4, 256, "int4wo-256-hqq"},
    {"fp8-int4", AOQ_FMT_FP8_INT4, 4, 128, "fp8-int4"},
    {"int8-int4", AOQ_FMT_INT8_INT4, 4, 32, "int8-int4"},
    {"intx1wo", AOQ_FMT_INTXWO, 1, 0, "intx1wo"},
    {"intx2wo-64", AOQ_FMT_INTXWO, 2, 64, "intx2wo-64"},
    {"intx2wo-g64", AOQ_FMT_INTXWO, 2, 64, "intx2wo-64"},
    {"intx3wo-g32", AOQ_FMT_INTXWO, 3, 32, "intx3wo-32"},
    {"intx4wo-32", AOQ_FMT_INTXWO, 4, 32, "intx4wo-32"},
    {"intx5wo", AOQ_FMT_INTXWO, 5, 0, "intx5wo"},
    {"intx6wo-128", AOQ_FMT_INTXWO, 6, 128, "intx6wo-128"},
    {"intx7wo-g256", AOQ_FMT_INTXWO, 7, 256, "intx7wo-256"},
    {"intx8wo", AOQ_FMT_INTXWO, 8, 0, "intx8wo"},
    {"int8-intx1", AOQ_FMT_INT8_INTX, 1, 32, "int8-intx1"},
    {"int8-intx4", AOQ_FMT_INT8_INTX, 4, 32, "int8-intx4"},
    {"int8-intx4-32", AOQ_FMT_INT8_INTX, 4, 32, "int8-intx4"},
    {"int8-intx4-64", AOQ_FMT_INT8_INTX, 4, 64, "int8-intx4-64"},
    {"int8-intx8-g128", AOQ_FMT_INT8_INTX, 8, 128, "int8-intx8-128"},
    {"mxfp8", AOQ_FMT_MXFP8, 8, 32, "mxfp8"},
    {"mxfp4", AOQ_FMT_MXFP4, 4, 32, "mxfp4"},
    {"nvfp4", AOQ_FMT_NVFP4, 4, 16, "nvfp4"},
    {"nvfp4wo", AOQ_FMT_NVFP4WO, 4, 16, "nvfp4wo"},
    {"fp6", AOQ_FMT_FP6_E3M2, 6, 0, "fp6-e3m2"},
    {"fp6-e3m2", AOQ_FMT_FP6_E3M2, 6, 0, "fp6-e3m2"},
    {"fp6-e2m3", AOQ_FMT_FP6_E2M3, 6, 0, "fp6-e2m3"},
    {"codebook1", AOQ_FMT_CODEBOOK, 1, 0, "codebook1"},
    {"codebook4", AOQ_FMT_CODEBOOK, 4, 0, "codebook4"},
    {"codebook8-g64", AOQ_FMT_CODEBOOK, 8, 64, "codebook8-64"},
    {"codebook3-128", AOQ_FMT_CODEBOOK, 3, 128, "codebook3-128"},
    {"w158", AOQ_FMT_W158, 2, 0, "w158"},
};

static void parse_every_valid_string(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
    aoq_format f;
    aoq_status s = aoq_format_parse(valid[i].s, &f);
    if (s != AOQ_OK) fail_msg("'%s': %s", valid[i].s, aoq_last_error());
    assert_int_equal(f.kind, valid[i].kind);
    assert_int_equal(f.bits, valid[i].bits);
    assert_int_equal(f.group, valid[i].group);
    char buf[64];
    assert_string_equal(aoq_format_name(&f, buf, sizeof buf), valid[i].canon);
    /* the canonical name parses back to the same format */
    aoq_format g;
    assert_int_equal(aoq_format_parse(buf, &g), AOQ_OK);
    assert_memory_equal(&f, &g, sizeof f);
  }
}

/* Mutations of valid strings (and random bytes) never crash, and whatever parses prints a
 * canonical name that parses back to the same format. */
static void parse_survives_mutated_strings(void **state) {
  (void)state;
  const char alphabet[] = "intxwodqbfp8642-gehqcklmrv0123579 \t#*:";
  uint32_t seed = 2026;
  int accepted = 0;
  for (int it = 0; it < 20000; it++) {
    char buf[80];
    seed = seed * 1664525u + 1013904223u;
    const char *base = valid[(seed >> 8) % (sizeof valid / sizeof valid[0])].s;
    snprintf(buf, sizeof buf, "%s", base);
    size_t len = strlen(buf);
    int edits = 1 + (int)((seed >> 20) % 3);
    for (int e = 0; e < edits; e++) {
      seed = seed * 1664525u + 1013904223u;
      size_t pos = len ? (seed >> 8) % (len + 1) : 0;
      char c = (seed >> 24) % 5 == 0 ? (char)((seed >> 16) & 0xff)
                                     : alphabet[(seed >> 16) % (sizeof alphabet - 1)];
      if (c == 0) c = 'x';
      switch ((seed >> 4) % 3) {
        case 0: /* replace */
          if (pos < len) buf[pos] = c;
          break;
        case 1: /* insert */
          if (len + 1 < sizeof buf) {
            memmove(buf + pos + 1, buf + pos, len - pos + 1);
            buf[pos] = c;
            len++;
          }
          break;
        default: /* delete */
          if (pos < len) {
            memmove(buf + pos, buf + pos + 1, len - pos);
            len--;
          }
      }
    }
    aoq_format f, g;
    aoq_status st = aoq_format_parse(buf, &f);
    if (st != AOQ_OK) {
      assert_true(st == AOQ_EFORMAT || st == AOQ_EUNSUPPORTED);
      assert_true(strlen(aoq_last_error()) > 0);
      continue;
    }
    accepted++;
    char name[64];
    aoq_format_name(&f, name, sizeof name);
    assert_int_equal(aoq_format_parse(name, &g), AOQ_OK);
    assert_memory_equal(&f, &g, sizeof f);
    assert_int_equal(aoq_format_check_shape(&f, 256, f.group ? 16 * (int64_t)f.group : 4096),
                     AOQ_OK);
  }
  assert_true(accepted > 100); /* the mutations do reach other valid strings */
}

static void every_kind_has_a_config_string(void **state) {
  (void)state;
  bool seen[AOQ_FMT_COUNT] = {false};
  for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) seen[valid[i].kind] = true;
  for (int k = 0; k < AOQ_FMT_COUNT; k++)
    if (!seen[k]) fail_msg("kind %d has no config string in the test table", k);
}

static void parse_rejects_invalid_strings_with_details(void **state) {
  (void)state;
  static const struct {
    const char *s;
    aoq_status st;
    const char *detail;
  } bad[] = {
      {"", AOQ_EFORMAT, "empty format string"},
      {"int9wo", AOQ_EFORMAT, "unknown format 'int9wo'"},
      {"INT8WO", AOQ_EFORMAT, "unknown format 'INT8WO'"},
      {"int8wo ", AOQ_EFORMAT, "unknown format 'int8wo '"},
      {"intx9wo", AOQ_EFORMAT, "intx9wo: bits must be 1..8"},
      {"intx0wo", AOQ_EFORMAT, "intx0wo: bits must be 1..8"},
      {"intxwo", AOQ_EFORMAT, "needs a bit width 1..8"},
      {"intx4", AOQ_EFORMAT, "expected intx<b>wo[-g<G>]"},
      {"intx4wo-", AOQ_EFORMAT, "is not a number"},
      {"intx4wo-g", AOQ_EFORMAT, "is not a number"},
      {"intx4wo-33", AOQ_EFORMAT, "group 33 must be a multiple of 16"},
      {"intx4wo-8", AOQ_EFORMAT, "group 8 must be a multiple of 16"},
      {"intx4wo-032", AOQ_EFORMAT, "is not a number"},
      {"intx4wo-999999999", AOQ_EFORMAT, "is not a number"},
      {"intx4wo-131072", AOQ_EFORMAT, "must be a multiple of 16 in 16..65536"},
      {"intx4wo_32", AOQ_EFORMAT, "unexpected '_32'"},
      {"int8-intx9", AOQ_EFORMAT, "int8-intx9: bits must be 1..8"},
      {"int8-intx4-g", AOQ_EFORMAT, "is not a number"},
      {"int4wo-16", AOQ_EFORMAT, "int4wo group must be 32, 64, 128 or 256"},
      {"int4wo-512", AOQ_EFORMAT, "int4wo group must be 32, 64, 128 or 256"},
      {"int4wo-128-awq", AOQ_EFORMAT, "expected int4wo-<32|64|128|256>[-hqq]"},
      {"int4wo-hqq", AOQ_OK, NULL},
      {"codebook", AOQ_EFORMAT, "needs a bit width 1..8"},
      {"codebook16", AOQ_EFORMAT, "codebook16: bits must be 1..8"},
      {"autoquant", AOQ_EUNSUPPORTED, "removed from torchao"},
      {"fp6-e4m1", AOQ_EFORMAT, "unknown format 'fp6-e4m1'"},
      {"nvfp4-wo", AOQ_EFORMAT, "unknown format"},
      {"int8-intx4-64-64", AOQ_EFORMAT, "is not a number"},
      {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", AOQ_EFORMAT,
       "too long"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    aoq_format f;
    aoq_status s = aoq_format_parse(bad[i].s, &f);
    if (s != bad[i].st)
      fail_msg("'%s': status %d (%s), want %d", bad[i].s, s, aoq_last_error(), bad[i].st);
    if (bad[i].detail && !strstr(aoq_last_error(), bad[i].detail))
      fail_msg("'%s': detail '%s' lacks '%s'", bad[i].s, aoq_last_error(), bad[i].detail);
  }
  aoq_format f;
  assert_int_equal(aoq_format_parse(NULL, &f), AOQ_EINVAL);
  assert_int_equal(aoq_format_parse("bf16", NULL), AOQ_EINVAL);
}

static void dynamic_kinds_are_the_activation_quantizing_ones(void **state) {
  (void)state;
  const aoq_format_kind dyn[] = {AOQ_FMT_INT8DQ,      AOQ_FMT_FP8DQ,    AOQ_FMT_FP8DQ_ROW,
                                 AOQ_FMT_FP8DQ_BLOCK, AOQ_FMT_FP8_INT4, AOQ_FMT_INT8_INT4,
                                 AOQ_FMT_INT8_INTX,   AOQ_FMT_MXFP8,    AOQ_FMT_MXFP4,
                                 AOQ_FMT_NVFP4};
  int count = 0;
  for (int k = 0; k < AOQ_FMT_COUNT; k++) count += aoq_format_is_dynamic((aoq_format_kind)k);
  assert_int_equal(count, (int)(sizeof dyn / sizeof dyn[0]));
  for (size_t i = 0; i < sizeof dyn / sizeof dyn[0]; i++)
    assert_true(aoq_format_is_dynamic(dyn[i]));
  assert_false(aoq_format_is_dynamic(AOQ_FMT_COUNT));
  assert_false(aoq_format_is_dynamic((aoq_format_kind)-1));
}

static aoq_format F(const char *s) {
  aoq_format f;
  assert_int_equal(aoq_format_parse(s, &f), AOQ_OK);
  return f;
}

static void check_shape_rejects_what_the_layout_cannot_hold(void **state) {
  (void)state;
  static const struct {
    const char *fmt;
    int64_t n, k;
    const char *detail; /* NULL: accepted */
  } cases[] = {
      {"int4wo-128", 4096, 4096, NULL},
      {"int4wo-128", 4096, 4000, "group 128 does not divide in_features 4000"},
      {"int4wo-32-hqq", 8, 96, NULL},
      {"intx3wo", 7, 13, NULL}, /* per row: any k */
      {"intx3wo-32", 7, 48, "group 32 does not divide in_features 48"},
      {"int8-intx4", 8, 64, NULL},
      {"fp8dq-block", 256, 384, NULL},
      {"fp8dq-block", 200, 384, "multiple of 128x128 blocks"},
      {"fp8dq-block", 256, 100, "multiple of 128x128 blocks"},
      {"mxfp8", 3, 64, NULL},
      {"mxfp4", 3, 48, "in_features 48 must be a multiple of 32"},
      {"nvfp4", 3, 48, NULL},
      {"nvfp4wo", 3, 40, "in_features 40 must be a multiple of 16"},
      {"codebook4-g64", 2, 128, NULL},
      {"codebook4-g64", 2, 96, "group 64 does not divide"},
      {"w158", 1, 1, NULL},
      {"bf16", 0, 16, "must be positive"},
      {"int8wo", 16, -1, "must be positive"},
      {"int8wo", (int64_t)1 << 32, 16, "too large"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    aoq_format f = F(cases[i].fmt);
    aoq_status s = aoq_format_check_shape(&f, cases[i].n, cases[i].k);
    if (!cases[i].detail) {
      if (s != AOQ_OK)
        fail_msg("%s [%lld,%lld]: %s", cases[i].fmt, (long long)cases[i].n, (long long)cases[i].k,
                 aoq_last_error());
      continue;
    }
    assert_int_equal(s, AOQ_ESHAPE);
    if (!strstr(aoq_last_error(), cases[i].detail))
      fail_msg("%s: detail '%s' lacks '%s'", cases[i].fmt, aoq_last_error(), cases[i].detail);
  }
  /* Invalid aoq_format values built by hand are caught too. */
  aoq_format f = {AOQ_FMT_INT4WO, 4, 48};
  assert_int_equal(aoq_format_check_shape(&f, 8, 96), AOQ_EINVAL);
  f = (aoq_format){AOQ_FMT_INT8WO, 4, 0};
  assert_int_equal(aoq_format_check_shape(&f, 8, 96), AOQ_EINVAL);
  f = (aoq_format){AOQ_FMT_MXFP8, 8, 16};
  assert_int_equal(aoq_format_check_shape(&f, 8, 96), AOQ_EINVAL);
  f = (aoq_format){AOQ_FMT_COUNT, 8, 0};
  assert_int_equal(aoq_format_check_shape(&f, 8, 96), AOQ_EINVAL);
  f = (aoq_format){AOQ_FMT_INTXWO, 9, 0};
  assert_int_equal(aoq_format_check_shape(&f, 8, 96), AOQ_EINVAL);
}

static void plan_sizes_follow_layouts_md(void **state) {
  (void)state;
  const int64_t n = 256, k = 4096;
  static const struct {
    const char *fmt;
    int group;
    size_t q, s, z, a;
  } cases[] = {
      {"bf16", 4096, 256 * 4096 * 2, 0, 0, 0},
      {"int8wo", 4096, 256 * 4096, 256 * 4, 0, 0},
      {"int8dq", 4096, 256 * 4096, 256 * 4, 0, 0},
      {"fp8wo", 4096, 256 * 4096, 256 * 4, 0, 0},
      {"fp8dq", 4096, 256 * 4096, 4, 0, 0},
      {"fp8dq-row", 4096, 256 * 4096, 256 * 4, 0, 0},
      {"fp8dq-block", 128, 256 * 4096, 2 * 32 * 4, 0, 0},
      {"int4wo-128", 128, 256 * 2048, 256 * 32 * 4, 0, 0},
      {"int4wo-32-hqq", 32, 256 * 2048, 256 * 128 * 4, 0, 0},
      {"fp8-int4", 128, 256 * 2048, 256 * 32 * 4, 0, 0},
      {"int8-int4", 32, 256 * 2048, 256 * 128 * 2, 0, 0},
      {"intx3wo", 4096, 256 * 1536, 256 * 2, 0, 0},
      {"intx2wo-64", 64, 256 * 1024, 256 * 64 * 2, 0, 0},
      {"int8-intx5-64", 64, 256 * 2560, 256 * 64 * 2, 0, 0},
      {"mxfp8", 32, 256 * 4096, 256 * 128, 0, 0},
      {"mxfp4", 32, 256 * 2048, 256 * 128, 0, 0},
      {"nvfp4", 16, 256 * 2048, 256 * 256, 0, 4},
      {"nvfp4wo", 16, 256 * 2048, 256 * 256, 0, 4},
      {"fp6-e3m2", 4096, 256 * 3072, 256 * 2, 0, 0},
      {"codebook4", 4096, 256 * 2048, 256 * 2, 0, 16 * 2},
      {"codebook8-64", 64, 256 * 4096, 256 * 64 * 2, 0, 256 * 2},
      {"w158", 4096, 256 * 1024, 2, 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    aoq_format f = F(cases[i].fmt);
    aoq_qweight w;
    memset(&w, 0xab, sizeof w);
    assert_int_equal(aoq_format_plan(&f, n, k, &w), AOQ_OK);
    if (w.qdata_bytes != cases[i].q || w.scale_bytes != cases[i].s || w.zero_bytes != cases[i].z ||
        w.aux_bytes != cases[i].a || w.group != cases[i].group)
      fail_msg("%s: plan q=%zu s=%zu z=%zu a=%zu g=%d", cases[i].fmt, w.qdata_bytes, w.scale_bytes,
               w.zero_bytes, w.aux_bytes, w.group);
    assert_int_equal(w.kind, f.kind);
    assert_int_equal(w.bits, f.bits);
    assert_int_equal(w.n, n);
    assert_int_equal(w.k, k);
  }
  /* Bit-stream rows are padded to 4 bytes: intx3 with k = 16 -> 48 bits -> 8 bytes per row. */
  aoq_format f = F("intx3wo");
  aoq_qweight w;
  assert_int_equal(aoq_format_plan(&f, 5, 16, &w), AOQ_OK);
  assert_int_equal(w.qdata_bytes, 5 * 8);
  f = F("w158");
  assert_int_equal(aoq_format_plan(&f, 3, 17, &w), AOQ_OK); /* 34 bits -> 8 bytes */
  assert_int_equal(w.qdata_bytes, 3 * 8);
  assert_int_equal(aoq_format_plan(&f, 3, 17, NULL), AOQ_EINVAL);
  f = F("int4wo-128");
  assert_int_equal(aoq_format_plan(&f, 3, 100, &w), AOQ_ESHAPE);
}

static void bits_per_weight_counts_scales(void **state) {
  (void)state;
  aoq_format f = F("int4wo-128");
  assert_float_equal(aoq_format_bits_per_weight(&f, 4096, 4096), 4.25, 1e-12);
  f = F("bf16");
  assert_float_equal(aoq_format_bits_per_weight(&f, 4096, 4096), 16.0, 1e-12);
  f = F("intx2wo-64");
  assert_float_equal(aoq_format_bits_per_weight(&f, 4096, 4096), 2.25, 1e-12);
  f = F("mxfp4");
  assert_float_equal(aoq_format_bits_per_weight(&f, 4096, 4096), 4.25, 1e-12);
  f = F("int4wo-128");
  assert_float_equal(aoq_format_bits_per_weight(&f, 4096, 100), 0.0, 0.0); /* bad shape */
}

/* ------------------------------------------------------------------------------------------ */

static void overrides_precedence_exact_then_regex_then_default(void **state) {
  (void)state;
  const char *text =
      "# per-layer formats\n"
      "\n"
      "re:mlp\\.(gate|up)_proj int4wo-64    # first regex wins\n"
      "re:mlp\\.            int8wo\n"
      "* mxfp8\n"
      "   layers.0.mlp.down_proj\tbf16\r\n"
      "lm_head bf16\n"
      "re:^layers\\.3\\.   intx2wo-g64";
  aoq_format_overrides *o;
  assert_int_equal(aoq_format_overrides_parse(text, &o), AOQ_OK);
  aoq_format dflt = F("fp8wo");
  static const struct {
    const char *name, *want;
  } picks[] = {
      {"layers.0.mlp.down_proj", "bf16"},      /* exact beats the regex that also matches */
      {"layers.1.mlp.down_proj", "int8wo"},    /* second regex */
      {"layers.1.mlp.gate_proj", "int4wo-64"}, /* first matching regex in file order */
      {"layers.3.mlp.up_proj", "int4wo-64"},   /* file order, not specificity */
      {"layers.3.self_attn.q_proj", "intx2wo-64"},
      {"lm_head", "bf16"},
      {"layers.2.self_attn.o_proj", "mxfp8"}, /* the '*' default */
      {"lm_head.weight", "mxfp8"},            /* exact means exact */
  };
  for (size_t i = 0; i < sizeof picks / sizeof picks[0]; i++) {
    aoq_format f = aoq_format_overrides_pick(o, picks[i].name, dflt);
    char buf[64];
    if (strcmp(aoq_format_name(&f, buf, sizeof buf), picks[i].want) != 0)
      fail_msg("%s -> %s, want %s", picks[i].name, buf, picks[i].want);
  }
  aoq_format_overrides_free(o);

  /* Without a '*' rule the caller's default applies; NULL overrides too. */
  assert_int_equal(aoq_format_overrides_parse("lm_head bf16\n", &o), AOQ_OK);
  aoq_format f = aoq_format_overrides_pick(o, "layers.0.mlp.up_proj", dflt);
  assert_int_equal(f.kind, AOQ_FMT_FP8WO);
  aoq_format_overrides_free(o);
  f = aoq_format_overrides_pick(NULL, "x", dflt);
  assert_int_equal(f.kind, AOQ_FMT_FP8WO);
  assert_int_equal(aoq_format_overrides_parse("", &o), AOQ_OK);
  f = aoq_format_overrides_pick(o, "x", dflt);
  assert_int_equal(f.kind, AOQ_FMT_FP8WO);
  aoq_format_overrides_free(o);
  aoq_format_overrides_free(NULL);
}

static void overrides_errors_name_the_line(void **state) {
  (void)state;
  static const struct {
    const char *text;
    aoq_status st;
    const char *detail;
  } bad[] = {
      {"lm_head\n", AOQ_EFORMAT, "line 1: expected '<name> <config>', got only 'lm_head'"},
      {"# c\nlm_head bf16 extra\n", AOQ_EFORMAT, "line 2: unexpected 'extra'"},
      {"a bf16\nb int4wo-100\n", AOQ_EFORMAT, "line 2: format 'int4wo-100'"},
      {"\n\n\nx intx9wo\n", AOQ_EFORMAT, "line 4: intx9wo: bits must be 1..8"},
      {"re:( bf16\n", AOQ_EFORMAT, "line 1: bad regex '('"},
      {"re: bf16\n", AOQ_EFORMAT, "line 1: empty regex"},
      {"* bf16\n* int8wo\n", AOQ_EFORMAT, "line 2: second default rule"},
      {"a bf16\na int8wo\n", AOQ_EFORMAT, "line 2: 'a' already has a rule"},
      {"x autoquant\n", AOQ_EUNSUPPORTED, "line 1: format 'autoquant'"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    aoq_format_overrides *o = (aoq_format_overrides *)1;
    aoq_status s = aoq_format_overrides_parse(bad[i].text, &o);
    if (s != bad[i].st) fail_msg("case %zu: status %d (%s)", i, s, aoq_last_error());
    assert_null(o);
    if (!strstr(aoq_last_error(), bad[i].detail))
      fail_msg("case %zu: detail '%s' lacks '%s'", i, aoq_last_error(), bad[i].detail);
  }
}

static void overrides_load_from_file(void **state) {
  (void)state;
  char path[] = "/tmp/aoq_test_overrides_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  const char *text = "re:\\.mlp\\. int4wo-128-hqq\n* int8dq\n";
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  aoq_format_overrides *o;
  assert_int_equal(aoq_format_overrides_load(path, &o), AOQ_OK);
  aoq_format f = aoq_format_overrides_pick(o, "layers.9.mlp.up_proj", F("bf16"));
  assert_int_equal(f.kind, AOQ_FMT_INT4WO_HQQ);
  f = aoq_format_overrides_pick(o, "layers.9.self_attn.v_proj", F("bf16"));
  assert_int_equal(f.kind, AOQ_FMT_INT8DQ);
  aoq_format_overrides_free(o);
  unlink(path);
  assert_int_equal(aoq_format_overrides_load(path, &o), AOQ_EIO);
  assert_non_null(strstr(aoq_last_error(), path));
}

static void overrides_survive_allocation_faults(void **state) {
  (void)state;
  const char *text = "a bf16\nb int8wo\nre:c int4wo-32\n* mxfp4\n";
  int failures = 0;
  for (long n = 1; n < 64; n++) {
    aoq_format_overrides *o = NULL;
    aoq_fault_arm(n);
    aoq_status s = aoq_format_overrides_parse(text, &o);
    aoq_fault_arm(0);
    if (s == AOQ_OK) {
      aoq_format f = aoq_format_overrides_pick(o, "b", F("bf16"));
      assert_int_equal(f.kind, AOQ_FMT_INT8WO);
      aoq_format_overrides_free(o);
      break;
    }
    assert_int_equal(s, AOQ_ENOMEM);
    assert_null(o);
    failures++;
  }
  assert_true(failures >= 2); /* the copy, the table and the patterns all allocate */
}

/* ------------------------------------------------------------------------------------------ */

static uint16_t *make_weight(int64_t n, int64_t k, uint32_t seed) {
  uint16_t *w = malloc((size_t)(n * k) * 2);
  for (int64_t i = 0; i < n * k; i++) {
    seed = seed * 1664525u + 1013904223u;
    float v = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.2f;
    w[i] = aoq_f32_to_bf16(v);
  }
  return w;
}

static void qweight_host_alloc_and_quantize_bf16_copies(void **state) {
  (void)state;
  const int64_t n = 8, k = 64;
  uint16_t *src = make_weight(n, k, 7), *out = malloc((size_t)(n * k) * 2);
  aoq_format f = F("bf16");
  aoq_qweight w;
  assert_int_equal(aoq_format_plan(&f, n, k, &w), AOQ_OK);
  assert_int_equal(aoq_qweight_host_alloc(&w), AOQ_OK);
  assert_null(w.scale);
  assert_int_equal(aoq_quantize_ref(src, &w), AOQ_OK);
  assert_memory_equal(w.qdata, src, (size_t)(n * k) * 2);
  assert_int_equal(aoq_dequantize_ref(&w, out), AOQ_OK);
  assert_memory_equal(out, src, (size_t)(n * k) * 2);
  /* bad arguments */
  assert_int_equal(aoq_quantize_ref(NULL, &w), AOQ_EINVAL);
  assert_int_equal(aoq_dequantize_ref(&w, NULL), AOQ_EINVAL);
  aoq_qweight small = w;
  small.qdata_bytes--;
  assert_int_equal(aoq_quantize_ref(src, &small), AOQ_ESHAPE);
  void *bytes;
  size_t nb;
  assert_int_equal(aoq_format_torchao_tensor(&w, "qdata", &bytes, &nb), AOQ_ENOTFOUND);
  aoq_qweight_host_free(&w);
  assert_null(w.qdata);
  aoq_qweight_host_free(&w); /* twice is fine */

  /* allocation faults leave nothing behind */
  f = F("nvfp4");
  assert_int_equal(aoq_format_plan(&f, n, k, &w), AOQ_OK);
  aoq_fault_arm(2);
  assert_int_equal(aoq_qweight_host_alloc(&w), AOQ_ENOMEM);
  aoq_fault_arm(0);
  assert_null(w.qdata);
  assert_null(w.scale);
  assert_null(w.aux);
  free(src);
  free(out);
}

/* aoq_qweight_quantize on the CPU device gives the same bytes as the host reference. */
static void qweight_quantize_on_cpu_matches_the_reference(void **state) {
  (void)state;
  const int64_t n = 32, k = 256;
  uint16_t *src = make_weight(n, k, 11);
  const char *fmts[] = {"bf16", "int8wo", "int4wo-64", "int4wo-32-hqq", "intx3wo-32",
                        "w158", "fp8dq",  "mxfp4",     "codebook3",     "fp8-int4"};
  aoq_device *d;
  assert_int_equal(aoq_device_open("cpu:1", &d), AOQ_OK);
  for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
    aoq_format f = F(fmts[i]);
    aoq_qweight h, dw;
    assert_int_equal(aoq_format_plan(&f, n, k, &h), AOQ_OK);
    assert_int_equal(aoq_qweight_host_alloc(&h), AOQ_OK);
    assert_int_equal(aoq_quantize_ref(src, &h), AOQ_OK);
    aoq_status s = aoq_qweight_quantize(d, &f, src, n, k, NULL, &dw);
    if (s != AOQ_OK) fail_msg("%s: %s", fmts[i], aoq_last_error());
    assert_int_equal(dw.qdata_bytes, h.qdata_bytes);
    void *buf = malloc(h.qdata_bytes);
    assert_int_equal(aoq_dev_copy_d2h(d, buf, dw.qdata, h.qdata_bytes, NULL), AOQ_OK);
    assert_int_equal(aoq_dev_stream_sync(d, NULL), AOQ_OK);
    assert_memory_equal(buf, h.qdata, h.qdata_bytes);
    free(buf);
    if (h.scale_bytes) {
      buf = malloc(h.scale_bytes);
      assert_int_equal(aoq_dev_copy_d2h(d, buf, dw.scale, h.scale_bytes, NULL), AOQ_OK);
      assert_int_equal(aoq_dev_stream_sync(d, NULL), AOQ_OK);
      assert_memory_equal(buf, h.scale, h.scale_bytes);
      free(buf);
    }
    aoq_qweight_dev_free(d, &dw);
    assert_null(dw.qdata);
    aoq_qweight_host_free(&h);
  }
  /* shape errors come back before anything is allocated */
  aoq_format f = F("int4wo-128");
  aoq_qweight dw;
  assert_int_equal(aoq_qweight_quantize(d, &f, src, n, 200, NULL, &dw), AOQ_ESHAPE);
  assert_int_equal(aoq_qweight_quantize(d, &f, NULL, n, k, NULL, &dw), AOQ_EINVAL);
  aoq_device_close(d);
  free(src);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parse_every_valid_string),
      cmocka_unit_test(parse_survives_mutated_strings),
      cmocka_unit_test(every_kind_has_a_config_string),
      cmocka_unit_test(parse_rejects_invalid_strings_with_details),
      cmocka_unit_test(dynamic_kinds_are_the_activation_quantizing_ones),
      cmocka_unit_test(check_shape_rejects_what_the_layout_cannot_hold),
      cmocka_unit_test(plan_sizes_follow_layouts_md),
      cmocka_unit_test(bits_per_weight_counts_scales),
      cmocka_unit_test(overrides_precedence_exact_then_regex_then_default),
      cmocka_unit_test(overrides_errors_name_the_line),
      cmocka_unit_test(overrides_load_from_file),
      cmocka_unit_test(overrides_survive_allocation_faults),
      cmocka_unit_test(qweight_host_alloc_and_quantize_bf16_copies),
      cmocka_unit_test(qweight_quantize_on_cpu_matches_the_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
