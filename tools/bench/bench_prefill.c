/*
 * bench_prefill.c — `aoq-bench prefill`: time to first token of one long prompt, against the
 * throughput cuBLAS bf16 GEMMs of the same shapes reach in the same run.
 *
 * Loads the model (synthetic weights or a checkpoint) in a format with max_batch_tokens = the
 * prompt, runs one untimed prefill (cuBLAS heuristics, first-touch), then times `reps` prefill
 * steps of a fresh sequence (the step that returns the first logits: upload, forward, logits to
 * the host) and takes the median: TTFT and prompt tokens/s. On CUDA it then times, on its own
 * stream with events, cublasGemmEx on bf16 operands of every linear of the forward pass at
 * m = the prompt (per layer qkv, o, gate+up, down; x layers) plus lm_head for one row: the GEMM
 * time the prompt cannot go below with bf16 weights, and the tokens/s that allows. The ratio
 * printed is prefill tokens/s over that (issue 7's target: >= 0.70 for bf16).
 *
 * --sweep: instead, the device linear of the config's format on the four layer shapes at several
 * m, on cuBLAS (AOQ_CUBLAS_MIN_M=1) and on the own kernels (AOQ_CUBLAS=off) side by side, to pick
 * the row count from which the backend switches to cuBLAS.
 */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aoq/aoq.h"
#include "base/error.h"
#include "base/numerics.h"
#include "core/format.h"
#include "core/model.h"
#include "devices/device.h"
#include "tools/bench/bench_util.h"
#ifdef AOQ_HAVE_CUDA
#include "devices/cuda/cublas.h"
#endif

static void usage(FILE *f) {
  fprintf(f,
          "usage: aoq-bench prefill --model tiny|llama3.1-8b|DIR [--synthetic] [--config CFG]\n"
          "                         [--tokens T] [--reps R] [--device D] [--engine own]\n"
          "                         [--seed S] [--no-ref] [--sweep [--m LIST] [--chunk-mb LIST]]\n"
          "  Defaults: --config bf16 --tokens 2048 --reps 3 --device auto.\n"
          "  --engine own: the device's own linear kernels (AOQ_CUBLAS=off) instead of cuBLAS.\n"
          "  --no-ref: skip the cuBLAS bf16 GEMM reference.\n"
          "  --sweep: time the config's linear on the layer shapes at each m of --m\n"
          "  (default 64,65,96,128,192,256,512,1024,2048), own kernels vs cuBLAS with each\n"
          "  decoded-chunk budget of --chunk-mb (MiB; default: the backend's); no model.\n");
}

static uint64_t free_mem(aoq_device *d) {
  aoq_device_info i;
  return aoq_device_info_get(d, &i) == AOQ_OK ? i.free_memory : 0;
}

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint16_t rnd_bf16(float scale) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return aoq_f32_to_bf16((float)((double)(rng >> 11) * 0x1.0p-53 * 2.0 - 1.0) * scale);
}

/* n random bf16 values in [-scale, scale] on the device (never zeros: METHOD.md): one 16 MiB
 * block drawn on the host, repeated by device copies */
static aoq_status dev_random(aoq_device *d, int64_t n, float scale, void **out) {
  *out = NULL;
  const int64_t blk = (int64_t)1 << 23;
  int64_t hn = n < blk ? n : blk;
  uint16_t *h = malloc((size_t)hn * 2);
  if (!h) return aoq_err(AOQ_ENOMEM, "host buffer");
  for (int64_t j = 0; j < hn; j++) h[j] = rnd_bf16(scale);
  aoq_status s = aoq_dev_alloc(d, (size_t)n * 2, out);
  if (!s) s = aoq_dev_copy_h2d(d, *out, h, (size_t)hn * 2, NULL);
  for (int64_t i = hn; !s && i < n; i += hn) {
    int64_t c = n - i < hn ? n - i : hn;
    s = aoq_dev_copy_d2d(d, (uint16_t *)*out + i, *out, (size_t)c * 2, NULL);
  }
  if (!s) s = aoq_dev_stream_sync(d, NULL);
  free(h);
  return s;
}

static const struct {
  const char *name;
  int kind; /* index into the model config's shapes below */
} k_shapes[] = {{"qkv", 0}, {"o", 1}, {"gate+up", 2}, {"down", 3}};

static void shape_of(const aoq_model_config *c, int kind, int64_t *n, int64_t *k) {
  int64_t H = c->hidden_size, D = c->head_dim, I = c->intermediate_size;
  switch (kind) {
    case 0:
      *n = (int64_t)(c->n_heads + 2 * c->n_kv_heads) * D, *k = H;
      break;
    case 1:
      *n = H, *k = (int64_t)c->n_heads * D;
      break;
    case 2:
      *n = 2 * I, *k = H;
      break;
    default:
      *n = H, *k = I;
      break;
  }
}

#ifdef AOQ_HAVE_CUDA
/* Median ms of `reps` passes of every linear of the forward pass as cuBLAS bf16 GEMMs at m rows
 * (+ lm_head for one row), timed with events on a stream of d. */
static int cublas_reference(aoq_device *d, const aoq_model_config *c, int64_t m, int reps,
                            double *ms_out, double *flops_out) {
  aoq_cublas *h = NULL;
  aoq_stream *st = NULL;
  aoq_event *e0 = NULL, *e1 = NULL;
  void *w[5] = {0}, *x = NULL, *y = NULL;
  int64_t n[5], k[5];
  int rc = 1;
  for (int i = 0; i < 4; i++) shape_of(c, i, &n[i], &k[i]);
  n[4] = c->vocab_size, k[4] = c->hidden_size;
  int64_t max_k = 0, max_y = n[4]; /* lm_head: one row */
  for (int i = 0; i < 4; i++) {
    if (k[i] > max_k) max_k = k[i];
    if (m * n[i] > max_y) max_y = m * n[i];
  }
  if (aoq_cublas_open(&h)) {
    fprintf(stderr, "aoq-bench prefill: no cuBLAS reference: %s\n", aoq_last_error());
    goto out;
  }
  for (int i = 0; i < 5; i++)
    if (dev_random(d, n[i] * k[i], 0.05f, &w[i])) goto fail;
  if (dev_random(d, m * max_k, 1.0f, &x) || aoq_dev_alloc(d, (size_t)max_y * 2, &y) ||
      aoq_dev_stream_create(d, &st) || aoq_dev_event_create(d, &e0) || aoq_dev_event_create(d, &e1))
    goto fail;
  double t[16];
  if (reps > 16) reps = 16;
  *flops_out = 2.0 * (double)m * c->n_layers *
                   (double)(n[0] * k[0] + n[1] * k[1] + n[2] * k[2] + n[3] * k[3]) +
               2.0 * (double)(n[4] * k[4]);
  for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
    if (aoq_dev_event_record(d, e0, st)) goto fail;
    for (int l = 0; l < c->n_layers; l++)
      for (int i = 0; i < 4; i++)
        if (aoq_cublas_gemm_bf16(h, w[i], x, y, n[i], m, k[i], n[i], false, st)) goto fail;
    if (aoq_cublas_gemm_bf16(h, w[4], x, y, n[4], 1, k[4], n[4], false, st)) goto fail;
    float ms = 0;
    if (aoq_dev_event_record(d, e1, st) || aoq_dev_event_sync(d, e1) ||
        aoq_dev_event_elapsed_ms(d, e0, e1, &ms))
      goto fail;
    if (r >= 0) t[r] = ms;
  }
  *ms_out = aoq_bench_median(t, reps);
  rc = 0;
  goto out;
fail:
  fprintf(stderr, "aoq-bench prefill: cuBLAS reference: %s\n", aoq_last_error());
out:
  if (e0) aoq_dev_event_destroy(d, e0);
  if (e1) aoq_dev_event_destroy(d, e1);
  if (st) aoq_dev_stream_destroy(d, st);
  for (int i = 0; i < 5; i++) aoq_dev_free(d, w[i]);
  aoq_dev_free(d, x);
  aoq_dev_free(d, y);
  aoq_cublas_close(h);
  return rc;
}
#endif

static aoq_device *open_with(const char *device, const char *cublas, const char *min_m) {
  if (cublas) setenv("AOQ_CUBLAS", cublas, 1);
  if (min_m) setenv("AOQ_CUBLAS_MIN_M", min_m, 1);
  aoq_device *d = NULL;
  if (aoq_device_open(device, &d)) {
    fprintf(stderr, "aoq-bench prefill: device %s: %s\n", device, aoq_last_error());
    d = NULL;
  }
  if (cublas) unsetenv("AOQ_CUBLAS");
  if (min_m) unsetenv("AOQ_CUBLAS_MIN_M");
  return d;
}

/* ms per call of the device linear (events, median of 5 batches of 3 after a warm-up) */
static double time_linear(aoq_device *d, const aoq_qweight *w, const void *x, void *y, int64_t m,
                          void *ws) {
  aoq_event *e0 = NULL, *e1 = NULL;
  double t[5], res = -1;
  if (aoq_dev_event_create(d, &e0) || aoq_dev_event_create(d, &e1)) goto out;
  if (aoq_dev_linear(d, w, x, y, m, AOQ_DTYPE_BF16, ws, NULL)) goto out;
  for (int b = 0; b < 5; b++) {
    float ms = 0;
    if (aoq_dev_event_record(d, e0, NULL)) goto out;
    for (int i = 0; i < 3; i++)
      if (aoq_dev_linear(d, w, x, y, m, AOQ_DTYPE_BF16, ws, NULL)) goto out;
    if (aoq_dev_event_record(d, e1, NULL) || aoq_dev_event_sync(d, e1) ||
        aoq_dev_event_elapsed_ms(d, e0, e1, &ms))
      goto out;
    t[b] = ms / 3;
  }
  res = aoq_bench_median(t, 5);
out:
  if (res < 0) fprintf(stderr, "aoq-bench prefill: linear: %s\n", aoq_last_error());
  if (e0) aoq_dev_event_destroy(d, e0);
  if (e1) aoq_dev_event_destroy(d, e1);
  return res;
}

#define SWEEP_MAX 6 /* own kernels + up to 5 chunk budgets */

static aoq_status upload_q(aoq_device *d, const aoq_qweight *h, aoq_qweight *w) {
  *w = *h;
  w->qdata = w->scale = w->zero = w->aux = NULL;
  void **dst[4] = {&w->qdata, &w->scale, &w->zero, &w->aux};
  const void *src[4] = {h->qdata, h->scale, h->zero, h->aux};
  size_t len[4] = {h->qdata_bytes, h->scale_bytes, h->zero_bytes, h->aux_bytes};
  for (int i = 0; i < 4; i++)
    if (len[i]) {
      AOQ_TRY(aoq_dev_alloc(d, len[i], dst[i]));
      AOQ_TRY(aoq_dev_copy_h2d(d, *dst[i], src[i], len[i], NULL));
    }
  return AOQ_OK;
}

static void free_q(aoq_device *d, aoq_qweight *w) {
  aoq_dev_free(d, w->qdata), aoq_dev_free(d, w->scale), aoq_dev_free(d, w->zero);
  aoq_dev_free(d, w->aux);
}

/* The config's linear on the layer shapes of llama3.1-8b at each m: the own kernels
 * (AOQ_CUBLAS=off) and cuBLAS at every row count (AOQ_CUBLAS_MIN_M=1) with each chunk budget of
 * chunks (MiB, comma-separated; "" = the default). */
static int sweep(const char *device, const char *config, const char *mlist, const char *chunks) {
  aoq_format f;
  if (aoq_format_parse(config, &f)) {
    fprintf(stderr, "aoq-bench prefill: --config %s: %s\n", config, aoq_last_error());
    return 2;
  }
  aoq_device *dv[SWEEP_MAX] = {0};
  const char *label[SWEEP_MAX] = {"own"};
  char lab[SWEEP_MAX][32];
  int nd = 1, rc = 1;
  dv[0] = open_with(device, "off", NULL);
  for (const char *p = chunks; nd < SWEEP_MAX;) {
    char mb[16] = "";
    size_t len = p ? strcspn(p, ",") : 0;
    if (len && len < sizeof mb) memcpy(mb, p, len), mb[len] = 0;
    if (mb[0]) setenv("AOQ_CUBLAS_CHUNK_MB", mb, 1);
    dv[nd] = open_with(device, NULL, "1");
    unsetenv("AOQ_CUBLAS_CHUNK_MB");
    snprintf(lab[nd], sizeof lab[nd], "cublas/%s", mb[0] ? mb : "dflt");
    label[nd] = lab[nd];
    nd++;
    if (!p || !p[len]) break;
    p += len + 1;
  }
  for (int e = 0; e < nd; e++)
    if (!dv[e]) goto out;
  aoq_device_info info;
  aoq_device_info_get(dv[1], &info);
  printf("# linear sweep %s on %s, engine: %s (chunk budgets in MiB)\n", config,
         aoq_device_name(dv[1]), info.linear_engine[0] ? info.linear_engine : "own kernels");
  printf("%-8s %6s", "shape", "m");
  for (int e = 0; e < nd; e++) printf(" %12s", label[e]);
  printf("   (ms per call; TFLOP/s of the best)\n");
  const aoq_model_config c = {.hidden_size = 4096,
                              .intermediate_size = 14336,
                              .n_heads = 32,
                              .n_kv_heads = 8,
                              .head_dim = 128};
  for (int si = 0; si < 4; si++) {
    int64_t n, k;
    shape_of(&c, k_shapes[si].kind, &n, &k);
    aoq_qweight hw, w[SWEEP_MAX];
    memset(w, 0, sizeof w);
    if (aoq_format_plan(&f, n, k, &hw) || aoq_qweight_host_alloc(&hw)) goto out;
    uint16_t *src = malloc((size_t)(n * k) * 2);
    if (!src) goto out;
    for (int64_t i = 0; i < n * k; i++) src[i] = rnd_bf16(0.05f);
    aoq_status s = aoq_quantize_ref(src, &hw);
    free(src);
    for (int e = 0; !s && e < nd; e++) s = upload_q(dv[e], &hw, &w[e]);
    aoq_qweight_host_free(&hw);
    if (s) goto out;
    for (const char *p = mlist; p && *p;) {
      int64_t m = strtoll(p, NULL, 10);
      p = strchr(p, ',');
      if (p) p++;
      if (m <= 0) continue;
      double best = 1e30;
      printf("%-8s %6lld", k_shapes[si].name, (long long)m);
      for (int e = 0; e < nd; e++) {
        void *x = NULL, *y = NULL, *ws = NULL;
        size_t wsb = aoq_dev_linear_workspace(dv[e], &w[e], m);
        double ms = -1;
        if (!dev_random(dv[e], m * k, 1.0f, &x) && !aoq_dev_alloc(dv[e], (size_t)(m * n) * 2, &y) &&
            !(wsb && aoq_dev_alloc(dv[e], wsb, &ws)))
          ms = time_linear(dv[e], &w[e], x, y, m, ws);
        aoq_dev_free(dv[e], x), aoq_dev_free(dv[e], y), aoq_dev_free(dv[e], ws);
        printf(" %12.4f", ms);
        if (ms > 0 && ms < best) best = ms;
      }
      printf("   %.1f\n", 2.0 * (double)m * (double)n * (double)k / (best * 1e-3) / 1e12);
    }
    for (int e = 0; e < nd; e++) free_q(dv[e], &w[e]);
  }
  rc = 0;
out:
  if (rc) fprintf(stderr, "aoq-bench prefill: sweep: %s\n", aoq_last_error());
  for (int e = 0; e < nd; e++) aoq_device_close(dv[e]);
  return rc;
}

int aoq_bench_prefill(int argc, char **argv) {
  const char *model = NULL, *config = "bf16", *device = "auto", *engine = NULL;
  const char *mlist = "64,65,96,128,192,256,512,1024,2048", *chunks = NULL;
  int64_t tokens = 2048, reps = 3, seed = 0;
  bool synthetic = false, sweep_m = false, no_ref = false;
  const aoq_bench_opt opts[] = {
      {"model", AOQ_OPT_STR, &model},    {"config", AOQ_OPT_STR, &config},
      {"device", AOQ_OPT_STR, &device},  {"engine", AOQ_OPT_STR, &engine},
      {"m", AOQ_OPT_STR, &mlist},        {"chunk-mb", AOQ_OPT_STR, &chunks},
      {"tokens", AOQ_OPT_I64, &tokens},  {"reps", AOQ_OPT_I64, &reps},
      {"seed", AOQ_OPT_I64, &seed},      {"synthetic", AOQ_OPT_FLAG, &synthetic},
      {"sweep", AOQ_OPT_FLAG, &sweep_m}, {"no-ref", AOQ_OPT_FLAG, &no_ref},
  };
  int pr = AOQ_BENCH_PARSE(argc, argv, opts, usage);
  if (pr) return pr == 1 ? 0 : 2;
  if (sweep_m) return sweep(device, config, mlist, chunks);
  if (!model || tokens < 1 || tokens > 65536 || reps < 1 || reps > 16 ||
      (engine && strcmp(engine, "own"))) {
    fprintf(stderr,
            "aoq-bench prefill: --model is required; 1 <= tokens <= 65536, 1 <= reps <= 16, "
            "--engine own\n");
    return 2;
  }
  aoq_device *d = open_with(device, engine ? "off" : NULL, NULL);
  if (!d) return 1;
  uint64_t free0 = free_mem(d), free_min = free0;
  int rc = 1, seq = -1;
  aoq_model *m = NULL;
  float *logits = NULL;
  int32_t *prompt = malloc(sizeof(int32_t) * (size_t)tokens);
  aoq_model_opts o = {.model = model,
                      .synthetic = synthetic,
                      .seed = (uint64_t)seed,
                      .config = config,
                      .max_seqs = 1,
                      .max_batch_tokens = (int)tokens,
                      .kv_pages = (int)((tokens + 1 + 15) / 16 + 1)};
  aoq_status s = aoq_model_load(d, &o, &m);
  if (s) {
    fprintf(stderr, "aoq-bench prefill: load: %s: %s\n", aoq_strerror(s), aoq_last_error());
    goto out;
  }
  uint64_t f = free_mem(d), free_load = f;
  if (f < free_min) free_min = f;
  const aoq_model_info *info = aoq_model_info_get(m);
  const aoq_model_config *c = &info->cfg;
  logits = malloc(sizeof(float) * (size_t)c->vocab_size);
  if (!logits || !prompt) {
    fprintf(stderr, "aoq-bench prefill: out of memory\n");
    goto out;
  }
  for (int64_t i = 0; i < tokens; i++) prompt[i] = (int32_t)((i * 7919 + 13) % c->vocab_size);
  double t[17];
  for (int64_t r = -1; r < reps && !s; r++) { /* r = -1: the untimed first prefill */
    if ((s = aoq_model_seq_open(m, &seq))) break;
    aoq_step_item it = {.seq = seq, .tokens = prompt, .n_tokens = (int)tokens, .want_logits = true};
    double t0 = aoq_bench_now();
    s = aoq_model_step(m, &it, 1, logits);
    if (r >= 0) t[r] = aoq_bench_now() - t0;
    f = free_mem(d);
    if (f < free_min) free_min = f;
    aoq_model_seq_close(m, seq);
    seq = -1;
  }
  if (s) {
    fprintf(stderr, "aoq-bench prefill: step: %s: %s\n", aoq_strerror(s), aoq_last_error());
    goto out;
  }
  double ttft = aoq_bench_median(t, (int)reps);
  aoq_device_info di;
  aoq_device_info_get(d, &di);
  printf("# prefill %s (%s) on %s\n", model, info->format, aoq_device_name(d));
  printf("linear_engine: %s\n", di.linear_engine[0] ? di.linear_engine : "own kernels");
  printf("prompt_tokens: %lld\nreps: %lld\n", (long long)tokens, (long long)reps);
  printf("load_seconds: %.2f\n", info->load_seconds);
  printf("ttft_ms: %.2f\n", ttft * 1e3);
  printf("prefill_tokens_per_s: %.1f\n", (double)tokens / ttft);
  printf("peak_device_memory_mib: %.1f\nafter_load_mib: %.1f\nweight_mib: %.1f\n",
         (double)(free0 - free_min) / 1048576.0, (double)(free0 - free_load) / 1048576.0,
         (double)info->weight_bytes / 1048576.0);
  printf("kv_pool_mib: %.1f\n", (double)info->kv_bytes / 1048576.0);
#ifdef AOQ_HAVE_CUDA
  double ref_ms = 0, flops = 0;
  if (di.kind == AOQ_DEVICE_CUDA && !no_ref &&
      !cublas_reference(d, c, tokens, 5, &ref_ms, &flops)) {
    printf("cublas_gemm_ms: %.2f\n", ref_ms);
    printf("cublas_gemm_tflops: %.1f\n", flops / (ref_ms * 1e-3) / 1e12);
    printf("cublas_gemm_tokens_per_s: %.1f\n", (double)tokens / (ref_ms * 1e-3));
    printf("prefill_linear_tflops_equiv: %.1f\n", flops / ttft / 1e12);
    printf("ratio_prefill_to_cublas: %.3f\n", ref_ms * 1e-3 / ttft);
  }
#endif
  rc = 0;
out:
  free(logits);
  free(prompt);
  aoq_model_free(m);
  aoq_device_close(d);
  return rc;
}
