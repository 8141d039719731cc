/* The collectives the data-parallel trainer uses, timed through srlm's
 * interface (src/dist/comm.h) over MPI_COMM_WORLD, for the alpha-beta fit of
 * the planner's cluster.intra_node_latency_us / intra_node_busbw_gbs:
 * all-reduce, reduce-scatter and all-gather of fp32 buffers of S bytes in all
 * (4 B .. MAX_BYTES, x4 steps, plus each EXTRA: a size in bytes, or a model
 * folder, whose fp32 gradient size, 4 B x its parameters, is measured).
 *
 *   mpirun -np N build/benchmarks/scaling_comm [MAX_BYTES [EXTRA ...]]
 *
 * Per (collective, size): the time per call of the slowest rank, median of 5
 * rounds (bench_allreduce.c's method), and the bus bandwidth as nccl-tests
 * defines it: S / t x 2(n-1)/n for all-reduce, x (n-1)/n for the other two.
 * Rank 0 prints one JSON line per measurement. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/comm_mpi.h"
#include "dist/topology.h"
#include "io/fsutil.h"
#include "io/hf_config.h"
#include "pipeline/plan.h"
#include "scaling_common.h"

enum { ROUNDS = 5, OP_AR = 0, OP_RS, OP_AG, N_OPS };
static const char *OP_NAMES[N_OPS] = {"allreduce", "reduce_scatter", "allgather"};

static void check(srlm_status st) {
    if (st != SRLM_OK) {
        fprintf(stderr, "scaling_comm: %s\n", srlm_last_error());
        srlm_dist_abort(1);
    }
}

/* Seconds per call of the slowest rank; n_floats is the whole buffer. */
static double time_op(srlm_comm *c, int op, float *a, float *b, size_t n_floats, int iters) {
    const size_t per = n_floats / (size_t)srlm_comm_size(c);
    MPI_Comm h = srlm_comm_mpi_handle(c);
    MPI_Barrier(h);
    double t0 = scaling_now();
    for (int i = 0; i < iters; i++) {
        if (op == OP_AR) check(srlm_comm_allreduce_f32(c, a, n_floats, SRLM_REDUCE_SUM));
        else if (op == OP_RS) check(srlm_comm_reduce_scatter_f32(c, a, b, per));
        else check(srlm_comm_allgather_f32(c, b, a, per));
    }
    double dt = (scaling_now() - t0) / iters;
    MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, h);
    return dt;
}

static void measure(srlm_comm *c, float *a, float *b, size_t bytes) {
    const int n = srlm_comm_size(c);
    size_t n_floats = bytes / sizeof(float);
    n_floats = (n_floats + (size_t)n - 1) / (size_t)n * (size_t)n; /* whole blocks per rank */
    if (n_floats == 0) n_floats = (size_t)n;
    bytes = n_floats * sizeof(float);
    size_t it = ((size_t)32 << 20) / bytes; /* about 32 MiB moved per measurement */
    int iters = it < 3 ? 3 : it > 500 ? 500 : (int)it;
    for (int op = 0; op < N_OPS; op++) {
        double t[ROUNDS];
        time_op(c, op, a, b, n_floats, iters / 10 + 1); /* warm-up */
        for (int k = 0; k < ROUNDS; k++) t[k] = time_op(c, op, a, b, n_floats, iters);
        double med = scaling_median(t, ROUNDS);
        double factor = op == OP_AR ? 2.0 * (n - 1) / n : (double)(n - 1) / n;
        if (srlm_comm_rank(c) == 0)
            printf("{\"bench\": \"comm\", \"op\": \"%s\", \"ranks\": %d, \"bytes\": %zu, \"iters\": %d, "
                   "\"time_us\": %.3f, \"busbw_gbs\": %.4f}\n",
                   OP_NAMES[op], n, bytes, iters, med * 1e6, bytes / med / 1e9 * factor);
    }
    fflush(stdout);
}

/* EXTRA: bytes, or a model folder (its fp32 gradient); 0 when neither. */
static size_t extra_bytes(const char *arg) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", arg);
    if (!srlm_path_exists(path)) return (size_t)strtoull(arg, NULL, 10);
    srlm_hf_config hf;
    srlm_plan_arch a;
    check(srlm_hf_config_load(path, &hf));
    srlm_plan_arch_from_hf(&hf, &a);
    return 4 * (size_t)srlm_plan_param_count(&a);
}

int main(int argc, char **argv) {
    if (srlm_dist_init(&argc, &argv) != SRLM_OK) {
        fprintf(stderr, "scaling_comm: %s\n", srlm_last_error());
        return 1;
    }
    size_t max_bytes = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : (size_t)64 << 20, biggest = max_bytes;
    for (int i = 2; i < argc; i++)
        if (extra_bytes(argv[i]) > biggest) biggest = extra_bytes(argv[i]);
    MPI_Comm dup;
    srlm_comm *c = NULL;
    MPI_Comm_dup(MPI_COMM_WORLD, &dup);
    check(srlm_comm_from_mpi(dup, 1, &c));
    if (srlm_comm_size(c) < 2) {
        if (srlm_comm_rank(c) == 0) fprintf(stderr, "scaling_comm: run it with at least 2 ranks\n");
        srlm_comm_free(c);
        srlm_dist_finalize();
        return 2;
    }
    /* zeros: sums stay finite; room for whole blocks per rank */
    size_t cap = biggest / sizeof(float) + (size_t)srlm_comm_size(c) + 1;
    float *a = calloc(cap, sizeof(float)), *b = calloc(cap, sizeof(float));
    if (!a || !b) {
        fprintf(stderr, "scaling_comm: out of memory for %zu bytes\n", biggest);
        srlm_dist_abort(1);
    }
    for (size_t bytes = 4; bytes <= max_bytes; bytes *= 4) measure(c, a, b, bytes);
    for (int i = 2; i < argc; i++)
        if (extra_bytes(argv[i]) > 0) measure(c, a, b, extra_bytes(argv[i]));
    free(a);
    free(b);
    srlm_comm_free(c);
    srlm_dist_finalize();
    return 0;
}
