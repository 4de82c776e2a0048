/*
 * tokenizer.c — byte-level BPE (GPT-2 byte mapping, Llama 3 pre-tokenizer, added tokens).
 *
 * Layout: every id owns a byte string in one arena (model tokens are stored as raw bytes, already
 * mapped back from GPT-2's printable byte alphabet, so encoding never maps bytes to code points).
 * Two open-addressing tables make load and encode fast: bytes -> id over the model vocabulary, and
 * (left id, right id) -> (rank, merged id) over the merges. BPE on a pre-token is HF's algorithm:
 * repeatedly merge the lowest-ranked adjacent pair, leftmost first (a binary heap keyed by
 * (rank, position) with stale entries dropped on pop).
 */
#include "core/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/error.h"
#include "base/file.h"
#include "core/utf8.h"

#define TOK_SPECIAL 1 /* an added token marked special: skipped by decode(skip_special) */
#define TOK_ADDED 2   /* an added token: matched verbatim in the input before pre-tokenization */
#define TOK_USED 4    /* the id exists */

struct merge_slot {
  uint64_t key; /* left << 32 | right; UINT64_MAX = empty */
  int32_t rank;
  int32_t out; /* the merged token */
};

struct aoq_tokenizer {
  int32_t n_ids;      /* ids are 0..n_ids-1 (some may be unused) */
  uint32_t *tok_off;  /* [n_ids] offset of the id's bytes in arena */
  uint32_t *tok_len;  /* [n_ids] */
  uint8_t *tok_flags; /* [n_ids] TOK_* */
  char *arena;
  size_t arena_len, arena_cap;

  int32_t *vh;      /* vocab hash: id or -1; keyed by the id's bytes (model tokens only) */
  uint32_t *vh_tag; /* high hash bits of the slot's key: most misses skip the memcmp */
  uint32_t vh_mask;

  struct merge_slot *mh; /* merge hash; one 16-byte slot per probe keeps lookups in one line */
  uint32_t mh_mask;

  int32_t byte_id[256]; /* id of each single byte */

  int32_t *added;            /* added-token ids, sorted by first byte, then longest first */
  uint32_t added_first[257]; /* added[added_first[b] .. added_first[b+1]) start with byte b */
  size_t n_added;

  int32_t bos, eos;
  int ignore_merges;
  int bytes_only; /* aoq_tokenizer_bytes(): no pre-tokenizer, no merges */
};

/* Allocation goes through the fault-injection hook so that tests can fail the n-th allocation. */
static void *tk_malloc(size_t n) {
  return aoq_fault_hit() ? NULL : malloc(n ? n : 1);
}

static void *tk_calloc(size_t n, size_t size) {
  return aoq_fault_hit() ? NULL : calloc(n ? n : 1, size ? size : 1);
}

static void *tk_realloc(void *p, size_t n) {
  return aoq_fault_hit() ? NULL : realloc(p, n ? n : 1);
}

/* ---------------------------------------------------------------------------------------------
 * hashing
 * ------------------------------------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h ^ (h >> 29);
}

static uint64_t hash_pair(uint64_t k) {
  k *= 0x9E3779B97F4A7C15ull;
  return k ^ (k >> 31);
}

static uint32_t pow2_at_least(size_t n) {
  uint32_t p = 16;
  while (p < n) p <<= 1;
  return p;
}

static int32_t vocab_find(const aoq_tokenizer *t, const char *s, size_t n) {
  uint64_t h = hash_bytes(s, n);
  uint32_t i = (uint32_t)h & t->vh_mask, tag = (uint32_t)(h >> 32);
  for (;;) {
    int32_t id = t->vh[i];
    if (id < 0) return -1;
    if (t->vh_tag[i] == tag && t->tok_len[id] == n && memcmp(t->arena + t->tok_off[id], s, n) == 0)
      return id;
    i = (i + 1) & t->vh_mask;
  }
}

static int merge_find(const aoq_tokenizer *t, int32_t a, int32_t b, int32_t *rank, int32_t *out) {
  if (!t->mh) return 0;
  uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
  uint32_t i = (uint32_t)hash_pair(k) & t->mh_mask;
  for (;;) {
    uint64_t kk = t->mh[i].key;
    if (kk == UINT64_MAX) return 0;
    if (kk == k) {
      *rank = t->mh[i].rank;
      *out = t->mh[i].out;
      return 1;
    }
    i = (i + 1) & t->mh_mask;
  }
}

/* ---------------------------------------------------------------------------------------------
 * construction helpers
 * ------------------------------------------------------------------------------------------- */

void aoq_tokenizer_free(aoq_tokenizer *t) {
  if (!t) return;
  free(t->tok_off);
  free(t->tok_len);
  free(t->tok_flags);
  free(t->arena);
  free(t->vh);
  free(t->vh_tag);
  free(t->mh);
  free(t->added);
  free(t);
}

static aoq_status tok_alloc(int32_t n_ids, size_t arena_cap, aoq_tokenizer **out) {
  aoq_tokenizer *t = tk_calloc(1, sizeof(*t));
  if (!t) return aoq_err(AOQ_ENOMEM, "tokenizer: out of memory");
  t->n_ids = n_ids;
  t->tok_off = tk_calloc((size_t)n_ids, sizeof(uint32_t));
  t->tok_len = tk_calloc((size_t)n_ids, sizeof(uint32_t));
  t->tok_flags = tk_calloc((size_t)n_ids, 1);
  t->arena_cap = arena_cap ? arena_cap : 1;
  t->arena = tk_malloc(t->arena_cap);
  t->bos = t->eos = -1;
  for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
  if (!t->tok_off || !t->tok_len || !t->tok_flags || !t->arena) {
    aoq_tokenizer_free(t);
    return aoq_err(AOQ_ENOMEM, "tokenizer: out of memory for %d ids", (int)n_ids);
  }
  *out = t;
  return AOQ_OK;
}

static aoq_status set_token(aoq_tokenizer *t, int32_t id, const char *s, size_t n, uint8_t flags) {
  if (t->arena_len + n > t->arena_cap) {
    size_t cap = t->arena_cap * 2;
    while (cap < t->arena_len + n) cap *= 2;
    char *a = tk_realloc(t->arena, cap);
    if (!a) return aoq_err(AOQ_ENOMEM, "tokenizer: out of memory for the token arena");
    t->arena = a;
    t->arena_cap = cap;
  }
  if (t->arena_len + n > UINT32_MAX) return aoq_err(AOQ_EFORMAT, "tokenizer: vocabulary too large");
  memcpy(t->arena + t->arena_len, s, n);
  t->tok_off[id] = (uint32_t)t->arena_len;
  t->tok_len[id] = (uint32_t)n;
  t->tok_flags[id] = flags | TOK_USED;
  t->arena_len += n;
  return AOQ_OK;
}

/* Builds the bytes -> id table over model tokens and the added-token index. */
static aoq_status build_indexes(aoq_tokenizer *t, size_t n_model) {
  uint32_t cap = pow2_at_least(n_model * 2 + 1);
  t->vh = tk_malloc((size_t)cap * sizeof(int32_t));
  t->vh_tag = tk_malloc((size_t)cap * sizeof(uint32_t));
  if (!t->vh || !t->vh_tag)
    return aoq_err(AOQ_ENOMEM, "tokenizer: out of memory for the vocab table");
  memset(t->vh, 0xFF, (size_t)cap * sizeof(int32_t));
  t->vh_mask = cap - 1;
  size_t n_added = 0;
  for (int32_t id = 0; id < t->n_ids; id++) {
    uint8_t f = t->tok_flags[id];
    if (!(f & TOK_USED)) continue;
    if (f & TOK_ADDED) {
      if (t->tok_len[id] == 0)
        return aoq_err(AOQ_EFORMAT, "tokenizer: added token %d is empty", id);
      n_added++;
      continue;
    }
    const char *s = t->arena + t->tok_off[id];
    size_t n = t->tok_len[id];
    if (n == 0) return aoq_err(AOQ_EFORMAT, "tokenizer: vocab token %d is empty", id);
    if (vocab_find(t, s, n) >= 0)
      return aoq_err(AOQ_EFORMAT, "tokenizer: vocab token %d duplicates another token", id);
    uint64_t h = hash_bytes(s, n);
    uint32_t i = (uint32_t)h & t->vh_mask;
    while (t->vh[i] >= 0) i = (i + 1) & t->vh_mask;
    t->vh[i] = id;
    t->vh_tag[i] = (uint32_t)(h >> 32);
    if (n == 1) t->byte_id[(unsigned char)s[0]] = id;
  }
  for (int b = 0; b < 256; b++)
    if (t->byte_id[b] < 0)
      return aoq_err(AOQ_EFORMAT,
                     "tokenizer: byte 0x%02X has no token (byte-level BPE needs all 256)", b);

  t->n_added = n_added;
  t->added = tk_malloc((n_added ? n_added : 1) * sizeof(int32_t));
  if (!t->added) return aoq_err(AOQ_ENOMEM, "tokenizer: out of memory");
  /* Counting sort by first byte; within a byte, longest first (insertion sort: few tokens). */
  uint32_t count[257] = {0};
  for (int32_t id = 0; id < t->n_ids; id++)
    if (t->tok_flags[id] & TOK_ADDED) count[(unsigned char)t->arena[t->tok_off[id]] + 1]++;
  for (int b = 0; b < 256; b++) count[b + 1] += count[b];
  memcpy(t->added_first, count, sizeof(count));
  for (int32_t id = 0; id < t->n_ids; id++) {
    if (!(t->tok_flags[id] & TOK_ADDED)) continue;
    uint32_t b = (unsigned char)t->arena[t->tok_off[id]];
    uint32_t j = count[b]++;
    while (j > t->added_first[b] && t->tok_len[t->added[j - 1]] < t->tok_len[id]) {
      t->added[j] = t->added[j - 1];
      j--;
    }
    t->added[j] = id;
  }
  return AOQ_OK;
}

/* ---------------------------------------------------------------------------------------------
 * the file-less byte tokenizer
 * ------------------------------------------------------------------------------------------- */

aoq_status aoq_tokenizer_bytes(aoq_tokenizer **out) {
  if (!out) return aoq_err(AOQ_EINVAL, "aoq_tokenizer_bytes: out is NULL");
  *out = NULL;
  static const char *const specials[3] = {"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"};
  aoq_tokenizer *t;
  AOQ_TRY(tok_alloc(259, 512, &t));
  aoq_status s = AOQ_OK;
  for (int b = 0; b < 256 && s == AOQ_OK; b++) {
    char c = (char)b;
    s = set_token(t, b, &c, 1, 0);
  }
  for (int i = 0; i < 3 && s == AOQ_OK; i++)
    s = set_token(t, 256 + i, specials[i], strlen(specials[i]), TOK_ADDED | TOK_SPECIAL);
  if (s == AOQ_OK) s = build_indexes(t, 256);
  if (s != AOQ_OK) {
    aoq_tokenizer_free(t);
    return s;
  }
  t->bytes_only = 1;
  t->bos = 256;
  t->eos = 258;
  *out = t;
  return AOQ_OK;
}

/* ---------------------------------------------------------------------------------------------
 * tokenizer.json
 * ------------------------------------------------------------------------------------------- */

/* GPT-2's byte <-> printable code point mapping: printable Latin-1 bytes map to themselves, the
 * other 68 bytes to U+0100.. in byte order. unmap[cp] = byte, or -1, for cp < 324. */
static void byte_unmap_table(int16_t unmap[324]) {
  for (int i = 0; i < 324; i++) unmap[i] = -1;
  int next = 256;
  for (int b = 0; b < 256; b++) {
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    unmap[printable ? b : next++] = (int16_t)b;
  }
}

/* Maps a vocab/merge string (GPT-2 alphabet) back to raw bytes in buf; returns the length or -1. */
static long unmap_token(const int16_t unmap[324], const char *s, size_t n, char *buf) {
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    int len;
    uint32_t cp = aoq_utf8_decode((const unsigned char *)s + i, n - i, &len);
    if (cp >= 324 || unmap[cp] < 0) return -1;
    buf[o++] = (char)unmap[cp];
    i += (size_t)len;
  }
  return (long)o;
}

static const char *const LLAMA3_SPLIT =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* Accepts exactly the pre-tokenizer this file implements: Llama 3's Split + ByteLevel(no regex). */
static aoq_status check_pre_tokenizer(const cJSON *pt) {
  if (!cJSON_IsObject(pt)) return aoq_err(AOQ_EFORMAT, "tokenizer.json: pre_tokenizer missing");
  const cJSON *list = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers");
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(pt, "type");
  if (!cJSON_IsString(type) || strcmp(type->valuestring, "Sequence") != 0 || !cJSON_IsArray(list))
    return aoq_err(AOQ_EUNSUPPORTED, "tokenizer.json: pre_tokenizer must be a Sequence (Llama 3)");
  int have_split = 0;
  const cJSON *p;
  cJSON_ArrayForEach(p, list) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(p, "type");
    if (!cJSON_IsString(ty))
      return aoq_err(AOQ_EFORMAT, "tokenizer.json: pre_tokenizer without type");
    if (strcmp(ty->valuestring, "Split") == 0) {
      const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
      const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
      if (!cJSON_IsString(re) || strcmp(re->valuestring, LLAMA3_SPLIT) != 0)
        return aoq_err(AOQ_EUNSUPPORTED, "tokenizer.json: Split pattern is not the Llama 3 regex");
      have_split = 1;
    } else if (strcmp(ty->valuestring, "ByteLevel") == 0) {
      const cJSON *ur = cJSON_GetObjectItemCaseSensitive(p, "use_regex");
      const cJSON *aps = cJSON_GetObjectItemCaseSensitive(p, "add_prefix_space");
      if (cJSON_IsTrue(ur) || cJSON_IsTrue(aps))
        return aoq_err(AOQ_EUNSUPPORTED,
                       "tokenizer.json: ByteLevel with use_regex/add_prefix_space");
    } else {
      return aoq_err(AOQ_EUNSUPPORTED, "tokenizer.json: pre_tokenizer %s", ty->valuestring);
    }
  }
  if (!have_split)
    return aoq_err(AOQ_EUNSUPPORTED, "tokenizer.json: no Llama 3 Split pre_tokenizer");
  return AOQ_OK;
}

static aoq_status load_merges(aoq_tokenizer *t, const cJSON *merges, const int16_t unmap[324],
                              char *buf, size_t buf_cap) {
  int n = cJSON_GetArraySize(merges);
  uint32_t cap = pow2_at_least((size_t)n * 2 + 1);
  t->mh = tk_malloc((size_t)cap * sizeof(struct merge_slot));
  if (!t->mh) return aoq_err(AOQ_ENOMEM, "tokenizer: out of memory for %d merges", n);
  memset(t->mh, 0xFF, (size_t)cap * sizeof(struct merge_slot));
  t->mh_mask = cap - 1;
  int32_t rank = 0;
  const cJSON *m;
  cJSON_ArrayForEach(m, merges) {
    const char *a, *b;
    size_t na, nb;
    if (cJSON_IsString(m)) {
      a = m->valuestring;
      const char *sp = strchr(a, ' ');
      if (!sp || strchr(sp + 1, ' '))
        return aoq_err(AOQ_EFORMAT, "tokenizer.json: merge %d is not \"a b\"", rank);
      na = (size_t)(sp - a);
      b = sp + 1;
      nb = strlen(b);
    } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
               cJSON_IsString(m->child->next)) {
      a = m->child->valuestring, na = strlen(a);
      b = m->child->next->valuestring, nb = strlen(b);
    } else {
      return aoq_err(AOQ_EFORMAT, "tokenizer.json: merge %d is neither \"a b\" nor [a, b]", rank);
    }
    /* Raw bytes are never longer than their UTF-8 spelling; a pair longer than the whole vocab
     * cannot name vocab tokens. */
    if (na + nb > buf_cap)
      return aoq_err(AOQ_EFORMAT, "tokenizer.json: merge %d uses a token not in the vocab", rank);
    long la = unmap_token(unmap, a, na, buf);
    long lb = la < 0 ? -1 : unmap_token(unmap, b, nb, buf + la);
    if (la <= 0 || lb <= 0)
      return aoq_err(AOQ_EFORMAT, "tokenizer.json: merge %d has a bad token", rank);
    int32_t ia = vocab_find(t, buf, (size_t)la);
    int32_t ib = vocab_find(t, buf + la, (size_t)lb);
    int32_t io = vocab_find(t, buf, (size_t)(la + lb));
    if (ia < 0 || ib < 0 || io < 0)
      return aoq_err(AOQ_EFORMAT,
                     "tokenizer.json: merge %d (\"%.*s\" \"%.*s\") uses a token not in the vocab",
                     rank, (int)na, a, (int)nb, b);
    uint64_t k = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
    uint32_t i = (uint32_t)hash_pair(k) & t->mh_mask;
    while (t->mh[i].key != UINT64_MAX && t->mh[i].key != k) i = (i + 1) & t->mh_mask;
    if (t->mh[i].key != k) { /* a repeated merge keeps its first (best) rank */
      t->mh[i].key = k;
      t->mh[i].rank = rank;
      t->mh[i].out = io;
    }
    rank++;
  }
  return AOQ_OK;
}

static aoq_status load_json(const cJSON *root, aoq_tokenizer **out) {
  if (!cJSON_IsObject(root)) return aoq_err(AOQ_EFORMAT, "tokenizer.json: not a JSON object");
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
  if (!cJSON_IsObject(model)) return aoq_err(AOQ_EFORMAT, "tokenizer.json: \"model\" missing");
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
  if (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE") != 0)
    return aoq_err(AOQ_EUNSUPPORTED, "tokenizer.json: model.type is not \"BPE\"");
  const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
  const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
  if (!cJSON_IsObject(vocab))
    return aoq_err(AOQ_EFORMAT, "tokenizer.json: model.vocab missing or not an object");
  if (!cJSON_IsArray(merges))
    return aoq_err(AOQ_EFORMAT, "tokenizer.json: model.merges missing or not an array");
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback")))
    return aoq_err(AOQ_EUNSUPPORTED, "tokenizer.json: byte_fallback BPE is not supported");
  const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
  if (cJSON_IsNumber(dropout) && dropout->valuedouble != 0.0)
    return aoq_err(AOQ_EUNSUPPORTED, "tokenizer.json: BPE dropout is not supported");
  static const char *const affixes[2] = {"continuing_subword_prefix", "end_of_word_suffix"};
  for (int i = 0; i < 2; i++) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(model, affixes[i]);
    if (cJSON_IsString(x) && x->valuestring[0])
      return aoq_err(AOQ_EUNSUPPORTED, "tokenizer.json: model.%s is not supported", affixes[i]);
  }
  const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
  if (norm && !cJSON_IsNull(norm))
    return aoq_err(AOQ_EUNSUPPORTED, "tokenizer.json: normalizers are not supported");
  AOQ_TRY(check_pre_tokenizer(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer")));
  const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
  if (added && !cJSON_IsArray(added))
    return aoq_err(AOQ_EFORMAT, "tokenizer.json: added_tokens is not an array");

  /* Id space and arena size first. */
  int32_t max_id = -1;
  size_t n_model = 0, bytes = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, vocab) {
    if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 16777216.0 ||
        e->valuedouble != (double)e->valueint)
      return aoq_err(AOQ_EFORMAT, "tokenizer.json: vocab entry \"%.40s\" has a bad id", e->string);
    if (e->valueint > max_id) max_id = e->valueint;
    bytes += strlen(e->string);
    n_model++;
  }
  cJSON_ArrayForEach(e, added) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
    if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 16777216.0 ||
        id->valuedouble != (double)id->valueint || !cJSON_IsString(content))
      return aoq_err(AOQ_EFORMAT, "tokenizer.json: added token without a valid id/content");
    /* Llama 3 sets none of these; matching them needs HF's word-boundary/strip rules. */
    static const char *const flags[3] = {"lstrip", "rstrip", "single_word"};
    for (int f = 0; f < 3; f++)
      if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, flags[f])))
        return aoq_err(AOQ_EUNSUPPORTED, "tokenizer.json: added token \"%.40s\" sets %s",
                       content->valuestring, flags[f]);
    if (id->valueint > max_id) max_id = id->valueint;
    bytes += strlen(content->valuestring);
  }
  if (n_model < 256)
    return aoq_err(AOQ_EFORMAT, "tokenizer.json: vocab has %zu tokens (< 256)", n_model);

  aoq_tokenizer *t;
  AOQ_TRY(tok_alloc(max_id + 1, bytes, &t));
  aoq_status s = AOQ_OK;
  int16_t unmap[324];
  byte_unmap_table(unmap);
  char *buf = tk_malloc(bytes + 1);
  if (!buf) s = aoq_err(AOQ_ENOMEM, "tokenizer: out of memory");
  cJSON_ArrayForEach(e, vocab) {
    if (s != AOQ_OK) break;
    int32_t id = e->valueint;
    long n = unmap_token(unmap, e->string, strlen(e->string), buf);
    if (n < 0) {
      s = aoq_err(AOQ_EFORMAT,
                  "tokenizer.json: vocab token %d \"%.40s\" is not in the byte-level alphabet", id,
                  e->string);
    } else if (t->tok_flags[id]) {
      s = aoq_err(AOQ_EFORMAT, "tokenizer.json: vocab id %d appears twice", id);
    } else {
      s = set_token(t, id, buf, (size_t)n, 0);
    }
  }
  cJSON_ArrayForEach(e, added) {
    if (s != AOQ_OK) break;
    int32_t id = cJSON_GetObjectItemCaseSensitive(e, "id")->valueint;
    const char *c = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
    uint8_t f = TOK_ADDED |
                (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special")) ? TOK_SPECIAL : 0);
    /* An added token may restate a vocab entry; it then becomes matched verbatim. */
    s = set_token(t, id, c, strlen(c), f);
  }
  if (s == AOQ_OK) s = build_indexes(t, n_model);
  if (s == AOQ_OK) s = load_merges(t, merges, unmap, buf, bytes);
  free(buf);
  if (s != AOQ_OK) {
    aoq_tokenizer_free(t);
    return s;
  }
  t->ignore_merges = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges"));
  t->bos = aoq_tokenizer_special(t, "<|begin_of_text|>");
  /* Chat models end a turn with <|eot_id|>; base models end text with <|end_of_text|>. */
  t->eos = aoq_tokenizer_special(t, "<|eot_id|>");
  if (t->eos < 0) t->eos = aoq_tokenizer_special(t, "<|end_of_text|>");
  *out = t;
  return AOQ_OK;
}

aoq_status aoq_tokenizer_load_text(const char *json, size_t len, aoq_tokenizer **out) {
  if (!json || !out) return aoq_err(AOQ_EINVAL, "aoq_tokenizer_load_text: NULL argument");
  *out = NULL;
  cJSON *root = cJSON_ParseWithLength(json, len);
  if (!root) {
    const char *where = cJSON_GetErrorPtr();
    size_t off = where && where >= json && where <= json + len ? (size_t)(where - json) : 0;
    return aoq_err(AOQ_EFORMAT, "tokenizer.json: JSON syntax error near byte %zu", off);
  }
  aoq_status s = load_json(root, out);
  cJSON_Delete(root);
  return s;
}

/* Llama 3's tokenizer.json is 9 MB; the largest in common use are a few tens of MB. */
#define TOKENIZER_MAX_FILE (256 << 20)

aoq_status aoq_tokenizer_load(const char *path, aoq_tokenizer **out) {
  if (!path || !out) return aoq_err(AOQ_EINVAL, "aoq_tokenizer_load: NULL argument");
  *out = NULL;
  char *data;
  size_t size;
  aoq_status rs = aoq_file_read(path, TOKENIZER_MAX_FILE, &data, &size);
  if (rs != AOQ_OK) return rs == AOQ_ENOTFOUND ? aoq_err(AOQ_EIO, "%s: cannot open", path) : rs;
  aoq_status s = aoq_tokenizer_load_text(data, size, out);
  free(data);
  if (s == AOQ_EFORMAT || s == AOQ_EUNSUPPORTED) {
    /* Prefix the path to the detail. */
    char detail[512];
    snprintf(detail, sizeof(detail), "%s", aoq_last_error());
    return aoq_err(s, "%s: %s", path, detail);
  }
  return s;
}

/* ---------------------------------------------------------------------------------------------
 * queries
 * ------------------------------------------------------------------------------------------- */

int32_t aoq_tokenizer_vocab_size(const aoq_tokenizer *t) {
  return t ? t->n_ids : 0;
}
int32_t aoq_tokenizer_bos(const aoq_tokenizer *t) {
  return t ? t->bos : -1;
}
int32_t aoq_tokenizer_eos(const aoq_tokenizer *t) {
  return t ? t->eos : -1;
}

int32_t aoq_tokenizer_special(const aoq_tokenizer *t, const char *text) {
  if (!t || !text || !text[0]) return -1;
  size_t n = strlen(text);
  unsigned b = (unsigned char)text[0];
  for (uint32_t i = t->added_first[b]; i < t->added_first[b + 1]; i++) {
    int32_t id = t->added[i];
    if (t->tok_len[id] == n && memcmp(t->arena + t->tok_off[id], text, n) == 0) return id;
  }
  return -1;
}

/* ---------------------------------------------------------------------------------------------
 * encode
 * ------------------------------------------------------------------------------------------- */

typedef struct sym {
  int32_t id;
  int32_t prev, next; /* -1 at the ends */
  int32_t alive;
} sym;

typedef struct heap_ent {
  int32_t rank;
  int32_t pos; /* left symbol of the pair */
} heap_ent;

typedef struct enc {
  const aoq_tokenizer *t;
  const char *text;
  int32_t *ids;
  size_t n, cap;
  sym *syms;
  heap_ent *heap;
  size_t scratch; /* capacity of syms (heap has 3x) */
  aoq_status status;
} enc;

static int enc_push(enc *e, int32_t id) {
  if (e->n == e->cap) {
    size_t cap = e->cap ? e->cap * 2 : 64;
    int32_t *p = tk_realloc(e->ids, cap * sizeof(int32_t));
    if (!p) {
      e->status = aoq_err(AOQ_ENOMEM, "aoq_tokenizer_encode: out of memory");
      return 1;
    }
    e->ids = p;
    e->cap = cap;
  }
  e->ids[e->n++] = id;
  return 0;
}

static int heap_less(heap_ent a, heap_ent b) {
  return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(heap_ent *h, size_t *n, heap_ent v) {
  size_t i = (*n)++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!heap_less(v, h[p])) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = v;
}

static heap_ent heap_pop(heap_ent *h, size_t *n) {
  heap_ent top = h[0], v = h[--*n];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= *n) break;
    if (c + 1 < *n && heap_less(h[c + 1], h[c])) c++;
    if (!heap_less(h[c], v)) break;
    h[i] = h[c];
    i = c;
  }
  if (*n) h[i] = v;
  return top;
}

static void push_pair(const aoq_tokenizer *t, sym *s, heap_ent *h, size_t *hn, int32_t pos) {
  int32_t nx = s[pos].next, rank, out;
  if (nx >= 0 && merge_find(t, s[pos].id, s[nx].id, &rank, &out))
    heap_push(h, hn, (heap_ent){rank, pos});
}

/* BPE over one pre-token (no added tokens inside). */
static int bpe_piece(void *ctx, size_t off, size_t len) {
  enc *e = ctx;
  const aoq_tokenizer *t = e->t;
  const char *p = e->text + off;
  if (len == 1) return enc_push(e, t->byte_id[(unsigned char)p[0]]);
  if (t->ignore_merges) {
    int32_t id = vocab_find(t, p, len);
    if (id >= 0) return enc_push(e, id);
  }
  if (len > e->scratch) {
    size_t cap = len < 256 ? 256 : len * 2;
    sym *s = tk_realloc(e->syms, cap * sizeof(sym));
    if (s) e->syms = s;
    heap_ent *h = s ? tk_realloc(e->heap, cap * 3 * sizeof(heap_ent)) : NULL;
    if (!s || !h) {
      e->status =
          aoq_err(AOQ_ENOMEM, "aoq_tokenizer_encode: out of memory for a %zu-byte piece", len);
      return 1;
    }
    e->heap = h;
    e->scratch = cap;
  }
  sym *s = e->syms;
  heap_ent *h = e->heap;
  size_t hn = 0;
  for (size_t i = 0; i < len; i++) {
    s[i].id = t->byte_id[(unsigned char)p[i]];
    s[i].prev = (int32_t)i - 1;
    s[i].next = i + 1 < len ? (int32_t)i + 1 : -1;
    s[i].alive = 1;
  }
  for (size_t i = 0; i + 1 < len; i++) push_pair(t, s, h, &hn, (int32_t)i);
  while (hn) {
    heap_ent top = heap_pop(h, &hn);
    int32_t a = top.pos, b = s[a].next, rank, out;
    /* Stale entry: a was merged away, or the pair at a changed since the push. */
    if (!s[a].alive || b < 0 || !merge_find(t, s[a].id, s[b].id, &rank, &out) || rank != top.rank)
      continue;
    s[a].id = out;
    s[b].alive = 0;
    s[a].next = s[b].next;
    if (s[b].next >= 0) s[s[b].next].prev = a;
    if (s[a].prev >= 0) push_pair(t, s, h, &hn, s[a].prev);
    push_pair(t, s, h, &hn, a);
  }
  for (int32_t i = 0; i >= 0; i = s[i].next)
    if (enc_push(e, s[i].id)) return 1;
  return 0;
}

/* Encodes a stretch of text that holds no added token. */
static int encode_plain(enc *e, size_t off, size_t len) {
  if (len == 0) return 0;
  if (e->t->bytes_only) {
    for (size_t i = 0; i < len; i++)
      if (enc_push(e, e->t->byte_id[(unsigned char)e->text[off + i]])) return 1;
    return 0;
  }
  const char *base = e->text;
  e->text = base + off;
  int r = aoq_pretok_llama3(base + off, len, bpe_piece, e);
  e->text = base;
  return r;
}

aoq_status aoq_tokenizer_encode(const aoq_tokenizer *t, const char *text, size_t len, int add_bos,
                                int32_t **ids, size_t *n) {
  if (!t || (!text && len) || !ids || !n)
    return aoq_err(AOQ_EINVAL, "aoq_tokenizer_encode: NULL argument");
  *ids = NULL;
  *n = 0;
  enc e = {.t = t, .text = text, .status = AOQ_OK};
  int stop = 0;
  if (add_bos) {
    if (t->bos < 0)
      return aoq_err(AOQ_EINVAL, "aoq_tokenizer_encode: the tokenizer has no BOS token");
    stop = enc_push(&e, t->bos);
  }
  /* Added tokens are found first (longest match at each position); the text between them is
   * pre-tokenized and BPE-encoded. */
  size_t plain = 0;
  for (size_t i = 0; i < len && !stop;) {
    unsigned b = (unsigned char)text[i];
    int32_t hit = -1;
    for (uint32_t k = t->added_first[b]; k < t->added_first[b + 1]; k++) {
      int32_t id = t->added[k];
      size_t tl = t->tok_len[id];
      if (tl <= len - i && memcmp(t->arena + t->tok_off[id], text + i, tl) == 0) {
        hit = id;
        break;
      }
    }
    if (hit < 0) {
      i++;
      continue;
    }
    stop = encode_plain(&e, plain, i - plain) || enc_push(&e, hit);
    i += t->tok_len[hit];
    plain = i;
  }
  if (!stop) stop = encode_plain(&e, plain, len - plain);
  free(e.syms);
  free(e.heap);
  if (stop) {
    free(e.ids);
    return e.status != AOQ_OK ? e.status : aoq_err(AOQ_EINTERNAL, "aoq_tokenizer_encode: stopped");
  }
  if (!e.ids) { /* empty result: still hand back a freeable pointer */
    e.ids = tk_malloc(sizeof(int32_t));
    if (!e.ids) return aoq_err(AOQ_ENOMEM, "aoq_tokenizer_encode: out of memory");
  }
  *ids = e.ids;
  *n = e.n;
  return AOQ_OK;
}

/* ---------------------------------------------------------------------------------------------
 * decode
 * ------------------------------------------------------------------------------------------- */

aoq_status aoq_tokenizer_decode(const aoq_tokenizer *t, const int32_t *ids, size_t n,
                                int skip_special, char **text, size_t *len) {
  if (!t || (!ids && n) || !text) return aoq_err(AOQ_EINVAL, "aoq_tokenizer_decode: NULL argument");
  *text = NULL;
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= t->n_ids || !(t->tok_flags[ids[i]] & TOK_USED))
      return aoq_err(AOQ_EINVAL,
                     "aoq_tokenizer_decode: id %d at %zu is not in the vocabulary (%d ids)", ids[i],
                     i, t->n_ids);
    if (!(skip_special && (t->tok_flags[ids[i]] & TOK_SPECIAL))) total += t->tok_len[ids[i]];
  }
  char *out = tk_malloc(total + 1);
  if (!out) return aoq_err(AOQ_ENOMEM, "aoq_tokenizer_decode: out of memory for %zu bytes", total);
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (skip_special && (t->tok_flags[ids[i]] & TOK_SPECIAL)) continue;
    memcpy(out + o, t->arena + t->tok_off[ids[i]], t->tok_len[ids[i]]);
    o += t->tok_len[ids[i]];
  }
  out[o] = 0;
  *text = out;
  if (len) *len = o;
  return AOQ_OK;
}
