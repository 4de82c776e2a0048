/*
 * qcache.h — the quantized-weight cache (DESIGN.md "Formats": "The result can be cached to disk so
 * the next start is fast"): a model's quantized weights in aoq's packed layouts, written once to a
 * .safetensors file and loaded back without re-quantizing.
 *
 * File layout (cache layout version AOQ_QCACHE_LAYOUT): for each weight <name>, the non-empty
 * buffers of its aoq_qweight as U8 tensors "<name>.qdata", "<name>.scale", "<name>.zero",
 * "<name>.aux" (1-D, byte counts), and metadata "<name>.shape" = "<n> <k>". File metadata:
 * "aoq.version" (AOQ_VERSION_STRING of the writer), "aoq.cache_layout", "aoq.format" (canonical
 * config string), "aoq.fingerprint" (the caller's identification of the source weights, e.g. the
 * checkpoint's path, size and mtime, or "synthetic:<arch>:<seed>").
 *
 * Thread safety: an aoq_qcache handle is read-only after open and may be shared between threads.
 */
#ifndef AOQ_CORE_QCACHE_H
#define AOQ_CORE_QCACHE_H

#include <stddef.h>

#include "core/format.h"

#define AOQ_QCACHE_LAYOUT "1"

typedef struct aoq_qcache_entry {
  const char *name;     /* weight name, e.g. "layers.3.mlp.down_proj" (no '.qdata' suffix) */
  const aoq_qweight *w; /* host memory; borrowed for the duration of the call */
} aoq_qcache_entry;

/*
 * Writes the n entries to `path` atomically (temp file + rename). Every entry must be in format
 * `f` and have the buffer sizes aoq_format_plan gives for its shape. Errors: AOQ_EINVAL (NULL,
 * duplicate or empty name, wrong kind), AOQ_ESHAPE (sizes), AOQ_EIO (writing).
 */
aoq_status aoq_qcache_write(const char *path, const aoq_format *f, const char *fingerprint,
                            const aoq_qcache_entry *e, size_t n);

typedef struct aoq_qcache aoq_qcache;

/*
 * Opens a cache written for format `f` and source `fingerprint`. Errors: AOQ_ENOTFOUND when the
 * file does not exist or was written for other source weights (fingerprint differs); AOQ_EFORMAT
 * when it is not a cache, was written by another aoq version or cache layout, or holds another
 * format; AOQ_EIO for other I/O errors. Close with aoq_qcache_close.
 */
aoq_status aoq_qcache_open(const char *path, const aoq_format *f, const char *fingerprint,
                           aoq_qcache **out);
void aoq_qcache_close(aoq_qcache *c);

/* Number of weights, and the i-th name (sorted; borrowed until close; NULL when out of range). */
size_t aoq_qcache_count(const aoq_qcache *c);
const char *aoq_qcache_name(const aoq_qcache *c, size_t i);

/*
 * Loads weight `name` into *w: plans it for its stored shape, allocates host buffers
 * (aoq_qweight_host_alloc; the caller frees with aoq_qweight_host_free) and copies the bytes.
 * Errors: AOQ_ENOTFOUND (no such weight), AOQ_EFORMAT (stored sizes disagree with the plan).
 */
aoq_status aoq_qcache_load(const aoq_qcache *c, const char *name, aoq_qweight *w);

#endif
