/* device.c — device handles, backend discovery, and the checked wrappers around the iface. */
#include "devices/device.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

struct aoq_device {
  const struct aoq_device_iface *iface;
  void *ctx;
  char name[32];
  uint32_t caps;           /* cached from info at wrap time */
  uint64_t linear_formats; /* cached from info at wrap time */
};

aoq_status aoq_device_wrap(const struct aoq_device_iface *iface, void *ctx, const char *name,
                           aoq_device **out) {
  if (!iface || iface->api_version != AOQ_DEVICE_API_VERSION)
    return aoq_err(AOQ_EINTERNAL, "backend %s: device API version %d, expected %d", name,
                   iface ? iface->api_version : -1, AOQ_DEVICE_API_VERSION);
  aoq_device *d = calloc(1, sizeof *d);
  if (!d) return aoq_err(AOQ_ENOMEM, "device handle");
  d->iface = iface;
  d->ctx = ctx;
  snprintf(d->name, sizeof d->name, "%s", name);
  aoq_device_info info;
  memset(&info, 0, sizeof info);
  aoq_status st = iface->info(ctx, &info);
  if (st != AOQ_OK) {
    free(d);
    return st;
  }
  d->caps = info.caps;
  d->linear_formats = info.linear_formats | (1ull << AOQ_FMT_BF16);
  *out = d;
  return AOQ_OK;
}

static aoq_status parse_index(const char *s, int *idx) {
  if (!*s) {
    *idx = 0;
    return AOQ_OK;
  }
  if (*s != ':') return AOQ_EINVAL;
  char *end;
  long v = strtol(s + 1, &end, 10);
  if (end == s + 1 || *end || v < 0 || v > 1024) return AOQ_EINVAL;
  *idx = (int)v;
  return AOQ_OK;
}


aoq_status aoq_device_open(const char *name, aoq_device **out) {
  if (!name || !out) return aoq_err(AOQ_EINVAL, "aoq_device_open: NULL argument");
  int idx = 0;
  if (!strcmp(name, "auto")) {
    static const char *const order[] = {"cuda:0", "hip:0", "xpu:0"};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
      if (aoq_device_open(order[i], out) == AOQ_OK) return AOQ_OK;
    aoq_err_clear();
    return aoq_cpu_device_create(0, out);
  }
  const struct {
    const char *prefix;
    aoq_status (*create)(int, aoq_device **);
    const char *flag;
  } backends[] = {
      {"cpu", aoq_cpu_device_create, "CPU"},
#ifdef AOQ_HAVE_CUDA
      {"cuda", aoq_cuda_device_create, "CUDA"},
#else
      {"cuda", NULL, "CUDA"},
#endif
#ifdef AOQ_HAVE_HIP
      {"hip", aoq_hip_device_create, "HIP"},
#else
      {"hip", NULL, "HIP"},
#endif
#ifdef AOQ_HAVE_XPU
      {"xpu", aoq_xpu_device_create, "XPU"},
#else
      {"xpu", NULL, "XPU"},
#endif
  };
  for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
    size_t n = strlen(backends[i].prefix);
    if (strncmp(name, backends[i].prefix, n) || (name[n] && name[n] != ':')) continue;
    if (parse_index(name + n, &idx) != AOQ_OK)
      return aoq_err(AOQ_EINVAL, "device name '%s': expected %s or %s:<index>", name,
                     backends[i].prefix, backends[i].prefix);
    if (!backends[i].create)
      return aoq_err(AOQ_ENODEV,
                     "device '%s': the %s backend was not built into this aoq (configure with "
                     "-DAOQ_%s=ON where its toolchain is installed)",
                     name, backends[i].prefix, backends[i].flag);
    return backends[i].create(idx, out);
  }
  return aoq_err(AOQ_EINVAL, "unknown device '%s' (expected cpu, cuda:N, hip:N, xpu:N or auto)",
                 name);
}

void aoq_device_close(aoq_device *d) {
  if (!d) return;
  if (d->iface->destroy) d->iface->destroy(d->ctx);
  free(d);
}

const struct aoq_device_iface *aoq_device_iface_of(const aoq_device *d) {
  return d ? d->iface : NULL;
}

aoq_status aoq_device_info_get(aoq_device *d, aoq_device_info *out) {
  if (!d || !out) return aoq_err(AOQ_EINVAL, "aoq_device_info_get: NULL argument");
  memset(out, 0, sizeof *out);
  return d->iface->info(d->ctx, out);
}

bool aoq_device_has(const aoq_device *d, uint32_t cap) { return d && (d->caps & cap) == cap; }

const char *aoq_device_name(const aoq_device *d) { return d ? d->name : "(none)"; }

aoq_status aoq_rope_check(const aoq_rope *r, int n_heads, int head_dim, int max_head_dim,
                          int64_t row_stride, const char *who) {
  if (!r) return aoq_err(AOQ_EINVAL, "%s rope: NULL rope parameters", who);
  if (n_heads <= 0 || head_dim <= 0 || head_dim % 2 || head_dim > max_head_dim)
    return aoq_err(AOQ_EINVAL, "%s rope: n_heads %d, head_dim %d (expected > 0, even, <= %d)", who,
                   n_heads, head_dim, max_head_dim);
  if ((int64_t)n_heads * head_dim > row_stride)
    return aoq_err(AOQ_ESHAPE, "%s rope: %d heads x %d exceed the row stride %lld", who, n_heads,
                   head_dim, (long long)row_stride);
  if (!(r->theta > 0) || isinf(r->theta))
    return aoq_err(AOQ_EINVAL, "%s rope: theta %g", who, (double)r->theta);
  if (r->factor > 0 && (!(r->low_freq_factor > 0) || !(r->high_freq_factor > r->low_freq_factor) ||
                        r->original_max_position <= 0))
    return aoq_err(AOQ_EINVAL,
                   "%s rope: llama3 scaling needs 0 < low_freq_factor (%g) < high_freq_factor "
                   "(%g) and original_max_position > 0 (%d)",
                   who, (double)r->low_freq_factor, (double)r->high_freq_factor,
                   r->original_max_position);
  return AOQ_OK;
}

aoq_status aoq_gpu_quantize_check(const aoq_qweight *w, const char *who) {
  int64_t blk = w->kind == AOQ_FMT_MXFP8 || w->kind == AOQ_FMT_MXFP4     ? 32
                : w->kind == AOQ_FMT_NVFP4 || w->kind == AOQ_FMT_NVFP4WO ? 16
                                                                         : 1;
  if (w->n <= 0 || w->k <= 0 || w->n > INT32_MAX || w->k % blk)
    return aoq_err(AOQ_ESHAPE, "%s quantize: weight [%lld, %lld] (k must be a multiple of %lld)",
                   who, (long long)w->n, (long long)w->k, (long long)blk);
  if (!w->qdata || !w->scale || (blk == 16 && !w->aux))
    return aoq_err(AOQ_EINVAL, "%s quantize: weight buffers not allocated", who);
  /* integer formats (kernels/gpu/quantize_int.cu): groups start on a byte of the bit stream (a
   * multiple of 16, or the row), and a group is indexed by int */
  bool int_fmt = w->kind == AOQ_FMT_INT8WO || w->kind == AOQ_FMT_INT8DQ ||
                 w->kind == AOQ_FMT_INT4WO || w->kind == AOQ_FMT_INTXWO ||
                 w->kind == AOQ_FMT_INT8_INTX || w->kind == AOQ_FMT_INT8_INT4 ||
                 w->kind == AOQ_FMT_FP8_INT4 || w->kind == AOQ_FMT_W158;
  bool per_row = w->kind == AOQ_FMT_INT8WO || w->kind == AOQ_FMT_INT8DQ || w->kind == AOQ_FMT_W158;
  if (int_fmt && (w->k > INT32_MAX || w->bits < 1 || w->bits > 8 ||
                  (!per_row && (w->group <= 0 || w->k % w->group ||
                                (w->group != w->k && w->group % 16)))))
    return aoq_err(AOQ_ESHAPE, "%s quantize: format %d: k %lld, group %d, bits %d", who,
                   (int)w->kind, (long long)w->k, w->group, w->bits);
  return AOQ_OK;
}

aoq_status aoq_kv_cache_check(const aoq_kv_cache *kv, const char *who, const char *op) {
  if (!kv || !kv->k || !kv->v) return aoq_err(AOQ_EINVAL, "%s %s: NULL kv cache or k/v", who, op);
  if (kv->n_pages <= 0 || kv->page_size <= 0 || kv->n_kv_heads <= 0 || kv->head_dim <= 0)
    return aoq_err(AOQ_EINVAL, "%s %s: kv cache shape pages %d x %d, %d heads x %d", who, op,
                   kv->n_pages, kv->page_size, kv->n_kv_heads, kv->head_dim);
  /* slot ids are int32 (aoq_attn_batch, kv_store's slots) */
  if ((int64_t)kv->n_pages * kv->page_size > INT32_MAX)
    return aoq_err(AOQ_EINVAL, "%s %s: %d pages x %d slots overflow int32 slot ids", who, op,
                   kv->n_pages, kv->page_size);
  return AOQ_OK;
}

/* ---- wrappers (one per iface entry) ---- */

aoq_status aoq_dev_alloc(aoq_device *d, size_t bytes, void **ptr) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->alloc) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->alloc(d->ctx, bytes, ptr);
}

void aoq_dev_free(aoq_device *d, void *ptr) {
  if (!d || !d->iface->free) return;
  d->iface->free(d->ctx, ptr);
}

aoq_status aoq_dev_copy_h2d(aoq_device *d, void *dst, const void *src, size_t n, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->copy_h2d) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->copy_h2d(d->ctx, dst, src, n, s);
}

aoq_status aoq_dev_copy_d2h(aoq_device *d, void *dst, const void *src, size_t n, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->copy_d2h) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->copy_d2h(d->ctx, dst, src, n, s);
}

aoq_status aoq_dev_copy_d2d(aoq_device *d, void *dst, const void *src, size_t n, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->copy_d2d) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->copy_d2d(d->ctx, dst, src, n, s);
}

aoq_status aoq_dev_memset(aoq_device *d, void *dst, int value, size_t n, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->memset) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->memset(d->ctx, dst, value, n, s);
}

aoq_status aoq_dev_host_register(aoq_device *d, void *p, size_t n) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!(d->caps & AOQ_CAP_HOST_REGISTER) || !d->iface->host_register)
    return aoq_err(AOQ_EUNSUPPORTED, "%s: device %s lacks AOQ_CAP_HOST_REGISTER", __func__, d->name);
  return d->iface->host_register(d->ctx, p, n);
}

aoq_status aoq_dev_host_unregister(aoq_device *d, void *p) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!(d->caps & AOQ_CAP_HOST_REGISTER) || !d->iface->host_unregister)
    return aoq_err(AOQ_EUNSUPPORTED, "%s: device %s lacks AOQ_CAP_HOST_REGISTER", __func__, d->name);
  return d->iface->host_unregister(d->ctx, p);
}

aoq_status aoq_dev_ipc_export(aoq_device *d, void *ptr, aoq_ipc_handle *out) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!(d->caps & AOQ_CAP_IPC) || !d->iface->ipc_export)
    return aoq_err(AOQ_EUNSUPPORTED, "%s: device %s lacks AOQ_CAP_IPC", __func__, d->name);
  return d->iface->ipc_export(d->ctx, ptr, out);
}

aoq_status aoq_dev_ipc_import(aoq_device *d, const aoq_ipc_handle *h, void **ptr) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!(d->caps & AOQ_CAP_IPC) || !d->iface->ipc_import)
    return aoq_err(AOQ_EUNSUPPORTED, "%s: device %s lacks AOQ_CAP_IPC", __func__, d->name);
  return d->iface->ipc_import(d->ctx, h, ptr);
}

aoq_status aoq_dev_ipc_close(aoq_device *d, void *ptr) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!(d->caps & AOQ_CAP_IPC) || !d->iface->ipc_close)
    return aoq_err(AOQ_EUNSUPPORTED, "%s: device %s lacks AOQ_CAP_IPC", __func__, d->name);
  return d->iface->ipc_close(d->ctx, ptr);
}

aoq_status aoq_dev_mem_range(aoq_device *d, const void *ptr, void **base, size_t *bytes) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->mem_range)
    return aoq_err(AOQ_EUNSUPPORTED, "%s: device %s cannot tell allocation ranges", __func__,
                   d->name);
  return d->iface->mem_range(d->ctx, ptr, base, bytes);
}

aoq_status aoq_dev_stream_create(aoq_device *d, aoq_stream **out) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->stream_create) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->stream_create(d->ctx, out);
}

void aoq_dev_stream_destroy(aoq_device *d, aoq_stream *s) {
  if (!d || !d->iface->stream_destroy) return;
  d->iface->stream_destroy(d->ctx, s);
}

aoq_status aoq_dev_stream_sync(aoq_device *d, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->stream_sync) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->stream_sync(d->ctx, s);
}

aoq_status aoq_dev_event_create(aoq_device *d, aoq_event **out) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->event_create) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->event_create(d->ctx, out);
}

void aoq_dev_event_destroy(aoq_device *d, aoq_event *e) {
  if (!d || !d->iface->event_destroy) return;
  d->iface->event_destroy(d->ctx, e);
}

aoq_status aoq_dev_event_record(aoq_device *d, aoq_event *e, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->event_record) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->event_record(d->ctx, e, s);
}

aoq_status aoq_dev_event_wait(aoq_device *d, aoq_event *e, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->event_wait) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->event_wait(d->ctx, e, s);
}

aoq_status aoq_dev_event_sync(aoq_device *d, aoq_event *e) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->event_sync) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->event_sync(d->ctx, e);
}

aoq_status aoq_dev_event_elapsed_ms(aoq_device *d, aoq_event *a, aoq_event *b, float *ms) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->event_elapsed_ms) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->event_elapsed_ms(d->ctx, a, b, ms);
}

aoq_status aoq_dev_graph_begin(aoq_device *d, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!(d->caps & AOQ_CAP_GRAPHS) || !d->iface->graph_begin)
    return aoq_err(AOQ_EUNSUPPORTED, "%s: device %s lacks AOQ_CAP_GRAPHS", __func__, d->name);
  return d->iface->graph_begin(d->ctx, s);
}

aoq_status aoq_dev_graph_end(aoq_device *d, aoq_stream *s, aoq_graph **out) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!(d->caps & AOQ_CAP_GRAPHS) || !d->iface->graph_end)
    return aoq_err(AOQ_EUNSUPPORTED, "%s: device %s lacks AOQ_CAP_GRAPHS", __func__, d->name);
  return d->iface->graph_end(d->ctx, s, out);
}

aoq_status aoq_dev_graph_launch(aoq_device *d, aoq_graph *g, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!(d->caps & AOQ_CAP_GRAPHS) || !d->iface->graph_launch)
    return aoq_err(AOQ_EUNSUPPORTED, "%s: device %s lacks AOQ_CAP_GRAPHS", __func__, d->name);
  return d->iface->graph_launch(d->ctx, g, s);
}

void aoq_dev_graph_destroy(aoq_device *d, aoq_graph *g) {
  if (!d || !d->iface->graph_destroy) return;
  d->iface->graph_destroy(d->ctx, g);
}

size_t aoq_dev_linear_workspace(aoq_device *d, const aoq_qweight *w, int64_t m) {
  if (!d || !d->iface->linear_workspace) return 0;
  return d->iface->linear_workspace(d->ctx, w, m);
}

aoq_status aoq_dev_linear(aoq_device *d, const aoq_qweight *w, const void *x, void *y, int64_t m, aoq_dtype dt, void *ws, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!w || !x || !y || m < 0) return aoq_err(AOQ_EINVAL, "linear: NULL tensor or negative rows");
  if ((unsigned)w->kind >= AOQ_FMT_COUNT || !(d->linear_formats & (1ull << w->kind)))
    return aoq_err(AOQ_EUNSUPPORTED, "linear: device %s has no kernel for format kind %d", d->name,
                   (int)w->kind);
  return d->iface->linear(d->ctx, w, x, y, m, dt, ws, s);
}

aoq_status aoq_dev_quantize(aoq_device *d, const void *w_src, aoq_qweight *w, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!(d->caps & AOQ_CAP_QUANTIZE) || !d->iface->quantize)
    return aoq_err(AOQ_EUNSUPPORTED, "%s: device %s lacks AOQ_CAP_QUANTIZE", __func__, d->name);
  return d->iface->quantize(d->ctx, w_src, w, s);
}

aoq_status aoq_dev_rmsnorm(aoq_device *d, const void *x, const void *w, void *y, int64_t m, int64_t n, float eps, aoq_dtype dt, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->rmsnorm) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->rmsnorm(d->ctx, x, w, y, m, n, eps, dt, s);
}

aoq_status aoq_dev_add(aoq_device *d, const void *a, const void *b, void *y, int64_t n, aoq_dtype dt, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->add) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->add(d->ctx, a, b, y, n, dt, s);
}

aoq_status aoq_dev_silu_mul(aoq_device *d, const void *gu, void *y, int64_t m, int64_t n, aoq_dtype dt, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->silu_mul) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->silu_mul(d->ctx, gu, y, m, n, dt, s);
}

aoq_status aoq_dev_embed(aoq_device *d, const void *table, int64_t n_rows, const int32_t *ids, void *y, int64_t m, int64_t dim, aoq_dtype dt, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->embed) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->embed(d->ctx, table, n_rows, ids, y, m, dim, dt, s);
}

aoq_status aoq_dev_rope(aoq_device *d, void *x, const int32_t *pos, int64_t m, int n_heads, int head_dim, int64_t row_stride, const aoq_rope *r, aoq_dtype dt, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->rope) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->rope(d->ctx, x, pos, m, n_heads, head_dim, row_stride, r, dt, s);
}

aoq_status aoq_dev_kv_store(aoq_device *d, const aoq_kv_cache *kv, const void *k, const void *v, const int32_t *slots, int64_t m, aoq_dtype dt, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->kv_store) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->kv_store(d->ctx, kv, k, v, slots, m, dt, s);
}

aoq_status aoq_dev_add_rmsnorm(aoq_device *d, void *x, const void *t, const void *w, void *y,
                               int64_t m, int64_t n, float eps, aoq_dtype dt, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (d->iface->add_rmsnorm) return d->iface->add_rmsnorm(d->ctx, x, t, w, y, m, n, eps, dt, s);
  if (t && m > 0 && n > 0) {
    if (m > INT64_MAX / n) return aoq_err(AOQ_EINVAL, "%s: %lld x %lld", __func__, (long long)m, (long long)n);
    AOQ_TRY(aoq_dev_add(d, x, t, x, m * n, dt, s));
  }
  return aoq_dev_rmsnorm(d, x, w, y, m, n, eps, dt, s);
}

aoq_status aoq_dev_linear_silu_mul(aoq_device *d, const aoq_qweight *w, const void *x, void *gu,
                                   void *y, int64_t m, aoq_dtype dt, void *ws, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!w) return aoq_err(AOQ_EINVAL, "%s: NULL weight", __func__);
  if (d->iface->linear_silu) {
    aoq_status st = d->iface->linear_silu(d->ctx, w, x, y, m, dt, ws, s);
    if (st != AOQ_EUNSUPPORTED) return st;
  }
  AOQ_TRY(aoq_dev_linear(d, w, x, gu, m, dt, ws, s));
  return aoq_dev_silu_mul(d, gu, y, m, w->n / 2, dt, s);
}

aoq_status aoq_dev_qkv_rope_store(aoq_device *d, const aoq_kv_cache *kv, const void *qkv,
                                  void *q_out, const int32_t *pos, const int32_t *slots, int64_t m,
                                  int n_heads, const aoq_rope *r, aoq_dtype dt, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->qkv_rope_store) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->qkv_rope_store(d->ctx, kv, qkv, q_out, pos, slots, m, n_heads, r, dt, s);
}

aoq_status aoq_dev_qkv_attention(aoq_device *d, const aoq_kv_cache *kv, const aoq_attn_batch *b,
                                 const void *qkv, const int32_t *slots, void *q, void *out,
                                 int64_t m, int n_heads, const aoq_rope *r, float scale,
                                 aoq_dtype dt, void *ws, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!b) return aoq_err(AOQ_EINVAL, "%s: NULL batch", __func__);
  if (d->iface->qkv_attention && m == b->n_seqs) {
    aoq_status st = d->iface->qkv_attention(d->ctx, kv, b, qkv, slots, out, m, n_heads, r, scale, dt, ws, s);
    if (st != AOQ_EUNSUPPORTED) return st;
  }
  AOQ_TRY(aoq_dev_qkv_rope_store(d, kv, qkv, q, b->row_pos, slots, m, n_heads, r, dt, s));
  return aoq_dev_attention(d, kv, b, q, out, m, n_heads, scale, dt, ws, s);
}

size_t aoq_dev_attention_workspace(aoq_device *d, const aoq_kv_cache *kv, int64_t m, int n_heads, int max_pos) {
  if (!d || !d->iface->attention_workspace) return 0;
  return d->iface->attention_workspace(d->ctx, kv, m, n_heads, max_pos);
}

aoq_status aoq_dev_attention(aoq_device *d, const aoq_kv_cache *kv, const aoq_attn_batch *b, const void *q, void *out, int64_t m, int n_heads, float scale, aoq_dtype dt, void *ws, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->attention) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->attention(d->ctx, kv, b, q, out, m, n_heads, scale, dt, ws, s);
}

aoq_status aoq_dev_argmax(aoq_device *d, const void *logits, int32_t *out, int64_t m, int64_t vocab, aoq_dtype dt, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->argmax) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->argmax(d->ctx, logits, out, m, vocab, dt, s);
}

aoq_status aoq_dev_sample(aoq_device *d, const void *logits, int32_t *out, int64_t m, int64_t vocab, const aoq_sample_params *p, aoq_dtype dt, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->sample) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->sample(d->ctx, logits, out, m, vocab, p, dt, s);
}

aoq_status aoq_dev_convert(aoq_device *d, const void *src, aoq_dtype sdt, void *dst, aoq_dtype ddt, int64_t n, aoq_stream *s) {
  if (!d) return aoq_err(AOQ_EINVAL, "%s: NULL device", __func__);
  if (!d->iface->convert) return aoq_err(AOQ_EUNSUPPORTED, "%s: not offered by %s", __func__, d->name);
  return d->iface->convert(d->ctx, src, sdt, dst, ddt, n, s);
}
