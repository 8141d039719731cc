/* y = x W^T for a few rows of x, reading W once for all of them: the matmuls
 * of a decode step of a few sequences (matmul_skinny.c says why and how). */
#ifndef SRLM_MATMUL_SKINNY_H
#define SRLM_MATMUL_SKINNY_H

#include <stddef.h>
#include <stdint.h>

/* The most rows of x it serves; above it the backend calls sgemm. Measured
 * with benchmarks/bench_cpu_matmul at 2 threads (RESULTS.md), it is still
 * 1.4-2.1x faster than sgemm at 64 rows on the shapes of the demo, a 24M and
 * a 1B model; 64 is also the most sequences the loop decodes together, and
 * more rows are prefill and training, where sgemm's packing pays. */
enum { SKINNY_MAX_ROWS = 64 };

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
