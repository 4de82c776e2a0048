/*
 * hfconfig.c — model configurations: the built-in presets and Hugging Face config.json /
 * generation_config.json (LlamaForCausalLM, rope_scaling "llama3" as in transformers 4.x
 * `rope_scaling` or 5.x `rope_parameters`, GQA, head_dim, tie_word_embeddings).
 */
#include <cjson/cJSON.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/file.h"
#include "core/llama_internal.h"

static void cfg_llama3_defaults(aoq_model_config *c) {
  memset(c, 0, sizeof *c);
  snprintf(c->arch, sizeof c->arch, "llama");
  c->rms_eps = 1e-5f;
  c->rope = (aoq_rope){.theta = 500000.0f,
                       .factor = 8.0f,
                       .low_freq_factor = 1.0f,
                       .high_freq_factor = 4.0f,
                       .original_max_position = 8192};
  c->bos_id = 128000;
  c->eos_ids[0] = 128001, c->eos_ids[1] = 128008, c->eos_ids[2] = 128009;
  c->n_eos = 3;
}

aoq_status aoq_model_preset(const char *name, aoq_model_config *cfg) {
  if (!name || !cfg) return aoq_err(AOQ_EINVAL, "aoq_model_preset: NULL argument");
  if (!strcmp(name, "tiny")) {
    /* Every linear has k % 256 == 0 and n % 128 == 0: qkv 384x256, o 256x256, gate_up 1536x256,
     * down 256x768, lm_head 512x256. The bytes tokenizer's specials are 256..258. */
    cfg_llama3_defaults(cfg);
    cfg->vocab_size = 512, cfg->hidden_size = 256, cfg->intermediate_size = 768;
    cfg->n_layers = 4, cfg->n_heads = 8, cfg->n_kv_heads = 2, cfg->head_dim = 32;
    cfg->max_position = 4096;
    cfg->rope.original_max_position = 256;
    cfg->bos_id = 256;
    cfg->eos_ids[0] = 257, cfg->eos_ids[1] = 258, cfg->n_eos = 2;
    return AOQ_OK;
  }
  if (!strcmp(name, "llama3.1-8b")) {
    cfg_llama3_defaults(cfg);
    cfg->vocab_size = 128256, cfg->hidden_size = 4096, cfg->intermediate_size = 14336;
    cfg->n_layers = 32, cfg->n_heads = 32, cfg->n_kv_heads = 8, cfg->head_dim = 128;
    cfg->max_position = 131072;
    return AOQ_OK;
  }
  return aoq_err(AOQ_ENOTFOUND, "unknown model preset '%s' (known: tiny, llama3.1-8b)", name);
}

/* Bounds that keep every size computed from a config inside int / int64 arithmetic; each is far
 * above any real Llama (vocab 128256, hidden 16384, 126 layers, 131072 positions). */
enum {
  AOQ_MODEL_MAX_WIDTH = 1 << 24,
  AOQ_MODEL_MAX_POSITION = 1 << 24,
  AOQ_MODEL_MAX_LAYERS = 1024,
};

aoq_status aoq_model_config_check(const aoq_model_config *c) {
  if (c->vocab_size <= 0 || c->hidden_size <= 0 || c->intermediate_size <= 0 || c->n_layers <= 0 ||
      c->n_heads <= 0 || c->n_kv_heads <= 0 || c->head_dim <= 0)
    return aoq_err(AOQ_EFORMAT,
                   "model config: every dimension must be positive (vocab %d hidden "
                   "%d inter %d layers %d heads %d kv %d head_dim %d)",
                   c->vocab_size, c->hidden_size, c->intermediate_size, c->n_layers, c->n_heads,
                   c->n_kv_heads, c->head_dim);
  if (c->n_heads % c->n_kv_heads)
    return aoq_err(AOQ_EFORMAT,
                   "model config: num_attention_heads %d is not a multiple of "
                   "num_key_value_heads %d",
                   c->n_heads, c->n_kv_heads);
  if (c->head_dim % 2) return aoq_err(AOQ_EFORMAT, "model config: head_dim %d is odd", c->head_dim);
  if (c->max_position <= 0 || c->max_position > AOQ_MODEL_MAX_POSITION)
    return aoq_err(AOQ_EFORMAT, "model config: max_position_embeddings %d (1..%d)", c->max_position,
                   AOQ_MODEL_MAX_POSITION);
  /* Row widths are int everywhere (device ops, step metadata): the widest must fit with room. */
  int64_t qkv = ((int64_t)c->n_heads + 2 * (int64_t)c->n_kv_heads) * c->head_dim;
  if (c->hidden_size > AOQ_MODEL_MAX_WIDTH ||
      2 * (int64_t)c->intermediate_size > AOQ_MODEL_MAX_WIDTH || qkv > AOQ_MODEL_MAX_WIDTH ||
      c->vocab_size > AOQ_MODEL_MAX_WIDTH || c->n_layers > AOQ_MODEL_MAX_LAYERS)
    return aoq_err(AOQ_EFORMAT,
                   "model config: dimensions too large (hidden %d, 2*intermediate %lld, "
                   "(heads+2*kv_heads)*head_dim %lld, vocab %d: at most %d each; layers %d: at "
                   "most %d)",
                   c->hidden_size, 2 * (long long)c->intermediate_size, (long long)qkv,
                   c->vocab_size, AOQ_MODEL_MAX_WIDTH, c->n_layers, AOQ_MODEL_MAX_LAYERS);
  for (int i = 0; i < c->n_eos; i++)
    if (c->eos_ids[i] < 0 || c->eos_ids[i] >= c->vocab_size)
      return aoq_err(AOQ_EFORMAT, "model config: eos_token_id %d outside the vocabulary [0, %d)",
                     c->eos_ids[i], c->vocab_size);
  if (c->bos_id < -1 || c->bos_id >= c->vocab_size)
    return aoq_err(AOQ_EFORMAT, "model config: bos_token_id %d outside the vocabulary [0, %d)",
                   c->bos_id, c->vocab_size);
  if (!(c->rms_eps > 0) || !(c->rope.theta > 0))
    return aoq_err(AOQ_EFORMAT, "model config: rms_norm_eps and rope_theta must be positive");
  return AOQ_OK;
}

/* A JSON number that is an integer in int range; the range test comes before the cast (a double
 * outside int converts with undefined behaviour), and NaN fails it. */
static bool json_as_int(const cJSON *v, int *out) {
  if (!cJSON_IsNumber(v)) return false;
  double d = v->valuedouble;
  if (!(d >= (double)INT_MIN && d <= (double)INT_MAX) || d != floor(d)) return false;
  *out = (int)d;
  return true;
}

static int json_int(const cJSON *o, const char *key, int dflt, bool *ok) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v || cJSON_IsNull(v)) return dflt;
  int r;
  if (!json_as_int(v, &r)) {
    *ok = false;
    return dflt;
  }
  return r;
}

/* A JSON number that fits a float (every caller stores one: a double outside float range
 * converts with undefined behaviour). */
static double json_num(const cJSON *o, const char *key, double dflt, bool *ok) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v || cJSON_IsNull(v)) return dflt;
  if (!cJSON_IsNumber(v) || !(fabs(v->valuedouble) <= FLT_MAX)) {
    *ok = false;
    return dflt;
  }
  return v->valuedouble;
}

/* eos_token_id: a number or a list of numbers (at most 4 kept). */
static aoq_status parse_eos(const cJSON *root, aoq_model_config *c) {
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
  if (!e || cJSON_IsNull(e)) return AOQ_OK;
  int id;
  if (cJSON_IsNumber(e)) {
    if (!json_as_int(e, &id)) return aoq_err(AOQ_EFORMAT, "eos_token_id: not an integer");
    c->eos_ids[0] = id, c->n_eos = 1;
    return AOQ_OK;
  }
  if (!cJSON_IsArray(e)) return aoq_err(AOQ_EFORMAT, "eos_token_id: expected a number or a list");
  int n = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, e) {
    if (!json_as_int(it, &id)) return aoq_err(AOQ_EFORMAT, "eos_token_id: non-integer entry");
    if (n < 4) c->eos_ids[n++] = id;
  }
  c->n_eos = n;
  return AOQ_OK;
}

aoq_status aoq_hf_config_parse(const char *json, aoq_model_config *c) {
  cJSON *root = cJSON_Parse(json);
  if (!root || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return aoq_err(AOQ_EFORMAT, "config.json: not a JSON object");
  }
  aoq_status st = AOQ_OK;
  const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
  const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
  const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
  if (!cJSON_IsString(mt) || strcmp(mt->valuestring, "llama")) {
    st = aoq_err(AOQ_EUNSUPPORTED, "config.json: unsupported model_type '%s' (aoq serves 'llama')",
                 cJSON_IsString(mt) ? mt->valuestring : "(missing)");
    goto out;
  }
  if (a0 && (!cJSON_IsString(a0) || strcmp(a0->valuestring, "LlamaForCausalLM"))) {
    st = aoq_err(AOQ_EUNSUPPORTED,
                 "config.json: unsupported architecture '%s' (aoq serves "
                 "LlamaForCausalLM)",
                 cJSON_IsString(a0) ? a0->valuestring : "?");
    goto out;
  }
  memset(c, 0, sizeof *c);
  snprintf(c->arch, sizeof c->arch, "llama");
  bool ok = true;
  c->vocab_size = json_int(root, "vocab_size", 0, &ok);
  c->hidden_size = json_int(root, "hidden_size", 0, &ok);
  c->intermediate_size = json_int(root, "intermediate_size", 0, &ok);
  c->n_layers = json_int(root, "num_hidden_layers", 0, &ok);
  c->n_heads = json_int(root, "num_attention_heads", 0, &ok);
  c->n_kv_heads = json_int(root, "num_key_value_heads", c->n_heads, &ok);
  /* n_heads > 0: INT_MIN / -1 overflows (the check below refuses non-positive heads anyway) */
  c->head_dim = json_int(root, "head_dim", c->n_heads > 0 ? c->hidden_size / c->n_heads : 0, &ok);
  c->max_position = json_int(root, "max_position_embeddings", 2048, &ok);
  c->rms_eps = (float)json_num(root, "rms_norm_eps", 1e-6, &ok);
  c->bos_id = json_int(root, "bos_token_id", -1, &ok);
  const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
  c->tie_embeddings = cJSON_IsTrue(tie);
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "attention_bias")) ||
      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "mlp_bias"))) {
    st = aoq_err(AOQ_EUNSUPPORTED, "config.json: attention_bias/mlp_bias are not supported");
    goto out;
  }
  const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
  if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu"))) {
    st = aoq_err(AOQ_EUNSUPPORTED, "config.json: hidden_act '%s' (aoq implements silu)",
                 cJSON_IsString(act) ? act->valuestring : "?");
    goto out;
  }
  /* transformers 5 keeps rope_theta inside rope_parameters; 4.x at the top with rope_scaling */
  const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
  if (!cJSON_IsObject(rp)) rp = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
  c->rope.theta = (float)json_num(root, "rope_theta", 10000.0, &ok);
  if (cJSON_IsObject(rp)) {
    c->rope.theta = (float)json_num(rp, "rope_theta", c->rope.theta, &ok);
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(rp, "rope_type");
    if (!cJSON_IsString(rt)) rt = cJSON_GetObjectItemCaseSensitive(rp, "type");
    const char *type = cJSON_IsString(rt) ? rt->valuestring : "default";
    if (!strcmp(type, "llama3")) {
      c->rope.factor = (float)json_num(rp, "factor", 0, &ok);
      c->rope.low_freq_factor = (float)json_num(rp, "low_freq_factor", 1, &ok);
      c->rope.high_freq_factor = (float)json_num(rp, "high_freq_factor", 4, &ok);
      c->rope.original_max_position = json_int(rp, "original_max_position_embeddings", 8192, &ok);
      if (!(c->rope.factor > 0) || !(c->rope.high_freq_factor > c->rope.low_freq_factor) ||
          c->rope.original_max_position <= 0) {
        st = aoq_err(AOQ_EFORMAT,
                     "config.json: invalid llama3 rope scaling (factor %g, low %g, "
                     "high %g, original_max_position_embeddings %d)",
                     c->rope.factor, c->rope.low_freq_factor, c->rope.high_freq_factor,
                     c->rope.original_max_position);
        goto out;
      }
    } else if (strcmp(type, "default")) {
      st = aoq_err(AOQ_EUNSUPPORTED,
                   "config.json: rope_type '%s' (aoq implements default and "
                   "llama3)",
                   type);
      goto out;
    }
  }
  if (!ok) {
    st = aoq_err(AOQ_EFORMAT, "config.json: a numeric field has a non-numeric or fractional value");
    goto out;
  }
  if ((st = parse_eos(root, c)) != AOQ_OK) goto out;
  st = aoq_model_config_check(c);
out:
  cJSON_Delete(root);
  return st;
}

aoq_status aoq_hf_generation_config_parse(const char *json, aoq_model_config *c) {
  cJSON *root = cJSON_Parse(json);
  if (!root || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return aoq_err(AOQ_EFORMAT, "generation_config.json: not a JSON object");
  }
  bool ok = true;
  c->bos_id = json_int(root, "bos_token_id", c->bos_id, &ok);
  aoq_status st = parse_eos(root, c);
  cJSON_Delete(root);
  if (st == AOQ_OK && !ok) st = aoq_err(AOQ_EFORMAT, "generation_config.json: bad bos_token_id");
  return st;
}


aoq_status aoq_hf_config_load(const char *dir, aoq_model_config *cfg) {
  char path[4096];
  char *text = NULL;
  snprintf(path, sizeof path, "%s/config.json", dir);
  aoq_status st = aoq_file_read(path, (size_t)64 << 20, &text, NULL);
  if (st != AOQ_OK) return st;
  st = aoq_hf_config_parse(text, cfg);
  free(text);
  if (st != AOQ_OK) {
    char detail[512];
    snprintf(detail, sizeof detail, "%s", aoq_last_error());
    return aoq_err(st, "%s: %s", path, detail);
  }
  snprintf(path, sizeof path, "%s/generation_config.json", dir);
  st = aoq_file_read(path, (size_t)64 << 20, &text, NULL);
  if (st == AOQ_ENOTFOUND) {
    aoq_err_clear();
    return AOQ_OK; /* optional: eos ids from config.json */
  }
  if (st != AOQ_OK) return st;
  st = aoq_hf_generation_config_parse(text, cfg);
  free(text);
  /* generation_config.json may change bos/eos: check them against the vocabulary again */
  if (st == AOQ_OK) st = aoq_model_config_check(cfg);
  if (st != AOQ_OK) {
    char detail[512];
    snprintf(detail, sizeof detail, "%s", aoq_last_error());
    return aoq_err(st, "%s: %s", path, detail);
  }
  return AOQ_OK;
}
