/*
 * test_device_cpu.c — the CPU backend against naive double-precision references written here,
 * for every op, both activation dtypes and every SIMD level the machine has (AOQ_CPU_ISA), plus
 * device opening, memory/stream/event calls and the argument checks of device.c's wrappers.
 *
 * Tolerances (stated per check):
 *   linear   |y - ref| <= 6e-8 * (k + 4) * sum|w x| + |ref| * r_dt     (fp32 summation bound,
 *            r_dt = 2^-8 for the final bf16 rounding, 2^-23 for f32)
 *   rmsnorm, silu_mul   bf16: an intermediate that lands on the other side of a rounding
 *            boundary (fp32 vs double) moves the result by up to 2 ulps after the final
 *            rounding: |ref| * 2^-6 (+1e-6 abs); f32: 1e-5 relative
 *   rope     angles are fp32 (pos * inv_freq): 2e-3 * |x| absolute, plus 2^-7 relative for bf16
 *   attention 2e-5 abs (+ 2^-8 * |ref| for bf16 output; with bf16 activations the reference
 *            rounds exp(s - max) to bf16 before P.V, as torch's flash kernels do)
 *   add, embed, kv_store, convert, argmax: exact
 */
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

/* ---- helpers ---- */

static uint64_t rng_state = 0x1234567887654321ull;
static double urand(void) { /* [-1, 1) */
  uint64_t x = (rng_state += 0x9e3779b97f4a7c15ull);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  return (double)(x >> 11) * 0x1.0p-52 - 1.0;
}

static size_t esz(aoq_dtype dt) {
  return dt == AOQ_DTYPE_F32 ? 4 : 2;
}

/* A tensor of dt on the device (host memory) and the exact values it holds, as doubles. */
typedef struct tens {
  void *p;
  double *v;
  int64_t n;
  aoq_dtype dt;
} tens;

static tens tens_new(aoq_device *d, int64_t n, aoq_dtype dt, double scale) {
  tens t = {NULL, calloc((size_t)(n ? n : 1), sizeof(double)), n, dt};
  assert_int_equal(aoq_dev_alloc(d, (size_t)n * esz(dt), &t.p), AOQ_OK);
  for (int64_t i = 0; i < n; i++) {
    float f = (float)(urand() * scale);
    aoq_cpu_st(t.p, i, f, dt);
    t.v[i] = aoq_cpu_ld(t.p, i, dt);
  }
  return t;
}

static void tens_free(aoq_device *d, tens *t) {
  aoq_dev_free(d, t->p);
  free(t->v);
}

static double rnd_dt(double v, aoq_dtype dt) {
  return dt == AOQ_DTYPE_F32 ? (double)(float)v : (double)aoq_round_bf16((float)v);
}

static const char *dt_name(aoq_dtype dt) {
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

static const char *isa_env[] = {"scalar", "avx2", "avx512"};

/* Opens "cpu:<threads>" at SIMD level isa. */
static aoq_device *open_cpu(int isa, int threads) {
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

static int n_isas(void) {
  return (int)aoq_cpu_isa_detect() + 1;
}

static const aoq_dtype dts[] = {AOQ_DTYPE_BF16, AOQ_DTYPE_F32};

/* ---- device opening and info ---- */

static void test_open_cpu_reports_caps_and_threads(void **state) {
  (void)state;
  aoq_device *d = NULL;
  assert_int_equal(aoq_device_open("cpu", &d), AOQ_OK);
  aoq_device_info info;
  assert_int_equal(aoq_device_info_get(d, &info), AOQ_OK);
  assert_int_equal(info.kind, AOQ_DEVICE_CPU);
  assert_true(info.threads >= 1);
  assert_non_null(strstr(info.name, "cpu ("));
  assert_non_null(strstr(info.name, aoq_cpu_isa_name(aoq_cpu_isa_detect())));
  uint32_t want = AOQ_CAP_F32 | AOQ_CAP_HOST_MEMORY | AOQ_CAP_HOST_REGISTER;
  assert_int_equal(info.caps, want);
  assert_true(aoq_device_has(d, want));
  assert_false(aoq_device_has(d, AOQ_CAP_IPC));
  assert_false(aoq_device_has(d, AOQ_CAP_GRAPHS));
  assert_true(info.linear_formats & (1ull << AOQ_FMT_BF16));
  assert_int_equal(info.linear_formats, (1ull << AOQ_FMT_BF16) | aoq_cpu_quant_formats());
  assert_true(info.total_memory > 0 && info.free_memory <= info.total_memory);
  assert_string_equal(aoq_device_name(d), "cpu");
  aoq_device_close(d);

  assert_int_equal(aoq_device_open("cpu:3", &d), AOQ_OK);
  assert_int_equal(aoq_device_info_get(d, &info), AOQ_OK);
  assert_int_equal(info.threads, 3);
  assert_non_null(strstr(info.name, "3 threads"));
  aoq_device_close(d);

  assert_int_equal(aoq_device_open("auto", &d), AOQ_OK); /* no GPU backend here -> cpu */
  aoq_device_close(d);
}

static void test_open_errors_name_the_problem(void **state) {
  (void)state;
  aoq_device *d = NULL;
  aoq_status st = aoq_device_open("cuda:0", &d);
#ifndef AOQ_HAVE_CUDA
  assert_int_equal(st, AOQ_ENODEV);
  assert_non_null(strstr(aoq_last_error(), "not built"));
  assert_non_null(strstr(aoq_last_error(), "AOQ_CUDA"));
#else
  if (st == AOQ_OK)
    aoq_device_close(d);
  else
    assert_true(strlen(aoq_last_error()) > 0);
#endif
#ifndef AOQ_HAVE_HIP
  assert_int_equal(aoq_device_open("hip:1", &d), AOQ_ENODEV);
  assert_non_null(strstr(aoq_last_error(), "HIP"));
#endif
  assert_int_equal(aoq_device_open("bogus", &d), AOQ_EINVAL);
  assert_non_null(strstr(aoq_last_error(), "bogus"));
  assert_int_equal(aoq_device_open("cpu:x", &d), AOQ_EINVAL);
  assert_int_equal(aoq_device_open("cpu:", &d), AOQ_EINVAL);
  assert_int_equal(aoq_device_open("cpux", &d), AOQ_EINVAL);
  assert_int_equal(aoq_device_open(NULL, &d), AOQ_EINVAL);
  assert_int_equal(aoq_device_open("cpu", NULL), AOQ_EINVAL);
  assert_int_equal(aoq_cpu_device_create(-1, &d), AOQ_EINVAL);
  setenv("AOQ_CPU_ISA", "sse9", 1);
  assert_int_equal(aoq_device_open("cpu", &d), AOQ_EINVAL);
  assert_non_null(strstr(aoq_last_error(), "sse9"));
  unsetenv("AOQ_CPU_ISA");
}

/* ---- memory, streams, events ---- */

static void test_memory_alloc_copy_memset_register(void **state) {
  (void)state;
  aoq_device *d = open_cpu(0, 1);
  void *a = NULL, *b = NULL, *z = NULL;
  assert_int_equal(aoq_dev_alloc(d, 1000, &a), AOQ_OK);
  assert_int_equal(aoq_dev_alloc(d, 1000, &b), AOQ_OK);
  assert_int_equal(aoq_dev_alloc(d, 0, &z), AOQ_OK);
  assert_non_null(z);
  assert_int_equal((uintptr_t)a % 256, 0);
  assert_int_equal((uintptr_t)b % 256, 0);
  uint8_t host[1000], back[1000];
  for (int i = 0; i < 1000; i++) host[i] = (uint8_t)(i * 7 + 3);
  assert_int_equal(aoq_dev_copy_h2d(d, a, host, 1000, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_copy_d2d(d, b, a, 1000, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_memset(d, b, 0xab, 10, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_copy_d2h(d, back, b, 1000, NULL), AOQ_OK);
  for (int i = 0; i < 10; i++) assert_int_equal(back[i], 0xab);
  assert_memory_equal(back + 10, host + 10, 990);
  assert_int_equal(aoq_dev_copy_h2d(d, NULL, host, 4, NULL), AOQ_EINVAL);
  assert_int_equal(aoq_dev_copy_h2d(d, NULL, NULL, 0, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_memset(d, NULL, 0, 4, NULL), AOQ_EINVAL);
  assert_int_equal(aoq_dev_host_register(d, host, sizeof host), AOQ_OK);
  assert_int_equal(aoq_dev_host_unregister(d, host), AOQ_OK);
  assert_int_equal(aoq_dev_alloc(d, 16, NULL), AOQ_EINVAL);
  void *huge = NULL;
  assert_int_equal(aoq_dev_alloc(d, SIZE_MAX - 10, &huge), AOQ_ENOMEM);
  assert_null(huge);
  aoq_fault_arm(1);
  void *f = NULL;
  assert_int_equal(aoq_dev_alloc(d, 64, &f), AOQ_ENOMEM);
  assert_null(f);
  aoq_dev_free(d, a);
  aoq_dev_free(d, b);
  aoq_dev_free(d, z);
  aoq_dev_free(d, NULL);
  aoq_device_close(d);
}

static void test_ipc_and_graphs_are_not_offered(void **state) {
  (void)state;
  aoq_device *d = open_cpu(0, 1);
  aoq_ipc_handle h;
  void *p = NULL;
  assert_int_equal(aoq_dev_ipc_export(d, &h, &h), AOQ_EUNSUPPORTED);
  assert_int_equal(aoq_dev_ipc_import(d, &h, &p), AOQ_EUNSUPPORTED);
  assert_int_equal(aoq_dev_ipc_close(d, p), AOQ_EUNSUPPORTED);
  aoq_graph *g = NULL;
  assert_int_equal(aoq_dev_graph_begin(d, NULL), AOQ_EUNSUPPORTED);
  assert_int_equal(aoq_dev_graph_end(d, NULL, &g), AOQ_EUNSUPPORTED);
  assert_int_equal(aoq_dev_graph_launch(d, g, NULL), AOQ_EUNSUPPORTED);
  aoq_qweight w = {0};
  assert_int_equal(aoq_dev_quantize(d, &w, &w, NULL), AOQ_EUNSUPPORTED);
  aoq_device_close(d);
}

static void test_streams_and_events_time_the_work(void **state) {
  (void)state;
  aoq_device *d = open_cpu(0, 1);
  aoq_stream *s = NULL;
  aoq_event *e0 = NULL, *e1 = NULL;
  assert_int_equal(aoq_dev_stream_create(d, &s), AOQ_OK);
  assert_int_equal(aoq_dev_event_create(d, &e0), AOQ_OK);
  assert_int_equal(aoq_dev_event_create(d, &e1), AOQ_OK);
  float ms = -1;
  assert_int_equal(aoq_dev_event_elapsed_ms(d, e0, e1, &ms), AOQ_EINVAL); /* never recorded */
  assert_int_equal(aoq_dev_event_record(d, e0, s), AOQ_OK);
  struct timespec ts = {0, 30 * 1000 * 1000};
  nanosleep(&ts, NULL);
  assert_int_equal(aoq_dev_event_record(d, e1, s), AOQ_OK);
  assert_int_equal(aoq_dev_event_wait(d, e1, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_event_sync(d, e1), AOQ_OK);
  assert_int_equal(aoq_dev_stream_sync(d, s), AOQ_OK);
  assert_int_equal(aoq_dev_stream_sync(d, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_event_elapsed_ms(d, e0, e1, &ms), AOQ_OK);
  assert_true(ms >= 29.0f && ms < 5000.0f);
  assert_int_equal(aoq_dev_event_elapsed_ms(d, e0, e1, NULL), AOQ_EINVAL);
  assert_int_equal(aoq_dev_event_record(d, NULL, s), AOQ_EINVAL);
  assert_int_equal(aoq_dev_stream_create(d, NULL), AOQ_EINVAL);
  aoq_dev_event_destroy(d, e0);
  aoq_dev_event_destroy(d, e1);
  aoq_dev_stream_destroy(d, s);
  aoq_dev_stream_destroy(d, NULL);
  aoq_device_close(d);
}

/* ---- linear ---- */

static void check_linear(aoq_device *d, int64_t m, int64_t n, int64_t k, aoq_dtype dt,
                         const char *isa) {
  tens w = tens_new(d, n * k, AOQ_DTYPE_BF16, 1.0);
  tens x = tens_new(d, m * k, dt, 2.0);
  void *y = NULL;
  assert_int_equal(aoq_dev_alloc(d, (size_t)(m * n) * esz(dt), &y), AOQ_OK);
  aoq_qweight qw = {.kind = AOQ_FMT_BF16,
                    .bits = 16,
                    .group = (int)k,
                    .n = n,
                    .k = k,
                    .qdata = w.p,
                    .qdata_bytes = (size_t)(n * k) * 2};
  assert_int_equal(aoq_dev_linear_workspace(d, &qw, m), 0);
  aoq_status st = aoq_dev_linear(d, &qw, x.p, y, m, dt, NULL, NULL);
  if (st != AOQ_OK) print_message("linear: %s\n", aoq_last_error());
  assert_int_equal(st, AOQ_OK);
  double r_dt = dt == AOQ_DTYPE_F32 ? 0x1.0p-23 : 0x1.0p-8;
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double ref = 0, mag = 0;
      for (int64_t c = 0; c < k; c++) {
        ref += w.v[j * k + c] * x.v[i * k + c];
        mag += fabs(w.v[j * k + c] * x.v[i * k + c]);
      }
      double tol = 6e-8 * (double)(k + 4) * mag + fabs(ref) * r_dt + 1e-30;
      CHECK_CLOSE(aoq_cpu_ld(y, i * n + j, dt), ref, tol,
                  "linear %s %s m=%lld n=%lld k=%lld y[%lld,%lld]", isa, dt_name(dt), (long long)m,
                  (long long)n, (long long)k, (long long)i, (long long)j);
    }
  aoq_dev_free(d, y);
  tens_free(d, &w);
  tens_free(d, &x);
}

static void test_linear_bf16_matches_reference_every_isa(void **state) {
  (void)state;
  static const int64_t ms[] = {1, 2, 3, 5, 17}, ks[] = {1, 7, 31, 32, 33, 129, 1000},
                       ns[] = {1, 5, 13, 37};
  for (int isa = 0; isa < n_isas(); isa++) {
    aoq_device *d = open_cpu(isa, 2);
    for (size_t t = 0; t < 2; t++)
      for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
        for (size_t b = 0; b < sizeof ks / sizeof *ks; b++)
          for (size_t c = 0; c < sizeof ns / sizeof *ns; c++)
            check_linear(d, ms[a], ns[c], ks[b], dts[t], isa_env[isa]);
    /* Many row blocks over several threads, both tile shapes and all tails at once. */
    check_linear(d, 1, 301, 257, AOQ_DTYPE_BF16, isa_env[isa]);
    check_linear(d, 9, 301, 257, AOQ_DTYPE_F32, isa_env[isa]);
    aoq_device_close(d);
  }
  aoq_device *d3 = open_cpu(n_isas() - 1, 3);
  check_linear(d3, 64, 203, 96, AOQ_DTYPE_BF16, "best/3 threads");
  aoq_device_close(d3);
}

static void test_linear_rejects_bad_arguments(void **state) {
  (void)state;
  aoq_device *d = open_cpu(0, 1);
  uint16_t w[4] = {0}, x[2] = {0}, y[2];
  aoq_qweight qw = {.kind = AOQ_FMT_BF16, .n = 2, .k = 2, .qdata = w};
  assert_int_equal(aoq_dev_linear(d, &qw, x, y, 1, AOQ_DTYPE_F16, NULL, NULL), AOQ_EINVAL);
  assert_non_null(strstr(aoq_last_error(), "F16"));
  assert_int_equal(aoq_dev_linear(d, &qw, x, y, -1, AOQ_DTYPE_BF16, NULL, NULL), AOQ_EINVAL);
  assert_int_equal(aoq_dev_linear(d, NULL, x, y, 1, AOQ_DTYPE_BF16, NULL, NULL), AOQ_EINVAL);
  assert_int_equal(aoq_dev_linear(d, &qw, NULL, y, 1, AOQ_DTYPE_BF16, NULL, NULL), AOQ_EINVAL);
  assert_int_equal(aoq_dev_linear(NULL, &qw, x, y, 1, AOQ_DTYPE_BF16, NULL, NULL), AOQ_EINVAL);
  qw.qdata_bytes = 6; /* needs 8 */
  assert_int_equal(aoq_dev_linear(d, &qw, x, y, 1, AOQ_DTYPE_BF16, NULL, NULL), AOQ_ESHAPE);
  qw.qdata_bytes = 0;
  qw.k = 0;
  assert_int_equal(aoq_dev_linear(d, &qw, x, y, 1, AOQ_DTYPE_BF16, NULL, NULL), AOQ_ESHAPE);
  qw.k = 2;
  qw.kind = AOQ_FMT_COUNT;
  assert_int_equal(aoq_dev_linear(d, &qw, x, y, 1, AOQ_DTYPE_BF16, NULL, NULL), AOQ_EUNSUPPORTED);
  for (int f = 1; f < AOQ_FMT_COUNT; f++)
    if (!((aoq_cpu_quant_formats() >> f) & 1)) {
      qw.kind = (aoq_format_kind)f;
      assert_int_equal(aoq_dev_linear(d, &qw, x, y, 1, AOQ_DTYPE_BF16, NULL, NULL),
                       AOQ_EUNSUPPORTED);
    }
  aoq_device_close(d);
}

/* ---- rmsnorm, add, silu_mul, convert ---- */

static void test_rmsnorm_matches_hf_reference(void **state) {
  (void)state;
  static const int64_t ms[] = {1, 3, 17}, ns[] = {1, 7, 129, 1000};
  for (int isa = 0; isa<n_isas(); isa += n_isas() - 1> 0 ? n_isas() - 1 : 1) {
    aoq_device *d = open_cpu(isa, 2);
    for (size_t t = 0; t < 2; t++)
      for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 4; b++) {
          aoq_dtype dt = dts[t];
          int64_t m = ms[a], n = ns[b];
          tens x = tens_new(d, m * n, dt, 3.0), w = tens_new(d, n, dt, 1.5);
          void *y = NULL;
          assert_int_equal(aoq_dev_alloc(d, (size_t)(m * n) * esz(dt), &y), AOQ_OK);
          const float eps = 1e-5f;
          assert_int_equal(aoq_dev_rmsnorm(d, x.p, w.p, y, m, n, eps, dt, NULL), AOQ_OK);
          for (int64_t i = 0; i < m; i++) {
            double ss = 0;
            for (int64_t c = 0; c < n; c++) ss += x.v[i * n + c] * x.v[i * n + c];
            double inv = 1.0 / sqrt(ss / (double)n + eps);
            for (int64_t c = 0; c < n; c++) {
              double ref = rnd_dt(w.v[c] * rnd_dt(x.v[i * n + c] * inv, dt), dt);
              double tol =
                  dt == AOQ_DTYPE_F32 ? 1e-5 * fabs(ref) + 1e-7 : 0x1.0p-6 * fabs(ref) + 1e-6;
              CHECK_CLOSE(aoq_cpu_ld(y, i * n + c, dt), ref, tol, "rmsnorm %s m=%lld n=%lld",
                          dt_name(dt), (long long)m, (long long)n);
            }
          }
          aoq_dev_free(d, y);
          tens_free(d, &x);
          tens_free(d, &w);
        }
    assert_int_equal(aoq_dev_rmsnorm(d, d, d, d, 1, 1, -1.0f, AOQ_DTYPE_F32, NULL), AOQ_EINVAL);
    assert_int_equal(aoq_dev_rmsnorm(d, NULL, d, d, 1, 1, 1e-5f, AOQ_DTYPE_F32, NULL), AOQ_EINVAL);
    assert_int_equal(aoq_dev_rmsnorm(d, d, d, d, -1, 1, 1e-5f, AOQ_DTYPE_F32, NULL), AOQ_EINVAL);
    assert_int_equal(aoq_dev_rmsnorm(d, d, d, d, 1, 1, 1e-5f, AOQ_DTYPE_I8, NULL), AOQ_EINVAL);
    aoq_device_close(d);
  }
}

static void test_add_and_silu_mul_match_reference(void **state) {
  (void)state;
  aoq_device *d = open_cpu(n_isas() - 1, 2);
  for (size_t t = 0; t < 2; t++) {
    aoq_dtype dt = dts[t];
    const int64_t n = 100003; /* several parallel chunks */
    tens a = tens_new(d, n, dt, 10.0), b = tens_new(d, n, dt, 0.01);
    void *y = NULL;
    assert_int_equal(aoq_dev_alloc(d, (size_t)n * esz(dt), &y), AOQ_OK);
    assert_int_equal(aoq_dev_add(d, a.p, b.p, y, n, dt, NULL), AOQ_OK);
    for (int64_t i = 0; i < n; i++) {
      float s = (float)a.v[i] + (float)b.v[i]; /* torch: fp32 sum, then cast to dt */
      double ref = rnd_dt(s, dt);
      CHECK_CLOSE(aoq_cpu_ld(y, i, dt), ref, 0.0, "add %s [%lld]", dt_name(dt), (long long)i);
    }
    assert_int_equal(aoq_dev_add(d, a.p, b.p, y, -5, dt, NULL), AOQ_EINVAL);
    assert_int_equal(aoq_dev_add(d, a.p, NULL, y, 5, dt, NULL), AOQ_EINVAL);
    aoq_dev_free(d, y);
    tens_free(d, &a);
    tens_free(d, &b);

    static const int64_t ms[] = {1, 3, 17}, ns[] = {1, 7, 129, 1000};
    for (size_t i = 0; i < 3; i++)
      for (size_t j = 0; j < 4; j++) {
        int64_t m = ms[i], nn = ns[j];
        tens gu = tens_new(d, m * 2 * nn, dt, 6.0);
        void *out = NULL;
        assert_int_equal(aoq_dev_alloc(d, (size_t)(m * nn) * esz(dt), &out), AOQ_OK);
        assert_int_equal(aoq_dev_silu_mul(d, gu.p, out, m, nn, dt, NULL), AOQ_OK);
        for (int64_t r = 0; r < m; r++)
          for (int64_t c = 0; c < nn; c++) {
            double g = gu.v[r * 2 * nn + c], u = gu.v[r * 2 * nn + nn + c];
            double ref = rnd_dt(rnd_dt(g / (1.0 + exp(-g)), dt) * u, dt);
            double tol =
                dt == AOQ_DTYPE_F32 ? 1e-5 * fabs(ref) + 1e-7 : 0x1.0p-6 * fabs(ref) + 1e-6;
            CHECK_CLOSE(aoq_cpu_ld(out, r * nn + c, dt), ref, tol, "silu_mul %s m=%lld n=%lld",
                        dt_name(dt), (long long)m, (long long)nn);
          }
        aoq_dev_free(d, out);
        tens_free(d, &gu);
      }
  }
  assert_int_equal(aoq_dev_silu_mul(d, d, d, 1, -1, AOQ_DTYPE_BF16, NULL), AOQ_EINVAL);
  aoq_device_close(d);
}

static void test_convert_rounds_to_nearest_even(void **state) {
  (void)state;
  aoq_device *d = open_cpu(0, 2);
  float src[6] = {1.0f + 0x1.0p-8f, 1.0f + 3 * 0x1.0p-8f, -2.5f, 1e-40f, INFINITY, 65504.0f};
  uint16_t want[6] = {0x3f80, 0x3f82, 0xc020, aoq_f32_to_bf16(1e-40f), 0x7f80, 0x477f + 1};
  uint16_t got[6];
  assert_int_equal(aoq_dev_convert(d, src, AOQ_DTYPE_F32, got, AOQ_DTYPE_BF16, 6, NULL), AOQ_OK);
  assert_memory_equal(got, want, sizeof want);
  float back[6];
  assert_int_equal(aoq_dev_convert(d, got, AOQ_DTYPE_BF16, back, AOQ_DTYPE_F32, 6, NULL), AOQ_OK);
  assert_true(back[0] == 1.0f && back[2] == -2.5f && back[5] == 65536.0f);
  /* large, parallel, round trip bf16 -> f32 -> bf16 is the identity */
  const int64_t n = 200001;
  tens a = tens_new(d, n, AOQ_DTYPE_BF16, 100.0);
  float *f = malloc((size_t)n * 4);
  uint16_t *b = malloc((size_t)n * 2);
  assert_int_equal(aoq_dev_convert(d, a.p, AOQ_DTYPE_BF16, f, AOQ_DTYPE_F32, n, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_convert(d, f, AOQ_DTYPE_F32, b, AOQ_DTYPE_BF16, n, NULL), AOQ_OK);
  assert_memory_equal(a.p, b, (size_t)n * 2);
  assert_int_equal(aoq_dev_convert(d, f, AOQ_DTYPE_F32, b, AOQ_DTYPE_F32, 3, NULL), AOQ_OK);
  assert_memory_equal(f, b, 12);
  assert_int_equal(aoq_dev_convert(d, f, AOQ_DTYPE_F16, b, AOQ_DTYPE_F32, 3, NULL), AOQ_EINVAL);
  assert_int_equal(aoq_dev_convert(d, f, AOQ_DTYPE_F32, NULL, AOQ_DTYPE_BF16, 3, NULL), AOQ_EINVAL);
  free(f);
  free(b);
  tens_free(d, &a);
  aoq_device_close(d);
}

/* ---- embed ---- */

static void test_embed_copies_rows_and_checks_ids(void **state) {
  (void)state;
  aoq_device *d = open_cpu(0, 2);
  for (size_t t = 0; t < 2; t++) {
    aoq_dtype dt = dts[t];
    const int64_t rows = 50, dim = 37, m = 17;
    tens tab = tens_new(d, rows * dim, dt, 1.0);
    int32_t ids[17];
    for (int i = 0; i < m; i++) ids[i] = (i * 13 + 5) % (int)rows;
    ids[3] = 49;
    ids[4] = 0;
    void *y = NULL;
    assert_int_equal(aoq_dev_alloc(d, (size_t)(m * dim) * esz(dt), &y), AOQ_OK);
    assert_int_equal(aoq_dev_embed(d, tab.p, rows, ids, y, m, dim, dt, NULL), AOQ_OK);
    for (int i = 0; i < m; i++)
      assert_memory_equal((char *)y + (size_t)(i * dim) * esz(dt),
                          (char *)tab.p + (size_t)(ids[i] * dim) * esz(dt), (size_t)dim * esz(dt));
    ids[7] = (int32_t)rows;
    assert_int_equal(aoq_dev_embed(d, tab.p, rows, ids, y, m, dim, dt, NULL), AOQ_EINVAL);
    assert_non_null(strstr(aoq_last_error(), "50"));
    ids[7] = -1;
    assert_int_equal(aoq_dev_embed(d, tab.p, rows, ids, y, m, dim, dt, NULL), AOQ_EINVAL);
    aoq_dev_free(d, y);
    tens_free(d, &tab);
  }
  aoq_device_close(d);
}

/* ---- rope ---- */

/* Independent double-precision reading of HF's llama3 rope (the rule in the issue text). */
static double ref_inv_freq(const aoq_rope *r, int hd, int i) {
  double inv = 1.0 / pow(r->theta, (double)(2 * i) / hd);
  if (r->factor <= 0) return inv;
  double wl = 2 * M_PI / inv, orig = r->original_max_position;
  if (wl > orig / r->low_freq_factor) return inv / r->factor;
  if (wl < orig / r->high_freq_factor) return inv;
  double sm = (orig / wl - r->low_freq_factor) / (r->high_freq_factor - r->low_freq_factor);
  return (1 - sm) * inv / r->factor + sm * inv;
}

static void check_rope(aoq_device *d, aoq_dtype dt, const aoq_rope *r, int hd) {
  const int64_t m = 5;
  const int nh = 3;
  const int64_t stride = nh * hd + 6; /* columns past the heads must stay untouched */
  int32_t pos[5] = {0, 1, 17, 4095, 9000};
  tens x = tens_new(d, m * stride, dt, 2.0);
  assert_int_equal(aoq_dev_rope(d, x.p, pos, m, nh, hd, stride, r, dt, NULL), AOQ_OK);
  for (int64_t i = 0; i < m; i++) {
    for (int h = 0; h < nh; h++)
      for (int c = 0; c < hd / 2; c++) {
        double ang = pos[i] * ref_inv_freq(r, hd, c);
        double cs = rnd_dt(cos(ang), dt), sn = rnd_dt(sin(ang), dt);
        int64_t i1 = i * stride + h * hd + c, i2 = i1 + hd / 2;
        double x1 = x.v[i1], x2 = x.v[i2];
        double o1 = rnd_dt(rnd_dt(x1 * cs, dt) - rnd_dt(x2 * sn, dt), dt);
        double o2 = rnd_dt(rnd_dt(x2 * cs, dt) + rnd_dt(x1 * sn, dt), dt);
        double mag = fabs(x1) + fabs(x2);
        double tol = 2e-3 * mag + (dt == AOQ_DTYPE_F32 ? 1e-6 : 0x1.0p-7 * mag);
        CHECK_CLOSE(aoq_cpu_ld(x.p, i1, dt), o1, tol, "rope %s factor %g pos %d dim %d",
                    dt_name(dt), (double)r->factor, pos[i], c);
        CHECK_CLOSE(aoq_cpu_ld(x.p, i2, dt), o2, tol, "rope %s factor %g pos %d dim %d+half",
                    dt_name(dt), (double)r->factor, pos[i], c);
      }
    for (int64_t c = nh * hd; c < stride; c++)
      assert_true(aoq_cpu_ld(x.p, i * stride + c, dt) == x.v[i * stride + c]);
  }
  /* Position 0 is the identity. */
  for (int c = 0; c < nh * hd; c++) assert_true(aoq_cpu_ld(x.p, c, dt) == x.v[c]);
  tens_free(d, &x);
}

static void test_rope_plain_and_llama31_scaling(void **state) {
  (void)state;
  aoq_device *d = open_cpu(0, 2);
  aoq_rope plain = {10000.0f, 0, 0, 0, 0};
  aoq_rope l31 = {500000.0f, 8.0f, 1.0f, 4.0f, 8192};
  for (size_t t = 0; t < 2; t++) {
    check_rope(d, dts[t], &plain, 16);
    check_rope(d, dts[t], &l31, 128);
    check_rope(d, dts[t], &l31, 64);
  }
  /* The three llama3 bands really differ from plain rope: low frequencies are divided by 8. */
  assert_true(fabs(ref_inv_freq(&l31, 128, 63) * 8 - 1.0 / pow(500000.0, 126.0 / 128)) < 1e-15);
  int32_t pos = 3;
  float x[4] = {1, 2, 3, 4};
  assert_int_equal(aoq_dev_rope(d, x, &pos, 1, 1, 3, 4, &plain, AOQ_DTYPE_F32, NULL), AOQ_EINVAL);
  assert_int_equal(aoq_dev_rope(d, x, &pos, 1, 2, 4, 4, &plain, AOQ_DTYPE_F32, NULL), AOQ_ESHAPE);
  assert_int_equal(aoq_dev_rope(d, x, &pos, 1, 1, 4, 4, NULL, AOQ_DTYPE_F32, NULL), AOQ_EINVAL);
  pos = -1;
  assert_int_equal(aoq_dev_rope(d, x, &pos, 1, 1, 4, 4, &plain, AOQ_DTYPE_F32, NULL), AOQ_EINVAL);
  aoq_rope bad = {500000.0f, 8.0f, 4.0f, 1.0f, 8192};
  pos = 1;
  assert_int_equal(aoq_dev_rope(d, x, &pos, 1, 1, 4, 4, &bad, AOQ_DTYPE_F32, NULL), AOQ_EINVAL);
  aoq_device_close(d);
}

/* ---- kv_store + attention ---- */

enum { N_PAGES = 13, PAGE = 4, NKV = 2, NH = 8, HD = 24, NSEQ = 3, MAXB = 5 };

static void check_attention(aoq_device *d, aoq_dtype dt, aoq_dtype kvdt) {
  const int lens[NSEQ] = {1, 7, 13};
  /* Pages handed out out of order, none shared: seq0 {9}, seq1 {2, 11}, seq2 {5, 0, 12, 7}. */
  int32_t bt[NSEQ][MAXB] = {{9, -1, -1, -1, -1}, {2, 11, -1, -1, -1}, {5, 0, 12, 7, -1}};
  aoq_kv_cache kv = {NULL, NULL, N_PAGES, PAGE, NKV, HD, kvdt};
  size_t cache_bytes = (size_t)N_PAGES * PAGE * NKV * HD * esz(kvdt);
  assert_int_equal(aoq_dev_alloc(d, cache_bytes, &kv.k), AOQ_OK);
  assert_int_equal(aoq_dev_alloc(d, cache_bytes, &kv.v), AOQ_OK);
  memset(kv.k, 0xff, cache_bytes); /* NaN everywhere a row must not read */
  memset(kv.v, 0xff, cache_bytes);
  /* K/V of every position of every sequence, stored in one kv_store call. */
  int total = 0;
  for (int s = 0; s < NSEQ; s++) total += lens[s];
  tens k = tens_new(d, (int64_t)total * NKV * HD, dt, 1.0);
  tens v = tens_new(d, (int64_t)total * NKV * HD, dt, 1.0);
  int32_t slots[32], tok_of[NSEQ][16];
  int r = 0;
  for (int s = 0; s < NSEQ; s++)
    for (int p = 0; p < lens[s]; p++, r++) {
      slots[r] = bt[s][p / PAGE] * PAGE + p % PAGE;
      tok_of[s][p] = r;
    }
  assert_int_equal(aoq_dev_kv_store(d, &kv, k.p, v.p, slots, total, dt, NULL), AOQ_OK);
  /* Stored values are exact copies (or the rounding of f32 into a bf16 cache). */
  for (int t = 0; t < total; t++)
    for (int c = 0; c < NKV * HD; c++) {
      double want = rnd_dt(k.v[t * NKV * HD + c], kvdt);
      assert_true(aoq_cpu_ld(kv.k, (int64_t)slots[t] * NKV * HD + c, kvdt) == want);
    }
  /* Query rows: seq2 decode at 12, seq1 prefill chunk 3..6, seq0 at 0, seq2 at 5. */
  int32_t row_seq[7] = {2, 1, 1, 1, 1, 0, 2}, row_pos[7] = {12, 3, 4, 5, 6, 0, 5};
  const int64_t m = 7;
  aoq_attn_batch b = {row_seq, row_pos, &bt[0][0], NSEQ, MAXB, 12};
  tens q = tens_new(d, m * NH * HD, dt, 1.0);
  void *out = NULL;
  assert_int_equal(aoq_dev_alloc(d, (size_t)(m * NH * HD) * esz(dt), &out), AOQ_OK);
  float scale = 1.0f / sqrtf((float)HD);
  assert_int_equal(aoq_dev_attention_workspace(d, &kv, m, NH, 12), 0);
  aoq_status st = aoq_dev_attention(d, &kv, &b, q.p, out, m, NH, scale, dt, NULL, NULL);
  if (st != AOQ_OK) print_message("attention: %s\n", aoq_last_error());
  assert_int_equal(st, AOQ_OK);
  for (int64_t i = 0; i < m; i++)
    for (int h = 0; h < NH; h++) {
      int kvh = h / (NH / NKV), s = row_seq[i];
      double sc[16], mx = -INFINITY, den = 0;
      for (int p = 0; p <= row_pos[i]; p++) {
        int t = tok_of[s][p];
        double dot = 0;
        for (int c = 0; c < HD; c++)
          dot += q.v[(i * NH + h) * HD + c] * rnd_dt(k.v[(t * NKV + kvh) * HD + c], kvdt);
        sc[p] = dot * scale;
        if (sc[p] > mx) mx = sc[p];
      }
      for (int p = 0; p <= row_pos[i]; p++) den += exp(sc[p] - mx);
      for (int c = 0; c < HD; c++) {
        double ref = 0;
        for (int p = 0; p <= row_pos[i]; p++) /* bf16: P rounded before P.V (torch flash) */
          ref += rnd_dt(exp(sc[p] - mx), dt) / den *
                 rnd_dt(v.v[(tok_of[s][p] * NKV + kvh) * HD + c], kvdt);
        double tol = 2e-5 + (dt == AOQ_DTYPE_F32 ? 0 : 0x1.0p-8 * fabs(ref));
        CHECK_CLOSE(aoq_cpu_ld(out, (i * NH + h) * HD + c, dt), ref, tol,
                    "attention %s (kv %s) row %lld head %d", dt_name(dt), dt_name(kvdt),
                    (long long)i, h);
      }
    }
  /* Bad batches are refused before anything is read. */
  bt[1][1] = N_PAGES;
  assert_int_equal(aoq_dev_attention(d, &kv, &b, q.p, out, m, NH, scale, dt, NULL, NULL),
                   AOQ_EINVAL);
  assert_non_null(strstr(aoq_last_error(), "page"));
  bt[1][1] = 11;
  row_seq[0] = NSEQ;
  assert_int_equal(aoq_dev_attention(d, &kv, &b, q.p, out, m, NH, scale, dt, NULL, NULL),
                   AOQ_EINVAL);
  row_seq[0] = 2;
  b.max_pos = 11;
  assert_int_equal(aoq_dev_attention(d, &kv, &b, q.p, out, m, NH, scale, dt, NULL, NULL),
                   AOQ_EINVAL);
  b.max_pos = 12;
  assert_int_equal(aoq_dev_attention(d, &kv, &b, q.p, out, m, 7, scale, dt, NULL, NULL),
                   AOQ_EINVAL);
  slots[0] = N_PAGES * PAGE;
  assert_int_equal(aoq_dev_kv_store(d, &kv, k.p, v.p, slots, 1, dt, NULL), AOQ_EINVAL);
  aoq_dev_free(d, out);
  tens_free(d, &q);
  tens_free(d, &k);
  tens_free(d, &v);
  aoq_dev_free(d, kv.k);
  aoq_dev_free(d, kv.v);
}

static void test_attention_paged_gqa_mixed_batch(void **state) {
  (void)state;
  for (int run = 0; run < n_isas() + 1; run++) { /* every ISA on 2 threads, then scalar on 1 */
    aoq_device *d = open_cpu(run < n_isas() ? run : 0, run < n_isas() ? 2 : 1);
    check_attention(d, AOQ_DTYPE_BF16, AOQ_DTYPE_BF16);
    check_attention(d, AOQ_DTYPE_F32, AOQ_DTYPE_F32);
    check_attention(d, AOQ_DTYPE_F32, AOQ_DTYPE_BF16);
    aoq_device_close(d);
  }
}

/* A long sequence crosses several streaming-softmax blocks; a large early score forces rescaling
 * (later blocks have smaller maxima) and a late one forces the correction of earlier blocks. */
static void test_attention_long_sequence_rescales(void **state) {
  (void)state;
  for (int isa = 0; isa < n_isas(); isa++) {
    aoq_device *d = open_cpu(isa, 2);
    const int len = 300, hd = 8, ps = 16, pages = 20;
    aoq_kv_cache kv = {NULL, NULL, pages, ps, 1, hd, AOQ_DTYPE_F32};
    assert_int_equal(aoq_dev_alloc(d, (size_t)pages * ps * hd * 4, &kv.k), AOQ_OK);
    assert_int_equal(aoq_dev_alloc(d, (size_t)pages * ps * hd * 4, &kv.v), AOQ_OK);
    int32_t bt[20];
    for (int i = 0; i < pages; i++) bt[i] = pages - 1 - i;
    float *kk = kv.k, *vv = kv.v;
    float q[2 * 8];
    for (int c = 0; c < 2 * hd; c++) q[c] = (float)urand();
    for (int p = 0; p < len; p++) {
      int64_t slot = (int64_t)bt[p / ps] * ps + p % ps;
      for (int c = 0; c < hd; c++) {
        kk[slot * hd + c] = (float)urand() * (p == 5 || p == 290 ? 8.0f : 1.0f);
        vv[slot * hd + c] = (float)urand();
      }
    }
    int32_t rs[2] = {0, 0}, rp[2] = {len - 1, 200};
    aoq_attn_batch b = {rs, rp, bt, 1, pages, len - 1};
    float out[16];
    assert_int_equal(aoq_dev_attention(d, &kv, &b, q, out, 2, 1, 0.5f, AOQ_DTYPE_F32, NULL, NULL),
                     AOQ_OK);
    for (int r = 0; r < 2; r++) {
      double sc[300], mx = -INFINITY, den = 0;
      for (int p = 0; p <= rp[r]; p++) {
        int64_t slot = (int64_t)bt[p / ps] * ps + p % ps;
        double dot = 0;
        for (int c = 0; c < hd; c++) dot += (double)q[r * hd + c] * kk[slot * hd + c];
        sc[p] = 0.5 * dot;
        mx = sc[p] > mx ? sc[p] : mx;
      }
      for (int p = 0; p <= rp[r]; p++) den += exp(sc[p] - mx);
      for (int c = 0; c < hd; c++) {
        double ref = 0;
        for (int p = 0; p <= rp[r]; p++) {
          int64_t slot = (int64_t)bt[p / ps] * ps + p % ps;
          ref += exp(sc[p] - mx) / den * vv[slot * hd + c];
        }
        CHECK_CLOSE(out[r * hd + c], ref, 2e-5, "long attention %s row %d col %d", isa_env[isa], r,
                    c);
      }
    }
    aoq_dev_free(d, kv.k);
    aoq_dev_free(d, kv.v);
    aoq_device_close(d);
  }
}

/* Multi-query attention with 12 query heads on one KV head: more heads than the kernel takes
 * at once (8), so one group is split in two; head_dim 512 also lowers that count to 8. */
static void test_attention_large_group_is_split(void **state) {
  (void)state;
  static const int hds[2] = {16, 512};
  for (int isa = 0; isa < n_isas(); isa++)
    for (int hi = 0; hi < 2; hi++) {
      aoq_device *d = open_cpu(isa, 2);
      const int nh = 12, hd = hds[hi], len = 9, ps = 4, pages = 3;
      aoq_kv_cache kv = {NULL, NULL, pages, ps, 1, hd, AOQ_DTYPE_F32};
      tens kt = tens_new(d, (int64_t)pages * ps * hd, AOQ_DTYPE_F32, 1.0);
      tens vt = tens_new(d, (int64_t)pages * ps * hd, AOQ_DTYPE_F32, 1.0);
      kv.k = kt.p;
      kv.v = vt.p;
      int32_t bt[3] = {2, 0, 1}, rs[2] = {0, 0}, rp[2] = {len - 1, 3};
      aoq_attn_batch b = {rs, rp, bt, 1, 3, len - 1};
      tens q = tens_new(d, 2 * nh * hd, AOQ_DTYPE_F32, 1.0);
      float *out = malloc(sizeof(float) * 2 * nh * hd);
      float scale = 1.0f / sqrtf((float)hd);
      assert_int_equal(
          aoq_dev_attention(d, &kv, &b, q.p, out, 2, nh, scale, AOQ_DTYPE_F32, NULL, NULL), AOQ_OK);
      for (int r = 0; r < 2; r++)
        for (int h = 0; h < nh; h++) {
          double sc[9], mx = -INFINITY, den = 0;
          for (int p = 0; p <= rp[r]; p++) {
            int64_t slot = (int64_t)bt[p / ps] * ps + p % ps;
            double dot = 0;
            for (int c = 0; c < hd; c++) dot += q.v[(r * nh + h) * hd + c] * kt.v[slot * hd + c];
            sc[p] = dot * scale;
            mx = sc[p] > mx ? sc[p] : mx;
          }
          for (int p = 0; p <= rp[r]; p++) den += exp(sc[p] - mx);
          for (int c = 0; c < hd; c++) {
            double ref = 0;
            for (int p = 0; p <= rp[r]; p++)
              ref += exp(sc[p] - mx) / den * vt.v[((int64_t)bt[p / ps] * ps + p % ps) * hd + c];
            CHECK_CLOSE(out[(r * nh + h) * hd + c], ref, 2e-5, "mqa %s hd %d row %d head %d",
                        isa_env[isa], hd, r, h);
          }
        }
      free(out);
      tens_free(d, &q);
      tens_free(d, &kt);
      tens_free(d, &vt);
      aoq_device_close(d);
    }
}

/* ---- argmax and sampling ---- */

static void test_argmax_first_max_wins(void **state) {
  (void)state;
  aoq_device *d = open_cpu(0, 2);
  for (size_t t = 0; t < 2; t++) {
    aoq_dtype dt = dts[t];
    const int64_t m = 5, vocab = 1001;
    tens lg = tens_new(d, m * vocab, dt, 4.0);
    int32_t want[5] = {0, 1000, 500, 17, 3};
    for (int64_t r = 0; r < m; r++) {
      aoq_cpu_st(lg.p, r * vocab + want[r], 9.0f, dt);
      if (r == 2) aoq_cpu_st(lg.p, r * vocab + 900, 9.0f, dt); /* tie: 500 comes first */
      if (r == 3) aoq_cpu_st(lg.p, r * vocab + 16, NAN, dt);   /* NaN never wins */
    }
    int32_t out[5];
    assert_int_equal(aoq_dev_argmax(d, lg.p, out, m, vocab, dt, NULL), AOQ_OK);
    assert_memory_equal(out, want, sizeof want);
    assert_int_equal(aoq_dev_argmax(d, lg.p, out, m, 0, dt, NULL), AOQ_EINVAL);
    assert_int_equal(aoq_dev_argmax(d, lg.p, NULL, m, vocab, dt, NULL), AOQ_EINVAL);
    tens_free(d, &lg);
  }
  aoq_device_close(d);
}

static int32_t sample1(aoq_device *d, const float *lg, int64_t vocab, float temp, int top_k,
                       float top_p, uint64_t seed) {
  aoq_sample_params p = {temp, top_p, top_k, seed};
  int32_t out = -1;
  aoq_status st = aoq_dev_sample(d, lg, &out, 1, vocab, &p, AOQ_DTYPE_F32, NULL);
  if (st != AOQ_OK) print_message("sample: %s\n", aoq_last_error());
  assert_int_equal(st, AOQ_OK);
  return out;
}

static void test_sample_is_deterministic_and_greedy_at_zero(void **state) {
  (void)state;
  aoq_device *d = open_cpu(0, 2);
  float lg[100];
  for (int i = 0; i < 100; i++) lg[i] = (float)urand();
  lg[42] = 1.5f;
  int distinct[100] = {0}, n_distinct = 0;
  for (uint64_t seed = 0; seed < 300; seed++) {
    int32_t a = sample1(d, lg, 100, 1.0f, 0, 1.0f, seed);
    int32_t b = sample1(d, lg, 100, 1.0f, 0, 1.0f, seed);
    assert_int_equal(a, b);
    assert_true(a >= 0 && a < 100);
    if (!distinct[a]++) n_distinct++;
    assert_int_equal(sample1(d, lg, 100, 0.0f, 0, 1.0f, seed), 42);
    assert_int_equal(sample1(d, lg, 100, 1.0f, 1, 1.0f, seed), 42); /* top_k 1 = greedy */
  }
  assert_true(n_distinct > 50);
  /* Several rows in one call, each with its own parameters, match single-row calls. */
  float rows[3 * 100];
  aoq_sample_params ps[3] = {{0.7f, 0.9f, 0, 11}, {0.0f, 1.0f, 0, 12}, {1.3f, 1.0f, 10, 13}};
  for (int r = 0; r < 3; r++) memcpy(rows + r * 100, lg, sizeof lg);
  int32_t out[3];
  assert_int_equal(aoq_dev_sample(d, rows, out, 3, 100, ps, AOQ_DTYPE_F32, NULL), AOQ_OK);
  for (int r = 0; r < 3; r++)
    assert_int_equal(out[r],
                     sample1(d, lg, 100, ps[r].temperature, ps[r].top_k, ps[r].top_p, ps[r].seed));
  aoq_sample_params bad = {NAN, 1.0f, 0, 1};
  assert_int_equal(aoq_dev_sample(d, lg, out, 1, 100, &bad, AOQ_DTYPE_F32, NULL), AOQ_EINVAL);
  bad.temperature = 1;
  bad.top_k = -2;
  assert_int_equal(aoq_dev_sample(d, lg, out, 1, 100, &bad, AOQ_DTYPE_F32, NULL), AOQ_EINVAL);
  assert_int_equal(aoq_dev_sample(d, lg, out, 1, 100, NULL, AOQ_DTYPE_F32, NULL), AOQ_EINVAL);
  aoq_device_close(d);
}

static void test_sample_distribution_top_k_top_p(void **state) {
  (void)state;
  aoq_device *d = open_cpu(0, 2);
  /* Plain softmax sampling follows the probabilities: p = [.1 .2 .3 .4]. */
  float lg4[4] = {logf(0.1f), logf(0.2f), logf(0.3f), logf(0.4f)};
  int cnt[4] = {0};
  const int N = 4000;
  for (int s = 0; s < N; s++) cnt[sample1(d, lg4, 4, 1.0f, 0, 1.0f, (uint64_t)s * 7919)]++;
  for (int i = 0; i < 4; i++) {
    double f = (double)cnt[i] / N;
    if (fabs(f - 0.1 * (i + 1)) > 0.03) print_message("token %d freq %.3f\n", i, f);
    assert_true(fabs(f - 0.1 * (i + 1)) <= 0.03);
  }
  /* top-k: a token outside the k largest is never chosen, each of the k is. */
  float lg[64];
  for (int i = 0; i < 64; i++) lg[i] = (float)urand() * 0.5f;
  int order[64];
  for (int i = 0; i < 64; i++) order[i] = i;
  for (int i = 0; i < 64; i++) /* selection sort, descending */
    for (int j = i + 1; j < 64; j++)
      if (lg[order[j]] > lg[order[i]]) {
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
      }
  int in_top[64] = {0}, seen[64] = {0};
  for (int i = 0; i < 5; i++) in_top[order[i]] = 1;
  for (int s = 0; s < 1000; s++) {
    int32_t t = sample1(d, lg, 64, 1.0f, 5, 1.0f, (uint64_t)s);
    assert_true(in_top[t]);
    seen[t]++;
  }
  for (int i = 0; i < 5; i++) assert_true(seen[order[i]] > 0);
  /* top-p: p = [.5 .3 .1 .05 .05] (+ 59 tokens at -inf): top_p .75 keeps {0, 1} only, in
   * proportion .625 / .375. */
  float lp[64];
  for (int i = 0; i < 64; i++) lp[i] = -INFINITY;
  const float pr[5] = {0.5f, 0.3f, 0.1f, 0.05f, 0.05f};
  for (int i = 0; i < 5; i++) lp[i * 11] = logf(pr[i]);
  int c0 = 0, c1 = 0;
  for (int s = 0; s < 2000; s++) {
    int32_t t = sample1(d, lp, 64, 1.0f, 0, 0.75f, (uint64_t)s * 31 + 1);
    assert_true(t == 0 || t == 11);
    c0 += t == 0;
    c1 += t == 11;
  }
  assert_true(fabs((double)c0 / 2000 - 0.625) < 0.04);
  /* top_p 0.45 keeps only the first token; 0.85 keeps three. */
  for (int s = 0; s < 200; s++) assert_int_equal(sample1(d, lp, 64, 1.0f, 0, 0.45f, s), 0);
  int seen3[64] = {0};
  for (int s = 0; s < 1000; s++) {
    int32_t t = sample1(d, lp, 64, 1.0f, 0, 0.85f, s);
    assert_true(t == 0 || t == 11 || t == 22);
    seen3[t]++;
  }
  assert_true(seen3[22] > 0);
  /* top-k then top-p on the renormalized top-k: k=3 -> [.5 .3 .1]/.9; top_p .85 is reached by
   * (.5 + .3)/.9 = .89 -> {0, 11} (over the whole vocabulary .8 < .85 would also keep 22). */
  for (int s = 0; s < 500; s++) {
    int32_t t = sample1(d, lp, 64, 1.0f, 3, 0.85f, s);
    assert_true(t == 0 || t == 11);
  }
  /* Low temperature sharpens: at T = 0.02 the others have odds below e^-14 each. */
  for (int s = 0; s < 500; s++) assert_int_equal(sample1(d, lg4, 4, 0.02f, 0, 1.0f, s), 3);
  /* bf16 logits sample the same way as their f32 values. */
  uint16_t lb[4];
  float lf[4];
  for (int i = 0; i < 4; i++) lb[i] = aoq_f32_to_bf16(lg4[i]), lf[i] = aoq_bf16_to_f32(lb[i]);
  for (uint64_t s = 0; s < 200; s++) {
    aoq_sample_params p = {0.9f, 0.95f, 3, s};
    int32_t a = -1, b = -2;
    assert_int_equal(aoq_dev_sample(d, lb, &a, 1, 4, &p, AOQ_DTYPE_BF16, NULL), AOQ_OK);
    assert_int_equal(aoq_dev_sample(d, lf, &b, 1, 4, &p, AOQ_DTYPE_F32, NULL), AOQ_OK);
    assert_int_equal(a, b);
  }
  aoq_device_close(d);
}

/* ---- device.c wrappers ---- */

static void test_wrappers_check_arguments(void **state) {
  (void)state;
  void *p = NULL;
  aoq_device_info info;
  assert_int_equal(aoq_dev_alloc(NULL, 16, &p), AOQ_EINVAL);
  assert_int_equal(aoq_dev_copy_h2d(NULL, &p, &p, 1, NULL), AOQ_EINVAL);
  assert_int_equal(aoq_dev_stream_sync(NULL, NULL), AOQ_EINVAL);
  assert_int_equal(aoq_dev_rmsnorm(NULL, p, p, p, 1, 1, 0, AOQ_DTYPE_BF16, NULL), AOQ_EINVAL);
  assert_int_equal(aoq_dev_attention(NULL, NULL, NULL, p, p, 1, 1, 1, AOQ_DTYPE_BF16, NULL, NULL),
                   AOQ_EINVAL);
  assert_int_equal(aoq_device_info_get(NULL, &info), AOQ_EINVAL);
  assert_int_equal(aoq_dev_linear_workspace(NULL, NULL, 1), 0);
  assert_false(aoq_device_has(NULL, AOQ_CAP_F32));
  assert_string_equal(aoq_device_name(NULL), "(none)");
  assert_null(aoq_device_iface_of(NULL));
  aoq_dev_free(NULL, NULL);
  aoq_device_close(NULL);
  aoq_device *d = open_cpu(0, 1);
  const struct aoq_device_iface *fi = aoq_device_iface_of(d);
  assert_non_null(fi);
  assert_int_equal(fi->api_version, AOQ_DEVICE_API_VERSION);
  assert_string_equal(fi->name, "cpu");
  assert_int_equal(aoq_device_info_get(d, NULL), AOQ_EINVAL);
  assert_int_equal(aoq_dev_kv_store(d, NULL, p, p, NULL, 1, AOQ_DTYPE_BF16, NULL), AOQ_EINVAL);
  assert_int_equal(aoq_dev_embed(d, p, 4, NULL, p, 1, 4, AOQ_DTYPE_BF16, NULL), AOQ_EINVAL);
  aoq_device_close(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_open_cpu_reports_caps_and_threads),
      cmocka_unit_test(test_open_errors_name_the_problem),
      cmocka_unit_test(test_memory_alloc_copy_memset_register),
      cmocka_unit_test(test_ipc_and_graphs_are_not_offered),
      cmocka_unit_test(test_streams_and_events_time_the_work),
      cmocka_unit_test(test_linear_bf16_matches_reference_every_isa),
      cmocka_unit_test(test_linear_rejects_bad_arguments),
      cmocka_unit_test(test_rmsnorm_matches_hf_reference),
      cmocka_unit_test(test_add_and_silu_mul_match_reference),
      cmocka_unit_test(test_convert_rounds_to_nearest_even),
      cmocka_unit_test(test_embed_copies_rows_and_checks_ids),
      cmocka_unit_test(test_rope_plain_and_llama31_scaling),
      cmocka_unit_test(test_attention_paged_gqa_mixed_batch),
      cmocka_unit_test(test_attention_long_sequence_rescales),
      cmocka_unit_test(test_attention_large_group_is_split),
      cmocka_unit_test(test_argmax_first_max_wins),
      cmocka_unit_test(test_sample_is_deterministic_and_greedy_at_zero),
      cmocka_unit_test(test_sample_distribution_top_k_top_p),
      cmocka_unit_test(test_wrappers_check_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
