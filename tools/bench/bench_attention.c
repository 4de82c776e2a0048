/*
 * bench_attention.c — `aoq-bench attention`: one layer of paged causal GQA attention with the
 * Llama-3.1-8B shapes (32 query heads, 8 KV heads, head_dim 128, pages of 16) on a device:
 *   - prefill of a P-token prompt (rows 0..P-1 of one sequence), and a chunk of C rows appended
 *     after a cache of P, each twice: rows in order (runs: the tensor-core kernel) and the same
 *     rows in reverse order (no runs: the per-row kernel, the only path before session 2);
 *     time per call and TFLOP/s of the causal work (4 * head_dim * heads * sum(pos + 1) flops);
 *   - decode at batch B (one row per sequence at position ctx - 1): GB/s of the K/V bytes the
 *     rows must read, against the device-to-device copy bandwidth (read + write) of the same run;
 *     with --plan N the kernels are planned for positions up to N - 1, as in a decode graph
 *     (captured once for the longest sequence, replayed at every length).
 * Device events around `per` back-to-back calls, median of batches; block tables rotate over
 * copies of the cache that together exceed the GPU's L2, so decode reads stream from memory.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/numerics.h"
#include "devices/device.h"
#include "tools/bench/bench_util.h"

#define NH 32
#define NKV 8
#define HD 128
#define PS 16
#define MAX_COPIES 64

static void usage(FILE *f) {
  fprintf(f,
          "usage: aoq-bench attention [--device NAME] [--prompt P] [--chunk C] [--ctx N]\n"
          "                           [--batch LIST] [--plan N] [--repeat R]\n"
          "  One layer of Llama-3.1-8B attention (32/8 heads x 128, pages of 16): prefill of P\n"
          "  rows, a chunk of C rows after a cache of P (tensor-core kernel vs the per-row kernel\n"
          "  on the same rows reversed), decode at each batch of LIST at context N, planned for\n"
          "  a context of --plan (as a decode graph: 16384 in aoq-bench decode; default N).\n"
          "  Defaults: --device cuda:0 --prompt 2048 --chunk 512 --ctx 2048 --batch 1,8,64\n"
          "  --repeat 10.\n");
}

static int fail(const char *what) {
  fprintf(stderr, "aoq-bench attention: %s: %s\n", what, aoq_last_error());
  return 1;
}

static uint64_t rng = 0x6a09e667f3bcc908ull;
static uint64_t next_u64(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return rng ^ (rng >> 29);
}

static void fill_bf16(uint16_t *h, size_t n) {
  for (size_t i = 0; i < n; i++)
    h[i] = aoq_f32_to_bf16((float)((double)(next_u64() >> 11) * 0x1.0p-52 - 1.0));
}

/* One attention workload: m rows over n_seqs sequences of max_blocks pages each, `copies`
 * block tables over disjoint pages of one cache. */
typedef struct work {
  aoq_device *d;
  aoq_kv_cache kv;
  aoq_attn_batch b[MAX_COPIES];
  int copies;
  int64_t m;
  void *q, *out, *ws, *rs, *rp, *bt;
} work;

static aoq_status work_call(void *p, int i) {
  work *w = p;
  return aoq_dev_attention(w->d, &w->kv, &w->b[i % w->copies], w->q, w->out, w->m, NH,
                           1.0f / sqrtf((float)HD), AOQ_DTYPE_BF16, w->ws, NULL);
}

static void work_free(work *w) {
  aoq_device *d = w->d;
  void *bufs[] = {w->kv.k, w->kv.v, w->q, w->out, w->ws, w->rs, w->rp, w->bt};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
    if (bufs[i]) aoq_dev_free(d, bufs[i]);
}

/* Uploads n random bf16 values into dst through a reused host buffer. */
static int upload_random(aoq_device *d, void *dst, size_t n) {
  const size_t chunk = (size_t)8 << 20;
  uint16_t *h = malloc(chunk * 2);
  if (!h) return fail("host alloc");
  fill_bf16(h, chunk);
  for (size_t o = 0; o < n; o += chunk) {
    size_t k = n - o < chunk ? n - o : chunk;
    if (aoq_dev_copy_h2d(d, (uint16_t *)dst + o, h, k * 2, NULL)) {
      free(h);
      return fail("upload");
    }
    h[next_u64() % chunk] ^= 1; /* copies differ */
  }
  free(h);
  return 0;
}

static int work_make(work *w, aoq_device *d, const int32_t *rs, const int32_t *rp, int64_t m,
                     int n_seqs, int max_pos, int plan_pos, int copies) {
  memset(w, 0, sizeof *w);
  w->d = d, w->m = m, w->copies = copies;
  if (plan_pos < max_pos) plan_pos = max_pos;
  int max_blocks = max_pos / PS + 1, per_copy = n_seqs * max_blocks;
  w->kv = (aoq_kv_cache){NULL, NULL, per_copy * copies, PS, NKV, HD, AOQ_DTYPE_BF16};
  size_t kv_elems = (size_t)w->kv.n_pages * PS * NKV * HD, q_elems = (size_t)m * NH * HD;
  if (aoq_dev_alloc(d, kv_elems * 2, &w->kv.k) || aoq_dev_alloc(d, kv_elems * 2, &w->kv.v) ||
      aoq_dev_alloc(d, q_elems * 2, &w->q) || aoq_dev_alloc(d, q_elems * 2, &w->out) ||
      aoq_dev_alloc(d, (size_t)m * 4, &w->rs) || aoq_dev_alloc(d, (size_t)m * 4, &w->rp) ||
      aoq_dev_alloc(d, (size_t)per_copy * copies * 4, &w->bt))
    return fail("alloc");
  if (upload_random(d, w->kv.k, kv_elems) || upload_random(d, w->kv.v, kv_elems) ||
      upload_random(d, w->q, q_elems))
    return 1;
  int32_t *hbt = malloc(sizeof(int32_t) * (size_t)per_copy * copies);
  if (!hbt) return fail("host alloc");
  for (int c = 0; c < copies; c++) { /* each copy: its own pages, in shuffled order */
    int32_t *t = hbt + (size_t)c * per_copy;
    for (int i = 0; i < per_copy; i++) t[i] = c * per_copy + i;
    for (int i = per_copy - 1; i > 0; i--) {
      int j = (int)(next_u64() % (uint64_t)(i + 1)), x = t[i];
      t[i] = t[j], t[j] = x;
    }
  }
  aoq_status st =
      aoq_dev_copy_h2d(d, w->bt, hbt, sizeof(int32_t) * (size_t)per_copy * copies, NULL);
  free(hbt);
  if (st || aoq_dev_copy_h2d(d, w->rs, rs, (size_t)m * 4, NULL) ||
      aoq_dev_copy_h2d(d, w->rp, rp, (size_t)m * 4, NULL))
    return fail("upload");
  for (int c = 0; c < copies; c++)
    w->b[c] = (aoq_attn_batch){w->rs,  w->rp,      (const int32_t *)w->bt + (size_t)c * per_copy,
                               n_seqs, max_blocks, plan_pos};
  size_t wsb = aoq_dev_attention_workspace(d, &w->kv, m, NH, plan_pos);
  if (wsb && aoq_dev_alloc(d, wsb, &w->ws)) return fail("workspace alloc");
  return 0;
}

/* Times rows (rs, rp) and prints one line; flops and kv bytes are per call. */
static int run(aoq_device *d, const char *name, const int32_t *rs, const int32_t *rp, int64_t m,
               int n_seqs, int plan_pos, int copies, int repeat, double copy_gbs) {
  int max_pos = 0;
  double flops = 0, kv_bytes = 0;
  for (int64_t i = 0; i < m; i++) {
    max_pos = rp[i] > max_pos ? rp[i] : max_pos;
    flops += 4.0 * HD * NH * (rp[i] + 1.0);
  }
  /* K/V bytes the rows must read: every sequence's positions up to its last row, once */
  for (int s = 0; s < n_seqs; s++) {
    int last = -1;
    for (int64_t i = 0; i < m; i++)
      if (rs[i] == s && rp[i] > last) last = rp[i];
    kv_bytes += (last + 1.0) * NKV * HD * 2 * 2;
  }
  work w;
  if (work_make(&w, d, rs, rp, m, n_seqs, max_pos, plan_pos, copies)) return 1;
  double ms;
  int rc = aoq_bench_time_calls(d, work_call, &w, repeat, 7, &ms);
  work_free(&w);
  if (rc) return 1;
  printf("%-28s %6lld %6d %10.1f %8.1f %9.1f %6.1f%%\n", name, (long long)m, max_pos + 1, ms * 1e3,
         flops / (ms * 1e-3) / 1e12, kv_bytes / (ms * 1e-3) / 1e9,
         100.0 * kv_bytes / (ms * 1e-3) / 1e9 / copy_gbs);
  return 0;
}

/* rows p0 .. p0 + n - 1 of sequence 0, in order or reversed */
static int run_prompt(aoq_device *d, const char *name, int p0, int n, int repeat, double copy_gbs) {
  int32_t *rs = calloc((size_t)n, 4), *rp = malloc((size_t)n * 4);
  if (!rs || !rp) return fail("host alloc");
  char label[64];
  int rc = 0;
  for (int rev = 0; rev < 2 && !rc; rev++) {
    for (int i = 0; i < n; i++) rp[i] = rev ? p0 + n - 1 - i : p0 + i;
    snprintf(label, sizeof label, "%s%s", name, rev ? " (per-row)" : "");
    rc = run(d, label, rs, rp, n, 1, 0, 1, repeat, copy_gbs);
  }
  free(rs), free(rp);
  return rc;
}

int aoq_bench_attention(int argc, char **argv) {
  const char *dev_name = "cuda:0", *batch_list = "1,8,64";
  int64_t prompt = 2048, chunk = 512, ctx = 2048, plan = 0, repeat = 10;
  const aoq_bench_opt opts[] = {
      {"device", AOQ_OPT_STR, &dev_name}, {"batch", AOQ_OPT_STR, &batch_list},
      {"prompt", AOQ_OPT_I64, &prompt},   {"chunk", AOQ_OPT_I64, &chunk},
      {"ctx", AOQ_OPT_I64, &ctx},         {"plan", AOQ_OPT_I64, &plan},
      {"repeat", AOQ_OPT_I64, &repeat},
  };
  int pr = AOQ_BENCH_PARSE(argc, argv, opts, usage);
  if (pr) return pr == 1 ? 0 : 2;
  if (plan < 0 || plan > 131072 || repeat < 1 || prompt < 1 || prompt > 65536 || chunk < 0 ||
      chunk > 65536 || ctx < 1 || ctx > 131072) {
    usage(stderr);
    return 2;
  }
  int batches[16], nb = 0;
  for (const char *p = batch_list; *p && nb < 16;) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || v < 1 || v > 1024) {
      fprintf(stderr, "aoq-bench attention: bad --batch list '%s'\n", batch_list);
      return 2;
    }
    batches[nb++] = (int)v;
    p = *end == ',' ? end + 1 : end;
  }
  aoq_device *d;
  if (aoq_device_open(dev_name, &d)) return fail(dev_name);
  aoq_device_info info;
  if (aoq_device_info_get(d, &info)) return fail("info");
  bool host = aoq_device_has(d, AOQ_CAP_HOST_MEMORY);
  printf("# aoq-bench attention on %s (%s): %d/%d heads x %d, pages of %d\n", dev_name, info.name,
         NH, NKV, HD, PS);
  double copy_gbs = aoq_bench_copy_gbps(d, host ? (256u << 20) : (1u << 30));
  if (!(copy_gbs > 0)) return 1;
  printf("# device-to-device copy: %.1f GB/s (read + write)\n", copy_gbs);

  printf("%-28s %6s %6s %10s %8s %9s %7s\n", "case", "rows", "ctx", "us/call", "TFLOP/s", "KV GB/s",
         "%copy");
  char name[64];
  snprintf(name, sizeof name, "prefill %lld", (long long)prompt);
  if (run_prompt(d, name, 0, (int)prompt, (int)repeat, copy_gbs)) return 1;
  if (chunk > 0) {
    snprintf(name, sizeof name, "chunk %lld after %lld", (long long)chunk, (long long)prompt);
    if (run_prompt(d, name, (int)prompt, (int)chunk, (int)repeat, copy_gbs)) return 1;
  }
  for (int bi = 0; bi < nb; bi++) {
    int bsz = batches[bi];
    int32_t *rs = malloc((size_t)bsz * 4), *rp = malloc((size_t)bsz * 4);
    if (!rs || !rp) return fail("host alloc");
    for (int i = 0; i < bsz; i++) rs[i] = i, rp[i] = (int)ctx - 1;
    /* copies of the cache to exceed the L2: >= 512 MB of K/V in all */
    double one = (double)bsz * ctx * NKV * HD * 4;
    int copies = host ? 1 : (int)(512e6 / one) + 1;
    if (copies > MAX_COPIES) copies = MAX_COPIES;
    if (plan > ctx)
      snprintf(name, sizeof name, "decode batch %d (plan %lld)", bsz, (long long)plan);
    else
      snprintf(name, sizeof name, "decode batch %d", bsz);
    int rc = run(d, name, rs, rp, bsz, bsz, (int)plan - 1, copies, (int)repeat * 2, copy_gbs);
    free(rs), free(rp);
    if (rc) return 1;
  }
  aoq_device_close(d);
  return 0;
}
