/*
 * tokenizer.h — byte-level BPE from a HF tokenizer.json (Llama 3 pre-tokenizer split, special
 * tokens), and the Llama 3.1 chat template. A tokenizer without files (aoq_tokenizer_bytes) maps
 * bytes 0..255 to ids 0..255 plus <|begin_of_text|>=256, <|end_of_text|>=257, <|eot_id|>=258 —
 * used by the embedded `tiny` model.  Thread-safe after load (encode/decode are const).
 */
#ifndef AOQ_CORE_TOKENIZER_H
#define AOQ_CORE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "aoq/aoq.h"

typedef struct aoq_tokenizer aoq_tokenizer;

aoq_status aoq_tokenizer_load(const char *tokenizer_json_path, aoq_tokenizer **out);
aoq_status aoq_tokenizer_load_text(const char *json, size_t len, aoq_tokenizer **out);
aoq_status aoq_tokenizer_bytes(aoq_tokenizer **out);
void aoq_tokenizer_free(aoq_tokenizer *t);

int32_t aoq_tokenizer_vocab_size(const aoq_tokenizer *t);
/* Id of a special token by its text ("<|eot_id|>"), or -1. */
int32_t aoq_tokenizer_special(const aoq_tokenizer *t, const char *text);
int32_t aoq_tokenizer_bos(const aoq_tokenizer *t);
int32_t aoq_tokenizer_eos(const aoq_tokenizer *t);

/* Encodes UTF-8 text (special tokens in the text are recognised). add_bos prepends BOS.
 * *ids is malloc'ed, caller frees. */
aoq_status aoq_tokenizer_encode(const aoq_tokenizer *t, const char *text, size_t len, int add_bos,
                                int32_t **ids, size_t *n);
/* Decodes ids to UTF-8 (bytes of partial characters are kept as they are); *text is malloc'ed,
 * NUL-terminated, caller frees. skip_special drops special tokens. */
aoq_status aoq_tokenizer_decode(const aoq_tokenizer *t, const int32_t *ids, size_t n,
                                int skip_special, char **text, size_t *len);

typedef struct aoq_chat_msg {
  const char *role; /* "system", "user", "assistant" */
  const char *content;
} aoq_chat_msg;

/* Renders the Llama 3.1 chat template (with the generation prompt for the assistant) to a
 * malloc'ed string. */
aoq_status aoq_chat_render(const aoq_chat_msg *msgs, size_t n, char **out);

#endif
