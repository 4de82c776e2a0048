/*
 * test_cuda_attention.c — the CUDA backend's paged causal GQA attention against the CPU backend
 * on the same inputs: prefill runs of 1..2048 rows (tensor-core kernel), chunked prefill over an
 * existing cache (split over the keys), decode rows (per-row kernel), mixed batches whose runs
 * straddle the 64-row routing chunks, GQA groups 1/3/4/8, head_dim 64 and 128 (36, 200, 250 on
 * the per-row kernel alone), pages out of order; a graph captured on decode rows and replayed on a
 * prefill run; a bad page in a run; decode rows under a split plan made for a far longer context
 * (a decode graph's) equal to the same rows planned for their own context, bit for bit, and a
 * decode row at a position out of range under such a plan.
 */
#include "tests/gpu/cuda_test_util.h"

/* The rows of one attention call: row i is sequence rs[i] at position rp[i]. */
typedef struct rows {
  int m, cap;
  int32_t *rs, *rp;
} rows;

static void rows_add(rows *r, int seq, int p0, int n) {
  if (r->m + n > r->cap) {
    r->cap = (r->m + n) * 2;
    r->rs = realloc(r->rs, sizeof(int32_t) * (size_t)r->cap);
    r->rp = realloc(r->rp, sizeof(int32_t) * (size_t)r->cap);
    assert_non_null(r->rs);
    assert_non_null(r->rp);
  }
  for (int i = 0; i < n; i++) r->rs[r->m + i] = seq, r->rp[r->m + i] = p0 + i;
  r->m += n;
}

static void rows_free(rows *r) {
  free(r->rs), free(r->rp);
  memset(r, 0, sizeof *r);
}

/* A paged cache of random K/V for n_seqs sequences, each owning max_blocks pages dealt in
 * shuffled order. */
typedef struct cache {
  aoq_kv_cache kv;
  int n_seqs, max_blocks;
  int64_t elems; /* of k (= of v) */
  uint16_t *hk, *hv;
  int32_t *bt;
} cache;

static void cache_make(cache *c, int nkv, int hd, int ps, int n_seqs, int max_len) {
  c->n_seqs = n_seqs;
  c->max_blocks = (max_len + ps - 1) / ps + 1;
  int n_pages = n_seqs * c->max_blocks;
  c->kv = (aoq_kv_cache){NULL, NULL, n_pages, ps, nkv, hd, AOQ_DTYPE_BF16};
  c->elems = (int64_t)n_pages * ps * nkv * hd;
  c->hk = bf16_random(c->elems, 1);
  c->hv = bf16_random(c->elems, 1);
  c->bt = malloc(sizeof(int32_t) * (size_t)n_pages);
  for (int i = 0; i < n_pages; i++) c->bt[i] = i;
  for (int i = n_pages - 1; i > 0; i--) {
    int j = (int)(rnd_u64() % (uint64_t)(i + 1)), t = c->bt[i];
    c->bt[i] = c->bt[j], c->bt[j] = t;
  }
}

static void cache_free(cache *c) {
  free(c->hk), free(c->hv), free(c->bt);
}

static int rows_max_pos(const rows *r) {
  int mp = 0;
  for (int i = 0; i < r->m; i++) mp = r->rp[i] > mp ? r->rp[i] : mp;
  return mp;
}

/* Attention of rows r over cache c on device d, its kernels planned for positions up to
 * max(mp, the rows' largest); returns the downloaded bf16 output. */
static uint16_t *attend_plan(aoq_device *d, const cache *c, const rows *r, const uint16_t *hq,
                             int nh, int mp) {
  aoq_kv_cache kv = c->kv;
  const int hd = kv.head_dim, m = r->m;
  if (mp < rows_max_pos(r)) mp = rows_max_pos(r);
  const size_t qbytes = (size_t)m * nh * hd * 2;
  kv.k = dev_upload(d, c->hk, (size_t)c->elems * 2);
  kv.v = dev_upload(d, c->hv, (size_t)c->elems * 2);
  aoq_attn_batch b = {dev_upload(d, r->rs, (size_t)m * 4),
                      dev_upload(d, r->rp, (size_t)m * 4),
                      dev_upload(d, c->bt, (size_t)c->n_seqs * c->max_blocks * 4),
                      c->n_seqs,
                      c->max_blocks,
                      mp};
  void *q = dev_upload(d, hq, qbytes), *o = dev_upload(d, NULL, qbytes);
  assert_int_equal(aoq_dev_memset(d, o, 0xff, qbytes, NULL), AOQ_OK); /* NaN: unwritten shows */
  size_t wsz = aoq_dev_attention_workspace(d, &kv, m, nh, mp);
  void *ws = wsz ? dev_upload(d, NULL, wsz) : NULL;
  float scale = 1.0f / sqrtf((float)hd);
  assert_int_equal(aoq_dev_attention(d, &kv, &b, q, o, m, nh, scale, AOQ_DTYPE_BF16, ws, NULL),
                   AOQ_OK);
  uint16_t *out = dev_download(d, o, qbytes);
  aoq_dev_free(d, kv.k), aoq_dev_free(d, kv.v), aoq_dev_free(d, (void *)b.row_seq);
  aoq_dev_free(d, (void *)b.row_pos), aoq_dev_free(d, (void *)b.block_tables);
  aoq_dev_free(d, q), aoq_dev_free(d, o);
  if (ws) aoq_dev_free(d, ws);
  return out;
}

static uint16_t *attend(aoq_device *d, const cache *c, const rows *r, const uint16_t *hq, int nh) {
  return attend_plan(d, c, r, hq, nh, 0);
}

/* Same tolerance as test_cuda_ops.c's attention: bf16 output, weights rounded to bf16. */
static void compare(const char *what, const uint16_t *got, const uint16_t *want, int64_t n) {
  double worst = 0;
  for (int64_t i = 0; i < n; i++) {
    double e = fabs((double)aoq_bf16_to_f32(got[i]) - aoq_bf16_to_f32(want[i]));
    worst = e > worst ? e : worst;
  }
  printf("%-58s max |gpu - cpu| %.2e, %lld of %lld differ\n", what, worst,
         (long long)count_diff(got, want, n), (long long)n);
  check_close(what, got, want, n, 2e-3, 1.0 / 64);
}

static void run_case(const char *what, int nh, int nkv, int hd, int ps, int n_seqs, const rows *r) {
  cache c;
  cache_make(&c, nkv, hd, ps, n_seqs, rows_max_pos(r) + 1);
  if (r->m < 1 || nh < 1 || hd < 1) abort(); /* (and GCC's range analysis sees n > 0) */
  uint16_t *hq = bf16_random((int64_t)r->m * nh * hd, 1);
  uint16_t *want = attend(g_cpu, &c, r, hq, nh), *got = attend(g_gpu, &c, r, hq, nh);
  char name[160];
  snprintf(name, sizeof name, "%s (%d/%d heads x %d, page %d, %d rows)", what, nh, nkv, hd, ps,
           r->m);
  compare(name, got, want, (int64_t)r->m * nh * hd);
  free(hq), free(want), free(got);
  cache_free(&c);
}

/* A whole prompt: rows at positions 0..n-1 of one sequence. */
static void prefill(int nh, int nkv, int hd, int n) {
  rows r = {0};
  rows_add(&r, 0, 0, n);
  run_case("prefill", nh, nkv, hd, 16, 1, &r);
  rows_free(&r);
}

static void test_prefill_rows(void **state) {
  (void)state;
  prefill(32, 8, 128, 1);
  prefill(32, 8, 128, 17);
  prefill(8, 8, 128, 128);  /* MHA */
  prefill(32, 4, 64, 300);  /* group 8, head_dim 64 */
  prefill(12, 4, 128, 300); /* group 3: one head per block */
  prefill(8, 8, 64, 300);
  prefill(32, 8, 128, 2048); /* Llama-3.1-8B */
  /* head_dims without a tensor-core kernel: every row on the per-row kernel */
  prefill(4, 2, 36, 40);  /* 2-byte loads */
  prefill(4, 2, 200, 70); /* 16-byte loads, 5 key groups */
  prefill(4, 1, 250, 20); /* 2-byte loads, two value chunks per thread */
}

static void test_chunked_prefill(void **state) {
  (void)state;
  rows r = {0};
  rows_add(&r, 0, 1000, 100); /* 100 new rows after 1000 cached ones: split over the keys */
  run_case("chunked prefill", 32, 8, 128, 16, 1, &r);
  rows_free(&r);
  rows_add(&r, 0, 3000, 17);
  run_case("chunked prefill", 16, 4, 64, 32, 1, &r);
  rows_free(&r);
  rows_add(&r, 0, 517, 512); /* not aligned to the key tiles nor the pages */
  run_case("chunked prefill", 32, 8, 128, 16, 1, &r);
  rows_free(&r);
}

static void test_mixed_batch(void **state) {
  (void)state;
  rows r = {0};
  /* decode rows, a run straddling chunks, a run shorter than MIN_RUN, another run, decode rows */
  rows_add(&r, 0, 5, 1);
  rows_add(&r, 1, 129, 1);
  rows_add(&r, 2, 1999, 1);
  rows_add(&r, 3, 0, 1);
  rows_add(&r, 4, 63, 1);
  rows_add(&r, 5, 0, 200);
  rows_add(&r, 6, 40, 3);
  rows_add(&r, 7, 500, 31);
  rows_add(&r, 8, 700, 1);
  rows_add(&r, 9, 64, 1);
  rows_add(&r, 10, 200, 70); /* chunked prefill run across the last chunks */
  run_case("mixed batch", 32, 8, 128, 16, 11, &r);
  run_case("mixed batch", 8, 1, 64, 16, 11, &r); /* MQA */
  rows_free(&r);
  /* many sequences' decode rows only: the tensor-core kernel is launched and takes none */
  for (int s = 0; s < 64; s++) rows_add(&r, s, (s * 37) % 900, 1);
  run_case("decode batch", 32, 8, 128, 16, 64, &r);
  rows_free(&r);
  /* the same prompt with its rows in reverse order: no runs, every row on the per-row kernel */
  for (int i = 299; i >= 0; i--) rows_add(&r, 0, i, 1);
  run_case("prefill rows reversed", 32, 8, 128, 16, 1, &r);
  rows_free(&r);
}

/* A graph captured with decode rows (m rows of m sequences) and max_pos = the cache size, then
 * replayed after the row metadata on the device became one prefill run of sequence 0: the
 * kernels read the routing from the device, so the replay must equal a fresh call. */
static void test_graph_replay(void **state) {
  (void)state;
  const int nh = 32, nkv = 8, hd = 128, m = 96, max_len = 1024;
  cache c;
  cache_make(&c, nkv, hd, 16, m, max_len);
  aoq_kv_cache kv = c.kv;
  kv.k = dev_upload(g_gpu, c.hk, (size_t)c.elems * 2);
  kv.v = dev_upload(g_gpu, c.hv, (size_t)c.elems * 2);
  rows dec = {0}, pre = {0};
  for (int s = 0; s < m; s++) rows_add(&dec, s, (s * 101) % max_len, 1);
  rows_add(&pre, 0, max_len - m, m);
  const size_t qbytes = (size_t)m * nh * hd * 2;
  uint16_t *hq = bf16_random((int64_t)m * nh * hd, 1);
  int32_t *drs = dev_upload(g_gpu, dec.rs, m * 4), *drp = dev_upload(g_gpu, dec.rp, m * 4);
  aoq_attn_batch b = {drs, drp,          dev_upload(g_gpu, c.bt, (size_t)m * c.max_blocks * 4),
                      m,   c.max_blocks, max_len - 1};
  void *q = dev_upload(g_gpu, hq, qbytes), *o = dev_upload(g_gpu, NULL, qbytes);
  size_t wsz = aoq_dev_attention_workspace(g_gpu, &kv, m, nh, max_len - 1);
  void *ws = wsz ? dev_upload(g_gpu, NULL, wsz) : NULL;
  aoq_stream *s;
  aoq_graph *g;
  assert_int_equal(aoq_dev_stream_create(g_gpu, &s), AOQ_OK);
  assert_int_equal(aoq_dev_graph_begin(g_gpu, s), AOQ_OK);
  assert_int_equal(aoq_dev_attention(g_gpu, &kv, &b, q, o, m, nh, 1.0f / sqrtf((float)hd),
                                     AOQ_DTYPE_BF16, ws, s),
                   AOQ_OK);
  assert_int_equal(aoq_dev_graph_end(g_gpu, s, &g), AOQ_OK);
  rows *sets[2] = {&dec, &pre};
  for (int k = 0; k < 2; k++) {
    assert_int_equal(aoq_dev_copy_h2d(g_gpu, drs, sets[k]->rs, m * 4, NULL), AOQ_OK);
    assert_int_equal(aoq_dev_copy_h2d(g_gpu, drp, sets[k]->rp, m * 4, NULL), AOQ_OK);
    assert_int_equal(aoq_dev_memset(g_gpu, o, 0xff, qbytes, NULL), AOQ_OK);
    assert_int_equal(aoq_dev_graph_launch(g_gpu, g, s), AOQ_OK);
    assert_int_equal(aoq_dev_stream_sync(g_gpu, s), AOQ_OK);
    uint16_t *got = dev_download(g_gpu, o, qbytes), *want = attend(g_cpu, &c, sets[k], hq, nh);
    compare(k ? "graph replay, prefill run" : "graph replay, decode rows", got, want,
            (int64_t)m * nh * hd);
    free(got), free(want);
  }
  aoq_dev_graph_destroy(g_gpu, g);
  aoq_dev_stream_destroy(g_gpu, s);
  aoq_dev_free(g_gpu, kv.k), aoq_dev_free(g_gpu, kv.v), aoq_dev_free(g_gpu, drs);
  aoq_dev_free(g_gpu, drp), aoq_dev_free(g_gpu, (void *)b.block_tables);
  aoq_dev_free(g_gpu, q), aoq_dev_free(g_gpu, o);
  if (ws) aoq_dev_free(g_gpu, ws);
  free(hq);
  rows_free(&dec), rows_free(&pre);
  cache_free(&c);
}

/* Decode rows planned for a context of 16384 (as the decode graph of a model is: up to 64 splits
 * at batch 1) give the bits of the same rows planned for their own context: a row whose tiles
 * all fall to split 0 is written by it (no merge), and a longer row merges only the splits that
 * ran, each one tile in both plans. Batch 1 at positions 0..2047 and a batch of 8 mixed ones. */
static void test_short_rows_long_plan(void **state) {
  (void)state;
  const int nh = 32, nkv = 8, hd = 128, plan = 16383;
  const int one[] = {0, 5, 47, 127, 128, 200, 1000, 2047};
  for (size_t i = 0; i <= sizeof one / sizeof one[0]; i++) {
    rows r = {0};
    if (i < sizeof one / sizeof one[0]) {
      rows_add(&r, 0, one[i], 1);
    } else { /* the batch of 8: every position of the list, one sequence each */
      for (int s = 0; s < 8; s++) rows_add(&r, s, one[s], 1);
    }
    cache c;
    cache_make(&c, nkv, hd, 16, r.m, rows_max_pos(&r) + 1);
    uint16_t *hq = bf16_random((int64_t)r.m * nh * hd, 1);
    uint16_t *own = attend(g_gpu, &c, &r, hq, nh), *lp = attend_plan(g_gpu, &c, &r, hq, nh, plan);
    uint16_t *want = attend(g_cpu, &c, &r, hq, nh);
    char name[96];
    snprintf(name, sizeof name, "decode, plan %d: %d rows, last at %d", plan + 1, r.m,
             r.rp[r.m - 1]);
    compare(name, lp, want, (int64_t)r.m * nh * hd);
    if (memcmp(own, lp, (size_t)r.m * nh * hd * 2))
      fail_msg("%s: %lld values differ from the rows' own plan", name,
               (long long)count_diff(own, lp, (int64_t)r.m * nh * hd));
    free(hq), free(own), free(lp), free(want);
    cache_free(&c);
    rows_free(&r);
  }
}

/* A decode row at a position past its block table, under a long plan: zeros, and the error at
 * the next sync, once; the good row beside it is still right. */
static void test_bad_position_long_plan(void **state) {
  (void)state;
  const int nh = 8, nkv = 2, hd = 64, m = 2;
  cache c;
  cache_make(&c, nkv, hd, 16, m, 300);
  aoq_kv_cache kv = c.kv;
  kv.k = dev_upload(g_gpu, c.hk, (size_t)c.elems * 2);
  kv.v = dev_upload(g_gpu, c.hv, (size_t)c.elems * 2);
  rows r = {0};
  rows_add(&r, 0, 299, 1);
  rows_add(&r, 1, c.max_blocks * 16 + 3, 1); /* out of range */
  aoq_attn_batch b = {dev_upload(g_gpu, r.rs, m * 4),
                      dev_upload(g_gpu, r.rp, m * 4),
                      dev_upload(g_gpu, c.bt, (size_t)m * c.max_blocks * 4),
                      m,
                      c.max_blocks,
                      16383};
  const size_t qbytes = (size_t)m * nh * hd * 2;
  uint16_t *hq = bf16_random((int64_t)m * nh * hd, 1);
  void *q = dev_upload(g_gpu, hq, qbytes), *o = dev_upload(g_gpu, NULL, qbytes);
  assert_int_equal(aoq_dev_memset(g_gpu, o, 0xff, qbytes, NULL), AOQ_OK);
  size_t wsz = aoq_dev_attention_workspace(g_gpu, &kv, m, nh, 16383);
  void *ws = wsz ? dev_upload(g_gpu, NULL, wsz) : NULL;
  assert_int_equal(aoq_dev_attention(g_gpu, &kv, &b, q, o, m, nh, 0.125f, AOQ_DTYPE_BF16, ws, NULL),
                   AOQ_OK);
  assert_int_equal(aoq_dev_stream_sync(g_gpu, NULL), AOQ_EINVAL);
  assert_int_equal(aoq_dev_stream_sync(g_gpu, NULL), AOQ_OK);
  uint16_t *got = dev_download(g_gpu, o, qbytes);
  for (int i = 0; i < nh * hd; i++)
    if (got[nh * hd + i] != 0) fail_msg("bad row, value %d: 0x%04x, not 0", i, got[nh * hd + i]);
  rows good = {0};
  rows_add(&good, 0, 299, 1);
  uint16_t *want = attend(g_cpu, &c, &good, hq, nh);
  compare("good row beside a bad one, plan 16384", got, want, (int64_t)nh * hd);
  free(want), free(got), free(hq);
  rows_free(&good);
  aoq_dev_free(g_gpu, kv.k), aoq_dev_free(g_gpu, kv.v), aoq_dev_free(g_gpu, (void *)b.row_seq);
  aoq_dev_free(g_gpu, (void *)b.row_pos), aoq_dev_free(g_gpu, (void *)b.block_tables);
  aoq_dev_free(g_gpu, q), aoq_dev_free(g_gpu, o);
  if (ws) aoq_dev_free(g_gpu, ws);
  rows_free(&r);
  cache_free(&c);
}

/* A run whose block table names a page outside the cache: reported at the next sync, once. */
static void test_bad_page_in_run(void **state) {
  (void)state;
  const int nh = 8, nkv = 2, hd = 64, n = 40;
  cache c;
  cache_make(&c, nkv, hd, 16, 1, n);
  c.bt[1] = c.kv.n_pages + 5;
  aoq_kv_cache kv = c.kv;
  kv.k = dev_upload(g_gpu, c.hk, (size_t)c.elems * 2);
  kv.v = dev_upload(g_gpu, c.hv, (size_t)c.elems * 2);
  rows r = {0};
  rows_add(&r, 0, 0, n);
  aoq_attn_batch b = {dev_upload(g_gpu, r.rs, n * 4),
                      dev_upload(g_gpu, r.rp, n * 4),
                      dev_upload(g_gpu, c.bt, (size_t)c.max_blocks * 4),
                      1,
                      c.max_blocks,
                      n - 1};
  void *q = dev_upload(g_gpu, NULL, (size_t)n * nh * hd * 2);
  void *o = dev_upload(g_gpu, NULL, (size_t)n * nh * hd * 2);
  size_t wsz = aoq_dev_attention_workspace(g_gpu, &kv, n, nh, n - 1);
  void *ws = wsz ? dev_upload(g_gpu, NULL, wsz) : NULL;
  assert_int_equal(aoq_dev_attention(g_gpu, &kv, &b, q, o, n, nh, 0.125f, AOQ_DTYPE_BF16, ws, NULL),
                   AOQ_OK);
  assert_int_equal(aoq_dev_stream_sync(g_gpu, NULL), AOQ_EINVAL);
  assert_int_equal(aoq_dev_stream_sync(g_gpu, NULL), AOQ_OK);
  aoq_dev_free(g_gpu, kv.k), aoq_dev_free(g_gpu, kv.v), aoq_dev_free(g_gpu, (void *)b.row_seq);
  aoq_dev_free(g_gpu, (void *)b.row_pos), aoq_dev_free(g_gpu, (void *)b.block_tables);
  aoq_dev_free(g_gpu, q), aoq_dev_free(g_gpu, o);
  if (ws) aoq_dev_free(g_gpu, ws);
  rows_free(&r);
  cache_free(&c);
}

int main(void) {
  open_devices_or_skip();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_prefill_rows),
      cmocka_unit_test(test_chunked_prefill),
      cmocka_unit_test(test_mixed_batch),
      cmocka_unit_test(test_graph_replay),
      cmocka_unit_test(test_bad_page_in_run),
      cmocka_unit_test(test_short_rows_long_plan),
      cmocka_unit_test(test_bad_position_long_plan),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  close_devices();
  return rc;
}
