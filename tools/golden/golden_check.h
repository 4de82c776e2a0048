/*
 * golden_check.h — checks aoq's formats against torchao's golden files (shared/golden,
 * tests/data/golden): the quantized inner tensors (q.*, ref.*) and `dequant` bit for bit, the
 * dynamic activation tensors (xq<M>.*) bit for bit, and the CPU linear (y1, y16) within a
 * per-format tolerance. Used by the aoq-golden CLI and by tests/unit/test_golden.c.
 */
#ifndef AOQ_TOOLS_GOLDEN_CHECK_H
#define AOQ_TOOLS_GOLDEN_CHECK_H

#include <stdio.h>

#include "core/format.h"

typedef struct aoq_golden_stats {
  int pass; /* tensors that matched (bit-exact, or y within tolerance) */
  int fail; /* mismatches, missing views, wrong sizes */
  int na;   /* not applicable: an activation tensor aoq's quantizer does not produce */
} aoq_golden_stats;

/* Maps torchao's config repr (the file's "config" metadata) to aoq's format. AOQ_ENOTFOUND when
 * the config class is not one aoq knows; AOQ_EFORMAT when its parameters are malformed. */
aoq_status aoq_golden_config_from_repr(const char *repr, aoq_format *out);

/*
 * Checks one golden file, printing one line per tensor to `out` ("PASS <file> <tensor> ...",
 * "FAIL <file> <tensor> ...", "N/A <file> <tensor> ..."), and adds to *st. Returns AOQ_OK when the
 * file could be checked (mismatches are counted in st->fail, not returned); an error (with
 * detail) when the file cannot be read or names no usable config.
 */
aoq_status aoq_golden_check_file(const char *path, FILE *out, aoq_golden_stats *st);

#endif
