/* Collectives behind one interface.
 *
 * A communicator is a vtable plus state: the MPI implementation (comm_mpi.c)
 * serves host buffers (CPU backend); the NCCL one (comm_nccl.c, CUDA builds)
 * serves device buffers and enqueues on a CUDA stream. Callers never see which.
 *
 * A NULL communicator means "this rank alone": rank 0, size 1, and every
 * collective is a no-op or a local copy (memcpy, so host buffers only). That is
 * how tp = 1 / dp = 1 runs look to the model and trainer code.
 *
 * Errors: every call returns a status; a failed MPI/NCCL call gives SRLM_FAILED
 * with the call, the library's error string and what was being done; bad
 * arguments (root out of range, mismatched counts) give SRLM_BAD_INPUT.
 * All ranks of a communicator must make the same collective calls in the same
 * order with the same counts, as in MPI. */
#ifndef SRLM_COMM_H
#define SRLM_COMM_H

#include <stddef.h>

#include "core/status.h"

typedef enum { SRLM_REDUCE_SUM, SRLM_REDUCE_MAX, SRLM_REDUCE_MIN } srlm_reduce_op;

/* BYTE reduces as unsigned 8-bit integers. BF16 (raw uint16 bits) is reduced in
 * fp32 and rounded back, per pairwise step (MPI: a custom op; NCCL: native). */
typedef enum {
    SRLM_COMM_F32,
    SRLM_COMM_F64,
    SRLM_COMM_I32,
    SRLM_COMM_I64,
    SRLM_COMM_BYTE,
    SRLM_COMM_BF16,
} srlm_comm_dtype;

size_t srlm_comm_dtype_size(srlm_comm_dtype t);

typedef struct srlm_comm srlm_comm;

/* Point-to-point tags must lie in [0, SRLM_COMM_TAG_MAX]; the tags above are
 * the library's own (chunked gatherv). NCCL ignores tags: order is stream order. */
#define SRLM_COMM_TAG_MAX 32000

int         srlm_comm_rank(const srlm_comm *c); /* 0 for NULL */
int         srlm_comm_size(const srlm_comm *c); /* 1 for NULL */

/* In place: buf (n elements of type t) becomes the reduction over all ranks. */
srlm_status srlm_comm_allreduce(srlm_comm *c, void *buf, size_t n, srlm_comm_dtype t, srlm_reduce_op op);
srlm_status srlm_comm_allreduce_f32(srlm_comm *c, float *buf, size_t n, srlm_reduce_op op);

/* Sum-reduce-scatter: send holds size * n_per_rank elements; rank r receives in
 * recv (n_per_rank) the sum over ranks of block r. send and recv must not overlap. */
srlm_status srlm_comm_reduce_scatter_f32(srlm_comm *c, const float *send, float *recv, size_t n_per_rank);

/* Allgather: recv (size * n_per_rank elements of t) = concatenation of every
 * rank's send (n_per_rank). send may be recv + rank * n_per_rank (in place).
 * Values are moved, never combined: BF16 is any 16-bit payload. */
srlm_status srlm_comm_allgather(srlm_comm *c, const void *send, void *recv, size_t n_per_rank, srlm_comm_dtype t);
srlm_status srlm_comm_allgather_f32(srlm_comm *c, const float *send, float *recv, size_t n_per_rank);

/* Variable-size gather of bytes to root (streaming checkpoint slices to rank 0).
 * recv_bytes[size] must be given, and equal, on every rank (it decides how the
 * transfer is split); send_bytes must equal recv_bytes[rank]. On root, recv
 * receives the concatenation in rank order (sum of recv_bytes); elsewhere recv
 * is unused and may be NULL. */
srlm_status srlm_comm_gatherv_bytes(srlm_comm *c, const void *send, size_t send_bytes, void *recv,
                                    const size_t *recv_bytes, int root);

srlm_status srlm_comm_broadcast(srlm_comm *c, void *buf, size_t bytes, int root);

/* Point-to-point; recv must get exactly `bytes` bytes. Blocking on MPI
 * communicators; on NCCL ones stream-ordered (queued on the device stream, the
 * tag unused), so two ranks that each send before they receive deadlock:
 * order the pair (lower rank sends first). */
srlm_status srlm_comm_send(srlm_comm *c, const void *buf, size_t bytes, int dest, int tag);
srlm_status srlm_comm_recv(srlm_comm *c, void *buf, size_t bytes, int src, int tag);

/* Non-blocking check for a waiting message with `tag` from any rank: *src = its
 * sender, or -1 when none. MPI communicators only (rank 0's work queue polls
 * with it between decode steps). A NULL communicator never has one. */
srlm_status srlm_comm_iprobe(srlm_comm *c, int tag, int *src);

srlm_status srlm_comm_barrier(srlm_comm *c);

/* Collective over parent (MPI communicators only): ranks with the same color
 * form a new communicator, ordered by (key, parent rank). color < 0: this rank
 * is not a member and *out = NULL. A NULL parent gives *out = NULL (alone). */
srlm_status srlm_comm_split(srlm_comm *parent, int color, int key, srlm_comm **out);

void        srlm_comm_free(srlm_comm *c); /* NULL is fine */

/* ---- for implementations only (comm_mpi.c, comm_nccl.c) ------------------
 * The front end (in comm_mpi.c) checks arguments, handles NULL communicators
 * and then calls these; they may assume valid roots/peers and n > 0 where the
 * comment says so. */
typedef struct {
    const char *name; /* "MPI", "NCCL": used in error messages */
    srlm_status (*allreduce)(srlm_comm *c, void *buf, size_t n, srlm_comm_dtype t, srlm_reduce_op op);
    srlm_status (*reduce_scatter_f32)(srlm_comm *c, const float *send, float *recv, size_t n_per_rank);
    srlm_status (*allgather)(srlm_comm *c, const void *send, void *recv, size_t n_per_rank, srlm_comm_dtype t);
    srlm_status (*gatherv_bytes)(srlm_comm *c, const void *send, size_t send_bytes, void *recv,
                                 const size_t *recv_bytes, int root);
    srlm_status (*broadcast)(srlm_comm *c, void *buf, size_t bytes, int root);
    srlm_status (*send)(srlm_comm *c, const void *buf, size_t bytes, int dest, int tag);
    srlm_status (*recv)(srlm_comm *c, void *buf, size_t bytes, int src, int tag);
    srlm_status (*barrier)(srlm_comm *c);
    srlm_status (*split)(srlm_comm *parent, int color, int key, srlm_comm **out); /* NULL: unsupported */
    void (*destroy)(srlm_comm *c); /* frees impl, not c */
} srlm_comm_ops;

struct srlm_comm {
    const srlm_comm_ops *ops;
    int                  rank, size;
    void                *impl;
};

const char *srlm_reduce_op_name(srlm_reduce_op op);
const char *srlm_comm_dtype_name(srlm_comm_dtype t);

#endif
