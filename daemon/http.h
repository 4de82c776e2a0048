/*
 * http.h — aoqd's optional HTTP front end (`--http ADDR:PORT`): the OpenAI-compatible routes
 * GET /v1/models, POST /v1/completions, POST /v1/chat/completions (stream:true as server-sent
 * events), and GET /metrics in the Prometheus text format (prom.c).
 *
 * An HTTP request becomes a libaoq client session of the daemon itself, on its ipc endpoint, with
 * the tenant that the request's API key maps to ("http" without a keys file): HTTP generations are
 * sequences of the same scheduler and batch as every ZeroMQ client, under the same quotas.
 *
 * Threading: libmicrohttpd runs its own listening thread and one thread per connection; each
 * connection thread opens its own client handle. The server thread only starts and stops it.
 */
#ifndef AOQD_HTTP_H
#define AOQD_HTTP_H

#include <pthread.h>
#include <stdint.h>

#include "aoq/aoq.h"
#include "daemon/metrics.h"

#define AOQD_HTTP_MAX_SERIES 128 /* distinct (tenant, model) pairs counted per daemon */
#define AOQD_HTTP_TTFT_BUCKETS 14
#define AOQD_HTTP_STEP_BUCKETS 16

typedef struct aoqd_http aoqd_http;

typedef struct aoqd_http_opts {
  const char *addr;     /* "HOST:PORT" or "[V6]:PORT"; HOST may be a name resolvable locally */
  const char *keys;     /* NULL, or a file of lines "<key> <tenant>" ('#' starts a comment) */
  const char *endpoint; /* the daemon's client endpoint (ipc://...), borrowed */
  aoqd_metrics *mx;     /* borrowed, read for /metrics */
  double t_start;       /* daemon start (monotonic seconds) */
} aoqd_http_opts;

/* Parses "HOST:PORT" into a socket address (sockaddr_in or sockaddr_in6 in *sa, *salen bytes).
 * AOQ_EINVAL with a detail when it is not one. */
struct sockaddr;
aoq_status aoqd_http_parse_addr(const char *addr, struct sockaddr *sa, unsigned *salen);

/* One line of the keys file: "<key> <tenant> [kv_pages=N] [max_seqs=N] [priority=N]". The
 * optional fields set the tenant's quota when the front end starts (as `aoqctl quota` would;
 * --conf and aoqctl can change it later). */
typedef struct aoqd_http_key {
  char *key; /* malloc'ed */
  char tenant[64];
  int kv_pages, max_seqs, priority; /* not given: -1 (priority: below -100) */
} aoqd_http_key;

/* Reads the keys file into *keys (n entries; free with aoqd_http_keys_free). AOQ_EIO
 * (unreadable), AOQ_EFORMAT (a malformed line, a tenant over 63 bytes, a bad quota value, a
 * repeated key, no keys). */
aoq_status aoqd_http_keys_load(const char *path, aoqd_http_key **keys, int *n);
void aoqd_http_keys_free(aoqd_http_key *keys, int n);

/* Binds and starts serving; *out is freed by aoqd_http_stop. AOQ_EINVAL (address), AOQ_EIO
 * (bind failed: the detail says why), plus the keys file's errors. */
aoq_status aoqd_http_start(const aoqd_http_opts *o, aoqd_http **out);
/* Stops accepting, ends the connections (live generations are cancelled) and frees h. NULL ok. */
void aoqd_http_stop(aoqd_http *h);

/* ---- counters kept by the front end (prom.c renders them) ------------------------------- */

typedef struct aoqd_http_series {
  char tenant[64], model[256];
  uint64_t requests, prompt_tokens, completion_tokens;
} aoqd_http_series;

typedef struct aoqd_http_stats {
  pthread_mutex_t mu;
  aoqd_http_series series[AOQD_HTTP_MAX_SERIES];
  int n_series;
  uint64_t overflow_requests;                /* requests of pairs beyond AOQD_HTTP_MAX_SERIES */
  uint64_t status[6];                        /* responses by class: index 1..5 = 1xx..5xx */
  uint64_t ttft[AOQD_HTTP_TTFT_BUCKETS + 1]; /* per bucket (not cumulative); last = +Inf */
  double ttft_sum;
  uint64_t ttft_count;
  /* step latency, folded in from the scheduler's ring (metrics.h) by a sampler thread */
  uint64_t step[AOQD_HTTP_STEP_BUCKETS + 1];
  double step_sum;
  uint64_t step_count, step_seen, step_missed;
} aoqd_http_stats;

extern const double aoqd_http_ttft_le[AOQD_HTTP_TTFT_BUCKETS];
extern const double aoqd_http_step_le[AOQD_HTTP_STEP_BUCKETS];

/* Renders the Prometheus text exposition (format 0.0.4) of mx and st into a malloc'ed string. */
aoq_status aoqd_prom_render(aoqd_metrics *mx, aoqd_http_stats *st, double uptime, char **out,
                            size_t *len);

#endif
