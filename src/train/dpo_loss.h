/* The DPO loss on sequence log-probs, exactly as TRL 0.12.2 computes it
 * (DPOTrainer.dpo_loss and the metrics of get_batch_loss_metrics), plus its
 * gradient with respect to the policy log-probs, which the trainer backpropagates
 * through the model. Checked against TRL in tests/unit/test_dpo_loss.c
 * (fixtures: tests/fixtures/make_dpo_fixtures.py).
 *
 * Inputs per pair i: logp_c/logp_r, the policy's log-probs of the chosen/rejected
 * response, and ref_c/ref_r, the stored reference log-probs; all are SUMS over
 * the response tokens (DESIGN: sequence log-prob = sum).
 *
 * sigmoid (DPO; cDPO with label smoothing ls):
 *   logits = (logp_c - logp_r) - (ref_c - ref_r)
 *   loss_i = -logsigmoid(beta*logits)*(1-ls) - logsigmoid(-beta*logits)*ls
 *   rewards: beta*(logp_c - ref_c), beta*(logp_r - ref_r)
 * ipo (TRL's): TRL divides the summed log-probs of policy AND reference by the
 *   response token count before dpo_loss, so with a_x = x / n_tok:
 *   logits = (a_logp_c - a_logp_r) - (a_ref_c - a_ref_r)
 *   loss_i = (logits - 1/(2*beta))^2         (label_smoothing is ignored, as in TRL)
 *   rewards: beta*(a_logp_c - a_ref_c), beta*(a_logp_r - a_ref_r) -- also on the
 *   length-averaged log-probs, because TRL computes them from what dpo_loss gets.
 *
 * Note: the function is not called srlm_dpo_loss because io/config.h already uses
 * that name for the config's enum type (a C identifier can't be both). */
#ifndef SRLM_DPO_LOSS_H
#define SRLM_DPO_LOSS_H

#include "core/status.h"

/* Same order as the config's srlm_dpo_loss (SRLM_DPO_SIGMOID, SRLM_DPO_IPO), so
 * the trainer may cast: (srlm_dpo_kind)cfg->train.dpo.loss. */
typedef enum { SRLM_DPO_KIND_SIGMOID, SRLM_DPO_KIND_IPO } srlm_dpo_kind;

typedef struct {
    srlm_dpo_kind kind;
    double        beta;            /* > 0 */
    double        label_smoothing; /* in [0, 0.5]; sigmoid only */
} srlm_dpo_params;

/* TRL's logged metrics (rewards/chosen, rewards/rejected, rewards/margins,
 * rewards/accuracies), all means over the n pairs. */
typedef struct {
    double loss;              /* mean of loss_i over the n pairs */
    double reward_chosen;     /* mean of the chosen rewards */
    double reward_rejected;   /* mean of the rejected rewards */
    double reward_margin;     /* mean of (chosen - rejected) rewards */
    double reward_accuracy;   /* share of pairs with chosen reward > rejected reward (ties: no) */
} srlm_dpo_metrics;

/* The loss and metrics of n >= 1 pairs (n <= 0 -> SRLM_BAD_INPUT: TRL's mean of
 * nothing would be NaN).
 *
 * n_tok_c/n_tok_r: response token counts, each >= 1; read by ipo only (may be NULL
 * for sigmoid).
 *
 * dlogp_c/dlogp_r (either may be NULL): d(out->loss)/d(logp_c[i]) and
 * d(out->loss)/d(logp_r[i]) -- gradients with respect to the SUMMED policy
 * log-probs (for ipo the 1/n_tok of the averaging is included), of the MEAN over
 * these n pairs. When a global batch of N pairs is split into micro-batches (and
 * data-parallel ranks) of n pairs each, the global loss is the mean over N, so the
 * trainer multiplies each micro-batch's gradients (and its loss, for logging) by
 * n/N before accumulating: sum over micro-batches of (n/N) * mean_n = mean_N.
 *
 * Non-finite inputs, token counts < 1 (ipo) and parameters out of range ->
 * SRLM_BAD_INPUT with a message naming the pair; nothing is written then. */
srlm_status srlm_dpo_compute(const srlm_dpo_params *p, int n, const double *logp_c,
                             const double *logp_r, const double *ref_c, const double *ref_r,
                             const int *n_tok_c, const int *n_tok_r, srlm_dpo_metrics *out,
                             double *dlogp_c, double *dlogp_r);

/* Numerically stable pieces, exposed for tests. */
double srlm_log_sigmoid(double x); /* log(1/(1+exp(-x))), finite for any finite x */
double srlm_sigmoid(double x);     /* 1/(1+exp(-x)) without overflow */

#endif
