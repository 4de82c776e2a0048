/* prom.c — the daemon's counters in the Prometheus text exposition format 0.0.4 (http.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "daemon/http.h"
#include "proto/wire.h"

typedef struct pbuf {
  char *p;
  size_t n, cap;
  int oom;
} pbuf;

static void pb_printf(pbuf *b, const char *fmt, ...) AOQ_PRINTF(2, 3);
static void pb_printf(pbuf *b, const char *fmt, ...) {
  if (b->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
    va_end(ap);
    if (k < 0) {
      b->oom = 1;
      return;
    }
    if (b->p && b->n + (size_t)k < b->cap) {
      b->n += (size_t)k;
      return;
    }
    size_t cap = b->cap ? b->cap * 2 : 16384;
    while (cap < b->n + (size_t)k + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
}

/* A label value with \ " and newline escaped (the format's only escapes), into a fixed buffer. */
static const char *esc(const char *s, char *out, size_t n) {
  size_t k = 0;
  for (; *s && k + 3 < n; s++) {
    if (*s == '\\' || *s == '"') {
      out[k++] = '\\';
      out[k++] = *s;
    } else if (*s == '\n') {
      out[k++] = '\\';
      out[k++] = 'n';
    } else {
      out[k++] = *s;
    }
  }
  out[k] = 0;
  return out;
}

static void head(pbuf *b, const char *name, const char *type, const char *help) {
  pb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histogram(pbuf *b, const char *name, const double *le, int nb, const uint64_t *cnt,
                      double sum, uint64_t count) {
  uint64_t acc = 0;
  for (int i = 0; i < nb; i++) {
    acc += cnt[i];
    pb_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, le[i], (unsigned long long)acc);
  }
  acc += cnt[nb];
  pb_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)acc);
  pb_printf(b, "%s_sum %.9g\n%s_count %llu\n", name, sum, name, (unsigned long long)count);
}

aoq_status aoqd_prom_render(aoqd_metrics *mx, aoqd_http_stats *st, double uptime, char **out,
                            size_t *len) {
  pbuf b = {0};
  char e1[512], e2[512];
  head(&b, "aoq_uptime_seconds", "gauge", "Seconds since aoqd started.");
  pb_printf(&b, "aoq_uptime_seconds %.3f\n", uptime);

  pthread_mutex_lock(&mx->mu);
  head(&b, "aoq_wire_requests_total", "counter",
       "Requests received on the ZeroMQ sockets by type.");
  for (int i = 0; i < AOQ_WIRE_NTYPES; i++)
    pb_printf(&b, "aoq_wire_requests_total{type=\"%s\"} %llu\n",
              esc(aoq_wire_type_name(i), e1, sizeof e1), (unsigned long long)mx->requests[i]);
  head(&b, "aoq_wire_errors_total", "counter", "Error replies by request type.");
  for (int i = 0; i < AOQ_WIRE_NTYPES; i++)
    pb_printf(&b, "aoq_wire_errors_total{type=\"%s\"} %llu\n",
              esc(aoq_wire_type_name(i), e1, sizeof e1), (unsigned long long)mx->errors[i]);
  head(&b, "aoq_tenant_tokens_total", "counter",
       "Tokens generated for each tenant (ZeroMQ and HTTP clients).");
  for (int i = 0; i < mx->n_tenants; i++)
    pb_printf(&b, "aoq_tenant_tokens_total{tenant=\"%s\"} %llu\n",
              esc(mx->tenants[i].name, e1, sizeof e1), (unsigned long long)mx->tenants[i].tokens);
  head(&b, "aoq_tenant_refused_total", "counter",
       "Requests refused (quota, permission) by tenant.");
  for (int i = 0; i < mx->n_tenants; i++)
    pb_printf(&b, "aoq_tenant_refused_total{tenant=\"%s\"} %llu\n",
              esc(mx->tenants[i].name, e1, sizeof e1), (unsigned long long)mx->tenants[i].refused);
  head(&b, "aoq_tenant_live_sequences", "gauge", "Live sequences by tenant.");
  for (int i = 0; i < mx->n_tenants; i++)
    pb_printf(&b, "aoq_tenant_live_sequences{tenant=\"%s\"} %d\n",
              esc(mx->tenants[i].name, e1, sizeof e1), mx->tenants[i].live_seqs);
  head(&b, "aoq_tenant_kv_pages", "gauge", "KV-cache pages held by each tenant's sequences.");
  for (int i = 0; i < mx->n_tenants; i++)
    pb_printf(&b, "aoq_tenant_kv_pages{tenant=\"%s\"} %d\n",
              esc(mx->tenants[i].name, e1, sizeof e1), mx->tenants[i].kv_pages);
  head(&b, "aoq_tokens_generated_total", "counter", "Tokens generated, all tenants.");
  pb_printf(&b, "aoq_tokens_generated_total %llu\n", (unsigned long long)mx->tokens_total);
  head(&b, "aoq_steps_total", "counter", "Scheduler steps run.");
  pb_printf(&b, "aoq_steps_total %llu\n", (unsigned long long)mx->steps);
  head(&b, "aoq_queue_depth", "gauge", "Sequences waiting for admission.");
  pb_printf(&b, "aoq_queue_depth %d\n", mx->queue_depth);
  head(&b, "aoq_live_sequences", "gauge", "Sequences being decoded or prefilled.");
  pb_printf(&b, "aoq_live_sequences %d\n", mx->live_seqs);
  head(&b, "aoq_sessions", "gauge", "Open client sessions.");
  pb_printf(&b, "aoq_sessions %d\n", mx->sessions);
  head(&b, "aoq_kv_pages", "gauge", "KV-cache pages by model and state (used, free).");
  for (int i = 0; i < mx->n_models; i++) {
    const aoqd_model_stats *m = &mx->models[i];
    esc(m->name, e1, sizeof e1);
    pb_printf(&b, "aoq_kv_pages{model=\"%s\",state=\"used\"} %d\n", e1,
              m->kv_pages_total - m->kv_pages_free);
    pb_printf(&b, "aoq_kv_pages{model=\"%s\",state=\"free\"} %d\n", e1, m->kv_pages_free);
  }
  head(&b, "aoq_device_memory_bytes", "gauge", "Device memory by model and pool (weights, kv).");
  for (int i = 0; i < mx->n_models; i++) {
    const aoqd_model_stats *m = &mx->models[i];
    esc(m->name, e1, sizeof e1);
    pb_printf(&b, "aoq_device_memory_bytes{model=\"%s\",pool=\"weights\"} %llu\n", e1,
              (unsigned long long)m->weight_bytes);
    pb_printf(&b, "aoq_device_memory_bytes{model=\"%s\",pool=\"kv\"} %llu\n", e1,
              (unsigned long long)m->kv_bytes);
  }
  head(&b, "aoq_model_live_sequences", "gauge", "Live sequences by model.");
  for (int i = 0; i < mx->n_models; i++)
    pb_printf(&b, "aoq_model_live_sequences{model=\"%s\"} %d\n",
              esc(mx->models[i].name, e1, sizeof e1), mx->models[i].live_seqs);
  head(&b, "aoq_reconfigurations_total", "counter", "Committed format reconfigurations by model.");
  for (int i = 0; i < mx->n_models; i++)
    pb_printf(&b, "aoq_reconfigurations_total{model=\"%s\"} %llu\n",
              esc(mx->models[i].name, e1, sizeof e1),
              (unsigned long long)mx->models[i].reconfigures);
  head(&b, "aoq_model_info", "gauge", "Resident models: format and state as labels (value 1).");
  for (int i = 0; i < mx->n_models; i++)
    pb_printf(&b, "aoq_model_info{model=\"%s\",format=\"%s\",state=\"%s\"} 1\n",
              esc(mx->models[i].name, e1, sizeof e1), esc(mx->models[i].format, e2, sizeof e2),
              mx->models[i].state);
  pthread_mutex_unlock(&mx->mu);

  pthread_mutex_lock(&st->mu);
  head(&b, "aoq_http_requests_total", "counter",
       "Completed HTTP generation requests by tenant and model.");
  for (int i = 0; i < st->n_series; i++)
    pb_printf(&b, "aoq_http_requests_total{tenant=\"%s\",model=\"%s\"} %llu\n",
              esc(st->series[i].tenant, e1, sizeof e1), esc(st->series[i].model, e2, sizeof e2),
              (unsigned long long)st->series[i].requests);
  head(&b, "aoq_http_tokens_total", "counter",
       "Tokens of HTTP generations by tenant, model and kind (prompt, completion).");
  for (int i = 0; i < st->n_series; i++) {
    esc(st->series[i].tenant, e1, sizeof e1);
    esc(st->series[i].model, e2, sizeof e2);
    pb_printf(&b, "aoq_http_tokens_total{tenant=\"%s\",model=\"%s\",kind=\"prompt\"} %llu\n", e1,
              e2, (unsigned long long)st->series[i].prompt_tokens);
    pb_printf(&b, "aoq_http_tokens_total{tenant=\"%s\",model=\"%s\",kind=\"completion\"} %llu\n",
              e1, e2, (unsigned long long)st->series[i].completion_tokens);
  }
  head(&b, "aoq_http_requests_unlabelled_total", "counter",
       "HTTP generations beyond the per-(tenant, model) series limit.");
  pb_printf(&b, "aoq_http_requests_unlabelled_total %llu\n",
            (unsigned long long)st->overflow_requests);
  head(&b, "aoq_http_responses_total", "counter", "HTTP responses by status class.");
  for (int c = 1; c <= 5; c++)
    pb_printf(&b, "aoq_http_responses_total{code=\"%dxx\"} %llu\n", c,
              (unsigned long long)st->status[c]);
  head(&b, "aoq_time_to_first_token_seconds", "histogram",
       "HTTP generations: seconds from the request to the first generated token.");
  histogram(&b, "aoq_time_to_first_token_seconds", aoqd_http_ttft_le, AOQD_HTTP_TTFT_BUCKETS,
            st->ttft, st->ttft_sum, st->ttft_count);
  head(&b, "aoq_step_seconds", "histogram", "Scheduler step latency (all tenants).");
  histogram(&b, "aoq_step_seconds", aoqd_http_step_le, AOQD_HTTP_STEP_BUCKETS, st->step,
            st->step_sum, st->step_count);
  head(&b, "aoq_step_samples_missed_total", "counter",
       "Steps that left the scheduler's ring before the histogram read them.");
  pb_printf(&b, "aoq_step_samples_missed_total %llu\n", (unsigned long long)st->step_missed);
  pthread_mutex_unlock(&st->mu);

  if (b.oom) {
    free(b.p);
    return aoq_err(AOQ_ENOMEM, "/metrics: out of memory");
  }
  *out = b.p;
  *len = b.n;
  return AOQ_OK;
}
