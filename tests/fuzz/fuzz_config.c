/*
 * fuzz_config.c — fuzz target for the format config strings and the per-layer overrides file
 * (core/format.c).
 *
 * The input, NUL-terminated, is parsed three ways:
 *  - whole, and line by line (at most 32 lines), by aoq_format_parse. An accepted string must have
 *    a kind inside the table and a canonical name (aoq_format_name) that parses back to the same
 *    kind/bits/group and prints the same name again; aoq_format_check_shape and aoq_format_plan
 *    must agree on a few weight shapes, and a plan must fill the shape it was given.
 *  - as an overrides file by aoq_format_overrides_parse. When accepted, every line's exact
 *    `<name> <config>` rule must be what aoq_format_overrides_pick returns for that name (exact
 *    beats regex and default), and pick must return a valid format for a few layer names.
 * A rejected input must leave a non-empty aoq_last_error(). A broken promise traps.
 *
 * Built as a libFuzzer binary (AOQ_FUZZ=ON with clang) and into the standalone driver fuzz_main.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "core/format.h"

#define FUZZ_CHECK(cond)           \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* For fuzz_main.c's feedback: the phrases of the parser's details that name which check refused
 * an input (the details quote the offending text, which varies too much to compare whole). */
extern const char *const fuzz_outcome_words[];
const char *const fuzz_outcome_words[] = {
    "bits must be 1..8",
    "empty format string",
    "needs a bit width",
    "expected int4wo-",
    "expected intx<b>wo",
    "int4wo group must be",
    "format string too long",
    "unknown format",
    "group",
    "is not a number",
    "already has a rule",
    "bad regex",
    "repeats too much",
    "empty regex",
    "got only",
    "must be a multiple of 16 in",
    "second default rule",
    "after the config",
    "out of memory",
    "overrides line 1:",
    NULL,
};

/* For fuzz_main.c: tokens of config strings and overrides files. */
extern const char *const fuzz_dict[];
const char *const fuzz_dict[] = {
    "bf16",      "int8wo",    "int8dq",      "fp8wo",
    "fp8dq",     "fp8dq-row", "fp8dq-block", "fp8-int4",
    "int8-int4", "mxfp8",     "mxfp4",       "nvfp4",
    "nvfp4wo",   "fp6",       "fp6-e3m2",    "fp6-e2m3",
    "w158",      "int4wo",    "int4wo-128",  "int4wo-32-hqq",
    "-hqq",      "intx",      "intx3wo",     "intx8wo-g64",
    "int8-intx", "codebook",  "codebook4-",  "wo",
    "-g",        "-",         "0",           "1",
    "9",         "32",        "64",          "128",
    "256",       "-1",        "2147483648",  "99999999999",
    " ",         "\t",        "\n",          "\r",
    "#",         "*",         "re:",         "re:^model\\.layers\\.[0-9]+\\.",
    "(",         ")",         "[",           "]",
    "{2}",       "|",         "\\",          "model.layers.0.mlp.down_proj",
    "lm_head",   NULL,
};

/* For fuzz_main.c's feedback: which format the whole input parsed to, and how many of the
 * shapes it accepted. */
static uint64_t last_outcome;
uint64_t fuzz_outcome_extra(void);
uint64_t fuzz_outcome_extra(void) {
  return last_outcome;
}

/* Weight shapes [n, k] that check_shape and plan are tried on. */
static const int64_t shapes[][2] = {{128, 256}, {384, 4096}, {1, 32}, {3, 7}, {256, 96}, {0, 128}};

static void check_format(const char *s, int record) {
  aoq_format f;
  memset(&f, 0xa5, sizeof f);
  aoq_status st = aoq_format_parse(s, &f);
  if (st != AOQ_OK) {
    FUZZ_CHECK(aoq_last_error()[0] != 0);
    aoq_err_clear();
    return;
  }
  FUZZ_CHECK((unsigned)f.kind < AOQ_FMT_COUNT);
  if (record) last_outcome = 1 + (uint64_t)f.kind * 17 + (uint64_t)f.bits;
  FUZZ_CHECK(f.bits >= 1 && f.bits <= 16 && f.group >= 0);
  char name[64], again[64];
  aoq_format_name(&f, name, sizeof name);
  FUZZ_CHECK(name[0] != 0 && strcmp(name, "?") != 0);
  aoq_format g;
  FUZZ_CHECK(aoq_format_parse(name, &g) == AOQ_OK);
  FUZZ_CHECK(g.kind == f.kind && g.bits == f.bits && g.group == f.group);
  aoq_format_name(&g, again, sizeof again);
  FUZZ_CHECK(strcmp(name, again) == 0);
  FUZZ_CHECK(aoq_format_is_dynamic(f.kind) == aoq_format_is_dynamic(g.kind));
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    int64_t n = shapes[i][0], k = shapes[i][1];
    aoq_status cs = aoq_format_check_shape(&f, n, k);
    if (cs != AOQ_OK) FUZZ_CHECK(aoq_last_error()[0] != 0);
    aoq_err_clear();
    aoq_qweight w;
    memset(&w, 0, sizeof w);
    aoq_status ps = aoq_format_plan(&f, n, k, &w);
    FUZZ_CHECK((ps == AOQ_OK) == (cs == AOQ_OK));
    if (record) last_outcome = last_outcome * 3 + (ps == AOQ_OK);
    if (ps != AOQ_OK) {
      FUZZ_CHECK(aoq_last_error()[0] != 0);
      FUZZ_CHECK(w.qdata == NULL && w.scale == NULL && w.zero == NULL && w.aux == NULL);
      aoq_err_clear();
      continue;
    }
    FUZZ_CHECK(w.kind == f.kind && w.n == n && w.k == k);
    FUZZ_CHECK(w.group > 0 && w.group <= k && k % w.group == 0);
    /* at least one bit per weight is stored somewhere (w158 packs 2 bits, intx 1..8) */
    FUZZ_CHECK(w.qdata_bytes * 8 >= (size_t)(n * k));
    FUZZ_CHECK(w.qdata == NULL && w.scale == NULL && w.zero == NULL && w.aux == NULL);
    /* bits per weight counts every planned buffer (small shapes: the codebook/scales dominate) */
    double bytes = (double)(w.qdata_bytes + w.scale_bytes + w.zero_bytes + w.aux_bytes);
    double bpw = aoq_format_bits_per_weight(&f, n, k);
    FUZZ_CHECK(bpw >= 1.0 && bpw == bytes * 8.0 / ((double)n * (double)k));
  }
}

/* Next whitespace-separated token of an overrides line, as the parser splits it. */
static char *token(char **p) {
  char *s = *p;
  while (*s == ' ' || *s == '\t' || *s == '\r') s++;
  if (!*s || *s == '#') return NULL;
  char *e = s;
  while (*e && *e != ' ' && *e != '\t' && *e != '\r') e++;
  if (*e) *e++ = 0;
  *p = e;
  return s;
}

static void check_overrides(const char *text, char *scratch) {
  aoq_format_overrides *o = (aoq_format_overrides *)0x1;
  aoq_status st = aoq_format_overrides_parse(text, &o);
  if (st != AOQ_OK) {
    FUZZ_CHECK(o == NULL);
    FUZZ_CHECK(aoq_last_error()[0] != 0);
    return; /* the detail stays: fuzz_main.c tells outcomes apart by it */
  }
  FUZZ_CHECK(o != NULL);
  const aoq_format dflt = {AOQ_FMT_BF16, 16, 0};
  static const char *const names[] = {"model.layers.0.self_attn.q_proj",
                                      "model.layers.31.mlp.down_proj", "lm_head", "", "*"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    aoq_format f = aoq_format_overrides_pick(o, names[i], dflt);
    FUZZ_CHECK((unsigned)f.kind < AOQ_FMT_COUNT);
  }
  /* Every exact rule wins for its own name. */
  strcpy(scratch, text);
  for (char *line = scratch; line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = 0;
    char *p = line;
    char *pat = token(&p);
    char *cfg = pat ? token(&p) : NULL;
    if (pat && cfg && strcmp(pat, "*") != 0 && strncmp(pat, "re:", 3) != 0) {
      aoq_format want, got;
      FUZZ_CHECK(aoq_format_parse(cfg, &want) == AOQ_OK);
      got = aoq_format_overrides_pick(o, pat, dflt);
      FUZZ_CHECK(got.kind == want.kind && got.bits == want.bits && got.group == want.group);
    } else {
      FUZZ_CHECK(!pat || cfg); /* a lone pattern is refused */
    }
    line = nl ? nl + 1 : NULL;
  }
  aoq_format_overrides_free(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0; /* config strings are short; long inputs only slow the regexes */
  char *text = malloc(size + 1), *scratch = malloc(size + 1);
  if (!text || !scratch) {
    free(text);
    free(scratch);
    return 0;
  }
  memcpy(text, data, size);
  text[size] = 0;
  aoq_err_clear();
  last_outcome = 0;
  check_format(text, 1);
  memcpy(scratch, text, size + 1);
  int lines = 0;
  for (char *line = scratch; line && lines < 32; lines++) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = 0;
    check_format(line, 0);
    line = nl ? nl + 1 : NULL;
  }
  check_overrides(text, scratch);
  free(text);
  free(scratch);
  return 0;
}
