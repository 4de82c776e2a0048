/*
 * test_cublas_host.c — devices/cuda/cublas.c's int8dq path (linear_i8: activation quantization,
 * chunks of weight rows, padding to multiples of 16, the int8 GEMM, the epilogue, the fallback),
 * on the host, without a GPU: cublas.c is linked with host stand-ins for the CUDA runtime calls
 * it makes and for kernels/gpu's entry points, and loads fake_cublas.c (a CPU cublasGemmEx that
 * refuses any dimension, leading dimension or pointer not aligned to 16) in place of libcublas.
 * The output must equal the exact reference bit for bit (int32 sums, then
 * bf16(bf16(acc * x_s) * w_s), devices/cpu/cpu_quant.c's int8dq order), with no fallback; the
 * workspace (aoq_cublas_linear_workspace bytes) must not be overrun and must not shrink as m
 * grows; a refused GEMM falls back to the own kernel, or fails under AOQ_CUBLAS_INT8=strict.
 * What the GPU adds (the real cuBLAS, k_epi_i8, act_quant.cu) is test_cuda_gemm's.
 */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <dlfcn.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* cmocka needs the headers above first */
// clang-format off
#include <cmocka.h>
// clang-format on

#include "base/error.h"
#include "base/numerics.h"
#include "devices/cuda/cublas.h"
#include "kernels/gpu/gpu_kernels.h"

/* ---- host stand-ins: the CUDA runtime calls of cublas.c (symbols only: cudaError_t is an int
 * enum, streams are pointers) and the kernels' entry points, on host memory ---- */
int cudaMemsetAsync(void *p, int v, size_t n, void *s);
int cudaMemcpyAsync(void *d, const void *p, size_t n, int kind, void *s);
int cudaGetLastError(void);
const char *cudaGetErrorString(int e);
int cudaMemsetAsync(void *p, int v, size_t n, void *s) {
  (void)s;
  memset(p, v, n);
  return 0;
}
int cudaMemcpyAsync(void *d, const void *p, size_t n, int kind, void *s) {
  (void)s, (void)kind;
  memcpy(d, p, n);
  return 0;
}
int cudaGetLastError(void) {
  return 0;
}
const char *cudaGetErrorString(int e) {
  (void)e;
  return "host stand-in";
}

static size_t al256(size_t b) {
  return (b + 255) & ~(size_t)255;
}
size_t aoq_gk_act_layout(int64_t m, int64_t k, size_t *off_xs) { /* act_quant.cu's */
  *off_xs = al256((size_t)(m * k) * 2);
  return *off_xs + al256((size_t)(m * (k / 128 + 1) + 2) * 4);
}
/* int8dq's activations: int8 [m, k] at ws, the scales at off_xs (act_quant.cu's k_quant_int8) */
int aoq_gk_act_quant_rows(const aoq_qweight *w, const uint16_t *x, int64_t m, void *ws,
                          void *stream) {
  (void)stream;
  size_t off;
  aoq_gk_act_layout(m, w->k, &off);
  float *xs = (float *)((char *)ws + off);
  for (int64_t r = 0; r < m; r++)
    xs[r] = aoq_int8_quant_row(x + r * w->k, w->k, (int8_t *)ws + r * w->k);
  return 0;
}
/* dequant.cu's k_epi_i8, element by element */
int aoq_gk_i8_epilogue(const aoq_qweight *w, const int32_t *c, int64_t ldc, int64_t m, int64_t r0,
                       int64_t rows, uint16_t *y, const float *xs, void *stream) {
  (void)stream;
  if (ldc < rows || rows <= 0 || r0 < 0 || r0 + rows > w->n) return 1;
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < rows; j++)
      y[i * w->n + r0 + j] = aoq_f32_to_bf16(aoq_round_bf16((float)c[i * ldc + j] * xs[i]) *
                                             ((const float *)w->scale)[r0 + j]);
  return 0;
}

/* the exact reference: int8 per token, int32 sums, the epilogue (cpu_quant.c's order) */
static void reference(const aoq_qweight *w, const uint16_t *x, int64_t m, uint16_t *y) {
  int8_t *q = malloc((size_t)w->k);
  for (int64_t i = 0; i < m; i++) {
    const float s = aoq_int8_quant_row(x + i * w->k, w->k, q);
    for (int64_t r = 0; r < w->n; r++) {
      int32_t acc = 0;
      for (int64_t l = 0; l < w->k; l++)
        acc += (int32_t)q[l] * ((const int8_t *)w->qdata)[r * w->k + l];
      y[i * w->n + r] =
          aoq_f32_to_bf16(aoq_round_bf16((float)acc * s) * ((const float *)w->scale)[r]);
    }
  }
  free(q);
}

static int own_calls; /* the fallback: linear.cu's k_dec */
int aoq_gk_linear(const aoq_qweight *w, const uint16_t *x, uint16_t *y, int64_t m, void *ws,
                  int num_sms, void *stream) {
  (void)ws, (void)num_sms, (void)stream;
  own_calls++;
  reference(w, x, m, y);
  return 0;
}
int aoq_gk_dequant_rows(const aoq_qweight *w, int64_t r0, int64_t rows, uint16_t *out,
                        void *stream) {
  (void)w, (void)r0, (void)rows, (void)out, (void)stream;
  return 1; /* not int8dq's */
}
int aoq_gk_gemm_epilogue(const aoq_qweight *w, const float *c, int64_t m, int64_t r0, int64_t rows,
                         uint16_t *y, const float *xs, const float *xt, void *stream) {
  (void)w, (void)c, (void)m, (void)r0, (void)rows, (void)y, (void)xs, (void)xt, (void)stream;
  return 1;
}

/* ---- the fake library ---- */
static int *fake_calls, *fake_refused;

static aoq_cublas *open_fake(const char *chunk_mb, const char *int8) {
  setenv("AOQ_CUBLAS", AOQ_FAKE_CUBLAS, 1);
  setenv("AOQ_CUBLAS_MIN_M", "16", 1);
  if (chunk_mb) setenv("AOQ_CUBLAS_CHUNK_MB", chunk_mb, 1);
  if (int8) setenv("AOQ_CUBLAS_INT8", int8, 1);
  aoq_cublas *h = NULL;
  aoq_status s = aoq_cublas_open(&h);
  unsetenv("AOQ_CUBLAS_CHUNK_MB"), unsetenv("AOQ_CUBLAS_INT8");
  if (s) fail_msg("open %s: %s", AOQ_FAKE_CUBLAS, aoq_last_error());
  if (!fake_calls) { /* the library cublas.c loaded: the same object, already mapped */
    void *lib = dlopen(AOQ_FAKE_CUBLAS, RTLD_NOW | RTLD_NOLOAD);
    assert_non_null(lib);
    fake_calls = dlsym(lib, "fake_cublas_calls");
    fake_refused = dlsym(lib, "fake_cublas_refused");
    assert_non_null(fake_calls);
    assert_non_null(fake_refused);
  }
  return h;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float urnd(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (float)((double)(rng >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

/* an int8dq weight [n, k]: random int8, per-row f32 scales */
static aoq_qweight weight(int64_t n, int64_t k) {
  aoq_qweight w = {.kind = AOQ_FMT_INT8DQ, .bits = 8, .n = n, .k = k};
  int8_t *q = malloc((size_t)(n * k));
  float *s = malloc((size_t)n * 4);
  for (int64_t i = 0; i < n * k; i++) q[i] = (int8_t)(int)(urnd() * 127.0f);
  for (int64_t r = 0; r < n; r++) s[r] = 1e-3f + 1e-2f * fabsf(urnd());
  w.qdata = q, w.scale = s, w.qdata_bytes = (size_t)(n * k), w.scale_bytes = (size_t)n * 4;
  return w;
}

#define GUARD 256

/* y through aoq_cublas_linear vs the reference; returns the fallback calls it made */
static int check(aoq_cublas *h, const aoq_qweight *w, int64_t m, aoq_status want) {
  assert_true(aoq_cublas_linear_wants(h, w, m));
  uint16_t *x = malloc((size_t)(m * w->k) * 2), *y = malloc((size_t)(m * w->n) * 2),
           *yr = malloc((size_t)(m * w->n) * 2);
  for (int64_t i = 0; i < m * w->k; i++) x[i] = aoq_f32_to_bf16(urnd() * (i % 97 ? 1.0f : 9.0f));
  memset(y, 0xff, (size_t)(m * w->n) * 2);
  const size_t wsb = aoq_cublas_linear_workspace(h, w, m);
  unsigned char *ws = malloc(wsb + GUARD);
  memset(ws, 0x5a, wsb + GUARD);
  const int own0 = own_calls;
  aoq_status s = aoq_cublas_linear(h, w, x, y, m, ws, NULL);
  assert_int_equal(s, want);
  for (int i = 0; i < GUARD; i++)
    if (ws[wsb + i] != 0x5a)
      fail_msg("[%lld x %lld] m=%lld: workspace of %zu bytes overrun", (long long)w->n,
               (long long)w->k, (long long)m, wsb);
  if (want == AOQ_OK) {
    reference(w, x, m, yr);
    int64_t d = 0;
    for (int64_t i = 0; i < m * w->n; i++) d += y[i] != yr[i];
    if (d)
      fail_msg("[%lld x %lld] m=%lld: %lld outputs differ from the reference", (long long)w->n,
               (long long)w->k, (long long)m, (long long)d);
  }
  free(x), free(y), free(yr), free(ws);
  return own_calls - own0;
}

static const int64_t shapes[][2] = {{301, 1024}, {512, 256}, {2560, 128}, {2501, 128}, {40, 64}};
static const int64_t ms[] = {16, 17, 128, 130, 300};

static void run_all(aoq_cublas *h, int min_gemms) {
  for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
    aoq_qweight w = weight(shapes[si][0], shapes[si][1]);
    for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
      const int calls0 = *fake_calls, ref0 = *fake_refused;
      assert_int_equal(check(h, &w, ms[mi], AOQ_OK), 0); /* no fallback */
      assert_int_equal(*fake_refused - ref0, 0);
      assert_true(*fake_calls - calls0 >= (si == 2 && ms[mi] >= 128 ? min_gemms : 1));
    }
    free(w.qdata), free(w.scale);
  }
}

static void test_int8dq_one_chunk(void **state) {
  (void)state;
  aoq_cublas *h = open_fake(NULL, NULL);
  assert_non_null(strstr(aoq_cublas_describe(h), "int8 gemm on"));
  run_all(h, 1);
  aoq_cublas_close(h);
}

/* 1 MiB of int32 sums per chunk: [2560 x 128] takes 2 (m = 128, 130) to 4 (m = 300) chunks,
 * [2501 x 128] a ragged last one */
static void test_int8dq_chunks(void **state) {
  (void)state;
  aoq_cublas *h = open_fake("1", NULL);
  run_all(h, 2);
  aoq_cublas_close(h);
}

static void test_int8dq_refused(void **state) {
  (void)state;
  aoq_qweight w = weight(301, 256);
  aoq_cublas *h = open_fake(NULL, NULL), *strict = open_fake(NULL, "strict"),
             *off = open_fake(NULL, "off");
  setenv("FAKE_CUBLAS_REFUSE", "1", 1);
  assert_int_equal(check(h, &w, 130, AOQ_OK), 1); /* the own kernel, same bits */
  assert_int_equal(check(strict, &w, 130, AOQ_EDEVICE), 0);
  unsetenv("FAKE_CUBLAS_REFUSE");
  assert_false(aoq_cublas_linear_wants(off, &w, 2048));
  assert_false(aoq_cublas_linear_wants(h, &w, 15)); /* x's padding rows need m >= 16 */
  aoq_cublas_close(h), aoq_cublas_close(strict), aoq_cublas_close(off);
  free(w.qdata), free(w.scale);
}

static void test_int8dq_workspace_grows(void **state) {
  (void)state;
  aoq_cublas *h = open_fake("1", NULL);
  aoq_qweight w = {.kind = AOQ_FMT_INT8DQ, .bits = 8, .n = 2501, .k = 128};
  size_t prev = 0;
  for (int64_t m = 16; m <= 4096; m++) {
    size_t b = aoq_cublas_linear_workspace(h, &w, m);
    if (b < prev) fail_msg("workspace %zu at m=%lld < %zu at m-1", b, (long long)m, prev);
    prev = b;
  }
  aoq_cublas_close(h);
}

int main(void) {
  /* cublas.c would fall back to the real libcublas (and give it host pointers) */
  if (access(AOQ_FAKE_CUBLAS, R_OK)) {
    fprintf(stderr, "%s missing (a build dir moved?) -- skipping\n", AOQ_FAKE_CUBLAS);
    return 77;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_int8dq_one_chunk),
      cmocka_unit_test(test_int8dq_chunks),
      cmocka_unit_test(test_int8dq_refused),
      cmocka_unit_test(test_int8dq_workspace_grows),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
