#include "pipeline/pairs.h"

#include <math.h>

double srlm_candidate_score(const srlm_judged_candidate *c) {
    return c->n_valid > 0 ? c->score_sum / c->n_valid : NAN;
}

/* Is candidate a a better pick than b for the given end (top: want the higher
 * score; bottom: the lower), with ties broken as the header says? */
static int better(const srlm_judged_candidate *a, const srlm_judged_candidate *b, int top, int length_control) {
    double sa = srlm_candidate_score(a), sb = srlm_candidate_score(b);
    if (sa != sb) return top ? sa > sb : sa < sb;
    if (length_control && a->n_tokens != b->n_tokens) return top ? a->n_tokens < b->n_tokens : a->n_tokens > b->n_tokens;
    return a->sample < b->sample;
}

int srlm_pick_pair(const srlm_judged_candidate *c, int n, int length_control, double min_gap, int *chosen,
                   int *rejected) {
    int hi = -1, lo = -1;
    for (int i = 0; i < n; i++) {
        if (c[i].n_valid <= 0) continue;
        if (hi < 0 || better(&c[i], &c[hi], 1, length_control)) hi = i;
        if (lo < 0 || better(&c[i], &c[lo], 0, length_control)) lo = i;
    }
    if (hi < 0) return 0;
    double gap = srlm_candidate_score(&c[hi]) - srlm_candidate_score(&c[lo]);
    /* means of small integers: 13/3 - 10/3 may come out a hair below 1 */
    if (gap <= 0 || gap < min_gap - 1e-9) return 0;
    *chosen = hi;
    *rejected = lo;
    return 1;
}
