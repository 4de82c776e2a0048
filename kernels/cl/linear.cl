/*
 * linear.cl — y[m,n] = x[m,k] @ W^T with bf16 W (devices/device.h), fp32 accumulation, y rounded
 * to bf16. One work-group of AOQ_LWG items per output row of W: the items stride over k, so a
 * row of W is read once (coalesced) for up to AOQ_LIN_MR rows of x at a time, then the partial
 * sums are reduced in local memory. The quantized formats have their own files.
 */
#define AOQ_LWG 64
#define AOQ_LIN_MR 4

__kernel __attribute__((reqd_work_group_size(AOQ_LWG, 1, 1))) void
aoq_linear_bf16(AOQ_PTR(const ushort, w), AOQ_PTR(const ushort, x), AOQ_PTR(ushort, y), long m,
                long n, long k) {
  __local float red[AOQ_LIN_MR][AOQ_LWG];
  long j = get_group_id(0);
  int l = get_local_id(0);
  __global const ushort *wr = AOQ_AT(const ushort, w) + j * k;
  __global const ushort *xb = AOQ_AT(const ushort, x);
  for (long r0 = 0; r0 < m; r0 += AOQ_LIN_MR) {
    int mr = m - r0 < AOQ_LIN_MR ? (int)(m - r0) : AOQ_LIN_MR;
    /* zeroed by a loop: an initializer list becomes a constant global that spirv-val rejects */
    float acc[AOQ_LIN_MR];
    for (int i = 0; i < AOQ_LIN_MR; i++) acc[i] = 0;
    for (long c = l; c < k; c += AOQ_LWG) {
      float wv = aoq_bf2f(wr[c]);
      for (int i = 0; i < mr; i++) acc[i] += wv * aoq_bf2f(xb[(r0 + i) * k + c]);
    }
    for (int i = 0; i < mr; i++) red[i][l] = acc[i];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = AOQ_LWG / 2; s > 0; s >>= 1) {
      if (l < s)
        for (int i = 0; i < mr; i++) red[i][l] += red[i][l + s];
      barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l < mr) AOQ_AT(ushort, y)[(r0 + l) * n + j] = aoq_f2bf(red[l][0]);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
}
