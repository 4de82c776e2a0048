/* models.c — load, unload and live reconfiguration of resident models (models.h). */
#include "daemon/models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

static aoq_status wrap(aoqd_models *ms, const char *name, aoq_model *m, aoqd_model **out) {
  const aoq_model_info *info = aoq_model_info_get(m);
  aoqd_model *dm = calloc(1, sizeof *dm);
  if (!dm) return aoq_err(AOQ_ENOMEM, "model record");
  snprintf(dm->name, sizeof dm->name, "%s", name);
  dm->m = m;
  dm->vocab = info->cfg.vocab_size;
  dm->page_size = info->page_size > 0 ? info->page_size : 16;
  dm->max_rows = ms->defaults.max_seqs > 0 ? ms->defaults.max_seqs : 64;
  dm->logits = malloc((size_t)dm->max_rows * (size_t)dm->vocab * sizeof(float));
  if (!dm->logits) {
    aoq_status s = aoq_err(AOQ_ENOMEM, "logits of %d x %d", dm->max_rows, dm->vocab);
    free(dm);
    return s;
  }
  *out = dm;
  return AOQ_OK;
}

aoqd_model *aoqd_models_find(aoqd_models *ms, const char *name) {
  for (int i = 0; i < ms->n; i++)
    if (!strcmp(ms->items[i]->name, name)) return ms->items[i];
  return NULL;
}

static aoq_status load_now(aoqd_models *ms, const char *name, const char *config, int synthetic,
                           aoq_model **out) {
  aoq_model_opts o = ms->defaults;
  o.model = name;
  o.config = config && config[0] ? config : NULL;
  o.synthetic = synthetic != 0;
  return aoq_model_load(ms->dev, &o, out);
}

static aoq_status add(aoqd_models *ms, const char *name, aoq_model *m) {
  if (ms->n == AOQD_MAX_MODELS) {
    aoq_model_free(m);
    return aoq_err(AOQ_EQUOTA, "%d models loaded (the limit)", AOQD_MAX_MODELS);
  }
  aoqd_model *dm = NULL;
  aoq_status s = wrap(ms, name, m, &dm);
  if (s != AOQ_OK) {
    aoq_model_free(m);
    return s;
  }
  ms->items[ms->n++] = dm;
  const aoq_model_info *info = aoq_model_info_get(m);
  AOQ_INFO("model loaded|model=%s format=%s weight_bytes=%llu kv_pages=%d seconds=%.2f", name,
           info->format, (unsigned long long)info->weight_bytes, info->kv_pages_total,
           info->load_seconds);
  return AOQ_OK;
}

aoq_status aoqd_models_load(aoqd_models *ms, const char *name, const char *config, int synthetic) {
  if (aoqd_models_find(ms, name)) return aoq_err(AOQ_EBUSY, "model %s is already loaded", name);
  aoq_model *m;
  AOQ_TRY(load_now(ms, name, config, synthetic, &m));
  return add(ms, name, m);
}

int aoqd_models_reconfiguring(const aoqd_models *ms, const aoqd_model *m) {
  for (int i = 0; i < ms->n_work; i++)
    if (ms->work[i]->target == m) return 1;
  return 0;
}

static void free_model(aoqd_model *dm) {
  aoq_model_free(dm->m);
  free(dm->logits);
  free(dm);
}

aoq_status aoqd_models_unload(aoqd_models *ms, const char *name) {
  for (int i = 0; i < ms->n; i++) {
    if (strcmp(ms->items[i]->name, name)) continue;
    if (aoqd_models_reconfiguring(ms, ms->items[i]))
      return aoq_err(AOQ_EBUSY, "model %s is being reconfigured", name);
    free_model(ms->items[i]);
    ms->items[i] = ms->items[--ms->n];
    AOQ_INFO("model unloaded|model=%s", name);
    return AOQ_OK;
  }
  return aoq_err(AOQ_ENOTFOUND, "no model %s", name);
}

static void *worker(void *arg) {
  aoqd_work *w = arg;
  if (w->kind == AOQD_WORK_LOAD) {
    aoq_model_opts o = w->opts;
    o.model = w->model;
    o.config = w->config[0] ? w->config : NULL;
    o.synthetic = w->synthetic != 0;
    w->status = aoq_model_load(w->dev, &o, &w->loaded);
  } else {
    w->status = aoq_model_prepare(w->target->m, w->config, &w->prepared);
  }
  if (w->status != AOQ_OK) snprintf(w->error, sizeof w->error, "%s", aoq_last_error());
  atomic_store(&w->done, 1);
  return NULL;
}

aoq_status aoqd_models_start(aoqd_models *ms, int kind, const char *name, const char *config,
                             int synthetic, void *cookie) {
  if (strlen(name) >= sizeof ms->work[0]->model || (config && strlen(config) >= 64))
    return aoq_err(AOQ_EINVAL, "model name or config too long");
  aoqd_model *target = aoqd_models_find(ms, name);
  if (kind == AOQD_WORK_LOAD && target)
    return aoq_err(AOQ_EBUSY, "model %s is already loaded", name);
  if (kind == AOQD_WORK_RECONFIGURE && !target) return aoq_err(AOQ_ENOTFOUND, "no model %s", name);
  if (kind == AOQD_WORK_RECONFIGURE && (!config || !config[0]))
    return aoq_err(AOQ_EINVAL, "reconfigure needs a config string");
  for (int i = 0; i < ms->n_work; i++)
    if (!strcmp(ms->work[i]->model, name))
      return aoq_err(AOQ_EBUSY, "model %s is already loading or reconfiguring", name);
  if (ms->n_work == AOQD_MAX_MODELS) return aoq_err(AOQ_EBUSY, "too many background jobs");
  if (kind == AOQD_WORK_LOAD && ms->n + ms->n_work >= AOQD_MAX_MODELS)
    return aoq_err(AOQ_EQUOTA, "%d models loaded (the limit)", AOQD_MAX_MODELS);
  aoqd_work *w = calloc(1, sizeof *w);
  if (!w) return aoq_err(AOQ_ENOMEM, "work record");
  w->kind = kind;
  snprintf(w->model, sizeof w->model, "%s", name);
  snprintf(w->config, sizeof w->config, "%s", config ? config : "");
  w->synthetic = synthetic;
  w->target = kind == AOQD_WORK_RECONFIGURE ? target : NULL;
  w->cookie = cookie;
  w->opts = ms->defaults;
  w->dev = ms->dev;
  atomic_init(&w->done, 0);
  if (pthread_create(&w->thread, NULL, worker, w) != 0) {
    free(w);
    return aoq_err(AOQ_ENOMEM, "cannot start a worker thread");
  }
  ms->work[ms->n_work++] = w;
  AOQ_INFO("%s started|model=%s config=%s", kind == AOQD_WORK_LOAD ? "load" : "reconfigure", name,
           w->config);
  return AOQ_OK;
}

int aoqd_models_poll(aoqd_models *ms, aoq_status *status, char *detail, size_t n, void **cookie) {
  for (int i = 0; i < ms->n_work; i++) {
    aoqd_work *w = ms->work[i];
    if (!atomic_load(&w->done)) continue;
    pthread_join(w->thread, NULL);
    ms->work[i] = ms->work[--ms->n_work];
    aoq_status s = w->status;
    detail[0] = 0;
    if (s == AOQ_OK && w->kind == AOQD_WORK_LOAD) {
      s = add(ms, w->model, w->loaded);
      if (s != AOQ_OK) snprintf(detail, n, "%s", aoq_last_error());
    } else if (s == AOQ_OK) {
      /* Between two steps: the scheduler calls poll only outside aoq_model_step. */
      aoq_model_commit(w->target->m, w->prepared);
      w->target->reconfigures++;
      AOQ_INFO("reconfigured|model=%s config=%s", w->model, w->config);
    } else {
      snprintf(detail, n, "%s", w->error);
      AOQ_WARN("%s failed|model=%s config=%s error=\"%s\"",
               w->kind == AOQD_WORK_LOAD ? "load" : "reconfigure", w->model, w->config, w->error);
    }
    *status = s;
    *cookie = w->cookie;
    free(w);
    return 1;
  }
  return 0;
}

void aoqd_models_free(aoqd_models *ms) {
  for (int i = 0; i < ms->n_work; i++) {
    aoqd_work *w = ms->work[i];
    pthread_join(w->thread, NULL);
    if (w->loaded) aoq_model_free(w->loaded);
    if (w->prepared) aoq_model_weights_free(w->target->m, w->prepared);
    free(w->cookie);
    free(w);
  }
  ms->n_work = 0;
  for (int i = 0; i < ms->n; i++) free_model(ms->items[i]);
  ms->n = 0;
}

void aoqd_models_publish(aoqd_models *ms, aoqd_metrics *mx) {
  aoqd_model_stats st[AOQD_MAX_MODELS];
  int n = ms->n;
  for (int i = 0; i < n; i++) {
    aoqd_model *dm = ms->items[i];
    const aoq_model_info *info = aoq_model_info_get(dm->m);
    aoqd_model_stats *s = &st[i];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", dm->name);
    snprintf(s->format, sizeof s->format, "%s", info->format);
    int rc = aoqd_models_reconfiguring(ms, dm);
    snprintf(s->state, sizeof s->state, "%s", rc ? "reconfiguring" : "ready");
    s->weight_bytes = info->weight_bytes;
    s->kv_bytes = info->kv_bytes;
    s->kv_pages_total = info->kv_pages_total;
    s->kv_pages_free = info->kv_pages_free;
    s->page_size = info->page_size;
    s->live_seqs = info->live_seqs;
    s->weight_copies = 1 + rc;
    s->vocab = info->cfg.vocab_size;
    s->hidden = info->cfg.hidden_size;
    s->layers = info->cfg.n_layers;
    s->load_seconds = info->load_seconds;
    s->reconfigures = dm->reconfigures;
  }
  pthread_mutex_lock(&mx->mu);
  memcpy(mx->models, st, (size_t)n * sizeof st[0]);
  mx->n_models = n;
  pthread_mutex_unlock(&mx->mu);
}
