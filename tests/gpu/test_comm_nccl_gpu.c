/* The NCCL communicator (dist/comm_nccl.c) on device buffers, made as the
 * model and trainer make it: the CUDA backend's device_comm, on the backend's
 * device and stream, with the NCCL id sent over MPI. Every collective is
 * checked against values each rank computes from rank-dependent inputs
 * (comm_values.h); outputs are poisoned first and the guard bytes after every
 * buffer must come back untouched.
 *
 * One rank per GPU. Alone (ctest runs it so) the communicator has one rank:
 * ncclCommInitRank, reduce-scatter, all-gather, the root's own gatherv copy
 * and the barrier still go through NCCL, and all-reduce and broadcast, which
 * the front end skips on one rank, are called through the ops table so that
 * NCCL runs them too. Under mpirun -np G on a node with G GPUs
 * (benchmarks/gpu/run.sh does that when it finds several) the same checks
 * cover real exchanges, point-to-point included. */
#include <mpi.h>
#include <stdint.h>
#include <string.h>

#include "backend/factory.h"
#include "comm_values.h"
#include "dist/comm_mpi.h"
#include "dist/comm_nccl.h"
#include "dist/topology.h"
#include "gpu_util.h"

enum { GUARD = 64 };           /* bytes after every device buffer */
static const int GUARD_BYTE = 0xa5;

static int g_rank, g_size;

static const size_t SIZES[] = {1, 7, 1000, 12345, (1u << 20) + 3};
enum { N_SIZES = sizeof SIZES / sizeof SIZES[0] };

/* ---- device buffers with a guard ---- */

/* `bytes` of h (or of 0xff poison when h is NULL), then GUARD guard bytes. */
static void *dev_new(const void *h, size_t bytes) {
    char *d = gpu_alloc(bytes + GUARD);
    CHECK(cudaMemset(d, 0xff, bytes) == cudaSuccess);
    CHECK(cudaMemset(d + bytes, GUARD_BYTE, GUARD) == cudaSuccess);
    if (h && bytes) CHECK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice) == cudaSuccess);
    return d;
}

/* Copies the buffer back; 0 when a guard byte after it was overwritten. */
static int dev_get(void *h, const void *d, size_t bytes) {
    unsigned char guard[GUARD];
    if (bytes) CHECK(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK(cudaMemcpy(guard, (const char *)d + bytes, GUARD, cudaMemcpyDeviceToHost) == cudaSuccess);
    for (int i = 0; i < GUARD; i++)
        if (guard[i] != GUARD_BYTE) return 0;
    return 1;
}

/* The collectives run on the backend's stream: the barrier (an NCCL
 * all-reduce and a stream synchronisation) is what makes their results
 * readable, as it would be for any caller. */
static void settle(srlm_comm *d) { CHECK_OK(srlm_comm_barrier(d)); }

/* Through the front end as callers use it; on one rank through the ops table,
 * where the front end would return before NCCL is reached. */
static srlm_status allreduce(srlm_comm *d, void *buf, size_t n, srlm_comm_dtype t, srlm_reduce_op op) {
    return g_size > 1 ? srlm_comm_allreduce(d, buf, n, t, op) : d->ops->allreduce(d, buf, n, t, op);
}

static srlm_status broadcast(srlm_comm *d, void *buf, size_t bytes, int root) {
    return g_size > 1 ? srlm_comm_broadcast(d, buf, bytes, root) : d->ops->broadcast(d, buf, bytes, root);
}

/* ---- the collectives ---- */

static void test_allreduce(srlm_comm *d) {
    const srlm_comm_dtype *types = COMM_DTYPES;
    const srlm_reduce_op  *ops = COMM_OPS;
    for (size_t s = 0; s < N_SIZES; s++)
        for (int ti = 0; ti < COMM_N_DTYPES; ti++)
            for (int oi = 0; oi < COMM_N_OPS; oi++) {
                const size_t n = SIZES[s], bytes = n * srlm_comm_dtype_size(types[ti]);
                char *h = malloc(bytes);
                for (size_t i = 0; i < n; i++) comm_store(types[ti], h, i, comm_value(types[ti], g_rank, i));
                void *buf = dev_new(h, bytes);
                memset(h, 0xff, bytes);
                CHECK_OK(allreduce(d, buf, n, types[ti], ops[oi]));
                settle(d);
                int guard_ok = dev_get(h, buf, bytes);
                size_t bad = 0;
                for (size_t i = 0; i < n; i++)
                    bad += comm_load(types[ti], h, i) != comm_expected(types[ti], ops[oi], g_size, i);
                CHECK_MSG(bad == 0 && guard_ok, "allreduce %s %s n=%zu: %zu wrong, guard %s",
                          srlm_comm_dtype_name(types[ti]), srlm_reduce_op_name(ops[oi]), n, bad,
                          guard_ok ? "intact" : "overwritten");
                cudaFree(buf);
                free(h);
            }
}

static void test_reduce_scatter(srlm_comm *d) {
    for (size_t s = 0; s < N_SIZES; s++) {
        const size_t n = SIZES[s], total = n * (size_t)g_size;
        float *h = malloc(total * sizeof(float));
        for (size_t j = 0; j < total; j++) h[j] = comm_fval(g_rank, j);
        float *send = dev_new(h, total * sizeof(float)), *recv = dev_new(NULL, n * sizeof(float));
        CHECK_OK(srlm_comm_reduce_scatter_f32(d, send, recv, n));
        settle(d);
        int guard_ok = dev_get(h, recv, n * sizeof(float));
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) {
            float want = 0;
            for (int r = 0; r < g_size; r++) want += comm_fval(r, (size_t)g_rank * n + i);
            bad += h[i] != want;
        }
        CHECK_MSG(bad == 0 && guard_ok, "reduce-scatter n=%zu: %zu wrong, guard %s", n, bad,
                  guard_ok ? "intact" : "overwritten");
        cudaFree(send);
        cudaFree(recv);
        free(h);
    }
}

/* F32 values and BF16 bit patterns, out of place and in place (send = this
 * rank's block of recv, which NCCL takes as in place). */
static void test_allgather(srlm_comm *d) {
    const srlm_comm_dtype types[] = {SRLM_COMM_F32, SRLM_COMM_BF16};
    for (size_t s = 0; s < N_SIZES; s++)
        for (int ti = 0; ti < 2; ti++)
            for (int inplace = 0; inplace < 2; inplace++) {
                const srlm_comm_dtype t = types[ti];
                const size_t n = SIZES[s], es = srlm_comm_dtype_size(t), total = n * (size_t)g_size;
                char *mine = malloc(n * es), *h = malloc(total * es);
                for (size_t i = 0; i < n; i++) {
                    if (t == SRLM_COMM_F32) ((float *)mine)[i] = comm_fval(g_rank, i) + 0.25f;
                    else ((uint16_t *)mine)[i] = comm_bits16(g_rank, i);
                }
                char *recv = dev_new(NULL, total * es), *send = recv + (size_t)g_rank * n * es;
                if (inplace) CHECK(cudaMemcpy(send, mine, n * es, cudaMemcpyHostToDevice) == cudaSuccess);
                else send = dev_new(mine, n * es);
                CHECK_OK(srlm_comm_allgather(d, send, recv, n, t));
                settle(d);
                int guard_ok = dev_get(h, recv, total * es);
                size_t bad = 0;
                for (int r = 0; r < g_size; r++)
                    for (size_t i = 0; i < n; i++) {
                        const size_t j = (size_t)r * n + i;
                        if (t == SRLM_COMM_F32) bad += ((float *)h)[j] != comm_fval(r, i) + 0.25f;
                        else bad += ((uint16_t *)h)[j] != comm_bits16(r, i);
                    }
                CHECK_MSG(bad == 0 && guard_ok, "allgather %s n=%zu inplace=%d: %zu wrong, guard %s",
                          srlm_comm_dtype_name(t), n, inplace, bad, guard_ok ? "intact" : "overwritten");
                if (!inplace) cudaFree(send);
                cudaFree(recv);
                free(mine);
                free(h);
            }
}

/* Every root; the root's own part copied, or already in place. */
static void test_gatherv(srlm_comm *d) {
    const size_t bases[] = {0, 1, 500, 70000};
    size_t *counts = malloc((size_t)g_size * sizeof *counts);
    for (int root = 0; root < g_size; root++)
        for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++)
            for (int inplace = 0; inplace < 2; inplace++) {
                const size_t total = comm_gatherv_counts(counts, g_size, bases[b]), mine = counts[g_rank];
                size_t displ = 0;
                for (int r = 0; r < g_rank; r++) displ += counts[r];
                uint8_t *h = malloc(total + mine + 1);
                for (size_t j = 0; j < mine; j++) h[j] = comm_pattern(g_rank, j);
                uint8_t *recv = g_rank == root ? dev_new(NULL, total) : NULL, *send;
                if (inplace && recv) {
                    send = recv + displ;
                    if (mine) CHECK(cudaMemcpy(send, h, mine, cudaMemcpyHostToDevice) == cudaSuccess);
                } else {
                    send = dev_new(h, mine);
                }
                CHECK_OK(srlm_comm_gatherv_bytes(d, mine ? send : NULL, mine, recv, counts, root));
                settle(d);
                if (recv) {
                    int guard_ok = dev_get(h, recv, total);
                    size_t bad = 0, off = 0;
                    for (int r = 0; r < g_size; r++)
                        for (size_t j = 0; j < counts[r]; j++) bad += h[off++] != comm_pattern(r, j);
                    CHECK_MSG(bad == 0 && guard_ok, "gatherv base=%zu root=%d inplace=%d: %zu wrong, guard %s",
                              bases[b], root, inplace, bad, guard_ok ? "intact" : "overwritten");
                }
                if (!(inplace && recv)) cudaFree(send);
                cudaFree(recv);
                free(h);
            }
    free(counts);
}

static void test_broadcast(srlm_comm *d) {
    const int roots[] = {0, g_size - 1};
    for (int ri = 0; ri < 2; ri++)
        for (size_t s = 0; s < N_SIZES; s++) {
            const size_t n = SIZES[s] * 3; /* bytes */
            uint8_t *h = malloc(n);
            for (size_t j = 0; j < n; j++) h[j] = comm_pattern(roots[ri], j);
            uint8_t *buf = dev_new(g_rank == roots[ri] ? h : NULL, n);
            memset(h, 0, n);
            CHECK_OK(broadcast(d, buf, n, roots[ri]));
            settle(d);
            int guard_ok = dev_get(h, buf, n);
            size_t bad = 0;
            for (size_t j = 0; j < n; j++) bad += h[j] != comm_pattern(roots[ri], j);
            CHECK_MSG(bad == 0 && guard_ok, "broadcast of %zu bytes from %d: %zu wrong, guard %s", n, roots[ri], bad,
                      guard_ok ? "intact" : "overwritten");
            cudaFree(buf);
            free(h);
        }
}

/* Each rank sends to the next and receives from the one before; even ranks
 * send first, so no cycle of sends waits on itself. Needs two ranks. */
static void test_send_recv_ring(srlm_comm *d) {
    const int next = (g_rank + 1) % g_size, prev = (g_rank + g_size - 1) % g_size;
    for (size_t s = 0; s < N_SIZES; s++) {
        const size_t n = SIZES[s] * 5;
        uint8_t *h = malloc(n);
        for (size_t j = 0; j < n; j++) h[j] = comm_pattern(g_rank, j);
        uint8_t *out = dev_new(h, n), *in = dev_new(NULL, n);
        if (g_rank % 2 == 0) {
            CHECK_OK(srlm_comm_send(d, out, n, next, 7));
            CHECK_OK(srlm_comm_recv(d, in, n, prev, 7));
        } else {
            CHECK_OK(srlm_comm_recv(d, in, n, prev, 7));
            CHECK_OK(srlm_comm_send(d, out, n, next, 7));
        }
        settle(d);
        int guard_ok = dev_get(h, in, n);
        size_t bad = 0;
        for (size_t j = 0; j < n; j++) bad += h[j] != comm_pattern(prev, j);
        CHECK_MSG(bad == 0 && guard_ok, "ring of %zu bytes: %zu wrong, guard %s", n, bad,
                  guard_ok ? "intact" : "overwritten");
        cudaFree(out);
        cudaFree(in);
        free(h);
    }
}

/* An error NCCL itself finds (a root outside the communicator, passed past the
 * front end's own check) comes back as a status naming the call and what was
 * being done, with NCCL's own words. */
static void test_nccl_error(srlm_comm *d) {
    void *buf = dev_new(NULL, 16);
    srlm_status st = d->ops->broadcast(d, buf, 16, g_size);
    CHECK(st == SRLM_FAILED);
    const char *msg = srlm_last_error();
    CHECK_MSG(strstr(msg, "ncclBroadcast failed") && strstr(msg, "broadcast of 16 bytes from root"), "%s", msg);
    printf("NCCL's error, as srlm reports it: %s\n", msg);
    cudaFree(buf);
}

int main(int argc, char **argv) {
#ifndef SRLM_HAVE_NCCL
    (void)argc;
    (void)argv;
    TEST_SKIP("this build has no NCCL (CMake found no nccl.h / libnccl): device collectives go through the host");
#else
    gpu_skip_without_device("");
    /* a machine without libnccl: srlm says so when tp or dp needs it; here a skip */
    if (srlm_comm_nccl_load() != SRLM_OK) TEST_SKIP("%s", srlm_last_error());
    CHECK_OK(srlm_dist_init(&argc, &argv));
    MPI_Comm dup, node;
    MPI_Comm_dup(MPI_COMM_WORLD, &dup);
    srlm_comm *c = NULL;
    CHECK_OK(srlm_comm_from_mpi(dup, 1, &c));
    g_rank = srlm_comm_rank(c);
    g_size = srlm_comm_size(c);
    int local_rank = 0, local_size = 1;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local_rank);
    MPI_Comm_size(node, &local_size);
    MPI_Comm_free(&node);
    const int gpus = srlm_cuda_device_count();
    if (local_size > gpus) {
        srlm_comm_free(c);
        srlm_dist_finalize();
        TEST_SKIP("NCCL needs one GPU per rank: %d ranks on this node, %d GPUs", local_size, gpus);
    }

    srlm_backend *be = NULL;
    srlm_comm *d = NULL;
    CHECK_OK(srlm_backend_new(SRLM_BACKEND_CUDA, 1, local_rank, &be));
    if (be) CHECK_OK(be->ops->device_comm(be, c, &d));
    if (!d) {
        fprintf(stderr, "rank %d: no NCCL communicator: %s\n", g_rank, srlm_last_error());
        return 1;
    }
    CHECK(strcmp(d->ops->name, "NCCL") == 0);
    CHECK(srlm_comm_rank(d) == g_rank && srlm_comm_size(d) == g_size);
    if (g_rank == 0) printf("NCCL communicator: %d rank(s), one GPU each\n", g_size);

    test_allreduce(d);
    test_reduce_scatter(d);
    test_allgather(d);
    test_gatherv(d);
    test_broadcast(d);
    if (g_size > 1) test_send_recv_ring(d);
    else printf("point-to-point not checked: one rank (run under mpirun -np G on G GPUs)\n");
    test_nccl_error(d);

    srlm_comm_free(d);
    srlm_backend_free(be);
    srlm_comm_free(c);
    srlm_dist_finalize();
    TEST_DONE();
#endif
}
