/*
 * cublas.c — cuBLAS through dlopen, and the CUDA backend's large-m linear on it (cublas.h).
 */
#include "devices/cuda/cublas.h"

#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/log.h"
#include "kernels/gpu/gpu_kernels.h"

/* The cuBLAS v2 API subset aoq calls, declared from cublas_api.h / library_types.h (CUDA 13):
 * enums are C ints, the handle is an opaque pointer. */
typedef int blas_status;
typedef void *blas_handle;
enum {
  BLAS_OP_N = 0,
  BLAS_OP_T = 1,
  BLAS_R_32F = 0,                /* cudaDataType CUDA_R_32F */
  BLAS_R_16BF = 14,              /* CUDA_R_16BF */
  BLAS_R_8I = 3,                 /* CUDA_R_8I */
  BLAS_R_32I = 10,               /* CUDA_R_32I */
  BLAS_COMPUTE_32F = 68,         /* cublasComputeType_t CUBLAS_COMPUTE_32F */
  BLAS_COMPUTE_32I = 72,         /* CUBLAS_COMPUTE_32I: int32 sums, int32 alpha / beta */
  BLAS_GEMM_DEFAULT = -1,        /* cublasGemmAlgo_t */
  BLAS_MATH_DEFAULT = 0,         /* cublasMath_t */
  BLAS_MATH_NO_REDUCED_RED = 16, /* CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION */
};
/* the int8 GEMM of int8dq (AOQ_CUBLAS_INT8 at open): off, on with k_dec where cuBLAS refuses the
 * call, or strict (a refusal is an error: tests use it to know the GEMM ran) */
enum { I8_OFF = 0, I8_ON = 1, I8_STRICT = 2 };
typedef blas_status (*fn_create)(blas_handle *);
typedef blas_status (*fn_destroy)(blas_handle);
typedef blas_status (*fn_set_stream)(blas_handle, cudaStream_t);
typedef blas_status (*fn_set_math)(blas_handle, int);
typedef blas_status (*fn_version)(blas_handle, int *);
typedef blas_status (*fn_gemm_ex)(blas_handle, int, int, int, int, int, const void *, const void *,
                                  int, int, const void *, int, int, const void *, void *, int, int,
                                  int, int);

struct aoq_cublas {
  void *lib;
  blas_handle h;
  pthread_mutex_t mu; /* the handle's stream is state: set-stream + GEMM go together */
  fn_create create;
  fn_destroy destroy;
  fn_set_stream set_stream;
  fn_set_math set_math;
  fn_version version;
  fn_gemm_ex gemm_ex;
  int min_m_bf16, min_m_packed; /* the linear runs here from these row counts on */
  int i8;                       /* I8_OFF / I8_ON / I8_STRICT */
  bool i8_refused;              /* a refusal was logged (once per handle, under mu) */
  size_t budget;                /* bytes of decoded chunk (+ fp32 sums) per call */
  char desc[256];
};

static const char *status_name(blas_status s) {
  switch (s) {
    case 0:
      return "success";
    case 1:
      return "not initialized";
    case 3:
      return "alloc failed";
    case 7:
      return "invalid value";
    case 8:
      return "arch mismatch";
    case 11:
      return "mapping error";
    case 13:
      return "execution failed";
    case 14:
      return "internal error";
    case 15:
      return "not supported";
    default:
      return "error";
  }
}

static aoq_status blas_err(blas_status s, const char *what) {
  return aoq_err(AOQ_EDEVICE, "cublas %s: %s (%d)", what, status_name(s), s);
}

static long env_long(const char *name, long dflt, long lo, long hi) {
  const char *v = getenv(name);
  if (!v || !*v) return dflt;
  char *end;
  long x = strtol(v, &end, 10);
  return *end || x < lo || x > hi ? dflt : x;
}

void aoq_cublas_close(aoq_cublas *h) {
  if (!h) return;
  if (h->h) h->destroy(h->h);
  if (h->lib) dlclose(h->lib);
  pthread_mutex_destroy(&h->mu);
  free(h);
}

aoq_status aoq_cublas_open(aoq_cublas **out) {
  if (!out) return aoq_err(AOQ_EINVAL, "aoq_cublas_open: NULL output");
  *out = NULL;
  const char *env = getenv("AOQ_CUBLAS");
  if (env && (!strcmp(env, "off") || !strcmp(env, "0") || !strcmp(env, "none")))
    return aoq_err(AOQ_ENOTFOUND, "cublas disabled (AOQ_CUBLAS=%s)", env);
  aoq_cublas *h = calloc(1, sizeof *h);
  if (!h) return aoq_err(AOQ_ENOMEM, "cublas context");
  pthread_mutex_init(&h->mu, NULL);
  const char *names[2] = {env && *env ? env : NULL, "libcublas.so.13"}, *name = NULL;
  for (int i = 0; i < 2 && !h->lib; i++)
    if (names[i]) h->lib = dlopen(name = names[i], RTLD_NOW | RTLD_LOCAL);
  if (!h->lib) {
    aoq_status s = aoq_err(AOQ_ENOTFOUND, "cublas not loaded: %s", dlerror());
    aoq_cublas_close(h);
    return s;
  }
  struct {
    void **fn;
    const char *sym;
  } syms[] = {
      {(void **)&h->create, "cublasCreate_v2"},        {(void **)&h->destroy, "cublasDestroy_v2"},
      {(void **)&h->set_stream, "cublasSetStream_v2"}, {(void **)&h->set_math, "cublasSetMathMode"},
      {(void **)&h->version, "cublasGetVersion_v2"},   {(void **)&h->gemm_ex, "cublasGemmEx"},
  };
  for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
    void *p = dlsym(h->lib, syms[i].sym);
    if (!p) {
      aoq_status s = aoq_err(AOQ_ENOTFOUND, "cublas %s: no symbol %s", name, syms[i].sym);
      aoq_cublas_close(h);
      return s;
    }
    memcpy(syms[i].fn, &p, sizeof p); /* object -> function pointer, as POSIX dlsym allows */
  }
  blas_status bs = h->create(&h->h);
  if (bs) {
    h->h = NULL;
    aoq_status s = blas_err(bs, "create");
    aoq_cublas_close(h);
    return s;
  }
  /* reductions in fp32 (the compute type), never in the bf16 output type. The workspace is
   * cuBLAS's default pool: cublasSetStream (each call) resets any user workspace to it. */
  if ((bs = h->set_math(h->h, BLAS_MATH_DEFAULT | BLAS_MATH_NO_REDUCED_RED))) {
    aoq_status s = blas_err(bs, "setup");
    aoq_cublas_close(h);
    return s;
  }
  int ver = 0;
  h->version(h->h, &ver);
  h->min_m_bf16 = (int)env_long("AOQ_CUBLAS_MIN_M", 65, 1, 1L << 30);
  h->min_m_packed = (int)env_long("AOQ_CUBLAS_MIN_M", 128, 1, 1L << 30);
  /* 128 MiB: gate+up (28672 x 4096) in two GEMMs, down in one; measured (aoq-bench prefill
   * --sweep --chunk-mb): within 1% of 256 MiB at m = 2048, 64 MiB costs 4-5% on gate+up/down */
  h->budget = (size_t)env_long("AOQ_CUBLAS_CHUNK_MB", 128, 1, 1L << 20) << 20;
  const char *i8 = getenv("AOQ_CUBLAS_INT8");
  h->i8 = !i8 || !*i8                              ? I8_ON
          : !strcmp(i8, "off") || !strcmp(i8, "0") ? I8_OFF
          : !strcmp(i8, "strict")                  ? I8_STRICT
                                                   : I8_ON;
  /* the library's path last: device info keeps 127 characters */
  snprintf(h->desc, sizeof h->desc,
           "cublas %d, m >= %d (bf16) / %d (packed), chunk %zu MiB, int8 gemm %s (%s)", ver,
           h->min_m_bf16, h->min_m_packed, h->budget >> 20,
           h->i8 == I8_OFF      ? "off"
           : h->i8 == I8_STRICT ? "strict"
                                : "on",
           name);
  *out = h;
  return AOQ_OK;
}

const char *aoq_cublas_describe(const aoq_cublas *h) {
  return h ? h->desc : "own kernels";
}

/* Column-major: Y^T[rows, m] (ldy) = W[rows, k] (W^T stored k x rows) @ X^T[k, m], both operands
 * of type ab, on the caller's stream, under the handle's lock. Returns cuBLAS's status. */
static blas_status gemm_tn(aoq_cublas *h, int64_t rows, int64_t m, int64_t k, const void *alpha,
                           const void *w, const void *x, int ab, const void *beta, void *y, int yt,
                           int64_t ldy, int compute, void *stream) {
  pthread_mutex_lock(&h->mu);
  blas_status s = h->set_stream(h->h, (cudaStream_t)stream);
  if (!s)
    s = h->gemm_ex(h->h, BLAS_OP_T, BLAS_OP_N, (int)rows, (int)m, (int)k, alpha, w, ab, (int)k, x,
                   ab, (int)k, beta, y, yt, (int)ldy, compute, BLAS_GEMM_DEFAULT);
  pthread_mutex_unlock(&h->mu);
  return s;
}

aoq_status aoq_cublas_gemm_bf16(aoq_cublas *h, const void *w, const void *x, void *y, int64_t rows,
                                int64_t m, int64_t k, int64_t ldy, bool y_f32, void *stream) {
  if (!h || !w || !x || !y) return aoq_err(AOQ_EINVAL, "cublas gemm: NULL argument");
  if (rows <= 0 || m <= 0 || k <= 0 || rows > INT32_MAX || m > INT32_MAX || k > INT32_MAX ||
      ldy < rows || ldy > INT32_MAX)
    return aoq_err(AOQ_EINVAL, "cublas gemm: %lld x %lld x %lld (ld %lld)", (long long)m,
                   (long long)rows, (long long)k, (long long)ldy);
  const float one = 1.0f, zero = 0.0f;
  blas_status s = gemm_tn(h, rows, m, k, &one, w, x, BLAS_R_16BF, &zero, y,
                          y_f32 ? BLAS_R_32F : BLAS_R_16BF, ldy, BLAS_COMPUTE_32F, stream);
  if (s) return blas_err(s, "gemm");
  return AOQ_OK;
}

/* Column-major like aoq_cublas_gemm_bf16: c^T[rows, m] (ldc) = W[rows, k] int8 @ X[m, k]^T int8,
 * exact int32 sums (torch's _int_mm). cublasGemmEx's CUBLAS_COMPUTE_32I takes int8 A and B with
 * int32 C and int32 alpha / beta; A and B 4-byte aligned with lda, ldb multiples of 4 (the "TN"
 * operands here: k % 32 == 0 for int8dq). Returns cuBLAS's status (0 = success). */
static blas_status gemm_i8(aoq_cublas *h, const void *w, const void *x, int32_t *c, int64_t rows,
                           int64_t m, int64_t k, int64_t ldc, void *stream) {
  const int32_t one = 1, zero = 0;
  return gemm_tn(h, rows, m, k, &one, w, x, BLAS_R_8I, &zero, c, BLAS_R_32I, ldc, BLAS_COMPUTE_32I,
                 stream);
}

/* ---- the linear ---- */

static bool is_dynamic(aoq_format_kind k) {
  return k == AOQ_FMT_FP8DQ || k == AOQ_FMT_FP8DQ_ROW || k == AOQ_FMT_MXFP8 || k == AOQ_FMT_MXFP4 ||
         k == AOQ_FMT_NVFP4 || k == AOQ_FMT_INT8_INTX || k == AOQ_FMT_INT8_INT4 ||
         k == AOQ_FMT_INT8DQ;
}

static bool sums_f32(aoq_format_kind k) { /* scales applied to the fp32 sums */
  return k == AOQ_FMT_FP8DQ || k == AOQ_FMT_FP8DQ_ROW;
}

static size_t al256(size_t b) {
  return (b + 255) & ~(size_t)255;
}

static int64_t pad16(int64_t r) { /* int8dq's int32 C: ldc, a multiple of 16 rows */
  return (r + 15) & ~(int64_t)15;
}

/* Workspace: [activations, dynamic formats: act_quant's layout] [decoded chunk bf16 rows x k]
 * [fp32 sums m x rows (fp8dq)]; int8dq: [act_quant's int8 x and scales] [int32 sums m x ldc].
 * The chunk part is given the whole budget unless the whole weight needs less, so the size only
 * grows with m; chunk rows then follow from that size. */
typedef struct plan {
  size_t act, part; /* act_quant bytes; decoded + sums bytes reserved */
  int64_t chunk;    /* weight rows per GEMM */
} plan;

/* The chunk region of n weight rows of per_row bytes each: the whole weight where it fits the
 * budget, else the budget, never under 64 rows (or n); rows counted in 16s where pad16. Sets
 * *chunk, the weight rows per GEMM (whole 64-row tiles unless that is all of n). */
static size_t chunk_of(const aoq_cublas *h, int64_t n, size_t per_row, bool pad, int64_t *chunk) {
  const int64_t min_rows = n < 64 ? n : 64;
  const size_t whole = (size_t)(pad ? pad16(n) : n) * per_row;
  const size_t floor = (size_t)(pad ? pad16(min_rows) : min_rows) * per_row;
  size_t part = whole > h->budget ? h->budget : whole;
  if (part < floor) part = floor;
  int64_t c = (int64_t)(part / per_row);
  if (c < n) c &= ~(int64_t)63; /* whole 64-row tiles per GEMM */
  if (c < min_rows) c = min_rows;
  *chunk = c > n ? n : c;
  return part;
}

static void plan_of(const aoq_cublas *h, const aoq_qweight *w, int64_t m, plan *p) {
  size_t off;
  p->act = is_dynamic(w->kind) ? al256(aoq_gk_act_layout(m, w->k, &off)) : 0;
  if (w->kind == AOQ_FMT_BF16) {
    p->part = 0, p->chunk = w->n;
    return;
  }
  if (w->kind == AOQ_FMT_INT8DQ) { /* no decoded copy: W is the GEMM's operand as it is */
    const size_t per_row = (size_t)pad16(m) * 4;
    const size_t part = chunk_of(h, w->n, per_row, true, &p->chunk);
    /* pad16(chunk) may pass part / per_row by 15 rows; then the 16-row tail copy (linear_i8) */
    p->part = part + 16 * per_row + 256 + al256((size_t)w->k * 16) + 256;
    return;
  }
  const size_t per_row = (size_t)w->k * 2 + (sums_f32(w->kind) ? (size_t)m * 4 : 0);
  p->part = chunk_of(h, w->n, per_row, false, &p->chunk) + 512; /* two regions' alignment */
}

bool aoq_cublas_linear_wants(const aoq_cublas *h, const aoq_qweight *w, int64_t m) {
  if (!h || !w || m > INT32_MAX || w->n > INT32_MAX || w->k > INT32_MAX || w->k % 32) return false;
  switch (w->kind) {
    case AOQ_FMT_BF16:
      return m >= h->min_m_bf16;
    /* int8dq: the int8 GEMM (k_dec's mma is 0.2 of cuBLAS bf16 at 2048 rows); m >= 16 leaves
     * room for x's padding rows (linear_i8) */
    case AOQ_FMT_INT8DQ:
      return h->i8 != I8_OFF && m >= h->min_m_packed && m >= 16;
    case AOQ_FMT_INT8WO:
    case AOQ_FMT_FP8WO:
    case AOQ_FMT_FP8DQ:
    case AOQ_FMT_FP8DQ_ROW:
    case AOQ_FMT_MXFP8:
    case AOQ_FMT_INT4WO:
    case AOQ_FMT_INT4WO_HQQ:
    case AOQ_FMT_MXFP4:
    case AOQ_FMT_NVFP4:
    case AOQ_FMT_NVFP4WO:
    /* kernels/gpu/linear_dec.h's weight-only decoders (int8-intx / int8-int4: x fake-quantized
     * to bf16 first, then the same bf16 GEMM) */
    case AOQ_FMT_INTXWO:
    case AOQ_FMT_INT8_INTX:
    case AOQ_FMT_INT8_INT4:
    case AOQ_FMT_W158:
    case AOQ_FMT_FP6_E3M2:
    case AOQ_FMT_FP6_E2M3:
    case AOQ_FMT_CODEBOOK:
      return m >= h->min_m_packed;
    default:
      return false;
  }
}

size_t aoq_cublas_linear_workspace(const aoq_cublas *h, const aoq_qweight *w, int64_t m) {
  plan p;
  plan_of(h, w, m, &p);
  return p.act + p.part;
}

#define KL(call, what)                                                                           \
  do {                                                                                           \
    int e_ = (call);                                                                             \
    if (e_) {                                                                                    \
      cudaGetLastError();                                                                        \
      return aoq_err(AOQ_EDEVICE, "cuda %s: %s (%d)", what, cudaGetErrorString((cudaError_t)e_), \
                     e_);                                                                        \
    }                                                                                            \
  } while (0)

/* int8dq: x -> int8 per token (act_quant.cu, the CPU's bytes), then per chunk of weight rows the
 * int8 GEMM's exact int32 sums and the epilogue bf16(bf16(acc * x_s) * w_s): the same int32 sums
 * and the same epilogue as k_dec and the CPU backend, so the output is bit-identical to both.
 * Every GEMM dimension is a multiple of 16 (the int8 kernels' alignment rules are strict): the
 * token count is padded with zero rows of x (room: act_quant's region is sized for bf16), and a
 * chunk's last rows % 16 go through a zero-padded 16-row copy of themselves; the epilogue reads
 * only the real rows and columns. Where cuBLAS refuses the GEMM (not supported / invalid value /
 * arch mismatch) the whole linear runs on k_dec instead (the workspace holds k_dec's), unless
 * AOQ_CUBLAS_INT8=strict. */
static aoq_status linear_i8(aoq_cublas *h, const aoq_qweight *w, const void *x, void *y, int64_t m,
                            void *ws, void *stream, const plan *p) {
  const int64_t k = w->k, mp = pad16(m), ldc = pad16(p->chunk);
  cudaStream_t st = (cudaStream_t)stream;
  KL(aoq_gk_act_quant_rows(w, x, m, ws, stream), "act_quant");
  size_t off;
  aoq_gk_act_layout(m, k, &off); /* off >= 2 m k >= mp k for m >= 16 */
  const float *xs = (const float *)((const char *)ws + off);
  if (mp > m) KL(cudaMemsetAsync((int8_t *)ws + m * k, 0, (size_t)((mp - m) * k), st), "memset");
  int32_t *c = (int32_t *)((char *)ws + p->act); /* 256-byte aligned */
  int8_t *tail = (int8_t *)c + al256((size_t)(ldc * mp) * 4);
  for (int64_t r0 = 0; r0 < w->n; r0 += p->chunk) {
    const int64_t rows = w->n - r0 < p->chunk ? w->n - r0 : p->chunk, r16 = rows & ~(int64_t)15;
    const int8_t *wr = (const int8_t *)w->qdata + r0 * k;
    blas_status s = r16 ? gemm_i8(h, wr, ws, c, r16, mp, k, ldc, stream) : 0;
    if (!s && rows > r16) {
      KL(cudaMemsetAsync(tail, 0, (size_t)(16 * k), st), "memset");
      KL(cudaMemcpyAsync(tail, wr + r16 * k, (size_t)((rows - r16) * k), cudaMemcpyDeviceToDevice,
                         st),
         "copy");
      s = gemm_i8(h, tail, ws, c + r16, 16, mp, k, ldc, stream);
    }
    if (s) {
      if (h->i8 == I8_STRICT || (s != 7 && s != 8 && s != 15)) return blas_err(s, "int8 gemm");
      pthread_mutex_lock(&h->mu);
      const bool first = !h->i8_refused;
      h->i8_refused = true;
      pthread_mutex_unlock(&h->mu);
      if (first)
        AOQ_WARN(
            "cublas int8 gemm refused (%s, %d) for [%lld x %lld] at m = %lld: int8dq runs on "
            "aoq's own kernel",
            status_name(s), s, (long long)w->n, (long long)w->k, (long long)m);
      KL(aoq_gk_linear(w, x, y, m, ws, 0, stream), "linear");
      return AOQ_OK;
    }
    KL(aoq_gk_i8_epilogue(w, c, ldc, m, r0, rows, y, xs, stream), "epilogue");
  }
  return AOQ_OK;
}

aoq_status aoq_cublas_linear(aoq_cublas *h, const aoq_qweight *w, const void *x, void *y, int64_t m,
                             void *ws, void *stream) {
  plan p;
  plan_of(h, w, m, &p);
  if (w->kind == AOQ_FMT_INT8DQ) {
    if (!ws) return aoq_err(AOQ_EINVAL, "cublas linear: NULL workspace");
    return linear_i8(h, w, x, y, m, ws, stream, &p);
  }
  if (w->kind == AOQ_FMT_BF16)
    return aoq_cublas_gemm_bf16(h, w->qdata, x, y, w->n, m, w->k, w->n, false, stream);
  if (!ws) return aoq_err(AOQ_EINVAL, "cublas linear: NULL workspace");
  const float *xs = NULL, *xt = NULL;
  if (is_dynamic(w->kind)) {
    KL(aoq_gk_act_quant_rows(w, x, m, ws, stream), "act_quant");
    size_t off;
    aoq_gk_act_layout(m, w->k, &off);
    xs = (const float *)((const char *)ws + off);
    xt = xs + m;
    x = ws;
  }
  uint16_t *deq = (uint16_t *)((char *)ws + p.act);
  float *sums = (float *)((char *)deq + al256((size_t)(p.chunk * w->k) * 2));
  const bool f32 = sums_f32(w->kind);
  for (int64_t r0 = 0; r0 < w->n; r0 += p.chunk) {
    int64_t rows = w->n - r0 < p.chunk ? w->n - r0 : p.chunk;
    KL(aoq_gk_dequant_rows(w, r0, rows, deq, stream), "dequant");
    if (f32) {
      AOQ_TRY(aoq_cublas_gemm_bf16(h, deq, x, sums, rows, m, w->k, rows, true, stream));
      KL(aoq_gk_gemm_epilogue(w, sums, m, r0, rows, y, xs, xt, stream), "epilogue");
    } else {
      AOQ_TRY(
          aoq_cublas_gemm_bf16(h, deq, x, (uint16_t *)y + r0, rows, m, w->k, w->n, false, stream));
    }
  }
  if (w->kind == AOQ_FMT_INT8WO || w->kind == AOQ_FMT_NVFP4)
    KL(aoq_gk_gemm_epilogue(w, NULL, m, 0, w->n, y, xs, xt, stream), "epilogue");
  return AOQ_OK;
}
