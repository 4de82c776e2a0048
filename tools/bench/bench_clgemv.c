/*
 * bench_clgemv.c — `aoq-bench clgemv`: the OpenCL-C linear kernels (kernels/cl, the Level Zero
 * backend's kernels) run on the OpenCL CPU device (PoCL here) next to the CPU backend, for the same
 * formats and shapes. A sanity check that the kernels run, agree and scale, not a race: PoCL
 * executes GPU-shaped work-groups on CPU threads. Times are medians of --repeat calls, each
 * followed by a sync; the OpenCL time is also given from queue profiling events.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "core/format.h"
#include "devices/device.h"
#include "tools/bench/bench_util.h"
#ifdef AOQ_HAVE_CLHARNESS
#include "devices/xpu/xpu_cl.h"
#endif

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: aoq-bench clgemv [--formats LIST] [--shapes LIST] [--m M] [--repeat R]\n"
      "                        [--cpu NAME] [--opencl INDEX]\n"
      "  y[m,n] = x[m,k] @ W^T on OpenCL device INDEX (PoCL) and on the CPU backend.\n"
      "  Defaults: --formats bf16,int8wo,int4wo-128,fp8wo,nvfp4wo --shapes 1024x1024,4096x1024\n"
      "  --m 1 --repeat 5 --cpu cpu --opencl 0\n");
}

#ifdef AOQ_HAVE_CLHARNESS
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint16_t rbf(float scale) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  float f = (float)((double)(rng >> 11) * 0x1.0p-53 * 2.0 - 1.0) * scale;
  uint32_t u;
  memcpy(&u, &f, 4);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

typedef struct side {
  aoq_device *d;
  aoq_qweight w;
  void *x, *y, *ws;
} side;

static void side_free(side *s) {
  aoq_dev_free(s->d, s->x), aoq_dev_free(s->d, s->y), aoq_dev_free(s->d, s->ws);
  aoq_qweight_dev_free(s->d, &s->w);
  memset(&s->w, 0, sizeof s->w);
  s->x = s->y = s->ws = NULL;
}

static aoq_status side_setup(side *s, const aoq_format *f, const uint16_t *w, const uint16_t *x,
                             int64_t m, int64_t n, int64_t k) {
  memset(&s->w, 0, sizeof s->w);
  AOQ_TRY(aoq_qweight_quantize(s->d, f, w, n, k, NULL, &s->w));
  AOQ_TRY(aoq_dev_alloc(s->d, (size_t)(m * k) * 2, &s->x));
  AOQ_TRY(aoq_dev_alloc(s->d, (size_t)(m * n) * 2, &s->y));
  size_t wsb = aoq_dev_linear_workspace(s->d, &s->w, m);
  if (wsb) AOQ_TRY(aoq_dev_alloc(s->d, wsb, &s->ws));
  return aoq_dev_copy_h2d(s->d, s->x, x, (size_t)(m * k) * 2, NULL);
}

/* Median wall ms of `repeat` linear+sync calls on s (after one warm-up call). */
static aoq_status time_side(side *s, int64_t m, int repeat, aoq_stream *st, double *ms) {
  double t[64];
  AOQ_TRY(aoq_dev_linear(s->d, &s->w, s->x, s->y, m, AOQ_DTYPE_BF16, s->ws, st));
  AOQ_TRY(aoq_dev_stream_sync(s->d, st));
  for (int i = 0; i < repeat; i++) {
    double t0 = aoq_bench_now();
    AOQ_TRY(aoq_dev_linear(s->d, &s->w, s->x, s->y, m, AOQ_DTYPE_BF16, s->ws, st));
    AOQ_TRY(aoq_dev_stream_sync(s->d, st));
    t[i] = (aoq_bench_now() - t0) * 1e3;
  }
  *ms = aoq_bench_median(t, repeat);
  return AOQ_OK;
}

static int bench(aoq_device *cpu, aoq_device *cl, const char *fmt, int64_t m, int64_t n, int64_t k,
                 int repeat) {
  aoq_format f;
  if (aoq_format_parse(fmt, &f) != AOQ_OK) {
    fprintf(stderr, "aoq-bench clgemv: format '%s': %s\n", fmt, aoq_last_error());
    return 1;
  }
  uint16_t *w = malloc((size_t)(n * k) * 2), *x = malloc((size_t)(m * k) * 2);
  uint16_t *ya = malloc((size_t)(m * n) * 2), *yb = malloc((size_t)(m * n) * 2);
  if (!w || !x || !ya || !yb) {
    free(w), free(x), free(ya), free(yb);
    fprintf(stderr, "aoq-bench clgemv: out of memory\n");
    return 1;
  }
  for (int64_t i = 0; i < n * k; i++) w[i] = rbf(0.5f);
  for (int64_t i = 0; i < m * k; i++) x[i] = rbf(2.0f);
  side a = {cpu, {0}, NULL, NULL, NULL}, b = {cl, {0}, NULL, NULL, NULL};
  aoq_stream *st = NULL;
  aoq_event *e0 = NULL, *e1 = NULL;
  double ms_cpu = 0, ms_cl = 0;
  float ev_ms = 0;
  aoq_status s = side_setup(&a, &f, w, x, m, n, k);
  if (s == AOQ_OK) s = side_setup(&b, &f, w, x, m, n, k);
  if (s == AOQ_OK) s = time_side(&a, m, repeat, NULL, &ms_cpu);
  if (s == AOQ_OK) s = aoq_dev_stream_create(cl, &st);
  if (s == AOQ_OK) s = aoq_dev_event_create(cl, &e0);
  if (s == AOQ_OK) s = aoq_dev_event_create(cl, &e1);
  if (s == AOQ_OK) s = time_side(&b, m, repeat, st, &ms_cl);
  /* one more call between two profiling events: the queue's own view of the kernel time */
  if (s == AOQ_OK) s = aoq_dev_event_record(cl, e0, st);
  if (s == AOQ_OK) s = aoq_dev_linear(cl, &b.w, b.x, b.y, m, AOQ_DTYPE_BF16, b.ws, st);
  if (s == AOQ_OK) s = aoq_dev_event_record(cl, e1, st);
  if (s == AOQ_OK) s = aoq_dev_event_elapsed_ms(cl, e0, e1, &ev_ms);
  if (s == AOQ_OK) s = aoq_dev_copy_d2h(cpu, ya, a.y, (size_t)(m * n) * 2, NULL);
  if (s == AOQ_OK) s = aoq_dev_copy_d2h(cl, yb, b.y, (size_t)(m * n) * 2, st);
  int rc = 0;
  if (s != AOQ_OK) {
    fprintf(stderr, "aoq-bench clgemv: %s %lldx%lld: %s: %s\n", fmt, (long long)n, (long long)k,
            aoq_strerror(s), aoq_last_error());
    rc = 1;
  } else {
    int64_t worst = 0;
    for (int64_t i = 0; i < m * n; i++) {
      int64_t da = (ya[i] & 0x8000) ? -(int64_t)(ya[i] & 0x7fff) : ya[i];
      int64_t db = (yb[i] & 0x8000) ? -(int64_t)(yb[i] & 0x7fff) : yb[i];
      int64_t d = da > db ? da - db : db - da;
      if (d > worst) worst = d;
    }
    double bytes = (double)b.w.qdata_bytes + (double)b.w.scale_bytes;
    printf("%-12s %6lld %6lld %4lld %10.3f %10.3f %10.3f %8.2f %8lld\n", fmt, (long long)n,
           (long long)k, (long long)m, ms_cpu, ms_cl, (double)ev_ms, bytes / (ms_cl * 1e6),
           (long long)worst);
  }
  if (e0) aoq_dev_event_destroy(cl, e0);
  if (e1) aoq_dev_event_destroy(cl, e1);
  if (st) aoq_dev_stream_destroy(cl, st);
  side_free(&a), side_free(&b);
  free(w), free(x), free(ya), free(yb);
  return rc;
}
#endif

int aoq_bench_clgemv(int argc, char **argv) {
  const char *formats = "bf16,int8wo,int4wo-128,fp8wo,nvfp4wo", *shapes = "1024x1024,4096x1024";
  const char *cpu_name = "cpu";
  int64_t m = 1, repeat = 5, index = 0;
  const aoq_bench_opt opts[] = {
      {"formats", AOQ_OPT_STR, &formats}, {"shapes", AOQ_OPT_STR, &shapes},
      {"cpu", AOQ_OPT_STR, &cpu_name},    {"m", AOQ_OPT_I64, &m},
      {"repeat", AOQ_OPT_I64, &repeat},   {"opencl", AOQ_OPT_I64, &index},
  };
  int pr = AOQ_BENCH_PARSE(argc, argv, opts, usage);
  if (pr) return pr == 1 ? 0 : 2;
  if (m < 1 || m > 4096 || repeat < 1 || repeat > 64 || index < 0 || index > 64) {
    usage(stderr);
    return 2;
  }
#ifndef AOQ_HAVE_CLHARNESS
  (void)formats, (void)shapes, (void)cpu_name;
  fprintf(stderr,
          "aoq-bench clgemv: this aoq-bench was built without the OpenCL harness "
          "(configure with -DAOQ_XPU=ON and an OpenCL ICD loader installed)\n");
  return 1;
#else
  aoq_device *cpu = NULL, *cl = NULL;
  if (aoq_device_open(cpu_name, &cpu) != AOQ_OK ||
      aoq_opencl_device_create((int)index, &cl) != AOQ_OK) {
    fprintf(stderr, "aoq-bench clgemv: %s\n", aoq_last_error());
    aoq_device_close(cpu);
    return 1;
  }
  aoq_device_info ci, gi;
  aoq_device_info_get(cpu, &ci);
  aoq_device_info_get(cl, &gi);
  printf("# cpu: %s\n# opencl: %s\n", ci.name, gi.name);
  printf("%-12s %6s %6s %4s %10s %10s %10s %8s %8s\n", "format", "n", "k", "m", "cpu_ms", "ocl_ms",
         "ocl_ev_ms", "ocl_GB/s", "max_ulp");
  int rc = 0;
  char fl[512], sl[512];
  snprintf(fl, sizeof fl, "%s", formats);
  for (char *fs = NULL, *fmt = strtok_r(fl, ",", &fs); fmt && !rc; fmt = strtok_r(NULL, ",", &fs)) {
    snprintf(sl, sizeof sl, "%s", shapes);
    for (char *ss = NULL, *sh = strtok_r(sl, ",", &ss); sh && !rc; sh = strtok_r(NULL, ",", &ss)) {
      long long n = 0, k = 0;
      char tail = 0;
      if (sscanf(sh, "%lldx%lld%c", &n, &k, &tail) != 2 || n < 1 || k < 1 || n * k > (1ll << 28)) {
        fprintf(stderr, "aoq-bench clgemv: shape '%s' (expected NxK)\n", sh);
        rc = 2;
        break;
      }
      rc = bench(cpu, cl, fmt, m, n, k, (int)repeat);
    }
  }
  aoq_device_close(cl);
  aoq_device_close(cpu);
  return rc;
#endif
}
