/*
 * safetensors.c — reader (mmap, validate everything up front) and writer of .safetensors files,
 * plus sharded Hugging Face checkpoints (model.safetensors.index.json).
 *
 * File layout: u64 little-endian header length N, N bytes of JSON header, then the data section.
 * The header maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative to
 * the data section) and may hold "__metadata__", a string -> string map.
 */
#include "core/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/file.h"
#include "core/safetensors_internal.h"

struct aoq_st_file {
  char *label; /* path or "<memory>", for error details */
  void *map;   /* owned mapping (NULL for memory images and sharded parents) */
  size_t map_len;
  aoq_st_tensor *tensors; /* sorted by name */
  size_t count;
  int owns_names; /* names are strdup'ed here (not borrowed from a shard) */
  st_meta *meta;  /* sorted by key */
  size_t nmeta;
  aoq_st_file **shards; /* sharded checkpoint: each shard keeps its mapping alive */
  size_t nshards;
};

void *aoq_st_malloc(size_t n) {
  if (aoq_fault_hit()) return NULL;
  return malloc(n ? n : 1);
}

void *aoq_st_calloc(size_t n, size_t size) {
  if (aoq_fault_hit()) return NULL;
  return calloc(n ? n : 1, size ? size : 1);
}

char *aoq_st_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = aoq_st_malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

static aoq_status st_oom(const char *label) {
  return aoq_err(AOQ_ENOMEM, "%s: out of memory while reading safetensors header", label);
}

/* The names are aoq_dtype_name's (base/dtype.c): the safetensors set plus F8_E8M0 and F4_E2M1X2
 * (one byte per element, two E2M1 codes). safetensors' own "F4" counts 4-bit elements, so it
 * changes the shape too: the header parser handles it, this function does not accept it. */
aoq_status aoq_st_dtype_parse(const char *name, aoq_dtype *out) {
  if (!name || !out) return aoq_err(AOQ_EINVAL, "aoq_st_dtype_parse: NULL argument");
  for (int t = 0; t < AOQ_DTYPE_COUNT; t++) {
    if (strcmp(name, aoq_dtype_name((aoq_dtype)t)) == 0) {
      *out = (aoq_dtype)t;
      return AOQ_OK;
    }
  }
  return aoq_err(AOQ_EFORMAT, "unknown safetensors dtype \"%.32s\"", name);
}

/* ------------------------------------------------------------------------------------------- */
/* Reader                                                                                      */
/* ------------------------------------------------------------------------------------------- */

static void st_free_contents(aoq_st_file *f) {
  if (f->owns_names) {
    for (size_t i = 0; i < f->count; i++) free((char *)f->tensors[i].name);
  }
  free(f->tensors);
  for (size_t i = 0; i < f->nmeta; i++) {
    free(f->meta[i].key);
    free(f->meta[i].value);
  }
  free(f->meta);
  for (size_t i = 0; i < f->nshards; i++) aoq_st_close(f->shards[i]);
  free(f->shards);
  if (f->map) munmap(f->map, f->map_len);
  free(f->label);
}

void aoq_st_close(aoq_st_file *f) {
  if (!f) return;
  st_free_contents(f);
  free(f);
}

/* A JSON number that is an exact non-negative integer representable in a double. */
static int st_json_uint(const cJSON *j, uint64_t *out) {
  if (!cJSON_IsNumber(j)) return 0;
  double d = j->valuedouble;
  /* written so that NaN fails every comparison */
  if (!(d >= 0.0 && d <= ST_MAX_JSON_INT)) return 0;
  uint64_t u = (uint64_t)d;
  if ((double)u != d) return 0;
  *out = u;
  return 1;
}

static int st_cmp_tensor_name(const void *a, const void *b) {
  return strcmp(((const aoq_st_tensor *)a)->name, ((const aoq_st_tensor *)b)->name);
}

int aoq_st_cmp_meta_key(const void *a, const void *b) {
  return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key);
}

typedef struct st_span {
  uint64_t begin, end;
  size_t idx;
} st_span;

static int st_cmp_span(const void *a, const void *b) {
  const st_span *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

static aoq_status st_parse_metadata(aoq_st_file *f, const cJSON *m) {
  const char *L = f->label;
  if (!cJSON_IsObject(m)) return aoq_err(AOQ_EFORMAT, "%s: __metadata__ is not a JSON object", L);
  size_t n = (size_t)cJSON_GetArraySize(m);
  f->meta = aoq_st_calloc(n, sizeof *f->meta);
  if (!f->meta) return st_oom(L);
  for (const cJSON *e = m->child; e; e = e->next) {
    if (!cJSON_IsString(e) || !e->valuestring)
      return aoq_err(AOQ_EFORMAT, "%s: __metadata__[\"%.*s\"] is not a string", L, ST_NAME_SHOWN,
                     e->string ? e->string : "");
    if (!e->string) return aoq_err(AOQ_EFORMAT, "%s: __metadata__ entry without a key", L);
    st_meta *kv = &f->meta[f->nmeta];
    kv->key = aoq_st_strdup(e->string);
    kv->value = kv->key ? aoq_st_strdup(e->valuestring) : NULL;
    if (!kv->key || !kv->value) {
      free(kv->key);
      kv->key = NULL;
      return st_oom(L);
    }
    f->nmeta++;
  }
  qsort(f->meta, f->nmeta, sizeof *f->meta, aoq_st_cmp_meta_key);
  for (size_t i = 1; i < f->nmeta; i++) {
    if (strcmp(f->meta[i - 1].key, f->meta[i].key) == 0)
      return aoq_err(AOQ_EFORMAT, "%s: __metadata__ key \"%.*s\" appears twice", L, ST_NAME_SHOWN,
                     f->meta[i].key);
  }
  return AOQ_OK;
}

/* Validates one tensor entry and fills t (except name and data) and its byte offsets. */
static aoq_status st_parse_entry(const char *L, const cJSON *e, uint64_t data_len, aoq_st_tensor *t,
                                 uint64_t *begin, uint64_t *end) {
  const char *nm = e->string;
  if (!cJSON_IsObject(e))
    return aoq_err(AOQ_EFORMAT, "%s: tensor \"%.*s\": entry is not a JSON object", L, ST_NAME_SHOWN,
                   nm);
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
  const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
  const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
  if (!cJSON_IsString(dt) || !dt->valuestring)
    return aoq_err(AOQ_EFORMAT, "%s: tensor \"%.*s\": dtype missing or not a string", L,
                   ST_NAME_SHOWN, nm);
  /* safetensors' "F4" counts 4-bit elements; aoq's F4_E2M1X2 counts bytes of two codes */
  int f4 = strcmp(dt->valuestring, "F4") == 0;
  if (f4)
    t->dtype = AOQ_DTYPE_F4_E2M1X2;
  else if (aoq_st_dtype_parse(dt->valuestring, &t->dtype) != AOQ_OK)
    return aoq_err(AOQ_EFORMAT, "%s: tensor \"%.*s\": unknown dtype \"%.32s\"", L, ST_NAME_SHOWN,
                   nm, dt->valuestring);
  if (!cJSON_IsArray(shape))
    return aoq_err(AOQ_EFORMAT, "%s: tensor \"%.*s\": shape missing or not an array", L,
                   ST_NAME_SHOWN, nm);
  int nd = cJSON_GetArraySize(shape);
  if (nd > AOQ_ST_MAX_DIMS)
    return aoq_err(AOQ_EFORMAT, "%s: tensor \"%.*s\": shape has %d dims, at most %d allowed", L,
                   ST_NAME_SHOWN, nm, nd, AOQ_ST_MAX_DIMS);
  t->ndim = nd;
  uint64_t elems = 1;
  int overflow = 0, d = 0;
  for (const cJSON *s = shape->child; s; s = s->next, d++) {
    uint64_t v;
    if (!st_json_uint(s, &v))
      return aoq_err(AOQ_EFORMAT, "%s: tensor \"%.*s\": shape[%d] is not a non-negative integer", L,
                     ST_NAME_SHOWN, nm, d);
    t->shape[d] = (int64_t)v;
    if (__builtin_mul_overflow(elems, v, &elems)) overflow = 1;
  }
  if (f4) {
    /* torch's float4_e2m1fn_x2 view: the last dim holds codes, two per byte */
    if (nd == 0 || t->shape[nd - 1] % 2 != 0)
      return aoq_err(AOQ_EFORMAT,
                     "%s: tensor \"%.*s\": F4 needs an even last dim (two codes per byte)", L,
                     ST_NAME_SHOWN, nm);
    t->shape[nd - 1] /= 2;
    elems /= 2;
  }
  uint64_t nbytes = 0;
  if (overflow || __builtin_mul_overflow(elems, (uint64_t)aoq_dtype_size(t->dtype), &nbytes) ||
      nbytes > SIZE_MAX)
    return aoq_err(AOQ_EFORMAT, "%s: tensor \"%.*s\": shape product overflows", L, ST_NAME_SHOWN,
                   nm);
  t->nbytes = (size_t)nbytes;
  if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
    return aoq_err(AOQ_EFORMAT, "%s: tensor \"%.*s\": data_offsets must be an array [begin, end]",
                   L, ST_NAME_SHOWN, nm);
  if (!st_json_uint(offs->child, begin) || !st_json_uint(offs->child->next, end))
    return aoq_err(AOQ_EFORMAT, "%s: tensor \"%.*s\": data_offsets are not non-negative integers",
                   L, ST_NAME_SHOWN, nm);
  if (*begin > *end)
    return aoq_err(AOQ_EFORMAT, "%s: tensor \"%.*s\": data_offsets begin %llu > end %llu", L,
                   ST_NAME_SHOWN, nm, (unsigned long long)*begin, (unsigned long long)*end);
  if (*end > data_len)
    return aoq_err(AOQ_EFORMAT,
                   "%s: tensor \"%.*s\": data_offsets end %llu beyond the data section (%llu "
                   "bytes; file truncated?)",
                   L, ST_NAME_SHOWN, nm, (unsigned long long)*end, (unsigned long long)data_len);
  if (*end - *begin != nbytes)
    return aoq_err(AOQ_EFORMAT,
                   "%s: tensor \"%.*s\": data_offsets span %llu bytes but %s shape needs %llu", L,
                   ST_NAME_SHOWN, nm, (unsigned long long)(*end - *begin), aoq_dtype_name(t->dtype),
                   (unsigned long long)nbytes);
  return AOQ_OK;
}

/* Parses and validates the image buf[0..len) into f (whose label is set). On error f holds
 * partial results that st_free_contents releases. */
static aoq_status st_parse(aoq_st_file *f, const uint8_t *buf, size_t len) {
  const char *L = f->label;
  if (len < 8)
    return aoq_err(AOQ_EFORMAT, "%s: %zu bytes is too short for a safetensors header length", L,
                   len);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
  if (hlen > len - 8)
    return aoq_err(AOQ_EFORMAT, "%s: header length %llu exceeds the %zu bytes after it", L,
                   (unsigned long long)hlen, len - 8);
  if (hlen > ST_MAX_HEADER)
    return aoq_err(AOQ_EFORMAT, "%s: header length %llu exceeds the limit of %llu", L,
                   (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
  if (hlen < 2)
    return aoq_err(AOQ_EFORMAT, "%s: header length %llu is too short for JSON", L,
                   (unsigned long long)hlen);
  const char *hdr = (const char *)buf + 8;
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
  if (!root) {
    size_t at = end && end >= hdr ? (size_t)(end - hdr) : 0;
    return aoq_err(AOQ_EFORMAT, "%s: header is not valid JSON (near byte %zu of %llu)", L, at,
                   (unsigned long long)hlen);
  }
  aoq_status st = AOQ_OK;
  st_span *spans = NULL;
  /* The writer pads the header with spaces; anything else after the JSON value is garbage. */
  for (const char *p = end; p < hdr + hlen; p++) {
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
      st = aoq_err(AOQ_EFORMAT, "%s: junk after the JSON header at byte %zu", L, (size_t)(p - hdr));
      goto out;
    }
  }
  if (!cJSON_IsObject(root)) {
    st = aoq_err(AOQ_EFORMAT, "%s: header is not a JSON object", L);
    goto out;
  }
  size_t n = 0;
  const cJSON *meta = NULL;
  for (const cJSON *e = root->child; e; e = e->next) {
    if (!e->string) {
      st = aoq_err(AOQ_EFORMAT, "%s: header entry without a name", L);
      goto out;
    }
    if (strcmp(e->string, "__metadata__") == 0) {
      if (meta) {
        st = aoq_err(AOQ_EFORMAT, "%s: __metadata__ appears twice", L);
        goto out;
      }
      meta = e;
    } else {
      n++;
    }
  }
  if (meta && (st = st_parse_metadata(f, meta)) != AOQ_OK) goto out;
  uint64_t data_len = (uint64_t)(len - 8) - hlen;
  const uint8_t *data = buf + 8 + hlen;
  f->tensors = aoq_st_calloc(n, sizeof *f->tensors);
  spans = aoq_st_calloc(n, sizeof *spans);
  if (!f->tensors || !spans) {
    st = st_oom(L);
    goto out;
  }
  f->owns_names = 1;
  for (const cJSON *e = root->child; e; e = e->next) {
    if (e == meta) continue;
    aoq_st_tensor *t = &f->tensors[f->count];
    st_span *sp = &spans[f->count];
    if ((st = st_parse_entry(L, e, data_len, t, &sp->begin, &sp->end)) != AOQ_OK) goto out;
    t->name = aoq_st_strdup(e->string);
    if (!t->name) {
      st = st_oom(L);
      goto out;
    }
    t->data = data + sp->begin;
    sp->idx = f->count;
    f->count++;
  }
  qsort(spans, n, sizeof *spans, st_cmp_span);
  for (size_t i = 1; i < n; i++) {
    if (spans[i].begin < spans[i - 1].end) {
      st = aoq_err(
          AOQ_EFORMAT, "%s: tensors \"%.*s\" [%llu, %llu) and \"%.*s\" [%llu, %llu) overlap", L,
          ST_NAME_SHOWN, f->tensors[spans[i - 1].idx].name, (unsigned long long)spans[i - 1].begin,
          (unsigned long long)spans[i - 1].end, ST_NAME_SHOWN, f->tensors[spans[i].idx].name,
          (unsigned long long)spans[i].begin, (unsigned long long)spans[i].end);
      goto out;
    }
  }
  qsort(f->tensors, f->count, sizeof *f->tensors, st_cmp_tensor_name);
  for (size_t i = 1; i < f->count; i++) {
    if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0) {
      st = aoq_err(AOQ_EFORMAT, "%s: tensor \"%.*s\" appears twice", L, ST_NAME_SHOWN,
                   f->tensors[i].name);
      goto out;
    }
  }
out:
  free(spans);
  cJSON_Delete(root);
  return st;
}

static aoq_status st_new(const char *label, aoq_st_file **out) {
  aoq_st_file *f = aoq_st_calloc(1, sizeof *f);
  if (!f) return aoq_err(AOQ_ENOMEM, "%s: out of memory", label);
  f->label = aoq_st_strdup(label);
  if (!f->label) {
    free(f);
    return aoq_err(AOQ_ENOMEM, "%s: out of memory", label);
  }
  *out = f;
  return AOQ_OK;
}

aoq_status aoq_st_open_memory(const void *data, size_t len, aoq_st_file **out) {
  if (!out) return aoq_err(AOQ_EINVAL, "aoq_st_open_memory: out is NULL");
  *out = NULL;
  if (!data && len) return aoq_err(AOQ_EINVAL, "aoq_st_open_memory: data is NULL");
  aoq_st_file *f = NULL;
  AOQ_TRY(st_new("<memory>", &f));
  aoq_status st = st_parse(f, data ? data : "", data ? len : 0);
  if (st != AOQ_OK) {
    aoq_st_close(f);
    return st;
  }
  *out = f;
  return AOQ_OK;
}

static aoq_status st_open_single(const char *path, aoq_st_file **out) {
  /* O_NONBLOCK: opening a FIFO must not hang; it is refused below as not a regular file */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return aoq_err(AOQ_EIO, "%s: open: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    int e = errno;
    close(fd);
    return aoq_err(AOQ_EIO, "%s: fstat: %s", path, strerror(e));
  }
  if (!S_ISREG(sb.st_mode)) {
    close(fd);
    return aoq_err(AOQ_EIO, "%s: not a regular file", path);
  }
  if (sb.st_size < 8) {
    close(fd);
    return aoq_err(AOQ_EFORMAT, "%s: %lld bytes is too short for a safetensors header length", path,
                   (long long)sb.st_size);
  }
  if ((unsigned long long)sb.st_size > SIZE_MAX) {
    close(fd);
    return aoq_err(AOQ_EIO, "%s: file too large to map", path);
  }
  size_t len = (size_t)sb.st_size;
  void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd);
  if (map == MAP_FAILED)
    return aoq_err(AOQ_EIO, "%s: mmap of %zu bytes: %s", path, len, strerror(e));
  aoq_st_file *f = NULL;
  aoq_status st = st_new(path, &f);
  if (st != AOQ_OK) {
    munmap(map, len);
    return st;
  }
  f->map = map;
  f->map_len = len;
  if ((st = st_parse(f, map, len)) != AOQ_OK) {
    aoq_st_close(f);
    return st;
  }
  *out = f;
  return AOQ_OK;
}


static int st_is_dir(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int st_exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

static int st_ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

static aoq_status st_join(const char *dir, const char *name, char **out) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = aoq_st_malloc(n);
  if (!p) return aoq_err(AOQ_ENOMEM, "%s: out of memory", dir);
  snprintf(p, n, "%s/%s", dir, name);
  *out = p;
  return AOQ_OK;
}

/* The metadata of a sharded checkpoint: the union over its shards; of two shards with the same
 * key, the first by file name wins. Strings are copied so that the parent owns its table. */
static int st_cmp_file_label(const void *a, const void *b) {
  return strcmp((*(aoq_st_file *const *)a)->label, (*(aoq_st_file *const *)b)->label);
}

static aoq_status st_merge_meta(aoq_st_file *f) {
  size_t total = 0;
  for (size_t s = 0; s < f->nshards; s++) total += f->shards[s]->nmeta;
  f->meta = aoq_st_calloc(total, sizeof *f->meta);
  if (!f->meta) return st_oom(f->label);
  /* shards in file-name order (model-00001-of-... first); all labels share the folder prefix */
  if (f->nshards) qsort(f->shards, f->nshards, sizeof *f->shards, st_cmp_file_label);
  for (size_t s = 0; s < f->nshards; s++) {
    const aoq_st_file *sh = f->shards[s];
    for (size_t i = 0; i < sh->nmeta; i++) {
      /* metadata tables are small: a linear scan is fine */
      int seen = 0;
      for (size_t j = 0; j < f->nmeta && !seen; j++)
        seen = !strcmp(f->meta[j].key, sh->meta[i].key);
      if (seen) continue;
      st_meta *kv = &f->meta[f->nmeta];
      kv->key = aoq_st_strdup(sh->meta[i].key);
      kv->value = kv->key ? aoq_st_strdup(sh->meta[i].value) : NULL;
      if (!kv->value) {
        free(kv->key);
        kv->key = NULL;
        return st_oom(f->label);
      }
      f->nmeta++;
    }
  }
  if (f->nmeta) qsort(f->meta, f->nmeta, sizeof *f->meta, aoq_st_cmp_meta_key);
  return AOQ_OK;
}

/* Opens a sharded checkpoint from its index.json; dir is the folder that holds the shards. */
static aoq_status st_open_index(const char *index_path, const char *dir, aoq_st_file **out) {
  char *text = NULL;
  aoq_status rs = aoq_file_read(index_path, ST_MAX_INDEX, &text, NULL);
  if (rs == AOQ_ENOTFOUND) rs = AOQ_EIO; /* this module's contract: open failures are EIO */
  if (rs != AOQ_OK) return rs;
  cJSON *root = cJSON_Parse(text);
  free(text);
  if (!root) return aoq_err(AOQ_EFORMAT, "%s: not valid JSON", index_path);
  aoq_st_file *f = NULL;
  char **shard_names = NULL;
  char *shard_path = NULL;
  aoq_status st = AOQ_OK;
  const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
  if (!cJSON_IsObject(root) || !cJSON_IsObject(wm)) {
    st = aoq_err(AOQ_EFORMAT, "%s: no \"weight_map\" object", index_path);
    goto fail;
  }
  if ((st = st_new(index_path, &f)) != AOQ_OK) goto fail;
  size_t n = (size_t)cJSON_GetArraySize(wm);
  f->tensors = aoq_st_calloc(n, sizeof *f->tensors);
  shard_names = aoq_st_calloc(n, sizeof *shard_names);
  f->shards = aoq_st_calloc(n, sizeof *f->shards);
  if (!f->tensors || !shard_names || !f->shards) {
    st = aoq_err(AOQ_ENOMEM, "%s: out of memory", index_path);
    goto fail;
  }
  f->owns_names = 0; /* names point into the shards */
  for (const cJSON *e = wm->child; e; e = e->next) {
    const char *tname = e->string ? e->string : "";
    if (!cJSON_IsString(e) || !e->valuestring) {
      st = aoq_err(AOQ_EFORMAT, "%s: weight_map[\"%.*s\"] is not a string", index_path,
                   ST_NAME_SHOWN, tname);
      goto fail;
    }
    const char *sname = e->valuestring;
    /* Shards live next to the index: no paths, so an index cannot point elsewhere. */
    if (!*sname || strchr(sname, '/') || strcmp(sname, ".") == 0 || strcmp(sname, "..") == 0) {
      st = aoq_err(AOQ_EFORMAT, "%s: weight_map[\"%.*s\"]: bad shard file name \"%.*s\"",
                   index_path, ST_NAME_SHOWN, tname, ST_NAME_SHOWN, sname);
      goto fail;
    }
    size_t s = 0;
    while (s < f->nshards && strcmp(shard_names[s], sname) != 0) s++;
    if (s == f->nshards) {
      if ((st = st_join(dir, sname, &shard_path)) != AOQ_OK) goto fail;
      if (!st_exists(shard_path)) {
        st = aoq_err(AOQ_EIO, "%s: weight_map[\"%.*s\"] names shard %s, which does not exist",
                     index_path, ST_NAME_SHOWN, tname, shard_path);
        goto fail;
      }
      if ((st = st_open_single(shard_path, &f->shards[s])) != AOQ_OK) goto fail;
      free(shard_path);
      shard_path = NULL;
      shard_names[s] = (char *)sname; /* borrowed from root, which outlives this loop */
      f->nshards++;
    }
    const aoq_st_tensor *t = aoq_st_find(f->shards[s], tname);
    if (!t) {
      st = aoq_err(AOQ_EFORMAT, "%s: weight_map names tensor \"%.*s\", which shard %s lacks",
                   index_path, ST_NAME_SHOWN, tname, sname);
      goto fail;
    }
    f->tensors[f->count++] = *t;
  }
  qsort(f->tensors, f->count, sizeof *f->tensors, st_cmp_tensor_name);
  for (size_t i = 1; i < f->count; i++) {
    if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0) {
      st = aoq_err(AOQ_EFORMAT, "%s: weight_map names tensor \"%.*s\" twice", index_path,
                   ST_NAME_SHOWN, f->tensors[i].name);
      goto fail;
    }
  }
  if ((st = st_merge_meta(f)) != AOQ_OK) goto fail;
  free(shard_names);
  cJSON_Delete(root);
  *out = f;
  return AOQ_OK;
fail:
  free(shard_path);
  free(shard_names);
  aoq_st_close(f);
  cJSON_Delete(root);
  return st;
}

aoq_status aoq_st_open(const char *path, aoq_st_file **out) {
  if (!out) return aoq_err(AOQ_EINVAL, "aoq_st_open: out is NULL");
  *out = NULL;
  if (!path || !*path) return aoq_err(AOQ_EINVAL, "aoq_st_open: empty path");
  if (st_is_dir(path)) {
    char *p = NULL;
    AOQ_TRY(st_join(path, "model.safetensors.index.json", &p));
    aoq_status st;
    if (st_exists(p)) {
      st = st_open_index(p, path, out);
    } else {
      free(p);
      p = NULL;
      AOQ_TRY(st_join(path, "model.safetensors", &p));
      if (!st_exists(p)) {
        free(p);
        return aoq_err(AOQ_EIO,
                       "%s: directory holds neither model.safetensors.index.json nor "
                       "model.safetensors",
                       path);
      }
      st = st_open_single(p, out);
    }
    free(p);
    return st;
  }
  if (st_ends_with(path, ".json")) {
    char *dir = aoq_st_strdup(path);
    if (!dir) return aoq_err(AOQ_ENOMEM, "%s: out of memory", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) {
      slash[1] = 0;
    } else if (slash) {
      *slash = 0;
    } else {
      dir[0] = '.';
      dir[1] = 0;
    }
    aoq_status st = st_open_index(path, dir, out);
    free(dir);
    return st;
  }
  return st_open_single(path, out);
}

size_t aoq_st_count(const aoq_st_file *f) {
  return f ? f->count : 0;
}

const aoq_st_tensor *aoq_st_at(const aoq_st_file *f, size_t i) {
  return f && i < f->count ? &f->tensors[i] : NULL;
}

const aoq_st_tensor *aoq_st_find(const aoq_st_file *f, const char *name) {
  if (!f || !name) return NULL;
  size_t lo = 0, hi = f->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(name, f->tensors[mid].name);
    if (c == 0) return &f->tensors[mid];
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return NULL;
}

static const char *st_meta_own(const aoq_st_file *f, const char *key) {
  size_t lo = 0, hi = f->nmeta;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(key, f->meta[mid].key);
    if (c == 0) return f->meta[mid].value;
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return NULL;
}

const char *aoq_st_meta(const aoq_st_file *f, const char *key) {
  return f && key ? st_meta_own(f, key) : NULL;
}

size_t aoq_st_meta_count(const aoq_st_file *f) {
  return f ? f->nmeta : 0;
}

const char *aoq_st_meta_key(const aoq_st_file *f, size_t i) {
  return f && i < f->nmeta ? f->meta[i].key : NULL;
}
