/* http.c — the OpenAI-compatible HTTP front end of aoqd (http.h). */
#include "daemon/http.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "daemon/http_internal.h"

#define MAX_BODY (4u << 20)

const double aoqd_http_ttft_le[AOQD_HTTP_TTFT_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                          1,     2.5,  5,     10,   30,  60,   120};
const double aoqd_http_step_le[AOQD_HTTP_STEP_BUCKETS] = {
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60};

/* ---- small helpers ---------------------------------------------------------------------- */

void aoqd_sb_put(aoqd_sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

uint64_t aoqd_wall_seconds(void) {
  return (uint64_t)time(NULL);
}

aoq_status aoqd_http_parse_addr(const char *addr, struct sockaddr *sa, unsigned *salen) {
  if (!addr || !addr[0]) return aoq_err(AOQ_EINVAL, "--http: empty address");
  char host[256];
  const char *port;
  if (addr[0] == '[') {
    const char *e = strchr(addr, ']');
    if (!e || e[1] != ':' || (size_t)(e - addr - 1) >= sizeof host)
      return aoq_err(AOQ_EINVAL, "--http '%s': expected [V6ADDR]:PORT", addr);
    memcpy(host, addr + 1, (size_t)(e - addr - 1));
    host[e - addr - 1] = 0;
    port = e + 2;
  } else {
    const char *c = strrchr(addr, ':');
    if (!c || (size_t)(c - addr) >= sizeof host)
      return aoq_err(AOQ_EINVAL, "--http '%s': expected HOST:PORT", addr);
    memcpy(host, addr, (size_t)(c - addr));
    host[c - addr] = 0;
    port = c + 1;
  }
  char *end;
  long p = strtol(port, &end, 10);
  if (!port[0] || *end || p < 0 || p > 65535)
    return aoq_err(AOQ_EINVAL, "--http '%s': port must be 0..65535", addr);
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  int r = getaddrinfo(host[0] ? host : "0.0.0.0", port, &hints, &res);
  if (r != 0 || !res)
    return aoq_err(AOQ_EINVAL, "--http '%s': cannot resolve '%s': %s", addr, host, gai_strerror(r));
  if (res->ai_addrlen > sizeof(struct sockaddr_in6)) {
    freeaddrinfo(res);
    return aoq_err(AOQ_EINVAL, "--http '%s': unsupported address family", addr);
  }
  memcpy(sa, res->ai_addr, res->ai_addrlen);
  *salen = (unsigned)res->ai_addrlen;
  freeaddrinfo(res);
  return AOQ_OK;
}

void aoqd_http_keys_free(aoqd_http_key *keys, int n) {
  for (int i = 0; i < n; i++) free(keys[i].key);
  free(keys);
}

/* Parses "name=N" of a quota field into *out if tok names it; 1 if it did, -1 if the value is
 * bad, 0 if tok is another field. */
static int quota_field(const char *tok, const char *name, int lo, int hi, int *out) {
  size_t n = strlen(name);
  if (strncmp(tok, name, n) || tok[n] != '=') return 0;
  char *end;
  long v = strtol(tok + n + 1, &end, 10);
  if (!tok[n + 1] || *end || v < lo || v > hi) return -1;
  *out = (int)v;
  return 1;
}

aoq_status aoqd_http_keys_load(const char *path, aoqd_http_key **keys_out, int *n_out) {
  FILE *f = fopen(path, "r");
  if (!f) return aoq_err(AOQ_EIO, "--api-keys %s: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fileno(f), &sb) == 0 && (sb.st_mode & 077))
    AOQ_WARN("api keys file readable by others|path=%s mode=%03o", path,
             (unsigned)(sb.st_mode & 0777));
  char line[1024];
  aoqd_http_key *keys = NULL;
  int n = 0, lineno = 0;
  aoq_status st = AOQ_OK;
  while (st == AOQ_OK && fgets(line, sizeof line, f)) {
    lineno++;
    size_t L = strlen(line);
    if (L == sizeof line - 1 && line[L - 1] != '\n') {
      st = aoq_err(AOQ_EFORMAT, "--api-keys %s:%d: line longer than %zu bytes", path, lineno,
                   sizeof line - 2);
      break;
    }
    char *h = strchr(line, '#');
    if (h) *h = 0;
    char *save, *tok[6];
    int nt = 0;
    for (char *t = strtok_r(line, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save))
      if (nt < 6)
        tok[nt++] = t;
      else
        nt = 6 + 1;
    if (nt == 0) continue;
    if (nt < 2 || nt > 5) {
      st = aoq_err(AOQ_EFORMAT,
                   "--api-keys %s:%d: expected '<key> <tenant> [kv_pages=N] [max_seqs=N] "
                   "[priority=N]'",
                   path, lineno);
      break;
    }
    aoqd_http_key k = {.kv_pages = -1, .max_seqs = -1, .priority = -1000};
    if (strlen(tok[1]) > 63) {
      st = aoq_err(AOQ_EFORMAT, "--api-keys %s:%d: tenant longer than 63 bytes", path, lineno);
      break;
    }
    snprintf(k.tenant, sizeof k.tenant, "%s", tok[1]);
    for (int i = 2; i < nt && st == AOQ_OK; i++) {
      int r = quota_field(tok[i], "kv_pages", 0, 1 << 24, &k.kv_pages);
      if (!r) r = quota_field(tok[i], "max_seqs", 0, 1 << 20, &k.max_seqs);
      if (!r) r = quota_field(tok[i], "priority", -100, 100, &k.priority);
      if (r != 1)
        st = aoq_err(AOQ_EFORMAT,
                     "--api-keys %s:%d: '%.40s': expected kv_pages=N, max_seqs=N (N >= 0) or "
                     "priority=N (-100..100)",
                     path, lineno, tok[i]);
    }
    for (int i = 0; i < n && st == AOQ_OK; i++)
      if (!strcmp(keys[i].key, tok[0]))
        st = aoq_err(AOQ_EFORMAT, "--api-keys %s:%d: key repeated (first on an earlier line)", path,
                     lineno);
    if (st != AOQ_OK) break;
    aoqd_http_key *nk = realloc(keys, (size_t)(n + 1) * sizeof *nk);
    if (!nk || !(k.key = strdup(tok[0]))) {
      if (nk) keys = nk;
      st = aoq_err(AOQ_ENOMEM, "--api-keys: out of memory");
      break;
    }
    keys = nk;
    keys[n++] = k;
  }
  fclose(f);
  if (st == AOQ_OK && n == 0) st = aoq_err(AOQ_EFORMAT, "--api-keys %s: no keys", path);
  if (st != AOQ_OK) {
    aoqd_http_keys_free(keys, n);
    return st;
  }
  *keys_out = keys;
  *n_out = n;
  return AOQ_OK;
}

/* Creates the keys' tenants and sets the quota fields their lines give. */
static aoq_status apply_key_quotas(aoqd_http *h) {
  aoq_status st = AOQ_OK;
  pthread_mutex_lock(&h->mx->mu);
  for (int i = 0; i < h->n_keys && st == AOQ_OK; i++) {
    const aoqd_http_key *k = &h->keys[i];
    int t;
    st = aoqd_tenant_get_locked(h->mx, k->tenant, &t);
    if (st != AOQ_OK) break;
    aoqd_quota *q = &h->mx->tenants[t].quota;
    if (k->kv_pages >= 0) q->kv_pages = k->kv_pages;
    if (k->max_seqs >= 0) q->max_seqs = k->max_seqs;
    if (k->priority >= -100) q->priority = k->priority;
    if (k->kv_pages >= 0 || k->max_seqs >= 0 || k->priority >= -100)
      AOQ_INFO("http key quota|tenant=%s kv_pages=%d max_seqs=%d priority=%d", k->tenant,
               q->kv_pages, q->max_seqs, q->priority);
  }
  pthread_mutex_unlock(&h->mx->mu);
  return st;
}

/* ---- counters ----------------------------------------------------------------------------- */

void aoqd_http_count_status(aoqd_http *h, unsigned code) {
  pthread_mutex_lock(&h->st.mu);
  if (code >= 100 && code < 600) h->st.status[code / 100]++;
  pthread_mutex_unlock(&h->st.mu);
}

void aoqd_http_count_request(aoqd_http *h, const char *tenant, const char *model, uint64_t prompt,
                             uint64_t completion) {
  aoqd_http_stats *s = &h->st;
  pthread_mutex_lock(&s->mu);
  aoqd_http_series *e = NULL;
  for (int i = 0; i < s->n_series && !e; i++)
    if (!strcmp(s->series[i].tenant, tenant) && !strcmp(s->series[i].model, model))
      e = &s->series[i];
  if (!e && s->n_series < AOQD_HTTP_MAX_SERIES) {
    e = &s->series[s->n_series++];
    memset(e, 0, sizeof *e);
    snprintf(e->tenant, sizeof e->tenant, "%s", tenant);
    snprintf(e->model, sizeof e->model, "%s", model);
  }
  if (e) {
    e->requests++;
    e->prompt_tokens += prompt;
    e->completion_tokens += completion;
  } else {
    s->overflow_requests++;
  }
  pthread_mutex_unlock(&s->mu);
}

void aoqd_http_count_ttft(aoqd_http *h, double sec) {
  aoqd_http_stats *s = &h->st;
  int b = 0;
  while (b < AOQD_HTTP_TTFT_BUCKETS && sec > aoqd_http_ttft_le[b]) b++;
  pthread_mutex_lock(&s->mu);
  s->ttft[b]++;
  s->ttft_sum += sec;
  s->ttft_count++;
  pthread_mutex_unlock(&s->mu);
}

/* Folds the scheduler's step times (a ring of the last AOQD_STEP_RING steps) into the step
 * histogram every 50 ms. Steps that scrolled out of the ring between two looks are counted in
 * step_missed (exported), never invented. */
static void fold_steps(aoqd_http *h) {
  aoqd_metrics *m = h->mx;
  aoqd_http_stats *s = &h->st;
  pthread_mutex_lock(&m->mu);
  pthread_mutex_lock(&s->mu);
  uint64_t now = m->steps;
  if (now - s->step_seen > AOQD_STEP_RING) {
    s->step_missed += now - s->step_seen - AOQD_STEP_RING;
    s->step_seen = now - AOQD_STEP_RING;
  }
  for (; s->step_seen < now; s->step_seen++) {
    double sec = m->step_us[s->step_seen % AOQD_STEP_RING] * 1e-6;
    int b = 0;
    while (b < AOQD_HTTP_STEP_BUCKETS && sec > aoqd_http_step_le[b]) b++;
    s->step[b]++;
    s->step_sum += sec;
    s->step_count++;
  }
  pthread_mutex_unlock(&s->mu);
  pthread_mutex_unlock(&m->mu);
}

static void *sampler_main(void *arg) {
  aoqd_http *h = arg;
  pthread_mutex_lock(&h->stop_mu);
  while (!h->stopping) {
    pthread_mutex_unlock(&h->stop_mu);
    fold_steps(h);
    pthread_mutex_lock(&h->stop_mu);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    if (!h->stopping) pthread_cond_timedwait(&h->stop_cv, &h->stop_mu, &ts);
  }
  pthread_mutex_unlock(&h->stop_mu);
  return NULL;
}

/* ---- responses ------------------------------------------------------------------------------ */

enum MHD_Result aoqd_http_send_body(aoqd_http *h, struct MHD_Connection *con, unsigned code,
                                    const char *type, char *body, size_t len) {
  struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  enum MHD_Result ret = MHD_queue_response(con, code, r);
  MHD_destroy_response(r);
  aoqd_http_count_status(h, code);
  return ret;
}

enum MHD_Result aoqd_http_send_json(aoqd_http *h, struct MHD_Connection *con, unsigned code,
                                    cJSON *j) {
  char *s = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  if (!s) return MHD_NO;
  return aoqd_http_send_body(h, con, code, "application/json", s, strlen(s));
}

cJSON *aoqd_http_error_object(const char *type, const char *param, const char *code,
                              const char *msg) {
  cJSON *e = cJSON_CreateObject(), *root = cJSON_CreateObject();
  if (!e || !root) {
    cJSON_Delete(e);
    cJSON_Delete(root);
    return NULL;
  }
  cJSON_AddStringToObject(e, "message", msg);
  cJSON_AddStringToObject(e, "type", type);
  if (param)
    cJSON_AddStringToObject(e, "param", param);
  else
    cJSON_AddNullToObject(e, "param");
  if (code)
    cJSON_AddStringToObject(e, "code", code);
  else
    cJSON_AddNullToObject(e, "code");
  cJSON_AddItemToObject(root, "error", e);
  return root;
}

enum MHD_Result aoqd_http_send_error(aoqd_http *h, struct MHD_Connection *con, unsigned code,
                                     const char *param, const char *ecode, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const char *type = code == 401   ? "authentication_error"
                     : code == 404 ? "not_found_error"
                     : code == 429 ? "rate_limit_error"
                     : code >= 500 ? "server_error"
                                   : "invalid_request_error";
  cJSON *j = aoqd_http_error_object(type, param, ecode, msg);
  if (!j) return MHD_NO;
  return aoqd_http_send_json(h, con, code, j);
}

/* HTTP status for a daemon error. */
unsigned aoqd_http_status_code(aoq_status s) {
  switch (s) {
    case AOQ_EINVAL:
    case AOQ_EFORMAT:
    case AOQ_ESHAPE:
      return 400;
    case AOQ_EPERM:
      return 403;
    case AOQ_ENOTFOUND:
      return 404;
    case AOQ_EQUOTA:
      return 429;
    case AOQ_EBUSY:
    case AOQ_ECONN:
    case AOQ_ECANCELED:
      return 503;
    case AOQ_ETIMEOUT:
      return 504;
    default:
      return 500;
  }
}

/* ---- routes ---------------------------------------------------------------------------------- */

static enum MHD_Result serve_models(aoqd_http *h, struct MHD_Connection *con, const char *tenant,
                                    const char *one) {
  aoq_connect_opts co;
  memset(&co, 0, sizeof co);
  co.endpoint = h->endpoint;
  co.tenant = tenant;
  co.name = "http";
  aoq_client *c;
  aoq_status st = aoq_connect_with(&co, &c);
  if (st != AOQ_OK)
    return aoqd_http_send_error(h, con, aoqd_http_status_code(st), NULL, NULL,
                                "cannot reach the scheduler: %s", aoq_last_error());
  aoq_model_desc *ms = NULL;
  size_t n = 0;
  st = aoq_models(c, &ms, &n);
  if (st != AOQ_OK) {
    enum MHD_Result r = aoqd_http_send_error(h, con, aoqd_http_status_code(st), NULL, NULL, "%s",
                                             aoq_client_last_error(c));
    aoq_disconnect(c);
    return r;
  }
  aoq_disconnect(c);
  double created = (double)aoqd_wall_seconds() - (aoqd_now() - h->t_start);
  cJSON *list = cJSON_CreateArray(), *found = NULL;
  for (size_t i = 0; list && i < n; i++) {
    cJSON *m = cJSON_CreateObject();
    if (!m) break;
    cJSON_AddStringToObject(m, "id", ms[i].name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)(uint64_t)created);
    cJSON_AddStringToObject(m, "owned_by", "aoq");
    cJSON_AddStringToObject(m, "format", ms[i].format);
    cJSON_AddStringToObject(m, "state", ms[i].state);
    if (one && !strcmp(one, ms[i].name)) found = cJSON_Duplicate(m, 1);
    cJSON_AddItemToArray(list, m);
  }
  aoq_free(ms);
  if (one) {
    cJSON_Delete(list);
    if (!found)
      return aoqd_http_send_error(h, con, 404, "model", "model_not_found",
                                  "The model '%s' does not exist", one);
    return aoqd_http_send_json(h, con, 200, found);
  }
  cJSON *root = cJSON_CreateObject();
  if (!root || !list) {
    cJSON_Delete(root);
    cJSON_Delete(list);
    return aoqd_http_send_error(h, con, 500, NULL, NULL, "out of memory");
  }
  cJSON_AddStringToObject(root, "object", "list");
  cJSON_AddItemToObject(root, "data", list);
  return aoqd_http_send_json(h, con, 200, root);
}

static enum MHD_Result serve_metrics(aoqd_http *h, struct MHD_Connection *con) {
  fold_steps(h);
  char *s;
  size_t len;
  if (aoqd_prom_render(h->mx, &h->st, aoqd_now() - h->t_start, &s, &len) != AOQ_OK)
    return aoqd_http_send_error(h, con, 500, NULL, NULL, "%s", aoq_last_error());
  return aoqd_http_send_body(h, con, 200, "text/plain; version=0.0.4; charset=utf-8", s, len);
}

/* Tenant of the request's API key: 0 and *tenant set, or -1 (no or unknown key). */
static int authenticate(aoqd_http *h, struct MHD_Connection *con, const char **tenant) {
  if (!h->n_keys) {
    *tenant = "http";
    return 0;
  }
  const char *a = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Authorization");
  if (!a || strncasecmp(a, "Bearer ", 7)) return -1;
  a += 7;
  while (*a == ' ') a++;
  size_t la = strlen(a);
  int hit = -1;
  for (int i = 0; i < h->n_keys; i++) { /* compare every key fully: no early exit on a prefix */
    const char *key = h->keys[i].key;
    size_t lk = strlen(key);
    unsigned char d = la != lk;
    for (size_t k = 0; k < lk; k++) d |= (unsigned char)(key[k] ^ (k < la ? a[k] : 0));
    if (!d) hit = i;
  }
  if (hit < 0) return -1;
  *tenant = h->keys[hit].tenant;
  return 0;
}

typedef struct conn_ctx {
  aoqd_sbuf body;
  int too_big;
} conn_ctx;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  (void)version;
  aoqd_http *h = cls;
  conn_ctx *cc = *con_cls;
  if (!cc) {
    if (!(cc = calloc(1, sizeof *cc))) return MHD_NO;
    *con_cls = cc;
    pthread_mutex_lock(&h->stop_mu);
    h->active++;
    pthread_mutex_unlock(&h->stop_mu);
    return MHD_YES;
  }
  if (*upload_size) {
    if (cc->body.n + *upload_size > MAX_BODY)
      cc->too_big = 1;
    else
      aoqd_sb_put(&cc->body, upload, *upload_size);
    *upload_size = 0;
    return MHD_YES;
  }
  int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
  if (!strcmp(url, "/metrics")) {
    if (!get) return aoqd_http_send_error(h, con, 405, NULL, NULL, "GET /metrics only");
    return serve_metrics(h, con);
  }
  if (!strcmp(url, "/health")) {
    char *s = strdup("{\"status\":\"ok\"}");
    return s ? aoqd_http_send_body(h, con, 200, "application/json", s, strlen(s)) : MHD_NO;
  }
  int is_models = !strcmp(url, "/v1/models"), is_model = !strncmp(url, "/v1/models/", 11);
  int is_cmpl = !strcmp(url, "/v1/completions"), is_chat = !strcmp(url, "/v1/chat/completions");
  if (!is_models && !is_model && !is_cmpl && !is_chat)
    return aoqd_http_send_error(h, con, 404, NULL, "unknown_url", "Unknown request URL: %s %.200s",
                                method, url);
  const char *tenant;
  if (authenticate(h, con, &tenant) != 0)
    return aoqd_http_send_error(h, con, 401, NULL, "invalid_api_key",
                                "Incorrect API key provided (Authorization: Bearer <key>)");
  if (is_models || is_model) {
    if (!get) return aoqd_http_send_error(h, con, 405, NULL, NULL, "%s takes GET", url);
    return serve_models(h, con, tenant, is_model ? url + 11 : NULL);
  }
  if (!post) return aoqd_http_send_error(h, con, 405, NULL, NULL, "%s takes POST", url);
  if (cc->too_big)
    return aoqd_http_send_error(h, con, 413, NULL, NULL, "request body over %u bytes", MAX_BODY);
  return aoqd_http_serve_generate(h, con, tenant, is_chat, cc->body.p ? cc->body.p : "",
                                  cc->body.n);
}

static void on_completed(void *cls, struct MHD_Connection *con, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)con;
  (void)toe;
  aoqd_http *h = cls;
  conn_ctx *cc = *con_cls;
  if (!cc) return;
  pthread_mutex_lock(&h->stop_mu);
  h->active--;
  pthread_cond_broadcast(&h->stop_cv);
  pthread_mutex_unlock(&h->stop_mu);
  free(cc->body.p);
  free(cc);
  *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && msg[n - 1] == '\n') msg[--n] = 0;
  AOQ_WARN("http|mhd=\"%s\"", msg);
}

aoq_status aoqd_http_start(const aoqd_http_opts *o, aoqd_http **out) {
  *out = NULL;
  struct sockaddr_in6 sa;
  unsigned salen;
  memset(&sa, 0, sizeof sa);
  AOQ_TRY(aoqd_http_parse_addr(o->addr, (struct sockaddr *)&sa, &salen));
  aoqd_http *h = calloc(1, sizeof *h);
  if (!h) return aoq_err(AOQ_ENOMEM, "http front end");
  pthread_mutex_init(&h->st.mu, NULL);
  pthread_mutex_init(&h->stop_mu, NULL);
  pthread_cond_init(&h->stop_cv, NULL);
  h->mx = o->mx;
  h->t_start = o->t_start;
  snprintf(h->endpoint, sizeof h->endpoint, "%s", o->endpoint);
  if (o->keys) {
    aoq_status st = aoqd_http_keys_load(o->keys, &h->keys, &h->n_keys);
    if (st == AOQ_OK) st = apply_key_quotas(h);
    if (st != AOQ_OK) {
      aoqd_http_stop(h);
      return st;
    }
  }
  pthread_mutex_lock(&h->mx->mu);
  h->st.step_seen = h->mx->steps;
  pthread_mutex_unlock(&h->mx->mu);
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                   MHD_USE_ERROR_LOG | MHD_USE_ITC |
                   (sa.sin6_family == AF_INET6 ? MHD_USE_IPv6 : 0);
  h->mhd =
      MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
                       h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED,
                       on_completed, h, MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
                       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600, MHD_OPTION_END);
  if (!h->mhd) {
    aoqd_http_stop(h);
    return aoq_err(AOQ_EIO, "--http %s: cannot listen (address in use or not local?)", o->addr);
  }
  if (pthread_create(&h->sampler, NULL, sampler_main, h) != 0) {
    aoqd_http_stop(h);
    return aoq_err(AOQ_ENOMEM, "http: cannot start the step sampler thread");
  }
  h->sampler_on = 1;
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
  AOQ_INFO("http listening|addr=%s port=%u keys=%d", o->addr, di ? (unsigned)di->port : 0u,
           h->n_keys);
  *out = h;
  return AOQ_OK;
}

void aoqd_http_stop(aoqd_http *h) {
  if (!h) return;
  if (h->mhd) {
    /* stop accepting, then let requests in flight (a stream finishing its drain) write their
     * last bytes before the connections are closed; bounded */
    MHD_socket ls = MHD_quiesce_daemon(h->mhd);
    if (ls != MHD_INVALID_SOCKET) close(ls);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 15;
    pthread_mutex_lock(&h->stop_mu);
    while (h->active > 0)
      if (pthread_cond_timedwait(&h->stop_cv, &h->stop_mu, &dl) == ETIMEDOUT) break;
    int left = h->active;
    pthread_mutex_unlock(&h->stop_mu);
    if (left) AOQ_WARN("http stop|requests_in_flight=%d", left);
    MHD_stop_daemon(h->mhd);
  }
  if (h->sampler_on) {
    pthread_mutex_lock(&h->stop_mu);
    h->stopping = 1;
    pthread_cond_broadcast(&h->stop_cv);
    pthread_mutex_unlock(&h->stop_mu);
    pthread_join(h->sampler, NULL);
  }
  aoqd_http_keys_free(h->keys, h->n_keys);
  pthread_mutex_destroy(&h->st.mu);
  pthread_mutex_destroy(&h->stop_mu);
  pthread_cond_destroy(&h->stop_cv);
  free(h);
}
