/*
 * test_cuda_quantize.c — the CUDA backend's weight quantization of the integer formats
 * (kernels/gpu/quantize_int.cu) writes the same bytes as the reference quantizers of
 * core/quant_int.c: every buffer compared byte for byte on weights with awkward values (zero and
 * constant rows, huge / tiny / subnormal magnitudes, Inf / NaN, exact .5 ties, random bit
 * patterns), shapes with several groups, row tails and odd k; w158's scale through both of its
 * paths (the bounded parallel sum and the sequential one a tie forces); and the torchao golden
 * vectors (tests/data/golden) quantized on the GPU match torchao's tensors.
 */
#include <unistd.h>

#include "core/format.h"
#include "core/safetensors.h"
#include "tests/gpu/cuda_test_util.h"

/* Row r of an awkward weight: the row's kind cycles through the cases the numerics care about. */
static void fill_row(uint16_t *x, int64_t k, int64_t r) {
  static const float mags[] = {1e-3f, 0.02f, 1.0f, 3e4f, 1e30f, 1e-30f, 1e-38f};
  switch (r % 8) {
    case 0: /* zeros */
      for (int64_t i = 0; i < k; i++) x[i] = (rnd_u64() & 1) ? 0x8000u : 0;
      break;
    case 1: { /* constant */
      uint16_t c = aoq_f32_to_bf16(r % 16 == 1 ? 0.75f : -3.0f);
      for (int64_t i = 0; i < k; i++) x[i] = c;
      break;
    }
    case 2: /* quarters in [-4, 4]: exact arithmetic, ties at .5 in every format */
      for (int64_t i = 0; i < k; i++)
        x[i] = aoq_f32_to_bf16((float)((int)(rnd_u64() % 33) - 16) / 4);
      break;
    case 3: /* small integers: the group's qparams hit .5 ties on the integer grid */
      for (int64_t i = 0; i < k; i++) x[i] = aoq_f32_to_bf16((float)((int)(rnd_u64() % 31) - 15));
      break;
    case 4: /* any bit pattern: NaN, Inf, huge, subnormal */
      for (int64_t i = 0; i < k; i++) x[i] = (uint16_t)rnd_u64();
      break;
    case 5: /* a smooth row with a few outliers and specials */
      for (int64_t i = 0; i < k; i++) {
        uint64_t u = rnd_u64();
        float v = urnd() * 0.05f;
        if (u % 97 == 0) v = (u & 256) ? 3e38f : -1e-40f;
        x[i] = aoq_f32_to_bf16(v);
        if (u % 211 == 0) x[i] = (u & 512) ? 0x7f80u : 0xffc1u; /* -Inf / NaN */
      }
      break;
    default: { /* uniform at one magnitude per row, from subnormal to near the bf16 max */
      float m = mags[(r / 8) % (sizeof mags / sizeof mags[0])];
      for (int64_t i = 0; i < k; i++) x[i] = aoq_f32_to_bf16(urnd() * m);
      break;
    }
  }
}

static uint16_t *awkward_weight(int64_t n, int64_t k) {
  uint16_t *w = malloc((size_t)(n * k) * 2);
  for (int64_t r = 0; r < n; r++) fill_row(w + r * k, k, r);
  return w;
}

/* Device buffers of w back into a host qweight with the same plan. */
static void download_qweight(const aoq_qweight *dw, aoq_qweight *h) {
  *h = *dw;
  assert_int_equal(aoq_qweight_host_alloc(h), AOQ_OK);
  assert_int_equal(aoq_dev_stream_sync(g_gpu, NULL), AOQ_OK);
  const void *dp[4] = {dw->qdata, dw->scale, dw->zero, dw->aux};
  void *hp[4] = {h->qdata, h->scale, h->zero, h->aux};
  size_t sz[4] = {dw->qdata_bytes, dw->scale_bytes, dw->zero_bytes, dw->aux_bytes};
  for (int i = 0; i < 4; i++)
    if (sz[i]) assert_int_equal(aoq_dev_copy_d2h(g_gpu, hp[i], dp[i], sz[i], NULL), AOQ_OK);
}

/* The GPU's bytes of `cfg` on w[n,k] equal the reference quantizer's, buffer by buffer. */
static void check_cfg(const char *cfg, const uint16_t *w, int64_t n, int64_t k) {
  aoq_format f;
  if (aoq_format_parse(cfg, &f) != AOQ_OK) fail_msg("%s: %s", cfg, aoq_last_error());
  aoq_device_info info;
  assert_int_equal(aoq_device_info_get(g_gpu, &info), AOQ_OK);
  if (!((info.caps & AOQ_CAP_QUANTIZE) && (info.quantize_formats >> f.kind & 1)))
    fail_msg("%s: the CUDA device does not quantize this format", cfg);

  aoq_qweight ref;
  assert_int_equal(aoq_format_plan(&f, n, k, &ref), AOQ_OK);
  assert_int_equal(aoq_qweight_host_alloc(&ref), AOQ_OK);
  assert_int_equal(aoq_quantize_ref(w, &ref), AOQ_OK);

  aoq_qweight dw, got;
  aoq_status s = aoq_qweight_quantize(g_gpu, &f, w, n, k, NULL, &dw);
  if (s != AOQ_OK)
    fail_msg("%s [%lld, %lld]: %s", cfg, (long long)n, (long long)k, aoq_last_error());
  download_qweight(&dw, &got);
  const void *a[4] = {got.qdata, got.scale, got.zero, got.aux};
  const void *b[4] = {ref.qdata, ref.scale, ref.zero, ref.aux};
  size_t sz[4] = {ref.qdata_bytes, ref.scale_bytes, ref.zero_bytes, ref.aux_bytes};
  static const char *const what[4] = {"qdata", "scale", "zero", "aux"};
  for (int i = 0; i < 4; i++) {
    if (!sz[i]) continue;
    const uint8_t *x = a[i], *y = b[i];
    for (size_t j = 0; j < sz[i]; j++)
      if (x[j] != y[j])
        fail_msg("%s [%lld, %lld] %s byte %zu: gpu 0x%02x, reference 0x%02x", cfg, (long long)n,
                 (long long)k, what[i], j, x[j], y[j]);
    assert_memory_equal(x, y, sz[i]);
  }
  aoq_qweight_dev_free(g_gpu, &dw);
  aoq_qweight_host_free(&got);
  aoq_qweight_host_free(&ref);
}

static void check_cfg_awkward(const char *cfg, int64_t n, int64_t k) {
  uint16_t *w = awkward_weight(n, k);
  check_cfg(cfg, w, n, k);
  free(w);
}

static void int8_per_row_matches_reference(void **state) {
  (void)state;
  static const int64_t shapes[][2] = {{24, 256}, {19, 37}, {9, 4096}, {3, 1}, {16, 1000}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    check_cfg_awkward("int8wo", shapes[i][0], shapes[i][1]);
    check_cfg_awkward("int8dq", shapes[i][0], shapes[i][1]);
  }
}

static void int4wo_tinygemm_every_group_matches_reference(void **state) {
  (void)state;
  static const char *const cfgs[] = {"int4wo-32", "int4wo-64", "int4wo-128", "int4wo-256"};
  for (size_t i = 0; i < 4; i++) {
    check_cfg_awkward(cfgs[i], 24, 1024);
    check_cfg_awkward(cfgs[i], 13, 2048);
    check_cfg_awkward(cfgs[i], 40, 256);
  }
}

static void intx_every_width_matches_reference(void **state) {
  (void)state;
  char cfg[32];
  for (int b = 1; b <= 8; b++) {
    snprintf(cfg, sizeof cfg, "intx%dwo-32", b);
    check_cfg_awkward(cfg, 24, 512);
    snprintf(cfg, sizeof cfg, "intx%dwo-48", b); /* a group of 6 chunks of 8 */
    check_cfg_awkward(cfg, 17, 480);
    snprintf(cfg, sizeof cfg, "intx%dwo-16", b);
    check_cfg_awkward(cfg, 16, 144);
    snprintf(cfg, sizeof cfg, "intx%dwo", b); /* per row, odd k: a partial chunk and padding */
    check_cfg_awkward(cfg, 24, 77);
    check_cfg_awkward(cfg, 8, 4096);
    snprintf(cfg, sizeof cfg, "intx%dwo-1024", b); /* groups wider than a warp's chunks */
    check_cfg_awkward(cfg, 8, 4096);
  }
}

static void dynamic_int_weights_match_reference(void **state) {
  (void)state;
  check_cfg_awkward("int8-int4", 24, 512);
  check_cfg_awkward("int8-int4", 7, 96);
  check_cfg_awkward("fp8-int4", 24, 1024);
  check_cfg_awkward("fp8-int4", 5, 128);
  for (int b = 1; b <= 8; b++) {
    char cfg[32];
    snprintf(cfg, sizeof cfg, "int8-intx%d", b);
    check_cfg_awkward(cfg, 24, 256);
    snprintf(cfg, sizeof cfg, "int8-intx%d-64", b);
    check_cfg_awkward(cfg, 9, 320);
  }
}

/* w158: the per-tensor scale from a typical weight (the bounded parallel sum decides it), from
 * random bits (huge terms), and from a mean exactly halfway between two bf16 values, where only
 * the reference's sequential sum decides (the device must fall back to it). */
static void w158_scale_both_paths_match_reference(void **state) {
  (void)state;
  int64_t n = 48, k = 1024;
  uint16_t *w = malloc((size_t)(n * k) * 2);
  for (int64_t i = 0; i < n * k; i++) w[i] = aoq_f32_to_bf16(urnd() * 0.03f);
  check_cfg("w158", w, n, k);
  for (int64_t i = 0; i < n * k; i++) w[i] = (uint16_t)rnd_u64();
  check_cfg("w158", w, n, k);
  free(w);
  /* |W| = 1 and 1 + 2^-7 alternating, one 1 -> 2 and one 1 -> 2^-8: the mean is exactly
   * 1 + 2^-8 + 2^-24, a float tie (to 1 + 2^-8) that is a bf16 tie (to 1.0), while any sum a
   * hair larger gives 1.0078125: the parallel sum's bound cannot decide, the sequential sum does */
  n = 64, k = 1024;
  w = malloc((size_t)(n * k) * 2);
  for (int64_t i = 0; i < n * k; i++) w[i] = aoq_f32_to_bf16((i & 1) ? 1.0078125f : -1.0f);
  w[0] = aoq_f32_to_bf16(2.0f);
  w[2] = aoq_f32_to_bf16(-0x1p-8f);
  check_cfg("w158", w, n, k);
  free(w);
  check_cfg_awkward("w158", 24, 333);
  check_cfg_awkward("w158", 1, 7);
}

/* A weight that is not a multiple of 16 bytes away from the allocation (odd k): scalar loads. */
static void unaligned_rows_match_reference(void **state) {
  (void)state;
  check_cfg_awkward("int8wo", 31, 4095);
  check_cfg_awkward("intx3wo", 31, 4095);
}

static const char *golden_dir(char *buf, size_t len) {
  const char *d = getenv("AOQ_TEST_DATA");
  if (d && *d) {
    snprintf(buf, len, "%s/golden", d);
    return buf;
  }
  snprintf(buf, len, "%s/golden", AOQ_TEST_DATA);
  if (access(buf, R_OK) == 0) return buf;
  snprintf(buf, len, "tests/data/golden"); /* the device run: the repository root */
  return buf;
}

/* The golden vectors of the integer formats: their weight quantized on the GPU gives torchao's
 * q.* / ref.* tensors byte for byte (through the same torchao views as aoq-golden). */
static void golden_int_formats_match_torchao(void **state) {
  (void)state;
  static const char *const files[] = {"int8wo",     "int8dq",     "int4wo-32",  "int4wo-64",
                                      "int4wo-128", "int4wo-256", "intx2wo-64", "intx4wo-32",
                                      "intx8wo",    "int8-intx4"};
  char dir[1024], path[1200];
  golden_dir(dir, sizeof dir);
  int checked = 0;
  for (size_t fi = 0; fi < sizeof files / sizeof files[0]; fi++) {
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, files[fi]);
    aoq_st_file *sf;
    if (aoq_st_open(path, &sf) != AOQ_OK) fail_msg("%s: %s", path, aoq_last_error());
    aoq_format f;
    assert_int_equal(aoq_format_parse(files[fi], &f), AOQ_OK);
    const aoq_st_tensor *wt = aoq_st_find(sf, "weight");
    assert_non_null(wt);
    assert_int_equal(wt->dtype, AOQ_DTYPE_BF16);
    int64_t n = wt->shape[0], k = wt->shape[1];
    uint16_t *wb = malloc(wt->nbytes);
    memcpy(wb, wt->data, wt->nbytes);
    aoq_qweight dw, got;
    aoq_status s = aoq_qweight_quantize(g_gpu, &f, wb, n, k, NULL, &dw);
    if (s != AOQ_OK) fail_msg("%s: %s", files[fi], aoq_last_error());
    download_qweight(&dw, &got);
    int tensors = 0;
    for (size_t i = 0; i < aoq_st_count(sf); i++) {
      const aoq_st_tensor *t = aoq_st_at(sf, i);
      bool q = strncmp(t->name, "q.", 2) == 0, r = strncmp(t->name, "ref.", 4) == 0;
      if (!q && !r) continue;
      void *bytes = NULL;
      size_t nb = 0;
      s = aoq_format_torchao_tensor(&got, q ? t->name + 2 : t->name, &bytes, &nb);
      if (s != AOQ_OK) fail_msg("%s %s: no view: %s", files[fi], t->name, aoq_last_error());
      if (nb != t->nbytes)
        fail_msg("%s %s: %zu bytes, golden %zu", files[fi], t->name, nb, (size_t)t->nbytes);
      const uint8_t *x = bytes, *y = t->data;
      for (size_t j = 0; j < nb; j++)
        if (x[j] != y[j])
          fail_msg("%s %s byte %zu: gpu 0x%02x, torchao 0x%02x", files[fi], t->name, j, x[j], y[j]);
      free(bytes);
      tensors++;
    }
    if (tensors == 0) fail_msg("%s: no q.* / ref.* tensor", files[fi]);
    checked += tensors;
    aoq_qweight_dev_free(g_gpu, &dw);
    aoq_qweight_host_free(&got);
    free(wb);
    aoq_st_close(sf);
  }
  printf("golden: %d torchao tensors of %zu files match\n", checked,
         sizeof files / sizeof files[0]);
}

/* The device refuses a group that does not start on a byte of the stream (cuda.c's check). */
static void misaligned_group_is_refused(void **state) {
  (void)state;
  aoq_format f = {AOQ_FMT_INTXWO, 3, 24};
  aoq_qweight w;
  assert_int_equal(aoq_format_plan(&f, 4, 96, &w), AOQ_OK);
  void *src = dev_upload(g_gpu, NULL, 4 * 96 * 2);
  void *q = dev_upload(g_gpu, NULL, w.qdata_bytes), *sc = dev_upload(g_gpu, NULL, w.scale_bytes);
  w.qdata = q, w.scale = sc, w.zero = w.aux = NULL;
  assert_int_equal(aoq_dev_quantize(g_gpu, src, &w, NULL), AOQ_ESHAPE);
  aoq_err_clear();
  aoq_dev_free(g_gpu, src);
  aoq_dev_free(g_gpu, q);
  aoq_dev_free(g_gpu, sc);
}

int main(void) {
  open_devices_or_skip();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(int8_per_row_matches_reference),
      cmocka_unit_test(int4wo_tinygemm_every_group_matches_reference),
      cmocka_unit_test(intx_every_width_matches_reference),
      cmocka_unit_test(dynamic_int_weights_match_reference),
      cmocka_unit_test(w158_scale_both_paths_match_reference),
      cmocka_unit_test(unaligned_rows_match_reference),
      cmocka_unit_test(golden_int_formats_match_torchao),
      cmocka_unit_test(misaligned_group_is_refused),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  close_devices();
  return rc;
}
