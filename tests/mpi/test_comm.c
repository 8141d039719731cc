/* MPI_RANKS: 4 */
/* Every collective of dist/comm.h over MPI, checked against values each rank
 * computes locally from rank-dependent inputs. The suite runs twice: with MPI's
 * own count limit and with a tiny one (333), so larger sizes take the chunked
 * paths. */
#include <stdint.h>
#include <string.h>

#include "comm_values.h"
#include "core/dtype.h"
#include "dist/comm_mpi.h"
#include "dist/topology.h"
#include "test.h"

static int g_rank, g_size;

static const size_t SIZES[] = {0, 1, 7, 1000, 12345};
enum { N_SIZES = sizeof SIZES / sizeof SIZES[0] };

static void test_allreduce(srlm_comm *c) {
    const srlm_comm_dtype *types = COMM_DTYPES;
    const srlm_reduce_op  *ops = COMM_OPS;
    for (size_t s = 0; s < N_SIZES; s++)
        for (int ti = 0; ti < COMM_N_DTYPES; ti++)
            for (int oi = 0; oi < COMM_N_OPS; oi++) {
                size_t n = SIZES[s];
                srlm_comm_dtype t = types[ti];
                char *buf = malloc(n * srlm_comm_dtype_size(t) + 1);
                for (size_t i = 0; i < n; i++) comm_store(t, buf, i, comm_value(t, g_rank, i));
                CHECK_OK(srlm_comm_allreduce(c, buf, n, t, ops[oi]));
                size_t bad = 0;
                for (size_t i = 0; i < n; i++)
                    if (comm_load(t, buf, i) != comm_expected(t, ops[oi], g_size, i)) bad++;
                CHECK_MSG(bad == 0, "allreduce %s %s n=%zu: %zu wrong", srlm_comm_dtype_name(t),
                          srlm_reduce_op_name(ops[oi]), n, bad);
                free(buf);
            }
    /* the kept f32 entry point */
    float v[3] = {comm_fval(g_rank, 0), comm_fval(g_rank, 1), comm_fval(g_rank, 2)};
    CHECK_OK(srlm_comm_allreduce_f32(c, v, 3, SRLM_REDUCE_SUM));
    for (int i = 0; i < 3; i++) CHECK(v[i] == (float)comm_expected(SRLM_COMM_F32, SRLM_REDUCE_SUM, g_size, (size_t)i));
}

static void test_reduce_scatter_allgather(srlm_comm *c) {
    for (size_t s = 0; s < N_SIZES; s++) {
        size_t n = SIZES[s], total = n * (size_t)g_size;
        float *send = malloc(total * sizeof(float) + 4), *part = malloc(n * sizeof(float) + 4);
        float *full = malloc(total * sizeof(float) + 4), *ref = malloc(total * sizeof(float) + 4);
        for (size_t j = 0; j < total; j++) send[j] = ref[j] = comm_fval(g_rank, j);
        for (size_t i = 0; i < n; i++) part[i] = -999.0f;

        CHECK_OK(srlm_comm_reduce_scatter_f32(c, send, part, n));
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) {
            float want = 0;
            for (int r = 0; r < g_size; r++) want += comm_fval(r, (size_t)g_rank * n + i);
            if (part[i] != want) bad++;
        }
        CHECK_MSG(bad == 0, "reduce-scatter n=%zu: %zu wrong", n, bad);

        /* round trip: allgather of the scattered sums = allreduce of the whole */
        for (size_t j = 0; j < total; j++) full[j] = -999.0f;
        CHECK_OK(srlm_comm_allgather_f32(c, part, full, n));
        CHECK_OK(srlm_comm_allreduce_f32(c, ref, total, SRLM_REDUCE_SUM));
        CHECK_MSG(total == 0 || memcmp(full, ref, total * sizeof(float)) == 0,
                  "reduce-scatter + allgather != allreduce, n=%zu", n);

        /* allgather of rank-dependent blocks, out of place and in place */
        for (size_t i = 0; i < n; i++) part[i] = comm_fval(g_rank, i) + 0.25f;
        for (int inplace = 0; inplace < 2; inplace++) {
            for (size_t j = 0; j < total; j++) full[j] = -999.0f;
            float *mine = full + (size_t)g_rank * n;
            if (inplace) memcpy(mine, part, n * sizeof(float));
            CHECK_OK(srlm_comm_allgather_f32(c, inplace ? mine : part, full, n));
            bad = 0;
            for (int r = 0; r < g_size; r++)
                for (size_t i = 0; i < n; i++)
                    if (full[(size_t)r * n + i] != comm_fval(r, i) + 0.25f) bad++;
            CHECK_MSG(bad == 0, "allgather n=%zu inplace=%d: %zu wrong", n, inplace, bad);
        }
        /* 16-bit payloads (a bf16 model's weights) are moved, never touched: every
         * pattern, NaN and infinity bits included, arrives as sent */
        uint16_t *h = malloc(total * sizeof(uint16_t) + 2);
        for (int inplace = 0; inplace < 2; inplace++) {
            for (size_t j = 0; j < total; j++) h[j] = 0x7fc1; /* a NaN nobody sends */
            uint16_t *mine = h + (size_t)g_rank * n, *src = inplace ? mine : (uint16_t *)part;
            for (size_t i = 0; i < n; i++) src[i] = comm_bits16(g_rank, i);
            CHECK_OK(srlm_comm_allgather(c, src, h, n, SRLM_COMM_BF16));
            bad = 0;
            for (int r = 0; r < g_size; r++)
                for (size_t i = 0; i < n; i++)
                    if (h[(size_t)r * n + i] != comm_bits16(r, i)) bad++;
            CHECK_MSG(bad == 0, "allgather bf16 n=%zu inplace=%d: %zu wrong", n, inplace, bad);
        }
        free(h);
        free(send);
        free(part);
        free(full);
        free(ref);
    }
}

static void test_gatherv(srlm_comm *c) {
    const size_t bases[] = {0, 1, 500, 5000};
    for (int root = 0; root < 2; root++)
        for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++) {
            size_t *counts = malloc((size_t)g_size * sizeof *counts);
            size_t  total = comm_gatherv_counts(counts, g_size, bases[b]);
            uint8_t *send = counts[g_rank] ? malloc(counts[g_rank]) : NULL, *recv = NULL; /* NULL: 0 bytes */
            for (size_t j = 0; j < counts[g_rank]; j++) send[j] = comm_pattern(g_rank, j);
            if (g_rank == root) {
                recv = malloc(total + 1);
                memset(recv, 0xEE, total + 1);
            }
            CHECK_OK(srlm_comm_gatherv_bytes(c, send, counts[g_rank], recv, counts, root));
            if (g_rank == root) {
                size_t bad = 0, off = 0;
                for (int r = 0; r < g_size; r++)
                    for (size_t j = 0; j < counts[r]; j++)
                        if (recv[off++] != comm_pattern(r, j)) bad++;
                CHECK_MSG(bad == 0 && recv[total] == 0xEE, "gatherv base=%zu root=%d: %zu wrong", bases[b], root, bad);
            }
            free(counts);
            free(send);
            free(recv);
        }
}

static void test_broadcast(srlm_comm *c) {
    int roots[] = {g_size - 1, 1};
    for (int ri = 0; ri < 2; ri++)
        for (size_t s = 0; s < N_SIZES; s++) {
            size_t   n = SIZES[s] * 3 + (SIZES[s] ? 1 : 0); /* bytes, odd */
            uint8_t *buf = malloc(n + 1);
            for (size_t j = 0; j < n; j++) buf[j] = g_rank == roots[ri] ? comm_pattern(roots[ri], j) : 0xEE;
            CHECK_OK(srlm_comm_broadcast(c, buf, n, roots[ri]));
            size_t bad = 0;
            for (size_t j = 0; j < n; j++)
                if (buf[j] != comm_pattern(roots[ri], j)) bad++;
            CHECK_MSG(bad == 0, "broadcast of %zu bytes from %d: %zu wrong", n, roots[ri], bad);
            free(buf);
        }
}

static void test_send_recv_ring(srlm_comm *c) {
    int next = (g_rank + 1) % g_size, prev = (g_rank + g_size - 1) % g_size;
    for (size_t s = 0; s < N_SIZES; s++) {
        size_t   n = SIZES[s] * 5;
        uint8_t *out = malloc(n + 1), *in = malloc(n + 1);
        for (size_t j = 0; j < n; j++) {
            out[j] = comm_pattern(g_rank, j);
            in[j] = 0xEE;
        }
        /* even ranks send first, odd ones receive first: no cycle of blocked sends */
        if (g_rank % 2 == 0) {
            CHECK_OK(srlm_comm_send(c, out, n, next, 7));
            CHECK_OK(srlm_comm_recv(c, in, n, prev, 7));
        } else {
            CHECK_OK(srlm_comm_recv(c, in, n, prev, 7));
            CHECK_OK(srlm_comm_send(c, out, n, next, 7));
        }
        size_t bad = 0;
        for (size_t j = 0; j < n; j++)
            if (in[j] != comm_pattern(prev, j)) bad++;
        CHECK_MSG(bad == 0, "ring of %zu bytes: %zu wrong", n, bad);
        free(out);
        free(in);
    }
}

static void test_split(srlm_comm *c) {
    int half = g_size / 2, color = g_rank < half;
    srlm_comm *h = NULL;
    CHECK_OK(srlm_comm_split(c, color, -g_rank, &h)); /* key reverses the order */
    CHECK(h != NULL);
    if (h) {
        int lo = color ? 0 : half, hi = color ? half : g_size;
        CHECK(srlm_comm_size(h) == hi - lo);
        CHECK_MSG(srlm_comm_rank(h) == hi - 1 - g_rank, "split rank %d", srlm_comm_rank(h));
        int32_t v = g_rank + 1, want = 0;
        for (int r = lo; r < hi; r++) want += r + 1;
        CHECK_OK(srlm_comm_allreduce(h, &v, 1, SRLM_COMM_I32, SRLM_REDUCE_SUM));
        CHECK_MSG(v == want, "sum over half: %d, want %d", v, want);
        CHECK_OK(srlm_comm_barrier(h));
    }
    srlm_comm_free(h);

    /* color < 0: not a member */
    srlm_comm *odd = NULL;
    CHECK_OK(srlm_comm_split(c, g_rank % 2 ? 5 : -1, 0, &odd));
    CHECK((odd != NULL) == (g_rank % 2 == 1));
    if (odd) CHECK(srlm_comm_size(odd) == g_size / 2 && srlm_comm_rank(odd) == g_rank / 2);
    srlm_comm_free(odd);
}

static void test_errors(srlm_comm *c) {
    /* argument errors: identical on every rank, nobody waits */
    float f = 1;
    CHECK(srlm_comm_broadcast(c, &f, 4, g_size) == SRLM_BAD_INPUT);
    CHECK(strstr(srlm_last_error(), "is not a rank of this") != NULL);
    CHECK(srlm_comm_send(c, &f, 4, g_rank, 0) == SRLM_BAD_INPUT);
    CHECK(srlm_comm_send(c, &f, 4, (g_rank + 1) % g_size, SRLM_COMM_TAG_MAX + 1) == SRLM_BAD_INPUT);
    CHECK(srlm_comm_allreduce(c, &f, 1, (srlm_comm_dtype)99, SRLM_REDUCE_SUM) == SRLM_BAD_INPUT);

    /* MPI errors come back as statuses: truncation (MPI) and a short message (ours) */
    if (g_rank < 2) {
        char buf[16] = "0123456789abcde";
        if (g_rank == 0) {
            CHECK_OK(srlm_comm_send(c, buf, 16, 1, 3));
            CHECK_OK(srlm_comm_send(c, buf, 8, 1, 4));
        } else {
            CHECK(srlm_comm_recv(c, buf, 8, 0, 3) == SRLM_FAILED);
            CHECK_MSG(strstr(srlm_last_error(), "MPI_Recv failed") && strstr(srlm_last_error(), "recv of 8 bytes"),
                      "%s", srlm_last_error());
            CHECK(srlm_comm_recv(c, buf, 16, 0, 4) == SRLM_FAILED);
            CHECK_MSG(strstr(srlm_last_error(), "expected 16 bytes, got 8"), "%s", srlm_last_error());
        }
    }
    CHECK_OK(srlm_comm_barrier(c));
}

static void test_null_comm(void) {
    float v[3] = {1.5f, -2, 3}, w[3] = {0};
    CHECK(srlm_comm_rank(NULL) == 0 && srlm_comm_size(NULL) == 1);
    CHECK_OK(srlm_comm_allreduce_f32(NULL, v, 3, SRLM_REDUCE_SUM));
    CHECK(v[0] == 1.5f && v[1] == -2 && v[2] == 3);
    CHECK_OK(srlm_comm_reduce_scatter_f32(NULL, v, w, 3));
    CHECK(memcmp(v, w, sizeof v) == 0);
    memset(w, 0, sizeof w);
    CHECK_OK(srlm_comm_allgather_f32(NULL, v, w, 3));
    CHECK(memcmp(v, w, sizeof v) == 0);
    CHECK_OK(srlm_comm_allgather_f32(NULL, w, w, 3));
    size_t cnt = 12;
    memset(w, 0, sizeof w);
    CHECK_OK(srlm_comm_gatherv_bytes(NULL, v, 12, w, &cnt, 0));
    CHECK(memcmp(v, w, sizeof v) == 0);
    CHECK(srlm_comm_gatherv_bytes(NULL, v, 8, w, &cnt, 0) == SRLM_BAD_INPUT);
    CHECK(srlm_comm_gatherv_bytes(NULL, v, 12, w, &cnt, 1) == SRLM_BAD_INPUT);
    CHECK_OK(srlm_comm_broadcast(NULL, v, 12, 0));
    CHECK(srlm_comm_broadcast(NULL, v, 12, 1) == SRLM_BAD_INPUT);
    CHECK_OK(srlm_comm_barrier(NULL));
    CHECK(srlm_comm_send(NULL, v, 12, 0, 0) == SRLM_BAD_INPUT);
    CHECK(srlm_comm_recv(NULL, v, 12, 0, 0) == SRLM_BAD_INPUT);
    srlm_comm *s = (srlm_comm *)&s;
    CHECK_OK(srlm_comm_split(NULL, 1, 0, &s));
    CHECK(s == NULL);
    srlm_comm_free(NULL);
    CHECK(srlm_comm_mpi_handle(NULL) == MPI_COMM_NULL);
}

int main(int argc, char **argv) {
    CHECK_OK(srlm_dist_init(&argc, &argv));
    CHECK(srlm_dist_initialized());
    MPI_Comm dup;
    MPI_Comm_dup(MPI_COMM_WORLD, &dup);
    srlm_comm *c = NULL;
    CHECK_OK(srlm_comm_from_mpi(dup, 1, &c));
    g_rank = srlm_comm_rank(c);
    g_size = srlm_comm_size(c);
    if (g_size < 4 || g_size % 2) {
        srlm_comm_free(c);
        srlm_dist_finalize();
        TEST_SKIP("needs an even number of ranks >= 4, got %d", g_size);
    }
    test_null_comm();
    const size_t limits[] = {0, 333}; /* MPI's INT_MAX, then tiny: chunked */
    for (int li = 0; li < 2; li++) {
        srlm_comm_mpi_set_max_count(limits[li]);
        test_allreduce(c);
        test_reduce_scatter_allgather(c);
        test_gatherv(c);
        test_broadcast(c);
        test_send_recv_ring(c);
        test_split(c);
        CHECK_OK(srlm_comm_barrier(c));
    }
    srlm_comm_mpi_set_max_count(0);
    test_errors(c);
    srlm_comm_free(c);
    srlm_dist_finalize();
    TEST_DONE();
}
