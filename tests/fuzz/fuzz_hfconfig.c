/*
 * fuzz_hfconfig.c — fuzz target for the Hugging Face config.json and generation_config.json
 * parsers of the Llama loader (core/hfconfig.c: aoq_hf_config_parse,
 * aoq_hf_generation_config_parse, which take the text; aoq_hf_config_load only adds the file
 * reads).
 *
 * The input, NUL-terminated, is parsed as config.json: an accepted one must describe a model
 * aoq_model_config_check accepts (positive dimensions, heads a multiple of kv heads, even
 * head_dim, positive eps and theta), arch "llama", at most 4 EOS ids and a BOS id inside the
 * vocabulary, and a llama3 rope with high > low frequency factors. It is then parsed as
 * generation_config.json over the 8B preset: accepted or not, the EOS count stays within 0..4 and
 * nothing but bos/eos changes. A rejected input must leave a non-empty aoq_last_error(). A broken
 * promise traps.
 *
 * Built as a libFuzzer binary (AOQ_FUZZ=ON with clang) and into the standalone driver fuzz_main.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "core/llama_internal.h"

#define FUZZ_CHECK(cond)           \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* For fuzz_main.c: keys and values of a Llama config.json. */
extern const char *const fuzz_dict[];
const char *const fuzz_dict[] = {
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1.5",
    "1e-05",
    "1e300",
    "-1e300",
    "2147483647",
    "2147483648",
    "-2147483648",
    "4294967296",
    "NaN",
    "\"model_type\"",
    "\"llama\"",
    "\"architectures\"",
    "[\"LlamaForCausalLM\"]",
    "\"vocab_size\"",
    "\"hidden_size\"",
    "\"intermediate_size\"",
    "\"num_hidden_layers\"",
    "\"num_attention_heads\"",
    "\"num_key_value_heads\"",
    "\"head_dim\"",
    "\"max_position_embeddings\"",
    "\"rms_norm_eps\"",
    "\"bos_token_id\"",
    "\"eos_token_id\"",
    "[128001, 128008, 128009]",
    "\"tie_word_embeddings\"",
    "\"attention_bias\"",
    "\"mlp_bias\"",
    "\"hidden_act\"",
    "\"silu\"",
    "\"rope_theta\"",
    "\"rope_scaling\"",
    "\"rope_parameters\"",
    "\"rope_type\"",
    "\"type\"",
    "\"llama3\"",
    "\"default\"",
    "\"factor\"",
    "\"low_freq_factor\"",
    "\"high_freq_factor\"",
    "\"original_max_position_embeddings\"",
    NULL,
};

static void check_config(const char *text) {
  aoq_model_config c;
  memset(&c, 0x5a, sizeof c);
  aoq_status st = aoq_hf_config_parse(text, &c);
  if (st != AOQ_OK) {
    FUZZ_CHECK(aoq_last_error()[0] != 0);
    return; /* the detail stays for the driver's outcome */
  }
  FUZZ_CHECK(aoq_model_config_check(&c) == AOQ_OK);
  FUZZ_CHECK(strcmp(c.arch, "llama") == 0);
  FUZZ_CHECK(c.vocab_size > 0 && c.hidden_size > 0 && c.intermediate_size > 0 && c.n_layers > 0);
  FUZZ_CHECK(c.n_heads > 0 && c.n_kv_heads > 0 && c.n_heads % c.n_kv_heads == 0);
  FUZZ_CHECK(c.head_dim > 0 && c.head_dim % 2 == 0 && c.max_position > 0);
  FUZZ_CHECK(c.rms_eps > 0 && c.rope.theta > 0);
  FUZZ_CHECK(c.n_eos >= 0 && c.n_eos <= 4);
  for (int i = 0; i < c.n_eos; i++) FUZZ_CHECK(c.eos_ids[i] >= 0 && c.eos_ids[i] < c.vocab_size);
  FUZZ_CHECK(c.bos_id >= -1 && c.bos_id < c.vocab_size);
  if (c.rope.factor != 0)
    FUZZ_CHECK(c.rope.factor > 0 && c.rope.high_freq_factor > c.rope.low_freq_factor &&
               c.rope.original_max_position > 0);
}

static void check_generation_config(const char *text) {
  aoq_model_config c, before;
  FUZZ_CHECK(aoq_model_preset("llama3.1-8b", &c) == AOQ_OK);
  memcpy(&before, &c, sizeof c);
  aoq_status st = aoq_hf_generation_config_parse(text, &c);
  if (st != AOQ_OK) FUZZ_CHECK(aoq_last_error()[0] != 0);
  aoq_err_clear();
  FUZZ_CHECK(c.n_eos >= 0 && c.n_eos <= 4);
  /* only bos/eos may change */
  c.bos_id = before.bos_id;
  memcpy(c.eos_ids, before.eos_ids, sizeof c.eos_ids);
  c.n_eos = before.n_eos;
  FUZZ_CHECK(memcmp(&c, &before, sizeof c) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  check_generation_config(text);
  check_config(text);
  free(text);
  return 0;
}
