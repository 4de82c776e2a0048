/*
 * fake_cublas.c — a CPU stand-in for libcublas.so.13 with the entry points devices/cuda/cublas.c
 * looks up, for test_cublas_host (no GPU needed). cublasGemmEx takes only the int8 GEMM of int8dq
 * (int8 "TN" operands, int32 C, CUBLAS_COMPUTE_32I, int32 alpha = 1, beta = 0) and is stricter
 * than the real one: it refuses (CUBLAS_STATUS_NOT_SUPPORTED) any dimension or leading dimension
 * that is not a multiple of 16 and any pointer that is not 16-byte aligned, and every call while
 * FAKE_CUBLAS_REFUSE is set. fake_cublas_calls / fake_cublas_refused count the calls.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int fake_cublas_calls, fake_cublas_refused;

int cublasCreate_v2(void **h) {
  static int handle;
  *h = &handle;
  return 0;
}
int cublasDestroy_v2(void *h) {
  (void)h;
  return 0;
}
int cublasSetStream_v2(void *h, void *s) {
  (void)h, (void)s;
  return 0;
}
int cublasSetMathMode(void *h, int mode) {
  (void)h, (void)mode;
  return 0;
}
int cublasGetVersion_v2(void *h, int *v) {
  (void)h;
  *v = 1;
  return 0;
}

int cublasGemmEx(void *h, int ta, int tb, int m, int n, int k, const void *alpha, const void *A,
                 int at, int lda, const void *B, int bt, int ldb, const void *beta, void *C, int ct,
                 int ldc, int compute, int algo) {
  (void)h, (void)algo;
  fake_cublas_calls++;
  if (ta != 1 || tb != 0 || at != 3 || bt != 3 || ct != 10 || compute != 72 ||
      *(const int32_t *)alpha != 1 || *(const int32_t *)beta != 0 || lda < k || ldb < k ||
      ldc < m || m <= 0 || n <= 0 || k <= 0)
    return 7; /* invalid value: not a call cublas.c should make */
  if (getenv("FAKE_CUBLAS_REFUSE") || m % 16 || n % 16 || k % 16 || lda % 16 || ldb % 16 ||
      ldc % 16 || ((uintptr_t)A & 15) || ((uintptr_t)B & 15) || ((uintptr_t)C & 15)) {
    fake_cublas_refused++;
    return 15;
  }
  const int8_t *a = A, *b = B;
  int32_t *c = C;
  for (int64_t j = 0; j < n; j++)
    for (int64_t i = 0; i < m; i++) {
      int32_t s = 0;
      for (int64_t l = 0; l < k; l++) s += (int32_t)a[l + i * lda] * b[l + j * ldb];
      c[i + j * ldc] = s;
    }
  return 0;
}
