#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>

#include "dist/comm.h"

struct srlm_comm {
    MPI_Comm comm;
    int      rank, size;
};

int srlm_comm_rank(const srlm_comm *c) { return c ? c->rank : 0; }
int srlm_comm_size(const srlm_comm *c) { return c ? c->size : 1; }

srlm_status srlm_comm_allreduce_f32(srlm_comm *c, float *buf, size_t n, srlm_reduce_op op) {
    if (!c || c->size == 1 || n == 0) return SRLM_OK;
    if (n > (size_t)INT32_MAX) return SRLM_ERR(SRLM_FAILED, "allreduce of %zu floats: too many for one MPI call", n);
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, op == SRLM_REDUCE_SUM ? MPI_SUM : MPI_MAX,
                           c->comm);
    if (rc != MPI_SUCCESS) return SRLM_ERR(SRLM_FAILED, "MPI_Allreduce of %zu floats failed (code %d)", n, rc);
    return SRLM_OK;
}
