/*
 * model.c — a Llama model on one device (core/model.h): configuration and source weights (HF
 * checkpoint kept mmapped, or synthetic), quantized weight sets built layer by layer with
 * aoq_qweight_quantize, the paged KV pool with its free list and sequences, single linears,
 * and two-phase reconfiguration. The forward step itself is in core/llama.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/error.h"
#include "base/log.h"
#include "base/numerics.h"
#include "core/llama_internal.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------------------------------
 * Source weights: bf16 rows of a checkpoint tensor (converted from F16/F32 if need be) or the
 * synthetic values of that name.
 * ---------------------------------------------------------------------------------------- */

static aoq_status fetch(aoq_model *m, const char *name, int ndim, int64_t d0, int64_t d1,
                        uint16_t *dst) {
  int64_t rows = ndim == 1 ? 1 : d0, cols = ndim == 1 ? d0 : d1;
  if (m->synthetic) {
    aoq_synth_fill(m->seed, name, dst, rows, cols);
    return AOQ_OK;
  }
  const aoq_st_tensor *t = aoq_st_find(m->st, name);
  if (!t) return aoq_err(AOQ_ENOTFOUND, "checkpoint %s has no tensor '%s'", m->name, name);
  bool shape_ok = t->ndim == ndim && t->shape[0] == d0 && (ndim == 1 || t->shape[1] == d1);
  if (!shape_ok) {
    char got[128] = "[";
    for (int i = 0; i < t->ndim; i++)
      snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "",
               (long long)t->shape[i]);
    strncat(got, "]", sizeof got - strlen(got) - 1);
    if (ndim == 1)
      return aoq_err(AOQ_ESHAPE, "tensor '%s': expected shape [%lld], got %s", name, (long long)d0,
                     got);
    return aoq_err(AOQ_ESHAPE, "tensor '%s': expected shape [%lld, %lld], got %s", name,
                   (long long)d0, (long long)d1, got);
  }
  int64_t count = rows * cols;
  if (t->dtype == AOQ_DTYPE_BF16) {
    memcpy(dst, t->data, (size_t)count * 2);
  } else if (t->dtype == AOQ_DTYPE_F32) {
    const float *s = t->data;
    for (int64_t i = 0; i < count; i++) {
      float v;
      memcpy(&v, s + i, 4);
      dst[i] = aoq_f32_to_bf16(v);
    }
  } else if (t->dtype == AOQ_DTYPE_F16) {
    const uint8_t *s = t->data;
    for (int64_t i = 0; i < count; i++) {
      uint16_t h;
      memcpy(&h, s + 2 * i, 2);
      dst[i] = aoq_f32_to_bf16(aoq_f16_to_f32(h));
    }
  } else {
    return aoq_err(AOQ_EUNSUPPORTED, "tensor '%s': dtype %s (aoq loads BF16, F16 or F32)", name,
                   aoq_dtype_name(t->dtype));
  }
  return AOQ_OK;
}

/* The checkpoint linears fused into each of a layer's device linears, and their row counts. */
static int linear_parts(const aoq_model_config *c, int kind, const char *parts[3], int64_t rows[3],
                        int64_t *k) {
  int64_t hd = c->head_dim;
  switch (kind) {
    case AOQ_LIN_QKV:
      parts[0] = "self_attn.q_proj", parts[1] = "self_attn.k_proj", parts[2] = "self_attn.v_proj";
      rows[0] = c->n_heads * hd, rows[1] = rows[2] = c->n_kv_heads * hd, *k = c->hidden_size;
      return 3;
    case AOQ_LIN_O:
      parts[0] = "self_attn.o_proj", rows[0] = c->hidden_size, *k = c->n_heads * hd;
      return 1;
    case AOQ_LIN_GATE_UP:
      parts[0] = "mlp.gate_proj", parts[1] = "mlp.up_proj";
      rows[0] = rows[1] = c->intermediate_size, *k = c->hidden_size;
      return 2;
    default:
      parts[0] = "mlp.down_proj", rows[0] = c->hidden_size, *k = c->intermediate_size;
      return 1;
  }
}

static bool fmt_equal(aoq_format a, aoq_format b) {
  return a.kind == b.kind && a.bits == b.bits && a.group == b.group;
}

static aoq_status check_device_format(aoq_model *m, const aoq_format *f, const char *layer) {
  if (m->dinfo.linear_formats & (1ull << f->kind)) return AOQ_OK;
  char buf[32];
  return aoq_err(AOQ_EUNSUPPORTED, "device %s has no linear kernel for format %s (layer %s)",
                 aoq_device_name(m->dev), aoq_format_name(f, buf, sizeof buf), layer);
}

/* Quantizes one device linear from its fused host rows. */
static aoq_status build_linear(aoq_model *m, const aoq_format *f, const char *label,
                               const uint16_t *host, int64_t n, int64_t k, aoq_qweight *w) {
  AOQ_TRY(check_device_format(m, f, label));
  aoq_status s = aoq_format_check_shape(f, n, k);
  if (s != AOQ_OK) {
    char detail[400];
    snprintf(detail, sizeof detail, "%s", aoq_last_error());
    return aoq_err(s, "layer %s [%lld, %lld]: %s", label, (long long)n, (long long)k, detail);
  }
  return aoq_model_quantize_linear(m->dev, &m->dinfo, f, host, n, k, 0, w);
}

void aoq_model_weights_free(aoq_model *m, aoq_model_weights *w) {
  if (!w) return;
  if (w->lin)
    for (int i = 0; i < w->n_layers * AOQ_LIN_PER_LAYER; i++)
      aoq_qweight_dev_free(m->dev, &w->lin[i]);
  aoq_qweight_dev_free(m->dev, &w->lm_head);
  aoq_dev_free(m->dev, w->ws);
  free(w->lin);
  free(w);
}

static uint64_t qweight_bytes(const aoq_qweight *w) {
  return w->qdata_bytes + w->scale_bytes + w->zero_bytes + w->aux_bytes;
}

/* Builds a full weight set for `config` from the kept source weights, one layer at a time. */
/* The workspace a linear needs for any row count up to max_rows: a backend's need is not
 * monotonic in the rows (split-k partials at small m, GEMM chunks at large m), so every count up
 * to 128 (where kernels switch) and max_rows itself are asked. */
static size_t linear_ws_need(aoq_device *d, const aoq_qweight *w, int64_t max_rows) {
  size_t need = aoq_dev_linear_workspace(d, w, max_rows);
  for (int64_t r = 1; r <= max_rows && r <= 128; r++) {
    size_t b = aoq_dev_linear_workspace(d, w, r);
    if (b > need) need = b;
  }
  return need;
}

static aoq_status build_weights(aoq_model *m, const char *config, aoq_model_weights **out) {
  const aoq_model_config *c = &m->cfg;
  aoq_format dflt, bf16 = {.kind = AOQ_FMT_BF16, .bits = 16, .group = 0};
  AOQ_TRY(aoq_format_parse(config ? config : "bf16", &dflt));
  aoq_model_weights *w = calloc(1, sizeof *w);
  if (!w) return aoq_err(AOQ_ENOMEM, "weight set: out of memory");
  w->n_layers = c->n_layers;
  aoq_format_name(&dflt, w->format, sizeof w->format);
  w->lin = calloc((size_t)c->n_layers * AOQ_LIN_PER_LAYER, sizeof *w->lin);
  int64_t max_elems = (int64_t)c->vocab_size * c->hidden_size;
  for (int kind = 0; kind < AOQ_LIN_PER_LAYER; kind++) {
    const char *parts[3];
    int64_t rows[3], k, n = 0;
    int np = linear_parts(c, kind, parts, rows, &k);
    for (int i = 0; i < np; i++) n += rows[i];
    if (n * k > max_elems) max_elems = n * k;
  }
  uint16_t *host = malloc((size_t)max_elems * 2);
  aoq_status s = AOQ_OK;
  if (!w->lin || !host) {
    s = aoq_err(AOQ_ENOMEM, "weight set: out of memory for %lld staging elements",
                (long long)max_elems);
    goto fail;
  }
  size_t ws = 0;
  bool hit = false;
  if ((s = aoq_model_cache_load(m, &dflt, w, &hit)) != AOQ_OK) goto fail;
  if (hit && (s = check_device_format(m, &dflt, "(cached layers)")) != AOQ_OK) goto fail;
  if (hit && m->progress) m->progress(m->progress_ctx, "cache", c->n_layers, c->n_layers + 1);
  for (int l = 0; l < c->n_layers && s == AOQ_OK && !hit; l++) {
    for (int kind = 0; kind < AOQ_LIN_PER_LAYER; kind++) {
      const char *parts[3];
      int64_t rows[3], k, n = 0;
      int np = linear_parts(c, kind, parts, rows, &k);
      char name[160], label[160];
      aoq_format f = dflt;
      for (int i = 0; i < np; i++) {
        snprintf(name, sizeof name, "model.layers.%d.%s", l, parts[i]);
        aoq_format fi = aoq_format_overrides_pick(m->ovr, name, dflt);
        if (i == 0)
          f = fi;
        else if (!fmt_equal(f, fi)) {
          s = aoq_err(AOQ_EINVAL,
                      "overrides: %s and model.layers.%d.%s are fused into one linear "
                      "and must share a format",
                      name, l, parts[0]);
          goto fail;
        }
        snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, parts[i]);
        if ((s = fetch(m, name, 2, rows[i], k, host + n * k)) != AOQ_OK) goto fail;
        n += rows[i];
      }
      snprintf(label, sizeof label, "model.layers.%d.%s%s", l, parts[0], np > 1 ? "(fused)" : "");
      aoq_qweight *q = &w->lin[l * AOQ_LIN_PER_LAYER + kind];
      if ((s = build_linear(m, &f, label, host, n, k, q)) != AOQ_OK) goto fail;
      w->bytes += qweight_bytes(q);
      aoq_model_mem_sample(m);
    }
    if (m->progress) m->progress(m->progress_ctx, "quantize", l + 1, c->n_layers + 1);
  }
  for (int i = 0; i < c->n_layers * AOQ_LIN_PER_LAYER; i++) {
    size_t b = linear_ws_need(m->dev, &w->lin[i], m->max_tokens);
    if (b > ws) ws = b;
  }
  {
    aoq_format f = aoq_format_overrides_pick(m->ovr, "lm_head", bf16);
    const char *src = c->tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
    if ((s = fetch(m, src, 2, c->vocab_size, c->hidden_size, host)) != AOQ_OK) goto fail;
    if ((s = build_linear(m, &f, "lm_head", host, c->vocab_size, c->hidden_size, &w->lm_head)))
      goto fail;
    w->bytes += qweight_bytes(&w->lm_head);
    aoq_model_mem_sample(m);
    size_t b = linear_ws_need(m->dev, &w->lm_head, m->max_seqs);
    if (b > ws) ws = b;
    if (m->progress) m->progress(m->progress_ctx, "quantize", c->n_layers + 1, c->n_layers + 1);
  }
  if (!hit) aoq_model_cache_store(m, &dflt, w);
  if (ws && (s = aoq_dev_alloc(m->dev, ws, &w->ws)) != AOQ_OK) goto fail;
  w->ws_bytes = ws;
  aoq_model_mem_sample(m);
  free(host);
  *out = w;
  return AOQ_OK;
fail:
  free(host);
  aoq_model_weights_free(m, w);
  return s;
}

/* ------------------------------------------------------------------------------------------
 * Load
 * ---------------------------------------------------------------------------------------- */

static aoq_status to_device(aoq_model *m, const uint16_t *host, size_t bytes, void **dev) {
  AOQ_TRY(aoq_dev_alloc(m->dev, bytes, dev));
  AOQ_TRY(aoq_dev_copy_h2d(m->dev, *dev, host, bytes, NULL));
  return aoq_dev_stream_sync(m->dev, NULL);
}

static aoq_status upload_bf16(aoq_model *m, const char *name, int ndim, int64_t d0, int64_t d1,
                              uint16_t *host, void **dev) {
  AOQ_TRY(fetch(m, name, ndim, d0, d1, host));
  return to_device(m, host, (size_t)d0 * (size_t)(ndim == 1 ? 1 : d1) * 2, dev);
}

/* Where the device's kernels can read registered host memory (AOQ_CAP_HOST_MAPPED), the
 * embedding table stays in host memory: a step reads one row per token (8 KB for an 8B model), so
 * the gather costs microseconds over PCIe while the table would take 1 GiB of device memory.
 * AOQ_EMBED=device keeps it on the device. */
static bool embed_on_host(const aoq_model *m) {
  const char *e = getenv("AOQ_EMBED");
  if (e && !strcmp(e, "device")) return false;
  return (m->dinfo.caps & AOQ_CAP_HOST_MAPPED) && (m->dinfo.caps & AOQ_CAP_HOST_REGISTER);
}

static aoq_status load_embedding(aoq_model *m) {
  const aoq_model_config *c = &m->cfg;
  size_t bytes = (size_t)c->vocab_size * (size_t)c->hidden_size * 2;
  m->info.embed_bytes = bytes;
  uint16_t *t = NULL;
  if (posix_memalign((void **)&t, 4096, bytes))
    return aoq_err(AOQ_ENOMEM, "embedding: out of memory");
  aoq_status s = fetch(m, "model.embed_tokens.weight", 2, c->vocab_size, c->hidden_size, t);
  if (s == AOQ_OK && embed_on_host(m)) {
    if (aoq_dev_host_register(m->dev, t, bytes) == AOQ_OK) {
      m->embed_host = t;
      m->embed = t;
      m->info.embed_on_host = true;
      return AOQ_OK;
    }
    /* pinning can fail (memlock limits, no IOMMU mapping): the table goes to the device */
    AOQ_WARN("embedding table not pinned, kept on the device|bytes=%zu error=\"%s\"", bytes,
             aoq_last_error());
    aoq_err_clear();
  }
  if (s == AOQ_OK) s = to_device(m, t, bytes, &m->embed);
  free(t);
  return s;
}

static aoq_status load_resident(aoq_model *m) {
  const aoq_model_config *c = &m->cfg;
  int64_t h = c->hidden_size;
  uint16_t *host = malloc((size_t)h * 2);
  if (!host) return aoq_err(AOQ_ENOMEM, "norm staging: out of memory");
  aoq_status s = load_embedding(m);
  m->norm_attn = calloc((size_t)c->n_layers, sizeof(void *));
  m->norm_mlp = calloc((size_t)c->n_layers, sizeof(void *));
  if (s == AOQ_OK && (!m->norm_attn || !m->norm_mlp))
    s = aoq_err(AOQ_ENOMEM, "norms: out of memory");
  char name[128];
  for (int l = 0; l < c->n_layers && s == AOQ_OK; l++) {
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
    s = upload_bf16(m, name, 1, h, 0, host, &m->norm_attn[l]);
    snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
    if (s == AOQ_OK) s = upload_bf16(m, name, 1, h, 0, host, &m->norm_mlp[l]);
  }
  if (s == AOQ_OK) s = upload_bf16(m, "model.norm.weight", 1, h, 0, host, &m->norm_final);
  free(host);
  return s;
}

static aoq_status load_kv(aoq_model *m, const aoq_model_opts *o) {
  const aoq_model_config *c = &m->cfg;
  m->page_size = o->page_size > 0 ? o->page_size : 16;
  int want = o->kv_pages > 0 ? o->kv_pages : (16384 + m->page_size - 1) / m->page_size;
  int need = (m->max_tokens + m->page_size - 1) / m->page_size + 1;
  if (want < need) want = need;
  m->n_pages = want + 1; /* + the pad page 0 */
  int max_pos_blocks = (c->max_position + m->page_size - 1) / m->page_size;
  m->max_blocks = max_pos_blocks < want ? max_pos_blocks : want;
  size_t per = 0, total = 0;
  if (__builtin_mul_overflow((size_t)m->n_pages * (size_t)m->page_size,
                             (size_t)c->n_kv_heads * (size_t)c->head_dim * 2, &per) ||
      __builtin_mul_overflow(per, 2 * (size_t)c->n_layers, &total))
    return aoq_err(AOQ_ENOMEM,
                   "KV pool: %d pages of %d tokens x %d layers overflow the address space",
                   m->n_pages, m->page_size, c->n_layers);
  m->kv = calloc((size_t)c->n_layers, sizeof *m->kv);
  m->free_pages = malloc((size_t)m->n_pages * sizeof(int32_t));
  m->seqs = calloc((size_t)m->max_seqs, sizeof *m->seqs);
  if (!m->kv || !m->free_pages || !m->seqs) return aoq_err(AOQ_ENOMEM, "KV pool: out of memory");
  for (int i = 0; i < m->max_seqs; i++) {
    m->seqs[i].table = malloc((size_t)m->max_blocks * sizeof(int32_t));
    if (!m->seqs[i].table) return aoq_err(AOQ_ENOMEM, "block tables: out of memory");
  }
  AOQ_TRY(aoq_dev_alloc(m->dev, total, &m->kv_mem));
  AOQ_TRY(aoq_dev_memset(m->dev, m->kv_mem, 0, total, NULL));
  for (int l = 0; l < c->n_layers; l++) {
    m->kv[l] = (aoq_kv_cache){.k = (char *)m->kv_mem + per * 2 * (size_t)l,
                              .v = (char *)m->kv_mem + per * (2 * (size_t)l + 1),
                              .n_pages = m->n_pages,
                              .page_size = m->page_size,
                              .n_kv_heads = c->n_kv_heads,
                              .head_dim = c->head_dim,
                              .dtype = AOQ_DTYPE_BF16};
  }
  /* Free list as a stack handing out low page ids first. */
  m->n_free = 0;
  for (int p = m->n_pages - 1; p >= 1; p--) m->free_pages[m->n_free++] = p;
  m->info.kv_bytes = total;
  return AOQ_OK;
}

static bool is_dir(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static aoq_status load_config(aoq_model *m, const aoq_model_opts *o) {
  char path[4096];
  if (is_dir(o->model)) {
    AOQ_TRY(aoq_hf_config_load(o->model, &m->cfg));
    snprintf(path, sizeof path, "%s/tokenizer.json", o->model);
    struct stat sb;
    if (stat(path, &sb) == 0)
      AOQ_TRY(aoq_tokenizer_load(path, &m->tok));
    else
      AOQ_TRY(aoq_tokenizer_bytes(&m->tok));
    if (!o->synthetic) AOQ_TRY(aoq_st_open(o->model, &m->st));
    return AOQ_OK;
  }
  aoq_status s = aoq_model_preset(o->model, &m->cfg);
  if (s != AOQ_OK)
    return aoq_err(AOQ_ENOTFOUND,
                   "model '%s': neither a directory nor a preset (tiny, "
                   "llama3.1-8b)",
                   o->model);
  if (!o->synthetic)
    return aoq_err(AOQ_EINVAL,
                   "model '%s' is a preset without weights: use synthetic weights "
                   "(--synthetic) or a checkpoint directory",
                   o->model);
  return aoq_tokenizer_bytes(&m->tok);
}

/* Pool sizes come from command lines and admin requests: bound them so that page and slot
 * arithmetic (int32 KV slots = page * page_size + offset) cannot wrap. 0 or less = default. */
enum {
  MODEL_MAX_PAGE_SIZE = 1 << 16,
  MODEL_MAX_SEQS = 1 << 16,
  MODEL_MAX_BATCH_TOKENS = 1 << 20,
};

static aoq_status opts_check(const aoq_model_opts *o) {
  if (o->page_size > MODEL_MAX_PAGE_SIZE || o->max_seqs > MODEL_MAX_SEQS ||
      o->max_batch_tokens > MODEL_MAX_BATCH_TOKENS)
    return aoq_err(AOQ_EINVAL,
                   "model options: page_size %d (at most %d), max_seqs %d (at most %d), "
                   "max_batch_tokens %d (at most %d)",
                   o->page_size, MODEL_MAX_PAGE_SIZE, o->max_seqs, MODEL_MAX_SEQS,
                   o->max_batch_tokens, MODEL_MAX_BATCH_TOKENS);
  int64_t ps = o->page_size > 0 ? o->page_size : 16;
  if (o->kv_pages > 0 && ((int64_t)o->kv_pages + 2) * ps > INT32_MAX)
    return aoq_err(AOQ_EINVAL, "model options: %d KV pages of %lld tokens exceed 2^31 slots",
                   o->kv_pages, (long long)ps);
  return AOQ_OK;
}

aoq_status aoq_model_load(aoq_device *d, const aoq_model_opts *o, aoq_model **out) {
  if (!d || !o || !o->model || !out) return aoq_err(AOQ_EINVAL, "aoq_model_load: NULL argument");
  AOQ_TRY(opts_check(o));
  double t0 = now_s();
  aoq_model *m = calloc(1, sizeof *m);
  if (!m) return aoq_err(AOQ_ENOMEM, "model: out of memory");
  m->dev = d;
  snprintf(m->name, sizeof m->name, "%s", o->model);
  m->synthetic = o->synthetic;
  m->seed = o->seed;
  m->progress = o->progress, m->progress_ctx = o->progress_ctx;
  m->no_graphs = o->no_graphs;
  m->ablate = o->ablate;
  m->max_seqs = o->max_seqs > 0 ? o->max_seqs : 64;
  m->max_tokens = o->max_batch_tokens > 0 ? o->max_batch_tokens : 512;
  if (m->max_tokens < m->max_seqs) m->max_tokens = m->max_seqs;
  aoq_status s = aoq_device_info_get(d, &m->dinfo);
  m->mem_base = m->dinfo.free_memory;
  if (s == AOQ_OK) s = load_config(m, o);
  if (s == AOQ_OK && aoq_tokenizer_vocab_size(m->tok) > m->cfg.vocab_size)
    s = aoq_err(AOQ_ESHAPE, "tokenizer has %d tokens, the model's vocab_size is %d",
                aoq_tokenizer_vocab_size(m->tok), m->cfg.vocab_size);
  if (s == AOQ_OK && o->overrides) s = aoq_format_overrides_load(o->overrides, &m->ovr);
  if (o->cache_dir) snprintf(m->cache_dir, sizeof m->cache_dir, "%s", o->cache_dir);
  if (s == AOQ_OK) s = load_resident(m);
  if (s == AOQ_OK) s = build_weights(m, o->config, &m->w);
  if (s == AOQ_OK) s = load_kv(m, o);
  if (s == AOQ_OK) s = aoq_llama_alloc_state(m);
  if (s == AOQ_OK) {
    m->info.work_bytes += m->w->ws_bytes;
    aoq_model_mem_sample(m);
  }
  if (s != AOQ_OK) {
    aoq_model_free(m);
    return s;
  }
  m->info.load_seconds = now_s() - t0;
  *out = m;
  return AOQ_OK;
}

void aoq_model_mem_sample(aoq_model *m) {
  aoq_device_info i;
  if (aoq_device_info_get(m->dev, &i) != AOQ_OK || i.free_memory > m->mem_base) return;
  uint64_t used = m->mem_base - i.free_memory;
  used = used > m->info.kv_bytes ? used - m->info.kv_bytes : 0;
  if (used > m->info.load_peak_bytes) m->info.load_peak_bytes = used;
}

void aoq_model_free(aoq_model *m) {
  if (!m) return;
  aoq_llama_free_state(m);
  aoq_model_weights_free(m, m->w);
  if (m->embed_host) {
    aoq_dev_host_unregister(m->dev, m->embed_host);
    free(m->embed_host);
  } else {
    aoq_dev_free(m->dev, m->embed);
  }
  aoq_dev_free(m->dev, m->norm_final);
  for (int l = 0; l < m->cfg.n_layers; l++) {
    if (m->norm_attn) aoq_dev_free(m->dev, m->norm_attn[l]);
    if (m->norm_mlp) aoq_dev_free(m->dev, m->norm_mlp[l]);
  }
  free(m->norm_attn);
  free(m->norm_mlp);
  aoq_dev_free(m->dev, m->kv_mem);
  free(m->kv);
  free(m->free_pages);
  if (m->seqs)
    for (int i = 0; i < m->max_seqs; i++) free(m->seqs[i].table);
  free(m->seqs);
  aoq_format_overrides_free(m->ovr);
  aoq_st_close(m->st);
  aoq_tokenizer_free(m->tok);
  free(m);
}

const aoq_model_info *aoq_model_info_get(aoq_model *m) {
  if (!m) return NULL;
  m->info.name = m->name;
  m->info.cfg = m->cfg;
  snprintf(m->info.format, sizeof m->info.format, "%s", m->w->format);
  m->info.weight_bytes = m->w->bytes;
  m->info.kv_pages_total = m->n_pages - 1;
  m->info.kv_pages_free = m->n_free;
  m->info.page_size = m->page_size;
  int live = 0;
  for (int i = 0; i < m->max_seqs; i++) live += m->seqs[i].open;
  m->info.live_seqs = live;
  return &m->info;
}

const aoq_tokenizer *aoq_model_tokenizer(const aoq_model *m) {
  return m ? m->tok : NULL;
}
aoq_device *aoq_model_device(const aoq_model *m) {
  return m ? m->dev : NULL;
}

/* ------------------------------------------------------------------------------------------
 * Sequences and KV pages
 * ---------------------------------------------------------------------------------------- */

aoq_status aoq_model_seq_open(aoq_model *m, int *seq) {
  if (!m || !seq) return aoq_err(AOQ_EINVAL, "aoq_model_seq_open: NULL argument");
  for (int i = 0; i < m->max_seqs; i++)
    if (!m->seqs[i].open) {
      m->seqs[i].open = true, m->seqs[i].len = 0, m->seqs[i].pages = 0;
      *seq = i;
      return AOQ_OK;
    }
  return aoq_err(AOQ_EQUOTA, "model %s: all %d sequence slots are in use", m->name, m->max_seqs);
}

static aoq_status seq_check(const aoq_model *m, int seq) {
  if (!m) return aoq_err(AOQ_EINVAL, "NULL model");
  if (seq < 0 || seq >= m->max_seqs || !m->seqs[seq].open)
    return aoq_err(AOQ_ENOTFOUND, "sequence %d is not open", seq);
  return AOQ_OK;
}

aoq_status aoq_model_seq_grow(aoq_model *m, int seq, int tokens) {
  aoq_seq_state *q = &m->seqs[seq];
  if (tokens > m->cfg.max_position)
    return aoq_err(AOQ_EINVAL, "sequence %d: %d positions exceed max_position_embeddings %d", seq,
                   tokens, m->cfg.max_position);
  int need = (tokens + m->page_size - 1) / m->page_size;
  if (need > m->max_blocks)
    return aoq_err(AOQ_EQUOTA, "sequence %d: %d tokens need %d pages, a sequence holds at most %d",
                   seq, tokens, need, m->max_blocks);
  if (need - q->pages > m->n_free)
    return aoq_err(AOQ_EQUOTA, "KV cache: %d more pages needed, %d free", need - q->pages,
                   m->n_free);
  while (q->pages < need) q->table[q->pages++] = m->free_pages[--m->n_free];
  return AOQ_OK;
}

aoq_status aoq_model_seq_reserve(aoq_model *m, int seq, int tokens) {
  AOQ_TRY(seq_check(m, seq));
  if (tokens < 0) return aoq_err(AOQ_EINVAL, "seq_reserve: negative token count %d", tokens);
  return aoq_model_seq_grow(m, seq, tokens);
}

int aoq_model_seq_len(const aoq_model *m, int seq) {
  return m && seq >= 0 && seq < m->max_seqs && m->seqs[seq].open ? m->seqs[seq].len : -1;
}

int aoq_model_seq_pages(const aoq_model *m, int seq) {
  return m && seq >= 0 && seq < m->max_seqs && m->seqs[seq].open ? m->seqs[seq].pages : -1;
}

void aoq_model_seq_close(aoq_model *m, int seq) {
  if (!m || seq < 0 || seq >= m->max_seqs || !m->seqs[seq].open) return;
  aoq_seq_state *q = &m->seqs[seq];
  while (q->pages > 0) m->free_pages[m->n_free++] = q->table[--q->pages];
  q->open = false, q->len = 0;
}

aoq_status aoq_model_step(aoq_model *m, const aoq_step_item *items, int n, float *logits) {
  if (!m || (n > 0 && !items)) return aoq_err(AOQ_EINVAL, "aoq_model_step: NULL argument");
  return aoq_llama_step(m, items, n, NULL, NULL, logits);
}

aoq_status aoq_model_step_sample(aoq_model *m, const aoq_step_item *items, int n,
                                 aoq_sample_params *sp, int32_t *tokens, float *logits) {
  if (!m || (n > 0 && !items) || !tokens)
    return aoq_err(AOQ_EINVAL, "aoq_model_step_sample: NULL argument");
  return aoq_llama_step(m, items, n, sp, tokens, logits);
}

/* ------------------------------------------------------------------------------------------
 * Single linears
 * ---------------------------------------------------------------------------------------- */

static int64_t gcd64(int64_t a, int64_t b) {
  while (b) {
    int64_t t = a % b;
    a = b, b = t;
  }
  return a;
}

/* Resolves a checkpoint linear name to its fused device weight and its row range in it. */
static aoq_status find_linear(aoq_model *m, const char *name, aoq_qweight **w, int64_t *r0,
                              int64_t *n) {
  if (!m || !name) return aoq_err(AOQ_EINVAL, "linear: NULL argument");
  char base[192];
  snprintf(base, sizeof base, "%s", name);
  size_t bl = strlen(base);
  if (bl > 7 && !strcmp(base + bl - 7, ".weight")) base[bl - 7] = 0;
  const char *p = base;
  if (!strncmp(p, "model.", 6)) p += 6;
  if (!strcmp(p, "lm_head") || !strcmp(base, "lm_head")) {
    *w = &m->w->lm_head, *r0 = 0, *n = m->cfg.vocab_size;
    return AOQ_OK;
  }
  /* "layers.<i>." with i written as the checkpoint writes it: plain decimal digits, no sign, no
   * leading zero, below n_layers (sscanf's %d would accept " +1" and wrap 2^32 to 0). */
  int layer = -1, used = 0;
  if (!strncmp(p, "layers.", 7)) {
    const char *q = p + 7;
    int64_t v = 0;
    int digits = 0;
    for (; *q >= '0' && *q <= '9' && digits < 10; q++, digits++) v = v * 10 + (*q - '0');
    if (digits > 0 && *q == '.' && !(digits > 1 && p[7] == '0') && v < m->cfg.n_layers)
      layer = (int)v, used = (int)(q + 1 - p);
  }
  if (layer >= 0) {
    for (int kind = 0; kind < AOQ_LIN_PER_LAYER; kind++) {
      const char *parts[3];
      int64_t rows[3], k, off = 0;
      int np = linear_parts(&m->cfg, kind, parts, rows, &k);
      for (int i = 0; i < np; off += rows[i], i++)
        if (!strcmp(p + used, parts[i])) {
          *w = &m->w->lin[layer * AOQ_LIN_PER_LAYER + kind], *r0 = off, *n = rows[i];
          return AOQ_OK;
        }
    }
  }
  return aoq_err(AOQ_ENOTFOUND, "model %s has no linear layer '%s'", m->name, name);
}

aoq_status aoq_model_linear_shape(aoq_model *m, const char *name, int64_t *n, int64_t *k) {
  aoq_qweight *w;
  int64_t r0, rows;
  AOQ_TRY(find_linear(m, name, &w, &r0, &rows));
  if (n) *n = rows;
  if (k) *k = w->k;
  return AOQ_OK;
}

aoq_status aoq_model_linear(aoq_model *m, const char *name, const uint16_t *x, uint16_t *y,
                            int64_t rows, int64_t *n_out, int64_t *k_out) {
  return aoq_model_linear_mem(m, name, x, false, y, false, rows, n_out, k_out);
}

aoq_status aoq_model_logits_to_device(aoq_model *m, int row, void *dst) {
  if (!m || !dst || row < 0 || row >= m->max_seqs)
    return aoq_err(AOQ_EINVAL, "logits_to_device: bad row %d or NULL argument", row);
  /* straight from the step's bf16 logits (the step converts to fp32 only for a host copy) */
  int64_t v = m->cfg.vocab_size;
  AOQ_TRY(aoq_dev_convert(m->dev, (const uint16_t *)m->logits_bf16 + (size_t)row * (size_t)v,
                          AOQ_DTYPE_BF16, dst, AOQ_DTYPE_F32, v, m->stream));
  return aoq_dev_stream_sync(m->dev, m->stream);
}

aoq_status aoq_model_linear_mem(aoq_model *m, const char *name, const void *xv, bool x_dev,
                                void *yv, bool y_dev, int64_t rows, int64_t *n_out,
                                int64_t *k_out) {
  const uint16_t *x = xv;
  uint16_t *y = yv;
  aoq_qweight *w;
  int64_t r0, n;
  AOQ_TRY(find_linear(m, name, &w, &r0, &n));
  if (n_out) *n_out = n;
  if (k_out) *k_out = w->k;
  if (rows < 0 || (rows > 0 && (!x || !y)))
    return aoq_err(AOQ_EINVAL, "linear %s: bad rows %lld or NULL buffers", name, (long long)rows);
  /* Chunks fit the run state (llama.c sizes): x in `xn`, the fused output in `gu` (or the logits
   * rows for lm_head), the gathered slice in `act`. */
  int64_t cap_out = (int64_t)m->max_tokens * aoq_llama_wide(&m->cfg);
  if (w == &m->w->lm_head) r0 = 0;
  /* The slice [r0, r0+n) of each fused output row is gathered with the embedding op over a
   * view of the output as rows of v elements, v = gcd(N, r0, n): n/v view rows per output row. */
  int64_t v = gcd64(gcd64(w->n, r0), n), per = n / v;
  int64_t chunk = m->max_tokens / per;
  if (chunk * w->n > cap_out) chunk = cap_out / w->n;
  if (w == &m->w->lm_head && chunk > m->max_seqs) chunk = m->max_seqs;
  if (chunk < 1) return aoq_err(AOQ_EINTERNAL, "linear %s: no room for one row", name);
  void *out = w == &m->w->lm_head ? m->logits_bf16 : m->gu;
  void *dst = m->act; /* gathered slice */
  for (int64_t done = 0; done < rows; done += chunk) {
    int64_t c = rows - done < chunk ? rows - done : chunk;
    size_t xb = (size_t)(c * w->k) * 2;
    AOQ_TRY(x_dev ? aoq_dev_copy_d2d(m->dev, m->xn, x + done * w->k, xb, m->stream)
                  : aoq_dev_copy_h2d(m->dev, m->xn, x + done * w->k, xb, m->stream));
    AOQ_TRY(aoq_dev_linear(m->dev, w, m->xn, out, c, AOQ_DTYPE_BF16, m->w->ws, m->stream));
    const void *src = out;
    if (n != w->n) {
      for (int64_t i = 0; i < c; i++)
        for (int64_t j = 0; j < per; j++)
          m->h_gather[i * per + j] = (int32_t)(i * (w->n / v) + r0 / v + j);
      AOQ_TRY(aoq_dev_copy_h2d(m->dev, m->d_gather, m->h_gather, (size_t)(c * per) * 4, m->stream));
      AOQ_TRY(aoq_dev_embed(m->dev, out, c * (w->n / v), m->d_gather, dst, c * per, v,
                            AOQ_DTYPE_BF16, m->stream));
      src = dst;
    }
    size_t yb = (size_t)(c * n) * 2;
    AOQ_TRY(y_dev ? aoq_dev_copy_d2d(m->dev, y + done * n, src, yb, m->stream)
                  : aoq_dev_copy_d2h(m->dev, y + done * n, src, yb, m->stream));
    AOQ_TRY(aoq_dev_stream_sync(m->dev, m->stream));
  }
  return AOQ_OK;
}

/* ------------------------------------------------------------------------------------------
 * Reconfiguration
 * ---------------------------------------------------------------------------------------- */

aoq_status aoq_model_prepare(aoq_model *m, const char *config, aoq_model_weights **out) {
  if (!m || !out) return aoq_err(AOQ_EINVAL, "aoq_model_prepare: NULL argument");
  return build_weights(m, config, out);
}

void aoq_model_commit(aoq_model *m, aoq_model_weights *w) {
  if (!m || !w) return;
  aoq_dev_stream_sync(m->dev, m->stream);
  aoq_llama_graphs_drop(m); /* captured graphs point at the old weights */
  aoq_model_weights *old = m->w;
  m->w = w;
  aoq_model_weights_free(m, old);
}
