/*
 * test_device_cpu.c — the CPU backend against naive double-precision references written here,
 * for every SIMD level the machine has (AOQ_CPU_ISA) and both activation dtypes: device opening,
 * memory/stream/event calls, linear, rmsnorm, add, silu_mul, convert, embed, rope, and the
 * argument checks of device.c's wrappers. Attention: test_cpu_attention.c; argmax and sampling:
 * test_cpu_sample.c; against Hugging Face's own outputs: test_cpu_hf_golden.c.
 *
 * Tolerances (stated per check):
 *   linear   |y - ref| <= 6e-8 * (k + 4) * sum|w x| + |ref| * r_dt     (fp32 summation bound,
 *            r_dt = 2^-8 for the final bf16 rounding, 2^-23 for f32)
 *   rmsnorm, silu_mul   bf16: an intermediate that lands on the other side of a rounding
 *            boundary (fp32 vs double) moves the result by up to 2 ulps after the final
 *            rounding: |ref| * 2^-6 (+1e-6 abs); f32: 1e-5 relative
 *   rope     angles are fp32 (pos * inv_freq): 2e-3 * |x| absolute, plus 2^-7 relative for bf16
 *   add, embed, convert: exact
 */
#include "tests/unit/test_cpu_util.h"

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
      cmocka_unit_test(test_wrappers_check_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
