/* NCCL communicators for device buffers (CUDA builds only: library srlmnccl).
 *
 * Same vtable as the MPI ones (dist/comm.h), but every buffer is device memory
 * and every call is enqueued on the communicator's CUDA stream and returns
 * before the data has moved: order work with events / stream syncs as usual.
 * Exceptions: srlm_comm_barrier synchronizes the stream; srlm_comm_split is
 * refused (split the MPI communicator, then make a NCCL one from each part).
 *   - dtypes map to NCCL's (BF16 -> ncclBfloat16, BYTE -> ncclUint8);
 *   - send/recv are ncclSend/ncclRecv: tags are ignored, order is stream order,
 *     and both sides must be enqueued before either completes;
 *   - gatherv is a group of send/recv (the root copies its own part on the stream);
 *   - a thread polls every live communicator's asynchronous error once a second
 *     and, 10 s after one, ends the process (exit status 1, with NCCL's words):
 *     a dead peer would otherwise hold the stream until the watchdog.
 *
 * Compiled with -Werror in the CUDA build, but not run in this repository's CI
 * (no GPU there): the first run on GPUs is its first test. */
#ifndef SRLM_COMM_NCCL_H
#define SRLM_COMM_NCCL_H

#include "dist/comm.h"

/* Collective over mpi_comm: rank 0 makes the ncclUniqueId and broadcasts it;
 * every rank then joins with its mpi_comm rank on CUDA device `device`, using
 * `cuda_stream` (a cudaStream_t; NULL = the legacy default stream). mpi_comm may
 * be NULL (a single-rank NCCL communicator). */
/* Opens libnccl (dlopen; srlm_comm_nccl_new does it first). Idempotent. */
srlm_status srlm_comm_nccl_load(void);

srlm_status srlm_comm_nccl_new(srlm_comm *mpi_comm, int device, void *cuda_stream, srlm_comm **out);

#endif
