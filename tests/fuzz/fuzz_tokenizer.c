/*
 * fuzz_tokenizer.c — fuzz target for the tokenizer.json loader (core/tokenizer.c): JSON, the BPE
 * model's vocab and merges, added/special tokens, the pre-tokenizer pattern check.
 *
 * The input goes to aoq_tokenizer_load_text as it is (not NUL-terminated: the loader takes a
 * length). A rejected input must leave out == NULL and a non-empty aoq_last_error(). An accepted
 * one must encode a few strings (plain text, UTF-8, invalid UTF-8, special-token text, the input's
 * own first bytes) into ids inside the vocabulary, with BOS first when asked and the tokenizer has
 * one; decoding those ids must give back the exact bytes (byte-level BPE is lossless); the special
 * tokens' ids must be inside the vocabulary. A broken promise traps.
 *
 * Built as a libFuzzer binary (AOQ_FUZZ=ON with clang) and into the standalone driver fuzz_main.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "core/tokenizer.h"

#define FUZZ_CHECK(cond)           \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* For fuzz_main.c's feedback: the phrases of the loader's details that name which check refused
 * an input (the details quote tokens and names, which vary too much to compare whole). */
extern const char *const fuzz_outcome_words[];
const char *const fuzz_outcome_words[] = {
    "dropout",
    "JSON syntax error",
    "Split pattern",
    "added token",
    "added_tokens",
    "byte_fallback",
    "has a bad token",
    "is neither",
    "is not \"a b\"",
    "not in the vocab",
    "is not supported",
    "model.merges",
    "model.type",
    "model.vocab",
    "no Llama 3 Split",
    "normalizers",
    "not a JSON object",
    "pre_tokenizer",
    "must be a Sequence",
    "without type",
    "vocab entry",
    "has a bad id",
    "tokens (< 256)",
    "appears twice",
    "is empty",
    "duplicates another token",
    "vocabulary too large",
    "byte-level alphabet",
    "has no token",
    "out of memory",
    "\"model\" missing",
    NULL,
};

/* For fuzz_main.c: tokens of a tokenizer.json. */
extern const char *const fuzz_dict[];
const char *const fuzz_dict[] = {
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "\\u0120",
    "\\u010a",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "255",
    "256",
    "2147483647",
    "1e9",
    "0.5",
    "\"\"",
    "\"model\"",
    "\"type\"",
    "\"BPE\"",
    "\"vocab\"",
    "\"merges\"",
    "\"ignore_merges\"",
    "\"added_tokens\"",
    "\"id\"",
    "\"content\"",
    "\"special\"",
    "\"lstrip\"",
    "\"pre_tokenizer\"",
    "\"Sequence\"",
    "\"Split\"",
    "\"ByteLevel\"",
    "\"Regex\"",
    "\"pattern\"",
    "\"a b\"",
    "[\"a\", \"b\"]",
    "\"ab\": 256, ",
    "{\"id\": 300, \"content\": \"<|x|>\", \"special\": true}, ",
    "<|begin_of_text|>",
    "<|eot_id|>",
    "\xc4\xa0",
    "\xf0\x9f\x98\x80",
    NULL,
};

/* Strings every accepted tokenizer encodes and decodes. */
static const char *const texts[] = {
    "",
    "Hello, world! 123 4567",
    "  leading spaces\n\n\ttabs\r\n",
    "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
    "bad \xff\xfe utf8 \xc3",
    "abc ab bc aaa xyz",
    "<|begin_of_text|>hi<|eot_id|><eot>",
    "I'm you'll it's",
};

static volatile int32_t fuzz_sink;

static void check_round_trip(const aoq_tokenizer *t, const char *s, size_t len, int add_bos) {
  int32_t vocab = aoq_tokenizer_vocab_size(t), bos = aoq_tokenizer_bos(t);
  int32_t *ids = NULL;
  size_t n = 0;
  aoq_status st = aoq_tokenizer_encode(t, s, len, add_bos, &ids, &n);
  if (st != AOQ_OK) {
    /* the one documented refusal: BOS asked of a tokenizer without one */
    FUZZ_CHECK(add_bos && bos < 0 && st == AOQ_EINVAL && aoq_last_error()[0] != 0);
    aoq_err_clear();
    return;
  }
  FUZZ_CHECK(n == 0 || ids != NULL);
  FUZZ_CHECK(n <= len + (size_t)(add_bos != 0));
  if (add_bos) FUZZ_CHECK(n >= 1 && ids[0] == bos);
  for (size_t i = 0; i < n; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < vocab);
  if (len > 0) FUZZ_CHECK(n > (size_t)(add_bos != 0));
  char *out = NULL;
  size_t olen = 0;
  st = aoq_tokenizer_decode(t, ids, n, 0, &out, &olen);
  FUZZ_CHECK(st == AOQ_OK && out != NULL && out[olen] == 0);
  if (!add_bos) FUZZ_CHECK(olen == len && memcmp(out, s, len) == 0);
  free(out);
  /* skipping specials never makes the text longer (BOS need not be flagged special) */
  st = aoq_tokenizer_decode(t, ids, n, 1, &out, &olen);
  FUZZ_CHECK(st == AOQ_OK && out != NULL && (add_bos || olen <= len));
  free(out);
  free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  aoq_tokenizer *t = (aoq_tokenizer *)0x1;
  aoq_status st = aoq_tokenizer_load_text((const char *)data, size, &t);
  if (st != AOQ_OK) {
    FUZZ_CHECK(t == NULL);
    FUZZ_CHECK(aoq_last_error()[0] != 0);
    return 0;
  }
  FUZZ_CHECK(t != NULL);
  int32_t vocab = aoq_tokenizer_vocab_size(t);
  FUZZ_CHECK(vocab > 0);
  int32_t bos = aoq_tokenizer_bos(t), eos = aoq_tokenizer_eos(t);
  FUZZ_CHECK(bos >= -1 && bos < vocab && eos >= -1 && eos < vocab);
  int32_t sp = aoq_tokenizer_special(t, "<|eot_id|>");
  FUZZ_CHECK(sp >= -1 && sp < vocab);
  FUZZ_CHECK(aoq_tokenizer_special(t, "no such special token") == -1 ||
             aoq_tokenizer_special(t, "no such special token") < vocab);
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    check_round_trip(t, texts[i], strlen(texts[i]), 0);
    check_round_trip(t, texts[i], strlen(texts[i]), 1);
  }
  /* the input's own bytes: keys and merges of this very vocab */
  check_round_trip(t, (const char *)data, size < 256 ? size : 256, 0);
  /* ids at the edges of the id space: the vocabulary may have holes, which decode refuses */
  int32_t edge[] = {0, vocab - 1, vocab / 2, bos, eos, sp, vocab, -1};
  for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
    char *out = NULL;
    size_t olen = 0;
    st = aoq_tokenizer_decode(t, &edge[i], 1, 0, &out, &olen);
    if (st != AOQ_OK) {
      FUZZ_CHECK(st == AOQ_EINVAL && out == NULL && aoq_last_error()[0] != 0);
      /* the ids the tokenizer hands out itself always decode */
      FUZZ_CHECK(edge[i] < 0 || edge[i] >= vocab ||
                 (edge[i] != bos && edge[i] != eos && edge[i] != sp));
      aoq_err_clear();
      continue;
    }
    FUZZ_CHECK(edge[i] >= 0 && edge[i] < vocab && out != NULL && out[olen] == 0);
    fuzz_sink = (int32_t)olen;
    free(out);
  }
  aoq_tokenizer_free(t);
  aoq_err_clear();
  return 0;
}
