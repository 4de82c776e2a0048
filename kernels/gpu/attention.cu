/*
 * attention.cu — paged causal GQA attention for decode and prefill rows (continuous batching).
 *
 * One block of 128 threads serves one query row, one KV head and up to G query heads of its group,
 * over the keys of one split. Keys are processed in tiles of 128 positions aligned like the CPU
 * backend's (positions 0..127, 128..255, ...): scores of a tile go to shared memory, the running
 * max is updated once per tile, and the softmax weights enter P.V rounded to bf16 (torch flash
 * semantics, as the CPU backend) while the normalizer sums them unrounded. Splits take tiles
 * s, s + splits, ... up to the row's own position, read on the device, so a captured graph stays
 * correct at any position. Splits past the row's last tile return at once; where the row's tiles
 * all fall to split 0 (a short context under a plan made for a long one, as in a decode graph),
 * that split writes the output itself. Otherwise partial (max, sum, acc) go to the workspace and
 * a second kernel merges the splits that ran.
 */
#include "base/numerics.h"
#include "kernels/gpu/attention_impl.h"
#include "kernels/gpu/rope_impl.h"

#define TILE 128
#define THREADS 128
#define MAX_HD 256

#define KB 8 /* loads in flight per thread: chunks of a key row, then value rows */

/* Splits of the per-row kernel that hold key tiles of a row at position pos (1 for a position out
 * of range: split 0 flags it and writes zeros). The kernel and the merge agree on it. */
static __device__ __forceinline__ int row_splits(const attn_args &a, int pos) {
  int tiles = pos >= 0 && pos < a.max_blocks * a.page_size ? pos / TILE + 1 : 1;
  return min(a.splits, tiles);
}

/* VW bf16 values loaded with one access (16 bytes when head_dim % 8 == 0), kept raw until used. */
template <int VW>
struct vload;
template <>
struct vload<8> {
  uint32_t w[4];
  __device__ __forceinline__ void ld(const uint16_t *p) {
    uint4 u = *(const uint4 *)p;
    w[0] = u.x, w[1] = u.y, w[2] = u.z, w[3] = u.w;
  }
  __device__ __forceinline__ float f(int e) const {
    return __uint_as_float(e & 1 ? w[e >> 1] & 0xffff0000u : w[e >> 1] << 16);
  }
};
template <>
struct vload<1> {
  uint32_t w;
  __device__ __forceinline__ void ld(const uint16_t *p) {
    w = *p;
  }
  __device__ __forceinline__ float f(int) const {
    return __uint_as_float(w << 16);
  }
};

/* The per-row kernel's body. QKV (k_attn_qkv, decode batches: every row the only row of its
 * sequence): q is the qkv linear's output, roped here (qkv_rope_store's bits), and the blocks of
 * the split holding the row's own position (one per head chunk) rope the kv head's k and store it
 * and v at the row's slot before their keys are read, so no block depends on another's store
 * (head chunks of one kv head write the same bits to the same slot). */
template <int G, int VW, bool QKV>
static __device__ __forceinline__ void attn_rows(const attn_args &a, const aoq_gk_rope_freqs *rf) {
  constexpr int NCH = VW == 1 ? 2 : 1; /* value chunks per thread (VW 1: head_dim up to 256) */
  constexpr int RG = G < 4 ? G : 4;    /* heads per pass of the final reduction */
  __shared__ float qs[G][MAX_HD];
  __shared__ float sc[G][TILE];
  __shared__ int64_t sl[TILE];
  __shared__ float mx[G], lsum[G], corr[G];
  __shared__ float red[RG][TILE * 8]; /* the key groups' P.V partials of RG heads */
  __shared__ float rc[QKV ? MAX_HD / 2 : 1], rs[QKV ? MAX_HD / 2 : 1]; /* bf16 cos, sin */
  const int row = blockIdx.x, kvh = blockIdx.y / a.hchunks, split = blockIdx.z;
  const int h0 = kvh * a.group + (blockIdx.y % a.hchunks) * G;
  const int gn = min(G, kvh * a.group + a.group - h0);
  const int tid = threadIdx.x, warp = tid / AOQ_LWARP, lane = tid % AOQ_LWARP, hd = a.hd;
  /* before the wait only step metadata (written by host copies, never by a kernel) */
  bool in_run = false;
#ifdef AOQ_HAVE_MMA_BF16
  if (a.fsplits > 0) { /* runs of rows belong to the tensor-core kernel */
    __shared__ unsigned sh2[2];
    in_run = attn_row_in_run(a, row, sh2);
  }
#endif
  const int seq = a.row_seq[row], pos = a.row_pos[row];
  const int rsplits = row_splits(a, pos);
  const bool idle = in_run || split >= rsplits; /* no tile of this row is this split's */
  bool bad = seq < 0 || seq >= a.n_seqs || pos < 0 || pos >= a.max_blocks * a.page_size;
  const int32_t *bt = a.bt + (int64_t)(bad ? 0 : seq) * a.max_blocks;
  const int64_t kvw = (int64_t)a.nkv * hd;
  const int n_tiles = bad ? 0 : pos / TILE + 1; /* 0 also where the table check below fails */
  int32_t slot = -1;
  bool writer = false;
  if constexpr (QKV) {
    slot = a.slots[row];
    const bool sok = slot >= 0 && slot < a.n_slots;
    if (!sok && tid == 0 && blockIdx.y == 0 && split == 0) atomicCAS(a.err, 0, AOQ_GK_ERR_KV_SLOT);
    /* every head chunk of the kv head stores (the same bits): each reads only its own store */
    writer = sok && split == (bad ? 0 : (pos / TILE) % a.splits);
    const float p = (float)pos;
    for (int d = tid; d < hd / 2; d += THREADS) {
      float ang = p * rf->inv[d];
      rc[d] = aoq_round_bf16(cosf(ang)), rs[d] = aoq_round_bf16(sinf(ang));
    }
  }
  if (!bad && !idle) {
    for (int blk = tid; blk <= pos / a.page_size; blk += THREADS)
      if (bt[blk] < 0 || bt[blk] >= a.n_pages) bad = true;
    /* the K and V rows of the first tile into L2 (the previous steps' keys come from DRAM), and
     * their cache offsets for the first tile's loop (a bad table entry is caught before use) */
    const int p = split * TILE + tid;
    const int32_t pg = p <= pos ? bt[p / a.page_size] : -1;
    if (pg >= 0 && pg < a.n_pages) {
      const int64_t off = ((int64_t)pg * a.page_size + p % a.page_size) * kvw + kvh * hd;
      sl[tid] = off;
      for (int e = 0; e < hd; e += 64)
        aoq_prefetch_l2(a.k + off + e), aoq_prefetch_l2(a.v + off + e);
    }
  }
  AOQ_PDL_WAIT();
  if (idle) return;
  if constexpr (QKV) {
    __syncthreads(); /* rc, rs */
    const int half = hd / 2;
    const uint16_t *qrow = a.q + (int64_t)row * a.q_stride;
    for (int i = tid; i < G * hd; i += THREADS) {
      const int g = i / hd, d = i % hd, j = d % half;
      float v = 0.f;
      if (g < gn) { /* rope_rot's arithmetic for element d of head h0 + g */
        const uint16_t *src = qrow + (int64_t)(h0 + g) * hd;
        const float x1 = aoq_bf16_to_f32(src[j]), x2 = aoq_bf16_to_f32(src[j + half]);
        v = d < half ? aoq_round_bf16(x1 * rc[j]) - aoq_round_bf16(x2 * rs[j])
                     : aoq_round_bf16(x2 * rc[j]) + aoq_round_bf16(x1 * rs[j]);
        v = aoq_round_bf16(v);
      }
      qs[g][d] = v;
    }
    if (writer) {
      const uint16_t *ks = qrow + (int64_t)(a.n_heads + kvh) * hd, *vs = ks + kvw;
      const int64_t dst = (int64_t)slot * kvw + (int64_t)kvh * hd;
      for (int d = tid; d < half; d += THREADS) rope_rot(ks, a.kw + dst, d, half, rc[d], rs[d]);
      for (int e = tid; e < hd; e += THREADS) a.vw[dst + e] = vs[e];
    }
  } else {
    for (int i = tid; i < G * hd; i += THREADS) {
      int g = i / hd, d = i % hd;
      qs[g][d] = g < gn
                     ? aoq_bf16_to_f32(a.q[(int64_t)row * a.q_stride + (int64_t)(h0 + g) * hd + d])
                     : 0.f;
    }
  }
  if (tid < G) mx[tid] = -INFINITY, lsum[tid] = 0;
  /* also orders the writer's cache stores before any thread of the block reads keys */
  bad = __syncthreads_or(bad);
  if (bad && tid == 0) atomicCAS(a.err, 0, AOQ_GK_ERR_ATTN_INDEX);

  /* P.V: thread = (key group kg, chunk ci of VW values); key groups take keys kg, kg + n_kg, .. */
  const int ch = hd / VW, n_kg = ch >= THREADS ? 1 : THREADS / ch;
  const int kg = ch >= THREADS ? 0 : tid / ch, ci = ch >= THREADS ? tid : tid % ch;
  const bool pv = kg < n_kg;
  float acc[G][NCH * VW];
#pragma unroll
  for (int g = 0; g < G; g++)
#pragma unroll
    for (int j = 0; j < NCH * VW; j++) acc[g][j] = 0;
  __syncthreads();

  for (int tile = split; tile < (bad ? 0 : n_tiles); tile += a.splits) {
    const int t0 = tile * TILE, nt = min(TILE, pos + 1 - t0);
    if (tile != split) /* the first tile's offsets were set before the wait */
      for (int t = tid; t < nt; t += THREADS) {
        int p = t0 + t;
        sl[t] = ((int64_t)bt[p / a.page_size] * a.page_size + p % a.page_size) * kvw + kvh * hd;
      }
    __syncthreads();
    /* scores: thread t reads key row t whole, KB chunks in flight */
    if (tid < nt) {
      const uint16_t *kp = a.k + sl[tid];
      float part[G];
#pragma unroll
      for (int g = 0; g < G; g++) part[g] = 0;
      for (int c0 = 0; c0 < ch; c0 += KB) {
        vload<VW> kv[KB];
#pragma unroll
        for (int i = 0; i < KB; i++)
          if (c0 + i < ch) kv[i].ld(kp + (c0 + i) * VW);
#pragma unroll
        for (int i = 0; i < KB; i++)
          if (c0 + i < ch)
#pragma unroll
            for (int e = 0; e < VW; e++) {
              float k = kv[i].f(e);
              int d = (c0 + i) * VW + e;
#pragma unroll
              for (int g = 0; g < G; g++) part[g] += qs[g][d] * k;
            }
      }
#pragma unroll
      for (int g = 0; g < G; g++) sc[g][tid] = part[g] * a.scale;
    }
    __syncthreads();
    /* warp w owns heads g = w, w + 4, ...: tile max, rescale factor, weights and their sum */
    for (int g = warp; g < G; g += THREADS / AOQ_LWARP) {
      float bm = -INFINITY;
      for (int t = lane; t < nt; t += AOQ_LWARP) bm = fmaxf(bm, sc[g][t]);
      for (int o = 16; o > 0; o >>= 1) bm = fmaxf(bm, AOQ_SHFL_XOR(bm, o));
      float m_old = mx[g], m_new = bm > m_old ? bm : m_old;
      float c = bm > m_old ? expf(m_old - bm) : 1.0f;
      float s = 0;
      for (int t = lane; t < nt; t += AOQ_LWARP) {
        float w = expf(sc[g][t] - m_new);
        s += w;
        sc[g][t] = aoq_round_bf16(w);
      }
      for (int o = 16; o > 0; o >>= 1) s += AOQ_SHFL_XOR(s, o);
      __syncwarp();
      if (lane == 0) {
        corr[g] = c;
        mx[g] = m_new;
        lsum[g] = lsum[g] * c + s;
      }
    }
    __syncthreads();
#pragma unroll
    for (int g = 0; g < G; g++)
#pragma unroll
      for (int j = 0; j < NCH * VW; j++) acc[g][j] *= corr[g];
    if (pv)
      for (int k0 = kg; k0 < nt; k0 += n_kg * KB) {
        vload<VW> vv[KB][NCH];
#pragma unroll
        for (int i = 0; i < KB; i++) {
          int t = k0 + i * n_kg;
#pragma unroll
          for (int n = 0; n < NCH; n++)
            if (t < nt && ci + n * THREADS < ch) vv[i][n].ld(a.v + sl[t] + (ci + n * THREADS) * VW);
        }
#pragma unroll
        for (int i = 0; i < KB; i++) {
          int t = k0 + i * n_kg;
          if (t >= nt) break;
          float w[G];
#pragma unroll
          for (int g = 0; g < G; g++) w[g] = sc[g][t];
#pragma unroll
          for (int n = 0; n < NCH; n++)
            if (ci + n * THREADS < ch)
#pragma unroll
              for (int e = 0; e < VW; e++) {
                float v = vv[i][n].f(e);
#pragma unroll
                for (int g = 0; g < G; g++) acc[g][n * VW + e] += w[g] * v;
              }
        }
      }
    __syncthreads();
  }

  /* sum the key groups' partials (in key-group order), RG heads per pass: thread tid ends with
   * dims tid, tid + 128 of every head */
  float fin[G][2];
#pragma unroll
  for (int g0 = 0; g0 < G; g0 += RG) {
#pragma unroll
    for (int r = 0; r < RG; r++)
      if (pv)
#pragma unroll
        for (int n = 0; n < NCH; n++)
          if (ci + n * THREADS < ch)
#pragma unroll
            for (int e = 0; e < VW; e++)
              red[r][kg * hd + (ci + n * THREADS) * VW + e] = acc[g0 + r][n * VW + e];
    __syncthreads();
#pragma unroll
    for (int r = 0; r < RG; r++)
#pragma unroll
      for (int j = 0; j < 2; j++) {
        int d = tid + j * THREADS;
        float s = 0;
        if (d < hd)
          for (int k = 0; k < n_kg; k++) s += red[r][k * hd + d];
        fin[g0 + r][j] = s;
      }
    __syncthreads();
  }

#pragma unroll
  for (int j = 0; j < 2; j++) {
    int d = tid + j * THREADS;
    if (d >= hd) break;
#pragma unroll
    for (int g = 0; g < G; g++) {
      if (g >= gn) break;
      int64_t oh = (int64_t)row * a.n_heads + h0 + g;
      if (rsplits == 1) { /* the bits the merge would give: its factors are exp(0) = 1 */
        float inv = lsum[g] > 0 ? 1.0f / lsum[g] : 0.0f;
        a.out[oh * hd + d] = aoq_f32_to_bf16(fin[g][j] * inv);
      } else {
        float *p = a.ws + (oh * a.ws_splits + split) * (hd + 2);
        p[2 + d] = fin[g][j];
        if (d == 0) p[0] = mx[g], p[1] = lsum[g];
      }
    }
  }
}

template <int G, int VW>
__global__ void __launch_bounds__(THREADS, G >= 4 ? 3 : 4) k_attn(attn_args a) {
  attn_rows<G, VW, false>(a, nullptr);
}
#ifdef AOQ_HAVE_MMA_BF16 /* CUDA: the fused op is offered there only */
template <int G, int VW>
__global__ void __launch_bounds__(THREADS, G >= 4 ? 3 : 4)
    k_attn_qkv(attn_args a, const __grid_constant__ aoq_gk_rope_freqs rf) {
  attn_rows<G, VW, true>(a, &rf);
}
#endif

/* grid (m, n_heads), 128 threads: merges the splits of one head of one row (the splits that ran
 * for it; a row whose kernel ran as one split was written there) */
__global__ void k_attn_merge(attn_args a) {
  AOQ_PDL_WAIT();
  const int64_t row = blockIdx.x, oh = row * gridDim.y + blockIdx.y;
  const int hd = a.hd;
  int splits = row_splits(a, a.row_pos[row]);
#ifdef AOQ_HAVE_MMA_BF16
  if (a.fsplits > 0) {
    __shared__ unsigned sh2[2];
    if (attn_row_in_run(a, row, sh2)) splits = a.fsplits;
  }
#endif
  if (splits <= 1) return;
  const float *base = a.ws + oh * a.ws_splits * (hd + 2);
  float m = -INFINITY;
  for (int s = 0; s < splits; s++) {
    const float *p = base + s * (hd + 2);
    if (p[1] > 0) m = fmaxf(m, p[0]);
  }
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float l = 0, o = 0;
    for (int s = 0; s < splits; s++) {
      const float *p = base + s * (hd + 2);
      if (!(p[1] > 0)) continue;
      float c = expf(p[0] - m);
      l += p[1] * c;
      o += p[2 + d] * c;
    }
    a.out[oh * hd + d] = aoq_f32_to_bf16(o * (l > 0 ? 1.0f / l : 0.0f));
  }
}

template <int VW>
static int launch_rows(const attn_args &a, int g, dim3 grid, aoq_gpu_stream_t st,
                       const aoq_gk_rope_freqs *rf) {
#ifdef AOQ_HAVE_MMA_BF16
  if (rf) switch (g) {
      case 8:
        return aoq_launch(k_attn_qkv<8, VW>, grid, THREADS, 0, st, a, *rf);
      case 4:
        return aoq_launch(k_attn_qkv<4, VW>, grid, THREADS, 0, st, a, *rf);
      case 2:
        return aoq_launch(k_attn_qkv<2, VW>, grid, THREADS, 0, st, a, *rf);
      default:
        return aoq_launch(k_attn_qkv<1, VW>, grid, THREADS, 0, st, a, *rf);
    }
#else
  if (rf) return (int)cudaErrorInvalidValue;
#endif
  switch (g) {
    case 8:
      return aoq_launch(k_attn<8, VW>, grid, THREADS, 0, st, a);
    case 4:
      return aoq_launch(k_attn<4, VW>, grid, THREADS, 0, st, a);
    case 2:
      return aoq_launch(k_attn<2, VW>, grid, THREADS, 0, st, a);
    default:
      return aoq_launch(k_attn<1, VW>, grid, THREADS, 0, st, a);
  }
}

static int pick_g(int group) {
  return group >= 8 ? 8 : group >= 4 ? 4 : group >= 2 ? 2 : 1;
}

/* The launch plan of m rows up to max_pos: splits of the per-row kernel, of the tensor-core
 * kernel (0 when it is not launched: fewer than MIN_RUN rows, a head_dim it lacks, or HIP), and
 * the workspace slots per (row, head). */
typedef struct attn_plan {
  int splits, fsplits, ws_splits;
} attn_plan;

/* Batch-invariant mode: a fixed number of splits (key tile t always goes to split t % this),
 * whatever m and max_pos, and no tensor-core kernel: a row's sums do not depend on its batch. */
#define INVARIANT_SPLITS 16

static attn_plan plan(const aoq_kv_cache *kv, int64_t m, int n_heads, int max_pos, int num_sms) {
  attn_plan p;
  if (aoq_gk_batch_invariant()) {
    p.splits = p.ws_splits = INVARIANT_SPLITS;
    p.fsplits = 0;
    return p;
  }
  int group = n_heads / kv->n_kv_heads, g = pick_g(group);
  int64_t base = m * kv->n_kv_heads * ((group + g - 1) / g);
  int tiles = max_pos / TILE + 1;
  /* ~3 blocks fit per SM: split until the grid is ~8 blocks per SM (short tail wave) */
  int64_t want = (8 * (int64_t)(num_sms > 0 ? num_sms : 1) + base - 1) / base;
  int s = (int)(want < tiles ? want : tiles);
  p.splits = s < 1 ? 1 : s > MAX_SPLITS ? MAX_SPLITS : s;
  p.fsplits = 0;
#ifdef AOQ_HAVE_MMA_BF16
  if (m >= MIN_RUN && attn_prefill_supported(kv->head_dim))
    p.fsplits = attn_prefill_splits(m, kv->n_kv_heads, group, max_pos, num_sms);
#endif
  int w = p.splits > p.fsplits ? p.splits : p.fsplits;
  p.ws_splits = w > 1 ? w : 0;
  return p;
}

extern "C" size_t aoq_gk_attention_workspace(const aoq_kv_cache *kv, int64_t m, int n_heads,
                                             int max_pos, int num_sms) {
  if (!kv || m <= 0 || n_heads <= 0 || kv->n_kv_heads <= 0 || max_pos < 0) return 0;
  attn_plan p = plan(kv, m, n_heads, max_pos, num_sms);
  return (size_t)m * n_heads * p.ws_splits * (kv->head_dim + 2) * sizeof(float);
}

/* aoq_gk_attention, and with rf / slots (aoq_gk_attention_qkv) the fused kernel over qkv rows */
static int attention(const aoq_kv_cache *kv, const aoq_attn_batch *b, const uint16_t *q,
                     int64_t q_stride, uint16_t *out, int64_t m, int n_heads, float scale, void *ws,
                     int num_sms, int *err, aoq_gpu_stream_t st, const aoq_gk_rope_freqs *rf,
                     const int32_t *slots) {
  if (m == 0) return 0;
  int group = n_heads / kv->n_kv_heads, g = pick_g(group);
  attn_plan p = plan(kv, m, n_heads, b->max_pos, num_sms);
  if (rf) p.fsplits = 0;        /* decode rows only: no runs for the tensor-core kernel */
  if (p.ws_splits > 0 && !ws) { /* no workspace: every kernel unsplit */
    p.splits = 1;
    p.fsplits = p.fsplits ? 1 : 0;
    p.ws_splits = 0;
  }
  attn_args a;
  a.k = (const uint16_t *)kv->k, a.v = (const uint16_t *)kv->v, a.q = q, a.out = out;
  a.q_stride = q_stride;
  a.kw = rf ? (uint16_t *)kv->k : NULL, a.vw = rf ? (uint16_t *)kv->v : NULL;
  a.slots = slots, a.n_slots = (int64_t)kv->n_pages * kv->page_size;
  a.ws = (float *)ws;
  a.row_seq = b->row_seq, a.row_pos = b->row_pos, a.bt = b->block_tables;
  a.m = m;
  a.n_seqs = b->n_seqs, a.max_blocks = b->max_blocks, a.n_pages = kv->n_pages;
  a.page_size = kv->page_size, a.nkv = kv->n_kv_heads, a.hd = kv->head_dim;
  a.n_heads = n_heads, a.group = group, a.hchunks = (group + g - 1) / g;
  a.splits = p.splits, a.fsplits = p.fsplits, a.ws_splits = p.ws_splits;
  a.scale = scale, a.err = err;
  dim3 grid((unsigned)m, (unsigned)(kv->n_kv_heads * a.hchunks), (unsigned)a.splits);
  int e = kv->head_dim % 8 == 0 ? launch_rows<8>(a, g, grid, st, rf)
                                : launch_rows<1>(a, g, grid, st, rf);
  if (e) return e;
#ifdef AOQ_HAVE_MMA_BF16
  if (a.fsplits > 0 && (e = attn_prefill_launch(a, st)) != 0) return e;
#endif
  if (a.splits > 1 || a.fsplits > 1) {
    dim3 g2((unsigned)m, (unsigned)n_heads);
    return aoq_launch(k_attn_merge, g2, 128, 0, st, a);
  }
  return 0;
}

extern "C" int aoq_gk_attention(const aoq_kv_cache *kv, const aoq_attn_batch *b, const uint16_t *q,
                                uint16_t *out, int64_t m, int n_heads, float scale, void *ws,
                                int num_sms, int *err, void *stream) {
  return attention(kv, b, q, (int64_t)n_heads * kv->head_dim, out, m, n_heads, scale, ws, num_sms,
                   err, (aoq_gpu_stream_t)stream, NULL, NULL);
}

extern "C" int aoq_gk_attention_qkv(const aoq_kv_cache *kv, const aoq_attn_batch *b,
                                    const uint16_t *qkv, const int32_t *slots, uint16_t *out,
                                    int64_t m, int n_heads, const aoq_gk_rope_freqs *f, float scale,
                                    void *ws, int num_sms, int *err, void *stream) {
#ifdef AOQ_HAVE_MMA_BF16
  return attention(kv, b, qkv, (int64_t)(n_heads + 2 * kv->n_kv_heads) * kv->head_dim, out, m,
                   n_heads, scale, ws, num_sms, err, (aoq_gpu_stream_t)stream, f, slots);
#else
  (void)kv, (void)b, (void)qkv, (void)slots, (void)out, (void)m, (void)n_heads, (void)f;
  (void)scale, (void)ws, (void)num_sms, (void)err, (void)stream;
  return (int)cudaErrorInvalidValue;
#endif
}
