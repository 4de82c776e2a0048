/*
 * test_cuda_linear.c — the CUDA linear of every format it offers against the CPU backend: the
 * packed weight is dequantized on the host exactly as spec/formats.md says (torchao's
 * weight-only formats are dequantize-then-matmul), the CPU backend's bf16 linear runs on that,
 * and the GPU's fused kernel (reading the packed bytes) must agree within fp32 reassociation
 * (one bf16 ulp, plus the post-scale's ulp for int8wo). Shapes cover row tails (n not a multiple
 * of the rows per block), the GEMV widths m = 1..8, the skinny GEMM's n-tile edges (m = 9, 16, 17,
 * 32, 33, 64) with and without k split across blocks (even and uneven splits), and m > 64. Every
 * call is made twice: the results must be bit-identical (the split-k sums are deterministic).
 * int8dq is bit-identical to the CPU at every m: its own kernel below m = 128, cuBLAS's int8 GEMM
 * from there (AOQ_CUBLAS_INT8=strict here: a refused GEMM fails the test instead of falling back).
 */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "core/format.h"
#include "kernels/gpu/gpu_kernels.h"
#include "tests/gpu/cuda_test_util.h"

static float e4m3_ref(uint8_t b) {
  int e = (b >> 3) & 15, mnt = b & 7;
  float v = e ? ldexpf(1.0f + (float)mnt / 8.0f, e - 7) : ldexpf((float)mnt / 8.0f, -6);
  if ((b & 0x7f) == 0x7f) v = NAN;
  return (b & 0x80) ? -v : v;
}

typedef struct qcase {
  aoq_format_kind kind;
  int group;
  const char *name;
} qcase;

/* The formats of linear_dec.h: a random bf16 weight through the reference quantizer (c->name is
 * the format string), so the scales are real ones. */
static bool planned(aoq_format_kind k) {
  return k == AOQ_FMT_INT8DQ || k == AOQ_FMT_FP8DQ_BLOCK || k == AOQ_FMT_INTXWO ||
         k == AOQ_FMT_INT8_INTX || k == AOQ_FMT_INT8_INT4 || k == AOQ_FMT_FP8_INT4 ||
         k == AOQ_FMT_W158 || k == AOQ_FMT_FP6_E3M2 || k == AOQ_FMT_FP6_E2M3 ||
         k == AOQ_FMT_CODEBOOK;
}

static void make_planned(const qcase *c, int64_t n, int64_t k, aoq_qweight *w) {
  aoq_format f;
  assert_int_equal(aoq_format_parse(c->name, &f), AOQ_OK);
  assert_int_equal(f.kind, c->kind);
  assert_int_equal(aoq_format_plan(&f, n, k, w), AOQ_OK);
  assert_int_equal(aoq_qweight_host_alloc(w), AOQ_OK);
  uint16_t *src = bf16_random(n * k, 0.05f);
  src[3] = aoq_f32_to_bf16(0.4f); /* an outlier in row 0 */
  assert_int_equal(aoq_quantize_ref(src, w), AOQ_OK);
  free(src);
}

/* Random packed weight on the host and its reference bf16 dequantization wref[n,k]; for int4,
 * wex[n,k] (if not NULL) gets the unrounded (q - 8) * s + z, what the folded GEMV sums. */
static void make_weight(const qcase *c, int64_t n, int64_t k, aoq_qweight *w, uint16_t *wref,
                        double *wex) {
  memset(w, 0, sizeof *w);
  if (planned(c->kind)) {
    make_planned(c, n, k, w);
    return;
  }
  w->kind = c->kind, w->n = n, w->k = k, w->group = c->group ? c->group : (int)k;
  switch (c->kind) {
    case AOQ_FMT_BF16:
      w->bits = 16, w->qdata_bytes = (size_t)(n * k * 2);
      w->qdata = bf16_random(n * k, 1);
      memcpy(wref, w->qdata, w->qdata_bytes);
      break;
    case AOQ_FMT_INT8WO:
    case AOQ_FMT_FP8WO: {
      w->bits = 8, w->qdata_bytes = (size_t)(n * k), w->scale_bytes = (size_t)n * 4;
      uint8_t *q = malloc(w->qdata_bytes);
      float *s = malloc(w->scale_bytes);
      for (int64_t r = 0; r < n; r++) s[r] = 0.002f + 0.01f * fabsf(urnd());
      for (int64_t i = 0; i < n * k; i++) {
        q[i] = (uint8_t)rnd_u64();
        if (c->kind == AOQ_FMT_FP8WO && (q[i] & 0x7f) == 0x7f) q[i] ^= 1;
        wref[i] = c->kind == AOQ_FMT_INT8WO ? aoq_f32_to_bf16((float)(int8_t)q[i])
                                            : aoq_f32_to_bf16(e4m3_ref(q[i]) * s[i / k]);
      }
      w->qdata = q, w->scale = s;
      break;
    }
    case AOQ_FMT_FP8DQ:
    case AOQ_FMT_FP8DQ_ROW:
    case AOQ_FMT_MXFP8: {
      int mx = c->kind == AOQ_FMT_MXFP8;
      w->bits = 8, w->qdata_bytes = (size_t)(n * k);
      w->scale_bytes = mx ? (size_t)(n * k / 32) : c->kind == AOQ_FMT_FP8DQ ? 4 : (size_t)n * 4;
      if (mx) w->group = 32;
      uint8_t *q = malloc(w->qdata_bytes), *sc = malloc(w->scale_bytes);
      for (int64_t i = 0; i < n * k; i++) {
        q[i] = (uint8_t)rnd_u64();
        if ((q[i] & 0x7f) == 0x7f) q[i] ^= 1;
      }
      if (mx)
        for (size_t i = 0; i < w->scale_bytes; i++) sc[i] = (uint8_t)(118 + rnd_u64() % 8);
      else
        for (size_t i = 0; i < w->scale_bytes / 4; i++)
          ((float *)sc)[i] = 0.002f + 0.01f * fabsf(urnd());
      w->qdata = q, w->scale = sc;
      break;
    }
    case AOQ_FMT_MXFP4:
    case AOQ_FMT_NVFP4:
    case AOQ_FMT_NVFP4WO: {
      int bs = c->kind == AOQ_FMT_MXFP4 ? 32 : 16;
      w->bits = 4, w->group = bs, w->qdata_bytes = (size_t)(n * k / 2);
      w->scale_bytes = (size_t)(n * k / bs);
      uint8_t *q = malloc(w->qdata_bytes), *sc = malloc(w->scale_bytes);
      for (size_t i = 0; i < w->qdata_bytes; i++) q[i] = (uint8_t)rnd_u64();
      for (size_t i = 0; i < w->scale_bytes; i++)
        sc[i] = bs == 32 ? (uint8_t)(120 + rnd_u64() % 6) : (uint8_t)(0x28 + rnd_u64() % 0x30);
      if (bs == 16) {
        float *pts = malloc(4);
        *pts = 0.0123f;
        w->aux = pts, w->aux_bytes = 4;
      }
      w->qdata = q, w->scale = sc;
      break;
    }
    default: { /* INT4WO / HQQ: tinygemm dequant (q - 8) * s + z, bf16 steps */
      int64_t ng = k / w->group;
      w->bits = 4, w->qdata_bytes = (size_t)(n * k / 2), w->scale_bytes = (size_t)(n * ng * 4);
      uint8_t *q = malloc(w->qdata_bytes);
      uint16_t *sz = malloc(w->scale_bytes);
      for (int64_t i = 0; i < n * ng; i++) {
        sz[2 * i] = aoq_f32_to_bf16(0.001f + 0.02f * fabsf(urnd()));
        sz[2 * i + 1] = aoq_f32_to_bf16(0.05f * urnd());
      }
      for (int64_t i = 0; i < n * k / 2; i++) q[i] = (uint8_t)rnd_u64();
      for (int64_t r = 0; r < n; r++)
        for (int64_t j = 0; j < k; j++) {
          uint8_t byte = q[(r * k + j) / 2];
          int u = (j & 1) ? byte >> 4 : byte & 15;
          int64_t g = r * ng + j / w->group;
          float s = aoq_bf16_to_f32(sz[2 * g]), z = aoq_bf16_to_f32(sz[2 * g + 1]);
          wref[r * k + j] = aoq_f32_to_bf16(aoq_round_bf16((float)(u - 8) * s) + z);
          if (wex) wex[r * k + j] = (double)(u - 8) * s + z;
        }
      w->qdata = q, w->scale = sz;
      break;
    }
  }
}

/* the H100 / H200 (sm_90): where the bulk-copy GEMV runs */
static bool is_sm90(void) {
  aoq_device_info info;
  assert_int_equal(aoq_device_info_get(g_gpu, &info), AOQ_OK);
  return strstr(info.name, "H100") || strstr(info.name, "H200");
}

static int n_folded; /* calls checked against the exact sum (aoq_gk_linear_folded) */
static int n_tma;    /* calls that ran the bulk-copy GEMV (aoq_gk_linear_tma) */

static void run_case(const qcase *c, int64_t n, int64_t k, const int *ms, int nm) {
  aoq_qweight hw, dw;
  uint16_t *wref = calloc((size_t)(n * k), 2);
  /* int4: the folded kernel (DecI4F, linear.cu) applies scale and zero to each group's fp32
   * sum, so where aoq_gk_linear_folded says it runs, the reference is the exact sum of the
   * unrounded weights */
  const bool i4 = c->kind == AOQ_FMT_INT4WO || c->kind == AOQ_FMT_INT4WO_HQQ;
  double *wex = i4 ? malloc(sizeof(double) * (size_t)(n * k)) : NULL;
  make_weight(c, n, k, &hw, wref, wex);
  dw = hw;
  dw.qdata = dev_upload(g_gpu, hw.qdata, hw.qdata_bytes);
  dw.scale = hw.scale ? dev_upload(g_gpu, hw.scale, hw.scale_bytes) : NULL;
  dw.aux = hw.aux ? dev_upload(g_gpu, hw.aux, hw.aux_bytes) : NULL;
  /* the CPU backend's linear on the same packed bytes: the reference of every format */
  aoq_qweight pw = hw;
  pw.qdata = dev_upload(g_cpu, hw.qdata, hw.qdata_bytes);
  pw.scale = hw.scale ? dev_upload(g_cpu, hw.scale, hw.scale_bytes) : NULL;
  pw.aux = hw.aux ? dev_upload(g_cpu, hw.aux, hw.aux_bytes) : NULL;
  bool has_ref = c->kind == AOQ_FMT_BF16 || c->kind == AOQ_FMT_INT8WO || c->kind == AOQ_FMT_FP8WO ||
                 c->kind == AOQ_FMT_INT4WO || c->kind == AOQ_FMT_INT4WO_HQQ;
  aoq_qweight cw = {AOQ_FMT_BF16,
                    16,
                    (int)k,
                    n,
                    k,
                    dev_upload(g_cpu, wref, (size_t)(n * k * 2)),
                    NULL,
                    NULL,
                    NULL,
                    (size_t)(n * k * 2),
                    0,
                    0,
                    0};
  for (int mi = 0; mi < nm; mi++) {
    int64_t m = ms[mi];
    uint16_t *hx = bf16_random(m * k, 1);
    void *gx = dev_upload(g_gpu, hx, (size_t)(m * k * 2)),
         *gy = dev_upload(g_gpu, NULL, (size_t)(m * n * 2));
    void *cx = dev_upload(g_cpu, hx, (size_t)(m * k * 2)),
         *cy = dev_upload(g_cpu, NULL, (size_t)(m * n * 2));
    size_t wsz = aoq_dev_linear_workspace(g_gpu, &dw, m);
    void *ws = wsz ? dev_upload(g_gpu, NULL, wsz) : NULL;
    assert_int_equal(aoq_dev_linear(g_gpu, &dw, gx, gy, m, AOQ_DTYPE_BF16, ws, NULL), AOQ_OK);
    n_tma += aoq_gk_linear_tma(&dw, m);
    assert_int_equal(aoq_dev_linear(g_cpu, &cw, cx, cy, m, AOQ_DTYPE_BF16, NULL, NULL), AOQ_OK);
    uint16_t *yg = dev_download(g_gpu, gy, (size_t)(m * n * 2));
    {
      void *gy2 = dev_upload(g_gpu, NULL, (size_t)(m * n * 2));
      assert_int_equal(aoq_dev_linear(g_gpu, &dw, gx, gy2, m, AOQ_DTYPE_BF16, ws, NULL), AOQ_OK);
      uint16_t *yg2 = dev_download(g_gpu, gy2, (size_t)(m * n * 2));
      if (memcmp(yg, yg2, (size_t)(m * n * 2)))
        fail_msg("%s [%lld x %lld] m=%lld: two calls differ", c->name, (long long)n, (long long)k,
                 (long long)m);
      free(yg2);
      aoq_dev_free(g_gpu, gy2);
    }
    {
      size_t pwsz = aoq_dev_linear_workspace(g_cpu, &pw, m);
      void *pws = pwsz ? dev_upload(g_cpu, NULL, pwsz) : NULL,
           *py = dev_upload(g_cpu, NULL, (size_t)(m * n * 2));
      assert_int_equal(aoq_dev_linear(g_cpu, &pw, cx, py, m, AOQ_DTYPE_BF16, pws, NULL), AOQ_OK);
      uint16_t *yp = dev_download(g_cpu, py, (size_t)(m * n * 2));
      double am = 0;
      for (int64_t i = 0; i < m * n; i++) am = fmax(am, fabs(aoq_bf16_to_f32(yp[i])));
      char w2[96];
      snprintf(w2, sizeof w2, "%s [%lld x %lld] m=%lld vs cpu packed", c->name, (long long)n,
               (long long)k, (long long)m);
      double rt = c->kind == AOQ_FMT_INT8WO || c->kind == AOQ_FMT_NVFP4 ? 2.0 / 128 : 1.0 / 128;
      /* the folded int4 kernel differs from the CPU's dequantize-then-matmul by the per-weight
       * bf16 roundings (a random walk of ~2^-9 |w x| steps, ~6e-4 of the largest |y| here): a
       * wider atol, no count; it is held to the exact sum below */
      const bool folded = i4 && aoq_gk_linear_folded(&dw, m);
      check_close(w2, yg, yp, m * n, am * (folded ? 4e-3 : 1e-3), rt);
      if (!folded) assert_true(count_diff(yg, yp, m * n) <= m * n / 4);
      /* int8dq: exact int32 sums and the same epilogue on both sides */
      if (c->kind == AOQ_FMT_INT8DQ && count_diff(yg, yp, m * n))
        fail_msg("%s: %lld outputs differ from the CPU's (expected bit-identical)", w2,
                 (long long)count_diff(yg, yp, m * n));
      free(yp);
      aoq_dev_free(g_cpu, pws), aoq_dev_free(g_cpu, py);
    }
    if (!has_ref) {
      free(hx), free(yg);
      aoq_dev_free(g_gpu, gx), aoq_dev_free(g_gpu, gy), aoq_dev_free(g_gpu, ws);
      aoq_dev_free(g_cpu, cx), aoq_dev_free(g_cpu, cy);
      continue;
    }
    uint16_t *yc = dev_download(g_cpu, cy, (size_t)(m * n * 2));
    double rtol = 1.0 / 128;
    if (i4 && aoq_gk_linear_folded(&dw, m)) { /* the exact sum of the unrounded weights */
      n_folded++;
      for (int64_t i = 0; i < m; i++)
        for (int64_t r = 0; r < n; r++) {
          double acc = 0;
          for (int64_t j = 0; j < k; j++) acc += wex[r * k + j] * aoq_bf16_to_f32(hx[i * k + j]);
          yc[i * n + r] = aoq_f32_to_bf16((float)acc);
        }
    }
    if (c->kind == AOQ_FMT_INT8WO) { /* torchao post-scale: rnd(rnd(x.q) * rnd(s)) */
      const float *s = hw.scale;
      for (int64_t i = 0; i < m * n; i++)
        yc[i] = aoq_f32_to_bf16(aoq_bf16_to_f32(yc[i]) * aoq_round_bf16(s[i % n]));
      rtol = 2.0 / 128;
    }
    double amax = 0;
    for (int64_t i = 0; i < m * n; i++) amax = fmax(amax, fabs(aoq_bf16_to_f32(yc[i])));
    char what[96];
    snprintf(what, sizeof what, "%s [%lld x %lld] m=%lld", c->name, (long long)n, (long long)k,
             (long long)m);
    check_close(what, yg, yc, m * n, amax * 1e-3, rtol);
    int64_t diff = count_diff(yg, yc, m * n);
    assert_true(diff <= m * n / 4);
    free(hx), free(yg), free(yc);
    aoq_dev_free(g_gpu, gx), aoq_dev_free(g_gpu, gy), aoq_dev_free(g_gpu, ws);
    aoq_dev_free(g_cpu, cx), aoq_dev_free(g_cpu, cy);
  }
  aoq_dev_free(g_gpu, dw.qdata), aoq_dev_free(g_gpu, dw.scale), aoq_dev_free(g_cpu, cw.qdata);
  aoq_dev_free(g_gpu, dw.aux), aoq_dev_free(g_cpu, pw.qdata), aoq_dev_free(g_cpu, pw.scale);
  free(wex);
  aoq_dev_free(g_cpu, pw.aux);
  free(hw.qdata), free(hw.scale), free(hw.aux), free(wref);
}

static const qcase cases[] = {
    {AOQ_FMT_BF16, 0, "bf16"},           {AOQ_FMT_INT8WO, 0, "int8wo"},
    {AOQ_FMT_FP8WO, 0, "fp8wo"},         {AOQ_FMT_INT4WO, 32, "int4wo-32"},
    {AOQ_FMT_INT4WO, 64, "int4wo-64"},   {AOQ_FMT_INT4WO, 128, "int4wo-128"},
    {AOQ_FMT_INT4WO, 256, "int4wo-256"}, {AOQ_FMT_INT4WO_HQQ, 64, "int4wo-hqq-64"},
    {AOQ_FMT_FP8DQ, 0, "fp8dq"},         {AOQ_FMT_FP8DQ_ROW, 0, "fp8dq-row"},
    {AOQ_FMT_MXFP8, 32, "mxfp8"},        {AOQ_FMT_MXFP4, 32, "mxfp4"},
    {AOQ_FMT_NVFP4, 16, "nvfp4"},        {AOQ_FMT_NVFP4WO, 16, "nvfp4wo"},
};

/* linear_dec.h: every bit width of intx (odd ones straddle words), groups 16..k (16 and 48: the
 * two halves of a 32-element lane group take different scales) */
static const qcase dec_cases[] = {
    {AOQ_FMT_INT8DQ, 0, "int8dq"},
    {AOQ_FMT_FP8DQ_BLOCK, 128, "fp8dq-block"},
    {AOQ_FMT_FP8_INT4, 128, "fp8-int4"},
    {AOQ_FMT_INT8_INT4, 32, "int8-int4"},
    {AOQ_FMT_INT8_INTX, 32, "int8-intx4"},
    {AOQ_FMT_INT8_INTX, 64, "int8-intx7-64"},
    {AOQ_FMT_INTXWO, 32, "intx1wo-32"},
    {AOQ_FMT_INTXWO, 64, "intx2wo-64"},
    {AOQ_FMT_INTXWO, 32, "intx3wo-32"},
    {AOQ_FMT_INTXWO, 32, "intx4wo-32"},
    {AOQ_FMT_INTXWO, 128, "intx4wo-128"},
    {AOQ_FMT_INTXWO, 256, "intx5wo-256"},
    {AOQ_FMT_INTXWO, 64, "intx6wo-64"},
    {AOQ_FMT_INTXWO, 0, "intx7wo"},
    {AOQ_FMT_INTXWO, 32, "intx8wo-32"},
    {AOQ_FMT_INTXWO, 0, "intx8wo"},
    {AOQ_FMT_W158, 0, "w158"},
    {AOQ_FMT_FP6_E3M2, 0, "fp6-e3m2"},
    {AOQ_FMT_FP6_E2M3, 0, "fp6-e2m3"},
    {AOQ_FMT_CODEBOOK, 32, "codebook4-32"},
    {AOQ_FMT_CODEBOOK, 64, "codebook3-64"},
    {AOQ_FMT_CODEBOOK, 128, "codebook7-128"},
    {AOQ_FMT_INTXWO, 16, "intx4wo-16"},
    {AOQ_FMT_INTXWO, 16, "intx3wo-16"},
    {AOQ_FMT_INTXWO, 16, "intx8wo-16"},
    {AOQ_FMT_INTXWO, 48, "intx2wo-48"},
    {AOQ_FMT_INT8_INTX, 16, "int8-intx5-16"},
    {AOQ_FMT_CODEBOOK, 16, "codebook4-16"},
    {AOQ_FMT_CODEBOOK, 48, "codebook2-48"},
};

static void test_linear_dec_formats(void **state) {
  (void)state;
  /* m >= 128: cuBLAS for the weight-only formats and int8dq (its int8 GEMM), where it is loaded */
  const int ms[] = {1, 2, 3, 5, 8, 9, 16, 17, 33, 64, 70, 130, 256};
  const int big_k[] = {1, 4, 16};
  aoq_device_info info;
  assert_int_equal(aoq_device_info_get(g_gpu, &info), AOQ_OK);
  print_message("  engine: %s\n", info.linear_engine[0] ? info.linear_engine : "own kernels");
  const char *cb = getenv("AOQ_CUBLAS"), *i8 = getenv("AOQ_CUBLAS_INT8");
  const bool cb_off = cb && (!strcmp(cb, "off") || !strcmp(cb, "0") || !strcmp(cb, "none"));
  if (!cb_off && i8 && !strcmp(i8, "strict") && !strstr(info.linear_engine, "int8 gemm strict"))
    fail_msg(
        "cuBLAS with the strict int8 GEMM expected: int8dq at m = 130 / 256 would not test "
        "it (AOQ_CUBLAS=off or AOQ_CUBLAS_INT8=off run this test on the own kernels)");
  for (size_t i = 0; i < sizeof dec_cases / sizeof dec_cases[0]; i++) {
    const qcase *c = &dec_cases[i];
    const int g = c->group ? c->group : 1;
    /* n not a multiple of 16 (fp8dq-block: of 128); m = 256 only for int8dq (exact, cheap);
     * groups of 48: k = 1536 */
    run_case(c, c->kind == AOQ_FMT_FP8DQ_BLOCK ? 384 : 301, 1024 % g ? 1536 : 1024, ms,
             c->kind == AOQ_FMT_INT8DQ ? 13 : 12);
    /* long rows, few blocks: 16 warps split k */
    run_case(c, 128, 4096 % g ? 4608 : 4096, big_k, 3);
    /* k = 1152: 36 lane groups, the last warp step partial */
    if (1152 % g == 0) run_case(c, 256, 1152, big_k, 3);
    /* many blocks of rows, short rows (4 warps per block); not for the k-means of codebook */
    if (c->kind != AOQ_FMT_CODEBOOK)
      run_case(c, 17024, c->group > 128 ? 256 : g == 48 ? 96 : 128, big_k, 2);
  }
}

static void test_linear_all_formats(void **state) {
  (void)state;
  const int ms[] = {1, 2, 3, 4, 5, 8, 9, 11, 16, 17, 32, 33, 37, 64, 70};
  const int wide[] = {9, 17, 33, 64}, big_k[] = {1, 2, 9, 17, 33, 64}, small[] = {1, 3, 8};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    /* n odd, 2 blocks of 256 rows: k split 2 (4-bit) to 8 (bf16) ways */
    run_case(&cases[i], 301, 1024, ms, 15);
    /* one block of rows, k split 8 ways (a full cluster) */
    run_case(&cases[i], 64, 4096, big_k, 6);
    /* 9 stages of 128 k (4-bit) split 2 ways unevenly */
    if (1152 % (cases[i].group ? cases[i].group : 1) == 0) run_case(&cases[i], 100, 1152, wide, 4);
    /* 67 blocks of rows: no k split, one stage for the 4-bit formats */
    if (128 % (cases[i].group ? cases[i].group : 1) == 0) run_case(&cases[i], 17000, 128, wide, 4);
    /* for the bulk-copy GEMV (sm_90, m <= 8; by default int4-128 at m = 1, bf16 at m = 3 and 8,
     * int8wo / fp8wo at m = 8; every format in test_linear_tma_every_format): 282 tiles of 16
     * rows, more than its blocks (two tiles per block, the last one partial), and rows of 1 KB
     * stages with a partial last stage (4-bit: 16 + 4 halves; int4-256 falls back: its last
     * stage's parameters are 8 bytes) */
    run_case(&cases[i], 4500, 2560, small, 3);
  }
  /* int4wo-128 / -256 at m <= 16 take the folded GEMV / skinny GEMM (unless AOQ_I4_FOLD=0) */
  const char *fe = getenv("AOQ_I4_FOLD");
  if (!(fe && fe[0] == '0')) assert_true(n_folded >= 4);
  printf("int4 calls checked against the exact sum of the unrounded weights: %d\n", n_folded);
  /* sm_90 (H100 / H200) runs the bulk-copy GEMV for folded int4 at m = 1, k <= 8192 unless
   * AOQ_GEMV_TMA=0 */
  const char *te = getenv("AOQ_GEMV_TMA");
  if (!(te && te[0] == '0') && is_sm90()) assert_true(n_tma >= 4);
  printf("calls that ran the bulk-copy GEMV: %d\n", n_tma);
}

/* The bulk-copy GEMV on every format it takes (aoq_gk_set_gemv_tma 2: x staged in shared memory
 * where it fits, 3: x from global memory), not only where it is the default */
static void test_linear_tma_every_format(void **state) {
  (void)state;
  if (!is_sm90()) {
    print_message("  not sm_90: the bulk-copy GEMV does not run here\n");
    return;
  }
  const int ms[] = {1, 2, 5, 8};
  for (int mode = 2; mode <= 3; mode++) {
    const int old = aoq_gk_set_gemv_tma(mode), before = n_tma;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
      run_case(&cases[i], 301, 1024, ms, 4);
      run_case(&cases[i], 4500, 2560, ms, 4);
    }
    aoq_gk_set_gemv_tma(old);
    print_message("  mode %d: %d calls ran the bulk-copy GEMV\n", mode, n_tma - before);
    assert_true(n_tma - before >= 80);
  }
}

static void test_linear_rejects(void **state) {
  (void)state;
  aoq_qweight w = {AOQ_FMT_INT4WO, 4, 16, 8, 64, NULL, NULL, NULL, NULL, 0, 0, 0, 0};
  w.qdata = dev_upload(g_gpu, NULL, 1024);
  w.scale = dev_upload(g_gpu, NULL, 1024);
  void *x = dev_upload(g_gpu, NULL, 4096), *y = dev_upload(g_gpu, NULL, 4096);
  /* group 16 is below the kernel's 32-element chunk */
  assert_int_equal(aoq_dev_linear(g_gpu, &w, x, y, 1, AOQ_DTYPE_BF16, NULL, NULL),
                   AOQ_EUNSUPPORTED);
  /* intx groups must be multiples of 16 (group 16 runs: two scales per 32-element lane group) */
  w.kind = AOQ_FMT_INTXWO, w.bits = 3, w.group = 8;
  assert_int_equal(aoq_dev_linear(g_gpu, &w, x, y, 1, AOQ_DTYPE_BF16, NULL, NULL),
                   AOQ_EUNSUPPORTED);
  w.group = 16;
  assert_int_equal(aoq_dev_linear(g_gpu, &w, x, y, 1, AOQ_DTYPE_BF16, NULL, NULL), AOQ_OK);
  /* fp8-int4 needs k % 128 == 0 */
  w.kind = AOQ_FMT_FP8_INT4, w.bits = 4, w.group = 128;
  assert_int_equal(aoq_dev_linear(g_gpu, &w, x, y, 1, AOQ_DTYPE_BF16, NULL, NULL),
                   AOQ_EUNSUPPORTED);
  w.kind = AOQ_FMT_CODEBOOK;
  assert_int_not_equal(aoq_dev_linear(g_gpu, &w, x, y, 1, AOQ_DTYPE_BF16, NULL, NULL), AOQ_OK);
  w.kind = AOQ_FMT_BF16;
  assert_int_not_equal(aoq_dev_linear(g_gpu, &w, x, y, 1, AOQ_DTYPE_F32, NULL, NULL), AOQ_OK);
  aoq_dev_free(g_gpu, w.qdata), aoq_dev_free(g_gpu, w.scale);
  aoq_dev_free(g_gpu, x), aoq_dev_free(g_gpu, y);
}

/* Device quantization writes the bytes of the reference quantizer (core/quant_fp.c). */
static void test_quantize_bit_exact(void **state) {
  (void)state;
  static const char *const names[] = {"fp8wo", "fp8dq", "fp8dq-row", "mxfp8",
                                      "mxfp4", "nvfp4", "nvfp4wo"};
  aoq_device_info info;
  assert_int_equal(aoq_device_info_get(g_gpu, &info), AOQ_OK);
  assert_true(info.caps & AOQ_CAP_QUANTIZE);
  const int64_t n = 300, k = 1024;
  uint16_t *hw = bf16_random(n * k, 0.05f);
  hw[5] = aoq_f32_to_bf16(3.0f); /* an outlier for the per-tensor scales */
  void *src = dev_upload(g_gpu, hw, (size_t)(n * k * 2));
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    aoq_format f;
    assert_int_equal(aoq_format_parse(names[i], &f), AOQ_OK);
    assert_true(info.quantize_formats >> f.kind & 1);
    aoq_qweight ref, dw;
    assert_int_equal(aoq_format_plan(&f, n, k, &ref), AOQ_OK);
    assert_int_equal(aoq_qweight_host_alloc(&ref), AOQ_OK);
    assert_int_equal(aoq_quantize_ref(hw, &ref), AOQ_OK);
    dw = ref;
    dw.qdata = dev_upload(g_gpu, NULL, ref.qdata_bytes);
    dw.scale = dev_upload(g_gpu, NULL, ref.scale_bytes);
    dw.aux = ref.aux_bytes ? dev_upload(g_gpu, NULL, ref.aux_bytes) : NULL;
    assert_int_equal(aoq_dev_quantize(g_gpu, src, &dw, NULL), AOQ_OK);
    void *q = dev_download(g_gpu, dw.qdata, ref.qdata_bytes);
    void *sc = dev_download(g_gpu, dw.scale, ref.scale_bytes);
    if (memcmp(q, ref.qdata, ref.qdata_bytes)) fail_msg("%s: qdata differs", names[i]);
    if (memcmp(sc, ref.scale, ref.scale_bytes)) fail_msg("%s: scales differ", names[i]);
    if (ref.aux_bytes) {
      void *a = dev_download(g_gpu, dw.aux, ref.aux_bytes);
      if (memcmp(a, ref.aux, ref.aux_bytes)) fail_msg("%s: aux differs", names[i]);
      free(a);
    }
    free(q), free(sc);
    aoq_dev_free(g_gpu, dw.qdata), aoq_dev_free(g_gpu, dw.scale), aoq_dev_free(g_gpu, dw.aux);
    aoq_qweight_host_free(&ref);
  }
  /* HQQ's optimizer loop stays on the host (the integer formats quantize on the device now) */
  aoq_qweight w = {AOQ_FMT_INT4WO_HQQ, 4, 128, n, k, NULL, NULL, NULL, NULL, 0, 0, 0, 0};
  assert_int_equal(aoq_dev_quantize(g_gpu, src, &w, NULL), AOQ_EUNSUPPORTED);
  aoq_dev_free(g_gpu, src);
  free(hw);
}

int main(void) {
  setenv("AOQ_CUBLAS_INT8", "strict", 0); /* unless the caller says otherwise */
  open_devices_or_skip();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_linear_all_formats),
      cmocka_unit_test(test_linear_tma_every_format),
      cmocka_unit_test(test_linear_dec_formats),
      cmocka_unit_test(test_linear_rejects),
      cmocka_unit_test(test_quantize_bit_exact),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  close_devices();
  return rc;
}
