/*
 * cpu_kernels.h — private to the CPU backend (cpu*.c other than the quantized kernels): the
 * context layout, the thread pool's life cycle and the op entry points that cpu.c puts into the
 * device interface. Everything here runs on host memory; "device" pointers are host pointers.
 */
#ifndef AOQ_DEVICES_CPU_KERNELS_H
#define AOQ_DEVICES_CPU_KERNELS_H

/* numerics.h's header comment contains a slash-star sequence (-Wcomment); keep it from failing
 * -Werror. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcomment"
#include "base/numerics.h"
#pragma GCC diagnostic pop
#include "devices/cpu/cpu_internal.h"

/* SIMD level of the kernels, chosen once per device (best the CPU has, or lower with the
 * environment variable AOQ_CPU_ISA=scalar|avx2|avx512 — tests use it to cover every path). */
typedef enum aoq_cpu_isa {
  AOQ_CPU_ISA_SCALAR = 0,
  AOQ_CPU_ISA_AVX2,
  AOQ_CPU_ISA_AVX512
} aoq_cpu_isa;

typedef struct aoq_cpu_pool aoq_cpu_pool;

struct aoq_cpu_ctx {
  int threads; /* workers + the calling thread */
  aoq_cpu_isa isa;
  aoq_cpu_pool *pool;
  char name[128];
};

/* The best ISA this CPU supports (ignores AOQ_CPU_ISA). */
aoq_cpu_isa aoq_cpu_isa_detect(void);
const char *aoq_cpu_isa_name(aoq_cpu_isa isa);

/* Starts threads-1 workers (threads >= 1); *out stays NULL for threads == 1 (everything inline). */
aoq_status aoq_cpu_pool_create(int threads, aoq_cpu_pool **out);
/* Joins the workers; NULL is a no-op. */
void aoq_cpu_pool_destroy(aoq_cpu_pool *p);

/* Checks that dt is an activation dtype of the CPU backend (BF16 or F32). */
aoq_status aoq_cpu_check_dt(aoq_dtype dt, const char *op);

/* --- ops (cpu_linear.c, cpu_ops.c, cpu_sample.c); argument checks happen inside each --- */
size_t aoq_cpu_linear_workspace(void *ctx, const aoq_qweight *w, int64_t m);
aoq_status aoq_cpu_linear(void *ctx, const aoq_qweight *w, const void *x, void *y, int64_t m,
                          aoq_dtype dt, void *ws, aoq_stream *s);
aoq_status aoq_cpu_rmsnorm(void *ctx, const void *x, const void *w, void *y, int64_t m, int64_t n,
                           float eps, aoq_dtype dt, aoq_stream *s);
aoq_status aoq_cpu_add(void *ctx, const void *a, const void *b, void *y, int64_t n, aoq_dtype dt,
                       aoq_stream *s);
aoq_status aoq_cpu_silu_mul(void *ctx, const void *gu, void *y, int64_t m, int64_t n, aoq_dtype dt,
                            aoq_stream *s);
aoq_status aoq_cpu_embed(void *ctx, const void *table, int64_t n_rows, const int32_t *ids, void *y,
                         int64_t m, int64_t dim, aoq_dtype dt, aoq_stream *s);
aoq_status aoq_cpu_rope(void *ctx, void *x, const int32_t *pos, int64_t m, int n_heads,
                        int head_dim, int64_t row_stride, const aoq_rope *r, aoq_dtype dt,
                        aoq_stream *s);
aoq_status aoq_cpu_kv_store(void *ctx, const aoq_kv_cache *kv, const void *k, const void *v,
                            const int32_t *slots, int64_t m, aoq_dtype dt, aoq_stream *s);
size_t aoq_cpu_attention_workspace(void *ctx, const aoq_kv_cache *kv, int64_t m, int n_heads,
                                   int max_pos);
aoq_status aoq_cpu_attention(void *ctx, const aoq_kv_cache *kv, const aoq_attn_batch *b,
                             const void *q, void *out, int64_t m, int n_heads, float scale,
                             aoq_dtype dt, void *ws, aoq_stream *s);
aoq_status aoq_cpu_argmax(void *ctx, const void *logits, int32_t *out, int64_t m, int64_t vocab,
                          aoq_dtype dt, aoq_stream *s);
aoq_status aoq_cpu_sample(void *ctx, const void *logits, int32_t *out, int64_t m, int64_t vocab,
                          const aoq_sample_params *p, aoq_dtype dt, aoq_stream *s);
aoq_status aoq_cpu_convert(void *ctx, const void *src, aoq_dtype sdt, void *dst, aoq_dtype ddt,
                           int64_t n, aoq_stream *s);

/* Element access for the two activation dtypes (F32, or BF16 with RNE on store). */
static inline float aoq_cpu_ld(const void *p, int64_t i, aoq_dtype dt) {
  return dt == AOQ_DTYPE_F32 ? ((const float *)p)[i] : aoq_bf16_to_f32(((const uint16_t *)p)[i]);
}
static inline void aoq_cpu_st(void *p, int64_t i, float v, aoq_dtype dt) {
  if (dt == AOQ_DTYPE_F32)
    ((float *)p)[i] = v;
  else
    ((uint16_t *)p)[i] = aoq_f32_to_bf16(v);
}
/* v rounded to what dt can hold (identity for F32): the intermediate roundings of torch's bf16 ops.
 */
static inline float aoq_cpu_rnd(float v, aoq_dtype dt) {
  return dt == AOQ_DTYPE_F32 ? v : aoq_round_bf16(v);
}

#endif
