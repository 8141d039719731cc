/* Matmuls of a few rows on the CPU. A decode step of B sequences multiplies B
 * rows by every weight matrix, and on a large model that is bound by reading
 * the weights from memory: one sgemv per row reads W B times, and OpenBLAS's
 * sgemm packs W into a buffer on every call, which a few rows cannot repay
 * (RESULTS.md). Here two rows of W at a time are read from memory once and
 * dotted with every row of x while they sit in the cache; the rows of W are
 * shared out among the threads.
 *
 * Every y[r][j] is summed in one order: eight lanes over k (lane l takes the
 * elements l, l + 8, ...), the lanes added in a fixed tree, then the last k % 8
 * elements in turn. That order depends on k alone, not on the row count or the
 * threads, so a sequence's logits are the same bits at any batch size this
 * kernel serves.
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

/* The register tile: TILE_W rows of W by TILE_X rows of x, one accumulator of
 * eight lanes for each pair (eight in all, enough to cover the FMA latency),
 * with registers left for the loads. Per eight elements of k it loads
 * TILE_W + TILE_X vectors for TILE_W x TILE_X FMAs. */
enum { TILE_W = 2, TILE_X = 4 };

/* Below this many multiply-adds one thread does the product: starting the
 * others costs more. Measured with bench_cpu_matmul on the demo's shapes, two
 * threads: about even at 32-64 K (a 128 x 128 W at 2-4 rows), faster above
 * (the 384 x 128 qkv at one row, 49 K: 4.8 us, 6.8 on one thread). */
enum { PAR_MIN_FMAS = 1 << 15 };

#define AVX2_FMA __attribute__((target("avx2,fma")))

AVX2_FMA static inline float lanes_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)); /* i + (i+4) */
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));                                        /* + (i+2) */
    s = _mm_add_ss(s, _mm_movehdup_ps(s));                                         /* + (i+1) */
    return _mm_cvtss_f32(s);
}

/* y[r][a] (+)= x[r] . w[a] for the gx rows of x at x0 and the gw rows of W at
 * w0 (gw and gx constants once inlined, so that the accumulators live in
 * registers). Each sum takes the same order whatever gw and gx are. */
AVX2_FMA static inline __attribute__((always_inline)) void
tile(int gw, int gx, float *y0, size_t ldy, const float *x0, size_t ldx, const float *w0, size_t ldw,
     int64_t k, int accumulate) {
    __m256 acc[TILE_W][TILE_X];
    for (int a = 0; a < gw; a++)
        for (int r = 0; r < gx; r++) acc[a][r] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        __m256 wv[TILE_W];
        for (int a = 0; a < gw; a++) wv[a] = _mm256_loadu_ps(w0 + a * ldw + i);
        for (int r = 0; r < gx; r++) {
            __m256 xv = _mm256_loadu_ps(x0 + r * ldx + i);
            for (int a = 0; a < gw; a++) acc[a][r] = _mm256_fmadd_ps(wv[a], xv, acc[a][r]);
        }
    }
    for (int a = 0; a < gw; a++)
        for (int r = 0; r < gx; r++) {
            const float *xr = x0 + r * ldx, *wa = w0 + a * ldw;
            float        s  = lanes_sum(acc[a][r]);
            for (int64_t t = i; t < k; t++) s = fmaf(wa[t], xr[t], s);
            float *out = y0 + r * ldy + a;
            *out       = accumulate ? *out + s : s;
        }
}

/* Every row of x against gw rows of W from row j (gw a constant once inlined). */
AVX2_FMA static inline __attribute__((always_inline)) void
tile_row(int gw, float *y, size_t ldy, const float *x, size_t ldx, const float *w, size_t ldw, int rows,
         int64_t j, int64_t k, int accumulate) {
    const float *w0 = w + (size_t)j * ldw;
    for (int r0 = 0; r0 < rows; r0 += TILE_X) {
        float       *y0 = y + (size_t)r0 * ldy + (size_t)j;
        const float *x0 = x + (size_t)r0 * ldx;
        switch (rows - r0 < TILE_X ? rows - r0 : TILE_X) {
        case 1: tile(gw, 1, y0, ldy, x0, ldx, w0, ldw, k, accumulate); break;
        case 2: tile(gw, 2, y0, ldy, x0, ldx, w0, ldw, k, accumulate); break;
        case 3: tile(gw, 3, y0, ldy, x0, ldx, w0, ldw, k, accumulate); break;
        default: tile(gw, TILE_X, y0, ldy, x0, ldx, w0, ldw, k, accumulate); break;
        }
    }
}

/* Rows [j0, j1) of W against all rows of x. */
AVX2_FMA static void skinny_rows(float *y, size_t ldy, const float *x, size_t ldx, const float *w,
                                 size_t ldw, int rows, int64_t j0, int64_t j1, int64_t k,
                                 int accumulate) {
    int64_t j = j0;
    for (; j + TILE_W <= j1; j += TILE_W) tile_row(TILE_W, y, ldy, x, ldx, w, ldw, rows, j, k, accumulate);
    for (; j < j1; j++) tile_row(1, y, ldy, x, ldx, w, ldw, rows, j, k, accumulate);
}

int srlm_skinny_usable(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

void srlm_skinny_matmul(float *y, size_t ldy, const float *x, size_t ldx, const float *w, size_t ldw,
                        int rows, int64_t n, int64_t k, int accumulate) {
    if ((int64_t)rows * n * k < PAR_MIN_FMAS) {
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
