/*
 * test_cuda_fused.c — the fused ops of the CUDA backend (AOQ_CAP_FUSED) against the plain ops
 * they replace, on the same device and inputs: add_rmsnorm = add + rmsnorm and qkv_rope_store =
 * split + rope(q) + rope(k) + kv_store, bit for bit (the plain ops are checked against the CPU
 * backend in test_cuda_ops.c). Also the CPU backend's fallback of add_rmsnorm.
 */
#include "tests/gpu/cuda_test_util.h"

static void add_rmsnorm_case(aoq_device *d, int64_t m, int64_t n) {
  uint16_t *hx = bf16_random(m * n, 3), *ht = bf16_random(m * n, 2), *hw = bf16_random(n, 1);
  size_t b = (size_t)(m * n) * 2;
  void *x1 = dev_upload(d, hx, b), *x2 = dev_upload(d, hx, b), *t = dev_upload(d, ht, b);
  void *w = dev_upload(d, hw, (size_t)n * 2), *y1 = dev_upload(d, NULL, b);
  void *y2 = dev_upload(d, NULL, b);
  const aoq_dtype bf = AOQ_DTYPE_BF16;
  assert_int_equal(aoq_dev_add_rmsnorm(d, x1, t, w, y1, m, n, 1e-5f, bf, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_add(d, x2, t, x2, m * n, bf, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_rmsnorm(d, x2, w, y2, m, n, 1e-5f, bf, NULL), AOQ_OK);
  uint16_t *a[4] = {dev_download(d, x1, b), dev_download(d, x2, b), dev_download(d, y1, b),
                    dev_download(d, y2, b)};
  assert_memory_equal(a[0], a[1], b);                   /* the residual, updated in place */
  assert_memory_equal(a[2], a[3], b);                   /* the normed rows */
  assert_true(count_diff(a[0], hx, m * n) > m * n / 2); /* the add did happen */
  /* without t: plain rmsnorm, x untouched */
  assert_int_equal(aoq_dev_add_rmsnorm(d, x1, NULL, w, y1, m, n, 1e-5f, bf, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_rmsnorm(d, x1, w, y2, m, n, 1e-5f, bf, NULL), AOQ_OK);
  uint16_t *c[2] = {dev_download(d, y1, b), dev_download(d, y2, b)};
  assert_memory_equal(c[0], c[1], b);
  uint16_t *x_after = dev_download(d, x1, b);
  assert_memory_equal(x_after, a[0], b);
  for (int i = 0; i < 4; i++) free(a[i]);
  free(c[0]), free(c[1]), free(x_after), free(hx), free(ht), free(hw);
  void *ps[] = {x1, x2, t, w, y1, y2};
  for (int i = 0; i < 6; i++) aoq_dev_free(d, ps[i]);
}

static void test_add_rmsnorm(void **state) {
  (void)state;
  assert_true(aoq_device_has(g_gpu, AOQ_CAP_FUSED));
  add_rmsnorm_case(g_gpu, 5, 4096);
  add_rmsnorm_case(g_gpu, 3, 1000); /* 125 chunks of 8: a partly filled warp */
  add_rmsnorm_case(g_gpu, 3, 1001); /* odd width: the scalar kernel */
  add_rmsnorm_case(g_gpu, 64, 4096);
  add_rmsnorm_case(g_cpu, 5, 4096); /* no AOQ_CAP_FUSED: the wrapper's add + rmsnorm */
  /* bad arguments are refused, not launched */
  assert_int_equal(
      aoq_dev_add_rmsnorm(g_gpu, NULL, NULL, NULL, NULL, 1, 8, 1e-5f, AOQ_DTYPE_BF16, NULL),
      AOQ_EINVAL);
}

static void test_qkv_rope_store(void **state) {
  (void)state;
  const int nh = 32, nkv = 8, hd = 128, m = 6;
  const int64_t N = (int64_t)(nh + 2 * nkv) * hd, kvw = (int64_t)nkv * hd;
  aoq_kv_cache kv[2] = {{NULL, NULL, 8, 16, nkv, hd, AOQ_DTYPE_BF16},
                        {NULL, NULL, 8, 16, nkv, hd, AOQ_DTYPE_BF16}};
  int64_t total = 8 * 16 * kvw;
  for (int i = 0; i < 2; i++) {
    kv[i].k = dev_upload(g_gpu, NULL, (size_t)total * 2);
    kv[i].v = dev_upload(g_gpu, NULL, (size_t)total * 2);
  }
  aoq_rope r = {500000.f, 8.f, 1.f, 4.f, 8192};
  int32_t pos[6] = {0, 1, 17, 1000, 8191, 70000}, slots[6] = {5, 127, 16, 0, 64, 33};
  uint16_t *hqkv = bf16_random(m * N, 2);
  /* the plain path: q, k, v split on the host into dense rows */
  uint16_t *hq = malloc((size_t)m * nh * hd * 2), *hk = malloc((size_t)m * kvw * 2),
           *hv = malloc((size_t)m * kvw * 2);
  for (int t = 0; t < m; t++) {
    memcpy(hq + (int64_t)t * nh * hd, hqkv + t * N, (size_t)nh * hd * 2);
    memcpy(hk + t * kvw, hqkv + t * N + (int64_t)nh * hd, (size_t)kvw * 2);
    memcpy(hv + t * kvw, hqkv + t * N + (int64_t)(nh + nkv) * hd, (size_t)kvw * 2);
  }
  void *qkv = dev_upload(g_gpu, hqkv, (size_t)(m * N) * 2);
  void *qo = dev_upload(g_gpu, NULL, (size_t)m * nh * hd * 2);
  void *q = dev_upload(g_gpu, hq, (size_t)m * nh * hd * 2),
       *k = dev_upload(g_gpu, hk, (size_t)m * kvw * 2);
  void *v = dev_upload(g_gpu, hv, (size_t)m * kvw * 2);
  void *ps = dev_upload(g_gpu, pos, sizeof pos), *sl = dev_upload(g_gpu, slots, sizeof slots);
  const aoq_dtype bf = AOQ_DTYPE_BF16;
  assert_int_equal(aoq_dev_qkv_rope_store(g_gpu, &kv[0], qkv, qo, ps, sl, m, nh, &r, bf, NULL),
                   AOQ_OK);
  assert_int_equal(aoq_dev_rope(g_gpu, q, ps, m, nh, hd, (int64_t)nh * hd, &r, bf, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_rope(g_gpu, k, ps, m, nkv, hd, kvw, &r, bf, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_kv_store(g_gpu, &kv[1], k, v, sl, m, bf, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_stream_sync(g_gpu, NULL), AOQ_OK);
  size_t qb = (size_t)m * nh * hd * 2;
  uint16_t *fq = dev_download(g_gpu, qo, qb), *pq = dev_download(g_gpu, q, qb);
  assert_memory_equal(fq, pq, qb);
  assert_true(count_diff(fq, hq, (int64_t)m * nh * hd) > 0); /* rotated (pos 0 rows are not) */
  for (int i = 0; i < 2; i++) {
    uint16_t *c0 = dev_download(g_gpu, i ? kv[0].v : kv[0].k, (size_t)total * 2);
    uint16_t *c1 = dev_download(g_gpu, i ? kv[1].v : kv[1].k, (size_t)total * 2);
    assert_memory_equal(c0, c1, (size_t)total * 2); /* every slot, written or not */
    for (int t = 0; t < m && i == 1; t++)
      assert_memory_equal(c0 + slots[t] * kvw, hv + t * kvw, (size_t)kvw * 2);
    free(c0), free(c1);
  }
  /* a slot outside the cache: q is still written, the row's K/V are not, the sync reports it */
  int32_t bad = 8 * 16;
  assert_int_equal(aoq_dev_copy_h2d(g_gpu, sl, &bad, 4, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_qkv_rope_store(g_gpu, &kv[0], qkv, qo, ps, sl, 1, nh, &r, bf, NULL),
                   AOQ_OK);
  assert_int_equal(aoq_dev_stream_sync(g_gpu, NULL), AOQ_EINVAL);
  assert_int_equal(aoq_dev_stream_sync(g_gpu, NULL), AOQ_OK); /* reported once */
  /* shapes the kernel cannot serve are refused */
  assert_int_equal(aoq_dev_qkv_rope_store(g_gpu, &kv[0], qkv, qo, ps, sl, m, 30, &r, bf, NULL),
                   AOQ_EINVAL); /* 30 heads over 8 kv heads */
  assert_int_equal(aoq_dev_qkv_rope_store(g_cpu, &kv[0], qkv, qo, ps, sl, m, nh, &r, bf, NULL),
                   AOQ_EUNSUPPORTED);
  free(fq), free(pq), free(hq), free(hk), free(hv), free(hqkv);
  void *bufs[] = {qkv, qo, q, k, v, ps, sl, kv[0].k, kv[0].v, kv[1].k, kv[1].v};
  for (int i = 0; i < 11; i++) aoq_dev_free(g_gpu, bufs[i]);
}

static int setup(void **state) {
  (void)state;
  open_devices_or_skip();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  close_devices();
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_add_rmsnorm),
      cmocka_unit_test(test_qkv_rope_store),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
