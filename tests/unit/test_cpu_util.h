/*
 * test_cpu_util.h — helpers shared by the CPU backend's tests (test_device_cpu.c,
 * test_cpu_attention.c, test_cpu_sample.c): a deterministic RNG, tensors that remember the exact
 * values they hold, a tolerance check that names the failing element, and opening "cpu:<threads>"
 * at a chosen SIMD level (AOQ_CPU_ISA).
 */
#ifndef AOQ_TESTS_UNIT_TEST_CPU_UTIL_H
#define AOQ_TESTS_UNIT_TEST_CPU_UTIL_H

/* cmocka.h needs the headers above it */
// clang-format off
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
// clang-format on

#include "base/error.h"
#include "devices/cpu/cpu_kernels.h"
#include "devices/device.h"

static uint64_t rng_state __attribute__((unused)) = 0x1234567887654321ull;
static inline double urand(void) { /* [-1, 1) */
  uint64_t x = (rng_state += 0x9e3779b97f4a7c15ull);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  return (double)(x >> 11) * 0x1.0p-52 - 1.0;
}

static inline size_t esz(aoq_dtype dt) {
  return dt == AOQ_DTYPE_F32 ? 4 : 2;
}

/* A tensor of dt on the device (host memory) and the exact values it holds, as doubles. */
typedef struct tens {
  void *p;
  double *v;
  int64_t n;
  aoq_dtype dt;
} tens;

static inline tens tens_new(aoq_device *d, int64_t n, aoq_dtype dt, double scale) {
  tens t = {NULL, calloc((size_t)(n ? n : 1), sizeof(double)), n, dt};
  assert_int_equal(aoq_dev_alloc(d, (size_t)n * esz(dt), &t.p), AOQ_OK);
  for (int64_t i = 0; i < n; i++) {
    float f = (float)(urand() * scale);
    aoq_cpu_st(t.p, i, f, dt);
    t.v[i] = aoq_cpu_ld(t.p, i, dt);
  }
  return t;
}

static inline void tens_free(aoq_device *d, tens *t) {
  aoq_dev_free(d, t->p);
  free(t->v);
}

static inline double rnd_dt(double v, aoq_dtype dt) {
  return dt == AOQ_DTYPE_F32 ? (double)(float)v : (double)aoq_round_bf16((float)v);
}

static inline const char *dt_name(aoq_dtype dt) {
  return dt == AOQ_DTYPE_F32 ? "f32" : "bf16";
}

/* Fails with the first element off by more than tol(i). */
#define CHECK_CLOSE(got, ref, tol, ...)                                \
  do {                                                                 \
    double g_ = (got), r_ = (ref), t_ = (tol);                         \
    if (!(fabs(g_ - r_) <= t_)) {                                      \
      print_message(__VA_ARGS__);                                      \
      print_message(": got %.9g, want %.9g (tol %.3g)\n", g_, r_, t_); \
      fail();                                                          \
    }                                                                  \
  } while (0)

__attribute__((unused)) static const char *isa_env[] = {"scalar", "avx2", "avx512"};

/* Opens "cpu:<threads>" at SIMD level isa. */
static inline aoq_device *open_cpu(int isa, int threads) {
  setenv("AOQ_CPU_ISA", isa_env[isa], 1);
  char name[32];
  snprintf(name, sizeof name, "cpu:%d", threads);
  aoq_device *d = NULL;
  aoq_status st = aoq_device_open(name, &d);
  if (st != AOQ_OK) print_message("open %s: %s\n", name, aoq_last_error());
  assert_int_equal(st, AOQ_OK);
  unsetenv("AOQ_CPU_ISA");
  return d;
}

static inline int n_isas(void) {
  return (int)aoq_cpu_isa_detect() + 1;
}

__attribute__((unused)) static const aoq_dtype dts[] = {AOQ_DTYPE_BF16, AOQ_DTYPE_F32};

#endif
