/*
 * test_cpu_pool.c — the CPU backend's thread pool (aoq_cpu_parallel): every index is visited
 * exactly once for any n/grain/thread count, nested calls run inline, two threads may call at
 * the same time, a fork()ed child (no workers) still completes its calls, and creating and
 * destroying pools leaks nothing (ASan).
 */
/* cmocka.h needs the headers above it */
// clang-format off
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
// clang-format on

#include "devices/cpu/cpu_kernels.h"

typedef struct visit {
  atomic_int *hits;
  int64_t n;
  atomic_int bad_range;
  aoq_cpu_ctx *ctx; /* for nested calls, or NULL */
} visit;

static void mark(void *arg, int64_t b, int64_t e) {
  visit *v = arg;
  if (b < 0 || e > v->n || b >= e) atomic_fetch_add(&v->bad_range, 1);
  for (int64_t i = b; i < e; i++) atomic_fetch_add(&v->hits[i], 1);
}

static void nested(void *arg, int64_t b, int64_t e) {
  visit *v = arg;
  for (int64_t i = b; i < e; i++) {
    /* Each outer index runs an inner parallel loop over its own 10 slots. */
    visit inner = {v->hits + i * 10, 10, 0, NULL};
    atomic_init(&inner.bad_range, 0);
    aoq_cpu_parallel(v->ctx, 10, 1, mark, &inner);
    if (atomic_load(&inner.bad_range)) atomic_fetch_add(&v->bad_range, 1);
  }
}

static aoq_cpu_ctx *ctx_new(int threads) {
  aoq_cpu_ctx *c = calloc(1, sizeof *c);
  c->threads = threads;
  assert_int_equal(aoq_cpu_pool_create(threads, &c->pool), AOQ_OK);
  if (threads == 1) assert_null(c->pool);
  return c;
}

static void ctx_free(aoq_cpu_ctx *c) {
  aoq_cpu_pool_destroy(c->pool);
  free(c);
}

static void check_once(aoq_cpu_ctx *c, int64_t n, int64_t grain) {
  visit v = {calloc((size_t)(n ? n : 1), sizeof(atomic_int)), n, 0, c};
  atomic_init(&v.bad_range, 0);
  aoq_cpu_parallel(c, n, grain, mark, &v);
  assert_int_equal(atomic_load(&v.bad_range), 0);
  for (int64_t i = 0; i < n; i++) assert_int_equal(atomic_load(&v.hits[i]), 1);
  free(v.hits);
}

static void test_every_index_once(void **state) {
  (void)state;
  static const int threads[] = {1, 2, 3, 8};
  static const int64_t ns[] = {0, 1, 2, 7, 100, 1001, 100003};
  static const int64_t grains[] = {0, 1, 3, 64, 1000000};
  for (size_t t = 0; t < 4; t++) {
    aoq_cpu_ctx *c = ctx_new(threads[t]);
    assert_int_equal(aoq_cpu_threads(c), threads[t]);
    for (size_t a = 0; a < 7; a++)
      for (size_t g = 0; g < 5; g++) check_once(c, ns[a], grains[g]);
    for (int rep = 0; rep < 200; rep++) check_once(c, 37, 1); /* many generations back to back */
    ctx_free(c);
  }
  check_once(NULL, 50, 1); /* no context: inline */
}

static void test_nested_calls_run_inline(void **state) {
  (void)state;
  aoq_cpu_ctx *c = ctx_new(3);
  visit v = {calloc(500, sizeof(atomic_int)), 50, 0, c};
  atomic_init(&v.bad_range, 0);
  aoq_cpu_parallel(c, 50, 1, nested, &v);
  assert_int_equal(atomic_load(&v.bad_range), 0);
  for (int i = 0; i < 500; i++) assert_int_equal(atomic_load(&v.hits[i]), 1);
  free(v.hits);
  ctx_free(c);
}

static void *caller(void *arg) {
  aoq_cpu_ctx *c = arg;
  for (int rep = 0; rep < 100; rep++) {
    visit v = {calloc(777, sizeof(atomic_int)), 777, 0, c};
    atomic_init(&v.bad_range, 0);
    aoq_cpu_parallel(c, 777, 5, mark, &v);
    int ok = atomic_load(&v.bad_range) == 0;
    for (int i = 0; i < 777; i++) ok &= atomic_load(&v.hits[i]) == 1;
    free(v.hits);
    if (!ok) return (void *)1;
  }
  return NULL;
}

static void test_concurrent_callers(void **state) {
  (void)state;
  aoq_cpu_ctx *c = ctx_new(3);
  pthread_t th[2];
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, caller, c), 0);
  for (int i = 0; i < 2; i++) {
    void *r = (void *)2;
    pthread_join(th[i], &r);
    assert_null(r);
  }
  ctx_free(c);
}

/* A child forked after the pool started has no workers: its calls must still complete. */
static void test_forked_child_runs_inline(void **state) {
  (void)state;
  aoq_cpu_ctx *c = ctx_new(3);
  check_once(c, 1000, 1);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    alarm(20); /* a child that waits for workers it does not have dies instead of hanging */
    int64_t n = 1000;
    atomic_int *hits = calloc((size_t)n, sizeof *hits);
    visit v = {hits, n, 0, c};
    atomic_init(&v.bad_range, 0);
    aoq_cpu_parallel(c, n, 1, mark, &v);
    int ok = atomic_load(&v.bad_range) == 0;
    for (int64_t i = 0; i < n; i++) ok &= atomic_load(&hits[i]) == 1;
    _exit(ok ? 0 : 1);
  }
  int status = -1;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  check_once(c, 1000, 1);
  ctx_free(c);
}

static void test_create_rejects_zero_threads(void **state) {
  (void)state;
  aoq_cpu_pool *p = (aoq_cpu_pool *)1;
  assert_int_equal(aoq_cpu_pool_create(0, &p), AOQ_EINVAL);
  assert_null(p);
  aoq_cpu_pool_destroy(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_index_once),
      cmocka_unit_test(test_nested_calls_run_inline),
      cmocka_unit_test(test_concurrent_callers),
      cmocka_unit_test(test_forked_child_runs_inline),
      cmocka_unit_test(test_create_rejects_zero_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
