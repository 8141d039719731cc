/* Collectives behind one interface. A NULL communicator means "this rank alone":
 * every collective is then a no-op, which is how tp = 1 runs without MPI.
 * The MPI implementation serves host buffers (CPU backend); a NCCL one for
 * device buffers comes with the CUDA backend. */
#ifndef SRLM_COMM_H
#define SRLM_COMM_H

#include <stddef.h>

#include "core/status.h"

typedef enum { SRLM_REDUCE_SUM, SRLM_REDUCE_MAX } srlm_reduce_op;

typedef struct srlm_comm srlm_comm;

int         srlm_comm_rank(const srlm_comm *c);  /* 0 for NULL */
int         srlm_comm_size(const srlm_comm *c);  /* 1 for NULL */
srlm_status srlm_comm_allreduce_f32(srlm_comm *c, float *buf, size_t n, srlm_reduce_op op);

#endif
