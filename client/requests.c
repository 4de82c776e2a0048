/* requests.c — libaoq model requests: generate (streaming, cancel), forward, matmul, tokenize,
 * detokenize, models (aoq.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "base/error.h"
#include "client/client_internal.h"
#include "proto/wire.h"

void aoq_gen_result_free(aoq_gen_result *r) {
  if (!r) return;
  free(r->tokens);
  free(r->text);
  memset(r, 0, sizeof *r);
}

static aoq_status fill_result(aoq_client *c, const Aoq__GenerateReply *g, aoq_gen_result *res) {
  if (!res) return AOQ_OK;
  res->tokens = malloc((g->n_tokens ? g->n_tokens : 1) * sizeof(int32_t));
  res->text = strdup(g->text ? g->text : "");
  if (!res->tokens || !res->text) {
    aoq_gen_result_free(res);
    return aoqc_fail(c, AOQ_ENOMEM, "generation result");
  }
  if (g->n_tokens) memcpy(res->tokens, g->tokens, g->n_tokens * sizeof(int32_t));
  res->n_tokens = g->n_tokens;
  res->prompt_tokens = g->prompt_tokens;
  snprintf(res->finish_reason, sizeof res->finish_reason, "%s", g->finish_reason);
  return AOQ_OK;
}

aoq_status aoq_generate_ex(aoq_client *c, const char *model, const char *prompt,
                           const int32_t *tokens, size_t n_tokens, const aoq_gen_params *params,
                           aoq_token_cb cb, void *ctx, aoq_gen_result *result) {
  if (result) memset(result, 0, sizeof *result);
  if (!model || (!prompt && !tokens))
    return aoqc_fail(c, AOQ_EINVAL, "generate needs a model and a prompt");
  aoq_gen_params p = {0};
  if (params) p = *params;
  Aoq__Request req = AOQ__REQUEST__INIT;
  Aoq__Generate g = AOQ__GENERATE__INIT;
  Aoq__SamplingParams sp = AOQ__SAMPLING_PARAMS__INIT;
  sp.temperature = p.temperature;
  sp.top_p = p.top_p;
  sp.top_k = p.top_k;
  sp.seed = p.seed;
  g.model = (char *)model;
  g.prompt = (char *)(tokens ? "" : prompt);
  g.tokens = (int32_t *)tokens;
  g.n_tokens = tokens ? n_tokens : 0;
  g.sampling = &sp;
  g.max_tokens = p.max_tokens ? p.max_tokens : 64;
  g.stop_tokens = (int32_t *)p.stop_tokens;
  g.n_stop_tokens = p.stop_tokens ? p.n_stop_tokens : 0;
  g.stream = cb != NULL;
  g.add_bos = p.add_bos != 0;
  req.body_case = AOQ__REQUEST__BODY_GENERATE;
  req.generate = &g;
  req.id = c->next_id++;
  uint64_t gen_id = req.id;
  uint8_t *buf;
  size_t len;
  aoq_status s = aoq_wire_pack_request(&req, &buf, &len);
  if (s != AOQ_OK) return aoqc_fail(c, s, "%s", aoq_last_error());
  int rc = zmq_send(c->sock, buf, len, 0);
  free(buf);
  if (rc < 0) return aoqc_fail(c, AOQ_ECONN, "send failed");
  int cancelled = 0;
  uint64_t cancel_id = 0;
  for (;;) {
    Aoq__Reply *rep;
    AOQ_TRY(aoqc_recv(c, 0, c->timeout_ms, &rep));
    if (rep->id == cancel_id && cancelled) { /* the cancel's own answer: Empty, or not found */
      aoq__reply__free_unpacked(rep, NULL);
      continue;
    }
    if (rep->id != gen_id) {
      aoq__reply__free_unpacked(rep, NULL);
      continue;
    }
    if (rep->body_case == AOQ__REPLY__BODY_TOKEN) {
      if (cb && !cancelled &&
          cb(ctx, rep->token->token, rep->token->text ? rep->token->text : "")) {
        cancelled = 1;
        Aoq__Request cr = AOQ__REQUEST__INIT;
        Aoq__Cancel cm = AOQ__CANCEL__INIT;
        cm.target_request_id = gen_id;
        cr.body_case = AOQ__REQUEST__BODY_CANCEL;
        cr.cancel = &cm;
        cr.id = cancel_id = c->next_id++;
        s = aoq_wire_pack_request(&cr, &buf, &len);
        if (s == AOQ_OK) {
          zmq_send(c->sock, buf, len, 0);
          free(buf);
        }
      }
      aoq__reply__free_unpacked(rep, NULL);
      continue;
    }
    if (rep->body_case == AOQ__REPLY__BODY_ERROR) {
      aoq_status st = rep->error->status > 0 && rep->error->status < AOQ_STATUS_COUNT
                          ? (aoq_status)rep->error->status
                          : AOQ_EPROTO;
      s = aoqc_fail(c, st, "aoqd: %s", rep->error->message);
    } else if (rep->body_case == AOQ__REPLY__BODY_GENERATE) {
      s = fill_result(c, rep->generate, result);
      if (s == AOQ_OK && cancelled)
        s = aoqc_fail(c, AOQ_ECANCELED, "generation cancelled by the callback");
      if (s == AOQ_OK) c->err[0] = 0;
    } else {
      s = aoqc_fail(c, AOQ_EPROTO, "unexpected reply to generate (case %d)", (int)rep->body_case);
    }
    aoq__reply__free_unpacked(rep, NULL);
    return s;
  }
}

aoq_status aoq_generate(aoq_client *c, const char *model, const char *prompt,
                        const aoq_gen_params *params, aoq_token_cb cb, void *ctx) {
  return aoq_generate_ex(c, model, prompt, NULL, 0, params, cb, ctx, NULL);
}

aoq_status aoq_forward(aoq_client *c, const char *model, const int32_t *tokens, size_t n,
                       aoq_buffer *logits, size_t offset, uint32_t *vocab) {
  if (!logits) return aoqc_fail(c, AOQ_EINVAL, "forward needs an output buffer");
  Aoq__Request req = AOQ__REQUEST__INIT;
  Aoq__Forward f = AOQ__FORWARD__INIT;
  f.model = (char *)model;
  f.tokens = (int32_t *)tokens;
  f.n_tokens = n;
  f.out_buffer = logits->id;
  f.out_offset = offset;
  req.body_case = AOQ__REQUEST__BODY_FORWARD;
  req.forward = &f;
  Aoq__Reply *rep;
  AOQ_TRY(aoqc_call(c, &req, AOQ__REPLY__BODY_FORWARD, &rep));
  if (vocab) *vocab = rep->forward->vocab;
  aoq__reply__free_unpacked(rep, NULL);
  return AOQ_OK;
}

aoq_status aoq_matmul(aoq_client *c, const char *model, const char *layer, aoq_buffer *x,
                      size_t x_offset, aoq_buffer *y, size_t y_offset, size_t rows, int64_t *n_out,
                      int64_t *k_out) {
  if (!x || !y || !model || !layer)
    return aoqc_fail(c, AOQ_EINVAL, "matmul needs model, layer, x and y");
  Aoq__Request req = AOQ__REQUEST__INIT;
  Aoq__Matmul m = AOQ__MATMUL__INIT;
  m.model = (char *)model;
  m.layer = (char *)layer;
  m.in_buffer = x->id;
  m.in_offset = x_offset;
  m.rows = rows;
  m.out_buffer = y->id;
  m.out_offset = y_offset;
  req.body_case = AOQ__REQUEST__BODY_MATMUL;
  req.matmul = &m;
  Aoq__Reply *rep;
  AOQ_TRY(aoqc_call(c, &req, AOQ__REPLY__BODY_MATMUL, &rep));
  if (n_out) *n_out = (int64_t)rep->matmul->n;
  if (k_out) *k_out = (int64_t)rep->matmul->k;
  aoq__reply__free_unpacked(rep, NULL);
  return AOQ_OK;
}

aoq_status aoq_tokenize(aoq_client *c, const char *model, const char *text, int add_bos,
                        int32_t **ids, size_t *n) {
  Aoq__Request req = AOQ__REQUEST__INIT;
  Aoq__Tokenize t = AOQ__TOKENIZE__INIT;
  t.model = (char *)model;
  t.text = (char *)text;
  t.add_bos = add_bos != 0;
  req.body_case = AOQ__REQUEST__BODY_TOKENIZE;
  req.tokenize = &t;
  Aoq__Reply *rep;
  AOQ_TRY(aoqc_call(c, &req, AOQ__REPLY__BODY_TOKENIZE, &rep));
  size_t k = rep->tokenize->n_tokens;
  *ids = malloc((k ? k : 1) * sizeof(int32_t));
  if (!*ids) {
    aoq__reply__free_unpacked(rep, NULL);
    return aoqc_fail(c, AOQ_ENOMEM, "token ids");
  }
  if (k) memcpy(*ids, rep->tokenize->tokens, k * sizeof(int32_t));
  *n = k;
  aoq__reply__free_unpacked(rep, NULL);
  return AOQ_OK;
}

aoq_status aoq_detokenize(aoq_client *c, const char *model, const int32_t *ids, size_t n,
                          int skip_special, char **text) {
  Aoq__Request req = AOQ__REQUEST__INIT;
  Aoq__Detokenize d = AOQ__DETOKENIZE__INIT;
  d.model = (char *)model;
  d.tokens = (int32_t *)ids;
  d.n_tokens = n;
  d.skip_special = skip_special != 0;
  req.body_case = AOQ__REQUEST__BODY_DETOKENIZE;
  req.detokenize = &d;
  Aoq__Reply *rep;
  AOQ_TRY(aoqc_call(c, &req, AOQ__REPLY__BODY_DETOKENIZE, &rep));
  *text = strdup(rep->detokenize->text);
  aoq__reply__free_unpacked(rep, NULL);
  return *text ? AOQ_OK : aoqc_fail(c, AOQ_ENOMEM, "text");
}

aoq_status aoq_models(aoq_client *c, aoq_model_desc **models, size_t *n) {
  Aoq__Request req = AOQ__REQUEST__INIT;
  Aoq__Models m = AOQ__MODELS__INIT;
  req.body_case = AOQ__REQUEST__BODY_MODELS;
  req.models = &m;
  Aoq__Reply *rep;
  AOQ_TRY(aoqc_call(c, &req, AOQ__REPLY__BODY_MODELS, &rep));
  size_t k = rep->models->n_models;
  aoq_model_desc *d = calloc(k ? k : 1, sizeof *d);
  if (!d) {
    aoq__reply__free_unpacked(rep, NULL);
    return aoqc_fail(c, AOQ_ENOMEM, "model list");
  }
  for (size_t i = 0; i < k; i++) {
    const Aoq__ModelInfo *mi = rep->models->models[i];
    snprintf(d[i].name, sizeof d[i].name, "%s", mi->name);
    snprintf(d[i].format, sizeof d[i].format, "%s", mi->format);
    snprintf(d[i].state, sizeof d[i].state, "%s", mi->state);
    d[i].weight_bytes = mi->weight_bytes;
    d[i].kv_bytes = mi->kv_bytes;
    d[i].vocab_size = mi->vocab_size;
    d[i].hidden_size = mi->hidden_size;
    d[i].n_layers = mi->n_layers;
    d[i].kv_pages_total = mi->kv_pages_total;
    d[i].kv_pages_free = mi->kv_pages_free;
    d[i].live_seqs = mi->live_seqs;
  }
  *models = d;
  *n = k;
  aoq__reply__free_unpacked(rep, NULL);
  return AOQ_OK;
}
