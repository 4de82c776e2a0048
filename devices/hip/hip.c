/*
 * hip.c — the AMD backend on HIP: device memory, streams, events, graphs (stream capture), host
 * registration, IPC, and the op table dispatching to the kernels of kernels/gpu, compiled by hipcc
 * from the same sources as the CUDA backend (gpu_kernels.h is the contract; vendor.h maps CUDA
 * names to HIP). Host code is C against hip_runtime_api.h; no HIP C++ here.
 *
 * Errors: every HIP failure becomes AOQ_EDEVICE with hipGetErrorString in the detail; no driver or
 * no device at open becomes AOQ_ENODEV. Never aborts.
 * Streams: aoq_stream* is a hipStream_t; NULL means the context's own non-blocking stream (so it
 * can be captured). Copies on the NULL stream are synchronous; on an explicit stream they are
 * asynchronous until stream_sync.
 * Data-dependent op errors (embed ids, kv slots, attention indices) are flagged by the kernels in
 * mapped pinned host memory and reported by the next stream_sync / event_sync as AOQ_EINVAL.
 * Activations are BF16 only (no AOQ_CAP_F32); convert handles F32 <-> BF16.
 * FP8: the kernels decode aoq's e4m3fn bytes on every target, gfx940 included (docs/backends.md).
 */
#include <hip/hip_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "devices/device.h"
#include "devices/hip/hip_prelude.h" /* aoq_gk_* -> aoq_hip_gk_*: first, before gpu_kernels.h */
#include "kernels/gpu/gpu_kernels.h"

typedef struct hip_ctx {
  int index;
  int num_cus; /* compute units: the kernels' "num_sms" */
  int warp;    /* wavefront size: 64 on CDNA (gfx90a, gfx940), 32 on RDNA (gfx1030) */
  char name[128];
  char arch[64];
  hipStream_t stream;  /* the NULL stream of the iface */
  volatile int *err_h; /* mapped pinned flag written by kernels */
  int *err_d;
  void *scratch; /* 256 device bytes: the amax of quantize (one quantize at a time) */
} hip_ctx;

struct aoq_graph_hip {
  hipGraph_t graph;
  hipGraphExec_t exec;
};

static aoq_status hip_fail(hipError_t e, const char *what) {
  hipGetLastError(); /* clear it so the next call starts clean */
  return aoq_err(e == hipErrorOutOfMemory ? AOQ_ENOMEM : AOQ_EDEVICE, "hip %s: %s (%d)", what,
                 hipGetErrorString(e), (int)e);
}

#define HIP_TRY(call, what)                          \
  do {                                               \
    hipError_t e_ = (call);                          \
    if (e_ != hipSuccess) return hip_fail(e_, what); \
  } while (0)

/* A kernel launcher's status (0 or a hipError_t). */
#define KL(call, what)                             \
  do {                                             \
    int e_ = (call);                               \
    if (e_) return hip_fail((hipError_t)e_, what); \
  } while (0)

static hipStream_t strm(hip_ctx *c, aoq_stream *s) {
  return s ? (hipStream_t)s : c->stream;
}

static aoq_status setdev(hip_ctx *c) {
  HIP_TRY(hipSetDevice(c->index), "set device");
  return AOQ_OK;
}

static aoq_status check_flag(hip_ctx *c) {
  int e = *c->err_h;
  if (!e) return AOQ_OK;
  *c->err_h = 0;
  const char *what = e == AOQ_GK_ERR_EMBED_ID  ? "embed: a token id is outside the table"
                     : e == AOQ_GK_ERR_KV_SLOT ? "kv_store: a slot is outside the cache"
                                               : "attention: a sequence, position or page index "
                                                 "is out of range";
  return aoq_err(AOQ_EINVAL, "hip %s (the offending rows were zeroed/skipped)", what);
}

static void hip_destroy(void *ctx) {
  hip_ctx *c = ctx;
  if (!c) return;
  hipSetDevice(c->index);
  if (c->stream) {
    hipStreamSynchronize(c->stream);
    hipStreamDestroy(c->stream);
  }
  if (c->err_h) hipHostFree((void *)c->err_h);
  if (c->scratch) hipFree(c->scratch);
  free(c);
}

static aoq_status hip_info(void *ctx, aoq_device_info *out) {
  hip_ctx *c = ctx;
  if (!out) return aoq_err(AOQ_EINVAL, "hip info: NULL output");
  AOQ_TRY(setdev(c));
  memset(out, 0, sizeof *out);
  out->kind = AOQ_DEVICE_HIP;
  out->index = c->index;
  snprintf(out->name, sizeof out->name, "%.*s (%.*s, wave%d)", 80, c->name, 32, c->arch, c->warp);
  size_t fr = 0, tot = 0;
  HIP_TRY(hipMemGetInfo(&fr, &tot), "memory info");
  out->total_memory = tot;
  out->free_memory = fr;
  out->caps = AOQ_CAP_GRAPHS | AOQ_CAP_IPC | AOQ_CAP_HOST_REGISTER | AOQ_CAP_QUANTIZE;
  out->linear_formats = aoq_gk_linear_formats();
  out->quantize_formats = aoq_gk_quantize_formats();
  out->threads = c->num_cus;
  return AOQ_OK;
}

/* ---- memory ---- */

static aoq_status hip_alloc(void *ctx, size_t bytes, void **ptr) {
  hip_ctx *c = ctx;
  if (!ptr) return aoq_err(AOQ_EINVAL, "hip alloc: NULL output");
  *ptr = NULL;
  if (aoq_fault_hit()) return aoq_err(AOQ_ENOMEM, "hip alloc of %zu bytes (injected)", bytes);
  AOQ_TRY(setdev(c));
  hipError_t e = hipMalloc(ptr, bytes ? bytes : 256);
  if (e != hipSuccess) {
    *ptr = NULL;
    return hip_fail(e, "alloc");
  }
  return AOQ_OK;
}

static void hip_free_mem(void *ctx, void *ptr) {
  hip_ctx *c = ctx;
  if (!ptr) return;
  hipSetDevice(c->index);
  hipFree(ptr);
}

static aoq_status copy(hip_ctx *c, void *dst, const void *src, size_t n, aoq_stream *s,
                       hipMemcpyKind kind, const char *what) {
  if (n == 0) return AOQ_OK;
  if (!dst || !src) return aoq_err(AOQ_EINVAL, "hip %s: NULL pointer", what);
  AOQ_TRY(setdev(c));
  HIP_TRY(hipMemcpyAsync(dst, src, n, kind, strm(c, s)), what);
  if (!s) HIP_TRY(hipStreamSynchronize(c->stream), what);
  return AOQ_OK;
}

static aoq_status hip_h2d(void *ctx, void *dst, const void *src, size_t n, aoq_stream *s) {
  return copy(ctx, dst, src, n, s, hipMemcpyHostToDevice, "copy_h2d");
}

static aoq_status hip_d2h(void *ctx, void *dst, const void *src, size_t n, aoq_stream *s) {
  return copy(ctx, dst, src, n, s, hipMemcpyDeviceToHost, "copy_d2h");
}

static aoq_status hip_d2d(void *ctx, void *dst, const void *src, size_t n, aoq_stream *s) {
  hip_ctx *c = ctx;
  if (n == 0) return AOQ_OK;
  if (!dst || !src) return aoq_err(AOQ_EINVAL, "hip copy_d2d: NULL pointer");
  AOQ_TRY(setdev(c));
  HIP_TRY(hipMemcpyAsync(dst, src, n, hipMemcpyDeviceToDevice, strm(c, s)), "copy_d2d");
  return AOQ_OK;
}

static aoq_status hip_memset(void *ctx, void *dst, int value, size_t n, aoq_stream *s) {
  hip_ctx *c = ctx;
  if (n == 0) return AOQ_OK;
  if (!dst) return aoq_err(AOQ_EINVAL, "hip memset: NULL pointer");
  AOQ_TRY(setdev(c));
  HIP_TRY(hipMemsetAsync(dst, value, n, strm(c, s)), "memset");
  return AOQ_OK;
}

static aoq_status hip_host_register(void *ctx, void *p, size_t n) {
  hip_ctx *c = ctx;
  if (!p || !n) return aoq_err(AOQ_EINVAL, "hip host_register: NULL or empty range");
  AOQ_TRY(setdev(c));
  HIP_TRY(hipHostRegister(p, n, hipHostRegisterPortable), "host_register");
  return AOQ_OK;
}

static aoq_status hip_host_unregister(void *ctx, void *p) {
  hip_ctx *c = ctx;
  if (!p) return aoq_err(AOQ_EINVAL, "hip host_unregister: NULL pointer");
  AOQ_TRY(setdev(c));
  HIP_TRY(hipHostUnregister(p), "host_unregister");
  return AOQ_OK;
}

/* The handle is hipIpcMemHandle_t (64 bytes); ptr must come from alloc. */
static aoq_status hip_ipc_export(void *ctx, void *ptr, aoq_ipc_handle *out) {
  hip_ctx *c = ctx;
  if (!ptr || !out) return aoq_err(AOQ_EINVAL, "hip ipc_export: NULL argument");
  _Static_assert(sizeof(hipIpcMemHandle_t) <= sizeof out->bytes, "ipc handle size");
  AOQ_TRY(setdev(c));
  hipIpcMemHandle_t h;
  HIP_TRY(hipIpcGetMemHandle(&h, ptr), "ipc_export");
  memset(out, 0, sizeof *out);
  memcpy(out->bytes, &h, sizeof h);
  return AOQ_OK;
}

static aoq_status hip_ipc_import(void *ctx, const aoq_ipc_handle *hd, void **ptr) {
  hip_ctx *c = ctx;
  if (!hd || !ptr) return aoq_err(AOQ_EINVAL, "hip ipc_import: NULL argument");
  AOQ_TRY(setdev(c));
  hipIpcMemHandle_t h;
  memcpy(&h, hd->bytes, sizeof h);
  *ptr = NULL;
  HIP_TRY(hipIpcOpenMemHandle(ptr, h, hipIpcMemLazyEnablePeerAccess), "ipc_import");
  return AOQ_OK;
}

static aoq_status hip_ipc_close(void *ctx, void *ptr) {
  hip_ctx *c = ctx;
  if (!ptr) return aoq_err(AOQ_EINVAL, "hip ipc_close: NULL pointer");
  AOQ_TRY(setdev(c));
  HIP_TRY(hipIpcCloseMemHandle(ptr), "ipc_close");
  return AOQ_OK;
}

/* ---- streams, events, graphs ---- */

static aoq_status hip_stream_create(void *ctx, aoq_stream **out) {
  hip_ctx *c = ctx;
  if (!out) return aoq_err(AOQ_EINVAL, "hip stream_create: NULL output");
  AOQ_TRY(setdev(c));
  hipStream_t s;
  HIP_TRY(hipStreamCreateWithFlags(&s, hipStreamNonBlocking), "stream_create");
  *out = (aoq_stream *)s;
  return AOQ_OK;
}

static void hip_stream_destroy(void *ctx, aoq_stream *s) {
  hip_ctx *c = ctx;
  if (!s) return;
  hipSetDevice(c->index);
  hipStreamDestroy((hipStream_t)s);
}

static aoq_status hip_stream_sync(void *ctx, aoq_stream *s) {
  hip_ctx *c = ctx;
  AOQ_TRY(setdev(c));
  HIP_TRY(hipStreamSynchronize(strm(c, s)), "stream_sync");
  return check_flag(c);
}

static aoq_status hip_event_create(void *ctx, aoq_event **out) {
  hip_ctx *c = ctx;
  if (!out) return aoq_err(AOQ_EINVAL, "hip event_create: NULL output");
  AOQ_TRY(setdev(c));
  hipEvent_t e;
  HIP_TRY(hipEventCreate(&e), "event_create");
  *out = (aoq_event *)e;
  return AOQ_OK;
}

static void hip_event_destroy(void *ctx, aoq_event *e) {
  hip_ctx *c = ctx;
  if (!e) return;
  hipSetDevice(c->index);
  hipEventDestroy((hipEvent_t)e);
}

static aoq_status hip_event_record(void *ctx, aoq_event *e, aoq_stream *s) {
  hip_ctx *c = ctx;
  if (!e) return aoq_err(AOQ_EINVAL, "hip event_record: NULL event");
  HIP_TRY(hipEventRecord((hipEvent_t)e, strm(c, s)), "event_record");
  return AOQ_OK;
}

static aoq_status hip_event_wait(void *ctx, aoq_event *e, aoq_stream *s) {
  hip_ctx *c = ctx;
  if (!e) return aoq_err(AOQ_EINVAL, "hip event_wait: NULL event");
  HIP_TRY(hipStreamWaitEvent(strm(c, s), (hipEvent_t)e, 0), "event_wait");
  return AOQ_OK;
}

static aoq_status hip_event_sync(void *ctx, aoq_event *e) {
  hip_ctx *c = ctx;
  if (!e) return aoq_err(AOQ_EINVAL, "hip event_sync: NULL event");
  HIP_TRY(hipEventSynchronize((hipEvent_t)e), "event_sync");
  return check_flag(c);
}

static aoq_status hip_event_elapsed(void *ctx, aoq_event *a, aoq_event *b, float *ms) {
  (void)ctx;
  if (!a || !b || !ms) return aoq_err(AOQ_EINVAL, "hip event_elapsed_ms: NULL argument");
  HIP_TRY(hipEventElapsedTime(ms, (hipEvent_t)a, (hipEvent_t)b), "event_elapsed_ms");
  return AOQ_OK;
}

static aoq_status hip_graph_begin(void *ctx, aoq_stream *s) {
  hip_ctx *c = ctx;
  AOQ_TRY(setdev(c));
  HIP_TRY(hipStreamBeginCapture(strm(c, s), hipStreamCaptureModeThreadLocal), "graph_begin");
  return AOQ_OK;
}

static aoq_status hip_graph_end(void *ctx, aoq_stream *s, aoq_graph **out) {
  hip_ctx *c = ctx;
  if (!out) return aoq_err(AOQ_EINVAL, "hip graph_end: NULL output");
  struct aoq_graph_hip *g = calloc(1, sizeof *g);
  hipGraph_t tmp = NULL;
  hipError_t e = hipStreamEndCapture(strm(c, s), g ? &g->graph : &tmp);
  if (!g) {
    if (e == hipSuccess && tmp) hipGraphDestroy(tmp);
    return aoq_err(AOQ_ENOMEM, "hip graph_end: graph handle");
  }
  if (e != hipSuccess) {
    free(g);
    return hip_fail(e, "graph_end (capture)");
  }
  e = hipGraphInstantiate(&g->exec, g->graph, NULL, NULL, 0);
  if (e != hipSuccess) {
    hipGraphDestroy(g->graph);
    free(g);
    return hip_fail(e, "graph_end (instantiate)");
  }
  *out = (aoq_graph *)g;
  return AOQ_OK;
}

static aoq_status hip_graph_launch(void *ctx, aoq_graph *g, aoq_stream *s) {
  hip_ctx *c = ctx;
  if (!g) return aoq_err(AOQ_EINVAL, "hip graph_launch: NULL graph");
  HIP_TRY(hipGraphLaunch(((struct aoq_graph_hip *)g)->exec, strm(c, s)), "graph_launch");
  return AOQ_OK;
}

static void hip_graph_destroy(void *ctx, aoq_graph *g) {
  (void)ctx;
  if (!g) return;
  struct aoq_graph_hip *gh = (struct aoq_graph_hip *)g;
  hipGraphExecDestroy(gh->exec);
  hipGraphDestroy(gh->graph);
  free(gh);
}

/* ---- ops: argument checks here, the work in kernels/gpu ---- */

static aoq_status need_bf16(aoq_dtype dt, const char *op) {
  if (dt == AOQ_DTYPE_BF16) return AOQ_OK;
  return aoq_err(AOQ_EUNSUPPORTED, "hip %s: activation dtype %d (the HIP backend takes BF16)", op,
                 (int)dt);
}

static aoq_status rows_ok(const char *op, int64_t m, int64_t n) {
  if (m < 0 || n < 0 || m > INT32_MAX)
    return aoq_err(AOQ_EINVAL, "hip %s: %lld x %lld", op, (long long)m, (long long)n);
  return AOQ_OK;
}

static size_t hip_linear_workspace(void *ctx, const aoq_qweight *w, int64_t m) {
  (void)ctx;
  return w ? aoq_gk_linear_workspace(w, m) : 0;
}

static aoq_status hip_linear(void *ctx, const aoq_qweight *w, const void *x, void *y, int64_t m,
                             aoq_dtype dt, void *ws, aoq_stream *s) {
  hip_ctx *c = ctx;
  AOQ_TRY(need_bf16(dt, "linear"));
  if (!w) return aoq_err(AOQ_EINVAL, "hip linear: NULL weight");
  AOQ_TRY(rows_ok("linear", m, 0));
  const char *why = aoq_gk_linear_check(w);
  if (why)
    return aoq_err(AOQ_EUNSUPPORTED, "hip linear: format %d, weight [%lld, %lld], group %d: %s",
                   (int)w->kind, (long long)w->n, (long long)w->k, w->group, why);
  if (m == 0) return AOQ_OK;
  if (!x || !y || ((uintptr_t)x & 15))
    return aoq_err(AOQ_EINVAL, "hip linear: x NULL or not 16-byte aligned, or y NULL");
  if (!ws && aoq_gk_linear_workspace(w, m) > 0)
    return aoq_err(AOQ_EINVAL, "hip linear: format %d needs a workspace of %zu bytes", (int)w->kind,
                   aoq_gk_linear_workspace(w, m));
  KL(aoq_gk_linear(w, x, y, m, ws, c->num_cus, strm(c, s)), "linear");
  return AOQ_OK;
}

/* Device quantization of the float formats (quantize.cu), serialized on the context's scratch. */
static aoq_status hip_quantize(void *ctx, const void *w_src, aoq_qweight *w, aoq_stream *s) {
  hip_ctx *c = ctx;
  if (!w_src || !w) return aoq_err(AOQ_EINVAL, "hip quantize: NULL source or weight");
  if ((unsigned)w->kind >= AOQ_FMT_COUNT || !(aoq_gk_quantize_formats() >> w->kind & 1))
    return aoq_err(AOQ_EUNSUPPORTED, "hip quantize: format %d is quantized on the host",
                   (int)w->kind);
  AOQ_TRY(aoq_gpu_quantize_check(w, "hip"));
  AOQ_TRY(setdev(c));
  KL(aoq_gk_quantize(w_src, w, c->scratch, strm(c, s)), "quantize");
  return AOQ_OK;
}

static aoq_status hip_rmsnorm(void *ctx, const void *x, const void *w, void *y, int64_t m,
                              int64_t n, float eps, aoq_dtype dt, aoq_stream *s) {
  hip_ctx *c = ctx;
  AOQ_TRY(need_bf16(dt, "rmsnorm"));
  AOQ_TRY(rows_ok("rmsnorm", m, n));
  if (!isfinite(eps) || eps < 0) return aoq_err(AOQ_EINVAL, "hip rmsnorm: eps %g", (double)eps);
  if (m == 0 || n == 0) return AOQ_OK;
  if (!x || !w || !y) return aoq_err(AOQ_EINVAL, "hip rmsnorm: NULL x, w or y");
  KL(aoq_gk_rmsnorm(x, w, y, m, n, eps, strm(c, s)), "rmsnorm");
  return AOQ_OK;
}

static aoq_status hip_add(void *ctx, const void *a, const void *b, void *y, int64_t n, aoq_dtype dt,
                          aoq_stream *s) {
  hip_ctx *c = ctx;
  AOQ_TRY(need_bf16(dt, "add"));
  AOQ_TRY(rows_ok("add", 1, n));
  if (n == 0) return AOQ_OK;
  if (!a || !b || !y) return aoq_err(AOQ_EINVAL, "hip add: NULL a, b or y");
  KL(aoq_gk_add(a, b, y, n, strm(c, s)), "add");
  return AOQ_OK;
}

static aoq_status hip_silu_mul(void *ctx, const void *gu, void *y, int64_t m, int64_t n,
                               aoq_dtype dt, aoq_stream *s) {
  hip_ctx *c = ctx;
  AOQ_TRY(need_bf16(dt, "silu_mul"));
  AOQ_TRY(rows_ok("silu_mul", m, n));
  if (m == 0 || n == 0) return AOQ_OK;
  if (!gu || !y) return aoq_err(AOQ_EINVAL, "hip silu_mul: NULL gu or y");
  KL(aoq_gk_silu_mul(gu, y, m, n, strm(c, s)), "silu_mul");
  return AOQ_OK;
}

static aoq_status hip_embed(void *ctx, const void *table, int64_t n_rows, const int32_t *ids,
                            void *y, int64_t m, int64_t dim, aoq_dtype dt, aoq_stream *s) {
  hip_ctx *c = ctx;
  AOQ_TRY(need_bf16(dt, "embed"));
  AOQ_TRY(rows_ok("embed", m, dim));
  if (n_rows < 0) return aoq_err(AOQ_EINVAL, "hip embed: %lld table rows", (long long)n_rows);
  if (m == 0 || dim == 0) return AOQ_OK;
  if (!table || !ids || !y) return aoq_err(AOQ_EINVAL, "hip embed: NULL table, ids or y");
  KL(aoq_gk_embed(table, n_rows, ids, y, m, dim, c->err_d, strm(c, s)), "embed");
  return AOQ_OK;
}

/* HF llama3 inv_freq in fp32, the CPU backend's arithmetic step for step. */
static void rope_freqs(const aoq_rope *r, int head_dim, aoq_gk_rope_freqs *f) {
  int half = head_dim / 2;
  for (int d = 0; d < half; d++) {
    float ex = (float)(2 * d) / (float)head_dim;
    f->inv[d] = 1.0f / (float)pow((double)r->theta, (double)ex);
  }
  if (!(r->factor > 0)) return;
  float orig = (float)r->original_max_position;
  float low_wl = orig / r->low_freq_factor, high_wl = orig / r->high_freq_factor;
  const float two_pi = (float)(2.0 * 3.14159265358979323846);
  for (int d = 0; d < half; d++) {
    float wl = two_pi / f->inv[d];
    if (wl > low_wl) {
      f->inv[d] = f->inv[d] / r->factor;
    } else if (!(wl < high_wl)) {
      float smooth = (orig / wl - r->low_freq_factor) / (r->high_freq_factor - r->low_freq_factor);
      f->inv[d] = (1.0f - smooth) * f->inv[d] / r->factor + smooth * f->inv[d];
    }
  }
}

static aoq_status hip_rope(void *ctx, void *x, const int32_t *pos, int64_t m, int n_heads,
                           int head_dim, int64_t row_stride, const aoq_rope *r, aoq_dtype dt,
                           aoq_stream *s) {
  hip_ctx *c = ctx;
  AOQ_TRY(need_bf16(dt, "rope"));
  AOQ_TRY(rows_ok("rope", m, row_stride));
  AOQ_TRY(aoq_rope_check(r, n_heads, head_dim, 1024, row_stride, "hip"));
  if (m == 0) return AOQ_OK;
  if (!x || !pos) return aoq_err(AOQ_EINVAL, "hip rope: NULL x or pos");
  aoq_gk_rope_freqs f;
  rope_freqs(r, head_dim, &f);
  KL(aoq_gk_rope(x, pos, m, n_heads, head_dim, row_stride, &f, strm(c, s)), "rope");
  return AOQ_OK;
}

static aoq_status check_kv(const aoq_kv_cache *kv, const char *op) {
  AOQ_TRY(aoq_kv_cache_check(kv, "hip", op));
  if (kv->dtype != AOQ_DTYPE_BF16)
    return aoq_err(AOQ_EUNSUPPORTED, "hip %s: kv cache dtype %d (BF16)", op, (int)kv->dtype);
  return AOQ_OK;
}

static aoq_status hip_kv_store(void *ctx, const aoq_kv_cache *kv, const void *k, const void *v,
                               const int32_t *slots, int64_t m, aoq_dtype dt, aoq_stream *s) {
  hip_ctx *c = ctx;
  AOQ_TRY(need_bf16(dt, "kv_store"));
  AOQ_TRY(check_kv(kv, "kv_store"));
  AOQ_TRY(rows_ok("kv_store", m, 0));
  if (m == 0) return AOQ_OK;
  if (!k || !v || !slots) return aoq_err(AOQ_EINVAL, "hip kv_store: NULL k, v or slots");
  KL(aoq_gk_kv_store(kv, k, v, slots, m, c->err_d, strm(c, s)), "kv_store");
  return AOQ_OK;
}

static size_t hip_attention_workspace(void *ctx, const aoq_kv_cache *kv, int64_t m, int n_heads,
                                      int max_pos) {
  hip_ctx *c = ctx;
  return aoq_gk_attention_workspace(kv, m, n_heads, max_pos, c->num_cus);
}

static aoq_status hip_attention(void *ctx, const aoq_kv_cache *kv, const aoq_attn_batch *b,
                                const void *q, void *out, int64_t m, int n_heads, float scale,
                                aoq_dtype dt, void *ws, aoq_stream *s) {
  hip_ctx *c = ctx;
  AOQ_TRY(need_bf16(dt, "attention"));
  AOQ_TRY(check_kv(kv, "attention"));
  AOQ_TRY(rows_ok("attention", m, 0));
  if (kv->head_dim > 256)
    return aoq_err(AOQ_EUNSUPPORTED, "hip attention: head_dim %d > 256", kv->head_dim);
  if (n_heads <= 0 || n_heads % kv->n_kv_heads)
    return aoq_err(AOQ_EINVAL, "hip attention: %d query heads is not a multiple of %d kv heads",
                   n_heads, kv->n_kv_heads);
  if (!isfinite(scale)) return aoq_err(AOQ_EINVAL, "hip attention: scale %g", (double)scale);
  if (m == 0) return AOQ_OK;
  if (!b || !q || !out) return aoq_err(AOQ_EINVAL, "hip attention: NULL batch, q or out");
  if (!b->row_seq || !b->row_pos || !b->block_tables || b->n_seqs <= 0 || b->max_blocks <= 0 ||
      b->max_pos < 0)
    return aoq_err(AOQ_EINVAL, "hip attention: batch with NULL arrays or %d seqs x %d blocks",
                   b->n_seqs, b->max_blocks);
  size_t need = aoq_gk_attention_workspace(kv, m, n_heads, b->max_pos, c->num_cus);
  if (!ws && need > 0)
    return aoq_err(AOQ_EINVAL, "hip attention: NULL workspace (attention_workspace is %zu)", need);
  KL(aoq_gk_attention(kv, b, q, out, m, n_heads, scale, ws, c->num_cus, c->err_d, strm(c, s)),
     "attention");
  return AOQ_OK;
}

static aoq_status logits_ok(const char *op, const void *lg, const int32_t *out, int64_t m,
                            int64_t vocab) {
  if (m < 0 || vocab <= 0 || vocab > INT32_MAX || m > INT32_MAX)
    return aoq_err(AOQ_EINVAL, "hip %s: %lld rows of vocab %lld", op, (long long)m,
                   (long long)vocab);
  if (m > 0 && (!lg || !out)) return aoq_err(AOQ_EINVAL, "hip %s: NULL logits or out", op);
  return AOQ_OK;
}

static aoq_status hip_argmax(void *ctx, const void *logits, int32_t *out, int64_t m, int64_t vocab,
                             aoq_dtype dt, aoq_stream *s) {
  hip_ctx *c = ctx;
  AOQ_TRY(need_bf16(dt, "argmax"));
  AOQ_TRY(logits_ok("argmax", logits, out, m, vocab));
  if (m == 0) return AOQ_OK;
  KL(aoq_gk_argmax(logits, out, m, vocab, strm(c, s)), "argmax");
  return AOQ_OK;
}

static aoq_status hip_sample(void *ctx, const void *logits, int32_t *out, int64_t m, int64_t vocab,
                             const aoq_sample_params *p, aoq_dtype dt, aoq_stream *s) {
  hip_ctx *c = ctx;
  AOQ_TRY(need_bf16(dt, "sample"));
  AOQ_TRY(logits_ok("sample", logits, out, m, vocab));
  if (m == 0) return AOQ_OK;
  if (!p) return aoq_err(AOQ_EINVAL, "hip sample: NULL parameters");
  for (int64_t i = 0; i < m; i++)
    if (isnan(p[i].temperature) || isnan(p[i].top_p) || p[i].top_p < 0 || p[i].top_k < 0)
      return aoq_err(AOQ_EINVAL, "hip sample: row %lld: temperature %g, top_p %g, top_k %d",
                     (long long)i, (double)p[i].temperature, (double)p[i].top_p, p[i].top_k);
  KL(aoq_gk_sample(logits, out, m, vocab, p, strm(c, s)), "sample");
  return AOQ_OK;
}

static aoq_status hip_convert(void *ctx, const void *src, aoq_dtype sdt, void *dst, aoq_dtype ddt,
                              int64_t n, aoq_stream *s) {
  hip_ctx *c = ctx;
  if ((sdt != AOQ_DTYPE_BF16 && sdt != AOQ_DTYPE_F32) ||
      (ddt != AOQ_DTYPE_BF16 && ddt != AOQ_DTYPE_F32))
    return aoq_err(AOQ_EUNSUPPORTED, "hip convert: dtypes %d -> %d (BF16 or F32)", (int)sdt,
                   (int)ddt);
  AOQ_TRY(rows_ok("convert", 1, n));
  if (n == 0) return AOQ_OK;
  if (!src || !dst) return aoq_err(AOQ_EINVAL, "hip convert: NULL src or dst");
  if (sdt == ddt) {
    HIP_TRY(hipMemcpyAsync(dst, src, (size_t)n * (sdt == AOQ_DTYPE_F32 ? 4 : 2),
                           hipMemcpyDeviceToDevice, strm(c, s)),
            "convert");
    return AOQ_OK;
  }
  KL(aoq_gk_convert(src, dst, n, ddt == AOQ_DTYPE_F32, strm(c, s)), "convert");
  return AOQ_OK;
}

static const struct aoq_device_iface hip_iface = {
    .api_version = AOQ_DEVICE_API_VERSION,
    .name = "hip",
    .destroy = hip_destroy,
    .info = hip_info,
    .alloc = hip_alloc,
    .free = hip_free_mem,
    .copy_h2d = hip_h2d,
    .copy_d2h = hip_d2h,
    .copy_d2d = hip_d2d,
    .memset = hip_memset,
    .host_register = hip_host_register,
    .host_unregister = hip_host_unregister,
    .ipc_export = hip_ipc_export,
    .ipc_import = hip_ipc_import,
    .ipc_close = hip_ipc_close,
    .stream_create = hip_stream_create,
    .stream_destroy = hip_stream_destroy,
    .stream_sync = hip_stream_sync,
    .event_create = hip_event_create,
    .event_destroy = hip_event_destroy,
    .event_record = hip_event_record,
    .event_wait = hip_event_wait,
    .event_sync = hip_event_sync,
    .event_elapsed_ms = hip_event_elapsed,
    .graph_begin = hip_graph_begin,
    .graph_end = hip_graph_end,
    .graph_launch = hip_graph_launch,
    .graph_destroy = hip_graph_destroy,
    .linear_workspace = hip_linear_workspace,
    .linear = hip_linear,
    .quantize = hip_quantize,
    .rmsnorm = hip_rmsnorm,
    .add = hip_add,
    .silu_mul = hip_silu_mul,
    .embed = hip_embed,
    .rope = hip_rope,
    .kv_store = hip_kv_store,
    .attention_workspace = hip_attention_workspace,
    .attention = hip_attention,
    .argmax = hip_argmax,
    .sample = hip_sample,
    .convert = hip_convert,
};

aoq_status aoq_hip_device_create(int index, aoq_device **out) {
  if (!out) return aoq_err(AOQ_EINVAL, "aoq_hip_device_create: NULL output");
  *out = NULL;
  int count = 0;
  hipError_t e = hipGetDeviceCount(&count);
  if (e != hipSuccess) {
    hipGetLastError();
    return aoq_err(AOQ_ENODEV,
                   "hip:%d: no usable HIP driver or AMD GPU: %s (%d) (ROCm needs the amdgpu "
                   "kernel driver and /dev/kfd)",
                   index, hipGetErrorString(e), (int)e);
  }
  if (index < 0 || index >= count)
    return aoq_err(AOQ_ENODEV, "hip:%d: no such device (%d HIP devices)", index, count);
  hip_ctx *c = calloc(1, sizeof *c);
  if (!c) return aoq_err(AOQ_ENOMEM, "hip context");
  c->index = index;
  hipDeviceProp_t prop;
  if ((e = hipSetDevice(index)) != hipSuccess ||
      (e = hipGetDeviceProperties(&prop, index)) != hipSuccess ||
      (e = hipStreamCreateWithFlags(&c->stream, hipStreamNonBlocking)) != hipSuccess ||
      (e = hipHostMalloc((void **)&c->err_h, sizeof(int), hipHostMallocMapped)) != hipSuccess ||
      (e = hipHostGetDevicePointer((void **)&c->err_d, (void *)c->err_h, 0)) != hipSuccess ||
      (e = hipMalloc(&c->scratch, 256)) != hipSuccess) {
    aoq_status st = aoq_err(AOQ_ENODEV, "hip:%d: device setup failed: %s (%d)", index,
                            hipGetErrorString(e), (int)e);
    hipGetLastError();
    hip_destroy(c);
    return st;
  }
  *c->err_h = 0;
  c->num_cus = prop.multiProcessorCount;
  c->warp = prop.warpSize;
  snprintf(c->name, sizeof c->name, "%.*s", (int)sizeof c->name - 1, prop.name);
  snprintf(c->arch, sizeof c->arch, "%.*s", (int)sizeof c->arch - 1, prop.gcnArchName);
  char name[32];
  snprintf(name, sizeof name, "hip:%d", index);
  aoq_status st = aoq_device_wrap(&hip_iface, c, name, out);
  if (st != AOQ_OK) hip_destroy(c);
  return st;
}
