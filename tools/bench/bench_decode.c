/*
 * bench_decode.c — `aoq-bench decode`: decode throughput of a whole model on one device.
 * Loads the model (synthetic weights or a checkpoint) in a format once; then, for every batch
 * size of --batch (a list) and graph mode of --graph, prefills `batch` sequences and times
 * `tokens` decode steps of the batch (each step: upload metadata, forward, greedy pick
 * on the device, the tokens to the host — what a server step costs; --host-logits instead copies
 * every row's fp32 logits to the host and picks there, as a client asking for logits would).
 * Reports tokens/s, the weight and KV bytes read per step and per token, the achieved GB/s and that
 * as a fraction of a device-to-device copy timed with events in the same run, peak device memory
 * (from the device's free-memory deltas; with the KV pool left out it is checked against issue 7's
 * bound, the weights + one bf16 layer + 1 GiB) and the load time. One line per run starting with
 * `row:` sums them up for tables (tools/gpu/final_table.sh).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aoq/aoq.h"
#include "core/model.h"
#include "tools/bench/bench_util.h"
#include "tools/bench/plot.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: aoq-bench decode --model tiny|llama3.1-8b|DIR [--synthetic] [--config CFG]\n"
          "                        [--batch B[,B...]] [--tokens T] [--prompt P] [--device D]\n"
          "                        [--graph on|off|both] [--no-graph] [--host-logits] [--seed S]\n"
          "                        [--ablate silu,norm,attn,rope]\n"
          "  Defaults: --config bf16 --batch 1 --tokens 64 --prompt 16 --device auto --graph on.\n"
          "  One load serves every batch size and graph mode listed.\n"
          "  --plot FILE.svg with --batch 1,2,4,8: one run per batch size, decode tok/s vs batch\n"
          "  drawn by gnuplot.\n"
          "  --ablate: the steps leave out those kernels (silu_mul; the layers' add_rmsnorm;\n"
          "  attention; qkv_rope_store): the outputs are wrong, the step time says what those\n"
          "  kernels cost in the step, i.e. the most fusing them away could save.\n");
}

/* "silu,norm,attn,rope" (any subset) -> AOQ_ABLATE_* bits; nonzero on a bad name */
static int parse_ablate(const char *s, unsigned *out) {
  static const struct {
    const char *name;
    unsigned bit;
  } ops[] = {{"silu", AOQ_ABLATE_SILU},
             {"norm", AOQ_ABLATE_NORM},
             {"attn", AOQ_ABLATE_ATTN},
             {"rope", AOQ_ABLATE_ROPE}};
  *out = 0;
  while (*s) {
    size_t n = strcspn(s, ",");
    unsigned bit = 0;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
      if (n == strlen(ops[i].name) && !strncmp(s, ops[i].name, n)) bit = ops[i].bit;
    if (!bit) return 1;
    *out |= bit;
    s += n;
    if (*s == ',') s++;
  }
  return 0;
}

static uint64_t free_mem(aoq_device *d) {
  aoq_device_info i;
  return aoq_device_info_get(d, &i) == AOQ_OK ? i.free_memory : 0;
}

static int argmax(const float *x, int n) {
  int b = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[b]) b = i;
  return b;
}

/* "1,8,64" -> up to max values in [1, 256]; returns the count, 0 on a malformed list. */
static int parse_batches(const char *s, int64_t *out, int max) {
  int n = 0;
  while (*s && n < max) {
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || v < 1 || v > 256 || (*end && *end != ',')) return 0;
    out[n++] = v;
    s = *end ? end + 1 : end;
  }
  return *s ? 0 : n;
}

typedef struct run_result {
  double tok_s, step_ms, prefill_tok_s, gbps;
} run_result;

/* Prefills `batch` sequences of `prompt` tokens, takes one untimed decode step (it captures the
 * graph where there is one), then times `tokens` steps. */
static aoq_status run_batch(aoq_model *m, int64_t batch, int64_t prompt, int64_t tokens,
                            bool host_logits, float *logits, int32_t *cur, int32_t *prompts,
                            int *seq, aoq_step_item *it, run_result *r) {
  const aoq_model_info *info = aoq_model_info_get(m);
  int vocab = info->cfg.vocab_size;
  aoq_status s = AOQ_OK;
  int64_t opened = 0;
  for (int64_t b = 0; b < batch && !s; b++, opened++)
    if (!(s = aoq_model_seq_open(m, &seq[b])))
      it[b] = (aoq_step_item){.seq = seq[b],
                              .tokens = prompts + b * prompt,
                              .n_tokens = (int)prompt,
                              .want_logits = true};
  if (s) opened--;
  double t0 = aoq_bench_now();
  if (!s) s = aoq_model_step(m, it, (int)batch, logits);
  double t_prefill = aoq_bench_now() - t0;
  for (int64_t b = 0; !s && b < batch; b++) {
    cur[b] = argmax(logits + b * vocab, vocab);
    it[b] = (aoq_step_item){.seq = seq[b], .tokens = &cur[b], .n_tokens = 1, .want_logits = true};
  }
  if (!s) s = aoq_model_step(m, it, (int)batch, logits);
  for (int64_t b = 0; !s && b < batch; b++) cur[b] = argmax(logits + b * vocab, vocab);
  t0 = aoq_bench_now();
  for (int64_t t = 0; !s && t < tokens; t++) {
    if (host_logits) {
      s = aoq_model_step(m, it, (int)batch, logits);
      for (int64_t b = 0; !s && b < batch; b++) cur[b] = argmax(logits + b * vocab, vocab);
    } else { /* items read cur when the step starts; the picked tokens overwrite it at its end */
      s = aoq_model_step_sample(m, it, (int)batch, NULL, cur, NULL);
    }
  }
  double t_decode = aoq_bench_now() - t0;
  for (int64_t b = 0; b < opened; b++) aoq_model_seq_close(m, seq[b]);
  if (s) return s;
  const aoq_model_config *c = &info->cfg;
  double ctx = (double)prompt + 1 + (double)(tokens + 1) / 2;
  double kv_step = (double)batch * ctx * c->n_layers * 2.0 * c->n_kv_heads * c->head_dim * 2;
  r->step_ms = t_decode / (double)tokens * 1e3;
  r->tok_s = (double)(batch * tokens) / t_decode;
  r->prefill_tok_s = (double)(batch * prompt) / t_prefill;
  r->gbps = ((double)info->weight_bytes + kv_step) / (r->step_ms * 1e-3) / 1e9;
  return AOQ_OK;
}

int aoq_bench_decode(int argc, char **argv) {
  if (!aoq_bench_opt_flag(argc, argv, "help") && aoq_bench_plot_wanted(argc, argv))
    return aoq_bench_plot_sweep(argc, argv, "decode", aoq_bench_decode, "batch",
                                "decode_tokens_per_s"); /* a batch sweep, plotted */
  const char *model = NULL, *config = "bf16", *device = "auto", *batch_s = "1", *graph = "on";
  int64_t tokens = 64, prompt = 16, seed = 0, batches[16];
  bool synthetic = false, host_logits = false, no_graph = false;
  const char *ablate_s = NULL;
  const aoq_bench_opt opts[] = {
      {"model", AOQ_OPT_STR, &model},          {"config", AOQ_OPT_STR, &config},
      {"device", AOQ_OPT_STR, &device},        {"batch", AOQ_OPT_STR, &batch_s},
      {"graph", AOQ_OPT_STR, &graph},          {"tokens", AOQ_OPT_I64, &tokens},
      {"prompt", AOQ_OPT_I64, &prompt},        {"seed", AOQ_OPT_I64, &seed},
      {"synthetic", AOQ_OPT_FLAG, &synthetic}, {"host-logits", AOQ_OPT_FLAG, &host_logits},
      {"no-graph", AOQ_OPT_FLAG, &no_graph},   {"ablate", AOQ_OPT_STR, &ablate_s},
  };
  int pr = AOQ_BENCH_PARSE(argc, argv, opts, usage);
  if (pr) return pr == 1 ? 0 : 2;
  int nb = parse_batches(batch_s, batches, 16);
  if (no_graph) graph = "off";
  bool g_on = !strcmp(graph, "on") || !strcmp(graph, "both");
  bool g_off = !strcmp(graph, "off") || !strcmp(graph, "both");
  if (!model || !nb || tokens < 1 || prompt < 1 || prompt > 512 || !(g_on || g_off)) {
    fprintf(stderr,
            "aoq-bench decode: --model is required; --batch 1..256 (a comma list), tokens >= 1, "
            "1 <= prompt <= 512, --graph on|off|both\n");
    return 2;
  }
  unsigned ablate = 0;
  if (ablate_s && parse_ablate(ablate_s, &ablate)) {
    fprintf(stderr, "aoq-bench decode: --ablate takes a comma list of silu, norm, attn, rope\n");
    return 2;
  }
  if (ablate)
    printf("ablate: %s (kernels left out: outputs are wrong, timing only)\n", ablate_s);
  int64_t batch = 1;
  for (int i = 0; i < nb; i++)
    if (batches[i] > batch) batch = batches[i];

  aoq_device *d = NULL;
  aoq_status s = aoq_device_open(device, &d);
  if (s) {
    fprintf(stderr, "aoq-bench decode: device %s: %s\n", device, aoq_last_error());
    return 1;
  }
  uint64_t free0 = free_mem(d), free_min = free0;
  int rc = 1;
  aoq_model *m = NULL;
  float *logits = NULL;
  int32_t *cur = NULL, *prompts = NULL;
  int *seq = NULL;
  aoq_step_item *it = NULL;
  int64_t total = prompt + tokens + 2;
  aoq_model_opts o = {.model = model,
                      .synthetic = synthetic,
                      .seed = (uint64_t)seed,
                      .config = config,
                      .max_seqs = (int)batch,
                      .max_batch_tokens = (int)(batch * prompt > 512 ? batch * prompt : 512),
                      .kv_pages = (int)(batch * ((total + 15) / 16)),
                      .no_graphs = !g_on,
                      .ablate = ablate};
  if ((s = aoq_model_load(d, &o, &m))) {
    fprintf(stderr, "aoq-bench decode: load: %s: %s\n", aoq_strerror(s), aoq_last_error());
    goto out;
  }
  uint64_t f = free_mem(d);
  if (f < free_min) free_min = f;
  const aoq_model_info *info = aoq_model_info_get(m);
  int vocab = info->cfg.vocab_size;
  logits = malloc(sizeof(float) * (size_t)(batch * vocab));
  cur = malloc(sizeof(int32_t) * (size_t)batch);
  prompts = malloc(sizeof(int32_t) * (size_t)(batch * prompt));
  seq = malloc(sizeof(int) * (size_t)batch);
  it = malloc(sizeof *it * (size_t)batch);
  if (!logits || !cur || !prompts || !seq || !it) {
    fprintf(stderr, "aoq-bench decode: out of memory\n");
    goto out;
  }
  for (int64_t i = 0; i < batch * prompt; i++) prompts[i] = (int32_t)((i * 7919 + 13) % 256);
  size_t copy_bytes = (size_t)256 << 20;
  aoq_device_info di;
  aoq_device_info_get(d, &di);
  if (di.kind == AOQ_DEVICE_CPU) copy_bytes = (size_t)64 << 20;
  double copy = aoq_bench_copy_gbps(d, copy_bytes);
  const aoq_model_config *c = &info->cfg;
  double w_step = (double)info->weight_bytes;
  for (int mode = 0; mode < 2; mode++) {
    bool on = mode == 0;
    if ((on && !g_on) || (!on && !g_off)) continue;
    bool used = aoq_model_use_graphs(m, on);
    for (int bi = 0; bi < nb; bi++) {
      int64_t b = batches[bi];
      run_result r;
      if ((s = run_batch(m, b, prompt, tokens, host_logits, logits, cur, prompts, seq, it, &r))) {
        fprintf(stderr, "aoq-bench decode: batch %lld: %s: %s\n", (long long)b, aoq_strerror(s),
                aoq_last_error());
        goto out;
      }
      f = free_mem(d);
      if (f < free_min) free_min = f;
      double ctx = (double)prompt + 1 + (double)(tokens + 1) / 2;
      double kv_step = (double)b * ctx * c->n_layers * 2.0 * c->n_kv_heads * c->head_dim * 2;
      printf("# decode %s (%s) on %s\n", model, info->format, aoq_device_name(d));
      printf("batch: %lld\nprompt_tokens: %lld\ndecode_steps: %lld\n", (long long)b,
             (long long)prompt, (long long)tokens);
      printf("graphs: %s\n", used ? "on" : on ? "unsupported" : "off");
      printf("next_token: %s\n", host_logits ? "host (fp32 logits copied)" : "device argmax");
      printf("load_seconds: %.2f\n", info->load_seconds);
      printf("prefill_tokens_per_s: %.1f\n", r.prefill_tok_s);
      printf("decode_tokens_per_s: %.1f\n", r.tok_s);
      printf("step_ms: %.3f\n", r.step_ms);
      printf("weight_bytes_per_step: %.0f\nweight_bytes_per_token: %.0f\n", w_step,
             w_step / (double)b);
      printf("kv_bytes_per_step: %.0f\n", kv_step);
      printf("achieved_gbps: %.1f\n", r.gbps);
      printf("d2d_copy_gbps: %.1f\n", copy);
      if (copy > 0) printf("fraction_of_copy: %.3f\n", r.gbps / copy);
      /* issue 7's memory bound: the quantized weights + one layer's bf16 weights + 1 GiB of
       * workspace, the KV pool not counted */
      double peak = (double)(free0 - free_min), kv = (double)info->kv_bytes;
      double layer_bf16 = 2.0 * c->hidden_size *
                          ((double)(c->n_heads + 2 * c->n_kv_heads) * c->head_dim +
                           (double)c->n_heads * c->head_dim + 3.0 * c->intermediate_size);
      double budget = (double)info->weight_bytes + layer_bf16 + 1073741824.0;
      printf("peak_device_memory_mib: %.1f\n", peak / 1048576.0);
      printf("weight_mib: %.1f\nkv_pool_mib: %.1f\n", (double)info->weight_bytes / 1048576.0,
             kv / 1048576.0);
      printf("embedding_mib: %.1f (%s memory)\n", (double)info->embed_bytes / 1048576.0,
             info->embed_on_host ? "mapped host" : "device");
      printf("load_peak_mib: %.1f\n", (double)info->load_peak_bytes / 1048576.0);
      printf("model_work_mib: %.1f\n", (double)info->work_bytes / 1048576.0);
      printf("peak_without_kv_mib: %.1f\n", (peak - kv) / 1048576.0);
      printf("memory_budget_mib: %.1f (weights + one bf16 layer %.1f + 1024)\n", budget / 1048576.0,
             layer_bf16 / 1048576.0);
      printf("memory_within_budget: %s\n", peak - kv <= budget ? "yes" : "no");
      printf(
          "row: %s batch=%lld graph=%s tok_s=%.1f step_ms=%.3f gbps=%.1f of_copy=%.3f "
          "peak_mib=%.0f weight_mib=%.0f peak_nokv_mib=%.0f budget_mib=%.0f load_s=%.2f "
          "prefill_tok_s=%.1f%s%s\n",
          info->format, (long long)b,
          used ? "on"
          : on ? "unsupported"
               : "off",
          r.tok_s, r.step_ms, r.gbps, copy > 0 ? r.gbps / copy : 0, peak / 1048576.0,
          (double)info->weight_bytes / 1048576.0, (peak - kv) / 1048576.0, budget / 1048576.0,
          info->load_seconds, r.prefill_tok_s, ablate ? " ablate=" : "", ablate ? ablate_s : "");
      fflush(stdout);
    }
  }
  rc = 0;
out:
  free(it);
  free(logits);
  free(cur);
  free(prompts);
  free(seq);
  aoq_model_free(m);
  aoq_device_close(d);
  return rc;
}
