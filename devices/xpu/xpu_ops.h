/*
 * xpu_ops.h — the compute ops of the OpenCL-C kernels (kernels/cl), shared by the two runtimes
 * that run them: Level Zero (xpu_ze.c, the Intel XPU backend) and OpenCL (xpu_cl.c, the PoCL test
 * harness). The ops check their arguments, pick a kernel and launch it through a small runtime
 * table; the runtimes own memory, queues and the kernel objects.
 *
 * A backend's context struct starts with an `aoq_xk_ops` member, so the op functions below go
 * straight into its `struct aoq_device_iface` (their `void *ctx` is the backend context).
 * Activations are BF16 only (no AOQ_CAP_F32); the KV cache is BF16.
 */
#ifndef AOQ_DEVICES_XPU_XPU_OPS_H
#define AOQ_DEVICES_XPU_XPU_OPS_H

#include <pthread.h>

#include "devices/device.h"

/* Kernels, each a (module, entry point) of kernels/cl. */
typedef enum aoq_xk_id {
  AOQ_XK_RMSNORM = 0,
  AOQ_XK_ADD,
  AOQ_XK_SILU_MUL,
  AOQ_XK_EMBED,
  AOQ_XK_ROPE,
  AOQ_XK_KV_STORE,
  AOQ_XK_ATTENTION,
  AOQ_XK_ARGMAX,
  AOQ_XK_BF16_TO_F32,
  AOQ_XK_F32_TO_BF16,
  AOQ_XK_LINEAR_BF16,
  AOQ_XK_LIN_INT8WO, /* quant.cl: weight-only formats */
  AOQ_XK_LIN_FP8WO,
  AOQ_XK_LIN_INT4WO,
  AOQ_XK_LIN_INTXWO,
  AOQ_XK_LIN_CODEBOOK,
  AOQ_XK_LIN_W158,
  AOQ_XK_LIN_FP6_E3M2,
  AOQ_XK_LIN_FP6_E2M3,
  AOQ_XK_LIN_NVFP4WO,
  AOQ_XK_DQ_TENSOR, /* dyn.cl: dynamic-activation formats */
  AOQ_XK_DQ_ACT_ROW,
  AOQ_XK_DQ_ACT_ASYM,
  AOQ_XK_DQ_ACT_FP8BLK,
  AOQ_XK_DQ_ACT_MXFP8,
  AOQ_XK_DQ_ACT_MXFP4,
  AOQ_XK_DQ_ACT_NVFP4,
  AOQ_XK_DQ_LINEAR,
  AOQ_XK_DQ_LINEAR_I8,
  AOQ_XK_WQ_FP8, /* wquant.cl: weight quantization */
  AOQ_XK_WQ_FP8_BLOCK,
  AOQ_XK_WQ_MXFP8,
  AOQ_XK_WQ_MXFP4,
  AOQ_XK_WQ_NVFP4,
  AOQ_XK_SAMPLE, /* sample.cl (fp64: optional module) */
  AOQ_XK_COUNT
} aoq_xk_id;

typedef struct aoq_xk_name {
  const char *module; /* kernels/cl/<module>.cl */
  const char *entry;  /* __kernel name */
} aoq_xk_name;
extern const aoq_xk_name aoq_xk_names[AOQ_XK_COUNT];

/* A kernel argument. PTR expands to two kernel parameters (base, byte offset): see aoq_cl.h. */
typedef enum aoq_xa_kind { AOQ_XA_PTR, AOQ_XA_I32, AOQ_XA_I64, AOQ_XA_F32 } aoq_xa_kind;
typedef struct aoq_xk_arg {
  aoq_xa_kind kind;
  const void *p;
  int64_t i;
  float f;
} aoq_xk_arg;

#define AOQ_XK_MAX_ARGS 24

/* What the ops need from a runtime. */
typedef struct aoq_xk_rt {
  /* Enqueues kernel k on s (NULL = default stream) with groups[i] work-groups of local[i] items
   * in dimension i. */
  aoq_status (*launch)(void *ctx, aoq_xk_id k, const aoq_xk_arg *args, int nargs,
                       const size_t groups[3], const size_t local[3], aoq_stream *s);
  /* Host -> device copy of a small table, ordered on stream s after the work already there and
   * complete when it returns (the host buffer may go): the RoPE tables, sample parameters. */
  aoq_status (*upload)(void *ctx, void *dst, const void *src, size_t n, aoq_stream *s);
  /* The backend's copy_d2d (same-type convert). */
  aoq_status (*copy_d2d)(void *ctx, void *dst, const void *src, size_t n, aoq_stream *s);
} aoq_xk_rt;

#define AOQ_XK_SAMPLE_MAX_ROWS 4096 /* rows of one sample call (its parameter buffer) */
#define AOQ_XK_ROPE_SLOTS 8         /* distinct RoPE parameter sets kept on the device */
#define AOQ_XK_ROPE_MAX_HALF 512    /* head_dim <= 1024 */

typedef struct aoq_xk_rope_key {
  aoq_rope r;
  int head_dim;
  int used;
} aoq_xk_rope_key;

typedef struct aoq_xk_ops {
  const aoq_xk_rt *rt;
  int *err;        /* device int: data-dependent error code of the kernels, 0 = none */
  float *rope_tab; /* device float[AOQ_XK_ROPE_SLOTS][AOQ_XK_ROPE_MAX_HALF] */
  aoq_xk_rope_key rope_keys[AOQ_XK_ROPE_SLOTS];
  int rope_next; /* slot replaced next when all are used */
  pthread_mutex_t rope_lock;
  void *sample_params;         /* device uint[AOQ_XK_SAMPLE_MAX_ROWS][8], or NULL: no sample */
  int has_sample;              /* the sample module built (it needs fp64) */
  pthread_mutex_t sample_lock; /* one sample call at a time owns sample_params */
} aoq_xk_ops;

/* Sets up o (rt, err and rope_tab already allocated by the runtime). */
aoq_status aoq_xk_ops_init(aoq_xk_ops *o, const aoq_xk_rt *rt, int *err, float *rope_tab);
void aoq_xk_ops_fini(aoq_xk_ops *o);
/* Bytes of the rope table the runtime allocates. */
size_t aoq_xk_rope_tab_bytes(void);
/* Turns the error code the kernels wrote (read by the runtime at sync) into a status. */
aoq_status aoq_xk_err_status(int code, const char *backend);

/* Formats (besides BF16) whose linear the kernels implement: bit per aoq_format_kind. */
uint64_t aoq_xk_linear_formats(void);

/* Formats the `quantize` op produces on the device (AOQ_CAP_QUANTIZE): bit per kind. */
uint64_t aoq_xk_quantize_formats(void);

/* The ops: same contracts as the aoq_device_iface entries; ctx starts with an aoq_xk_ops. */
aoq_status aoq_xk_quantize(void *ctx, const void *w_src, aoq_qweight *w, aoq_stream *s);
size_t aoq_xk_linear_workspace(void *ctx, const aoq_qweight *w, int64_t m);
aoq_status aoq_xk_linear(void *ctx, const aoq_qweight *w, const void *x, void *y, int64_t m,
                         aoq_dtype dt, void *ws, aoq_stream *s);
aoq_status aoq_xk_rmsnorm(void *ctx, const void *x, const void *w, void *y, int64_t m, int64_t n,
                          float eps, aoq_dtype dt, aoq_stream *s);
aoq_status aoq_xk_add(void *ctx, const void *a, const void *b, void *y, int64_t n, aoq_dtype dt,
                      aoq_stream *s);
aoq_status aoq_xk_silu_mul(void *ctx, const void *gu, void *y, int64_t m, int64_t n, aoq_dtype dt,
                           aoq_stream *s);
aoq_status aoq_xk_embed(void *ctx, const void *table, int64_t n_rows, const int32_t *ids, void *y,
                        int64_t m, int64_t dim, aoq_dtype dt, aoq_stream *s);
aoq_status aoq_xk_rope(void *ctx, void *x, const int32_t *pos, int64_t m, int n_heads, int head_dim,
                       int64_t row_stride, const aoq_rope *r, aoq_dtype dt, aoq_stream *s);
aoq_status aoq_xk_kv_store(void *ctx, const aoq_kv_cache *kv, const void *k, const void *v,
                           const int32_t *slots, int64_t m, aoq_dtype dt, aoq_stream *s);
size_t aoq_xk_attention_workspace(void *ctx, const aoq_kv_cache *kv, int64_t m, int n_heads,
                                  int max_pos);
aoq_status aoq_xk_attention(void *ctx, const aoq_kv_cache *kv, const aoq_attn_batch *b,
                            const void *q, void *out, int64_t m, int n_heads, float scale,
                            aoq_dtype dt, void *ws, aoq_stream *s);
aoq_status aoq_xk_argmax(void *ctx, const void *logits, int32_t *out, int64_t m, int64_t vocab,
                         aoq_dtype dt, aoq_stream *s);
aoq_status aoq_xk_convert(void *ctx, const void *src, aoq_dtype sdt, void *dst, aoq_dtype ddt,
                          int64_t n, aoq_stream *s);
/* Uploads p (host) on s, then samples on s: not capturable into a graph. Calls on different
 * streams share one parameter buffer: the caller orders them (sample at the end of a step). */
aoq_status aoq_xk_sample(void *ctx, const void *logits, int32_t *out, int64_t m, int64_t vocab,
                         const aoq_sample_params *p, aoq_dtype dt, aoq_stream *s);
/* Bytes of the sample parameter buffer the runtime allocates. */
size_t aoq_xk_sample_params_bytes(void);

#endif
