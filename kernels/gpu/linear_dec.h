/*
 * linear_dec.h — the linear of the formats whose packed chunks do not fit linear.cu's 16-byte
 * decoder interface, or whose accumulation is not a plain fp32 sum of bf16 products (included by
 * linear.cu, CUDA sm_80+ only: mma.sync):
 *   INTXWO (b = 1..8, any group that is a multiple of 16), INT8_INTX, INT8_INT4: x (INT8_INTX /
 *     INT8_INT4: x fake-quantized, int8 asymmetric per token, act_quant.cu) @ bf16(q * s)
 *   INT8DQ: int8 x int8 on the integer tensor cores (mma .s8.s8.s32: exact int32 sums, torch's
 *     _int_mm), then bf16(bf16(acc * x_scale) * w_scale)
 *   FP8_INT4: e4m3 x (MSLK per token) @ (q * s_g): per 128-group fp32 partial sums times the f32
 *     group scale, then * x_scale
 *   FP8DQ_BLOCK: e4m3 x (1 x 128 blocks) @ e4m3 W (128 x 128 blocks): per 128-block fp32 partial
 *     sums times (x_scale * w_scale)
 * (devices/cpu/cpu_quant.c is the reference; spec/formats.md §2, §3, §4, §5.)
 *
 * Layout: every format here is read 32 elements of k at a time per lane ("lane group": b words of
 * a b-bit stream, 8 words of int8 / e4m3), so bit widths that do not divide a 16-byte chunk
 * (3, 5, 6, 7) still read whole words: the four lanes of a quad read 4 consecutive lane groups,
 * 16·b contiguous bytes of a row. Loads are 16-byte where b % 4 == 0, 8-byte where b is even,
 * else 4-byte (a row is k·b/8 bytes, k % 32 == 0, so every lane group is word aligned).
 *
 * Kernel (k_dec): the mma GEMV's shape (linear.cu): a block owns 16 weight rows, its warps split
 * k; lane (g = lane/4, c = lane%4) decodes rows g and g+8 of its lane group into the A fragment
 * of mma.sync m16n8k16 (bf16) or m16n8k32 (s8), x row g (+8 per n-tile) of the same k is the B
 * fragment, so no shuffles are needed. Lane groups s0 + c of a quad are 128 aligned consecutive
 * elements: one 128-group of fp8-int4 / fp8dq-block, whose partial sums each mma tile takes
 * before the group scale. Warps' partial tiles are summed in shared memory in a fixed order;
 * the split depends on n only (batch-invariant). m > 64 runs in slices of 64 rows.
 */
#ifndef AOQ_KERNELS_GPU_LINEAR_DEC_H
#define AOQ_KERNELS_GPU_LINEAR_DEC_H

#ifdef AOQ_HAVE_MMA_BF16

typedef struct dargs {
  const uint8_t *q;
  const void *scale;
  const void *aux; /* CODEBOOK: bf16 codebook [2^b] */
  const void *x;   /* bf16 [m, k], or int8 [m, k] (INT8DQ) */
  const float *xs; /* per row [m] (INT8DQ, FP8_INT4), per 1x128 block [m, kb] (FP8DQ_BLOCK) */
  int64_t n, k, row_bytes, kb;
  int group;
} dargs;

static __device__ __forceinline__ void mma_s8(int c[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                              uint32_t a3, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* W words of one lane group: 16-, 8- or 4-byte loads (streamed: each weight byte is read once) */
template <int W>
static __device__ __forceinline__ void ld_group(const uint8_t *p, uint32_t o[W]) {
  if constexpr (W % 4 == 0) {
#pragma unroll
    for (int i = 0; i < W / 4; i++) {
      uint4 v = aoq_ld_stream16(p + 16 * i);
      o[4 * i] = v.x, o[4 * i + 1] = v.y, o[4 * i + 2] = v.z, o[4 * i + 3] = v.w;
    }
  } else if constexpr (W % 2 == 0) {
#pragma unroll
    for (int i = 0; i < W / 2; i++) {
      uint2 v;
      asm volatile("ld.global.nc.L1::no_allocate.v2.u32 {%0,%1}, [%2];"
                   : "=r"(v.x), "=r"(v.y)
                   : "l"(p + 8 * i));
      o[2 * i] = v.x, o[2 * i + 1] = v.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < W; i++)
      asm volatile("ld.global.nc.L1::no_allocate.u32 %0, [%1];" : "=r"(o[i]) : "l"(p + 4 * i));
  }
}

/* The codes of elements 2p and 2p+1 of a lane group of a B-bit LSB-first stream, in bits
 * [0, B) and [16, 16 + B) (B <= 8: a pair spans at most two words). */
template <int B>
static __device__ __forceinline__ uint32_t code_pair(const uint32_t wd[B], int p) {
  const int bit = 2 * p * B, wi = bit >> 5, sh = bit & 31;
  uint32_t t = (sh + 2 * B <= 32) ? wd[wi] >> sh : __funnelshift_r(wd[wi], wd[wi + 1], sh);
  const uint32_t M = ((1u << B) - 1u) * 0x10001u;
  if constexpr (B == 8) return __byte_perm(t, 0, 0x4140) & M;
  return __byte_perm(t, t << (16 - B), 0x7610) & M;
}

/* Elements 2p and 2p+1 of a signed B-bit stream as the bf16x2 of (q * s) rounded once (RNE), or
 * of q itself where s2 is 1. B <= 7: the offset-binary code q + 2^(B-1) sits under the bf16
 * exponent of 128, so one bf16x2 subtraction gives q exactly and one multiply rounds q * s
 * (exact in fp32: 8 x 8 significant bits) as the reference does. */
template <int B>
static __device__ __forceinline__ uint32_t intx_pair(const uint32_t wd[B], int p, aoq_bf162 s2) {
  const uint32_t u = code_pair<B>(wd, p);
  if constexpr (B == 8) {
    float lo = (float)(int8_t)(u & 0xffu), hi = (float)(int8_t)(u >> 16);
    float s = __low2float(s2);
    return pack_bf2(lo * s, hi * s);
  } else {
    const uint32_t v = u ^ (((1u << (B - 1)) | 0x4300u) * 0x10001u);
    const uint32_t kb = (uint32_t)aoq_f32_to_bf16(128.0f + (float)(1 << (B - 1))) * 0x10001u;
    aoq_bf162 q = __hsub2_rn(*(const aoq_bf162 *)&v, *(const aoq_bf162 *)&kb);
    aoq_bf162 d = __hmul2_rn(q, s2);
    return *(uint32_t *)&d;
  }
}

/* --- format descriptions: W words per lane group, the operand kind, scales, epilogue --- */

enum { DK_BF16 = 0, DK_S8 = 1 }; /* mma kind */

/* Groups that are odd multiples of 16 (16, 48, ...; H = true): the two 16-element halves of lane
 * group lg may lie in two groups. The scale indices of both halves within a row: a group boundary
 * is a multiple of 16, so the second half moves to the next group exactly when the first half is
 * the last 16 elements of its group (no second division). */
static __device__ __forceinline__ void half_idx(const dargs &a, int64_t lg, int64_t &i0,
                                                int64_t &i1) {
  const int64_t e = lg * 32;
  i0 = e / a.group;
  i1 = i0 + (e - i0 * a.group + 16 == a.group);
}

/* INTXWO / INT8_INTX / INT8_INT4: bf16 group scales, any group that is a multiple of 32 (H: of
 * 16; pairs 0..7 of a lane group take s[0], pairs 8..15 s[1]) */
template <int B, bool H = false>
struct DxIntx {
  enum { W = B, MMA = DK_BF16, GS = 0 };
  struct P {
    aoq_bf162 s[H ? 2 : 1];
  };
  static __device__ P prm(const dargs &a, int64_t row, int64_t lg) {
    P p;
    if constexpr (H) {
      const uint16_t *sc = (const uint16_t *)a.scale + row * (a.k / a.group);
      int64_t i0, i1;
      half_idx(a, lg, i0, i1);
      const uint32_t s0 = (uint32_t)sc[i0] * 0x10001u, s1 = (uint32_t)sc[i1] * 0x10001u;
      p.s[0] = *(const aoq_bf162 *)&s0, p.s[1] = *(const aoq_bf162 *)&s1;
    } else {
      uint16_t s = ((const uint16_t *)a.scale)[row * (a.k / a.group) + lg * 32 / a.group];
      uint32_t ss = (uint32_t)s * 0x10001u;
      p.s[0] = *(aoq_bf162 *)&ss;
    }
    return p;
  }
  static __device__ uint32_t pair(const uint32_t wd[W], int p, const P &pr) {
    return intx_pair<B>(wd, p, pr.s[H && p >= 8 ? 1 : 0]);
  }
  static __device__ float gscale(const dargs &, int64_t, int, int64_t) {
    return 1.0f;
  }
  static __device__ float epi(float acc, const dargs &, int64_t, int) {
    return acc;
  }
};

/* W158: 2-bit codes q + 1 (q in -1..1), one bf16 scale per tensor: bf16(q * s) */
struct DxW158 {
  enum { W = 2, MMA = DK_BF16, GS = 0 };
  struct P {
    aoq_bf162 s;
  };
  static __device__ P prm(const dargs &a, int64_t, int64_t) {
    uint32_t ss = (uint32_t)((const uint16_t *)a.scale)[0] * 0x10001u;
    P p;
    p.s = *(aoq_bf162 *)&ss;
    return p;
  }
  static __device__ uint32_t pair(const uint32_t wd[W], int p, const P &pr) {
    const uint32_t v = code_pair<2>(wd, p) | 0x43004300u, k129 = 0x43014301u; /* 128 + c, 129 */
    aoq_bf162 d = __hmul2_rn(__hsub2_rn(*(const aoq_bf162 *)&v, *(const aoq_bf162 *)&k129), pr.s);
    return *(uint32_t *)&d;
  }
  static __device__ float gscale(const dargs &, int64_t, int, int64_t) {
    return 1.0f;
  }
  static __device__ float epi(float acc, const dargs &, int64_t, int) {
    return acc;
  }
};

/* FP6 (E3M2 / E2M3): 6-bit codes, bit 5 the sign, one bf16 scale per row: bf16(fp6 * s). The
 * 5 magnitude bits placed at the top of the fp32 mantissa/exponent fields are 2^-(127 - bias)
 * times the value (subnormals included), so one multiply decodes them. */
template <int MB> /* mantissa bits: 2 (E3M2, bias 3) or 3 (E2M3, bias 1) */
struct DxFp6 {
  enum { W = 6, MMA = DK_BF16, GS = 0 };
  struct P {
    float s;
  };
  static __device__ P prm(const dargs &a, int64_t row, int64_t) {
    P p;
    p.s = aoq_bf16_to_f32(((const uint16_t *)a.scale)[row]);
    return p;
  }
  static __device__ float val(uint32_t c) {
    const float mul = MB == 2 ? 0x1p124f : 0x1p126f; /* 2^(127 - bias) */
    return __uint_as_float(((c & 31u) << (23 - MB)) | ((c & 32u) << 26)) * mul;
  }
  static __device__ uint32_t pair(const uint32_t wd[W], int p, const P &pr) {
    const uint32_t u = code_pair<6>(wd, p);
    return pack_bf2(val(u & 63u) * pr.s, val(u >> 16) * pr.s);
  }
  static __device__ float gscale(const dargs &, int64_t, int, int64_t) {
    return 1.0f;
  }
  static __device__ float epi(float acc, const dargs &, int64_t, int) {
    return acc;
  }
};

/* CODEBOOK: unsigned B-bit indices into a bf16 codebook of 2^B entries (aux, read through L1),
 * bf16 group scales (groups as DxIntx's, H likewise): bf16(codebook[c] * s) */
template <int B, bool H = false>
struct DxCb {
  enum { W = B, MMA = DK_BF16, GS = 0 };
  struct P {
    float s[H ? 2 : 1];
    const uint16_t *cb;
  };
  static __device__ P prm(const dargs &a, int64_t row, int64_t lg) {
    P p;
    if constexpr (H) {
      const uint16_t *sc = (const uint16_t *)a.scale + row * (a.k / a.group);
      int64_t i0, i1;
      half_idx(a, lg, i0, i1);
      p.s[0] = aoq_bf16_to_f32(sc[i0]), p.s[1] = aoq_bf16_to_f32(sc[i1]);
    } else {
      p.s[0] =
          aoq_bf16_to_f32(((const uint16_t *)a.scale)[row * (a.k / a.group) + lg * 32 / a.group]);
    }
    p.cb = (const uint16_t *)a.aux;
    return p;
  }
  static __device__ uint32_t pair(const uint32_t wd[W], int p, const P &pr) {
    const uint32_t u = code_pair<B>(wd, p);
    const float s = pr.s[H && p >= 8 ? 1 : 0];
    float lo = aoq_bf16_to_f32(__ldg(pr.cb + (u & 0xffu))),
          hi = aoq_bf16_to_f32(__ldg(pr.cb + (u >> 16)));
    return pack_bf2(lo * s, hi * s);
  }
  static __device__ float gscale(const dargs &, int64_t, int, int64_t) {
    return 1.0f;
  }
  static __device__ float epi(float acc, const dargs &, int64_t, int) {
    return acc;
  }
};

/* FP8_INT4: signed 4-bit stream, f32 scale per 128-group; x e4m3 (exact in bf16) */
struct DxF8I4 {
  enum { W = 4, MMA = DK_BF16, GS = 1 };
  struct P {};
  static __device__ P prm(const dargs &, int64_t, int64_t) {
    return P();
  }
  static __device__ uint32_t pair(const uint32_t wd[W], int p, const P &) {
    const uint32_t one = 0x3f803f80u;
    return intx_pair<4>(wd, p, *(const aoq_bf162 *)&one);
  }
  static __device__ float gscale(const dargs &a, int64_t row, int, int64_t grp) {
    return ((const float *)a.scale)[row * (a.k / 128) + grp];
  }
  static __device__ float epi(float acc, const dargs &a, int64_t, int col) {
    return acc * a.xs[col];
  }
};

/* FP8DQ_BLOCK: e4m3 W, f32 scale per 128 x 128 block; x e4m3 with f32 scales per 1 x 128 */
struct DxF8Blk {
  enum { W = 8, MMA = DK_BF16, GS = 1 };
  struct P {};
  static __device__ P prm(const dargs &, int64_t, int64_t) {
    return P();
  }
  static __device__ uint32_t pair(const uint32_t wd[W], int p, const P &) {
    float2 f = aoq_e4m3x2_to_f32x2(wd[p >> 1] >> (16 * (p & 1)));
    return pack_bf2(f.x, f.y); /* exact */
  }
  static __device__ float gscale(const dargs &a, int64_t row, int col, int64_t grp) {
    return a.xs[col * a.kb + grp] * ((const float *)a.scale)[(row / 128) * a.kb + grp];
  }
  static __device__ float epi(float acc, const dargs &, int64_t, int) {
    return acc;
  }
};

/* INT8DQ: raw int8 on the integer tensor cores */
struct DxI8 {
  enum { W = 8, MMA = DK_S8, GS = 0 };
  struct P {};
  static __device__ P prm(const dargs &, int64_t, int64_t) {
    return P();
  }
  static __device__ float epi(int acc, const dargs &a, int64_t row, int col) {
    return aoq_round_bf16((float)acc * a.xs[col]) * ((const float *)a.scale)[row];
  }
};

template <class D>
struct dec_acc {
  typedef float t;
};
/* the half-group variants (groups of 16, 48, ...) */
template <class D>
struct dec_half {
  enum { v = 0 };
};
template <int B>
struct dec_half<DxIntx<B, true>> {
  enum { v = 1 };
};
template <int B>
struct dec_half<DxCb<B, true>> {
  enum { v = 1 };
};
template <>
struct dec_acc<DxI8> {
  typedef int t;
};

/* lane groups in flight per lane: more where they are small (memory parallelism), fewer where
 * they are 24..32 bytes per row */
template <class D>
struct dec_u {
  enum { v = D::W <= 2 ? 4 : D::W <= 4 ? 2 : 1 };
};

/* One lane group (32 elements of rows g and g+8) through 8 bf16 mma per n-tile: pair p of the
 * lane group is k-slot pair p % 2 of mma p / 2, and x's 16-byte load h holds pairs 4h..4h+3. */
template <class D, int NT>
static __device__ __forceinline__ void dec_mma_bf16(const uint32_t wa[D::W],
                                                    const uint32_t wb[D::W],
                                                    const typename D::P &pa,
                                                    const typename D::P &pb,
                                                    const uint8_t *const xr[NT], const bool xv[NT],
                                                    bool ok, int64_t lg, float c[NT][4]) {
#pragma unroll
  for (int h = 0; h < 4; h++) {
    uint4 xq[NT];
#pragma unroll
    for (int t = 0; t < NT; t++)
      xq[t] = ok && xv[t] ? *(const uint4 *)(xr[t] + lg * 64 + h * 16) : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int j = 0; j < 2; j++) {
      const int p = 4 * h + 2 * j;
      uint32_t A0 = D::pair(wa, p, pa), A2 = D::pair(wa, p + 1, pa);
      uint32_t A1 = D::pair(wb, p, pb), A3 = D::pair(wb, p + 1, pb);
#pragma unroll
      for (int t = 0; t < NT; t++)
        mma16816(c[t], A0, A1, A2, A3, j ? xq[t].z : xq[t].x, j ? xq[t].w : xq[t].y);
    }
  }
}

template <class D, int NT, int MW>
__global__ void __launch_bounds__(MW * 32, NT == 1 ? 32 / MW : 1)
    k_dec(dargs a, uint16_t *__restrict__ y, int m) {
  AOQ_PDL_WAIT();
  typedef typename dec_acc<D>::t acc_t;
  constexpr int W = D::W, U = dec_u<D>::v;
  __shared__ acc_t red[MW][16][8 * NT];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, c = lane & 3;
  const int64_t row0 = (int64_t)blockIdx.x * 16;
  const int64_t ra = min(row0 + g, a.n - 1), rb = min(row0 + g + 8, a.n - 1);
  const uint8_t *qa = a.q + ra * a.row_bytes, *qb = a.q + rb * a.row_bytes;
  const int xe = (int)D::MMA == (int)DK_S8 ? 1 : 2; /* bytes per x element */
  const uint8_t *xr[NT];
  bool xv[NT];
#pragma unroll
  for (int t = 0; t < NT; t++)
    xv[t] = g + 8 * t < m, xr[t] = (const uint8_t *)a.x + (xv[t] ? g + 8 * t : 0) * a.k * xe;
  acc_t acc[NT][4];
#pragma unroll
  for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = 0;
  const int64_t nlg = a.k / 32, step = (int64_t)MW * 4;
  for (int64_t s0 = (int64_t)warp * 4; s0 < nlg; s0 += step * U) {
    uint32_t wa[U][W], wb[U][W];
    typename D::P pa[U], pb[U];
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int64_t lg = s0 + u * step + c;
      if (lg < nlg) {
        ld_group<W>(qa + lg * 4 * W, wa[u]);
        ld_group<W>(qb + lg * 4 * W, wb[u]);
      } else {
#pragma unroll
        for (int i = 0; i < W; i++) wa[u][i] = wb[u][i] = 0; /* decodes to 0 in every format */
      }
    }
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int64_t lg = min(s0 + u * step + c, nlg - 1);
      pa[u] = D::prm(a, ra, lg), pb[u] = D::prm(a, rb, lg);
    }
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int64_t lg = s0 + u * step + c;
      if (s0 + u * step >= nlg) break; /* warp-uniform: no lane of the quad has work */
      const bool ok = lg < nlg;
      if constexpr ((int)D::MMA == (int)DK_S8) {
#pragma unroll
        for (int t = 0; t < NT; t++) {
          uint4 x0 = make_uint4(0, 0, 0, 0), x1 = x0;
          if (ok && xv[t]) {
            x0 = *(const uint4 *)(xr[t] + lg * 32);
            x1 = *(const uint4 *)(xr[t] + lg * 32 + 16);
          }
          const uint32_t xw[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
          int *ac = (int *)acc[t];
#pragma unroll
          for (int j = 0; j < 4; j++)
            mma_s8(ac, wa[u][2 * j], wb[u][2 * j], wa[u][2 * j + 1], wb[u][2 * j + 1], xw[2 * j],
                   xw[2 * j + 1]);
        }
      } else if constexpr (D::GS == 0) {
        dec_mma_bf16<D, NT>(wa[u], wb[u], pa[u], pb[u], xr, xv, ok, lg, acc);
      } else {
        float part[NT][4];
#pragma unroll
        for (int t = 0; t < NT; t++) part[t][0] = part[t][1] = part[t][2] = part[t][3] = 0;
        dec_mma_bf16<D, NT>(wa[u], wb[u], pa[u], pb[u], xr, xv, ok, lg, part);
        if (ok) { /* the quad's 4 lane groups are one 128-group (k % 128 == 0) */
          const int64_t grp = lg >> 2;
#pragma unroll
          for (int t = 0; t < NT; t++) {
            const int c0 = 8 * t + 2 * c; /* columns past m: no x scales to read */
            if (c0 < m) {
              acc[t][0] += part[t][0] * D::gscale(a, ra, c0, grp);
              acc[t][2] += part[t][2] * D::gscale(a, rb, c0, grp);
            }
            if (c0 + 1 < m) {
              acc[t][1] += part[t][1] * D::gscale(a, ra, c0 + 1, grp);
              acc[t][3] += part[t][3] * D::gscale(a, rb, c0 + 1, grp);
            }
          }
        }
      }
    }
  }
  mma_red_put<MW, NT>(red, acc, warp, g, c);
  mma_red_store<MW, NT>(red, row0, a.n, m, y,
                        [&](acc_t v, int64_t row, int col) { return D::epi(v, a, row, col); });
}

/* 16 rows per block; warps per block (the k split) from n only: ~32 warps per SM where the
 * rows alone do not fill the SMs; 8 at most for wide tiles (shared memory of the reduction). The
 * half-group variants take 8 warps at every n (fewer kernels to build; not tuned).
 * aoq_launch: with PDL the kernel starts under its predecessor's tail and waits (AOQ_PDL_WAIT)
 * before its first load, as the GEMV kernels do. */
template <class D, int NT>
static int dec_launch(const dargs &a, uint16_t *y, int m, aoq_gpu_stream_t st) {
  unsigned blocks = (unsigned)((a.n + 15) / 16);
  if constexpr (dec_half<D>::v) {
    return aoq_launch(k_dec<D, NT, 8>, blocks, 256, 0, st, a, y, m);
  } else {
    if (blocks >= 1024) return aoq_launch(k_dec<D, NT, 4>, blocks, 128, 0, st, a, y, m);
    if (blocks >= 512 || aoq_gk_batch_invariant())
      return aoq_launch(k_dec<D, NT, 8>, blocks, 256, 0, st, a, y, m);
    if constexpr (NT < 4)
      return aoq_launch(k_dec<D, NT, 16>, blocks, 512, 0, st, a, y, m);
    else
      return aoq_launch(k_dec<D, NT, 8>, blocks, 256, 0, st, a, y, m);
  }
}

template <class D>
static int dec_rows(const dargs &a, uint16_t *y, int m, aoq_gpu_stream_t st) {
  if (m <= 8) return dec_launch<D, 1>(a, y, m, st);
  if (m <= 16) return dec_launch<D, 2>(a, y, m, st);
  if (m <= 32) return dec_launch<D, 4>(a, y, m, st);
  return dec_launch<D, 8>(a, y, m, st);
}

static bool dec_format(aoq_format_kind k) {
  return k == AOQ_FMT_INTXWO || k == AOQ_FMT_INT8_INTX || k == AOQ_FMT_INT8_INT4 ||
         k == AOQ_FMT_INT8DQ || k == AOQ_FMT_FP8_INT4 || k == AOQ_FMT_FP8DQ_BLOCK ||
         k == AOQ_FMT_W158 || k == AOQ_FMT_FP6_E3M2 || k == AOQ_FMT_FP6_E2M3 ||
         k == AOQ_FMT_CODEBOOK;
}

/* f(T<bits, H>{}) for bits 1..8 */
template <template <int, bool> class T, bool H, class F>
static int by_bits(int bits, F &&f) {
  switch (bits) {
    case 1:
      return f(T<1, H>{});
    case 2:
      return f(T<2, H>{});
    case 3:
      return f(T<3, H>{});
    case 4:
      return f(T<4, H>{});
    case 5:
      return f(T<5, H>{});
    case 6:
      return f(T<6, H>{});
    case 7:
      return f(T<7, H>{});
    default:
      return f(T<8, H>{});
  }
}

template <class F>
static int with_dec(const aoq_qweight *w, F &&f) {
  const bool half = w->group > 0 && w->group % 32 != 0; /* 16, 48, ... (dec_check) */
  switch (w->kind) {
    case AOQ_FMT_INT8DQ:
      return f(DxI8{});
    case AOQ_FMT_FP8_INT4:
      return f(DxF8I4{});
    case AOQ_FMT_FP8DQ_BLOCK:
      return f(DxF8Blk{});
    case AOQ_FMT_W158:
      return f(DxW158{});
    case AOQ_FMT_FP6_E3M2:
      return f(DxFp6<2>{});
    case AOQ_FMT_FP6_E2M3:
      return f(DxFp6<3>{});
    case AOQ_FMT_CODEBOOK:
      return half ? by_bits<DxCb, true>(w->bits, f) : by_bits<DxCb, false>(w->bits, f);
    default: /* INTXWO, INT8_INTX, INT8_INT4 */
      return half ? by_bits<DxIntx, true>(w->bits, f) : by_bits<DxIntx, false>(w->bits, f);
  }
}

static const char *dec_check(const aoq_qweight *w) {
  const int64_t g = w->group > 0 ? w->group : w->k;
  if (w->n <= 0 || w->k <= 0) return "empty weight";
  if (!w->qdata || ((uintptr_t)w->qdata & 15)) return "qdata NULL or not 16-byte aligned";
  if (!w->scale) return "scale NULL";
  switch (w->kind) {
    case AOQ_FMT_INT8DQ:
      if (w->k % 32) return "int8dq: k must be a multiple of 32";
      if (w->k >= 131072) return "int8dq: k >= 131072 (int32 sums)";
      return 0;
    case AOQ_FMT_FP8_INT4:
      if (w->k % 128 || g != 128) return "fp8-int4: k must be a multiple of 128, group 128";
      return 0;
    case AOQ_FMT_FP8DQ_BLOCK:
      if (w->k % 128) return "fp8dq-block: k must be a multiple of 128";
      return 0;
    case AOQ_FMT_W158:
    case AOQ_FMT_FP6_E3M2:
    case AOQ_FMT_FP6_E2M3:
      if (w->k % 32) return "w158 / fp6: k must be a multiple of 32";
      if ((uintptr_t)w->scale & 1) return "w158 / fp6: scale not 2-byte aligned";
      return 0;
    case AOQ_FMT_CODEBOOK:
      if (!w->aux || ((uintptr_t)w->aux & 1)) return "codebook: aux (the codebook) NULL or odd";
      [[fallthrough]]; /* the stream and group rules of intx */
    default:
      if (w->bits < 1 || w->bits > 8) return "intx / codebook: bits must be 1..8";
      if (w->k % 32 || g % 16 || w->k % g)
        return "intx / codebook: k must be a multiple of 32 and the group a multiple of 16 "
               "dividing k";
      if ((uintptr_t)w->scale & 1) return "intx / codebook: scale not 2-byte aligned";
      return 0;
  }
}

/* The kernels' view of w (x, xs: set by the caller) */
static dargs dec_args(const aoq_qweight *w) {
  dargs a;
  a.q = (const uint8_t *)w->qdata;
  a.scale = w->scale;
  a.aux = w->aux;
  a.x = 0;
  a.xs = 0;
  a.n = w->n, a.k = w->k, a.kb = w->k / 128;
  const bool per_row = w->kind == AOQ_FMT_FP6_E3M2 || w->kind == AOQ_FMT_FP6_E2M3 ||
                       w->kind == AOQ_FMT_W158 || w->group <= 0;
  a.group = (int)(per_row ? w->k : w->group);
  const int bits = w->kind == AOQ_FMT_INT8DQ || w->kind == AOQ_FMT_FP8DQ_BLOCK  ? 8
                   : w->kind == AOQ_FMT_W158                                    ? 2
                   : w->kind == AOQ_FMT_FP6_E3M2 || w->kind == AOQ_FMT_FP6_E2M3 ? 6
                                                                                : w->bits;
  a.row_bytes = (w->k * bits + 31) / 32 * 4;
  return a;
}

/* y = x @ W^T for the formats above; ws: act_quant.cu's workspace for the dynamic ones */
static int dec_linear(const aoq_qweight *w, const uint16_t *x, uint16_t *y, int64_t m, void *ws,
                      aoq_gpu_stream_t st) {
  dargs a = dec_args(w);
  a.x = x;
  if ((uintptr_t)x & 15) return (int)cudaErrorMisalignedAddress; /* 16-byte x loads */
  const bool i8 = w->kind == AOQ_FMT_INT8DQ;
  if (w->kind == AOQ_FMT_INT8DQ || w->kind == AOQ_FMT_FP8DQ_BLOCK || w->kind == AOQ_FMT_FP8_INT4 ||
      w->kind == AOQ_FMT_INT8_INTX || w->kind == AOQ_FMT_INT8_INT4) {
    if (!ws) return (int)cudaErrorInvalidValue;
    int rc = aoq_gk_act_quant(w, x, m, ws, st);
    if (rc) return rc;
    size_t off;
    aoq_gk_act_layout(m, w->k, &off);
    a.x = ws;
    a.xs = (const float *)((const char *)ws + off);
  }
  const int64_t per = w->kind == AOQ_FMT_FP8DQ_BLOCK ? a.kb : 1; /* scales per x row */
  for (int64_t r0 = 0; r0 < m; r0 += 64) {
    int mm = (int)(m - r0 < 64 ? m - r0 : 64);
    dargs as = a;
    as.x = (const uint8_t *)a.x + r0 * w->k * (i8 ? 1 : 2);
    if (a.xs) as.xs = a.xs + r0 * per;
    int rc = with_dec(w, [&](auto d) { return dec_rows<decltype(d)>(as, y + r0 * w->n, mm, st); });
    if (rc) return rc;
  }
  return 0;
}

/* Weight rows [r0, r0 + rows) of the weight-only decoders as bf16 [rows, k], through the same
 * pair() as k_dec (the operand of the cuBLAS path, devices/cuda/cublas.c): one thread per lane
 * group, 64 contiguous output bytes. */
template <class D>
__global__ void k_dec_rows(dargs a, int64_t r0, int64_t rows, uint16_t *__restrict__ out) {
  const int64_t nlg = a.k / 32, total = rows * nlg;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / nlg, lg = i % nlg, row = r0 + r;
    uint32_t wd[D::W];
    ld_group<D::W>(a.q + row * a.row_bytes + lg * 4 * D::W, wd);
    const typename D::P p = D::prm(a, row, lg);
    uint4 *o = (uint4 *)(out + r * a.k + lg * 32);
#pragma unroll
    for (int h = 0; h < 4; h++)
      o[h] = make_uint4(D::pair(wd, 4 * h, p), D::pair(wd, 4 * h + 1, p), D::pair(wd, 4 * h + 2, p),
                        D::pair(wd, 4 * h + 3, p));
  }
}

static int dec_dequant_rows(const aoq_qweight *w, int64_t r0, int64_t rows, uint16_t *out,
                            aoq_gpu_stream_t st) {
  if (!dec_format(w->kind) || dec_check(w) || rows <= 0 || r0 < 0 || r0 + rows > w->n)
    return (int)cudaErrorInvalidValue;
  const dargs a = dec_args(w);
  return with_dec(w, [&](auto d) {
    typedef decltype(d) D;
    if constexpr (D::GS == 0 && (int)D::MMA == (int)DK_BF16) {
      int64_t g = (rows * (w->k / 32) + 255) / 256;
      k_dec_rows<D><<<(unsigned)(g > 65535 ? 65535 : g), 256, 0, st>>>(a, r0, rows, out);
      return (int)aoq_gpu_get_last_error();
    } else {
      return (int)cudaErrorInvalidValue; /* int8dq, fp8-int4, fp8dq-block: not dequant-then-mm */
    }
  });
}

#endif /* AOQ_HAVE_MMA_BF16 */
#endif
