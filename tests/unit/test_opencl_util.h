/*
 * test_opencl_util.h — shared by the PoCL harness tests (test_opencl_*.c): opening the OpenCL
 * device next to the CPU oracle, host<->device helpers and bf16 ulp distances. (The leak
 * suppressions for PoCL's own allocations live in devices/xpu/xpu_cl.c.)
 */
#ifndef AOQ_TESTS_UNIT_TEST_OPENCL_UTIL_H
#define AOQ_TESTS_UNIT_TEST_OPENCL_UTIL_H

// clang-format off
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
// clang-format on

#include "base/error.h"
#include "devices/device.h"
#include "devices/xpu/xpu_cl.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcomment"
#include "base/numerics.h"
#pragma GCC diagnostic pop

typedef struct pair {
  aoq_device *cpu, *cl;
} pair;

static uint64_t t_rng = 0x9e3779b97f4a7c15ull;
static inline float t_urand(void) { /* [-1, 1) */
  uint64_t x = (t_rng += 0x9e3779b97f4a7c15ull);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  return (float)((double)(x >> 11) * 0x1.0p-52 - 1.0);
}

/* n random bf16 values in [-scale, scale), host memory (caller frees). */
static inline uint16_t *rand_bf16(int64_t n, float scale) {
  uint16_t *h = malloc((size_t)(n ? n : 1) * 2);
  for (int64_t i = 0; i < n; i++) h[i] = aoq_f32_to_bf16(t_urand() * scale);
  return h;
}

/* Allocates on d and uploads bytes (host) there. */
static inline void *up(aoq_device *d, const void *host, size_t bytes) {
  void *p = NULL;
  assert_int_equal(aoq_dev_alloc(d, bytes, &p), AOQ_OK);
  if (bytes) assert_int_equal(aoq_dev_copy_h2d(d, p, host, bytes, NULL), AOQ_OK);
  return p;
}

/* Syncs d and downloads bytes from p into a new host buffer (caller frees). */
static inline void *down(aoq_device *d, const void *p, size_t bytes) {
  void *h = malloc(bytes ? bytes : 1);
  assert_int_equal(aoq_dev_stream_sync(d, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_copy_d2h(d, h, p, bytes, NULL), AOQ_OK);
  return h;
}

/* Distance in bf16 steps between two bf16 values (ordered by value; NaN far from all). */
static inline int64_t bf16_ulps(uint16_t a, uint16_t b) {
  if ((a & 0x7fff) > 0x7f80 || (b & 0x7fff) > 0x7f80)
    return ((a & 0x7fff) > 0x7f80) == ((b & 0x7fff) > 0x7f80) ? 0 : 1 << 20;
  int64_t ka = (a & 0x8000) ? -(int64_t)(a & 0x7fff) : (int64_t)a;
  int64_t kb = (b & 0x8000) ? -(int64_t)(b & 0x7fff) : (int64_t)b;
  return ka > kb ? ka - kb : kb - ka;
}

/* Largest bf16 ulp distance between got and want over n values; prints the worst element. */
static inline int64_t max_ulps(const char *what, const uint16_t *got, const uint16_t *want,
                               int64_t n) {
  int64_t worst = 0, at = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t u = bf16_ulps(got[i], want[i]);
    if (u > worst) worst = u, at = i;
  }
  if (worst)
    print_message("%s: max %lld bf16 ulps at %lld (got %g, want %g)\n", what, (long long)worst,
                  (long long)at, (double)aoq_bf16_to_f32(got[at]),
                  (double)aoq_bf16_to_f32(want[at]));
  return worst;
}

#ifdef AOQ_HAVE_CLHARNESS
/* cmocka group fixtures: a CPU device and the OpenCL (PoCL) device, compared op by op. */
static int pair_setup(void **state) {
  pair *p = calloc(1, sizeof *p);
  if (!p) return -1;
  if (aoq_device_open("cpu:2", &p->cpu) != AOQ_OK) return -1;
  aoq_status st = aoq_opencl_device_create(0, &p->cl);
  if (st != AOQ_OK) {
    print_error("opencl:0: %s: %s\n", aoq_strerror(st), aoq_last_error());
    return -1;
  }
  *state = p;
  return 0;
}

static int pair_teardown(void **state) {
  pair *p = *state;
  aoq_device_close(p->cl);
  aoq_device_close(p->cpu);
  free(p);
  return 0;
}
#endif /* AOQ_HAVE_CLHARNESS */

#endif
