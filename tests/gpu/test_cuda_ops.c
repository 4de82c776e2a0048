/*
 * test_cuda_ops.c — the CUDA backend against the CPU backend on the same inputs: device calls
 * (memory, streams, events, graphs, host registration, error flags) and every op other than
 * linear (test_cuda_linear.c): rmsnorm, add, silu_mul, embed, rope, kv_store + attention
 * (decode with split-K, prefill, GQA), argmax, sample, convert.
 */
#include "tests/gpu/cuda_test_util.h"

static void test_info_and_memory(void **state) {
  (void)state;
  aoq_device_info info;
  assert_int_equal(aoq_device_info_get(g_gpu, &info), AOQ_OK);
  assert_int_equal(info.kind, AOQ_DEVICE_CUDA);
  assert_true(info.total_memory > (1ull << 30));
  assert_true(info.threads > 0);
  assert_true(info.caps & AOQ_CAP_GRAPHS);
  assert_true(info.linear_formats & (1ull << AOQ_FMT_INT4WO));
  printf("device: %s, %d SMs, %.1f GiB\n", info.name, info.threads,
         (double)info.total_memory / (1 << 30));
  size_t n = 1 << 20;
  uint8_t *h = malloc(n), *back;
  for (size_t i = 0; i < n; i++) h[i] = (uint8_t)(i * 7 + 3);
  void *a = dev_upload(g_gpu, h, n), *b = dev_upload(g_gpu, NULL, n);
  assert_int_equal((uintptr_t)a % 256, 0);
  assert_int_equal(aoq_dev_copy_d2d(g_gpu, b, a, n, NULL), AOQ_OK);
  back = dev_download(g_gpu, b, n);
  assert_memory_equal(back, h, n);
  free(back);
  assert_int_equal(aoq_dev_memset(g_gpu, b, 0xab, 100, NULL), AOQ_OK);
  back = dev_download(g_gpu, b, 200);
  for (int i = 0; i < 100; i++) assert_int_equal(back[i], 0xab);
  assert_int_equal(back[100], h[100]);
  free(back);
  /* registered host memory, async copies on a stream */
  assert_int_equal(aoq_dev_host_register(g_gpu, h, n), AOQ_OK);
  aoq_stream *s;
  assert_int_equal(aoq_dev_stream_create(g_gpu, &s), AOQ_OK);
  assert_int_equal(aoq_dev_memset(g_gpu, b, 0, n, s), AOQ_OK);
  assert_int_equal(aoq_dev_copy_d2h(g_gpu, h, b, n, s), AOQ_OK);
  assert_int_equal(aoq_dev_stream_sync(g_gpu, s), AOQ_OK);
  for (size_t i = 0; i < n; i += 4093) assert_int_equal(h[i], 0);
  assert_int_equal(aoq_dev_host_unregister(g_gpu, h), AOQ_OK);
  aoq_dev_stream_destroy(g_gpu, s);
  aoq_dev_free(g_gpu, a);
  aoq_dev_free(g_gpu, b);
  free(h);
  /* an impossible allocation is an error, not a crash */
  void *huge = NULL;
  assert_int_not_equal(aoq_dev_alloc(g_gpu, (size_t)1 << 50, &huge), AOQ_OK);
  assert_null(huge);
}

static void test_events_and_graphs(void **state) {
  (void)state;
  int64_t n = 1 << 20;
  uint16_t *ha = bf16_random(n, 1), *hb = bf16_random(n, 1);
  void *a = dev_upload(g_gpu, ha, n * 2), *b = dev_upload(g_gpu, hb, n * 2);
  void *y = dev_upload(g_gpu, NULL, n * 2);
  aoq_stream *s;
  aoq_event *e0, *e1;
  assert_int_equal(aoq_dev_stream_create(g_gpu, &s), AOQ_OK);
  assert_int_equal(aoq_dev_event_create(g_gpu, &e0), AOQ_OK);
  assert_int_equal(aoq_dev_event_create(g_gpu, &e1), AOQ_OK);
  /* capture y = a + b; y = y + b, replay twice: y = a + 2b each time (not 4b) */
  assert_int_equal(aoq_dev_graph_begin(g_gpu, s), AOQ_OK);
  assert_int_equal(aoq_dev_add(g_gpu, a, b, y, n, AOQ_DTYPE_BF16, s), AOQ_OK);
  assert_int_equal(aoq_dev_add(g_gpu, y, b, y, n, AOQ_DTYPE_BF16, s), AOQ_OK);
  aoq_graph *g;
  assert_int_equal(aoq_dev_graph_end(g_gpu, s, &g), AOQ_OK);
  assert_int_equal(aoq_dev_event_record(g_gpu, e0, s), AOQ_OK);
  assert_int_equal(aoq_dev_graph_launch(g_gpu, g, s), AOQ_OK);
  assert_int_equal(aoq_dev_graph_launch(g_gpu, g, s), AOQ_OK);
  assert_int_equal(aoq_dev_event_record(g_gpu, e1, s), AOQ_OK);
  assert_int_equal(aoq_dev_event_wait(g_gpu, e1, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_event_sync(g_gpu, e1), AOQ_OK);
  float ms = -1;
  assert_int_equal(aoq_dev_event_elapsed_ms(g_gpu, e0, e1, &ms), AOQ_OK);
  assert_true(ms >= 0 && ms < 1000);
  uint16_t *hy = dev_download(g_gpu, y, n * 2);
  for (int64_t i = 0; i < n; i++) {
    float t = aoq_round_bf16(aoq_bf16_to_f32(ha[i]) + aoq_bf16_to_f32(hb[i]));
    uint16_t want = aoq_f32_to_bf16(t + aoq_bf16_to_f32(hb[i]));
    if (hy[i] != want) fail_msg("graph replay: element %lld", (long long)i);
  }
  aoq_dev_graph_destroy(g_gpu, g);
  aoq_dev_event_destroy(g_gpu, e0);
  aoq_dev_event_destroy(g_gpu, e1);
  aoq_dev_stream_destroy(g_gpu, s);
  aoq_dev_free(g_gpu, a);
  aoq_dev_free(g_gpu, b);
  aoq_dev_free(g_gpu, y);
  free(ha), free(hb), free(hy);
}

static void test_rmsnorm_add_silu_convert(void **state) {
  (void)state;
  const int64_t m = 7, n = 4096;
  uint16_t *hx = bf16_random(m * n, 3), *hw = bf16_random(n, 1), *hg = bf16_random(m * 2 * n, 4);
  uint16_t *out[2][4];
  aoq_device *ds[2] = {g_cpu, g_gpu};
  for (int di = 0; di < 2; di++) {
    aoq_device *d = ds[di];
    void *x = dev_upload(d, hx, m * n * 2), *w = dev_upload(d, hw, n * 2);
    void *gu = dev_upload(d, hg, m * n * 4), *y = dev_upload(d, NULL, m * n * 2);
    void *y2 = dev_upload(d, NULL, m * n * 2), *y3 = dev_upload(d, NULL, m * n * 2);
    void *f = dev_upload(d, NULL, m * n * 4), *y4 = dev_upload(d, NULL, m * n * 2);
    assert_int_equal(aoq_dev_rmsnorm(d, x, w, y, m, n, 1e-5f, AOQ_DTYPE_BF16, NULL), AOQ_OK);
    assert_int_equal(aoq_dev_add(d, x, y, y2, m * n, AOQ_DTYPE_BF16, NULL), AOQ_OK);
    assert_int_equal(aoq_dev_silu_mul(d, gu, y3, m, n, AOQ_DTYPE_BF16, NULL), AOQ_OK);
    assert_int_equal(aoq_dev_convert(d, y3, AOQ_DTYPE_BF16, f, AOQ_DTYPE_F32, m * n, NULL), AOQ_OK);
    assert_int_equal(aoq_dev_convert(d, f, AOQ_DTYPE_F32, y4, AOQ_DTYPE_BF16, m * n, NULL), AOQ_OK);
    out[di][0] = dev_download(d, y, m * n * 2);
    out[di][1] = dev_download(d, y2, m * n * 2);
    out[di][2] = dev_download(d, y3, m * n * 2);
    out[di][3] = dev_download(d, y4, m * n * 2);
    void *ps[] = {x, w, gu, y, y2, y3, f, y4};
    for (int i = 0; i < 8; i++) aoq_dev_free(d, ps[i]);
  }
  /* rmsnorm's sum of squares is reassociated: at most one bf16 ulp, rarely */
  check_close("rmsnorm", out[1][0], out[0][0], m * n, 1e-6, 1.0 / 128);
  assert_true(count_diff(out[1][0], out[0][0], m * n) < m * n / 50);
  assert_memory_equal(out[1][2], out[0][2], m * n * 2); /* silu_mul bit-exact */
  assert_memory_equal(out[1][3], out[1][2], m * n * 2); /* bf16 -> f32 -> bf16 round trip */
  check_close("add", out[1][1], out[0][1], m * n, 1e-6, 1.0 / 128);
  for (int di = 0; di < 2; di++)
    for (int i = 0; i < 4; i++) free(out[di][i]);
  free(hx), free(hw), free(hg);
}

static void test_embed_rope(void **state) {
  (void)state;
  const int64_t rows = 1000, dim = 4096, m = 9;
  const int nh = 32, hd = 128;
  uint16_t *ht = bf16_random(rows * dim, 1);
  int32_t ids[9] = {0, 999, 5, 5, 17, 123, 998, 1, 500};
  int32_t pos[9] = {0, 1, 7, 100, 1000, 8191, 8192, 30000, 131071};
  aoq_rope r = {500000.f, 8.f, 1.f, 4.f, 8192};
  uint16_t *out[2][2];
  aoq_device *ds[2] = {g_cpu, g_gpu};
  for (int di = 0; di < 2; di++) {
    aoq_device *d = ds[di];
    void *t = dev_upload(d, ht, rows * dim * 2), *id = dev_upload(d, ids, sizeof ids);
    void *ps = dev_upload(d, pos, sizeof pos), *y = dev_upload(d, NULL, m * dim * 2);
    assert_int_equal(aoq_dev_embed(d, t, rows, id, y, m, dim, AOQ_DTYPE_BF16, NULL), AOQ_OK);
    out[di][0] = dev_download(d, y, m * dim * 2);
    assert_int_equal(aoq_dev_rope(d, y, ps, m, nh, hd, dim, &r, AOQ_DTYPE_BF16, NULL), AOQ_OK);
    out[di][1] = dev_download(d, y, m * dim * 2);
    aoq_dev_free(d, t), aoq_dev_free(d, id), aoq_dev_free(d, ps), aoq_dev_free(d, y);
  }
  assert_memory_equal(out[1][0], out[0][0], m * dim * 2);
  /* cosf/sinf of the GPU differ from glibc by an ulp or two before rounding to bf16 */
  check_close("rope", out[1][1], out[0][1], m * dim, 1.0 / 64, 1.0 / 64);
  int64_t diff = count_diff(out[1][1], out[0][1], m * dim);
  printf("rope: %lld of %lld elements differ from the CPU\n", (long long)diff,
         (long long)(m * dim));
  assert_true(diff < m * dim / 100);
  for (int di = 0; di < 2; di++) free(out[di][0]), free(out[di][1]);
  free(ht);
  /* a bad id is reported at the next sync */
  void *t = dev_upload(g_gpu, NULL, 16 * 64 * 2), *y = dev_upload(g_gpu, NULL, 64 * 2);
  int32_t bad = 16;
  void *id = dev_upload(g_gpu, &bad, 4);
  assert_int_equal(aoq_dev_embed(g_gpu, t, 16, id, y, 1, 64, AOQ_DTYPE_BF16, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_stream_sync(g_gpu, NULL), AOQ_EINVAL);
  assert_int_equal(aoq_dev_stream_sync(g_gpu, NULL), AOQ_OK); /* reported once */
  aoq_dev_free(g_gpu, t), aoq_dev_free(g_gpu, y), aoq_dev_free(g_gpu, id);
}

/* Paged attention: 3 sequences with shuffled pages; decode rows (split-K at long context),
 * prefill chunk rows, GQA 32/8 and MQA. */
static void run_attention(int nh, int nkv, int hd, int ps, const int *lens, int n_seqs,
                          int prefill_rows) {
  const int max_blocks = 256, n_pages = n_seqs * max_blocks;
  aoq_kv_cache kv = {NULL, NULL, n_pages, ps, nkv, hd, AOQ_DTYPE_BF16};
  int64_t kvw = (int64_t)nkv * hd, slots_total = (int64_t)n_pages * ps;
  uint16_t *hk = bf16_random(slots_total * kvw, 1), *hv = bf16_random(slots_total * kvw, 1);
  int32_t *bt = malloc(sizeof(int32_t) * n_seqs * max_blocks);
  for (int i = 0; i < n_seqs * max_blocks; i++) bt[i] = i;
  for (int i = n_seqs * max_blocks - 1; i > 0; i--) { /* shuffle the pages */
    int j = (int)(rnd_u64() % (uint64_t)(i + 1)), t = bt[i];
    bt[i] = bt[j], bt[j] = t;
  }
  /* rows: the last position of each sequence, plus prefill_rows trailing positions of seq 0 */
  int m = n_seqs + prefill_rows, max_pos = 0;
  int32_t *rs = malloc(sizeof(int32_t) * m), *rp = malloc(sizeof(int32_t) * m);
  for (int i = 0; i < n_seqs; i++) rs[i] = i, rp[i] = lens[i] - 1;
  for (int i = 0; i < prefill_rows; i++) rs[n_seqs + i] = 0, rp[n_seqs + i] = lens[0] - 1 - i;
  for (int i = 0; i < m; i++) max_pos = rp[i] > max_pos ? rp[i] : max_pos;
  uint16_t *hq = bf16_random((int64_t)m * nh * hd, 1);
  float scale = 1.0f / sqrtf((float)hd);
  uint16_t *out[2];
  aoq_device *ds[2] = {g_cpu, g_gpu};
  for (int di = 0; di < 2; di++) {
    aoq_device *d = ds[di];
    kv.k = dev_upload(d, hk, slots_total * kvw * 2);
    kv.v = dev_upload(d, hv, slots_total * kvw * 2);
    aoq_attn_batch b = {dev_upload(d, rs, m * 4),
                        dev_upload(d, rp, m * 4),
                        dev_upload(d, bt, (size_t)n_seqs * max_blocks * 4),
                        n_seqs,
                        max_blocks,
                        max_pos};
    void *q = dev_upload(d, hq, (size_t)m * nh * hd * 2),
         *o = dev_upload(d, NULL, (size_t)m * nh * hd * 2);
    size_t wsz = aoq_dev_attention_workspace(d, &kv, m, nh, max_pos);
    void *ws = wsz ? dev_upload(d, NULL, wsz) : NULL;
    assert_int_equal(aoq_dev_attention(d, &kv, &b, q, o, m, nh, scale, AOQ_DTYPE_BF16, ws, NULL),
                     AOQ_OK);
    out[di] = dev_download(d, o, (size_t)m * nh * hd * 2);
    aoq_dev_free(d, kv.k), aoq_dev_free(d, kv.v), aoq_dev_free(d, (void *)b.row_seq);
    aoq_dev_free(d, (void *)b.row_pos), aoq_dev_free(d, (void *)b.block_tables);
    aoq_dev_free(d, q), aoq_dev_free(d, o), aoq_dev_free(d, ws);
  }
  char what[96];
  snprintf(what, sizeof what, "attention %d/%d heads x %d, page %d, %d rows", nh, nkv, hd, ps, m);
  check_close(what, out[1], out[0], (int64_t)m * nh * hd, 2e-3, 1.0 / 64);
  free(out[0]), free(out[1]), free(hk), free(hv), free(bt), free(rs), free(rp), free(hq);
}

static void test_attention(void **state) {
  (void)state;
  const int lens1[3] = {1, 130, 2000};
  run_attention(32, 8, 128, 16, lens1, 3, 0); /* decode, split-K on the long sequence */
  const int lens2[2] = {300, 45};
  run_attention(32, 8, 128, 16, lens2, 2, 40); /* prefill rows mixed with decode */
  const int lens3[1] = {777};
  run_attention(8, 1, 64, 32, lens3, 1, 3); /* MQA, head_dim 64 */
  const int lens4[2] = {4000, 5};
  run_attention(12, 12, 128, 16, lens4, 2, 0); /* MHA */
}

static void test_kv_store(void **state) {
  (void)state;
  aoq_kv_cache kv = {NULL, NULL, 4, 16, 8, 128, AOQ_DTYPE_BF16};
  int64_t w = 8 * 128, total = 64 * w;
  kv.k = dev_upload(g_gpu, NULL, total * 2);
  kv.v = dev_upload(g_gpu, NULL, total * 2);
  uint16_t *hk = bf16_random(3 * w, 1), *hv = bf16_random(3 * w, 1);
  int32_t slots[3] = {5, 63, 16};
  void *k = dev_upload(g_gpu, hk, 3 * w * 2), *v = dev_upload(g_gpu, hv, 3 * w * 2);
  void *sl = dev_upload(g_gpu, slots, sizeof slots);
  assert_int_equal(aoq_dev_kv_store(g_gpu, &kv, k, v, sl, 3, AOQ_DTYPE_BF16, NULL), AOQ_OK);
  uint16_t *ck = dev_download(g_gpu, kv.k, total * 2), *cv = dev_download(g_gpu, kv.v, total * 2);
  for (int i = 0; i < 3; i++) {
    assert_memory_equal(ck + slots[i] * w, hk + i * w, w * 2);
    assert_memory_equal(cv + slots[i] * w, hv + i * w, w * 2);
  }
  assert_int_equal(ck[0], 0);
  int32_t bad = 64;
  assert_int_equal(aoq_dev_copy_h2d(g_gpu, sl, &bad, 4, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_kv_store(g_gpu, &kv, k, v, sl, 1, AOQ_DTYPE_BF16, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_stream_sync(g_gpu, NULL), AOQ_EINVAL);
  free(ck), free(cv), free(hk), free(hv);
  aoq_dev_free(g_gpu, kv.k), aoq_dev_free(g_gpu, kv.v), aoq_dev_free(g_gpu, k);
  aoq_dev_free(g_gpu, v), aoq_dev_free(g_gpu, sl);
}

static void test_argmax_sample(void **state) {
  (void)state;
  const int64_t m = 12, vocab = 128256;
  uint16_t *hl = bf16_random(m * vocab, 8);
  hl[3 * vocab + 77] = aoq_f32_to_bf16(40.f); /* ties: first index wins */
  hl[3 * vocab + 99] = aoq_f32_to_bf16(40.f);
  hl[4 * vocab + 5] = 0x7fc0; /* NaN counts as -inf */
  aoq_sample_params p[12];
  for (int i = 0; i < 12; i++) {
    p[i].temperature = i < 2 ? 0.f : 0.3f + 0.2f * (float)(i % 5);
    p[i].top_p = i % 3 == 0 ? 1.f : 0.5f + 0.1f * (float)(i % 4);
    p[i].top_k = i % 4 == 1 ? 0 : i % 4 == 2 ? 50 : i % 4 == 3 ? 1000 : 0;
    p[i].seed = 1000 + (uint64_t)i * 7919;
  }
  int32_t am[2][12], sm[2][12];
  aoq_device *ds[2] = {g_cpu, g_gpu};
  for (int di = 0; di < 2; di++) {
    aoq_device *d = ds[di];
    void *lg = dev_upload(d, hl, m * vocab * 2), *o = dev_upload(d, NULL, m * 4);
    assert_int_equal(aoq_dev_argmax(d, lg, o, m, vocab, AOQ_DTYPE_BF16, NULL), AOQ_OK);
    int32_t *t = dev_download(d, o, m * 4);
    memcpy(am[di], t, sizeof am[di]);
    free(t);
    assert_int_equal(aoq_dev_sample(d, lg, o, m, vocab, p, AOQ_DTYPE_BF16, NULL), AOQ_OK);
    t = dev_download(d, o, m * 4);
    memcpy(sm[di], t, sizeof sm[di]);
    free(t);
    aoq_dev_free(d, lg), aoq_dev_free(d, o);
  }
  assert_int_equal(am[1][3], 77);
  assert_memory_equal(am[1], am[0], sizeof am[0]);
  for (int i = 0; i < 12; i++)
    if (sm[1][i] != sm[0][i]) fail_msg("sample row %d: gpu %d, cpu %d", i, sm[1][i], sm[0][i]);
  free(hl);
}

int main(void) {
  open_devices_or_skip();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_info_and_memory),
      cmocka_unit_test(test_events_and_graphs),
      cmocka_unit_test(test_rmsnorm_add_silu_convert),
      cmocka_unit_test(test_embed_rope),
      cmocka_unit_test(test_kv_store),
      cmocka_unit_test(test_attention),
      cmocka_unit_test(test_argmax_sample),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  close_devices();
  return rc;
}
