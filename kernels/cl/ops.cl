/*
 * ops.cl — the bf16 element-wise, normalization, attention and selection ops (devices/device.h),
 * one kernel per op. Numerics follow the CPU backend (devices/cpu/cpu_ops.c): fp32 compute, bf16
 * roundings where torch hands back a bf16 tensor. Reductions run in work-groups of AOQ_WG items;
 * the host launches exactly that local size (the ops in devices/xpu/xpu_ops.c).
 */
#define AOQ_WG 64
#define AOQ_ATT_MAXD 256 /* head_dim bound of the attention kernel (4 accumulators per item) */

/* Tree reduction of red[0..AOQ_WG) into red[0]; every item must call it. */
static inline float wg_sum(__local float *red, float v) {
  int l = get_local_id(0);
  red[l] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = AOQ_WG / 2; s > 0; s >>= 1) {
    if (l < s) red[l] += red[l + s];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  float r = red[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return r;
}

static inline float wg_max(__local float *red, float v) {
  int l = get_local_id(0);
  red[l] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = AOQ_WG / 2; s > 0; s >>= 1) {
    if (l < s) red[l] = fmax(red[l], red[l + s]);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  float r = red[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return r;
}

/* y[row] = bf16(x * rsqrt(mean(x^2) + eps)) * w — HF LlamaRMSNorm; one group per row. */
__kernel __attribute__((reqd_work_group_size(AOQ_WG, 1, 1))) void
aoq_rmsnorm(AOQ_PTR(const ushort, x), AOQ_PTR(const ushort, w), AOQ_PTR(ushort, y), long n,
            float eps) {
  __local float red[AOQ_WG];
  long row = get_group_id(0);
  int l = get_local_id(0);
  __global const ushort *xr = AOQ_AT(const ushort, x) + row * n;
  __global const ushort *wv = AOQ_AT(const ushort, w);
  __global ushort *yr = AOQ_AT(ushort, y) + row * n;
  float s = 0;
  for (long c = l; c < n; c += AOQ_WG) {
    float a = aoq_bf2f(xr[c]);
    s += a * a;
  }
  s = wg_sum(red, s);
  float inv = 1.0f / sqrt(s / (float)n + eps);
  for (long c = l; c < n; c += AOQ_WG) {
    float v = aoq_rbf(aoq_bf2f(xr[c]) * inv);
    yr[c] = aoq_f2bf(aoq_bf2f(wv[c]) * v);
  }
}

__kernel void aoq_add(AOQ_PTR(const ushort, a), AOQ_PTR(const ushort, b), AOQ_PTR(ushort, y),
                      long n) {
  long i = get_global_id(0);
  if (i >= n) return;
  AOQ_AT(ushort, y)[i] = aoq_f2bf(aoq_bf2f(AOQ_AT(const ushort, a)[i]) +
                                  aoq_bf2f(AOQ_AT(const ushort, b)[i]));
}

/* Element-wise kernels over rows run on 2-D ranges (column, row): no index division, which
 * also keeps clang's div/rem pairing (a `freeze` that llvm-spirv-14 cannot translate) away. */

/* gu[m, 2n] = gate | up; y = bf16(silu(gate)) * up. One item per output element. */
__kernel void aoq_silu_mul(AOQ_PTR(const ushort, gu), AOQ_PTR(ushort, y), long m, long n) {
  long c = get_global_id(0), r = get_global_id(1);
  if (c >= n || r >= m) return;
  long i = r * n + c;
  __global const ushort *g = AOQ_AT(const ushort, gu) + r * 2 * n;
  float gv = aoq_bf2f(g[c]), u = aoq_bf2f(g[n + c]);
  float a = aoq_rbf(gv / (1.0f + exp(-gv)));
  AOQ_AT(ushort, y)[i] = aoq_f2bf(a * u);
}

/* y[i, :] = table[ids[i], :]; a bad id flags AOQ_CL_ERR_EMBED_ID and leaves its row alone. */
__kernel void aoq_embed(AOQ_PTR(const ushort, table), AOQ_PTR(const int, ids), AOQ_PTR(ushort, y),
                        AOQ_PTR(int, err), long n_rows, long m, long dim) {
  long c = get_global_id(0), r = get_global_id(1);
  if (c >= dim || r >= m) return;
  long i = r * dim + c;
  int id = AOQ_AT(const int, ids)[r];
  if (id < 0 || id >= n_rows) {
    if (c == 0) aoq_flag(AOQ_AT(int, err), AOQ_CL_ERR_EMBED_ID);
    return;
  }
  AOQ_AT(ushort, y)[i] = AOQ_AT(const ushort, table)[(long)id * dim + c];
}

/* In-place HF RoPE (rotate_half); inv: head_dim/2 frequencies (host-computed, llama3 rules).
 * One item per (pair, head, row) of a 3-D range. Products and sums rounded to bf16 like torch. */
__kernel void aoq_rope(AOQ_PTR(ushort, x), AOQ_PTR(const int, pos), AOQ_PTR(const float, inv),
                       long m, int n_heads, int head_dim, long row_stride) {
  int hf = head_dim / 2;
  int d = get_global_id(0), h = get_global_id(1);
  long r = get_global_id(2);
  if (d >= hf || h >= n_heads || r >= m) return;
  float ang = (float)AOQ_AT(const int, pos)[r] * AOQ_AT(const float, inv)[d];
  float c = aoq_rbf(cos(ang)), sn = aoq_rbf(sin(ang));
  __global ushort *xp = AOQ_AT(ushort, x) + r * row_stride + (long)h * head_dim + d;
  float x1 = aoq_bf2f(xp[0]), x2 = aoq_bf2f(xp[hf]);
  float a = aoq_rbf(x1 * c) - aoq_rbf(x2 * sn);
  float b = aoq_rbf(x2 * c) + aoq_rbf(x1 * sn);
  xp[0] = aoq_f2bf(a);
  xp[hf] = aoq_f2bf(b);
}

/* kc/vc[slots[i], :] = k/v[i, :] (bf16 cache), w = n_kv_heads * head_dim. */
__kernel void aoq_kv_store(AOQ_PTR(ushort, kc), AOQ_PTR(ushort, vc), AOQ_PTR(const ushort, k),
                           AOQ_PTR(const ushort, v), AOQ_PTR(const int, slots), AOQ_PTR(int, err),
                           long m, long w, long n_slots) {
  long c = get_global_id(0), r = get_global_id(1);
  if (c >= w || r >= m) return;
  long i = r * w + c;
  int slot = AOQ_AT(const int, slots)[r];
  if (slot < 0 || slot >= n_slots) {
    if (c == 0) aoq_flag(AOQ_AT(int, err), AOQ_CL_ERR_KV_SLOT);
    return;
  }
  AOQ_AT(ushort, kc)[(long)slot * w + c] = AOQ_AT(const ushort, k)[i];
  AOQ_AT(ushort, vc)[(long)slot * w + c] = AOQ_AT(const ushort, v)[i];
}

/*
 * Causal GQA attention over the paged bf16 cache: one group per (query head, row). Keys are
 * scored AOQ_WG at a time (one per item), softmax is streamed with a running max, and the
 * weights enter P.V rounded to bf16 while the normalizer sums them unrounded (cpu_ops.c).
 * A sequence, position or page out of range flags AOQ_CL_ERR_ATTN_INDEX and zeroes the row.
 */
__kernel __attribute__((reqd_work_group_size(AOQ_WG, 1, 1))) void
aoq_attention(AOQ_PTR(const ushort, kc), AOQ_PTR(const ushort, vc), AOQ_PTR(const int, row_seq),
              AOQ_PTR(const int, row_pos), AOQ_PTR(const int, bt), AOQ_PTR(const ushort, q),
              AOQ_PTR(ushort, out), AOQ_PTR(int, err), int n_seqs, int max_blocks, int n_pages,
              int page_size, int n_kv_heads, int head_dim, int n_heads, float scale) {
  __local float qs[AOQ_ATT_MAXD];
  __local float ps[AOQ_WG];
  __local int slots[AOQ_WG];
  __local float red[AOQ_WG];
  int h = get_group_id(0), l = get_local_id(0);
  long row = get_group_id(1);
  int seq = AOQ_AT(const int, row_seq)[row], pos = AOQ_AT(const int, row_pos)[row];
  __global ushort *o = AOQ_AT(ushort, out) + (row * n_heads + h) * head_dim;
  if (seq < 0 || seq >= n_seqs || pos < 0 || pos >= max_blocks * page_size) {
    if (l == 0) aoq_flag(AOQ_AT(int, err), AOQ_CL_ERR_ATTN_INDEX);
    for (int d = l; d < head_dim; d += AOQ_WG) o[d] = 0;
    return;
  }
  int kvh = h / (n_heads / n_kv_heads);
  __global const int *tab = AOQ_AT(const int, bt) + (long)seq * max_blocks;
  __global const ushort *qr = AOQ_AT(const ushort, q) + (row * n_heads + h) * head_dim;
  for (int d = l; d < head_dim; d += AOQ_WG) qs[d] = aoq_bf2f(qr[d]);
  barrier(CLK_LOCAL_MEM_FENCE);
  float acc[AOQ_ATT_MAXD / AOQ_WG];
  for (int j = 0; j < AOQ_ATT_MAXD / AOQ_WG; j++) acc[j] = 0; /* no initializer: see linear.cl */
  float mx = -INFINITY, lsum = 0;
  for (int t0 = 0; t0 <= pos; t0 += AOQ_WG) {
    int t = t0 + l, slot = -1;
    float s = -INFINITY;
    if (t <= pos) {
      int page = tab[t / page_size];
      if (page < 0 || page >= n_pages) {
        aoq_flag(AOQ_AT(int, err), AOQ_CL_ERR_ATTN_INDEX);
      } else {
        slot = page * page_size + (int)((uint)t % (uint)page_size); /* unsigned: see above */
        __global const ushort *kr = AOQ_AT(const ushort, kc) + ((long)slot * n_kv_heads + kvh) * head_dim;
        float dot = 0;
        for (int d = 0; d < head_dim; d++) dot += qs[d] * aoq_bf2f(kr[d]);
        s = dot * scale;
      }
    }
    slots[l] = slot;
    float bmax = wg_max(red, s);
    float nm = fmax(mx, bmax);
    float corr = mx == -INFINITY ? 0.0f : exp(mx - nm);
    float p = slot >= 0 ? exp(s - nm) : 0.0f;
    ps[l] = aoq_rbf(p);
    float bsum = wg_sum(red, p); /* its barriers also publish ps and slots */
    lsum = lsum * corr + bsum;
    mx = nm;
    int nt = pos + 1 - t0 < AOQ_WG ? pos + 1 - t0 : AOQ_WG;
    for (int j = 0; j * AOQ_WG < head_dim; j++) {
      int d = l + j * AOQ_WG;
      if (d >= head_dim) break;
      float a = acc[j] * corr;
      for (int tt = 0; tt < nt; tt++) {
        if (slots[tt] < 0) continue;
        a += ps[tt] * aoq_bf2f(AOQ_AT(const ushort, vc)[((long)slots[tt] * n_kv_heads + kvh) * head_dim + d]);
      }
      acc[j] = a;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  float inv = lsum > 0 ? 1.0f / lsum : 0.0f;
  for (int j = 0; j * AOQ_WG < head_dim; j++) {
    int d = l + j * AOQ_WG;
    if (d < head_dim) o[d] = aoq_f2bf(acc[j] * inv);
  }
}

/* out[row] = first index of the maximum (NaN counts as -inf); one group per row. */
__kernel __attribute__((reqd_work_group_size(AOQ_WG, 1, 1))) void
aoq_argmax(AOQ_PTR(const ushort, logits), AOQ_PTR(int, out), long vocab) {
  __local float rv[AOQ_WG];
  __local int ri[AOQ_WG];
  long row = get_group_id(0);
  int l = get_local_id(0);
  __global const ushort *lg = AOQ_AT(const ushort, logits) + row * vocab;
  float bv = -INFINITY;
  int bi = 0x7fffffff;
  for (long i = l; i < vocab; i += AOQ_WG) {
    float v = aoq_bf2f(lg[i]);
    if (isnan(v)) v = -INFINITY;
    if (bi == 0x7fffffff || v > bv) bv = v, bi = (int)i;
  }
  rv[l] = bv;
  ri[l] = bi;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = AOQ_WG / 2; s > 0; s >>= 1) {
    if (l < s) {
      float ov = rv[l + s];
      int oi = ri[l + s];
      if (ov > rv[l] || (ov == rv[l] && oi < ri[l])) rv[l] = ov, ri[l] = oi;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (l == 0) AOQ_AT(int, out)[row] = ri[0];
}

__kernel void aoq_bf16_to_f32(AOQ_PTR(const ushort, src), AOQ_PTR(float, dst), long n) {
  long i = get_global_id(0);
  if (i < n) AOQ_AT(float, dst)[i] = aoq_bf2f(AOQ_AT(const ushort, src)[i]);
}

__kernel void aoq_f32_to_bf16(AOQ_PTR(const float, src), AOQ_PTR(ushort, dst), long n) {
  long i = get_global_id(0);
  if (i < n) AOQ_AT(ushort, dst)[i] = aoq_f2bf(AOQ_AT(const float, src)[i]);
}
