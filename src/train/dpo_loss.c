/* DPO / IPO loss on sequence log-probs; see dpo_loss.h. The arithmetic follows
 * TRL's dpo_loss operation by operation (same differences in the same order) so
 * the double results agree with TRL's float64 ones to rounding. */
#include "train/dpo_loss.h"

#include <math.h>
#include <stddef.h>

/* torch's form: min(x, 0) - log1p(exp(-|x|)); exp never overflows and the
 * log1p keeps the tiny tail exact for large |x|. */
double srlm_log_sigmoid(double x) {
    return fmin(x, 0.0) - log1p(exp(-fabs(x)));
}

double srlm_sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x); /* x < 0: exp(x) can't overflow; 1/(1+exp(-x)) could */
    return e / (1.0 + e);
}

static srlm_status check_inputs(const srlm_dpo_params *p, int n, const double *logp_c,
                                const double *logp_r, const double *ref_c, const double *ref_r,
                                const int *n_tok_c, const int *n_tok_r,
                                const srlm_dpo_metrics *out) {
    if (!p || !logp_c || !logp_r || !ref_c || !ref_r || !out)
        return SRLM_ERR(SRLM_BAD_INPUT, "DPO loss: missing input array or output");
    if (n <= 0) return SRLM_ERR(SRLM_BAD_INPUT, "DPO loss: no pairs (n = %d)", n);
    if (p->kind != SRLM_DPO_KIND_SIGMOID && p->kind != SRLM_DPO_KIND_IPO)
        return SRLM_ERR(SRLM_BAD_INPUT, "DPO loss: unknown loss kind %d", (int)p->kind);
    if (!(isfinite(p->beta) && p->beta > 0))
        return SRLM_ERR(SRLM_BAD_INPUT, "DPO loss: beta must be > 0, got %g", p->beta);
    if (!(p->label_smoothing >= 0 && p->label_smoothing <= 0.5))
        return SRLM_ERR(SRLM_BAD_INPUT, "DPO loss: label_smoothing must be in [0, 0.5], got %g",
                        p->label_smoothing);
    if (p->kind == SRLM_DPO_KIND_IPO && (!n_tok_c || !n_tok_r))
        return SRLM_ERR(SRLM_BAD_INPUT, "DPO loss: ipo needs the response token counts");
    for (int i = 0; i < n; i++) {
        if (!isfinite(logp_c[i]) || !isfinite(logp_r[i]) || !isfinite(ref_c[i]) ||
            !isfinite(ref_r[i]))
            return SRLM_ERR(SRLM_BAD_INPUT,
                            "DPO loss: pair %d has a non-finite log-prob (policy chosen %g, "
                            "rejected %g; reference chosen %g, rejected %g)",
                            i, logp_c[i], logp_r[i], ref_c[i], ref_r[i]);
        if (p->kind == SRLM_DPO_KIND_IPO && (n_tok_c[i] < 1 || n_tok_r[i] < 1))
            return SRLM_ERR(SRLM_BAD_INPUT,
                            "DPO loss: pair %d has an empty response (chosen %d tokens, "
                            "rejected %d); ipo averages over tokens",
                            i, n_tok_c[i], n_tok_r[i]);
    }
    return SRLM_OK;
}

srlm_status srlm_dpo_compute(const srlm_dpo_params *p, int n, const double *logp_c,
                             const double *logp_r, const double *ref_c, const double *ref_r,
                             const int *n_tok_c, const int *n_tok_r, srlm_dpo_metrics *out,
                             double *dlogp_c, double *dlogp_r) {
    SRLM_CHECK(check_inputs(p, n, logp_c, logp_r, ref_c, ref_r, n_tok_c, n_tok_r, out));

    const double beta = p->beta, ls = p->label_smoothing;
    const int    ipo = p->kind == SRLM_DPO_KIND_IPO;
    double sum_loss = 0, sum_rc = 0, sum_rr = 0, sum_margin = 0;
    int    n_correct = 0;

    for (int i = 0; i < n; i++) {
        double pc = logp_c[i], pr = logp_r[i], rc = ref_c[i], rr = ref_r[i];
        double nc = 1, nr = 1; /* divisors of the log-probs: token counts for ipo */
        if (ipo) {
            /* TRL's concatenated_forward: all_logps / loss_mask.sum(-1), for the
             * policy and (through compute_ref_log_probs) the reference alike. */
            nc = n_tok_c[i];
            nr = n_tok_r[i];
            pc /= nc;
            pr /= nr;
            rc /= nc;
            rr /= nr;
        }
        double logits = (pc - pr) - (rc - rr);

        double loss, dlogits; /* loss_i and d(loss_i)/d(logits) */
        if (ipo) {
            double d = logits - 1 / (2 * beta);
            loss = d * d;
            dlogits = 2 * d;
        } else {
            double x = beta * logits;
            loss = -srlm_log_sigmoid(x) * (1 - ls) - srlm_log_sigmoid(-x) * ls;
            /* d/dx logsigmoid(x) = sigmoid(-x) */
            dlogits = beta * (-(1 - ls) * srlm_sigmoid(-x) + ls * srlm_sigmoid(x));
        }
        sum_loss += loss;

        /* TRL: rewards from what dpo_loss received (averaged for ipo). */
        double rew_c = beta * (pc - rc), rew_r = beta * (pr - rr);
        sum_rc += rew_c;
        sum_rr += rew_r;
        sum_margin += rew_c - rew_r;
        if (rew_c > rew_r) n_correct++;

        /* The loss is the mean over n; logits = pc - pr - ..., and pc = logp_c / nc. */
        if (dlogp_c) dlogp_c[i] = dlogits / n / nc;
        if (dlogp_r) dlogp_r[i] = -dlogits / n / nr;
    }

    out->loss = sum_loss / n;
    out->reward_chosen = sum_rc / n;
    out->reward_rejected = sum_rr / n;
    out->reward_margin = sum_margin / n;
    out->reward_accuracy = (double)n_correct / n;
    return SRLM_OK;
}
