/*
 * format.h — the format registry (DESIGN.md "Formats"): one row per aoq_format_kind naming its
 * element type, group size, scale/zero types and layout; the config-string parser; the reference
 * quantizers and dequantizers (spec/formats.md made executable, bit-exact with torchao); sizes of
 * the packed buffers of aoq_qweight (devices/device.h, docs/layouts.md).
 */
#ifndef AOQ_CORE_FORMAT_H
#define AOQ_CORE_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aoq/aoq.h"
#include "devices/device.h"

/* A parsed config: kind plus its parameters. */
typedef struct aoq_format {
  aoq_format_kind kind;
  int bits;  /* element bits: 16 bf16, 8 int8/fp8, 4 int4/fp4, 6 fp6, 1..8 intx/codebook, 2 w158 */
  int group; /* group size along K; 0 = per row (resolved to K when applied to a weight) */
} aoq_format;

/* Parses a config string of DESIGN.md ("int4wo-128", "intx3wo-g64", "mxfp4", ...). Errors:
 * AOQ_EFORMAT with a detail naming the problem (unknown name, bits out of range, bad group). */
aoq_status aoq_format_parse(const char *s, aoq_format *out);
/* Canonical config string of f into buf (e.g. "int4wo-128"); returns buf. */
const char *aoq_format_name(const aoq_format *f, char *buf, size_t len);
/* Checks that f applies to a weight [n, k] (group divides k, block shapes, ...). AOQ_ESHAPE. */
aoq_status aoq_format_check_shape(const aoq_format *f, int64_t n, int64_t k);
/* Fills w's kind/bits/group/n/k and the *_bytes of each buffer (pointers untouched). */
aoq_status aoq_format_plan(const aoq_format *f, int64_t n, int64_t k, aoq_qweight *w);
/* Bits per weight including scales, for reporting. */
double aoq_format_bits_per_weight(const aoq_format *f, int64_t n, int64_t k);
/* True for formats that quantize activations at run time. */
bool aoq_format_is_dynamic(aoq_format_kind kind);

/*
 * Reference quantizer: bf16 w[n,k] (host) -> host buffers of `w` (planned with aoq_format_plan
 * and allocated by the caller in host memory). Bit-exact with torchao where it has the format.
 */
aoq_status aoq_quantize_ref(const uint16_t *w_bf16, aoq_qweight *w);
/* Reference dequantizer: host qweight -> bf16 out[n,k], bit-exact with torchao's dequantize(). */
aoq_status aoq_dequantize_ref(const aoq_qweight *w, uint16_t *out_bf16);

/*
 * Per-layer overrides (docs/formats.md): a text file, one rule per line, `<pattern> <config>`,
 * where <pattern> is an exact tensor/layer name, or `re:<POSIX ERE>`; `*` alone is the default.
 * Exact name beats regex (first matching regex in file order) beats the default.
 */
typedef struct aoq_format_overrides aoq_format_overrides;
aoq_status aoq_format_overrides_load(const char *path, aoq_format_overrides **out);
aoq_status aoq_format_overrides_parse(const char *text, aoq_format_overrides **out);
/* The format for layer `name`; `dflt` when no rule matches. */
aoq_format aoq_format_overrides_pick(const aoq_format_overrides *o, const char *name,
                                     aoq_format dflt);
void aoq_format_overrides_free(aoq_format_overrides *o);

/* Host-side qweight helpers: allocate every planned buffer with malloc / free them. */
aoq_status aoq_qweight_host_alloc(aoq_qweight *w);
void aoq_qweight_host_free(aoq_qweight *w);

/*
 * Quantizes a bf16 host weight for device d: on the device when it has AOQ_CAP_QUANTIZE for the
 * kind (the bf16 rows travel once through `staging`, a device buffer of n*k*2 bytes or NULL to
 * allocate one), else with the reference quantizer on the host and one upload of the packed bytes.
 * w's device buffers are allocated here; free with aoq_qweight_dev_free.
 */
aoq_status aoq_qweight_quantize(aoq_device *d, const aoq_format *f, const uint16_t *w_bf16,
                                int64_t n, int64_t k, void *staging, aoq_qweight *w);
void aoq_qweight_dev_free(aoq_device *d, aoq_qweight *w);



/* Golden-check views (core/format_impl.h has the per-family split): torchao's layout of a weight's
 * inner tensor, dispatched by w->kind. */
aoq_status aoq_format_torchao_tensor(const aoq_qweight *w, const char *attr, void **bytes,
                                     size_t *n);

#endif
