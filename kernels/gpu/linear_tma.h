/*
 * linear_tma.h — part of kernels/gpu/linear.cu (included once by linear_gemv.h, inside its
 * CUDA-only AOQ_HAVE_MMA_BF16 section, after the mma GEMV): the decode GEMV (m <= 8) whose weight
 * stream is moved by the bulk-copy engine of sm_90 into a ring of shared-memory stages.
 *
 * Why: the register-fed mma GEMV keeps at most U chunks per lane in flight, and each warp waits a
 * whole memory latency per step; sessions 4-6 measured it latency-bound (70% of copy bandwidth on
 * the int4 gate | up shape at m = 1, 61% on down), and more chunks per lane do not fit 64
 * registers. Here one producer warp per block issues `cp.async.bulk` copies of a tile's rows
 * (1 KB of each of 16 rows per stage, plus the rows' staged format parameters) STG stages ahead,
 * each stage completing an mbarrier by its byte count; the consumer warps only read shared
 * memory, decode and run the tensor core, and hand a stage back through a second mbarrier. The
 * bytes in flight no longer depend on registers or on the consumers' progress, and the producer
 * starts before the PDL wait (weights are never written by the kernels of a step, vendor.h).
 * Measured (H100, docs/cuda.md session 7): with the consumers' math switched off the ring moves
 * the int4 gate | up weights at 95% of copy bandwidth (down 90%); with it, the consumers are the
 * limit (the ALU pipe ~50% busy, fixed-latency dependency stalls first), so the kernel is the
 * default only where the decode step measured it faster (tma_pick).
 *
 * Geometry: a tile is 16 weight rows (gated: 8 gate rows and the 8 matching up rows, as in
 * k_gemv_mma); a stage is H halves of every row (a half: 4 chunks, 4 * EPL elements, 64 bytes;
 * H = 16: 1 KB of each row); a tile is nseg stages (the last one may be partial). A block owns
 * a contiguous run of tpb tiles, chosen on the host so every block has the same count. Within a
 * stage consumer warp cw takes halves cw, cw + CW, ...; lane (g, c) reads chunk 4 hh + c of rows
 * g and g + 8 (rows are 1 KB + 64 bytes apart in shared memory: conflict-free 16-byte reads) and
 * feeds mma_chunk, the mma GEMV's own decode-and-multiply. Per tile the warps' fp32 tiles meet in
 * shared memory (named barrier of the consumers only) in warp order: deterministic, and the same
 * per-row sums for the gated and the plain launch (the split depends on k only).
 */
#define TMA_H 16  /* halves per stage */
#define TMA_CW 8  /* consumer warps per block */
#define TMA_STG 4 /* the most stages in a block's ring (targs.stg: how many) */
#define TMA_BPS 2 /* blocks per SM the host plans for */

typedef struct targs {
  int64_t prs; /* bytes of a row's staged parameters (0: the format stages none) */
  int pbs;     /* bytes of a row's parameters per full stage */
  int plast;   /* ... in the last stage of a row (it may be partial) */
  int nseg;    /* stages per tile */
  int ntiles;  /* tiles (16 rows; gated: 8 gate and 8 up rows) */
  int tpb;     /* tiles per block */
  int stg;     /* stages in the ring (2..TMA_STG, as the shared memory allows) */
  int xr;      /* staged x (XS): bytes per row of x in shared memory */
  int diag;    /* AOQ_TMA_DIAG bit 0: the consumers skip the math (the copy engine's rate alone;
                  timing only, the outputs are wrong) */
} targs;

/* The format parameters of chunk cs of a stage, from its row's staged bytes ps (where the format
 * stages any: int4's {scale, zero} words, the MX / NV block-scale bytes), else the row's p0.
 * bytes(w, kk): the staged bytes of kk elements of a row, -1 where this kernel cannot take the
 * format's layout (int4 groups that are not powers of two). */
template <class D>
struct tprm {
  static __device__ typename D::P get(const typename D::P &p0, const unsigned char *, int,
                                      const wargs &) {
    return p0;
  }
  static int64_t bytes(const wargs &, int64_t) {
    return 0;
  }
  enum { MAX = 0 }; /* the most bytes per row and stage */
};
template <>
struct tprm<DecI4> {
  static __device__ DecI4::P get(const DecI4::P &, const unsigned char *ps, int cs,
                                 const wargs &w) {
    return DecI4::of_word(((const uint32_t *)ps)[(cs * 32) >> w.lg]);
  }
  static int64_t bytes(const wargs &w, int64_t kk) {
    return w.lg ? (kk >> w.lg) * 4 : -1;
  }
  enum { MAX = TMA_H * 128 / 32 * 4 }; /* groups of 32 */
};
template <>
struct tprm<DecI4F> {
  static __device__ DecI4F::P get(const DecI4F::P &, const unsigned char *ps, int cs,
                                  const wargs &w) {
    return DecI4F::of_wordf(((const uint32_t *)ps)[(cs * 32) >> w.lg]);
  }
  static int64_t bytes(const wargs &w, int64_t kk) {
    return tprm<DecI4>::bytes(w, kk);
  }
  enum { MAX = TMA_H * 128 / 128 * 4 }; /* folded: groups of >= 128 */
};
template <>
struct tprm<DecMX8> { /* one e8m0 per 32 k: a 16-element chunk is half a block */
  static __device__ DecMX8::P get(const DecMX8::P &, const unsigned char *ps, int cs,
                                  const wargs &) {
    DecMX8::P p;
    p.s = aoq_e8m0_to_f32(ps[cs >> 1]);
    return p;
  }
  static int64_t bytes(const wargs &, int64_t kk) {
    return kk / 32;
  }
  enum { MAX = TMA_H * 64 / 32 };
};
template <int KIND>
struct tprm<DecFP4<KIND>> { /* MXFP4: one e8m0 per 32-element chunk; NVFP4: two e4m3 */
  typedef typename DecFP4<KIND>::P P;
  static __device__ P get(const P &p0, const unsigned char *ps, int cs, const wargs &) {
    P p = p0;
    if (KIND == AOQ_FMT_MXFP4) {
      p.s0 = p.s1 = aoq_e8m0_to_f32(ps[cs]);
    } else {
      p.s0 = aoq_e4m3_to_f32(ps[2 * cs]);
      p.s1 = aoq_e4m3_to_f32(ps[2 * cs + 1]);
    }
    return p;
  }
  static int64_t bytes(const wargs &, int64_t kk) {
    return KIND == AOQ_FMT_MXFP4 ? kk / 32 : kk / 16;
  }
  enum { MAX = TMA_H * 128 / (KIND == AOQ_FMT_MXFP4 ? 32 : 16) };
};

template <class D>
struct TmaCfg {
  enum {
    KH = 4 * D::EPL,                               /* k per half */
    RB = 64 * TMA_H,                               /* weight bytes of a row per stage */
    RS = RB + 64,                                  /* their row stride in shared memory */
    PS = tprm<D>::MAX > 0 ? tprm<D>::MAX + 16 : 0, /* parameter row stride (16-byte skew) */
    WB = 16 * RS,
    STAGE = WB + 16 * PS,
  };
};

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
static __device__ __forceinline__ unsigned smem_u32(const void *p) {
  return (unsigned)__cvta_generic_to_shared(p);
}
static __device__ __forceinline__ void mbar_init(uint64_t *b, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(b)), "r"(count));
}
static __device__ __forceinline__ void mbar_expect_tx(uint64_t *b, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(b)),
               "r"(bytes)
               : "memory");
}
static __device__ __forceinline__ void mbar_arrive(uint64_t *b) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_u32(b)) : "memory");
}
static __device__ __forceinline__ void mbar_wait(uint64_t *b, unsigned parity) {
  uint32_t done;
  do {
    asm volatile(
        "{\n\t.reg .pred p;\n\tmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n\t"
        "selp.u32 %0, 1, 0, p;\n\t}"
        : "=r"(done)
        : "r"(smem_u32(b)), "r"(parity)
        : "memory");
  } while (!done);
}
/* global -> this block's shared memory, completing bytes on mbarrier b */
static __device__ __forceinline__ void bulk_g2s(void *dst, const void *src, unsigned bytes,
                                                uint64_t *b) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::
          "r"(smem_u32(dst)),
      "l"(src), "r"(bytes), "r"(smem_u32(b))
      : "memory");
}
#endif

/* mma_chunk's x side from the block's staged copy of x (XS): the lane's 16 bytes of sub 0 (sub
 * stride 64), already in the decoder's pair order, and (SUMS, the folded decoder) the x sums of
 * the tile columns 2c, 2c + 1 over the chunk's 128 k */
template <bool S>
struct XStaged {
  enum { SUMS = S };
  const unsigned char *p;
  const float *s;
  __device__ __forceinline__ void get(int, int sub, uint32_t X[4]) const {
    const uint4 v = *(const uint4 *)(p + sub * 64);
    X[0] = v.x, X[1] = v.y, X[2] = v.z, X[3] = v.w;
  }
  __device__ __forceinline__ float sum(int i) const {
    return s[i];
  }
};

/* XS: the consumers copy x into shared memory once per block, each 8-value vector (token tok,
 * chunk ch = 4 q + cc, sub-chunk sub) in pair order at row tok, 16-byte slot (q * SUBS + sub) * 4
 * + cc, so lane (g, c) reads its B registers with one conflict-free 16-byte load; with FOLD also
 * the sums of x over every 128 k (xsum[h][token], 8 tokens per half h) by 16-lane shuffles. */
template <class D, int CW>
static __device__ __forceinline__ void tma_stage_x(const wargs &w, const targs &t,
                                                   const uint16_t *x, int m, unsigned char *xsm,
                                                   float *xsum) {
  constexpr int SUBS = D::EPL / 8;
  const int nv = (int)(w.k / 8), total = m * nv;
  for (int base = 0; base < total; base += CW * 32) { /* whole warps: the shuffles below */
    const int v = base + (int)threadIdx.x;
    float sm = 0;
    int tok = 0, e = 0;
    if (v < total) {
      tok = v / nv, e = v - tok * nv;
      uint32_t X[4];
      x_pairs<D>(*(const uint4 *)(x + (int64_t)tok * w.k + (int64_t)e * 8), X);
      const int ch = e / SUBS, sub = e - ch * SUBS;
      *(uint4 *)(xsm + tok * t.xr + (((ch >> 2) * SUBS + sub) * 4 + (ch & 3)) * 16) =
          make_uint4(X[0], X[1], X[2], X[3]);
      if constexpr (i4fold<D>::v) {
#pragma unroll
        for (int j = 0; j < 4; j++) sm += bf_lo(X[j]) + bf_hi(X[j]);
      }
    }
    if constexpr (i4fold<D>::v) { /* 16 vectors = one 128-k half of one token (k % 128 == 0) */
#pragma unroll
      for (int o = 8; o > 0; o >>= 1) sm += AOQ_SHFL_XOR(sm, o);
      if (v < total && (v & 15) == 0) xsum[(e >> 4) * 8 + tok] = sm;
    } /* (tokens m..7 of xsum stay unwritten: they feed tile columns that are never stored) */
  }
  (void)xsum;
}

template <class D, int CW, bool GATED, bool XS>
__global__ void __launch_bounds__((CW + 1) * 32, TMA_BPS)
    k_gemv_tma(wargs w, targs t, const uint16_t *__restrict__ x, uint16_t *__restrict__ y, int m) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  typedef TmaCfg<D> C;
  constexpr bool SUMS = XS && i4fold<D>::v;
  extern __shared__ __align__(128) unsigned char tm_smem[];
  __shared__ uint64_t full[TMA_STG], empty[TMA_STG];
  __shared__ float red[2][CW][16][8];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int tile0 = blockIdx.x * t.tpb, tile1 = min(tile0 + t.tpb, t.ntiles);
  const int64_t nh = w.k / C::KH, half = w.n / 2;
  if (threadIdx.x == 0) {
    for (int i = 0; i < t.stg; i++) mbar_init(&full[i], 1), mbar_init(&empty[i], CW);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  /* tile row r (0..15) -> weight row */
  auto wrow = [&](int tile, int r) -> int64_t {
    if (GATED) return (r < 8 ? 0 : half) + min((int64_t)tile * 8 + (r & 7), half - 1);
    return min((int64_t)tile * 16 + r, w.n - 1);
  };
  if (warp == CW) { /* the producer: lanes 0..15 copy a row's weights, 16..31 its parameters */
    const int r = lane & 15;
    int slot = 0, ph = 0, seg = 0;
    bool reuse = false; /* the first pass over the ring finds every slot free */
    for (int tile = tile0; tile < tile1;) {
      /* a slot is free again once the consumers released its previous round */
      if (reuse) mbar_wait(&empty[slot], ph ^ 1);
      const int nhs = (int)min((int64_t)TMA_H, nh - (int64_t)seg * TMA_H);
      const unsigned wbytes = nhs * 64, pbytes = seg == t.nseg - 1 ? t.plast : t.pbs;
      const int64_t row = wrow(tile, r);
      unsigned char *st = tm_smem + slot * C::STAGE;
      if (lane == 0) mbar_expect_tx(&full[slot], 16 * (wbytes + pbytes));
      __syncwarp();
      if (lane < 16)
        bulk_g2s(st + r * C::RS, w.q + row * w.row_bytes + (int64_t)seg * C::RB, wbytes,
                 &full[slot]);
      else if (C::PS && pbytes)
        bulk_g2s(st + C::WB + r * C::PS,
                 (const unsigned char *)w.scale + row * t.prs + (int64_t)seg * t.pbs, pbytes,
                 &full[slot]);
      if (++seg == t.nseg) seg = 0, tile++;
      if (++slot == t.stg) slot = 0, ph ^= 1, reuse = true;
    }
    return; /* the consumers wait for every stage, so the block outlives its copies */
  }
  AOQ_PDL_WAIT();
  const int g = lane >> 2, c = lane & 3;
  unsigned char *xsm = tm_smem + t.stg * C::STAGE;
  float *xsum = (float *)(xsm + m * t.xr);
  if constexpr (XS) {
    tma_stage_x<D, CW>(w, t, x, m, xsm, xsum);
    asm volatile("bar.sync 1, %0;" ::"n"(CW * 32) : "memory");
  }
  const unsigned char *xlane = xsm + min(g, m - 1) * t.xr + c * 16;
  const uint16_t *xrow = x + (int64_t)(g < m ? g : 0) * w.k;
  float acc[2][1][4] = {{{0, 0, 0, 0}}, {{0, 0, 0, 0}}};
  int slot = 0, ph = 0;
  for (int tile = tile0; tile < tile1; tile++) {
    const int64_t ra = wrow(tile, g), rb = wrow(tile, g + 8);
    const typename D::P p0a = D::prm0(w, ra), p0b = D::prm0(w, rb);
    for (int seg = 0; seg < t.nseg; seg++) {
      const int nhs = (int)min((int64_t)TMA_H, nh - (int64_t)seg * TMA_H);
      mbar_wait(&full[slot], ph);
      const unsigned char *st = tm_smem + slot * C::STAGE;
      auto half_j = [&](int j) {
        const int hh = warp + j * CW, cs = 4 * hh + c;
        const uint4 wa = *(const uint4 *)(st + g * C::RS + cs * 16);
        const uint4 wb = *(const uint4 *)(st + (g + 8) * C::RS + cs * 16);
        const typename D::P pa = tprm<D>::get(p0a, st + C::WB + g * C::PS, cs, w);
        const typename D::P pb = tprm<D>::get(p0b, st + C::WB + (g + 8) * C::PS, cs, w);
        const int h = seg * TMA_H + hh; /* the half's index in the row */
        /* two accumulators: halves j, j + 1 are independent mma chains */
        if constexpr (XS) {
          XStaged<SUMS> xf{xlane + h * (D::EPL / 8) * 64, xsum + h * 8 + 2 * c};
          mma_chunk<D, 1>(wa, wb, pa, pb, xf, acc[j & 1]);
        } else {
          XGlobal<D, 1> xf{{xrow}, {g < m}, (int64_t)h * 4 + c};
          mma_chunk<D, 1>(wa, wb, pa, pb, xf, acc[j & 1]);
        }
      };
      if (t.diag & 1) {          /* copy-only timing: no math */
      } else if (nhs == TMA_H) { /* a full stage: no guards, the halves interleave */
#pragma unroll
        for (int j = 0; j < TMA_H / CW; j++) half_j(j);
      } else {
        for (int j = 0; j < TMA_H / CW && warp + j * CW < nhs; j++) half_j(j);
      }
      __syncwarp();
      if (lane == 0) mbar_arrive(&empty[slot]);
      if (++slot == t.stg) slot = 0, ph ^= 1;
    }
    /* the tile's sum: warp tiles into red (two buffers by tile parity: one barrier per tile) */
    float(&rd)[CW][16][8] = red[(tile - tile0) & 1];
    rd[warp][g][2 * c] = acc[0][0][0] + acc[1][0][0];
    rd[warp][g][2 * c + 1] = acc[0][0][1] + acc[1][0][1];
    rd[warp][g + 8][2 * c] = acc[0][0][2] + acc[1][0][2];
    rd[warp][g + 8][2 * c + 1] = acc[0][0][3] + acc[1][0][3];
#pragma unroll
    for (int i = 0; i < 4; i++) acc[0][0][i] = acc[1][0][i] = 0;
    asm volatile("bar.sync 1, %0;" ::"n"(CW * 32) : "memory");
    if constexpr (GATED)
      mma_red_gated<D, CW, 1>(rd, w, (int64_t)tile * 8, m, y);
    else
      mma_red_store<CW, 1>(rd, (int64_t)tile * 16, w.n, m, y,
                           [&](float v, int64_t row, int col) { return D::epi(v, w, row, col); });
  }
#else
  (void)w, (void)t, (void)x, (void)y, (void)m;
  __trap(); /* the host launches it on cc >= 9 only */
#endif
}

/* Where the bulk-copy GEMV runs (aoq_gk_set_gemv_tma; $AOQ_GEMV_TMA sets the start value):
 * 0 nowhere; 1 (default) where it measured faster in the decode step (tma_pick); 2 every format
 * it takes at m <= 8, x staged where it fits (also in place of the FMA GEMV); 3 as 2 with x always
 * read from global memory (the tests use 2 and 3 to cover the kernel's every path). */
static int g_tma_mode = -1;
static int tma_mode() {
  if (g_tma_mode < 0) {
    const char *e = getenv("AOQ_GEMV_TMA");
    g_tma_mode = e ? atoi(e) : 1;
  }
  return g_tma_mode;
}

/* the streaming multiprocessors of the current device, and whether it is sm_90+ (0: not) */
static int tma_sms() {
  static int sms = -1;
  if (sms < 0) {
    int dev = 0, major = 0, n = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
      n = 0;
    sms = major >= 9 ? n : 0;
  }
  return sms;
}

/* The plan of the bulk-copy GEMV for w at m rows of x (gated: the gate | up launch), false where
 * it cannot or should not run: batch-invariant mode (one k split for every m), m > 8, no sm_90,
 * k not whole halves, parameters whose per-row / per-stage / last-stage spans are not multiples
 * of 16 bytes (the bulk copy's unit) or whose layout it does not know. */
/* Where the bulk-copy GEMV is the default (tma_mode 1): the rows of x at which the decode step
 * measured faster with it than with the mma / FMA GEMV (H100, llama3.1-8b synthetic, same-call
 * A/B, docs/cuda.md session 7). Folded int4 at m = 1 with x staged (k <= 8192: the down
 * projection's 28 KB of x per block was slower; batch 2 was slower in the step although its
 * GEMVs were faster alone). bf16 at m = 2..8 (step -3.8% at batch 2 .. -4.9% at batch 8; at
 * m = 2 in place of the FMA GEMV). int8wo and fp8wo from m = 6 (-1.2 .. -2.3%; batch 3 / 4 were
 * 3-5% slower). Not the fp4 formats, mxfp8, fp8dq (their decoders' ALU work: 5-20% slower). */
template <class D>
struct tma_pick {
  static bool on(int, int64_t, bool) {
    return false;
  }
};
template <>
struct tma_pick<DecI4F> {
  static bool on(int m, int64_t k, bool xs) {
    return m == 1 && k <= 8192 && xs;
  }
};
template <>
struct tma_pick<DecBF16> {
  static bool on(int m, int64_t, bool) {
    return m >= 2;
  }
};
template <>
struct tma_pick<DecI8> {
  static bool on(int m, int64_t, bool) {
    return m >= 6;
  }
};
template <>
struct tma_pick<DecFP8> {
  static bool on(int m, int64_t, bool) {
    return m >= 6;
  }
};

/* dynamic shared memory a block has for its ring and staged x: TMA_BPS blocks share the SM's
 * 228 KB (sm_90), each also holding 1 KB the driver reserves and its static reduction tiles and
 * mbarriers (the first bound, 227 KB / 2 - tiles, let the largest plans fit one block per SM) */
#define TMA_ROOM (228 * 1024 / TMA_BPS - 1024 - (int)sizeof(float) * 2 * TMA_CW * 16 * 8 - 512)

/* The plan of the bulk-copy GEMV for w at m rows of x (gated: the gate | up launch), false where
 * it cannot or should not run: tma_mode, batch-invariant mode (one k split for every m), m > 8,
 * no sm_90, k not whole halves, parameters whose per-row / per-stage / last-stage spans are not
 * multiples of 16 bytes (the bulk copy's unit) or whose layout it does not know. x is staged in
 * shared memory where it fits beside 3 stages (targs.xr), the ring takes what is left (<= TMA_STG).
 */
template <class D>
static bool tma_plan(const wargs &w, int m, bool gated, targs *t) {
  typedef TmaCfg<D> C;
  static_assert(2 * C::STAGE <= TMA_ROOM, "a block's shared memory");
  const int mode = tma_mode();
  if (m > 8 || mode == 0 || aoq_gk_batch_invariant()) return false;
  const int sms = tma_sms();
  if (!sms || w.k % C::KH || w.row_bytes % 16 || ((uintptr_t)w.q & 15)) return false;
  const int64_t sk = (int64_t)TMA_H * C::KH, nseg = (w.k + sk - 1) / sk;
  const int64_t prs = tprm<D>::bytes(w, w.k), pbs = tprm<D>::bytes(w, sk);
  const int64_t plast = tprm<D>::bytes(w, w.k - (nseg - 1) * sk);
  if (prs < 0 || pbs > tprm<D>::MAX) return false;
  if (prs && (!pbs || prs % 16 || pbs % 16 || plast % 16 || ((uintptr_t)w.scale & 15)))
    return false;                  /* (!pbs: groups longer than a stage) */
  const int64_t xr = w.k * 2 + 64; /* + 64: the rows of x land on other banks */
  const int64_t xbytes = m * xr + (i4fold<D>::v ? (w.k / C::KH) * 8 * (int64_t)sizeof(float) : 0);
  const bool xs = mode != 3 && TMA_ROOM - xbytes >= 3 * C::STAGE;
  if (mode == 1 && !tma_pick<D>::on(m, w.k, xs)) return false;
  const int64_t ntiles = gated ? (w.n / 2 + 7) / 8 : (w.n + 15) / 16;
  const int64_t slots = (int64_t)sms * TMA_BPS;
  const int64_t tpb = (ntiles + slots - 1) / slots;
  if (ntiles > INT32_MAX / 2) return false;
  const int64_t stg = (TMA_ROOM - (xs ? xbytes : 0)) / C::STAGE;
  t->prs = prs, t->pbs = (int)pbs, t->plast = (int)plast, t->nseg = (int)nseg;
  t->ntiles = (int)ntiles, t->tpb = (int)tpb, t->stg = (int)(stg < TMA_STG ? stg : TMA_STG);
  t->xr = xs ? (int)xr : 0, t->diag = 0;
  return true;
}

template <class D, bool GATED, bool XS>
static int launch_tma_k(const wargs &w, const targs &t, const uint16_t *x, uint16_t *y, int m,
                        aoq_gpu_stream_t st) {
  typedef TmaCfg<D> C;
  const int smem =
      t.stg * C::STAGE + (XS ? m * t.xr + (i4fold<D>::v ? (int)(w.k / C::KH) * 8 * 4 : 0) : 0);
  aoq_gpu_error_t e = cudaFuncSetAttribute(k_gemv_tma<D, TMA_CW, GATED, XS>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != AOQ_GPU_SUCCESS) return (int)e;
  const unsigned blocks = (unsigned)((t.ntiles + t.tpb - 1) / t.tpb);
  return aoq_launch(k_gemv_tma<D, TMA_CW, GATED, XS>, blocks, (TMA_CW + 1) * 32, smem, st, w, t, x,
                    y, m);
}

/* AOQ_TMA_DIAG (diagnosis): targs.diag */
template <class D, bool GATED>
static int launch_tma(const wargs &w, targs t, const uint16_t *x, uint16_t *y, int m,
                      aoq_gpu_stream_t st) {
  static const int diag = getenv("AOQ_TMA_DIAG") ? atoi(getenv("AOQ_TMA_DIAG")) : 0;
  t.diag = diag;
  if (t.xr) return launch_tma_k<D, GATED, true>(w, t, x, y, m, st);
  return launch_tma_k<D, GATED, false>(w, t, x, y, m, st);
}
