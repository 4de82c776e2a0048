/* sched.c — the scheduler thread: continuous batching over all sessions' sequences (sched.h). */
#include "daemon/sched.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "base/log.h"
#include "daemon/batch.h"
#include "proto/wire.h"

#define MAX_SEQS 1024
#define SCRATCH_BYTES (4u << 20)

typedef struct seq {
  aoqd_addr addr;
  aoqd_model *dm;
  aoqd_buffer *out_buf; /* forward: logits destination (reference held) */
  uint64_t out_off;
  uint64_t session;
  int tenant, id, pages;
  int32_t *prompt;
  int n_prompt, prefilled;
  int32_t *out;
  int n_out, max_tokens;
  int32_t stop[AOQ__LIMITS__MAX_STOP_TOKENS];
  int n_stop;
  aoq_sample_params sp;
  int stream, forward, running;
  int32_t cur;
} seq;

struct aoqd_sched {
  aoqd_sched_opts o;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  aoqd_job *head, *tail; /* submitted, not yet taken */
  int stop, queued, live, busy_work, processing;
  void *push;
  uint8_t *scratch;
  seq *seqs[MAX_SEQS];
  int n_seqs;
  unsigned rr;
  /* per-step arrays, allocated once */
  aoqd_plan_seq plan[MAX_SEQS];
  int take[MAX_SEQS], idx[MAX_SEQS];
  aoq_step_item items[MAX_SEQS];
  aoqd_quota quota[AOQD_MAX_TENANTS];
  int t_live[AOQD_MAX_TENANTS], t_pages[AOQD_MAX_TENANTS], t_queued[AOQD_MAX_TENANTS];
  uint64_t t_tokens[AOQD_MAX_TENANTS];
};

void aoqd_job_free(aoqd_job *j) {
  if (!j) return;
  if (j->req) aoq__request__free_unpacked(j->req, NULL);
  aoqd_buffer_unref(j->in);
  aoqd_buffer_unref(j->out);
  free(j);
}

/* ---- replies ---------------------------------------------------------------------------- */

static void send_reply(aoqd_sched *s, const aoqd_addr *a, Aoq__Reply *r) {
  r->id = a->req_id;
  size_t n = aoq__reply__get_packed_size(r);
  uint8_t *buf = n <= SCRATCH_BYTES ? s->scratch : malloc(n);
  if (!buf) {
    AOQ_ERROR("reply of %zu bytes: out of memory", n);
    return;
  }
  aoq__reply__pack(r, buf);
  aoqd_addr hdr = *a;
  /* req_id travels inside the packed reply; the header only routes */
  if (zmq_send(s->push, &hdr, sizeof hdr, ZMQ_SNDMORE) < 0 || zmq_send(s->push, buf, n, 0) < 0)
    AOQ_ERROR("scheduler reply lost|errno=%d", errno);
  if (buf != s->scratch) free(buf);
}

static void send_error(aoqd_sched *s, const aoqd_addr *a, aoq_status st, const char *msg) {
  Aoq__Reply r = AOQ__REPLY__INIT;
  Aoq__Error e = AOQ__ERROR__INIT;
  e.status = (uint32_t)st;
  e.message = (char *)msg;
  r.body_case = AOQ__REPLY__BODY_ERROR;
  r.error = &e;
  send_reply(s, a, &r);
}

static void send_last_error(aoqd_sched *s, const aoqd_addr *a, aoq_status st) {
  send_error(s, a, st, aoq_last_error());
}

/* ---- sequences -------------------------------------------------------------------------- */

static void seq_free(aoqd_sched *s, seq *q) {
  if (q->running) {
    aoq_model_seq_close(q->dm->m, q->id);
    s->t_live[q->tenant]--;
    s->t_pages[q->tenant] -= q->pages;
  } else {
    s->t_queued[q->tenant]--;
  }
  aoqd_buffer_unref(q->out_buf);
  free(q->prompt);
  free(q->out);
  free(q);
}

static void seq_remove(aoqd_sched *s, int i) {
  seq_free(s, s->seqs[i]);
  memmove(s->seqs + i, s->seqs + i + 1, (size_t)(s->n_seqs - i - 1) * sizeof s->seqs[0]);
  s->n_seqs--;
}

static void finish_generate(aoqd_sched *s, seq *q, const char *reason) {
  Aoq__Reply r = AOQ__REPLY__INIT;
  Aoq__GenerateReply g = AOQ__GENERATE_REPLY__INIT;
  char *text = NULL;
  size_t tl = 0;
  const aoq_tokenizer *tok = aoq_model_tokenizer(q->dm->m);
  if (tok && aoq_tokenizer_decode(tok, q->out, (size_t)q->n_out, 1, &text, &tl) != AOQ_OK)
    text = NULL;
  g.n_tokens = (size_t)q->n_out;
  g.tokens = q->out;
  g.text = text ? text : (char *)"";
  g.prompt_tokens = (uint32_t)q->n_prompt;
  g.finish_reason = (char *)reason;
  r.body_case = AOQ__REPLY__BODY_GENERATE;
  r.generate = &g;
  send_reply(s, &q->addr, &r);
  free(text);
}

/* Common validation of model + prompt for generate and forward; fills q. */
static aoq_status seq_from_request(aoqd_sched *s, const aoqd_job *j, seq *q) {
  const Aoq__Request *rq = j->req;
  const char *model =
      rq->body_case == AOQ__REQUEST__BODY_GENERATE ? rq->generate->model : rq->forward->model;
  q->dm = aoqd_models_find(s->o.models, model);
  if (!q->dm) return aoq_err(AOQ_ENOTFOUND, "unknown model '%s'", model);
  const aoq_model_info *info = aoq_model_info_get(q->dm->m);
  int32_t *ids = NULL;
  size_t n = 0;
  int32_t *src = NULL;
  if (rq->body_case == AOQ__REQUEST__BODY_GENERATE) {
    Aoq__Generate *g = rq->generate;
    if (g->n_tokens) {
      src = g->tokens;
      n = g->n_tokens;
    } else {
      const aoq_tokenizer *tok = aoq_model_tokenizer(q->dm->m);
      if (!tok) return aoq_err(AOQ_EUNSUPPORTED, "model '%s' has no tokenizer", model);
      AOQ_TRY(aoq_tokenizer_encode(tok, g->prompt, strlen(g->prompt), g->add_bos, &ids, &n));
    }
    if (g->max_tokens == 0) {
      free(ids);
      return aoq_err(AOQ_EINVAL, "max_tokens must be at least 1");
    }
    q->max_tokens = (int)(g->max_tokens > AOQ_MAX_TOKENS ? AOQ_MAX_TOKENS : g->max_tokens);
    if (g->n_stop_tokens > AOQ_MAX_STOP_TOKENS) {
      free(ids);
      return aoq_err(AOQ_EINVAL, "%zu stop tokens (at most %zu)", g->n_stop_tokens,
                     AOQ_MAX_STOP_TOKENS);
    }
    if (g->n_stop_tokens) {
      for (size_t i = 0; i < g->n_stop_tokens; i++) q->stop[i] = g->stop_tokens[i];
      q->n_stop = (int)g->n_stop_tokens;
    } else {
      for (int i = 0; i < info->cfg.n_eos && i < 4; i++)
        q->stop[q->n_stop++] = info->cfg.eos_ids[i];
    }
    if (g->sampling) {
      q->sp.temperature = g->sampling->temperature;
      q->sp.top_p = g->sampling->top_p > 0 ? g->sampling->top_p : 1.0f;
      q->sp.top_k = g->sampling->top_k;
      q->sp.seed = g->sampling->seed;
    } else {
      q->sp.top_p = 1.0f;
    }
    q->stream = g->stream;
  } else {
    src = rq->forward->tokens;
    n = rq->forward->n_tokens;
    q->forward = 1;
    q->max_tokens = 0;
  }
  if (n == 0 || n > AOQ_MAX_TOKENS) {
    free(ids);
    return aoq_err(AOQ_EINVAL, "prompt of %zu tokens (expected 1..%zu)", n, AOQ_MAX_TOKENS);
  }
  if (!ids) {
    ids = malloc(n * sizeof *ids);
    if (!ids) return aoq_err(AOQ_ENOMEM, "prompt copy");
    memcpy(ids, src, n * sizeof *ids);
  }
  q->prompt = ids;
  q->n_prompt = (int)n;
  for (size_t i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= info->cfg.vocab_size)
      return aoq_err(AOQ_EINVAL, "token %d at position %zu outside the vocabulary (0..%d)", ids[i],
                     i, info->cfg.vocab_size - 1);
  long total = (long)n + q->max_tokens;
  if (info->cfg.max_position > 0 && total > info->cfg.max_position)
    return aoq_err(AOQ_EINVAL, "prompt %zu + max_tokens %d exceeds the model's %d positions", n,
                   q->max_tokens, info->cfg.max_position);
  int ps = q->dm->page_size;
  q->pages = (int)((total + ps - 1) / ps);
  if (info->kv_pages_total > 0 && q->pages > info->kv_pages_total)
    return aoq_err(AOQ_EQUOTA, "request needs %d KV pages, the model has %d", q->pages,
                   info->kv_pages_total);
  int qp = s->quota[q->tenant].kv_pages;
  if (qp > 0 && q->pages > qp)
    return aoq_err(AOQ_EQUOTA, "request needs %d KV pages, the tenant's quota is %d", q->pages, qp);
  if (!q->forward) {
    q->out = malloc((size_t)q->max_tokens * sizeof *q->out);
    if (!q->out) return aoq_err(AOQ_ENOMEM, "output of %d tokens", q->max_tokens);
  }
  return AOQ_OK;
}

static void start_seq(aoqd_sched *s, aoqd_job *j) {
  if (s->n_seqs == MAX_SEQS) {
    send_error(s, &j->addr, AOQ_EBUSY, "the daemon holds its maximum of sequences; retry later");
    return;
  }
  seq *q = calloc(1, sizeof *q);
  if (!q) {
    send_error(s, &j->addr, AOQ_ENOMEM, "sequence record");
    return;
  }
  q->addr = j->addr;
  q->session = j->session;
  q->tenant = j->tenant;
  s->t_queued[q->tenant]++; /* seq_free undoes this for a sequence that never ran */
  aoq_status st = seq_from_request(s, j, q);
  if (st == AOQ_OK && q->forward) {
    uint64_t need = (uint64_t)aoq_model_info_get(q->dm->m)->cfg.vocab_size * sizeof(float);
    uint64_t off = j->req->forward->out_offset;
    if (!j->out || off > j->out->shm.size || need > j->out->shm.size - off || off % 4)
      st = aoq_err(AOQ_ESHAPE, "forward output needs %llu bytes at a 4-aligned offset %llu",
                   (unsigned long long)need, (unsigned long long)off);
    q->out_buf = j->out;
    q->out_off = off;
    j->out = NULL;
  }
  if (st != AOQ_OK) {
    send_last_error(s, &j->addr, st);
    seq_free(s, q);
    return;
  }
  s->seqs[s->n_seqs++] = q;
}

/* Admits waiting sequences whose tenant quota and the model's KV pool allow it (FIFO). */
static void admit(aoqd_sched *s) {
  for (int i = 0; i < s->n_seqs; i++) {
    seq *q = s->seqs[i];
    if (q->running) continue;
    const aoqd_quota *qt = &s->quota[q->tenant];
    if (qt->max_seqs > 0 && s->t_live[q->tenant] >= qt->max_seqs) continue;
    if (qt->kv_pages > 0 && s->t_pages[q->tenant] + q->pages > qt->kv_pages) continue;
    if (aoq_model_seq_open(q->dm->m, &q->id) != AOQ_OK) continue;
    if (aoq_model_seq_reserve(q->dm->m, q->id, q->n_prompt + q->max_tokens) != AOQ_OK) {
      aoq_model_seq_close(q->dm->m, q->id);
      continue;
    }
    q->pages = aoq_model_seq_pages(q->dm->m, q->id);
    q->running = 1;
    s->t_queued[q->tenant]--;
    s->t_live[q->tenant]++;
    s->t_pages[q->tenant] += q->pages;
  }
}

static int is_stop(const seq *q, int32_t t) {
  for (int i = 0; i < q->n_stop; i++)
    if (q->stop[i] == t) return 1;
  return 0;
}

/* One step of one model over its running sequences. Returns tokens generated, -1 if nothing ran. */
static long step_model(aoqd_sched *s, aoqd_model *dm) {
  int n = 0;
  for (int i = 0; i < s->n_seqs && n < MAX_SEQS; i++) {
    seq *q = s->seqs[i];
    if (!q->running || q->dm != dm) continue;
    int dec = q->prefilled == q->n_prompt;
    s->plan[n] = (aoqd_plan_seq){q->tenant, s->quota[q->tenant].priority,
                                 dec ? 1 : q->n_prompt - q->prefilled, dec};
    s->idx[n++] = i;
  }
  if (!n) return -1;
  int budget = s->o.max_batch_tokens > 0 ? s->o.max_batch_tokens : 512;
  int k = aoqd_plan_step(s->plan, n, budget, dm->max_rows, 16, s->rr++, s->take);
  if (!k) return -1;
  int m = 0;
  for (int j = 0; j < n; j++) {
    if (!s->take[j]) continue;
    seq *q = s->seqs[s->idx[j]];
    aoq_step_item *it = &s->items[m];
    it->seq = q->id;
    if (s->plan[j].decode) {
      it->tokens = &q->cur;
      it->n_tokens = 1;
      it->want_logits = true;
    } else {
      it->tokens = q->prompt + q->prefilled;
      it->n_tokens = s->take[j];
      it->want_logits = q->prefilled + s->take[j] == q->n_prompt;
    }
    s->idx[m++] = s->idx[j]; /* m <= j: compacting in place is safe */
  }
  /* The next tokens are picked on the device (greedy in the decode graph, sampled after it):
   * only forward requests, which return raw logits, need the fp32 logits on the host. */
  aoq_sample_params sp[MAX_SEQS];
  int32_t picked[MAX_SEQS];
  int n_lg = 0;
  bool need_logits = false;
  for (int j = 0; j < m; j++) {
    if (!s->items[j].want_logits) continue;
    seq *q = s->seqs[s->idx[j]];
    /* host logits only for forward rows into shared memory; device buffers take the row from
     * the device (aoq_model_logits_to_device) */
    need_logits = need_logits || (q->forward && !q->out_buf->device);
    sp[n_lg++] = q->forward ? (aoq_sample_params){.temperature = 0, .top_p = 1} : q->sp;
  }
  double t0 = aoqd_now();
  aoq_status st =
      aoq_model_step_sample(dm->m, s->items, m, sp, picked, need_logits ? dm->logits : NULL);
  if (st != AOQ_OK) {
    char msg[300];
    snprintf(msg, sizeof msg, "model step failed: %s", aoq_last_error());
    AOQ_ERROR("step failed|model=%s error=\"%s\"", dm->name, aoq_last_error());
    for (int j = m - 1; j >= 0; j--) {
      send_error(s, &s->seqs[s->idx[j]]->addr, st, msg);
      seq_remove(s, s->idx[j]);
    }
    return 0;
  }
  uint64_t produced = 0;
  int lj = 0;
  int done[MAX_SEQS], nd = 0;
  for (int j = 0; j < m; j++) {
    seq *q = s->seqs[s->idx[j]];
    aoq_step_item *it = &s->items[j];
    if (it->tokens != &q->cur) q->prefilled += it->n_tokens;
    if (!it->want_logits) continue;
    const float *lg = dm->logits + (size_t)lj * (size_t)dm->vocab;
    int32_t t = picked[lj];
    if (!q->forward) q->sp.seed = sp[lj].seed; /* one draw used where the row sampled */
    lj++;
    if (q->forward) {
      /* a device buffer gets the device's fp32 row, device to device (the step wrote logits) */
      aoq_status fs = AOQ_OK;
      if (q->out_buf->device)
        fs = aoq_model_logits_to_device(dm->m, lj - 1, (uint8_t *)q->out_buf->dptr + q->out_off);
      else
        memcpy((uint8_t *)q->out_buf->shm.base + q->out_off, lg, (size_t)dm->vocab * sizeof(float));
      if (fs != AOQ_OK) {
        send_last_error(s, &q->addr, fs);
        done[nd++] = s->idx[j];
        continue;
      }
      Aoq__Reply r = AOQ__REPLY__INIT;
      Aoq__ForwardReply f = AOQ__FORWARD_REPLY__INIT;
      f.vocab = (uint32_t)dm->vocab;
      f.bytes = (uint64_t)dm->vocab * sizeof(float);
      r.body_case = AOQ__REPLY__BODY_FORWARD;
      r.forward = &f;
      send_reply(s, &q->addr, &r);
      done[nd++] = s->idx[j];
      continue;
    }
    q->out[q->n_out++] = t;
    q->cur = t;
    produced++;
    s->t_tokens[q->tenant]++;
    int stop = is_stop(q, t);
    if (q->stream) {
      Aoq__Reply r = AOQ__REPLY__INIT;
      Aoq__TokenEvent e = AOQ__TOKEN_EVENT__INIT;
      e.token = t;
      e.index = (uint32_t)(q->n_out - 1);
      /* the token's own bytes; the tokenizer allocates the string (streaming only) */
      char *text = NULL;
      size_t tl;
      const aoq_tokenizer *tok = aoq_model_tokenizer(dm->m);
      if (tok && aoq_tokenizer_decode(tok, &t, 1, 1, &text, &tl) != AOQ_OK) text = NULL;
      e.text = text ? text : (char *)"";
      r.body_case = AOQ__REPLY__BODY_TOKEN;
      r.token = &e;
      r.more = true;
      send_reply(s, &q->addr, &r);
      free(text);
    }
    if (stop || q->n_out == q->max_tokens) {
      finish_generate(s, q, stop ? "stop" : "length");
      done[nd++] = s->idx[j];
    }
  }
  aoqd_metrics_step(s->o.mx, (uint32_t)((aoqd_now() - t0) * 1e6), produced);
  /* idx are ascending in seqs order; remove from the back */
  for (int j = nd - 1; j >= 0; j--) seq_remove(s, done[j]);
  return (long)produced;
}

/* ---- jobs ------------------------------------------------------------------------------- */

static void do_matmul(aoqd_sched *s, aoqd_job *j) {
  Aoq__Matmul *mm = j->req->matmul;
  aoqd_model *dm = aoqd_models_find(s->o.models, mm->model);
  if (!dm) return send_error(s, &j->addr, AOQ_ENOTFOUND, "unknown model");
  int64_t n, k;
  aoq_status st = aoq_model_linear_shape(dm->m, mm->layer, &n, &k);
  if (st != AOQ_OK) return send_last_error(s, &j->addr, st);
  uint64_t rows = mm->rows;
  uint64_t in_b = rows * (uint64_t)k * 2, out_b = rows * (uint64_t)n * 2;
  char msg[256];
  if (rows == 0 || rows > (1u << 24)) {
    snprintf(msg, sizeof msg, "rows %llu not in 1..2^24", (unsigned long long)rows);
    return send_error(s, &j->addr, AOQ_ESHAPE, msg);
  }
  if (mm->in_offset % 2 || mm->out_offset % 2)
    return send_error(s, &j->addr, AOQ_EINVAL, "bf16 buffers need even offsets");
  if (mm->in_offset > j->in->shm.size || in_b > j->in->shm.size - mm->in_offset ||
      mm->out_offset > j->out->shm.size || out_b > j->out->shm.size - mm->out_offset) {
    snprintf(msg, sizeof msg,
             "layer %s is [%lld x %lld]: input needs %llu bytes at offset %llu of %zu, output "
             "%llu at %llu of %zu",
             mm->layer, (long long)n, (long long)k, (unsigned long long)in_b,
             (unsigned long long)mm->in_offset, j->in->shm.size, (unsigned long long)out_b,
             (unsigned long long)mm->out_offset, j->out->shm.size);
    return send_error(s, &j->addr, AOQ_ESHAPE, msg);
  }
  /* device buffers are memory of the daemon's one device, which every model runs on */
  const uint8_t *xb = j->in->device ? j->in->dptr : j->in->shm.base;
  uint8_t *yb = j->out->device ? j->out->dptr : j->out->shm.base;
  st = aoq_model_linear_mem(dm->m, mm->layer, xb + mm->in_offset, j->in->device,
                            yb + mm->out_offset, j->out->device, (int64_t)rows, &n, &k);
  if (st != AOQ_OK) return send_last_error(s, &j->addr, st);
  Aoq__Reply r = AOQ__REPLY__INIT;
  Aoq__MatmulReply mr = AOQ__MATMUL_REPLY__INIT;
  mr.n = (uint64_t)n;
  mr.k = (uint64_t)k;
  r.body_case = AOQ__REPLY__BODY_MATMUL;
  r.matmul = &mr;
  send_reply(s, &j->addr, &r);
}

static void do_tokenize(aoqd_sched *s, aoqd_job *j) {
  const Aoq__Request *rq = j->req;
  int detok = rq->body_case == AOQ__REQUEST__BODY_DETOKENIZE;
  aoqd_model *dm =
      aoqd_models_find(s->o.models, detok ? rq->detokenize->model : rq->tokenize->model);
  if (!dm) return send_error(s, &j->addr, AOQ_ENOTFOUND, "unknown model");
  const aoq_tokenizer *tok = aoq_model_tokenizer(dm->m);
  if (!tok) return send_error(s, &j->addr, AOQ_EUNSUPPORTED, "model has no tokenizer");
  Aoq__Reply r = AOQ__REPLY__INIT;
  aoq_status st;
  if (detok) {
    Aoq__Detokenize *d = rq->detokenize;
    if (d->n_tokens > AOQ_MAX_TOKENS) return send_error(s, &j->addr, AOQ_EINVAL, "too many tokens");
    for (size_t i = 0; i < d->n_tokens; i++)
      if (d->tokens[i] < 0 || d->tokens[i] >= dm->vocab)
        return send_error(s, &j->addr, AOQ_EINVAL, "token id outside the vocabulary");
    char *text;
    size_t len;
    st = aoq_tokenizer_decode(tok, d->tokens, d->n_tokens, d->skip_special, &text, &len);
    if (st != AOQ_OK) return send_last_error(s, &j->addr, st);
    Aoq__DetokenizeReply dr = AOQ__DETOKENIZE_REPLY__INIT;
    dr.text = text;
    r.body_case = AOQ__REPLY__BODY_DETOKENIZE;
    r.detokenize = &dr;
    send_reply(s, &j->addr, &r);
    free(text);
  } else {
    int32_t *ids;
    size_t n;
    st = aoq_tokenizer_encode(tok, rq->tokenize->text, strlen(rq->tokenize->text),
                              rq->tokenize->add_bos, &ids, &n);
    if (st != AOQ_OK) return send_last_error(s, &j->addr, st);
    Aoq__TokenizeReply tr = AOQ__TOKENIZE_REPLY__INIT;
    tr.tokens = ids;
    tr.n_tokens = n;
    r.body_case = AOQ__REPLY__BODY_TOKENIZE;
    r.tokenize = &tr;
    send_reply(s, &j->addr, &r);
    free(ids);
  }
}

static void do_models(aoqd_sched *s, aoqd_job *j) {
  aoqd_models *ms = s->o.models;
  Aoq__ModelInfo mi[AOQD_MAX_MODELS], *mp[AOQD_MAX_MODELS];
  char fmt[AOQD_MAX_MODELS][32];
  for (int i = 0; i < ms->n; i++) {
    const aoq_model_info *info = aoq_model_info_get(ms->items[i]->m);
    aoq__model_info__init(&mi[i]);
    snprintf(fmt[i], sizeof fmt[i], "%s", info->format);
    mi[i].name = ms->items[i]->name;
    mi[i].format = fmt[i];
    mi[i].weight_bytes = info->weight_bytes;
    mi[i].kv_bytes = info->kv_bytes;
    mi[i].vocab_size = info->cfg.vocab_size;
    mi[i].hidden_size = info->cfg.hidden_size;
    mi[i].n_layers = info->cfg.n_layers;
    mi[i].kv_pages_total = info->kv_pages_total;
    mi[i].kv_pages_free = info->kv_pages_free;
    mi[i].live_seqs = info->live_seqs;
    mi[i].state = aoqd_models_reconfiguring(ms, ms->items[i]) ? "reconfiguring" : "ready";
    mp[i] = &mi[i];
  }
  Aoq__Reply r = AOQ__REPLY__INIT;
  Aoq__ModelsReply mr = AOQ__MODELS_REPLY__INIT;
  mr.n_models = (size_t)ms->n;
  mr.models = mp;
  r.body_case = AOQ__REPLY__BODY_MODELS;
  r.models = &mr;
  send_reply(s, &j->addr, &r);
}

static void send_empty(aoqd_sched *s, const aoqd_addr *a) {
  Aoq__Reply r = AOQ__REPLY__INIT;
  Aoq__Empty e = AOQ__EMPTY__INIT;
  r.body_case = AOQ__REPLY__BODY_EMPTY;
  r.empty = &e;
  send_reply(s, a, &r);
}

static void do_cancel(aoqd_sched *s, aoqd_job *j) {
  uint64_t target = j->req->cancel->target_request_id;
  for (int i = 0; i < s->n_seqs; i++) {
    seq *q = s->seqs[i];
    if (q->session != j->session || q->addr.req_id != target) continue;
    if (q->forward)
      send_error(s, &q->addr, AOQ_ECANCELED, "forward cancelled");
    else
      finish_generate(s, q, "cancel");
    seq_remove(s, i);
    return send_empty(s, &j->addr);
  }
  send_error(s, &j->addr, AOQ_ENOTFOUND, "no running request with that id in this session");
}

static void do_admin(aoqd_sched *s, aoqd_job *j) {
  Aoq__Admin *a = j->req->admin;
  aoqd_models *ms = s->o.models;
  aoq_status st;
  if (a->cmd == AOQ__ADMIN__CMD__UNLOAD) {
    aoqd_model *dm = aoqd_models_find(ms, a->model);
    if (!dm) return send_error(s, &j->addr, AOQ_ENOTFOUND, "unknown model");
    if (aoqd_models_reconfiguring(ms, dm))
      return send_error(s, &j->addr, AOQ_EBUSY, "model is being reconfigured");
    for (int i = s->n_seqs - 1; i >= 0; i--)
      if (s->seqs[i]->dm == dm) {
        send_error(s, &s->seqs[i]->addr, AOQ_ECANCELED, "model unloaded");
        seq_remove(s, i);
      }
    st = aoqd_models_unload(ms, a->model);
    if (st != AOQ_OK) return send_last_error(s, &j->addr, st);
    return send_empty(s, &j->addr);
  }
  aoqd_addr *cookie = malloc(sizeof *cookie);
  if (!cookie) return send_error(s, &j->addr, AOQ_ENOMEM, "admin cookie");
  *cookie = j->addr;
  int kind = a->cmd == AOQ__ADMIN__CMD__LOAD ? AOQD_WORK_LOAD : AOQD_WORK_RECONFIGURE;
  st = aoqd_models_start(ms, kind, a->model, a->config, a->synthetic, cookie);
  if (st != AOQ_OK) {
    free(cookie);
    send_last_error(s, &j->addr, st);
  }
}

static void handle(aoqd_sched *s, aoqd_job *j) {
  if (j->kind == AOQD_JOB_SESSION_GONE) {
    int n = 0;
    for (int i = s->n_seqs - 1; i >= 0; i--)
      if (s->seqs[i]->session == j->session) {
        seq_remove(s, i);
        n++;
      }
    if (n)
      AOQ_INFO("cancelled sequences of a closed session|session=%llu seqs=%d",
               (unsigned long long)j->session, n);
    return;
  }
  if (j->kind == AOQD_JOB_ADMIN) return do_admin(s, j);
  switch (j->req->body_case) {
    case AOQ__REQUEST__BODY_GENERATE:
    case AOQ__REQUEST__BODY_FORWARD:
      return start_seq(s, j);
    case AOQ__REQUEST__BODY_MATMUL:
      return do_matmul(s, j);
    case AOQ__REQUEST__BODY_TOKENIZE:
    case AOQ__REQUEST__BODY_DETOKENIZE:
      return do_tokenize(s, j);
    case AOQ__REQUEST__BODY_MODELS:
      return do_models(s, j);
    case AOQ__REQUEST__BODY_CANCEL:
      return do_cancel(s, j);
    default:
      return send_error(s, &j->addr, AOQ_EINTERNAL, "request type not served by the scheduler");
  }
}

/* ---- the loop --------------------------------------------------------------------------- */

static void publish(aoqd_sched *s) {
  aoqd_metrics *mx = s->o.mx;
  int live = 0, queued = 0;
  pthread_mutex_lock(&mx->mu);
  for (int t = 0; t < mx->n_tenants; t++) {
    mx->tenants[t].live_seqs = s->t_live[t];
    mx->tenants[t].queued = s->t_queued[t];
    mx->tenants[t].kv_pages = s->t_pages[t];
    mx->tenants[t].tokens = s->t_tokens[t];
    s->quota[t] = mx->tenants[t].quota;
    live += s->t_live[t];
    queued += s->t_queued[t];
  }
  mx->live_seqs = live;
  mx->queue_depth = queued;
  pthread_mutex_unlock(&mx->mu);
  pthread_mutex_lock(&s->mu);
  s->live = live + queued;
  s->busy_work = s->o.models->n_work;
  s->processing = 0;
  pthread_mutex_unlock(&s->mu);
  aoqd_models_publish(s->o.models, mx);
}

static void *sched_main(void *arg) {
  aoqd_sched *s = arg;
  int ran = 0;
  publish(s);
  for (;;) {
    pthread_mutex_lock(&s->mu);
    if (!s->head && !s->stop && !ran) {
      if (s->n_seqs || s->o.models->n_work) {
        /* waiting sequences (quota) or a background job: look again soon */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) {
          ts.tv_sec++;
          ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
      } else {
        while (!s->head && !s->stop) pthread_cond_wait(&s->cv, &s->mu);
      }
    }
    aoqd_job *jobs = s->head;
    s->head = s->tail = NULL;
    s->queued = 0;
    if (jobs) s->processing = 1; /* not idle until publish() has counted what they started */
    int stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    /* quotas may have changed (aoqctl quota, SIGHUP) while the thread slept */
    pthread_mutex_lock(&s->o.mx->mu);
    for (int t = 0; t < s->o.mx->n_tenants; t++) s->quota[t] = s->o.mx->tenants[t].quota;
    pthread_mutex_unlock(&s->o.mx->mu);
    while (jobs) {
      aoqd_job *next = jobs->next;
      handle(s, jobs);
      aoqd_job_free(jobs);
      jobs = next;
    }
    aoq_status st;
    char detail[256];
    void *cookie;
    while (aoqd_models_poll(s->o.models, &st, detail, sizeof detail, &cookie)) {
      if (st == AOQ_OK)
        send_empty(s, cookie);
      else
        send_error(s, cookie, st, detail);
      free(cookie);
    }
    if (stop) break;
    admit(s);
    ran = 0;
    for (int i = 0; i < s->o.models->n; i++) ran |= step_model(s, s->o.models->items[i]) >= 0;
    publish(s);
  }
  while (s->n_seqs) {
    send_error(s, &s->seqs[s->n_seqs - 1]->addr, AOQ_ECANCELED, "daemon shutting down");
    seq_remove(s, s->n_seqs - 1);
  }
  publish(s);
  return NULL;
}

aoq_status aoqd_sched_start(const aoqd_sched_opts *o, aoqd_sched **out) {
  aoqd_sched *s = calloc(1, sizeof *s);
  if (!s) return aoq_err(AOQ_ENOMEM, "scheduler");
  s->o = *o;
  s->scratch = malloc(SCRATCH_BYTES);
  s->push = zmq_socket(o->zctx, ZMQ_PUSH);
  int hwm = 0;
  if (!s->scratch || !s->push || zmq_setsockopt(s->push, ZMQ_SNDHWM, &hwm, sizeof hwm) ||
      zmq_connect(s->push, o->reply_endpoint)) {
    if (s->push) zmq_close(s->push);
    free(s->scratch);
    free(s);
    return aoq_err(AOQ_EIO, "scheduler reply socket: %s", zmq_strerror(zmq_errno()));
  }
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  if (pthread_create(&s->thread, NULL, sched_main, s) != 0) {
    zmq_close(s->push);
    free(s->scratch);
    free(s);
    return aoq_err(AOQ_ENOMEM, "cannot start the scheduler thread");
  }
  *out = s;
  return AOQ_OK;
}

void aoqd_sched_submit(aoqd_sched *s, aoqd_job *j) {
  j->next = NULL;
  pthread_mutex_lock(&s->mu);
  if (s->tail)
    s->tail->next = j;
  else
    s->head = j;
  s->tail = j;
  s->queued++;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

int aoqd_sched_idle(aoqd_sched *s) {
  pthread_mutex_lock(&s->mu);
  int idle = !s->head && !s->processing && s->live == 0 && s->busy_work == 0;
  pthread_mutex_unlock(&s->mu);
  return idle;
}

void aoqd_sched_stop(aoqd_sched *s) {
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  s->stop = 1;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->thread, NULL);
  while (s->head) {
    aoqd_job *n = s->head->next;
    aoqd_job_free(s->head);
    s->head = n;
  }
  zmq_close(s->push);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s->scratch);
  free(s);
}
