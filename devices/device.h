/*
 * device.h — the one device interface of aoq (DESIGN.md "The device interface").
 *
 * A backend fills a `struct aoq_device_iface` (function pointers) and keeps its state behind an
 * opaque `void *ctx`. Everything above this layer calls the wrappers `aoq_dev_*` in device.c, which
 * check arguments and capabilities and dispatch through the table. A backend never aborts: device
 * errors come back as AOQ_EDEVICE with the vendor's message in the detail (base/error.h).
 *
 * Memory model: every pointer named "device" below is memory of this device (for the CPU backend,
 * ordinary host memory). All tensors are dense and row-major. Ops are enqueued on a stream and
 * complete in stream order; stream NULL is the device's default stream. Nothing in an op allocates:
 * scratch comes from the `aoq_dev_workspace` that the caller sized with `workspace_size`.
 *
 * Thread safety: one aoq_device may be used from several threads for memory calls; ops on one
 * stream must be issued from one thread at a time.
 */
#ifndef AOQ_DEVICES_DEVICE_H
#define AOQ_DEVICES_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aoq/aoq.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AOQ_DEVICE_API_VERSION 1

typedef enum aoq_device_kind {
  AOQ_DEVICE_CPU = 0,
  AOQ_DEVICE_CUDA,
  AOQ_DEVICE_HIP,
  AOQ_DEVICE_XPU,
} aoq_device_kind;

/* Capability flags: what the backend offers beyond the mandatory memory/stream calls and ops. */
enum {
  AOQ_CAP_GRAPHS = 1u << 0,        /* graph_begin/end/launch/destroy */
  AOQ_CAP_IPC = 1u << 1,           /* ipc_export/import/close of device buffers */
  AOQ_CAP_HOST_REGISTER = 1u << 2, /* host_register/unregister (pinning shared memory) */
  AOQ_CAP_QUANTIZE = 1u << 3,      /* quantize op for the formats in quantize_formats */
  AOQ_CAP_F32 = 1u << 4,           /* ops accept AOQ_DTYPE_F32 activations (bf16 is mandatory) */
  AOQ_CAP_HOST_MEMORY = 1u << 5,   /* device pointers are host pointers (CPU backend) */
  AOQ_CAP_FUSED = 1u << 6,         /* add_rmsnorm and qkv_rope_store (fewer, larger kernels) */
  AOQ_CAP_HOST_MAPPED = 1u << 7,   /* kernels read host memory passed to host_register through
                                      its host pointer (ops may take it as a device pointer) */
};

typedef struct aoq_device_info {
  aoq_device_kind kind;
  int index;                 /* device ordinal within its backend */
  char name[128];            /* e.g. "NVIDIA H100 80GB HBM3", "cpu (16 threads, avx512)" */
  uint64_t total_memory;     /* bytes */
  uint64_t free_memory;      /* bytes, at the time of the call */
  uint32_t caps;             /* AOQ_CAP_* */
  uint64_t linear_formats;   /* bit (1 << aoq_format_kind) per format `linear` supports */
  uint64_t quantize_formats; /* bit per format `quantize` supports (needs AOQ_CAP_QUANTIZE) */
  int threads;               /* CPU worker threads / GPU multiprocessors */
  char linear_engine[128];   /* what runs the large-m linear, e.g. "cublas ..."; "" = own */
} aoq_device_info;

typedef struct aoq_stream aoq_stream; /* backend-defined */
typedef struct aoq_event aoq_event;   /* backend-defined */
typedef struct aoq_graph aoq_graph;   /* backend-defined */

/* An opaque, fixed-size handle for sharing a device buffer with another process. */
typedef struct aoq_ipc_handle {
  uint8_t bytes[64];
} aoq_ipc_handle;

/*
 * A quantized (or bf16) weight W[n, k] resident on a device, in aoq's own packed layouts
 * (docs/layouts.md is the authority; summary here). Sub-byte elements are packed along k,
 * LSB first: element k=2i in the low nibble of byte i for 4-bit. Group scales are [n, k/group]
 * row-major. `group` = k for per-row formats.
 *
 *   BF16         qdata bf16[n,k]
 *   INT8WO/DQ    qdata i8[n,k]; scale f32[n]
 *   FP8WO/DQ_ROW qdata e4m3[n,k]; scale f32[n]      FP8DQ: scale f32[1]
 *   FP8DQ_BLOCK  qdata e4m3[n,k]; scale f32[n/128, k/128]
 *   INT4WO(_HQQ) qdata u8[n,k/2] (uint4 0..15); scale bf16[n,k/g,2] = {scale, zero}, tinygemm
 *                dequant (q-8)*s+z, each step rounded to bf16
 *   INTXWO, INT8_INTX, INT8_INT4, FP8_INT4: bits-wide signed values, LSB-first bit stream per row
 *                (row stride padded to 4 bytes); scale bf16[n,k/g]; aux per format (docs)
 *   MXFP8        qdata e4m3[n,k]; scale e8m0[n,k/32]       MXFP4 qdata u8[n,k/2]; scale e8m0[n,k/32]
 *   NVFP4(WO)    qdata u8[n,k/2]; scale e4m3[n,k/16]; aux f32[1] per-tensor scale
 *   FP6_*, CODEBOOK, W158: see docs/layouts.md
 */
typedef struct aoq_qweight {
  aoq_format_kind kind;
  int bits;      /* element bits (8 for int8/fp8, 4 for int4/fp4, 1..8 for intx/codebook) */
  int group;     /* elements of k sharing one scale (k for per-row) */
  int64_t n, k;  /* out_features, in_features */
  void *qdata;   /* device */
  void *scale;   /* device, or NULL */
  void *zero;    /* device, or NULL */
  void *aux;     /* device, or NULL: per-tensor scale, codebook, ... */
  size_t qdata_bytes, scale_bytes, zero_bytes, aux_bytes;
} aoq_qweight;

/* Llama-3.1 RoPE parameters (HF `rope_scaling` with rope_type "llama3"; factor 0 = no scaling). */
typedef struct aoq_rope {
  float theta;               /* rope_theta, e.g. 500000 */
  float factor;              /* rope_scaling.factor (8 for Llama 3.1), 0 = plain RoPE */
  float low_freq_factor;     /* 1 */
  float high_freq_factor;    /* 4 */
  int original_max_position; /* 8192 */
} aoq_rope;

/*
 * Paged KV cache of one layer: k and v are device arrays
 *   [n_pages, page_size, n_kv_heads, head_dim] of `dtype` (BF16; F32 where AOQ_CAP_F32).
 * A sequence owns a list of pages (its block table); token position p of the sequence lives in
 * page block_table[p / page_size], slot p % page_size. Global slot id = page * page_size + slot.
 */
typedef struct aoq_kv_cache {
  void *k, *v;
  int n_pages, page_size, n_kv_heads, head_dim;
  aoq_dtype dtype;
} aoq_kv_cache;

/*
 * One attention call over a batch of query rows that may belong to different sequences
 * (prefill chunks and decode tokens mixed: continuous batching). Arrays are device memory.
 * Row i of q belongs to sequence row_seq[i] at position row_pos[i] and attends causally over
 * that sequence's positions 0..row_pos[i] (whose K/V must already be stored, see kv_store).
 */
typedef struct aoq_attn_batch {
  const int32_t *row_seq;      /* [m] index into block_tables rows */
  const int32_t *row_pos;      /* [m] */
  const int32_t *block_tables; /* [n_seqs, max_blocks] page ids */
  int n_seqs, max_blocks;
  int max_pos;                 /* max over row_pos (host-known bound, for split-K planning) */
} aoq_attn_batch;

/* Per-row sampling parameters (host memory). temperature <= 0 means greedy. */
typedef struct aoq_sample_params {
  float temperature;
  float top_p;     /* 1 = off */
  int top_k;       /* 0 = off */
  uint64_t seed;   /* the row's RNG state: same seed + same logits -> same token */
} aoq_sample_params;

struct aoq_device_iface {
  int api_version; /* AOQ_DEVICE_API_VERSION */
  const char *name; /* "cpu", "cuda", "hip", "xpu" */

  void (*destroy)(void *ctx);
  aoq_status (*info)(void *ctx, aoq_device_info *out);

  /* --- memory --- */
  aoq_status (*alloc)(void *ctx, size_t bytes, void **ptr); /* 256-byte aligned */
  void (*free)(void *ctx, void *ptr);                        /* NULL is a no-op */
  aoq_status (*copy_h2d)(void *ctx, void *dst, const void *src, size_t n, aoq_stream *s);
  aoq_status (*copy_d2h)(void *ctx, void *dst, const void *src, size_t n, aoq_stream *s);
  aoq_status (*copy_d2d)(void *ctx, void *dst, const void *src, size_t n, aoq_stream *s);
  aoq_status (*memset)(void *ctx, void *dst, int value, size_t n, aoq_stream *s);
  /* (optional, AOQ_CAP_HOST_REGISTER) pin host memory (e.g. a shm mapping) for fast copies. */
  aoq_status (*host_register)(void *ctx, void *p, size_t n);
  aoq_status (*host_unregister)(void *ctx, void *p);
  /* (optional, AOQ_CAP_IPC) share a device allocation with another process. */
  aoq_status (*ipc_export)(void *ctx, void *ptr, aoq_ipc_handle *out);
  aoq_status (*ipc_import)(void *ctx, const aoq_ipc_handle *h, void **ptr);
  aoq_status (*ipc_close)(void *ctx, void *ptr);
  /* (optional) base and size of the device allocation that holds ptr (an imported IPC mapping
   * too): the daemon checks a client's claimed buffer size against it. */
  aoq_status (*mem_range)(void *ctx, const void *ptr, void **base, size_t *bytes);

  /* --- streams and events --- */
  aoq_status (*stream_create)(void *ctx, aoq_stream **out);
  void (*stream_destroy)(void *ctx, aoq_stream *s);
  aoq_status (*stream_sync)(void *ctx, aoq_stream *s);
  aoq_status (*event_create)(void *ctx, aoq_event **out);
  void (*event_destroy)(void *ctx, aoq_event *e);
  aoq_status (*event_record)(void *ctx, aoq_event *e, aoq_stream *s);
  aoq_status (*event_wait)(void *ctx, aoq_event *e, aoq_stream *s); /* s waits for e */
  aoq_status (*event_sync)(void *ctx, aoq_event *e);
  aoq_status (*event_elapsed_ms)(void *ctx, aoq_event *start, aoq_event *end, float *ms);

  /* --- graphs (optional, AOQ_CAP_GRAPHS): capture the ops issued on s between begin and end --- */
  aoq_status (*graph_begin)(void *ctx, aoq_stream *s);
  aoq_status (*graph_end)(void *ctx, aoq_stream *s, aoq_graph **out);
  aoq_status (*graph_launch)(void *ctx, aoq_graph *g, aoq_stream *s);
  void (*graph_destroy)(void *ctx, aoq_graph *g);

  /* --- ops; `dt` is the activation dtype (BF16, or F32 with AOQ_CAP_F32) --- */

  /* Scratch bytes `linear` needs for m rows of w (activation quantization). 0 if none. */
  size_t (*linear_workspace)(void *ctx, const aoq_qweight *w, int64_t m);
  /* y[m,n] = x[m,k] @ W^T with W read in its packed format (never materialized in bf16).
   * Dynamic formats quantize x exactly as spec/formats.md says. ws: linear_workspace bytes. */
  aoq_status (*linear)(void *ctx, const aoq_qweight *w, const void *x, void *y, int64_t m,
                       aoq_dtype dt, void *ws, aoq_stream *s);
  /* (optional, AOQ_CAP_QUANTIZE) quantize bf16 w_src[n,k] (device) into w, whose buffers were
   * allocated with the sizes core/format.h computes. Must be bit-exact with the CPU reference. */
  aoq_status (*quantize)(void *ctx, const void *w_src, aoq_qweight *w, aoq_stream *s);
  /* y[m,n] = x / sqrt(mean(x^2) + eps) * w  (w: [n] of dt; fp32 accumulation) */
  aoq_status (*rmsnorm)(void *ctx, const void *x, const void *w, void *y, int64_t m, int64_t n,
                        float eps, aoq_dtype dt, aoq_stream *s);
  /* y = a + b, n elements */
  aoq_status (*add)(void *ctx, const void *a, const void *b, void *y, int64_t n, aoq_dtype dt,
                    aoq_stream *s);
  /* gu[m, 2n] holds gate | up; y[m,n] = silu(gate) * up */
  aoq_status (*silu_mul)(void *ctx, const void *gu, void *y, int64_t m, int64_t n, aoq_dtype dt,
                         aoq_stream *s);
  /* y[m,dim] = table[ids[i], :]; ids (device, int32) are checked < n_rows: error otherwise */
  aoq_status (*embed)(void *ctx, const void *table, int64_t n_rows, const int32_t *ids, void *y,
                      int64_t m, int64_t dim, aoq_dtype dt, aoq_stream *s);
  /* In-place HF-Llama RoPE (rotate_half: pairs (i, i + head_dim/2)) on x[m, row_stride], heads
   * [0, n_heads) of head_dim each starting at column 0, at positions pos[m] (device int32). */
  aoq_status (*rope)(void *ctx, void *x, const int32_t *pos, int64_t m, int n_heads, int head_dim,
                     int64_t row_stride, const aoq_rope *r, aoq_dtype dt, aoq_stream *s);
  /* Store k[m, n_kv_heads*head_dim], v[...] of dt into the cache at slots[m] (device int32). */
  aoq_status (*kv_store)(void *ctx, const aoq_kv_cache *kv, const void *k, const void *v,
                         const int32_t *slots, int64_t m, aoq_dtype dt, aoq_stream *s);
  /* Scratch bytes `attention` needs. */
  size_t (*attention_workspace)(void *ctx, const aoq_kv_cache *kv, int64_t m, int n_heads,
                                int max_pos);
  /* out[m, n_heads*head_dim] = causal GQA softmax(q k^T * scale) v over the paged cache.
   * q: [m, n_heads*head_dim]; head h reads kv head h / (n_heads / n_kv_heads). */
  aoq_status (*attention)(void *ctx, const aoq_kv_cache *kv, const aoq_attn_batch *b,
                          const void *q, void *out, int64_t m, int n_heads, float scale,
                          aoq_dtype dt, void *ws, aoq_stream *s);
  /* out[m] = argmax of logits[m, vocab] (first index on ties); out is device int32 */
  aoq_status (*argmax)(void *ctx, const void *logits, int32_t *out, int64_t m, int64_t vocab,
                       aoq_dtype dt, aoq_stream *s);
  /* out[m] sampled per row with p[m] (host); greedy rows as argmax. out is device int32. */
  aoq_status (*sample)(void *ctx, const void *logits, int32_t *out, int64_t m, int64_t vocab,
                       const aoq_sample_params *p, aoq_dtype dt, aoq_stream *s);
  /* dst = src converted between BF16 and F32 (either direction, or same-type copy), n elements */
  aoq_status (*convert)(void *ctx, const void *src, aoq_dtype sdt, void *dst, aoq_dtype ddt,
                        int64_t n, aoq_stream *s);

  /* --- fused ops (optional, AOQ_CAP_FUSED): the results of the plain ops they replace, bit for
   * bit on the same backend, in one kernel each (decode is launch-bound between the GEMVs) --- */
  /* x[m,n] = x + t (add's rounding; t NULL: x unchanged), then y = rmsnorm(x) * w (rmsnorm's
   * numerics). */
  aoq_status (*add_rmsnorm)(void *ctx, void *x, const void *t, const void *w, void *y, int64_t m,
                            int64_t n, float eps, aoq_dtype dt, aoq_stream *s);
  /* qkv[m, (n_heads + 2 n_kv_heads) head_dim]: q heads | k heads | v heads (the fused qkv
   * linear's output, head_dim = kv->head_dim). q_out[m, n_heads head_dim] = rope(q heads); the
   * roped k heads and the v heads go to the cache at slots[m] (rope + kv_store's numerics). */
  aoq_status (*qkv_rope_store)(void *ctx, const aoq_kv_cache *kv, const void *qkv, void *q_out,
                               const int32_t *pos, const int32_t *slots, int64_t m, int n_heads,
                               const aoq_rope *r, aoq_dtype dt, aoq_stream *s);
  /* y[m, w->n / 2] = silu_mul(linear(w, x)) for w = [gate; up], in one kernel, where the backend
   * can for this w and m (linear's then silu_mul's bits); AOQ_EUNSUPPORTED, nothing run, where
   * it cannot. */
  aoq_status (*linear_silu)(void *ctx, const aoq_qweight *w, const void *x, void *y, int64_t m,
                            aoq_dtype dt, void *ws, aoq_stream *s);
  /* qkv_rope_store then attention of the roped q, in one kernel, for a decode batch: every row
   * the only row of its sequence in b (m == b->n_seqs, positions b->row_pos). out and the cache
   * get the two ops' bits; the roped q is not written out. ws: attention_workspace's.
   * AOQ_EUNSUPPORTED, nothing run, where the backend cannot. */
  aoq_status (*qkv_attention)(void *ctx, const aoq_kv_cache *kv, const aoq_attn_batch *b,
                              const void *qkv, const int32_t *slots, void *out, int64_t m,
                              int n_heads, const aoq_rope *r, float scale, aoq_dtype dt, void *ws,
                              aoq_stream *s);
};

/* A device handle: interface + backend context. Opaque to everything above devices/. */
typedef struct aoq_device aoq_device;

/*
 * Opens a device by name: "cpu", "cpu:<threads>", "cuda:<i>", "hip:<i>", "xpu:<i>", or "auto"
 * (the first GPU backend with a device, else cpu). Errors: AOQ_ENODEV with a detail naming the
 * backend that was not built or the missing driver/device; AOQ_EINVAL for a malformed name.
 * The caller frees with aoq_device_close.
 */
aoq_status aoq_device_open(const char *name, aoq_device **out);
void aoq_device_close(aoq_device *d);
/* The interface and context (for backends' own tests); borrowed. */
const struct aoq_device_iface *aoq_device_iface_of(const aoq_device *d);
aoq_status aoq_device_info_get(aoq_device *d, aoq_device_info *out);
bool aoq_device_has(const aoq_device *d, uint32_t cap);
const char *aoq_device_name(const aoq_device *d); /* "cpu", "cuda:0", ... */

/* Backend constructors, each built only with its backend (AOQ_HAVE_CUDA etc.). */
aoq_status aoq_cpu_device_create(int threads, aoq_device **out);
aoq_status aoq_cuda_device_create(int index, aoq_device **out);
aoq_status aoq_hip_device_create(int index, aoq_device **out);
aoq_status aoq_xpu_device_create(int index, aoq_device **out);
/* Used by backend constructors: wraps iface+ctx into a handle named `name`. */
aoq_status aoq_device_wrap(const struct aoq_device_iface *iface, void *ctx, const char *name,
                           aoq_device **out);

/* Backend-independent argument checks that every backend's rope / kv ops share (who = "cpu",
 * "cuda", ... names the backend in the detail). Dtype support stays each backend's own check. */
aoq_status aoq_rope_check(const aoq_rope *r, int n_heads, int head_dim, int max_head_dim,
                          int64_t row_stride, const char *who);
aoq_status aoq_kv_cache_check(const aoq_kv_cache *kv, const char *who, const char *op);
/* The shapes and buffers the GPU quantize kernels (kernels/gpu/quantize*.cu) take, for the CUDA
 * and HIP backends' quantize op. */
aoq_status aoq_gpu_quantize_check(const aoq_qweight *w, const char *who);

/* Wrappers: each checks its arguments, then dispatches. Same semantics as the iface entries. */
aoq_status aoq_dev_alloc(aoq_device *d, size_t bytes, void **ptr);
void aoq_dev_free(aoq_device *d, void *ptr);
aoq_status aoq_dev_copy_h2d(aoq_device *d, void *dst, const void *src, size_t n, aoq_stream *s);
aoq_status aoq_dev_copy_d2h(aoq_device *d, void *dst, const void *src, size_t n, aoq_stream *s);
aoq_status aoq_dev_copy_d2d(aoq_device *d, void *dst, const void *src, size_t n, aoq_stream *s);
aoq_status aoq_dev_memset(aoq_device *d, void *dst, int value, size_t n, aoq_stream *s);
aoq_status aoq_dev_host_register(aoq_device *d, void *p, size_t n);
aoq_status aoq_dev_host_unregister(aoq_device *d, void *p);
aoq_status aoq_dev_ipc_export(aoq_device *d, void *ptr, aoq_ipc_handle *out);
aoq_status aoq_dev_ipc_import(aoq_device *d, const aoq_ipc_handle *h, void **ptr);
aoq_status aoq_dev_ipc_close(aoq_device *d, void *ptr);
/* AOQ_EUNSUPPORTED where the backend cannot tell (mem_range absent). */
aoq_status aoq_dev_mem_range(aoq_device *d, const void *ptr, void **base, size_t *bytes);
aoq_status aoq_dev_stream_create(aoq_device *d, aoq_stream **out);
void aoq_dev_stream_destroy(aoq_device *d, aoq_stream *s);
aoq_status aoq_dev_stream_sync(aoq_device *d, aoq_stream *s);
aoq_status aoq_dev_event_create(aoq_device *d, aoq_event **out);
void aoq_dev_event_destroy(aoq_device *d, aoq_event *e);
aoq_status aoq_dev_event_record(aoq_device *d, aoq_event *e, aoq_stream *s);
aoq_status aoq_dev_event_wait(aoq_device *d, aoq_event *e, aoq_stream *s);
aoq_status aoq_dev_event_sync(aoq_device *d, aoq_event *e);
aoq_status aoq_dev_event_elapsed_ms(aoq_device *d, aoq_event *a, aoq_event *b, float *ms);
aoq_status aoq_dev_graph_begin(aoq_device *d, aoq_stream *s);
aoq_status aoq_dev_graph_end(aoq_device *d, aoq_stream *s, aoq_graph **out);
aoq_status aoq_dev_graph_launch(aoq_device *d, aoq_graph *g, aoq_stream *s);
void aoq_dev_graph_destroy(aoq_device *d, aoq_graph *g);

size_t aoq_dev_linear_workspace(aoq_device *d, const aoq_qweight *w, int64_t m);
aoq_status aoq_dev_linear(aoq_device *d, const aoq_qweight *w, const void *x, void *y, int64_t m,
                          aoq_dtype dt, void *ws, aoq_stream *s);
aoq_status aoq_dev_quantize(aoq_device *d, const void *w_src, aoq_qweight *w, aoq_stream *s);
aoq_status aoq_dev_rmsnorm(aoq_device *d, const void *x, const void *w, void *y, int64_t m,
                           int64_t n, float eps, aoq_dtype dt, aoq_stream *s);
aoq_status aoq_dev_add(aoq_device *d, const void *a, const void *b, void *y, int64_t n,
                       aoq_dtype dt, aoq_stream *s);
aoq_status aoq_dev_silu_mul(aoq_device *d, const void *gu, void *y, int64_t m, int64_t n,
                            aoq_dtype dt, aoq_stream *s);
aoq_status aoq_dev_embed(aoq_device *d, const void *table, int64_t n_rows, const int32_t *ids,
                         void *y, int64_t m, int64_t dim, aoq_dtype dt, aoq_stream *s);
aoq_status aoq_dev_rope(aoq_device *d, void *x, const int32_t *pos, int64_t m, int n_heads,
                        int head_dim, int64_t row_stride, const aoq_rope *r, aoq_dtype dt,
                        aoq_stream *s);
aoq_status aoq_dev_kv_store(aoq_device *d, const aoq_kv_cache *kv, const void *k, const void *v,
                            const int32_t *slots, int64_t m, aoq_dtype dt, aoq_stream *s);
size_t aoq_dev_attention_workspace(aoq_device *d, const aoq_kv_cache *kv, int64_t m, int n_heads,
                                   int max_pos);
aoq_status aoq_dev_attention(aoq_device *d, const aoq_kv_cache *kv, const aoq_attn_batch *b,
                             const void *q, void *out, int64_t m, int n_heads, float scale,
                             aoq_dtype dt, void *ws, aoq_stream *s);
aoq_status aoq_dev_argmax(aoq_device *d, const void *logits, int32_t *out, int64_t m,
                          int64_t vocab, aoq_dtype dt, aoq_stream *s);
aoq_status aoq_dev_sample(aoq_device *d, const void *logits, int32_t *out, int64_t m,
                          int64_t vocab, const aoq_sample_params *p, aoq_dtype dt, aoq_stream *s);
aoq_status aoq_dev_convert(aoq_device *d, const void *src, aoq_dtype sdt, void *dst,
                           aoq_dtype ddt, int64_t n, aoq_stream *s);
/* Without AOQ_CAP_FUSED, add_rmsnorm runs add then rmsnorm; qkv_rope_store is AOQ_EUNSUPPORTED. */
aoq_status aoq_dev_add_rmsnorm(aoq_device *d, void *x, const void *t, const void *w, void *y,
                               int64_t m, int64_t n, float eps, aoq_dtype dt, aoq_stream *s);
/* y[m, w->n / 2] = silu_mul(linear(w, x)) for w = [gate; up]: one kernel where the backend fuses
 * them, else linear into gu[m, w->n] then silu_mul (gu: scratch the fused path leaves alone). */
aoq_status aoq_dev_linear_silu_mul(aoq_device *d, const aoq_qweight *w, const void *x, void *gu,
                                   void *y, int64_t m, aoq_dtype dt, void *ws, aoq_stream *s);
aoq_status aoq_dev_qkv_rope_store(aoq_device *d, const aoq_kv_cache *kv, const void *qkv,
                                  void *q_out, const int32_t *pos, const int32_t *slots, int64_t m,
                                  int n_heads, const aoq_rope *r, aoq_dtype dt, aoq_stream *s);
/* out = attention(rope(q of qkv)) with rope(k) and v stored at slots first: one kernel where the
 * backend offers qkv_attention and every row is the only row of its sequence in b (m ==
 * b->n_seqs), else qkv_rope_store into q (scratch [m, n_heads head_dim]) then attention. */
aoq_status aoq_dev_qkv_attention(aoq_device *d, const aoq_kv_cache *kv, const aoq_attn_batch *b,
                                 const void *qkv, const int32_t *slots, void *q, void *out,
                                 int64_t m, int n_heads, const aoq_rope *r, float scale,
                                 aoq_dtype dt, void *ws, aoq_stream *s);

#ifdef __cplusplus
}
#endif
#endif
