/*
 * tokenizer_chat.c — the Llama 3.1 chat template (meta-llama/Llama-3.1-*-Instruct
 * tokenizer_config.json), for plain-text messages without tools:
 *
 *   <|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n
 *   Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n{system}<|eot_id|>
 *   then per message <|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>
 *   then <|start_header_id|>assistant<|end_header_id|>\n\n
 *
 * As in the official template: the system block is always present (empty {system} when the first
 * message is not a system message), its date lines use the template's default date_string, and
 * every content is trimmed of leading and trailing white space (Jinja's `| trim`; here the Unicode
 * White_Space set). Tool calls and the ipython role are not rendered: roles other than system,
 * user and assistant are rejected.
 */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "core/tokenizer.h"
#include "core/utf8.h"

typedef struct sbuf {
  char *p;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = aoq_fault_hit() ? NULL : realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) {
  sb_put(b, s, strlen(s));
}

/* Appends s without leading/trailing White_Space code points. */
static void sb_trimmed(sbuf *b, const char *s) {
  size_t n = strlen(s), lo = 0, hi = 0, i = 0;
  int seen = 0;
  while (i < n) {
    int len;
    uint32_t cp = aoq_utf8_decode((const unsigned char *)s + i, n - i, &len);
    int space = cp != AOQ_UTF8_INVALID && (aoq_uni_class(cp) & AOQ_UNI_SPACE);
    if (!space) {
      if (!seen) lo = i;
      seen = 1;
      hi = i + (size_t)len;
    }
    i += (size_t)len;
  }
  if (seen) sb_put(b, s + lo, hi - lo);
}

static void sb_turn(sbuf *b, const char *role, const char *content) {
  sb_str(b, "<|start_header_id|>");
  sb_str(b, role);
  sb_str(b, "<|end_header_id|>\n\n");
  sb_trimmed(b, content);
  sb_str(b, "<|eot_id|>");
}

aoq_status aoq_chat_render(const aoq_chat_msg *msgs, size_t n, char **out) {
  if (!out || (!msgs && n)) return aoq_err(AOQ_EINVAL, "aoq_chat_render: NULL argument");
  *out = NULL;
  for (size_t i = 0; i < n; i++) {
    const char *r = msgs[i].role;
    if (!r || !msgs[i].content)
      return aoq_err(AOQ_EINVAL, "aoq_chat_render: message %zu has no role/content", i);
    if (strcmp(r, "system") != 0 && strcmp(r, "user") != 0 && strcmp(r, "assistant") != 0)
      return aoq_err(AOQ_EINVAL,
                     "aoq_chat_render: message %zu has role \"%.32s\" (system, user or assistant)",
                     i, r);
  }
  sbuf b = {0};
  size_t first = 0;
  sb_str(&b,
         "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
         "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n");
  if (n > 0 && strcmp(msgs[0].role, "system") == 0) {
    sb_trimmed(&b, msgs[0].content);
    first = 1;
  }
  sb_str(&b, "<|eot_id|>");
  for (size_t i = first; i < n; i++) sb_turn(&b, msgs[i].role, msgs[i].content);
  sb_str(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
  if (b.oom) {
    free(b.p);
    return aoq_err(AOQ_ENOMEM, "aoq_chat_render: out of memory");
  }
  *out = b.p;
  return AOQ_OK;
}
