/*
 * bench_gemv.c — `aoq-bench gemv`: the device's fused linear at decode widths (m = 1..16) on the
 * Llama-3.1-8B shapes, per weight format: time per call (device events, median of batches),
 * weight bytes read (qdata + scales), GB/s, and the ratio to the device-to-device copy bandwidth
 * (read + write) measured in the same run. Weights are random packed bytes with valid scales,
 * in enough rotating copies to exceed the GPU's L2, so every call streams from memory.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/numerics.h"
#include "core/format.h"
#include "devices/device.h"
#include "tools/bench/bench_util.h"

typedef struct gcfg {
  const char *name;
  aoq_format_kind kind;
  int group; /* 0: per row */
} gcfg;

static const gcfg cfgs[] = {
    {"bf16", AOQ_FMT_BF16, 0},
    {"int8wo", AOQ_FMT_INT8WO, 0},
    {"fp8wo", AOQ_FMT_FP8WO, 0},
    {"int4wo-32", AOQ_FMT_INT4WO, 32},
    {"int4wo-64", AOQ_FMT_INT4WO, 64},
    {"int4wo-128", AOQ_FMT_INT4WO, 128},
    {"int4wo-256", AOQ_FMT_INT4WO, 256},
    {"fp8dq", AOQ_FMT_FP8DQ, 0},
    {"fp8dq-row", AOQ_FMT_FP8DQ_ROW, 0},
    {"mxfp8", AOQ_FMT_MXFP8, 32},
    {"mxfp4", AOQ_FMT_MXFP4, 32},
    {"nvfp4", AOQ_FMT_NVFP4, 16},
    {"nvfp4wo", AOQ_FMT_NVFP4WO, 16},
    /* the formats of kernels/gpu/linear_dec.h: planned from the name (aoq_format_plan) */
    {"int8dq", AOQ_FMT_INT8DQ, 0},
    {"fp8dq-block", AOQ_FMT_FP8DQ_BLOCK, 128},
    {"fp8-int4", AOQ_FMT_FP8_INT4, 128},
    {"int8-int4", AOQ_FMT_INT8_INT4, 32},
    {"int8-intx4", AOQ_FMT_INT8_INTX, 32},
    {"intx4wo-32", AOQ_FMT_INTXWO, 32},
    {"intx4wo-128", AOQ_FMT_INTXWO, 128},
    {"intx3wo-32", AOQ_FMT_INTXWO, 32},
    {"intx5wo-32", AOQ_FMT_INTXWO, 32},
    {"intx6wo-32", AOQ_FMT_INTXWO, 32},
    {"intx2wo-32", AOQ_FMT_INTXWO, 32},
    {"intx8wo", AOQ_FMT_INTXWO, 0},
    {"w158", AOQ_FMT_W158, 0},
    {"fp6-e3m2", AOQ_FMT_FP6_E3M2, 0},
    {"codebook4-32", AOQ_FMT_CODEBOOK, 32},
    {"intx4wo-16", AOQ_FMT_INTXWO, 16}, /* two scales per 32-element lane group (session 4) */
    {"codebook4-16", AOQ_FMT_CODEBOOK, 16},
};

static bool planned(aoq_format_kind k) {
  return k == AOQ_FMT_INT8DQ || k == AOQ_FMT_FP8DQ_BLOCK || k == AOQ_FMT_FP8_INT4 ||
         k == AOQ_FMT_INT8_INT4 || k == AOQ_FMT_INT8_INTX || k == AOQ_FMT_INTXWO ||
         k == AOQ_FMT_W158 || k == AOQ_FMT_FP6_E3M2 || k == AOQ_FMT_CODEBOOK;
}

static const struct {
  const char *name;
  int64_t n, k;
} shapes[] = {{"qkv", 6144, 4096},
              {"o", 4096, 4096},
              {"gate+up", 28672, 4096},
              {"down", 4096, 14336},
              {"lm_head", 128256, 4096}};

static void usage(FILE *f) {
  fprintf(f,
          "usage: aoq-bench gemv [--device NAME] [--config CFG[,CFG...]|all] [--m LIST]\n"
          "                      [--shape NAME[,NAME...]] [--repeat R] [--hash]\n"
          "  Times y[m,n] = x[m,k] @ W^T for the Llama-3.1-8B shapes (qkv, o, gate+up, down,\n"
          "  lm_head; --shape picks some) with W packed in CFG (bf16, int8wo, fp8wo,\n"
          "  int4wo-32/64/128/256, fp8dq, fp8dq-row, mxfp8, mxfp4, nvfp4, nvfp4wo, int8dq,\n"
          "  fp8dq-block, fp8-int4, int8-int4, int8-intx4, intx4wo-32/128, intx2/3/5/6wo-32,\n"
          "  intx8wo, w158, fp6-e3m2, codebook4-32, intx4wo-16, codebook4-16, or all; a comma\n"
          "  list picks several).\n"
          "  Dynamic formats include their activation quantization. --hash adds a column with a\n"
          "  hash of y's bytes (the inputs are fixed: equal hashes = bit-identical kernels).\n"
          "  Defaults: --device cuda:0 --config all --m 1 --repeat 20.\n");
}

static uint64_t rng = 0x243f6a8885a308d3ull;
static uint64_t next_u64(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return rng ^ (rng >> 29);
}

/* Fills a host buffer of the packed weight with random bytes and valid scales. */
static void fill_plan(const gcfg *c, int64_t n, int64_t k, aoq_qweight *w) {
  memset(w, 0, sizeof *w);
  aoq_format f;
  if (planned(c->kind) && aoq_format_parse(c->name, &f) == AOQ_OK &&
      aoq_format_plan(&f, n, k, w) == AOQ_OK)
    return;
  w->kind = c->kind, w->n = n, w->k = k, w->group = c->group ? c->group : (int)k;
  switch (c->kind) {
    case AOQ_FMT_BF16:
      w->bits = 16, w->qdata_bytes = (size_t)(n * k * 2);
      break;
    case AOQ_FMT_INT8WO:
    case AOQ_FMT_FP8WO:
    case AOQ_FMT_FP8DQ_ROW:
      w->bits = 8, w->qdata_bytes = (size_t)(n * k), w->scale_bytes = (size_t)n * 4;
      break;
    case AOQ_FMT_FP8DQ:
      w->bits = 8, w->qdata_bytes = (size_t)(n * k), w->scale_bytes = 4;
      break;
    case AOQ_FMT_MXFP8:
      w->bits = 8, w->qdata_bytes = (size_t)(n * k), w->scale_bytes = (size_t)(n * k / 32);
      break;
    case AOQ_FMT_MXFP4:
    case AOQ_FMT_NVFP4:
    case AOQ_FMT_NVFP4WO:
      w->bits = 4, w->qdata_bytes = (size_t)(n * k / 2);
      w->scale_bytes = (size_t)(n * k / w->group);
      w->aux_bytes = c->kind == AOQ_FMT_MXFP4 ? 0 : 4;
      break;
    default:
      w->bits = 4, w->qdata_bytes = (size_t)(n * k / 2);
      w->scale_bytes = (size_t)(n * (k / w->group) * 4);
      break;
  }
}

static void fill_host(const gcfg *c, uint8_t *q, size_t qb, uint8_t *s, size_t sb) {
  for (size_t i = 0; i < qb; i += 8) {
    uint64_t r = next_u64();
    if (c->kind == AOQ_FMT_BF16) r &= 0xbfffbfffbfffbfffull; /* finite, |w| < 2 */
    memcpy(q + i, &r, qb - i < 8 ? qb - i : 8);
  }
  if (c->kind == AOQ_FMT_INT8WO || c->kind == AOQ_FMT_FP8WO || c->kind == AOQ_FMT_FP8DQ ||
      c->kind == AOQ_FMT_FP8DQ_ROW || c->kind == AOQ_FMT_INT8DQ || c->kind == AOQ_FMT_FP8DQ_BLOCK ||
      c->kind == AOQ_FMT_FP8_INT4) {
    for (size_t i = 0; i < sb / 4; i++) ((float *)s)[i] = 0.01f;
  } else if (c->kind == AOQ_FMT_MXFP8 || c->kind == AOQ_FMT_MXFP4) {
    memset(s, 120, sb);
  } else if (c->kind == AOQ_FMT_NVFP4 || c->kind == AOQ_FMT_NVFP4WO) {
    memset(s, 0x38, sb);
  } else if (sb && planned(c->kind)) { /* intx: bf16 group scales */
    for (size_t i = 0; i < sb / 2; i++) ((uint16_t *)s)[i] = aoq_f32_to_bf16(0.01f);
  } else if (sb) {
    for (size_t i = 0; i < sb / 2; i++) ((uint16_t *)s)[i] = aoq_f32_to_bf16(i % 2 ? 0.f : 0.01f);
  }
}

/* Marks on[i] for each comma-separated name of `list` found among n names (the first at
 * `first`, the others `stride` bytes apart); -1 if one is unknown. */
static int in_list(const char *list, int n, const char *const *first, size_t stride, bool *on) {
  for (const char *p = list; *p;) {
    size_t len = strcspn(p, ",");
    int hit = -1;
    for (int i = 0; i < n; i++) {
      const char *name = *(const char *const *)((const char *)first + (size_t)i * stride);
      if (strlen(name) == len && !strncmp(name, p, len)) hit = i;
    }
    if (hit < 0) return -1;
    on[hit] = true;
    p += len + (p[len] == ',');
  }
  return 0;
}

static int fail(const char *what) {
  fprintf(stderr, "aoq-bench gemv: %s: %s\n", what, aoq_last_error());
  return 1;
}

typedef struct lin_arg {
  aoq_device *d;
  aoq_qweight *w; /* copies */
  int copies;
  void *x, *y, *ws;
  int64_t m;
} lin_arg;

static aoq_status lin_call(void *p, int i) {
  lin_arg *l = p;
  return aoq_dev_linear(l->d, &l->w[i % l->copies], l->x, l->y, l->m, AOQ_DTYPE_BF16, l->ws, NULL);
}

int aoq_bench_gemv(int argc, char **argv) {
  const char *dev_name = "cuda:0", *cfg_name = "all", *m_list = "1", *shape_list = NULL;
  bool hash = false;
  int64_t repeat = 20;
  const aoq_bench_opt opts[] = {
      {"device", AOQ_OPT_STR, &dev_name}, {"config", AOQ_OPT_STR, &cfg_name},
      {"m", AOQ_OPT_STR, &m_list},        {"shape", AOQ_OPT_STR, &shape_list},
      {"repeat", AOQ_OPT_I64, &repeat},   {"hash", AOQ_OPT_FLAG, &hash},
  };
  int pr = AOQ_BENCH_PARSE(argc, argv, opts, usage);
  if (pr) return pr == 1 ? 0 : 2;
  if (repeat < 1) {
    usage(stderr);
    return 2;
  }
  int64_t ms[16];
  int nm = 0;
  for (const char *p = m_list; *p && nm < 16;) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || v < 1 || v > 4096) {
      fprintf(stderr, "aoq-bench gemv: bad --m list '%s'\n", m_list);
      return 2;
    }
    ms[nm++] = v;
    p = *end == ',' ? end + 1 : end;
  }
  const int ncfg = (int)(sizeof cfgs / sizeof cfgs[0]);
  const int nshape = (int)(sizeof shapes / sizeof shapes[0]);
  bool cfg_on[sizeof cfgs / sizeof cfgs[0]], shape_on[sizeof shapes / sizeof shapes[0]];
  for (int i = 0; i < ncfg; i++) cfg_on[i] = !strcmp(cfg_name, "all");
  for (int i = 0; i < nshape; i++) shape_on[i] = !shape_list;
  if (!cfg_on[0] && in_list(cfg_name, ncfg, &cfgs[0].name, sizeof cfgs[0], cfg_on) < 0) {
    fprintf(stderr, "aoq-bench gemv: unknown config in '%s'\n", cfg_name);
    usage(stderr);
    return 2;
  }
  if (shape_list && in_list(shape_list, nshape, &shapes[0].name, sizeof shapes[0], shape_on) < 0) {
    fprintf(stderr, "aoq-bench gemv: unknown shape in '%s'\n", shape_list);
    usage(stderr);
    return 2;
  }
  aoq_device *d;
  if (aoq_device_open(dev_name, &d)) return fail(dev_name);
  aoq_device_info info;
  if (aoq_device_info_get(d, &info)) return fail("info");
  bool host = aoq_device_has(d, AOQ_CAP_HOST_MEMORY);
  printf("# aoq-bench gemv on %s (%s)\n", dev_name, info.name);

  /* copy bandwidth: 1 GiB (GPU) or 256 MiB (CPU) ping-pong, read + write counted */
  double copy_gbs = aoq_bench_copy_gbps(d, host ? (256u << 20) : (1u << 30));
  if (!(copy_gbs > 0)) return 1;
  printf("# device-to-device copy: %.1f GB/s (read + write)\n", copy_gbs);

  printf("%-11s %-8s %4s %10s %10s %9s %7s%s\n", "config", "shape", "m", "us/call", "MB", "GB/s",
         "%copy", hash ? "  y-hash" : "");
  for (int ci = 0; ci < ncfg; ci++) {
    if (!cfg_on[ci]) continue;
    const gcfg *c = &cfgs[ci];
    if (!(info.linear_formats & (1ull << c->kind))) {
      printf("%-11s (not supported by %s)\n", c->name, dev_name);
      continue;
    }
    for (int si = 0; si < nshape; si++) {
      if (!shape_on[si]) continue;
      aoq_qweight plan;
      fill_plan(c, shapes[si].n, shapes[si].k, &plan);
      size_t bytes = plan.qdata_bytes + plan.scale_bytes;
      int copies = host ? 1 : (int)((512u << 20) / bytes + 1);
      if (copies > 16) copies = 16;
      if (!host && copies < 2) copies = 2;
      aoq_qweight w[16];
      uint8_t *hq = malloc(plan.qdata_bytes),
              *hs = plan.scale_bytes ? malloc(plan.scale_bytes) : NULL;
      fill_host(c, hq, plan.qdata_bytes, hs, plan.scale_bytes);
      for (int i = 0; i < copies; i++) {
        w[i] = plan;
        if (aoq_dev_alloc(d, plan.qdata_bytes, &w[i].qdata) ||
            aoq_dev_copy_h2d(d, w[i].qdata, hq, plan.qdata_bytes, NULL))
          return fail("weight upload");
        if (hs && (aoq_dev_alloc(d, plan.scale_bytes, &w[i].scale) ||
                   aoq_dev_copy_h2d(d, w[i].scale, hs, plan.scale_bytes, NULL)))
          return fail("scale upload");
        if (plan.aux_bytes) { /* nvfp4: the f32 per-tensor scale; codebook: bf16 entries */
          uint16_t cb[256];
          const float pts = 0.01f;
          for (int j = 0; j < 256; j++) cb[j] = aoq_f32_to_bf16((float)(j - 8) / 8.0f);
          const void *src = c->kind == AOQ_FMT_CODEBOOK ? (const void *)cb : (const void *)&pts;
          if (plan.aux_bytes > sizeof cb || aoq_dev_alloc(d, plan.aux_bytes, &w[i].aux) ||
              aoq_dev_copy_h2d(d, w[i].aux, src, plan.aux_bytes, NULL))
            return fail("aux upload");
        }
      }
      free(hq), free(hs);
      for (int mi = 0; mi < nm; mi++) {
        lin_arg la = {d, w, copies, NULL, NULL, NULL, ms[mi]};
        size_t xb = (size_t)(ms[mi] * shapes[si].k * 2), yb = (size_t)(ms[mi] * shapes[si].n * 2);
        size_t wsb = aoq_dev_linear_workspace(d, &w[0], ms[mi]);
        if (aoq_dev_alloc(d, xb, &la.x) || aoq_dev_alloc(d, yb, &la.y) ||
            (wsb && aoq_dev_alloc(d, wsb, &la.ws)))
          return fail("activation alloc");
        aoq_dev_memset(d, la.x, 0x3c, xb, NULL);
        double t;
        if (aoq_bench_time_calls(d, lin_call, &la, host ? 1 : (int)repeat, host ? 3 : 7, &t))
          return 1;
        double gbs = (double)bytes / (t * 1e-3) / 1e9;
        printf("%-11s %-8s %4lld %10.2f %10.2f %9.1f %6.1f%%", c->name, shapes[si].name,
               (long long)ms[mi], t * 1e3, (double)bytes / 1e6, gbs, 100.0 * gbs / copy_gbs);
        if (hash) {
          uint8_t *hy = malloc(yb);
          if (!hy || aoq_dev_copy_d2h(d, hy, la.y, yb, NULL)) return fail("y download");
          uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
          for (size_t i = 0; i < yb; i++) h = (h ^ hy[i]) * 0x100000001b3ull;
          printf("  %016llx", (unsigned long long)h);
          free(hy);
        }
        printf("\n");
        aoq_dev_free(d, la.x), aoq_dev_free(d, la.y), aoq_dev_free(d, la.ws);
      }
      for (int i = 0; i < copies; i++)
        aoq_dev_free(d, w[i].qdata), aoq_dev_free(d, w[i].scale), aoq_dev_free(d, w[i].aux);
    }
  }
  aoq_device_close(d);
  return 0;
}
