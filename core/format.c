/*
 * format.c — the format registry (DESIGN.md "Formats"): one row per aoq_format_kind, the config
 * string parser (docs/formats.md), shape checks and buffer plans (docs/layouts.md),
 * host/device qweight helpers, and the dispatch of the reference quantizers to the
 * integer (core/quant_int.c) and float (core/quant_fp.c) families. Per-layer overrides live in
 * core/format_overrides.c.
 */
#include "core/format.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "core/format_impl.h"

typedef enum { FAM_NONE, FAM_INT, FAM_FP } fmt_family;

/* One row per kind: canonical base name, default element bits and group (0 = per row), whether
 * activations are quantized at run time, and which reference file implements it. */
typedef struct fmt_row {
  const char *name;
  int bits;
  int group;
  bool dynamic;
  fmt_family family;
} fmt_row;

static const fmt_row fmt_table[AOQ_FMT_COUNT] = {
    [AOQ_FMT_BF16] = {"bf16", 16, 0, false, FAM_NONE},
    [AOQ_FMT_INT8WO] = {"int8wo", 8, 0, false, FAM_INT},
    [AOQ_FMT_INT8DQ] = {"int8dq", 8, 0, true, FAM_INT},
    [AOQ_FMT_FP8WO] = {"fp8wo", 8, 0, false, FAM_FP},
    [AOQ_FMT_FP8DQ] = {"fp8dq", 8, 0, true, FAM_FP},
    [AOQ_FMT_FP8DQ_ROW] = {"fp8dq-row", 8, 0, true, FAM_FP},
    [AOQ_FMT_FP8DQ_BLOCK] = {"fp8dq-block", 8, 128, true, FAM_FP},
    [AOQ_FMT_INT4WO] = {"int4wo", 4, 128, false, FAM_INT},
    [AOQ_FMT_INT4WO_HQQ] = {"int4wo", 4, 128, false, FAM_INT},
    [AOQ_FMT_FP8_INT4] = {"fp8-int4", 4, 128, true, FAM_INT},
    [AOQ_FMT_INT8_INT4] = {"int8-int4", 4, 32, true, FAM_INT},
    [AOQ_FMT_INTXWO] = {"intx", 8, 0, false, FAM_INT},
    [AOQ_FMT_INT8_INTX] = {"int8-intx", 8, 32, true, FAM_INT},
    [AOQ_FMT_MXFP8] = {"mxfp8", 8, 32, true, FAM_FP},
    [AOQ_FMT_MXFP4] = {"mxfp4", 4, 32, true, FAM_FP},
    [AOQ_FMT_NVFP4] = {"nvfp4", 4, 16, true, FAM_FP},
    [AOQ_FMT_NVFP4WO] = {"nvfp4wo", 4, 16, false, FAM_FP},
    [AOQ_FMT_FP6_E3M2] = {"fp6-e3m2", 6, 0, false, FAM_FP},
    [AOQ_FMT_FP6_E2M3] = {"fp6-e2m3", 6, 0, false, FAM_FP},
    [AOQ_FMT_CODEBOOK] = {"codebook", 4, 0, false, FAM_INT},
    [AOQ_FMT_W158] = {"w158", 2, 0, false, FAM_INT},
};

/* Group sizes accepted for intx / int8-intx / codebook (docs/formats.md): a multiple of 16 so that
 * every group starts on a byte boundary of the bit stream for every width 1..8. */
#define AOQ_GROUP_MIN 16
#define AOQ_GROUP_MAX 65536

bool aoq_format_is_dynamic(aoq_format_kind kind) {
  return (unsigned)kind < AOQ_FMT_COUNT && fmt_table[kind].dynamic;
}

/* --------------------------------------------------------------------------------------------
 * Parser
 * ------------------------------------------------------------------------------------------ */

/* Parses a decimal integer that fills [s, end) entirely; -1 if malformed or > 1e6. */
static long parse_uint(const char *s, const char *end) {
  if (s >= end || end - s > 7) return -1;
  long v = 0;
  for (const char *p = s; p < end; p++) {
    if (!isdigit((unsigned char)*p)) return -1;
    v = v * 10 + (*p - '0');
  }
  if (end - s > 1 && s[0] == '0') return -1; /* no leading zeros: one spelling per value */
  return v;
}

/* Optional group suffix "" | "-<G>" | "-g<G>" at s for config `cfg`; *group stays the default
 * when absent. */
static aoq_status parse_group_suffix(const char *cfg, const char *s, int *group) {
  if (*s == '\0') return AOQ_OK;
  if (*s != '-') return aoq_err(AOQ_EFORMAT, "format '%s': unexpected '%s'", cfg, s);
  s++;
  if (*s == 'g') s++;
  long g = parse_uint(s, s + strlen(s));
  if (g < 0) return aoq_err(AOQ_EFORMAT, "format '%s': group '%s' is not a number", cfg, s);
  if (g < AOQ_GROUP_MIN || g > AOQ_GROUP_MAX || g % 16 != 0)
    return aoq_err(AOQ_EFORMAT, "format '%s': group %ld must be a multiple of 16 in %d..%d", cfg, g,
                   AOQ_GROUP_MIN, AOQ_GROUP_MAX);
  *group = (int)g;
  return AOQ_OK;
}

/* "<prefix><bits><rest>": reads the bit width 1..8 after prefix; *rest points past the digits. */
static aoq_status parse_bits(const char *cfg, const char *s, const char *what, int *bits,
                             const char **rest) {
  const char *e = s;
  while (isdigit((unsigned char)*e)) e++;
  long b = parse_uint(s, e);
  if (b < 0) return aoq_err(AOQ_EFORMAT, "format '%s': %s needs a bit width 1..8", cfg, what);
  if (b < 1 || b > 8) return aoq_err(AOQ_EFORMAT, "%s: bits must be 1..8 (got %ld)", cfg, b);
  *bits = (int)b;
  *rest = e;
  return AOQ_OK;
}

static aoq_format fmt_default(aoq_format_kind k) {
  aoq_format f = {k, fmt_table[k].bits, fmt_table[k].group};
  return f;
}

aoq_status aoq_format_parse(const char *s, aoq_format *out) {
  if (!s || !out) return aoq_err(AOQ_EINVAL, "aoq_format_parse: NULL argument");
  if (!*s) return aoq_err(AOQ_EFORMAT, "empty format string");
  if (strlen(s) > 64) return aoq_err(AOQ_EFORMAT, "format string too long (%zu chars)", strlen(s));

  /* Names without parameters. */
  static const struct {
    const char *name;
    aoq_format_kind kind;
  } plain[] = {
      {"bf16", AOQ_FMT_BF16},
      {"int8wo", AOQ_FMT_INT8WO},
      {"int8dq", AOQ_FMT_INT8DQ},
      {"fp8wo", AOQ_FMT_FP8WO},
      {"fp8dq", AOQ_FMT_FP8DQ},
      {"fp8dq-row", AOQ_FMT_FP8DQ_ROW},
      {"fp8dq-block", AOQ_FMT_FP8DQ_BLOCK},
      {"fp8-int4", AOQ_FMT_FP8_INT4},
      {"int8-int4", AOQ_FMT_INT8_INT4},
      {"mxfp8", AOQ_FMT_MXFP8},
      {"mxfp4", AOQ_FMT_MXFP4},
      {"nvfp4", AOQ_FMT_NVFP4},
      {"nvfp4wo", AOQ_FMT_NVFP4WO},
      {"fp6", AOQ_FMT_FP6_E3M2},
      {"fp6-e3m2", AOQ_FMT_FP6_E3M2},
      {"fp6-e2m3", AOQ_FMT_FP6_E2M3},
      {"w158", AOQ_FMT_W158},
  };
  for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
    if (strcmp(s, plain[i].name) == 0) {
      *out = fmt_default(plain[i].kind);
      return AOQ_OK;
    }

  aoq_format f;
  if (strncmp(s, "int4wo", 6) == 0) {
    /* int4wo[-<G>][-hqq], G in {32, 64, 128, 256} (torchao's Int4WeightOnlyConfig). */
    f = fmt_default(AOQ_FMT_INT4WO);
    const char *p = s + 6;
    if (*p == '-' && isdigit((unsigned char)p[1])) {
      const char *e = p + 1;
      while (isdigit((unsigned char)*e)) e++;
      long g = parse_uint(p + 1, e);
      if (g != 32 && g != 64 && g != 128 && g != 256)
        return aoq_err(AOQ_EFORMAT, "format '%s': int4wo group must be 32, 64, 128 or 256", s);
      f.group = (int)g;
      p = e;
    }
    if (strcmp(p, "-hqq") == 0) {
      f.kind = AOQ_FMT_INT4WO_HQQ;
    } else if (*p) {
      return aoq_err(AOQ_EFORMAT, "format '%s': expected int4wo-<32|64|128|256>[-hqq]", s);
    }
    *out = f;
    return AOQ_OK;
  }
  if (strncmp(s, "intx", 4) == 0) {
    f = fmt_default(AOQ_FMT_INTXWO);
    const char *rest;
    AOQ_TRY(parse_bits(s, s + 4, "intx<b>wo", &f.bits, &rest));
    if (strncmp(rest, "wo", 2) != 0)
      return aoq_err(AOQ_EFORMAT, "format '%s': expected intx<b>wo[-g<G>]", s);
    AOQ_TRY(parse_group_suffix(s, rest + 2, &f.group));
    *out = f;
    return AOQ_OK;
  }
  if (strncmp(s, "int8-intx", 9) == 0) {
    f = fmt_default(AOQ_FMT_INT8_INTX);
    const char *rest;
    AOQ_TRY(parse_bits(s, s + 9, "int8-intx<b>", &f.bits, &rest));
    AOQ_TRY(parse_group_suffix(s, rest, &f.group));
    *out = f;
    return AOQ_OK;
  }
  if (strncmp(s, "codebook", 8) == 0) {
    f = fmt_default(AOQ_FMT_CODEBOOK);
    const char *rest;
    AOQ_TRY(parse_bits(s, s + 8, "codebook<b>", &f.bits, &rest));
    AOQ_TRY(parse_group_suffix(s, rest, &f.group));
    *out = f;
    return AOQ_OK;
  }
  if (strcmp(s, "autoquant") == 0)
    return aoq_err(AOQ_EUNSUPPORTED,
                   "format 'autoquant': removed from torchao (v0.17); pick a format per layer "
                   "with an overrides file instead");
  return aoq_err(AOQ_EFORMAT, "unknown format '%s'", s);
}

const char *aoq_format_name(const aoq_format *f, char *buf, size_t len) {
  if (!buf || len == 0) return buf;
  if (!f || (unsigned)f->kind >= AOQ_FMT_COUNT) {
    snprintf(buf, len, "?");
    return buf;
  }
  const fmt_row *r = &fmt_table[f->kind];
  switch (f->kind) {
    case AOQ_FMT_INT4WO:
      snprintf(buf, len, "int4wo-%d", f->group);
      break;
    case AOQ_FMT_INT4WO_HQQ:
      snprintf(buf, len, "int4wo-%d-hqq", f->group);
      break;
    case AOQ_FMT_INTXWO:
      if (f->group)
        snprintf(buf, len, "intx%dwo-%d", f->bits, f->group);
      else
        snprintf(buf, len, "intx%dwo", f->bits);
      break;
    case AOQ_FMT_INT8_INTX:
      if (f->group != r->group)
        snprintf(buf, len, "int8-intx%d-%d", f->bits, f->group);
      else
        snprintf(buf, len, "int8-intx%d", f->bits);
      break;
    case AOQ_FMT_CODEBOOK:
      if (f->group)
        snprintf(buf, len, "codebook%d-%d", f->bits, f->group);
      else
        snprintf(buf, len, "codebook%d", f->bits);
      break;
    default:
      snprintf(buf, len, "%s", r->name);
      break;
  }
  return buf;
}

/* --------------------------------------------------------------------------------------------
 * Shapes and plans (docs/layouts.md)
 * ------------------------------------------------------------------------------------------ */

static aoq_status check_format(const aoq_format *f) {
  if (!f) return aoq_err(AOQ_EINVAL, "format: NULL");
  if ((unsigned)f->kind >= AOQ_FMT_COUNT)
    return aoq_err(AOQ_EINVAL, "format: invalid kind %d", (int)f->kind);
  if (f->bits < 1 || f->bits > 16 || f->group < 0)
    return aoq_err(AOQ_EINVAL, "format: invalid bits %d / group %d", f->bits, f->group);
  switch (f->kind) {
    case AOQ_FMT_INTXWO:
    case AOQ_FMT_INT8_INTX:
    case AOQ_FMT_CODEBOOK:
      if (f->bits > 8) return aoq_err(AOQ_EINVAL, "format: bits %d out of 1..8", f->bits);
      break;
    default:
      if (f->bits != fmt_table[f->kind].bits)
        return aoq_err(AOQ_EINVAL, "format %s: bits must be %d", fmt_table[f->kind].name,
                       fmt_table[f->kind].bits);
  }
  switch (f->kind) {
    case AOQ_FMT_INTXWO:
    case AOQ_FMT_INT8_INTX:
    case AOQ_FMT_CODEBOOK:
      break; /* any group (parse_group_suffix validates config strings) */
    case AOQ_FMT_INT4WO:
    case AOQ_FMT_INT4WO_HQQ:
      if (f->group != 32 && f->group != 64 && f->group != 128 && f->group != 256)
        return aoq_err(AOQ_EINVAL, "format int4wo: group %d is not 32, 64, 128 or 256", f->group);
      break;
    default:
      if (f->group != fmt_table[f->kind].group)
        return aoq_err(AOQ_EINVAL, "format %s: group must be %d (got %d)", fmt_table[f->kind].name,
                       fmt_table[f->kind].group, f->group);
  }
  return AOQ_OK;
}

static int64_t effective_group(const aoq_format *f, int64_t k) {
  return f->group ? f->group : k;
}

aoq_status aoq_format_check_shape(const aoq_format *f, int64_t n, int64_t k) {
  AOQ_TRY(check_format(f));
  char name[64];
  aoq_format_name(f, name, sizeof name);
  if (n <= 0 || k <= 0)
    return aoq_err(AOQ_ESHAPE, "%s: weight shape [%lld, %lld] must be positive", name, (long long)n,
                   (long long)k);
  if (n > ((int64_t)1 << 31) || k > ((int64_t)1 << 31))
    return aoq_err(AOQ_ESHAPE, "%s: weight shape [%lld, %lld] too large", name, (long long)n,
                   (long long)k);
  int64_t g = effective_group(f, k);
  switch (f->kind) {
    case AOQ_FMT_FP8DQ_BLOCK:
      if (n % 128 || k % 128)
        return aoq_err(AOQ_ESHAPE, "%s: weight [%lld, %lld] must be a multiple of 128x128 blocks",
                       name, (long long)n, (long long)k);
      break;
    case AOQ_FMT_MXFP8:
    case AOQ_FMT_MXFP4:
      if (k % 32)
        return aoq_err(AOQ_ESHAPE, "%s: in_features %lld must be a multiple of 32", name,
                       (long long)k);
      break;
    case AOQ_FMT_NVFP4:
    case AOQ_FMT_NVFP4WO:
      if (k % 16)
        return aoq_err(AOQ_ESHAPE, "%s: in_features %lld must be a multiple of 16", name,
                       (long long)k);
      break;
    case AOQ_FMT_INT4WO:
    case AOQ_FMT_INT4WO_HQQ:
    case AOQ_FMT_FP8_INT4:
    case AOQ_FMT_INT8_INT4:
    case AOQ_FMT_INTXWO:
    case AOQ_FMT_INT8_INTX:
    case AOQ_FMT_CODEBOOK:
      if (k % g)
        return aoq_err(AOQ_ESHAPE, "%s: group %lld does not divide in_features %lld", name,
                       (long long)g, (long long)k);
      if (f->kind != AOQ_FMT_CODEBOOK && f->kind != AOQ_FMT_INTXWO && (k % 2))
        return aoq_err(AOQ_ESHAPE, "%s: in_features %lld must be even", name, (long long)k);
      break;
    default:
      break;
  }
  return AOQ_OK;
}

/* Bytes of one row of a `bits`-wide LSB-first bit stream of k elements, padded to 4 bytes. */
static size_t bitrow_bytes(int64_t k, int bits) {
  return (size_t)(((k * bits + 31) / 32) * 4);
}

aoq_status aoq_format_plan(const aoq_format *f, int64_t n, int64_t k, aoq_qweight *w) {
  if (!w) return aoq_err(AOQ_EINVAL, "aoq_format_plan: NULL qweight");
  AOQ_TRY(aoq_format_check_shape(f, n, k));
  size_t N = (size_t)n, K = (size_t)k;
  size_t G = (size_t)effective_group(f, k);
  w->kind = f->kind;
  w->bits = f->bits;
  w->group = (int)G;
  w->n = n;
  w->k = k;
  w->qdata_bytes = w->scale_bytes = w->zero_bytes = w->aux_bytes = 0;
  switch (f->kind) {
    case AOQ_FMT_BF16:
      w->qdata_bytes = N * K * 2;
      w->group = (int)K;
      break;
    case AOQ_FMT_INT8WO:
    case AOQ_FMT_INT8DQ:
    case AOQ_FMT_FP8WO:
    case AOQ_FMT_FP8DQ_ROW:
      w->qdata_bytes = N * K;
      w->scale_bytes = N * 4;
      break;
    case AOQ_FMT_FP8DQ:
      w->qdata_bytes = N * K;
      w->scale_bytes = 4;
      break;
    case AOQ_FMT_FP8DQ_BLOCK:
      w->qdata_bytes = N * K;
      w->scale_bytes = (N / 128) * (K / 128) * 4;
      break;
    case AOQ_FMT_INT4WO:
    case AOQ_FMT_INT4WO_HQQ:
      w->qdata_bytes = N * (K / 2);
      w->scale_bytes = N * (K / G) * 2 * 2;
      break;
    case AOQ_FMT_FP8_INT4:
      w->qdata_bytes = N * bitrow_bytes(k, 4);
      w->scale_bytes = N * (K / G) * 4; /* f32: MSLK's group scales are fp32 */
      break;
    case AOQ_FMT_INT8_INT4:
    case AOQ_FMT_INTXWO:
    case AOQ_FMT_INT8_INTX:
      w->qdata_bytes = N * bitrow_bytes(k, f->bits);
      w->scale_bytes = N * (K / G) * 2;
      break;
    case AOQ_FMT_MXFP8:
      w->qdata_bytes = N * K;
      w->scale_bytes = N * (K / 32);
      break;
    case AOQ_FMT_MXFP4:
      w->qdata_bytes = N * (K / 2);
      w->scale_bytes = N * (K / 32);
      break;
    case AOQ_FMT_NVFP4:
    case AOQ_FMT_NVFP4WO:
      w->qdata_bytes = N * (K / 2);
      w->scale_bytes = N * (K / 16);
      w->aux_bytes = 4;
      break;
    case AOQ_FMT_FP6_E3M2:
    case AOQ_FMT_FP6_E2M3:
      w->qdata_bytes = N * bitrow_bytes(k, 6);
      w->scale_bytes = N * 2;
      break;
    case AOQ_FMT_CODEBOOK:
      w->qdata_bytes = N * bitrow_bytes(k, f->bits);
      w->scale_bytes = N * (K / G) * 2;
      w->aux_bytes = ((size_t)1 << f->bits) * 2;
      break;
    case AOQ_FMT_W158:
      w->qdata_bytes = N * bitrow_bytes(k, 2);
      w->scale_bytes = 2;
      break;
    default:
      return aoq_err(AOQ_EINTERNAL, "aoq_format_plan: kind %d has no plan", (int)f->kind);
  }
  return AOQ_OK;
}

double aoq_format_bits_per_weight(const aoq_format *f, int64_t n, int64_t k) {
  aoq_qweight w;
  if (aoq_format_plan(f, n, k, &w) != AOQ_OK) return 0.0;
  double bytes = (double)(w.qdata_bytes + w.scale_bytes + w.zero_bytes + w.aux_bytes);
  return bytes * 8.0 / ((double)n * (double)k);
}

/* --------------------------------------------------------------------------------------------
 * Reference quantize / dequantize dispatch
 * ------------------------------------------------------------------------------------------ */

static aoq_status check_host_qweight(const aoq_qweight *w, const char *fn) {
  if (!w) return aoq_err(AOQ_EINVAL, "%s: NULL qweight", fn);
  if ((unsigned)w->kind >= AOQ_FMT_COUNT)
    return aoq_err(AOQ_EINVAL, "%s: invalid kind %d", fn, (int)w->kind);
  /* Per-row kinds keep group 0 in aoq_format; the plan resolves it to k again. */
  aoq_format f = {w->kind, w->bits,
                  fmt_table[w->kind].group == 0 && w->group == w->k ? 0 : w->group};
  aoq_qweight p;
  AOQ_TRY(aoq_format_plan(&f, w->n, w->k, &p));
  if (p.group != w->group)
    return aoq_err(AOQ_EINVAL, "%s: group %d does not match the format (%d)", fn, w->group,
                   p.group);
  if (w->qdata_bytes < p.qdata_bytes || w->scale_bytes < p.scale_bytes ||
      w->zero_bytes < p.zero_bytes || w->aux_bytes < p.aux_bytes)
    return aoq_err(AOQ_ESHAPE, "%s: buffers smaller than the plan of [%lld, %lld]", fn,
                   (long long)w->n, (long long)w->k);
  if (!w->qdata || (p.scale_bytes && !w->scale) || (p.zero_bytes && !w->zero) ||
      (p.aux_bytes && !w->aux))
    return aoq_err(AOQ_EINVAL, "%s: a planned buffer is NULL", fn);
  return AOQ_OK;
}

aoq_status aoq_quantize_ref(const uint16_t *w_bf16, aoq_qweight *w) {
  if (!w_bf16) return aoq_err(AOQ_EINVAL, "aoq_quantize_ref: NULL weight");
  AOQ_TRY(check_host_qweight(w, "aoq_quantize_ref"));
  switch (fmt_table[w->kind].family) {
    case FAM_NONE:
      memcpy(w->qdata, w_bf16, (size_t)w->n * (size_t)w->k * 2);
      return AOQ_OK;
    case FAM_INT:
      return aoq_quantize_ref_int(w_bf16, w);
    case FAM_FP:
      return aoq_quantize_ref_fp(w_bf16, w);
  }
  return aoq_err(AOQ_EINTERNAL, "aoq_quantize_ref: bad family");
}

aoq_status aoq_dequantize_ref(const aoq_qweight *w, uint16_t *out_bf16) {
  if (!out_bf16) return aoq_err(AOQ_EINVAL, "aoq_dequantize_ref: NULL output");
  AOQ_TRY(check_host_qweight(w, "aoq_dequantize_ref"));
  switch (fmt_table[w->kind].family) {
    case FAM_NONE:
      memcpy(out_bf16, w->qdata, (size_t)w->n * (size_t)w->k * 2);
      return AOQ_OK;
    case FAM_INT:
      return aoq_dequantize_ref_int(w, out_bf16);
    case FAM_FP:
      return aoq_dequantize_ref_fp(w, out_bf16);
  }
  return aoq_err(AOQ_EINTERNAL, "aoq_dequantize_ref: bad family");
}

aoq_status aoq_format_torchao_tensor(const aoq_qweight *w, const char *attr, void **bytes,
                                     size_t *n) {
  if (!attr || !bytes || !n) return aoq_err(AOQ_EINVAL, "aoq_format_torchao_tensor: NULL argument");
  AOQ_TRY(check_host_qweight(w, "aoq_format_torchao_tensor"));
  switch (fmt_table[w->kind].family) {
    case FAM_NONE:
      return aoq_err(AOQ_ENOTFOUND, "bf16 has no quantized tensor '%s'", attr);
    case FAM_INT:
      return aoq_torchao_tensor_int(w, attr, bytes, n);
    case FAM_FP:
      return aoq_torchao_tensor_fp(w, attr, bytes, n);
  }
  return aoq_err(AOQ_EINTERNAL, "aoq_format_torchao_tensor: bad family");
}

/* --------------------------------------------------------------------------------------------
 * Host and device qweights
 * ------------------------------------------------------------------------------------------ */

aoq_status aoq_qweight_host_alloc(aoq_qweight *w) {
  if (!w) return aoq_err(AOQ_EINVAL, "aoq_qweight_host_alloc: NULL");
  w->qdata = w->scale = w->zero = w->aux = NULL;
  size_t sizes[4] = {w->qdata_bytes, w->scale_bytes, w->zero_bytes, w->aux_bytes};
  void **ptrs[4] = {&w->qdata, &w->scale, &w->zero, &w->aux};
  for (int i = 0; i < 4; i++) {
    if (!sizes[i]) continue;
    if (aoq_fault_hit() || !(*ptrs[i] = calloc(1, sizes[i]))) {
      aoq_qweight_host_free(w);
      return aoq_err(AOQ_ENOMEM, "qweight: cannot allocate %zu bytes", sizes[i]);
    }
  }
  return AOQ_OK;
}

void aoq_qweight_host_free(aoq_qweight *w) {
  if (!w) return;
  free(w->qdata);
  free(w->scale);
  free(w->zero);
  free(w->aux);
  w->qdata = w->scale = w->zero = w->aux = NULL;
}

void aoq_qweight_dev_free(aoq_device *d, aoq_qweight *w) {
  if (!d || !w) return;
  aoq_dev_free(d, w->qdata);
  aoq_dev_free(d, w->scale);
  aoq_dev_free(d, w->zero);
  aoq_dev_free(d, w->aux);
  w->qdata = w->scale = w->zero = w->aux = NULL;
}

static aoq_status dev_alloc_planned(aoq_device *d, aoq_qweight *w) {
  w->qdata = w->scale = w->zero = w->aux = NULL;
  size_t sizes[4] = {w->qdata_bytes, w->scale_bytes, w->zero_bytes, w->aux_bytes};
  void **ptrs[4] = {&w->qdata, &w->scale, &w->zero, &w->aux};
  for (int i = 0; i < 4; i++) {
    if (!sizes[i]) continue;
    aoq_status s = aoq_dev_alloc(d, sizes[i], ptrs[i]);
    if (s != AOQ_OK) {
      *ptrs[i] = NULL;
      aoq_qweight_dev_free(d, w);
      return s;
    }
  }
  return AOQ_OK;
}

aoq_status aoq_qweight_quantize(aoq_device *d, const aoq_format *f, const uint16_t *w_bf16,
                                int64_t n, int64_t k, void *staging, aoq_qweight *w) {
  if (!d || !f || !w_bf16 || !w) return aoq_err(AOQ_EINVAL, "aoq_qweight_quantize: NULL argument");
  AOQ_TRY(aoq_format_plan(f, n, k, w));
  aoq_device_info info;
  AOQ_TRY(aoq_device_info_get(d, &info));
  AOQ_TRY(dev_alloc_planned(d, w));
  aoq_status s = AOQ_OK;

  if ((info.caps & AOQ_CAP_QUANTIZE) && (info.quantize_formats & (1ull << f->kind))) {
    /* On the device: the bf16 rows travel once, through the staging buffer. */
    size_t src_bytes = (size_t)n * (size_t)k * 2;
    void *src = staging;
    if (!src && (s = aoq_dev_alloc(d, src_bytes, &src)) != AOQ_OK) goto fail;
    s = aoq_dev_copy_h2d(d, src, w_bf16, src_bytes, NULL);
    if (s == AOQ_OK) s = aoq_dev_quantize(d, src, w, NULL);
    if (s == AOQ_OK) s = aoq_dev_stream_sync(d, NULL);
    if (!staging) aoq_dev_free(d, src);
    if (s != AOQ_OK) goto fail;
    return AOQ_OK;
  }

  if (info.caps & AOQ_CAP_HOST_MEMORY) {
    /* Device memory is host memory: quantize in place. */
    s = aoq_quantize_ref(w_bf16, w);
    if (s != AOQ_OK) goto fail;
    return AOQ_OK;
  }

  /* Reference quantizer on the host, then one upload per buffer. */
  aoq_qweight h = *w;
  if ((s = aoq_qweight_host_alloc(&h)) != AOQ_OK) goto fail;
  s = aoq_quantize_ref(w_bf16, &h);
  const void *hp[4] = {h.qdata, h.scale, h.zero, h.aux};
  void *dp[4] = {w->qdata, w->scale, w->zero, w->aux};
  size_t sz[4] = {w->qdata_bytes, w->scale_bytes, w->zero_bytes, w->aux_bytes};
  for (int i = 0; i < 4 && s == AOQ_OK; i++)
    if (sz[i]) s = aoq_dev_copy_h2d(d, dp[i], hp[i], sz[i], NULL);
  if (s == AOQ_OK) s = aoq_dev_stream_sync(d, NULL);
  aoq_qweight_host_free(&h);
  if (s != AOQ_OK) goto fail;
  return AOQ_OK;

fail:
  aoq_qweight_dev_free(d, w);
  return s;
}
