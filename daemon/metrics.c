/* metrics.c — shared tenants, counters and step statistics (metrics.h). */
#include "daemon/metrics.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"

double aoqd_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void aoqd_metrics_init(aoqd_metrics *m) {
  memset(m, 0, sizeof *m);
  pthread_mutex_init(&m->mu, NULL);
  m->rate_t0 = aoqd_now();
}

void aoqd_metrics_destroy(aoqd_metrics *m) {
  pthread_mutex_destroy(&m->mu);
}

aoq_status aoqd_tenant_get_locked(aoqd_metrics *m, const char *name, int *idx) {
  size_t n = strlen(name);
  if (n == 0 || n >= sizeof m->tenants[0].name)
    return aoq_err(AOQ_EINVAL, "tenant name length %zu not in 1..%zu", n,
                   sizeof m->tenants[0].name - 1);
  for (int i = 0; i < m->n_tenants; i++)
    if (!strcmp(m->tenants[i].name, name)) {
      *idx = i;
      return AOQ_OK;
    }
  if (m->n_tenants == AOQD_MAX_TENANTS)
    return aoq_err(AOQ_EQUOTA, "%d tenants exist (the limit)", AOQD_MAX_TENANTS);
  aoqd_tenant_stats *t = &m->tenants[m->n_tenants];
  memset(t, 0, sizeof *t);
  memcpy(t->name, name, n + 1);
  *idx = m->n_tenants++;
  return AOQ_OK;
}

void aoqd_metrics_step(aoqd_metrics *m, uint32_t us, uint64_t tokens) {
  pthread_mutex_lock(&m->mu);
  m->step_us[m->steps % AOQD_STEP_RING] = us;
  m->steps++;
  m->tokens_total += tokens;
  double now = aoqd_now();
  if (now - m->rate_t0 >= 1.0) {
    m->tokens_per_s = (double)(m->tokens_total - m->rate_tokens0) / (now - m->rate_t0);
    m->rate_t0 = now;
    m->rate_tokens0 = m->tokens_total;
  }
  pthread_mutex_unlock(&m->mu);
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

void aoqd_metrics_step_pct_locked(const aoqd_metrics *m, double *p50, double *p99) {
  uint64_t n = m->steps < AOQD_STEP_RING ? m->steps : AOQD_STEP_RING;
  *p50 = *p99 = 0;
  if (!n) return;
  uint32_t tmp[AOQD_STEP_RING];
  memcpy(tmp, m->step_us, n * sizeof tmp[0]);
  qsort(tmp, n, sizeof tmp[0], cmp_u32);
  *p50 = tmp[(n - 1) / 2] / 1000.0;
  *p99 = tmp[(n - 1) * 99 / 100] / 1000.0;
}
