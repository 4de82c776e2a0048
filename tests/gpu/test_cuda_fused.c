/*
 * test_cuda_fused.c — the fused ops of the CUDA backend (AOQ_CAP_FUSED) against the plain ops
 * they replace, on the same device and inputs: add_rmsnorm = add + rmsnorm and qkv_rope_store =
 * split + rope(q) + rope(k) + kv_store, bit for bit (the plain ops are checked against the CPU
 * backend in test_cuda_ops.c). Also the CPU backend's fallback of add_rmsnorm. And
 * linear_silu_mul (the gate | up GEMV writing silu(gate) * up) against linear + silu_mul, bit for
 * bit, for the formats that take it, m = 1..8, the three block sizes of the GEMV and a partial
 * block, and the cases it leaves to the two ops (the FMA GEMV's, m > 8, linear_dec.h's formats,
 * the fp8 formats, the CPU). And qkv_attention (rope, cache store and decode attention in one
 * kernel) against qkv_rope_store + attention.
 */
#include "core/format.h"
#include "kernels/gpu/gpu_kernels.h"
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

/* host weight from the reference quantizer, then on device d */
static aoq_qweight weight_on(aoq_device *d, const char *fmt, int64_t n, int64_t k) {
  aoq_format f;
  aoq_qweight h;
  assert_int_equal(aoq_format_parse(fmt, &f), AOQ_OK);
  assert_int_equal(aoq_format_plan(&f, n, k, &h), AOQ_OK);
  assert_int_equal(aoq_qweight_host_alloc(&h), AOQ_OK);
  uint16_t *src = bf16_random(n * k, 0.05f);
  assert_int_equal(aoq_quantize_ref(src, &h), AOQ_OK);
  aoq_qweight o = upload_weight(d, &h);
  aoq_qweight_host_free(&h);
  free(src);
  return o;
}

/* fused (linear_silu_mul) against plain (linear, silu_mul) on [gate; up] of 2 I rows */
static void linear_silu_case(aoq_device *d, const char *fmt, int64_t m, int64_t I, int64_t k,
                             bool want_fused) {
  const aoq_dtype bf = AOQ_DTYPE_BF16;
  aoq_qweight w = weight_on(d, fmt, 2 * I, k);
  if (d == g_gpu) assert_int_equal(aoq_gk_linear_silu_ok(&w, m), want_fused);
  uint16_t *hx = bf16_random(m * k, 4);
  size_t by = (size_t)(m * I) * 2, bgu = 2 * by, wsb = aoq_dev_linear_workspace(d, &w, m);
  void *x = dev_upload(d, hx, (size_t)(m * k) * 2), *gu1 = dev_upload(d, NULL, bgu);
  void *gu2 = dev_upload(d, NULL, bgu), *y1 = dev_upload(d, NULL, by),
       *y2 = dev_upload(d, NULL, by);
  void *ws = wsb ? dev_upload(d, NULL, wsb) : NULL;
  assert_int_equal(aoq_dev_memset(d, gu1, 0xab, bgu, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_linear_silu_mul(d, &w, x, gu1, y1, m, bf, ws, NULL), AOQ_OK);
  /* which path ran: the fused kernel never writes the gu scratch, the two ops fill it */
  uint8_t *g = dev_download(d, gu1, bgu);
  size_t untouched = 0;
  for (size_t i = 0; i < bgu; i++) untouched += g[i] == 0xab;
  free(g);
  if (want_fused)
    assert_int_equal(untouched, bgu);
  else
    assert_true(untouched < bgu / 2);
  assert_int_equal(aoq_dev_linear(d, &w, x, gu2, m, bf, ws, NULL), AOQ_OK);
  assert_int_equal(aoq_dev_silu_mul(d, gu2, y2, m, I, bf, NULL), AOQ_OK);
  uint16_t *a = dev_download(d, y1, by), *b = dev_download(d, y2, by);
  int64_t nz = 0;
  for (int64_t i = 0; i < m * I; i++) nz += (b[i] & 0x7fff) != 0;
  assert_true(nz > m * I / 2); /* a real output to compare */
  if (memcmp(a, b, by))
    fail_msg("%s m=%lld I=%lld k=%lld: %lld of %lld outputs differ from linear + silu_mul", fmt,
             (long long)m, (long long)I, (long long)k, (long long)count_diff(a, b, m * I),
             (long long)(m * I));
  free(a), free(b), free(hx);
  void *ps[] = {x, gu1, gu2, y1, y2, ws};
  for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) aoq_dev_free(d, ps[i]);
  free_weight(d, &w);
}

static void test_linear_silu_mul(void **state) {
  (void)state;
  static const char *const fmts[] = {"int4wo-128", "int4wo-32", "int4wo-64-hqq",
                                     "mxfp4",      "nvfp4",     "nvfp4wo"};
  for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
    linear_silu_case(g_gpu, fmts[i], 1, 14336, 256, true); /* 1792 blocks: 4 warps each */
    linear_silu_case(g_gpu, fmts[i], 3, 4096, 512, true);  /* 512 blocks: 8 warps */
    /* 125.5 blocks: 16 warps, a partial one */
    linear_silu_case(g_gpu, fmts[i], 8, 1004, 256, true);
  }
  linear_silu_case(g_gpu, "bf16", 3, 1004, 256, true);
  linear_silu_case(g_gpu, "int8wo", 8, 4096, 256, true);
  /* left to the two ops: the FMA GEMV (bf16 / int8wo at m = 1), the skinny GEMM (m > 8),
   * linear_dec.h's formats, the CPU backend */
  linear_silu_case(g_gpu, "bf16", 1, 1004, 256, false);
  linear_silu_case(g_gpu, "int8wo", 1, 1004, 256, false);
  linear_silu_case(g_gpu, "int4wo-128", 9, 1004, 256, false);
  linear_silu_case(g_gpu, "intx4wo-32", 1, 1004, 256, false);
  linear_silu_case(g_gpu, "fp8wo", 1, 1004, 256, false); /* measured slower fused: not taken */
  linear_silu_case(g_gpu, "mxfp8", 3, 1004, 256, false);
  linear_silu_case(g_gpu, "fp8dq-row", 1, 1004, 256, false);
  linear_silu_case(g_cpu, "int4wo-128", 2, 1004, 256, false);
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

/* qkv_attention (rope, cache store and attention in one kernel) against qkv_rope_store +
 * attention on a copy of the cache: out and both caches bit for bit. Rows of distinct sequences
 * at positions spanning one to several 128-key tiles (up to 511); max_pos the batch's own or the
 * whole table of 1024 positions (a graph's plan: more splits, the row's own tile in a later
 * split). seq_of: the sequence of
 * each row (a repeated one makes it a prefill-like batch, which the wrapper must run as the two
 * ops). */
static void qkv_attention_case(int nh, int nkv, int hd, const int *pos, const int *seq_of, int m,
                               int n_seqs, bool whole_table) {
  const int ps = 16, max_blocks = 64, n_pages = 1 + n_seqs * max_blocks;
  const int64_t N = (int64_t)(nh + 2 * nkv) * hd, kvw = (int64_t)nkv * hd;
  const int64_t total = (int64_t)n_pages * ps * kvw;
  int32_t *tab = calloc((size_t)n_seqs * max_blocks, 4), rs[8], rp[8], sl[8];
  for (int j = 0; j < n_seqs; j++) /* sequence j's pages, interleaved with the others' */
    for (int b = 0; b < max_blocks; b++) tab[j * max_blocks + b] = 1 + b * n_seqs + j;
  int max_pos = 0;
  for (int i = 0; i < m; i++) {
    rs[i] = seq_of[i], rp[i] = pos[i];
    sl[i] = tab[seq_of[i] * max_blocks + pos[i] / ps] * ps + pos[i] % ps;
    if (pos[i] > max_pos) max_pos = pos[i];
  }
  if (whole_table) max_pos = max_blocks * ps - 1;
  uint16_t *hk = bf16_random(total, 1), *hv = bf16_random(total, 1), *hqkv = bf16_random(m * N, 2);
  aoq_kv_cache kv[2];
  for (int i = 0; i < 2; i++)
    kv[i] = (aoq_kv_cache){dev_upload(g_gpu, hk, (size_t)total * 2),
                           dev_upload(g_gpu, hv, (size_t)total * 2),
                           n_pages,
                           ps,
                           nkv,
                           hd,
                           AOQ_DTYPE_BF16};
  void *dt = dev_upload(g_gpu, tab, (size_t)n_seqs * max_blocks * 4);
  void *drs = dev_upload(g_gpu, rs, (size_t)m * 4), *drp = dev_upload(g_gpu, rp, (size_t)m * 4);
  void *dsl = dev_upload(g_gpu, sl, (size_t)m * 4);
  aoq_attn_batch b = {drs, drp, dt, n_seqs, max_blocks, max_pos};
  aoq_rope r = {500000.f, 8.f, 1.f, 4.f, 8192};
  const float scale = 1.0f / sqrtf((float)hd);
  const size_t qb = (size_t)m * nh * hd * 2;
  uint16_t *qfill = malloc(qb);
  for (size_t i = 0; i < qb / 2; i++) qfill[i] = 0x7fc1; /* a NaN pattern: must stay unread */
  void *qkv = dev_upload(g_gpu, hqkv, (size_t)(m * N) * 2), *q0 = dev_upload(g_gpu, qfill, qb);
  void *q1 = dev_upload(g_gpu, NULL, qb), *o0 = dev_upload(g_gpu, NULL, qb);
  void *o1 = dev_upload(g_gpu, NULL, qb);
  size_t wsz = aoq_dev_attention_workspace(g_gpu, &kv[0], m, nh, max_pos);
  void *ws = wsz ? dev_upload(g_gpu, NULL, wsz) : NULL;
  const aoq_dtype bf = AOQ_DTYPE_BF16;
  assert_int_equal(
      aoq_dev_qkv_attention(g_gpu, &kv[0], &b, qkv, dsl, q0, o0, m, nh, &r, scale, bf, ws, NULL),
      AOQ_OK);
  assert_int_equal(aoq_dev_qkv_rope_store(g_gpu, &kv[1], qkv, q1, drp, dsl, m, nh, &r, bf, NULL),
                   AOQ_OK);
  assert_int_equal(aoq_dev_attention(g_gpu, &kv[1], &b, q1, o1, m, nh, scale, bf, ws, NULL),
                   AOQ_OK);
  assert_int_equal(aoq_dev_stream_sync(g_gpu, NULL), AOQ_OK);
  uint16_t *a0 = dev_download(g_gpu, o0, qb), *a1 = dev_download(g_gpu, o1, qb);
  assert_memory_equal(a0, a1, qb);
  assert_true(count_diff(a0, qfill, (int64_t)qb / 2) == (int64_t)qb / 2); /* written */
  for (int i = 0; i < 2; i++) {
    uint16_t *c0 = dev_download(g_gpu, i ? kv[0].v : kv[0].k, (size_t)total * 2);
    uint16_t *c1 = dev_download(g_gpu, i ? kv[1].v : kv[1].k, (size_t)total * 2);
    assert_memory_equal(c0, c1, (size_t)total * 2);
    assert_true(count_diff(c0, i ? hv : hk, total) > 0); /* the rows' keys / values stored */
    free(c0), free(c1);
  }
  /* one kernel for a decode batch: the q scratch left alone; the two ops otherwise */
  uint16_t *sq = dev_download(g_gpu, q0, qb), *sq1 = dev_download(g_gpu, q1, qb);
  assert_memory_equal(sq, m == n_seqs ? qfill : sq1, qb);
  free(sq1);
  printf("qkv_attention %d/%d heads x %d, %d rows, max_pos %d: %s, same bits\n", nh, nkv, hd, m,
         max_pos, m == n_seqs ? "one kernel" : "two ops");
  free(a0), free(a1), free(sq), free(qfill), free(hk), free(hv), free(hqkv), free(tab);
  void *bufs[] = {kv[0].k, kv[0].v, kv[1].k, kv[1].v, dt, drs, drp, dsl, qkv, q0, q1, o0, o1, ws};
  for (int i = 0; i < 14; i++) aoq_dev_free(g_gpu, bufs[i]);
}

static void test_qkv_attention(void **state) {
  (void)state;
  const int pos[5] = {0, 5, 127, 300, 511}, seqs[5] = {0, 1, 2, 3, 4};
  for (int whole = 0; whole < 2; whole++) {
    qkv_attention_case(32, 8, 128, pos, seqs, 5, 5, whole); /* Llama-3.1-8B heads: G = 4 */
    qkv_attention_case(16, 2, 64, pos, seqs, 5, 5, whole);  /* G = 8: two reduction passes */
    qkv_attention_case(6, 3, 36, pos, seqs, 5, 5, whole);   /* head_dim % 8 != 0: 2-byte loads */
    qkv_attention_case(12, 4, 64, pos, seqs, 5, 5, whole);  /* group 3: two head chunks per kv
                                                               head, both store the new key */
  }
  const int p1[1] = {300};
  qkv_attention_case(32, 8, 128, p1, seqs, 1, 1, false); /* batch 1 */
  /* two rows of one sequence (a prefill chunk): the wrapper runs the two ops */
  const int pp[3] = {40, 41, 200}, ps2[3] = {0, 0, 1};
  qkv_attention_case(32, 8, 128, pp, ps2, 3, 2, false);
  /* a slot outside the cache: the row's key and value are not stored, the sync reports it once
   * (the other rows' results stand) */
  {
    const int nh = 32, nkv = 8, hd = 128, ps = 16, n_pages = 9, m = 2;
    const int64_t N = (int64_t)(nh + 2 * nkv) * hd, total = (int64_t)n_pages * ps * nkv * hd;
    int32_t tab[2 * 4] = {1, 2, 3, 4, 5, 6, 7, 8}, rs[2] = {0, 1}, rp[2] = {3, 3};
    int32_t sl[2] = {1 * ps + 3, n_pages * ps}; /* row 1's slot is past the cache */
    uint16_t *hqkv = bf16_random(m * N, 2);
    aoq_kv_cache kvb = {dev_upload(g_gpu, NULL, (size_t)total * 2),
                        dev_upload(g_gpu, NULL, (size_t)total * 2), n_pages, ps, nkv, hd,
                        AOQ_DTYPE_BF16};
    void *dt = dev_upload(g_gpu, tab, sizeof tab), *drs = dev_upload(g_gpu, rs, sizeof rs);
    void *drp = dev_upload(g_gpu, rp, sizeof rp), *dsl = dev_upload(g_gpu, sl, sizeof sl);
    void *qkv = dev_upload(g_gpu, hqkv, (size_t)(m * N) * 2);
    void *q = dev_upload(g_gpu, NULL, (size_t)m * nh * hd * 2);
    void *o = dev_upload(g_gpu, NULL, (size_t)m * nh * hd * 2);
    aoq_attn_batch bb = {drs, drp, dt, 2, 4, 3};
    aoq_rope rr = {500000.f, 8.f, 1.f, 4.f, 8192};
    size_t wsz = aoq_dev_attention_workspace(g_gpu, &kvb, m, nh, 3);
    void *ws = wsz ? dev_upload(g_gpu, NULL, wsz) : NULL;
    assert_int_equal(aoq_dev_qkv_attention(g_gpu, &kvb, &bb, qkv, dsl, q, o, m, nh, &rr, 0.088f,
                                           AOQ_DTYPE_BF16, ws, NULL),
                     AOQ_OK);
    assert_int_equal(aoq_dev_stream_sync(g_gpu, NULL), AOQ_EINVAL);
    assert_int_equal(aoq_dev_stream_sync(g_gpu, NULL), AOQ_OK); /* reported once */
    uint16_t *kc = dev_download(g_gpu, kvb.k, (size_t)total * 2);
    int64_t kvw = (int64_t)nkv * hd, nz = 0;
    for (int64_t i = 0; i < total; i++) nz += kc[i] != 0;
    assert_true(nz > 0 && nz <= kvw); /* row 0's key only */
    free(kc), free(hqkv);
    void *bufs[] = {kvb.k, kvb.v, dt, drs, drp, dsl, qkv, q, o, ws};
    for (int i = 0; i < 10; i++) aoq_dev_free(g_gpu, bufs[i]);
  }
  /* the CPU backend offers neither: refused, nothing run */
  aoq_kv_cache kv = {NULL, NULL, 8, 16, 8, 128, AOQ_DTYPE_BF16};
  aoq_attn_batch b = {NULL, NULL, NULL, 1, 1, 0};
  aoq_rope r = {500000.f, 8.f, 1.f, 4.f, 8192};
  assert_int_equal(aoq_dev_qkv_attention(g_cpu, &kv, &b, NULL, NULL, NULL, NULL, 1, 32, &r, 1.f,
                                         AOQ_DTYPE_BF16, NULL, NULL),
                   AOQ_EUNSUPPORTED);
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
      cmocka_unit_test(test_linear_silu_mul),
      cmocka_unit_test(test_qkv_attention),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
