/* Reward-model quality metrics; the definitions are in eval_metrics.h. */
#include "pipeline/eval_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double value;
    int    index;
} value_index;

static int cmp_value_index(const void *pa, const void *pb) {
    const value_index *a = pa, *b = pb;
    if (a->value < b->value) return -1;
    if (a->value > b->value) return 1;
    return a->index - b->index;
}

/* Average ranks (1-based; ties get the mean of the ranks they span), as
 * scipy.stats.rankdata(method='average'). tmp: n entries of scratch. */
static void average_ranks(const double *x, int n, value_index *tmp, double *rank) {
    for (int i = 0; i < n; i++) {
        tmp[i].value = x[i];
        tmp[i].index = i;
    }
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_value_index);
    int i = 0;
    while (i < n) {
        int j = i + 1;
        while (j < n && tmp[j].value == tmp[i].value) j++;
        /* positions i..j-1 hold ranks i+1..j: their mean is (i + 1 + j) / 2 */
        double r = 0.5 * (double)(i + 1 + j);
        for (int k = i; k < j; k++) rank[tmp[k].index] = r;
        i = j;
    }
}

/* Pearson correlation, clipped to [-1, 1] as numpy.corrcoef does; NAN when either
 * side is constant. */
static double pearson(const double *a, const double *b, int n) {
    double ma = 0, mb = 0;
    for (int i = 0; i < n; i++) {
        ma += a[i];
        mb += b[i];
    }
    ma /= n;
    mb /= n;
    double sab = 0, saa = 0, sbb = 0;
    for (int i = 0; i < n; i++) {
        double da = a[i] - ma, db = b[i] - mb;
        sab += da * db;
        saa += da * da;
        sbb += db * db;
    }
    if (saa == 0 || sbb == 0) return NAN;
    double r = sab / (sqrt(saa) * sqrt(sbb));
    if (r > 1) r = 1;
    if (r < -1) r = -1;
    return r;
}

/* scratch: 2n value_index + 2n doubles, laid out by the caller. */
static double spearman_scratch(const double *x, const double *y, int n, value_index *tmp,
                               double *rx, double *ry) {
    average_ranks(x, n, tmp, rx);
    average_ranks(y, n, tmp, ry);
    return pearson(rx, ry, n);
}

double srlm_spearman_rho(const double *x, const double *y, int n) {
    if (!x || !y || n < 2) return NAN;
    value_index *tmp = malloc((size_t)n * sizeof *tmp);
    double *r = malloc(2 * (size_t)n * sizeof *r);
    double rho = NAN;
    if (tmp && r) rho = spearman_scratch(x, y, n, tmp, r, r + n);
    free(tmp);
    free(r);
    return rho;
}

/* O(n^2); groups are a handful of replies. */
double srlm_kendall_tau_b(const double *x, const double *y, int n) {
    if (!x || !y || n < 2) return NAN;
    long concordant = 0, discordant = 0, tied_x = 0, tied_y = 0;
    long total = (long)n * (n - 1) / 2;
    for (int i = 0; i < n; i++) {
        for (int j = i + 1; j < n; j++) {
            double dx = x[i] - x[j], dy = y[i] - y[j];
            if (dx == 0) tied_x++;
            if (dy == 0) tied_y++;
            if (dx == 0 || dy == 0) continue;
            if ((dx > 0) == (dy > 0)) concordant++;
            else discordant++;
        }
    }
    if (tied_x == total || tied_y == total) return NAN;
    double tau = (double)(concordant - discordant) / sqrt((double)(total - tied_x)) /
                 sqrt((double)(total - tied_y));
    if (tau > 1) tau = 1;
    if (tau < -1) tau = -1;
    return tau;
}

static void clear_metrics(srlm_rm_metrics *out) {
    memset(out, 0, sizeof *out);
    out->pairwise_accuracy = NAN;
    out->five_best = NAN;
    out->exact_match = NAN;
    out->spearman = NAN;
    out->kendall_tau_b = NAN;
    out->tie_rate = NAN;
}

static int sign_of(double v) { return (v > 0) - (v < 0); }

static srlm_status validate(const srlm_ranked_group *g, int n, int *max_replies) {
    if (n < 0) return SRLM_ERR(SRLM_BAD_INPUT, "reward-model metrics: %d groups", n);
    if (n > 0 && !g) return SRLM_ERR(SRLM_BAD_INPUT, "reward-model metrics: no groups given");
    *max_replies = 0;
    for (int k = 0; k < n; k++) {
        const srlm_ranked_group *grp = &g[k];
        if (grp->n_replies < 0)
            return SRLM_ERR(SRLM_BAD_INPUT, "reward-model metrics: group %d has %d replies", k,
                            grp->n_replies);
        if (grp->n_replies > 0 && (!grp->human_rank || !grp->score))
            return SRLM_ERR(SRLM_BAD_INPUT, "reward-model metrics: group %d has no %s", k,
                            grp->human_rank ? "scores" : "human ranks");
        for (int i = 0; i < grp->n_replies; i++) {
            double s = grp->score[i];
            if (grp->human_rank[i] < 0)
                return SRLM_ERR(SRLM_BAD_INPUT,
                                "reward-model metrics: group %d reply %d has human rank %d", k, i,
                                grp->human_rank[i]);
            if (!isnan(s) && !(s >= 0 && s <= 5))
                return SRLM_ERR(SRLM_BAD_INPUT,
                                "reward-model metrics: group %d reply %d has score %g, "
                                "expected a mean judge score in [0, 5] or NAN",
                                k, i, s);
        }
        if (grp->n_replies > *max_replies) *max_replies = grp->n_replies;
    }
    return SRLM_OK;
}

srlm_status srlm_rm_metrics_compute(const srlm_ranked_group *g, int n, srlm_rm_metrics *out) {
    if (!out) return SRLM_ERR(SRLM_BAD_INPUT, "reward-model metrics: no output");
    clear_metrics(out);
    int max_replies = 0;
    SRLM_CHECK(validate(g, n, &max_replies));

    /* scratch for one group's valid replies */
    size_t m = max_replies > 0 ? (size_t)max_replies : 1;
    double *sc = malloc(m * sizeof *sc);         /* valid scores */
    double *neg_rank = malloc(m * sizeof *neg_rank); /* their negated human ranks */
    double *ranks = malloc(2 * m * sizeof *ranks);
    value_index *tmp = malloc(m * sizeof *tmp);
    if (!sc || !neg_rank || !ranks || !tmp) {
        free(sc);
        free(neg_rank);
        free(ranks);
        free(tmp);
        return SRLM_ERR(SRLM_FAILED, "reward-model metrics: out of memory (%d replies)",
                        max_replies);
    }

    double agree = 0; /* agreeing pairs + half the tied ones */
    long   tied = 0, exact = 0, scored5 = 0, scored5_top = 0, correlated = 0;
    double sum_rho = 0, sum_tau = 0;

    for (int k = 0; k < n; k++) {
        const srlm_ranked_group *grp = &g[k];
        int top_rank = -1, nv = 0;
        for (int i = 0; i < grp->n_replies; i++) {
            if (top_rank < 0 || grp->human_rank[i] < top_rank) top_rank = grp->human_rank[i];
            if (isnan(grp->score[i])) {
                out->replies_dropped++;
                continue;
            }
            sc[nv] = grp->score[i];
            neg_rank[nv] = -(double)grp->human_rank[i];
            nv++;
        }
        int distinct_ranks = 0;
        for (int i = 1; i < nv && !distinct_ranks; i++) distinct_ranks = neg_rank[i] != neg_rank[0];
        if (nv < 2 || !distinct_ranks) {
            out->groups_too_small++;
            continue;
        }
        out->groups++;

        int matches = 1, all_tied = 1;
        for (int i = 0; i < nv; i++) {
            if (sc[i] == 5.0) {
                scored5++;
                if (-neg_rank[i] == (double)top_rank) scored5_top++;
            }
            for (int j = i + 1; j < nv; j++) {
                int s = sign_of(sc[i] - sc[j]), h = sign_of(neg_rank[i] - neg_rank[j]);
                if (s != h) matches = 0;
                if (s != 0) all_tied = 0;
                if (h == 0) continue; /* human tie: not a compared pair */
                out->pairs++;
                if (s == 0) {
                    tied++;
                    agree += 0.5;
                } else if (s == h) {
                    agree += 1;
                }
            }
        }
        exact += matches;
        if (all_tied) {
            out->groups_all_tied++;
            continue;
        }
        correlated++;
        sum_rho += spearman_scratch(sc, neg_rank, nv, tmp, ranks, ranks + nv);
        sum_tau += srlm_kendall_tau_b(sc, neg_rank, nv);
    }

    if (out->pairs > 0) {
        out->pairwise_accuracy = agree / (double)out->pairs;
        out->tie_rate = (double)tied / (double)out->pairs;
    }
    if (scored5 > 0) out->five_best = (double)scored5_top / (double)scored5;
    if (out->groups > 0) out->exact_match = (double)exact / (double)out->groups;
    if (correlated > 0) {
        out->spearman = sum_rho / (double)correlated;
        out->kendall_tau_b = sum_tau / (double)correlated;
    }
    free(sc);
    free(neg_rank);
    free(ranks);
    free(tmp);
    return SRLM_OK;
}
