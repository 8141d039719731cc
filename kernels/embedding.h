/* Token embedding on the GPU, forward and backward. CPU twins: cpu_embedding and
 * cpu_embedding_backward in src/backend/cpu/ (ops table: embedding,
 * embedding_backward). */
#ifndef SRLM_KERNEL_EMBEDDING_H
#define SRLM_KERNEL_EMBEDDING_H

#include <stdint.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out row i = table row (ids[i] - vocab_start) when in this shard, else zeros.
 * ids: device array of n = out->rows. */
srlm_status srlm_cuda_embedding(srlm_view *out, const srlm_view *table, const int *ids, int n,
                                int64_t vocab_start, void *stream);

/* dtable row r += the dx rows i with ids[i] - vocab_start == r, added in
 * increasing i: deterministic, no atomics. The caller groups the rows by table
 * row on the host (it has the ids there): rows[] lists the dx row indices
 * grouped by table row, in increasing i within a group; group g covers
 * rows[start[g] .. start[g+1]) and updates table row table_row[g]. n_groups
 * groups; rows, start (n_groups + 1), table_row are device arrays. */
srlm_status srlm_cuda_embedding_backward(srlm_view *dtable, const srlm_view *dx, const int *rows,
                                         const int *start, const int *table_row, int n_groups,
                                         void *stream);

#ifdef __cplusplus
}
#endif

#endif
