/*
 * linear_skinny.h — part of kernels/gpu/linear.cu (included once, inside its CUDA-only
 * AOQ_HAVE_MMA_BF16 section, after the mma GEMV): the skinny tensor-core GEMM for decode
 * batches. Uses linear.cu's wargs, decoders and mma helpers; defines AOQ_HAVE_SKINNY.
 */
/* ---- m = 9..64: skinny tensor-core GEMM (decode batches) ----
 * The GEMV above re-reads x from L1/L2 for every 16 weight rows, so at m = 32..64 x traffic and
 * the mma count per decoded weight dominate. Here a block of W warps owns W * 32 weight rows;
 * each warp owns 2 row tiles (32 rows) and all n-tiles, so one B fragment (x) feeds two A tiles.
 * Weights, activations and the per-stage format parameters go global -> shared memory with
 * cp.async through a ring of STAGES stages (as deep as the shared memory allows).
 * A stage is H halves; a half is one 16-byte chunk per row and lane (k = 4 * EPL: 32, 64 or 128,
 * 64 B of every row), the unit the decoders' staged parameters are defined on. The copies of a
 * stage read each row's H * 64 bytes as one contiguous run (consecutive lanes, one instruction;
 * measured to neither help nor hurt, docs/cuda.md session 3: kept for the fewer barriers). In
 * shared memory a row's chunks are XOR-swizzled (odd rows: chunk ^ 4), so lane (g, c) reading
 * chunk 4 h + c of rows g = 0..7 is conflict-free; the activation vector of the same k is stored
 * permuted per half ((sub, c) order, rows 64 mod 128 bytes apart), conflict-free too. Decoding is
 * the GEMV's (dec8p), the weight is mma's A, x is B. Where n / rows blocks cannot fill the GPU,
 * blockIdx.y splits k over a thread-block cluster: each block leaves its fp32 partial tile in its
 * shared memory and, after a cluster barrier, sums a slice of the tile over the cluster's blocks
 * (distributed shared memory) in rank order — deterministic, no workspace, no second launch —
 * and applies the format's epilogue. BPS blocks share an SM (shared memory and registers are
 * budgeted for it): small blocks, several per SM, were what made session 3's kernel faster. */
#define SK_MIN_M 9     /* 4-bit formats; the 8/16-bit ones from 33 (aoq_gk_linear) */
#define SK_SMS 132     /* split planning target (H100 SXM); any count is correct, this one fills */
#define SK_MAX_SPLIT 8 /* portable cluster size */

static __device__ __forceinline__ void cp_async16(unsigned dst, const void *src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src));
}
static __device__ __forceinline__ void cp_async4(unsigned dst, const void *src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(dst), "l"(src));
}
static __device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;");
}
template <int N>
static __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N));
}

/* geometry: W warps, H halves per stage, BPS blocks per SM (the shared-memory budget and the
 * register bound follow) */
template <class D, int NT, int W, int H, int BPS>
struct SkCfg {
  enum {
    T = W * 32,                                 /* threads */
    ROWS = W * 32,                              /* weight rows per block */
    KH = 4 * D::EPL,                            /* k per half */
    RB = 64 * H,                                /* bytes of a row per stage */
    XS = (KH * 2) % 128 ? KH * 2 : KH * 2 + 64, /* bytes per x row and half: 64 mod 128 */
    VPR = KH / 8,                               /* 16-byte vectors per x row and half */
    XVH = 8 * NT * VPR,                         /* x vectors per half */
    XV = H * XVH,                               /* x vectors per stage */
    WB = ROWS * RB,                             /* weight bytes per stage */
    XB = H * 8 * NT * XS,
    PB = H * ROWS * D::PWMAX * 4,
    STAGE = WB + XB + PB,
    BUDGET = (BPS == 1 ? 200 : 220 / BPS) * 1024,
    FITS = 2 * STAGE <= BUDGET,
    STAGES = BUDGET / STAGE > 12 ? 12
             : BUDGET / STAGE<2 ? 2 : BUDGET / STAGE,
                              TILE = 8 * NT * ROWS * 4, /* the split-k partial tile, kept in the
                                                           drained ring */
                              SMEM = STAGES * STAGE>
                            TILE
                 ? STAGES *STAGE
                 : TILE,
    CPR = 4 * H,           /* 16-byte weight chunks per row and stage */
    NWC = ROWS * CPR / T,  /* weight copies per thread and stage */
    RSTEP = T / CPR,       /* rows between a thread's weight copies (even: one swizzle) */
    NXC = (XV + T - 1) / T /* x copies per thread and stage */
  };
};
/* the largest H <= H0 whose two stages fit the budget */
template <class D, int NT, int W, int H, int BPS>
struct SkFit {
  enum { h = SkCfg<D, NT, W, H, BPS>::FITS ? H : SkFit<D, NT, W, H / 2, BPS>::h };
};
template <class D, int NT, int W, int BPS>
struct SkFit<D, NT, W, 1, BPS> {
  enum { h = 1 };
};

template <class D, int NT, int W, int H, int BPS>
__global__ void __launch_bounds__(W * 32, BPS)
    k_skinny(wargs w, const uint16_t *__restrict__ x, uint16_t *__restrict__ y, int m, int nsplit) {
  AOQ_PDL_WAIT();
  typedef SkCfg<D, NT, W, H, BPS> C;
  constexpr bool FOLD = i4fold<D>::v;
  extern __shared__ __align__(16) unsigned char sk_smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, c = lane & 3;
  const int64_t row0 = (int64_t)blockIdx.x * C::ROWS;
  const int split = blockIdx.y;
  const int64_t nh = w.k / C::KH, nst = (nh + H - 1) / H; /* the last stage may be partial */
  const int64_t st0 = nst * split / nsplit, st1 = nst * (split + 1) / nsplit;
  const int64_t h1 = min(st1 * H, nh); /* this split's halves end */
  const unsigned sbase = (unsigned)__cvta_generic_to_shared(sk_smem);

  /* this thread's weight copies: chunk wch of rows wr0 + j * RSTEP (the same chunk for every j) */
  const int wch = tid % C::CPR, wr0 = tid / C::CPR;
  const unsigned wdst = wr0 * C::RB + ((wch ^ (H > 1 ? (wr0 & 1) * 4 : 0)) * 16);
  int pw = 0, lpw = 0;
  if constexpr (D::PWMAX > 0) {
    pw = D::pwords(w);
    lpw = pw == 4 ? 2 : pw == 2 ? 1 : 0;
  }
  auto issue = [&](int64_t st, int slot) {
    const unsigned b = sbase + slot * C::STAGE;
    const int64_t hb = st * H;                     /* the stage's first half */
    const int nhs = (int)min((int64_t)H, h1 - hb); /* halves in this stage */
#pragma unroll
    for (int j = 0; j < C::NWC; j++) {
      if (H > 1 && wch / 4 >= nhs) break;
      const int r = wr0 + j * C::RSTEP; /* RSTEP is even: the swizzle of wdst holds for all j */
      const uint8_t *src = w.q + min(row0 + r, w.n - 1) * w.row_bytes + hb * 64 + wch * 16;
      const unsigned dst = b + wdst + j * C::RSTEP * C::RB;
      cp_async16(dst, src);
    }
#pragma unroll
    for (int j = 0; j < C::NXC; j++) {
      const int i = tid + j * C::T;
      if (C::NXC * C::T != C::XV && i >= C::XV) break;
      const int hh = i / C::XVH, t = (i % C::XVH) / C::VPR, v = i % C::VPR;
      if (H > 1 && hh >= nhs) break;
      const int cc = v / (D::EPL / 8), sub = v % (D::EPL / 8);
      /* rows past m: copies of row m - 1, discarded */
      cp_async16(b + C::WB + (hh * 8 * NT + t) * C::XS + (sub * 4 + cc) * 16,
                 x + (int64_t)min(t, m - 1) * w.k + (hb + hh) * C::KH + v * 8);
    }
    if constexpr (D::PWMAX > 0) {
      const uint32_t *sc = (const uint32_t *)w.scale;
      const int per_half = C::ROWS << lpw;
#pragma unroll
      for (int j = 0; j < H * D::PWMAX; j++) {
        const int i = tid + j * C::T, hh = i / per_half, ih = i % per_half;
        if (hh < nhs) {
          const int r = ih >> lpw, jj = ih & (pw - 1);
          cp_async4(b + C::WB + C::XB + ((hh * C::ROWS + r) * D::PWMAX + jj) * 4,
                    sc + D::pword0(w, min(row0 + r, w.n - 1), (hb + hh) * C::KH) + jj);
        }
      }
    }
  };

  float acc[2][NT][4];
#pragma unroll
  for (int rt = 0; rt < 2; rt++)
#pragma unroll
    for (int t = 0; t < NT; t++) acc[rt][t][0] = acc[rt][t][1] = acc[rt][t][2] = acc[rt][t][3] = 0;
  int lr[2][2]; /* local rows: tile rt, half h (rows g and g + 8 of the tile) */
  typename D::P p0[2][2];
#pragma unroll
  for (int rt = 0; rt < 2; rt++)
#pragma unroll
    for (int h = 0; h < 2; h++) {
      lr[rt][h] = warp * 32 + rt * 16 + h * 8 + g;
      p0[rt][h] = D::prm0(w, min(row0 + lr[rt][h], w.n - 1));
    }
  const int swz = H > 1 ? (g & 1) * 4 : 0; /* lr & 1 == g & 1 */

#pragma unroll
  for (int p = 0; p < C::STAGES - 1; p++) {
    if (st0 + p < st1) issue(st0 + p, p);
    cp_async_commit();
  }
  for (int64_t st = st0; st < st1; st++) {
    const int i = (int)(st - st0);
    cp_async_wait<C::STAGES - 2>();
    __syncthreads(); /* stage i landed for every thread; slot (i - 1) % STAGES is free */
    if (st + C::STAGES - 1 < st1) issue(st + C::STAGES - 1, (i + C::STAGES - 1) % C::STAGES);
    cp_async_commit();
    const unsigned char *base = sk_smem + (i % C::STAGES) * C::STAGE;
#pragma unroll
    for (int hh = 0; hh < H; hh++) {
      const int64_t k0 = (st * H + hh) * C::KH;
      if (H > 1 && k0 >= h1 * C::KH) break;
      uint4 wr[2][2];
      typename D::P pr[2][2];
#pragma unroll
      for (int rt = 0; rt < 2; rt++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
          wr[rt][h] = *(const uint4 *)(base + lr[rt][h] * C::RB + (((4 * hh + c) ^ swz) * 16));
          if constexpr (D::PWMAX > 0)
            pr[rt][h] = D::prms(
                p0[rt][h],
                (const uint32_t *)(base + C::WB + C::XB) + (hh * C::ROWS + lr[rt][h]) * D::PWMAX, c,
                w, min(row0 + lr[rt][h], w.n - 1), k0);
          else
            pr[rt][h] = p0[rt][h];
        }
      const unsigned char *xb = base + C::WB + hh * 8 * NT * C::XS;
      /* FOLD (DecI4F): a half is 128 k of one group; its raw sums and x sums, as the GEMV */
      float gs[2][NT][4], xs[NT][4];
      if constexpr (FOLD) {
#pragma unroll
        for (int t = 0; t < NT; t++)
#pragma unroll
          for (int j = 0; j < 4; j++) gs[0][t][j] = gs[1][t][j] = xs[t][j] = 0;
      }
#pragma unroll
      for (int sub = 0; sub < D::EPL / 8; sub++) {
        uint32_t A[2][2][4];
#pragma unroll
        for (int rt = 0; rt < 2; rt++)
#pragma unroll
          for (int h = 0; h < 2; h++) {
            if constexpr (FOLD)
              D::raw8p(wr[rt][h], sub, A[rt][h]);
            else
              D::dec8p(wr[rt][h], sub, pr[rt][h], A[rt][h]);
          }
#pragma unroll
        for (int t = 0; t < NT; t++) {
          const uint4 v = *(const uint4 *)(xb + (8 * t + g) * C::XS + (sub * 4 + c) * 16);
          uint32_t X[4];
          x_pairs<D>(v, X);
#pragma unroll
          for (int rt = 0; rt < 2; rt++) {
            float(&a)[4] = FOLD ? gs[rt][t] : acc[rt][t];
            mma16816(a, A[rt][0][0], A[rt][1][0], A[rt][0][1], A[rt][1][1], X[0], X[1]);
            mma16816(a, A[rt][0][2], A[rt][1][2], A[rt][0][3], A[rt][1][3], X[2], X[3]);
          }
          if constexpr (FOLD) {
            const uint32_t one = 0x3f803f80u;
            mma16816(xs[t], one, one, one, one, X[0], X[1]);
            mma16816(xs[t], one, one, one, one, X[2], X[3]);
          }
        }
      }
      if constexpr (FOLD) {
#pragma unroll
        for (int rt = 0; rt < 2; rt++)
#pragma unroll
          for (int t = 0; t < NT; t++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
              const DecI4F::P &f = pr[rt][j >> 1];
              acc[rt][t][j] += fmaf(f.s, gs[rt][t][j], f.c * xs[t][j & 1]);
            }
      }
    }
  }
  cp_async_wait<0>();
  /* acc[rt][t]: {row g, col 2c}, {row g, col 2c + 1}, {row g + 8, col 2c}, {row g + 8, col 2c + 1}
   */
  if (nsplit == 1) {
#pragma unroll
    for (int rt = 0; rt < 2; rt++)
#pragma unroll
      for (int t = 0; t < NT; t++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
          const int64_t row = row0 + lr[rt][j >> 1];
          const int tok = 8 * t + 2 * c + (j & 1);
          if (row < w.n && tok < m)
            y[(int64_t)tok * w.n + row] = aoq_f32_to_bf16(D::epi(acc[rt][t][j], w, row, tok));
        }
    return;
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
  __trap(); /* no clusters before sm_90: the host launches splits only on cc >= 9 */
#else
  /* split k: the partial tile [8 NT tokens][ROWS] in this block's shared memory (the ring is
   * drained), then each block sums its slice of the tile over the cluster in rank order */
  cooperative_groups::cluster_group cl = cooperative_groups::this_cluster();
  float *red = (float *)sk_smem;
  __syncthreads();
#pragma unroll
  for (int rt = 0; rt < 2; rt++)
#pragma unroll
    for (int t = 0; t < NT; t++)
#pragma unroll
      for (int j = 0; j < 4; j++)
        red[(8 * t + 2 * c + (j & 1)) * C::ROWS + lr[rt][j >> 1]] = acc[rt][t][j];
  cl.sync();
  const int rank = (int)cl.block_rank(), tile = 8 * NT * C::ROWS;
  const int e0 = tile * rank / nsplit, e1 = tile * (rank + 1) / nsplit;
  for (int e = e0 + tid; e < e1; e += C::T) {
    const int tok = e / C::ROWS;
    const int64_t row = row0 + e % C::ROWS;
    float v = 0;
    for (int r = 0; r < nsplit; r++) v += cl.map_shared_rank(red, r)[e];
    if (row < w.n && tok < m) y[(int64_t)tok * w.n + row] = aoq_f32_to_bf16(D::epi(v, w, row, tok));
  }
  cl.sync(); /* the other blocks may still read this one's tile */
#endif
}

template <class D, int NT, int W, int H0, int BPS>
static int launch_skinny_nt(const wargs &w, const uint16_t *x, uint16_t *y, int m, int nsplit,
                            aoq_gpu_stream_t st) {
  constexpr int H = SkFit<D, NT, W, H0, BPS>::h;
  typedef SkCfg<D, NT, W, H, BPS> C;
  static_assert(C::SMEM <= 227 * 1024, "a block's shared memory");
  static_assert(C::RSTEP % 2 == 0 && C::ROWS * C::CPR % C::T == 0, "copy geometry");
  aoq_gpu_error_t e = cudaFuncSetAttribute(k_skinny<D, NT, W, H, BPS>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, C::SMEM);
  if (e != AOQ_GPU_SUCCESS) return (int)e;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3((unsigned)((w.n + C::ROWS - 1) / C::ROWS), (unsigned)nsplit);
  cfg.blockDim = dim3(C::T);
  cfg.dynamicSmemBytes = C::SMEM;
  cfg.stream = st;
  cudaLaunchAttribute at[2];
  at[0].id = cudaLaunchAttributeClusterDimension;
  at[0].val.clusterDim.x = 1;
  at[0].val.clusterDim.y = (unsigned)nsplit;
  at[0].val.clusterDim.z = 1;
  at[1].id = cudaLaunchAttributeProgrammaticStreamSerialization; /* vendor.h, aoq_launch */
  at[1].val.programmaticStreamSerializationAllowed = 1;
  if (nsplit <= 1) at[0] = at[1];
  cfg.attrs = at;
  cfg.numAttrs = (nsplit > 1 ? 1 : 0) + (aoq_gk_pdl() ? 1 : 0);
  e = cudaLaunchKernelEx(&cfg, k_skinny<D, NT, W, H, BPS>, w, x, y, m, nsplit);
  if (e != AOQ_GPU_SUCCESS) return (int)e;
  return (int)aoq_gpu_get_last_error();
}

/* The geometry session 3's sweep kept (docs/cuda.md): 4 warps (128 rows) per block, stages of
 * two halves, 3 blocks per SM, for every m. */
#define SK_W 4
#define SK_H 2
#define SK_BPS 3

template <class D>
static int launch_skinny(const wargs &w, const uint16_t *x, uint16_t *y, int m, int nsplit,
                         aoq_gpu_stream_t st) {
  if constexpr (std::is_same<D, DecI4>::value) {
    if (i4_folds(w, m))
      return launch_skinny_nt<DecI4F, 2, SK_W, SK_H, SK_BPS>(w, x, y, m, nsplit, st);
  }
  if (m <= 16) return launch_skinny_nt<D, 2, SK_W, SK_H, SK_BPS>(w, x, y, m, nsplit, st);
  if (m <= 32) return launch_skinny_nt<D, 4, SK_W, SK_H, SK_BPS>(w, x, y, m, nsplit, st);
  return launch_skinny_nt<D, 8, SK_W, SK_H, SK_BPS>(w, x, y, m, nsplit, st);
}
#define AOQ_HAVE_SKINNY 1
