/*
 * linear_gemv.h — part of kernels/gpu/linear.cu (included once, after the decoders and
 * with_decoder): the GEMV for m <= 64 rows of x. The FMA GEMV (HIP, and bf16/int8wo at m <= 2 on
 * CUDA) and the tensor-core GEMV (m = 1..64, CUDA) with their launchers; `launch<D>` picks one.
 * Defines GEMV_SLICE, the rows of x one GEMV launch takes.
 */
template <class D, int M, int R>
__global__ void __launch_bounds__(LIN_WARPS * 32)
    k_gemv(wargs w, const uint16_t *__restrict__ x, uint16_t *__restrict__ y, int m) {
  AOQ_PDL_WAIT();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t row0 = ((int64_t)blockIdx.x * LIN_WARPS + warp) * R;
  if (row0 >= w.n) return;
  float acc[R][M];
#pragma unroll
  for (int r = 0; r < R; r++)
#pragma unroll
    for (int i = 0; i < M; i++) acc[r][i] = 0;
  const int64_t nch = w.k / D::EPL;
  const uint8_t *qr[R];
#pragma unroll
  for (int r = 0; r < R; r++) qr[r] = w.q + (row0 + r < w.n ? row0 + r : row0) * w.row_bytes;
  constexpr int U = R == 1 ? 4 : 2; /* chunks in flight per lane */
  for (int64_t c0 = lane; c0 < nch; c0 += 32 * U) {
    uint4 raw[U][R];
#pragma unroll
    for (int u = 0; u < U; u++)
#pragma unroll
      for (int r = 0; r < R; r++)
        if (c0 + u * 32 < nch) raw[u][r] = aoq_ld_stream16(qr[r] + (c0 + u * 32) * 16);
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int64_t c = c0 + u * 32;
      if (c >= nch) break;
      typename D::P prm[R];
#pragma unroll
      for (int r = 0; r < R; r++) prm[r] = D::prm(w, row0 + r < w.n ? row0 + r : row0, c);
#pragma unroll
      for (int sub = 0; sub < D::EPL / 8; sub++) {
        float wf[R][8];
#pragma unroll
        for (int r = 0; r < R; r++) D::dec8(raw[u][r], sub, prm[r], wf[r]);
#pragma unroll
        for (int i = 0; i < M; i++) {
          if (i >= m) break;
          uint4 xv = *(const uint4 *)(x + (int64_t)i * w.k + c * D::EPL + sub * 8);
          float xf[8];
#pragma unroll
          for (int j = 0; j < 4; j++)
            xf[2 * j] = bf_lo(word(xv, j)), xf[2 * j + 1] = bf_hi(word(xv, j));
#pragma unroll
          for (int r = 0; r < R; r++)
#pragma unroll
            for (int j = 0; j < 8; j++) acc[r][i] = fmaf(wf[r][j], xf[j], acc[r][i]);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; r++)
#pragma unroll
    for (int i = 0; i < M; i++) {
      float v = acc[r][i];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) v += AOQ_SHFL_XOR(v, o);
      acc[r][i] = v;
    }
  if (lane < M && lane < m) {
#pragma unroll
    for (int r = 0; r < R; r++) {
      if (row0 + r >= w.n) break;
      float v = 0;
#pragma unroll
      for (int i = 0; i < M; i++)
        if (i == lane) v = acc[r][i];
      y[(int64_t)lane * w.n + row0 + r] = aoq_f32_to_bf16(D::epi(v, w, row0 + r, lane));
    }
  }
}

template <class D, int M, int R>
static int launch_mr(const wargs &w, const uint16_t *x, uint16_t *y, int m, aoq_gpu_stream_t st) {
  int64_t rows_per_block = (int64_t)LIN_WARPS * R;
  unsigned blocks = (unsigned)((w.n + rows_per_block - 1) / rows_per_block);
  return aoq_launch(k_gemv<D, M, R>, blocks, LIN_WARPS * 32, 0, st, w, x, y, m);
}

#ifdef AOQ_HAVE_MMA_BF16
/* ---- m = 1..16 on tensor cores: mma.sync m16n8k16, weights as A (16 rows), x as B ----
 * The dot product over k does not care which k a register slot stands for, as long as A and B
 * agree: lane (g = lane/4, c = lane%4) loads chunk c of the current step for rows g and g+8 and
 * x[g] (x[g+8] for the second n-tile) at the same k, so every 16-byte load feeds the tensor core
 * without shuffles. A block's 4 warps share 16 weight rows and split k; fp32 partial tiles are
 * summed in shared memory. */
static __device__ __forceinline__ void mma16816(float c[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                                uint32_t a3, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* the weight stream of the GEMV; with the L2 256-byte prefetch (wargs.pf bit 1) DRAM serves
 * 256-byte bursts of a row where the block's warps ask for 64 bytes each */
static __device__ __forceinline__ uint4 ld_w(const wargs &w, const void *p) {
  if (!(w.pf & 2)) return aoq_ld_stream16(p);
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
}

/* x's 8 bf16 values of one sub-chunk as mma's B registers, in the decoder's pair order */
template <class D>
static __device__ __forceinline__ void x_pairs(const uint4 &v, uint32_t X[4]) {
  if (D::PAIR == 0) {
    X[0] = v.x, X[1] = v.y, X[2] = v.z, X[3] = v.w;
  } else { /* pairs (j, j + 4) */
    X[0] = __byte_perm(v.x, v.z, 0x5410), X[1] = __byte_perm(v.x, v.z, 0x7632);
    X[2] = __byte_perm(v.y, v.w, 0x5410), X[3] = __byte_perm(v.y, v.w, 0x7632);
  }
}

/* mma_chunk's x side, from global memory: rows xr[t] of x (xv[t]: the row exists), chunk ch */
template <class D, int NT>
struct XGlobal {
  enum { SUMS = 0 }; /* no precomputed x sums: the folded decoder sums x by mma */
  const uint16_t *xr[NT];
  bool xv[NT];
  int64_t ch;
  __device__ __forceinline__ void get(int t, int sub, uint32_t X[4]) const {
    x_pairs<D>(xv[t] ? *(const uint4 *)(xr[t] + ch * D::EPL + sub * 8) : make_uint4(0, 0, 0, 0), X);
  }
  __device__ __forceinline__ float sum(int) const {
    return 0;
  }
};

/* One 16-byte chunk per lane of weight rows g (wa) and g + 8 (wb): decoded (or, FOLD, the raw
 * magic-number values) into mma's A, x's same k (XF: XGlobal, or linear_tma.h's staged copy,
 * which may carry the x sums of the chunk's 128 k) as B, summed into acc. */
template <class D, int NT, class XF>
static __device__ __forceinline__ void mma_chunk(const uint4 &wa, const uint4 &wb,
                                                 const typename D::P &pa, const typename D::P &pb,
                                                 const XF &xf, float acc[NT][4]) {
  constexpr bool FOLD = i4fold<D>::v;
  static_assert(!XF::SUMS || NT == 1, "precomputed x sums: one n-tile");
  /* FOLD: the group's raw sums (128 + q) x and its x sums, scaled into acc after the chunk
   * (a quad's 4 chunks are 128 k of one group) */
  float gs[NT][4], xs[NT][4], gs2[NT][4]; /* gs2 (x sums given): a second chain of the mma */
  if constexpr (FOLD) {
#pragma unroll
    for (int t = 0; t < NT; t++)
#pragma unroll
      for (int i = 0; i < 4; i++) gs[t][i] = xs[t][i] = gs2[t][i] = 0;
  }
#pragma unroll
  for (int sub = 0; sub < D::EPL / 8; sub++) {
    uint32_t A[4], B[4], X[NT][4];
    if constexpr (FOLD) {
      D::raw8p(wa, sub, A);
      D::raw8p(wb, sub, B);
    } else {
      D::dec8p(wa, sub, pa, A);
      D::dec8p(wb, sub, pb, B);
    }
#pragma unroll
    for (int t = 0; t < NT; t++) xf.get(t, sub, X[t]);
#pragma unroll
    for (int t = 0; t < NT; t++) {
      if constexpr (FOLD) {
        mma16816(gs[t], A[0], B[0], A[1], B[1], X[t][0], X[t][1]);
        mma16816(XF::SUMS ? gs2[t] : gs[t], A[2], B[2], A[3], B[3], X[t][2], X[t][3]);
        if constexpr (!XF::SUMS) {
          const uint32_t one = 0x3f803f80u; /* bf16 1.0 twice */
          mma16816(xs[t], one, one, one, one, X[t][0], X[t][1]);
          mma16816(xs[t], one, one, one, one, X[t][2], X[t][3]);
        }
      } else {
        mma16816(acc[t], A[0], B[0], A[1], B[1], X[t][0], X[t][1]);
        mma16816(acc[t], A[2], B[2], A[3], B[3], X[t][2], X[t][3]);
      }
    }
  }
  if constexpr (FOLD) { /* rows g (tile elements 0, 1) and g + 8 (2, 3); xs rows are equal */
    if constexpr (XF::SUMS) {
      xs[0][0] = xf.sum(0), xs[0][1] = xf.sum(1);
#pragma unroll
      for (int i = 0; i < 4; i++) gs[0][i] += gs2[0][i];
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
      acc[t][0] += fmaf(pa.s, gs[t][0], pa.c * xs[t][0]);
      acc[t][1] += fmaf(pa.s, gs[t][1], pa.c * xs[t][1]);
      acc[t][2] += fmaf(pb.s, gs[t][2], pb.c * xs[t][0]);
      acc[t][3] += fmaf(pb.s, gs[t][3], pb.c * xs[t][1]);
    }
  }
}

template <class D, int NT, int U, bool FULL>
static __device__ __forceinline__ void mma_step(const wargs &w, const uint8_t *qa,
                                                const uint8_t *qb, int64_t ra, int64_t rb,
                                                const uint16_t *const xr[NT], const bool xv[NT],
                                                int64_t s0, int64_t step, int64_t nch,
                                                float acc[NT][4]) {
  uint4 wa[U], wb[U];
  typename D::P pa[U], pb[U];
#pragma unroll
  for (int u = 0; u < U; u++) {
    const int64_t ch = s0 + u * step;
    if (FULL || ch < nch) wa[u] = ld_w(w, qa + ch * 16), wb[u] = ld_w(w, qb + ch * 16);
  }
#pragma unroll
  for (int u = 0; u < U; u++) {
    const int64_t ch = s0 + u * step;
    if (FULL || ch < nch) pa[u] = D::prm(w, ra, ch), pb[u] = D::prm(w, rb, ch);
  }
#pragma unroll
  for (int u = 0; u < U; u++) {
    const int64_t ch = s0 + u * step;
    if (!FULL && ch >= nch) break;
    XGlobal<D, NT> xf;
#pragma unroll
    for (int t = 0; t < NT; t++) xf.xr[t] = xr[t], xf.xv[t] = xv[t];
    xf.ch = ch;
    mma_chunk<D, NT>(wa[u], wb[u], pa[u], pb[u], xf, acc);
  }
}

/* chunks in flight per lane: 4, except where 4 would not fit 64 registers (mxfp8 spilled 36 B) */
template <class D>
struct mma_u2 {
  enum { v = 0 };
};
template <>
struct mma_u2<DecMX8> {
  enum { v = 1 };
};

/* The end of the mma GEMVs (k_gemv_mma here, k_dec_gemv of linear_dec.h): the warps' accumulator
 * tiles (fp32, or int32 for the int8 mma) into red, then thread i sums tile element (r = i % 16,
 * col = i / 16) over the MW warps in warp order and stores y[col, row0 + r] = bf16(epi(sum, row,
 * col)) for col < m and row < n. */
template <int MW, int NT, typename T>
static __device__ __forceinline__ void mma_red_put(T (&red)[MW][16][8 * NT], const T (&acc)[NT][4],
                                                   int warp, int g, int c) {
#pragma unroll
  for (int t = 0; t < NT; t++) {
    red[warp][g][8 * t + 2 * c] = acc[t][0];
    red[warp][g][8 * t + 2 * c + 1] = acc[t][1];
    red[warp][g + 8][8 * t + 2 * c] = acc[t][2];
    red[warp][g + 8][8 * t + 2 * c + 1] = acc[t][3];
  }
  __syncthreads();
}
template <int MW, int NT, typename T, class Epi>
static __device__ __forceinline__ void mma_red_store(const T (&red)[MW][16][8 * NT], int64_t row0,
                                                     int64_t n, int m, uint16_t *y, Epi epi) {
  for (int i = threadIdx.x; i < 16 * 8 * NT; i += MW * 32) {
    int r = i % 16, col = i / 16;
    int64_t row = row0 + r;
    if (col >= m || row >= n) continue;
    T v = 0;
#pragma unroll
    for (int k = 0; k < MW; k++) v += red[k][r][col];
    y[(int64_t)col * n + row] = aoq_f32_to_bf16(epi(v, row, col));
  }
}

/* mma_red_store of the gated GEMV: tile rows 0..7 are gate rows j0.., rows 8..15 the matching up
 * rows; y[col, j0 + r] = silu_mul of the plain path's bf16 gate and up (y is [m, n / 2]) */
template <class D, int MW, int NT>
static __device__ __forceinline__ void mma_red_gated(const float (&red)[MW][16][8 * NT],
                                                     const wargs &w, int64_t j0, int m,
                                                     uint16_t *y) {
  const int64_t half = w.n / 2;
  for (int i = threadIdx.x; i < 8 * 8 * NT; i += MW * 32) {
    int r = i % 8, col = i / 8;
    if (col >= m || j0 + r >= half) continue;
    float vg = 0, vu = 0;
#pragma unroll
    for (int k = 0; k < MW; k++) vg += red[k][r][col], vu += red[k][r + 8][col];
    float gb = aoq_round_bf16(D::epi(vg, w, j0 + r, col));
    float ub = aoq_round_bf16(D::epi(vu, w, half + j0 + r, col));
    y[(int64_t)col * half + j0 + r] = aoq_silu_mul_bf16(gb, ub);
  }
}

/* One n-tile (m <= 8, decode): at most 64 registers, so 32 warps fit an SM whatever the block
 * size (v6 measured 76-98 registers for the int4/fp4 decoders: one 512-thread block per SM).
 * GATED (the gate | up projection with silu_mul fused, aoq_gk_linear_silu): W is [gate; up],
 * 2I rows; block b takes gate rows 8b..8b+7 as its rows 0..7 and the up rows I + 8b.. as rows
 * 8..15 (same k split, so each row's sum is the plain GEMV's), and writes y[m, I] = silu(gate) *
 * up with silu_mul's rounding instead of the 2I projections. */
template <class D, int NT, int MW, bool GATED = false>
__global__ void __launch_bounds__(MW * 32, NT == 1 ? 32 / MW : 1)
    k_gemv_mma(wargs w, const uint16_t *__restrict__ x, uint16_t *__restrict__ y, int m) {
  AOQ_PDL_WAIT();
  __shared__ float red[MW][16][8 * NT];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, c = lane & 3;
  const int64_t row0 = (int64_t)blockIdx.x * 16, half = w.n / 2, j0 = (int64_t)blockIdx.x * 8;
  const int64_t ra = GATED ? min(j0 + g, half - 1) : min(row0 + g, w.n - 1);
  const int64_t rb = GATED ? half + min(j0 + g, half - 1) : min(row0 + g + 8, w.n - 1);
  const uint8_t *qa = w.q + ra * w.row_bytes, *qb = w.q + rb * w.row_bytes;
  float acc[NT][4];
#pragma unroll
  for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = 0;
  const int64_t nch = w.k / D::EPL; /* chunks per row; a step takes 4 */
  const uint16_t *xr[NT];
  bool xv[NT];
#pragma unroll
  for (int t = 0; t < NT; t++)
    xv[t] = g + 8 * t < m, xr[t] = x + (int64_t)(xv[t] ? g + 8 * t : 0) * w.k;
  /* U chunks per lane in flight (U x 2 x 16 bytes); their format parameters (scales: per chunk for
   * int4 / fp4 / mxfp8, usually an L2/DRAM miss) are loaded together with the weights, before any
   * decoding, so a step waits for one memory latency instead of one per chunk. Full steps have no
   * guards. */
  constexpr int U = D::EPL == 32 || mma_u2<D>::v ? 2 : 4;
  const int64_t step = (int64_t)MW * 4;
  int64_t s0 = (int64_t)warp * 4 + c;
  for (; s0 + (U - 1) * step < nch; s0 += step * U)
    mma_step<D, NT, U, true>(w, qa, qb, ra, rb, xr, xv, s0, step, nch, acc);
  if (s0 < nch) mma_step<D, NT, U, false>(w, qa, qb, ra, rb, xr, xv, s0, step, nch, acc);
  mma_red_put<MW, NT>(red, acc, warp, g, c);
  if constexpr (GATED) {
    mma_red_gated<D, MW, NT>(red, w, j0, m, y);
  } else {
    mma_red_store<MW, NT>(red, row0, w.n, m, y,
                          [&](float v, int64_t row, int col) { return D::epi(v, w, row, col); });
  }
}

template <class D, int NT>
static int launch_nt(const wargs &w, const uint16_t *x, uint16_t *y, int m, aoq_gpu_stream_t st) {
  /* 16 rows per block; small n gets more warps per block (split k) to keep ~32 warps per SM;
   * wide tiles (NT >= 4) stop at 8 warps (shared memory of the k reduction). Batch-invariant:
   * the warps (hence the k split and its summation order) depend on n only. */
  unsigned blocks = (unsigned)((w.n + 15) / 16);
  if (aoq_gk_batch_invariant()) {
    if (blocks >= 1024) return aoq_launch(k_gemv_mma<D, NT, 4>, blocks, 128, 0, st, w, x, y, m);
    return aoq_launch(k_gemv_mma<D, NT, 8>, blocks, 256, 0, st, w, x, y, m);
  }
  if (blocks >= 1024) return aoq_launch(k_gemv_mma<D, NT, 4>, blocks, 128, 0, st, w, x, y, m);
  if (blocks >= 512 || NT >= 4)
    return aoq_launch(k_gemv_mma<D, NT, 8>, blocks, 256, 0, st, w, x, y, m);
  return aoq_launch(k_gemv_mma<D, (NT < 4 ? NT : 2), 16>, blocks, 512, 0, st, w, x, y, m);
}

#include "kernels/gpu/linear_tma.h"

/* Per decoder: fma_first — bf16 / int8wo take the FMA GEMV at m = 1 (and at m = 2 from
 * fma_min_n); gated — the gate | up GEMV with silu_mul fused is taken (launch_gated). */
template <class D>
struct gemv_pick {
  enum { fma_first = 0, gated = 0 };
};
template <>
struct gemv_pick<DecBF16> {
  enum { fma_first = 1, gated = 1 };
};
template <>
struct gemv_pick<DecI8> {
  enum { fma_first = 1, gated = 1 };
};
template <>
struct gemv_pick<DecI4> {
  enum { fma_first = 0, gated = 1 };
};
template <>
struct gemv_pick<DecI4F> {
  enum { fma_first = 0, gated = 1 };
};
template <int K>
struct gemv_pick<DecFP4<K>> {
  enum { fma_first = 0, gated = 1 };
};

/* At m = 2 the FMA GEMV (bf16 / int8wo) is taken for n >= this, the mma GEMV below it: on the
 * 8B shapes at m = 2 the mma GEMV was faster for o and down (n = 4096; bf16 down 49.7 -> 44.5 us,
 * int8wo 29.7 -> 25.0) and the decode step at batch 2 too (bf16 6.29 -> 6.05 ms, int8wo 4.14 ->
 * 3.90). At m = 1 the mma GEMV was also faster in isolation (bf16 down 48.6 -> 44.5 us) but the
 * batch-1 step was not (bf16 5.77 -> 5.87 ms), so m = 1 stays on the FMA GEMV (docs/cuda.md,
 * session 4). AOQ_GEMV_FMA_MIN_N overrides the bound (0: the FMA GEMV at m = 2 everywhere).
 * Where the bulk-copy GEMV runs (linear_tma.h's tma_pick: bf16 at m = 2 since session 7) it
 * comes first. */
static int64_t fma_min_n() {
  static int64_t v = -1;
  if (v < 0) {
    const char *e = getenv("AOQ_GEMV_FMA_MIN_N");
    v = e ? atoll(e) : 4097;
  }
  return v;
}

/* int4 with groups of >= 128 (powers of two) up to m = 16 takes the folded decoder (DecI4F): the
 * mma GEMV at m <= 8 and the skinny GEMM at m = 9..16 (linear_skinny.h). Measured in the decode
 * step (int4wo-128, docs/cuda.md session 6, folded against not): batch 1 2.89 / 2.92 against
 * 2.93 / 2.92 ms, batch 8 3.33 against 3.41, batch 16 4.50 against 4.70; at batch 32 (the skinny
 * GEMM's 4 n-tiles, whose extra accumulators spill) 7.50 against 6.77, so m > 16 keeps tinygemm's
 * per-weight rounding, and so does batch-invariant mode (one numerics for every m).
 * AOQ_I4_FOLD=0 switches it off. */
static bool i4_fold_on() {
  static int v = -1;
  if (v < 0) {
    const char *e = getenv("AOQ_I4_FOLD");
    v = !(e && e[0] == '0');
  }
  return v;
}
static bool i4_folds(const wargs &w, int64_t m) { /* batch-invariant: all m alike, unfolded */
  return w.lg >= 7 && m <= 16 && i4_fold_on() && !aoq_gk_batch_invariant();
}

/* whether m rows of x take the FMA GEMV (gemv_pick::fma_first; not batch-invariant) */
template <class D>
static bool fma_case(const wargs &w, int64_t m) {
  return gemv_pick<D>::fma_first && !aoq_gk_batch_invariant() &&
         (m == 1 || (m == 2 && w.n >= fma_min_n()));
}

/* The GEMV launches: the bulk-copy GEMV where tma_plan takes the weight (m <= 8; AOQ_GEMV_TMA),
 * else the FMA GEMV (bf16 / int8wo at m = 1, 2) or the mma GEMV of 1..8 n-tiles. */
template <class D>
static int launch(const wargs &w, const uint16_t *x, uint16_t *y, int m, aoq_gpu_stream_t st) {
  if constexpr (std::is_same<D, DecI4>::value) {
    if (i4_folds(w, m)) return launch<DecI4F>(w, x, y, m, st);
  }
  const bool fma = fma_case<D>(w, m);
  targs tp;
  if (tma_plan<D>(w, m, false, &tp)) return launch_tma<D, false>(w, tp, x, y, m, st);
  if constexpr (gemv_pick<D>::fma_first) {
    if (fma)
      return m == 1 ? launch_mr<D, 1, 1>(w, x, y, m, st) : launch_mr<D, 2, 2>(w, x, y, m, st);
  }
  if (m <= 8) return launch_nt<D, 1>(w, x, y, m, st);
  if (m <= 16) return launch_nt<D, 2>(w, x, y, m, st);
  if (m <= 32) return launch_nt<D, 4>(w, x, y, m, st);
  return launch_nt<D, 8>(w, x, y, m, st);
}
/* The gated GEMV (silu_mul fused; linear_silu_ok): the block count of the plain launch on the 2I
 * rows (I / 8 = 2I / 16), hence the same warps per block and the same bits per row. Only for the
 * decoders where the decode step measured faster with it (docs/cuda.md, session 5: int4wo-128
 * batch 1 / 8 -1.7% / -2.5%, mxfp4 -1.8% at batch 1, nvfp4 -1.3%, int8wo / bf16 batch 8 -2.0% /
 * -0.9%; fp8wo +3.8% slower: fp8 and mxfp8 keep the separate silu_mul; gemv_pick above). */
template <class D>
static int launch_gated(const wargs &w, const uint16_t *x, uint16_t *y, int m,
                        aoq_gpu_stream_t st) {
  if constexpr (std::is_same<D, DecI4>::value) {
    if (i4_folds(w, m)) return launch_gated<DecI4F>(w, x, y, m, st);
  }
  if constexpr (gemv_pick<D>::gated) {
    targs tp;
    if (tma_plan<D>(w, m, true, &tp)) return launch_tma<D, true>(w, tp, x, y, m, st);
    unsigned blocks = (unsigned)((w.n / 2 + 7) / 8);
    if (blocks >= 1024)
      return aoq_launch(k_gemv_mma<D, 1, 4, true>, blocks, 128, 0, st, w, x, y, m);
    if (blocks >= 512) return aoq_launch(k_gemv_mma<D, 1, 8, true>, blocks, 256, 0, st, w, x, y, m);
    return aoq_launch(k_gemv_mma<D, 1, 16, true>, blocks, 512, 0, st, w, x, y, m);
  } else {
    (void)w, (void)x, (void)y, (void)m, (void)st;
    return (int)cudaErrorInvalidValue;
  }
}
#define GEMV_SLICE 64 /* rows of x one GEMV launch takes (8 n-tiles of the mma) */
#else
#define GEMV_SLICE 16
template <class D>
static int launch(const wargs &w, const uint16_t *x, uint16_t *y, int m, aoq_gpu_stream_t st) {
  if (m == 1) return launch_mr<D, 1, 1>(w, x, y, m, st);
  if (m == 2) return launch_mr<D, 2, 2>(w, x, y, m, st);
  if (m <= 4) return launch_mr<D, 4, 2>(w, x, y, m, st);
  if (m <= 8) return launch_mr<D, 8, 4>(w, x, y, m, st);
  return launch_mr<D, 16, 4>(w, x, y, m, st);
}
#endif
