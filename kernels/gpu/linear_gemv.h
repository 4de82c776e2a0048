/*
 * linear_gemv.h — part of kernels/gpu/linear.cu (included once, after the decoders and
 * with_decoder): the GEMV for m <= 64 rows of x. The FMA GEMV (HIP, and bf16/int8wo at m <= 2 on
 * CUDA) and the tensor-core GEMV (m = 1..64, CUDA) with their launchers; `launch<D>` picks one.
 * Defines GEMV_SLICE, the rows of x one GEMV launch takes.
 */
template <class D, int M, int R>
__global__ void __launch_bounds__(LIN_WARPS * 32)
    k_gemv(wargs w, const uint16_t *__restrict__ x, uint16_t *__restrict__ y, int m) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t row0 = ((int64_t)blockIdx.x * LIN_WARPS + warp) * R;
  const bool live = row0 < w.n;
  const int nch = (int)(w.k / D::EPL);
  constexpr int U = R == 1 ? 4 : 2; /* chunks in flight per lane */
  const uint8_t *qr[R], *pr[R];
#pragma unroll
  for (int r = 0; r < R; r++) {
    const int64_t row = live ? (row0 + r < w.n ? row0 + r : row0) : 0;
    qr[r] = w.q + row * w.row_bytes + lane * 16, pr[r] = D::prow(w, row);
  }
  /* the first chunks before the PDL wait (weights are never written): they arrive while the
   * previous kernel finishes */
  uint4 raw[U][R];
#pragma unroll
  for (int u = 0; u < U; u++)
#pragma unroll
    for (int r = 0; r < R; r++)
      if (live && lane + u * 32 < nch) raw[u][r] = aoq_ld_stream16(qr[r] + u * 32 * 16);
  AOQ_PDL_WAIT();
  if (!live) return;
  float acc[R][M];
#pragma unroll
  for (int r = 0; r < R; r++)
#pragma unroll
    for (int i = 0; i < M; i++) acc[r][i] = 0;
  const uint16_t *xc = x + lane * D::EPL;
  for (int c0 = lane; c0 < nch;) {
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int c = c0 + u * 32;
      if (c >= nch) break;
      typename D::P prm[R];
#pragma unroll
      for (int r = 0; r < R; r++) prm[r] = D::prmc(w, pr[r], c);
#pragma unroll
      for (int sub = 0; sub < D::EPL / 8; sub++) {
        float wf[R][8];
#pragma unroll
        for (int r = 0; r < R; r++) D::dec8(raw[u][r], sub, prm[r], wf[r]);
#pragma unroll
        for (int i = 0; i < M; i++) {
          if (i >= m) break;
          uint4 xv = *(const uint4 *)(xc + (int64_t)i * w.k + u * 32 * D::EPL + sub * 8);
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
    c0 += 32 * U, xc += 32 * U * D::EPL;
#pragma unroll
    for (int r = 0; r < R; r++) qr[r] += 32 * U * 16;
#pragma unroll
    for (int u = 0; u < U; u++)
#pragma unroll
      for (int r = 0; r < R; r++)
        if (c0 + u * 32 < nch) raw[u][r] = aoq_ld_stream16(qr[r] + u * 32 * 16);
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

/* formats whose parameters are per row (fp8wo's scale): one copy per step, not U */
template <class D>
struct row_prm {
  enum { v = 0 };
};
template <>
struct row_prm<DecFP8> {
  enum { v = 1 };
};

/* The registers of one step of a lane: U chunks of rows a and b and their format parameters. */
template <class D, int U>
struct mma_regs {
  uint4 wa[U], wb[U];
  typename D::P pa[U], pb[U];
};

/* Loads the step at chunk s (qa / qb point at chunk s of the lane's two rows; the U chunks of a
 * step are STEP apart). All U chunks and their parameters are asked for before any is used, so a
 * step waits for one memory latency. Offsets are 32-bit and compile-time where they can be. */
template <class D, int U, int STEP, bool FULL>
static __device__ __forceinline__ void mma_load(const wargs &w, const uint8_t *qa,
                                                const uint8_t *qb, const uint8_t *pra,
                                                const uint8_t *prb, int s, int nch,
                                                mma_regs<D, U> &r) {
#pragma unroll
  for (int u = 0; u < U; u++)
    if (FULL || s + u * STEP < nch)
      r.wa[u] = aoq_ld_stream16(qa + u * STEP * 16), r.wb[u] = aoq_ld_stream16(qb + u * STEP * 16);
#pragma unroll
  for (int u = 0; u < (row_prm<D>::v ? 1 : U); u++)
    if (FULL || s + u * STEP < nch)
      r.pa[u] = D::prmc(w, pra, s + u * STEP), r.pb[u] = D::prmc(w, prb, s + u * STEP);
}

/* Decodes and multiplies the step at chunk s. A partial step (the row's last) runs every mma
 * on the whole warp: a chunk past the row's end gives zero weights and zero x. */
template <class D, int NT, int U, int STEP, bool FULL>
static __device__ __forceinline__ void mma_math(const mma_regs<D, U> &r, const uint16_t *xb,
                                                const int xo[NT], int s, int nch,
                                                float acc[NT][4]) {
#pragma unroll
  for (int u = 0; u < U; u++) {
    const bool ok = FULL || s + u * STEP < nch;
#pragma unroll
    for (int sub = 0; sub < D::EPL / 8; sub++) {
      uint32_t A[4] = {0, 0, 0, 0}, B[4] = {0, 0, 0, 0}, X[NT][4];
      const int up = row_prm<D>::v ? 0 : u;
      if (ok) D::dec8p(r.wa[u], sub, r.pa[up], A), D::dec8p(r.wb[u], sub, r.pb[up], B);
#pragma unroll
      for (int t = 0; t < NT; t++) {
        uint4 v = ok ? *(const uint4 *)(xb + xo[t] + u * STEP * D::EPL + sub * 8)
                     : make_uint4(0, 0, 0, 0);
        if (D::PAIR == 0) {
          X[t][0] = v.x, X[t][1] = v.y, X[t][2] = v.z, X[t][3] = v.w;
        } else { /* pairs (j, j + 4) */
          X[t][0] = __byte_perm(v.x, v.z, 0x5410), X[t][1] = __byte_perm(v.x, v.z, 0x7632);
          X[t][2] = __byte_perm(v.y, v.w, 0x5410), X[t][3] = __byte_perm(v.y, v.w, 0x7632);
        }
      }
#pragma unroll
      for (int t = 0; t < NT; t++) {
        mma16816(acc[t], A[0], B[0], A[1], B[1], X[t][0], X[t][1]);
        mma16816(acc[t], A[2], B[2], A[3], B[3], X[t][2], X[t][3]);
      }
    }
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

/* One n-tile (m <= 8, decode): at most 64 registers, so 32 warps fit an SM whatever the block
 * size (v6 measured 76-98 registers for the int4/fp4 decoders: one 512-thread block per SM).
 * v8: the first step's weights and parameters are loaded before the PDL wait (weights are never
 * written), so they arrive while the previous kernel finishes; the loop walks pointers with
 * 32-bit offsets (v7 spent ~40 of its ~92 instructions per 8-element sub-block of both rows on
 * 64-bit address arithmetic, predicates and zeroing for the x rows past m); x rows past m read
 * row m - 1 (their output columns are dropped). Same lanes, chunks and mma order as v7: the
 * same bits. */
template <class D, int NT, int MW, int DB>
__global__ void __launch_bounds__(MW * 32, NT == 1 ? 32 / MW : 1)
    k_gemv_mma(wargs w, const uint16_t *__restrict__ x, uint16_t *__restrict__ y, int m) {
  __shared__ float red[MW][16][8 * NT];
  constexpr int U = D::EPL == 32 || mma_u2<D>::v || NT >= 8 ? 2 : 4, STEP = MW * 4;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, c = lane & 3;
  const int64_t row0 = (int64_t)blockIdx.x * 16;
  const int64_t ra = min(row0 + g, w.n - 1), rb = min(row0 + g + 8, w.n - 1);
  const int nch = (int)(w.k / D::EPL); /* chunks per row */
  int s = warp * 4 + c;                /* this lane's first chunk; a step takes U, STEP apart */
  const uint8_t *qa = w.q + ra * w.row_bytes + s * 16, *qb = w.q + rb * w.row_bytes + s * 16;
  const uint8_t *pra = D::prow(w, ra), *prb = D::prow(w, rb);
  const bool pre = !(w.pf & 4); /* AOQ_GEMV=post: first loads after the wait (diagnosis) */
  float acc[NT][4];
#pragma unroll
  for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = 0;
  int xo[NT];
  if constexpr (DB) {
    /* rotating registers: S slots of one chunk; the load S - 1 chunks ahead is issued before
     * each chunk's math, so loads stay in flight while the warp decodes */
    constexpr int S = D::EPL == 32 || row_prm<D>::v ? 2 : U; /* slots (fp8wo: 4 spilled 56 B) */
    mma_regs<D, 1> rs[S];
    if (!pre) AOQ_PDL_WAIT();
#pragma unroll
    for (int j = 0; j < S - 1; j++)
      if (s + j * STEP < nch)
        mma_load<D, 1, STEP, true>(w, qa + j * STEP * 16, qb + j * STEP * 16, pra, prb,
                                   s + j * STEP, nch, rs[j]);
    if (pre) AOQ_PDL_WAIT();
    const uint16_t *xb = x + s * D::EPL;
#pragma unroll
    for (int t = 0; t < NT; t++) xo[t] = min(g + 8 * t, m - 1) * (int)w.k;
    const uint8_t *na = qa + (S - 1) * STEP * 16, *nb = qb + (S - 1) * STEP * 16;
    do {
#pragma unroll
      for (int u = 0; u < S; u++) {
        const int ahead = s + (S - 1) * STEP;
        if (ahead < nch)
          mma_load<D, 1, STEP, true>(w, na, nb, pra, prb, ahead, nch, rs[(u + S - 1) % S]);
        na += STEP * 16, nb += STEP * 16;
        if (s - c + 3 < nch)
          mma_math<D, NT, 1, STEP, true>(rs[u], xb, xo, s, nch, acc);
        else if (s - c < nch)
          mma_math<D, NT, 1, STEP, false>(rs[u], xb, xo, s, nch, acc);
        s += STEP, xb += STEP * D::EPL;
      }
    } while (s - c < nch);
  }
  if constexpr (!DB) {
  mma_regs<D, U> r;
  if (!pre) AOQ_PDL_WAIT();
  if (s + (U - 1) * STEP < nch)
    mma_load<D, U, STEP, true>(w, qa, qb, pra, prb, s, nch, r);
  else
    mma_load<D, U, STEP, false>(w, qa, qb, pra, prb, s, nch, r);
  if (pre) AOQ_PDL_WAIT();
  /* x at this lane's chunk, and the offsets of its n-tile rows (32-bit: m <= 64) */
  const uint16_t *xb = x + s * D::EPL;
#pragma unroll
  for (int t = 0; t < NT; t++) xo[t] = min(g + 8 * t, m - 1) * (int)w.k;
  /* s - c is the warp's first chunk of the step: whether a step is full is decided for the whole
   * warp (mma.sync needs every lane) */
  for (;;) {
    if (s - c + (U - 1) * STEP + 3 < nch) {
      mma_math<D, NT, U, STEP, true>(r, xb, xo, s, nch, acc);
    } else {
      mma_math<D, NT, U, STEP, false>(r, xb, xo, s, nch, acc);
      break;
    }
    s += U * STEP, qa += U * STEP * 16, qb += U * STEP * 16, xb += U * STEP * D::EPL;
    if (s - c >= nch) break;
    if (s - c + (U - 1) * STEP + 3 < nch)
      mma_load<D, U, STEP, true>(w, qa, qb, pra, prb, s, nch, r);
    else
      mma_load<D, U, STEP, false>(w, qa, qb, pra, prb, s, nch, r);
  }
  }
#pragma unroll
  for (int t = 0; t < NT; t++) {
    red[warp][g][8 * t + 2 * c] = acc[t][0];
    red[warp][g][8 * t + 2 * c + 1] = acc[t][1];
    red[warp][g + 8][8 * t + 2 * c] = acc[t][2];
    red[warp][g + 8][8 * t + 2 * c + 1] = acc[t][3];
  }
  __syncthreads();
  for (int i = threadIdx.x; i < 16 * 8 * NT; i += MW * 32) {
    int rr = i % 16, col = i / 16;
    int64_t row = row0 + rr;
    if (col >= m || row >= w.n) continue;
    float v = 0;
#pragma unroll
    for (int k = 0; k < MW; k++) v += red[k][rr][col];
    y[(int64_t)col * w.n + row] = aoq_f32_to_bf16(D::epi(v, w, row, col));
  }
}

template <class D, int NT, int DB>
static int launch_nt(const wargs &w, const uint16_t *x, uint16_t *y, int m, aoq_gpu_stream_t st) {
  /* 16 rows per block; small n gets more warps per block (split k) to keep ~32 warps per SM;
   * wide tiles (NT >= 4) stop at 8 warps (shared memory of the k reduction). Batch-invariant:
   * the warps (hence the k split and its summation order) depend on n only. */
  unsigned blocks = (unsigned)((w.n + 15) / 16);
  if (aoq_gk_batch_invariant()) {
    if (blocks >= 1024)
      return aoq_launch(k_gemv_mma<D, NT, 4, DB>, blocks, 128, 0, st, w, x, y, m);
    return aoq_launch(k_gemv_mma<D, NT, 8, DB>, blocks, 256, 0, st, w, x, y, m);
  }
  if (blocks >= 1024) return aoq_launch(k_gemv_mma<D, NT, 4, DB>, blocks, 128, 0, st, w, x, y, m);
  if (blocks >= 512 || NT >= 4)
    return aoq_launch(k_gemv_mma<D, NT, 8, DB>, blocks, 256, 0, st, w, x, y, m);
  return aoq_launch(k_gemv_mma<D, (NT < 4 ? NT : 2), 16, DB>, blocks, 512, 0, st, w, x, y, m);
}

/* the rotating-register GEMV at m = 3..8, where it measured faster than v8's step-wise loads
 * (docs/cuda.md, session 4: bf16 gate+up at m = 8 103.4 -> 87.1 us, int8wo 52.2 -> 45.3,
 * int4wo-128 36.0 -> 33.9, mxfp4 37.9 -> 35.0); at m <= 2 and for the fp8 / mxfp8 / nvfp4
 * decoders the step-wise loads were as fast or faster */
template <class D>
struct db_first {
  enum { v = 0 };
};
template <>
struct db_first<DecBF16> {
  enum { v = 1 };
};
template <>
struct db_first<DecI8> {
  enum { v = 1 };
};
template <>
struct db_first<DecI4> {
  enum { v = 1 };
};
template <>
struct db_first<DecFP4<AOQ_FMT_MXFP4>> {
  enum { v = 1 };
};

template <class D>
struct fma_first {
  enum { v = 0 };
};
template <>
struct fma_first<DecBF16> {
  enum { v = 1 };
};
template <>
struct fma_first<DecI8> {
  enum { v = 1 };
};

template <class D>
static int launch(const wargs &w, const uint16_t *x, uint16_t *y, int m, aoq_gpu_stream_t st) {
  if constexpr (fma_first<D>::v) {
    if (m == 1 && !aoq_gk_batch_invariant()) return launch_mr<D, 1, 1>(w, x, y, m, st);
    if (m == 2 && !aoq_gk_batch_invariant()) return launch_mr<D, 2, 2>(w, x, y, m, st);
  }
  if (m <= 8) {
    /* wargs.pf (AOQ_GEMV): bit 3 forces the rotating registers, bit 4 the step-wise loads */
    const bool db = w.pf & 8 ? true : w.pf & 16 ? false : db_first<D>::v && m >= 3;
    return db ? launch_nt<D, 1, 1>(w, x, y, m, st) : launch_nt<D, 1, 0>(w, x, y, m, st);
  }
  if (m <= 16) return launch_nt<D, 2, 0>(w, x, y, m, st);
  if (m <= 32) return launch_nt<D, 4, 0>(w, x, y, m, st);
  return launch_nt<D, 8, 0>(w, x, y, m, st);
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
