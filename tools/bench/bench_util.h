/*
 * bench_util.h — tiny helpers shared by the aoq-bench subcommands: a monotonic clock, the median
 * of repeated timings, `--flag value` / `--flag=value` option parsing, and device timing with
 * events (the copy-bandwidth ceiling included). Nothing here holds state.
 */
#ifndef AOQ_TOOLS_BENCH_UTIL_H
#define AOQ_TOOLS_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "devices/device.h"

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

/* The whole option handling of a subcommand, from a table: --help prints usage to stdout; every
 * other argument must be a table entry (`--name value` / `--name=value` for STR and I64, a bare
 * `--name` for FLAG, which sets *out to true); options not given keep their *out. Returns 0 to go
 * on, 1 after --help (the subcommand exits 0), 2 after printing the problem and then usage to
 * stderr (exit 2). At most 32 entries. */
typedef enum { AOQ_OPT_FLAG, AOQ_OPT_STR, AOQ_OPT_I64 } aoq_bench_opt_kind;
typedef struct aoq_bench_opt {
  const char *name; /* without "--" */
  aoq_bench_opt_kind kind;
  void *out; /* bool * (FLAG), const char ** (STR), int64_t * (I64) */
} aoq_bench_opt;
int aoq_bench_parse(int argc, char **argv, const aoq_bench_opt *opts, int n, void (*usage)(FILE *));
#define AOQ_BENCH_PARSE(argc, argv, opts, usage) \
  aoq_bench_parse(argc, argv, opts, (int)(sizeof(opts) / sizeof((opts)[0])), usage)

/* Device timing with events: the median over `batches` timings of `per` back-to-back calls
 * fn(arg, i) (i counts every call, after 3 warm-up calls) of the ms per call, in *ms_out. Returns
 * 0, or -1 after printing what failed to stderr. */
typedef aoq_status (*aoq_bench_call_fn)(void *arg, int i);
int aoq_bench_time_calls(aoq_device *d, aoq_bench_call_fn fn, void *arg, int per, int batches,
                         double *ms_out);
/* Device-to-device copy bandwidth (bytes read + written per second / 1e9) of a ping-pong between
 * two buffers of `bytes`, timed as above; 0 on failure (printed). The ceiling benchmarks compare
 * against. */
double aoq_bench_copy_gbps(aoq_device *d, size_t bytes);

#endif
