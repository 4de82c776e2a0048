/*
 * llama_internal.h — private structures shared by the Llama implementation files:
 *   core/hfconfig.c  presets and HF config.json / generation_config.json parsing
 *   core/synth.c     deterministic synthetic weights
 *   core/model.c     load, source weights, quantized weight sets, KV pages, sequences, linear
 *   core/llama.c     the batched forward step (device interface only)
 *   core/sampler.c   host sampling
 *
 * Weight layout on the device: q,k,v of a layer are one fused linear qkv [(nh+2nkv)*hd, hidden]
 * (rows q | k | v as in the checkpoint), gate and up one fused gate_up [2*inter, hidden]. A single
 * checkpoint linear ("...self_attn.k_proj") is applied by running its fused linear and gathering
 * its rows (model.c, aoq_model_linear): the fused weight is the only copy on the device.
 */
#ifndef AOQ_CORE_LLAMA_INTERNAL_H
#define AOQ_CORE_LLAMA_INTERNAL_H

#include "core/model.h"
#include "core/safetensors.h"

enum { AOQ_LIN_QKV = 0, AOQ_LIN_O, AOQ_LIN_GATE_UP, AOQ_LIN_DOWN, AOQ_LIN_PER_LAYER };

/* One quantized weight set (what reconfigure swaps). */
struct aoq_model_weights {
  char format[32];
  int n_layers;
  aoq_qweight *lin; /* [n_layers * AOQ_LIN_PER_LAYER] */
  aoq_qweight lm_head;
  void *ws; /* linear workspace for max_batch_tokens rows of every weight of the set */
  size_t ws_bytes;
  uint64_t bytes; /* device bytes of the weights */
};

/* Device graph of one decode bucket (AOQ_CAP_GRAPHS). */
typedef struct aoq_decode_graph {
  aoq_graph *g;
  int batch;
} aoq_decode_graph;

#define AOQ_GRAPH_BUCKETS 7 /* 1, 2, 4, 8, 16, 32, 64 */
/* Context classes of a bucket's graphs: the attention is planned for positions below 128, 512,
 * 2048, 8192, or the whole block table (a backend splits long contexts, and short rows under a
 * long plan still pay for the split launch and its merge; the split of the keys gives the same
 * bits in every class). AOQ_GRAPH_CTX=0 keeps one graph per bucket, planned for the longest. */
#define AOQ_GRAPH_CTX_CLASSES 5
#define AOQ_GRAPH_CTX0 128

typedef struct aoq_seq_state {
  bool open;
  int len;        /* tokens whose K/V are stored */
  int pages;      /* pages owned (block table length) */
  int32_t *table; /* [max_blocks] page ids (host) */
} aoq_seq_state;

struct aoq_model {
  aoq_device *dev;
  aoq_device_info dinfo;
  aoq_model_config cfg;
  aoq_model_info info;
  uint64_t mem_base; /* device free memory when the load began (aoq_model_mem_sample) */
  uint16_t *embed_host; /* the embedding table in registered host memory (m->embed = it), or NULL */
  char name[512];
  aoq_tokenizer *tok;

  /* source of the high-precision weights: a checkpoint (mmapped) or the synthetic generator */
  aoq_st_file *st;
  bool synthetic;
  uint64_t seed;
  aoq_format_overrides *ovr;
  char cache_dir[1024]; /* quantized-weight cache directory, "" for none */
  void (*progress)(void *ctx, const char *stage, int done, int total);
  void *progress_ctx;

  /* bf16 tensors that are never quantized (device) */
  void *embed;      /* [vocab, hidden] */
  void **norm_attn; /* [n_layers] -> [hidden] */
  void **norm_mlp;
  void *norm_final;
  aoq_model_weights *w;

  /* paged KV cache: page 0 is a pad page owned by nobody (padding rows of graph buckets) */
  aoq_kv_cache *kv; /* [n_layers] */
  int n_pages, page_size, max_blocks;
  int32_t *free_pages; /* stack */
  int n_free;
  aoq_seq_state *seqs;
  int max_seqs, max_tokens;
  void *kv_mem;

  /* run state, allocated once at load for max_tokens rows (device) */
  void *x, *xn, *qkv, *qkvg, *attn, *tmp, *gu, *act, *xl, *logits_bf16, *logits_f32;
  void *ws_attn;
  size_t ws_attn_bytes;
  /* Step metadata, packed per step at offsets that depend only on (T rows, n items), so that a
   * graph captured for a bucket finds its inputs at the same addresses on every replay:
   * ids[T] | pos[T] | slots[T] | row_seq[T] | gather[T*(nh+2nkv)] | lrows[n] | tables[n*max_blocks]
   */
  int32_t *d_meta, *h_meta;
  size_t meta_count;            /* int32 entries allocated */
  int32_t *h_gather, *d_gather; /* aoq_model_linear's row gather (own region) */
  int32_t *d_ids;               /* [max_seqs] next tokens picked on the device */
  int *h_mark;                  /* [max_seqs] duplicate check */
  aoq_stream *stream;

  aoq_decode_graph graphs[AOQ_GRAPH_BUCKETS][AOQ_GRAPH_CTX_CLASSES];
  bool use_graphs, no_graphs;
  unsigned ablate; /* AOQ_ABLATE_* (core/model.h): benchmarks' timing-only ablation */
  bool graph_ctx_classes; /* graphs per context class (else one, planned for the longest) */
};

/* hfconfig.c */
aoq_status aoq_hf_config_load(const char *dir, aoq_model_config *cfg);
aoq_status aoq_hf_config_parse(const char *json, aoq_model_config *cfg);
aoq_status aoq_hf_generation_config_parse(const char *json, aoq_model_config *cfg);
aoq_status aoq_model_config_check(const aoq_model_config *cfg);

/* synth.c: fills out[n*k] (bf16) with the synthetic values of tensor `name` for `seed`. Uniform in
 * [-a, a): a = sqrt(3/k) for linears (unit output variance for unit inputs), 1 for embeddings;
 * norms are 1 +- 0.125. Same seed and name give the same bytes on every machine. */
/* Samples device free memory into info.load_peak_bytes (use above mem_base, KV pool excluded). */
void aoq_model_mem_sample(aoq_model *m);
void aoq_synth_fill(uint64_t seed, const char *name, uint16_t *out, int64_t n, int64_t k);

/* llama.c */
/* Width of the wide scratch buffers (xn, act, gu): max(2*inter, qkv rows, hidden) per row. */
int64_t aoq_llama_wide(const aoq_model_config *c);
aoq_status aoq_llama_alloc_state(aoq_model *m);
void aoq_llama_free_state(aoq_model *m);
aoq_status aoq_llama_step(aoq_model *m, const aoq_step_item *items, int n, aoq_sample_params *sp,
                          int32_t *tokens, float *logits);
void aoq_llama_graphs_drop(aoq_model *m);

/* model_quant.c: quantizes bf16 host rows src[n,k] into w on d (device buffers allocated here;
 * free with aoq_qweight_dev_free): on the device when it quantizes the format, else with the
 * host reference quantizer on `threads` threads over row blocks (0 = one per core for large
 * weights), bytes identical to aoq_qweight_quantize. */
aoq_status aoq_model_quantize_linear(aoq_device *d, const aoq_device_info *di, const aoq_format *f,
                                     const uint16_t *src, int64_t n, int64_t k, int threads,
                                     aoq_qweight *w);

/* model_cache.c: the layer linears of w (format f) from the quantized-weight cache (*hit), or
 * nothing when there is no usable cache; store writes them (failures are logged, not fatal). */
aoq_status aoq_model_cache_load(aoq_model *m, const aoq_format *f, aoq_model_weights *w, bool *hit);
void aoq_model_cache_store(aoq_model *m, const aoq_format *f, const aoq_model_weights *w);

/* model.c: KV pages for a sequence */
aoq_status aoq_model_seq_grow(aoq_model *m, int seq, int tokens);

#endif
