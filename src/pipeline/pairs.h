/* Preference pairs from judged candidates (DESIGN.md, "The algorithm" step 4).
 *
 * A candidate's score is the mean of its valid judge samples; a candidate with
 * no valid judgement takes no part. The pair is the highest- against the
 * lowest-scored candidate of a prompt; equal scores (including fewer than two
 * scored candidates) give no pair, and so does a difference below min_gap (0:
 * any difference, as in the paper; a gap drops pairs that the judge's sampling
 * noise alone could have ordered). Among ties at the top the chosen one is the
 * lowest sample index, or with length control (as in Meta-Rewarding) the
 * shortest; among ties at the bottom the rejected one is the lowest index, or
 * with length control the longest. */
#ifndef SRLM_PAIRS_H
#define SRLM_PAIRS_H

typedef struct {
    int    sample;        /* candidate index within its prompt */
    int    n_tokens;      /* response length, for length control */
    int    n_valid;       /* valid judge samples */
    double score_sum;     /* sum of their scores */
} srlm_judged_candidate;

/* Mean score of a candidate; NAN when it has no valid judgement. */
double srlm_candidate_score(const srlm_judged_candidate *c);

/* 1 and the indexes (into c) of the chosen and rejected candidates, or 0 when
 * the prompt gives no pair. */
int srlm_pick_pair(const srlm_judged_candidate *c, int n, int length_control, double min_gap, int *chosen,
                   int *rejected);

#endif
