/*
 * xpu_ops.c — argument checks, launch geometry and kernel arguments of the kernels/cl ops, for
 * any runtime that fills an aoq_xk_rt (Level Zero, OpenCL). Kernel signatures are in
 * kernels/cl/ops.cl and linear.cl; the argument lists below follow them one for one.
 *
 * Values that live in device memory (token ids, cache slots, positions, block tables) cannot be
 * checked here without a sync: the kernels skip a bad row and write a code into `err`, and the
 * runtime reports it as AOQ_EINVAL at the next stream_sync (aoq_xk_err_status).
 */
#include "devices/xpu/xpu_ops.h"

#include <math.h>
#include <string.h>

#include "base/error.h"

#define WG 64        /* AOQ_WG / AOQ_LWG of the kernels (reqd_work_group_size) */
#define ATT_MAXD 256 /* AOQ_ATT_MAXD of ops.cl */

const aoq_xk_name aoq_xk_names[AOQ_XK_COUNT] = {
    [AOQ_XK_RMSNORM] = {"ops", "aoq_rmsnorm"},
    [AOQ_XK_ADD] = {"ops", "aoq_add"},
    [AOQ_XK_SILU_MUL] = {"ops", "aoq_silu_mul"},
    [AOQ_XK_EMBED] = {"ops", "aoq_embed"},
    [AOQ_XK_ROPE] = {"ops", "aoq_rope"},
    [AOQ_XK_KV_STORE] = {"ops", "aoq_kv_store"},
    [AOQ_XK_ATTENTION] = {"ops", "aoq_attention"},
    [AOQ_XK_ARGMAX] = {"ops", "aoq_argmax"},
    [AOQ_XK_BF16_TO_F32] = {"ops", "aoq_bf16_to_f32"},
    [AOQ_XK_F32_TO_BF16] = {"ops", "aoq_f32_to_bf16"},
    [AOQ_XK_LINEAR_BF16] = {"linear", "aoq_linear_bf16"},
    [AOQ_XK_LIN_INT8WO] = {"quant", "aoq_lin_int8wo"},
    [AOQ_XK_LIN_FP8WO] = {"quant", "aoq_lin_fp8wo"},
    [AOQ_XK_LIN_INT4WO] = {"quant", "aoq_lin_int4wo"},
    [AOQ_XK_LIN_INTXWO] = {"quant", "aoq_lin_intxwo"},
    [AOQ_XK_LIN_CODEBOOK] = {"quant", "aoq_lin_codebook"},
    [AOQ_XK_LIN_W158] = {"quant", "aoq_lin_w158"},
    [AOQ_XK_LIN_FP6_E3M2] = {"quant", "aoq_lin_fp6_e3m2"},
    [AOQ_XK_LIN_FP6_E2M3] = {"quant", "aoq_lin_fp6_e2m3"},
    [AOQ_XK_LIN_NVFP4WO] = {"quant", "aoq_lin_nvfp4wo"},
    [AOQ_XK_DQ_TENSOR] = {"dyn", "aoq_dq_tensor"},
    [AOQ_XK_DQ_ACT_ROW] = {"dyn", "aoq_dq_act_row"},
    [AOQ_XK_DQ_ACT_ASYM] = {"dyn", "aoq_dq_act_asym"},
    [AOQ_XK_DQ_ACT_FP8BLK] = {"dyn", "aoq_dq_act_fp8blk"},
    [AOQ_XK_DQ_ACT_MXFP8] = {"dyn", "aoq_dq_act_mxfp8"},
    [AOQ_XK_DQ_ACT_MXFP4] = {"dyn", "aoq_dq_act_mxfp4"},
    [AOQ_XK_DQ_ACT_NVFP4] = {"dyn", "aoq_dq_act_nvfp4"},
    [AOQ_XK_DQ_LINEAR] = {"dyn", "aoq_dq_linear"},
    [AOQ_XK_DQ_LINEAR_I8] = {"dyn", "aoq_dq_linear_i8"},
    [AOQ_XK_WQ_FP8] = {"wquant", "aoq_wq_fp8"},
    [AOQ_XK_WQ_FP8_BLOCK] = {"wquant", "aoq_wq_fp8_block"},
    [AOQ_XK_WQ_MXFP8] = {"wquant", "aoq_wq_mxfp8"},
    [AOQ_XK_WQ_MXFP4] = {"wquant", "aoq_wq_mxfp4"},
    [AOQ_XK_WQ_NVFP4] = {"wquant", "aoq_wq_nvfp4"},
    [AOQ_XK_SAMPLE] = {"sample", "aoq_sample"},
};

/* dyn.cl names the format kinds by number (K_INT8DQ ...): keep them in step with aoq.h. */
_Static_assert(AOQ_FMT_INT8DQ == 2 && AOQ_FMT_FP8DQ == 4 && AOQ_FMT_FP8DQ_ROW == 5 &&
                   AOQ_FMT_FP8DQ_BLOCK == 6 && AOQ_FMT_FP8_INT4 == 9 && AOQ_FMT_INT8_INT4 == 10 &&
                   AOQ_FMT_INT8_INTX == 12 && AOQ_FMT_MXFP8 == 13 && AOQ_FMT_MXFP4 == 14 &&
                   AOQ_FMT_NVFP4 == 15,
               "format kind numbers used by kernels/cl/dyn.cl");

static aoq_xk_arg P(const void *p) {
  return (aoq_xk_arg){AOQ_XA_PTR, p, 0, 0};
}
static aoq_xk_arg I32(int32_t v) {
  return (aoq_xk_arg){AOQ_XA_I32, NULL, v, 0};
}
static aoq_xk_arg I64(int64_t v) {
  return (aoq_xk_arg){AOQ_XA_I64, NULL, v, 0};
}
static aoq_xk_arg F32(float v) {
  return (aoq_xk_arg){AOQ_XA_F32, NULL, 0, v};
}

static size_t cdiv(int64_t a, int64_t b) {
  return (size_t)((a + b - 1) / b);
}

static aoq_status launch(void *ctx, aoq_xk_id k, const aoq_xk_arg *a, int na, size_t g0, size_t g1,
                         size_t g2, aoq_stream *s) {
  aoq_xk_ops *o = ctx;
  const size_t groups[3] = {g0, g1, g2}, local[3] = {WG, 1, 1};
  return o->rt->launch(ctx, k, a, na, groups, local, s);
}

static aoq_status check_bf16(aoq_dtype dt, const char *op) {
  if (dt != AOQ_DTYPE_BF16)
    return aoq_err(AOQ_EUNSUPPORTED, "xpu %s: activation dtype %d (this backend runs BF16 only)",
                   op, (int)dt);
  return AOQ_OK;
}

static aoq_status check_rows(const char *op, int64_t m, int64_t n) {
  if (m < 0 || n < 0)
    return aoq_err(AOQ_EINVAL, "xpu %s: negative size (m=%lld, n=%lld)", op, (long long)m,
                   (long long)n);
  return AOQ_OK;
}

size_t aoq_xk_rope_tab_bytes(void) {
  return sizeof(float) * AOQ_XK_ROPE_SLOTS * AOQ_XK_ROPE_MAX_HALF;
}

aoq_status aoq_xk_ops_init(aoq_xk_ops *o, const aoq_xk_rt *rt, int *err, float *rope_tab) {
  memset(o, 0, sizeof *o);
  o->rt = rt;
  o->err = err;
  o->rope_tab = rope_tab;
  if (pthread_mutex_init(&o->rope_lock, NULL))
    return aoq_err(AOQ_EINTERNAL, "xpu: pthread_mutex_init failed");
  if (pthread_mutex_init(&o->sample_lock, NULL)) {
    pthread_mutex_destroy(&o->rope_lock);
    return aoq_err(AOQ_EINTERNAL, "xpu: pthread_mutex_init failed");
  }
  return AOQ_OK;
}

void aoq_xk_ops_fini(aoq_xk_ops *o) {
  pthread_mutex_destroy(&o->rope_lock);
  pthread_mutex_destroy(&o->sample_lock);
}

size_t aoq_xk_sample_params_bytes(void) {
  return (size_t)AOQ_XK_SAMPLE_MAX_ROWS * 8 * 4;
}

aoq_status aoq_xk_err_status(int code, const char *backend) {
  switch (code) {
    case 0:
      return AOQ_OK;
    case 1:
      return aoq_err(AOQ_EINVAL, "%s embed: a token id was outside the table (row left unwritten)",
                     backend);
    case 2:
      return aoq_err(AOQ_EINVAL, "%s kv_store: a slot was outside the cache (row skipped)",
                     backend);
    case 3:
      return aoq_err(AOQ_EINVAL,
                     "%s attention: a row named a sequence, position or page out of range "
                     "(row zeroed)",
                     backend);
    default:
      return aoq_err(AOQ_EINTERNAL, "%s: kernel error code %d", backend, code);
  }
}

/* ---- linear ---- */

/* Weight-only formats: kernel, and the buffer bytes the layout needs (docs/layouts.md). */
typedef struct wq_plan {
  aoq_xk_id kernel;
  size_t q, s, a; /* bytes of qdata, scale, aux */
} wq_plan;

static size_t bitrow(int64_t k, int bits) {
  return (size_t)(((k * bits + 31) / 32) * 4);
}

/* The plan of w, or a static reason it cannot run. */
static const char *wq_plan_of(const aoq_qweight *w, wq_plan *p) {
  const size_t N = (size_t)w->n, K = (size_t)w->k;
  const int64_t g = w->group > 0 ? w->group : w->k;
  if (w->k % g) return "group does not divide k";
  const size_t G = (size_t)(w->k / g);
  int bits = w->bits;
  memset(p, 0, sizeof *p);
  switch (w->kind) {
    case AOQ_FMT_INT8WO:
      *p = (wq_plan){AOQ_XK_LIN_INT8WO, N * K, 4 * N, 0};
      break;
    case AOQ_FMT_FP8WO:
      *p = (wq_plan){AOQ_XK_LIN_FP8WO, N * K, 4 * N, 0};
      break;
    case AOQ_FMT_INT4WO:
    case AOQ_FMT_INT4WO_HQQ:
      if (w->k % 2) return "int4 needs an even k";
      *p = (wq_plan){AOQ_XK_LIN_INT4WO, N * K / 2, 4 * N * G, 0};
      break;
    case AOQ_FMT_INTXWO:
      if (bits < 1 || bits > 8) return "intx bits must be 1..8";
      *p = (wq_plan){AOQ_XK_LIN_INTXWO, N * bitrow(w->k, bits), 2 * N * G, 0};
      break;
    case AOQ_FMT_CODEBOOK:
      if (bits < 1 || bits > 8) return "codebook bits must be 1..8";
      *p = (wq_plan){AOQ_XK_LIN_CODEBOOK, N * bitrow(w->k, bits), 2 * N * G, (size_t)2 << bits};
      break;
    case AOQ_FMT_W158:
      *p = (wq_plan){AOQ_XK_LIN_W158, N * bitrow(w->k, 2), 2, 0};
      break;
    case AOQ_FMT_FP6_E3M2:
    case AOQ_FMT_FP6_E2M3:
      *p = (wq_plan){w->kind == AOQ_FMT_FP6_E3M2 ? AOQ_XK_LIN_FP6_E3M2 : AOQ_XK_LIN_FP6_E2M3,
                     N * bitrow(w->k, 6), 2 * N, 0};
      break;
    case AOQ_FMT_NVFP4WO:
      if (w->k % 16) return "nvfp4 needs k % 16 == 0";
      *p = (wq_plan){AOQ_XK_LIN_NVFP4WO, N * K / 2, N * K / 16, 4};
      break;
    case AOQ_FMT_INT8DQ:
      *p = (wq_plan){AOQ_XK_DQ_ACT_ROW, N * K, 4 * N, 0};
      break;
    case AOQ_FMT_FP8DQ:
      *p = (wq_plan){AOQ_XK_DQ_ACT_ROW, N * K, 4, 0};
      break;
    case AOQ_FMT_FP8DQ_ROW:
      *p = (wq_plan){AOQ_XK_DQ_ACT_ROW, N * K, 4 * N, 0};
      break;
    case AOQ_FMT_FP8DQ_BLOCK:
      *p = (wq_plan){AOQ_XK_DQ_ACT_FP8BLK, N * K, 4 * ((N + 127) / 128) * ((K + 127) / 128), 0};
      break;
    case AOQ_FMT_FP8_INT4:
      *p = (wq_plan){AOQ_XK_DQ_ACT_ROW, N * bitrow(w->k, 4), 4 * N * G, 0};
      break;
    case AOQ_FMT_INT8_INT4:
    case AOQ_FMT_INT8_INTX:
      if (bits < 1 || bits > 8) return "intx bits must be 1..8";
      *p = (wq_plan){AOQ_XK_DQ_ACT_ASYM, N * bitrow(w->k, bits), 2 * N * G, 0};
      break;
    case AOQ_FMT_MXFP8:
    case AOQ_FMT_MXFP4:
      if (w->k % 32) return "mx needs k % 32 == 0";
      *p = (wq_plan){w->kind == AOQ_FMT_MXFP8 ? AOQ_XK_DQ_ACT_MXFP8 : AOQ_XK_DQ_ACT_MXFP4,
                     w->kind == AOQ_FMT_MXFP8 ? N * K : N * K / 2, N * K / 32, 0};
      break;
    case AOQ_FMT_NVFP4:
      if (w->k % 16) return "nvfp4 needs k % 16 == 0";
      *p = (wq_plan){AOQ_XK_DQ_ACT_NVFP4, N * K / 2, N * K / 16, 4};
      break;
    default:
      return "no OpenCL kernel for this format";
  }
  return NULL;
}

static int is_dynamic(aoq_format_kind k) {
  return k == AOQ_FMT_INT8DQ || k == AOQ_FMT_FP8DQ || k == AOQ_FMT_FP8DQ_ROW ||
         k == AOQ_FMT_FP8DQ_BLOCK || k == AOQ_FMT_FP8_INT4 || k == AOQ_FMT_INT8_INT4 ||
         k == AOQ_FMT_INT8_INTX || k == AOQ_FMT_MXFP8 || k == AOQ_FMT_MXFP4 || k == AOQ_FMT_NVFP4;
}

/* Workspace of the dynamic formats (dyn.cl): xf f32[m,k] | xs f32[m*(kb+1)+4] | xq i8[m,k]. */
static size_t al256(size_t b) {
  return (b + 255) & ~(size_t)255;
}
static void dyn_ws(int64_t m, int64_t k, size_t *o_xs, size_t *o_xq, size_t *total) {
  size_t M = (size_t)m, K = (size_t)k, kb = (K + 127) / 128;
  *o_xs = al256(M * K * 4);
  *o_xq = *o_xs + al256((M * (kb + 1) + 4) * 4);
  *total = *o_xq + al256(M * K);
}

uint64_t aoq_xk_linear_formats(void) {
  return (1ull << AOQ_FMT_INT8DQ) | (1ull << AOQ_FMT_FP8DQ) | (1ull << AOQ_FMT_FP8DQ_ROW) |
         (1ull << AOQ_FMT_FP8DQ_BLOCK) | (1ull << AOQ_FMT_FP8_INT4) | (1ull << AOQ_FMT_INT8_INT4) |
         (1ull << AOQ_FMT_INT8_INTX) | (1ull << AOQ_FMT_MXFP8) | (1ull << AOQ_FMT_MXFP4) |
         (1ull << AOQ_FMT_NVFP4) | (1ull << AOQ_FMT_INT8WO) | (1ull << AOQ_FMT_FP8WO) |
         (1ull << AOQ_FMT_INT4WO) | (1ull << AOQ_FMT_INT4WO_HQQ) | (1ull << AOQ_FMT_INTXWO) |
         (1ull << AOQ_FMT_CODEBOOK) | (1ull << AOQ_FMT_W158) | (1ull << AOQ_FMT_FP6_E3M2) |
         (1ull << AOQ_FMT_FP6_E2M3) | (1ull << AOQ_FMT_NVFP4WO);
}

static aoq_status linear_quant(void *ctx, const aoq_qweight *w, const void *x, void *y, int64_t m,
                               void *ws, aoq_stream *s) {
  wq_plan p;
  const char *why = wq_plan_of(w, &p);
  if (why)
    return aoq_err(AOQ_EUNSUPPORTED,
                   "xpu linear: format kind %d, weight [%lld, %lld], group %d: %s", (int)w->kind,
                   (long long)w->n, (long long)w->k, w->group, why);
  struct {
    const void *ptr;
    size_t have, need;
    const char *name;
  } bufs[] = {{w->qdata, w->qdata_bytes, p.q, "qdata"},
              {w->scale, w->scale_bytes, p.s, "scale"},
              {w->aux, w->aux_bytes, p.a, "aux"}};
  for (int i = 0; i < 3; i++) {
    if (bufs[i].need && !bufs[i].ptr)
      return aoq_err(AOQ_EINVAL, "xpu linear: format kind %d needs %s", (int)w->kind, bufs[i].name);
    if (bufs[i].need && bufs[i].have && bufs[i].have < bufs[i].need)
      return aoq_err(AOQ_ESHAPE, "xpu linear: %s of %zu bytes, the layout needs %zu", bufs[i].name,
                     bufs[i].have, bufs[i].need);
  }
  const void *sc = w->scale ? w->scale : w->qdata, *ax = w->aux ? w->aux : w->qdata;
  int64_t g = w->group > 0 ? w->group : w->k;
  if (!is_dynamic(w->kind)) {
    aoq_xk_arg a[] = {P(w->qdata), P(sc),     P(ax),     P(x),         P(y),
                      I64(m),      I64(w->n), I64(w->k), I32(w->bits), I64(g)};
    return launch(ctx, p.kernel, a, 10, (size_t)w->n, 1, 1, s);
  }
  /* dynamic activations: quantize x into the workspace, then the GEMM (dyn.cl) */
  if (!ws) return aoq_err(AOQ_EINVAL, "xpu linear: format kind %d needs a workspace", (int)w->kind);
  size_t o_xs, o_xq, total;
  dyn_ws(m, w->k, &o_xs, &o_xq, &total);
  char *xf = ws, *xs = xf + o_xs, *xq = xf + o_xq;
  int64_t kb = (w->k + 127) / 128;
  if (w->kind == AOQ_FMT_FP8DQ || w->kind == AOQ_FMT_NVFP4) { /* per-tensor activation scale */
    aoq_xk_arg t[] = {P(x), P(xs), I64(m * w->k), I64(m * (kb + 1)), I32((int)w->kind)};
    const size_t one[3] = {1, 1, 1}, loc[3] = {WG, 1, 1};
    AOQ_TRY(((aoq_xk_ops *)ctx)->rt->launch(ctx, AOQ_XK_DQ_TENSOR, t, 5, one, loc, s));
  }
  aoq_xk_arg qa[] = {P(x), P(xf), P(xs), P(xq), I64(m), I64(w->k), I64(kb), I32((int)w->kind)};
  AOQ_TRY(launch(ctx, p.kernel, qa, 8, (size_t)m, 1, 1, s));
  if (w->kind == AOQ_FMT_INT8DQ) {
    aoq_xk_arg a[] = {P(w->qdata), P(sc), P(xq), P(xs), P(y), I64(m), I64(w->n), I64(w->k)};
    return launch(ctx, AOQ_XK_DQ_LINEAR_I8, a, 8, (size_t)w->n, 1, 1, s);
  }
  aoq_xk_arg a[] = {P(w->qdata),      P(sc),     P(ax),     P(xf),   P(xs),        P(y),
                    I64(m),           I64(w->n), I64(w->k), I64(kb), I32(w->bits), I64(g),
                    I32((int)w->kind)};
  return launch(ctx, AOQ_XK_DQ_LINEAR, a, 13, (size_t)w->n, 1, 1, s);
}

size_t aoq_xk_linear_workspace(void *ctx, const aoq_qweight *w, int64_t m) {
  (void)ctx;
  if (!w || m <= 0 || w->k <= 0 || !is_dynamic(w->kind)) return 0;
  size_t a, b, total;
  dyn_ws(m, w->k, &a, &b, &total);
  return total;
}

aoq_status aoq_xk_linear(void *ctx, const aoq_qweight *w, const void *x, void *y, int64_t m,
                         aoq_dtype dt, void *ws, aoq_stream *s) {
  AOQ_TRY(check_bf16(dt, "linear"));
  if (!w || w->n <= 0 || w->k <= 0)
    return aoq_err(AOQ_EINVAL, "xpu linear: weight missing or empty (%lld x %lld)",
                   w ? (long long)w->n : 0LL, w ? (long long)w->k : 0LL);
  AOQ_TRY(check_rows("linear", m, 0));
  if (m == 0) return AOQ_OK;
  if (!x || !y || !w->qdata) return aoq_err(AOQ_EINVAL, "xpu linear: NULL x, y or weight data");
  if (w->kind != AOQ_FMT_BF16) return linear_quant(ctx, w, x, y, m, ws, s);
  if (w->qdata_bytes && w->qdata_bytes < (size_t)(w->n * w->k * 2))
    return aoq_err(AOQ_ESHAPE, "xpu linear: bf16 weight of %zu bytes for %lld x %lld",
                   w->qdata_bytes, (long long)w->n, (long long)w->k);
  aoq_xk_arg a[] = {P(w->qdata), P(x), P(y), I64(m), I64(w->n), I64(w->k)};
  return launch(ctx, AOQ_XK_LINEAR_BF16, a, 6, (size_t)w->n, 1, 1, s);
}

/* ---- element-wise ops ---- */

aoq_status aoq_xk_rmsnorm(void *ctx, const void *x, const void *w, void *y, int64_t m, int64_t n,
                          float eps, aoq_dtype dt, aoq_stream *s) {
  AOQ_TRY(check_bf16(dt, "rmsnorm"));
  AOQ_TRY(check_rows("rmsnorm", m, n));
  if (m == 0 || n == 0) return AOQ_OK;
  if (!x || !w || !y) return aoq_err(AOQ_EINVAL, "xpu rmsnorm: NULL x, w or y");
  if (!(eps >= 0) || isinf(eps))
    return aoq_err(AOQ_EINVAL, "xpu rmsnorm: eps %g (expected a finite value >= 0)", (double)eps);
  aoq_xk_arg a[] = {P(x), P(w), P(y), I64(n), F32(eps)};
  return launch(ctx, AOQ_XK_RMSNORM, a, 5, (size_t)m, 1, 1, s);
}

aoq_status aoq_xk_add(void *ctx, const void *a, const void *b, void *y, int64_t n, aoq_dtype dt,
                      aoq_stream *s) {
  AOQ_TRY(check_bf16(dt, "add"));
  AOQ_TRY(check_rows("add", 1, n));
  if (n == 0) return AOQ_OK;
  if (!a || !b || !y) return aoq_err(AOQ_EINVAL, "xpu add: NULL a, b or y");
  aoq_xk_arg g[] = {P(a), P(b), P(y), I64(n)};
  return launch(ctx, AOQ_XK_ADD, g, 4, cdiv(n, WG), 1, 1, s);
}

aoq_status aoq_xk_silu_mul(void *ctx, const void *gu, void *y, int64_t m, int64_t n, aoq_dtype dt,
                           aoq_stream *s) {
  AOQ_TRY(check_bf16(dt, "silu_mul"));
  AOQ_TRY(check_rows("silu_mul", m, n));
  if (m == 0 || n == 0) return AOQ_OK;
  if (!gu || !y) return aoq_err(AOQ_EINVAL, "xpu silu_mul: NULL gu or y");
  aoq_xk_arg a[] = {P(gu), P(y), I64(m), I64(n)};
  return launch(ctx, AOQ_XK_SILU_MUL, a, 4, cdiv(n, WG), (size_t)m, 1, s);
}

aoq_status aoq_xk_embed(void *ctx, const void *table, int64_t n_rows, const int32_t *ids, void *y,
                        int64_t m, int64_t dim, aoq_dtype dt, aoq_stream *s) {
  aoq_xk_ops *o = ctx;
  AOQ_TRY(check_bf16(dt, "embed"));
  AOQ_TRY(check_rows("embed", m, dim));
  if (n_rows < 0) return aoq_err(AOQ_EINVAL, "xpu embed: %lld table rows", (long long)n_rows);
  if (m == 0 || dim == 0) return AOQ_OK;
  if (!table || !ids || !y) return aoq_err(AOQ_EINVAL, "xpu embed: NULL table, ids or y");
  aoq_xk_arg a[] = {P(table), P(ids), P(y), P(o->err), I64(n_rows), I64(m), I64(dim)};
  return launch(ctx, AOQ_XK_EMBED, a, 7, cdiv(dim, WG), (size_t)m, 1, s);
}

/* ---- rope ---- */

/* HF _compute_default_rope_parameters + _compute_llama3_parameters in fp32, the same arithmetic
 * as the CPU backend (cpu_ops.c rope_inv_freq), so both backends rotate by identical angles. */
static void rope_inv_freq(const aoq_rope *r, int head_dim, float *inv) {
  int half = head_dim / 2;
  for (int d = 0; d < half; d++) {
    float ex = (float)(2 * d) / (float)head_dim;
    float p = (float)pow((double)r->theta, (double)ex);
    inv[d] = 1.0f / p;
  }
  if (!(r->factor > 0)) return;
  float orig = (float)r->original_max_position;
  float low_wl = orig / r->low_freq_factor, high_wl = orig / r->high_freq_factor;
  const float two_pi = (float)(2.0 * 3.14159265358979323846);
  for (int d = 0; d < half; d++) {
    float wl = two_pi / inv[d];
    if (wl > low_wl) {
      inv[d] = inv[d] / r->factor;
    } else if (!(wl < high_wl)) {
      float smooth = (orig / wl - r->low_freq_factor) / (r->high_freq_factor - r->low_freq_factor);
      inv[d] = (1.0f - smooth) * inv[d] / r->factor + smooth * inv[d];
    }
  }
}

static int rope_same(const aoq_xk_rope_key *k, const aoq_rope *r, int head_dim) {
  return k->used && k->head_dim == head_dim && k->r.theta == r->theta && k->r.factor == r->factor &&
         k->r.low_freq_factor == r->low_freq_factor &&
         k->r.high_freq_factor == r->high_freq_factor &&
         k->r.original_max_position == r->original_max_position;
}

/* The device table of r's frequencies: found among the cached parameter sets, or computed and
 * uploaded once (a model's first RoPE call; later calls, and graph replays, find it). */
static aoq_status rope_table(aoq_xk_ops *o, const aoq_rope *r, int head_dim, aoq_stream *s,
                             const float **out) {
  pthread_mutex_lock(&o->rope_lock);
  int slot = -1;
  for (int i = 0; i < AOQ_XK_ROPE_SLOTS && slot < 0; i++)
    if (rope_same(&o->rope_keys[i], r, head_dim)) slot = i;
  aoq_status st = AOQ_OK;
  if (slot < 0) {
    float inv[AOQ_XK_ROPE_MAX_HALF];
    rope_inv_freq(r, head_dim, inv);
    slot = o->rope_next;
    o->rope_next = (o->rope_next + 1) % AOQ_XK_ROPE_SLOTS;
    o->rope_keys[slot].used = 0;
    st = o->rt->upload(o, o->rope_tab + (size_t)slot * AOQ_XK_ROPE_MAX_HALF, inv,
                       sizeof(float) * (size_t)(head_dim / 2), s);
    if (st == AOQ_OK) o->rope_keys[slot] = (aoq_xk_rope_key){*r, head_dim, 1};
  }
  pthread_mutex_unlock(&o->rope_lock);
  *out = o->rope_tab + (size_t)slot * AOQ_XK_ROPE_MAX_HALF;
  return st;
}

aoq_status aoq_xk_rope(void *ctx, void *x, const int32_t *pos, int64_t m, int n_heads, int head_dim,
                       int64_t row_stride, const aoq_rope *r, aoq_dtype dt, aoq_stream *s) {
  AOQ_TRY(check_bf16(dt, "rope"));
  AOQ_TRY(check_rows("rope", m, row_stride));
  AOQ_TRY(aoq_rope_check(r, n_heads, head_dim, 2 * AOQ_XK_ROPE_MAX_HALF, row_stride, "xpu"));
  if (m == 0) return AOQ_OK;
  if (!x || !pos) return aoq_err(AOQ_EINVAL, "xpu rope: NULL x or pos");
  const float *tab;
  AOQ_TRY(rope_table(ctx, r, head_dim, s, &tab));
  aoq_xk_arg a[] = {P(x), P(pos), P(tab), I64(m), I32(n_heads), I32(head_dim), I64(row_stride)};
  return launch(ctx, AOQ_XK_ROPE, a, 7, cdiv(head_dim / 2, WG), (size_t)n_heads, (size_t)m, s);
}

/* ---- KV cache and attention ---- */

static aoq_status check_kv(const aoq_kv_cache *kv, const char *op) {
  AOQ_TRY(aoq_kv_cache_check(kv, "xpu", op));
  if (kv->dtype != AOQ_DTYPE_BF16)
    return aoq_err(AOQ_EUNSUPPORTED, "xpu %s: kv cache dtype %d (this backend keeps BF16)", op,
                   (int)kv->dtype);
  return AOQ_OK;
}

aoq_status aoq_xk_kv_store(void *ctx, const aoq_kv_cache *kv, const void *k, const void *v,
                           const int32_t *slots, int64_t m, aoq_dtype dt, aoq_stream *s) {
  aoq_xk_ops *o = ctx;
  AOQ_TRY(check_bf16(dt, "kv_store"));
  AOQ_TRY(check_kv(kv, "kv_store"));
  AOQ_TRY(check_rows("kv_store", m, 0));
  if (m == 0) return AOQ_OK;
  if (!k || !v || !slots) return aoq_err(AOQ_EINVAL, "xpu kv_store: NULL k, v or slots");
  int64_t w = (int64_t)kv->n_kv_heads * kv->head_dim;
  int64_t n_slots = (int64_t)kv->n_pages * kv->page_size;
  aoq_xk_arg a[] = {P(kv->k),  P(kv->v), P(k),   P(v),        P(slots),
                    P(o->err), I64(m),   I64(w), I64(n_slots)};
  return launch(ctx, AOQ_XK_KV_STORE, a, 9, cdiv(w, WG), (size_t)m, 1, s);
}

size_t aoq_xk_attention_workspace(void *ctx, const aoq_kv_cache *kv, int64_t m, int n_heads,
                                  int max_pos) {
  (void)ctx, (void)kv, (void)m, (void)n_heads, (void)max_pos;
  return 0; /* streaming softmax in each work-group */
}

aoq_status aoq_xk_attention(void *ctx, const aoq_kv_cache *kv, const aoq_attn_batch *b,
                            const void *q, void *out, int64_t m, int n_heads, float scale,
                            aoq_dtype dt, void *ws, aoq_stream *s) {
  aoq_xk_ops *o = ctx;
  (void)ws;
  AOQ_TRY(check_bf16(dt, "attention"));
  AOQ_TRY(check_kv(kv, "attention"));
  AOQ_TRY(check_rows("attention", m, 0));
  if (kv->head_dim > ATT_MAXD)
    return aoq_err(AOQ_EUNSUPPORTED, "xpu attention: head_dim %d > %d", kv->head_dim, ATT_MAXD);
  if (n_heads <= 0 || n_heads % kv->n_kv_heads)
    return aoq_err(AOQ_EINVAL, "xpu attention: %d query heads is not a multiple of %d kv heads",
                   n_heads, kv->n_kv_heads);
  if (!isfinite(scale)) return aoq_err(AOQ_EINVAL, "xpu attention: scale %g", (double)scale);
  if (m == 0) return AOQ_OK;
  if (!b || !q || !out) return aoq_err(AOQ_EINVAL, "xpu attention: NULL batch, q or out");
  if (!b->row_seq || !b->row_pos || !b->block_tables || b->n_seqs <= 0 || b->max_blocks <= 0)
    return aoq_err(AOQ_EINVAL, "xpu attention: batch with NULL arrays or %d seqs x %d blocks",
                   b->n_seqs, b->max_blocks);
  if ((int64_t)b->max_blocks * kv->page_size > INT32_MAX)
    return aoq_err(AOQ_EINVAL, "xpu attention: %d blocks x %d slots overflow int32 positions",
                   b->max_blocks, kv->page_size);
  aoq_xk_arg a[] = {P(kv->k),
                    P(kv->v),
                    P(b->row_seq),
                    P(b->row_pos),
                    P(b->block_tables),
                    P(q),
                    P(out),
                    P(o->err),
                    I32(b->n_seqs),
                    I32(b->max_blocks),
                    I32(kv->n_pages),
                    I32(kv->page_size),
                    I32(kv->n_kv_heads),
                    I32(kv->head_dim),
                    I32(n_heads),
                    F32(scale)};
  return launch(ctx, AOQ_XK_ATTENTION, a, 16, (size_t)n_heads, (size_t)m, 1, s);
}

/* ---- argmax, convert ---- */

aoq_status aoq_xk_argmax(void *ctx, const void *logits, int32_t *out, int64_t m, int64_t vocab,
                         aoq_dtype dt, aoq_stream *s) {
  AOQ_TRY(check_bf16(dt, "argmax"));
  if (m < 0 || vocab <= 0 || vocab > INT32_MAX)
    return aoq_err(AOQ_EINVAL, "xpu argmax: %lld rows of vocab %lld", (long long)m,
                   (long long)vocab);
  if (m == 0) return AOQ_OK;
  if (!logits || !out) return aoq_err(AOQ_EINVAL, "xpu argmax: NULL logits or out");
  aoq_xk_arg a[] = {P(logits), P(out), I64(vocab)};
  return launch(ctx, AOQ_XK_ARGMAX, a, 3, (size_t)m, 1, 1, s);
}

aoq_status aoq_xk_convert(void *ctx, const void *src, aoq_dtype sdt, void *dst, aoq_dtype ddt,
                          int64_t n, aoq_stream *s) {
  int ok = (sdt == AOQ_DTYPE_BF16 || sdt == AOQ_DTYPE_F32) &&
           (ddt == AOQ_DTYPE_BF16 || ddt == AOQ_DTYPE_F32);
  if (!ok)
    return aoq_err(AOQ_EUNSUPPORTED, "xpu convert: dtypes %d -> %d (BF16 and F32 only)", (int)sdt,
                   (int)ddt);
  AOQ_TRY(check_rows("convert", 1, n));
  if (n == 0) return AOQ_OK;
  if (!src || !dst) return aoq_err(AOQ_EINVAL, "xpu convert: NULL src or dst");
  if (sdt == ddt) {
    if (src == dst) return AOQ_OK;
    size_t bytes = (size_t)n * (sdt == AOQ_DTYPE_F32 ? 4 : 2);
    const char *sc = src;
    char *dc = dst;
    if (sc < dc + bytes && dc < sc + bytes)
      return aoq_err(AOQ_EINVAL, "xpu convert: overlapping same-type copy");
    return ((aoq_xk_ops *)ctx)->rt->copy_d2d(ctx, dst, src, bytes, s);
  }
  aoq_xk_arg a[] = {P(src), P(dst), I64(n)};
  return launch(ctx, sdt == AOQ_DTYPE_BF16 ? AOQ_XK_BF16_TO_F32 : AOQ_XK_F32_TO_BF16, a, 3,
                cdiv(n, WG), 1, 1, s);
}

/* ---- weight quantization (wquant.cl) ---- */

uint64_t aoq_xk_quantize_formats(void) {
  return (1ull << AOQ_FMT_FP8WO) | (1ull << AOQ_FMT_FP8DQ) | (1ull << AOQ_FMT_FP8DQ_ROW) |
         (1ull << AOQ_FMT_FP8DQ_BLOCK) | (1ull << AOQ_FMT_MXFP8) | (1ull << AOQ_FMT_MXFP4) |
         (1ull << AOQ_FMT_NVFP4) | (1ull << AOQ_FMT_NVFP4WO);
}

/* Bit-exact with aoq_quantize_ref (core/quant_fp.c): same row rules, same per-tensor amax. */
aoq_status aoq_xk_quantize(void *ctx, const void *w_src, aoq_qweight *w, aoq_stream *s) {
  aoq_xk_ops *o = ctx;
  if (!w_src || !w || !w->qdata || !w->scale)
    return aoq_err(AOQ_EINVAL, "xpu quantize: NULL source, weight or buffers");
  if (w->n <= 0 || w->k <= 0)
    return aoq_err(AOQ_ESHAPE, "xpu quantize: weight [%lld, %lld]", (long long)w->n,
                   (long long)w->k);
  if ((unsigned)w->kind >= AOQ_FMT_COUNT || !(aoq_xk_quantize_formats() & (1ull << w->kind)))
    return aoq_err(AOQ_EUNSUPPORTED, "xpu quantize: format kind %d is quantized on the host",
                   (int)w->kind);
  wq_plan p;
  const char *why = wq_plan_of(w, &p);
  if (why) return aoq_err(AOQ_EUNSUPPORTED, "xpu quantize: %s", why);
  if ((w->qdata_bytes && w->qdata_bytes < p.q) || (w->scale_bytes && w->scale_bytes < p.s) ||
      (p.a && (!w->aux || (w->aux_bytes && w->aux_bytes < p.a))))
    return aoq_err(AOQ_ESHAPE,
                   "xpu quantize: buffers of %zu/%zu/%zu bytes, the layout needs "
                   "%zu/%zu/%zu",
                   w->qdata_bytes, w->scale_bytes, w->aux_bytes, p.q, p.s, p.a);
  const size_t one[3] = {1, 1, 1}, loc[3] = {WG, 1, 1};
  switch (w->kind) {
    case AOQ_FMT_FP8WO:
    case AOQ_FMT_FP8DQ_ROW:
    case AOQ_FMT_FP8DQ: {
      int per_tensor = w->kind == AOQ_FMT_FP8DQ;
      if (per_tensor) { /* scale[0] = bf16(amax(W) / 448), as aoq_dq_tensor computes for fp8dq */
        aoq_xk_arg t[] = {P(w_src), P(w->scale), I64(w->n * w->k), I64(0), I32(AOQ_FMT_FP8DQ)};
        AOQ_TRY(o->rt->launch(ctx, AOQ_XK_DQ_TENSOR, t, 5, one, loc, s));
      }
      aoq_xk_arg a[] = {P(w_src), P(w->qdata), P(w->scale), I64(w->k), I32(per_tensor)};
      return launch(ctx, AOQ_XK_WQ_FP8, a, 5, (size_t)w->n, 1, 1, s);
    }
    case AOQ_FMT_FP8DQ_BLOCK: {
      aoq_xk_arg a[] = {P(w_src), P(w->qdata), P(w->scale), I64(w->n), I64(w->k)};
      return launch(ctx, AOQ_XK_WQ_FP8_BLOCK, a, 5, cdiv(w->k, 128), cdiv(w->n, 128), 1, s);
    }
    case AOQ_FMT_MXFP8:
    case AOQ_FMT_MXFP4: {
      aoq_xk_arg a[] = {P(w_src), P(w->qdata), P(w->scale), I64(w->k)};
      return launch(ctx, w->kind == AOQ_FMT_MXFP8 ? AOQ_XK_WQ_MXFP8 : AOQ_XK_WQ_MXFP4, a, 4,
                    (size_t)w->n, 1, 1, s);
    }
    default: { /* NVFP4, NVFP4WO: aux[0] = amax(W) / 2688, then the rows */
      aoq_xk_arg t[] = {P(w_src), P(w->aux), I64(w->n * w->k), I64(0), I32(AOQ_FMT_NVFP4)};
      AOQ_TRY(o->rt->launch(ctx, AOQ_XK_DQ_TENSOR, t, 5, one, loc, s));
      aoq_xk_arg a[] = {P(w_src), P(w->qdata), P(w->scale), P(w->aux), I64(w->k)};
      return launch(ctx, AOQ_XK_WQ_NVFP4, a, 5, (size_t)w->n, 1, 1, s);
    }
  }
}

/* ---- sampling (sample.cl) ---- */

aoq_status aoq_xk_sample(void *ctx, const void *logits, int32_t *out, int64_t m, int64_t vocab,
                         const aoq_sample_params *p, aoq_dtype dt, aoq_stream *s) {
  aoq_xk_ops *o = ctx;
  AOQ_TRY(check_bf16(dt, "sample"));
  if (!o->has_sample || !o->sample_params)
    return aoq_err(AOQ_EUNSUPPORTED,
                   "xpu sample: the sample kernel needs fp64, which this "
                   "device lacks");
  if (m < 0 || vocab <= 0 || vocab > INT32_MAX)
    return aoq_err(AOQ_EINVAL, "xpu sample: %lld rows of vocab %lld", (long long)m,
                   (long long)vocab);
  if (m == 0) return AOQ_OK;
  if (!logits || !out || !p) return aoq_err(AOQ_EINVAL, "xpu sample: NULL logits, out or params");
  if (m > AOQ_XK_SAMPLE_MAX_ROWS)
    return aoq_err(AOQ_EINVAL, "xpu sample: %lld rows (at most %d per call)", (long long)m,
                   AOQ_XK_SAMPLE_MAX_ROWS);
  for (int64_t i = 0; i < m; i++)
    if (isnan(p[i].temperature) || isnan(p[i].top_p) || p[i].top_p < 0 || p[i].top_k < 0)
      return aoq_err(AOQ_EINVAL, "xpu sample: row %lld: temperature %g, top_p %g, top_k %d",
                     (long long)i, (double)p[i].temperature, (double)p[i].top_p, p[i].top_k);
  uint32_t rows[64][8];
  pthread_mutex_lock(&o->sample_lock);
  aoq_status st = AOQ_OK;
  for (int64_t r0 = 0; r0 < m && st == AOQ_OK; r0 += 64) {
    int64_t nr = m - r0 < 64 ? m - r0 : 64;
    memset(rows, 0, sizeof rows);
    for (int64_t i = 0; i < nr; i++) {
      const aoq_sample_params *q = &p[r0 + i];
      memcpy(&rows[i][0], &q->temperature, 4);
      memcpy(&rows[i][1], &q->top_p, 4);
      rows[i][2] = (uint32_t)q->top_k;
      rows[i][4] = (uint32_t)q->seed, rows[i][5] = (uint32_t)(q->seed >> 32);
    }
    st = o->rt->upload(ctx, (char *)o->sample_params + (size_t)r0 * 32, rows, (size_t)nr * 32, s);
  }
  if (st == AOQ_OK) {
    aoq_xk_arg a[] = {P(logits), P(out), P(o->sample_params), I64(vocab)};
    const size_t groups[3] = {(size_t)m, 1, 1}, local[3] = {1, 1, 1};
    st = o->rt->launch(ctx, AOQ_XK_SAMPLE, a, 4, groups, local, s);
  }
  pthread_mutex_unlock(&o->sample_lock);
  return st;
}
