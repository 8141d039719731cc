/* The CPU backend's skinny matmul (src/backend/cpu/matmul_skinny.c): y = x W^T
 * for 1 to 64 rows (the backend gives it 2..SKINNY_MAX_ROWS) against a double
 * reference, on random inputs, y poisoned first: k below 8, a multiple of 8
 * and between (the 8-wide loop, the scalar tail), counts of x rows and of W
 * rows that do and do not fill the register tile (4 rows of x by 2 of W),
 * strides wider than the rows.
 *
 * Tolerance: a float sum of k products is within k * 2^-24 * sum |w_i x_i| of
 * the exact one (the standard bound for any summation order); the test takes
 * that bound as it is.
 *
 * It also checks what the kernel promises beyond the values: no write outside
 * y's rows x n, the same bits for a row of x whatever the row count, and the
 * same bits at 1 and 2 threads. Skipped (visibly) on a CPU without AVX2/FMA,
 * where the backend keeps BLAS. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/matmul_skinny.h"
#include "core/rng.h"
#include "test.h"

enum { PAD = 3 }; /* extra floats per row of x, W and y: strides wider than rows */

typedef struct {
    int     rows;
    int64_t n, k;
    float  *x, *w, *y;
    size_t  ldx, ldw, ldy;
} problem;

static int make(problem *p, int rows, int64_t n, int64_t k, uint64_t seed) {
    p->rows = rows, p->n = n, p->k = k;
    p->ldx = (size_t)k + PAD, p->ldw = (size_t)k + PAD, p->ldy = (size_t)n + PAD;
    p->x = malloc(sizeof(float) * (size_t)rows * p->ldx);
    p->w = malloc(sizeof(float) * (size_t)n * p->ldw);
    p->y = malloc(sizeof(float) * (size_t)(rows + 1) * p->ldy); /* one row past the end, watched */
    if (!p->x || !p->w || !p->y) return 0;
    for (size_t i = 0; i < (size_t)rows * p->ldx; i++) p->x[i] = 2 * srlm_rng_uniform(seed, i) - 1;
    for (size_t i = 0; i < (size_t)n * p->ldw; i++) p->w[i] = 2 * srlm_rng_uniform(seed + 1, i) - 1;
    return 1;
}

static void drop(problem *p) { free(p->x), free(p->w), free(p->y); }

/* y starts as NaN (accumulate 0: every element must be written) or as small
 * random values (accumulate 1: they must be added to); the padding and the row
 * past the end as a sentinel that must survive. */
static const float SENTINEL = -12345.0f;

static void poison(problem *p, int accumulate, uint64_t seed) {
    for (int r = 0; r <= p->rows; r++)
        for (size_t j = 0; j < p->ldy; j++) {
            float *e = &p->y[(size_t)r * p->ldy + j];
            if (r == p->rows || j >= (size_t)p->n) *e = SENTINEL;
            else *e = accumulate ? srlm_rng_uniform(seed, (uint64_t)r * p->ldy + j) - 0.5f : NAN;
        }
}

/* Compares y with start + x W^T in double; start is y before the call (accumulate) or 0. */
static void check_values(const problem *p, const float *start, const char *what) {
    int bad = 0;
    for (int r = 0; r <= p->rows && bad < 3; r++)
        for (size_t j = 0; j < p->ldy && bad < 3; j++) {
            float got = p->y[(size_t)r * p->ldy + j];
            if (r == p->rows || j >= (size_t)p->n) {
                if (got != SENTINEL) {
                    bad++;
                    CHECK_MSG(0, "%s: wrote outside y at row %d col %zu (%g)", what, r, j, (double)got);
                }
                continue;
            }
            double exact = start ? start[(size_t)r * p->ldy + j] : 0, mag = start ? fabs(exact) : 0;
            for (int64_t i = 0; i < p->k; i++) {
                double t = (double)p->x[(size_t)r * p->ldx + i] * p->w[j * p->ldw + i];
                exact += t, mag += fabs(t);
            }
            double bound = (double)(p->k + 1) * ldexp(1, -24) * mag;
            if (!(fabs(got - exact) <= bound)) {
                bad++;
                CHECK_MSG(0, "%s: y[%d][%zu] = %.9g, expected %.9g (bound %.3g)", what, r, j, (double)got, exact,
                          bound);
            }
        }
}

static void check_shape(int rows, int64_t n, int64_t k, int accumulate) {
    problem p;
    char    what[96];
    snprintf(what, sizeof what, "rows %d, n %lld, k %lld, accumulate %d", rows, (long long)n, (long long)k,
             accumulate);
    if (!make(&p, rows, n, k, 100 + (uint64_t)(rows * 1000 + k))) {
        CHECK_MSG(0, "%s: out of memory", what);
        drop(&p);
        return;
    }
    poison(&p, accumulate, 7);
    float *start = NULL;
    if (accumulate && !(start = malloc(sizeof(float) * (size_t)(rows + 1) * p.ldy))) {
        CHECK_MSG(0, "%s: out of memory", what);
        drop(&p);
        return;
    }
    if (start) memcpy(start, p.y, sizeof(float) * (size_t)(rows + 1) * p.ldy);
    srlm_skinny_matmul(p.y, p.ldy, p.x, p.ldx, p.w, p.ldw, rows, n, k, accumulate);
    check_values(&p, start, what);
    free(start);
    drop(&p);
}

/* Row r of a product of many rows is the same bits as that row alone, and as
 * the product at one thread: the sums' order depends on k alone. */
static void check_same_bits(void) {
    problem p;
    int     rows = 64;
    int64_t n = 1000, k = 299; /* above the threads' threshold; k with every path */
    if (!make(&p, rows, n, k, 55)) {
        CHECK_MSG(0, "out of memory");
        drop(&p);
        return;
    }
    float *one = malloc(sizeof(float) * (size_t)n), *serial = malloc(sizeof(float) * (size_t)rows * p.ldy);
    if (!one || !serial) {
        CHECK_MSG(0, "out of memory");
        free(one), free(serial), drop(&p);
        return;
    }
    int threads = omp_get_max_threads();
    omp_set_num_threads(2);
    poison(&p, 0, 1);
    srlm_skinny_matmul(p.y, p.ldy, p.x, p.ldx, p.w, p.ldw, rows, n, k, 0);
    omp_set_num_threads(1);
    srlm_skinny_matmul(serial, p.ldy, p.x, p.ldx, p.w, p.ldw, rows, n, k, 0);
    omp_set_num_threads(threads);
    int mismatched_threads = 0, mismatched_rows = 0;
    for (int r = 0; r < rows; r++) {
        for (int64_t j = 0; j < n; j++)
            mismatched_threads += memcmp(&p.y[(size_t)r * p.ldy + j], &serial[(size_t)r * p.ldy + j], 4) != 0;
        for (int64_t j = 0; j < n; j++) one[j] = NAN;
        srlm_skinny_matmul(one, (size_t)n, p.x + (size_t)r * p.ldx, p.ldx, p.w, p.ldw, 1, n, k, 0);
        mismatched_rows += memcmp(one, &p.y[(size_t)r * p.ldy], sizeof(float) * (size_t)n) != 0;
    }
    CHECK_MSG(mismatched_threads == 0, "%d elements differ between 2 threads and 1", mismatched_threads);
    CHECK_MSG(mismatched_rows == 0, "%d of %d rows differ when multiplied alone", mismatched_rows, rows);
    free(one), free(serial), drop(&p);
}

int main(void) {
    if (!srlm_skinny_usable()) TEST_SKIP("this CPU lacks AVX2/FMA: the CPU backend uses BLAS for every matmul");
    static const int64_t ks[] = {1, 5, 8, 9, 15, 16, 17, 24, 40, 301};
    static const int64_t ns[] = {1, 7, 33, 2500}; /* odd counts for the 2-row tile of W; 2500: threads */
    /* every remainder of the 4-row tile, then a few rows more and the most */
    static const int rowss[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 64};
    for (size_t c = 0; c < sizeof rowss / sizeof *rowss; c++)
        for (size_t a = 0; a < sizeof ks / sizeof *ks; a++)
            for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
                for (int acc = 0; acc <= 1; acc++) check_shape(rowss[c], ns[b], ks[a], acc);
    check_shape(SKINNY_MAX_ROWS, 50, 2048, 0);
    check_same_bits();
    TEST_DONE();
}
