/* The DPO / cross-entropy log-prob on the GPU, vocab-parallel: per row of this
 * rank's logits shard, the pieces that tp ranks combine with allreduces (max,
 * sum of exp, the target's logit), and the backward in place. CPU twins:
 * cpu_row_logsumexp_target, cpu_logprob_backward and cpu_row_argmax in
 * src/backend/cpu/ (ops table: row_logsumexp_target, logprob_backward,
 * row_argmax).
 *
 * logits: a (rows, cols) view, dtype SRLM_F32 or SRLM_BF16, fp32 math. Every
 * other array is DEVICE memory of length rows. One block per row, a fixed
 * reduction tree: deterministic. */
#ifndef SRLM_KERNEL_LOGPROB_H
#define SRLM_KERNEL_LOGPROB_H

#include <stdint.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One pass (one read of each logit): mx[i] = max_j logits[i][j] (NaN never
 * wins), se[i] = sum_j exp(logits[i][j] - mx[i]) with an online max (the sum
 * rescaled when the max grows), tl[i] = logits[i][targets[i] - vocab_start]
 * when that column is in this shard, else 0. A row of -inf (a shard of padding
 * only) gives mx -inf, se 0. At tp = 1, logp = tl - mx - log(se); tp shards
 * merge as the ops table's row_logsumexp_target says. */
srlm_status srlm_cuda_row_logsumexp_target(const srlm_view *logits, const int *targets,
                                           int64_t vocab_start, float *mx, float *se, float *tl,
                                           void *stream);

/* In place: logits[i][j] <- dlogp[i] * (onehot(target i) - exp(logits[i][j] - mx[i]) / se[i]);
 * rows with dlogp[i] == 0 become 0. mx, se are the global (tp-combined) values. */
srlm_status srlm_cuda_logprob_backward(srlm_view *logits, const float *mx, const float *se,
                                       const int *targets, int64_t vocab_start, const float *dlogp,
                                       void *stream);

/* idx[i] = argmax_j logits[i][j] (the first on ties), val[i] its value. */
srlm_status srlm_cuda_row_argmax(const srlm_view *logits, int *idx, float *val, void *stream);

#ifdef __cplusplus
}
#endif

#endif
