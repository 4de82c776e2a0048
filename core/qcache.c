/* qcache.c — the quantized-weight cache file (core/qcache.h). */
#include "core/qcache.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/error.h"
#include "core/safetensors.h"

struct aoq_qcache {
  aoq_st_file *f;
  aoq_format fmt;
  char **names; /* sorted weight names */
  size_t n;
};

static const char *const parts[4] = {"qdata", "scale", "zero", "aux"};

aoq_status aoq_qcache_write(const char *path, const aoq_format *f, const char *fingerprint,
                            const aoq_qcache_entry *e, size_t n) {
  if (!path || !f || !fingerprint || (!e && n))
    return aoq_err(AOQ_EINVAL, "aoq_qcache_write: NULL argument");
  char fname[96];
  aoq_format_name(f, fname, sizeof fname);
  for (size_t i = 0; i < n; i++) {
    const aoq_qweight *w = e[i].w;
    if (!e[i].name || !*e[i].name || !w)
      return aoq_err(AOQ_EINVAL, "qcache: entry %zu has no name or weight", i);
    for (size_t j = 0; j < i; j++)
      if (!strcmp(e[i].name, e[j].name))
        return aoq_err(AOQ_EINVAL, "qcache: weight '%s' given twice", e[i].name);
    if (w->kind != f->kind)
      return aoq_err(AOQ_EINVAL, "qcache: weight '%s' is kind %d, cache format %s", e[i].name,
                     (int)w->kind, fname);
    aoq_qweight plan;
    memset(&plan, 0, sizeof plan);
    AOQ_TRY(aoq_format_plan(f, w->n, w->k, &plan));
    if (plan.qdata_bytes != w->qdata_bytes || plan.scale_bytes != w->scale_bytes ||
        plan.zero_bytes != w->zero_bytes || plan.aux_bytes != w->aux_bytes)
      return aoq_err(AOQ_ESHAPE,
                     "qcache: weight '%s' [%lld, %lld] buffer sizes differ from the %s plan",
                     e[i].name, (long long)w->n, (long long)w->k, fname);
  }
  aoq_st_writer *wr;
  AOQ_TRY(aoq_st_writer_new(&wr));
  aoq_status s = AOQ_OK;
  char key[512], val[64];
  s = aoq_st_writer_meta(wr, "aoq.version", AOQ_VERSION_STRING);
  if (!s) s = aoq_st_writer_meta(wr, "aoq.cache_layout", AOQ_QCACHE_LAYOUT);
  if (!s) s = aoq_st_writer_meta(wr, "aoq.format", fname);
  if (!s) s = aoq_st_writer_meta(wr, "aoq.fingerprint", fingerprint);
  for (size_t i = 0; i < n && !s; i++) {
    const aoq_qweight *w = e[i].w;
    const void *ptrs[4] = {w->qdata, w->scale, w->zero, w->aux};
    const size_t bytes[4] = {w->qdata_bytes, w->scale_bytes, w->zero_bytes, w->aux_bytes};
    for (int j = 0; j < 4 && !s; j++) {
      if (!bytes[j]) continue;
      if (!ptrs[j]) {
        s = aoq_err(AOQ_EINVAL, "qcache: weight '%s' has no %s buffer", e[i].name, parts[j]);
        break;
      }
      if ((size_t)snprintf(key, sizeof key, "%s.%s", e[i].name, parts[j]) >= sizeof key) {
        s = aoq_err(AOQ_EINVAL, "qcache: weight name '%.64s...' too long", e[i].name);
        break;
      }
      int64_t shape[1] = {(int64_t)bytes[j]};
      s = aoq_st_writer_add(wr, key, AOQ_DTYPE_U8, 1, shape, ptrs[j], bytes[j]);
    }
    if (s) break;
    snprintf(key, sizeof key, "%s.shape", e[i].name);
    snprintf(val, sizeof val, "%" PRId64 " %" PRId64, w->n, w->k);
    s = aoq_st_writer_meta(wr, key, val);
  }
  if (s) {
    aoq_st_writer_free(wr);
    return s;
  }
  return aoq_st_writer_finish(wr, path);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void aoq_qcache_close(aoq_qcache *c) {
  if (!c) return;
  for (size_t i = 0; i < c->n; i++) free(c->names[i]);
  free(c->names);
  aoq_st_close(c->f);
  free(c);
}

aoq_status aoq_qcache_open(const char *path, const aoq_format *f, const char *fingerprint,
                           aoq_qcache **out) {
  if (!path || !f || !fingerprint || !out)
    return aoq_err(AOQ_EINVAL, "aoq_qcache_open: NULL argument");
  *out = NULL;
  struct stat sb;
  if (stat(path, &sb) != 0 && errno == ENOENT)
    return aoq_err(AOQ_ENOTFOUND, "qcache: no cache file %s", path);
  aoq_qcache *c = calloc(1, sizeof *c);
  if (!c) return aoq_err(AOQ_ENOMEM, "qcache handle");
  c->fmt = *f;
  aoq_status s = aoq_st_open(path, &c->f);
  if (s) {
    free(c);
    return s;
  }
  char fname[96];
  aoq_format_name(f, fname, sizeof fname);
  const char *v = aoq_st_meta(c->f, "aoq.version"), *l = aoq_st_meta(c->f, "aoq.cache_layout"),
             *fm = aoq_st_meta(c->f, "aoq.format"), *fp = aoq_st_meta(c->f, "aoq.fingerprint");
  if (!v || !l || !fm || !fp)
    s = aoq_err(AOQ_EFORMAT, "qcache: %s is not an aoq cache (metadata missing)", path);
  else if (strcmp(v, AOQ_VERSION_STRING) || strcmp(l, AOQ_QCACHE_LAYOUT))
    s = aoq_err(AOQ_EFORMAT,
                "qcache: %s was written by aoq %s (cache layout %s); this is %s (layout %s)", path,
                v, l, AOQ_VERSION_STRING, AOQ_QCACHE_LAYOUT);
  else if (strcmp(fm, fname))
    s = aoq_err(AOQ_EFORMAT, "qcache: %s holds format %s, wanted %s", path, fm, fname);
  else if (strcmp(fp, fingerprint))
    s = aoq_err(AOQ_ENOTFOUND, "qcache: %s was made from other source weights ('%s', wanted '%s')",
                path, fp, fingerprint);
  size_t cnt = aoq_st_count(c->f);
  if (!s && cnt && !(c->names = calloc(cnt, sizeof *c->names)))
    s = aoq_err(AOQ_ENOMEM, "qcache names");
  for (size_t i = 0; i < cnt && !s; i++) {
    const aoq_st_tensor *t = aoq_st_at(c->f, i);
    size_t len = strlen(t->name);
    if (len > 6 && !strcmp(t->name + len - 6, ".qdata")) {
      if (!(c->names[c->n] = malloc(len - 5))) {
        s = aoq_err(AOQ_ENOMEM, "qcache names");
        break;
      }
      memcpy(c->names[c->n], t->name, len - 6);
      c->names[c->n++][len - 6] = 0;
    }
  }
  if (s) {
    aoq_qcache_close(c);
    return s;
  }
  qsort(c->names, c->n, sizeof *c->names, cmp_str);
  *out = c;
  return AOQ_OK;
}

size_t aoq_qcache_count(const aoq_qcache *c) {
  return c ? c->n : 0;
}

const char *aoq_qcache_name(const aoq_qcache *c, size_t i) {
  return c && i < c->n ? c->names[i] : NULL;
}

aoq_status aoq_qcache_load(const aoq_qcache *c, const char *name, aoq_qweight *w) {
  if (!c || !name || !w) return aoq_err(AOQ_EINVAL, "aoq_qcache_load: NULL argument");
  char key[512];
  if ((size_t)snprintf(key, sizeof key, "%s.shape", name) >= sizeof key)
    return aoq_err(AOQ_EINVAL, "qcache: name too long");
  const char *shape = aoq_st_meta(c->f, key);
  if (!shape) return aoq_err(AOQ_ENOTFOUND, "qcache: no weight '%s'", name);
  long long n, k;
  char extra;
  if (sscanf(shape, "%lld %lld %c", &n, &k, &extra) != 2 || n <= 0 || k <= 0)
    return aoq_err(AOQ_EFORMAT, "qcache: weight '%s' has a bad shape '%s'", name, shape);
  memset(w, 0, sizeof *w);
  AOQ_TRY(aoq_format_plan(&c->fmt, n, k, w));
  const aoq_st_tensor *t[4];
  size_t want[4] = {w->qdata_bytes, w->scale_bytes, w->zero_bytes, w->aux_bytes};
  for (int j = 0; j < 4; j++) {
    snprintf(key, sizeof key, "%s.%s", name, parts[j]);
    t[j] = aoq_st_find(c->f, key);
    size_t got = t[j] ? t[j]->nbytes : 0;
    if (got != want[j])
      return aoq_err(AOQ_EFORMAT, "qcache: weight '%s' %s has %zu bytes, the plan says %zu", name,
                     parts[j], got, want[j]);
  }
  AOQ_TRY(aoq_qweight_host_alloc(w));
  void *dst[4] = {w->qdata, w->scale, w->zero, w->aux};
  for (int j = 0; j < 4; j++)
    if (want[j]) memcpy(dst[j], t[j]->data, want[j]); /* copies: file data need not be aligned */
  return AOQ_OK;
}
