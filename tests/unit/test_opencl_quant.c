/*
 * test_opencl_quant.c — the quantized linear kernels of kernels/cl (quant.cl: weight-only formats,
 * dyn.cl: activation quantizers + GEMM of the dynamic formats) on PoCL against the CPU backend.
 * The same bf16 weight is quantized once by the reference quantizer (core/format.h) and uploaded
 * to both devices; the outputs must agree within one bf16
 * rounding (fp32 sums in a different order), and the packed bytes are those of the reference.
 * Malformed weights are refused with a status, never approximated.
 */
#include "core/format.h"
#include "test_opencl_util.h"

static void check_format(pair *p, const char *cfg, int64_t m, int64_t n, int64_t k) {
  aoq_format f;
  assert_int_equal(aoq_format_parse(cfg, &f), AOQ_OK);
  uint16_t *w = rand_bf16(n * k, 0.5f), *x = rand_bf16(m * k, 2.0f);
  aoq_qweight cq, gq;
  memset(&cq, 0, sizeof cq), memset(&gq, 0, sizeof gq);
  aoq_status st = aoq_qweight_quantize(p->cpu, &f, w, n, k, NULL, &cq);
  if (st != AOQ_OK) fail_msg("%s: cpu quantize: %s", cfg, aoq_last_error());
  st = aoq_qweight_quantize(p->cl, &f, w, n, k, NULL, &gq);
  if (st != AOQ_OK) fail_msg("%s: opencl quantize: %s", cfg, aoq_last_error());
  /* the packed bytes on the OpenCL device (quantized there for the formats of its
   * quantize_formats, else uploaded) are the host reference quantizer's, buffer by buffer */
  aoq_qweight hq;
  memset(&hq, 0, sizeof hq);
  assert_int_equal(aoq_format_plan(&f, n, k, &hq), AOQ_OK);
  assert_int_equal(aoq_qweight_host_alloc(&hq), AOQ_OK);
  assert_int_equal(aoq_quantize_ref(w, &hq), AOQ_OK);
  const void *hb[3] = {hq.qdata, hq.scale, hq.aux}, *gb[3] = {gq.qdata, gq.scale, gq.aux};
  size_t nb[3] = {hq.qdata_bytes, hq.scale_bytes, hq.aux_bytes};
  for (int b = 0; b < 3; b++) {
    if (!nb[b]) continue;
    uint8_t *got_b = down(p->cl, gb[b], nb[b]);
    if (memcmp(got_b, hb[b], nb[b])) fail_msg("%s: buffer %d differs from the reference", cfg, b);
    free(got_b);
  }
  aoq_qweight_host_free(&hq);
  uint8_t *qa = malloc(cq.qdata_bytes), *qb = down(p->cl, gq.qdata, gq.qdata_bytes);
  assert_int_equal(aoq_dev_copy_d2h(p->cpu, qa, cq.qdata, cq.qdata_bytes, NULL), AOQ_OK);
  assert_memory_equal(qa, qb, cq.qdata_bytes);
  void *cx = up(p->cpu, x, m * k * 2), *gx = up(p->cl, x, m * k * 2), *cy = NULL, *gy = NULL;
  assert_int_equal(aoq_dev_alloc(p->cpu, m * n * 2, &cy), AOQ_OK);
  assert_int_equal(aoq_dev_alloc(p->cl, m * n * 2, &gy), AOQ_OK);
  size_t cws = aoq_dev_linear_workspace(p->cpu, &cq, m),
         gws = aoq_dev_linear_workspace(p->cl, &gq, m);
  void *cw = NULL, *gw = NULL;
  if (cws) assert_int_equal(aoq_dev_alloc(p->cpu, cws, &cw), AOQ_OK);
  if (gws) assert_int_equal(aoq_dev_alloc(p->cl, gws, &gw), AOQ_OK);
  st = aoq_dev_linear(p->cpu, &cq, cx, cy, m, AOQ_DTYPE_BF16, cw, NULL);
  if (st != AOQ_OK) fail_msg("%s: cpu linear: %s", cfg, aoq_last_error());
  st = aoq_dev_linear(p->cl, &gq, gx, gy, m, AOQ_DTYPE_BF16, gw, NULL);
  if (st != AOQ_OK) fail_msg("%s: opencl linear: %s", cfg, aoq_last_error());
  uint16_t *ref = malloc(m * n * 2), *got = down(p->cl, gy, m * n * 2);
  assert_int_equal(aoq_dev_copy_d2h(p->cpu, ref, cy, m * n * 2, NULL), AOQ_OK);
  int64_t u = max_ulps(cfg, got, ref, m * n);
  print_message("%-14s m=%lld n=%lld k=%lld: max %lld bf16 ulps\n", cfg, (long long)m, (long long)n,
                (long long)k, (long long)u);
  if (u > 1) fail_msg("%s: %lld bf16 ulps from the CPU backend", cfg, (long long)u);
  /* and the result is a real product, not zeros: some output is non-zero */
  int nonzero = 0;
  for (int64_t i = 0; i < m * n; i++) nonzero |= (got[i] & 0x7fff) != 0;
  assert_true(nonzero);
  free(w), free(x), free(qa), free(qb), free(ref), free(got);
  aoq_dev_free(p->cpu, cx), aoq_dev_free(p->cpu, cy), aoq_dev_free(p->cpu, cw);
  aoq_dev_free(p->cl, gx), aoq_dev_free(p->cl, gy), aoq_dev_free(p->cl, gw);
  aoq_qweight_dev_free(p->cpu, &cq);
  aoq_qweight_dev_free(p->cl, &gq);
}

static void int_weight_only_formats_match_cpu(void **state) {
  pair *p = *state;
  check_format(p, "int8wo", 3, 40, 192);
  check_format(p, "int4wo-32", 1, 48, 256);
  check_format(p, "int4wo-64-hqq", 5, 24, 128);
  check_format(p, "intx3wo-32", 2, 20, 160);
  check_format(p, "intx5wo-64", 1, 17, 128);
  check_format(p, "intx8wo", 4, 9, 96);
  check_format(p, "codebook4", 2, 16, 128);
  check_format(p, "w158", 3, 30, 200);
}

static void fp_weight_only_formats_match_cpu(void **state) {
  pair *p = *state;
  check_format(p, "fp8wo", 2, 33, 160);
  check_format(p, "nvfp4wo", 3, 20, 128);
  check_format(p, "fp6-e3m2", 1, 25, 100);
  check_format(p, "fp6-e2m3", 4, 12, 96);
}

static void dynamic_activation_formats_match_cpu(void **state) {
  pair *p = *state;
  check_format(p, "int8dq", 3, 40, 192);
  check_format(p, "fp8dq", 2, 24, 160);
  check_format(p, "fp8dq-row", 5, 20, 128);
  check_format(p, "fp8dq-block", 2, 256, 384);
  check_format(p, "fp8-int4", 1, 16, 256);
  check_format(p, "int8-int4", 3, 20, 128);
  check_format(p, "int8-intx3", 2, 12, 96);
  check_format(p, "mxfp8", 4, 18, 128);
  check_format(p, "mxfp4", 2, 30, 96);
  check_format(p, "nvfp4", 3, 22, 128);
}

static void device_quantizer_covers_the_float_formats(void **state) {
  pair *p = *state;
  aoq_device_info info;
  assert_int_equal(aoq_device_info_get(p->cl, &info), AOQ_OK);
  assert_true(info.caps & AOQ_CAP_QUANTIZE);
  const aoq_format_kind want[] = {AOQ_FMT_FP8WO,       AOQ_FMT_FP8DQ,  AOQ_FMT_FP8DQ_ROW,
                                  AOQ_FMT_FP8DQ_BLOCK, AOQ_FMT_MXFP8,  AOQ_FMT_MXFP4,
                                  AOQ_FMT_NVFP4,       AOQ_FMT_NVFP4WO};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    assert_true(info.quantize_formats & (1ull << want[i]));
  /* a weight whose rows hold zeros and a huge value: scales at both ends of their range */
  const int64_t n = 4, k = 64;
  uint16_t *w = rand_bf16(n * k, 1.0f);
  for (int64_t c = 0; c < k; c++) w[c] = 0; /* row 0 all zero */
  w[k + 5] = aoq_f32_to_bf16(30000.0f);     /* row 1 has a huge element */
  for (int64_t c = 0; c < k; c++) w[2 * k + c] = aoq_f32_to_bf16(1e-30f); /* tiny row */
  const char *cfgs[] = {"fp8wo", "mxfp8", "mxfp4", "nvfp4"};
  for (size_t i = 0; i < 4; i++) {
    aoq_format f;
    assert_int_equal(aoq_format_parse(cfgs[i], &f), AOQ_OK);
    aoq_qweight gq, hq;
    memset(&gq, 0, sizeof gq), memset(&hq, 0, sizeof hq);
    assert_int_equal(aoq_qweight_quantize(p->cl, &f, w, n, k, NULL, &gq), AOQ_OK);
    assert_int_equal(aoq_format_plan(&f, n, k, &hq), AOQ_OK);
    assert_int_equal(aoq_qweight_host_alloc(&hq), AOQ_OK);
    assert_int_equal(aoq_quantize_ref(w, &hq), AOQ_OK);
    uint8_t *q = down(p->cl, gq.qdata, gq.qdata_bytes), *sc = down(p->cl, gq.scale, gq.scale_bytes);
    if (memcmp(q, hq.qdata, hq.qdata_bytes) || memcmp(sc, hq.scale, hq.scale_bytes))
      fail_msg("%s: device quantizer differs from the reference on edge rows", cfgs[i]);
    free(q), free(sc);
    aoq_qweight_host_free(&hq);
    aoq_qweight_dev_free(p->cl, &gq);
  }
  free(w);
}

static void bad_weights_are_refused(void **state) {
  pair *p = *state;
  aoq_device_info info;
  assert_int_equal(aoq_device_info_get(p->cl, &info), AOQ_OK);
  for (int kind = AOQ_FMT_INT8WO; kind < AOQ_FMT_COUNT; kind++)
    if (!(info.linear_formats & (1ull << kind))) fail_msg("format kind %d has no kernel", kind);
  void *buf = NULL;
  assert_int_equal(aoq_dev_alloc(p->cl, 4096, &buf), AOQ_OK);
  /* a scale buffer too small for the layout */
  aoq_qweight q = {.kind = AOQ_FMT_INT8WO, .bits = 8, .group = 64, .n = 4, .k = 64};
  q.qdata = q.scale = buf;
  q.qdata_bytes = 256, q.scale_bytes = 8;
  assert_int_equal(aoq_dev_linear(p->cl, &q, buf, buf, 1, AOQ_DTYPE_BF16, NULL, NULL), AOQ_ESHAPE);
  /* a dynamic format needs its workspace; mx needs k % 32 == 0; a group must divide k */
  aoq_qweight d = {.kind = AOQ_FMT_FP8DQ_ROW, .bits = 8, .group = 64, .n = 4, .k = 64};
  d.qdata = d.scale = buf;
  assert_true(aoq_dev_linear_workspace(p->cl, &d, 1) > 0);
  assert_int_equal(aoq_dev_linear(p->cl, &d, buf, buf, 1, AOQ_DTYPE_BF16, NULL, NULL), AOQ_EINVAL);
  aoq_qweight mx = {.kind = AOQ_FMT_MXFP8, .bits = 8, .group = 32, .n = 4, .k = 48};
  mx.qdata = mx.scale = buf;
  assert_int_equal(aoq_dev_linear(p->cl, &mx, buf, buf, 1, AOQ_DTYPE_BF16, buf, NULL),
                   AOQ_EUNSUPPORTED);
  aoq_qweight ix = {.kind = AOQ_FMT_INTXWO, .bits = 3, .group = 48, .n = 4, .k = 64};
  ix.qdata = ix.scale = buf;
  assert_int_equal(aoq_dev_linear(p->cl, &ix, buf, buf, 1, AOQ_DTYPE_BF16, NULL, NULL),
                   AOQ_EUNSUPPORTED);
  aoq_dev_free(p->cl, buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(int_weight_only_formats_match_cpu),
      cmocka_unit_test(fp_weight_only_formats_match_cpu),
      cmocka_unit_test(dynamic_activation_formats_match_cpu),
      cmocka_unit_test(device_quantizer_covers_the_float_formats),
      cmocka_unit_test(bad_weights_are_refused),
  };
#ifdef AOQ_HAVE_CLHARNESS
  return cmocka_run_group_tests(tests, pair_setup, pair_teardown);
#else
  (void)tests;
  fprintf(stderr,
          "SKIPPED: built without the OpenCL harness (AOQ_XPU=OFF or no OpenCL ICD "
          "loader at configure time)\n");
  return 77;
#endif
}
