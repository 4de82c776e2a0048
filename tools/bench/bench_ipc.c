/* bench_ipc.c — `aoq-bench ipc`: the cost of talking to aoqd. Starts a private aoqd with tiny
 * (or uses --endpoint/--admin-endpoint of a running one) and reports, in the same run:
 *   - a raw ZeroMQ DEALER/ROUTER round trip over ipc (the floor),
 *   - an empty request round trip through libaoq and aoqd (ping),
 *   - a 1 MiB shared-buffer matmul (2048 x 256 bf16 through layers.0.self_attn.o_proj),
 *   - aggregate generated tokens/s of N = 1, 4, 16 concurrent client processes (fork).
 * p50/p99 in microseconds. */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "aoq/aoq.h"
#include "tools/bench/bench_util.h"

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void report(const char *what, double *us, int n) {
  qsort(us, (size_t)n, sizeof *us, cmp_d);
  printf("%-44s p50 %9.1f us   p99 %9.1f us   (n=%d)\n", what, us[(n - 1) / 2],
         us[(n - 1) * 99 / 100], n);
}

/* ---- raw ZeroMQ baseline ------------------------------------------------------------------ */

typedef struct {
  void *ctx;
  const char *ep;
  int n;
} echo_args;

static void *echo_main(void *arg) {
  echo_args *a = arg;
  void *r = zmq_socket(a->ctx, ZMQ_ROUTER);
  zmq_bind(r, a->ep);
  for (int i = 0; i < a->n; i++) {
    zmq_msg_t id, body;
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    zmq_msg_recv(&id, r, 0);
    zmq_msg_recv(&body, r, 0);
    zmq_msg_send(&id, r, ZMQ_SNDMORE);
    zmq_msg_send(&body, r, 0);
  }
  int zero = 0;
  zmq_setsockopt(r, ZMQ_LINGER, &zero, sizeof zero);
  zmq_close(r);
  return NULL;
}

static int raw_baseline(const char *dir, int n, double *us) {
  char ep[600];
  snprintf(ep, sizeof ep, "ipc://%s/raw.sock", dir);
  void *ctx = zmq_ctx_new();
  echo_args a = {ctx, ep, n + 1};
  pthread_t th;
  pthread_create(&th, NULL, echo_main, &a);
  void *d = zmq_socket(ctx, ZMQ_DEALER);
  zmq_connect(d, ep);
  char buf[32] = "ping";
  zmq_send(d, buf, 16, 0); /* warm up: connect */
  zmq_recv(d, buf, sizeof buf, 0);
  for (int i = 0; i < n; i++) {
    double t0 = aoq_bench_now();
    zmq_send(d, buf, 16, 0);
    zmq_recv(d, buf, sizeof buf, 0);
    us[i] = (aoq_bench_now() - t0) * 1e6;
  }
  pthread_join(th, NULL);
  int zero = 0;
  zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
  zmq_close(d);
  zmq_ctx_term(ctx);
  return 0;
}

/* ---- daemon ------------------------------------------------------------------------------- */

static pid_t start_daemon(const char *aoqd, const char *ep, const char *aep, const char *log) {
  pid_t p = fork();
  if (p == 0) {
    FILE *f = freopen(log, "w", stderr);
    (void)f;
    execl(aoqd, aoqd, "--foreground", "--device", "auto", "--model", "tiny", "--synthetic",
          "--endpoint", ep, "--admin-endpoint", aep, (char *)NULL);
    _exit(127);
  }
  return p;
}

static void default_aoqd(char *out, size_t n) {
  char self[PATH_MAX];
  ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
  if (k > 0) {
    self[k] = 0;
    char *slash = strrchr(self, '/');
    if (slash) {
      *slash = 0;
      const char *cand[2] = {"/daemon/aoqd", "/aoqd"}; /* build tree; installed beside aoq-bench */
      for (int i = 0; i < 2; i++) {
        if (strlen(self) + strlen(cand[i]) >= n) continue;
        strcpy(out, self);
        strcat(out, cand[i]);
        if (access(out, X_OK) == 0) return;
      }
    }
  }
  snprintf(out, n, "aoqd");
}

static int gen_child(int tokens, uint64_t seed) {
  aoq_client *c;
  char tenant[32];
  snprintf(tenant, sizeof tenant, "bench%llu", (unsigned long long)seed);
  aoq_connect_opts o = {0};
  o.tenant = tenant;
  if (aoq_connect_with(&o, &c) != AOQ_OK) return 1;
  aoq_gen_params p = {0};
  p.max_tokens = (uint32_t)tokens;
  p.stop_tokens = (int32_t[]){-1};
  p.n_stop_tokens = 1;
  p.seed = seed;
  aoq_gen_result r;
  int32_t prompt[4] = {256, 66, 101, 110};
  aoq_status s = aoq_generate_ex(c, "tiny", NULL, prompt, 4, &p, NULL, NULL, &r);
  int ok = s == AOQ_OK && r.n_tokens == (size_t)tokens;
  if (s == AOQ_OK) aoq_gen_result_free(&r);
  aoq_disconnect(c);
  return ok ? 0 : 1;
}

static void ipc_usage(FILE *f) {
  fprintf(f,
          "usage: aoq-bench ipc [--endpoint EP --admin-endpoint EP] [--aoqd PATH] [--iters N] "
          "[--tokens N]\n"
          "  without --endpoint a private aoqd (tiny, synthetic, --device auto) is started\n");
}

int aoq_bench_ipc(int argc, char **argv) {
  const char *ep = NULL, *aep = NULL, *aoqd = NULL;
  int64_t iters = 2000, tokens = 64;
  const aoq_bench_opt opts[] = {
      {"endpoint", AOQ_OPT_STR, &ep},   {"admin-endpoint", AOQ_OPT_STR, &aep},
      {"aoqd", AOQ_OPT_STR, &aoqd},     {"iters", AOQ_OPT_I64, &iters},
      {"tokens", AOQ_OPT_I64, &tokens},
  };
  int pr = AOQ_BENCH_PARSE(argc, argv, opts, ipc_usage);
  if (pr) return pr == 1 ? 0 : 2;
  if (iters < 10 || iters > 1000000 || tokens < 1 || tokens > 4000) {
    fprintf(stderr, "aoq-bench ipc: --iters in 10..1e6, --tokens in 1..4000\n");
    return 2;
  }
  char dir[] = "/tmp/aoq-bench-ipc.XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char epb[600], aepb[600], log[600], aoqd_path[PATH_MAX];
  pid_t daemon = -1;
  if (!ep) {
    snprintf(epb, sizeof epb, "ipc://%s/aoqd.sock", dir);
    snprintf(aepb, sizeof aepb, "ipc://%s/aoqd-admin.sock", dir);
    snprintf(log, sizeof log, "%s/aoqd.log", dir);
    ep = epb;
    aep = aepb;
    if (!aoqd) {
      default_aoqd(aoqd_path, sizeof aoqd_path);
      aoqd = aoqd_path;
    }
    daemon = start_daemon(aoqd, ep, aep, log);
  }
  setenv("AOQ_ENDPOINT", ep, 1);
  if (aep) setenv("AOQ_ADMIN_ENDPOINT", aep, 1);
  aoq_client *c = NULL;
  for (int i = 0; i < 200 && aoq_connect(ep, &c) != AOQ_OK; i++) usleep(50000);
  int rc = 1;
  double *us = malloc((size_t)iters * sizeof *us);
  if (!c || !us) {
    fprintf(stderr, "aoq-bench ipc: cannot reach aoqd at %s: %s\n", ep, aoq_last_error());
    goto out;
  }
  raw_baseline(dir, (int)iters, us);
  report("raw zmq DEALER/ROUTER round trip (ipc)", us, (int)iters);
  for (int i = 0; i < (int)iters; i++) {
    double t0 = aoq_bench_now();
    if (aoq_ping(c) != AOQ_OK) goto out;
    us[i] = (aoq_bench_now() - t0) * 1e6;
  }
  report("aoqd empty request round trip (ping)", us, (int)iters);
  {
    size_t rows = 2048, bytes = rows * 256 * 2; /* 1 MiB in, 1 MiB out */
    aoq_buffer *x, *y;
    if (aoq_buffer_create(c, bytes, AOQ_MEM_HOST, &x) ||
        aoq_buffer_create(c, bytes, AOQ_MEM_HOST, &y)) {
      fprintf(stderr, "aoq-bench ipc: buffers: %s\n", aoq_client_last_error(c));
      goto out;
    }
    memset(aoq_buffer_map(x, NULL), 0x3f, bytes);
    int n = (int)(iters / 20 > 10 ? iters / 20 : 10);
    for (int i = 0; i < n; i++) {
      double t0 = aoq_bench_now();
      if (aoq_matmul(c, "tiny", "layers.0.self_attn.o_proj", x, 0, y, 0, rows, NULL, NULL) !=
          AOQ_OK) {
        fprintf(stderr, "aoq-bench ipc: matmul: %s\n", aoq_client_last_error(c));
        goto out;
      }
      us[i] = (aoq_bench_now() - t0) * 1e6;
    }
    report("1 MiB shared-buffer matmul (2048x256 @ o_proj)", us, n);
    aoq_buffer_free(x);
    aoq_buffer_free(y);
  }
  aoq_disconnect(c);
  c = NULL;
  int ns[3] = {1, 4, 16};
  for (int k = 0; k < 3; k++) {
    double t0 = aoq_bench_now();
    pid_t kids[16];
    for (int i = 0; i < ns[k]; i++) {
      kids[i] = fork();
      if (kids[i] == 0) _exit(gen_child((int)tokens, (uint64_t)i));
    }
    int failed = 0;
    for (int i = 0; i < ns[k]; i++) {
      int st;
      waitpid(kids[i], &st, 0);
      failed += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    double dt = aoq_bench_now() - t0;
    if (failed) {
      fprintf(stderr, "aoq-bench ipc: %d of %d clients failed\n", failed, ns[k]);
      goto out;
    }
    printf("%2d client processes x %3lld tokens (tiny)       %9.1f tokens/s aggregate  (%.2f s)\n",
           ns[k], (long long)tokens, ns[k] * (double)tokens / dt, dt);
  }
  rc = 0;
out:
  if (c) aoq_disconnect(c);
  free(us);
  if (daemon > 0) {
    kill(daemon, SIGTERM);
    waitpid(daemon, NULL, 0);
  }
  char cmd[700];
  snprintf(cmd, sizeof cmd, "%s/aoqd.log", dir);
  unlink(cmd);
  rmdir(dir);
  return rc;
}
