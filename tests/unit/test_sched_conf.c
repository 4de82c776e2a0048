/* test_sched_conf.c — the scheduler's settings file (daemon/admin.h aoqd_admin_load_conf): quota
 * lines set tenants' KV pages, sequences and priority; a bad line anywhere changes nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* cmocka.h needs the headers above it */
#include <cmocka.h>

#include "daemon/admin.h"

static char path[64];

static void write_conf(const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static int tenant(aoqd_metrics *m, const char *name) {
  for (int i = 0; i < m->n_tenants; i++)
    if (!strcmp(m->tenants[i].name, name)) return i;
  return -1;
}

static void quota_lines_set_tenants(void **st) {
  (void)st;
  aoqd_metrics *m = malloc(sizeof *m);
  aoqd_metrics_init(m);
  aoqd_server sv;
  memset(&sv, 0, sizeof sv);
  sv.mx = m;
  write_conf("# comment\n\nquota alice kv_pages=64 max_seqs=2 priority=3\nquota bob priority=-1\n");
  assert_int_equal(aoqd_admin_load_conf(&sv, path), AOQ_OK);
  int a = tenant(m, "alice"), b = tenant(m, "bob");
  assert_true(a >= 0 && b >= 0);
  assert_int_equal(m->tenants[a].quota.kv_pages, 64);
  assert_int_equal(m->tenants[a].quota.max_seqs, 2);
  assert_int_equal(m->tenants[a].quota.priority, 3);
  assert_int_equal(m->tenants[b].quota.priority, -1);
  assert_int_equal(m->tenants[b].quota.max_seqs, 0);
  /* all or nothing: the good first line of a bad file is not applied */
  const char *bad[] = {"quota alice max_seqs=9\nquota carol max_seqs=x\n",
                       "quota alice max_seqs=9\nlimit carol\n",
                       "quota alice max_seqs=9\nquota\n",
                       "quota alice max_seqs=9 colour=3\n",
                       "quota alice max_seqs=-2\n",
                       "quota alice priority=101\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    write_conf(bad[i]);
    assert_int_equal(aoqd_admin_load_conf(&sv, path), AOQ_EFORMAT);
    assert_int_equal(m->tenants[a].quota.max_seqs, 2);
    assert_int_equal(tenant(m, "carol"), -1);
  }
  assert_int_equal(aoqd_admin_load_conf(&sv, "/nonexistent/aoqd.conf"), AOQ_EIO);
  unlink(path);
  aoqd_metrics_destroy(m);
  free(m);
}

static void tenant_names_are_bounded(void **st) {
  (void)st;
  aoqd_metrics *m = malloc(sizeof *m);
  aoqd_metrics_init(m);
  int idx;
  assert_int_equal(aoqd_tenant_get_locked(m, "", &idx), AOQ_EINVAL);
  char longname[100];
  memset(longname, 'x', sizeof longname - 1);
  longname[99] = 0;
  assert_int_equal(aoqd_tenant_get_locked(m, longname, &idx), AOQ_EINVAL);
  char name[16];
  for (int i = 0; i < AOQD_MAX_TENANTS; i++) {
    snprintf(name, sizeof name, "t%d", i);
    assert_int_equal(aoqd_tenant_get_locked(m, name, &idx), AOQ_OK);
    assert_int_equal(idx, i);
  }
  assert_int_equal(aoqd_tenant_get_locked(m, "one-more", &idx), AOQ_EQUOTA);
  assert_int_equal(aoqd_tenant_get_locked(m, "t7", &idx), AOQ_OK); /* existing: found */
  assert_int_equal(idx, 7);
  aoqd_metrics_destroy(m);
  free(m);
}

static void step_percentiles(void **st) {
  (void)st;
  aoqd_metrics *m = malloc(sizeof *m);
  aoqd_metrics_init(m);
  double p50, p99;
  aoqd_metrics_step_pct_locked(m, &p50, &p99);
  assert_true(p50 == 0 && p99 == 0);
  for (uint32_t i = 1; i <= 100; i++) aoqd_metrics_step(m, i * 1000, 1);
  aoqd_metrics_step_pct_locked(m, &p50, &p99);
  assert_true(p50 == 50.0);
  assert_true(p99 == 99.0);
  assert_int_equal(m->tokens_total, 100);
  aoqd_metrics_destroy(m);
  free(m);
}

int main(void) {
  snprintf(path, sizeof path, "/tmp/aoq-test-conf-%d", (int)getpid());
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(quota_lines_set_tenants),
      cmocka_unit_test(tenant_names_are_bounded),
      cmocka_unit_test(step_percentiles),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
