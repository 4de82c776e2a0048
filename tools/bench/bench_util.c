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
