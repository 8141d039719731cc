/* Helpers shared by the benchmark programs: the clock, medians, arguments, batch lengths. */
#ifndef SRLM_BENCH_UTIL_H
#define SRLM_BENCH_UTIL_H

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* CLOCK_MONOTONIC seconds. */
static inline double bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* qsort comparator for doubles, ascending. */
static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Argument s, the whole of it, as an integer in [lo, hi] into *out: 1, or 0
 * after one line on stderr naming the program, the argument and what was found. */
static inline int bench_arg_int(const char *prog, const char *what, const char *s, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    const long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "%s: %s: expected an integer in [%ld, %ld], found '%s'\n", prog, what, lo, hi, s);
        return 0;
    }
    *out = (int)v;
    return 1;
}

/* The same for a finite number in [lo, hi]. */
static inline int bench_arg_double(const char *prog, const char *what, const char *s, double lo, double hi,
                                   double *out) {
    char *end;
    const double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "%s: %s: expected a number in [%g, %g], found '%s'\n", prog, what, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

/* Lengths of a right-padded batch of B sequences of up to T tokens whose real
 * tokens are `fill` (0.5 .. 1) of B x T: falling evenly from T to T (2 fill - 1),
 * at least 2 (benchmarks/train_vs_pytorch.py makes the same). */
static inline void bench_fill_lengths(int B, int T, double fill, int *len) {
    for (int b = 0; b < B; b++) {
        const double share = B > 1 ? 1.0 - 2.0 * (1.0 - fill) * b / (B - 1) : fill;
        const int n = (int)(T * share + 0.5);
        len[b] = n < 2 ? 2 : n;
    }
}

#endif
