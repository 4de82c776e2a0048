/*
 * gpu_kernels.h — the C entry points of the GPU kernels (the .cu files of kernels/gpu), shared by
 * the CUDA and HIP backends. Plain C types only: a stream is passed as `void *` (cudaStream_t /
 * hipStream_t), every tensor pointer is device memory, activations are bf16 (uint16_t bits).
 * Each launcher enqueues work and returns the runtime's launch status (0 = success; otherwise a
 * cudaError_t / hipError_t value for the backend to name). Nothing here allocates or syncs, so
 * every launcher may be captured into a graph.
 *
 * Data-dependent errors (a token id or cache slot out of range) cannot be returned by a launch:
 * the kernel writes a code into `*err` (device-visible memory the backend owns) and skips the
 * bad row; the backend reports it at the next stream_sync.
 */
#ifndef AOQ_KERNELS_GPU_GPU_KERNELS_H
#define AOQ_KERNELS_GPU_GPU_KERNELS_H

#include <stdint.h>

#include "devices/device.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
  AOQ_GK_ERR_EMBED_ID = 1,   /* embed: a token id outside [0, n_rows) */
  AOQ_GK_ERR_KV_SLOT = 2,    /* kv_store: a slot outside the cache */
  AOQ_GK_ERR_ATTN_INDEX = 3, /* attention: a sequence, position or page out of range */
};

/* Batch-invariant mode (process-wide; the CUDA backend sets it at open from $AOQ_BATCH_INVARIANT):
 * every kernel is chosen and split without regard to the number of rows, so a row's result does
 * not depend on the batch it runs in (linear: the mma GEMV with fixed warps per block, in slices of
 * 64 rows, no FMA/skinny/GEMM/cuBLAS paths; attention: the per-row kernel with a fixed split of the
 * key tiles). Slower past batch 8 and for prefill. */
void aoq_gk_set_batch_invariant(int on);
int aoq_gk_batch_invariant(void);

/* Programmatic dependent launch (process-wide; the CUDA backend sets it at open, on unless
 * $AOQ_PDL is 0): kernels may launch before their predecessor in the stream ends (vendor.h,
 * AOQ_PDL_WAIT). Turning it on succeeds only where the kernels were built for sm_90+ and the
 * device runs that code; returns the state now in force. */
int aoq_gk_set_pdl(int on);
int aoq_gk_pdl(void);

/* Formats `aoq_gk_linear` implements: bit per aoq_format_kind. */
uint64_t aoq_gk_linear_formats(void);
/* Checks w's shape/group/buffers for the kernels; 0 if supported, else a static reason. */
const char *aoq_gk_linear_check(const aoq_qweight *w);
/* Workspace bytes of aoq_gk_linear for m rows (activation quantization of dynamic formats). */
size_t aoq_gk_linear_workspace(const aoq_qweight *w, int64_t m);
/* y[m,n] bf16 = x[m,k] bf16 @ W^T, W in its packed format (devices/device.h, docs/layouts.md). */
int aoq_gk_linear(const aoq_qweight *w, const uint16_t *x, uint16_t *y, int64_t m, void *ws,
                  int num_sms, void *stream);
/* y[m, n/2] = silu_mul(x @ W^T) for W = [gate; up] (n rows): aoq_gk_linear then aoq_gk_silu_mul,
 * bit for bit, in one kernel, where aoq_gk_linear_silu_ok (else an error, nothing launched). */
int aoq_gk_linear_silu_ok(const aoq_qweight *w, int64_t m);
/* 1 where aoq_gk_linear of m rows sums the unrounded int4 weights (q - 8) s + z per group in fp32
 * (int4 groups of >= 128 at m <= 16, the GEMV and the skinny GEMM) instead of the bf16-rounded ones
 * of dequantize-then-matmul; 0 elsewhere. aoq_gk_linear_silu follows aoq_gk_linear. */
int aoq_gk_linear_folded(const aoq_qweight *w, int64_t m);
/* 1 where aoq_gk_linear of m rows runs the bulk-copy GEMV (sm_90, m <= 8; linear_tma.h), else 0 */
int aoq_gk_linear_tma(const aoq_qweight *w, int64_t m);
/* Where the bulk-copy GEMV runs: 0 nowhere, 1 where it measured faster (the default, or
 * $AOQ_GEMV_TMA), 2 every format it takes, 3 as 2 with x read from global memory (linear_tma.h);
 * returns the previous mode (other values only read it). Not thread-safe: tests and set-up. */
int aoq_gk_set_gemv_tma(int mode);
int aoq_gk_linear_silu(const aoq_qweight *w, const uint16_t *x, uint16_t *y, int64_t m, void *ws,
                       void *stream);

/* Activation quantization of the dynamic formats (act_quant.cu) into the linear workspace:
 * returns the workspace bytes for m rows of k and the offset of the f32 scales. */
size_t aoq_gk_act_layout(int64_t m, int64_t k, size_t *off_xs);
int aoq_gk_act_quant(const aoq_qweight *w, const uint16_t *x, int64_t m, void *ws, void *stream);

/* The large-m linear through a BLAS GEMM (dequant.cu, used by devices/cuda/cublas.c).
 * dequant_rows: weight rows [r0, r0 + rows) decoded to out bf16 [rows, k], the operand the
 * format's GEMM multiplies (bit-exact with devices/cpu/cpu_quant_deq.h rounded to bf16).
 * gemm_epilogue: the format's scales after the GEMM: fp8dq(-row) from c, the fp32 sums in
 * column-major [rows, m], into columns [r0, r0 + rows) of y[m, n]; int8wo / nvfp4 in place on
 * all of y (c NULL, r0 = 0, rows = n); other formats nothing. xs/xt: act_quant's scales. */
int aoq_gk_dequant_rows(const aoq_qweight *w, int64_t r0, int64_t rows, uint16_t *out,
                        void *stream);
/* dequant_rows of the weight-only formats of linear_dec.h (intx, int8-intx, int8-int4, w158,
 * fp6, codebook); called by aoq_gk_dequant_rows. */
int aoq_gk_dec_dequant_rows(const aoq_qweight *w, int64_t r0, int64_t rows, uint16_t *out,
                            void *stream);
int aoq_gk_gemm_epilogue(const aoq_qweight *w, const float *c, int64_t m, int64_t r0, int64_t rows,
                         uint16_t *y, const float *xs, const float *xt, void *stream);
/* int8dq after the int8 GEMM: y[i, r0 + j] = bf16(bf16(c[j + i * ldc] * xs[i]) * w_s[r0 + j]) for
 * j < rows, i < m; c the exact int32 sums in column-major [ldc, m] (ldc >= rows), xs act_quant's
 * per-token scales (k_dec's and the CPU backend's epilogue, so the result is bit-identical). */
int aoq_gk_i8_epilogue(const aoq_qweight *w, const int32_t *c, int64_t ldc, int64_t m, int64_t r0,
                       int64_t rows, uint16_t *y, const float *xs, void *stream);
/* aoq_gk_act_quant's bytes and workspace for many rows (16-byte accesses, lanes sharing each
 * MX / NVFP4 block); k % 32 == 0, x 16-byte aligned. */
int aoq_gk_act_quant_rows(const aoq_qweight *w, const uint16_t *x, int64_t m, void *ws,
                          void *stream);

/* Device weight quantization (quantize.cu): formats, and bf16 src[n,k] -> w's device buffers,
 * bit-exact with core/quant_fp.c; the integer formats (quantize_int.cu) with core/quant_int.c.
 * scratch: 16 device bytes (one call at a time per scratch). */
uint64_t aoq_gk_quantize_formats(void);
int aoq_gk_quantize(const uint16_t *src, aoq_qweight *w, void *scratch, void *stream);

int aoq_gk_rmsnorm(const uint16_t *x, const uint16_t *w, uint16_t *y, int64_t m, int64_t n,
                   float eps, void *stream);
/* x += t (t may be NULL), then y = rmsnorm(x) * w: one kernel, aoq_gk_add + aoq_gk_rmsnorm's bits. */
int aoq_gk_add_rmsnorm(uint16_t *x, const uint16_t *t, const uint16_t *w, uint16_t *y, int64_t m,
                       int64_t n, float eps, void *stream);
int aoq_gk_add(const uint16_t *a, const uint16_t *b, uint16_t *y, int64_t n, void *stream);
int aoq_gk_silu_mul(const uint16_t *gu, uint16_t *y, int64_t m, int64_t n, void *stream);
int aoq_gk_embed(const uint16_t *table, int64_t n_rows, const int32_t *ids, uint16_t *y, int64_t m,
                 int64_t dim, int *err, void *stream);
/* inv_freq: the head_dim/2 RoPE frequencies computed on the host (fp32, HF llama3 rules). */
typedef struct aoq_gk_rope_freqs {
  float inv[512];
} aoq_gk_rope_freqs;
int aoq_gk_rope(uint16_t *x, const int32_t *pos, int64_t m, int n_heads, int head_dim,
                int64_t row_stride, const aoq_gk_rope_freqs *f, void *stream);
int aoq_gk_kv_store(const aoq_kv_cache *kv, const uint16_t *k, const uint16_t *v,
                    const int32_t *slots, int64_t m, int *err, void *stream);
/* rope of the q and k heads of qkv[m, (n_heads + 2 nkv) hd] (q -> q_out, k -> cache) and v ->
 * cache at slots: aoq_gk_rope + aoq_gk_kv_store's bits in one kernel. */
int aoq_gk_qkv_rope_store(const aoq_kv_cache *kv, const uint16_t *qkv, uint16_t *q_out,
                          const int32_t *pos, const int32_t *slots, int64_t m, int n_heads,
                          const aoq_gk_rope_freqs *f, int *err, void *stream);
/* Split-K planning uses max_pos (host bound) and num_sms; ws must be sized with the same values.
 * Keys are dealt to splits tile by tile (128 keys, strided), so a graph captured with one max_pos
 * stays correct when replayed at longer positions (only less parallel). */
size_t aoq_gk_attention_workspace(const aoq_kv_cache *kv, int64_t m, int n_heads, int max_pos,
                                  int num_sms);
int aoq_gk_attention(const aoq_kv_cache *kv, const aoq_attn_batch *b, const uint16_t *q,
                     uint16_t *out, int64_t m, int n_heads, float scale, void *ws, int num_sms,
                     int *err, void *stream);
/* aoq_gk_qkv_rope_store then aoq_gk_attention of its q in one kernel (CUDA; the same bits, q not
 * written out), for decode batches only: every row the only row of its sequence in b (a row's
 * own key is stored by the block that reads it; the keys of other rows are not waited for). The
 * workspace is aoq_gk_attention_workspace's. */
int aoq_gk_attention_qkv(const aoq_kv_cache *kv, const aoq_attn_batch *b, const uint16_t *qkv,
                         const int32_t *slots, uint16_t *out, int64_t m, int n_heads,
                         const aoq_gk_rope_freqs *f, float scale, void *ws, int num_sms, int *err,
                         void *stream);
int aoq_gk_argmax(const uint16_t *logits, int32_t *out, int64_t m, int64_t vocab, void *stream);
int aoq_gk_sample(const uint16_t *logits, int32_t *out, int64_t m, int64_t vocab,
                  const aoq_sample_params *p, void *stream);
/* to_f32: bf16 -> f32, else f32 -> bf16 (RNE). */
int aoq_gk_convert(const void *src, void *dst, int64_t n, int to_f32, void *stream);

#ifdef __cplusplus
}
#endif
#endif
