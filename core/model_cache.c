/*
 * model_cache.c — a model's quantized layer linears through the quantized-weight cache
 * (core/qcache.h) when opts.cache_dir is set: the first load in a format writes
 * <cache_dir>/<model>-<format>-<fingerprint hash>.safetensors, later loads (and reconfigures to
 * that format) read it instead of quantizing. The fingerprint names the source weights: the
 * synthetic preset and seed, or the checkpoint directory with the size and mtime of its files. Only
 * uniform configs are cached (no per-layer overrides: a cache file holds one format); lm_head and
 * the bf16 tensors are always loaded from the source.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/error.h"
#include "base/log.h"
#include "core/llama_internal.h"
#include "core/qcache.h"

static const char *const k_lin_names[AOQ_LIN_PER_LAYER] = {"qkv", "o", "gate_up", "down"};

static uint64_t fnv1a(uint64_t h, const char *s) {
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
  return h;
}

/* Fingerprint of the source weights into buf. */
static void fingerprint(const aoq_model *m, char *buf, size_t len) {
  if (m->synthetic) {
    snprintf(buf, len, "synthetic:%s:%llu", m->name, (unsigned long long)m->seed);
    return;
  }
  uint64_t h = 0xcbf29ce484222325ull;
  DIR *d = opendir(m->name);
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name);
    if (!(n > 12 && !strcmp(e->d_name + n - 12, ".safetensors")) &&
        !(n > 5 && !strcmp(e->d_name + n - 5, ".json")))
      continue;
    char path[4096], rec[512];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", m->name, e->d_name);
    if (stat(path, &sb) != 0) continue;
    snprintf(rec, sizeof rec, "%s:%lld:%lld", e->d_name, (long long)sb.st_size,
             (long long)sb.st_mtime);
    h ^= fnv1a(0xcbf29ce484222325ull, rec); /* order-independent */
  }
  if (d) closedir(d);
  char *real = realpath(m->name, NULL);
  snprintf(buf, len, "checkpoint:%s:%016llx", real ? real : m->name, (unsigned long long)h);
  free(real);
}

static void cache_path(const aoq_model *m, const aoq_format *f, const char *fp, char *buf,
                       size_t len) {
  const char *base = strrchr(m->name, '/');
  base = base && base[1] ? base + 1 : m->name;
  char tag[64], fmt[32];
  size_t j = 0;
  for (const char *p = base; *p && j + 1 < sizeof tag; p++)
    tag[j++] = (char)((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                              (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'
                          ? *p
                          : '_');
  tag[j] = 0;
  aoq_format_name(f, fmt, sizeof fmt);
  snprintf(buf, len, "%s/%s-%s-%016llx.safetensors", m->cache_dir, tag, fmt,
           (unsigned long long)fnv1a(0xcbf29ce484222325ull, fp));
}

static aoq_status upload(aoq_model *m, const aoq_qweight *h, aoq_qweight *w) {
  *w = *h;
  w->qdata = w->scale = w->zero = w->aux = NULL;
  const void *hp[4] = {h->qdata, h->scale, h->zero, h->aux};
  void **dp[4] = {&w->qdata, &w->scale, &w->zero, &w->aux};
  size_t sz[4] = {h->qdata_bytes, h->scale_bytes, h->zero_bytes, h->aux_bytes};
  aoq_status s = AOQ_OK;
  for (int i = 0; i < 4 && s == AOQ_OK; i++) {
    if (!sz[i]) continue;
    s = aoq_dev_alloc(m->dev, sz[i], dp[i]);
    if (s == AOQ_OK) s = aoq_dev_copy_h2d(m->dev, *dp[i], hp[i], sz[i], NULL);
  }
  if (s == AOQ_OK) s = aoq_dev_stream_sync(m->dev, NULL);
  if (s != AOQ_OK) aoq_qweight_dev_free(m->dev, w);
  return s;
}

aoq_status aoq_model_cache_load(aoq_model *m, const aoq_format *f, aoq_model_weights *w,
                                bool *hit) {
  *hit = false;
  if (!m->cache_dir[0] || m->ovr) return AOQ_OK;
  char fp[4608], path[4096 + 256];
  fingerprint(m, fp, sizeof fp);
  cache_path(m, f, fp, path, sizeof path);
  aoq_qcache *c = NULL;
  aoq_status s = aoq_qcache_open(path, f, fp, &c);
  if (s != AOQ_OK) {
    if (s != AOQ_ENOTFOUND)
      aoq_log(AOQ_LOG_WARN, "model %s: ignoring quantized-weight cache %s: %s", m->name, path,
              aoq_last_error());
    aoq_err_clear();
    return AOQ_OK;
  }
  const aoq_model_config *cfg = &m->cfg;
  int64_t hd = cfg->head_dim, H = cfg->hidden_size, I = cfg->intermediate_size;
  const int64_t want_n[AOQ_LIN_PER_LAYER] = {(cfg->n_heads + 2 * cfg->n_kv_heads) * hd, H, 2 * I,
                                             H};
  const int64_t want_k[AOQ_LIN_PER_LAYER] = {H, cfg->n_heads * hd, H, I};
  for (int l = 0; l < cfg->n_layers && s == AOQ_OK; l++)
    for (int kind = 0; kind < AOQ_LIN_PER_LAYER && s == AOQ_OK; kind++) {
      char name[64];
      snprintf(name, sizeof name, "layers.%d.%s", l, k_lin_names[kind]);
      aoq_qweight h = {0};
      s = aoq_qcache_load(c, name, &h);
      if (s == AOQ_OK && (h.n != want_n[kind] || h.k != want_k[kind] || h.kind != f->kind))
        s = aoq_err(AOQ_EFORMAT, "cache %s: %s is [%lld, %lld], expected [%lld, %lld]", path, name,
                    (long long)h.n, (long long)h.k, (long long)want_n[kind],
                    (long long)want_k[kind]);
      aoq_qweight *q = &w->lin[l * AOQ_LIN_PER_LAYER + kind];
      if (s == AOQ_OK) s = upload(m, &h, q);
      if (s == AOQ_OK) w->bytes += q->qdata_bytes + q->scale_bytes + q->zero_bytes + q->aux_bytes;
      if (h.qdata || h.scale || h.zero || h.aux) aoq_qweight_host_free(&h);
    }
  aoq_qcache_close(c);
  if (s == AOQ_EFORMAT || s == AOQ_ENOTFOUND) { /* a stale or partial cache: rebuild it */
    aoq_log(AOQ_LOG_WARN, "model %s: rebuilding quantized-weight cache %s: %s", m->name, path,
            aoq_last_error());
    aoq_err_clear();
    for (int i = 0; i < cfg->n_layers * AOQ_LIN_PER_LAYER; i++)
      aoq_qweight_dev_free(m->dev, &w->lin[i]);
    w->bytes = 0;
    return AOQ_OK;
  }
  if (s == AOQ_OK) *hit = true;
  return s;
}

void aoq_model_cache_store(aoq_model *m, const aoq_format *f, const aoq_model_weights *w) {
  if (!m->cache_dir[0] || m->ovr) return;
  char fp[4608], path[4096 + 256];
  fingerprint(m, fp, sizeof fp);
  cache_path(m, f, fp, path, sizeof path);
  int n = m->cfg.n_layers * AOQ_LIN_PER_LAYER;
  bool host = (m->dinfo.caps & AOQ_CAP_HOST_MEMORY) != 0;
  aoq_qcache_entry *e = calloc((size_t)n, sizeof *e);
  aoq_qweight *h = host ? NULL : calloc((size_t)n, sizeof *h);
  char(*names)[64] = calloc((size_t)n, sizeof *names);
  aoq_status s = e && names && (host || h) ? AOQ_OK : aoq_err(AOQ_ENOMEM, "out of memory");
  int copied = 0;
  for (int i = 0; i < n && s == AOQ_OK; i++) {
    snprintf(names[i], sizeof names[i], "layers.%d.%s", i / AOQ_LIN_PER_LAYER,
             k_lin_names[i % AOQ_LIN_PER_LAYER]);
    e[i].name = names[i];
    if (host) {
      e[i].w = &w->lin[i];
      continue;
    }
    h[i] = w->lin[i];
    if ((s = aoq_qweight_host_alloc(&h[i])) != AOQ_OK) break;
    copied++;
    const void *dp[4] = {w->lin[i].qdata, w->lin[i].scale, w->lin[i].zero, w->lin[i].aux};
    void *hp[4] = {h[i].qdata, h[i].scale, h[i].zero, h[i].aux};
    size_t sz[4] = {h[i].qdata_bytes, h[i].scale_bytes, h[i].zero_bytes, h[i].aux_bytes};
    for (int b = 0; b < 4 && s == AOQ_OK; b++)
      if (sz[b]) s = aoq_dev_copy_d2h(m->dev, hp[b], dp[b], sz[b], NULL);
    if (s == AOQ_OK) s = aoq_dev_stream_sync(m->dev, NULL);
    e[i].w = &h[i];
  }
  if (s == AOQ_OK) s = aoq_qcache_write(path, f, fp, e, (size_t)n);
  if (s != AOQ_OK)
    aoq_log(AOQ_LOG_WARN, "model %s: could not write quantized-weight cache %s: %s", m->name, path,
            aoq_last_error());
  for (int i = 0; i < copied; i++) aoq_qweight_host_free(&h[i]);
  free(h);
  free(e);
  free(names);
}
