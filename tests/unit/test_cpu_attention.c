/*
 * test_cpu_attention.c — kv_store and attention of the CPU backend against a double-precision
 * reference: paged KV cache with pages out of order, GQA (8 query heads on 2 KV heads), several
 * sequences of different lengths in one batch (decode rows and a prefill chunk mixed), the
 * streaming softmax across blocks, multi-query groups larger than one kernel pass, every SIMD
 * level, bf16 and f32, and the checks that refuse bad batches.
 *
 * Tolerance: 2e-5 abs (+ 2^-8 * |ref| for bf16 output); with bf16 activations the reference
 * rounds exp(s - max) to bf16 before P.V, as torch's flash kernels do. kv_store: exact.
 */
#include "tests/unit/test_cpu_util.h"

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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_attention_paged_gqa_mixed_batch),
      cmocka_unit_test(test_attention_long_sequence_rescales),
      cmocka_unit_test(test_attention_large_group_is_split),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
