/*
 * aoq-run — generates text with a Llama model on a local device, without the daemon:
 *   aoq-run --model tiny --synthetic --config int4wo-128 --prompt "Once upon" --max-tokens 32
 * The text goes to stdout as it is generated; prefill and decode speed to stderr.
 * Exit codes: 0 ok, 1 runtime error, 2 usage error.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aoq/aoq.h"
#include "core/model.h"
#include "daemon/progress.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: aoq-run --model tiny|llama3.1-8b|DIR [options]\n"
          "  --model M          preset name (with --synthetic) or Hugging Face directory\n"
          "  --synthetic        deterministic random weights (see --seed)\n"
          "  --config CFG       weight format: bf16 (default), int8wo, int4wo-128, mxfp8, ...\n"
          "  --overrides FILE   per-layer format overrides (`<name|re:ERE|*> <config>` lines)\n"
          "  --cache-dir DIR    keep quantized weights in DIR; later runs skip quantizing\n"
          "  --prompt TEXT      prompt text (default \"Once upon a time\")\n"
          "  --max-tokens N     tokens to generate (default 32)\n"
          "  --seed S           synthetic-weight and sampling seed (default 0)\n"
          "  --device D         cpu, cpu:<threads>, cuda:0, ..., auto (default auto)\n"
          "  --temperature T    0 = greedy (default 0)\n"
          "  --top-p P          nucleus sampling (default 1 = off)\n"
          "  --top-k K          top-k sampling (default 0 = off)\n"
          "  --no-stop          keep generating past end-of-sequence tokens\n"
          "  --help, --version\n");
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool parse_num(const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi)) return false;
  *out = v;
  return true;
}

/* A decimal integer in [0, hi]: every uint64 seed (a double would round seeds past 2^53 and
 * could not reach 2^64 - 1), and counts without fractions. */
static bool parse_uint(const char *s, uint64_t hi, uint64_t *out) {
  if (!s || !isdigit((unsigned char)s[0])) return false; /* strtoull would take "-1" */
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v > hi) return false;
  *out = v;
  return true;
}

static int fail(const char *what, aoq_status s) {
  fprintf(stderr, "aoq-run: %s: %s: %s\n", what, aoq_strerror(s), aoq_last_error());
  return 1;
}

int main(int argc, char **argv) {
  const char *model = NULL, *config = "bf16", *overrides = NULL, *prompt = "Once upon a time";
  const char *device = "auto", *cache_dir = NULL;
  bool synthetic = false, stop = true;
  double temperature = 0, top_p = 1;
  uint64_t max_tokens = 32, seed = 0, top_k = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    }
    if (!strcmp(a, "--version")) {
      printf("aoq-run %s\n", aoq_version());
      return 0;
    }
    if (!strcmp(a, "--synthetic")) {
      synthetic = true;
      continue;
    }
    if (!strcmp(a, "--no-stop")) {
      stop = false;
      continue;
    }
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    bool ok = v != NULL;
    if (!strcmp(a, "--model"))
      model = v;
    else if (!strcmp(a, "--config"))
      config = v;
    else if (!strcmp(a, "--overrides"))
      overrides = v;
    else if (!strcmp(a, "--cache-dir"))
      cache_dir = v;
    else if (!strcmp(a, "--prompt"))
      prompt = v;
    else if (!strcmp(a, "--device"))
      device = v;
    else if (!strcmp(a, "--max-tokens"))
      ok = ok && parse_uint(v, 10000000, &max_tokens);
    else if (!strcmp(a, "--seed"))
      ok = ok && parse_uint(v, UINT64_MAX, &seed);
    else if (!strcmp(a, "--temperature"))
      ok = ok && parse_num(v, 0, 100, &temperature);
    else if (!strcmp(a, "--top-p"))
      ok = ok && parse_num(v, 0, 1, &top_p);
    else if (!strcmp(a, "--top-k"))
      ok = ok && parse_uint(v, 1000000000, &top_k);
    else {
      fprintf(stderr, "aoq-run: unknown option '%s'\n", a);
      usage(stderr);
      return 2;
    }
    if (!ok) {
      fprintf(stderr, "aoq-run: %s needs a valid value\n", a);
      return 2;
    }
    i++;
  }
  if (!model) {
    fprintf(stderr, "aoq-run: --model is required\n");
    usage(stderr);
    return 2;
  }

  aoq_device *d = NULL;
  aoq_status s = aoq_device_open(device, &d);
  if (s) return fail("device", s);
  aoq_model_opts o = {.model = model,
                      .synthetic = synthetic,
                      .seed = seed,
                      .config = config,
                      .cache_dir = cache_dir,
                      .overrides = overrides,
                      .max_seqs = 1};
  aoqd_progress prog; /* load/quantize progress: a bar on a terminal, lines otherwise */
  aoqd_progress_init(&prog, stderr, model);
  o.progress = aoqd_progress_cb;
  o.progress_ctx = &prog;
  aoq_model *m = NULL;
  s = aoq_model_load(d, &o, &m);
  aoqd_progress_end(&prog);
  if (s) {
    aoq_device_close(d);
    return fail("load", s);
  }
  const aoq_model_info *info = aoq_model_info_get(m);
  int vocab = info->cfg.vocab_size;
  fprintf(stderr, "aoq-run: %s (%s) on %s, %.1f MiB of weights, loaded in %.2f s\n", model,
          info->format, aoq_device_name(d), (double)info->weight_bytes / 1048576.0,
          info->load_seconds);
  const aoq_tokenizer *tok = aoq_model_tokenizer(m);
  int32_t *ids = NULL;
  size_t n_ids = 0;
  int rc = 0;
  float *logits = malloc(sizeof(float) * (size_t)vocab);
  int32_t *out_ids = malloc(sizeof(int32_t) * ((size_t)max_tokens + 1));
  if (!logits || !out_ids) {
    fprintf(stderr, "aoq-run: out of memory\n");
    rc = 1;
    goto done;
  }
  if ((s = aoq_tokenizer_encode(tok, prompt, strlen(prompt), 1, &ids, &n_ids))) {
    rc = fail("tokenize", s);
    goto done;
  }
  int seq;
  if ((s = aoq_model_seq_open(m, &seq))) {
    rc = fail("sequence", s);
    goto done;
  }
  /* Prefill in chunks of max_batch_tokens (512). */
  double t0 = now_s();
  for (size_t done = 0; done < n_ids;) {
    int c = n_ids - done > 512 ? 512 : (int)(n_ids - done);
    aoq_step_item it = {
        .seq = seq, .tokens = ids + done, .n_tokens = c, .want_logits = done + (size_t)c == n_ids};
    if ((s = aoq_model_step(m, &it, 1, logits))) {
      rc = fail("prefill", s);
      goto done;
    }
    done += (size_t)c;
  }
  double t1 = now_s();
  aoq_sample_params sp = {
      .temperature = (float)temperature, .top_p = (float)top_p, .top_k = (int)top_k, .seed = seed};
  int n_out = 0;
  size_t printed = 0;
  /* Ids past the tokenizer's vocabulary (the tiny model has 512 rows, the bytes tokenizer 259)
   * have no text: they are never sampled. */
  int tok_vocab = aoq_tokenizer_vocab_size(tok);
  int sample_vocab = tok_vocab > 0 && tok_vocab < vocab ? tok_vocab : vocab;
  for (int g = 0; g < (int)max_tokens; g++) {
    int32_t t = aoq_sample_host(logits, sample_vocab, &sp);
    bool eos = false;
    for (int e = 0; e < info->cfg.n_eos; e++) eos = eos || t == info->cfg.eos_ids[e];
    if (eos && stop) break;
    out_ids[n_out++] = t;
    /* Print the text decoded so far past what was printed (keeps multi-token characters). */
    char *text = NULL;
    size_t len = 0;
    if (aoq_tokenizer_decode(tok, out_ids, (size_t)n_out, 1, &text, &len) == AOQ_OK) {
      if (len > printed) fwrite(text + printed, 1, len - printed, stdout), printed = len;
      fflush(stdout);
      free(text);
    }
    if (g + 1 == (int)max_tokens) break;
    aoq_step_item it = {
        .seq = seq, .tokens = &out_ids[n_out - 1], .n_tokens = 1, .want_logits = true};
    if ((s = aoq_model_step(m, &it, 1, logits))) {
      rc = fail("decode", s);
      goto done;
    }
  }
  double t2 = now_s();
  printf("\n");
  fprintf(stderr,
          "aoq-run: prefill %zu tokens in %.3f s (%.1f tok/s); decode %d tokens in %.3f s "
          "(%.1f tok/s)\n",
          n_ids, t1 - t0, (double)n_ids / (t1 - t0), n_out, t2 - t1,
          n_out > 1 ? (double)(n_out - 1) / (t2 - t1) : 0.0);
done:
  free(ids);
  free(logits);
  free(out_ids);
  aoq_model_free(m);
  aoq_device_close(d);
  return rc;
}
