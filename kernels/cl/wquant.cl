/*
 * wquant.cl — weight quantization on the device (the `quantize` op) for the float formats, bit-
 * exact with the reference quantizer (core/quant_fp.c, through the row rules of base/numerics.h):
 * fp8 per row / per tensor / per 128x128 block, MX (e8m0 RCEIL, 32-blocks) and NVFP4 (e4m3
 * 16-block scales under a per-tensor scale). The per-tensor amax comes from aoq_dq_tensor
 * (dyn.cl), run first by the host. One work-group per weight row (or 128x128 block).
 */
#define WQZ_WG 64

static inline uint wqz_max_u(__local uint *red, uint v) {
  int l = get_local_id(0);
  red[l] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = WQZ_WG / 2; s > 0; s >>= 1) {
    if (l < s) red[l] = max(red[l], red[l + s]);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  uint r = red[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return r;
}

static inline float wqz_amax(uint a) { return a > 0x7f80u ? as_float(0x7fc00000u) : aoq_bf2f((ushort)a); }

/* fp8 e4m3, one scale per row (per_tensor = 0: fp8wo, fp8dq-row) or the tensor scale already in
 * scale[0] (per_tensor = 1: fp8dq). q = e4m3(x / s), s = bf16(amax / 448) stored f32 (§3). */
__kernel __attribute__((reqd_work_group_size(WQZ_WG, 1, 1))) void
aoq_wq_fp8(AOQ_PTR(const ushort, w), AOQ_PTR(uchar, q), AOQ_PTR(float, scale), long k,
           int per_tensor) {
  __local uint red[WQZ_WG];
  const long r = get_group_id(0);
  const int l = get_local_id(0);
  __global const ushort *wr = AOQ_AT(const ushort, w) + r * k;
  __global uchar *qr = AOQ_AT(uchar, q) + r * k;
  /* the row's amax is reduced even when unused: barriers stay out of conditional code */
  uint a = 0;
  for (long c = l; c < k; c += WQZ_WG) a = max(a, (uint)(wr[c] & 0x7fffu));
  float s = aoq_rbf(wqz_amax(wqz_max_u(red, a)) / 448.0f);
  if (per_tensor) s = AOQ_AT(float, scale)[0];
  else if (l == 0) AOQ_AT(float, scale)[r] = s;
  for (long c = l; c < k; c += WQZ_WG) qr[c] = aoq_f2e4m3(aoq_bf2f(wr[c]) / s);
}

/* fp8dq-block: one group per 128x128 block (dims: column block, row block). */
__kernel __attribute__((reqd_work_group_size(WQZ_WG, 1, 1))) void
aoq_wq_fp8_block(AOQ_PTR(const ushort, w), AOQ_PTR(uchar, q), AOQ_PTR(float, scale), long n,
                 long k) {
  __local uint red[WQZ_WG];
  const long cb = get_group_id(0), rb = get_group_id(1), kb = (k + 127) / 128;
  const int l = get_local_id(0);
  const long r0 = rb * 128, r1 = r0 + 128 < n ? r0 + 128 : n;
  const long c0 = cb * 128, c1 = c0 + 128 < k ? c0 + 128 : k;
  __global const ushort *wb = AOQ_AT(const ushort, w);
  __global uchar *qb = AOQ_AT(uchar, q);
  uint a = 0;
  for (long r = r0; r < r1; r++)
    for (long c = c0 + l; c < c1; c += WQZ_WG) a = max(a, (uint)(wb[r * k + c] & 0x7fffu));
  float s = aoq_rbf(wqz_amax(wqz_max_u(red, a)) / 448.0f);
  if (l == 0) AOQ_AT(float, scale)[rb * kb + cb] = s;
  for (long r = r0; r < r1; r++)
    for (long c = c0 + l; c < c1; c += WQZ_WG) qb[r * k + c] = aoq_f2e4m3(aoq_bf2f(wb[r * k + c]) / s);
}

static inline uchar wqz_rceil(float amax, float inv_max_pos) {
  uint ua = as_uint(amax) & 0x7fffffffu;
  if (ua >= 0x7f800000u) return 0xffu;
  float d = as_float(ua) * inv_max_pos;
  uint u = as_uint(d), e = u >> 23, m = u & 0x7fffffu;
  if (e == 0) return (uchar)(u <= 0x00400000u ? 0u : 1u);
  if (e >= 0xffu) return 0xfeu;
  e += (m != 0);
  return (uchar)(e > 0xfeu ? 0xfeu : e);
}

/* MX rows (aoq_mx_quant_row): one item per 32-element block. Loops stay rolled (see dyn.cl). */
__kernel __attribute__((reqd_work_group_size(WQZ_WG, 1, 1))) void
aoq_wq_mxfp8(AOQ_PTR(const ushort, w), AOQ_PTR(uchar, q), AOQ_PTR(uchar, scale), long k) {
  const long r = get_group_id(0);
  __global const ushort *wr = AOQ_AT(const ushort, w) + r * k;
  __global uchar *qr = AOQ_AT(uchar, q) + r * k, *sr = AOQ_AT(uchar, scale) + r * (k / 32);
  for (long b = get_local_id(0); b < k / 32; b += WQZ_WG) {
    uint a = 0;
    _Pragma("unroll 1") for (int i = 0; i < 32; i++) a = max(a, (uint)(wr[b * 32 + i] & 0x7fffu));
    uchar e = wqz_rceil(wqz_amax(a), 1.0f / 448.0f);
    sr[b] = e;
    float mul = e == 0xffu ? as_float(0x7fc00000u) : aoq_pow2(127 - (int)e);
    _Pragma("unroll 1") for (int i = 0; i < 32; i++)
      qr[b * 32 + i] = aoq_f2e4m3(aoq_bf2f(wr[b * 32 + i]) * mul);
  }
}

__kernel __attribute__((reqd_work_group_size(WQZ_WG, 1, 1))) void
aoq_wq_mxfp4(AOQ_PTR(const ushort, w), AOQ_PTR(uchar, q), AOQ_PTR(uchar, scale), long k) {
  const long r = get_group_id(0);
  __global const ushort *wr = AOQ_AT(const ushort, w) + r * k;
  __global uchar *qr = AOQ_AT(uchar, q) + r * (k / 2), *sr = AOQ_AT(uchar, scale) + r * (k / 32);
  for (long b = get_local_id(0); b < k / 32; b += WQZ_WG) {
    uint a = 0;
    _Pragma("unroll 1") for (int i = 0; i < 32; i++) a = max(a, (uint)(wr[b * 32 + i] & 0x7fffu));
    uchar e = wqz_rceil(wqz_amax(a), 1.0f / 6.0f);
    sr[b] = e;
    float mul = e == 0xffu ? as_float(0x7fc00000u) : aoq_pow2(127 - (int)e);
    _Pragma("unroll 1") for (int i = 0; i < 32; i += 2) {
      uchar lo = aoq_f2e2m1(aoq_bf2f(wr[b * 32 + i]) * mul);
      uchar hi = aoq_f2e2m1(aoq_bf2f(wr[b * 32 + i + 1]) * mul);
      qr[b * 16 + i / 2] = (uchar)(lo | (hi << 4));
    }
  }
}

/* NVFP4 rows (aoq_nvfp4_quant_row) under the per-tensor scale pts = aux[0]. */
__kernel __attribute__((reqd_work_group_size(WQZ_WG, 1, 1))) void
aoq_wq_nvfp4(AOQ_PTR(const ushort, w), AOQ_PTR(uchar, q), AOQ_PTR(uchar, scale),
             AOQ_PTR(const float, aux), long k) {
  const long r = get_group_id(0);
  __global const ushort *wr = AOQ_AT(const ushort, w) + r * k;
  __global uchar *qr = AOQ_AT(uchar, q) + r * (k / 2), *sr = AOQ_AT(uchar, scale) + r * (k / 16);
  const float pts = AOQ_AT(const float, aux)[0], inv_pts = 1.0f / pts;
  for (long b = get_local_id(0); b < k / 16; b += WQZ_WG) {
    uint a = 0;
    _Pragma("unroll 1") for (int i = 0; i < 16; i++) a = max(a, (uint)(wr[b * 16 + i] & 0x7fffu));
    float s = (wqz_amax(a) / 6.0f) / pts;
    if (!(s >= 0.015625f)) s = 0.015625f;
    if (s > 448.0f) s = 448.0f;
    uchar sb = aoq_f2e4m3(s);
    sr[b] = sb;
    float mul = inv_pts / aoq_e4m32f(sb);
    _Pragma("unroll 1") for (int i = 0; i < 16; i += 2) {
      uchar lo = aoq_f2e2m1(aoq_bf2f(wr[b * 16 + i]) * mul);
      uchar hi = aoq_f2e2m1(aoq_bf2f(wr[b * 16 + i + 1]) * mul);
      qr[b * 8 + i / 2] = (uchar)(lo | (hi << 4));
    }
  }
}
