/* y = x W^T for a few rows of x, reading W once for all of them: the matmuls
 * of a decode step of a few sequences (matmul_skinny.c says why and how). */
#ifndef SRLM_MATMUL_SKINNY_H
#define SRLM_MATMUL_SKINNY_H

#include <stddef.h>
#include <stdint.h>

/* The rows of x the CPU backend gives it. Measured with
 * benchmarks/bench_cpu_matmul at 2 threads against OpenBLAS 0.3.21's AVX-512
 * (SkylakeX) kernels (RESULTS.md): from 2 to 8 rows it beats sgemm on all but
 * 2 of 31 shape and row pairs of a 24M and a 1B model (0.8-2.3x; 0.5-5x on the
 * demo's tiny shapes); at 16 rows about even, from 32 rows sgemm's wider
 * kernels win (0.3-1.0), and one row is sgemv's (0.8-1.6). */
enum { SKINNY_MIN_ROWS = 2, SKINNY_MAX_ROWS = 8 };

/* 1 when this CPU runs the kernel (x86-64 with AVX2 and FMA), else 0 and the
 * backend keeps BLAS. */
int srlm_skinny_usable(void);

/* y[r][j] = x[r] . W[j] (plus y[r][j] when accumulate) for r < rows, j < n, with
 * x rows x k (row stride ldx), W n x k (ldw), y rows x n (ldy); every sum is
 * taken in one fixed order, whatever rows and the thread count are. Call only
 * when srlm_skinny_usable(). */
void srlm_skinny_matmul(float *y, size_t ldy, const float *x, size_t ldx, const float *w, size_t ldw,
                        int rows, int64_t n, int64_t k, int accumulate);

#endif
