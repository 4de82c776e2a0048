/* admin.c — admin command table, status document, settings file (admin.h). */
#include "daemon/admin.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

static cJSON *num(cJSON *o, const char *k, double v) {
  return cJSON_AddNumberToObject(o, k, v);
}

aoq_status aoqd_admin_status_json(aoqd_server *sv, char **json) {
  static aoqd_metrics m; /* a copy, server thread only: too large for the stack */
  pthread_mutex_lock(&sv->mx->mu);
  m = *sv->mx;
  double p50, p99;
  aoqd_metrics_step_pct_locked(sv->mx, &p50, &p99);
  pthread_mutex_unlock(&sv->mx->mu);
  aoq_device_info di;
  memset(&di, 0, sizeof di);
  aoq_device_info_get(sv->dev, &di);

  cJSON *root = cJSON_CreateObject();
  cJSON *d = cJSON_AddObjectToObject(root, "daemon");
  cJSON_AddStringToObject(d, "version", aoq_version());
  num(d, "pid", (double)getpid());
  num(d, "uptime_s", aoqd_now() - sv->t_start);
  cJSON_AddStringToObject(d, "device", aoq_device_name(sv->dev));
  cJSON_AddBoolToObject(d, "draining", sv->draining);
  num(d, "sessions", m.sessions);
  num(d, "sessions_closed", (double)m.sessions_reaped);
  num(d, "refused_admin", (double)m.refused_admin);
  num(d, "refused_curve", (double)m.refused_curve);

  uint64_t wbytes = 0, kvbytes = 0;
  cJSON *ms = cJSON_AddArrayToObject(root, "models");
  for (int i = 0; i < m.n_models; i++) {
    aoqd_model_stats *s = &m.models[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", s->name);
    cJSON_AddStringToObject(o, "format", s->format);
    cJSON_AddStringToObject(o, "state", s->state);
    num(o, "weight_bytes", (double)s->weight_bytes);
    num(o, "weight_copies", s->weight_copies);
    num(o, "kv_bytes", (double)s->kv_bytes);
    num(o, "kv_pages_total", s->kv_pages_total);
    num(o, "kv_pages_free", s->kv_pages_free);
    num(o, "page_size", s->page_size);
    num(o, "live_seqs", s->live_seqs);
    num(o, "vocab_size", s->vocab);
    num(o, "hidden_size", s->hidden);
    num(o, "n_layers", s->layers);
    num(o, "load_seconds", s->load_seconds);
    num(o, "reconfigures", (double)s->reconfigures);
    cJSON_AddItemToArray(ms, o);
    wbytes += s->weight_bytes;
    kvbytes += s->kv_bytes;
  }
  int nb;
  uint64_t bb;
  aoqd_bufreg_usage(sv->reg, -1, &nb, &bb);
  cJSON *mem = cJSON_AddObjectToObject(root, "memory");
  num(mem, "device_weights_bytes", (double)wbytes);
  num(mem, "device_kv_bytes", (double)kvbytes);
  num(mem, "device_total_bytes", (double)di.total_memory);
  num(mem, "device_free_bytes", (double)di.free_memory);
  cJSON_AddStringToObject(d, "device_name", di.name);
  num(mem, "shared_buffers", nb);
  num(mem, "shared_buffer_bytes", (double)bb);
  aoqd_bufreg_device_usage(sv->reg, -1, &nb, &bb);
  num(mem, "device_buffers", nb);
  num(mem, "device_buffer_bytes", (double)bb);
  num(mem, "device_ipc_imports", aoqd_bufreg_imports(sv->reg));

  cJSON *ts = cJSON_AddArrayToObject(root, "tenants");
  int active = 0;
  for (int i = 0; i < m.n_tenants; i++) {
    aoqd_tenant_stats *t = &m.tenants[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", t->name);
    num(o, "sessions", t->sessions);
    num(o, "live_seqs", t->live_seqs);
    num(o, "queued", t->queued);
    num(o, "kv_pages", t->kv_pages);
    num(o, "buffers", t->buffers);
    num(o, "buffer_bytes", (double)t->buffer_bytes);
    num(o, "device_buffers", t->device_buffers);
    num(o, "device_buffer_bytes", (double)t->device_buffer_bytes);
    num(o, "tokens", (double)t->tokens);
    num(o, "refused", (double)t->refused);
    cJSON *q = cJSON_AddObjectToObject(o, "quota");
    num(q, "kv_pages", t->quota.kv_pages);
    num(q, "max_seqs", t->quota.max_seqs);
    num(q, "priority", t->quota.priority);
    cJSON_AddItemToArray(ts, o);
    active += t->sessions > 0;
  }
  num(d, "tenants_active", active);

  cJSON *sc = cJSON_AddObjectToObject(root, "scheduler");
  num(sc, "live_seqs", m.live_seqs);
  num(sc, "queue_depth", m.queue_depth);
  num(sc, "steps", (double)m.steps);
  num(sc, "tokens_total", (double)m.tokens_total);
  num(sc, "tokens_per_s", m.tokens_per_s);
  num(sc, "step_ms_p50", p50);
  num(sc, "step_ms_p99", p99);

  cJSON *w = cJSON_AddObjectToObject(root, "wire");
  for (int i = 0; i < AOQ_WIRE_NTYPES; i++) {
    if (!m.requests[i]) continue;
    cJSON *o = cJSON_AddObjectToObject(w, aoq_wire_type_name(i));
    num(o, "requests", (double)m.requests[i]);
    num(o, "errors", (double)m.errors[i]);
    num(o, "rx_bytes", (double)m.rx_bytes[i]);
    num(o, "tx_bytes", (double)m.tx_bytes[i]);
  }
  char *s = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  if (!s) return aoq_err(AOQ_ENOMEM, "status document");
  *json = s;
  return AOQ_OK;
}

static void reply_json(aoqd_server *sv, const aoqd_addr *a) {
  char *json;
  if (aoqd_admin_status_json(sv, &json) != AOQ_OK)
    return aoqd_server_error(sv, a, AOQ_ENOMEM, "%s", aoq_last_error());
  Aoq__Reply r = AOQ__REPLY__INIT;
  Aoq__AdminReply ar = AOQ__ADMIN_REPLY__INIT;
  ar.json = json;
  r.body_case = AOQ__REPLY__BODY_ADMIN;
  r.admin = &ar;
  aoqd_server_reply(sv, a, &r);
  free(json);
}

typedef struct cmd {
  Aoq__Admin__Cmd cmd;
  const char *name;
  int scheduler; /* 1: the scheduler thread serves it (touches models) */
  void (*fn)(aoqd_server *sv, const aoqd_addr *a, const Aoq__Admin *c);
} cmd;

static void c_status(aoqd_server *sv, const aoqd_addr *a, const Aoq__Admin *c) {
  (void)c;
  reply_json(sv, a);
}

static void c_quota(aoqd_server *sv, const aoqd_addr *a, const Aoq__Admin *c) {
  const Aoq__Quota *q = c->quota;
  if (!q || !q->tenant[0]) return aoqd_server_error(sv, a, AOQ_EINVAL, "quota needs a tenant");
  if (q->kv_pages < 0 || q->max_seqs < 0 || q->priority < -100 || q->priority > 100)
    return aoqd_server_error(sv, a, AOQ_EINVAL,
                             "quota values: kv_pages, max_seqs >= 0; priority in -100..100");
  int t;
  pthread_mutex_lock(&sv->mx->mu);
  aoq_status st = aoqd_tenant_get_locked(sv->mx, q->tenant, &t);
  if (st == AOQ_OK) sv->mx->tenants[t].quota = (aoqd_quota){q->kv_pages, q->max_seqs, q->priority};
  pthread_mutex_unlock(&sv->mx->mu);
  if (st != AOQ_OK) return aoqd_server_error(sv, a, st, "%s", aoq_last_error());
  AOQ_INFO("quota set|tenant=%s kv_pages=%d max_seqs=%d priority=%d", q->tenant, q->kv_pages,
           q->max_seqs, q->priority);
  reply_json(sv, a);
}

static void c_drain(aoqd_server *sv, const aoqd_addr *a, const Aoq__Admin *c) {
  (void)c;
  sv->draining = 1;
  AOQ_INFO("draining: new generate/forward requests are refused");
  reply_json(sv, a);
}

static void c_shutdown(aoqd_server *sv, const aoqd_addr *a, const Aoq__Admin *c) {
  (void)c;
  sv->draining = sv->exit_when_idle = 1;
  AOQ_INFO("shutdown requested: draining, then exiting");
  reply_json(sv, a);
}

static const cmd table[] = {
    {AOQ__ADMIN__CMD__STATUS, "status", 0, c_status},
    {AOQ__ADMIN__CMD__TENANTS, "tenants", 0, c_status},
    {AOQ__ADMIN__CMD__QUOTA, "quota", 0, c_quota},
    {AOQ__ADMIN__CMD__LOAD, "load", 1, NULL},
    {AOQ__ADMIN__CMD__UNLOAD, "unload", 1, NULL},
    {AOQ__ADMIN__CMD__RECONFIGURE, "reconfigure", 1, NULL},
    {AOQ__ADMIN__CMD__DRAIN, "drain", 0, c_drain},
    {AOQ__ADMIN__CMD__SHUTDOWN, "shutdown", 0, c_shutdown},
};

void aoqd_admin_handle(aoqd_server *sv, const aoqd_addr *a, Aoq__Request *req) {
  const Aoq__Admin *c = req->admin;
  const cmd *k = NULL;
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (table[i].cmd == c->cmd) k = &table[i];
  if (!k) {
    aoqd_server_error(sv, a, AOQ_EINVAL, "unknown admin command %d", (int)c->cmd);
  } else if (k->scheduler) {
    if (strlen(c->model) >= AOQ_MAX_NAME_BYTES || !c->model[0] || strlen(c->config) >= 64) {
      aoqd_server_error(sv, a, AOQ_EINVAL, "%s needs a model name (< %zu bytes), config < 64 bytes",
                        k->name, AOQ_MAX_NAME_BYTES);
    } else {
      aoqd_job *j = calloc(1, sizeof *j);
      if (!j) {
        aoqd_server_error(sv, a, AOQ_ENOMEM, "job");
      } else {
        AOQ_INFO("admin %s|model=%s config=%s", k->name, c->model, c->config);
        j->kind = AOQD_JOB_ADMIN;
        j->addr = *a;
        j->req = req;
        aoqd_sched_submit(sv->sched, j);
        return;
      }
    }
  } else {
    k->fn(sv, a, c);
  }
  aoq__request__free_unpacked(req, NULL);
}

aoq_status aoqd_admin_load_conf(aoqd_server *sv, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return aoq_err(AOQ_EIO, "cannot open settings file %s", path);
  struct {
    char tenant[64];
    aoqd_quota q;
  } set[AOQD_MAX_TENANTS];
  int n = 0, ln = 0;
  char line[512];
  aoq_status st = AOQ_OK;
  while (st == AOQ_OK && fgets(line, sizeof line, f)) {
    ln++;
    char *save, *tok = strtok_r(line, " \t\r\n", &save);
    if (!tok || tok[0] == '#') continue;
    if (strcmp(tok, "quota")) {
      st = aoq_err(AOQ_EFORMAT, "%s:%d: unknown setting '%s' (expected quota)", path, ln, tok);
      break;
    }
    char *tenant = strtok_r(NULL, " \t\r\n", &save);
    if (!tenant || strlen(tenant) >= 64 || n == AOQD_MAX_TENANTS) {
      st = aoq_err(AOQ_EFORMAT, "%s:%d: quota needs a tenant name (< 64 bytes)", path, ln);
      break;
    }
    snprintf(set[n].tenant, 64, "%s", tenant);
    set[n].q = (aoqd_quota){0, 0, 0};
    while (st == AOQ_OK && (tok = strtok_r(NULL, " \t\r\n", &save))) {
      int v;
      char key[32];
      if (sscanf(tok, "%31[a-z_]=%d", key, &v) != 2 || v < -100 ||
          (strcmp(key, "priority") && v < 0)) {
        st = aoq_err(AOQ_EFORMAT, "%s:%d: bad field '%s'", path, ln, tok);
      } else if (!strcmp(key, "kv_pages")) {
        set[n].q.kv_pages = v;
      } else if (!strcmp(key, "max_seqs")) {
        set[n].q.max_seqs = v;
      } else if (!strcmp(key, "priority") && v <= 100) {
        set[n].q.priority = v;
      } else {
        st = aoq_err(AOQ_EFORMAT, "%s:%d: unknown field '%s'", path, ln, tok);
      }
    }
    n++;
  }
  fclose(f);
  if (st != AOQ_OK) return st;
  pthread_mutex_lock(&sv->mx->mu);
  for (int i = 0; i < n && st == AOQ_OK; i++) {
    int t;
    st = aoqd_tenant_get_locked(sv->mx, set[i].tenant, &t);
    if (st == AOQ_OK) sv->mx->tenants[t].quota = set[i].q;
  }
  pthread_mutex_unlock(&sv->mx->mu);
  return st;
}
