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
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "core/tokenizer.h"

#define MAX_BODY (4u << 20)
#define MAX_STOPS 4
#define MAX_TOKENS_LIMIT 1000000

struct aoqd_http {
  struct MHD_Daemon *mhd;
  char endpoint[600];
  char **keys, **tenants;
  int n_keys;
  aoqd_metrics *mx;
  double t_start;
  aoqd_http_stats st;
  pthread_t sampler;
  int sampler_on;
  pthread_mutex_t stop_mu;
  pthread_cond_t stop_cv;
  int stopping;
  int active; /* requests between their first callback and their completion (stop_mu) */
};

const double aoqd_http_ttft_le[AOQD_HTTP_TTFT_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                          1,     2.5,  5,     10,   30,  60,   120};
const double aoqd_http_step_le[AOQD_HTTP_STEP_BUCKETS] = {
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60};

/* ---- small helpers ---------------------------------------------------------------------- */

typedef struct sbuf {
  char *p;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
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

static uint64_t wall_seconds(void) {
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

void aoqd_http_keys_free(char **keys, char **tenants, int n) {
  for (int i = 0; i < n; i++) {
    free(keys[i]);
    free(tenants[i]);
  }
  free(keys);
  free(tenants);
}

aoq_status aoqd_http_keys_load(const char *path, char ***keys_out, char ***tenants_out,
                               int *n_out) {
  FILE *f = fopen(path, "r");
  if (!f) return aoq_err(AOQ_EIO, "--api-keys %s: %s", path, strerror(errno));
  char line[1024];
  char **keys = NULL, **tenants = NULL;
  int n = 0, lineno = 0;
  aoq_status st = AOQ_OK;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    size_t L = strlen(line);
    if (L == sizeof line - 1 && line[L - 1] != '\n') {
      st = aoq_err(AOQ_EFORMAT, "--api-keys %s:%d: line longer than %zu bytes", path, lineno,
                   sizeof line - 2);
      break;
    }
    char *h = strchr(line, '#');
    if (h) *h = 0;
    char k[512], t[512], extra[8];
    int m = sscanf(line, "%511s %511s %7s", k, t, extra);
    if (m <= 0) continue;
    if (m != 2) {
      st = aoq_err(AOQ_EFORMAT, "--api-keys %s:%d: expected '<key> <tenant>'", path, lineno);
      break;
    }
    if (strlen(t) > 63) {
      st = aoq_err(AOQ_EFORMAT, "--api-keys %s:%d: tenant longer than 63 bytes", path, lineno);
      break;
    }
    for (int i = 0; i < n && st == AOQ_OK; i++)
      if (!strcmp(keys[i], k))
        st = aoq_err(AOQ_EFORMAT, "--api-keys %s:%d: key repeated (first on an earlier line)", path,
                     lineno);
    if (st != AOQ_OK) break;
    char **nk = realloc(keys, (size_t)(n + 1) * sizeof *nk);
    if (nk) keys = nk;
    char **nt = realloc(tenants, (size_t)(n + 1) * sizeof *nt);
    if (nt) tenants = nt;
    if (!nk || !nt) {
      st = aoq_err(AOQ_ENOMEM, "--api-keys: out of memory");
      break;
    }
    keys[n] = strdup(k);
    tenants[n] = strdup(t);
    n++;
    if (!keys[n - 1] || !tenants[n - 1]) {
      st = aoq_err(AOQ_ENOMEM, "--api-keys: out of memory");
      break;
    }
  }
  fclose(f);
  if (st == AOQ_OK && n == 0) st = aoq_err(AOQ_EFORMAT, "--api-keys %s: no keys", path);
  if (st != AOQ_OK) {
    aoqd_http_keys_free(keys, tenants, n);
    return st;
  }
  *keys_out = keys;
  *tenants_out = tenants;
  *n_out = n;
  return AOQ_OK;
}

/* ---- counters ----------------------------------------------------------------------------- */

static void count_status(aoqd_http *h, unsigned code) {
  pthread_mutex_lock(&h->st.mu);
  if (code >= 100 && code < 600) h->st.status[code / 100]++;
  pthread_mutex_unlock(&h->st.mu);
}

static void count_request(aoqd_http *h, const char *tenant, const char *model, uint64_t prompt,
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

static void count_ttft(aoqd_http *h, double sec) {
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

static enum MHD_Result send_body(aoqd_http *h, struct MHD_Connection *con, unsigned code,
                                 const char *type, char *body, size_t len) {
  struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  enum MHD_Result ret = MHD_queue_response(con, code, r);
  MHD_destroy_response(r);
  count_status(h, code);
  return ret;
}

static enum MHD_Result send_json(aoqd_http *h, struct MHD_Connection *con, unsigned code,
                                 cJSON *j) {
  char *s = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  if (!s) return MHD_NO;
  return send_body(h, con, code, "application/json", s, strlen(s));
}

static cJSON *error_object(const char *type, const char *param, const char *code, const char *msg) {
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

static enum MHD_Result send_error(aoqd_http *h, struct MHD_Connection *con, unsigned code,
                                  const char *param, const char *ecode, const char *fmt, ...)
    AOQ_PRINTF(6, 7);
static enum MHD_Result send_error(aoqd_http *h, struct MHD_Connection *con, unsigned code,
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
  cJSON *j = error_object(type, param, ecode, msg);
  if (!j) return MHD_NO;
  return send_json(h, con, code, j);
}

/* HTTP status for a daemon error. */
static unsigned http_code(aoq_status s) {
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

/* ---- request parsing ------------------------------------------------------------------------ */

typedef enum { EP_COMPLETIONS, EP_CHAT } endpoint_kind;

typedef struct gen_req {
  endpoint_kind kind;
  char model[256];
  char *prompt; /* malloc'ed: the text prompt or the rendered chat */
  aoq_gen_params p;
  int stream, include_usage;
  char *stops[MAX_STOPS];
  int n_stops;
} gen_req;

static void gen_req_free(gen_req *g) {
  free(g->prompt);
  for (int i = 0; i < g->n_stops; i++) free(g->stops[i]);
}

/* Fills g from the JSON body; on a bad request returns the parameter's name in *param and the
 * message in msg. */
static int parse_gen(cJSON *j, endpoint_kind kind, gen_req *g, const char **param, char *msg,
                     size_t msz) {
  memset(g, 0, sizeof *g);
  g->kind = kind;
  *param = NULL;
  if (!cJSON_IsObject(j)) return snprintf(msg, msz, "the body must be a JSON object"), -1;
  cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
  if (!cJSON_IsString(m) || !m->valuestring[0] || strlen(m->valuestring) >= sizeof g->model)
    return *param = "model", snprintf(msg, msz, "'model' must be a non-empty string"), -1;
  snprintf(g->model, sizeof g->model, "%s", m->valuestring);

  cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "n");
  if (n && !cJSON_IsNull(n) && (!cJSON_IsNumber(n) || n->valuedouble != 1))
    return *param = "n", snprintf(msg, msz, "only n=1 is supported"), -1;

  cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "max_tokens");
  cJSON *mct = cJSON_GetObjectItemCaseSensitive(j, "max_completion_tokens");
  if (mct && !cJSON_IsNull(mct)) mt = mct;
  g->p.max_tokens = kind == EP_COMPLETIONS ? 16 : 256;
  if (mt && !cJSON_IsNull(mt)) {
    if (!cJSON_IsNumber(mt) || mt->valuedouble < 1 || mt->valuedouble > MAX_TOKENS_LIMIT ||
        mt->valuedouble != (double)(int)mt->valuedouble)
      return *param = mt == mct ? "max_completion_tokens" : "max_tokens",
             snprintf(msg, msz, "max_tokens must be an integer in 1..%d", MAX_TOKENS_LIMIT), -1;
    g->p.max_tokens = (uint32_t)mt->valuedouble;
  }
  cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "temperature");
  g->p.temperature = 1.0f;
  if (t && !cJSON_IsNull(t)) {
    if (!cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble > 2)
      return *param = "temperature", snprintf(msg, msz, "temperature must be in [0, 2]"), -1;
    g->p.temperature = (float)t->valuedouble;
  }
  cJSON *tp = cJSON_GetObjectItemCaseSensitive(j, "top_p");
  if (tp && !cJSON_IsNull(tp)) {
    if (!cJSON_IsNumber(tp) || tp->valuedouble <= 0 || tp->valuedouble > 1)
      return *param = "top_p", snprintf(msg, msz, "top_p must be in (0, 1]"), -1;
    g->p.top_p = (float)tp->valuedouble;
  }
  cJSON *sd = cJSON_GetObjectItemCaseSensitive(j, "seed");
  if (sd && !cJSON_IsNull(sd)) {
    if (!cJSON_IsNumber(sd) || sd->valuedouble != (double)(long long)sd->valuedouble)
      return *param = "seed", snprintf(msg, msz, "seed must be an integer"), -1;
    g->p.seed = (uint64_t)(long long)sd->valuedouble;
  } else {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    g->p.seed = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec;
  }
  cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "stream");
  if (st && !cJSON_IsNull(st)) {
    if (!cJSON_IsBool(st))
      return *param = "stream", snprintf(msg, msz, "stream must be a boolean"), -1;
    g->stream = cJSON_IsTrue(st);
  }
  cJSON *so = cJSON_GetObjectItemCaseSensitive(j, "stream_options");
  if (so && cJSON_IsObject(so))
    g->include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));

  cJSON *stop = cJSON_GetObjectItemCaseSensitive(j, "stop");
  if (stop && !cJSON_IsNull(stop)) {
    cJSON *one = cJSON_IsString(stop) ? stop : NULL;
    if (!one && (!cJSON_IsArray(stop) || cJSON_GetArraySize(stop) > MAX_STOPS))
      return *param = "stop",
             snprintf(msg, msz, "stop must be a string or an array of at most %d strings",
                      MAX_STOPS),
             -1;
    cJSON *it = one ? one : stop->child;
    for (; it; it = one ? NULL : it->next) {
      if (!cJSON_IsString(it) || !it->valuestring[0])
        return *param = "stop", snprintf(msg, msz, "stop strings must be non-empty strings"), -1;
      if (!(g->stops[g->n_stops++] = strdup(it->valuestring)))
        return snprintf(msg, msz, "out of memory"), -1;
    }
  }

  if (kind == EP_COMPLETIONS) {
    cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prompt");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(p->child)) p = p->child;
    if (!cJSON_IsString(p))
      return *param = "prompt", snprintf(msg, msz, "'prompt' must be a string"), -1;
    g->p.add_bos = 1;
    if (!(g->prompt = strdup(p->valuestring))) return snprintf(msg, msz, "out of memory"), -1;
    return 0;
  }
  cJSON *ms = cJSON_GetObjectItemCaseSensitive(j, "messages");
  int nm = cJSON_IsArray(ms) ? cJSON_GetArraySize(ms) : 0;
  if (nm < 1 || nm > 4096)
    return *param = "messages", snprintf(msg, msz, "'messages' must be a non-empty array"), -1;
  aoq_chat_msg *cm = calloc((size_t)nm, sizeof *cm);
  char **owned = calloc((size_t)nm, sizeof *owned);
  int rc = 0, i = 0;
  if (!cm || !owned) {
    rc = -1;
    snprintf(msg, msz, "out of memory");
  }
  for (cJSON *e = ms->child; e && rc == 0; e = e->next, i++) {
    cJSON *role = cJSON_GetObjectItemCaseSensitive(e, "role");
    cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
    if (!cJSON_IsString(role)) {
      rc = -1, *param = "messages", snprintf(msg, msz, "messages[%d].role must be a string", i);
      break;
    }
    const char *r = role->valuestring;
    if (!strcmp(r, "developer")) r = "system";
    if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant")) {
      rc = -1, *param = "messages",
      snprintf(msg, msz, "messages[%d].role '%.32s' is not system, developer, user or assistant", i,
               role->valuestring);
      break;
    }
    cm[i].role = r;
    if (cJSON_IsString(content)) {
      cm[i].content = content->valuestring;
    } else if (cJSON_IsArray(content)) { /* [{type:"text", text:"..."}] parts are joined */
      sbuf b = {0};
      sb_put(&b, "", 0);
      for (cJSON *part = content->child; part && rc == 0; part = part->next) {
        cJSON *ty = cJSON_GetObjectItemCaseSensitive(part, "type");
        cJSON *tx = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "text") || !cJSON_IsString(tx)) {
          rc = -1, *param = "messages",
          snprintf(msg, msz, "messages[%d].content: only text parts are supported", i);
        } else {
          sb_put(&b, tx->valuestring, strlen(tx->valuestring));
        }
      }
      if (b.oom && rc == 0) rc = -1, snprintf(msg, msz, "out of memory");
      owned[i] = b.p;
      cm[i].content = b.p;
    } else if (cJSON_IsNull(content) && !strcmp(r, "assistant")) {
      cm[i].content = "";
    } else {
      rc = -1, *param = "messages",
      snprintf(msg, msz, "messages[%d].content must be a string or text parts", i);
    }
  }
  if (rc == 0 && aoq_chat_render(cm, (size_t)nm, &g->prompt) != AOQ_OK) {
    rc = -1, *param = "messages";
    snprintf(msg, msz, "%s", aoq_last_error());
  }
  for (int k = 0; owned && k < nm; k++) free(owned[k]);
  free(owned);
  free(cm);
  g->p.add_bos = 0; /* the template starts with <|begin_of_text|> */
  return rc;
}

/* ---- generation ------------------------------------------------------------------------------ */

/* One generation, run either on the connection thread (non-streaming) or on a worker thread
 * whose output a content reader drains (streaming). */
typedef struct gen_run {
  aoqd_http *h;
  gen_req g;
  char tenant[64];
  char id[48];
  uint64_t created;
  double t0;
  sbuf text;     /* generated text so far (truncated at a stop string) */
  size_t sent;   /* bytes of text already emitted as stream deltas */
  int stopped;   /* a stop string matched */
  aoq_status st; /* the generation's outcome */
  char err[512];
  aoq_gen_result res;
  /* streaming */
  pthread_t th;
  int th_on;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  sbuf out;        /* SSE bytes not yet read by the reader */
  size_t out_off;  /* read position in out */
  int first_event; /* the first token or the end arrived (the handler may answer) */
  int done;        /* the worker finished and wrote its last event */
  int closed;      /* the HTTP client went away: cancel */
} gen_run;

static cJSON *chunk_base(gen_run *r) {
  cJSON *c = cJSON_CreateObject();
  if (!c) return NULL;
  cJSON_AddStringToObject(c, "id", r->id);
  cJSON_AddStringToObject(c, "object",
                          r->g.kind == EP_CHAT ? "chat.completion.chunk" : "text_completion");
  cJSON_AddNumberToObject(c, "created", (double)r->created);
  cJSON_AddStringToObject(c, "model", r->g.model);
  cJSON_AddStringToObject(c, "system_fingerprint", "aoq-" AOQ_VERSION_STRING);
  return c;
}

/* Appends "data: <chunk>\n\n" to the stream (caller holds r->mu). */
static void emit_locked(gen_run *r, cJSON *c) {
  if (!c) {
    r->out.oom = 1;
    return;
  }
  char *s = cJSON_PrintUnformatted(c);
  cJSON_Delete(c);
  if (!s) {
    r->out.oom = 1;
    return;
  }
  sb_put(&r->out, "data: ", 6);
  sb_put(&r->out, s, strlen(s));
  sb_put(&r->out, "\n\n", 2);
  free(s);
}

static cJSON *choice_chunk(gen_run *r, const char *text, size_t n, const char *finish, int role) {
  cJSON *c = chunk_base(r), *arr = cJSON_CreateArray(), *ch = cJSON_CreateObject();
  if (!c || !arr || !ch) {
    cJSON_Delete(c);
    cJSON_Delete(arr);
    cJSON_Delete(ch);
    return NULL;
  }
  cJSON_AddNumberToObject(ch, "index", 0);
  char *t = malloc(n + 1);
  if (t) {
    memcpy(t, text, n);
    t[n] = 0;
  }
  if (r->g.kind == EP_CHAT) {
    cJSON *d = cJSON_CreateObject();
    if (role) cJSON_AddStringToObject(d, "role", "assistant");
    if (n || role) cJSON_AddStringToObject(d, "content", t ? t : "");
    cJSON_AddItemToObject(ch, "delta", d);
  } else {
    cJSON_AddStringToObject(ch, "text", t ? t : "");
  }
  free(t);
  cJSON_AddNullToObject(ch, "logprobs");
  if (finish)
    cJSON_AddStringToObject(ch, "finish_reason", finish);
  else
    cJSON_AddNullToObject(ch, "finish_reason");
  cJSON_AddItemToArray(arr, ch);
  cJSON_AddItemToObject(c, "choices", arr);
  return c;
}

/* Longest prefix of text[sent..n) that may be emitted: a stop string may still begin in the
 * last (longest stop - 1) bytes; never end inside a UTF-8 character. */
static size_t safe_end(const gen_run *r) {
  size_t hold = 0;
  for (int i = 0; i < r->g.n_stops; i++) {
    size_t L = strlen(r->g.stops[i]);
    if (L - 1 > hold) hold = L - 1;
  }
  size_t e = r->text.n > hold ? r->text.n - hold : 0;
  while (e > r->sent && e < r->text.n && ((unsigned char)r->text.p[e] & 0xC0) == 0x80) e--;
  return e < r->sent ? r->sent : e;
}

/* The first event of a stream: the assistant role (chat); the handler may now answer 200. */
static void stream_open_locked(gen_run *r) {
  if (r->first_event) return;
  if (r->g.kind == EP_CHAT) emit_locked(r, choice_chunk(r, "", 0, NULL, 1));
  r->first_event = 1;
  pthread_cond_broadcast(&r->cv);
}

/* Length of the valid UTF-8 character at s (n bytes available), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t L = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (!L || L > n || (L == 2 && c < 0xC2) || (L == 4 && c > 0xF4)) return 0;
  for (size_t i = 1; i < L; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  if (L == 3 && ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0))) return 0;
  if (L == 4 && ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))) return 0;
  return L;
}

/* Appends text with every invalid UTF-8 byte replaced by U+FFFD: JSON strings must be valid
 * UTF-8, and a streamed completion must read the same as the non-streamed one. */
static void put_utf8(sbuf *b, const char *text) {
  const unsigned char *s = (const unsigned char *)text;
  size_t n = strlen(text);
  sb_put(b, "", 0); /* allocated (and NUL-terminated) even when nothing is added */
  while (n) {
    size_t L = utf8_len(s, n);
    if (L) {
      sb_put(b, (const char *)s, L);
    } else {
      sb_put(b, "\xEF\xBF\xBD", 3);
      L = 1;
    }
    s += L;
    n -= L;
  }
}

static int on_token(void *ctx, int32_t token, const char *text) {
  (void)token;
  gen_run *r = ctx;
  size_t before = r->text.n;
  put_utf8(&r->text, text);
  if (r->text.oom) return 1;
  /* a stop string can only end in the new bytes; search from where it could start */
  size_t from = 0;
  for (int i = 0; i < r->g.n_stops; i++) {
    size_t L = strlen(r->g.stops[i]);
    size_t f = before + 1 > L ? before + 1 - L : 0;
    if (i == 0 || f < from) from = f;
  }
  size_t cut = r->text.n;
  for (int i = 0; i < r->g.n_stops; i++) {
    char *m = strstr(r->text.p + from, r->g.stops[i]);
    if (m && (size_t)(m - r->text.p) < cut) cut = (size_t)(m - r->text.p);
  }
  if (cut < r->text.n) {
    r->text.n = cut;
    r->text.p[cut] = 0;
    r->stopped = 1;
  }
  int cancel = r->stopped;
  if (r->g.stream) {
    pthread_mutex_lock(&r->mu);
    double now = aoqd_now();
    if (!r->first_event) {
      count_ttft(r->h, now - r->t0);
      stream_open_locked(r);
    }
    size_t e = r->stopped ? r->text.n : safe_end(r);
    if (e > r->sent) {
      emit_locked(r, choice_chunk(r, r->text.p + r->sent, e - r->sent, NULL, 0));
      r->sent = e;
      pthread_cond_broadcast(&r->cv);
    }
    if (r->closed) cancel = 1;
    pthread_mutex_unlock(&r->mu);
  } else if (!r->first_event) {
    r->first_event = 1;
    count_ttft(r->h, aoqd_now() - r->t0);
  }
  return cancel;
}

/* Checks that the model is resident (404 otherwise): a streamed request answers 200 at its first
 * token, so the common errors are found before. */
static aoq_status check_model(aoq_client *c, const char *model, char *err, size_t esz) {
  aoq_model_desc *ms = NULL;
  size_t n = 0;
  aoq_status st = aoq_models(c, &ms, &n);
  if (st != AOQ_OK) {
    snprintf(err, esz, "%s", aoq_client_last_error(c));
  } else {
    st = AOQ_ENOTFOUND;
    for (size_t i = 0; i < n; i++)
      if (!strcmp(ms[i].name, model)) st = AOQ_OK;
    if (st != AOQ_OK) snprintf(err, esz, "The model '%s' does not exist", model);
  }
  aoq_free(ms);
  return st;
}

/* Runs the generation through the daemon on a fresh session of r->tenant. */
static void generate(gen_run *r) {
  aoq_connect_opts co;
  memset(&co, 0, sizeof co);
  co.endpoint = r->h->endpoint;
  co.tenant = r->tenant;
  co.name = "http";
  aoq_client *c = NULL;
  r->st = aoq_connect_with(&co, &c);
  if (r->st != AOQ_OK) {
    snprintf(r->err, sizeof r->err, "cannot reach the scheduler: %s", aoq_last_error());
    return;
  }
  r->st = check_model(c, r->g.model, r->err, sizeof r->err);
  if (r->st != AOQ_OK) {
    aoq_disconnect(c);
    return;
  }
  r->st = aoq_generate_ex(c, r->g.model, r->g.prompt, NULL, 0, &r->g.p, on_token, r, &r->res);
  if (r->st == AOQ_ECANCELED && (r->stopped || r->text.oom)) r->st = AOQ_OK;
  if (r->st != AOQ_OK) {
    snprintf(r->err, sizeof r->err, "%s", aoq_client_last_error(c));
  } else if (r->text.oom) {
    r->st = AOQ_ENOMEM;
    snprintf(r->err, sizeof r->err, "out of memory collecting the completion");
  } else if (!r->stopped && !strcmp(r->res.finish_reason, "cancel")) {
    r->st = AOQ_ECANCELED; /* cancelled by the daemon (unload, shutdown): not a normal end */
    snprintf(r->err, sizeof r->err, "the daemon cancelled the generation");
  }
  aoq_disconnect(c);
}

static const char *finish_reason(const gen_run *r) {
  if (r->stopped) return "stop";
  return strcmp(r->res.finish_reason, "length") ? "stop" : "length";
}

static cJSON *usage_object(const gen_run *r) {
  cJSON *u = cJSON_CreateObject();
  if (!u) return NULL;
  cJSON_AddNumberToObject(u, "prompt_tokens", r->res.prompt_tokens);
  cJSON_AddNumberToObject(u, "completion_tokens", (double)r->res.n_tokens);
  cJSON_AddNumberToObject(u, "total_tokens", (double)(r->res.prompt_tokens + r->res.n_tokens));
  return u;
}

static void *stream_worker(void *arg) {
  gen_run *r = arg;
  generate(r);
  pthread_mutex_lock(&r->mu);
  if (r->st == AOQ_OK) {
    stream_open_locked(r);
    if (r->text.n > r->sent)
      emit_locked(r, choice_chunk(r, r->text.p + r->sent, r->text.n - r->sent, NULL, 0));
    r->sent = r->text.n;
    emit_locked(r, choice_chunk(r, "", 0, finish_reason(r), 0));
    if (r->g.include_usage) {
      cJSON *c = chunk_base(r);
      if (c) {
        cJSON_AddItemToObject(c, "choices", cJSON_CreateArray());
        cJSON_AddItemToObject(c, "usage", usage_object(r));
      }
      emit_locked(r, c);
    }
  } else if (r->first_event) { /* headers are out: the error goes in the stream */
    char msg[600];
    snprintf(msg, sizeof msg, "%s: %s", aoq_strerror(r->st), r->err);
    emit_locked(r, error_object(http_code(r->st) == 429 ? "rate_limit_error" : "server_error", NULL,
                                NULL, msg));
  }
  if (r->first_event) sb_put(&r->out, "data: [DONE]\n\n", 14);
  if (r->st == AOQ_OK)
    count_request(r->h, r->tenant, r->g.model, r->res.prompt_tokens, r->res.n_tokens);
  r->done = 1;
  r->first_event = 1;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

static void gen_run_free(gen_run *r) {
  if (!r) return;
  if (r->th_on) {
    pthread_mutex_lock(&r->mu);
    r->closed = 1;
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->th, NULL);
  }
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
  gen_req_free(&r->g);
  free(r->text.p);
  free(r->out.p);
  aoq_gen_result_free(&r->res);
  free(r);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  gen_run *r = cls;
  pthread_mutex_lock(&r->mu);
  while (r->out_off == r->out.n && !r->done) pthread_cond_wait(&r->cv, &r->mu);
  ssize_t n;
  if (r->out.oom) {
    n = MHD_CONTENT_READER_END_WITH_ERROR;
  } else if (r->out_off == r->out.n) {
    n = MHD_CONTENT_READER_END_OF_STREAM;
  } else {
    size_t k = r->out.n - r->out_off;
    if (k > max) k = max;
    memcpy(buf, r->out.p + r->out_off, k);
    r->out_off += k;
    n = (ssize_t)k;
  }
  pthread_mutex_unlock(&r->mu);
  return n;
}

static void stream_free(void *cls) {
  gen_run_free(cls);
}

static void make_id(gen_run *r) {
  static const char hex[] = "0123456789abcdef";
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t x = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec ^
               ((uint64_t)(uintptr_t)r << 7);
  const char *pre = r->g.kind == EP_CHAT ? "chatcmpl-" : "cmpl-";
  size_t k = strlen(pre);
  memcpy(r->id, pre, k);
  for (int i = 0; i < 24; i++) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    r->id[k++] = hex[(x >> 60) & 15];
  }
  r->id[k] = 0;
}

static enum MHD_Result send_gen_error(aoqd_http *h, struct MHD_Connection *con, aoq_status st,
                                      const char *err) {
  unsigned code = http_code(st);
  if (st == AOQ_ENOTFOUND) return send_error(h, con, code, "model", "model_not_found", "%s", err);
  return send_error(h, con, code, NULL, code == 429 ? "quota_exceeded" : NULL, "%s: %s",
                    aoq_strerror(st), err);
}

static enum MHD_Result serve_generate(aoqd_http *h, struct MHD_Connection *con, const char *tenant,
                                      endpoint_kind kind, const char *body, size_t len) {
  cJSON *j = cJSON_ParseWithLength(body, len);
  if (!j) return send_error(h, con, 400, NULL, NULL, "the request body is not valid JSON");
  gen_run *r = calloc(1, sizeof *r);
  if (!r) {
    cJSON_Delete(j);
    return send_error(h, con, 500, NULL, NULL, "out of memory");
  }
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  r->h = h;
  const char *param;
  char msg[512];
  int bad = parse_gen(j, kind, &r->g, &param, msg, sizeof msg);
  cJSON_Delete(j);
  if (bad) {
    gen_run_free(r);
    return send_error(h, con, 400, param, NULL, "%s", msg);
  }
  snprintf(r->tenant, sizeof r->tenant, "%s", tenant);
  r->created = wall_seconds();
  r->t0 = aoqd_now();
  make_id(r);

  if (!r->g.stream) {
    generate(r);
    if (r->st != AOQ_OK) {
      enum MHD_Result ret = send_gen_error(h, con, r->st, r->err);
      gen_run_free(r);
      return ret;
    }
    count_request(h, r->tenant, r->g.model, r->res.prompt_tokens, r->res.n_tokens);
    cJSON *c = chunk_base(r), *arr = cJSON_CreateArray(), *ch = cJSON_CreateObject();
    if (!c || !arr || !ch) {
      cJSON_Delete(c);
      cJSON_Delete(arr);
      cJSON_Delete(ch);
      gen_run_free(r);
      return send_error(h, con, 500, NULL, NULL, "out of memory");
    }
    cJSON_ReplaceItemInObject(
        c, "object", cJSON_CreateString(kind == EP_CHAT ? "chat.completion" : "text_completion"));
    cJSON_AddNumberToObject(ch, "index", 0);
    if (kind == EP_CHAT) {
      cJSON *m = cJSON_CreateObject();
      cJSON_AddStringToObject(m, "role", "assistant");
      cJSON_AddStringToObject(m, "content", r->text.p ? r->text.p : "");
      cJSON_AddNullToObject(m, "refusal");
      cJSON_AddItemToObject(ch, "message", m);
    } else {
      cJSON_AddStringToObject(ch, "text", r->text.p ? r->text.p : "");
    }
    cJSON_AddNullToObject(ch, "logprobs");
    cJSON_AddStringToObject(ch, "finish_reason", finish_reason(r));
    cJSON_AddItemToArray(arr, ch);
    cJSON_AddItemToObject(c, "choices", arr);
    cJSON_AddItemToObject(c, "usage", usage_object(r));
    gen_run_free(r);
    return send_json(h, con, 200, c);
  }

  if (pthread_create(&r->th, NULL, stream_worker, r) != 0) {
    gen_run_free(r);
    return send_error(h, con, 500, NULL, NULL, "cannot start a generation thread");
  }
  r->th_on = 1;
  pthread_mutex_lock(&r->mu);
  while (!r->first_event) pthread_cond_wait(&r->cv, &r->mu);
  int failed_early = r->done && r->st != AOQ_OK && r->out.n == 0;
  pthread_mutex_unlock(&r->mu);
  if (failed_early) {
    enum MHD_Result ret = send_gen_error(h, con, r->st, r->err);
    gen_run_free(r);
    return ret;
  }
  struct MHD_Response *resp =
      MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, r, stream_free);
  if (!resp) {
    gen_run_free(r);
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
  enum MHD_Result ret = MHD_queue_response(con, 200, resp);
  MHD_destroy_response(resp);
  count_status(h, 200);
  return ret;
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
    return send_error(h, con, http_code(st), NULL, NULL, "cannot reach the scheduler: %s",
                      aoq_last_error());
  aoq_model_desc *ms = NULL;
  size_t n = 0;
  st = aoq_models(c, &ms, &n);
  if (st != AOQ_OK) {
    enum MHD_Result r =
        send_error(h, con, http_code(st), NULL, NULL, "%s", aoq_client_last_error(c));
    aoq_disconnect(c);
    return r;
  }
  aoq_disconnect(c);
  double created = (double)wall_seconds() - (aoqd_now() - h->t_start);
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
      return send_error(h, con, 404, "model", "model_not_found", "The model '%s' does not exist",
                        one);
    return send_json(h, con, 200, found);
  }
  cJSON *root = cJSON_CreateObject();
  if (!root || !list) {
    cJSON_Delete(root);
    cJSON_Delete(list);
    return send_error(h, con, 500, NULL, NULL, "out of memory");
  }
  cJSON_AddStringToObject(root, "object", "list");
  cJSON_AddItemToObject(root, "data", list);
  return send_json(h, con, 200, root);
}

static enum MHD_Result serve_metrics(aoqd_http *h, struct MHD_Connection *con) {
  fold_steps(h);
  char *s;
  size_t len;
  if (aoqd_prom_render(h->mx, &h->st, aoqd_now() - h->t_start, &s, &len) != AOQ_OK)
    return send_error(h, con, 500, NULL, NULL, "%s", aoq_last_error());
  return send_body(h, con, 200, "text/plain; version=0.0.4; charset=utf-8", s, len);
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
    size_t lk = strlen(h->keys[i]);
    unsigned char d = la != lk;
    for (size_t k = 0; k < lk; k++) d |= (unsigned char)(h->keys[i][k] ^ (k < la ? a[k] : 0));
    if (!d) hit = i;
  }
  if (hit < 0) return -1;
  *tenant = h->tenants[hit];
  return 0;
}

typedef struct conn_ctx {
  sbuf body;
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
      sb_put(&cc->body, upload, *upload_size);
    *upload_size = 0;
    return MHD_YES;
  }
  int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
  if (!strcmp(url, "/metrics")) {
    if (!get) return send_error(h, con, 405, NULL, NULL, "GET /metrics only");
    return serve_metrics(h, con);
  }
  if (!strcmp(url, "/health")) {
    char *s = strdup("{\"status\":\"ok\"}");
    return s ? send_body(h, con, 200, "application/json", s, strlen(s)) : MHD_NO;
  }
  int is_models = !strcmp(url, "/v1/models"), is_model = !strncmp(url, "/v1/models/", 11);
  int is_cmpl = !strcmp(url, "/v1/completions"), is_chat = !strcmp(url, "/v1/chat/completions");
  if (!is_models && !is_model && !is_cmpl && !is_chat)
    return send_error(h, con, 404, NULL, "unknown_url", "Unknown request URL: %s %.200s", method,
                      url);
  const char *tenant;
  if (authenticate(h, con, &tenant) != 0)
    return send_error(h, con, 401, NULL, "invalid_api_key",
                      "Incorrect API key provided (Authorization: Bearer <key>)");
  if (is_models || is_model) {
    if (!get) return send_error(h, con, 405, NULL, NULL, "%s takes GET", url);
    return serve_models(h, con, tenant, is_model ? url + 11 : NULL);
  }
  if (!post) return send_error(h, con, 405, NULL, NULL, "%s takes POST", url);
  if (cc->too_big)
    return send_error(h, con, 413, NULL, NULL, "request body over %u bytes", MAX_BODY);
  return serve_generate(h, con, tenant, is_chat ? EP_CHAT : EP_COMPLETIONS,
                        cc->body.p ? cc->body.p : "", cc->body.n);
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
    aoq_status st = aoqd_http_keys_load(o->keys, &h->keys, &h->tenants, &h->n_keys);
    if (st != AOQ_OK) {
      aoqd_http_stop(h);
      return st;
    }
  }
  pthread_mutex_lock(&h->mx->mu);
  h->st.step_seen = h->mx->steps;
  pthread_mutex_unlock(&h->mx->mu);
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                   MHD_USE_ERROR_LOG | MHD_USE_ITC | (sa.sin6_family == AF_INET6 ? MHD_USE_IPv6 : 0);
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
  aoqd_http_keys_free(h->keys, h->tenants, h->n_keys);
  pthread_mutex_destroy(&h->st.mu);
  pthread_mutex_destroy(&h->stop_mu);
  pthread_cond_destroy(&h->stop_cv);
  free(h);
}
