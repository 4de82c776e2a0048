/*
 * attention.cu — paged causal GQA attention for decode and prefill rows (continuous batching).
 *
 * One block of 128 threads serves one query row, one KV head and up to G query heads of its group,
 * over the keys of one split. Keys are processed in tiles of 128 positions aligned like the CPU
 * backend's (positions 0..127, 128..255, ...): scores of a tile go to shared memory, the running
 * max is updated once per tile, and the softmax weights enter P.V rounded to bf16 (torch flash
 * semantics, as the CPU backend) while the normalizer sums them unrounded. Splits take tiles
 * s, s + splits, ... up to the row's own position, read on the device, so a captured graph stays
 * correct at any position. With more than one split, partial (max, sum, acc) go to the workspace
 * and a second kernel merges them.
 */
#include "base/numerics.h"
#include "kernels/gpu/attention_impl.h"

#define TILE 128
#define THREADS 128
#define MAX_HD 256

template <int G>
__global__ void __launch_bounds__(THREADS) k_attn(attn_args a) {
  __shared__ float qs[G][MAX_HD];
  __shared__ float sc[G][TILE];
  __shared__ int64_t sl[TILE];
  __shared__ float mx[G], lsum[G], corr[G];
  const int row = blockIdx.x, kvh = blockIdx.y / a.hchunks, split = blockIdx.z;
  const int h0 = kvh * a.group + (blockIdx.y % a.hchunks) * G;
  const int gn = min(G, kvh * a.group + a.group - h0);
  const int tid = threadIdx.x, warp = tid / AOQ_LWARP, lane = tid % AOQ_LWARP, hd = a.hd;
#ifdef AOQ_HAVE_MMA_BF16
  if (a.fsplits > 0) { /* runs of rows belong to the tensor-core kernel */
    __shared__ unsigned sh2[2];
    if (attn_row_in_run(a, row, sh2)) return;
  }
#endif
  const int seq = a.row_seq[row], pos = a.row_pos[row];
  bool bad = seq < 0 || seq >= a.n_seqs || pos < 0 || pos >= a.max_blocks * a.page_size;
  const int32_t *bt = a.bt + (int64_t)(bad ? 0 : seq) * a.max_blocks;
  if (!bad)
    for (int blk = tid; blk <= pos / a.page_size; blk += THREADS)
      if (bt[blk] < 0 || bt[blk] >= a.n_pages) bad = true;
  bad = __syncthreads_or(bad);
  if (bad && tid == 0) atomicCAS(a.err, 0, AOQ_GK_ERR_ATTN_INDEX);

  for (int i = tid; i < G * hd; i += THREADS) {
    int g = i / hd, d = i % hd;
    qs[g][d] = g < gn ? aoq_bf16_to_f32(a.q[((int64_t)row * a.n_heads + h0 + g) * hd + d]) : 0.f;
  }
  if (tid < G) mx[tid] = -INFINITY, lsum[tid] = 0;
  float acc[G][2];
#pragma unroll
  for (int g = 0; g < G; g++) acc[g][0] = acc[g][1] = 0;
  __syncthreads();

  const int n_tiles = bad ? 0 : pos / TILE + 1;
  const int64_t kvw = (int64_t)a.nkv * hd;
  for (int tile = split; tile < n_tiles; tile += a.splits) {
    const int t0 = tile * TILE, nt = min(TILE, pos + 1 - t0);
    for (int t = tid; t < nt; t += THREADS) {
      int p = t0 + t;
      sl[t] = ((int64_t)bt[p / a.page_size] * a.page_size + p % a.page_size) * kvw + kvh * hd;
    }
    __syncthreads();
    for (int t = warp; t < nt; t += THREADS / AOQ_LWARP) {
      const uint16_t *kp = a.k + sl[t];
      float part[G];
#pragma unroll
      for (int g = 0; g < G; g++) part[g] = 0;
      for (int d = lane; d < hd; d += AOQ_LWARP) {
        float kv = aoq_bf16_to_f32(kp[d]);
#pragma unroll
        for (int g = 0; g < G; g++) part[g] += qs[g][d] * kv;
      }
#pragma unroll
      for (int g = 0; g < G; g++) {
        float v = part[g];
        for (int o = 16; o > 0; o >>= 1) v += AOQ_SHFL_XOR(v, o);
        if (lane == 0) sc[g][t] = v * a.scale;
      }
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
    for (int j = 0; j < 2; j++) {
      int d = tid + j * THREADS;
      if (d >= hd) break;
      float cg[G];
#pragma unroll
      for (int g = 0; g < G; g++) cg[g] = acc[g][j] * corr[g];
      for (int t = 0; t < nt; t++) {
        float vv = aoq_bf16_to_f32(a.v[sl[t] + d]);
#pragma unroll
        for (int g = 0; g < G; g++) cg[g] += sc[g][t] * vv;
      }
#pragma unroll
      for (int g = 0; g < G; g++) acc[g][j] = cg[g];
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
      if (a.splits == 1) {
        float inv = lsum[g] > 0 ? 1.0f / lsum[g] : 0.0f;
        a.out[oh * hd + d] = aoq_f32_to_bf16(acc[g][j] * inv);
      } else {
        float *p = a.ws + (oh * a.ws_splits + split) * (hd + 2);
        p[2 + d] = acc[g][j];
        if (d == 0) p[0] = mx[g], p[1] = lsum[g];
      }
    }
  }
}

/* grid (m, n_heads), 128 threads: merges the splits of one head of one row (the row's kernel's
 * split count; a kernel that ran unsplit wrote the row itself) */
__global__ void k_attn_merge(attn_args a) {
  const int64_t row = blockIdx.x, oh = row * gridDim.y + blockIdx.y;
  const int hd = a.hd;
  int splits = a.splits;
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

static int pick_g(int group) {
  return group >= 8 ? 8 : group >= 4 ? 4 : group >= 2 ? 2 : 1;
}

/* The launch plan of m rows up to max_pos: splits of the per-row kernel, of the tensor-core
 * kernel (0 when it is not launched: fewer than MIN_RUN rows, a head_dim it lacks, or HIP), and
 * the workspace slots per (row, head). */
typedef struct attn_plan {
  int splits, fsplits, ws_splits;
} attn_plan;

static attn_plan plan(const aoq_kv_cache *kv, int64_t m, int n_heads, int max_pos, int num_sms) {
  attn_plan p;
  int group = n_heads / kv->n_kv_heads, g = pick_g(group);
  int64_t base = m * kv->n_kv_heads * ((group + g - 1) / g);
  int tiles = max_pos / TILE + 1;
  int64_t want = (2 * (int64_t)(num_sms > 0 ? num_sms : 1) + base - 1) / base;
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

extern "C" int aoq_gk_attention(const aoq_kv_cache *kv, const aoq_attn_batch *b, const uint16_t *q,
                                uint16_t *out, int64_t m, int n_heads, float scale, void *ws,
                                int num_sms, int *err, void *stream) {
  if (m == 0) return 0;
  aoq_gpu_stream_t st = (aoq_gpu_stream_t)stream;
  int group = n_heads / kv->n_kv_heads, g = pick_g(group);
  attn_plan p = plan(kv, m, n_heads, b->max_pos, num_sms);
  if (p.ws_splits > 0 && !ws) { /* no workspace: every kernel unsplit */
    p.splits = 1;
    p.fsplits = p.fsplits ? 1 : 0;
    p.ws_splits = 0;
  }
  attn_args a;
  a.k = (const uint16_t *)kv->k, a.v = (const uint16_t *)kv->v, a.q = q, a.out = out;
  a.ws = (float *)ws;
  a.row_seq = b->row_seq, a.row_pos = b->row_pos, a.bt = b->block_tables;
  a.m = m;
  a.n_seqs = b->n_seqs, a.max_blocks = b->max_blocks, a.n_pages = kv->n_pages;
  a.page_size = kv->page_size, a.nkv = kv->n_kv_heads, a.hd = kv->head_dim;
  a.n_heads = n_heads, a.group = group, a.hchunks = (group + g - 1) / g;
  a.splits = p.splits, a.fsplits = p.fsplits, a.ws_splits = p.ws_splits;
  a.scale = scale, a.err = err;
  dim3 grid((unsigned)m, (unsigned)(kv->n_kv_heads * a.hchunks), (unsigned)a.splits);
  switch (g) {
    case 8:
      k_attn<8><<<grid, THREADS, 0, st>>>(a);
      break;
    case 4:
      k_attn<4><<<grid, THREADS, 0, st>>>(a);
      break;
    case 2:
      k_attn<2><<<grid, THREADS, 0, st>>>(a);
      break;
    default:
      k_attn<1><<<grid, THREADS, 0, st>>>(a);
      break;
  }
  int e = (int)aoq_gpu_get_last_error();
  if (e) return e;
#ifdef AOQ_HAVE_MMA_BF16
  if (a.fsplits > 0 && (e = attn_prefill_launch(a, st)) != 0) return e;
#endif
  if (a.splits > 1 || a.fsplits > 1) {
    dim3 g2((unsigned)m, (unsigned)n_heads);
    k_attn_merge<<<g2, 128, 0, st>>>(a);
  }
  return (int)aoq_gpu_get_last_error();
}
