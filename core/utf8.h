/*
 * utf8.h — UTF-8 decoding and the Unicode classes the Llama 3 pre-tokenizer needs, plus the
 * pre-tokenizer split itself. Internal to core/tokenizer*.c.
 *
 * Invalid UTF-8 is not an error here: a byte that does not start a valid sequence decodes as one
 * code point of its own (AOQ_UTF8_INVALID, class "other"), so byte-level BPE still sees every byte.
 */
#ifndef AOQ_CORE_UTF8_H
#define AOQ_CORE_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define AOQ_UNI_LETTER 1 /* \p{L} */
#define AOQ_UNI_NUMBER 2 /* \p{N} */
#define AOQ_UNI_SPACE 4  /* \s (White_Space) */

/* Marker code point for a byte that is not valid UTF-8 (outside the Unicode range on purpose). */
#define AOQ_UTF8_INVALID 0x110000u

/* Class bits of a code point; generated tables in core/tokenizer_unicode.c. */
int aoq_uni_class(uint32_t cp);

/* Decodes the code point at s[0..n) (n >= 1); sets *len to its byte length (1..4). Rejects
 * overlong forms, surrogates and values above U+10FFFF as AOQ_UTF8_INVALID of length 1. */
static inline uint32_t aoq_utf8_decode(const unsigned char *s, size_t n, int *len) {
  uint32_t c = s[0];
  *len = 1;
  if (c < 0x80) return c;
  int need;
  uint32_t min;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1, min = 0x80, c &= 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2, min = 0x800, c &= 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3, min = 0x10000, c &= 0x07;
  } else {
    return AOQ_UTF8_INVALID;
  }
  if ((size_t)need >= n) return AOQ_UTF8_INVALID;
  for (int i = 1; i <= need; i++) {
    if ((s[i] & 0xC0) != 0x80) return AOQ_UTF8_INVALID;
    c = (c << 6) | (s[i] & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return AOQ_UTF8_INVALID;
  *len = need + 1;
  return c;
}

/* Encodes cp (<= U+10FFFF) to out[0..4); returns the byte count. */
static inline int aoq_utf8_encode(uint32_t cp, char *out) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Splits text[0..n) (no special tokens in it) into Llama 3 pre-tokens:
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 *   \s*[\r\n]+|\s+(?!\S)|\s+
 * Calls emit(ctx, offset, length) for each piece in order; the pieces cover the text exactly.
 * Stops and returns emit's nonzero result. Allocates nothing. */
typedef int (*aoq_pretok_fn)(void *ctx, size_t off, size_t len);
int aoq_pretok_llama3(const char *text, size_t n, aoq_pretok_fn emit, void *ctx);

#endif
