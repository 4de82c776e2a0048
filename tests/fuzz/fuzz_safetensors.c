/*
 * fuzz_safetensors.c — fuzz target for the safetensors header parser (core/safetensors.c).
 *
 * Feeds the input to aoq_st_open_memory; when it is accepted, walks every tensor and metadata
 * entry and checks what the reader promises: names sorted and unique, aoq_st_find returns the same
 * entry, each tensor's bytes lie inside the input and match dtype x shape, metadata keys sorted
 * and readable. A broken promise traps, so the fuzzer reports it like a crash. Touching the first
 * and last byte of every tensor lets ASan catch a pointer outside the input.
 *
 * Built as a libFuzzer binary (AOQ_FUZZ=ON with clang) and into the standalone driver fuzz_main.c.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/safetensors.h"

#define FUZZ_CHECK(cond)           \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* For fuzz_main.c's feedback: the phrases of the parser's error details that name which check
 * refused an input (names and values in the detail vary too much to compare details whole). */
extern const char *const fuzz_outcome_words[];
const char *const fuzz_outcome_words[] = {
    "too short for a safetensors header length",
    "exceeds the",
    "too short for JSON",
    "not valid JSON",
    "junk after the JSON",
    "header is not a JSON object",
    "entry without a",
    "__metadata__ appears twice",
    "__metadata__ is not a JSON object",
    "] is not a string",
    "\" appears twice",
    "entry is not a JSON object",
    "dtype missing",
    "unknown dtype",
    "shape missing",
    "dims, at most",
    "] is not a non-negative integer",
    "shape product overflows",
    "must be an array",
    "are not non-negative integers",
    "begin",
    "beyond the data section",
    "but",
    "overlap",
    "out of memory",
    "F4 needs an even last dim",
    NULL,
};

/* For fuzz_main.c: inputs start with the u64 header length. */
extern const int fuzz_length_prefixed;
const int fuzz_length_prefixed = 1;

/* For fuzz_main.c: a few well-formed images, so that the driver has valid inputs even with no
 * seed folders. */
void fuzz_builtin_seeds(int (*add)(const uint8_t *p, size_t len));
void fuzz_builtin_seeds(int (*add)(const uint8_t *p, size_t len)) {
  static const char *const hdrs[] = {
      "{}",
      "{\"__metadata__\":{\"format\":\"pt\"},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
      "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[16,22]}}",
      "{\"q.scale\":{\"dtype\":\"U8\",\"shape\":[2,4],\"data_offsets\":[0,8]},"
      "\"__metadata__\":{\"q.scale.dtype\":\"torch.float8_e8m0fnu\"},"
      "\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[8,16]},"
      "\"z\":{\"dtype\":\"I64\",\"shape\":[0,5],\"data_offsets\":[16,16]}}",
  };
  for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++) {
    uint8_t buf[512];
    size_t h = strlen(hdrs[i]), hp = (h + 7) & ~(size_t)7, len = 8 + hp + 24;
    for (int k = 0; k < 8; k++) buf[k] = (uint8_t)(((uint64_t)hp >> (8 * k)) & 0xff);
    memcpy(buf + 8, hdrs[i], h);
    memset(buf + 8 + h, ' ', hp - h);
    for (size_t k = 8 + hp; k < len; k++) buf[k] = (uint8_t)(k * 37);
    add(buf, len);
  }
}

/* volatile so that the reads of tensor bytes are not optimised away */
static volatile uint8_t fuzz_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  aoq_st_file *f = NULL;
  aoq_status st = aoq_st_open_memory(data, size, &f);
  if (st != AOQ_OK) {
    FUZZ_CHECK(f == NULL);
    FUZZ_CHECK(aoq_last_error()[0] != 0);
    return 0;
  }
  FUZZ_CHECK(f != NULL);
  size_t n = aoq_st_count(f);
  FUZZ_CHECK(aoq_st_at(f, n) == NULL);
  for (size_t i = 0; i < n; i++) {
    const aoq_st_tensor *t = aoq_st_at(f, i);
    FUZZ_CHECK(t != NULL && t->name != NULL);
    if (i > 0) FUZZ_CHECK(strcmp(aoq_st_at(f, i - 1)->name, t->name) < 0);
    FUZZ_CHECK(aoq_st_find(f, t->name) == t);
    FUZZ_CHECK(t->ndim >= 0 && t->ndim <= AOQ_ST_MAX_DIMS);
    size_t esize = aoq_dtype_size(t->dtype);
    FUZZ_CHECK(esize > 0);
    uint64_t elems = 1;
    for (int d = 0; d < t->ndim; d++) {
      FUZZ_CHECK(t->shape[d] >= 0);
      FUZZ_CHECK(!__builtin_mul_overflow(elems, (uint64_t)t->shape[d], &elems));
    }
    FUZZ_CHECK(elems * esize == t->nbytes);
    const uint8_t *p = t->data;
    /* inside the data section: after the 8-byte length and the header, before the end */
    FUZZ_CHECK(p >= data + 8 && p <= data + size && t->nbytes <= (size_t)(data + size - p));
    if (t->nbytes) fuzz_sink = (uint8_t)(p[0] ^ p[t->nbytes - 1]);
    /* the tensor's own "<name>.dtype" key, as the torchao files use it */
    char key[64];
    size_t kn = strlen(t->name);
    if (kn + 7 < sizeof key) {
      memcpy(key, t->name, kn);
      memcpy(key + kn, ".dtype", 7);
      const char *v = aoq_st_meta(f, key);
      if (v) fuzz_sink = (uint8_t)v[0];
    }
  }
  size_t m = aoq_st_meta_count(f);
  FUZZ_CHECK(aoq_st_meta_key(f, m) == NULL);
  for (size_t i = 0; i < m; i++) {
    const char *k = aoq_st_meta_key(f, i);
    FUZZ_CHECK(k != NULL);
    if (i > 0) FUZZ_CHECK(strcmp(aoq_st_meta_key(f, i - 1), k) < 0);
    const char *v = aoq_st_meta(f, k);
    FUZZ_CHECK(v != NULL);
    fuzz_sink = (uint8_t)(strlen(k) + strlen(v));
  }
  FUZZ_CHECK(aoq_st_find(f, "") == NULL || aoq_st_find(f, "")->name[0] == 0);
  aoq_st_close(f);
  return 0;
}
