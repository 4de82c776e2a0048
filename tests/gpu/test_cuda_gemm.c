/*
 * test_cuda_gemm.c — the CUDA backend's large-m linear (prefill): cuBLAS on bf16 weights, decoded
 * weight chunks + cuBLAS for the packed formats (devices/cuda/cublas.c, kernels/gpu/dequant.cu),
 * against the CPU backend on the same packed bytes, with the tolerance of test_cuda_linear.c
 * (fp32 reassociation: one bf16 ulp, two for the post-scaled int8wo / nvfp4). Weights come from
 * the reference quantizer (core/format.h), as the model loader makes them.
 *  - the decode of every format is bit-exact with the CPU backend's decoders and, for the
 *    weight-only formats, with the reference dequantization (linear_dec.h's too: intx, codebook
 *    with groups of 16 / 32 / 48 / per row, w158, fp6);
 *  - the BLAS path's activation quantization writes act_quant.cu's bytes;
 *  - m = 128, 300, 2048 through cuBLAS, with one chunk and with many (AOQ_CUBLAS_CHUNK_MB=1);
 *  - the same with cuBLAS disabled (AOQ_CUBLAS=off): the own kernels' path still agrees;
 *  - the workspace never shrinks as m grows (the model sizes it once, for the largest m);
 *  - int8dq through cuBLAS's int8 GEMM (AOQ_CUBLAS_INT8=strict, so a refused GEMM fails instead
 *    of falling back), one chunk and many, is bit-identical to the CPU backend and to aoq's own
 *    kernel (AOQ_CUBLAS_INT8=off).
 */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "core/format.h"
#include "devices/cpu/cpu_quant_deq.h"
#include "kernels/gpu/gpu_kernels.h"
#include "tests/gpu/cuda_test_util.h"

static const char *const fmts[] = {"bf16",      "int8wo", "fp8wo",     "int4wo-128",
                                   "int4wo-32", "fp8dq",  "fp8dq-row", "mxfp8",
                                   "mxfp4",     "nvfp4",  "nvfp4wo",   "int4wo-64-hqq"};
#define NFMT (sizeof fmts / sizeof fmts[0])

/* host weight quantized by the reference quantizer; false if this build lacks the format */
static bool make_weight(const char *name, int64_t n, int64_t k, aoq_qweight *w) {
  aoq_format f;
  if (aoq_format_parse(name, &f) != AOQ_OK) return false;
  assert_int_equal(aoq_format_plan(&f, n, k, w), AOQ_OK);
  assert_int_equal(aoq_qweight_host_alloc(w), AOQ_OK);
  uint16_t *src = bf16_random(n * k, 0.05f);
  src[7] = aoq_f32_to_bf16(0.4f); /* an outlier for the per-tensor scales */
  assert_int_equal(aoq_quantize_ref(src, w), AOQ_OK);
  free(src);
  return true;
}

static aoq_device *open_gpu_with(const char *cublas, const char *chunk_mb) {
  if (cublas)
    setenv("AOQ_CUBLAS", cublas, 1);
  else
    unsetenv("AOQ_CUBLAS");
  if (chunk_mb)
    setenv("AOQ_CUBLAS_CHUNK_MB", chunk_mb, 1);
  else
    unsetenv("AOQ_CUBLAS_CHUNK_MB");
  aoq_device *d = NULL;
  assert_int_equal(aoq_device_open("cuda:0", &d), AOQ_OK);
  unsetenv("AOQ_CUBLAS");
  unsetenv("AOQ_CUBLAS_CHUNK_MB");
  return d;
}

static bool uses_cublas(aoq_device *d) {
  aoq_device_info i;
  assert_int_equal(aoq_device_info_get(d, &i), AOQ_OK);
  print_message("  engine: %s\n", i.linear_engine[0] ? i.linear_engine : "own kernels");
  return !strncmp(i.linear_engine, "cublas", 6);
}

/* Every row's decode on the GPU (rows [r0, n)) equals the CPU backend's operand in bf16. */
static void test_dequant_bit_exact(void **state) {
  (void)state;
  const int64_t n = 200, k = 1024, r0 = 72;
  aoq_stream *st = NULL;
  assert_int_equal(aoq_dev_stream_create(g_gpu, &st), AOQ_OK);
  for (size_t f = 1; f < NFMT; f++) { /* bf16 is a copy */
    aoq_qweight hw;
    if (!make_weight(fmts[f], n, k, &hw)) continue;
    aoq_qweight dw = upload_weight(g_gpu, &hw);
    uint16_t *out_d = NULL;
    assert_int_equal(aoq_dev_alloc(g_gpu, (size_t)((n - r0) * k) * 2, (void **)&out_d), AOQ_OK);
    assert_int_equal(aoq_dev_memset(g_gpu, out_d, 0xff, (size_t)((n - r0) * k) * 2, st), AOQ_OK);
    assert_int_equal(aoq_gk_dequant_rows(&dw, r0, n - r0, out_d, st), 0);
    assert_int_equal(aoq_dev_stream_sync(g_gpu, st), AOQ_OK);
    uint16_t *got = dev_download(g_gpu, out_d, (size_t)((n - r0) * k) * 2);
    float lut[512], row[1024];
    aoq_cpu_quant_lut(&hw, lut);
    int64_t bad = 0;
    for (int64_t r = r0; r < n; r++) {
      aoq_cpu_quant_rowlut(&hw, r, lut);
      for (int64_t c0 = 0; c0 < k; c0 += 128) aoq_cpu_quant_deq(&hw, r, c0, 128, lut, row + c0);
      for (int64_t c = 0; c < k; c++)
        if (got[(r - r0) * k + c] != aoq_f32_to_bf16(row[c]) && bad++ < 3)
          print_message("%s: row %lld col %lld: gpu %04x cpu %04x\n", fmts[f], (long long)r,
                        (long long)c, got[(r - r0) * k + c], aoq_f32_to_bf16(row[c]));
    }
    if (bad)
      fail_msg("%s: %lld decoded elements differ from the CPU backend's", fmts[f], (long long)bad);
    /* weight-only formats: the operand is the reference dequantization itself */
    if (hw.kind == AOQ_FMT_FP8WO || hw.kind == AOQ_FMT_INT4WO || hw.kind == AOQ_FMT_INT4WO_HQQ ||
        hw.kind == AOQ_FMT_NVFP4WO) {
      uint16_t *ref = malloc((size_t)(n * k) * 2);
      assert_int_equal(aoq_dequantize_ref(&hw, ref), AOQ_OK);
      if (memcmp(ref + r0 * k, got, (size_t)((n - r0) * k) * 2))
        fail_msg("%s: decode differs from aoq_dequantize_ref", fmts[f]);
      free(ref);
    }
    free(got);
    aoq_dev_free(g_gpu, out_d);
    free_weight(g_gpu, &dw);
    aoq_qweight_host_free(&hw);
  }
  aoq_dev_stream_destroy(g_gpu, st);
}

static bool same_bf16(uint16_t a, uint16_t b) {
  return a == b || ((a & 0x7fff) > 0x7f80 && (b & 0x7fff) > 0x7f80); /* or both NaN */
}

/* linear_dec.h's weight-only decoders (the cuBLAS path's operand, aoq_gk_dec_dequant_rows) give
 * the reference dequantization bit for bit, groups of 16 and 48 (two scales per 32-element lane
 * group) included. */
static void test_dec_dequant_bit_exact(void **state) {
  (void)state;
  static const char *const names[] = {"intx4wo-32",   "intx4wo-16",   "intx3wo-16", "intx5wo-48",
                                      "intx8wo-16",   "intx1wo-16",   "intx7wo",    "codebook4-16",
                                      "codebook2-48", "codebook4-32", "w158",       "fp6-e3m2"};
  const int64_t n = 200, k = 1536, r0 = 72;
  aoq_stream *st = NULL;
  assert_int_equal(aoq_dev_stream_create(g_gpu, &st), AOQ_OK);
  for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
    aoq_qweight hw;
    assert_true(make_weight(names[f], n, k, &hw));
    aoq_qweight dw = upload_weight(g_gpu, &hw);
    const size_t bytes = (size_t)((n - r0) * k) * 2;
    uint16_t *out_d = NULL, *ref = malloc((size_t)(n * k) * 2);
    assert_int_equal(aoq_dev_alloc(g_gpu, bytes, (void **)&out_d), AOQ_OK);
    assert_int_equal(aoq_dev_memset(g_gpu, out_d, 0xff, bytes, st), AOQ_OK);
    assert_int_equal(aoq_gk_dequant_rows(&dw, r0, n - r0, out_d, st), 0);
    assert_int_equal(aoq_dev_stream_sync(g_gpu, st), AOQ_OK);
    uint16_t *got = dev_download(g_gpu, out_d, bytes);
    assert_int_equal(aoq_dequantize_ref(&hw, ref), AOQ_OK);
    int64_t bad = 0;
    for (int64_t i = 0; i < (n - r0) * k; i++)
      if (got[i] != ref[r0 * k + i] && bad++ < 3)
        print_message("%s: row %lld col %lld: gpu %04x ref %04x\n", names[f],
                      (long long)(r0 + i / k), (long long)(i % k), got[i], ref[r0 * k + i]);
    if (bad)
      fail_msg("%s: %lld decoded elements differ from the reference", names[f], (long long)bad);
    free(got), free(ref);
    aoq_dev_free(g_gpu, out_d);
    free_weight(g_gpu, &dw);
    aoq_qweight_host_free(&hw);
  }
  aoq_dev_stream_destroy(g_gpu, st);
}

/* The BLAS path's activation quantization writes act_quant.cu's bytes (xb, and xs or xt). */
static void test_act_quant_rows_bit_exact(void **state) {
  (void)state;
  static const aoq_format_kind kinds[] = {AOQ_FMT_FP8DQ, AOQ_FMT_FP8DQ_ROW, AOQ_FMT_MXFP8,
                                          AOQ_FMT_MXFP4, AOQ_FMT_NVFP4};
  static const int64_t shapes[][2] = {{300, 1024}, {7, 4096}, {2048, 512}};
  aoq_stream *st = NULL;
  assert_int_equal(aoq_dev_stream_create(g_gpu, &st), AOQ_OK);
  float pts_w = 0.0123f;
  void *d_pts = dev_upload(g_gpu, &pts_w, 4);
  for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
    const int64_t m = shapes[si][0], k = shapes[si][1];
    uint16_t *hx = bf16_random(m * k, 2.0f);
    for (int i = 0; i < 32; i++) hx[32 + i] = 0; /* an all-zero block */
    hx[70] = aoq_f32_to_bf16(300.0f);            /* an outlier */
    for (int i = 0; i < 32; i++) hx[96 + i] = aoq_f32_to_bf16(1e-30f * (float)(i - 16)); /* tiny */
    if (m > 5) hx[5 * k + 3] = 0x7f80; /* +inf: its MX block and fp8 row scale go NaN / inf */
    void *dx = dev_upload(g_gpu, hx, (size_t)(m * k) * 2);
    size_t off, bytes = aoq_gk_act_layout(m, k, &off);
    for (size_t ki = 0; ki < sizeof kinds / sizeof kinds[0]; ki++) {
      aoq_qweight w = {.kind = kinds[ki], .n = 64, .k = k, .aux = d_pts};
      void *a = dev_upload(g_gpu, NULL, bytes), *b = dev_upload(g_gpu, NULL, bytes);
      assert_int_equal(aoq_gk_act_quant(&w, dx, m, a, st), 0);
      assert_int_equal(aoq_gk_act_quant_rows(&w, dx, m, b, st), 0);
      assert_int_equal(aoq_dev_stream_sync(g_gpu, st), AOQ_OK);
      uint16_t *ha = dev_download(g_gpu, a, bytes), *hb = dev_download(g_gpu, b, bytes);
      int64_t bad = 0;
      for (int64_t i = 0; i < m * k; i++)
        if (!same_bf16(ha[i], hb[i]) && bad++ < 3)
          print_message("kind %d [%lld x %lld] element %lld: %04x vs act_quant %04x\n",
                        (int)kinds[ki], (long long)m, (long long)k, (long long)i, hb[i], ha[i]);
      if (bad)
        fail_msg("kind %d: %lld quantized activations differ", (int)kinds[ki], (long long)bad);
      /* scales: xs[m] per row, then xt (fp8dq: x scale, nvfp4: bf16(pts_x * pts_w)) */
      const uint32_t *sa = (const uint32_t *)((char *)ha + off),
                     *sb = (const uint32_t *)((char *)hb + off);
      bool per_row = kinds[ki] == AOQ_FMT_FP8DQ_ROW,
           per_tensor = kinds[ki] == AOQ_FMT_FP8DQ || kinds[ki] == AOQ_FMT_NVFP4;
      for (int64_t r = 0; per_row && r < m; r++)
        if (sa[r] != sb[r]) fail_msg("fp8dq-row: row %lld scale differs", (long long)r);
      if (per_tensor && sa[m] != sb[m])
        fail_msg("kind %d: per-tensor value differs", (int)kinds[ki]);
      free(ha), free(hb);
      aoq_dev_free(g_gpu, a), aoq_dev_free(g_gpu, b);
    }
    free(hx);
    aoq_dev_free(g_gpu, dx);
  }
  aoq_dev_free(g_gpu, d_pts);
  aoq_dev_stream_destroy(g_gpu, st);
}

/* GPU linear (device d) vs the CPU backend on the same packed weight, m rows each. */
static void linear_vs_cpu(aoq_device *d, const char *tag, int64_t n, int64_t k, const int *ms,
                          int nm) {
  for (size_t f = 0; f < NFMT; f++) {
    aoq_qweight hw;
    if (!make_weight(fmts[f], n, k, &hw)) continue;
    aoq_qweight dw = upload_weight(d, &hw), cw = upload_weight(g_cpu, &hw);
    for (int mi = 0; mi < nm; mi++) {
      int64_t m = ms[mi];
      uint16_t *hx = bf16_random(m * k, 1);
      void *gx = dev_upload(d, hx, (size_t)(m * k * 2)), *gy = NULL;
      void *cx = dev_upload(g_cpu, hx, (size_t)(m * k * 2)),
           *cy = dev_upload(g_cpu, NULL, (size_t)(m * n * 2));
      assert_int_equal(aoq_dev_alloc(d, (size_t)(m * n * 2), &gy), AOQ_OK);
      assert_int_equal(aoq_dev_memset(d, gy, 0xff, (size_t)(m * n * 2), NULL), AOQ_OK); /* NaN */
      size_t wsz = aoq_dev_linear_workspace(d, &dw, m),
             csz = aoq_dev_linear_workspace(g_cpu, &cw, m);
      void *ws = wsz ? dev_upload(d, NULL, wsz) : NULL,
           *cws = csz ? dev_upload(g_cpu, NULL, csz) : NULL;
      assert_int_equal(aoq_dev_linear(d, &dw, gx, gy, m, AOQ_DTYPE_BF16, ws, NULL), AOQ_OK);
      assert_int_equal(aoq_dev_linear(g_cpu, &cw, cx, cy, m, AOQ_DTYPE_BF16, cws, NULL), AOQ_OK);
      uint16_t *yg = dev_download(d, gy, (size_t)(m * n * 2));
      uint16_t *yc = dev_download(g_cpu, cy, (size_t)(m * n * 2));
      double am = 0;
      for (int64_t i = 0; i < m * n; i++) am = fmax(am, fabs(aoq_bf16_to_f32(yc[i])));
      char what[128];
      snprintf(what, sizeof what, "%s: %s [%lld x %lld] m=%lld", tag, fmts[f], (long long)n,
               (long long)k, (long long)m);
      double rt = hw.kind == AOQ_FMT_INT8WO || hw.kind == AOQ_FMT_NVFP4 ? 2.0 / 128 : 1.0 / 128;
      check_close(what, yg, yc, m * n, am * 1e-3, rt);
      int64_t diff = count_diff(yg, yc, m * n);
      if (diff > m * n / 4)
        fail_msg("%s: %lld of %lld elements differ", what, (long long)diff, (long long)(m * n));
      free(hx), free(yg), free(yc);
      aoq_dev_free(d, gx), aoq_dev_free(d, gy), aoq_dev_free(d, ws);
      aoq_dev_free(g_cpu, cx), aoq_dev_free(g_cpu, cy), aoq_dev_free(g_cpu, cws);
    }
    free_weight(d, &dw), free_weight(g_cpu, &cw);
    aoq_qweight_host_free(&hw);
  }
}

static const int k_ms[] = {128, 300, 2048};

static void test_linear_cublas_one_chunk(void **state) {
  (void)state;
  aoq_device *d = open_gpu_with(NULL, NULL);
  if (!uses_cublas(d)) print_message("  cuBLAS not loaded: this runs the own kernels\n");
  linear_vs_cpu(d, "cublas", 300, 1024, k_ms, 3);
  aoq_device_close(d);
}

/* 1 MiB of decoded rows per GEMM: [1000 x 1024] takes 2 chunks, fp8dq at m = 2048 sixteen */
static void test_linear_cublas_chunks(void **state) {
  (void)state;
  aoq_device *d = open_gpu_with(NULL, "1");
  uses_cublas(d);
  linear_vs_cpu(d, "cublas, 1 MiB chunks", 1000, 1024, k_ms, 3);
  aoq_device_close(d);
}

static void test_linear_cublas_off(void **state) {
  (void)state;
  aoq_device *d = open_gpu_with("off", NULL);
  assert_false(uses_cublas(d));
  linear_vs_cpu(d, "AOQ_CUBLAS=off", 300, 1024, k_ms, 3);
  aoq_device_close(d);
}

/* int8dq: y[m, n] of device d, of the CPU backend (the reference) and of aoq's own kernel (dk)
 * must be the same bits: exact int32 sums and one epilogue everywhere. */
static void int8dq_vs_cpu(aoq_device *d, aoq_device *dk, const char *tag, int64_t n, int64_t k,
                          const int *ms, int nm) {
  aoq_qweight hw;
  assert_true(make_weight("int8dq", n, k, &hw));
  aoq_qweight dw = upload_weight(d, &hw), kw = upload_weight(dk, &hw),
              cw = upload_weight(g_cpu, &hw);
  aoq_device *devs[3] = {d, dk, g_cpu};
  const aoq_qweight *ws3[3] = {&dw, &kw, &cw};
  for (int mi = 0; mi < nm; mi++) {
    const int64_t m = ms[mi];
    uint16_t *hx = bf16_random(m * k, 1), *y[3];
    hx[k + 5] = aoq_f32_to_bf16(40.0f); /* an outlier token */
    for (int i = 0; i < 3; i++) {
      void *gx = dev_upload(devs[i], hx, (size_t)(m * k * 2)), *gy = NULL;
      assert_int_equal(aoq_dev_alloc(devs[i], (size_t)(m * n * 2), &gy), AOQ_OK);
      assert_int_equal(aoq_dev_memset(devs[i], gy, 0xff, (size_t)(m * n * 2), NULL), AOQ_OK);
      size_t wsz = aoq_dev_linear_workspace(devs[i], ws3[i], m);
      void *ws = wsz ? dev_upload(devs[i], NULL, wsz) : NULL;
      assert_int_equal(aoq_dev_linear(devs[i], ws3[i], gx, gy, m, AOQ_DTYPE_BF16, ws, NULL),
                       AOQ_OK);
      y[i] = dev_download(devs[i], gy, (size_t)(m * n * 2));
      aoq_dev_free(devs[i], gx), aoq_dev_free(devs[i], gy), aoq_dev_free(devs[i], ws);
    }
    int64_t dc = count_diff(y[0], y[2], m * n), dk_ = count_diff(y[0], y[1], m * n);
    if (dc || dk_) {
      for (int64_t i = 0, shown = 0; i < m * n && shown < 3; i++)
        if (y[0][i] != y[2][i] || y[0][i] != y[1][i])
          shown++, print_message("  [%lld, %lld]: cublas %04x own %04x cpu %04x\n",
                                 (long long)(i / n), (long long)(i % n), y[0][i], y[1][i], y[2][i]);
      fail_msg(
          "%s: int8dq [%lld x %lld] m=%lld: %lld outputs differ from the CPU's, %lld from "
          "the own kernel's (expected bit-identical)",
          tag, (long long)n, (long long)k, (long long)m, (long long)dc, (long long)dk_);
    }
    free(hx), free(y[0]), free(y[1]), free(y[2]);
  }
  free_weight(d, &dw), free_weight(dk, &kw), free_weight(g_cpu, &cw);
  aoq_qweight_host_free(&hw);
}

static void test_linear_int8dq_cublas(void **state) {
  (void)state;
  setenv("AOQ_CUBLAS_INT8", "off", 1);
  aoq_device *own = open_gpu_with(NULL, NULL);
  setenv("AOQ_CUBLAS_INT8", "strict", 1);
  aoq_device *one = open_gpu_with(NULL, NULL), *many = open_gpu_with(NULL, "1");
  unsetenv("AOQ_CUBLAS_INT8");
  if (!uses_cublas(one)) fail_msg("cuBLAS is not loaded: the int8 GEMM path cannot be tested");
  aoq_device_info i;
  assert_int_equal(aoq_device_info_get(one, &i), AOQ_OK);
  assert_non_null(strstr(i.linear_engine, "int8 gemm strict"));
  const int ms[] = {128, 130, 256, 300, 2048};
  /* one GEMM: n not a multiple of 4 or 16 (ldc padded, the epilogue's scalar tails) */
  int8dq_vs_cpu(one, own, "cublas", 301, 1024, ms, 5);
  int8dq_vs_cpu(one, own, "cublas", 512, 4096, ms, 3);
  /* 1 MiB of int32 sums per GEMM: 2..20 chunks of 64-row multiples, and a ragged last chunk */
  int8dq_vs_cpu(many, own, "cublas, 1 MiB chunks", 2560, 1024, ms, 5);
  int8dq_vs_cpu(many, own, "cublas, 1 MiB chunks", 2501, 1024, ms, 3);
  aoq_device_close(own), aoq_device_close(one), aoq_device_close(many);
}

static void test_workspace_grows_with_m(void **state) {
  (void)state;
  aoq_device *d = open_gpu_with(NULL, "8");
  for (size_t f = 0; f <= NFMT; f++) { /* and int8dq (own kernel below m = 128, then cuBLAS) */
    aoq_format fm;
    aoq_qweight w;
    if (aoq_format_parse(f < NFMT ? fmts[f] : "int8dq", &fm) != AOQ_OK) continue;
    assert_int_equal(aoq_format_plan(&fm, 28672, 4096, &w), AOQ_OK);
    size_t prev = 0;
    for (int64_t m = 1; m <= 4096; m++) {
      size_t b = aoq_dev_linear_workspace(d, &w, m);
      if (b < prev)
        fail_msg("%s: workspace %zu at m=%lld < %zu at m-1", f < NFMT ? fmts[f] : "int8dq", b,
                 (long long)m, prev);
      prev = b;
    }
  }
  aoq_device_close(d);
}

int main(void) {
  open_devices_or_skip();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dequant_bit_exact),
      cmocka_unit_test(test_dec_dequant_bit_exact),
      cmocka_unit_test(test_act_quant_rows_bit_exact),
      cmocka_unit_test(test_linear_cublas_one_chunk),
      cmocka_unit_test(test_linear_cublas_chunks),
      cmocka_unit_test(test_linear_cublas_off),
      cmocka_unit_test(test_linear_int8dq_cublas),
      cmocka_unit_test(test_workspace_grows_with_m),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  close_devices();
  return rc;
}
