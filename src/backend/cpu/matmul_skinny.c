/* Matmuls of a few rows on the CPU. A decode step of B sequences multiplies B
 * rows by every weight matrix, and that is bound by reading the weights from
 * memory: one sgemv per row reads W B times, and OpenBLAS's sgemm packs W into
 * a buffer on every call, which a few rows cannot repay (RESULTS.md). Here each
 * row of W is read from memory once and dotted with every row of x while it
 * sits in L1; the rows of W are shared out among the threads.
 *
 * Every y[r][j] is summed in one order: sixteen lanes over k (two vectors of
 * eight, the second taking k's elements 8..15 of every 16), the two vectors
 * added, the eight lanes added in a fixed tree, then the last k % 8 elements in
 * turn. That order depends on k alone, not on the row count or the threads, so
 * a sequence's logits are the same bits at any batch size this kernel serves.
 *
 * x86-64 with AVX2 and FMA (checked at run time) only; elsewhere the backend
 * keeps BLAS. */
#include "backend/cpu/matmul_skinny.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define SKINNY_X86 1
#endif

#ifdef SKINNY_X86
#include <immintrin.h>
#include <math.h>

/* Rows of x per pass over a row of W: two accumulators each, eight in all,
 * enough to cover the FMA latency, with registers left for W and x. */
enum { GROUP = 4 };

/* From this many elements of W on the rows of W are shared among threads;
 * below, starting them costs more than the product. */
enum { PAR_MIN_ELEMS = 1 << 15 };

#define AVX2_FMA __attribute__((target("avx2,fma")))

AVX2_FMA static inline float lanes_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)); /* i + (i+4) */
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));                                        /* + (i+2) */
    s = _mm_add_ss(s, _mm_movehdup_ps(s));                                         /* + (i+1) */
    return _mm_cvtss_f32(s);
}

/* y[r][j] (+)= x[r] . wj for the g rows of x at x0 (g a constant once inlined,
 * so that the accumulators live in registers). */
AVX2_FMA static inline __attribute__((always_inline)) void
dot_rows(int g, float *y0, size_t ldy, const float *x0, size_t ldx, const float *wj, int64_t k,
         int accumulate) {
    __m256 lo[GROUP], hi[GROUP];
    for (int r = 0; r < g; r++) lo[r] = hi[r] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) {
        __m256 w_lo = _mm256_loadu_ps(wj + i), w_hi = _mm256_loadu_ps(wj + i + 8);
        for (int r = 0; r < g; r++) {
            lo[r] = _mm256_fmadd_ps(w_lo, _mm256_loadu_ps(x0 + r * ldx + i), lo[r]);
            hi[r] = _mm256_fmadd_ps(w_hi, _mm256_loadu_ps(x0 + r * ldx + i + 8), hi[r]);
        }
    }
    if (i + 8 <= k) {
        __m256 w_lo = _mm256_loadu_ps(wj + i);
        for (int r = 0; r < g; r++) lo[r] = _mm256_fmadd_ps(w_lo, _mm256_loadu_ps(x0 + r * ldx + i), lo[r]);
        i += 8;
    }
    for (int r = 0; r < g; r++) {
        const float *xr = x0 + r * ldx;
        float        s  = lanes_sum(_mm256_add_ps(lo[r], hi[r]));
        for (int64_t t = i; t < k; t++) s = fmaf(wj[t], xr[t], s);
        float *out = y0 + r * ldy;
        *out       = accumulate ? *out + s : s;
    }
}

/* Rows [j0, j1) of W against all rows of x. */
AVX2_FMA static void skinny_rows(float *y, size_t ldy, const float *x, size_t ldx, const float *w,
                                 size_t ldw, int rows, int64_t j0, int64_t j1, int64_t k,
                                 int accumulate) {
    for (int64_t j = j0; j < j1; j++) {
        const float *wj = w + (size_t)j * ldw;
        for (int r0 = 0; r0 < rows; r0 += GROUP) {
            float       *y0 = y + (size_t)r0 * ldy + (size_t)j;
            const float *x0 = x + (size_t)r0 * ldx;
            switch (rows - r0 < GROUP ? rows - r0 : GROUP) {
            case 1: dot_rows(1, y0, ldy, x0, ldx, wj, k, accumulate); break;
            case 2: dot_rows(2, y0, ldy, x0, ldx, wj, k, accumulate); break;
            case 3: dot_rows(3, y0, ldy, x0, ldx, wj, k, accumulate); break;
            default: dot_rows(GROUP, y0, ldy, x0, ldx, wj, k, accumulate); break;
            }
        }
    }
}

int srlm_skinny_usable(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

void srlm_skinny_matmul(float *y, size_t ldy, const float *x, size_t ldx, const float *w, size_t ldw,
                        int rows, int64_t n, int64_t k, int accumulate) {
    if (n * k < PAR_MIN_ELEMS) {
        skinny_rows(y, ldy, x, ldx, w, ldw, rows, 0, n, k, accumulate);
        return;
    }
    /* Blocks of 16 rows of W (a 64-byte line of y per row of x), dealt out
     * statically: every thread streams its share of W at the same rate. */
    int64_t blocks = (n + 15) / 16;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t j1 = (b + 1) * 16 < n ? (b + 1) * 16 : n;
        skinny_rows(y, ldy, x, ldx, w, ldw, rows, b * 16, j1, k, accumulate);
    }
}

#else /* not x86: the backend keeps BLAS */

int srlm_skinny_usable(void) { return 0; }

void srlm_skinny_matmul(float *y, size_t ldy, const float *x, size_t ldx, const float *w, size_t ldw,
                        int rows, int64_t n, int64_t k, int accumulate) {
    (void)y, (void)ldy, (void)x, (void)ldx, (void)w, (void)ldw, (void)rows, (void)n, (void)k,
        (void)accumulate;
}

#endif
