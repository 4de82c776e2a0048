/*
 * http_internal.h — what the HTTP front end's two sources share: http.c (server, routes, keys,
 * counters, error responses) and http_openai.c (completion requests, generation, streaming).
 */
#ifndef AOQD_HTTP_INTERNAL_H
#define AOQD_HTTP_INTERNAL_H

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <stddef.h>

#include "base/error.h"
#include "daemon/http.h"

struct aoqd_http {
  struct MHD_Daemon *mhd;
  char endpoint[600];
  aoqd_http_key *keys;
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

/* A growing NUL-terminated byte string; oom latches on the first failed allocation. */
typedef struct aoqd_sbuf {
  char *p;
  size_t n, cap;
  int oom;
} aoqd_sbuf;
void aoqd_sb_put(aoqd_sbuf *b, const char *s, size_t n);
uint64_t aoqd_wall_seconds(void); /* Unix time, for "created" */

/* Counters (h->st, locked inside). */
void aoqd_http_count_status(aoqd_http *h, unsigned code);
void aoqd_http_count_request(aoqd_http *h, const char *tenant, const char *model, uint64_t prompt,
                             uint64_t completion);
void aoqd_http_count_ttft(aoqd_http *h, double sec);

/* Responses: each queues one response on con and counts its status. body is malloc'ed and
 * taken over; j is taken over (deleted). */
enum MHD_Result aoqd_http_send_body(aoqd_http *h, struct MHD_Connection *con, unsigned code,
                                    const char *type, char *body, size_t len);
enum MHD_Result aoqd_http_send_json(aoqd_http *h, struct MHD_Connection *con, unsigned code,
                                    cJSON *j);
/* OpenAI's {"error":{"message","type","param","code"}} (param, code may be NULL: JSON null). */
cJSON *aoqd_http_error_object(const char *type, const char *param, const char *code,
                              const char *msg);
/* An error response; its type follows from the status (400 invalid_request_error, 401
 * authentication_error, 404 not_found_error, 429 rate_limit_error, 5xx server_error). */
enum MHD_Result aoqd_http_send_error(aoqd_http *h, struct MHD_Connection *con, unsigned code,
                                     const char *param, const char *ecode, const char *fmt, ...)
    AOQ_PRINTF(6, 7);
/* HTTP status for a daemon status code. */
unsigned aoqd_http_status_code(aoq_status s);

/* POST /v1/completions (chat 0) or /v1/chat/completions (chat 1) with the request body, run as
 * `tenant` (http_openai.c). */
enum MHD_Result aoqd_http_serve_generate(aoqd_http *h, struct MHD_Connection *con,
                                         const char *tenant, int chat, const char *body,
                                         size_t len);

#endif
