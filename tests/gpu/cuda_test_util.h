/*
 * cuda_test_util.h — helpers of the CUDA backend's tests: open "cuda:0" (exit 77 only when there
 * is no CUDA device or driver) and "cpu" side by side, upload/download bf16 tensors, a
 * deterministic RNG and a tolerance check that names the first failing element.
 */
#ifndef AOQ_TESTS_GPU_CUDA_TEST_UTIL_H
#define AOQ_TESTS_GPU_CUDA_TEST_UTIL_H

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
#include "base/numerics.h"
#include "devices/device.h"

static aoq_device *g_gpu, *g_cpu;

/* Opens both devices; exits 77 (ctest: skipped) only for AOQ_ENODEV from cuda:0. */
static inline void open_devices_or_skip(void) {
  aoq_status st = aoq_device_open("cuda:0", &g_gpu);
  if (st == AOQ_ENODEV) {
    fprintf(stderr, "no CUDA device: %s -- skipping\n", aoq_last_error());
    exit(77);
  }
  if (st != AOQ_OK) {
    fprintf(stderr, "cuda:0 open failed: %s: %s\n", aoq_strerror(st), aoq_last_error());
    exit(1);
  }
  st = aoq_device_open("cpu", &g_cpu);
  if (st != AOQ_OK) {
    fprintf(stderr, "cpu open failed: %s\n", aoq_last_error());
    exit(1);
  }
}

static inline void close_devices(void) {
  aoq_device_close(g_gpu);
  aoq_device_close(g_cpu);
}

static uint64_t t_rng = 0x9e3779b97f4a7c15ull;
static inline uint64_t rnd_u64(void) {
  uint64_t x = (t_rng += 0x9e3779b97f4a7c15ull);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
static inline float urnd(void) {
  return (float)((double)(rnd_u64() >> 11) * 0x1.0p-52 - 1.0);
}

static inline uint16_t *bf16_random(int64_t n, float scale) {
  uint16_t *h = malloc((size_t)(n ? n : 1) * 2);
  for (int64_t i = 0; i < n; i++) h[i] = aoq_f32_to_bf16(urnd() * scale);
  return h;
}

/* Allocates n bytes on d and uploads src (NULL: zero-fill). */
static inline void *dev_upload(aoq_device *d, const void *src, size_t n) {
  void *p = NULL;
  assert_int_equal(aoq_dev_alloc(d, n ? n : 1, &p), AOQ_OK);
  if (src)
    assert_int_equal(aoq_dev_copy_h2d(d, p, src, n, NULL), AOQ_OK);
  else
    assert_int_equal(aoq_dev_memset(d, p, 0, n ? n : 1, NULL), AOQ_OK);
  return p;
}

static inline void *dev_download(aoq_device *d, const void *p, size_t n) {
  void *h = malloc(n ? n : 1);
  assert_int_equal(aoq_dev_stream_sync(d, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_copy_d2h(d, h, p, n, NULL), AOQ_OK);
  return h;
}

/* |a - b| <= atol + rtol * |b| for every element of two bf16 arrays; reports the worst. */
/* a host weight's buffers copied to device d (same shape and format fields) */
static inline aoq_qweight upload_weight(aoq_device *d, const aoq_qweight *h) {
  aoq_qweight o = *h;
  o.qdata = dev_upload(d, h->qdata, h->qdata_bytes);
  o.scale = h->scale_bytes ? dev_upload(d, h->scale, h->scale_bytes) : NULL;
  o.zero = h->zero_bytes ? dev_upload(d, h->zero, h->zero_bytes) : NULL;
  o.aux = h->aux_bytes ? dev_upload(d, h->aux, h->aux_bytes) : NULL;
  return o;
}

static inline void free_weight(aoq_device *d, aoq_qweight *w) {
  aoq_dev_free(d, w->qdata), aoq_dev_free(d, w->scale), aoq_dev_free(d, w->zero);
  aoq_dev_free(d, w->aux);
}

static inline void check_close(const char *what, const uint16_t *a, const uint16_t *b, int64_t n,
                               double atol, double rtol) {
  int64_t bad = -1;
  double worst = 0;
  for (int64_t i = 0; i < n; i++) {
    double x = aoq_bf16_to_f32(a[i]), y = aoq_bf16_to_f32(b[i]);
    double err = fabs(x - y), lim = atol + rtol * fabs(y);
    if (!(err <= lim) && (bad < 0 || err - lim > worst)) bad = i, worst = err - lim;
  }
  if (bad >= 0)
    fail_msg("%s: element %lld: got %g, expected %g (atol %g, rtol %g)", what, (long long)bad,
             (double)aoq_bf16_to_f32(a[bad]), (double)aoq_bf16_to_f32(b[bad]), atol, rtol);
}

static inline int64_t count_diff(const uint16_t *a, const uint16_t *b, int64_t n) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; i++) c += a[i] != b[i];
  return c;
}

#endif
