/* Small-row matmuls on the CPU: y = x W^T with R rows of x, through one
 * cblas_sgemm call, one cblas_sgemv per row, and srlm's skinny kernel (reads W
 * once for all rows, src/backend/cpu/matmul_skinny.c), on the weight shapes of
 * the models the benchmarks use (the 24M model of the Python benchmarks, a ~1B
 * Llama). This is where the CPU backend's matmul chooses between them
 * (backend_cpu.c): OpenBLAS's sgemm packs W on every call, which a few rows
 * cannot repay.
 * Median of N timed calls after a warm-up; one line per shape and row count.
 *
 * With EVICT_MB > 0, that many MB are written between calls, so that W comes
 * from memory as it does in a decode step (the other weights pass in between)
 * rather than from a cache that the previous call warmed.
 *
 * The demo's shapes are small enough to stay in the caches of a decode step:
 * time them with EVICT_MB 0. ONLY limits the run to the shapes whose name
 * starts with it ("demo", "24M", "1B").
 *
 *     build/benchmarks/bench_cpu_matmul [THREADS] [MAX_ROWS] [EVICT_MB] [ONLY] */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/blas_kernels.h"
#include "backend/cpu/matmul_skinny.h"
#include "bench_util.h"
#include "core/rng.h"

enum { REPEATS = 31 };

enum { BY_SGEMM, BY_SGEMV, BY_SKINNY };

/* Between calls a model's other weights pass through the caches; writing this
 * much (more than the L3 of most machines) leaves W to come from memory, as in a
 * decode step. */
static char *g_evict;
static size_t g_evict_bytes;

/* Written by every thread, as a decode step's other ops keep them all busy:
 * from one thread, the others fall asleep and the next call pays their wake-up
 * (~100 us on a VM), which would count against whichever product threads. */
static void evict(int value) {
    enum { CHUNK = 1 << 20 };
    int64_t chunks = (int64_t)(g_evict_bytes / CHUNK);
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; c++) memset(g_evict + (size_t)c * CHUNK, value, CHUNK);
}

/* Median seconds of one call of y = x W^T, x R x k, W n x k. */
static double time_matmul(int by, int R, int n, int k, const float *x, const float *w, float *y) {
    double t[REPEATS];
    for (int rep = -2; rep < REPEATS; rep++) { /* two warm-up calls */
        if (g_evict) evict(rep & 0xff);
        double t0 = bench_now();
        if (by == BY_SKINNY)
            srlm_skinny_matmul(y, (size_t)n, x, (size_t)k, w, (size_t)k, R, n, k, 0);
        else if (by == BY_SGEMV)
            for (int r = 0; r < R; r++)
                cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, w, k, x + (size_t)r * k, 1, 0.0f,
                            y + (size_t)r * n, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, n, k, 1.0f, x, k, w, k, 0.0f, y, n);
        if (rep >= 0) t[rep] = bench_now() - t0;
    }
    qsort(t, REPEATS, sizeof *t, bench_cmp_double);
    return t[REPEATS / 2];
}

int main(int argc, char **argv) {
    const char *prog = "bench_cpu_matmul";
    int threads = 2, max_rows = 8, evict_mb = 0;
    if ((argc > 1 && !bench_arg_int(prog, "THREADS", argv[1], 1, 1024, &threads)) ||
        (argc > 2 && !bench_arg_int(prog, "MAX_ROWS", argv[2], 1, 64, &max_rows)) ||
        (argc > 3 && !bench_arg_int(prog, "EVICT_MB", argv[3], 0, 4096, &evict_mb))) {
        fprintf(stderr, "usage: bench_cpu_matmul [THREADS >= 1] [MAX_ROWS 1..64] [EVICT_MB 0..4096] [ONLY]\n");
        return 2;
    }
    g_evict_bytes = (size_t)evict_mb << 20;
    if (g_evict_bytes && !(g_evict = malloc(g_evict_bytes))) {
        fprintf(stderr, "bench_cpu_matmul: out of memory\n");
        return 1;
    }
    openblas_set_num_threads(threads);
    omp_set_num_threads(threads);
    int skinny = srlm_skinny_usable();
    const char *only = argc > 4 ? argv[4] : "";
    static const struct { const char *name; int n, k; } shapes[] = {
        {"demo qkv 384x128", 384, 128},        {"demo o 128x128", 128, 128},
        {"demo gate/up 688x128", 688, 128},    {"demo down 128x344", 128, 344},
        {"demo lm_head 400x128", 400, 128},
        {"24M q/k/v/o 288x288", 288, 288},     {"24M gate/up 768x288", 768, 288},
        {"24M down 288x768", 288, 768},        {"24M lm_head 32000x288", 32000, 288},
        {"1B q/o 2048x2048", 2048, 2048},      {"1B gate/up 5632x2048", 5632, 2048},
        {"1B down 2048x5632", 2048, 5632},     {"1B lm_head 32000x2048", 32000, 2048},
    };
    size_t most_w = 0, most_x = 0, most_y = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        size_t nw = (size_t)shapes[s].n * shapes[s].k, nx = (size_t)max_rows * shapes[s].k,
               ny = (size_t)max_rows * shapes[s].n;
        most_w = nw > most_w ? nw : most_w, most_x = nx > most_x ? nx : most_x, most_y = ny > most_y ? ny : most_y;
    }
    float *w = malloc(most_w * sizeof *w), *x = malloc(most_x * sizeof *x), *y = malloc(most_y * sizeof *y);
    if (!w || !x || !y) {
        fprintf(stderr, "bench_cpu_matmul: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < most_w; i++) w[i] = srlm_rng_uniform(7, i) - 0.5f;
    for (size_t i = 0; i < most_x; i++) x[i] = srlm_rng_uniform(8, i) - 0.5f;
    printf("%d thread(s); median of %d calls; us per call; %d MB written between calls\n", threads, REPEATS,
           evict_mb);
    /* the peer is only as good as the kernels OpenBLAS picked (blas_kernels.h) */
    const char *picked, *better = srlm_blas_better_kernels(&picked);
    printf("OpenBLAS kernels: %s", picked);
    if (better) printf(" (no AVX2 on a CPU that has it: OPENBLAS_CORETYPE=%s gives a fair peer)", better);
    printf("\n");
    if (!skinny) printf("this CPU lacks AVX2/FMA: no skinny kernel (the backend uses BLAS)\n");
    printf("| weight | rows | sgemm | sgemv per row | skinny | sgemm / sgemv | sgemm / skinny | sgemv / skinny |\n"
           "| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int R = 1; R <= max_rows && !strncmp(shapes[s].name, only, strlen(only)); R = R < 4 ? R + 1 : 2 * R) {
            double g = time_matmul(BY_SGEMM, R, shapes[s].n, shapes[s].k, x, w, y);
            double v = time_matmul(BY_SGEMV, R, shapes[s].n, shapes[s].k, x, w, y);
            if (skinny) {
                double q = time_matmul(BY_SKINNY, R, shapes[s].n, shapes[s].k, x, w, y);
                printf("| %s | %d | %.1f | %.1f | %.1f | %.2f | %.2f | %.2f |\n", shapes[s].name, R, 1e6 * g,
                       1e6 * v, 1e6 * q, g / v, g / q, v / q);
            } else
                printf("| %s | %d | %.1f | %.1f | - | %.2f | - | - |\n", shapes[s].name, R, 1e6 * g, 1e6 * v,
                       g / v);
            fflush(stdout);
        }
    free(w), free(x), free(y), free(g_evict);
    return 0;
}
