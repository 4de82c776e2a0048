/* bench_util.c — see bench_util.h. */
#include "tools/bench/bench_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double aoq_bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

double aoq_bench_median(double *v, int n) {
  if (n <= 0) return 0;
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Index of the value of --name in argv (the argument after it, or the text after '='), with
 * *val pointing at it; -1 if absent, -2 if the value is missing. */
static int find_opt(int argc, char **argv, const char *name, const char **val) {
  size_t len = strlen(name);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) || strncmp(a + 2, name, len)) continue;
    if (a[2 + len] == '=') {
      *val = a + 3 + len;
      return i;
    }
    if (a[2 + len] == '\0') {
      if (i + 1 >= argc) return -2;
      *val = argv[i + 1];
      return i;
    }
  }
  return -1;
}

int aoq_bench_opt_str(int argc, char **argv, const char *name, const char **out) {
  const char *v = NULL;
  int i = find_opt(argc, argv, name, &v);
  if (i == -1) return 0;
  if (i == -2) {
    fprintf(stderr, "option --%s needs a value\n", name);
    return -1;
  }
  *out = v;
  return 1;
}

int aoq_bench_opt_i64(int argc, char **argv, const char *name, int64_t *out) {
  const char *v = NULL;
  int r = aoq_bench_opt_str(argc, argv, name, &v);
  if (r <= 0) return r;
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (errno || end == v || *end) {
    fprintf(stderr, "option --%s: '%s' is not an integer\n", name, v);
    return -1;
  }
  *out = x;
  return 1;
}

bool aoq_bench_opt_flag(int argc, char **argv, const char *name) {
  for (int i = 1; i < argc; i++)
    if (!strncmp(argv[i], "--", 2) && !strcmp(argv[i] + 2, name)) return true;
  return false;
}

static int in_list(const char *const *list, const char *s, size_t len) {
  for (; list && *list; list++)
    if (strlen(*list) == len && !strncmp(*list, s, len)) return 1;
  return 0;
}

int aoq_bench_opts_check(int argc, char **argv, const char *const *flags,
                         const char *const *with_value) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2)) {
      fprintf(stderr, "unexpected argument '%s'\n", a);
      return -1;
    }
    const char *eq = strchr(a + 2, '=');
    size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
    if (in_list(with_value, a + 2, len)) {
      if (!eq) i++; /* the value */
      continue;
    }
    if (!eq && in_list(flags, a + 2, len)) continue;
    fprintf(stderr, "unknown option '%s'\n", a);
    return -1;
  }
  return 0;
}

int aoq_bench_parse(int argc, char **argv, const aoq_bench_opt *opts, int n,
                    void (*usage)(FILE *)) {
  if (aoq_bench_opt_flag(argc, argv, "help")) {
    usage(stdout);
    return 1;
  }
  const char *flags[34], *vals[33];
  int nf = 0, nv = 0;
  flags[nf++] = "help";
  for (int i = 0; i < n && i < 32; i++) {
    if (opts[i].kind == AOQ_OPT_FLAG)
      flags[nf++] = opts[i].name;
    else
      vals[nv++] = opts[i].name;
  }
  flags[nf] = vals[nv] = NULL;
  int bad = n > 32 || aoq_bench_opts_check(argc, argv, flags, vals) != 0;
  for (int i = 0; i < n && !bad; i++) {
    if (opts[i].kind == AOQ_OPT_FLAG) {
      if (aoq_bench_opt_flag(argc, argv, opts[i].name)) *(bool *)opts[i].out = true;
    } else if (opts[i].kind == AOQ_OPT_STR) {
      bad = aoq_bench_opt_str(argc, argv, opts[i].name, (const char **)opts[i].out) < 0;
    } else {
      bad = aoq_bench_opt_i64(argc, argv, opts[i].name, (int64_t *)opts[i].out) < 0;
    }
  }
  if (!bad) return 0;
  usage(stderr);
  return 2;
}

int aoq_bench_time_calls(aoq_device *d, aoq_bench_call_fn fn, void *arg, int per, int batches,
                         double *ms_out) {
  aoq_event *e0 = NULL, *e1 = NULL;
  double t[64];
  const char *what = NULL;
  if (batches > 64) batches = 64;
  if (batches < 1 || per < 1) batches = per = 1;
  if (aoq_dev_event_create(d, &e0) || aoq_dev_event_create(d, &e1)) what = "event_create";
  for (int i = 0; !what && i < 3; i++)
    if (fn(arg, i)) what = "warm-up call";
  for (int b = 0; !what && b < batches; b++) {
    float ms = 0;
    if (aoq_dev_event_record(d, e0, NULL)) what = "event_record";
    for (int i = 0; !what && i < per; i++)
      if (fn(arg, b * per + i)) what = "call";
    if (!what && (aoq_dev_event_record(d, e1, NULL) || aoq_dev_event_sync(d, e1) ||
                  aoq_dev_event_elapsed_ms(d, e0, e1, &ms)))
      what = "event timing";
    t[b] = ms / per;
  }
  if (e0) aoq_dev_event_destroy(d, e0);
  if (e1) aoq_dev_event_destroy(d, e1);
  if (what) {
    fprintf(stderr, "aoq-bench: %s: %s\n", what, aoq_last_error());
    return -1;
  }
  *ms_out = aoq_bench_median(t, batches);
  return 0;
}

typedef struct copy_arg {
  aoq_device *d;
  void *a, *b;
  size_t n;
} copy_arg;

static aoq_status copy_call(void *p, int i) {
  copy_arg *c = p;
  return i % 2 ? aoq_dev_copy_d2d(c->d, c->a, c->b, c->n, NULL)
               : aoq_dev_copy_d2d(c->d, c->b, c->a, c->n, NULL);
}

double aoq_bench_copy_gbps(aoq_device *d, size_t bytes) {
  copy_arg ca = {d, NULL, NULL, bytes};
  double ms = 0, gbps = 0;
  bool host = aoq_device_has(d, AOQ_CAP_HOST_MEMORY);
  if (aoq_dev_alloc(d, bytes, &ca.a) || aoq_dev_alloc(d, bytes, &ca.b) ||
      aoq_dev_memset(d, ca.a, 1, bytes, NULL) || aoq_dev_memset(d, ca.b, 2, bytes, NULL))
    fprintf(stderr, "aoq-bench: copy buffers: %s\n", aoq_last_error());
  else if (aoq_bench_time_calls(d, copy_call, &ca, host ? 2 : 10, 5, &ms) == 0 && ms > 0)
    gbps = 2.0 * (double)bytes / (ms * 1e-3) / 1e9;
  aoq_dev_free(d, ca.a);
  aoq_dev_free(d, ca.b);
  return gbps;
}
