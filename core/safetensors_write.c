/*
 * safetensors_write.c — the safetensors writer (core/safetensors.h): tensors collected in memory,
 * header written in name order, data laid out widest dtype first so every tensor is aligned,
 * file replaced atomically (temp file + rename).
 */
#include "core/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "core/safetensors_internal.h"

typedef struct st_wentry {
  char *name;
  aoq_dtype dtype;
  int ndim;
  int64_t shape[AOQ_ST_MAX_DIMS];
  const void *data;
  size_t nbytes;
  uint64_t offset; /* in the data section, set by st_build_header */
} st_wentry;

struct aoq_st_writer {
  st_wentry *e;
  size_t n, cap;
  st_meta *meta;
  size_t nmeta, capmeta;
};

aoq_status aoq_st_writer_new(aoq_st_writer **out) {
  if (!out) return aoq_err(AOQ_EINVAL, "aoq_st_writer_new: out is NULL");
  *out = aoq_st_calloc(1, sizeof **out);
  if (!*out) return aoq_err(AOQ_ENOMEM, "safetensors writer: out of memory");
  return AOQ_OK;
}

void aoq_st_writer_free(aoq_st_writer *w) {
  if (!w) return;
  for (size_t i = 0; i < w->n; i++) free(w->e[i].name);
  free(w->e);
  for (size_t i = 0; i < w->nmeta; i++) {
    free(w->meta[i].key);
    free(w->meta[i].value);
  }
  free(w->meta);
  free(w);
}

static aoq_status st_grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return AOQ_OK;
  size_t nc = *cap ? *cap * 2 : 16;
  while (nc < need) nc *= 2;
  void *np = aoq_fault_hit() ? NULL : realloc(*p, nc * elem);
  if (!np) return aoq_err(AOQ_ENOMEM, "safetensors writer: out of memory");
  *p = np;
  *cap = nc;
  return AOQ_OK;
}

aoq_status aoq_st_writer_add(aoq_st_writer *w, const char *name, aoq_dtype dt, int ndim,
                             const int64_t *shape, const void *data, size_t nbytes) {
  if (!w || !name) return aoq_err(AOQ_EINVAL, "aoq_st_writer_add: NULL argument");
  if (!*name || strcmp(name, "__metadata__") == 0)
    return aoq_err(AOQ_EINVAL, "aoq_st_writer_add: invalid tensor name \"%s\"", name);
  if (aoq_dtype_size(dt) == 0)
    return aoq_err(AOQ_EINVAL, "aoq_st_writer_add: tensor %.*s: invalid dtype %d", ST_NAME_SHOWN,
                   name, (int)dt);
  if (ndim < 0 || ndim > AOQ_ST_MAX_DIMS || (ndim > 0 && !shape))
    return aoq_err(AOQ_EINVAL, "aoq_st_writer_add: tensor %.*s: ndim %d out of range 0..%d",
                   ST_NAME_SHOWN, name, ndim, AOQ_ST_MAX_DIMS);
  uint64_t elems = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0 || (double)shape[i] > ST_MAX_JSON_INT / 2 ||
        __builtin_mul_overflow(elems, (uint64_t)shape[i], &elems))
      return aoq_err(AOQ_EINVAL, "aoq_st_writer_add: tensor %.*s: bad shape[%d] = %lld",
                     ST_NAME_SHOWN, name, i, (long long)shape[i]);
  }
  uint64_t want;
  if (__builtin_mul_overflow(elems, (uint64_t)aoq_dtype_size(dt), &want) || want != nbytes)
    return aoq_err(AOQ_ESHAPE, "aoq_st_writer_add: tensor %.*s: %zu bytes given, shape needs %llu",
                   ST_NAME_SHOWN, name, nbytes, (unsigned long long)want);
  if (nbytes && !data)
    return aoq_err(AOQ_EINVAL, "aoq_st_writer_add: tensor %.*s: data is NULL", ST_NAME_SHOWN, name);
  for (size_t i = 0; i < w->n; i++) {
    if (strcmp(w->e[i].name, name) == 0)
      return aoq_err(AOQ_EINVAL, "aoq_st_writer_add: tensor %.*s added twice", ST_NAME_SHOWN, name);
  }
  AOQ_TRY(st_grow((void **)&w->e, &w->cap, w->n + 1, sizeof *w->e));
  st_wentry *e = &w->e[w->n];
  memset(e, 0, sizeof *e);
  e->name = aoq_st_strdup(name);
  if (!e->name) return aoq_err(AOQ_ENOMEM, "safetensors writer: out of memory");
  e->dtype = dt;
  e->ndim = ndim;
  for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
  e->data = data;
  e->nbytes = nbytes;
  w->n++;
  return AOQ_OK;
}

aoq_status aoq_st_writer_meta(aoq_st_writer *w, const char *key, const char *value) {
  if (!w || !key || !value) return aoq_err(AOQ_EINVAL, "aoq_st_writer_meta: NULL argument");
  for (size_t i = 0; i < w->nmeta; i++) {
    if (strcmp(w->meta[i].key, key) == 0) {
      char *v = aoq_st_strdup(value);
      if (!v) return aoq_err(AOQ_ENOMEM, "safetensors writer: out of memory");
      free(w->meta[i].value);
      w->meta[i].value = v;
      return AOQ_OK;
    }
  }
  AOQ_TRY(st_grow((void **)&w->meta, &w->capmeta, w->nmeta + 1, sizeof *w->meta));
  char *k = aoq_st_strdup(key), *v = k ? aoq_st_strdup(value) : NULL;
  if (!k || !v) {
    free(k);
    return aoq_err(AOQ_ENOMEM, "safetensors writer: out of memory");
  }
  w->meta[w->nmeta].key = k;
  w->meta[w->nmeta].value = v;
  w->nmeta++;
  return AOQ_OK;
}

/* Growing text buffer for the JSON header. */
typedef struct st_buf {
  char *p;
  size_t len, cap;
  int oom;
} st_buf;

static void st_buf_put(st_buf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap : 4096;
    while (nc < b->len + n + 1) nc *= 2;
    char *np = aoq_fault_hit() ? NULL : realloc(b->p, nc);
    if (!np) {
      b->oom = 1;
      return;
    }
    b->p = np;
    b->cap = nc;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

static void st_buf_str(st_buf *b, const char *s) {
  st_buf_put(b, s, strlen(s));
}

static void st_buf_u64(st_buf *b, unsigned long long v) {
  char tmp[32];
  int n = snprintf(tmp, sizeof tmp, "%llu", v);
  st_buf_put(b, tmp, (size_t)n);
}

/* A JSON string literal: quotes, backslashes and control bytes escaped; other bytes as given. */
static void st_buf_json_string(st_buf *b, const char *s) {
  st_buf_put(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char tmp[8];
    if (*p == '"' || *p == '\\') {
      tmp[0] = '\\';
      tmp[1] = (char)*p;
      st_buf_put(b, tmp, 2);
    } else if (*p < 0x20) {
      snprintf(tmp, sizeof tmp, "\\u%04x", *p);
      st_buf_put(b, tmp, 6);
    } else {
      st_buf_put(b, (const char *)p, 1);
    }
  }
  st_buf_put(b, "\"", 1);
}

static int st_cmp_wentry(const void *a, const void *b) {
  return strcmp(((const st_wentry *)a)->name, ((const st_wentry *)b)->name);
}

/* Data order: wider elements first, then by name. The data section starts 8-byte aligned and every
 * tensor's size is a multiple of its element size, so each tensor is aligned to its element size
 * (the order Hugging Face's writer uses too). */
static int st_cmp_wentry_data(const void *a, const void *b) {
  const st_wentry *x = a, *y = b;
  size_t sx = aoq_dtype_size(x->dtype), sy = aoq_dtype_size(y->dtype);
  if (sx != sy) return sx > sy ? -1 : 1;
  return strcmp(x->name, y->name);
}

static aoq_status st_write_all(int fd, const void *data, size_t n, const char *path) {
  const uint8_t *p = data;
  while (n > 0) {
    size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
    ssize_t got = write(fd, p, chunk);
    if (got < 0) {
      if (errno == EINTR) continue;
      return aoq_err(AOQ_EIO, "%s: write: %s", path, strerror(errno));
    }
    if (got == 0) return aoq_err(AOQ_EIO, "%s: write returned 0", path);
    p += got;
    n -= (size_t)got;
  }
  return AOQ_OK;
}

static aoq_status st_build_header(aoq_st_writer *w, st_buf *b) {
  if (w->n) qsort(w->e, w->n, sizeof *w->e, st_cmp_wentry_data);
  uint64_t off = 0;
  for (size_t i = 0; i < w->n; i++) {
    w->e[i].offset = off;
    off += w->e[i].nbytes;
  }
  /* the header lists tensors by name */
  if (w->n) qsort(w->e, w->n, sizeof *w->e, st_cmp_wentry);
  if (w->nmeta) qsort(w->meta, w->nmeta, sizeof *w->meta, aoq_st_cmp_meta_key);
  /* 8 placeholder bytes for the length, patched below */
  st_buf_put(b, "\0\0\0\0\0\0\0\0{", 9);
  int first = 1;
  if (w->nmeta) {
    st_buf_str(b, "\"__metadata__\":{");
    for (size_t i = 0; i < w->nmeta; i++) {
      if (i) st_buf_put(b, ",", 1);
      st_buf_json_string(b, w->meta[i].key);
      st_buf_put(b, ":", 1);
      st_buf_json_string(b, w->meta[i].value);
    }
    st_buf_put(b, "}", 1);
    first = 0;
  }
  for (size_t i = 0; i < w->n; i++) {
    const st_wentry *e = &w->e[i];
    if (!first) st_buf_put(b, ",", 1);
    first = 0;
    st_buf_json_string(b, e->name);
    /* packed fp4 is written as safetensors' "F4" (last dim in codes) so that other readers
     * understand it; a 0-dim one has no dim to double and keeps aoq's name */
    int f4 = e->dtype == AOQ_DTYPE_F4_E2M1X2 && e->ndim > 0;
    st_buf_str(b, ":{\"dtype\":\"");
    st_buf_str(b, f4 ? "F4" : aoq_dtype_name(e->dtype));
    st_buf_str(b, "\",\"shape\":[");
    for (int d = 0; d < e->ndim; d++) {
      if (d) st_buf_put(b, ",", 1);
      uint64_t v = (uint64_t)e->shape[d];
      st_buf_u64(b, (unsigned long long)(f4 && d == e->ndim - 1 ? 2 * v : v));
    }
    st_buf_str(b, "],\"data_offsets\":[");
    st_buf_u64(b, e->offset);
    st_buf_put(b, ",", 1);
    st_buf_u64(b, e->offset + e->nbytes);
    st_buf_str(b, "]}");
  }
  st_buf_put(b, "}", 1);
  /* Pad with spaces so that the data section starts 8-byte aligned. */
  while (!b->oom && b->len % 8 != 0) st_buf_put(b, " ", 1);
  if (b->oom) return aoq_err(AOQ_ENOMEM, "safetensors writer: out of memory for the header");
  uint64_t hlen = b->len - 8;
  for (int i = 0; i < 8; i++) b->p[i] = (char)((hlen >> (8 * i)) & 0xff);
  return AOQ_OK;
}

aoq_status aoq_st_writer_finish(aoq_st_writer *w, const char *path) {
  if (!w) return aoq_err(AOQ_EINVAL, "aoq_st_writer_finish: writer is NULL");
  if (!path || !*path) {
    aoq_st_writer_free(w);
    return aoq_err(AOQ_EINVAL, "aoq_st_writer_finish: empty path");
  }
  st_buf b = {0};
  char *tmp = NULL;
  int fd = -1;
  aoq_status st = st_build_header(w, &b);
  if (st != AOQ_OK) goto out;
  size_t plen = strlen(path) + 16;
  tmp = aoq_st_malloc(plen);
  if (!tmp) {
    st = aoq_err(AOQ_ENOMEM, "%s: out of memory", path);
    goto out;
  }
  snprintf(tmp, plen, "%s.tmp.XXXXXX", path);
  fd = mkstemp(tmp);
  if (fd < 0) {
    st = aoq_err(AOQ_EIO, "%s: cannot create temporary file: %s", tmp, strerror(errno));
    free(tmp);
    tmp = NULL;
    goto out;
  }
  if ((st = st_write_all(fd, b.p, b.len, tmp)) != AOQ_OK) goto out;
  if (w->n) qsort(w->e, w->n, sizeof *w->e, st_cmp_wentry_data);
  for (size_t i = 0; i < w->n; i++) {
    if ((st = st_write_all(fd, w->e[i].data, w->e[i].nbytes, tmp)) != AOQ_OK) goto out;
  }
  /* mkstemp creates 0600; a checkpoint is an ordinary readable file */
  if (fchmod(fd, 0644) != 0 || fsync(fd) != 0) {
    st = aoq_err(AOQ_EIO, "%s: fchmod/fsync: %s", tmp, strerror(errno));
    goto out;
  }
  int rc = close(fd);
  fd = -1;
  if (rc != 0) {
    st = aoq_err(AOQ_EIO, "%s: close: %s", tmp, strerror(errno));
    goto out;
  }
  if (rename(tmp, path) != 0) {
    st = aoq_err(AOQ_EIO, "%s: rename from %s: %s", path, tmp, strerror(errno));
    goto out;
  }
  free(tmp);
  tmp = NULL;
out:
  if (fd >= 0) close(fd);
  if (tmp) {
    unlink(tmp);
    free(tmp);
  }
  free(b.p);
  aoq_st_writer_free(w);
  return st;
}
