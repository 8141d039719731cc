/* Token sampling on the GPU: temperature, top-k and top-p over rows of logits,
 * one uniform draw per row given by the caller, so the GPU picks the token the
 * CPU would. CPU twin: srlm_sample in src/generate/sampler.c (same rules: read
 * its header for the order of the warpers, tie rules and the inverse-CDF order). */
#ifndef SRLM_KERNEL_SAMPLING_H
#define SRLM_KERNEL_SAMPLING_H

#include "backend/backend.h"
#include "generate/sampler.h"

#ifdef __cplusplus
extern "C" {
#endif

/* For each row i of logits (F32 or BF16; rows x vocab, vocab = logits->cols):
 * token[i] and prob[i] (probability under the final distribution; may be NULL)
 * with draw u[i]. u, token, prob: device arrays of logits->rows. One block per
 * row: the kept set is found by a radix select on the scaled logits, never a
 * full sort of the vocabulary. A row with NaN or +inf, or no finite logit,
 * gets token -1 (the caller reports it). workspace:
 * srlm_cuda_sample_workspace(rows, vocab) bytes. */
size_t srlm_cuda_sample_workspace(int rows, int vocab);
srlm_status srlm_cuda_sample(const srlm_view *logits, const srlm_sampling *cfg, const float *u, int *token,
                             double *prob, void *workspace, void *stream);

#ifdef __cplusplus
}
#endif

#endif
