/* Reward-model quality of a judge against human rankings (DESIGN.md, "Contracts /
 * Evaluation definitions"). Pure computation: no I/O, no model.
 *
 * Input: one srlm_ranked_group per held-out prompt. For each reply, human_rank
 * (0 = best, as in Open Assistant; equal ranks are allowed and mean a human tie)
 * and score = the mean of the reply's valid judge samples on the 0-5 scale, or NAN
 * when the reply has no valid judgement.
 *
 * Definitions. Where DESIGN.md leaves a choice open, the choice is srlm's and is
 * stated here (marked "choice"):
 *
 * - Dropping: a reply whose score is NAN is dropped from every measure and counted
 *   in replies_dropped. Every other score must be finite and in [0, 5], and every
 *   human_rank >= 0; anything else is SRLM_BAD_INPUT.
 * - Usable group (choice): a group that, after dropping, still has >= 2 replies
 *   with at least 2 different human ranks. Other groups (fewer than 2 valid
 *   replies, or all valid replies tied by the human, so nothing to compare) are
 *   counted in groups_too_small and take part in NO measure. `groups` counts the
 *   usable groups. Their replies' drops are still counted in replies_dropped.
 * - Score ties are exact equality of the doubles (means of integer samples are
 *   computed exactly enough: equal sample multisets give equal means).
 * - Compared pair: two valid replies of a usable group with different human ranks.
 *   `pairs` counts them over all usable groups (pooled, not averaged per group).
 * - pairwise_accuracy = (#compared pairs whose score order agrees with the human
 *   order + 0.5 * #compared pairs with tied scores) / pairs.
 * - tie_rate = #compared pairs with tied scores / pairs.
 * - five_best: "scored 5" (choice) means score == 5.0 exactly, i.e. every valid
 *   judge sample said 5 (the maximum of the scale; a mean of 4.67 is not a 5).
 *   The human's top reply (choice) is any reply whose human_rank equals the
 *   smallest human_rank among ALL the group's replies, dropped ones included, so
 *   dropping the human's favourite does not promote another reply to "top"; with a
 *   human tie at the top, every tied reply is top. five_best = #(valid replies of
 *   usable groups scored 5 that are top) / #(valid replies of usable groups scored
 *   5); NAN when no such reply scored 5.
 * - exact_match (choice for human ties): a usable group matches when, for EVERY
 *   pair of its valid replies, sign(score_i - score_j) == sign(rank_j - rank_i):
 *   the score order is the human order, strict where the human's is strict and
 *   tied where the human tied. exact_match = #matching groups / groups.
 * - spearman: per usable group, Pearson correlation of the average ranks (ties get
 *   the mean of the ranks they span, as scipy.stats.rankdata 'average') of the
 *   scores and of the NEGATED human ranks, i.e. scipy.stats.spearmanr(score,
 *   -human_rank). kendall_tau_b: per usable group, tau-b = (C - D) /
 *   sqrt((n0 - T_s) * (n0 - T_h)) with n0 = n(n-1)/2 pairs, C/D concordant/
 *   discordant pairs, T_s/T_h pairs tied in score/human rank, i.e.
 *   scipy.stats.kendalltau(score, -human_rank, variant='b'). Both are plain
 *   (unweighted) means over the usable groups whose scores are not all tied;
 *   usable groups whose valid scores are all equal have no defined correlation,
 *   are excluded from both means and counted in groups_all_tied (they still count
 *   in pairwise_accuracy, tie_rate and exact_match). NAN when no group is left.
 * - Any ratio with a zero denominator is NAN (e.g. pairwise_accuracy, tie_rate and
 *   exact_match when there is no usable group); the counts are always set.
 *
 * Checked by hand-computed cases and against scipy in tests/unit/test_eval_metrics.c
 * (fixtures: tests/fixtures/make_eval_fixtures.py). */
#ifndef SRLM_EVAL_METRICS_H
#define SRLM_EVAL_METRICS_H

#include "core/status.h"

typedef struct {
    int           n_replies;  /* >= 0 */
    const int    *human_rank; /* [n_replies]; 0 = best; ties allowed */
    const double *score;      /* [n_replies]; mean of valid judge samples in [0, 5];
                                 NAN = no valid judgement (reply dropped and counted) */
} srlm_ranked_group;

typedef struct {
    double pairwise_accuracy; /* share of compared pairs whose score order agrees; score tie = 1/2 */
    double five_best;         /* share of replies scored exactly 5 that are the human's top reply */
    double exact_match;       /* share of usable groups whose score order equals the human order */
    double spearman;          /* mean over usable, not-all-tied groups */
    double kendall_tau_b;     /* mean over usable, not-all-tied groups */
    double tie_rate;          /* share of compared pairs with tied scores */
    long   pairs;             /* compared pairs (different human ranks), all usable groups */
    long   groups;            /* usable groups */
    long   groups_all_tied;   /* usable groups excluded from spearman/kendall: all scores tied */
    long   replies_dropped;   /* replies with a NAN score, all groups */
    long   groups_too_small;  /* groups not usable (< 2 valid replies or one human rank) */
} srlm_rm_metrics;

/* Computes *out over g[0..n-1] (n >= 0; g may be NULL when n == 0). On bad input
 * (NULL arrays, negative counts or ranks, a score that is infinite or outside
 * [0, 5]) returns SRLM_BAD_INPUT naming the group and reply, and *out is zeroed
 * with NAN measures. SRLM_FAILED on allocation failure. */
srlm_status srlm_rm_metrics_compute(const srlm_ranked_group *g, int n, srlm_rm_metrics *out);

/* The per-group correlations on their own (used by the metric above and exposed for
 * tests): x and y of length n >= 2. Returns NAN when either is constant. */
double srlm_spearman_rho(const double *x, const double *y, int n);
double srlm_kendall_tau_b(const double *x, const double *y, int n);

#endif
