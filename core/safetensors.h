/*
 * safetensors.h — mmap-based reader of .safetensors files and sharded HF checkpoints
 * (model.safetensors.index.json). Validates everything before exposing a byte: header length,
 * JSON, dtypes, shapes vs byte sizes, offsets in range and non-overlapping. Also a writer, used by
 * the quantized-weight cache and by tests.
 */
#ifndef AOQ_CORE_SAFETENSORS_H
#define AOQ_CORE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "aoq/aoq.h"

#define AOQ_ST_MAX_DIMS 8

typedef struct aoq_st_tensor {
  const char *name;  /* borrowed from the file object */
  aoq_dtype dtype;
  int ndim;
  int64_t shape[AOQ_ST_MAX_DIMS];
  size_t nbytes;
  const void *data;  /* points into the mapping; valid until aoq_st_close. Aligned to the
                        element size in files from aoq_st_writer, but other writers do not
                        promise it (some torchao golden files have odd offsets) */
} aoq_st_tensor;

typedef struct aoq_st_file aoq_st_file;

/* Opens and validates one file (or one sharded checkpoint when path is a directory or an
 * index.json). Errors: AOQ_EIO (open/mmap), AOQ_EFORMAT (with the offending field in the detail). */
aoq_status aoq_st_open(const char *path, aoq_st_file **out);
/* Same on an in-memory image (borrowed; must outlive the handle). Used by fuzzing and tests. */
aoq_status aoq_st_open_memory(const void *data, size_t len, aoq_st_file **out);
void aoq_st_close(aoq_st_file *f);

size_t aoq_st_count(const aoq_st_file *f);
/* i-th tensor in name order; NULL if out of range. Borrowed. */
const aoq_st_tensor *aoq_st_at(const aoq_st_file *f, size_t i);
/* Tensor by name or NULL. Borrowed. */
const aoq_st_tensor *aoq_st_find(const aoq_st_file *f, const char *name);
/* `__metadata__` string value by key, or NULL. Borrowed. */
const char *aoq_st_meta(const aoq_st_file *f, const char *key);
/* Number of `__metadata__` entries (sharded: the union over the shards; the first shard by file
 * name wins a key), and the i-th key in sorted order or NULL. Borrowed. */
size_t aoq_st_meta_count(const aoq_st_file *f);
const char *aoq_st_meta_key(const aoq_st_file *f, size_t i);

/* Writer: collect tensors (data borrowed until aoq_st_writer_finish), then write the file. */
typedef struct aoq_st_writer aoq_st_writer;
aoq_status aoq_st_writer_new(aoq_st_writer **out);
aoq_status aoq_st_writer_add(aoq_st_writer *w, const char *name, aoq_dtype dt, int ndim,
                             const int64_t *shape, const void *data, size_t nbytes);
aoq_status aoq_st_writer_meta(aoq_st_writer *w, const char *key, const char *value);
/* Writes to path atomically (temp file + rename) and frees w in every case. */
aoq_status aoq_st_writer_finish(aoq_st_writer *w, const char *path);
void aoq_st_writer_free(aoq_st_writer *w);

/* dtype from a safetensors name ("BF16", "F8_E4M3", ...); AOQ_EFORMAT if unknown. Not "F4":
 * files name packed fp4 "F4" with the last dim in 4-bit codes; the reader maps that to
 * AOQ_DTYPE_F4_E2M1X2 with the last dim halved (bytes), and the writer does the reverse. */
aoq_status aoq_st_dtype_parse(const char *name, aoq_dtype *out);

#endif
