/* Timing helpers shared by the benchmark programs. */
#ifndef SRLM_BENCH_UTIL_H
#define SRLM_BENCH_UTIL_H

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

#endif
