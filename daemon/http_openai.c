/* http_openai.c — the OpenAI completion routes of aoqd's HTTP front end (http.h): request
 * parsing, the Llama 3.1 chat template, generation through a libaoq session, stop strings, and
 * server-sent-event streaming. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/tokenizer.h"
#include "daemon/http_internal.h"

#define MAX_STOPS 4
#define MAX_TOKENS_LIMIT 1000000

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
  /* vLLM's extension: generate max_tokens tokens, never ending at the model's end tokens */
  cJSON *ie = cJSON_GetObjectItemCaseSensitive(j, "ignore_eos");
  if (ie && !cJSON_IsNull(ie)) {
    if (!cJSON_IsBool(ie))
      return *param = "ignore_eos", snprintf(msg, msz, "ignore_eos must be a boolean"), -1;
    if (cJSON_IsTrue(ie)) {
      static const int32_t none[1] = {-1}; /* a stop list no token matches */
      g->p.stop_tokens = none;
      g->p.n_stop_tokens = 1;
    }
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
      aoqd_sbuf b = {0};
      aoqd_sb_put(&b, "", 0);
      for (cJSON *part = content->child; part && rc == 0; part = part->next) {
        cJSON *ty = cJSON_GetObjectItemCaseSensitive(part, "type");
        cJSON *tx = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "text") || !cJSON_IsString(tx)) {
          rc = -1, *param = "messages",
          snprintf(msg, msz, "messages[%d].content: only text parts are supported", i);
        } else {
          aoqd_sb_put(&b, tx->valuestring, strlen(tx->valuestring));
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
  aoqd_sbuf text; /* generated text so far (truncated at a stop string) */
  size_t sent;    /* bytes of text already emitted as stream deltas */
  int stopped;    /* a stop string matched */
  aoq_status st;  /* the generation's outcome */
  char err[512];
  aoq_gen_result res;
  /* streaming */
  pthread_t th;
  int th_on;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  aoqd_sbuf out;   /* SSE bytes not yet read by the reader */
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
  aoqd_sb_put(&r->out, "data: ", 6);
  aoqd_sb_put(&r->out, s, strlen(s));
  aoqd_sb_put(&r->out, "\n\n", 2);
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
static void put_utf8(aoqd_sbuf *b, const char *text) {
  const unsigned char *s = (const unsigned char *)text;
  size_t n = strlen(text);
  aoqd_sb_put(b, "", 0); /* allocated (and NUL-terminated) even when nothing is added */
  while (n) {
    size_t L = utf8_len(s, n);
    if (L) {
      aoqd_sb_put(b, (const char *)s, L);
    } else {
      aoqd_sb_put(b, "\xEF\xBF\xBD", 3);
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
      aoqd_http_count_ttft(r->h, now - r->t0);
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
    aoqd_http_count_ttft(r->h, aoqd_now() - r->t0);
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
    emit_locked(r, aoqd_http_error_object(
                       aoqd_http_status_code(r->st) == 429 ? "rate_limit_error" : "server_error",
                       NULL, NULL, msg));
  }
  if (r->first_event) aoqd_sb_put(&r->out, "data: [DONE]\n\n", 14);
  if (r->st == AOQ_OK)
    aoqd_http_count_request(r->h, r->tenant, r->g.model, r->res.prompt_tokens, r->res.n_tokens);
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
  unsigned code = aoqd_http_status_code(st);
  if (st == AOQ_ENOTFOUND)
    return aoqd_http_send_error(h, con, code, "model", "model_not_found", "%s", err);
  return aoqd_http_send_error(h, con, code, NULL, code == 429 ? "quota_exceeded" : NULL, "%s: %s",
                              aoq_strerror(st), err);
}

enum MHD_Result aoqd_http_serve_generate(aoqd_http *h, struct MHD_Connection *con,
                                         const char *tenant, int chat, const char *body,
                                         size_t len) {
  endpoint_kind kind = chat ? EP_CHAT : EP_COMPLETIONS;
  cJSON *j = cJSON_ParseWithLength(body, len);
  if (!j)
    return aoqd_http_send_error(h, con, 400, NULL, NULL, "the request body is not valid JSON");
  gen_run *r = calloc(1, sizeof *r);
  if (!r) {
    cJSON_Delete(j);
    return aoqd_http_send_error(h, con, 500, NULL, NULL, "out of memory");
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
    return aoqd_http_send_error(h, con, 400, param, NULL, "%s", msg);
  }
  snprintf(r->tenant, sizeof r->tenant, "%s", tenant);
  r->created = aoqd_wall_seconds();
  r->t0 = aoqd_now();
  make_id(r);

  if (!r->g.stream) {
    generate(r);
    if (r->st != AOQ_OK) {
      enum MHD_Result ret = send_gen_error(h, con, r->st, r->err);
      gen_run_free(r);
      return ret;
    }
    aoqd_http_count_request(h, r->tenant, r->g.model, r->res.prompt_tokens, r->res.n_tokens);
    cJSON *c = chunk_base(r), *arr = cJSON_CreateArray(), *ch = cJSON_CreateObject();
    if (!c || !arr || !ch) {
      cJSON_Delete(c);
      cJSON_Delete(arr);
      cJSON_Delete(ch);
      gen_run_free(r);
      return aoqd_http_send_error(h, con, 500, NULL, NULL, "out of memory");
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
    return aoqd_http_send_json(h, con, 200, c);
  }

  if (pthread_create(&r->th, NULL, stream_worker, r) != 0) {
    gen_run_free(r);
    return aoqd_http_send_error(h, con, 500, NULL, NULL, "cannot start a generation thread");
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
  aoqd_http_count_status(h, 200);
  return ret;
}
