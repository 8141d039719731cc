/* Allreduce (sum, f32, in place) through srlm_comm_allreduce_f32 against a
 * bare MPI_Allreduce loop on the same communicator, in the same run, for
 * message sizes 4 B .. 64 MiB (x4 steps). Per size, rank 0 prints the time per
 * call (slowest rank, median of 5 alternating rounds), the algorithm bandwidth
 * (bytes / time), the bus bandwidth (algbw * 2(n-1)/n, as nccl-tests defines it
 * for allreduce) and ours / bare (1.00 = no overhead).
 *
 * Run:  mpirun -np 2 build/benchmarks/bench_allreduce [MAX_BYTES]
 * (as root add --allow-run-as-root; more ranks than cores need --oversubscribe). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "dist/comm_mpi.h"
#include "dist/topology.h"

/* Seconds per call of the slowest rank. which: 0 = srlm, 1 = bare MPI. */
static double time_loop(srlm_comm *c, float *buf, size_t n, int iters, int which) {
    MPI_Comm h = srlm_comm_mpi_handle(c);
    MPI_Barrier(h);
    double t0 = MPI_Wtime();
    for (int i = 0; i < iters; i++) {
        if (which == 0) {
            if (srlm_comm_allreduce_f32(c, buf, n, SRLM_REDUCE_SUM) != SRLM_OK) {
                fprintf(stderr, "bench_allreduce: %s\n", srlm_last_error());
                srlm_dist_abort(1);
            }
        } else {
            MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, h);
        }
    }
    double dt = (MPI_Wtime() - t0) / iters;
    MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, h);
    return dt;
}

enum { ROUNDS = 5 };

static double median(double *v) {
    qsort(v, ROUNDS, sizeof *v, bench_cmp_double);
    return v[ROUNDS / 2];
}

int main(int argc, char **argv) {
    if (srlm_dist_init(&argc, &argv) != SRLM_OK) {
        fprintf(stderr, "bench_allreduce: %s\n", srlm_last_error());
        return 1;
    }
    size_t max_bytes = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : (size_t)64 << 20;
    MPI_Comm dup;
    srlm_comm *c = NULL;
    MPI_Comm_dup(MPI_COMM_WORLD, &dup);
    if (srlm_comm_from_mpi(dup, 1, &c) != SRLM_OK) {
        fprintf(stderr, "bench_allreduce: %s\n", srlm_last_error());
        srlm_dist_abort(1);
    }
    int rank = srlm_comm_rank(c), size = srlm_comm_size(c);
    float *buf = calloc(max_bytes / sizeof(float) + 1, sizeof(float)); /* zeros: sums stay finite */
    if (!buf) {
        fprintf(stderr, "bench_allreduce: out of memory for %zu bytes\n", max_bytes);
        srlm_dist_abort(1);
    }
    double bus = size > 1 ? 2.0 * (size - 1) / size : 0.0;
    if (rank == 0)
        printf("# allreduce sum f32, %d ranks\n# %12s %8s %12s %12s %12s %12s %8s\n", size, "bytes", "iters",
               "ours_us", "bare_us", "algbw_GB/s", "busbw_GB/s", "ours/bare");
    for (size_t bytes = 4; bytes <= max_bytes; bytes *= 4) {
        size_t n = bytes / sizeof(float);
        /* About 64 MiB moved per measurement, between 3 and 1000 calls. */
        size_t it = ((size_t)64 << 20) / bytes;
        int iters = it < 3 ? 3 : it > 1000 ? 1000 : (int)it;
        time_loop(c, buf, n, iters / 10 + 1, 0); /* warm-up */
        time_loop(c, buf, n, iters / 10 + 1, 1);
        /* Alternate the two, ROUNDS times, and keep medians: a shared machine's
         * noise then hits both alike. */
        double t_ours[ROUNDS], t_bare[ROUNDS];
        for (int k = 0; k < ROUNDS; k++) {
            t_ours[k] = time_loop(c, buf, n, iters, 0);
            t_bare[k] = time_loop(c, buf, n, iters, 1);
        }
        double ours = median(t_ours), bare = median(t_bare);
        double algbw = (double)bytes / ours / 1e9;
        if (rank == 0)
            printf("  %12zu %8d %12.2f %12.2f %12.3f %12.3f %8.2f\n", bytes, iters, ours * 1e6, bare * 1e6, algbw,
                   algbw * bus, ours / bare);
    }
    fflush(stdout);
    free(buf);
    srlm_comm_free(c);
    srlm_dist_finalize();
    return 0;
}
