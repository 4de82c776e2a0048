/*
 * cpu_pool.c — the CPU backend's thread pool: threads-1 persistent pthread workers plus the
 * calling thread share the chunks of one aoq_cpu_parallel call at a time.
 *
 * A call publishes (fn, arg, n, chunk), bumps a generation counter (release) and wakes the
 * workers, which spin briefly on the counter before sleeping on a condition variable; every
 * thread (caller included) takes chunks from an atomic counter until none are left; the caller
 * returns once every worker has checked in for that generation. Nothing is
 * allocated per call. Calls from inside a task, from a second thread while the pool is busy, or
 * from a fork()ed child (which has no workers) run inline on the calling thread (same result, no
 * deadlock).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "devices/cpu/cpu_kernels.h"

struct aoq_cpu_pool {
  pthread_mutex_t mu;
  pthread_cond_t wake, done;
  pthread_mutex_t busy;     /* held by the thread whose call owns the workers */
  atomic_uint_fast64_t gen; /* bumped (release) once the fields below describe a new call */
  atomic_int stop;
  atomic_int pending; /* workers that have not finished the current generation */
  aoq_cpu_task fn;
  void *arg;
  int64_t n, chunk, n_chunks;
  atomic_llong next;
  int n_workers, started;
  pthread_t *th;
  pid_t owner; /* the process whose threads these are: a fork()ed child runs inline */
};

/* Back-to-back ops (a decode step) hand work over faster if a worker spins briefly before
 * sleeping on the condition variable: ~32 us per call sleeping, a few us spinning. The spin is
 * short so that an idle device does not keep cores busy. */
#define SPIN_ITERS 2000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static _Thread_local int tl_in_pool; /* set in workers and while a caller runs chunks */

static void run_chunks(aoq_cpu_pool *p) {
  for (;;) {
    int64_t i = atomic_fetch_add(&p->next, 1);
    if (i >= p->n_chunks) break;
    int64_t b = i * p->chunk, e = b + p->chunk;
    p->fn(p->arg, b, e < p->n ? e : p->n);
  }
}

static void *worker(void *arg) {
  aoq_cpu_pool *p = arg;
  tl_in_pool = 1;
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = atomic_load_explicit(&p->gen, memory_order_acquire);
    for (int i = 0; g == seen && i < SPIN_ITERS && !atomic_load(&p->stop); i++) {
      cpu_relax();
      g = atomic_load_explicit(&p->gen, memory_order_acquire);
    }
    if (g == seen) {
      pthread_mutex_lock(&p->mu);
      while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen &&
             !atomic_load(&p->stop))
        pthread_cond_wait(&p->wake, &p->mu);
      pthread_mutex_unlock(&p->mu);
    }
    if (atomic_load(&p->stop)) break; /* only set while no call is in flight */
    seen = g;
    run_chunks(p);
    if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
      pthread_mutex_lock(&p->mu);
      pthread_cond_signal(&p->done);
      pthread_mutex_unlock(&p->mu);
    }
  }
  return NULL;
}

aoq_status aoq_cpu_pool_create(int threads, aoq_cpu_pool **out) {
  *out = NULL;
  if (threads < 1) return aoq_err(AOQ_EINVAL, "cpu pool: %d threads", threads);
  if (threads == 1) return AOQ_OK;
  aoq_cpu_pool *p = calloc(1, sizeof *p);
  if (!p) return aoq_err(AOQ_ENOMEM, "cpu pool");
  p->th = calloc((size_t)threads - 1, sizeof *p->th);
  if (!p->th) {
    free(p);
    return aoq_err(AOQ_ENOMEM, "cpu pool: %d thread handles", threads - 1);
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_mutex_init(&p->busy, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  atomic_init(&p->next, 0);
  atomic_init(&p->gen, 0);
  atomic_init(&p->stop, 0);
  atomic_init(&p->pending, 0);
  p->n_workers = threads - 1;
  p->owner = getpid();
  for (int i = 0; i < p->n_workers; i++) {
    int rc = pthread_create(&p->th[i], NULL, worker, p);
    if (rc != 0) {
      aoq_cpu_pool_destroy(p);
      return aoq_err(AOQ_EIO, "cpu pool: pthread_create failed for worker %d of %d: %s", i + 1,
                     threads - 1, strerror(rc));
    }
    p->started++;
  }
  *out = p;
  return AOQ_OK;
}

void aoq_cpu_pool_destroy(aoq_cpu_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  atomic_store(&p->stop, 1);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->started; i++) pthread_join(p->th[i], NULL);
  pthread_cond_destroy(&p->wake);
  pthread_cond_destroy(&p->done);
  pthread_mutex_destroy(&p->mu);
  pthread_mutex_destroy(&p->busy);
  free(p->th);
  free(p);
}

int aoq_cpu_threads(const aoq_cpu_ctx *c) {
  return c ? c->threads : 1;
}

void aoq_cpu_parallel(aoq_cpu_ctx *c, int64_t n, int64_t grain, aoq_cpu_task fn, void *arg) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  aoq_cpu_pool *p = c ? c->pool : NULL;
  int64_t max_chunks = (n + grain - 1) / grain;
  if (!p || max_chunks == 1 || tl_in_pool || p->owner != getpid() ||
      pthread_mutex_trylock(&p->busy) != 0) {
    fn(arg, 0, n);
    return;
  }
  /* A few chunks per thread so that uneven chunks still balance. */
  int64_t want = 4 * (int64_t)(p->n_workers + 1);
  int64_t n_chunks = max_chunks < want ? max_chunks : want;
  int64_t chunk = (n + n_chunks - 1) / n_chunks;
  p->fn = fn;
  p->arg = arg;
  p->n = n;
  p->chunk = chunk;
  p->n_chunks = (n + chunk - 1) / chunk;
  atomic_store(&p->next, 0);
  atomic_store(&p->pending, p->n_workers);
  pthread_mutex_lock(&p->mu); /* sleeping workers check gen under mu: no lost wake-up */
  atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);

  tl_in_pool = 1;
  run_chunks(p);
  tl_in_pool = 0;

  for (int i = 0; i < SPIN_ITERS && atomic_load_explicit(&p->pending, memory_order_acquire); i++)
    cpu_relax();
  if (atomic_load_explicit(&p->pending, memory_order_acquire)) {
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(&p->pending, memory_order_acquire))
      pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
  }
  pthread_mutex_unlock(&p->busy);
}
