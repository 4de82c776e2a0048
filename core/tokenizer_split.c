/*
 * tokenizer_split.c — the Llama 3 pre-tokenizer regex, written out by hand over code points.
 *
 * The regex is an ordered alternation; at each position the first alternative that matches wins
 * (leftmost-first, like Oniguruma and JS RegExp), and each alternative's backtracking is resolved
 * in closed form below. Every position matches some alternative, so the pieces tile the text.
 */
#include "core/utf8.h"

typedef struct cpt {
  uint32_t cp;
  int len; /* bytes */
  int cls; /* AOQ_UNI_* bits */
} cpt;

/* ASCII classes, so the common case needs no table search. */
static int ascii_class(unsigned c) {
  if (c == ' ' || (c >= 0x09 && c <= 0x0D)) return AOQ_UNI_SPACE;
  if (c >= '0' && c <= '9') return AOQ_UNI_NUMBER;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return AOQ_UNI_LETTER;
  return 0;
}

static cpt at(const char *text, size_t n, size_t i) {
  cpt r;
  const unsigned char *s = (const unsigned char *)text + i;
  if (s[0] < 0x80) {
    r.cp = s[0], r.len = 1, r.cls = ascii_class(s[0]);
    return r;
  }
  r.cp = aoq_utf8_decode(s, n - i, &r.len);
  r.cls = r.cp == AOQ_UTF8_INVALID ? 0 : aoq_uni_class(r.cp);
  return r;
}

static int is_crlf(uint32_t cp) {
  return cp == '\r' || cp == '\n';
}

/* Case-insensitive match of one ASCII letter; 's' also matches U+017F LATIN SMALL LETTER LONG S,
 * which Unicode simple case folding maps to 's'. */
static int ci(cpt c, char lower) {
  if (c.cp < 0x80) return (char)(c.cp | 0x20) == lower && ((c.cp | 0x20) >= 'a');
  return lower == 's' && c.cp == 0x17F;
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d) at i (text[i] == '\''); returns the match length or 0. */
static size_t match_contraction(const char *text, size_t n, size_t i) {
  size_t j = i + 1;
  if (j >= n) return 0;
  cpt a = at(text, n, j);
  if (ci(a, 's') || ci(a, 't') || ci(a, 'm') || ci(a, 'd')) return 1 + (size_t)a.len;
  if (j + (size_t)a.len >= n) return 0;
  cpt b = at(text, n, j + (size_t)a.len);
  if ((ci(a, 'r') && ci(b, 'e')) || (ci(a, 'v') && ci(b, 'e')) || (ci(a, 'l') && ci(b, 'l')))
    return 1 + (size_t)a.len + (size_t)b.len;
  return 0;
}

/* End of the run of code points starting at i whose class has any of `mask` bits (want=1) or none
 * of them (want=0), also stopping at CR/LF when stop_crlf. */
static size_t run_end(const char *text, size_t n, size_t i, int mask, int want, int stop_crlf) {
  while (i < n) {
    cpt c = at(text, n, i);
    if (((c.cls & mask) != 0) != want) break;
    if (stop_crlf && is_crlf(c.cp)) break;
    i += (size_t)c.len;
  }
  return i;
}

static size_t match_at(const char *text, size_t n, size_t i) {
  cpt c0 = at(text, n, i);
  size_t i1 = i + (size_t)c0.len;

  /* 1: contractions */
  if (c0.cp == '\'') {
    size_t m = match_contraction(text, n, i);
    if (m) return m;
  }
  /* 2: [^\r\n\p{L}\p{N}]?\p{L}+ */
  if (c0.cls & AOQ_UNI_LETTER) return run_end(text, n, i1, AOQ_UNI_LETTER, 1, 0) - i;
  if (!(c0.cls & AOQ_UNI_NUMBER) && !is_crlf(c0.cp) && i1 < n) {
    cpt c1 = at(text, n, i1);
    if (c1.cls & AOQ_UNI_LETTER) return run_end(text, n, i1, AOQ_UNI_LETTER, 1, 0) - i;
  }
  /* 3: \p{N}{1,3} */
  if (c0.cls & AOQ_UNI_NUMBER) {
    size_t j = i1;
    for (int k = 1; k < 3 && j < n; k++) {
      cpt c = at(text, n, j);
      if (!(c.cls & AOQ_UNI_NUMBER)) break;
      j += (size_t)c.len;
    }
    return j - i;
  }
  /* 4: ' '?[^\s\p{L}\p{N}]+[\r\n]* */
  const int sln = AOQ_UNI_SPACE | AOQ_UNI_LETTER | AOQ_UNI_NUMBER;
  size_t s = i;
  if (c0.cp == ' ' && i1 < n && !(at(text, n, i1).cls & sln)) s = i1;
  if (!(at(text, n, s).cls & sln)) {
    size_t j = run_end(text, n, s, sln, 0, 0);
    while (j < n && (text[j] == '\r' || text[j] == '\n')) j++;
    return j - i;
  }
  /* c0 is whitespace from here on. */
  size_t end = run_end(text, n, i, AOQ_UNI_SPACE, 1, 0);
  /* 5: \s*[\r\n]+ — \s* backs off to the last CR/LF of the run; [\r\n]+ ends right after it. */
  size_t last_crlf = (size_t)-1;
  for (size_t j = i; j < end;) {
    cpt c = at(text, n, j);
    if (is_crlf(c.cp)) last_crlf = j;
    j += (size_t)c.len;
  }
  if (last_crlf != (size_t)-1) return last_crlf + 1 - i;
  /* 6: \s+(?!\S) — the whole run at the end of text, else the run minus its last code point. */
  if (end == n) return end - i;
  size_t prev = i;
  for (size_t j = i; j < end;) {
    prev = j;
    j += (size_t)at(text, n, j).len;
  }
  if (prev > i) return prev - i;
  /* 7: \s+ */
  return end - i;
}

int aoq_pretok_llama3(const char *text, size_t n, aoq_pretok_fn emit, void *ctx) {
  size_t i = 0;
  while (i < n) {
    size_t m = match_at(text, n, i);
    if (m == 0) m = (size_t)at(text, n, i).len; /* unreachable: every position matches */
    int r = emit(ctx, i, m);
    if (r) return r;
    i += m;
  }
  return 0;
}
