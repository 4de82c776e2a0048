/*
 * attention_impl.h — what the two attention kernel files (attention.cu: the per-row kernel for
 * decode rows, and the merge; attention_prefill.cu: the tensor-core kernel for runs of rows)
 * share: the launch arguments and the rule that sends a row to one kernel or the other.
 *
 * Routing is decided on the device, from row_seq/row_pos alone, so a captured graph stays
 * correct whatever rows it is replayed with: rows are cut into aligned chunks of RUN_CHUNK; inside
 * a chunk, a run is a maximal stretch of rows of one sequence at consecutive positions. A run of
 * at least MIN_RUN rows goes to the tensor-core kernel, every other row to the per-row kernel.
 * Both kernels and the merge evaluate the same rule (attn_run_links) and skip the other's rows.
 */
#ifndef AOQ_KERNELS_GPU_ATTENTION_IMPL_H
#define AOQ_KERNELS_GPU_ATTENTION_IMPL_H

#include "kernels/gpu/gpu_kernels.h"
#include "kernels/gpu/vendor.h"

#define RUN_CHUNK 64 /* rows per routing chunk (= query rows of one tensor-core block per head) */
#define MIN_RUN 4    /* shortest run the tensor-core kernel takes */
#define MAX_SPLITS 64

typedef struct attn_args {
  const uint16_t *k, *v, *q;
  uint16_t *out;
  int64_t q_stride; /* elements between rows of q: n_heads hd, or the qkv row (k_attn_qkv) */
  /* k_attn_qkv only: q is the qkv linear's output; the row's roped k and its v go to kw / vw
   * (the cache that k / v read) at slots[row] < n_slots */
  uint16_t *kw, *vw;
  const int32_t *slots;
  int64_t n_slots;
  float *ws; /* [m, n_heads, ws_splits] x (hd + 2): (max, sum, acc[hd]) per split */
  const int32_t *row_seq, *row_pos, *bt;
  int64_t m;
  int n_seqs, max_blocks, n_pages, page_size, nkv, hd, n_heads, group, hchunks;
  int splits;    /* splits of the per-row kernel */
  int fsplits;   /* splits of the tensor-core kernel (0: not launched, routing off) */
  int ws_splits; /* slots per (row, head) in ws: max of the two where either is > 1 */
  float scale;
  int *err;
} attn_args;

#ifdef AOQ_HAVE_MMA_BF16
/* Bit i (i = 1..63) set: row c0 + i exists and continues row c0 + i - 1 (same sequence, next
 * position). Threads 0..63 of the block load one row each; every thread gets the mask. */
__device__ __forceinline__ unsigned long long attn_run_links(const attn_args &a, int64_t c0,
                                                             unsigned *sh2) {
  const int tid = threadIdx.x;
  if (tid < RUN_CHUNK) {
    int64_t r = c0 + tid;
    bool link = tid > 0 && r < a.m && a.row_seq[r] == a.row_seq[r - 1] &&
                a.row_pos[r] == a.row_pos[r - 1] + 1;
    unsigned b = __ballot_sync(0xffffffffu, link);
    if ((tid & 31) == 0) sh2[tid >> 5] = b;
  }
  __syncthreads();
  return (unsigned long long)sh2[0] | (unsigned long long)sh2[1] << 32;
}

/* [start, end) of the run holding chunk row i, given the chunk's links. */
__device__ __forceinline__ int attn_run_start(unsigned long long links, int i) {
  unsigned long long starts = ~links & (i == 63 ? ~0ull : (2ull << i) - 1);
  return 63 - __clzll((long long)starts);
}
__device__ __forceinline__ int attn_run_end(unsigned long long links, int i) {
  unsigned long long after = ~links & (i == 63 ? 0ull : ~((2ull << i) - 1));
  return after ? __ffsll((long long)after) - 1 : RUN_CHUNK;
}

/* Whether `row` belongs to the tensor-core kernel (all threads of the block call this). */
__device__ __forceinline__ bool attn_row_in_run(const attn_args &a, int64_t row, unsigned *sh2) {
  int64_t c0 = row / RUN_CHUNK * RUN_CHUNK;
  unsigned long long links = attn_run_links(a, c0, sh2);
  int i = (int)(row - c0);
  return attn_run_end(links, i) - attn_run_start(links, i) >= MIN_RUN;
}
#endif

/* The tensor-core kernel (attention_prefill.cu): whether it takes this head_dim, its split count
 * for m rows up to max_pos, and its launch (grid: chunks x kv heads x head pairs x fsplits). */
bool attn_prefill_supported(int head_dim);
int attn_prefill_splits(int64_t m, int nkv, int group, int max_pos, int num_sms);
int attn_prefill_launch(const attn_args &a, aoq_gpu_stream_t st);

#endif
