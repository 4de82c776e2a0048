/*
 * bench_util.h — tiny helpers shared by the aoq-bench subcommands: a monotonic clock, the median
 * of repeated timings, and `--flag value` / `--flag=value` option parsing. Not thread-safe
 * (nothing here holds state); none of it allocates.
 */
#ifndef AOQ_TOOLS_BENCH_UTIL_H
#define AOQ_TOOLS_BENCH_UTIL_H

#include <stdbool.h>
#include <stdint.h>

/* Seconds on CLOCK_MONOTONIC (arbitrary origin). */
double aoq_bench_now(void);

/* Median of v[0..n) (sorts v in place); 0 for n <= 0. */
double aoq_bench_median(double *v, int n);

/* Options: each looks for `--name value` or `--name=value` in argv[1..argc).
 * Return 1 if found and parsed (into *out), 0 if absent (*out untouched), -1 if malformed (a
 * message naming the flag is printed to stderr). */
int aoq_bench_opt_str(int argc, char **argv, const char *name, const char **out);
int aoq_bench_opt_i64(int argc, char **argv, const char *name, int64_t *out);
/* True if the bare flag `--name` is present. */
bool aoq_bench_opt_flag(int argc, char **argv, const char *name);

/* Checks that every argv[1..argc) is one of `names` (NULL-terminated, without "--"), each name
 * in `with_value` taking one value. Returns 0 if all are known, else prints the first unknown
 * argument to stderr and returns -1. */
int aoq_bench_opts_check(int argc, char **argv, const char *const *flags,
                         const char *const *with_value);

#endif
