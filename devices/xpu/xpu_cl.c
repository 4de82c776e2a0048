/*
 * xpu_cl.c — the OpenCL runtime of the kernels/cl ops (xpu_cl.h): memory as USE_HOST_PTR buffers
 * found again by address, one in-order queue per stream, marker events, programs built from the
 * embedded sources (kernels/cl/cl_kernels.h).
 */
#define CL_TARGET_OPENCL_VERSION 300
#include "devices/xpu/xpu_cl.h"

#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "devices/xpu/xpu_ops.h"
#include "kernels/cl/cl_kernels.h"

/* LeakSanitizer hook for programs that link this runtime (tests, aoq-bench): PoCL and its LLVM
 * keep compiler caches for the life of the process and free none of them at exit. Only those
 * libraries' allocations are suppressed; aoq's own are still checked. Unused without LSan. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
  return "leak:libpocl\nleak:libOpenCL\nleak:libLLVM\nleak:libclang-cpp\nleak:libhwloc\n";
}

typedef struct cl_alloc {
  char *base;
  size_t size;
  cl_mem mem;
} cl_alloc;

typedef struct aoq_ocl {
  aoq_xk_ops ops; /* first: the op functions take this context */
  cl_context ctx;
  cl_device_id dev;
  cl_command_queue q; /* default stream */
  cl_program prog[16];
  int n_prog;
  unsigned unbuilt; /* bit per program that failed to build (only "sample" may) */
  cl_kernel k[AOQ_XK_COUNT];
  pthread_mutex_t lock; /* the allocation table and kernel arguments */
  cl_alloc *allocs;     /* sorted by base */
  int n_allocs, cap_allocs;
  int index;
  uint64_t total_mem;
  char name[128];
} aoq_ocl;

struct aoq_stream {
  cl_command_queue q;
};
struct aoq_event {
  cl_event e;
};

static const char *cl_errname(cl_int e) {
  switch (e) {
    case CL_DEVICE_NOT_FOUND:
      return "CL_DEVICE_NOT_FOUND";
    case CL_OUT_OF_RESOURCES:
      return "CL_OUT_OF_RESOURCES";
    case CL_OUT_OF_HOST_MEMORY:
      return "CL_OUT_OF_HOST_MEMORY";
    case CL_MEM_OBJECT_ALLOCATION_FAILURE:
      return "CL_MEM_OBJECT_ALLOCATION_FAILURE";
    case CL_BUILD_PROGRAM_FAILURE:
      return "CL_BUILD_PROGRAM_FAILURE";
    case CL_INVALID_VALUE:
      return "CL_INVALID_VALUE";
    case CL_INVALID_KERNEL_ARGS:
      return "CL_INVALID_KERNEL_ARGS";
    case CL_INVALID_ARG_SIZE:
      return "CL_INVALID_ARG_SIZE";
    case CL_INVALID_WORK_GROUP_SIZE:
      return "CL_INVALID_WORK_GROUP_SIZE";
    case CL_INVALID_WORK_ITEM_SIZE:
      return "CL_INVALID_WORK_ITEM_SIZE";
    case CL_INVALID_GLOBAL_WORK_SIZE:
      return "CL_INVALID_GLOBAL_WORK_SIZE";
    case CL_INVALID_BUFFER_SIZE:
      return "CL_INVALID_BUFFER_SIZE";
    case CL_INVALID_MEM_OBJECT:
      return "CL_INVALID_MEM_OBJECT";
    case CL_INVALID_EVENT:
      return "CL_INVALID_EVENT";
    case CL_PROFILING_INFO_NOT_AVAILABLE:
      return "CL_PROFILING_INFO_NOT_AVAILABLE";
    default:
      return "OpenCL error";
  }
}

static aoq_status cl_fail(cl_int e, const char *what) {
  return aoq_err(AOQ_EDEVICE, "opencl %s: %s (%d)", what, cl_errname(e), (int)e);
}

#define CL_TRY(call, what)                                \
  do {                                                    \
    cl_int cl_e_ = (call);                                \
    if (cl_e_ != CL_SUCCESS) return cl_fail(cl_e_, what); \
  } while (0)

/* ---- the allocation table ---- */

/* Index of the allocation holding [p, p+n), or -1. Caller holds the lock. */
static int find_alloc(const aoq_ocl *c, const void *p, size_t n) {
  const char *cp = p;
  int lo = 0, hi = c->n_allocs - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    const cl_alloc *a = &c->allocs[mid];
    if (cp < a->base) {
      hi = mid - 1;
    } else if (cp >= a->base + a->size) {
      lo = mid + 1;
    } else {
      return n <= (size_t)(a->base + a->size - cp) ? mid : -1;
    }
  }
  return -1;
}

static aoq_status resolve(aoq_ocl *c, const void *p, size_t n, cl_mem *mem, size_t *off,
                          const char *what) {
  pthread_mutex_lock(&c->lock);
  int i = find_alloc(c, p, n);
  if (i >= 0) {
    *mem = c->allocs[i].mem;
    *off = (size_t)((const char *)p - c->allocs[i].base);
  }
  pthread_mutex_unlock(&c->lock);
  if (i < 0)
    return aoq_err(AOQ_EINVAL, "opencl %s: %p (+%zu bytes) is not inside one allocation of %s",
                   what, p, n, c->name);
  return AOQ_OK;
}

static aoq_status ocl_alloc(void *ctx, size_t bytes, void **ptr) {
  aoq_ocl *c = ctx;
  if (!ptr) return aoq_err(AOQ_EINVAL, "opencl alloc: NULL out pointer");
  size_t sz = (bytes + 255) / 256 * 256;
  if (sz == 0) sz = 256;
  if (aoq_fault_hit()) return aoq_err(AOQ_ENOMEM, "opencl alloc: %zu bytes (injected)", bytes);
  char *host = aligned_alloc(256, sz);
  if (!host) return aoq_err(AOQ_ENOMEM, "opencl alloc: %zu bytes of host backing", bytes);
  cl_int e;
  cl_mem m = clCreateBuffer(c->ctx, CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR, sz, host, &e);
  if (e != CL_SUCCESS) {
    free(host);
    return aoq_err(AOQ_ENOMEM, "opencl alloc: clCreateBuffer of %zu bytes: %s", sz, cl_errname(e));
  }
  pthread_mutex_lock(&c->lock);
  if (c->n_allocs == c->cap_allocs) {
    int cap = c->cap_allocs ? 2 * c->cap_allocs : 64;
    cl_alloc *na = realloc(c->allocs, sizeof *na * (size_t)cap);
    if (!na) {
      pthread_mutex_unlock(&c->lock);
      clReleaseMemObject(m);
      free(host);
      return aoq_err(AOQ_ENOMEM, "opencl alloc: allocation table");
    }
    c->allocs = na, c->cap_allocs = cap;
  }
  int i = c->n_allocs;
  while (i > 0 && c->allocs[i - 1].base > host) {
    c->allocs[i] = c->allocs[i - 1];
    i--;
  }
  c->allocs[i] = (cl_alloc){host, sz, m};
  c->n_allocs++;
  pthread_mutex_unlock(&c->lock);
  *ptr = host;
  return AOQ_OK;
}

static void ocl_free(void *ctx, void *ptr) {
  aoq_ocl *c = ctx;
  if (!ptr) return;
  pthread_mutex_lock(&c->lock);
  int i = find_alloc(c, ptr, 0);
  cl_alloc a = {0};
  if (i >= 0 && c->allocs[i].base == ptr) {
    a = c->allocs[i];
    memmove(&c->allocs[i], &c->allocs[i + 1], sizeof a * (size_t)(c->n_allocs - i - 1));
    c->n_allocs--;
  }
  pthread_mutex_unlock(&c->lock);
  if (!a.mem) return; /* not an allocation of this device: nothing to free */
  clFinish(c->q);     /* kernels on the default stream may still use it */
  clReleaseMemObject(a.mem);
  free(a.base);
}

static cl_command_queue qof(aoq_ocl *c, aoq_stream *s) {
  return s ? s->q : c->q;
}

static aoq_status ocl_copy_h2d(void *ctx, void *dst, const void *src, size_t n, aoq_stream *s) {
  aoq_ocl *c = ctx;
  if (n == 0) return AOQ_OK;
  if (!src) return aoq_err(AOQ_EINVAL, "opencl copy_h2d: NULL source");
  cl_mem m;
  size_t off;
  AOQ_TRY(resolve(c, dst, n, &m, &off, "copy_h2d destination"));
  CL_TRY(clEnqueueWriteBuffer(qof(c, s), m, CL_TRUE, off, n, src, 0, NULL, NULL), "copy_h2d");
  return AOQ_OK;
}

static aoq_status ocl_copy_d2h(void *ctx, void *dst, const void *src, size_t n, aoq_stream *s) {
  aoq_ocl *c = ctx;
  if (n == 0) return AOQ_OK;
  if (!dst) return aoq_err(AOQ_EINVAL, "opencl copy_d2h: NULL destination");
  cl_mem m;
  size_t off;
  AOQ_TRY(resolve(c, src, n, &m, &off, "copy_d2h source"));
  CL_TRY(clEnqueueReadBuffer(qof(c, s), m, CL_TRUE, off, n, dst, 0, NULL, NULL), "copy_d2h");
  return AOQ_OK;
}

static aoq_status ocl_copy_d2d(void *ctx, void *dst, const void *src, size_t n, aoq_stream *s) {
  aoq_ocl *c = ctx;
  if (n == 0) return AOQ_OK;
  cl_mem md, ms;
  size_t od, os;
  AOQ_TRY(resolve(c, dst, n, &md, &od, "copy_d2d destination"));
  AOQ_TRY(resolve(c, src, n, &ms, &os, "copy_d2d source"));
  if (md == ms && od < os + n && os < od + n)
    return aoq_err(AOQ_EINVAL, "opencl copy_d2d: overlapping ranges");
  CL_TRY(clEnqueueCopyBuffer(qof(c, s), ms, md, os, od, n, 0, NULL, NULL), "copy_d2d");
  return AOQ_OK;
}

static aoq_status ocl_memset(void *ctx, void *dst, int value, size_t n, aoq_stream *s) {
  aoq_ocl *c = ctx;
  if (n == 0) return AOQ_OK;
  cl_mem m;
  size_t off;
  AOQ_TRY(resolve(c, dst, n, &m, &off, "memset"));
  unsigned char b = (unsigned char)value;
  CL_TRY(clEnqueueFillBuffer(qof(c, s), m, &b, 1, off, n, 0, NULL, NULL), "memset");
  return AOQ_OK;
}

/* ---- streams and events ---- */

static aoq_status ocl_stream_create(void *ctx, aoq_stream **out) {
  aoq_ocl *c = ctx;
  aoq_stream *s = calloc(1, sizeof *s);
  if (!s) return aoq_err(AOQ_ENOMEM, "opencl stream");
  cl_queue_properties props[] = {CL_QUEUE_PROPERTIES, CL_QUEUE_PROFILING_ENABLE, 0};
  cl_int e;
  s->q = clCreateCommandQueueWithProperties(c->ctx, c->dev, props, &e);
  if (e != CL_SUCCESS) {
    free(s);
    return cl_fail(e, "clCreateCommandQueueWithProperties");
  }
  *out = s;
  return AOQ_OK;
}

static void ocl_stream_destroy(void *ctx, aoq_stream *s) {
  (void)ctx;
  if (!s) return;
  clFinish(s->q);
  clReleaseCommandQueue(s->q);
  free(s);
}

/* Waits for s, then reports (and clears) a data-dependent error the kernels flagged. */
static aoq_status ocl_stream_sync(void *ctx, aoq_stream *s) {
  aoq_ocl *c = ctx;
  cl_command_queue q = qof(c, s);
  CL_TRY(clFinish(q), "stream_sync");
  int code = 0;
  AOQ_TRY(ocl_copy_d2h(c, &code, c->ops.err, sizeof code, s));
  if (code) {
    int zero = 0;
    AOQ_TRY(ocl_copy_h2d(c, c->ops.err, &zero, sizeof zero, s));
    return aoq_xk_err_status(code, c->name);
  }
  return AOQ_OK;
}

static aoq_status ocl_event_create(void *ctx, aoq_event **out) {
  (void)ctx;
  aoq_event *e = calloc(1, sizeof *e);
  if (!e) return aoq_err(AOQ_ENOMEM, "opencl event");
  *out = e;
  return AOQ_OK;
}

static void ocl_event_destroy(void *ctx, aoq_event *e) {
  (void)ctx;
  if (!e) return;
  if (e->e) clReleaseEvent(e->e);
  free(e);
}

static aoq_status ocl_event_record(void *ctx, aoq_event *e, aoq_stream *s) {
  aoq_ocl *c = ctx;
  if (!e) return aoq_err(AOQ_EINVAL, "opencl event_record: NULL event");
  cl_event ne;
  CL_TRY(clEnqueueMarkerWithWaitList(qof(c, s), 0, NULL, &ne), "event_record");
  if (e->e) clReleaseEvent(e->e);
  e->e = ne;
  return AOQ_OK;
}

static aoq_status ocl_event_wait(void *ctx, aoq_event *e, aoq_stream *s) {
  aoq_ocl *c = ctx;
  if (!e) return aoq_err(AOQ_EINVAL, "opencl event_wait: NULL event");
  if (!e->e) return AOQ_OK; /* never recorded: nothing to wait for */
  CL_TRY(clEnqueueBarrierWithWaitList(qof(c, s), 1, &e->e, NULL), "event_wait");
  return AOQ_OK;
}

static aoq_status ocl_event_sync(void *ctx, aoq_event *e) {
  (void)ctx;
  if (!e) return aoq_err(AOQ_EINVAL, "opencl event_sync: NULL event");
  if (!e->e) return AOQ_OK;
  CL_TRY(clWaitForEvents(1, &e->e), "event_sync");
  return AOQ_OK;
}

static aoq_status ocl_event_elapsed_ms(void *ctx, aoq_event *a, aoq_event *b, float *ms) {
  (void)ctx;
  if (!a || !b || !ms || !a->e || !b->e)
    return aoq_err(AOQ_EINVAL, "opencl event_elapsed_ms: events must be recorded");
  CL_TRY(clWaitForEvents(1, &b->e), "event_elapsed_ms");
  cl_ulong ta, tb;
  CL_TRY(clGetEventProfilingInfo(a->e, CL_PROFILING_COMMAND_END, sizeof ta, &ta, NULL),
         "profiling info (record events on a stream from stream_create)");
  CL_TRY(clGetEventProfilingInfo(b->e, CL_PROFILING_COMMAND_END, sizeof tb, &tb, NULL),
         "profiling info (record events on a stream from stream_create)");
  *ms = (float)((double)((int64_t)(tb - ta)) * 1e-6);
  return AOQ_OK;
}

/* ---- the runtime table of xpu_ops.c ---- */

static aoq_status ocl_launch(void *ctx, aoq_xk_id k, const aoq_xk_arg *args, int nargs,
                             const size_t groups[3], const size_t local[3], aoq_stream *s) {
  aoq_ocl *c = ctx;
  cl_kernel kern = c->k[k];
  if (!kern)
    return aoq_err(AOQ_EUNSUPPORTED, "opencl: kernel %s is not built", aoq_xk_names[k].entry);
  size_t global[3];
  for (int i = 0; i < 3; i++) {
    if (groups[i] == 0) return AOQ_OK; /* empty range */
    global[i] = groups[i] * local[i];
  }
  pthread_mutex_lock(&c->lock);
  cl_int e = CL_SUCCESS;
  cl_uint idx = 0;
  const char *bad = NULL;
  for (int i = 0; i < nargs && e == CL_SUCCESS && !bad; i++) {
    const aoq_xk_arg *a = &args[i];
    if (a->kind == AOQ_XA_PTR) {
      int ai = find_alloc(c, a->p, 0);
      if (ai < 0) {
        bad = "a pointer argument is not device memory of this device";
        break;
      }
      cl_ulong off = (cl_ulong)((const char *)a->p - c->allocs[ai].base);
      e = clSetKernelArg(kern, idx++, sizeof(cl_mem), &c->allocs[ai].mem);
      if (e == CL_SUCCESS) e = clSetKernelArg(kern, idx++, sizeof off, &off);
    } else if (a->kind == AOQ_XA_I32) {
      cl_int v = (cl_int)a->i;
      e = clSetKernelArg(kern, idx++, sizeof v, &v);
    } else if (a->kind == AOQ_XA_I64) {
      cl_long v = (cl_long)a->i;
      e = clSetKernelArg(kern, idx++, sizeof v, &v);
    } else {
      cl_float v = a->f;
      e = clSetKernelArg(kern, idx++, sizeof v, &v);
    }
  }
  if (e == CL_SUCCESS && !bad)
    e = clEnqueueNDRangeKernel(qof(c, s), kern, 3, NULL, global, local, 0, NULL, NULL);
  pthread_mutex_unlock(&c->lock);
  if (bad) return aoq_err(AOQ_EINVAL, "opencl %s: %s", aoq_xk_names[k].entry, bad);
  if (e != CL_SUCCESS) return cl_fail(e, aoq_xk_names[k].entry);
  return AOQ_OK;
}

static aoq_status ocl_upload(void *ctx, void *dst, const void *src, size_t n, aoq_stream *s) {
  return ocl_copy_h2d(ctx, dst, src, n, s); /* host->device copies are synchronous */
}

static const aoq_xk_rt ocl_rt = {ocl_launch, ocl_upload, ocl_copy_d2d};

/* ---- device ---- */

static aoq_status ocl_info(void *ctx, aoq_device_info *out) {
  aoq_ocl *c = ctx;
  memset(out, 0, sizeof *out);
  out->kind = AOQ_DEVICE_XPU;
  out->index = c->index;
  snprintf(out->name, sizeof out->name, "%s", c->name);
  out->total_memory = c->total_mem;
  out->free_memory = c->total_mem;
  out->caps = AOQ_CAP_QUANTIZE;
  out->linear_formats = aoq_xk_linear_formats();
  out->quantize_formats = aoq_xk_quantize_formats();
  cl_uint cu = 0;
  clGetDeviceInfo(c->dev, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
  out->threads = (int)cu;
  return AOQ_OK;
}

static void ocl_destroy(void *ctx) {
  aoq_ocl *c = ctx;
  if (!c) return;
  if (c->q) clFinish(c->q);
  for (int i = 0; i < AOQ_XK_COUNT; i++)
    if (c->k[i]) clReleaseKernel(c->k[i]);
  for (int i = 0; i < c->n_prog; i++) clReleaseProgram(c->prog[i]);
  for (int i = 0; i < c->n_allocs; i++) {
    clReleaseMemObject(c->allocs[i].mem);
    free(c->allocs[i].base);
  }
  free(c->allocs);
  if (c->q) clReleaseCommandQueue(c->q);
  if (c->ctx) clReleaseContext(c->ctx);
  aoq_xk_ops_fini(&c->ops);
  pthread_mutex_destroy(&c->lock);
  free(c);
}

static const struct aoq_device_iface ocl_iface = {
    .api_version = AOQ_DEVICE_API_VERSION,
    .name = "opencl",
    .destroy = ocl_destroy,
    .info = ocl_info,
    .alloc = ocl_alloc,
    .free = ocl_free,
    .copy_h2d = ocl_copy_h2d,
    .copy_d2h = ocl_copy_d2h,
    .copy_d2d = ocl_copy_d2d,
    .memset = ocl_memset,
    .stream_create = ocl_stream_create,
    .stream_destroy = ocl_stream_destroy,
    .stream_sync = ocl_stream_sync,
    .event_create = ocl_event_create,
    .event_destroy = ocl_event_destroy,
    .event_record = ocl_event_record,
    .event_wait = ocl_event_wait,
    .event_sync = ocl_event_sync,
    .event_elapsed_ms = ocl_event_elapsed_ms,
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

static aoq_status pick_device(int index, cl_device_id *dev, cl_platform_id *plat) {
  cl_platform_id ps[16];
  cl_uint np = 0;
  cl_int e = clGetPlatformIDs(16, ps, &np);
  if (e != CL_SUCCESS || np == 0)
    return aoq_err(AOQ_ENODEV, "opencl:%d: no OpenCL platform (%s); install an ICD such as PoCL",
                   index, e == CL_SUCCESS ? "none listed" : cl_errname(e));
  int seen = 0;
  for (cl_uint p = 0; p < np && p < 16; p++) {
    cl_device_id ds[16];
    cl_uint nd = 0;
    if (clGetDeviceIDs(ps[p], CL_DEVICE_TYPE_ALL, 16, ds, &nd) != CL_SUCCESS) continue;
    for (cl_uint d = 0; d < nd && d < 16; d++, seen++)
      if (seen == index) {
        *dev = ds[d];
        *plat = ps[p];
        return AOQ_OK;
      }
  }
  return aoq_err(AOQ_ENODEV, "opencl:%d: no such device (%d OpenCL devices found)", index, seen);
}

static aoq_status build_programs(aoq_ocl *c) {
  const char *pre = (const char *)aoq_cl_prelude[0].data;
  for (int i = 0; i < aoq_cl_sources_count && i < 16; i++) {
    const char *strs[2] = {pre, (const char *)aoq_cl_sources[i].data};
    size_t lens[2] = {aoq_cl_prelude[0].size, aoq_cl_sources[i].size};
    cl_int e;
    cl_program p = clCreateProgramWithSource(c->ctx, 2, strs, lens, &e);
    if (e != CL_SUCCESS) return cl_fail(e, "clCreateProgramWithSource");
    c->prog[c->n_prog++] = p;
    e = clBuildProgram(p, 1, &c->dev, AOQ_CL_BUILD_OPTIONS, NULL, NULL);
    if (e != CL_SUCCESS && !strcmp(aoq_cl_sources[i].name, "sample")) {
      c->unbuilt |= 1u << i; /* fp64 missing: everything but `sample` still works */
      continue;
    }
    if (e != CL_SUCCESS) {
      char log[2048] = "";
      clGetProgramBuildInfo(p, c->dev, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, NULL);
      return aoq_err(AOQ_EDEVICE, "opencl: building kernels/cl/%s.cl failed: %s\n%s",
                     aoq_cl_sources[i].name, cl_errname(e), log);
    }
  }
  for (int k = 0; k < AOQ_XK_COUNT; k++) {
    int pi = -1;
    for (int i = 0; i < c->n_prog; i++)
      if (!strcmp(aoq_cl_sources[i].name, aoq_xk_names[k].module)) pi = i;
    if (pi < 0)
      return aoq_err(AOQ_EINTERNAL, "opencl: module %s of kernel %s is not embedded",
                     aoq_xk_names[k].module, aoq_xk_names[k].entry);
    if (c->unbuilt & (1u << pi)) continue;
    cl_int e;
    c->k[k] = clCreateKernel(c->prog[pi], aoq_xk_names[k].entry, &e);
    if (e != CL_SUCCESS) return cl_fail(e, aoq_xk_names[k].entry);
  }
  return AOQ_OK;
}

aoq_status aoq_opencl_device_create(int index, aoq_device **out) {
  if (!out || index < 0) return aoq_err(AOQ_EINVAL, "aoq_opencl_device_create: bad arguments");
  cl_device_id dev = NULL;
  cl_platform_id plat = NULL;
  AOQ_TRY(pick_device(index, &dev, &plat));
  aoq_ocl *c = calloc(1, sizeof *c);
  if (!c) return aoq_err(AOQ_ENOMEM, "opencl device");
  if (pthread_mutex_init(&c->lock, NULL)) {
    free(c);
    return aoq_err(AOQ_EINTERNAL, "opencl: pthread_mutex_init");
  }
  aoq_status st = aoq_xk_ops_init(&c->ops, &ocl_rt, NULL, NULL);
  if (st != AOQ_OK) {
    pthread_mutex_destroy(&c->lock);
    free(c);
    return st;
  }
  c->dev = dev;
  c->index = index;
  char dn[96] = "", pn[64] = "";
  clGetDeviceInfo(dev, CL_DEVICE_NAME, sizeof dn - 1, dn, NULL);
  clGetPlatformInfo(plat, CL_PLATFORM_NAME, sizeof pn - 1, pn, NULL);
  snprintf(c->name, sizeof c->name, "opencl:%d (%s, %s)", index, pn, dn);
  cl_ulong mem = 0;
  clGetDeviceInfo(dev, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof mem, &mem, NULL);
  c->total_mem = mem;
  cl_int e;
  c->ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &e);
  if (e != CL_SUCCESS) st = cl_fail(e, "clCreateContext");
  if (st == AOQ_OK) {
    cl_queue_properties props[] = {CL_QUEUE_PROPERTIES, CL_QUEUE_PROFILING_ENABLE, 0};
    c->q = clCreateCommandQueueWithProperties(c->ctx, dev, props, &e);
    if (e != CL_SUCCESS) st = cl_fail(e, "clCreateCommandQueueWithProperties");
  }
  if (st == AOQ_OK) st = build_programs(c);
  void *err = NULL, *tab = NULL, *sp = NULL;
  if (st == AOQ_OK) st = ocl_alloc(c, sizeof(int), &err);
  if (st == AOQ_OK) st = ocl_alloc(c, aoq_xk_rope_tab_bytes(), &tab);
  if (st == AOQ_OK) st = ocl_alloc(c, aoq_xk_sample_params_bytes(), &sp);
  if (st == AOQ_OK) {
    c->ops.err = err;
    c->ops.rope_tab = tab;
    c->ops.sample_params = sp;
    c->ops.has_sample = c->k[AOQ_XK_SAMPLE] != NULL;
    st = ocl_memset(c, err, 0, sizeof(int), NULL);
  }
  char nm[32];
  snprintf(nm, sizeof nm, "opencl:%d", index);
  if (st == AOQ_OK) st = aoq_device_wrap(&ocl_iface, c, nm, out);
  if (st != AOQ_OK) ocl_destroy(c);
  return st;
}
