/*
 * linear_gemm.h — part of kernels/gpu/linear.cu (included once, after the GEMV sections):
 * the tiled wmma GEMM for m > 64 without cuBLAS (CUDA only). Uses linear.cu's wargs and
 * decoders; defines AOQ_HAVE_GEMM.
 */
/* ---- m > 16: tiled tensor-core GEMM (64 x 64 output tile, k step 64) ----
 * The weight tile is dequantized by the same decoders into shared memory as bf16 (exact: every
 * decoder's values are bf16 values), the activation tile is copied as is, and wmma 16x16x16 bf16
 * with fp32 accumulation computes the tile; the epilogue is the decoder's. CUDA only (HIP keeps
 * the sliced GEMV until a rocWMMA version exists). */
#if !defined(__HIPCC__)
#include <mma.h>
#define GB 64
#define GLD (GB + 8)

template <class D>
__global__ void __launch_bounds__(128)
    k_gemm(wargs w, const uint16_t *__restrict__ x, uint16_t *__restrict__ y, int64_t m) {
  AOQ_PDL_WAIT();
  using namespace nvcuda;
  __shared__ __align__(32) uint16_t xs[GB * GLD];
  __shared__ __align__(32) uint16_t ws[GB * GLD];
  __shared__ __align__(32) float cs[GB * (GB + 4)];
  const int tid = threadIdx.x, warp = tid >> 5;
  const int64_t m0 = (int64_t)blockIdx.y * GB, n0 = (int64_t)blockIdx.x * GB;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);
  const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
  for (int64_t k0 = 0; k0 < w.k; k0 += GB) {
    for (int i = tid; i < GB * GB / 8; i += 128) {
      int r = i / (GB / 8), c8 = i % (GB / 8);
      uint4 v = make_uint4(0, 0, 0, 0);
      if (m0 + r < m) v = *(const uint4 *)(x + (m0 + r) * w.k + k0 + c8 * 8);
      *(uint4 *)(xs + r * GLD + c8 * 8) = v;
    }
    constexpr int CPR = GB / D::EPL; /* chunks per row of the tile */
    for (int i = tid; i < GB * CPR; i += 128) {
      int r = i / CPR, cc = i % CPR;
      int64_t row = n0 + r, c = k0 / D::EPL + cc;
      uint16_t *dst = ws + r * GLD + cc * D::EPL;
      if (row < w.n) {
        uint4 raw = aoq_ld_stream16(w.q + row * w.row_bytes + c * 16);
        typename D::P p = D::prm(w, row, c);
#pragma unroll
        for (int sub = 0; sub < D::EPL / 8; sub++) {
          float f[8];
          D::dec8(raw, sub, p, f);
          uint4 o;
          o.x = (__float_as_uint(f[0]) >> 16) | (__float_as_uint(f[1]) & 0xffff0000u);
          o.y = (__float_as_uint(f[2]) >> 16) | (__float_as_uint(f[3]) & 0xffff0000u);
          o.z = (__float_as_uint(f[4]) >> 16) | (__float_as_uint(f[5]) & 0xffff0000u);
          o.w = (__float_as_uint(f[6]) >> 16) | (__float_as_uint(f[7]) & 0xffff0000u);
          *(uint4 *)(dst + sub * 8) = o;
        }
      } else {
#pragma unroll
        for (int sub = 0; sub < D::EPL / 8; sub++)
          *(uint4 *)(dst + sub * 8) = make_uint4(0, 0, 0, 0);
      }
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < GB; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb[2];
#pragma unroll
      for (int i = 0; i < 2; i++)
        wmma::load_matrix_sync(fa[i], (const __nv_bfloat16 *)(xs + (wm + 16 * i) * GLD + kk), GLD);
#pragma unroll
      for (int j = 0; j < 2; j++)
        wmma::load_matrix_sync(fb[j], (const __nv_bfloat16 *)(ws + (wn + 16 * j) * GLD + kk), GLD);
#pragma unroll
      for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int j = 0; j < 2; j++)
      wmma::store_matrix_sync(cs + (wm + 16 * i) * (GB + 4) + wn + 16 * j, acc[i][j], GB + 4,
                              wmma::mem_row_major);
  __syncthreads();
  for (int i = tid; i < GB * GB; i += 128) {
    int r = i / GB, c = i % GB;
    if (m0 + r < m && n0 + c < w.n)
      y[(m0 + r) * w.n + n0 + c] =
          aoq_f32_to_bf16(D::epi(cs[r * (GB + 4) + c], w, n0 + c, (int)(m0 + r)));
  }
}

template <class D>
static int launch_gemm(const wargs &w, const uint16_t *x, uint16_t *y, int64_t m,
                       aoq_gpu_stream_t st) {
  dim3 grid((unsigned)((w.n + GB - 1) / GB), (unsigned)((m + GB - 1) / GB));
  return aoq_launch(k_gemm<D>, grid, 128, 0, st, w, x, y, m);
}
#define AOQ_HAVE_GEMM 1
#endif
