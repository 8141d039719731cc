/* MPI-specific constructors for srlm_comm (host buffers). Only code that deals
 * with MPI handles directly includes this; everything else uses dist/comm.h. */
#ifndef SRLM_COMM_MPI_H
#define SRLM_COMM_MPI_H

#include <mpi.h>

#include "dist/comm.h"

/* Wrap an MPI communicator. With take_ownership the handle is freed by
 * srlm_comm_free and gets MPI_ERRORS_RETURN (errors come back as statuses);
 * without, the caller keeps it and its error handler is left alone.
 * MPI_COMM_NULL gives *out = NULL. */
srlm_status srlm_comm_from_mpi(MPI_Comm comm, int take_ownership, srlm_comm **out);

/* The MPI handle of an MPI communicator; MPI_COMM_NULL for NULL or a NCCL one. */
MPI_Comm    srlm_comm_mpi_handle(const srlm_comm *c);

/* Tests only: the largest count passed to one MPI call (elements for typed
 * calls, bytes for byte calls); larger transfers are split into chunks. The
 * default, 0 restores it, is INT_MAX, MPI's int count limit. Not thread-safe:
 * set it on every rank between collectives. */
void        srlm_comm_mpi_set_max_count(size_t max_count);


/* "<what>: <call> failed: <MPI's error string>" as an SRLM_FAILED status. */
srlm_status srlm_mpi_failed(const char *file, int line, const char *call, int rc, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Call an MPI function; on failure return SRLM_FAILED with the context. */
#define MPI_TRY(fn, args, ...)                                                                       \
    do {                                                                                             \
        int mpi_rc_ = fn args;                                                                       \
        if (mpi_rc_ != MPI_SUCCESS) return srlm_mpi_failed(__FILE__, __LINE__, #fn, mpi_rc_, __VA_ARGS__); \
    } while (0)

/* Same, for functions that clean up through one label. */
#define MPI_TRY_GOTO(st, label, fn, args, ...)                                                       \
    do {                                                                                             \
        int mpi_rc_ = fn args;                                                                       \
        if (mpi_rc_ != MPI_SUCCESS) {                                                                \
            (st) = srlm_mpi_failed(__FILE__, __LINE__, #fn, mpi_rc_, __VA_ARGS__);                    \
            goto label;                                                                              \
        }                                                                                            \
    } while (0)

#endif
