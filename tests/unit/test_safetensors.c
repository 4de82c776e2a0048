/*
 * test_safetensors.c — core/safetensors: writer -> reader round trip for every dtype; every
 * malformed header, truncated file and broken sharded index is refused with AOQ_EFORMAT/AOQ_EIO and
 * a detail; sharded checkpoints resolve tensors into their shards; every torchao golden file in
 * tests/data/golden holds what report.json says; failed allocations leak nothing (ASan); the fuzz
 * seeds are valid or invalid as their names say.
 */
/* cmocka.h needs the headers above it */
// clang-format off
#include <dirent.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
// clang-format on

#include <cjson/cJSON.h>

#include "base/error.h"
#include "core/safetensors.h"

#ifndef AOQ_TEST_DATA
#error "AOQ_TEST_DATA must name the tests/data folder"
#endif

static char tmpdir[256];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(p);
}

static int setup_tmp(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/aoq_st_test_XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmp(void **state) {
  (void)state;
  return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Path inside the test's temporary folder; a ring of 4 buffers, so copy it to keep it. */
static char *tpath(const char *name) {
  static char buf[4][512];
  static int k;
  char *p = buf[k++ & 3];
  snprintf(p, 512, "%s/%s", tmpdir, name);
  return p;
}

static uint64_t rng = 0x243f6a8885a308d3ull;
static uint8_t rbyte(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint8_t)(rng >> 24);
}

static uint8_t *rbytes(size_t n) {
  uint8_t *p = malloc(n ? n : 1);
  assert_non_null(p);
  for (size_t i = 0; i < n; i++) p[i] = rbyte();
  return p;
}

static void write_file(const char *path, const void *data, size_t n) {
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(data, 1, n, fp), n);
  assert_int_equal(fclose(fp), 0);
}

static uint8_t *read_file(const char *path, size_t *n) {
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  fseek(fp, 0, SEEK_END);
  long sz = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  uint8_t *p = malloc((size_t)sz + 1);
  assert_non_null(p);
  assert_int_equal(fread(p, 1, (size_t)sz, fp), (size_t)sz);
  fclose(fp);
  *n = (size_t)sz;
  return p;
}

/* An in-memory image: length prefix, the header text, then data_len bytes of 0xAB. */
static uint8_t *image(const char *hdr, size_t data_len, size_t *len) {
  size_t h = strlen(hdr);
  *len = 8 + h + data_len;
  uint8_t *b = malloc(*len);
  assert_non_null(b);
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)(((uint64_t)h >> (8 * i)) & 0xff);
  memcpy(b + 8, hdr, h);
  memset(b + 8 + h, 0xAB, data_len);
  return b;
}

/* Call this after the open call has returned (f is read after it). */
static void expect_refused(aoq_status st, aoq_st_file *f, aoq_status want, const char *what) {
  if (st != want) fail_msg("%s: got status %d (%s), want %d", what, st, aoq_last_error(), want);
  assert_null(f);
  if (strlen(aoq_last_error()) == 0) fail_msg("%s: empty error detail", what);
}

static void test_dtype_names_round_trip(void **state) {
  (void)state;
  for (int t = 0; t < AOQ_DTYPE_COUNT; t++) {
    aoq_dtype got = AOQ_DTYPE_COUNT;
    assert_int_equal(aoq_st_dtype_parse(aoq_dtype_name((aoq_dtype)t), &got), AOQ_OK);
    assert_int_equal(got, t);
  }
  const char *bad[] = {"", "bf16", "F128", "F8_E4M3FN", "BF16 ", "float32"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    aoq_dtype got;
    aoq_err_clear();
    assert_int_equal(aoq_st_dtype_parse(bad[i], &got), AOQ_EFORMAT);
    assert_true(strlen(aoq_last_error()) > 0);
  }
}

/* Every dtype with a 2-D, a scalar and an empty tensor; names added out of order; metadata with
 * characters that need JSON escaping. */
static void test_writer_reader_round_trip_every_dtype(void **state) {
  (void)state;
  enum { NT = AOQ_DTYPE_COUNT * 3 };
  char names[NT][32];
  aoq_dtype dts[NT];
  int nds[NT];
  int64_t shapes[NT][AOQ_ST_MAX_DIMS];
  uint8_t *datas[NT];
  size_t sizes[NT];
  aoq_st_writer *w;
  assert_int_equal(aoq_st_writer_new(&w), AOQ_OK);
  for (int i = 0; i < NT; i++) {
    /* reverse order so that the writer has to sort */
    int t = AOQ_DTYPE_COUNT - 1 - i / 3, kind = i % 3;
    dts[i] = (aoq_dtype)t;
    snprintf(names[i], sizeof names[i], "%s.%s", aoq_dtype_name(dts[i]),
             kind == 0   ? "mat"
             : kind == 1 ? "scalar"
                         : "empty");
    size_t elems = 1;
    if (kind == 0) {
      nds[i] = 3;
      shapes[i][0] = 2, shapes[i][1] = 3, shapes[i][2] = 5 + t;
      elems = (size_t)(2 * 3 * (5 + t));
    } else if (kind == 1) {
      nds[i] = 0;
    } else {
      nds[i] = 2;
      shapes[i][0] = 4, shapes[i][1] = 0;
      elems = 0;
    }
    sizes[i] = elems * aoq_dtype_size(dts[i]);
    datas[i] = rbytes(sizes[i]);
    assert_int_equal(aoq_st_writer_add(w, names[i], dts[i], nds[i], shapes[i], datas[i], sizes[i]),
                     AOQ_OK);
  }
  const char *odd_value = "quote\" backslash\\ newline\n tab\t ctl\x01 utf8 \xc3\xa9";
  assert_int_equal(aoq_st_writer_meta(w, "format", "pt"), AOQ_OK);
  assert_int_equal(aoq_st_writer_meta(w, "odd", "first"), AOQ_OK);
  assert_int_equal(aoq_st_writer_meta(w, "odd", odd_value), AOQ_OK); /* replaces */
  const char *path = tpath("all.safetensors");
  assert_int_equal(aoq_st_writer_finish(w, path), AOQ_OK);

  size_t flen;
  uint8_t *raw = read_file(path, &flen);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = hlen << 8 | raw[i];
  assert_int_equal(hlen % 8, 0);
  assert_true(8 + hlen <= flen);
  /* packed fp4 goes out as safetensors' "F4", last dim in codes: 2 x 3 x 21 bytes */
  char *hdr = strndup((const char *)raw + 8, hlen);
  assert_non_null(strstr(hdr, "\"F4_E2M1X2.mat\":{\"dtype\":\"F4\",\"shape\":[2,3,42]"));
  assert_non_null(strstr(hdr, "\"F4_E2M1X2.scalar\":{\"dtype\":\"F4_E2M1X2\",\"shape\":[]"));
  free(hdr);
  free(raw);

  aoq_st_file *f = NULL;
  assert_int_equal(aoq_st_open(path, &f), AOQ_OK);
  assert_int_equal(aoq_st_count(f), NT);
  for (size_t i = 1; i < aoq_st_count(f); i++)
    assert_true(strcmp(aoq_st_at(f, i - 1)->name, aoq_st_at(f, i)->name) < 0);
  assert_null(aoq_st_at(f, NT));
  for (int i = 0; i < NT; i++) {
    const aoq_st_tensor *t = aoq_st_find(f, names[i]);
    assert_non_null(t);
    assert_string_equal(t->name, names[i]);
    assert_int_equal(t->dtype, dts[i]);
    assert_int_equal(t->ndim, nds[i]);
    for (int d = 0; d < nds[i]; d++) assert_int_equal(t->shape[d], shapes[i][d]);
    assert_int_equal(t->nbytes, sizes[i]);
    if (sizes[i]) assert_memory_equal(t->data, datas[i], sizes[i]);
    /* the writer lays data out so that every tensor is aligned to its element size (the
     * mapping itself is page aligned) */
    assert_int_equal((uintptr_t)t->data % aoq_dtype_size(t->dtype), 0);
    free(datas[i]);
  }
  assert_null(aoq_st_find(f, "nope"));
  assert_null(aoq_st_find(f, ""));
  assert_string_equal(aoq_st_meta(f, "format"), "pt");
  assert_string_equal(aoq_st_meta(f, "odd"), odd_value);
  assert_null(aoq_st_meta(f, "missing"));
  assert_int_equal(aoq_st_meta_count(f), 2);
  assert_string_equal(aoq_st_meta_key(f, 0), "format");
  assert_string_equal(aoq_st_meta_key(f, 1), "odd");
  assert_null(aoq_st_meta_key(f, 2));
  aoq_st_close(f);

  /* The same bytes through the memory API give the same answer. */
  raw = read_file(path, &flen);
  assert_int_equal(aoq_st_open_memory(raw, flen, &f), AOQ_OK);
  assert_int_equal(aoq_st_count(f), NT);
  aoq_st_close(f);
  free(raw);
}

static void test_writer_empty_file_and_overwrite(void **state) {
  (void)state;
  const char *path = tpath("empty.safetensors");
  aoq_st_writer *w;
  assert_int_equal(aoq_st_writer_new(&w), AOQ_OK);
  assert_int_equal(aoq_st_writer_finish(w, path), AOQ_OK);
  aoq_st_file *f = NULL;
  assert_int_equal(aoq_st_open(path, &f), AOQ_OK);
  assert_int_equal(aoq_st_count(f), 0);
  aoq_st_close(f);
  /* Overwriting replaces the file as a whole. */
  uint16_t v[4] = {1, 2, 3, 4};
  int64_t shp[1] = {4};
  assert_int_equal(aoq_st_writer_new(&w), AOQ_OK);
  assert_int_equal(aoq_st_writer_add(w, "v", AOQ_DTYPE_BF16, 1, shp, v, sizeof v), AOQ_OK);
  assert_int_equal(aoq_st_writer_finish(w, path), AOQ_OK);
  assert_int_equal(aoq_st_open(path, &f), AOQ_OK);
  assert_int_equal(aoq_st_count(f), 1);
  assert_memory_equal(aoq_st_find(f, "v")->data, v, sizeof v);
  aoq_st_close(f);
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0644);
}

static void test_writer_rejects_bad_arguments(void **state) {
  (void)state;
  aoq_st_writer *w;
  assert_int_equal(aoq_st_writer_new(&w), AOQ_OK);
  float x[6] = {0};
  int64_t shp[2] = {2, 3}, neg[2] = {2, -3};
  assert_int_equal(aoq_st_writer_add(w, "x", AOQ_DTYPE_F32, 2, shp, x, sizeof x), AOQ_OK);
  assert_int_equal(aoq_st_writer_add(w, "x", AOQ_DTYPE_F32, 2, shp, x, sizeof x), AOQ_EINVAL);
  assert_int_equal(aoq_st_writer_add(w, "y", AOQ_DTYPE_F32, 2, shp, x, sizeof x - 4), AOQ_ESHAPE);
  assert_int_equal(aoq_st_writer_add(w, "y", AOQ_DTYPE_F32, 2, neg, x, sizeof x), AOQ_EINVAL);
  assert_int_equal(aoq_st_writer_add(w, "y", AOQ_DTYPE_COUNT, 2, shp, x, sizeof x), AOQ_EINVAL);
  assert_int_equal(aoq_st_writer_add(w, "y", AOQ_DTYPE_F32, 9, shp, x, sizeof x), AOQ_EINVAL);
  assert_int_equal(aoq_st_writer_add(w, "__metadata__", AOQ_DTYPE_F32, 2, shp, x, sizeof x),
                   AOQ_EINVAL);
  assert_int_equal(aoq_st_writer_add(w, "y", AOQ_DTYPE_F32, 2, shp, NULL, sizeof x), AOQ_EINVAL);
  assert_true(strlen(aoq_last_error()) > 0);
  /* A folder that does not exist: EIO, and no temporary file is left behind. */
  assert_int_equal(aoq_st_writer_finish(w, tpath("no/such/dir/x.safetensors")), AOQ_EIO);
  assert_true(strlen(aoq_last_error()) > 0);
}

typedef struct bad_case {
  const char *what;
  const char *hdr;
  size_t data_len;
} bad_case;

static void test_malformed_headers_are_refused(void **state) {
  (void)state;
  static const bad_case cases[] = {
      {"non-JSON", "{\"a\": {\"dtype\": \"F32\"", 0},
      {"not an object (array)", "[1, 2, 3]", 0},
      {"not an object (string)", "\"hello\"", 0},
      {"junk after the JSON", "{}  x", 0},
      {"two JSON values", "{} {}", 0},
      {"entry is not an object", "{\"a\": 3}", 0},
      {"unknown dtype", "{\"a\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]}}", 16},
      {"lower-case dtype", "{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
      {"dtype not a string", "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
      {"dtype missing", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
      {"shape missing", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4},
      {"shape not an array", "{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}}", 4},
      {"negative dim", "{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0},
      {"fractional dim", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,1]}}", 2},
      {"string dim", "{\"a\":{\"dtype\":\"U8\",\"shape\":[\"1\"],\"data_offsets\":[0,1]}}", 1},
      {"dim beyond 2^53", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1e300],\"data_offsets\":[0,1]}}", 1},
      {"9 dims", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
       1},
      {"shape product overflows",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,0]}}",
       0},
      {"offsets missing", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4},
      {"one offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 4},
      {"three offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8},
      {"negative offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4},
      {"begin > end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 8},
      {"end beyond data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 7},
      {"begin beyond data", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[9,9]}}", 8},
      {"size mismatch (too few bytes)",
       "{\"a\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,4]}}", 8},
      {"size mismatch (too many bytes)",
       "{\"a\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8},
      {"overlapping tensors",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
       12},
      {"identical ranges",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
       "\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
       4},
      {"one tensor inside another",
       "{\"a\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]},"
       "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[6,8]}}",
       16},
      {"duplicate tensor name",
       "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
       "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
       2},
      {"F4 with an odd last dim",
       "{\"a\":{\"dtype\":\"F4\",\"shape\":[2,3],\"data_offsets\":[0,3]}}", 3},
      {"F4 scalar", "{\"a\":{\"dtype\":\"F4\",\"shape\":[],\"data_offsets\":[0,0]}}", 0},
      {"F4 size counted in codes",
       "{\"a\":{\"dtype\":\"F4\",\"shape\":[2,4],\"data_offsets\":[0,8]}}", 8},
      {"__metadata__ not an object", "{\"__metadata__\": [\"a\"]}", 0},
      {"__metadata__ value not a string", "{\"__metadata__\": {\"total\": 12}}", 0},
      {"__metadata__ twice", "{\"__metadata__\": {}, \"__metadata__\": {}}", 0},
      {"__metadata__ duplicate key", "{\"__metadata__\": {\"k\": \"1\", \"k\": \"2\"}}", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t len;
    uint8_t *b = image(cases[i].hdr, cases[i].data_len, &len);
    aoq_st_file *f = (aoq_st_file *)1;
    aoq_err_clear();
    aoq_status st = aoq_st_open_memory(b, len, &f);
    expect_refused(st, f, AOQ_EFORMAT, cases[i].what);
    free(b);
  }
}

static void test_bad_header_length_is_refused(void **state) {
  (void)state;
  aoq_status rc;
  aoq_st_file *f = (aoq_st_file *)1;
  uint8_t small[5] = {2, 0, 0, 0, 0};
  aoq_err_clear();
  rc = aoq_st_open_memory(small, sizeof small, &f);
  expect_refused(rc, f, AOQ_EFORMAT, "5-byte image");
  aoq_err_clear();
  rc = aoq_st_open_memory(NULL, 0, &f);
  expect_refused(rc, f, AOQ_EFORMAT, "empty image");

  size_t len;
  uint8_t *b = image("{}", 0, &len);
  b[0] = 3; /* one byte longer than the image */
  aoq_err_clear();
  rc = aoq_st_open_memory(b, len, &f);
  expect_refused(rc, f, AOQ_EFORMAT, "header longer than file");
  b[0] = 0xff, b[7] = 0xff; /* huge, would wrap a signed or 64-bit sum */
  aoq_err_clear();
  rc = aoq_st_open_memory(b, len, &f);
  expect_refused(rc, f, AOQ_EFORMAT, "2^64-scale header length");
  b[0] = 0, b[7] = 0;
  aoq_err_clear();
  rc = aoq_st_open_memory(b, len, &f);
  expect_refused(rc, f, AOQ_EFORMAT, "zero header length");
  b[0] = 1;
  aoq_err_clear();
  rc = aoq_st_open_memory(b, len, &f);
  expect_refused(rc, f, AOQ_EFORMAT, "header cut inside the JSON");
  b[0] = 2;
  assert_int_equal(aoq_st_open_memory(b, len, &f), AOQ_OK);
  assert_int_equal(aoq_st_count(f), 0);
  aoq_st_close(f);
  free(b);

  /* Trailing spaces inside the declared header are padding and are accepted. */
  b = image("{\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}   ", 3, &len);
  assert_int_equal(aoq_st_open_memory(b, len, &f), AOQ_OK);
  assert_int_equal(aoq_st_find(f, "a")->nbytes, 3);
  assert_ptr_equal(aoq_st_find(f, "a")->data, b + len - 3);
  aoq_st_close(f);
  free(b);
}

/* A file cut short loses tensor bytes: the header's offsets then point past the end. */
static void test_truncated_file_is_refused(void **state) {
  (void)state;
  aoq_status rc;
  uint8_t d[64];
  memset(d, 7, sizeof d);
  int64_t shp[1] = {16};
  aoq_st_writer *w;
  assert_int_equal(aoq_st_writer_new(&w), AOQ_OK);
  assert_int_equal(aoq_st_writer_add(w, "a", AOQ_DTYPE_F32, 1, shp, d, sizeof d), AOQ_OK);
  const char *path = tpath("trunc.safetensors");
  assert_int_equal(aoq_st_writer_finish(w, path), AOQ_OK);
  size_t n;
  uint8_t *raw = read_file(path, &n);
  aoq_st_file *f = (aoq_st_file *)1;
  write_file(path, raw, n - 1);
  aoq_err_clear();
  rc = aoq_st_open(path, &f);
  expect_refused(rc, f, AOQ_EFORMAT, "file missing its last byte");
  assert_non_null(strstr(aoq_last_error(), path));
  write_file(path, raw, 20); /* inside the header */
  aoq_err_clear();
  rc = aoq_st_open(path, &f);
  expect_refused(rc, f, AOQ_EFORMAT, "file cut in the header");
  write_file(path, raw, 3);
  aoq_err_clear();
  rc = aoq_st_open(path, &f);
  expect_refused(rc, f, AOQ_EFORMAT, "3-byte file");
  write_file(path, raw, 0);
  aoq_err_clear();
  rc = aoq_st_open(path, &f);
  expect_refused(rc, f, AOQ_EFORMAT, "empty file");
  free(raw);

  aoq_err_clear();
  rc = aoq_st_open(tpath("does-not-exist.safetensors"), &f);
  expect_refused(rc, f, AOQ_EIO, "missing file");
  /* a FIFO is refused at once, not waited on */
  assert_int_equal(mkfifo(tpath("fifo.safetensors"), 0644), 0);
  aoq_err_clear();
  rc = aoq_st_open(tpath("fifo.safetensors"), &f);
  expect_refused(rc, f, AOQ_EIO, "FIFO");
  mkdir(tpath("emptydir"), 0755);
  aoq_err_clear();
  rc = aoq_st_open(tpath("emptydir"), &f);
  expect_refused(rc, f, AOQ_EIO, "folder without a checkpoint");
}

/* Writes a shard holding tensors name[i] = F32 [4] filled with value[i]. */
static void write_shard(const char *path, int n, const char *const *names, const float *values,
                        const char *meta_value, const char *extra_key) {
  static float bufs[8][4];
  aoq_st_writer *w;
  assert_int_equal(aoq_st_writer_new(&w), AOQ_OK);
  int64_t shp[1] = {4};
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < 4; j++) bufs[i][j] = values[i];
    assert_int_equal(aoq_st_writer_add(w, names[i], AOQ_DTYPE_F32, 1, shp, bufs[i], 16), AOQ_OK);
  }
  if (meta_value) assert_int_equal(aoq_st_writer_meta(w, "format", meta_value), AOQ_OK);
  if (extra_key) assert_int_equal(aoq_st_writer_meta(w, extra_key, path), AOQ_OK);
  assert_int_equal(aoq_st_writer_finish(w, path), AOQ_OK);
}

static void write_text(const char *path, const char *text) {
  write_file(path, text, strlen(text));
}

static void check_sharded(aoq_st_file *f) {
  assert_int_equal(aoq_st_count(f), 3);
  assert_string_equal(aoq_st_at(f, 0)->name, "embed");
  assert_string_equal(aoq_st_at(f, 1)->name, "layers.0.w");
  assert_string_equal(aoq_st_at(f, 2)->name, "lm_head");
  const aoq_st_tensor *t = aoq_st_find(f, "lm_head");
  assert_non_null(t);
  assert_int_equal(t->dtype, AOQ_DTYPE_F32);
  assert_true(((const float *)t->data)[3] == 3.0f);
  assert_true(((const float *)aoq_st_find(f, "embed")->data)[0] == 1.0f);
  assert_true(((const float *)aoq_st_find(f, "layers.0.w")->data)[2] == 2.0f);
  assert_null(aoq_st_find(f, "unlisted"));
  assert_string_equal(aoq_st_meta(f, "format"), "pt");
  assert_non_null(strstr(aoq_st_meta(f, "shard2"), "model-00002-of-00002.safetensors"));
  assert_int_equal(aoq_st_meta_count(f), 2);
  assert_string_equal(aoq_st_meta_key(f, 0), "format");
  assert_string_equal(aoq_st_meta_key(f, 1), "shard2");
  assert_null(aoq_st_meta_key(f, 2));
}

static void test_sharded_checkpoint(void **state) {
  (void)state;
  mkdir(tpath("sharded"), 0755);
  const char *n1[] = {"embed", "layers.0.w"}, *n2[] = {"lm_head", "unlisted"};
  const float v1[] = {1, 2}, v2[] = {3, 4};
  write_shard(tpath("sharded/model-00001-of-00002.safetensors"), 2, n1, v1, "pt", NULL);
  /* the second shard's "format" loses to the first shard's; its "shard2" key is kept */
  write_shard(tpath("sharded/model-00002-of-00002.safetensors"), 2, n2, v2, "other", "shard2");
  const char *index =
      "{\"metadata\": {\"total_size\": 48}, \"weight_map\": {"
      "\"lm_head\": \"model-00002-of-00002.safetensors\","
      "\"embed\": \"model-00001-of-00002.safetensors\","
      "\"layers.0.w\": \"model-00001-of-00002.safetensors\"}}";
  write_text(tpath("sharded/model.safetensors.index.json"), index);
  aoq_st_file *f = NULL;
  assert_int_equal(aoq_st_open(tpath("sharded"), &f), AOQ_OK);
  check_sharded(f);
  aoq_st_close(f);
  /* The index file itself can be named too. */
  assert_int_equal(aoq_st_open(tpath("sharded/model.safetensors.index.json"), &f), AOQ_OK);
  check_sharded(f);
  aoq_st_close(f);

  /* A relative index path: the shards are looked up beside it. */
  char cwd[1024];
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(tpath("sharded")), 0);
  aoq_status rc = aoq_st_open("model.safetensors.index.json", &f);
  assert_int_equal(chdir(cwd), 0);
  if (rc != AOQ_OK) fail_msg("relative index: %s", aoq_last_error());
  check_sharded(f);
  aoq_st_close(f);

  /* A folder with a single model.safetensors and no index. */
  mkdir(tpath("single"), 0755);
  write_shard(tpath("single/model.safetensors"), 2, n1, v1, "pt", NULL);
  assert_int_equal(aoq_st_open(tpath("single"), &f), AOQ_OK);
  assert_int_equal(aoq_st_count(f), 2);
  aoq_st_close(f);
}

static void test_broken_sharded_index_is_refused(void **state) {
  (void)state;
  aoq_status rc;
  mkdir(tpath("broken"), 0755);
  const char *n1[] = {"a"};
  const float v1[] = {1};
  write_shard(tpath("broken/s1.safetensors"), 1, n1, v1, NULL, NULL);
  char ix[512];
  snprintf(ix, sizeof ix, "%s", tpath("broken/model.safetensors.index.json"));
  static const struct {
    const char *what, *text;
    aoq_status want;
  } cases[] = {
      {"missing shard file",
       "{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s2.safetensors\"}}", AOQ_EIO},
      {"tensor the shard lacks",
       "{\"weight_map\": {\"a\": \"s1.safetensors\", \"z\": "
       "\"s1.safetensors\"}}",
       AOQ_EFORMAT},
      {"shard outside the folder", "{\"weight_map\": {\"a\": \"../s1.safetensors\"}}", AOQ_EFORMAT},
      {"shard name not a string", "{\"weight_map\": {\"a\": 1}}", AOQ_EFORMAT},
      {"no weight_map", "{\"metadata\": {}}", AOQ_EFORMAT},
      {"index not JSON", "{\"weight_map\": ", AOQ_EFORMAT},
      {"index not an object", "[\"weight_map\"]", AOQ_EFORMAT},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    write_text(ix, cases[i].text);
    aoq_st_file *f = (aoq_st_file *)1;
    aoq_err_clear();
    rc = aoq_st_open(tpath("broken"), &f);
    expect_refused(rc, f, cases[i].want, cases[i].what);
  }
  /* A shard that is itself malformed. */
  write_text(tpath("broken/s1.safetensors"), "not a safetensors file");
  write_text(ix, "{\"weight_map\": {\"a\": \"s1.safetensors\"}}");
  aoq_st_file *f = (aoq_st_file *)1;
  aoq_err_clear();
  rc = aoq_st_open(tpath("broken"), &f);
  expect_refused(rc, f, AOQ_EFORMAT, "malformed shard");
}

/* torch dtype names of report.json -> what the file must store. */
static int torch_dtype(const char *name, aoq_dtype *dt, int *as_u8) {
  static const struct {
    const char *torch;
    aoq_dtype dt;
    int as_u8; /* no safetensors name: stored as U8 with "<tensor>.dtype" metadata */
  } map[] = {
      {"torch.bfloat16", AOQ_DTYPE_BF16, 0},
      {"torch.float32", AOQ_DTYPE_F32, 0},
      {"torch.float16", AOQ_DTYPE_F16, 0},
      {"torch.float64", AOQ_DTYPE_F64, 0},
      {"torch.int8", AOQ_DTYPE_I8, 0},
      {"torch.uint8", AOQ_DTYPE_U8, 0},
      {"torch.int16", AOQ_DTYPE_I16, 0},
      {"torch.int32", AOQ_DTYPE_I32, 0},
      {"torch.int64", AOQ_DTYPE_I64, 0},
      {"torch.bool", AOQ_DTYPE_BOOL, 0},
      {"torch.float8_e4m3fn", AOQ_DTYPE_F8_E4M3, 0},
      {"torch.float8_e5m2", AOQ_DTYPE_F8_E5M2, 0},
      {"torch.float8_e8m0fnu", AOQ_DTYPE_U8, 1},
      {"torch.float4_e2m1fn_x2", AOQ_DTYPE_U8, 1},
  };
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
    if (strcmp(map[i].torch, name) == 0) {
      *dt = map[i].dt;
      *as_u8 = map[i].as_u8;
      return 1;
    }
  }
  return 0;
}

static void test_golden_files_match_report(void **state) {
  (void)state;
  size_t n;
  char path[1024];
  snprintf(path, sizeof path, "%s/golden/report.json", AOQ_TEST_DATA);
  char *text = (char *)read_file(path, &n);
  text[n] = 0;
  cJSON *report = cJSON_Parse(text);
  free(text);
  assert_non_null(report);
  int files = 0, tensors = 0, u8_reinterpreted = 0;
  for (const cJSON *cfg = report->child; cfg; cfg = cfg->next) {
    if (!cJSON_IsTrue(cJSON_GetObjectItem(cfg, "ok"))) continue;
    snprintf(path, sizeof path, "%s/golden/%s.safetensors", AOQ_TEST_DATA, cfg->string);
    aoq_st_file *f = NULL;
    aoq_status st = aoq_st_open(path, &f);
    if (st != AOQ_OK) fail_msg("%s: %s", path, aoq_last_error());
    files++;
    const cJSON *list = cJSON_GetObjectItem(cfg, "tensors");
    assert_true(cJSON_IsObject(list));
    /* exactly the tensors of the report, no more */
    assert_int_equal(aoq_st_count(f), (size_t)cJSON_GetArraySize(list));
    for (const cJSON *e = list->child; e; e = e->next) {
      const aoq_st_tensor *t = aoq_st_find(f, e->string);
      if (!t) fail_msg("%s: tensor %s missing", path, e->string);
      const char *tdt = cJSON_GetArrayItem(e, 0)->valuestring;
      const cJSON *shape = cJSON_GetArrayItem(e, 1);
      aoq_dtype want = AOQ_DTYPE_COUNT;
      int as_u8 = 0;
      if (!torch_dtype(tdt, &want, &as_u8)) fail_msg("%s: unmapped torch dtype %s", path, tdt);
      if (t->dtype != want)
        fail_msg("%s: %s is %s, want %s for %s", path, e->string, aoq_dtype_name(t->dtype),
                 aoq_dtype_name(want), tdt);
      if (as_u8) {
        char key[256];
        snprintf(key, sizeof key, "%s.dtype", e->string);
        const char *m = aoq_st_meta(f, key);
        if (!m || strcmp(m, tdt) != 0)
          fail_msg("%s: metadata %s = %s, want %s", path, key, m ? m : "(none)", tdt);
        u8_reinterpreted++;
      }
      assert_int_equal(t->ndim, cJSON_GetArraySize(shape));
      size_t elems = 1;
      for (int d = 0; d < t->ndim; d++) {
        int64_t want_d = (int64_t)cJSON_GetArrayItem(shape, d)->valuedouble;
        if (t->shape[d] != want_d)
          fail_msg("%s: %s shape[%d] = %lld, want %lld", path, e->string, d, (long long)t->shape[d],
                   (long long)want_d);
        elems *= (size_t)want_d;
      }
      assert_int_equal(t->nbytes, elems * aoq_dtype_size(want));
      tensors++;
    }
    const char *keys[] = {"config", "subclass", "torchao", "torch", "ctx", "seed"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
      const char *m = aoq_st_meta(f, keys[k]);
      if (!m || !*m) fail_msg("%s: metadata %s missing", path, keys[k]);
    }
    assert_string_equal(aoq_st_meta(f, "subclass"),
                        cJSON_GetObjectItem(cfg, "subclass")->valuestring);
    assert_string_equal(aoq_st_meta(f, "torchao"), "pytorch/ao@36027d82");
    aoq_st_close(f);
  }
  cJSON_Delete(report);
  assert_int_equal(files, 18);
  assert_true(tensors > 200);
  assert_int_equal(u8_reinterpreted, 6);
}

static uint8_t *hex_decode(const char *hex, size_t *n) {
  size_t len = strlen(hex);
  uint8_t *out = malloc(len / 2 + 1);
  assert_non_null(out);
  for (size_t i = 0; i < len / 2; i++) {
    unsigned v;
    assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
    out[i] = (uint8_t)v;
  }
  *n = len / 2;
  return out;
}

static cJSON *load_json(const char *path) {
  size_t n;
  char *text = (char *)read_file(path, &n);
  text[n] = 0;
  cJSON *j = cJSON_Parse(text);
  free(text);
  if (!j) fail_msg("%s: not JSON", path);
  return j;
}

/* Files written by torch's safetensors 0.8 (tests/data/st/README.md): every dtype, shape and byte
 * as torch saw it; F8_E8M0; "F4" mapped to F4_E2M1X2 with the last dim halved. */
static void test_torch_written_files(void **state) {
  (void)state;
  char path[1024];
  snprintf(path, sizeof path, "%s/st/torch_all_dtypes.json", AOQ_TEST_DATA);
  cJSON *exp = load_json(path);
  snprintf(path, sizeof path, "%s/st/torch_all_dtypes.safetensors", AOQ_TEST_DATA);
  aoq_st_file *f = NULL;
  if (aoq_st_open(path, &f) != AOQ_OK) fail_msg("%s: %s", path, aoq_last_error());
  assert_int_equal(aoq_st_count(f), (size_t)cJSON_GetArraySize(exp));
  assert_int_equal(aoq_st_count(f), 14);
  for (const cJSON *e = exp->child; e; e = e->next) {
    const aoq_st_tensor *t = aoq_st_find(f, e->string);
    if (!t) fail_msg("%s missing", e->string);
    aoq_dtype want = AOQ_DTYPE_COUNT;
    int as_u8 = 0;
    assert_true(torch_dtype(cJSON_GetArrayItem(e, 0)->valuestring, &want, &as_u8));
    assert_int_equal(t->dtype, want);
    const cJSON *shape = cJSON_GetArrayItem(e, 1);
    assert_int_equal(t->ndim, cJSON_GetArraySize(shape));
    for (int d = 0; d < t->ndim; d++)
      assert_int_equal(t->shape[d], (int64_t)cJSON_GetArrayItem(shape, d)->valuedouble);
    size_t nb;
    uint8_t *bytes = hex_decode(cJSON_GetArrayItem(e, 2)->valuestring, &nb);
    assert_int_equal(t->nbytes, nb);
    if (nb) assert_memory_equal(t->data, bytes, nb);
    free(bytes);
  }
  assert_string_equal(aoq_st_meta(f, "format"), "pt");
  aoq_st_close(f);
  cJSON_Delete(exp);

  snprintf(path, sizeof path, "%s/st/torch_f8_e8m0.safetensors", AOQ_TEST_DATA);
  assert_int_equal(aoq_st_open(path, &f), AOQ_OK);
  const aoq_st_tensor *t = aoq_st_find(f, "e8m0");
  assert_non_null(t);
  assert_int_equal(t->dtype, AOQ_DTYPE_F8_E8M0);
  assert_int_equal(t->ndim, 2);
  assert_int_equal(t->shape[0], 4);
  assert_int_equal(t->shape[1], 8);
  aoq_st_close(f);

  snprintf(path, sizeof path, "%s/st/torch_f4_e2m1fn_x2.safetensors", AOQ_TEST_DATA);
  assert_int_equal(aoq_st_open(path, &f), AOQ_OK);
  t = aoq_st_find(f, "fp4x2");
  assert_non_null(t);
  assert_int_equal(t->dtype, AOQ_DTYPE_F4_E2M1X2);
  assert_int_equal(t->ndim, 2);
  assert_int_equal(t->shape[0], 4);
  assert_int_equal(t->shape[1], 8); /* "F4" [4, 16] in the file */
  assert_int_equal(t->nbytes, 32);
  aoq_st_close(f);
}

/* A checkpoint sharded by huggingface_hub: every tensor resolves into its shard. */
static void test_hf_sharded_checkpoint(void **state) {
  (void)state;
  char path[1024];
  snprintf(path, sizeof path, "%s/st/hf_sharded.json", AOQ_TEST_DATA);
  cJSON *exp = load_json(path);
  snprintf(path, sizeof path, "%s/st/hf_sharded", AOQ_TEST_DATA);
  aoq_st_file *f = NULL;
  if (aoq_st_open(path, &f) != AOQ_OK) fail_msg("%s: %s", path, aoq_last_error());
  assert_int_equal(aoq_st_count(f), 6);
  for (const cJSON *e = exp->child; e; e = e->next) {
    const aoq_st_tensor *t = aoq_st_find(f, e->string);
    if (!t) fail_msg("%s missing", e->string);
    assert_int_equal(t->dtype, AOQ_DTYPE_BF16);
    assert_int_equal(t->nbytes, 64 * 64 * 2);
    size_t nb;
    uint8_t *bytes = hex_decode(e->valuestring, &nb);
    assert_int_equal(nb, 32);
    assert_memory_equal(t->data, bytes, nb);
    free(bytes);
  }
  aoq_st_close(f);
  cJSON_Delete(exp);
}

/* Fail the k-th allocation for every k until a run needs no more: each failure must be a clean
 * AOQ_ENOMEM (ASan/LSan report any leak on the error paths). */
static void test_allocation_failures_are_clean(void **state) {
  (void)state;
  char path[1024];
  snprintf(path, sizeof path, "%s/golden/mxfp8.safetensors", AOQ_TEST_DATA);
  int ok = 0;
  for (long k = 1; k < 10000 && !ok; k++) {
    aoq_fault_arm(k);
    aoq_st_file *f = NULL;
    aoq_status st = aoq_st_open(path, &f);
    if (st == AOQ_OK) {
      ok = 1;
      assert_non_null(aoq_st_find(f, "q.scale"));
      aoq_st_close(f);
    } else {
      assert_int_equal(st, AOQ_ENOMEM);
      assert_null(f);
    }
  }
  aoq_fault_arm(0);
  assert_true(ok);

  float x[6] = {1, 2, 3, 4, 5, 6};
  int64_t shp[2] = {2, 3};
  ok = 0;
  for (long k = 1; k < 1000 && !ok; k++) {
    aoq_fault_arm(k);
    aoq_st_writer *w = NULL;
    aoq_status st = aoq_st_writer_new(&w);
    if (st == AOQ_OK) st = aoq_st_writer_add(w, "x", AOQ_DTYPE_F32, 2, shp, x, sizeof x);
    if (st == AOQ_OK) st = aoq_st_writer_add(w, "y", AOQ_DTYPE_F32, 2, shp, x, sizeof x);
    if (st == AOQ_OK) st = aoq_st_writer_meta(w, "k", "v");
    if (st == AOQ_OK) {
      st = aoq_st_writer_finish(w, tpath("fault.safetensors"));
    } else {
      aoq_st_writer_free(w);
    }
    if (st == AOQ_OK) {
      ok = 1;
    } else {
      assert_int_equal(st, AOQ_ENOMEM);
    }
  }
  aoq_fault_arm(0);
  assert_true(ok);
  aoq_st_file *f = NULL;
  assert_int_equal(aoq_st_open(tpath("fault.safetensors"), &f), AOQ_OK);
  assert_int_equal(aoq_st_count(f), 2);
  aoq_st_close(f);
}

/* The fuzz seeds say in their names whether they are valid; keep them honest. */
static void test_fuzz_seeds_match_their_names(void **state) {
  (void)state;
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/safetensors", AOQ_SOURCE_DIR);
  DIR *d = opendir(dir);
  assert_non_null(d);
  int valid = 0, bad = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    int is_valid = strncmp(e->d_name, "valid_", 6) == 0,
        is_bad = strncmp(e->d_name, "bad_", 4) == 0;
    if (!is_valid && !is_bad) continue;
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    aoq_st_file *f = NULL;
    aoq_err_clear();
    aoq_status st = aoq_st_open(path, &f);
    if (is_valid && st != AOQ_OK) fail_msg("%s: %s", path, aoq_last_error());
    if (is_bad && st != AOQ_EFORMAT) fail_msg("%s: status %d, want EFORMAT", path, st);
    if (is_bad) assert_true(strlen(aoq_last_error()) > 0);
    aoq_st_close(f);
    valid += is_valid;
    bad += is_bad;
  }
  closedir(d);
  assert_true(valid >= 5);
  assert_true(bad >= 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dtype_names_round_trip),
      cmocka_unit_test(test_writer_reader_round_trip_every_dtype),
      cmocka_unit_test(test_writer_empty_file_and_overwrite),
      cmocka_unit_test(test_writer_rejects_bad_arguments),
      cmocka_unit_test(test_malformed_headers_are_refused),
      cmocka_unit_test(test_bad_header_length_is_refused),
      cmocka_unit_test(test_truncated_file_is_refused),
      cmocka_unit_test(test_sharded_checkpoint),
      cmocka_unit_test(test_broken_sharded_index_is_refused),
      cmocka_unit_test(test_golden_files_match_report),
      cmocka_unit_test(test_torch_written_files),
      cmocka_unit_test(test_hf_sharded_checkpoint),
      cmocka_unit_test(test_allocation_failures_are_clean),
      cmocka_unit_test(test_fuzz_seeds_match_their_names),
  };
  return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
