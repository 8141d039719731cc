/* NCCL implementation of srlm_comm for device buffers (see comm_nccl.h).
 * Built only in CUDA builds with NCCL (part of srlmlib); not exercised by CI,
 * which has no GPU. The front end in comm_mpi.c has already checked the
 * arguments. libnccl is opened at the first communicator (core/dynlib.h), not
 * linked: the names below go through a table of its functions. */
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/dynlib.h"
#include "dist/comm_nccl.h"

/* ncclGetLastError (2.13) and ncclInProgress (2.14) are named below; the
 * library loaded at run time may be older (2.10 is checked there) */
#if !defined(NCCL_VERSION_CODE) || NCCL_VERSION_CODE < NCCL_VERSION(2, 14, 0)
#error "building srlm's NCCL communicator needs nccl.h from NCCL 2.14 or newer"
#endif

#ifndef SRLM_NCCL_LIB_DIR
#define SRLM_NCCL_LIB_DIR ""
#endif

static struct {
    __typeof__(&ncclGetUniqueId) get_unique_id;
    __typeof__(&ncclCommInitRank) comm_init_rank;
    __typeof__(&ncclCommAbort) comm_abort;
    __typeof__(&ncclCommGetAsyncError) comm_get_async_error;
    __typeof__(&ncclGetErrorString) get_error_string;
    __typeof__(&ncclGetLastError) get_last_error; /* NULL before NCCL 2.13 */
    __typeof__(&ncclGetVersion) get_version;
    __typeof__(&ncclAllReduce) all_reduce;
    __typeof__(&ncclReduceScatter) reduce_scatter;
    __typeof__(&ncclAllGather) all_gather;
    __typeof__(&ncclBroadcast) broadcast;
    __typeof__(&ncclSend) send;
    __typeof__(&ncclRecv) recv;
    __typeof__(&ncclGroupStart) group_start;
    __typeof__(&ncclGroupEnd) group_end;
} nccl_fn;

/* the call sites keep NCCL's names (and their error messages say them) */
#define ncclGetUniqueId (nccl_fn.get_unique_id)
#define ncclCommInitRank (nccl_fn.comm_init_rank)
#define ncclCommAbort (nccl_fn.comm_abort)
#define ncclCommGetAsyncError (nccl_fn.comm_get_async_error)
#define ncclGetErrorString (nccl_fn.get_error_string)
#define ncclGetLastError (nccl_fn.get_last_error)
#define ncclGetVersion (nccl_fn.get_version)
#define ncclAllReduce (nccl_fn.all_reduce)
#define ncclReduceScatter (nccl_fn.reduce_scatter)
#define ncclAllGather (nccl_fn.all_gather)
#define ncclBroadcast (nccl_fn.broadcast)
#define ncclSend (nccl_fn.send)
#define ncclRecv (nccl_fn.recv)
#define ncclGroupStart (nccl_fn.group_start)
#define ncclGroupEnd (nccl_fn.group_end)

srlm_status srlm_comm_nccl_load(void) {
    static int loaded;
    if (loaded) return SRLM_OK;
    char soname[64];
    snprintf(soname, sizeof soname, "libnccl.so.%d", NCCL_MAJOR);
    void *h;
    SRLM_CHECK(srlm_dynlib_open(soname, SRLM_NCCL_LIB_DIR, "collectives on device buffers (NCCL)", &h));
#define LOAD(field, name) SRLM_CHECK(srlm_dynlib_sym(h, soname, name, (void **)&nccl_fn.field))
    LOAD(get_unique_id, "ncclGetUniqueId");
    LOAD(comm_init_rank, "ncclCommInitRank");
    LOAD(comm_abort, "ncclCommAbort");
    LOAD(comm_get_async_error, "ncclCommGetAsyncError");
    LOAD(get_error_string, "ncclGetErrorString");
    LOAD(get_version, "ncclGetVersion");
    LOAD(all_reduce, "ncclAllReduce");
    LOAD(reduce_scatter, "ncclReduceScatter");
    LOAD(all_gather, "ncclAllGather");
    LOAD(broadcast, "ncclBroadcast");
    LOAD(send, "ncclSend");
    LOAD(recv, "ncclRecv");
    LOAD(group_start, "ncclGroupStart");
    LOAD(group_end, "ncclGroupEnd");
#undef LOAD
    nccl_fn.get_last_error = (__typeof__(nccl_fn.get_last_error))srlm_dynlib_sym_optional(h, "ncclGetLastError");
    /* bf16 collectives came with 2.10 (code major * 10000 + minor * 100 + patch since 2.9) */
    int version = 0;
    ncclResult_t rc = ncclGetVersion(&version);
    if (rc != ncclSuccess)
        return SRLM_ERR(SRLM_FAILED, "%s: ncclGetVersion failed: %s", soname, ncclGetErrorString(rc));
    if (version < 21000)
        return SRLM_ERR(SRLM_FAILED, "%s is NCCL version code %d; srlm needs NCCL 2.10 or newer (bf16 collectives): "
                        "put a newer NCCL's lib folder on LD_LIBRARY_PATH", soname, version);
    loaded = 1;
    return SRLM_OK;
}

typedef struct {
    ncclComm_t   comm;
    cudaStream_t stream;
    int          device;
    float       *scratch; /* one float on the device, for the barrier */
    int          world_rank, rank, size; /* for the monitor's message */
    int          aborted; /* by another's teardown that found the stream stuck */
} nccl_impl;

static nccl_impl *impl_of(const srlm_comm *c) { return c->impl; }

/* ---- the asynchronous-error monitor ----
 * A dead peer or a network failure reaches NCCL as an asynchronous error of
 * the communicator (ncclCommGetAsyncError) while its kernels keep waiting: the
 * stream never drains, and the rank would sit in a stream wait until its
 * watchdog, with no word of why. So a thread polls every live communicator
 * once a second, as PyTorch's and XLA's NCCL watchdogs do. On an error it waits
 * MONITOR_GRACE_S first (a peer that failed by itself is then printing its own
 * message and calling MPI_Abort, which ends this rank too, and that message is
 * the one that matters), then writes which communicator and what NCCL reports
 * and ends the process with exit status 1, so mpirun ends the job. It may not
 * call MPI (the library runs MPI_THREAD_FUNNELED), and going on past a
 * collective that never completed would use results that never arrived.
 * Communicators are made and ended by the main thread only; the thread, once
 * started, idles with none left. */
enum { MONITOR_MAX = 64, MONITOR_GRACE_S = 10 };
static pthread_mutex_t g_mon_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t  g_mon_tick; /* never signalled: a monotonic one-second timer */
static nccl_impl      *g_live[MONITOR_MAX];
static int             g_n_live, g_mon_started;

static const char *async_cause(ncclResult_t e) {
    switch (e) {
    case ncclRemoteError: return "a peer process ended or the network between the ranks failed";
    case ncclSystemError: return "a system call failed (often the network: sockets, InfiniBand)";
    case ncclUnhandledCudaError: return "a CUDA call inside NCCL failed on this rank";
    default: return "NCCL failed on this rank";
    }
}

/* m is still a live communicator (compared by address only: it may have been
 * freed) and still reports an asynchronous error. Under g_mon_lock. */
static int monitor_still_failing(const nccl_impl *m) {
    for (int i = 0; i < g_n_live; i++) {
        if (g_live[i] != m) continue;
        ncclResult_t e = ncclSuccess;
        return ncclCommGetAsyncError(m->comm, &e) == ncclSuccess && e != ncclSuccess && e != ncclInProgress;
    }
    return 0;
}

static void *monitor(void *arg) {
    (void)arg;
    pthread_mutex_lock(&g_mon_lock);
    for (;;) {
        for (int i = 0; i < g_n_live; i++) {
            const nccl_impl *m = g_live[i];
            ncclResult_t     e = ncclSuccess;
            /* ncclInProgress: a non-blocking call still running, not a failure */
            if (ncclCommGetAsyncError(m->comm, &e) != ncclSuccess || e == ncclSuccess || e == ncclInProgress)
                continue;
            char        msg[1024];
            const char *last = ncclGetLastError ? ncclGetLastError(m->comm) : NULL;
            int n = m->world_rank >= 0 ? snprintf(msg, sizeof msg, "[rank %d] ", m->world_rank) : 0;
            snprintf(msg + n, sizeof msg - (size_t)n,
                     "srlm: NCCL reports %s on a %d-rank device communicator (this rank is %d of it)%s%s%s: %s; "
                     "ending this rank with exit status 1 (rerun the same command to resume)\n",
                     ncclGetErrorString(e), m->size, m->rank, last && *last ? " (" : "", last && *last ? last : "",
                     last && *last ? ")" : "", async_cause(e));
            pthread_mutex_unlock(&g_mon_lock);
            struct timespec grace = {MONITOR_GRACE_S, 0};
            nanosleep(&grace, NULL);
            pthread_mutex_lock(&g_mon_lock);
            /* ended meanwhile (a peer's teardown can surface here as a remote
             * error after this rank's last collective completed): nothing is
             * waiting on it, so the run goes on */
            if (!monitor_still_failing(m)) break;
            /* write(2) and _exit: the main thread may hold stdio or CUDA locks */
            ssize_t ignored = write(2, msg, strlen(msg));
            (void)ignored;
            _exit(SRLM_FAILED);
        }
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&g_mon_tick, &g_mon_lock, &until);
    }
    return NULL;
}

/* Before a communicator is made (its local set-up, whose failure every rank
 * learns): the thread running and room for one more. */
static srlm_status monitor_ready(void) {
    srlm_status st = SRLM_OK;
    pthread_mutex_lock(&g_mon_lock);
    if (g_n_live == MONITOR_MAX) {
        st = SRLM_ERR(SRLM_FAILED, "setting up NCCL: more than %d device communicators in one process", MONITOR_MAX);
    } else if (!g_mon_started) {
        pthread_condattr_t a;
        pthread_t          t;
        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        pthread_cond_init(&g_mon_tick, &a);
        pthread_condattr_destroy(&a);
        if (pthread_create(&t, NULL, monitor, NULL) != 0) {
            pthread_cond_destroy(&g_mon_tick);
            st = SRLM_ERR(SRLM_FAILED, "setting up NCCL: cannot start the thread that watches for its "
                          "asynchronous errors");
        } else {
            pthread_detach(t);
            g_mon_started = 1;
        }
    }
    pthread_mutex_unlock(&g_mon_lock);
    return st;
}

/* After ncclCommInitRank; monitor_ready made room (one creating thread). */
static void monitor_add(nccl_impl *m) {
    pthread_mutex_lock(&g_mon_lock);
    g_live[g_n_live++] = m;
    pthread_mutex_unlock(&g_mon_lock);
}

/* A teardown found the device stream stuck (a kernel of one of the live
 * communicators waits for a peer that will not come): every live
 * communicator is aborted at once, which lets that kernel end; the later
 * teardowns neither wait again nor free device memory (cudaFree waits for the
 * whole device). Under no lock: the main thread's. */
static int g_stuck;

static void abort_all_live(void) {
    pthread_mutex_lock(&g_mon_lock);
    for (int i = 0; i < g_n_live; i++) {
        ncclCommAbort(g_live[i]->comm);
        g_live[i]->aborted = 1;
    }
    g_n_live = 0;
    pthread_mutex_unlock(&g_mon_lock);
}

/* Before the communicator is aborted. */
static void monitor_remove(const nccl_impl *m) {
    pthread_mutex_lock(&g_mon_lock);
    for (int i = 0; i < g_n_live; i++)
        if (g_live[i] == m) {
            g_live[i] = g_live[--g_n_live];
            break;
        }
    pthread_mutex_unlock(&g_mon_lock);
}

/* "<what>: <call> failed: <library's error string>[ (NCCL's last error)]". */
__attribute__((format(printf, 5, 6))) static srlm_status lib_failed(const char *file, int line, const char *call,
                                                                    const char *err, const char *fmt, ...) {
    char    what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return srlm_error_at(file, line, SRLM_FAILED, "%s: %s failed: %s", what, call, err);
}

static const char *nccl_error(ncclResult_t rc, ncclComm_t comm, char *buf, size_t cap) {
    /* NCCL's last error may describe an earlier call: it is only added in brackets */
    const char *last = ncclGetLastError ? ncclGetLastError(comm) : NULL;
    snprintf(buf, cap, "%s%s%s%s", ncclGetErrorString(rc), last && *last ? " (" : "", last ? last : "",
             last && *last ? ")" : "");
    return buf;
}

#define NCCL_TRY_GOTO(st, label, comm, fn, args, ...)                                                  \
    do {                                                                                               \
        ncclResult_t nccl_rc_ = fn args;                                                               \
        if (nccl_rc_ != ncclSuccess) {                                                                 \
            char nccl_buf_[768];                                                                       \
            (st) = lib_failed(__FILE__, __LINE__, #fn, nccl_error(nccl_rc_, (comm), nccl_buf_, sizeof nccl_buf_), \
                              __VA_ARGS__);                                                            \
            goto label;                                                                                \
        }                                                                                              \
    } while (0)

#define CUDA_TRY_GOTO(st, label, fn, args, ...)                                                        \
    do {                                                                                               \
        cudaError_t cuda_rc_ = fn args;                                                                \
        if (cuda_rc_ != cudaSuccess) {                                                                 \
            (st) = lib_failed(__FILE__, __LINE__, #fn, cudaGetErrorString(cuda_rc_), __VA_ARGS__);     \
            goto label;                                                                                \
        }                                                                                              \
    } while (0)

static ncclDataType_t nccl_dtype(srlm_comm_dtype t) {
    switch (t) {
    case SRLM_COMM_F32: return ncclFloat32;
    case SRLM_COMM_F64: return ncclFloat64;
    case SRLM_COMM_I32: return ncclInt32;
    case SRLM_COMM_I64: return ncclInt64;
    case SRLM_COMM_BYTE: return ncclUint8;
    case SRLM_COMM_BF16: return ncclBfloat16;
    }
    return ncclUint8;
}

static ncclRedOp_t nccl_op(srlm_reduce_op op) {
    return op == SRLM_REDUCE_SUM ? ncclSum : op == SRLM_REDUCE_MAX ? ncclMax : ncclMin;
}

static srlm_status nc_allreduce(srlm_comm *c, void *buf, size_t n, srlm_comm_dtype t, srlm_reduce_op op) {
    srlm_status st = SRLM_OK;
    nccl_impl  *m = impl_of(c);
    NCCL_TRY_GOTO(st, done, m->comm, ncclAllReduce, (buf, buf, n, nccl_dtype(t), nccl_op(op), m->comm, m->stream),
                  "allreduce (%s) of %zu %s on rank %d of %d", srlm_reduce_op_name(op), n, srlm_comm_dtype_name(t),
                  c->rank, c->size);
done:
    return st;
}

static srlm_status nc_reduce_scatter_f32(srlm_comm *c, const float *send, float *recv, size_t n) {
    srlm_status st = SRLM_OK;
    nccl_impl  *m = impl_of(c);
    NCCL_TRY_GOTO(st, done, m->comm, ncclReduceScatter, (send, recv, n, ncclFloat32, ncclSum, m->comm, m->stream),
                  "reduce-scatter of %zu floats per rank on rank %d of %d", n, c->rank, c->size);
done:
    return st;
}

static srlm_status nc_allgather(srlm_comm *c, const void *send, void *recv, size_t n, srlm_comm_dtype t) {
    srlm_status st = SRLM_OK;
    nccl_impl  *m = impl_of(c);
    /* NCCL treats send == recv + rank * n as in place. */
    NCCL_TRY_GOTO(st, done, m->comm, ncclAllGather, (send, recv, n, nccl_dtype(t), m->comm, m->stream),
                  "allgather of %zu elements per rank on rank %d of %d", n, c->rank, c->size);
done:
    return st;
}

static srlm_status nc_gatherv_bytes(srlm_comm *c, const void *send, size_t send_bytes, void *recv,
                                    const size_t *recv_bytes, int root) {
    srlm_status st = SRLM_OK, end_st = SRLM_OK;
    nccl_impl  *m = impl_of(c);
    if (c->rank != root) {
        if (send_bytes)
            NCCL_TRY_GOTO(st, done, m->comm, ncclSend, (send, send_bytes, ncclUint8, root, m->comm, m->stream),
                          "gatherv: sending %zu bytes from rank %d to root %d", send_bytes, c->rank, root);
        return SRLM_OK;
    }
    size_t displ = 0;
    NCCL_TRY_GOTO(st, done, m->comm, ncclGroupStart, (), "gatherv to root %d", root);
    for (int r = 0; r < c->size; r++) {
        char *dst = (char *)recv + displ;
        displ += recv_bytes[r];
        if (recv_bytes[r] == 0) continue; /* both sides know: nothing posted */
        if (r == root) {
            if (dst != send)
                CUDA_TRY_GOTO(st, end, cudaMemcpyAsync,
                              (dst, send, send_bytes, cudaMemcpyDeviceToDevice, m->stream),
                              "gatherv: root %d copying its own %zu bytes", root, send_bytes);
        } else {
            NCCL_TRY_GOTO(st, end, m->comm, ncclRecv, (dst, recv_bytes[r], ncclUint8, r, m->comm, m->stream),
                          "gatherv: root %d receiving %zu bytes from rank %d", root, recv_bytes[r], r);
        }
    }
end:
    /* Always close the group, also after a failure inside it. */
    NCCL_TRY_GOTO(end_st, done_end, m->comm, ncclGroupEnd, (), "gatherv to root %d", root);
done_end:
    if (st == SRLM_OK) st = end_st;
done:
    return st;
}

static srlm_status nc_broadcast(srlm_comm *c, void *buf, size_t bytes, int root) {
    srlm_status st = SRLM_OK;
    nccl_impl  *m = impl_of(c);
    NCCL_TRY_GOTO(st, done, m->comm, ncclBroadcast, (buf, buf, bytes, ncclUint8, root, m->comm, m->stream),
                  "broadcast of %zu bytes from root %d on rank %d of %d", bytes, root, c->rank, c->size);
done:
    return st;
}

static srlm_status nc_send(srlm_comm *c, const void *buf, size_t bytes, int dest, int tag) {
    srlm_status st = SRLM_OK;
    nccl_impl  *m = impl_of(c);
    if (bytes == 0) return SRLM_OK; /* NCCL has no empty messages; the receiver skips too */
    NCCL_TRY_GOTO(st, done, m->comm, ncclSend, (buf, bytes, ncclUint8, dest, m->comm, m->stream),
                  "send of %zu bytes from rank %d to rank %d", bytes, c->rank, dest);
done:
    return st;
}

static srlm_status nc_recv(srlm_comm *c, void *buf, size_t bytes, int src, int tag) {
    srlm_status st = SRLM_OK;
    nccl_impl  *m = impl_of(c);
    if (bytes == 0) return SRLM_OK;
    NCCL_TRY_GOTO(st, done, m->comm, ncclRecv, (buf, bytes, ncclUint8, src, m->comm, m->stream),
                  "recv of %zu bytes on rank %d from rank %d", bytes, c->rank, src);
done:
    return st;
}

static srlm_status nc_barrier(srlm_comm *c) {
    srlm_status st = SRLM_OK;
    nccl_impl  *m = impl_of(c);
    NCCL_TRY_GOTO(st, done, m->comm, ncclAllReduce, (m->scratch, m->scratch, 1, ncclFloat32, ncclSum, m->comm, m->stream),
                  "barrier on rank %d of %d", c->rank, c->size);
    CUDA_TRY_GOTO(st, done, cudaStreamSynchronize, (m->stream), "barrier on rank %d of %d", c->rank, c->size);
done:
    return st;
}

/* Teardown is local to this rank. ncclCommFinalize (and so ncclCommDestroy
 * without it) waits until every rank of the communicator has finalized too:
 * a rank that fails and cleans up before main's MPI_Abort would wait there for
 * peers that wait for it elsewhere (a barrier, another communicator), and the
 * job would hang until its watchdog. So this rank's own enqueued work gets up
 * to 10 s to finish, then ncclCommAbort frees the communicator without
 * waiting for the others. On a clean exit the work has finished, and nothing
 * is in flight that a peer needs: every rank used its last collective's
 * result (its kernels received all they wait for) before the run's last
 * barrier. Where the 10 s pass with the stream still busy, every live
 * communicator is aborted (abort_all_live): the stuck kernel may be
 * another's, which this one's abort would not end, and a cudaFree would then
 * wait for it forever, before main could report the error. The 10 s are
 * waited once per process, not once per communicator. Launchers end the other
 * ranks when this one exits with an error (mpirun does; under srun, give
 * --kill-on-bad-exit). */
static void nc_destroy(srlm_comm *c) {
    nccl_impl *m = impl_of(c);
    if (!m) return;
    if (m->comm) {
        monitor_remove(m);
        int drained = 0;
        for (int i = 0; i < 1000 && !g_stuck; i++) {
            if (cudaStreamQuery(m->stream) != cudaErrorNotReady) {
                drained = 1;
                break;
            }
            struct timespec ten_ms = {0, 10 * 1000 * 1000};
            nanosleep(&ten_ms, NULL);
        }
        cudaGetLastError(); /* a stream error was reported by the call that met it */
        if (!drained && !g_stuck) {
            g_stuck = 1;
            abort_all_live();
        }
        if (!m->aborted) ncclCommAbort(m->comm);
    }
    if (m->scratch && !g_stuck) cudaFree(m->scratch);
    free(m);
}

static const srlm_comm_ops NCCL_OPS = {
    .name = "NCCL",
    .allreduce = nc_allreduce,
    .reduce_scatter_f32 = nc_reduce_scatter_f32,
    .allgather = nc_allgather,
    .gatherv_bytes = nc_gatherv_bytes,
    .broadcast = nc_broadcast,
    .send = nc_send,
    .recv = nc_recv,
    .barrier = nc_barrier,
    .split = NULL,
    .destroy = nc_destroy,
};

srlm_status srlm_comm_nccl_new(srlm_comm *mpi_comm, int device, void *cuda_stream, srlm_comm **out) {
    if (!out) return SRLM_ERR(SRLM_BAD_INPUT, "srlm_comm_nccl_new: NULL output");
    *out = NULL;
    srlm_status st = SRLM_OK;
    int         rank = srlm_comm_rank(mpi_comm), size = srlm_comm_size(mpi_comm);
    srlm_comm  *c = calloc(1, sizeof *c);
    nccl_impl  *m = calloc(1, sizeof *m);
    /* Local set-up first; then every rank learns whether all succeeded, so a
     * failure on one rank never leaves the others waiting in ncclCommInitRank. */
    struct {
        int          ok;
        ncclUniqueId id;
    } hello;
    memset(&hello, 0, sizeof hello);
    int32_t ok = 1;
    if (!c || !m) {
        st = SRLM_ERR(SRLM_FAILED, "setting up NCCL: out of memory");
        ok = 0;
    }
    if (ok && (st = srlm_comm_nccl_load()) != SRLM_OK) ok = 0;
    if (ok && (st = monitor_ready()) != SRLM_OK) ok = 0;
    if (ok) {
        CUDA_TRY_GOTO(st, local_done, cudaSetDevice, (device), "setting up NCCL on rank %d: selecting CUDA device %d",
                      rank, device);
        CUDA_TRY_GOTO(st, local_done, cudaMalloc, ((void **)&m->scratch, sizeof(float)),
                      "setting up NCCL on rank %d: barrier scratch on device %d", rank, device);
        CUDA_TRY_GOTO(st, local_done, cudaMemset, (m->scratch, 0, sizeof(float)),
                      "setting up NCCL on rank %d: barrier scratch on device %d", rank, device);
        if (rank == 0)
            NCCL_TRY_GOTO(st, local_done, NULL, ncclGetUniqueId, (&hello.id), "setting up NCCL: making the unique id");
    }
local_done:
    if (st != SRLM_OK) ok = 0;
    hello.ok = rank == 0 ? ok : 0;
    /* rank 0 always broadcasts (ok or not), then all agree on the outcome */
    srlm_status mst = srlm_comm_broadcast(mpi_comm, &hello, sizeof hello, 0);
    if (mst == SRLM_OK) {
        if (!hello.ok) ok = 0;
        mst = srlm_comm_allreduce(mpi_comm, &ok, 1, SRLM_COMM_I32, SRLM_REDUCE_MIN);
    }
    if (mst != SRLM_OK) {
        st = mst; /* MPI's message wins: the others see the same failure */
        goto fail;
    }
    if (!ok) {
        if (st == SRLM_OK)
            st = SRLM_ERR(SRLM_FAILED, "setting up NCCL on rank %d: another rank failed (see its message)", rank);
        goto fail;
    }
    m->device = device;
    m->stream = (cudaStream_t)cuda_stream;
    NCCL_TRY_GOTO(st, fail, NULL, ncclCommInitRank, (&m->comm, size, hello.id, rank),
                  "setting up NCCL: rank %d of %d joining on device %d", rank, size, device);
    int mpi_up = 0;
    MPI_Initialized(&mpi_up);
    m->world_rank = -1;
    if (mpi_up) MPI_Comm_rank(MPI_COMM_WORLD, &m->world_rank);
    m->rank = rank;
    m->size = size;
    monitor_add(m);
    c->ops = &NCCL_OPS;
    c->rank = rank;
    c->size = size;
    c->impl = m;
    *out = c;
    return SRLM_OK;
fail:
    if (m && m->scratch) cudaFree(m->scratch);
    free(m);
    free(c);
    return st;
}
