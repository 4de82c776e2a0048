/*
 * dyn.cl — the dynamic-activation formats: the activation quantizers of base/numerics.h (row
 * quantizers, bit-exact) and the linear that multiplies their output with the packed weight,
 * following devices/cpu/cpu_quant.c (operands and epilogue order per format, spec/formats.md).
 *
 * Workspace (device, sized by xpu_ops.c): xf f32[m,k] the activation operand | xs f32 scales
 * [m*(kb+1)+4] | xq i8[m,k] (int8dq only). xs[m*(kb+1)] holds a per-tensor value (fp8dq scale,
 * nvfp4 pts_x). Format kinds are aoq_format_kind values (include/aoq/aoq.h).
 */
#define DQ_WG 64
#define DQ_MR 4

#define K_INT8DQ 2
#define K_FP8DQ 4
#define K_FP8DQ_ROW 5
#define K_FP8DQ_BLOCK 6
#define K_FP8_INT4 9
#define K_INT8_INT4 10
#define K_INT8_INTX 12
#define K_MXFP8 13
#define K_MXFP4 14
#define K_NVFP4 15

/* bf16 magnitude bits of |x| maxed over a work-group; > 0x7f80 is NaN (propagates). */
static inline uint dq_max_u(__local uint *red, uint v) {
  int l = get_local_id(0);
  red[l] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = DQ_WG / 2; s > 0; s >>= 1) {
    if (l < s) red[l] = max(red[l], red[l + s]);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  uint r = red[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return r;
}

static inline float dq_minmax(__local float *red, float v, int want_max) {
  int l = get_local_id(0);
  red[l] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = DQ_WG / 2; s > 0; s >>= 1) {
    if (l < s) red[l] = want_max ? fmax(red[l], red[l + s]) : fmin(red[l], red[l + s]);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  float r = red[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return r;
}

/* max |x| over n bf16 values of one item, as bf16 magnitude bits. */
static inline uint amax_bits(__global const ushort *x, long n) {
  uint a = 0;
  for (long i = 0; i < n; i++) a = max(a, (uint)(x[i] & 0x7fffu));
  return a;
}

static inline float bits_amax(uint a) { return aoq_bf2f((ushort)a); }

/* e8m0 RCEIL scale byte (numerics.h aoq_e8m0_rceil). */
static inline uchar e8m0_rceil(float amax, float inv_max_pos) {
  uint ua = as_uint(amax) & 0x7fffffffu;
  if (ua >= 0x7f800000u) return 0xffu;
  float d = as_float(ua) * inv_max_pos;
  uint u = as_uint(d), e = u >> 23, m = u & 0x7fffffu;
  if (e == 0) return (uchar)(u <= 0x00400000u ? 0u : 1u);
  if (e >= 0xffu) return 0xfeu;
  e += (m != 0);
  return (uchar)(e > 0xfeu ? 0xfeu : e);
}

static inline uchar nvfp4_block_scale(float amax_b, float pts) {
  float s = (amax_b / 6.0f) / pts;
  if (!(s >= 0.015625f)) s = 0.015625f;
  if (s > 448.0f) s = 448.0f;
  return aoq_f2e4m3(s);
}

/* Per-tensor |x| max over all m*k values (one work-group): fp8dq scale / nvfp4 pts_x. */
__kernel __attribute__((reqd_work_group_size(DQ_WG, 1, 1))) void
aoq_dq_tensor(AOQ_PTR(const ushort, x), AOQ_PTR(float, xs), long total, long slot, int kind) {
  __local uint red[DQ_WG];
  int l = get_local_id(0);
  __global const ushort *xb = AOQ_AT(const ushort, x);
  uint a = 0;
  for (long i = l; i < total; i += DQ_WG) a = max(a, (uint)(xb[i] & 0x7fffu));
  a = dq_max_u(red, a);
  float amax = a > 0x7f80u ? as_float(0x7fc00000u) : bits_amax(a);
  if (l == 0)
    AOQ_AT(float, xs)[slot] = kind == K_NVFP4 ? amax / 2688.0f : aoq_rbf(amax / 448.0f);
}

/* One row of x quantized as `kind` wants; xf gets the operand the GEMM multiplies. Three
 * kernels (row-wise symmetric, row-wise asymmetric, block-wise): one kernel with all of them made
 * control flow that llvm-spirv-14 emits out of dominance order (spirv-val rejects it). */
#define DQ_ACT_ARGS                                                                              \
  AOQ_PTR(const ushort, x), AOQ_PTR(float, xf), AOQ_PTR(float, xs), AOQ_PTR(char, xq), long m,   \
      long k, long kb, int kind
#define DQ_ACT_PROLOGUE                                                                          \
  const long r = get_group_id(0);                                                                \
  const int l = get_local_id(0);                                                                 \
  __global const ushort *xr = AOQ_AT(const ushort, x) + r * k;                                   \
  __global float *of = AOQ_AT(float, xf) + r * k;                                                \
  __global float *sc = AOQ_AT(float, xs);                                                        \
  const float tensor = sc[m * (kb + 1)];                                                         \
  (void)tensor, (void)of, (void)xq_p, (void)xq_o

/* int8dq, fp8dq, fp8dq-row, fp8-int4: one scale per row (or the tensor's). */
__kernel __attribute__((reqd_work_group_size(DQ_WG, 1, 1))) void aoq_dq_act_row(DQ_ACT_ARGS) {
  __local uint redu[DQ_WG];
  DQ_ACT_PROLOGUE;
  {
    uint a = 0;
    for (long c = l; c < k; c += DQ_WG) a = max(a, (uint)(xr[c] & 0x7fffu));
    a = dq_max_u(redu, a);
    float amax = a > 0x7f80u ? as_float(0x7fc00000u) : bits_amax(a);
    if (kind == K_INT8DQ) {
      float s = aoq_rbf(amax / 127.5f);
      s = s < 1.1920929e-7f ? 1.1920929e-7f : s;
      float inv = 1.0f / s;
      __global char *q = AOQ_AT(char, xq) + r * k;
      for (long c = l; c < k; c += DQ_WG) {
        float v = aoq_bf2f(xr[c]) * inv, av = v < 0 ? -v : v;
        float rr = (float)aoq_rne_u32(av > 200.0f ? 200.0f : av);
        rr = v < 0 ? -rr : rr;
        q[c] = (char)(rr > 127.0f ? 127 : rr < -128.0f ? -128 : (int)rr);
      }
      if (l == 0) sc[r] = s;
      return;
    }
    float s = kind == K_FP8DQ       ? tensor
              : kind == K_FP8DQ_ROW ? aoq_rbf(amax / 448.0f)
                                    : (amax > 0.001953125f ? amax : 0.001953125f) / 448.0f;
    for (long c = l; c < k; c += DQ_WG) of[c] = aoq_e4m32f(aoq_f2e4m3(aoq_bf2f(xr[c]) / s));
    if (l == 0) sc[r] = s;
  }
}

/* int8-intx, int8-int4: asymmetric per token, then fake-quantized back to bf16 (§5). */
__kernel __attribute__((reqd_work_group_size(DQ_WG, 1, 1))) void aoq_dq_act_asym(DQ_ACT_ARGS) {
  __local float redf[DQ_WG];
  DQ_ACT_PROLOGUE;
  (void)kind;
  {
    float mn = 0.0f, mx = 0.0f;
    for (long c = l; c < k; c += DQ_WG) {
      float v = aoq_bf2f(xr[c]);
      mn = v < mn ? v : mn;
      mx = v > mx ? v : mx;
    }
    mn = dq_minmax(redf, mn, 0);
    mx = dq_minmax(redf, mx, 1);
    float s = aoq_rbf(aoq_rbf(mx - mn) / 255.0f);
    if (!(s >= 1.1920929e-7f)) s = 1.1920929e-7f;
    float t = aoq_rbf(mn / s), at = t < 0 ? -t : t;
    float rt = (float)aoq_rne_u32(at > 1e6f ? 1e6f : at);
    int z = -128 - (int)(t < 0 ? -rt : rt);
    z = z < -128 ? -128 : z > 127 ? 127 : z;
    float inv = aoq_rbf(1.0f / s);
    for (long c = l; c < k; c += DQ_WG) {
      float v = aoq_rbf(aoq_bf2f(xr[c]) * inv), av = v < 0 ? -v : v;
      float rr = (float)aoq_rne_u32(av > 1e6f ? 1e6f : av);
      int qi = (int)(v < 0 ? -rr : rr) + z;
      qi = qi < -128 ? -128 : qi > 127 ? 127 : qi;
      of[c] = aoq_rbf(aoq_rbf((float)(qi - z)) * s);
    }
  }
}

/* fp8dq-block: 1 x 128 blocks, one item per block. */
__kernel __attribute__((reqd_work_group_size(DQ_WG, 1, 1))) void aoq_dq_act_fp8blk(DQ_ACT_ARGS) {
  DQ_ACT_PROLOGUE;
  (void)kind;
  { /* 1 x 128 blocks: one item per block */
    for (long b = l; b < kb; b += DQ_WG) {
      long c0 = b * 128, len = k - c0 < 128 ? k - c0 : 128;
      uint a = amax_bits(xr + c0, len);
      float amax = a > 0x7f80u ? as_float(0x7fc00000u) : bits_amax(a);
      float s = aoq_rbf(amax / 448.0f);
      sc[r * kb + b] = s;
      for (long i = 0; i < len; i++) of[c0 + i] = aoq_e4m32f(aoq_f2e4m3(aoq_bf2f(xr[c0 + i]) / s));
    }
  }
}

/* mxfp8 / mxfp4: 32-element blocks, e8m0 RCEIL scales (§6); ENC/DEC the element codec. One
 * kernel per element type, inner loops kept rolled: fully unrolled codec branches, or a select
 * between two codecs, are shapes llvm-spirv-14 emits out of dominance order. */
#define DQ_ACT_MX(NAME, MAXV, ENC, DEC)                                                          \
  __kernel __attribute__((reqd_work_group_size(DQ_WG, 1, 1))) void NAME(DQ_ACT_ARGS) {          \
    DQ_ACT_PROLOGUE;                                                                             \
    (void)kind;                                                                                  \
    for (long b = l; b < k / 32; b += DQ_WG) {                                                   \
      uint a = amax_bits(xr + b * 32, 32);                                                       \
      float amax = a > 0x7f80u ? as_float(0x7fc00000u) : bits_amax(a);                           \
      uchar e = e8m0_rceil(amax, 1.0f / (MAXV));                                                 \
      float mul = aoq_pow2(127 - (int)e), back = aoq_pow2((int)e - 127);                         \
      if (e == 0xffu) mul = back = as_float(0x7fc00000u);                                        \
      _Pragma("unroll 1") for (int i = 0; i < 32; i++)                                           \
        of[b * 32 + i] = DEC(ENC(aoq_bf2f(xr[b * 32 + i]) * mul)) * back;                         \
    }                                                                                            \
  }
DQ_ACT_MX(aoq_dq_act_mxfp8, 448.0f, aoq_f2e4m3, aoq_e4m32f)
DQ_ACT_MX(aoq_dq_act_mxfp4, 6.0f, aoq_f2e2m1, aoq_e2m12f)

/* nvfp4: 16-element blocks with e4m3 scales under the per-tensor scale (§7). */
__kernel __attribute__((reqd_work_group_size(DQ_WG, 1, 1))) void aoq_dq_act_nvfp4(DQ_ACT_ARGS) {
  DQ_ACT_PROLOGUE;
  (void)kind;
  {
    const float pts = tensor, inv_pts = 1.0f / pts;
    for (long b = l; b < k / 16; b += DQ_WG) {
      uint a = amax_bits(xr + b * 16, 16);
      float amax = a > 0x7f80u ? as_float(0x7fc00000u) : bits_amax(a);
      uchar sb = nvfp4_block_scale(amax, pts);
      float sbf = aoq_e4m32f(sb), mul = inv_pts / sbf;
      for (int i = 0; i < 16; i++)
        of[b * 16 + i] = aoq_e2m12f(aoq_f2e2m1(aoq_bf2f(xr[b * 16 + i]) * mul)) * sbf;
    }
  }
}

/* The weight operand of the dynamic formats (cpu_quant_deq.h). */
static inline float dq_w(int kind, __global const uchar *qd, __global const uchar *sc, long j,
                         long c, long k, int bits, long g) {
  switch (kind) {
    case K_FP8DQ:
    case K_FP8DQ_ROW:
    case K_FP8DQ_BLOCK: return aoq_e4m32f(qd[j * k + c]);
    case K_MXFP8: return aoq_e4m32f(qd[j * k + c]) * aoq_e8m02f(sc[j * (k / 32) + (c >> 5)]);
    case K_MXFP4:
    case K_NVFP4: {
      uchar b = qd[j * (k / 2) + (c >> 1)];
      uchar code = (c & 1) ? (b >> 4) : (b & 15);
      float s = kind == K_MXFP4 ? aoq_e8m02f(sc[j * (k / 32) + (c >> 5)])
                                : aoq_e4m32f(sc[j * (k / 16) + (c >> 4)]);
      return aoq_e2m12f(code) * s;
    }
    case K_FP8_INT4: {
      int qv = aoq_sext(aoq_bits_get(qd + j * aoq_bitrow(k, 4), c, 4), 4);
      return (float)qv * ((__global const float *)sc)[j * (k / g) + c / g];
    }
    default: { /* int8-intx, int8-int4: bf16(q * s) */
      int qv = aoq_sext(aoq_bits_get(qd + j * aoq_bitrow(k, bits), c, bits), bits);
      return aoq_rbf((float)qv * aoq_bf2f(((__global const ushort *)sc)[j * (k / g) + c / g]));
    }
  }
}

/* y = x_q @ W^T for the float-operand dynamic formats, with each format's epilogue. */
__kernel __attribute__((reqd_work_group_size(DQ_WG, 1, 1))) void
aoq_dq_linear(AOQ_PTR(const uchar, q), AOQ_PTR(const uchar, s), AOQ_PTR(const uchar, a),
              AOQ_PTR(const float, xf), AOQ_PTR(const float, xs), AOQ_PTR(ushort, y), long m,
              long n, long k, long kb, int bits, long g, int kind) {
  __local float red[DQ_MR][DQ_WG];
  const long j = get_group_id(0);
  const int l = get_local_id(0);
  __global const uchar *qd = AOQ_AT(const uchar, q), *sc = AOQ_AT(const uchar, s);
  __global const float *xv = AOQ_AT(const float, xf), *xsc = AOQ_AT(const float, xs);
  __global const float *wsf = (__global const float *)sc;
  for (long r0 = 0; r0 < m; r0 += DQ_MR) {
    int mr = m - r0 < DQ_MR ? (int)(m - r0) : DQ_MR;
    float acc[DQ_MR];
    for (int i = 0; i < DQ_MR; i++) acc[i] = 0;
    for (long c = l; c < k; c += DQ_WG) {
      float wv = dq_w(kind, qd, sc, j, c, k, bits, g);
      if (kind == K_FP8DQ_BLOCK) {
        float sw = wsf[(j / 128) * kb + c / 128];
        for (int i = 0; i < mr; i++)
          acc[i] += wv * xv[(r0 + i) * k + c] * (xsc[(r0 + i) * kb + c / 128] * sw);
      } else {
        for (int i = 0; i < mr; i++) acc[i] += wv * xv[(r0 + i) * k + c];
      }
    }
    for (int i = 0; i < mr; i++) red[i][l] = acc[i];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int st = DQ_WG / 2; st > 0; st >>= 1) {
      if (l < st)
        for (int i = 0; i < mr; i++) red[i][l] += red[i][l + st];
      barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l < mr) {
      long mi = r0 + l;
      float v = red[l][0];
      if (kind == K_FP8DQ) v = v * xsc[m * (kb + 1)] * wsf[0];
      else if (kind == K_FP8DQ_ROW) v = v * xsc[mi] * wsf[j];
      else if (kind == K_FP8_INT4) v = v * xsc[mi];
      else if (kind == K_NVFP4) {
        float pts_w = ((__global const float *)AOQ_AT(const uchar, a))[0];
        v = aoq_rbf(v) * aoq_rbf(xsc[m * (kb + 1)] * pts_w);
      }
      AOQ_AT(ushort, y)[mi * n + j] = aoq_f2bf(v);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
}

/* int8dq (§2): int32 sums of int8 products, then bf16(acc * x_scale) * w_scale -> bf16. */
__kernel __attribute__((reqd_work_group_size(DQ_WG, 1, 1))) void
aoq_dq_linear_i8(AOQ_PTR(const char, q), AOQ_PTR(const float, s), AOQ_PTR(const char, xq),
                 AOQ_PTR(const float, xs), AOQ_PTR(ushort, y), long m, long n, long k) {
  __local int red[DQ_MR][DQ_WG];
  const long j = get_group_id(0);
  const int l = get_local_id(0);
  __global const char *wq = AOQ_AT(const char, q) + j * k, *xb = AOQ_AT(const char, xq);
  for (long r0 = 0; r0 < m; r0 += DQ_MR) {
    int mr = m - r0 < DQ_MR ? (int)(m - r0) : DQ_MR;
    int acc[DQ_MR];
    for (int i = 0; i < DQ_MR; i++) acc[i] = 0;
    for (long c = l; c < k; c += DQ_WG) {
      int wv = wq[c];
      for (int i = 0; i < mr; i++) acc[i] += wv * (int)xb[(r0 + i) * k + c];
    }
    for (int i = 0; i < mr; i++) red[i][l] = acc[i];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int st = DQ_WG / 2; st > 0; st >>= 1) {
      if (l < st)
        for (int i = 0; i < mr; i++) red[i][l] += red[i][l + st];
      barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l < mr) {
      long mi = r0 + l;
      float v = aoq_rbf((float)red[l][0] * AOQ_AT(const float, xs)[mi]) * AOQ_AT(const float, s)[j];
      AOQ_AT(ushort, y)[mi * n + j] = aoq_f2bf(v);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
}
