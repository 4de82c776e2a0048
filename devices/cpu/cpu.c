/*
 * cpu.c — the CPU backend's device: memory, streams, events and the interface table.
 *
 * Device memory is host memory (AOQ_CAP_HOST_MEMORY): 256-byte aligned_alloc, memcpy copies.
 * Every op runs to completion on the calling thread (helped by the pool) before it returns, so a
 * stream is in order and always idle: stream_sync has nothing to wait for, and an event records
 * the moment its turn came on the stream (a CLOCK_MONOTONIC time stamp). No graphs and no IPC:
 * sharing host memory between processes is the daemon's business (POSIX shm).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "devices/cpu/cpu_kernels.h"

/* Real objects, so that create/destroy pairs and misuse (NULL, double record) are checkable. */
struct aoq_stream {
  uint32_t magic;
};
struct aoq_event {
  uint32_t magic;
  int recorded;
  double t_ms; /* CLOCK_MONOTONIC at record time */
};
#define STREAM_MAGIC 0x53747231u
#define EVENT_MAGIC 0x45767431u

aoq_cpu_isa aoq_cpu_isa_detect(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl"))
    return AOQ_CPU_ISA_AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return AOQ_CPU_ISA_AVX2;
#endif
  return AOQ_CPU_ISA_SCALAR;
}

const char *aoq_cpu_isa_name(aoq_cpu_isa isa) {
  switch (isa) {
    case AOQ_CPU_ISA_AVX512:
      return "avx512";
    case AOQ_CPU_ISA_AVX2:
      return "avx2+fma";
    default:
      return "scalar";
  }
}

aoq_status aoq_cpu_check_dt(aoq_dtype dt, const char *op) {
  if (dt == AOQ_DTYPE_BF16 || dt == AOQ_DTYPE_F32) return AOQ_OK;
  const char *name = aoq_dtype_name(dt);
  return aoq_err(AOQ_EINVAL, "cpu %s: activation dtype %s (%d) not supported: BF16 or F32", op,
                 name ? name : "invalid", (int)dt);
}

static void cpu_destroy(void *ctx) {
  aoq_cpu_ctx *c = ctx;
  if (!c) return;
  aoq_cpu_pool_destroy(c->pool);
  free(c);
}

static aoq_status cpu_info(void *ctx, aoq_device_info *out) {
  aoq_cpu_ctx *c = ctx;
  if (!out) return aoq_err(AOQ_EINVAL, "cpu info: NULL output");
  memset(out, 0, sizeof *out);
  out->kind = AOQ_DEVICE_CPU;
  out->index = 0;
  memcpy(out->name, c->name, sizeof out->name);
  struct sysinfo si;
  if (sysinfo(&si) == 0) {
    out->total_memory = (uint64_t)si.totalram * si.mem_unit;
    out->free_memory = (uint64_t)(si.freeram + si.bufferram) * si.mem_unit;
  }
  out->caps = AOQ_CAP_F32 | AOQ_CAP_HOST_MEMORY | AOQ_CAP_HOST_REGISTER;
  out->linear_formats = (1ull << AOQ_FMT_BF16) | aoq_cpu_quant_formats();
  out->quantize_formats = 0;
  out->threads = c->threads;
  return AOQ_OK;
}

/* ---- memory ---- */

static aoq_status cpu_alloc(void *ctx, size_t bytes, void **ptr) {
  (void)ctx;
  if (!ptr) return aoq_err(AOQ_EINVAL, "cpu alloc: NULL output pointer");
  *ptr = NULL;
  if (bytes > SIZE_MAX - 255) return aoq_err(AOQ_ENOMEM, "cpu alloc: %zu bytes", bytes);
  size_t rounded = bytes ? (bytes + 255) & ~(size_t)255 : 256; /* aligned_alloc wants a multiple */
  void *p = aoq_fault_hit() ? NULL : aligned_alloc(256, rounded);
  if (!p) return aoq_err(AOQ_ENOMEM, "cpu alloc: %zu bytes", bytes);
  *ptr = p;
  return AOQ_OK;
}

static void cpu_free(void *ctx, void *ptr) {
  (void)ctx;
  free(ptr);
}

static aoq_status check_copy(const void *dst, const void *src, size_t n, const char *what) {
  if (n && (!dst || !src))
    return aoq_err(AOQ_EINVAL, "cpu %s: NULL pointer for %zu bytes", what, n);
  return AOQ_OK;
}

static aoq_status cpu_copy(void *ctx, void *dst, const void *src, size_t n, aoq_stream *s) {
  (void)ctx, (void)s;
  AOQ_TRY(check_copy(dst, src, n, "copy"));
  if (n) memmove(dst, src, n);
  return AOQ_OK;
}

static aoq_status cpu_memset(void *ctx, void *dst, int value, size_t n, aoq_stream *s) {
  (void)ctx, (void)s;
  if (n && !dst) return aoq_err(AOQ_EINVAL, "cpu memset: NULL pointer for %zu bytes", n);
  if (n) memset(dst, value, n);
  return AOQ_OK;
}

/* Host memory is already "device" memory: nothing to pin. */
static aoq_status cpu_host_register(void *ctx, void *p, size_t n) {
  (void)ctx;
  if (!p && n) return aoq_err(AOQ_EINVAL, "cpu host_register: NULL pointer for %zu bytes", n);
  return AOQ_OK;
}

static aoq_status cpu_host_unregister(void *ctx, void *p) {
  (void)ctx, (void)p;
  return AOQ_OK;
}

/* ---- streams and events ---- */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static aoq_status cpu_stream_create(void *ctx, aoq_stream **out) {
  (void)ctx;
  if (!out) return aoq_err(AOQ_EINVAL, "cpu stream_create: NULL output");
  aoq_stream *s = calloc(1, sizeof *s);
  if (!s) return aoq_err(AOQ_ENOMEM, "cpu stream");
  s->magic = STREAM_MAGIC;
  *out = s;
  return AOQ_OK;
}

static void cpu_stream_destroy(void *ctx, aoq_stream *s) {
  (void)ctx;
  if (!s) return;
  s->magic = 0;
  free(s);
}

static aoq_status check_stream(const aoq_stream *s, const char *what) {
  if (s && s->magic != STREAM_MAGIC)
    return aoq_err(AOQ_EINVAL, "cpu %s: not a stream of the cpu backend", what);
  return AOQ_OK;
}

static aoq_status cpu_stream_sync(void *ctx, aoq_stream *s) {
  (void)ctx;
  return check_stream(s, "stream_sync"); /* ops completed before they returned */
}

static aoq_status cpu_event_create(void *ctx, aoq_event **out) {
  (void)ctx;
  if (!out) return aoq_err(AOQ_EINVAL, "cpu event_create: NULL output");
  aoq_event *e = calloc(1, sizeof *e);
  if (!e) return aoq_err(AOQ_ENOMEM, "cpu event");
  e->magic = EVENT_MAGIC;
  *out = e;
  return AOQ_OK;
}

static void cpu_event_destroy(void *ctx, aoq_event *e) {
  (void)ctx;
  if (!e) return;
  e->magic = 0;
  free(e);
}

static aoq_status check_event(const aoq_event *e, const char *what) {
  if (!e || e->magic != EVENT_MAGIC)
    return aoq_err(AOQ_EINVAL, "cpu %s: NULL or not an event of the cpu backend", what);
  return AOQ_OK;
}

static aoq_status cpu_event_record(void *ctx, aoq_event *e, aoq_stream *s) {
  (void)ctx;
  AOQ_TRY(check_event(e, "event_record"));
  AOQ_TRY(check_stream(s, "event_record"));
  e->t_ms = now_ms();
  e->recorded = 1;
  return AOQ_OK;
}

static aoq_status cpu_event_wait(void *ctx, aoq_event *e, aoq_stream *s) {
  (void)ctx;
  AOQ_TRY(check_event(e, "event_wait"));
  return check_stream(s, "event_wait"); /* the recorded work is already done */
}

static aoq_status cpu_event_sync(void *ctx, aoq_event *e) {
  (void)ctx;
  return check_event(e, "event_sync");
}

static aoq_status cpu_event_elapsed_ms(void *ctx, aoq_event *a, aoq_event *b, float *ms) {
  (void)ctx;
  AOQ_TRY(check_event(a, "event_elapsed_ms"));
  AOQ_TRY(check_event(b, "event_elapsed_ms"));
  if (!ms) return aoq_err(AOQ_EINVAL, "cpu event_elapsed_ms: NULL output");
  if (!a->recorded || !b->recorded)
    return aoq_err(AOQ_EINVAL, "cpu event_elapsed_ms: %s event was never recorded",
                   a->recorded ? "end" : "start");
  *ms = (float)(b->t_ms - a->t_ms);
  return AOQ_OK;
}

static const struct aoq_device_iface cpu_iface = {
    .api_version = AOQ_DEVICE_API_VERSION,
    .name = "cpu",
    .destroy = cpu_destroy,
    .info = cpu_info,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .copy_h2d = cpu_copy,
    .copy_d2h = cpu_copy,
    .copy_d2d = cpu_copy,
    .memset = cpu_memset,
    .host_register = cpu_host_register,
    .host_unregister = cpu_host_unregister,
    .stream_create = cpu_stream_create,
    .stream_destroy = cpu_stream_destroy,
    .stream_sync = cpu_stream_sync,
    .event_create = cpu_event_create,
    .event_destroy = cpu_event_destroy,
    .event_record = cpu_event_record,
    .event_wait = cpu_event_wait,
    .event_sync = cpu_event_sync,
    .event_elapsed_ms = cpu_event_elapsed_ms,
    .linear_workspace = aoq_cpu_linear_workspace,
    .linear = aoq_cpu_linear,
    .rmsnorm = aoq_cpu_rmsnorm,
    .add = aoq_cpu_add,
    .silu_mul = aoq_cpu_silu_mul,
    .embed = aoq_cpu_embed,
    .rope = aoq_cpu_rope,
    .kv_store = aoq_cpu_kv_store,
    .attention_workspace = aoq_cpu_attention_workspace,
    .attention = aoq_cpu_attention,
    .argmax = aoq_cpu_argmax,
    .sample = aoq_cpu_sample,
    .convert = aoq_cpu_convert,
};

/* AOQ_CPU_ISA lowers the SIMD level (never raises it past what the CPU has). */
static aoq_status pick_isa(aoq_cpu_isa *isa) {
  *isa = aoq_cpu_isa_detect();
  const char *env = getenv("AOQ_CPU_ISA");
  if (!env || !*env) return AOQ_OK;
  aoq_cpu_isa want;
  if (!strcmp(env, "scalar"))
    want = AOQ_CPU_ISA_SCALAR;
  else if (!strcmp(env, "avx2"))
    want = AOQ_CPU_ISA_AVX2;
  else if (!strcmp(env, "avx512"))
    want = AOQ_CPU_ISA_AVX512;
  else
    return aoq_err(AOQ_EINVAL, "AOQ_CPU_ISA='%s': expected scalar, avx2 or avx512", env);
  if (want < *isa) *isa = want;
  return AOQ_OK;
}

aoq_status aoq_cpu_device_create(int threads, aoq_device **out) {
  if (!out) return aoq_err(AOQ_EINVAL, "aoq_cpu_device_create: NULL output");
  *out = NULL;
  if (threads < 0 || threads > 1024)
    return aoq_err(AOQ_EINVAL, "cpu device: %d threads (expected 0 = all cores, or 1..1024)",
                   threads);
  if (threads == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
  }
  aoq_cpu_ctx *c = calloc(1, sizeof *c);
  if (!c) return aoq_err(AOQ_ENOMEM, "cpu device context");
  c->threads = threads;
  aoq_status st = pick_isa(&c->isa);
  if (st == AOQ_OK) st = aoq_cpu_pool_create(threads, &c->pool);
  if (st != AOQ_OK) {
    free(c);
    return st;
  }
  snprintf(c->name, sizeof c->name, "cpu (%d thread%s, %s)", threads, threads == 1 ? "" : "s",
           aoq_cpu_isa_name(c->isa));
  st = aoq_device_wrap(&cpu_iface, c, "cpu", out);
  if (st != AOQ_OK) cpu_destroy(c);
  return st;
}
