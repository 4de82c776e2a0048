/*
 * metrics.h — the daemon's shared state for status and policy: tenants with quotas and usage,
 * a per-model snapshot published by the scheduler, wire counters per request type (bytes
 * received/sent on the socket: the zero-copy evidence), and step-time / token-rate statistics.
 *
 * Threading: every field is guarded by mu. The server thread creates tenants and counts wire
 * bytes; the scheduler thread publishes model snapshots, tenant usage and step statistics;
 * the status command reads a consistent copy under mu.
 */
#ifndef AOQD_METRICS_H
#define AOQD_METRICS_H

#include <pthread.h>
#include <stdint.h>

#include "aoq/aoq.h"
#include "proto/wire.h"

#define AOQD_MAX_TENANTS 256
#define AOQD_MAX_MODELS 8
#define AOQD_STEP_RING 1024

typedef struct aoqd_quota {
  int kv_pages; /* 0 = unlimited */
  int max_seqs; /* 0 = unlimited */
  int priority; /* higher is served first in each step's round robin */
} aoqd_quota;

typedef struct aoqd_tenant_stats {
  char name[64];
  aoqd_quota quota;
  int sessions;          /* server thread */
  int buffers;           /* server thread */
  uint64_t buffer_bytes; /* server thread */
  int device_buffers;           /* server thread */
  uint64_t device_buffer_bytes; /* server thread */
  int live_seqs, queued; /* scheduler */
  int kv_pages;          /* scheduler: pages held by its sequences */
  uint64_t tokens;       /* scheduler: tokens generated */
  uint64_t refused;      /* requests refused (quota, permission) */
} aoqd_tenant_stats;

typedef struct aoqd_model_stats {
  char name[256];
  char format[32];
  char state[16]; /* "ready", "reconfiguring" */
  uint64_t weight_bytes, kv_bytes;
  int kv_pages_total, kv_pages_free, page_size, live_seqs;
  int weight_copies; /* weight sets resident on the device (2 while a reconfigure prepares) */
  int vocab, hidden, layers;
  double load_seconds;
  uint64_t reconfigures;
} aoqd_model_stats;

typedef struct aoqd_metrics {
  pthread_mutex_t mu;
  aoqd_tenant_stats tenants[AOQD_MAX_TENANTS];
  int n_tenants;
  aoqd_model_stats models[AOQD_MAX_MODELS];
  int n_models;
  uint64_t requests[AOQ_WIRE_NTYPES], errors[AOQ_WIRE_NTYPES];
  uint64_t rx_bytes[AOQ_WIRE_NTYPES], tx_bytes[AOQ_WIRE_NTYPES];
  uint32_t step_us[AOQD_STEP_RING];
  uint64_t steps, tokens_total;
  double rate_t0;        /* start of the current tokens/s window (monotonic seconds) */
  uint64_t rate_tokens0; /* tokens_total at rate_t0 */
  double tokens_per_s;   /* over the last completed window */
  int live_seqs, queue_depth;
  int sessions;
  uint64_t refused_admin, refused_curve, sessions_reaped;
} aoqd_metrics;

void aoqd_metrics_init(aoqd_metrics *m);
void aoqd_metrics_destroy(aoqd_metrics *m);
double aoqd_now(void); /* monotonic seconds */

/* Index of tenant `name`, created with an unlimited quota if new (caller holds mu).
 * AOQ_EQUOTA when AOQD_MAX_TENANTS exist; AOQ_EINVAL for an empty or too long name. */
aoq_status aoqd_tenant_get_locked(aoqd_metrics *m, const char *name, int *idx);

/* Records one step of `us` microseconds that produced `tokens` tokens (takes mu). */
void aoqd_metrics_step(aoqd_metrics *m, uint32_t us, uint64_t tokens);
/* p50 and p99 of the recorded step times in ms (caller holds mu); 0 when none. */
void aoqd_metrics_step_pct_locked(const aoqd_metrics *m, double *p50, double *p99);

#endif
