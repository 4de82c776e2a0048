/*
 * test_quant_int.c — the integer reference quantizers (core/quant_int*.c) on hand-computed
 * vectors: RNE ties, the torchao divisors (127.5, 7.5, 1.5), all-zero groups, NaN/Inf, tiny and
 * huge magnitudes, the bit-stream packing of docs/layouts.md, and the formats without golden files
 * (int8-int4, fp8-int4, w158, codebook). Golden-file checks are in test_golden.c.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/numerics.h"
#include "core/format.h"
#include "core/quant_int_internal.h"

typedef struct {
  aoq_qweight w;
  uint16_t *deq;
} qres;

/* Quantizes vals (rounded to bf16) [n, k] with config `fmt`, dequantizes too. */
static qres quant(const char *fmt, int64_t n, int64_t k, const float *vals) {
  aoq_format f;
  qres r;
  assert_int_equal(aoq_format_parse(fmt, &f), AOQ_OK);
  assert_int_equal(aoq_format_plan(&f, n, k, &r.w), AOQ_OK);
  assert_int_equal(aoq_qweight_host_alloc(&r.w), AOQ_OK);
  uint16_t *src = malloc((size_t)(n * k) * 2);
  for (int64_t i = 0; i < n * k; i++) src[i] = aoq_f32_to_bf16(vals[i]);
  aoq_status s = aoq_quantize_ref(src, &r.w);
  if (s != AOQ_OK) fail_msg("%s: %s", fmt, aoq_last_error());
  r.deq = malloc((size_t)(n * k) * 2);
  assert_int_equal(aoq_dequantize_ref(&r.w, r.deq), AOQ_OK);
  free(src);
  return r;
}

static void qfree(qres *r) {
  aoq_qweight_host_free(&r->w);
  free(r->deq);
}

static float deq(const qres *r, int64_t i) {
  return aoq_bf16_to_f32(r->deq[i]);
}

/* Signed value of element i of row `row` read straight from the packed bit stream. */
static int qat(const qres *r, int64_t row, int64_t i) {
  const uint8_t *p = (const uint8_t *)r->w.qdata + row * aoq_bitrow_bytes(r->w.k, r->w.bits);
  return aoq_sext(aoq_bits_get(p, i, r->w.bits), r->w.bits);
}

/* torchao's unpacked int8 view of the values (intx family, w158, int8). */
static int8_t *qvals(const qres *r) {
  void *b;
  size_t n;
  assert_int_equal(aoq_format_torchao_tensor(&r->w, "qdata", &b, &n), AOQ_OK);
  return b;
}

/* ------------------------------------------------------------------------------------------ */

static void int8_scale_is_bf16_amax_over_127_5_and_ties_round_to_even(void **state) {
  (void)state;
  enum { K = 16 };
  float v[3 * K] = {0};
  /* row 0: amax 127.5 -> scale exactly 1, so q = RNE(x) */
  const float r0[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 127.5f, -127.5f, 3.0f, -2.5f, 126.5f};
  memcpy(v, r0, sizeof r0);
  /* row 1: amax 3.0 (row 2 of the golden weight: 127.5 vs 127 is visible in the scale) */
  v[K + 0] = 3.0f, v[K + 1] = -1.0f, v[K + 2] = 0.75f;
  /* row 2: all zero */
  qres r = quant("int8wo", 3, K, v);
  const float *sc = r.w.scale;
  assert_true(sc[0] == 1.0f);
  assert_true(sc[1] == aoq_round_bf16(3.0f / 127.5f));
  assert_true(sc[1] != aoq_round_bf16(3.0f / 127.0f));
  assert_true(sc[2] == 0x1p-23f); /* fp32 eps clamp */
  const int8_t *q = r.w.qdata;
  const int want0[] = {0, 2, 2, 0, -2, 127, -128, 3, -2, 126};
  for (int i = 0; i < 10; i++) assert_int_equal(q[i], want0[i]);
  float inv = 1.0f / sc[1];
  assert_int_equal(q[K + 0], 127); /* 3.0 * fp32(1 / bf16(3/127.5)) = 127.34 */
  assert_int_equal(q[K + 1], (int)rintf(-1.0f * inv));
  for (int i = 0; i < K; i++) {
    assert_int_equal(q[2 * K + i], 0);
    assert_true(deq(&r, 2 * K + i) == 0.0f);
  }
  /* dequant = bf16(q * scale) */
  for (int i = 0; i < 3 * K; i++)
    assert_int_equal(r.deq[i], aoq_f32_to_bf16((float)q[i] * sc[i / K]));
  /* torchao view: scale [n,1] f32 and an all-zero zero point */
  void *b;
  size_t n;
  assert_int_equal(aoq_format_torchao_tensor(&r.w, "zero_point", &b, &n), AOQ_OK);
  assert_int_equal(n, 3);
  assert_memory_equal(b, "\0\0\0", 3);
  free(b);
  assert_int_equal(aoq_format_torchao_tensor(&r.w, "scale_and_zero", &b, &n), AOQ_ENOTFOUND);
  qfree(&r);
}

static void int8_nonfinite_tiny_and_huge_inputs_are_defined(void **state) {
  (void)state;
  enum { K = 8 };
  float v[3 * K] = {NAN,    INFINITY, -INFINITY, 1.0f, -NAN,  0.0f, 0.0f, 0.0f,
                    1e-30f, -1e-30f,  1e-30f,    0,    0,     0,    0,    0,
                    3e37f,  -3e37f,   1e37f,     1.0f, 3e38f, 0,    0,    0};
  qres r = quant("int8dq", 3, K, v);
  const int8_t *q = r.w.qdata;
  /* NaN -> 0; +-Inf (and anything beyond) clamp to +-2^126 */
  assert_int_equal(q[0], 0);
  assert_int_equal(q[1], 127);
  assert_int_equal(q[2], -127); /* clamped to -2^126: 2^126 / bf16(2^126 / 127.5) = 127.0 */
  assert_int_equal(q[3], 0);
  assert_int_equal(q[4], 0);
  /* 1e-30: scale clamps to fp32 eps, values quantize to 0 */
  assert_true(((const float *)r.w.scale)[1] == 0x1p-23f);
  for (int i = 0; i < K; i++) assert_int_equal(q[K + i], 0);
  /* 3e37 keeps torchao's arithmetic; 3e38 is clamped to 2^126 (which is then the amax) */
  float s2 = aoq_round_bf16(0x1p126f / 127.5f);
  assert_true(((const float *)r.w.scale)[2] == s2);
  assert_int_equal(q[2 * K], (int)rintf(aoq_round_bf16(3e37f) * (1.0f / s2)));
  assert_int_equal(q[2 * K + 1], -q[2 * K]);
  assert_int_equal(q[2 * K + 4], 127);
  for (int i = 0; i < 3 * K; i++) assert_true(isfinite(deq(&r, i)));
  assert_true(fabsf(deq(&r, 2 * K) - 3e37f) < 0.01f * 3e37f);
  assert_true(fabsf(deq(&r, 2 * K + 4) - 0x1p126f) < 0.01f * 0x1p126f);
  qfree(&r);
}

/* ------------------------------------------------------------------------------------------ */

static void int4_tinygemm_hand_vector(void **state) {
  (void)state;
  enum { K = 64 };
  float v[K] = {0};
  /* group 0: min 0, max 15 -> s = 1, z = 8, q = RNE(x) */
  const float g0[] = {0.0f, 15.0f, 0.5f, 1.5f, 2.5f, 3.5f, 14.5f, 7.0f};
  memcpy(v, g0, sizeof g0);
  /* group 1 (elements 32..63): all zero */
  qres r = quant("int4wo-32", 1, K, v);
  const uint16_t *sz = r.w.scale;
  assert_true(aoq_bf16_to_f32(sz[0]) == 1.0f);
  assert_true(aoq_bf16_to_f32(sz[1]) == 8.0f);
  const uint8_t *qd = r.w.qdata;
  const int want[] = {0, 15, 0, 2, 2, 4, 14, 7};
  for (int i = 0; i < 8; i++) assert_int_equal((qd[i / 2] >> ((i & 1) * 4)) & 15, want[i]);
  for (int i = 8; i < 32; i++) assert_int_equal((qd[i / 2] >> ((i & 1) * 4)) & 15, 0);
  for (int i = 0; i < 8; i++) assert_true(deq(&r, i) == (float)want[i]);
  /* all-zero group: s = 2^-126 (bf16 smallest normal), z = 8 s, q = 0, dequant exactly 0 */
  assert_true(aoq_bf16_to_f32(sz[2]) == 0x1p-126f);
  assert_true(aoq_bf16_to_f32(sz[3]) == 0x1p-123f);
  for (int i = 32; i < K; i++) {
    assert_int_equal((qd[i / 2] >> ((i & 1) * 4)) & 15, 0);
    assert_true(deq(&r, i) == 0.0f);
  }
  /* torchao pads to n % 8 == 0, k % 1024 == 0: scale_and_zero bf16 [k_pad/g, n_pad, 2] with
   * all-zero-group qparams in the padding */
  void *b;
  size_t n;
  assert_int_equal(aoq_format_torchao_tensor(&r.w, "scale_and_zero", &b, &n), AOQ_OK);
  assert_int_equal(n, (1024 / 32) * 8 * 2 * 2);
  const uint16_t *sv = b;
  assert_memory_equal(sv, sz, 4);          /* group 0, row 0 */
  assert_memory_equal(sv + 16, sz + 2, 4); /* group 1, row 0 */
  assert_int_equal(sv[2], 0x0080);         /* row 1 is padding: s = 2^-126 */
  assert_int_equal(sv[3], 0x0200);         /* z = 2^-123 */
  free(b);
  /* q.qdata: tinygemm int4pack int32 [n_pad/8][k_pad/128][32][4]; lane 0 word 0 packs the
   * pre-packed bytes 0, 4, 8, 12 of row 0 (byte i = q[2i] << 4 | q[2i+1]) */
  assert_int_equal(aoq_format_torchao_tensor(&r.w, "qdata", &b, &n), AOQ_OK);
  assert_int_equal(n, 8 * 1024 / 2);
  const int32_t *pk = b;
  assert_int_equal(pk[0], 0x000f0000); /* byte 0 = 0x0f: hi nibble in bits 0..3, lo in 16..19 */
  assert_int_equal(pk[4], 0x00020000); /* lane 1: byte 1 = q2 << 4 | q3 = 0x02 */
  free(b);
  qfree(&r);
}

static void int4_tinygemm_steps_round_in_bf16(void **state) {
  (void)state;
  /* min -1, max 1.7: s = bf16(bf16(2.7)/15), z = bf16(-1 + bf16(8 s)); each dequant step is
   * rounded to bf16. Recomputed here from the formulas of spec §0. */
  enum { K = 32 };
  float v[K];
  for (int i = 0; i < K; i++) v[i] = -1.0f + 2.7f * (float)i / (K - 1);
  qres r = quant("int4wo-32", 1, K, v);
  float mn = aoq_round_bf16(-1.0f), mx = aoq_round_bf16(v[K - 1]);
  float s = aoq_round_bf16(aoq_round_bf16(mx - mn) / 15.0f);
  float z = aoq_round_bf16(mn + aoq_round_bf16(s * 8.0f));
  const uint16_t *sz = r.w.scale;
  assert_int_equal(sz[0], aoq_f32_to_bf16(s));
  assert_int_equal(sz[1], aoq_f32_to_bf16(z));
  float minv = aoq_round_bf16(z - aoq_round_bf16(s * 8.0f));
  for (int i = 0; i < K; i++) {
    float x = aoq_round_bf16(v[i]);
    float t = rintf(aoq_round_bf16(aoq_round_bf16(x - minv) / s));
    int q = t < 0 ? 0 : (t > 15 ? 15 : (int)t);
    assert_int_equal((((const uint8_t *)r.w.qdata)[i / 2] >> ((i & 1) * 4)) & 15, q);
    float d = aoq_round_bf16(aoq_round_bf16((float)(q - 8) * s) + z);
    assert_true(deq(&r, i) == d);
    assert_true(fabsf(d - x) <= s); /* within one step of the input */
  }
  qfree(&r);
}

static void int4_nonfinite_and_huge_inputs_stay_finite(void **state) {
  (void)state;
  enum { K = 64 };
  float v[K] = {0};
  v[0] = INFINITY, v[1] = -INFINITY, v[2] = NAN, v[3] = 1.0f;
  v[32] = 3e38f, v[33] = -3e38f, v[34] = 1e-30f;
  const char *fmts[] = {"int4wo-32", "int4wo-32-hqq"};
  for (int f = 0; f < 2; f++) {
    qres r = quant(fmts[f], 1, K, v);
    for (int i = 0; i < K; i++)
      if (!isfinite(deq(&r, i)))
        fail_msg("%s: element %d dequantizes to %g", fmts[f], i, deq(&r, i));
    const uint8_t *qd = r.w.qdata;
    if (f == 0) { /* tinygemm: the extremes take the end codes (HQQ's integer zero may not) */
      assert_int_equal(qd[0] & 15, 15);
      assert_int_equal(qd[0] >> 4, 0);
    }
    assert_true(deq(&r, 0) > 0 && deq(&r, 1) < 0);
    qfree(&r);
  }
}

static void int4_hqq_improves_on_min_max_and_zero_groups_are_exact(void **state) {
  (void)state;
  enum { N = 16, K = 256 };
  float *v = malloc(sizeof(float) * N * K);
  uint32_t seed = 12345;
  for (int i = 0; i < N * K; i++) {
    seed = seed * 1664525u + 1013904223u;
    float u = (float)(seed >> 8) / 16777216.0f - 0.5f;
    v[i] = u * u * u * 4.0f; /* heavy-ish tails: HQQ's lp-norm shrink matters */
  }
  for (int i = 0; i < 64; i++) v[i] = 0.0f; /* an all-zero group */
  qres h = quant("int4wo-64-hqq", N, K, v), t = quant("int4wo-64", N, K, v);
  double eh = 0, et = 0;
  for (int i = 0; i < N * K; i++) {
    float x = aoq_round_bf16(v[i]);
    eh += fabs(deq(&h, i) - x), et += fabs(deq(&t, i) - x);
  }
  assert_true(eh < et * 1.05); /* not worse than min/max in mean absolute error */
  for (int i = 0; i < 64; i++) assert_true(deq(&h, i) == 0.0f);
  /* deterministic */
  qres h2 = quant("int4wo-64-hqq", N, K, v);
  assert_memory_equal(h.w.qdata, h2.w.qdata, h.w.qdata_bytes);
  assert_memory_equal(h.w.scale, h2.w.scale, h.w.scale_bytes);
  /* a constant group of 5.0 overflows HQQ's fp16 zero (-5 * 2e4): tinygemm qparams instead */
  for (int i = 64; i < 128; i++) v[i] = 5.0f;
  qres c = quant("int4wo-64-hqq", N, K, v);
  for (int i = 64; i < 128; i++) assert_true(deq(&c, i) == 5.0f);
  assert_int_equal(((const uint16_t *)c.w.scale)[2], 0x0080); /* s = 2^-126 */
  qfree(&c);
  qfree(&h), qfree(&h2), qfree(&t);
  free(v);
}

/* ------------------------------------------------------------------------------------------ */

static void bit_streams_round_trip_every_width(void **state) {
  (void)state;
  for (int bits = 1; bits <= 8; bits++) {
    enum { K = 53 };
    uint8_t row[64];
    memset(row, 0xa5, sizeof row); /* garbage must be overwritten bit-exactly */
    uint32_t vals[K];
    for (int i = 0; i < K; i++) vals[i] = (uint32_t)(i * 37 + bits) & ((1u << bits) - 1u);
    for (int i = 0; i < K; i++) aoq_bits_put(row, i, bits, vals[i]);
    for (int i = 0; i < K; i++) assert_int_equal(aoq_bits_get(row, i, bits), vals[i]);
    /* rewriting one element leaves its neighbours alone */
    aoq_bits_put(row, 7, bits, ~vals[7]);
    assert_int_equal(aoq_bits_get(row, 6, bits), vals[6]);
    assert_int_equal(aoq_bits_get(row, 8, bits), vals[8]);
    assert_int_equal(aoq_bits_get(row, 7, bits), ~vals[7] & ((1u << bits) - 1u));
    /* sign extension */
    assert_int_equal(aoq_sext((1u << bits) - 1u, bits), bits == 1 ? -1 : -1);
    assert_int_equal(aoq_sext(1u << (bits - 1), bits), -(1 << (bits - 1)));
  }
  /* LSB first: 4-bit element 2i is the low nibble of byte i; 2-bit element 4i is bits 0..1 */
  uint8_t row[4] = {0};
  aoq_bits_put(row, 0, 4, 0x3), aoq_bits_put(row, 1, 4, 0xc);
  assert_int_equal(row[0], 0xc3);
  memset(row, 0, 4);
  aoq_bits_put(row, 0, 3, 5), aoq_bits_put(row, 1, 3, 6), aoq_bits_put(row, 2, 3, 7);
  assert_int_equal(row[0], 0xf5); /* 101 | 110<<3 | 1<<6 (low bit of 111) */
  assert_int_equal(row[1], 0x01);
}

static void intx_symmetric_divisors_and_packing(void **state) {
  (void)state;
  /* int2, group 16: amax 1.5 -> s = 1.5 / 1.5 = 1, q in -2..1 */
  enum { K = 32 };
  float v[K] = {1.5f, -1.5f, 0.5f, -0.5f, 1.0f, -1.0f, 0.0f, 1.25f};
  for (int i = 16; i < K; i++) v[i] = (i & 1) ? 0.75f : -0.25f; /* amax 0.75 -> s = 0.5 */
  qres r = quant("intx2wo-16", 1, K, v);
  const uint16_t *sc = r.w.scale;
  assert_true(aoq_bf16_to_f32(sc[0]) == 1.0f);
  assert_true(aoq_bf16_to_f32(sc[1]) == 0.5f);
  int8_t *q = qvals(&r);
  const int want[] = {1, -2, 0, 0, 1, -1, 0, 1};
  for (int i = 0; i < 8; i++) assert_int_equal(q[i], want[i]);
  for (int i = 16; i < K; i++) assert_int_equal(q[i], (i & 1) ? 1 : 0); /* 1.5->2->1, -0.5->0 */
  /* packed: 2-bit two's complement, LSB first: {1,-2,0,0} -> 01 10 00 00 */
  const uint8_t *qd = r.w.qdata;
  assert_int_equal(qd[0], 0x09);
  assert_int_equal(qd[1], 0x4d); /* {1,-1,0,1} -> 01 11 00 01 */
  for (int i = 0; i < K; i++) assert_true(deq(&r, i) == (float)q[i] * aoq_bf16_to_f32(sc[i / 16]));
  free(q);
  qfree(&r);

  /* int3 per row: divisor 3.5, values straddle bytes */
  float w3[16];
  for (int i = 0; i < 16; i++) w3[i] = (float)(i - 8) * 0.5f; /* amax 4 (at i = 0) */
  r = quant("intx3wo", 1, 16, w3);
  float s = aoq_bf16_to_f32(((const uint16_t *)r.w.scale)[0]);
  assert_true(s == aoq_round_bf16(4.0f / 3.5f));
  q = qvals(&r);
  float inv = aoq_round_bf16(1.0f / s);
  for (int i = 0; i < 16; i++) {
    float t = rintf(aoq_round_bf16(w3[i] * inv));
    int want3 = t < -4 ? -4 : (t > 3 ? 3 : (int)t);
    assert_int_equal(q[i], want3);
  }
  assert_int_equal(q[0], -4);
  free(q);
  qfree(&r);
}

static void int8_int4_is_symmetric_group32_over_7_5(void **state) {
  (void)state;
  enum { K = 64 };
  float v[K] = {7.5f, -7.5f, 6.5f, 5.5f, -0.5f, 0.5f, 1.0f, -7.0f};
  /* group 1: all zero */
  qres r = quant("int8-int4", 1, K, v);
  const uint16_t *sc = r.w.scale;
  assert_true(aoq_bf16_to_f32(sc[0]) == 1.0f);      /* 7.5 / 7.5 */
  assert_true(aoq_bf16_to_f32(sc[1]) == 0x1p-126f); /* all-zero group: smallest normal */
  int8_t *q = qvals(&r);
  const int want[] = {7, -8, 6, 6, 0, 0, 1, -7};
  for (int i = 0; i < 8; i++) assert_int_equal(q[i], want[i]);
  for (int i = 32; i < K; i++) {
    assert_int_equal(q[i], 0);
    assert_true(deq(&r, i) == 0.0f);
  }
  for (int i = 0; i < 8; i++) assert_true(deq(&r, i) == (float)want[i]);
  /* zero point view: zeros [n, k/g] */
  void *b;
  size_t n;
  assert_int_equal(aoq_format_torchao_tensor(&r.w, "zero_point", &b, &n), AOQ_OK);
  assert_int_equal(n, 2);
  free(b);
  free(q);
  qfree(&r);
}

static void fp8_int4_uses_mslk_plain_numerics(void **state) {
  (void)state;
  enum { K = 256 };
  float v[K] = {8.0f, 7.5f, -8.0f, 0.5f, 1.5f, 2.5f, -3.0f, 4.0f};
  v[128] = 1e-30f; /* group 1 is tiny: scale floor 1e-6 / 8 */
  qres r = quant("fp8-int4", 1, K, v);
  const float *sc = r.w.scale;
  assert_true(sc[0] == 1.0f);                    /* amax 8 / 8 */
  assert_true(sc[1] == 1e-6f / 8.0f);            /* max(amax, 1e-6) / 8, fp32 */
  const int want[] = {7, 7, -8, 0, 2, 2, -3, 4}; /* 8 and 7.5 -> 8 -> clipped to 7 */
  for (int i = 0; i < 8; i++) assert_int_equal(qat(&r, 0, i), want[i]);
  for (int i = 128; i < K; i++) assert_int_equal(qat(&r, 0, i), 0);
  for (int i = 0; i < 8; i++) assert_true(deq(&r, i) == (float)want[i]);
  /* torchao Int4Tensor view: qdata i8 [n, k/2] = (q[2i] & 0xF) | (q[2i+1] << 4) */
  void *b;
  size_t n;
  assert_int_equal(aoq_format_torchao_tensor(&r.w, "qdata", &b, &n), AOQ_OK);
  assert_int_equal(n, K / 2);
  assert_int_equal(((uint8_t *)b)[0], 0x77);
  assert_int_equal(((uint8_t *)b)[1], 0x08); /* {-8, 0} */
  assert_int_equal(((uint8_t *)b)[2], 0x22);
  free(b);
  assert_int_equal(aoq_format_torchao_tensor(&r.w, "scale", &b, &n), AOQ_OK);
  assert_int_equal(n, 8); /* [k/g, n] f32 */
  free(b);
  qfree(&r);
}

/* ------------------------------------------------------------------------------------------ */

static void w158_ternary_hand_vector(void **state) {
  (void)state;
  float v[8] = {1.0f, -1.0f, 0.0f, 0.5f, 2.0f, -2.0f, 0.25f, 0.0f};
  qres r = quant("w158", 2, 4, v);
  /* mean|W| = 6.75 / 8 = 0.84375 */
  assert_true(aoq_bf16_to_f32(*(const uint16_t *)r.w.scale) == 0.84375f);
  int8_t *q = qvals(&r);
  const int want[] = {1, -1, 0, 1, 1, -1, 0, 0};
  for (int i = 0; i < 8; i++) assert_int_equal(q[i], want[i]);
  /* stored q + 1, four per byte LSB first, rows padded to 4 bytes */
  const uint8_t *qd = r.w.qdata;
  assert_int_equal(r.w.qdata_bytes, 8);
  assert_int_equal(qd[0], 0x92); /* {2,0,1,2} */
  assert_int_equal(qd[4], 0x52); /* {2,0,1,1} */
  for (int i = 0; i < 8; i++) assert_true(deq(&r, i) == (float)want[i] * 0.84375f);
  free(q);
  qfree(&r);

  /* ties: mean|W| = 1 -> 0.5 and -0.5 round to 0, 1.5 clips to 1 */
  float t[8] = {1.0f, -1.0f, 0.5f, -0.5f, 1.5f, -1.5f, 1.0f, -1.0f};
  r = quant("w158", 1, 8, t);
  q = qvals(&r);
  const int want2[] = {1, -1, 0, 0, 1, -1, 1, -1};
  for (int i = 0; i < 8; i++) assert_int_equal(q[i], want2[i]);
  free(q);
  qfree(&r);

  /* all zero: scale floor 1e-5, codes all 1 (= value 0) */
  float z[4] = {0, 0, 0, 0};
  r = quant("w158", 1, 4, z);
  assert_true(aoq_bf16_to_f32(*(const uint16_t *)r.w.scale) == aoq_round_bf16(1e-5f));
  assert_int_equal(((const uint8_t *)r.w.qdata)[0], 0x55);
  for (int i = 0; i < 4; i++) assert_true(deq(&r, i) == 0.0f);
  qfree(&r);
}

static void codebook_recovers_a_weight_with_few_values(void **state) {
  (void)state;
  enum { N = 4, K = 64 };
  float v[N * K];
  const float lv[4] = {-1.0f, -0.5f, 0.5f, 1.0f};
  for (int i = 0; i < N * K; i++) v[i] = lv[(i * 7 + i / K) & 3];
  qres r = quant("codebook2", N, K, v);
  for (int i = 0; i < N * K; i++) assert_true(deq(&r, i) == v[i]);
  const uint16_t *cb = r.w.aux;
  for (int j = 0; j < 4; j++) assert_true(aoq_bf16_to_f32(cb[j]) == lv[j]);
  qfree(&r);

  /* 1 bit: +-1 rows with per-row scales 2 and 0.25 */
  float w[2 * 8];
  for (int i = 0; i < 16; i++) w[i] = ((i & 1) ? 1.0f : -1.0f) * (i < 8 ? 2.0f : 0.25f);
  r = quant("codebook1", 2, 8, w);
  for (int i = 0; i < 16; i++) assert_true(deq(&r, i) == w[i]);
  void *b;
  size_t n;
  assert_int_equal(aoq_format_torchao_tensor(&r.w, "codes", &b, &n), AOQ_OK);
  assert_int_equal(n, 16);
  for (int i = 0; i < 16; i++) assert_int_equal(((uint8_t *)b)[i], i & 1);
  free(b);
  qfree(&r);
}

static void codebook_is_deterministic_sorted_and_nearest(void **state) {
  (void)state;
  enum { N = 24, K = 128 };
  float *v = malloc(sizeof(float) * N * K);
  uint32_t seed = 99;
  for (int i = 0; i < N * K; i++) {
    seed = seed * 1664525u + 1013904223u;
    v[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * (1.0f + (float)(i / K));
  }
  v[5] = NAN; /* quantizes as 0 */
  qres a = quant("codebook4-g64", N, K, v), b = quant("codebook4-g64", N, K, v);
  assert_memory_equal(a.w.qdata, b.w.qdata, a.w.qdata_bytes);
  assert_memory_equal(a.w.aux, b.w.aux, a.w.aux_bytes);
  const uint16_t *cb = a.w.aux, *sc = a.w.scale;
  for (int j = 1; j < 16; j++) assert_true(aoq_bf16_to_f32(cb[j - 1]) <= aoq_bf16_to_f32(cb[j]));
  void *cv;
  size_t n;
  assert_int_equal(aoq_format_torchao_tensor(&a.w, "codes", &cv, &n), AOQ_OK);
  const uint8_t *codes = cv;
  double err = 0;
  for (int i = 0; i < N * K; i++) {
    float x = isnan(v[i]) ? 0.0f : aoq_round_bf16(v[i]);
    float s = aoq_bf16_to_f32(sc[i / 64]);
    float u = x / s;
    double dbest = fabs((double)u - aoq_bf16_to_f32(cb[codes[i]]));
    for (int j = 0; j < 16; j++) assert_true(dbest <= fabs((double)u - aoq_bf16_to_f32(cb[j])));
    assert_true(isfinite(deq(&a, i)));
    err += fabs(deq(&a, i) - x) / s;
  }
  assert_true(err / (N * K) < 0.05); /* 16 levels over [-1, 1]: well under a step */
  free(cv);
  qfree(&a), qfree(&b);
  free(v);

  float z[32] = {0};
  a = quant("codebook3", 1, 32, z);
  for (int i = 0; i < 32; i++) assert_true(deq(&a, i) == 0.0f);
  qfree(&a);
}

/* Every integer format: NaN, +-Inf, 3e38 and 1e-30 quantize without a crash to finite values. */
static void every_int_format_survives_nonfinite_inputs(void **state) {
  (void)state;
  const char *fmts[] = {"int8wo",     "int8dq",    "int4wo-32",   "int4wo-32-hqq",
                        "fp8-int4",   "int8-int4", "intx1wo",     "intx5wo-32",
                        "int8-intx7", "w158",      "codebook5-32"};
  enum { N = 2, K = 128 };
  float v[N * K];
  for (int i = 0; i < N * K; i++) v[i] = (float)((i * 13) % 29 - 14) * 0.01f;
  v[0] = NAN, v[1] = INFINITY, v[2] = -INFINITY, v[3] = 3e38f, v[4] = -3e38f, v[5] = 1e-30f;
  v[200] = INFINITY;
  for (size_t f = 0; f < sizeof fmts / sizeof fmts[0]; f++) {
    qres r = quant(fmts[f], N, K, v);
    for (int i = 0; i < N * K; i++)
      if (!isfinite(deq(&r, i))) fail_msg("%s: element %d -> %g", fmts[f], i, deq(&r, i));
    if (strcmp(fmts[f], "intx1wo") == 0) { /* torchao's int1: x / (2 amax) rounds to 0 */
      assert_true(deq(&r, 1) == 0.0f && deq(&r, 2) == 0.0f);
    } else {
      if (!(deq(&r, 1) > 0.0f)) fail_msg("%s: +Inf -> %g", fmts[f], deq(&r, 1));
      if (!(deq(&r, 2) < 0.0f)) fail_msg("%s: -Inf -> %g", fmts[f], deq(&r, 2));
    }
    qfree(&r);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(int8_scale_is_bf16_amax_over_127_5_and_ties_round_to_even),
      cmocka_unit_test(int8_nonfinite_tiny_and_huge_inputs_are_defined),
      cmocka_unit_test(int4_tinygemm_hand_vector),
      cmocka_unit_test(int4_tinygemm_steps_round_in_bf16),
      cmocka_unit_test(int4_nonfinite_and_huge_inputs_stay_finite),
      cmocka_unit_test(int4_hqq_improves_on_min_max_and_zero_groups_are_exact),
      cmocka_unit_test(bit_streams_round_trip_every_width),
      cmocka_unit_test(intx_symmetric_divisors_and_packing),
      cmocka_unit_test(int8_int4_is_symmetric_group32_over_7_5),
      cmocka_unit_test(fp8_int4_uses_mslk_plain_numerics),
      cmocka_unit_test(w158_ternary_hand_vector),
      cmocka_unit_test(codebook_recovers_a_weight_with_few_values),
      cmocka_unit_test(codebook_is_deterministic_sorted_and_nearest),
      cmocka_unit_test(every_int_format_survives_nonfinite_inputs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
