/* The srlm_comm front end (argument checks, NULL = this rank alone, dispatch
 * through the vtable) and its MPI implementation for host buffers.
 *
 * MPI counts are ints: every transfer larger than g_max_count elements is split
 * into chunks. Collectives whose blocks are strided when chunked (reduce-scatter,
 * allgather, gatherv) fall back to per-root reduce / broadcast / point-to-point
 * for those sizes only; below the limit each is one MPI call. */
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "dist/comm_mpi.h"

/* ======================================================================== */
/* front end                                                                */
/* ======================================================================== */

int srlm_comm_rank(const srlm_comm *c) { return c ? c->rank : 0; }
int srlm_comm_size(const srlm_comm *c) { return c ? c->size : 1; }

size_t srlm_comm_dtype_size(srlm_comm_dtype t) {
    switch (t) {
    case SRLM_COMM_F32: return 4;
    case SRLM_COMM_F64: return 8;
    case SRLM_COMM_I32: return 4;
    case SRLM_COMM_I64: return 8;
    case SRLM_COMM_BYTE: return 1;
    case SRLM_COMM_BF16: return 2;
    }
    return 0;
}

const char *srlm_comm_dtype_name(srlm_comm_dtype t) {
    switch (t) {
    case SRLM_COMM_F32: return "f32";
    case SRLM_COMM_F64: return "f64";
    case SRLM_COMM_I32: return "i32";
    case SRLM_COMM_I64: return "i64";
    case SRLM_COMM_BYTE: return "byte";
    case SRLM_COMM_BF16: return "bf16";
    }
    return "?";
}

const char *srlm_reduce_op_name(srlm_reduce_op op) {
    switch (op) {
    case SRLM_REDUCE_SUM: return "sum";
    case SRLM_REDUCE_MAX: return "max";
    case SRLM_REDUCE_MIN: return "min";
    }
    return "?";
}

static const char *backend_name(const srlm_comm *c) { return c ? c->ops->name : "single-rank"; }

static srlm_status check_rank_arg(const srlm_comm *c, const char *what, const char *role, int r) {
    if (r < 0 || r >= srlm_comm_size(c))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s %d is not a rank of this %d-rank %s communicator", what, role, r,
                        srlm_comm_size(c), backend_name(c));
    return SRLM_OK;
}

/* Elements of `elem` bytes times `mult` must fit a size_t byte count. */
static srlm_status check_count(const char *what, size_t n, size_t mult, size_t elem) {
    if (n && mult && n > SIZE_MAX / mult / elem)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %zu x %zu elements overflow the address space", what, mult, n);
    return SRLM_OK;
}

srlm_status srlm_comm_allreduce(srlm_comm *c, void *buf, size_t n, srlm_comm_dtype t, srlm_reduce_op op) {
    size_t es = srlm_comm_dtype_size(t);
    if (es == 0) return SRLM_ERR(SRLM_BAD_INPUT, "allreduce: unknown element type %d", (int)t);
    if (op != SRLM_REDUCE_SUM && op != SRLM_REDUCE_MAX && op != SRLM_REDUCE_MIN)
        return SRLM_ERR(SRLM_BAD_INPUT, "allreduce: unknown reduction %d", (int)op);
    if (n && !buf) return SRLM_ERR(SRLM_BAD_INPUT, "allreduce of %zu elements: NULL buffer", n);
    SRLM_CHECK(check_count("allreduce", n, 1, es));
    if (!c || c->size == 1 || n == 0) return SRLM_OK;
    return c->ops->allreduce(c, buf, n, t, op);
}

srlm_status srlm_comm_allreduce_f32(srlm_comm *c, float *buf, size_t n, srlm_reduce_op op) {
    return srlm_comm_allreduce(c, buf, n, SRLM_COMM_F32, op);
}

srlm_status srlm_comm_reduce_scatter_f32(srlm_comm *c, const float *send, float *recv, size_t n_per_rank) {
    if (n_per_rank == 0) return SRLM_OK;
    if (!send || !recv) return SRLM_ERR(SRLM_BAD_INPUT, "reduce-scatter of %zu floats per rank: NULL buffer", n_per_rank);
    SRLM_CHECK(check_count("reduce-scatter", n_per_rank, (size_t)srlm_comm_size(c), sizeof(float)));
    if (!c) {
        memcpy(recv, send, n_per_rank * sizeof(float));
        return SRLM_OK;
    }
    return c->ops->reduce_scatter_f32(c, send, recv, n_per_rank);
}

srlm_status srlm_comm_allgather(srlm_comm *c, const void *send, void *recv, size_t n_per_rank, srlm_comm_dtype t) {
    const size_t es = srlm_comm_dtype_size(t);
    if (es == 0) return SRLM_ERR(SRLM_BAD_INPUT, "allgather: unknown element type %d", (int)t);
    if (n_per_rank == 0) return SRLM_OK;
    if (!send || !recv)
        return SRLM_ERR(SRLM_BAD_INPUT, "allgather of %zu elements per rank: NULL buffer", n_per_rank);
    SRLM_CHECK(check_count("allgather", n_per_rank, (size_t)srlm_comm_size(c), es));
    if (!c) {
        if (send != recv) memmove(recv, send, n_per_rank * es);
        return SRLM_OK;
    }
    return c->ops->allgather(c, send, recv, n_per_rank, t);
}

srlm_status srlm_comm_allgather_f32(srlm_comm *c, const float *send, float *recv, size_t n_per_rank) {
    return srlm_comm_allgather(c, send, recv, n_per_rank, SRLM_COMM_F32);
}

srlm_status srlm_comm_gatherv_bytes(srlm_comm *c, const void *send, size_t send_bytes, void *recv,
                                    const size_t *recv_bytes, int root) {
    int rank = srlm_comm_rank(c), size = srlm_comm_size(c);
    SRLM_CHECK(check_rank_arg(c, "gatherv", "root", root));
    if (!recv_bytes) return SRLM_ERR(SRLM_BAD_INPUT, "gatherv: the per-rank byte counts are needed on every rank");
    if (send_bytes != recv_bytes[rank])
        return SRLM_ERR(SRLM_BAD_INPUT, "gatherv: rank %d sends %zu bytes but the counts say %zu", rank, send_bytes,
                        recv_bytes[rank]);
    size_t total = 0;
    for (int r = 0; r < size; r++) {
        if (recv_bytes[r] > SIZE_MAX - total) return SRLM_ERR(SRLM_BAD_INPUT, "gatherv: byte counts overflow");
        total += recv_bytes[r];
    }
    if (send_bytes && !send) return SRLM_ERR(SRLM_BAD_INPUT, "gatherv of %zu bytes: NULL send buffer", send_bytes);
    if (rank == root && total && !recv)
        return SRLM_ERR(SRLM_BAD_INPUT, "gatherv of %zu bytes: NULL receive buffer on the root", total);
    if (total == 0) return SRLM_OK;
    if (!c) {
        if (send_bytes && send != recv) memmove(recv, send, send_bytes);
        return SRLM_OK;
    }
    return c->ops->gatherv_bytes(c, send, send_bytes, recv, recv_bytes, root);
}

srlm_status srlm_comm_broadcast(srlm_comm *c, void *buf, size_t bytes, int root) {
    SRLM_CHECK(check_rank_arg(c, "broadcast", "root", root));
    if (bytes && !buf) return SRLM_ERR(SRLM_BAD_INPUT, "broadcast of %zu bytes: NULL buffer", bytes);
    if (!c || c->size == 1 || bytes == 0) return SRLM_OK;
    return c->ops->broadcast(c, buf, bytes, root);
}

static srlm_status check_p2p(const srlm_comm *c, const char *what, const char *role, int peer, int tag,
                             const void *buf, size_t bytes) {
    if (!c) return SRLM_ERR(SRLM_BAD_INPUT, "%s: no peer on a single-rank communicator (%s %d)", what, role, peer);
    SRLM_CHECK(check_rank_arg(c, what, role, peer));
    if (peer == c->rank) return SRLM_ERR(SRLM_BAD_INPUT, "%s: rank %d cannot be its own %s", what, peer, role);
    if (tag < 0 || tag > SRLM_COMM_TAG_MAX)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: tag %d outside 0..%d", what, tag, SRLM_COMM_TAG_MAX);
    if (bytes && !buf) return SRLM_ERR(SRLM_BAD_INPUT, "%s of %zu bytes: NULL buffer", what, bytes);
    return SRLM_OK;
}

srlm_status srlm_comm_send(srlm_comm *c, const void *buf, size_t bytes, int dest, int tag) {
    SRLM_CHECK(check_p2p(c, "send", "destination", dest, tag, buf, bytes));
    return c->ops->send(c, buf, bytes, dest, tag);
}

srlm_status srlm_comm_recv(srlm_comm *c, void *buf, size_t bytes, int src, int tag) {
    SRLM_CHECK(check_p2p(c, "recv", "source", src, tag, buf, bytes));
    return c->ops->recv(c, buf, bytes, src, tag);
}

srlm_status srlm_comm_iprobe(srlm_comm *c, int tag, int *src) {
    if (!src) return SRLM_ERR(SRLM_BAD_INPUT, "iprobe: NULL output");
    *src = -1;
    if (!c) return SRLM_OK;
    if (tag < 0 || tag > SRLM_COMM_TAG_MAX) return SRLM_ERR(SRLM_BAD_INPUT, "iprobe: tag %d outside 0 .. %d", tag, SRLM_COMM_TAG_MAX);
    MPI_Comm h = srlm_comm_mpi_handle(c);
    if (h == MPI_COMM_NULL) return SRLM_ERR(SRLM_BAD_INPUT, "iprobe: %s communicators cannot probe", c->ops->name);
    int flag = 0;
    MPI_Status status;
    MPI_TRY(MPI_Iprobe, (MPI_ANY_SOURCE, tag, h, &flag, &status), "polling for tag %d", tag);
    if (flag) *src = status.MPI_SOURCE;
    return SRLM_OK;
}

srlm_status srlm_comm_barrier(srlm_comm *c) { return c ? c->ops->barrier(c) : SRLM_OK; }

srlm_status srlm_comm_split(srlm_comm *parent, int color, int key, srlm_comm **out) {
    if (!out) return SRLM_ERR(SRLM_BAD_INPUT, "split: NULL output");
    *out = NULL;
    if (!parent) return SRLM_OK;
    if (!parent->ops->split)
        return SRLM_ERR(SRLM_BAD_INPUT, "split: %s communicators cannot be split; split the MPI one they were made from",
                        parent->ops->name);
    return parent->ops->split(parent, color, key, out);
}

void srlm_comm_free(srlm_comm *c) {
    if (!c) return;
    c->ops->destroy(c);
    free(c);
}

/* ======================================================================== */
/* MPI implementation                                                       */
/* ======================================================================== */

typedef struct {
    MPI_Comm comm;
    int      owned;
} mpi_impl;

/* Internal tag for chunked gatherv, above the user range. MPI guarantees tags up
 * to 32767. */
enum { TAG_GATHERV = SRLM_COMM_TAG_MAX + 1 };

static size_t g_max_count = INT_MAX;

void srlm_comm_mpi_set_max_count(size_t max_count) {
    g_max_count = max_count == 0 || max_count > INT_MAX ? (size_t)INT_MAX : max_count;
}

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

static MPI_Comm handle(const srlm_comm *c) { return ((const mpi_impl *)c->impl)->comm; }

srlm_status srlm_mpi_failed(const char *file, int line, const char *call, int rc, const char *fmt, ...) {
    char what[512], err[MPI_MAX_ERROR_STRING];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int len = 0;
    if (MPI_Error_string(rc, err, &len) != MPI_SUCCESS) snprintf(err, sizeof err, "MPI error code %d", rc);
    return srlm_error_at(file, line, SRLM_FAILED, "%s: %s failed: %s", what, call, err);
}

/* ---- reductions MPI lacks or gets wrong, as user ops:
 *  - bf16: MPI has no bf16 type; reduce uint16 bits in fp32 and round back
 *    (as NCCL does per step);
 *  - byte sum: Open MPI 4.1's AVX op component saturates 8/16-bit integer sums
 *    (open-mpi/ompi#8045, "wontfix"); srlm's byte sum wraps modulo 256 as C does. */

static void bf16_reduce(const uint16_t *in, uint16_t *inout, int len, srlm_reduce_op op) {
    for (int i = 0; i < len; i++) {
        float a = srlm_bf16_to_f32(in[i]), b = srlm_bf16_to_f32(inout[i]);
        float r = op == SRLM_REDUCE_SUM ? a + b : op == SRLM_REDUCE_MAX ? (a > b ? a : b) : (a < b ? a : b);
        inout[i] = srlm_f32_to_bf16(r);
    }
}
static void bf16_sum(void *in, void *inout, int *len, MPI_Datatype *t) { bf16_reduce(in, inout, *len, SRLM_REDUCE_SUM); }
static void bf16_max(void *in, void *inout, int *len, MPI_Datatype *t) { bf16_reduce(in, inout, *len, SRLM_REDUCE_MAX); }
static void bf16_min(void *in, void *inout, int *len, MPI_Datatype *t) { bf16_reduce(in, inout, *len, SRLM_REDUCE_MIN); }
static void byte_sum(void *in, void *inout, int *len, MPI_Datatype *t) {
    const uint8_t *a = in;
    uint8_t       *b = inout;
    for (int i = 0; i < *len; i++) b[i] = (uint8_t)(a[i] + b[i]);
}

enum { OP_BF16_SUM, OP_BF16_MAX, OP_BF16_MIN, OP_BYTE_SUM, N_USER_OPS };
static MPI_Op g_user_ops[N_USER_OPS];
static int    g_user_ops_ready;

/* Runs at the start of MPI_Finalize (attribute on MPI_COMM_SELF): free the ops. */
static int user_ops_release(MPI_Comm comm, int key, void *val, void *extra) {
    for (int i = 0; i < N_USER_OPS; i++) MPI_Op_free(&g_user_ops[i]);
    g_user_ops_ready = 0;
    return MPI_SUCCESS;
}

static srlm_status user_ops_create(void) {
    if (g_user_ops_ready) return SRLM_OK;
    MPI_User_function *fns[N_USER_OPS] = {bf16_sum, bf16_max, bf16_min, byte_sum};
    for (int i = 0; i < N_USER_OPS; i++)
        MPI_TRY(MPI_Op_create, (fns[i], 1, &g_user_ops[i]), "creating srlm's bf16 / byte reductions (%d)", i);
    int key;
    MPI_TRY(MPI_Comm_create_keyval, (MPI_COMM_NULL_COPY_FN, user_ops_release, &key, NULL),
            "registering the cleanup of srlm's reductions");
    MPI_TRY(MPI_Comm_set_attr, (MPI_COMM_SELF, key, NULL), "registering the cleanup of srlm's reductions");
    g_user_ops_ready = 1;
    return SRLM_OK;
}

static MPI_Datatype mpi_dtype(srlm_comm_dtype t) {
    switch (t) {
    case SRLM_COMM_F32: return MPI_FLOAT;
    case SRLM_COMM_F64: return MPI_DOUBLE;
    case SRLM_COMM_I32: return MPI_INT32_T;
    case SRLM_COMM_I64: return MPI_INT64_T;
    case SRLM_COMM_BYTE: return MPI_UINT8_T; /* MPI_BYTE admits no arithmetic */
    case SRLM_COMM_BF16: return MPI_UINT16_T;
    }
    return MPI_DATATYPE_NULL;
}

static srlm_status mpi_op(srlm_comm_dtype t, srlm_reduce_op op, MPI_Op *out) {
    if (t == SRLM_COMM_BF16 || (t == SRLM_COMM_BYTE && op == SRLM_REDUCE_SUM)) {
        SRLM_CHECK(user_ops_create());
        *out = t == SRLM_COMM_BYTE ? g_user_ops[OP_BYTE_SUM]
               : g_user_ops[op == SRLM_REDUCE_SUM ? OP_BF16_SUM : op == SRLM_REDUCE_MAX ? OP_BF16_MAX : OP_BF16_MIN];
        return SRLM_OK;
    }
    *out = op == SRLM_REDUCE_SUM ? MPI_SUM : op == SRLM_REDUCE_MAX ? MPI_MAX : MPI_MIN;
    return SRLM_OK;
}

static srlm_status mpi_allreduce(srlm_comm *c, void *buf, size_t n, srlm_comm_dtype t, srlm_reduce_op op) {
    MPI_Op mop;
    SRLM_CHECK(mpi_op(t, op, &mop));
    size_t es = srlm_comm_dtype_size(t);
    for (size_t off = 0; off < n; off += g_max_count) {
        size_t cnt = min_sz(n - off, g_max_count);
        MPI_TRY(MPI_Allreduce, (MPI_IN_PLACE, (char *)buf + off * es, (int)cnt, mpi_dtype(t), mop, handle(c)),
                "allreduce (%s) of %zu %s, elements %zu..%zu, on rank %d of %d", srlm_reduce_op_name(op), n,
                srlm_comm_dtype_name(t), off, off + cnt, c->rank, c->size);
    }
    return SRLM_OK;
}

static srlm_status mpi_reduce_scatter_f32(srlm_comm *c, const float *send, float *recv, size_t n) {
    if (n <= g_max_count) {
        MPI_TRY(MPI_Reduce_scatter_block, (send, recv, (int)n, MPI_FLOAT, MPI_SUM, handle(c)),
                "reduce-scatter of %zu floats per rank on rank %d of %d", n, c->rank, c->size);
        return SRLM_OK;
    }
    /* Chunked, block r's slice is strided in send: reduce each to its owner. */
    for (size_t off = 0; off < n; off += g_max_count) {
        size_t cnt = min_sz(n - off, g_max_count);
        for (int r = 0; r < c->size; r++)
            MPI_TRY(MPI_Reduce, (send + (size_t)r * n + off, r == c->rank ? recv + off : NULL, (int)cnt, MPI_FLOAT,
                                 MPI_SUM, r, handle(c)),
                    "reduce-scatter of %zu floats per rank (chunk %zu..%zu to rank %d) on rank %d of %d", n, off,
                    off + cnt, r, c->rank, c->size);
    }
    return SRLM_OK;
}

static srlm_status mpi_allgather(srlm_comm *c, const void *send, void *recv, size_t n, srlm_comm_dtype t) {
    const size_t es = srlm_comm_dtype_size(t);
    const MPI_Datatype dt = mpi_dtype(t);
    char *mine = (char *)recv + (size_t)c->rank * n * es;
    if (n <= g_max_count) {
        MPI_TRY(MPI_Allgather, (send == mine ? MPI_IN_PLACE : send, (int)n, dt, recv, (int)n, dt, handle(c)),
                "allgather of %zu elements per rank on rank %d of %d", n, c->rank, c->size);
        return SRLM_OK;
    }
    /* Chunked: each rank broadcasts its own block in slices. */
    if (send != mine) memmove(mine, send, n * es);
    for (int r = 0; r < c->size; r++)
        for (size_t off = 0; off < n; off += g_max_count) {
            size_t cnt = min_sz(n - off, g_max_count);
            MPI_TRY(MPI_Bcast, ((char *)recv + ((size_t)r * n + off) * es, (int)cnt, dt, r, handle(c)),
                    "allgather of %zu elements per rank (chunk %zu..%zu from rank %d) on rank %d of %d", n, off,
                    off + cnt, r, c->rank, c->size);
        }
    return SRLM_OK;
}

static srlm_status gatherv_chunked(srlm_comm *c, const void *send, size_t send_bytes, void *recv,
                                   const size_t *recv_bytes, int root) {
    if (c->rank != root) {
        for (size_t off = 0; off < send_bytes; off += g_max_count) {
            size_t cnt = min_sz(send_bytes - off, g_max_count);
            MPI_TRY(MPI_Send, ((const char *)send + off, (int)cnt, MPI_BYTE, root, TAG_GATHERV, handle(c)),
                    "gatherv: sending bytes %zu..%zu of %zu from rank %d to root %d", off, off + cnt, send_bytes,
                    c->rank, root);
        }
        return SRLM_OK;
    }
    size_t displ = 0;
    for (int r = 0; r < c->size; r++) {
        char *dst = (char *)recv + displ;
        if (r == root) {
            if (send_bytes && dst != send) memmove(dst, send, send_bytes);
        } else {
            for (size_t off = 0; off < recv_bytes[r]; off += g_max_count) {
                size_t     cnt = min_sz(recv_bytes[r] - off, g_max_count);
                MPI_Status status;
                int        got = -1;
                MPI_TRY(MPI_Recv, (dst + off, (int)cnt, MPI_BYTE, r, TAG_GATHERV, handle(c), &status),
                        "gatherv: root %d receiving bytes %zu..%zu of %zu from rank %d", root, off, off + cnt,
                        recv_bytes[r], r);
                MPI_TRY(MPI_Get_count, (&status, MPI_BYTE, &got), "gatherv: counting bytes from rank %d", r);
                if ((size_t)got != cnt)
                    return SRLM_ERR(SRLM_FAILED, "gatherv: root %d expected %zu bytes from rank %d, got %d", root,
                                    cnt, r, got);
            }
        }
        displ += recv_bytes[r];
    }
    return SRLM_OK;
}

static srlm_status mpi_gatherv_bytes(srlm_comm *c, const void *send, size_t send_bytes, void *recv,
                                     const size_t *recv_bytes, int root) {
    size_t total = 0;
    for (int r = 0; r < c->size; r++) total += recv_bytes[r];
    /* Displacements are ints too: beyond the limit, point-to-point in slices. */
    if (total > g_max_count) return gatherv_chunked(c, send, send_bytes, recv, recv_bytes, root);

    srlm_status st = SRLM_OK;
    int        *counts = NULL, *displs = NULL;
    const void *sbuf = send;
    if (c->rank == root) {
        counts = malloc((size_t)c->size * sizeof *counts);
        displs = malloc((size_t)c->size * sizeof *displs);
        if (!counts || !displs) {
            st = SRLM_ERR(SRLM_FAILED, "gatherv: out of memory for %d counts", c->size);
            goto done;
        }
        int d = 0;
        for (int r = 0; r < c->size; r++) {
            counts[r] = (int)recv_bytes[r];
            displs[r] = d;
            d += counts[r];
        }
        if (send == (char *)recv + displs[root]) sbuf = MPI_IN_PLACE;
    }
    MPI_TRY_GOTO(st, done, MPI_Gatherv,
                 (sbuf, (int)send_bytes, MPI_BYTE, recv, counts, displs, MPI_BYTE, root, handle(c)),
                 "gatherv of %zu bytes (%zu from rank %d) to root %d on a %d-rank communicator", total, send_bytes,
                 c->rank, root, c->size);
done:
    free(counts);
    free(displs);
    return st;
}

static srlm_status mpi_broadcast(srlm_comm *c, void *buf, size_t bytes, int root) {
    for (size_t off = 0; off < bytes; off += g_max_count) {
        size_t cnt = min_sz(bytes - off, g_max_count);
        MPI_TRY(MPI_Bcast, ((char *)buf + off, (int)cnt, MPI_BYTE, root, handle(c)),
                "broadcast of %zu bytes (bytes %zu..%zu) from root %d on rank %d of %d", bytes, off, off + cnt, root,
                c->rank, c->size);
    }
    return SRLM_OK;
}

/* Point-to-point: at least one message, so a 0-byte send still signals. */
static srlm_status mpi_send(srlm_comm *c, const void *buf, size_t bytes, int dest, int tag) {
    size_t off = 0;
    do {
        size_t cnt = min_sz(bytes - off, g_max_count);
        MPI_TRY(MPI_Send, ((const char *)buf + off, (int)cnt, MPI_BYTE, dest, tag, handle(c)),
                "send of %zu bytes (bytes %zu..%zu) from rank %d to rank %d, tag %d", bytes, off, off + cnt, c->rank,
                dest, tag);
        off += cnt;
    } while (off < bytes);
    return SRLM_OK;
}

static srlm_status mpi_recv(srlm_comm *c, void *buf, size_t bytes, int src, int tag) {
    size_t off = 0;
    do {
        size_t     cnt = min_sz(bytes - off, g_max_count);
        MPI_Status status;
        int        got = -1;
        MPI_TRY(MPI_Recv, ((char *)buf + off, (int)cnt, MPI_BYTE, src, tag, handle(c), &status),
                "recv of %zu bytes (bytes %zu..%zu) on rank %d from rank %d, tag %d", bytes, off, off + cnt, c->rank,
                src, tag);
        MPI_TRY(MPI_Get_count, (&status, MPI_BYTE, &got), "recv: counting bytes from rank %d", src);
        if ((size_t)got != cnt)
            return SRLM_ERR(SRLM_FAILED, "recv on rank %d from rank %d, tag %d: expected %zu bytes, got %d", c->rank,
                            src, tag, cnt, got);
        off += cnt;
    } while (off < bytes);
    return SRLM_OK;
}

static srlm_status mpi_barrier(srlm_comm *c) {
    MPI_TRY(MPI_Barrier, (handle(c)), "barrier on rank %d of %d", c->rank, c->size);
    return SRLM_OK;
}

static srlm_status mpi_split(srlm_comm *parent, int color, int key, srlm_comm **out) {
    MPI_Comm nc = MPI_COMM_NULL;
    MPI_TRY(MPI_Comm_split, (handle(parent), color < 0 ? MPI_UNDEFINED : color, key, &nc),
            "splitting a %d-rank communicator (rank %d: color %d, key %d)", parent->size, parent->rank, color, key);
    srlm_status st = srlm_comm_from_mpi(nc, 1, out);
    if (st != SRLM_OK && nc != MPI_COMM_NULL) MPI_Comm_free(&nc);
    return st;
}

static void mpi_destroy(srlm_comm *c) {
    mpi_impl *m = c->impl;
    int       finalized = 1;
    MPI_Finalized(&finalized);
    /* After MPI_Finalize the handle is gone with everything else. */
    if (m->owned && m->comm != MPI_COMM_NULL && !finalized) MPI_Comm_free(&m->comm);
    free(m);
}

static const srlm_comm_ops MPI_OPS = {
    .name = "MPI",
    .allreduce = mpi_allreduce,
    .reduce_scatter_f32 = mpi_reduce_scatter_f32,
    .allgather = mpi_allgather,
    .gatherv_bytes = mpi_gatherv_bytes,
    .broadcast = mpi_broadcast,
    .send = mpi_send,
    .recv = mpi_recv,
    .barrier = mpi_barrier,
    .split = mpi_split,
    .destroy = mpi_destroy,
};

srlm_status srlm_comm_from_mpi(MPI_Comm comm, int take_ownership, srlm_comm **out) {
    if (!out) return SRLM_ERR(SRLM_BAD_INPUT, "srlm_comm_from_mpi: NULL output");
    *out = NULL;
    if (comm == MPI_COMM_NULL) return SRLM_OK;
    int up = 0, down = 0;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    if (!up || down) return SRLM_ERR(SRLM_FAILED, "srlm_comm_from_mpi: MPI is not running (call srlm_dist_init)");

    srlm_status st = SRLM_OK;
    srlm_comm  *c = calloc(1, sizeof *c);
    mpi_impl   *m = calloc(1, sizeof *m);
    if (!c || !m) {
        st = SRLM_ERR(SRLM_FAILED, "srlm_comm_from_mpi: out of memory");
        goto fail;
    }
    if (take_ownership)
        MPI_TRY_GOTO(st, fail, MPI_Comm_set_errhandler, (comm, MPI_ERRORS_RETURN),
                     "making MPI errors come back as codes");
    MPI_TRY_GOTO(st, fail, MPI_Comm_rank, (comm, &c->rank), "asking a communicator for this rank");
    MPI_TRY_GOTO(st, fail, MPI_Comm_size, (comm, &c->size), "asking a communicator for its size");
    m->comm = comm;
    m->owned = take_ownership;
    c->ops = &MPI_OPS;
    c->impl = m;
    *out = c;
    return SRLM_OK;
fail:
    free(m);
    free(c);
    return st;
}

MPI_Comm srlm_comm_mpi_handle(const srlm_comm *c) {
    return c && c->ops == &MPI_OPS ? handle(c) : MPI_COMM_NULL;
}
