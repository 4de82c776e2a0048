/*
 * gpu_backend_impl.h — the body of the CUDA and HIP backends: device memory, streams, events,
 * graphs (stream capture), host registration, IPC and the op table dispatching to the kernels of
 * kernels/gpu (gpu_kernels.h). It is included once by devices/cuda/cuda.c and once by
 * devices/hip/hip.c, each of which first includes its runtime's header and defines:
 *   AOQ_GPU_CUDA (CUDA only: cuBLAS, mem_range, the fused ops, host-mapped memory)
 *   AOQ_GPU_VENDOR "cuda" / "hip" (device names and messages), AOQ_GPU_KIND (aoq_device_kind),
 *   AOQ_GPU_CREATE (the create function's name), AOQ_GPU_NO_DEVICE (what an open failure lacks),
 *   AOQ_GPU_PROP (the device-properties type), AOQ_GPU_GRAPH_INSTANTIATE(exec, graph).
 * The code is written against the CUDA runtime's names; hip.c maps them to HIP's
 * (devices/hip/hip_runtime_names.h), as kernels/gpu/vendor.h does for the kernels.
 *
 * Errors: every runtime failure becomes AOQ_EDEVICE (AOQ_ENOMEM for out-of-memory) with the
 * runtime's error string in the detail; a missing driver or device becomes AOQ_ENODEV at open.
 * Never aborts.
 * Streams: aoq_stream* is the runtime's stream; NULL means the context's own non-blocking stream
 * (so it can be captured). Copies on a NULL stream are synchronous (host buffers may be reused at
 * return); on an explicit stream they are asynchronous until stream_sync.
 * Data-dependent op errors (embed ids, kv slots, attention indices) are flagged by the kernels in
 * pinned mapped host memory and reported by the next stream_sync / event_sync as AOQ_EINVAL.
 * Activations are BF16 only (no AOQ_CAP_F32); convert handles F32 <-> BF16.
 */
#ifndef AOQ_DEVICES_GPU_BACKEND_IMPL_H
#define AOQ_DEVICES_GPU_BACKEND_IMPL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/log.h"
#include "devices/device.h"
#include "kernels/gpu/gpu_kernels.h"

typedef struct gpu_ctx {
  int index;
  int num_sms; /* multiprocessors (AMD: compute units): the kernels' "num_sms" */
  char name[128];
  cudaStream_t stream; /* the NULL stream of the iface */
  volatile int *err_h; /* mapped pinned flag written by kernels */
  int *err_d;
  void *scratch; /* 256 device bytes: the amax of quantize (one quantize at a time) */
#ifdef AOQ_GPU_CUDA
  bool host_mapped; /* registered host memory is readable by kernels at its host address */
  aoq_cublas *blas; /* the large-m linear engine (cublas.h), NULL: own kernels only */
#else
  int warp;      /* wavefront size: 64 on CDNA (gfx90a, gfx940), 32 on RDNA (gfx1030) */
  char arch[64]; /* gcnArchName */
#endif
} gpu_ctx;

struct aoq_graph_gpu {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
};

static aoq_status gpu_err(cudaError_t e, const char *what) {
  cudaGetLastError(); /* clear a sticky-free error so the next call starts clean */
  return aoq_err(e == cudaErrorMemoryAllocation ? AOQ_ENOMEM : AOQ_EDEVICE,
                 AOQ_GPU_VENDOR " %s: %s (%d)", what, cudaGetErrorString(e), (int)e);
}

#define GT(call, what)                               \
  do {                                               \
    cudaError_t e_ = (call);                         \
    if (e_ != cudaSuccess) return gpu_err(e_, what); \
  } while (0)

#define KL(call, what)                             \
  do {                                             \
    int e_ = (call);                               \
    if (e_) return gpu_err((cudaError_t)e_, what); \
  } while (0)

static cudaStream_t strm(gpu_ctx *c, aoq_stream *s) {
  return s ? (cudaStream_t)s : c->stream;
}

static aoq_status setdev(gpu_ctx *c) {
  GT(cudaSetDevice(c->index), "set device");
  return AOQ_OK;
}

static aoq_status check_flag(gpu_ctx *c) {
  int e = *c->err_h;
  if (!e) return AOQ_OK;
  *c->err_h = 0;
  const char *what = e == AOQ_GK_ERR_EMBED_ID  ? "embed: a token id is outside the table"
                     : e == AOQ_GK_ERR_KV_SLOT ? "kv_store: a slot is outside the cache"
                                               : "attention: a sequence, position or page index "
                                                 "is out of range";
  return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " %s (the offending rows were zeroed/skipped)", what);
}

static void gpu_destroy(void *ctx) {
  gpu_ctx *c = ctx;
  if (!c) return;
  cudaSetDevice(c->index);
  if (c->stream) {
    cudaStreamSynchronize(c->stream);
    cudaStreamDestroy(c->stream);
  }
  if (c->err_h) cudaFreeHost((void *)c->err_h);
  if (c->scratch) cudaFree(c->scratch);
#ifdef AOQ_GPU_CUDA
  aoq_cublas_close(c->blas);
#endif
  free(c);
}

static aoq_status gpu_info(void *ctx, aoq_device_info *out) {
  gpu_ctx *c = ctx;
  if (!out) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " info: NULL output");
  AOQ_TRY(setdev(c));
  memset(out, 0, sizeof *out);
  out->kind = AOQ_GPU_KIND;
  out->index = c->index;
#ifdef AOQ_GPU_CUDA
  memcpy(out->name, c->name, sizeof out->name);
#else
  snprintf(out->name, sizeof out->name, "%.*s (%.*s, wave%d)", 80, c->name, 32, c->arch, c->warp);
#endif
  size_t fr = 0, tot = 0;
  GT(cudaMemGetInfo(&fr, &tot), "memory info");
  out->total_memory = tot;
  out->free_memory = fr;
  out->caps = AOQ_CAP_GRAPHS | AOQ_CAP_IPC | AOQ_CAP_HOST_REGISTER | AOQ_CAP_QUANTIZE;
  out->linear_formats = aoq_gk_linear_formats();
  out->quantize_formats = aoq_gk_quantize_formats();
  out->threads = c->num_sms;
#ifdef AOQ_GPU_CUDA
  out->caps |= AOQ_CAP_FUSED;
  if (c->host_mapped) out->caps |= AOQ_CAP_HOST_MAPPED;
  snprintf(out->linear_engine, sizeof out->linear_engine, "%s", aoq_cublas_describe(c->blas));
#endif
  return AOQ_OK;
}

/* ---- memory ---- */

static aoq_status gpu_alloc(void *ctx, size_t bytes, void **ptr) {
  gpu_ctx *c = ctx;
  if (!ptr) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " alloc: NULL output");
  *ptr = NULL;
  if (aoq_fault_hit())
    return aoq_err(AOQ_ENOMEM, AOQ_GPU_VENDOR " alloc of %zu bytes (injected)", bytes);
  AOQ_TRY(setdev(c));
  cudaError_t e = cudaMalloc(ptr, bytes ? bytes : 256);
  if (e != cudaSuccess) {
    cudaGetLastError();
    *ptr = NULL;
    return aoq_err(e == cudaErrorMemoryAllocation ? AOQ_ENOMEM : AOQ_EDEVICE,
                   AOQ_GPU_VENDOR " alloc of %zu bytes: %s", bytes, cudaGetErrorString(e));
  }
  return AOQ_OK;
}

static void gpu_free(void *ctx, void *ptr) {
  gpu_ctx *c = ctx;
  if (!ptr) return;
  cudaSetDevice(c->index);
  cudaFree(ptr);
}

static aoq_status copy(gpu_ctx *c, void *dst, const void *src, size_t n, aoq_stream *s,
                       enum cudaMemcpyKind kind, const char *what) {
  if (n == 0) return AOQ_OK;
  if (!dst || !src) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " %s: NULL pointer", what);
  AOQ_TRY(setdev(c));
  GT(cudaMemcpyAsync(dst, src, n, kind, strm(c, s)), what);
  if (!s) GT(cudaStreamSynchronize(c->stream), what);
  return AOQ_OK;
}

static aoq_status gpu_h2d(void *ctx, void *dst, const void *src, size_t n, aoq_stream *s) {
  return copy(ctx, dst, src, n, s, cudaMemcpyHostToDevice, "copy_h2d");
}
static aoq_status gpu_d2h(void *ctx, void *dst, const void *src, size_t n, aoq_stream *s) {
  return copy(ctx, dst, src, n, s, cudaMemcpyDeviceToHost, "copy_d2h");
}
static aoq_status gpu_d2d(void *ctx, void *dst, const void *src, size_t n, aoq_stream *s) {
  gpu_ctx *c = ctx;
  if (n == 0) return AOQ_OK;
  if (!dst || !src) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " copy_d2d: NULL pointer");
  AOQ_TRY(setdev(c));
  GT(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, strm(c, s)), "copy_d2d");
  return AOQ_OK;
}

static aoq_status gpu_memset(void *ctx, void *dst, int value, size_t n, aoq_stream *s) {
  gpu_ctx *c = ctx;
  if (n == 0) return AOQ_OK;
  if (!dst) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " memset: NULL pointer");
  AOQ_TRY(setdev(c));
  GT(cudaMemsetAsync(dst, value, n, strm(c, s)), "memset");
  return AOQ_OK;
}

static aoq_status gpu_host_register(void *ctx, void *p, size_t n) {
  gpu_ctx *c = ctx;
  if (!p || !n) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " host_register: NULL or empty range");
  AOQ_TRY(setdev(c));
  GT(cudaHostRegister(p, n, cudaHostRegisterPortable | cudaHostRegisterMapped), "host_register");
  return AOQ_OK;
}

static aoq_status gpu_host_unregister(void *ctx, void *p) {
  gpu_ctx *c = ctx;
  if (!p) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " host_unregister: NULL pointer");
  AOQ_TRY(setdev(c));
  GT(cudaHostUnregister(p), "host_unregister");
  return AOQ_OK;
}

/* The handle is cudaIpcMemHandle_t (64 bytes): ptr must be a pointer returned by alloc. */
static aoq_status gpu_ipc_export(void *ctx, void *ptr, aoq_ipc_handle *out) {
  gpu_ctx *c = ctx;
  if (!ptr || !out) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " ipc_export: NULL argument");
  _Static_assert(sizeof(cudaIpcMemHandle_t) <= sizeof out->bytes, "ipc handle size");
  AOQ_TRY(setdev(c));
  cudaIpcMemHandle_t h;
  GT(cudaIpcGetMemHandle(&h, ptr), "ipc_export");
  memset(out, 0, sizeof *out);
  memcpy(out->bytes, &h, sizeof h);
  return AOQ_OK;
}

static aoq_status gpu_ipc_import(void *ctx, const aoq_ipc_handle *hd, void **ptr) {
  gpu_ctx *c = ctx;
  if (!hd || !ptr) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " ipc_import: NULL argument");
  AOQ_TRY(setdev(c));
  cudaIpcMemHandle_t h;
  memcpy(&h, hd->bytes, sizeof h);
  *ptr = NULL;
  GT(cudaIpcOpenMemHandle(ptr, h, cudaIpcMemLazyEnablePeerAccess), "ipc_import");
  return AOQ_OK;
}

static aoq_status gpu_ipc_close(void *ctx, void *ptr) {
  gpu_ctx *c = ctx;
  if (!ptr) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " ipc_close: NULL pointer");
  AOQ_TRY(setdev(c));
  GT(cudaIpcCloseMemHandle(ptr), "ipc_close");
  return AOQ_OK;
}

#ifdef AOQ_GPU_CUDA
/* cuMemGetAddressRange through the runtime's driver entry point (no libcuda link needed). */
typedef int (*cu_mem_range_fn)(unsigned long long *base, size_t *size, unsigned long long ptr);

static aoq_status gpu_mem_range(void *ctx, const void *ptr, void **base, size_t *bytes) {
  gpu_ctx *c = ctx;
  if (!ptr || !base || !bytes)
    return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " mem_range: NULL argument");
  AOQ_TRY(setdev(c));
  void *fn = NULL;
  enum cudaDriverEntryPointQueryResult q;
  GT(cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", &fn, 12000, cudaEnableDefault, &q),
     "mem_range entry point");
  if (!fn || q != cudaDriverEntryPointSuccess)
    return aoq_err(AOQ_EDEVICE,
                   AOQ_GPU_VENDOR " mem_range: the driver has no cuMemGetAddressRange");
  unsigned long long b = 0;
  size_t n = 0;
  int r = ((cu_mem_range_fn)fn)(&b, &n, (unsigned long long)(uintptr_t)ptr);
  if (r != 0)
    return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " mem_range: %p is no device allocation (%d)", ptr,
                   r);
  *base = (void *)(uintptr_t)b;
  *bytes = n;
  return AOQ_OK;
}
#endif

/* ---- streams, events, graphs ---- */

static aoq_status gpu_stream_create(void *ctx, aoq_stream **out) {
  gpu_ctx *c = ctx;
  if (!out) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " stream_create: NULL output");
  AOQ_TRY(setdev(c));
  cudaStream_t s;
  GT(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream_create");
  *out = (aoq_stream *)s;
  return AOQ_OK;
}

static void gpu_stream_destroy(void *ctx, aoq_stream *s) {
  gpu_ctx *c = ctx;
  if (!s) return;
  cudaSetDevice(c->index);
  cudaStreamDestroy((cudaStream_t)s);
}

static aoq_status gpu_stream_sync(void *ctx, aoq_stream *s) {
  gpu_ctx *c = ctx;
  AOQ_TRY(setdev(c));
  GT(cudaStreamSynchronize(strm(c, s)), "stream_sync");
  return check_flag(c);
}

static aoq_status gpu_event_create(void *ctx, aoq_event **out) {
  gpu_ctx *c = ctx;
  if (!out) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " event_create: NULL output");
  AOQ_TRY(setdev(c));
  cudaEvent_t e;
  GT(cudaEventCreate(&e), "event_create");
  *out = (aoq_event *)e;
  return AOQ_OK;
}

static void gpu_event_destroy(void *ctx, aoq_event *e) {
  gpu_ctx *c = ctx;
  if (!e) return;
  cudaSetDevice(c->index);
  cudaEventDestroy((cudaEvent_t)e);
}

static aoq_status gpu_event_record(void *ctx, aoq_event *e, aoq_stream *s) {
  gpu_ctx *c = ctx;
  if (!e) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " event_record: NULL event");
  GT(cudaEventRecord((cudaEvent_t)e, strm(c, s)), "event_record");
  return AOQ_OK;
}

static aoq_status gpu_event_wait(void *ctx, aoq_event *e, aoq_stream *s) {
  gpu_ctx *c = ctx;
  if (!e) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " event_wait: NULL event");
  GT(cudaStreamWaitEvent(strm(c, s), (cudaEvent_t)e, 0), "event_wait");
  return AOQ_OK;
}

static aoq_status gpu_event_sync(void *ctx, aoq_event *e) {
  gpu_ctx *c = ctx;
  if (!e) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " event_sync: NULL event");
  GT(cudaEventSynchronize((cudaEvent_t)e), "event_sync");
  return check_flag(c);
}

static aoq_status gpu_event_elapsed(void *ctx, aoq_event *a, aoq_event *b, float *ms) {
  (void)ctx;
  if (!a || !b || !ms)
    return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " event_elapsed_ms: NULL argument");
  GT(cudaEventElapsedTime(ms, (cudaEvent_t)a, (cudaEvent_t)b), "event_elapsed_ms");
  return AOQ_OK;
}

static aoq_status gpu_graph_begin(void *ctx, aoq_stream *s) {
  gpu_ctx *c = ctx;
  AOQ_TRY(setdev(c));
  GT(cudaStreamBeginCapture(strm(c, s), cudaStreamCaptureModeThreadLocal), "graph_begin");
  return AOQ_OK;
}

static aoq_status gpu_graph_end(void *ctx, aoq_stream *s, aoq_graph **out) {
  gpu_ctx *c = ctx;
  if (!out) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " graph_end: NULL output");
  struct aoq_graph_gpu *g = calloc(1, sizeof *g);
  cudaGraph_t tmp = NULL;
  cudaError_t e = cudaStreamEndCapture(strm(c, s), g ? &g->graph : &tmp);
  if (!g) {
    if (e == cudaSuccess && tmp) cudaGraphDestroy(tmp);
    return aoq_err(AOQ_ENOMEM, AOQ_GPU_VENDOR " graph_end: graph handle");
  }
  if (e != cudaSuccess) {
    free(g);
    return gpu_err(e, "graph_end (capture)");
  }
  e = AOQ_GPU_GRAPH_INSTANTIATE(&g->exec, g->graph);
  if (e != cudaSuccess) {
    cudaGraphDestroy(g->graph);
    free(g);
    return gpu_err(e, "graph_end (instantiate)");
  }
  *out = (aoq_graph *)g;
  return AOQ_OK;
}

static aoq_status gpu_graph_launch(void *ctx, aoq_graph *g, aoq_stream *s) {
  gpu_ctx *c = ctx;
  if (!g) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " graph_launch: NULL graph");
  GT(cudaGraphLaunch(((struct aoq_graph_gpu *)g)->exec, strm(c, s)), "graph_launch");
  return AOQ_OK;
}

static void gpu_graph_destroy(void *ctx, aoq_graph *g) {
  (void)ctx;
  if (!g) return;
  struct aoq_graph_gpu *gc = (struct aoq_graph_gpu *)g;
  cudaGraphExecDestroy(gc->exec);
  cudaGraphDestroy(gc->graph);
  free(gc);
}

/* ---- ops ---- */

static aoq_status need_bf16(aoq_dtype dt, const char *op) {
  if (dt == AOQ_DTYPE_BF16) return AOQ_OK;
  return aoq_err(AOQ_EUNSUPPORTED,
                 AOQ_GPU_VENDOR " %s: activation dtype %d (the " AOQ_GPU_VENDOR
                                " backend takes BF16)",
                 op, (int)dt);
}

static size_t gpu_linear_workspace(void *ctx, const aoq_qweight *w, int64_t m) {
#ifdef AOQ_GPU_CUDA
  gpu_ctx *c = ctx;
  if (w && !aoq_gk_batch_invariant() && aoq_cublas_linear_wants(c->blas, w, m))
    return aoq_cublas_linear_workspace(c->blas, w, m);
#else
  (void)ctx;
#endif
  return w ? aoq_gk_linear_workspace(w, m) : 0;
}

static aoq_status gpu_linear(void *ctx, const aoq_qweight *w, const void *x, void *y, int64_t m,
                             aoq_dtype dt, void *ws, aoq_stream *s) {
  gpu_ctx *c = ctx;
  AOQ_TRY(need_bf16(dt, "linear"));
  if (!w) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " linear: NULL weight");
  if (m < 0) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " linear: %lld rows", (long long)m);
  const char *why = aoq_gk_linear_check(w);
  if (why)
    return aoq_err(AOQ_EUNSUPPORTED,
                   AOQ_GPU_VENDOR " linear: format %d, weight [%lld, %lld], group %d: %s",
                   (int)w->kind, (long long)w->n, (long long)w->k, w->group, why);
  if (m == 0) return AOQ_OK;
  if (!x || !y || ((uintptr_t)x & 15))
    return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " linear: x NULL or not 16-byte aligned, or y NULL");
#ifdef AOQ_GPU_CUDA
  if (!aoq_gk_batch_invariant() && aoq_cublas_linear_wants(c->blas, w, m)) /* large m: cuBLAS */
    return aoq_cublas_linear(c->blas, w, x, y, m, ws, strm(c, s));
#endif
  if (!ws && aoq_gk_linear_workspace(w, m) > 0)
    return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " linear: format %d needs a workspace of %zu bytes",
                   (int)w->kind, aoq_gk_linear_workspace(w, m));
  KL(aoq_gk_linear(w, x, y, m, ws, c->num_sms, strm(c, s)), "linear");
  return AOQ_OK;
}

#ifdef AOQ_GPU_CUDA /* a fused op: not offered on HIP (no mma GEMV there) */
/* A fused op's diagnosis switch: whether the environment variable name is "0" (read once into
 * *cache, -1 until then). */
static bool knob_off(int *cache, const char *name) {
  if (*cache < 0) *cache = getenv(name) && strcmp(getenv(name), "0") == 0;
  return *cache;
}

/* linear + silu_mul in the gate | up GEMV (linear.cu's aoq_gk_linear_silu); what it does not
 * take is AOQ_EUNSUPPORTED and aoq_dev_linear_silu_mul runs the two ops. AOQ_LINEAR_SILU=0: never
 * fused (diagnosis). */
static aoq_status gpu_linear_silu(void *ctx, const aoq_qweight *w, const void *x, void *y,
                                  int64_t m, aoq_dtype dt, void *ws, aoq_stream *s) {
  gpu_ctx *c = ctx;
  static int off = -1;
  if (knob_off(&off, "AOQ_LINEAR_SILU") || dt != AOQ_DTYPE_BF16 || !w || !x || !y ||
      ((uintptr_t)x & 15) || !aoq_gk_linear_silu_ok(w, m) ||
      (!ws && aoq_gk_linear_workspace(w, m) > 0))
    return aoq_err(AOQ_EUNSUPPORTED, AOQ_GPU_VENDOR " linear_silu: not fused here");
  KL(aoq_gk_linear_silu(w, x, y, m, ws, strm(c, s)), "linear_silu");
  return AOQ_OK;
}
#endif

/* Device quantization (quantize.cu, quantize_int.cu); serialized on the context's scratch. */
static aoq_status gpu_quantize(void *ctx, const void *w_src, aoq_qweight *w, aoq_stream *s) {
  gpu_ctx *c = ctx;
  if (!w_src || !w) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " quantize: NULL source or weight");
  if ((unsigned)w->kind >= AOQ_FMT_COUNT || !(aoq_gk_quantize_formats() >> w->kind & 1))
    return aoq_err(AOQ_EUNSUPPORTED, AOQ_GPU_VENDOR " quantize: format %d is quantized on the host",
                   (int)w->kind);
  AOQ_TRY(aoq_gpu_quantize_check(w, AOQ_GPU_VENDOR));
  AOQ_TRY(setdev(c));
  KL(aoq_gk_quantize(w_src, w, c->scratch, strm(c, s)), "quantize");
  return AOQ_OK;
}

static aoq_status rows_ok(const char *op, int64_t m, int64_t n) {
  if (m < 0 || n < 0 || m > INT32_MAX)
    return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " %s: %lld x %lld", op, (long long)m, (long long)n);
  return AOQ_OK;
}

static aoq_status gpu_rmsnorm(void *ctx, const void *x, const void *w, void *y, int64_t m,
                              int64_t n, float eps, aoq_dtype dt, aoq_stream *s) {
  gpu_ctx *c = ctx;
  AOQ_TRY(need_bf16(dt, "rmsnorm"));
  AOQ_TRY(rows_ok("rmsnorm", m, n));
  if (!isfinite(eps) || eps < 0)
    return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " rmsnorm: eps %g", (double)eps);
  if (m == 0 || n == 0) return AOQ_OK;
  if (!x || !w || !y) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " rmsnorm: NULL x, w or y");
  KL(aoq_gk_rmsnorm(x, w, y, m, n, eps, strm(c, s)), "rmsnorm");
  return AOQ_OK;
}

#ifdef AOQ_GPU_CUDA /* the fused ops: not yet offered on HIP (see the iface below) */
static aoq_status gpu_add_rmsnorm(void *ctx, void *x, const void *t, const void *w, void *y,
                                  int64_t m, int64_t n, float eps, aoq_dtype dt, aoq_stream *s) {
  gpu_ctx *c = ctx;
  AOQ_TRY(need_bf16(dt, "add_rmsnorm"));
  AOQ_TRY(rows_ok("add_rmsnorm", m, n));
  if (!isfinite(eps) || eps < 0)
    return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " add_rmsnorm: eps %g", (double)eps);
  if (m == 0 || n == 0) return AOQ_OK;
  if (!x || !w || !y) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " add_rmsnorm: NULL x, w or y");
  KL(aoq_gk_add_rmsnorm(x, t, w, y, m, n, eps, strm(c, s)), "add_rmsnorm");
  return AOQ_OK;
}
#endif

static aoq_status gpu_add(void *ctx, const void *a, const void *b, void *y, int64_t n, aoq_dtype dt,
                          aoq_stream *s) {
  gpu_ctx *c = ctx;
  AOQ_TRY(need_bf16(dt, "add"));
  AOQ_TRY(rows_ok("add", 1, n));
  if (n == 0) return AOQ_OK;
  if (!a || !b || !y) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " add: NULL a, b or y");
  KL(aoq_gk_add(a, b, y, n, strm(c, s)), "add");
  return AOQ_OK;
}

static aoq_status gpu_silu_mul(void *ctx, const void *gu, void *y, int64_t m, int64_t n,
                               aoq_dtype dt, aoq_stream *s) {
  gpu_ctx *c = ctx;
  AOQ_TRY(need_bf16(dt, "silu_mul"));
  AOQ_TRY(rows_ok("silu_mul", m, n));
  if (m == 0 || n == 0) return AOQ_OK;
  if (!gu || !y) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " silu_mul: NULL gu or y");
  KL(aoq_gk_silu_mul(gu, y, m, n, strm(c, s)), "silu_mul");
  return AOQ_OK;
}

static aoq_status gpu_embed(void *ctx, const void *table, int64_t n_rows, const int32_t *ids,
                            void *y, int64_t m, int64_t dim, aoq_dtype dt, aoq_stream *s) {
  gpu_ctx *c = ctx;
  AOQ_TRY(need_bf16(dt, "embed"));
  AOQ_TRY(rows_ok("embed", m, dim));
  if (n_rows < 0)
    return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " embed: %lld table rows", (long long)n_rows);
  if (m == 0 || dim == 0) return AOQ_OK;
  if (!table || !ids || !y)
    return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " embed: NULL table, ids or y");
  KL(aoq_gk_embed(table, n_rows, ids, y, m, dim, c->err_d, strm(c, s)), "embed");
  return AOQ_OK;
}

/* HF llama3 inv_freq in fp32 (the CPU backend's rope_inv_freq, step for step). */
static void rope_freqs(const aoq_rope *r, int head_dim, aoq_gk_rope_freqs *f) {
  int half = head_dim / 2;
  for (int d = 0; d < half; d++) {
    float ex = (float)(2 * d) / (float)head_dim;
    float p = (float)pow((double)r->theta, (double)ex);
    f->inv[d] = 1.0f / p;
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

static aoq_status gpu_rope(void *ctx, void *x, const int32_t *pos, int64_t m, int n_heads,
                           int head_dim, int64_t row_stride, const aoq_rope *r, aoq_dtype dt,
                           aoq_stream *s) {
  gpu_ctx *c = ctx;
  AOQ_TRY(need_bf16(dt, "rope"));
  AOQ_TRY(rows_ok("rope", m, row_stride));
  AOQ_TRY(aoq_rope_check(r, n_heads, head_dim, 1024, row_stride, AOQ_GPU_VENDOR));
  if (m == 0) return AOQ_OK;
  if (!x || !pos) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " rope: NULL x or pos");
  aoq_gk_rope_freqs f;
  rope_freqs(r, head_dim, &f);
  KL(aoq_gk_rope(x, pos, m, n_heads, head_dim, row_stride, &f, strm(c, s)), "rope");
  return AOQ_OK;
}

static aoq_status check_kv(const aoq_kv_cache *kv, const char *op) {
  AOQ_TRY(aoq_kv_cache_check(kv, AOQ_GPU_VENDOR, op));
  if (kv->dtype != AOQ_DTYPE_BF16)
    return aoq_err(AOQ_EUNSUPPORTED, AOQ_GPU_VENDOR " %s: kv cache dtype %d (BF16)", op,
                   (int)kv->dtype);
  return AOQ_OK;
}

static aoq_status gpu_kv_store(void *ctx, const aoq_kv_cache *kv, const void *k, const void *v,
                               const int32_t *slots, int64_t m, aoq_dtype dt, aoq_stream *s) {
  gpu_ctx *c = ctx;
  AOQ_TRY(need_bf16(dt, "kv_store"));
  AOQ_TRY(check_kv(kv, "kv_store"));
  AOQ_TRY(rows_ok("kv_store", m, 0));
  if (m == 0) return AOQ_OK;
  if (!k || !v || !slots)
    return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " kv_store: NULL k, v or slots");
  KL(aoq_gk_kv_store(kv, k, v, slots, m, c->err_d, strm(c, s)), "kv_store");
  return AOQ_OK;
}

#ifdef AOQ_GPU_CUDA /* the fused ops: not yet offered on HIP (see the iface below) */
static aoq_status gpu_qkv_rope_store(void *ctx, const aoq_kv_cache *kv, const void *qkv,
                                     void *q_out, const int32_t *pos, const int32_t *slots,
                                     int64_t m, int n_heads, const aoq_rope *r, aoq_dtype dt,
                                     aoq_stream *s) {
  gpu_ctx *c = ctx;
  AOQ_TRY(need_bf16(dt, "qkv_rope_store"));
  AOQ_TRY(check_kv(kv, "qkv_rope_store"));
  AOQ_TRY(rows_ok("qkv_rope_store", m, 0));
  int hd = kv->head_dim;
  if (n_heads < 1 || n_heads % kv->n_kv_heads)
    return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " qkv_rope_store: %d heads over %d kv heads", n_heads,
                   kv->n_kv_heads);
  AOQ_TRY(aoq_rope_check(r, n_heads + kv->n_kv_heads, hd, 1024,
                         (int64_t)(n_heads + 2 * kv->n_kv_heads) * hd, AOQ_GPU_VENDOR));
  if (m == 0) return AOQ_OK;
  if (!qkv || !q_out || !pos || !slots)
    return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " qkv_rope_store: NULL qkv, q_out, pos or slots");
  aoq_gk_rope_freqs f;
  rope_freqs(r, hd, &f);
  KL(aoq_gk_qkv_rope_store(kv, qkv, q_out, pos, slots, m, n_heads, &f, c->err_d, strm(c, s)),
     "qkv_rope_store");
  return AOQ_OK;
}
#endif

static size_t gpu_attention_workspace(void *ctx, const aoq_kv_cache *kv, int64_t m, int n_heads,
                                      int max_pos) {
  gpu_ctx *c = ctx;
  return aoq_gk_attention_workspace(kv, m, n_heads, max_pos, c->num_sms);
}

/* attention's argument checks (op: its name in errors) */
static aoq_status attention_args_ok(gpu_ctx *c, const aoq_kv_cache *kv, const aoq_attn_batch *b,
                                    const void *q, void *out, int64_t m, int n_heads, float scale,
                                    aoq_dtype dt, void *ws, const char *op) {
  AOQ_TRY(need_bf16(dt, op));
  AOQ_TRY(check_kv(kv, op));
  AOQ_TRY(rows_ok(op, m, 0));
  if (kv->head_dim > 256)
    return aoq_err(AOQ_EUNSUPPORTED, AOQ_GPU_VENDOR " %s: head_dim %d > 256", op, kv->head_dim);
  if (n_heads <= 0 || n_heads % kv->n_kv_heads)
    return aoq_err(AOQ_EINVAL,
                   AOQ_GPU_VENDOR " %s: %d query heads is not a multiple of %d kv heads", op,
                   n_heads, kv->n_kv_heads);
  if (!isfinite(scale))
    return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " %s: scale %g", op, (double)scale);
  if (m == 0) return AOQ_OK;
  if (!b || !q || !out) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " %s: NULL batch, q or out", op);
  if (!b->row_seq || !b->row_pos || !b->block_tables || b->n_seqs <= 0 || b->max_blocks <= 0 ||
      b->max_pos < 0)
    return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " %s: batch with NULL arrays or %d seqs x %d blocks",
                   op, b->n_seqs, b->max_blocks);
  if (!ws && aoq_gk_attention_workspace(kv, m, n_heads, b->max_pos, c->num_sms) > 0)
    return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " %s: NULL workspace (attention_workspace is %zu)",
                   op, aoq_gk_attention_workspace(kv, m, n_heads, b->max_pos, c->num_sms));
  return AOQ_OK;
}

static aoq_status gpu_attention(void *ctx, const aoq_kv_cache *kv, const aoq_attn_batch *b,
                                const void *q, void *out, int64_t m, int n_heads, float scale,
                                aoq_dtype dt, void *ws, aoq_stream *s) {
  gpu_ctx *c = ctx;
  AOQ_TRY(attention_args_ok(c, kv, b, q, out, m, n_heads, scale, dt, ws, "attention"));
  if (m == 0) return AOQ_OK;
  KL(aoq_gk_attention(kv, b, q, out, m, n_heads, scale, ws, c->num_sms, c->err_d, strm(c, s)),
     "attention");
  return AOQ_OK;
}

#ifdef AOQ_GPU_CUDA
static aoq_status gpu_qkv_attention(void *ctx, const aoq_kv_cache *kv, const aoq_attn_batch *b,
                                    const void *qkv, const int32_t *slots, void *out, int64_t m,
                                    int n_heads, const aoq_rope *r, float scale, aoq_dtype dt,
                                    void *ws, aoq_stream *s) {
  gpu_ctx *c = ctx;
  static int off = -1; /* AOQ_QKV_ATTN=0: refused, the model runs qkv_rope_store + attention */
  if (knob_off(&off, "AOQ_QKV_ATTN"))
    return aoq_err(AOQ_EUNSUPPORTED, AOQ_GPU_VENDOR " qkv_attention: off (AOQ_QKV_ATTN=0)");
  AOQ_TRY(attention_args_ok(c, kv, b, qkv, out, m, n_heads, scale, dt, ws, "qkv_attention"));
  AOQ_TRY(aoq_rope_check(r, n_heads + kv->n_kv_heads, kv->head_dim, 1024,
                         (int64_t)(n_heads + 2 * kv->n_kv_heads) * kv->head_dim, AOQ_GPU_VENDOR));
  if (m == 0) return AOQ_OK;
  if (!slots) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " qkv_attention: NULL slots");
  if (m != b->n_seqs)
    return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " qkv_attention: %lld rows over %d sequences",
                   (long long)m, b->n_seqs);
  aoq_gk_rope_freqs f;
  rope_freqs(r, kv->head_dim, &f);
  KL(aoq_gk_attention_qkv(kv, b, qkv, slots, out, m, n_heads, &f, scale, ws, c->num_sms, c->err_d,
                          strm(c, s)),
     "qkv_attention");
  return AOQ_OK;
}
#endif

static aoq_status logits_ok(const char *op, const void *lg, const int32_t *out, int64_t m,
                            int64_t vocab) {
  if (m < 0 || vocab <= 0 || vocab > INT32_MAX || m > INT32_MAX)
    return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " %s: %lld rows of vocab %lld", op, (long long)m,
                   (long long)vocab);
  if (m > 0 && (!lg || !out))
    return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " %s: NULL logits or out", op);
  return AOQ_OK;
}

static aoq_status gpu_argmax(void *ctx, const void *logits, int32_t *out, int64_t m, int64_t vocab,
                             aoq_dtype dt, aoq_stream *s) {
  gpu_ctx *c = ctx;
  AOQ_TRY(need_bf16(dt, "argmax"));
  AOQ_TRY(logits_ok("argmax", logits, out, m, vocab));
  if (m == 0) return AOQ_OK;
  KL(aoq_gk_argmax(logits, out, m, vocab, strm(c, s)), "argmax");
  return AOQ_OK;
}

static aoq_status gpu_sample(void *ctx, const void *logits, int32_t *out, int64_t m, int64_t vocab,
                             const aoq_sample_params *p, aoq_dtype dt, aoq_stream *s) {
  gpu_ctx *c = ctx;
  AOQ_TRY(need_bf16(dt, "sample"));
  AOQ_TRY(logits_ok("sample", logits, out, m, vocab));
  if (m == 0) return AOQ_OK;
  if (!p) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " sample: NULL parameters");
  for (int64_t i = 0; i < m; i++)
    if (isnan(p[i].temperature) || isnan(p[i].top_p) || p[i].top_p < 0 || p[i].top_k < 0)
      return aoq_err(AOQ_EINVAL,
                     AOQ_GPU_VENDOR " sample: row %lld: temperature %g, top_p %g, top_k %d",
                     (long long)i, (double)p[i].temperature, (double)p[i].top_p, p[i].top_k);
  KL(aoq_gk_sample(logits, out, m, vocab, p, strm(c, s)), "sample");
  return AOQ_OK;
}

static aoq_status gpu_convert(void *ctx, const void *src, aoq_dtype sdt, void *dst, aoq_dtype ddt,
                              int64_t n, aoq_stream *s) {
  gpu_ctx *c = ctx;
  if ((sdt != AOQ_DTYPE_BF16 && sdt != AOQ_DTYPE_F32) ||
      (ddt != AOQ_DTYPE_BF16 && ddt != AOQ_DTYPE_F32))
    return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " convert: dtypes %d -> %d (BF16 or F32)", (int)sdt,
                   (int)ddt);
  AOQ_TRY(rows_ok("convert", 1, n));
  if (n == 0) return AOQ_OK;
  if (!src || !dst) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " convert: NULL src or dst");
  if (sdt == ddt) {
    GT(cudaMemcpyAsync(dst, src, (size_t)n * (sdt == AOQ_DTYPE_F32 ? 4 : 2),
                       cudaMemcpyDeviceToDevice, strm(c, s)),
       "convert");
    return AOQ_OK;
  }
  KL(aoq_gk_convert(src, dst, n, ddt == AOQ_DTYPE_F32, strm(c, s)), "convert");
  return AOQ_OK;
}

static const struct aoq_device_iface gpu_iface = {
    .api_version = AOQ_DEVICE_API_VERSION,
    .name = AOQ_GPU_VENDOR,
    .destroy = gpu_destroy,
    .info = gpu_info,
    .alloc = gpu_alloc,
    .free = gpu_free,
    .copy_h2d = gpu_h2d,
    .copy_d2h = gpu_d2h,
    .copy_d2d = gpu_d2d,
    .memset = gpu_memset,
    .host_register = gpu_host_register,
    .host_unregister = gpu_host_unregister,
    .ipc_export = gpu_ipc_export,
    .ipc_import = gpu_ipc_import,
    .ipc_close = gpu_ipc_close,
#ifdef AOQ_GPU_CUDA
    .mem_range = gpu_mem_range,
#endif
    .stream_create = gpu_stream_create,
    .stream_destroy = gpu_stream_destroy,
    .stream_sync = gpu_stream_sync,
    .event_create = gpu_event_create,
    .event_destroy = gpu_event_destroy,
    .event_record = gpu_event_record,
    .event_wait = gpu_event_wait,
    .event_sync = gpu_event_sync,
    .event_elapsed_ms = gpu_event_elapsed,
    .graph_begin = gpu_graph_begin,
    .graph_end = gpu_graph_end,
    .graph_launch = gpu_graph_launch,
    .graph_destroy = gpu_graph_destroy,
    .linear_workspace = gpu_linear_workspace,
    .linear = gpu_linear,
    .quantize = gpu_quantize,
    .rmsnorm = gpu_rmsnorm,
    .add = gpu_add,
    .silu_mul = gpu_silu_mul,
    .embed = gpu_embed,
    .rope = gpu_rope,
    .kv_store = gpu_kv_store,
    .attention_workspace = gpu_attention_workspace,
    .attention = gpu_attention,
    .argmax = gpu_argmax,
    .sample = gpu_sample,
    .convert = gpu_convert,
#ifdef AOQ_GPU_CUDA /* compiled for HIP too, not yet offered there (docs/backends.md) */
    .add_rmsnorm = gpu_add_rmsnorm,
    .qkv_rope_store = gpu_qkv_rope_store,
    .linear_silu = gpu_linear_silu,
    .qkv_attention = gpu_qkv_attention,
#endif
};

aoq_status AOQ_GPU_CREATE(int index, aoq_device **out) {
  if (!out) return aoq_err(AOQ_EINVAL, AOQ_GPU_VENDOR " device create: NULL output");
  *out = NULL;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return aoq_err(AOQ_ENODEV, AOQ_GPU_VENDOR ":%d: no usable " AOQ_GPU_NO_DEVICE ": %s (%d)",
                   index, cudaGetErrorString(e), (int)e);
  }
  if (index < 0 || index >= count)
    return aoq_err(AOQ_ENODEV, AOQ_GPU_VENDOR ":%d: no such device (%d devices)", index, count);
  gpu_ctx *c = calloc(1, sizeof *c);
  if (!c) return aoq_err(AOQ_ENOMEM, AOQ_GPU_VENDOR " context");
  c->index = index;
  aoq_status st = AOQ_OK;
  AOQ_GPU_PROP prop;
  if ((e = cudaSetDevice(index)) != cudaSuccess ||
      (e = cudaGetDeviceProperties(&prop, index)) != cudaSuccess ||
      (e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess ||
      (e = cudaHostAlloc((void **)&c->err_h, sizeof(int), cudaHostAllocMapped)) != cudaSuccess ||
      (e = cudaHostGetDevicePointer((void **)&c->err_d, (void *)c->err_h, 0)) != cudaSuccess ||
      (e = cudaMalloc(&c->scratch, 256)) != cudaSuccess) {
    st = aoq_err(AOQ_ENODEV, AOQ_GPU_VENDOR ":%d: device setup failed: %s (%d)", index,
                 cudaGetErrorString(e), (int)e);
    cudaGetLastError();
    gpu_destroy(c);
    return st;
  }
  *c->err_h = 0;
  c->num_sms = prop.multiProcessorCount;
  snprintf(c->name, sizeof c->name, "%.*s", (int)sizeof c->name - 1, prop.name);
#ifdef AOQ_GPU_CUDA
  int hp = 0;
  c->host_mapped = cudaDeviceGetAttribute(&hp, cudaDevAttrCanUseHostPointerForRegisteredMem,
                                          index) == cudaSuccess &&
                   hp == 1 && prop.unifiedAddressing;
  cudaGetLastError();
#else
  c->warp = prop.warpSize;
  snprintf(c->arch, sizeof c->arch, "%.*s", (int)sizeof c->arch - 1, prop.gcnArchName);
#endif
  const char *inv = getenv("AOQ_BATCH_INVARIANT");
  if (inv && *inv && strcmp(inv, "0") != 0) {
    aoq_gk_set_batch_invariant(1);
    AOQ_INFO(AOQ_GPU_VENDOR " batch-invariant kernels|device=%d", index);
  }
#ifdef AOQ_GPU_CUDA
  /* programmatic dependent launch: on unless AOQ_PDL=0, where the kernels run sm_90+ code */
  const char *pdl = getenv("AOQ_PDL");
  int pdl_on = aoq_gk_set_pdl(!(pdl && strcmp(pdl, "0") == 0));
  AOQ_INFO("cuda programmatic dependent launch|device=%d on=%d", index, pdl_on);
  if (aoq_cublas_open(&c->blas) == AOQ_OK)
    AOQ_INFO("cuda linear engine|device=%d engine=\"%s\"", index, aoq_cublas_describe(c->blas));
  else
    AOQ_INFO("cuda linear engine|device=%d engine=\"own kernels\" why=\"%s\"", index,
             aoq_last_error());
#endif
  char name[32];
  snprintf(name, sizeof name, AOQ_GPU_VENDOR ":%d", index);
  st = aoq_device_wrap(&gpu_iface, c, name, out);
  if (st != AOQ_OK) gpu_destroy(c);
  return st;
}

#endif
