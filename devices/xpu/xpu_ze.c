/*
 * xpu_ze.c — the Intel XPU backend on Level Zero: driver and device discovery, USM device
 * allocations, one immediate command list (+ a queue for graphs) per stream, timestamp events,
 * IPC handles, the kernels/cl SPIR-V modules built at device creation, and the kernel launches
 * of xpu_ops.c.
 *
 * Ordering: Level Zero does not promise that the commands of one list run in order, so every
 * append is followed by a barrier; a stream therefore behaves like an in-order CUDA stream.
 * Host <-> device copies are synchronous (the host side may be pageable memory the caller frees
 * on return). Graphs are regular command lists recorded between graph_begin and graph_end and
 * executed on the stream's queue; graph_launch waits for the stream first and for the graph
 * before returning (documented in docs/backends.md).
 *
 * IPC: zeMemGetIpcHandle's 64 bytes fill aoq_ipc_handle exactly. On Linux the handle carries a
 * dma-buf file descriptor, which the importing process can only use if the driver supports
 * opening it across processes (pidfd_getfd); docs/backends.md records this.
 */
#include <level_zero/ze_api.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/log.h"
#include "devices/xpu/xpu_ops.h"
#include "kernels/cl/cl_kernels.h"

#define ZE_BUILD_FLAGS "-cl-fp32-correctly-rounded-divide-sqrt"
#define MAX_MODULES 16

typedef struct aoq_ze {
  aoq_xk_ops ops; /* first: the op functions take this context */
  ze_driver_handle_t drv;
  ze_device_handle_t dev;
  ze_context_handle_t zc;
  uint32_t ordinal;                    /* compute queue group */
  ze_module_handle_t mod[MAX_MODULES]; /* NULL: an optional module that did not build */
  const char *mod_name[MAX_MODULES];
  int n_mod;
  ze_kernel_handle_t k[AOQ_XK_COUNT];
  pthread_mutex_t launch_lock; /* kernel arguments are per kernel object */
  aoq_stream *def;             /* default stream */
  ze_device_properties_t props;
  uint64_t total_mem;
  int index;
} aoq_ze;

struct aoq_stream {
  ze_command_list_handle_t imm; /* immediate list: where ops go */
  ze_command_queue_handle_t q;  /* executes graphs */
  ze_command_list_handle_t rec; /* regular list being recorded (graph_begin), else NULL */
  ze_event_pool_handle_t pool;  /* one host-visible event for stream_sync */
  ze_event_handle_t done;
};

struct aoq_event {
  ze_event_pool_handle_t pool;
  ze_event_handle_t ev;
  uint64_t *ts; /* host USM: global timestamp written when the event was recorded */
  int recorded;
};

struct aoq_graph {
  ze_command_list_handle_t list;
};

static const char *ze_name(ze_result_t r) {
  switch (r) {
    case ZE_RESULT_NOT_READY:
      return "ZE_RESULT_NOT_READY";
    case ZE_RESULT_ERROR_DEVICE_LOST:
      return "ZE_RESULT_ERROR_DEVICE_LOST";
    case ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY:
      return "ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY";
    case ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY:
      return "ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY";
    case ZE_RESULT_ERROR_MODULE_BUILD_FAILURE:
      return "ZE_RESULT_ERROR_MODULE_BUILD_FAILURE";
    case ZE_RESULT_ERROR_UNINITIALIZED:
      return "ZE_RESULT_ERROR_UNINITIALIZED";
    case ZE_RESULT_ERROR_UNSUPPORTED_VERSION:
      return "ZE_RESULT_ERROR_UNSUPPORTED_VERSION";
    case ZE_RESULT_ERROR_UNSUPPORTED_FEATURE:
      return "ZE_RESULT_ERROR_UNSUPPORTED_FEATURE";
    case ZE_RESULT_ERROR_INVALID_ARGUMENT:
      return "ZE_RESULT_ERROR_INVALID_ARGUMENT";
    case ZE_RESULT_ERROR_INVALID_KERNEL_NAME:
      return "ZE_RESULT_ERROR_INVALID_KERNEL_NAME";
    case ZE_RESULT_ERROR_INVALID_KERNEL_ARGUMENT_SIZE:
      return "ZE_RESULT_ERROR_INVALID_KERNEL_ARGUMENT_SIZE";
    case ZE_RESULT_ERROR_INVALID_GROUP_SIZE_DIMENSION:
      return "ZE_RESULT_ERROR_INVALID_GROUP_SIZE_DIMENSION";
    case ZE_RESULT_ERROR_DEPENDENCY_UNAVAILABLE:
      return "ZE_RESULT_ERROR_DEPENDENCY_UNAVAILABLE";
    default:
      return "Level Zero error";
  }
}

static aoq_status ze_fail(ze_result_t r, const char *what) {
  return aoq_err(
      r == ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY || r == ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY
          ? AOQ_ENOMEM
          : AOQ_EDEVICE,
      "level zero %s: %s (0x%x)", what, ze_name(r), (unsigned)r);
}

#define ZE_TRY(call, what)                                       \
  do {                                                           \
    ze_result_t ze_r_ = (call);                                  \
    if (ze_r_ != ZE_RESULT_SUCCESS) return ze_fail(ze_r_, what); \
  } while (0)

static aoq_stream *sof(aoq_ze *z, aoq_stream *s) {
  return s ? s : z->def;
}
/* The list commands go to: the graph being recorded, else the immediate list. */
static ze_command_list_handle_t lof(aoq_ze *z, aoq_stream *s) {
  aoq_stream *t = sof(z, s);
  return t->rec ? t->rec : t->imm;
}

/* Waits until everything appended to the stream's immediate list has run. */
static aoq_status stream_wait(aoq_ze *z, aoq_stream *s) {
  aoq_stream *t = sof(z, s);
  ZE_TRY(zeEventHostReset(t->done), "zeEventHostReset");
  ZE_TRY(zeCommandListAppendBarrier(t->imm, t->done, 0, NULL), "zeCommandListAppendBarrier");
  ZE_TRY(zeEventHostSynchronize(t->done, UINT64_MAX), "zeEventHostSynchronize");
  return AOQ_OK;
}

/* ---- memory ---- */

static aoq_status ze_alloc(void *ctx, size_t bytes, void **ptr) {
  aoq_ze *z = ctx;
  if (!ptr) return aoq_err(AOQ_EINVAL, "xpu alloc: NULL out pointer");
  if (aoq_fault_hit()) return aoq_err(AOQ_ENOMEM, "xpu alloc: %zu bytes (injected)", bytes);
  ze_device_mem_alloc_desc_t d = {ZE_STRUCTURE_TYPE_DEVICE_MEM_ALLOC_DESC, NULL, 0, 0};
  ZE_TRY(zeMemAllocDevice(z->zc, &d, bytes ? bytes : 256, 256, z->dev, ptr), "zeMemAllocDevice");
  return AOQ_OK;
}

static void ze_free_mem(void *ctx, void *ptr) {
  aoq_ze *z = ctx;
  if (!ptr) return;
  stream_wait(z, NULL); /* the default stream may still use it */
  zeMemFree(z->zc, ptr);
}

static aoq_status append_copy(aoq_ze *z, void *dst, const void *src, size_t n, aoq_stream *s) {
  ze_command_list_handle_t l = lof(z, s);
  ZE_TRY(zeCommandListAppendMemoryCopy(l, dst, src, n, NULL, 0, NULL), "memory copy");
  ZE_TRY(zeCommandListAppendBarrier(l, NULL, 0, NULL), "barrier");
  return AOQ_OK;
}

static aoq_status ze_copy_h2d(void *ctx, void *dst, const void *src, size_t n, aoq_stream *s) {
  aoq_ze *z = ctx;
  if (n == 0) return AOQ_OK;
  if (!dst || !src) return aoq_err(AOQ_EINVAL, "xpu copy_h2d: NULL pointer");
  if (sof(z, s)->rec) return aoq_err(AOQ_EINVAL, "xpu copy_h2d: not allowed while capturing");
  AOQ_TRY(append_copy(z, dst, src, n, s));
  return stream_wait(z, s);
}

static aoq_status ze_copy_d2h(void *ctx, void *dst, const void *src, size_t n, aoq_stream *s) {
  aoq_ze *z = ctx;
  if (n == 0) return AOQ_OK;
  if (!dst || !src) return aoq_err(AOQ_EINVAL, "xpu copy_d2h: NULL pointer");
  if (sof(z, s)->rec) return aoq_err(AOQ_EINVAL, "xpu copy_d2h: not allowed while capturing");
  AOQ_TRY(append_copy(z, dst, src, n, s));
  return stream_wait(z, s);
}

static aoq_status ze_copy_d2d(void *ctx, void *dst, const void *src, size_t n, aoq_stream *s) {
  if (n == 0) return AOQ_OK;
  if (!dst || !src) return aoq_err(AOQ_EINVAL, "xpu copy_d2d: NULL pointer");
  return append_copy(ctx, dst, src, n, s);
}

static aoq_status ze_memset(void *ctx, void *dst, int value, size_t n, aoq_stream *s) {
  aoq_ze *z = ctx;
  if (n == 0) return AOQ_OK;
  if (!dst) return aoq_err(AOQ_EINVAL, "xpu memset: NULL pointer");
  unsigned char b = (unsigned char)value;
  ze_command_list_handle_t l = lof(z, s);
  ZE_TRY(zeCommandListAppendMemoryFill(l, dst, &b, 1, n, NULL, 0, NULL), "memory fill");
  ZE_TRY(zeCommandListAppendBarrier(l, NULL, 0, NULL), "barrier");
  return AOQ_OK;
}

static aoq_status ze_ipc_export(void *ctx, void *ptr, aoq_ipc_handle *out) {
  aoq_ze *z = ctx;
  if (!ptr || !out) return aoq_err(AOQ_EINVAL, "xpu ipc_export: NULL argument");
  ze_ipc_mem_handle_t h;
  _Static_assert(sizeof h.data == sizeof out->bytes, "IPC handle sizes");
  ZE_TRY(zeMemGetIpcHandle(z->zc, ptr, &h), "zeMemGetIpcHandle");
  memcpy(out->bytes, h.data, sizeof out->bytes);
  return AOQ_OK;
}

static aoq_status ze_ipc_import(void *ctx, const aoq_ipc_handle *h, void **ptr) {
  aoq_ze *z = ctx;
  if (!h || !ptr) return aoq_err(AOQ_EINVAL, "xpu ipc_import: NULL argument");
  ze_ipc_mem_handle_t zh;
  memcpy(zh.data, h->bytes, sizeof zh.data);
  ZE_TRY(zeMemOpenIpcHandle(z->zc, z->dev, zh, 0, ptr), "zeMemOpenIpcHandle");
  return AOQ_OK;
}

static aoq_status ze_ipc_close(void *ctx, void *ptr) {
  aoq_ze *z = ctx;
  if (!ptr) return aoq_err(AOQ_EINVAL, "xpu ipc_close: NULL pointer");
  ZE_TRY(zeMemCloseIpcHandle(z->zc, ptr), "zeMemCloseIpcHandle");
  return AOQ_OK;
}

/* ---- streams ---- */

static void stream_free(aoq_stream *s) {
  if (!s) return;
  if (s->rec) zeCommandListDestroy(s->rec);
  if (s->done) zeEventDestroy(s->done);
  if (s->pool) zeEventPoolDestroy(s->pool);
  if (s->imm) zeCommandListDestroy(s->imm);
  if (s->q) zeCommandQueueDestroy(s->q);
  free(s);
}

static aoq_status stream_new(aoq_ze *z, aoq_stream **out) {
  aoq_stream *s = calloc(1, sizeof *s);
  if (!s) return aoq_err(AOQ_ENOMEM, "xpu stream");
  ze_command_queue_desc_t qd = {ZE_STRUCTURE_TYPE_COMMAND_QUEUE_DESC,
                                NULL,
                                z->ordinal,
                                0,
                                0,
                                ZE_COMMAND_QUEUE_MODE_ASYNCHRONOUS,
                                ZE_COMMAND_QUEUE_PRIORITY_NORMAL};
  ze_event_pool_desc_t pd = {ZE_STRUCTURE_TYPE_EVENT_POOL_DESC, NULL,
                             ZE_EVENT_POOL_FLAG_HOST_VISIBLE, 1};
  ze_event_desc_t ed = {ZE_STRUCTURE_TYPE_EVENT_DESC, NULL, 0, ZE_EVENT_SCOPE_FLAG_HOST,
                        ZE_EVENT_SCOPE_FLAG_HOST};
  ze_result_t r = zeCommandListCreateImmediate(z->zc, z->dev, &qd, &s->imm);
  const char *what = "zeCommandListCreateImmediate";
  if (r == ZE_RESULT_SUCCESS)
    r = zeCommandQueueCreate(z->zc, z->dev, &qd, &s->q), what = "zeCommandQueueCreate";
  if (r == ZE_RESULT_SUCCESS)
    r = zeEventPoolCreate(z->zc, &pd, 1, &z->dev, &s->pool), what = "zeEventPoolCreate";
  if (r == ZE_RESULT_SUCCESS) r = zeEventCreate(s->pool, &ed, &s->done), what = "zeEventCreate";
  if (r != ZE_RESULT_SUCCESS) {
    stream_free(s);
    return ze_fail(r, what);
  }
  *out = s;
  return AOQ_OK;
}

static aoq_status ze_stream_create(void *ctx, aoq_stream **out) {
  if (!out) return aoq_err(AOQ_EINVAL, "xpu stream_create: NULL out");
  return stream_new(ctx, out);
}

static void ze_stream_destroy(void *ctx, aoq_stream *s) {
  if (!s) return;
  stream_wait(ctx, s);
  stream_free(s);
}

/* Waits for s, then reports (and clears) a data-dependent error the kernels flagged. */
static aoq_status ze_stream_sync(void *ctx, aoq_stream *s) {
  aoq_ze *z = ctx;
  if (sof(z, s)->rec) return aoq_err(AOQ_EINVAL, "xpu stream_sync: the stream is capturing");
  AOQ_TRY(stream_wait(z, s));
  int code = 0;
  AOQ_TRY(ze_copy_d2h(z, &code, z->ops.err, sizeof code, s));
  if (!code) return AOQ_OK;
  int zero = 0;
  AOQ_TRY(ze_copy_h2d(z, z->ops.err, &zero, sizeof zero, s));
  return aoq_xk_err_status(code, "xpu");
}

/* ---- events: a host-visible event plus a global timestamp written at record time ---- */

static void ze_event_destroy(void *ctx, aoq_event *e) {
  aoq_ze *z = ctx;
  if (!e) return;
  if (e->ev) zeEventDestroy(e->ev);
  if (e->pool) zeEventPoolDestroy(e->pool);
  if (e->ts) zeMemFree(z->zc, e->ts);
  free(e);
}

static aoq_status ze_event_create(void *ctx, aoq_event **out) {
  aoq_ze *z = ctx;
  if (!out) return aoq_err(AOQ_EINVAL, "xpu event_create: NULL out");
  aoq_event *e = calloc(1, sizeof *e);
  if (!e) return aoq_err(AOQ_ENOMEM, "xpu event");
  ze_event_pool_desc_t pd = {ZE_STRUCTURE_TYPE_EVENT_POOL_DESC, NULL,
                             ZE_EVENT_POOL_FLAG_HOST_VISIBLE, 1};
  ze_event_desc_t ed = {ZE_STRUCTURE_TYPE_EVENT_DESC, NULL, 0, ZE_EVENT_SCOPE_FLAG_HOST,
                        ZE_EVENT_SCOPE_FLAG_HOST};
  ze_host_mem_alloc_desc_t hd = {ZE_STRUCTURE_TYPE_HOST_MEM_ALLOC_DESC, NULL, 0};
  ze_result_t r = zeEventPoolCreate(z->zc, &pd, 1, &z->dev, &e->pool);
  if (r == ZE_RESULT_SUCCESS) r = zeEventCreate(e->pool, &ed, &e->ev);
  if (r == ZE_RESULT_SUCCESS) r = zeMemAllocHost(z->zc, &hd, sizeof(uint64_t), 8, (void **)&e->ts);
  if (r != ZE_RESULT_SUCCESS) {
    ze_event_destroy(z, e);
    return ze_fail(r, "event_create");
  }
  *out = e;
  return AOQ_OK;
}

static aoq_status ze_event_record(void *ctx, aoq_event *e, aoq_stream *s) {
  aoq_ze *z = ctx;
  if (!e) return aoq_err(AOQ_EINVAL, "xpu event_record: NULL event");
  ze_command_list_handle_t l = lof(z, s);
  ZE_TRY(zeEventHostReset(e->ev), "zeEventHostReset");
  ZE_TRY(zeCommandListAppendWriteGlobalTimestamp(l, e->ts, e->ev, 0, NULL), "timestamp");
  e->recorded = 1;
  return AOQ_OK;
}

static aoq_status ze_event_wait(void *ctx, aoq_event *e, aoq_stream *s) {
  aoq_ze *z = ctx;
  if (!e) return aoq_err(AOQ_EINVAL, "xpu event_wait: NULL event");
  if (!e->recorded) return AOQ_OK;
  ZE_TRY(zeCommandListAppendWaitOnEvents(lof(z, s), 1, &e->ev), "zeCommandListAppendWaitOnEvents");
  return AOQ_OK;
}

static aoq_status ze_event_sync(void *ctx, aoq_event *e) {
  (void)ctx;
  if (!e) return aoq_err(AOQ_EINVAL, "xpu event_sync: NULL event");
  if (!e->recorded) return AOQ_OK;
  ZE_TRY(zeEventHostSynchronize(e->ev, UINT64_MAX), "zeEventHostSynchronize");
  return AOQ_OK;
}

static aoq_status ze_event_elapsed_ms(void *ctx, aoq_event *a, aoq_event *b, float *ms) {
  aoq_ze *z = ctx;
  if (!a || !b || !ms || !a->recorded || !b->recorded)
    return aoq_err(AOQ_EINVAL, "xpu event_elapsed_ms: events must be recorded");
  AOQ_TRY(ze_event_sync(z, a));
  AOQ_TRY(ze_event_sync(z, b));
  uint32_t bits = z->props.timestampValidBits ? z->props.timestampValidBits : 64;
  uint64_t mask = bits >= 64 ? UINT64_MAX : ((1ull << bits) - 1);
  uint64_t ticks = (*b->ts - *a->ts) & mask;
  /* API >= 1.2: timerResolution is in cycles per second. */
  double hz = z->props.timerResolution ? (double)z->props.timerResolution : 1e9;
  *ms = (float)((double)ticks / hz * 1e3);
  return AOQ_OK;
}

/* ---- graphs: regular command lists ---- */

static aoq_status ze_graph_begin(void *ctx, aoq_stream *s) {
  aoq_ze *z = ctx;
  aoq_stream *t = sof(z, s);
  if (t->rec) return aoq_err(AOQ_EINVAL, "xpu graph_begin: the stream is already capturing");
  ze_command_list_desc_t ld = {ZE_STRUCTURE_TYPE_COMMAND_LIST_DESC, NULL, z->ordinal, 0};
  ZE_TRY(zeCommandListCreate(z->zc, z->dev, &ld, &t->rec), "zeCommandListCreate");
  return AOQ_OK;
}

static aoq_status ze_graph_end(void *ctx, aoq_stream *s, aoq_graph **out) {
  aoq_ze *z = ctx;
  aoq_stream *t = sof(z, s);
  if (!t->rec) return aoq_err(AOQ_EINVAL, "xpu graph_end: the stream is not capturing");
  ze_command_list_handle_t l = t->rec;
  t->rec = NULL;
  aoq_graph *g = out ? calloc(1, sizeof *g) : NULL;
  ze_result_t r = zeCommandListClose(l);
  if (!g || r != ZE_RESULT_SUCCESS) {
    free(g);
    zeCommandListDestroy(l);
    return out ? (r != ZE_RESULT_SUCCESS ? ze_fail(r, "zeCommandListClose")
                                         : aoq_err(AOQ_ENOMEM, "xpu graph"))
               : aoq_err(AOQ_EINVAL, "xpu graph_end: NULL out");
  }
  g->list = l;
  *out = g;
  return AOQ_OK;
}

static aoq_status ze_graph_launch(void *ctx, aoq_graph *g, aoq_stream *s) {
  aoq_ze *z = ctx;
  aoq_stream *t = sof(z, s);
  if (!g) return aoq_err(AOQ_EINVAL, "xpu graph_launch: NULL graph");
  if (t->rec) return aoq_err(AOQ_EINVAL, "xpu graph_launch: the stream is capturing");
  AOQ_TRY(stream_wait(z, s));
  ZE_TRY(zeCommandQueueExecuteCommandLists(t->q, 1, &g->list, NULL),
         "zeCommandQueueExecuteCommandLists");
  ZE_TRY(zeCommandQueueSynchronize(t->q, UINT64_MAX), "zeCommandQueueSynchronize");
  return AOQ_OK;
}

static void ze_graph_destroy(void *ctx, aoq_graph *g) {
  (void)ctx;
  if (!g) return;
  zeCommandListDestroy(g->list);
  free(g);
}

/* ---- the runtime table of xpu_ops.c ---- */

static aoq_status ze_launch(void *ctx, aoq_xk_id k, const aoq_xk_arg *args, int nargs,
                            const size_t groups[3], const size_t local[3], aoq_stream *s) {
  aoq_ze *z = ctx;
  for (int i = 0; i < 3; i++)
    if (groups[i] == 0)
      return AOQ_OK;
    else if (groups[i] > UINT32_MAX)
      return aoq_err(AOQ_EINVAL, "xpu %s: %zu work-groups in dimension %d", aoq_xk_names[k].entry,
                     groups[i], i);
  ze_kernel_handle_t kern = z->k[k];
  if (!kern) return aoq_err(AOQ_EUNSUPPORTED, "xpu: kernel %s is not built", aoq_xk_names[k].entry);
  ze_command_list_handle_t l = lof(z, s);
  ze_group_count_t gc = {(uint32_t)groups[0], (uint32_t)groups[1], (uint32_t)groups[2]};
  pthread_mutex_lock(&z->launch_lock);
  ze_result_t r =
      zeKernelSetGroupSize(kern, (uint32_t)local[0], (uint32_t)local[1], (uint32_t)local[2]);
  uint32_t idx = 0;
  for (int i = 0; i < nargs && r == ZE_RESULT_SUCCESS; i++) {
    const aoq_xk_arg *a = &args[i];
    if (a->kind == AOQ_XA_PTR) {
      const void *p = a->p;
      uint64_t off = 0;
      r = zeKernelSetArgumentValue(kern, idx++, sizeof p, &p);
      if (r == ZE_RESULT_SUCCESS) r = zeKernelSetArgumentValue(kern, idx++, sizeof off, &off);
    } else if (a->kind == AOQ_XA_I32) {
      int32_t v = (int32_t)a->i;
      r = zeKernelSetArgumentValue(kern, idx++, sizeof v, &v);
    } else if (a->kind == AOQ_XA_I64) {
      int64_t v = a->i;
      r = zeKernelSetArgumentValue(kern, idx++, sizeof v, &v);
    } else {
      float v = a->f;
      r = zeKernelSetArgumentValue(kern, idx++, sizeof v, &v);
    }
  }
  if (r == ZE_RESULT_SUCCESS) r = zeCommandListAppendLaunchKernel(l, kern, &gc, NULL, 0, NULL);
  if (r == ZE_RESULT_SUCCESS) r = zeCommandListAppendBarrier(l, NULL, 0, NULL);
  pthread_mutex_unlock(&z->launch_lock);
  if (r != ZE_RESULT_SUCCESS) return ze_fail(r, aoq_xk_names[k].entry);
  return AOQ_OK;
}

static aoq_status ze_upload(void *ctx, void *dst, const void *src, size_t n, aoq_stream *s) {
  return ze_copy_h2d(ctx, dst, src, n, s); /* host->device copies are synchronous */
}

static const aoq_xk_rt ze_rt = {ze_launch, ze_upload, ze_copy_d2d};

/* ---- device ---- */

static aoq_status ze_info(void *ctx, aoq_device_info *out) {
  aoq_ze *z = ctx;
  memset(out, 0, sizeof *out);
  out->kind = AOQ_DEVICE_XPU;
  out->index = z->index;
  snprintf(out->name, sizeof out->name, "%.*s", (int)sizeof out->name - 1, z->props.name);
  out->total_memory = z->total_mem;
  out->free_memory = z->total_mem; /* core Level Zero has no free-memory query (zes has) */
  out->caps = AOQ_CAP_GRAPHS | AOQ_CAP_IPC | AOQ_CAP_QUANTIZE;
  out->linear_formats = aoq_xk_linear_formats();
  out->quantize_formats = aoq_xk_quantize_formats();
  out->threads =
      (int)(z->props.numSlices * z->props.numSubslicesPerSlice * z->props.numEUsPerSubslice);
  return AOQ_OK;
}

static void ze_destroy(void *ctx) {
  aoq_ze *z = ctx;
  if (!z) return;
  if (z->def) {
    stream_wait(z, NULL);
    stream_free(z->def);
  }
  if (z->ops.err) zeMemFree(z->zc, z->ops.err);
  if (z->ops.rope_tab) zeMemFree(z->zc, z->ops.rope_tab);
  if (z->ops.sample_params) zeMemFree(z->zc, z->ops.sample_params);
  for (int i = 0; i < AOQ_XK_COUNT; i++)
    if (z->k[i]) zeKernelDestroy(z->k[i]);
  for (int i = 0; i < z->n_mod; i++)
    if (z->mod[i]) zeModuleDestroy(z->mod[i]);
  if (z->zc) zeContextDestroy(z->zc);
  aoq_xk_ops_fini(&z->ops);
  pthread_mutex_destroy(&z->launch_lock);
  free(z);
}

static const struct aoq_device_iface ze_iface = {
    .api_version = AOQ_DEVICE_API_VERSION,
    .name = "xpu",
    .destroy = ze_destroy,
    .info = ze_info,
    .alloc = ze_alloc,
    .free = ze_free_mem,
    .copy_h2d = ze_copy_h2d,
    .copy_d2h = ze_copy_d2h,
    .copy_d2d = ze_copy_d2d,
    .memset = ze_memset,
    .ipc_export = ze_ipc_export,
    .ipc_import = ze_ipc_import,
    .ipc_close = ze_ipc_close,
    .stream_create = ze_stream_create,
    .stream_destroy = ze_stream_destroy,
    .stream_sync = ze_stream_sync,
    .event_create = ze_event_create,
    .event_destroy = ze_event_destroy,
    .event_record = ze_event_record,
    .event_wait = ze_event_wait,
    .event_sync = ze_event_sync,
    .event_elapsed_ms = ze_event_elapsed_ms,
    .graph_begin = ze_graph_begin,
    .graph_end = ze_graph_end,
    .graph_launch = ze_graph_launch,
    .graph_destroy = ze_graph_destroy,
    .linear_workspace = aoq_xk_linear_workspace,
    .linear = aoq_xk_linear,
    .quantize = aoq_xk_quantize,
    .rmsnorm = aoq_xk_rmsnorm,
    .add = aoq_xk_add,
    .silu_mul = aoq_xk_silu_mul,
    .embed = aoq_xk_embed,
    .rope = aoq_xk_rope,
    .kv_store = aoq_xk_kv_store,
    .attention_workspace = aoq_xk_attention_workspace,
    .attention = aoq_xk_attention,
    .argmax = aoq_xk_argmax,
    .convert = aoq_xk_convert,
    .sample = aoq_xk_sample,
};

/* The index-th GPU over all Level Zero drivers. */
static aoq_status find_device(int index, ze_driver_handle_t *drv, ze_device_handle_t *dev) {
  ze_result_t r = zeInit(ZE_INIT_FLAG_GPU_ONLY);
  if (r != ZE_RESULT_SUCCESS)
    return aoq_err(AOQ_ENODEV,
                   "xpu:%d: zeInit failed with %s (0x%x): no Level Zero GPU driver is installed "
                   "(the loader libze_loader found no driver such as Intel's compute-runtime "
                   "libze_intel_gpu)",
                   index, ze_name(r), (unsigned)r);
  uint32_t nd = 0;
  r = zeDriverGet(&nd, NULL);
  if (r != ZE_RESULT_SUCCESS || nd == 0)
    return aoq_err(AOQ_ENODEV, "xpu:%d: no Level Zero driver (zeDriverGet: %s)", index,
                   r == ZE_RESULT_SUCCESS ? "0 drivers" : ze_name(r));
  ze_driver_handle_t drivers[8];
  if (nd > 8) nd = 8;
  ZE_TRY(zeDriverGet(&nd, drivers), "zeDriverGet");
  int seen = 0;
  for (uint32_t i = 0; i < nd; i++) {
    uint32_t n = 0;
    if (zeDeviceGet(drivers[i], &n, NULL) != ZE_RESULT_SUCCESS || n == 0) continue;
    ze_device_handle_t devs[16];
    if (n > 16) n = 16;
    if (zeDeviceGet(drivers[i], &n, devs) != ZE_RESULT_SUCCESS) continue;
    for (uint32_t j = 0; j < n; j++, seen++)
      if (seen == index) {
        *drv = drivers[i];
        *dev = devs[j];
        return AOQ_OK;
      }
  }
  return aoq_err(AOQ_ENODEV, "xpu:%d: no such device (%d Level Zero GPUs found)", index, seen);
}

static aoq_status build_modules(aoq_ze *z) {
  for (int i = 0; i < aoq_cl_spirv_count && i < MAX_MODULES; i++) {
    ze_module_desc_t md = {ZE_STRUCTURE_TYPE_MODULE_DESC,
                           NULL,
                           ZE_MODULE_FORMAT_IL_SPIRV,
                           aoq_cl_spirv[i].size,
                           aoq_cl_spirv[i].data,
                           ZE_BUILD_FLAGS,
                           NULL};
    ze_module_build_log_handle_t log = NULL;
    ze_result_t r = zeModuleCreate(z->zc, z->dev, &md, &z->mod[z->n_mod], &log);
    if (r != ZE_RESULT_SUCCESS && !strcmp(aoq_cl_spirv[i].name, "sample")) {
      /* the sampler needs fp64; without it every other op still works */
      AOQ_WARN("xpu: the sample module did not build (no fp64?); sample is unavailable");
      if (log) zeModuleBuildLogDestroy(log);
      z->mod[z->n_mod] = NULL;
      z->mod_name[z->n_mod++] = aoq_cl_spirv[i].name;
      continue;
    }
    if (r != ZE_RESULT_SUCCESS) {
      char text[2048] = "";
      size_t n = sizeof text;
      if (log && zeModuleBuildLogGetString(log, &n, text) != ZE_RESULT_SUCCESS) text[0] = 0;
      text[sizeof text - 1] = 0;
      if (log) zeModuleBuildLogDestroy(log);
      return aoq_err(AOQ_EDEVICE, "xpu: building SPIR-V module %s failed: %s\n%s",
                     aoq_cl_spirv[i].name, ze_name(r), text);
    }
    if (log) zeModuleBuildLogDestroy(log);
    z->mod_name[z->n_mod++] = aoq_cl_spirv[i].name;
  }
  for (int k = 0; k < AOQ_XK_COUNT; k++) {
    int mi = -1;
    for (int i = 0; i < z->n_mod; i++)
      if (!strcmp(z->mod_name[i], aoq_xk_names[k].module)) mi = i;
    if (mi < 0)
      return aoq_err(AOQ_EINTERNAL, "xpu: module %s of kernel %s is not embedded",
                     aoq_xk_names[k].module, aoq_xk_names[k].entry);
    if (!z->mod[mi]) continue; /* optional module that did not build */
    ze_kernel_desc_t kd = {ZE_STRUCTURE_TYPE_KERNEL_DESC, NULL, 0, aoq_xk_names[k].entry};
    ZE_TRY(zeKernelCreate(z->mod[mi], &kd, &z->k[k]), aoq_xk_names[k].entry);
  }
  return AOQ_OK;
}

static aoq_status open_device(aoq_ze *z) {
  ze_context_desc_t cd = {ZE_STRUCTURE_TYPE_CONTEXT_DESC, NULL, 0};
  ZE_TRY(zeContextCreate(z->drv, &cd, &z->zc), "zeContextCreate");
  z->props.stype = ZE_STRUCTURE_TYPE_DEVICE_PROPERTIES;
  ZE_TRY(zeDeviceGetProperties(z->dev, &z->props), "zeDeviceGetProperties");
  uint32_t nm = 0;
  ZE_TRY(zeDeviceGetMemoryProperties(z->dev, &nm, NULL), "zeDeviceGetMemoryProperties");
  ze_device_memory_properties_t mp[4];
  memset(mp, 0, sizeof mp);
  if (nm > 4) nm = 4;
  for (uint32_t i = 0; i < nm; i++) mp[i].stype = ZE_STRUCTURE_TYPE_DEVICE_MEMORY_PROPERTIES;
  ZE_TRY(zeDeviceGetMemoryProperties(z->dev, &nm, mp), "zeDeviceGetMemoryProperties");
  for (uint32_t i = 0; i < nm; i++) z->total_mem += mp[i].totalSize;
  uint32_t ng = 0;
  ZE_TRY(zeDeviceGetCommandQueueGroupProperties(z->dev, &ng, NULL), "queue groups");
  ze_command_queue_group_properties_t gp[8];
  memset(gp, 0, sizeof gp);
  if (ng > 8) ng = 8;
  for (uint32_t i = 0; i < ng; i++) gp[i].stype = ZE_STRUCTURE_TYPE_COMMAND_QUEUE_GROUP_PROPERTIES;
  ZE_TRY(zeDeviceGetCommandQueueGroupProperties(z->dev, &ng, gp), "queue groups");
  int found = 0;
  for (uint32_t i = 0; i < ng && !found; i++)
    if (gp[i].flags & ZE_COMMAND_QUEUE_GROUP_PROPERTY_FLAG_COMPUTE) z->ordinal = i, found = 1;
  if (!found)
    return aoq_err(AOQ_ENODEV, "xpu:%d: %s has no compute queue", z->index, z->props.name);
  AOQ_TRY(build_modules(z));
  AOQ_TRY(stream_new(z, &z->def));
  void *err = NULL, *tab = NULL;
  AOQ_TRY(ze_alloc(z, sizeof(int), &err));
  z->ops.err = err;
  AOQ_TRY(ze_alloc(z, aoq_xk_rope_tab_bytes(), &tab));
  z->ops.rope_tab = tab;
  void *sp = NULL;
  AOQ_TRY(ze_alloc(z, aoq_xk_sample_params_bytes(), &sp));
  z->ops.sample_params = sp;
  z->ops.has_sample = z->k[AOQ_XK_SAMPLE] != NULL;
  AOQ_TRY(ze_memset(z, err, 0, sizeof(int), NULL));
  return stream_wait(z, NULL);
}

aoq_status aoq_xpu_device_create(int index, aoq_device **out) {
  if (!out || index < 0) return aoq_err(AOQ_EINVAL, "aoq_xpu_device_create: bad arguments");
  ze_driver_handle_t drv = NULL;
  ze_device_handle_t dev = NULL;
  AOQ_TRY(find_device(index, &drv, &dev));
  aoq_ze *z = calloc(1, sizeof *z);
  if (!z) return aoq_err(AOQ_ENOMEM, "xpu device");
  if (pthread_mutex_init(&z->launch_lock, NULL)) {
    free(z);
    return aoq_err(AOQ_EINTERNAL, "xpu: pthread_mutex_init");
  }
  aoq_status st = aoq_xk_ops_init(&z->ops, &ze_rt, NULL, NULL);
  if (st != AOQ_OK) {
    pthread_mutex_destroy(&z->launch_lock);
    free(z);
    return st;
  }
  z->drv = drv, z->dev = dev, z->index = index;
  st = open_device(z);
  char nm[32];
  snprintf(nm, sizeof nm, "xpu:%d", index);
  if (st == AOQ_OK) st = aoq_device_wrap(&ze_iface, z, nm, out);
  if (st != AOQ_OK) {
    ze_destroy(z);
    return st;
  }
  AOQ_INFO("xpu device opened|index=%d name=\"%s\" memory=%llu", index, z->props.name,
           (unsigned long long)z->total_mem);
  return AOQ_OK;
}
