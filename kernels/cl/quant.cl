/*
 * quant.cl — y[m,n] = x[m,k] @ W^T for the weight-only quantized formats, reading aoq's packed
 * layouts (docs/layouts.md) and decoding each weight element in registers to the fp32 operand
 * torchao's GEMM multiplies (devices/cpu/cpu_quant_deq.h is the reference): never a bf16 copy of
 * W. Same schedule as linear.cl: one work-group per output row of W, items striding over k, up to
 * WQ_MR rows of x per pass, a local-memory reduction, then the format's epilogue.
 *
 * Arguments of every kernel: q, s, a (qdata, scale, aux; unused ones may repeat q), x, y, m, n,
 * k, bits, g (elements per scale group).
 */
#define WQ_WG 64
#define WQ_MR 4

#define WQ_KERNEL(NAME, DEC, EPI)                                                               \
  __kernel __attribute__((reqd_work_group_size(WQ_WG, 1, 1))) void NAME(                         \
      AOQ_PTR(const uchar, q), AOQ_PTR(const uchar, s), AOQ_PTR(const uchar, a),                 \
      AOQ_PTR(const ushort, x), AOQ_PTR(ushort, y), long m, long n, long k, int bits, long g) {  \
    __local float red[WQ_MR][WQ_WG];                                                             \
    const long j = get_group_id(0);                                                              \
    const int l = get_local_id(0);                                                               \
    __global const uchar *qd = AOQ_AT(const uchar, q);                                           \
    __global const uchar *sc = AOQ_AT(const uchar, s);                                           \
    __global const uchar *ax = AOQ_AT(const uchar, a);                                           \
    __global const ushort *xb = AOQ_AT(const ushort, x);                                         \
    (void)sc, (void)ax, (void)bits, (void)g;                                                     \
    for (long r0 = 0; r0 < m; r0 += WQ_MR) {                                                     \
      int mr = m - r0 < WQ_MR ? (int)(m - r0) : WQ_MR;                                           \
      float acc[WQ_MR];                                                                          \
      for (int i = 0; i < WQ_MR; i++) acc[i] = 0;                                                \
      for (long c = l; c < k; c += WQ_WG) {                                                      \
        float wv = DEC;                                                                          \
        for (int i = 0; i < mr; i++) acc[i] += wv * aoq_bf2f(xb[(r0 + i) * k + c]);              \
      }                                                                                          \
      for (int i = 0; i < mr; i++) red[i][l] = acc[i];                                           \
      barrier(CLK_LOCAL_MEM_FENCE);                                                              \
      for (int st = WQ_WG / 2; st > 0; st >>= 1) {                                               \
        if (l < st)                                                                              \
          for (int i = 0; i < mr; i++) red[i][l] += red[i][l + st];                              \
        barrier(CLK_LOCAL_MEM_FENCE);                                                            \
      }                                                                                          \
      if (l < mr) {                                                                              \
        float v = red[l][0];                                                                     \
        AOQ_AT(ushort, y)[(r0 + l) * n + j] = aoq_f2bf(EPI);                                     \
      }                                                                                          \
      barrier(CLK_LOCAL_MEM_FENCE);                                                              \
    }                                                                                            \
  }

static inline float f32_at(__global const uchar *p, long i) {
  return ((__global const float *)p)[i];
}
static inline float bf_at(__global const uchar *p, long i) {
  return aoq_bf2f(((__global const ushort *)p)[i]);
}

/* int8wo (§2): raw int8 in the sum; torchao scales after the matmul: bf16(bf16(acc) * bf16(s)). */
WQ_KERNEL(aoq_lin_int8wo, (float)((__global const char *)qd)[j * k + c],
          aoq_rbf(v) * aoq_rbf(f32_at(sc, j)))

/* fp8wo (§3): bf16(e4m3 * s_row). */
WQ_KERNEL(aoq_lin_fp8wo, aoq_rbf(aoq_e4m32f(qd[j * k + c]) * f32_at(sc, j)), v)

/* int4wo (§4, tinygemm): bf16(bf16((q - 8) * s) + z), {s, z} bf16 pairs per group. */
static inline float int4wo_elem(__global const uchar *qd, __global const uchar *sc, long j,
                                long c, long k, long g) {
  uchar b = qd[j * (k / 2) + (c >> 1)];
  int qv = (c & 1) ? (b >> 4) : (b & 15);
  long gi = j * (k / g) + c / g;
  return aoq_rbf(aoq_rbf((float)(qv - 8) * bf_at(sc, 2 * gi)) + bf_at(sc, 2 * gi + 1));
}
WQ_KERNEL(aoq_lin_int4wo, int4wo_elem(qd, sc, j, c, k, g), v)

/* intxwo (§5): bf16(q * s), q signed bits-wide in a padded bit stream, bf16 group scales. */
static inline float intx_elem(__global const uchar *qd, __global const uchar *sc, long j, long c,
                              long k, int bits, long g) {
  int qv = aoq_sext(aoq_bits_get(qd + j * aoq_bitrow(k, bits), c, bits), bits);
  return aoq_rbf((float)qv * bf_at(sc, j * (k / g) + c / g));
}
WQ_KERNEL(aoq_lin_intxwo, intx_elem(qd, sc, j, c, k, bits, g), v)

/* codebook (§9): bf16(codebook[code] * s), unsigned codes, bf16 codebook in aux. */
static inline float cb_elem(__global const uchar *qd, __global const uchar *sc,
                            __global const uchar *ax, long j, long c, long k, int bits, long g) {
  uint code = aoq_bits_get(qd + j * aoq_bitrow(k, bits), c, bits);
  return aoq_rbf(bf_at(ax, code) * bf_at(sc, j * (k / g) + c / g));
}
WQ_KERNEL(aoq_lin_codebook, cb_elem(qd, sc, ax, j, c, k, bits, g), v)

/* w158: 2-bit code - 1 in {-1, 0, 1} times the per-tensor bf16 scale. */
static inline float w158_elem(__global const uchar *qd, __global const uchar *sc, long j, long c,
                              long k) {
  int qv = (int)aoq_bits_get(qd + j * aoq_bitrow(k, 2), c, 2) - 1;
  return aoq_rbf((float)qv * bf_at(sc, 0));
}
WQ_KERNEL(aoq_lin_w158, w158_elem(qd, sc, j, c, k), v)

/* fp6 (§8): bf16(e * s_row), 6-bit codes in the bit stream, one bf16 scale per row. */
static inline float fp6_elem(__global const uchar *qd, __global const uchar *sc, long j, long c,
                             long k, int e3m2) {
  uchar code = (uchar)aoq_bits_get(qd + j * aoq_bitrow(k, 6), c, 6);
  float e = e3m2 ? aoq_e3m22f(code) : aoq_e2m32f(code);
  return aoq_rbf(e * bf_at(sc, j));
}
WQ_KERNEL(aoq_lin_fp6_e3m2, fp6_elem(qd, sc, j, c, k, 1), v)
WQ_KERNEL(aoq_lin_fp6_e2m3, fp6_elem(qd, sc, j, c, k, 0), v)

/* nvfp4wo (§7): bf16(e2m1 * s_block * pts), e4m3 block scales of 16, f32 per-tensor pts in aux. */
static inline float nvfp4wo_elem(__global const uchar *qd, __global const uchar *sc,
                                 __global const uchar *ax, long j, long c, long k) {
  uchar b = qd[j * (k / 2) + (c >> 1)];
  uchar code = (c & 1) ? (b >> 4) : (b & 15);
  return aoq_rbf(aoq_e2m12f(code) * aoq_e4m32f(sc[j * (k / 16) + (c >> 4)]) * f32_at(ax, 0));
}
WQ_KERNEL(aoq_lin_nvfp4wo, nvfp4wo_elem(qd, sc, ax, j, c, k), v)
