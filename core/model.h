/*
 * model.h — a loaded Llama-family model on one device: config, quantized weights, paged KV cache,
 * and the batched step that the scheduler (daemon) and the CLIs drive. The forward pass goes only
 * through the device interface (devices/device.h).
 *
 * Threading: one thread at a time calls aoq_model_step / seq_* / linear on a model (the daemon's
 * scheduler thread); aoq_model_info may be read from any thread.
 */
#ifndef AOQ_CORE_MODEL_H
#define AOQ_CORE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/format.h"
#include "core/tokenizer.h"
#include "devices/device.h"

typedef struct aoq_model_config {
  char arch[32];        /* "llama" */
  int vocab_size, hidden_size, intermediate_size, n_layers, n_heads, n_kv_heads, head_dim;
  int max_position;
  float rms_eps;
  aoq_rope rope;
  bool tie_embeddings;
  int32_t bos_id, eos_ids[4];
  int n_eos;
} aoq_model_config;

typedef struct aoq_model_opts {
  const char *model;     /* preset name ("tiny", "llama3.1-8b") or path to a HF directory */
  bool synthetic;        /* preset with deterministic random weights (seed below) */
  uint64_t seed;         /* synthetic weights seed; default 0 */
  const char *config;    /* format config string; NULL = "bf16" */
  const char *overrides; /* per-layer overrides file, or NULL */
  int kv_pages;          /* KV-cache pages to allocate (0 = default) */
  int page_size;         /* tokens per page (0 = 16) */
  int max_seqs;          /* concurrent sequences (0 = 64) */
  int max_batch_tokens;  /* tokens per step (0 = 512) */
  const char *cache_dir; /* quantized-weight cache directory, or NULL for none */
  void (*progress)(void *ctx, const char *stage, int done, int total); /* or NULL */
  void *progress_ctx;
  bool no_graphs;        /* never capture decode graphs, even with AOQ_CAP_GRAPHS (benchmarks) */
  unsigned ablate;       /* benchmarks only, 0 elsewhere: AOQ_ABLATE_* kernels left out of every
                          * step. The outputs are then wrong; the step time tells what those
                          * kernels cost (the most a fusion of them could save). */
} aoq_model_opts;

enum {
  AOQ_ABLATE_SILU = 1 << 0, /* silu_mul */
  AOQ_ABLATE_NORM = 1 << 1, /* the layers' add_rmsnorm (fused ops) / add + rmsnorm */
  AOQ_ABLATE_ATTN = 1 << 2, /* attention */
  AOQ_ABLATE_ROPE = 1 << 3, /* qkv_rope_store (fused ops) / split, ropes and kv_store */
  /* (either of the last two runs a decode step's rope and attention as the two kernels again
   * where the device would fuse them into one, qkv_attention: the other one stays) */
};

typedef struct aoq_model aoq_model;

typedef struct aoq_model_info {
  const char *name;            /* as given in opts.model */
  aoq_model_config cfg;
  char format[32];             /* current config string */
  uint64_t weight_bytes;       /* device bytes held by weights */
  uint64_t kv_bytes;           /* device bytes of the KV pool */
  /* Device memory in use at the fullest point of the load before the KV pool (free memory
   * sampled after every linear is built and after the workspaces; context-wide, so it includes
   * what the runtime and libraries took), and the model's own workspace and activation bytes. */
  uint64_t load_peak_bytes;
  uint64_t work_bytes;
  uint64_t embed_bytes; /* the embedding table ... */
  bool embed_on_host;   /* ... held in host memory the kernels read (AOQ_CAP_HOST_MAPPED) */
  int kv_pages_total, kv_pages_free, page_size;
  int live_seqs;
  double load_seconds;
} aoq_model_info;

aoq_status aoq_model_load(aoq_device *d, const aoq_model_opts *o, aoq_model **out);
void aoq_model_free(aoq_model *m);
/* Borrowed snapshot, valid until the next call on m. */
const aoq_model_info *aoq_model_info_get(aoq_model *m);
const aoq_tokenizer *aoq_model_tokenizer(const aoq_model *m);
aoq_device *aoq_model_device(const aoq_model *m);

/* Sequences: a sequence owns KV pages; reserve grows it to hold `tokens` positions. */
aoq_status aoq_model_seq_open(aoq_model *m, int *seq);
aoq_status aoq_model_seq_reserve(aoq_model *m, int seq, int tokens); /* AOQ_EQUOTA if no pages */
int aoq_model_seq_len(const aoq_model *m, int seq);
int aoq_model_seq_pages(const aoq_model *m, int seq);
void aoq_model_seq_close(aoq_model *m, int seq);

/* One item of a step: append n_tokens tokens to sequence seq (a prefill chunk or one decode token). */
typedef struct aoq_step_item {
  int seq;
  const int32_t *tokens; /* host */
  int n_tokens;
  bool want_logits;      /* logits of the item's last token are written to the output */
} aoq_step_item;

/* Runs one batched forward pass over all items (continuous batching). For each item with
 * want_logits, writes its last token's logits (fp32, host) to logits + j*vocab, j counting only
 * those items, in order. A sequence may appear once per step; the step grows each sequence's
 * pages as needed (AOQ_EQUOTA when the pool is out of pages) and appends nothing on failure.
 * Errors: AOQ_ENOTFOUND (sequence not open), AOQ_EINVAL (token outside the vocabulary, more than
 * max_batch_tokens tokens or max_seqs items, logits wanted with NULL output). */
aoq_status aoq_model_step(aoq_model *m, const aoq_step_item *items, int n, float *logits);
/* Turns decode-graph capture on or off (off drops the captured graphs; on needs AOQ_CAP_GRAPHS).
 * Benchmarks compare both in one load. Returns whether graphs are now in use. */
bool aoq_model_use_graphs(aoq_model *m, bool on);
/* The same step, with the next token of every row that wants logits picked on the device:
 * tokens[j] (host) = greedy argmax of row j's logits (as aoq_sample_host's greedy pick), or, when
 * sp is non-NULL and sp[j].temperature > 0, the device `sample` op's draw with sp[j] (its seed is
 * then advanced one draw, as aoq_sample_host advances it; the device sampler walks the kept tokens
 * in index order, so a draw may pick another token than aoq_sample_host would). logits may be
 * NULL: then no logits cross to the host (a decode step moves L int32s instead of L*vocab floats).
 * Runs the same forward pass (and graph) as aoq_model_step. */
aoq_status aoq_model_step_sample(aoq_model *m, const aoq_step_item *items, int n,
                                 aoq_sample_params *sp, int32_t *tokens, float *logits);

/* Applies one resident linear layer, named as in the checkpoint ("model.layers.3.mlp.down_proj"
 * or with ".weight"), to x[rows, k] bf16 host -> y[rows, n] bf16 host. AOQ_ENOTFOUND/AOQ_ESHAPE.
 * q/k/v and gate/up are resident as fused linears (qkv, gate_up): a single one of them runs the
 * fused linear and returns its rows of the output. */
aoq_status aoq_model_linear(aoq_model *m, const char *name, const uint16_t *x, uint16_t *y,
                            int64_t rows, int64_t *n_out, int64_t *k_out);
/* The same with each operand in host memory or in device memory of the model's device (x_dev,
 * y_dev: e.g. a client's buffer imported through IPC). Device operands are copied device to
 * device through the linear's workspace (kernels may read whole tiles past the last row, which a
 * client allocation of exactly rows x k would not hold), never through host memory. */
aoq_status aoq_model_linear_mem(aoq_model *m, const char *name, const void *x, bool x_dev, void *y,
                                bool y_dev, int64_t rows, int64_t *n_out, int64_t *k_out);
/* Writes the fp32 logits (vocab floats) of logits row `row` of the last step (any step; its host
 * logits may be NULL) into dst, device memory of the model's device, converted on the device from
 * the step's bf16 logits, and waits for it. AOQ_EINVAL on a bad row. */
aoq_status aoq_model_logits_to_device(aoq_model *m, int row, void *dst);
/* Shape of a named linear (for validating requests); AOQ_ENOTFOUND. */
aoq_status aoq_model_linear_shape(aoq_model *m, const char *name, int64_t *n, int64_t *k);

/* Live reconfiguration in two phases so that quantization can run off the scheduler thread:
 * prepare quantizes every layer into a new weight set from the kept source weights (safe to run
 * concurrently with steps), commit swaps it in between two steps and frees the old set. */
typedef struct aoq_model_weights aoq_model_weights;
aoq_status aoq_model_prepare(aoq_model *m, const char *config, aoq_model_weights **out);
void aoq_model_commit(aoq_model *m, aoq_model_weights *w);
void aoq_model_weights_free(aoq_model *m, aoq_model_weights *w);

/* Sampling on host logits, deterministic per params.seed (which it advances). */
int32_t aoq_sample_host(const float *logits, int64_t vocab, aoq_sample_params *p);

/* Presets: fills cfg for "tiny" or "llama3.1-8b"; AOQ_ENOTFOUND otherwise. */
aoq_status aoq_model_preset(const char *name, aoq_model_config *cfg);

#endif
