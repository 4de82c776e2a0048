/*
 * attention_prefill.cu — causal GQA attention on tensor cores for runs of query rows of one
 * sequence at consecutive positions (prefill, chunked prefill over an existing cache), flash
 * attention 2 style. attention_impl.h says which rows come here.
 *
 * A block takes one routing chunk (64 rows), one KV head and GB = 1 or 2 of its query heads: warp
 * w computes 16 rows of head w / 4 (rows 16 (w % 4) ..). Keys come in tiles of 64 positions
 * (aligned to 0), copied from the paged cache into shared memory with cp.async, two tiles in
 * flight, and shared by the block's heads. S = Q K^T and O += P V run on mma.sync m16n8k16 bf16
 * with fp32 accumulators; the softmax is online in fp32 (exp2 of log2e-scaled scores), the
 * weights enter P V rounded to bf16 and the normalizer sums them unrounded, as the CPU backend
 * (devices/cpu/cpu_ops.c) and torch's flash kernels do. The only difference from the CPU
 * reference is where the running max is refreshed (every 64 keys here, every 128 there), which
 * moves the bf16 rounding of the weights by at most an ulp.
 *
 * Splits (few chunks, long context): tiles s, s + fsplits, ... of a run go to split s, which
 * writes (max, sum, acc) to the workspace for attention.cu's merge kernel.
 */
#include "kernels/gpu/attention_impl.h"

#ifdef AOQ_HAVE_MMA_BF16

#define KT 64 /* keys per tile */

static __device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0,
                                                uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

static __device__ __forceinline__ void ldsm_x4(uint32_t r[4], const void *p) {
  uint32_t s = (uint32_t)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

static __device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], const void *p) {
  uint32_t s = (uint32_t)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

/* 16 bytes global -> shared; bytes = 0 writes zeros (keys past the run's last position). */
static __device__ __forceinline__ void cp_async16(void *dst, const void *src, int bytes) {
  uint32_t s = (uint32_t)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(src), "r"(bytes));
}
static __device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;");
}
template <int N>
static __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N));
}

/* 2^x, flushing subnormal results to 0 (a weight below 2^-126 is nothing next to the row max's 1)
 */
static __device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

static __device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *(uint32_t *)&v;
}

/* Copies key tile `tile` (positions tile*KT ..) of KV head kvh into ks/vs (rows of HD + 8). */
template <int HD, int NT>
static __device__ __forceinline__ void load_tile(const attn_args &a, const int32_t *bt, int kvh,
                                                 int tile, int pmax, uint16_t *ks, uint16_t *vs) {
  constexpr int CPR = HD / 8; /* 16-byte chunks per key row */
  const int64_t kvw = (int64_t)a.nkv * HD;
#pragma unroll
  for (int i = threadIdx.x; i < KT * CPR; i += NT) {
    int kk = i / CPR, part = i % CPR, p = tile * KT + kk;
    int64_t off = 0;
    int bytes = 0;
    if (p <= pmax) {
      off = ((int64_t)__ldg(bt + p / a.page_size) * a.page_size + p % a.page_size) * kvw +
            (int64_t)kvh * HD + part * 8;
      bytes = 16;
    }
    cp_async16(ks + kk * (HD + 8) + part * 8, a.k + off, bytes);
    cp_async16(vs + kk * (HD + 8) + part * 8, a.v + off, bytes);
  }
}

template <int HD, int GB>
__global__ void __launch_bounds__(GB * 128, 1) k_attn_prefill(attn_args a) {
  constexpr int NT = GB * 128, LD = HD + 8;
  extern __shared__ __align__(16) uint16_t smem[];
  uint16_t *ksm = smem, *vsm = smem + 2 * KT * LD; /* [2][KT][LD] each */
  __shared__ unsigned sh2[2];
  __shared__ int bad_run;
  AOQ_PDL_WAIT();
  const int chunk = (int)(gridDim.x - 1 - blockIdx.x); /* longest (last) chunks first */
  const int hgroups = a.group / GB, kvh = blockIdx.y / hgroups, split = blockIdx.z;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, c = lane % 4;
  const int head = kvh * a.group + (blockIdx.y % hgroups) * GB + warp / 4;
  const int wr0 = 16 * (warp % 4); /* the warp's first chunk row */
  const int64_t c0 = (int64_t)chunk * RUN_CHUNK;
  const unsigned long long links = attn_run_links(a, c0, sh2);
  const int nrows = (int)min((int64_t)RUN_CHUNK, a.m - c0);
  const float sl2 = a.scale * 1.4426950408889634f; /* scores in log2 units */

  for (int s0 = 0; s0 < nrows;) {
    const int s1 = attn_run_end(links, s0);
    const int ra = s0;
    s0 = s1;
    if (s1 - ra < MIN_RUN) continue;
    /* the run: rows c0 + ra .. c0 + s1 - 1 at positions p0 .. pmax of one sequence */
    const int seq = a.row_seq[c0 + ra], p0 = a.row_pos[c0 + ra], pmax = p0 + (s1 - ra) - 1;
    if (tid == 0)
      bad_run = seq < 0 || seq >= a.n_seqs || p0 < 0 || pmax >= a.max_blocks * a.page_size;
    __syncthreads();
    bool bad = bad_run;
    const int32_t *bt = a.bt + (int64_t)(bad ? 0 : seq) * a.max_blocks;
    if (!bad)
      for (int blk = tid; blk <= pmax / a.page_size; blk += NT)
        if (bt[blk] < 0 || bt[blk] >= a.n_pages) bad = true;
    bad = __syncthreads_or(bad);
    if (bad && tid == 0) atomicCAS(a.err, 0, AOQ_GK_ERR_ATTN_INDEX);
    const int n_tiles = bad ? 0 : pmax / KT + 1;

    /* this lane's two rows (g, g + 8 of the warp's 16): position, or -1 outside the run */
    int rp[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
      int r = wr0 + g + 8 * h;
      rp[h] = r >= ra && r < s1 ? p0 + (r - ra) : -1;
    }
    const int wlo = max(wr0, ra), whi = min(wr0 + 16, s1); /* the warp's rows in the run */
    const bool wact = wlo < whi;
    const int wmax = wact ? p0 + (whi - 1 - ra) : -1, wmin = wact ? p0 + (wlo - ra) : 0;

    uint32_t qa[HD / 16][4];
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++)
#pragma unroll
      for (int j = 0; j < 4; j++) {
        int h = j & 1, d = kk * 16 + 2 * c + (j >> 1) * 8;
        qa[kk][j] =
            rp[h] >= 0
                ? *(const uint32_t *)(a.q + ((c0 + wr0 + g + 8 * h) * a.n_heads + head) * HD + d)
                : 0u;
      }
    float o[HD / 8][4];
#pragma unroll
    for (int j = 0; j < HD / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
    float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};

    int buf = 0;
    if (split < n_tiles) load_tile<HD, NT>(a, bt, kvh, split, pmax, ksm, vsm);
    cp_async_commit();
    for (int tile = split; tile < n_tiles; tile += a.fsplits) {
      const int next = tile + a.fsplits;
      if (next < n_tiles)
        load_tile<HD, NT>(a, bt, kvh, next, pmax, ksm + (buf ^ 1) * KT * LD,
                          vsm + (buf ^ 1) * KT * LD);
      cp_async_commit();
      cp_async_wait<1>();
      __syncthreads();
      const uint16_t *ks = ksm + buf * KT * LD, *vs = vsm + buf * KT * LD;
      const int t0 = tile * KT;
      if (wact && t0 <= wmax) {
        float s[KT / 8][4];
#pragma unroll
        for (int j = 0; j < KT / 8; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
          /* S = Q K^T: ldmatrix of K rows gives the col-major B fragments directly */
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++)
#pragma unroll
          for (int np = 0; np < KT / 16; np++) {
            uint32_t b[4];
            int mi = lane / 8;
            ldsm_x4(b, ks + (np * 16 + (mi >> 1) * 8 + lane % 8) * LD + kk * 16 + (mi & 1) * 8);
            mma_bf16(s[2 * np], qa[kk], b[0], b[1]);
            mma_bf16(s[2 * np + 1], qa[kk], b[2], b[3]);
          }
        /* mask, tile max, rescale */
        const bool diag = t0 + KT - 1 > wmin;
        float tmax[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int j = 0; j < KT / 8; j++)
#pragma unroll
          for (int e = 0; e < 4; e++) {
            int key = t0 + 8 * j + 2 * c + (e & 1);
            float x = s[j][e] * sl2;
            if (diag && key > rp[e >> 1]) x = -INFINITY;
            s[j][e] = x;
            tmax[e >> 1] = fmaxf(tmax[e >> 1], x);
          }
        float corr[2], base[2];
#pragma unroll
        for (int h = 0; h < 2; h++) {
          tmax[h] = fmaxf(tmax[h], __shfl_xor_sync(0xffffffffu, tmax[h], 1));
          tmax[h] = fmaxf(tmax[h], __shfl_xor_sync(0xffffffffu, tmax[h], 2));
          float mn = fmaxf(mrow[h], tmax[h]);
          base[h] = mn == -INFINITY ? 0.f : mn;
          corr[h] = ex2(mrow[h] - base[h]);
          mrow[h] = mn;
          lrow[h] *= corr[h];
        }
#pragma unroll
        for (int j = 0; j < HD / 8; j++) {
          o[j][0] *= corr[0], o[j][1] *= corr[0];
          o[j][2] *= corr[1], o[j][3] *= corr[1];
        }
        /* O += P V, P rounded to bf16 (the A fragments are the S accumulators, re-packed) */
#pragma unroll
        for (int ks16 = 0; ks16 < KT / 16; ks16++) {
          uint32_t pa[4];
          float p[2][4];
#pragma unroll
          for (int t = 0; t < 2; t++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
              p[t][e] = ex2(s[2 * ks16 + t][e] - base[e >> 1]);
              lrow[e >> 1] += p[t][e];
            }
          pa[0] = pack_bf16(p[0][0], p[0][1]);
          pa[1] = pack_bf16(p[0][2], p[0][3]);
          pa[2] = pack_bf16(p[1][0], p[1][1]);
          pa[3] = pack_bf16(p[1][2], p[1][3]);
#pragma unroll
          for (int dp = 0; dp < HD / 16; dp++) {
            uint32_t b[4];
            int mi = lane / 8;
            ldsm_x4_t(b, vs + (ks16 * 16 + (mi & 1) * 8 + lane % 8) * LD + dp * 16 + (mi >> 1) * 8);
            mma_bf16(o[2 * dp], pa, b[0], b[1]);
            mma_bf16(o[2 * dp + 1], pa, b[2], b[3]);
          }
        }
      }
      __syncthreads(); /* the buffer is refilled by the next iteration's copy */
      buf ^= 1;
    }
    cp_async_wait<0>();

    /* row sums over the 4 lanes of a row, then the output or this split's partial */
#pragma unroll
    for (int h = 0; h < 2; h++) {
      lrow[h] += __shfl_xor_sync(0xffffffffu, lrow[h], 1);
      lrow[h] += __shfl_xor_sync(0xffffffffu, lrow[h], 2);
    }
#pragma unroll
    for (int h = 0; h < 2; h++) {
      if (rp[h] < 0) continue;
      int64_t oh = (c0 + wr0 + g + 8 * h) * a.n_heads + head;
      if (a.fsplits == 1) {
        float inv = lrow[h] > 0 ? 1.0f / lrow[h] : 0.0f;
        uint16_t *y = a.out + oh * HD;
#pragma unroll
        for (int j = 0; j < HD / 8; j++)
          *(uint32_t *)(y + 8 * j + 2 * c) = pack_bf16(o[j][2 * h] * inv, o[j][2 * h + 1] * inv);
      } else {
        float *pw = a.ws + (oh * a.ws_splits + split) * (HD + 2);
#pragma unroll
        for (int j = 0; j < HD / 8; j++)
          *(float2 *)(pw + 2 + 8 * j + 2 * c) = make_float2(o[j][2 * h], o[j][2 * h + 1]);
        if (c == 0) pw[0] = mrow[h] * 0.6931471805599453f, pw[1] = lrow[h];
      }
    }
  }
}

bool attn_prefill_supported(int head_dim) {
  return head_dim == 64 || head_dim == 128;
}

int attn_prefill_splits(int64_t m, int nkv, int group, int max_pos, int num_sms) {
  int64_t chunks = (m + RUN_CHUNK - 1) / RUN_CHUNK;
  int64_t blocks = chunks * nkv * (group % 2 ? group : group / 2);
  /* one block per SM fits (shared memory, registers): split until one wave is full */
  int64_t want = ((int64_t)(num_sms > 0 ? num_sms : 1) + blocks - 1) / blocks;
  int64_t tiles = max_pos / KT + 1;
  int64_t s = want < tiles ? want : tiles;
  return s < 1 ? 1 : s > MAX_SPLITS ? MAX_SPLITS : (int)s;
}

template <int HD, int GB>
static int launch(const attn_args &a, aoq_gpu_stream_t st) {
  const size_t smem = (size_t)4 * KT * (HD + 8) * sizeof(uint16_t);
  /* above 48 KiB a kernel must opt in; a host-side attribute, legal during graph capture */
  cudaError_t e = cudaFuncSetAttribute(k_attn_prefill<HD, GB>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  if (e != cudaSuccess) return (int)e;
  dim3 grid((unsigned)((a.m + RUN_CHUNK - 1) / RUN_CHUNK), (unsigned)(a.nkv * (a.group / GB)),
            (unsigned)a.fsplits);
  return aoq_launch(k_attn_prefill<HD, GB>, grid, GB * 128, smem, st, a);
}

int attn_prefill_launch(const attn_args &a, aoq_gpu_stream_t st) {
  bool pair = a.group % 2 == 0;
  if (a.hd == 128) return pair ? launch<128, 2>(a, st) : launch<128, 1>(a, st);
  return pair ? launch<64, 2>(a, st) : launch<64, 1>(a, st);
}

#endif
