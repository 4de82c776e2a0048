/*
 * format_overrides.c — per-layer format overrides (docs/formats.md): a text file of
 * "<name> <config>" lines where an exact tensor name beats a "re:" regex, which beats the "*"
 * default. Split from format.c (the registry), which it uses only through core/format.h.
 */
#include <ctype.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/file.h"
#include "core/format.h"

/* --------------------------------------------------------------------------------------------
 * Per-layer overrides (docs/formats.md)
 * ------------------------------------------------------------------------------------------ */

typedef enum { RULE_EXACT, RULE_REGEX, RULE_DEFAULT } rule_kind;

typedef struct override_rule {
  rule_kind kind;
  char *pattern; /* exact name (RULE_EXACT) or the ERE source (RULE_REGEX) */
  regex_t re;
  aoq_format fmt;
} override_rule;

struct aoq_format_overrides {
  override_rule *rules;
  size_t n, cap;
};

void aoq_format_overrides_free(aoq_format_overrides *o) {
  if (!o) return;
  for (size_t i = 0; i < o->n; i++) {
    if (o->rules[i].kind == RULE_REGEX) regfree(&o->rules[i].re);
    free(o->rules[i].pattern);
  }
  free(o->rules);
  free(o);
}

/* Upper bound of the nodes glibc's regcomp builds for an ERE: it copies a repeated atom once per
 * count (a{3,5} -> 5 copies, a+ -> a a*), so nested and stacked counts multiply ("a++++..." or
 * "((a{999}){999})" take gigabytes). Overrides patterns above the bound are refused. */
#define AOQ_REGEX_MAX_NODES 65536.0
static double regex_nodes(const char *p) {
  double outer[32], cur = 0, last = 0; /* nodes so far in each open group; of the last atom */
  int depth = 0;
  for (; *p && cur <= AOQ_REGEX_MAX_NODES; p++) {
    if (*p == '(' || *p == ')') {
      if (*p == '(' && depth == 32) return 2 * AOQ_REGEX_MAX_NODES;
      if (*p == '(')
        outer[depth++] = cur, cur = last = 0;
      else if (depth > 0)
        last = cur, cur = outer[--depth] + last;
    } else if (*p == '*' || *p == '+' || *p == '?' || *p == '{') {
      double k = 2;
      if (*p == '{') {
        char *e;
        unsigned long lo = strtoul(p + 1, &e, 10), hi = lo;
        if (*e == ',') { /* {n,m}, or {n,}: n copies and a star */
          hi = lo + 1;
          if (isdigit((unsigned char)e[1]))
            hi = strtoul(e + 1, &e, 10);
          else
            e++;
        }
        k = (double)(hi > lo ? hi : lo) + 1;
        p = *e == '}' ? e : p;
      }
      cur += last * (k - 1), last *= k;
    } else {
      if (*p == '\\' && p[1]) {
        p++;
      } else if (*p == '[') { /* one atom: []a], [^]a], [[:alpha:]] */
        p += p[1] == '^' ? 2 : 1;
        if (*p == ']') p++;
        while (*p && *p != ']') {
          char *end = (*p == '[' && strchr(":.=", p[1]) && p[1]) ? strstr(p + 2, "]") : NULL;
          p = end ? end + 1 : p + 1;
        }
        if (!*p) break;
      }
      cur += 1, last = 1;
    }
  }
  while (depth > 0) cur += outer[--depth];
  return cur;
}

/* Splits the next whitespace-separated token of the line at *p; NULL at end or at a comment. */
static char *next_token(char **p) {
  char *s = *p;
  while (*s == ' ' || *s == '\t' || *s == '\r') s++;
  if (!*s || *s == '#') {
    *p = s;
    return NULL;
  }
  char *e = s;
  while (*e && *e != ' ' && *e != '\t' && *e != '\r') e++;
  if (*e) *e++ = '\0';
  *p = e;
  return s;
}

static aoq_status overrides_add_line(aoq_format_overrides *o, char *line, int lineno) {
  char *p = line;
  char *pat = next_token(&p);
  if (!pat) return AOQ_OK; /* blank or comment */
  char *cfg = next_token(&p);
  if (!cfg)
    return aoq_err(AOQ_EFORMAT, "overrides line %d: expected '<name> <config>', got only '%s'",
                   lineno, pat);
  char *extra = next_token(&p);
  if (extra)
    return aoq_err(AOQ_EFORMAT, "overrides line %d: unexpected '%s' after the config", lineno,
                   extra);
  override_rule r;
  memset(&r, 0, sizeof r);
  aoq_status s = aoq_format_parse(cfg, &r.fmt);
  if (s != AOQ_OK) {
    char detail[256];
    snprintf(detail, sizeof detail, "%s", aoq_last_error());
    return aoq_err(s, "overrides line %d: %s", lineno, detail);
  }
  if (strcmp(pat, "*") == 0) {
    r.kind = RULE_DEFAULT;
  } else if (strncmp(pat, "re:", 3) == 0) {
    r.kind = RULE_REGEX;
    if (!pat[3]) return aoq_err(AOQ_EFORMAT, "overrides line %d: empty regex", lineno);
    if (regex_nodes(pat + 3) > AOQ_REGEX_MAX_NODES)
      return aoq_err(AOQ_EFORMAT, "overrides line %d: regex '%s' repeats too much (> %.0f nodes)",
                     lineno, pat + 3, AOQ_REGEX_MAX_NODES);
    int rc = regcomp(&r.re, pat + 3, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
      char msg[128];
      regerror(rc, &r.re, msg, sizeof msg);
      return aoq_err(AOQ_EFORMAT, "overrides line %d: bad regex '%s': %s", lineno, pat + 3, msg);
    }
  } else {
    r.kind = RULE_EXACT;
  }
  for (size_t i = 0; i < o->n; i++) {
    const override_rule *q = &o->rules[i];
    if (r.kind == RULE_DEFAULT && q->kind == RULE_DEFAULT) {
      if (r.kind == RULE_REGEX) regfree(&r.re);
      return aoq_err(AOQ_EFORMAT, "overrides line %d: second default rule '*'", lineno);
    }
    if (r.kind == RULE_EXACT && q->kind == RULE_EXACT && strcmp(q->pattern, pat) == 0)
      return aoq_err(AOQ_EFORMAT, "overrides line %d: '%s' already has a rule", lineno, pat);
  }
  if (o->n == o->cap) {
    size_t cap = o->cap ? o->cap * 2 : 8;
    override_rule *nr = aoq_fault_hit() ? NULL : realloc(o->rules, cap * sizeof *nr);
    if (!nr) {
      if (r.kind == RULE_REGEX) regfree(&r.re);
      return aoq_err(AOQ_ENOMEM, "overrides: out of memory");
    }
    o->rules = nr;
    o->cap = cap;
  }
  r.pattern = aoq_fault_hit() ? NULL : strdup(pat);
  if (!r.pattern) {
    if (r.kind == RULE_REGEX) regfree(&r.re);
    return aoq_err(AOQ_ENOMEM, "overrides: out of memory");
  }
  o->rules[o->n++] = r;
  return AOQ_OK;
}

aoq_status aoq_format_overrides_parse(const char *text, aoq_format_overrides **out) {
  if (!text || !out) return aoq_err(AOQ_EINVAL, "aoq_format_overrides_parse: NULL argument");
  *out = NULL;
  aoq_format_overrides *o = calloc(1, sizeof *o);
  char *copy = strdup(text);
  if (aoq_fault_hit() || !o || !copy) {
    free(o);
    free(copy);
    return aoq_err(AOQ_ENOMEM, "overrides: out of memory");
  }
  aoq_status s = AOQ_OK;
  int lineno = 0;
  for (char *line = copy; line && s == AOQ_OK;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    lineno++;
    s = overrides_add_line(o, line, lineno);
    line = nl ? nl + 1 : NULL;
  }
  free(copy);
  if (s != AOQ_OK) {
    aoq_format_overrides_free(o);
    return s;
  }
  *out = o;
  return AOQ_OK;
}

aoq_status aoq_format_overrides_load(const char *path, aoq_format_overrides **out) {
  if (!path || !out) return aoq_err(AOQ_EINVAL, "aoq_format_overrides_load: NULL argument");
  char *buf;
  size_t len;
  aoq_status s = aoq_file_read(path, (size_t)64 << 20, &buf, &len);
  if (s != AOQ_OK) {
    char detail[512];
    snprintf(detail, sizeof detail, "%s", aoq_last_error());
    return aoq_err(s == AOQ_ENOTFOUND ? AOQ_EIO : s, "overrides %s", detail);
  }
  if (memchr(buf, '\0', len))
    s = aoq_err(AOQ_EFORMAT, "overrides %s: contains a NUL byte", path);
  else
    s = aoq_format_overrides_parse(buf, out);
  free(buf);
  return s;
}

aoq_format aoq_format_overrides_pick(const aoq_format_overrides *o, const char *name,
                                     aoq_format dflt) {
  if (!o || !name) return dflt;
  for (size_t i = 0; i < o->n; i++)
    if (o->rules[i].kind == RULE_EXACT && strcmp(o->rules[i].pattern, name) == 0)
      return o->rules[i].fmt;
  for (size_t i = 0; i < o->n; i++)
    if (o->rules[i].kind == RULE_REGEX && regexec(&o->rules[i].re, name, 0, NULL, 0) == 0)
      return o->rules[i].fmt;
  for (size_t i = 0; i < o->n; i++)
    if (o->rules[i].kind == RULE_DEFAULT) return o->rules[i].fmt;
  return dflt;
}
