/*
 * llama.c — the Llama forward pass over the device interface only (DESIGN.md "Layers"):
 *
 *   x = embed(ids)
 *   per layer: xn = rmsnorm(x); qkv = xn Wqkv^T; gather q | k | v heads; rope(q), rope(k);
 *              kv_store(k, v); a = paged_attention(q); x += a Wo^T;
 *              xn = rmsnorm(x); gu = xn Wgu^T; act = silu(gate) * up; x += act Wdown^T
 *   rows that want logits: gather, rmsnorm, lm_head, bf16 -> f32, copy to host
 *
 * Activations are bf16 as in HF transformers run in bf16. Every buffer is allocated once at load
 * for max_batch_tokens rows; a step only packs its metadata (token ids, positions, KV slots, block
 * tables) into one host array and uploads it with one copy. Devices with AOQ_CAP_GRAPHS capture
 * the decode step per batch-size bucket (1..64) and replay it: inside a bucket, nothing on the
 * device side depends on the host except that one copy.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "core/llama_internal.h"

static const int k_buckets[AOQ_GRAPH_BUCKETS] = {1, 2, 4, 8, 16, 32, 64};

int64_t aoq_llama_wide(const aoq_model_config *c) {
  int64_t w = 2 * (int64_t)c->intermediate_size;
  int64_t qkv = (int64_t)(c->n_heads + 2 * c->n_kv_heads) * c->head_dim;
  if (qkv > w) w = qkv;
  if (c->hidden_size > w) w = c->hidden_size;
  if ((int64_t)c->n_heads * c->head_dim > w) w = (int64_t)c->n_heads * c->head_dim;
  return w;
}

static int64_t qkv_rows(const aoq_model_config *c) {
  return (int64_t)(c->n_heads + 2 * c->n_kv_heads) * c->head_dim;
}

static size_t meta_entries(const aoq_model *m, int64_t T, int n) {
  const aoq_model_config *c = &m->cfg;
  return (size_t)(4 * T + T * (c->n_heads + 2 * c->n_kv_heads) + n + (int64_t)n * m->max_blocks);
}

aoq_status aoq_llama_alloc_state(aoq_model *m) {
  const aoq_model_config *c = &m->cfg;
  aoq_device *d = m->dev;
  int64_t T = m->max_tokens, H = c->hidden_size, wide = aoq_llama_wide(c);
  int64_t V = c->vocab_size, L = m->max_seqs;
  struct {
    void **p;
    size_t bytes;
  } bufs[] = {
      {&m->x, (size_t)(T * H) * 2},
      {&m->tmp, (size_t)(T * H) * 2},
      {&m->xn, (size_t)(T * wide) * 2},
      {&m->act, (size_t)(T * wide) * 2},
      {&m->gu, (size_t)(T * wide) * 2},
      {&m->qkv, (size_t)(T * qkv_rows(c)) * 2},
      {&m->qkvg, (size_t)(T * qkv_rows(c)) * 2},
      {&m->attn, (size_t)(T * c->n_heads * c->head_dim) * 2},
      {&m->xl, (size_t)(L * H) * 2},
      {&m->logits_bf16, (size_t)(L * V) * 2},
      {&m->logits_f32, (size_t)(L * V) * 4},
  };
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
    AOQ_TRY(aoq_dev_alloc(d, bufs[i].bytes, bufs[i].p));
    m->info.work_bytes += bufs[i].bytes;
  }
  m->meta_count = meta_entries(m, T, m->max_seqs);
  m->h_meta = malloc(m->meta_count * 4);
  m->h_gather = malloc((size_t)T * 4);
  m->h_mark = calloc((size_t)m->max_seqs, sizeof(int));
  if (!m->h_meta || !m->h_gather || !m->h_mark)
    return aoq_err(AOQ_ENOMEM, "step metadata: out of memory");
  AOQ_TRY(aoq_dev_alloc(d, m->meta_count * 4, (void **)&m->d_meta));
  AOQ_TRY(aoq_dev_alloc(d, (size_t)T * 4, (void **)&m->d_gather));
  AOQ_TRY(aoq_dev_alloc(d, (size_t)L * 4, (void **)&m->d_ids));
  int max_pos = m->max_blocks * m->page_size;
  /* The attention scratch need not grow with the rows (a backend may split long contexts only
   * when there are few rows): size it for the largest need over every row count and position. */
  m->ws_attn_bytes = 0;
  for (int64_t rows = 1; rows <= T; rows++) {
    size_t b = aoq_dev_attention_workspace(d, &m->kv[0], rows, c->n_heads, max_pos);
    if (b > m->ws_attn_bytes) m->ws_attn_bytes = b;
  }
  if (m->ws_attn_bytes) AOQ_TRY(aoq_dev_alloc(d, m->ws_attn_bytes, &m->ws_attn));
  m->info.work_bytes += m->ws_attn_bytes;
  AOQ_TRY(aoq_dev_stream_create(d, &m->stream));
  m->use_graphs = aoq_device_has(d, AOQ_CAP_GRAPHS) && !m->no_graphs;
  const char *cls = getenv("AOQ_GRAPH_CTX");
  m->graph_ctx_classes = !(cls && strcmp(cls, "0") == 0);
  return AOQ_OK;
}

bool aoq_model_use_graphs(aoq_model *m, bool on) {
  if (!m) return false;
  if (!on) aoq_llama_graphs_drop(m);
  m->use_graphs = on && aoq_device_has(m->dev, AOQ_CAP_GRAPHS);
  return m->use_graphs;
}

void aoq_llama_graphs_drop(aoq_model *m) {
  for (int i = 0; i < AOQ_GRAPH_BUCKETS; i++)
    for (int j = 0; j < AOQ_GRAPH_CTX_CLASSES; j++)
      if (m->graphs[i][j].g) {
        aoq_dev_graph_destroy(m->dev, m->graphs[i][j].g);
        m->graphs[i][j].g = NULL;
      }
}

void aoq_llama_free_state(aoq_model *m) {
  aoq_device *d = m->dev;
  aoq_llama_graphs_drop(m);
  void *bufs[] = {m->x,          m->tmp,    m->xn,       m->act,     m->gu,
                  m->qkv,        m->qkvg,   m->attn,     m->xl,      m->logits_bf16,
                  m->logits_f32, m->d_meta, m->d_gather, m->ws_attn, m->d_ids};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) aoq_dev_free(d, bufs[i]);
  if (m->stream) aoq_dev_stream_destroy(d, m->stream);
  m->stream = NULL;
  free(m->h_meta);
  free(m->h_gather);
  free(m->h_mark);
}

/* Pointers into a packed metadata array (host or device) for T rows and n items. */
typedef struct meta_view {
  int32_t *ids, *pos, *slots, *rowseq, *gather, *lrows, *tables;
} meta_view;

static meta_view meta_at(const aoq_model *m, int32_t *base, int64_t T, int n) {
  const aoq_model_config *c = &m->cfg;
  meta_view v;
  v.ids = base, v.pos = base + T, v.slots = base + 2 * T, v.rowseq = base + 3 * T;
  v.gather = base + 4 * T;
  v.lrows = v.gather + T * (c->n_heads + 2 * c->n_kv_heads);
  v.tables = v.lrows + n;
  return v;
}

/* The device work of one step: everything after the metadata upload, up to the f32 logits of
 * the L rows listed in lrows. No host synchronisation, no host-dependent values except the
 * arguments (T, n, L, max_pos), which are fixed within a graph bucket. */
static aoq_status forward(aoq_model *m, const meta_view *dv, int64_t T, int n, int64_t L,
                          int max_pos) {
  const aoq_model_config *c = &m->cfg;
  aoq_device *d = m->dev;
  aoq_stream *s = m->stream;
  const aoq_dtype bf = AOQ_DTYPE_BF16;
  int64_t H = c->hidden_size, hd = c->head_dim, nh = c->n_heads, nkv = c->n_kv_heads;
  int64_t N = qkv_rows(c);
  aoq_model_weights *w = m->w;
  uint16_t *q = m->qkvg, *k = q + T * nh * hd, *v = k + T * nkv * hd;
  aoq_attn_batch ab = {.row_seq = dv->rowseq,
                       .row_pos = dv->pos,
                       .block_tables = dv->tables,
                       .n_seqs = n,
                       .max_blocks = m->max_blocks,
                       .max_pos = max_pos};
  float scale = 1.0f / sqrtf((float)hd);

  AOQ_TRY(aoq_dev_embed(d, m->embed, c->vocab_size, dv->ids, m->x, T, H, bf, s));
  /* With fused ops a layer is 9 kernels instead of 14: the residual add of the o and down
   * projections is folded into the next rmsnorm, and the q|k|v split, both ropes and the
   * kv_store into one kernel (same bits either way). */
  const bool fused = aoq_device_has(d, AOQ_CAP_FUSED);
  const unsigned ab_ = m->ablate; /* 0 except in `aoq-bench decode --ablate` */
  if (fused)
    AOQ_TRY(aoq_dev_add_rmsnorm(d, m->x, NULL, m->norm_attn[0], m->xn, T, H, c->rms_eps, bf, s));
  for (int l = 0; l < c->n_layers; l++) {
    const aoq_qweight *lw = &w->lin[l * AOQ_LIN_PER_LAYER];
    if (!fused && !(ab_ & AOQ_ABLATE_NORM))
      AOQ_TRY(aoq_dev_rmsnorm(d, m->x, m->norm_attn[l], m->xn, T, H, c->rms_eps, bf, s));
    AOQ_TRY(aoq_dev_linear(d, &lw[AOQ_LIN_QKV], m->xn, m->qkv, T, bf, w->ws, s));
    const bool one = fused && T == n && !(ab_ & (AOQ_ABLATE_ROPE | AOQ_ABLATE_ATTN));
    if (one) {
      /* a decode batch (one row per sequence): rope, the cache store and attention in one kernel
       * where the device offers it (same bits) */
      AOQ_TRY(aoq_dev_qkv_attention(d, &m->kv[l], &ab, m->qkv, dv->slots, q, m->attn, T, (int)nh,
                                    &c->rope, scale, bf, m->ws_attn, s));
    } else if (ab_ & AOQ_ABLATE_ROPE) {
    } else if (fused) {
      AOQ_TRY(aoq_dev_qkv_rope_store(d, &m->kv[l], m->qkv, q, dv->pos, dv->slots, T, (int)nh,
                                     &c->rope, bf, s));
    } else {
      /* qkv rows are [q heads | k heads | v heads]: gather them into dense q, k, v (head_dim-wide
       * rows of a [T * N / hd, hd] view), as kv_store and attention take dense rows. */
      AOQ_TRY(aoq_dev_embed(d, m->qkv, T * (N / hd), dv->gather, m->qkvg, T * (N / hd), hd, bf, s));
      AOQ_TRY(aoq_dev_rope(d, q, dv->pos, T, (int)nh, (int)hd, nh * hd, &c->rope, bf, s));
      AOQ_TRY(aoq_dev_rope(d, k, dv->pos, T, (int)nkv, (int)hd, nkv * hd, &c->rope, bf, s));
      AOQ_TRY(aoq_dev_kv_store(d, &m->kv[l], k, v, dv->slots, T, bf, s));
    }
    if (!one && !(ab_ & AOQ_ABLATE_ATTN))
      AOQ_TRY(
          aoq_dev_attention(d, &m->kv[l], &ab, q, m->attn, T, (int)nh, scale, bf, m->ws_attn, s));
    AOQ_TRY(aoq_dev_linear(d, &lw[AOQ_LIN_O], m->attn, m->tmp, T, bf, w->ws, s));
    if (ab_ & AOQ_ABLATE_NORM) {
    } else if (fused) {
      AOQ_TRY(aoq_dev_add_rmsnorm(d, m->x, m->tmp, m->norm_mlp[l], m->xn, T, H, c->rms_eps, bf, s));
    } else {
      AOQ_TRY(aoq_dev_add(d, m->x, m->tmp, m->x, T * H, bf, s));
      AOQ_TRY(aoq_dev_rmsnorm(d, m->x, m->norm_mlp[l], m->xn, T, H, c->rms_eps, bf, s));
    }
    if (ab_ & AOQ_ABLATE_SILU) /* the gate | up projection alone */
      AOQ_TRY(aoq_dev_linear(d, &lw[AOQ_LIN_GATE_UP], m->xn, m->gu, T, bf, w->ws, s));
    else /* one kernel where the device fuses silu_mul into the GEMV */
      AOQ_TRY(
          aoq_dev_linear_silu_mul(d, &lw[AOQ_LIN_GATE_UP], m->xn, m->gu, m->act, T, bf, w->ws, s));
    AOQ_TRY(aoq_dev_linear(d, &lw[AOQ_LIN_DOWN], m->act, m->tmp, T, bf, w->ws, s));
    if ((ab_ & AOQ_ABLATE_NORM) && l + 1 < c->n_layers) {
    } else if (fused && l + 1 < c->n_layers)
      AOQ_TRY(aoq_dev_add_rmsnorm(d, m->x, m->tmp, m->norm_attn[l + 1], m->xn, T, H, c->rms_eps, bf,
                                  s));
    else
      AOQ_TRY(aoq_dev_add(d, m->x, m->tmp, m->x, T * H, bf, s));
  }
  if (L == 0) return AOQ_OK;
  AOQ_TRY(aoq_dev_embed(d, m->x, T, dv->lrows, m->xl, L, H, bf, s));
  AOQ_TRY(aoq_dev_rmsnorm(d, m->xl, m->norm_final, m->xn, L, H, c->rms_eps, bf, s));
  AOQ_TRY(aoq_dev_linear(d, &w->lm_head, m->xn, m->logits_bf16, L, bf, w->ws, s));
  /* greedy next tokens, in the graph: a step that wants only tokens moves L int32s to the host */
  return aoq_dev_argmax(d, m->logits_bf16, m->d_ids, L, c->vocab_size, bf, s);
}

/* Fills the host metadata for the items (already validated and grown), padded to T rows and n
 * items (pad rows read and write only page 0, the pad page). Returns L, the logit rows. */
static int64_t pack(aoq_model *m, const meta_view *hv, const aoq_step_item *items, int n_real,
                    int64_t T, int n) {
  const aoq_model_config *c = &m->cfg;
  int64_t r = 0, L = 0;
  int nq = c->n_heads + 2 * c->n_kv_heads;
  for (int j = 0; j < n; j++) {
    int32_t *tab = hv->tables + (int64_t)j * m->max_blocks;
    if (j < n_real) {
      const aoq_seq_state *q = &m->seqs[items[j].seq];
      memcpy(tab, q->table, (size_t)q->pages * 4);
      memset(tab + q->pages, 0, (size_t)(m->max_blocks - q->pages) * 4);
      for (int t = 0; t < items[j].n_tokens; t++, r++) {
        int p = q->len + t;
        hv->ids[r] = items[j].tokens[t];
        hv->pos[r] = p;
        hv->slots[r] = q->table[p / m->page_size] * m->page_size + p % m->page_size;
        hv->rowseq[r] = j;
      }
      if (items[j].want_logits) hv->lrows[L++] = (int32_t)(r - 1);
    } else {
      memset(tab, 0, (size_t)m->max_blocks * 4);
      hv->ids[r] = 0, hv->pos[r] = 0, hv->slots[r] = 0, hv->rowseq[r] = j;
      hv->lrows[L++] = (int32_t)r++;
    }
  }
  for (; r < T; r++) hv->ids[r] = 0, hv->pos[r] = 0, hv->slots[r] = 0, hv->rowseq[r] = 0;
  for (int64_t t = 0; t < T; t++)
    for (int h = 0; h < nq; h++) {
      /* output row order: all q heads of all rows, then all k heads, then all v heads */
      int64_t o = h < c->n_heads ? t * c->n_heads + h
                  : h < c->n_heads + c->n_kv_heads
                      ? T * c->n_heads + t * c->n_kv_heads + (h - c->n_heads)
                      : T * (c->n_heads + c->n_kv_heads) + t * c->n_kv_heads +
                            (h - c->n_heads - c->n_kv_heads);
      hv->gather[o] = (int32_t)(t * nq + h);
    }
  return L;
}

static aoq_status validate(aoq_model *m, const aoq_step_item *items, int n, int64_t *T, int64_t *L,
                           bool *decode) {
  if (n < 1 || n > m->max_seqs)
    return aoq_err(AOQ_EINVAL, "step: %d items (1..%d)", n, m->max_seqs);
  *T = 0, *L = 0, *decode = true;
  aoq_status s = AOQ_OK;
  for (int j = 0; j < n && s == AOQ_OK; j++) {
    const aoq_step_item *it = &items[j];
    if (it->seq < 0 || it->seq >= m->max_seqs || !m->seqs[it->seq].open)
      s = aoq_err(AOQ_ENOTFOUND, "step item %d: sequence %d is not open", j, it->seq);
    else if (m->h_mark[it->seq])
      s = aoq_err(AOQ_EINVAL, "step item %d: sequence %d appears twice in one step", j, it->seq);
    else if (it->n_tokens < 1 || !it->tokens)
      s = aoq_err(AOQ_EINVAL, "step item %d: %d tokens", j, it->n_tokens);
    if (s != AOQ_OK) break;
    m->h_mark[it->seq] = 1;
    for (int t = 0; t < it->n_tokens && s == AOQ_OK; t++)
      if (it->tokens[t] < 0 || it->tokens[t] >= m->cfg.vocab_size)
        s = aoq_err(AOQ_EINVAL, "step item %d: token %d = %d outside the vocabulary [0, %d)", j, t,
                    it->tokens[t], m->cfg.vocab_size);
    *T += it->n_tokens;
    *L += it->want_logits;
    *decode = *decode && it->n_tokens == 1 && it->want_logits;
  }
  for (int j = 0; j < n; j++)
    if (items[j].seq >= 0 && items[j].seq < m->max_seqs) m->h_mark[items[j].seq] = 0;
  if (s == AOQ_OK && *T > m->max_tokens)
    s = aoq_err(AOQ_EINVAL, "step: %lld tokens exceed max_batch_tokens %d", (long long)*T,
                m->max_tokens);
  for (int j = 0; j < n && s == AOQ_OK; j++)
    s = aoq_model_seq_grow(m, items[j].seq, m->seqs[items[j].seq].len + items[j].n_tokens);
  return s;
}

aoq_status aoq_llama_step(aoq_model *m, const aoq_step_item *items, int n, aoq_sample_params *sp,
                          int32_t *tokens, float *logits) {
  int64_t T = 0, L = 0;
  bool decode = false;
  AOQ_TRY(validate(m, items, n, &T, &L, &decode));
  if (L > 0 && !logits && !tokens)
    return aoq_err(AOQ_EINVAL, "step: logits wanted but no output buffer");
  aoq_device *d = m->dev;
  const aoq_dtype bf16 = AOQ_DTYPE_BF16;
  int bucket = -1;
  if (m->use_graphs && decode)
    for (int b = 0; b < AOQ_GRAPH_BUCKETS; b++)
      if (n <= k_buckets[b] && k_buckets[b] <= m->max_seqs && k_buckets[b] <= m->max_tokens) {
        bucket = b;
        break;
      }
  int64_t Tp = bucket >= 0 ? k_buckets[bucket] : T;
  int np = bucket >= 0 ? k_buckets[bucket] : n;
  meta_view hv = meta_at(m, m->h_meta, Tp, np), dv = meta_at(m, m->d_meta, Tp, np);
  int64_t Lp = pack(m, &hv, items, n, Tp, np);
  int max_pos = 0, cls = AOQ_GRAPH_CTX_CLASSES - 1;
  for (int64_t r = 0; r < T; r++)
    if (hv.pos[r] > max_pos) max_pos = hv.pos[r];
  if (bucket >= 0) { /* fixed bound: the graph serves any length up to its class's */
    int full = m->max_blocks * m->page_size - 1;
    for (int k = 0; m->graph_ctx_classes && k + 1 < AOQ_GRAPH_CTX_CLASSES; k++)
      if (max_pos < AOQ_GRAPH_CTX0 << 2 * k && (AOQ_GRAPH_CTX0 << 2 * k) - 1 < full) {
        cls = k;
        break;
      }
    max_pos = cls + 1 < AOQ_GRAPH_CTX_CLASSES ? (AOQ_GRAPH_CTX0 << 2 * cls) - 1 : full;
  }
  AOQ_TRY(aoq_dev_copy_h2d(d, m->d_meta, m->h_meta, meta_entries(m, Tp, np) * 4, m->stream));
  if (bucket >= 0) {
    aoq_decode_graph *g = &m->graphs[bucket][cls];
    if (!g->g) {
      AOQ_TRY(aoq_dev_graph_begin(d, m->stream));
      aoq_status s = forward(m, &dv, Tp, np, Lp, max_pos);
      aoq_graph *gr = NULL;
      aoq_status e = aoq_dev_graph_end(d, m->stream, &gr);
      if (s != AOQ_OK) {
        if (gr) aoq_dev_graph_destroy(d, gr);
        return s;
      }
      AOQ_TRY(e);
      g->g = gr, g->batch = k_buckets[bucket];
    }
    AOQ_TRY(aoq_dev_graph_launch(d, g->g, m->stream));
  } else {
    AOQ_TRY(forward(m, &dv, T, n, L, max_pos));
  }
  int64_t V = m->cfg.vocab_size;
  bool sampled = false;
  if (L > 0 && tokens && sp) { /* rows with a temperature replace their argmax by a sample */
    for (int64_t j = 0; j < L; j++) sampled = sampled || sp[j].temperature > 0;
    if (sampled) AOQ_TRY(aoq_dev_sample(d, m->logits_bf16, m->d_ids, L, V, sp, bf16, m->stream));
  }
  if (L > 0 && logits) {
    AOQ_TRY(
        aoq_dev_convert(d, m->logits_bf16, bf16, m->logits_f32, AOQ_DTYPE_F32, L * V, m->stream));
    AOQ_TRY(aoq_dev_copy_d2h(d, logits, m->logits_f32, (size_t)(L * V) * 4, m->stream));
  }
  if (L > 0 && tokens) AOQ_TRY(aoq_dev_copy_d2h(d, tokens, m->d_ids, (size_t)L * 4, m->stream));
  AOQ_TRY(aoq_dev_stream_sync(d, m->stream));
  /* a sampled row used one draw of its RNG state, as aoq_sample_host does */
  for (int64_t j = 0; sampled && j < L; j++)
    if (sp[j].temperature > 0) sp[j].seed += 0x9e3779b97f4a7c15ull;
  for (int j = 0; j < n; j++) m->seqs[items[j].seq].len += items[j].n_tokens;
  return AOQ_OK;
}
