#include "pipeline/eft.h"

#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

const char *srlm_eft_verdict_name(srlm_eft_verdict v) {
    switch (v) {
    case SRLM_EFT_KEPT: return "kept";
    case SRLM_EFT_TOO_FEW: return "too_few";
    case SRLM_EFT_MISSING: return "missing";
    case SRLM_EFT_DISAGREE: return "disagree";
    }
    return "unknown";
}

static int sign(int v) { return (v > 0) - (v < 0); }

/* Index of reply r's first valid judge sample, -1 when none (scores checked). */
static int first_valid(const srlm_eft_group *g, int r) {
    for (int k = 0; k < g->n_samples[r]; k++)
        if (g->scores[r][k] >= 0) return k;
    return -1;
}

srlm_status srlm_eft_decide_group(const srlm_eft_group *g, int *sample, srlm_eft_verdict *verdict) {
    *verdict = SRLM_EFT_TOO_FEW;
    if (g->n_replies < 0) return SRLM_ERR(SRLM_BAD_INPUT, "negative reply count %d", g->n_replies);
    if (g->n_replies > 0 && (!g->human_rank || !g->n_samples || !g->scores))
        return SRLM_ERR(SRLM_BAD_INPUT, "missing human ranks, sample counts or scores");
    /* Validate every reply before deciding, so bad data is never silently counted
     * as a verdict. */
    int missing = 0;
    for (int r = 0; r < g->n_replies; r++) {
        if (g->human_rank[r] < 0)
            return SRLM_ERR(SRLM_BAD_INPUT, "reply %d: negative human rank %d", r, g->human_rank[r]);
        if (g->n_samples[r] < 0)
            return SRLM_ERR(SRLM_BAD_INPUT, "reply %d: negative judge sample count %d", r, g->n_samples[r]);
        if (g->n_samples[r] > 0 && !g->scores[r])
            return SRLM_ERR(SRLM_BAD_INPUT, "reply %d: no scores for %d judge samples", r, g->n_samples[r]);
        for (int k = 0; k < g->n_samples[r]; k++) {
            int s = g->scores[r][k];
            if (s < -1 || s > SRLM_EFT_MAX_SCORE)
                return SRLM_ERR(SRLM_BAD_INPUT, "reply %d, judge sample %d: score %d is not -1 (invalid) or 0..%d",
                                r, k, s, SRLM_EFT_MAX_SCORE);
        }
        int first = first_valid(g, r);
        if (sample) sample[r] = first;
        if (first < 0) missing = 1;
    }
    if (g->n_replies < 2) return SRLM_OK;
    if (missing) {
        *verdict = SRLM_EFT_MISSING;
        return SRLM_OK;
    }
    *verdict = SRLM_EFT_KEPT;
    for (int i = 0; i < g->n_replies; i++) {
        int si = g->scores[i][first_valid(g, i)];
        for (int j = i + 1; j < g->n_replies; j++) {
            int sj = g->scores[j][first_valid(g, j)];
            /* Rank 0 is best, so a better reply has the higher score and the lower rank. */
            if (sign(si - sj) != sign(g->human_rank[j] - g->human_rank[i])) {
                *verdict = SRLM_EFT_DISAGREE;
                return SRLM_OK;
            }
        }
    }
    return SRLM_OK;
}

/* An example of the downsampled score, in the order that decides who stays. */
typedef struct {
    uint64_t hash;
    long     at; /* index into the picks */
    int      group, reply;
} ranked_pick;

static int cmp_ranked(const void *pa, const void *pb) {
    const ranked_pick *a = pa, *b = pb;
    if (a->hash != b->hash) return a->hash < b->hash ? -1 : 1;
    if (a->group != b->group) return a->group < b->group ? -1 : 1;
    return (a->reply > b->reply) - (a->reply < b->reply);
}

/* Apply the header's downsampling rule to picks[0..*n) in place (order kept). */
static srlm_status downsample_top(const srlm_eft_group *g, uint64_t seed, srlm_eft_pick *picks, long *n,
                                  srlm_eft_summary *sum) {
    int top = -1;
    long c1 = 0, c2 = 0;
    for (int s = 0; s <= SRLM_EFT_MAX_SCORE; s++) {
        long c = sum->before[s];
        if (c > c1) {
            c2 = c1;
            c1 = c;
            top = s;
        } else if (c > c2) {
            c2 = c;
        }
    }
    /* Shared top count: already level. One score only: c2 == 0 would drop all. */
    if (top < 0 || c1 <= c2 || c2 == 0) return SRLM_OK;

    ranked_pick *rp = malloc((size_t)c1 * sizeof *rp);
    if (!rp) return SRLM_ERR(SRLM_FAILED, "out of memory ranking %ld EFT examples", c1);
    long m = 0;
    for (long i = 0; i < *n; i++) {
        if (picks[i].score != top) continue;
        const srlm_eft_group *gr = &g[picks[i].group];
        rp[m].hash = srlm_rng_u64(srlm_rng_key(seed, gr->key), (uint64_t)picks[i].reply);
        rp[m].at = i;
        rp[m].group = picks[i].group;
        rp[m].reply = picks[i].reply;
        m++;
    }
    qsort(rp, (size_t)m, sizeof *rp, cmp_ranked);
    /* Mark the dropped ones, then compact: the survivors stay in input order. */
    for (long i = c2; i < m; i++) picks[rp[i].at].score = -1;
    free(rp);
    long w = 0;
    for (long i = 0; i < *n; i++)
        if (picks[i].score >= 0) picks[w++] = picks[i];
    *n = w;
    sum->after[top] = c2;
    sum->downsampled_score = top;
    return SRLM_OK;
}

srlm_status srlm_eft_select(const srlm_eft_group *g, int n, uint64_t seed, int downsample,
                            srlm_eft_pick **picks, long *n_picks, srlm_eft_summary *summary) {
    srlm_eft_summary local, *sum = summary ? summary : &local;
    memset(sum, 0, sizeof *sum);
    sum->downsampled_score = -1;
    *picks = NULL;
    *n_picks = 0;
    if (n < 0) return SRLM_ERR(SRLM_BAD_INPUT, "negative EFT group count %d", n);
    if (n > 0 && !g) return SRLM_ERR(SRLM_BAD_INPUT, "no EFT groups given for a count of %d", n);

    /* Size the output before allocating: at most one example per reply. */
    srlm_eft_pick *out = NULL;
    int *sample = NULL;
    srlm_status st = SRLM_OK;
    long total = 0;
    int max_replies = 0;
    for (int i = 0; i < n; i++) {
        if (g[i].n_replies < 0) {
            st = SRLM_ERR(SRLM_BAD_INPUT, "EFT group %d: negative reply count %d", i, g[i].n_replies);
            goto fail;
        }
        total += g[i].n_replies;
        if (g[i].n_replies > max_replies) max_replies = g[i].n_replies;
    }
    if (total > 0) out = malloc((size_t)total * sizeof *out);
    if (max_replies > 0) sample = malloc((size_t)max_replies * sizeof *sample);
    if ((total > 0 && !out) || (max_replies > 0 && !sample)) {
        st = SRLM_ERR(SRLM_FAILED, "out of memory selecting EFT examples (%ld replies)", total);
        goto fail;
    }

    long m = 0;
    for (int i = 0; i < n; i++) {
        srlm_eft_verdict v;
        st = srlm_eft_decide_group(&g[i], sample, &v);
        if (st != SRLM_OK) {
            srlm_error_context("EFT group %d", i);
            goto fail;
        }
        sum->groups_seen++;
        switch (v) {
        case SRLM_EFT_TOO_FEW: sum->groups_too_few++; continue;
        case SRLM_EFT_MISSING: sum->groups_missing++; continue;
        case SRLM_EFT_DISAGREE: sum->groups_disagree++; continue;
        case SRLM_EFT_KEPT: sum->groups_kept++; break;
        }
        for (int r = 0; r < g[i].n_replies; r++) {
            int s = g[i].scores[r][sample[r]];
            out[m++] = (srlm_eft_pick){i, r, sample[r], s};
            sum->before[s]++;
        }
    }
    sum->examples_before = m;
    memcpy(sum->after, sum->before, sizeof sum->after);
    if (downsample) SRLM_CHECK_GOTO(downsample_top(g, seed, out, &m, sum), st, fail);
    sum->examples_after = m;
    free(sample);
    if (m == 0) {
        free(out);
        out = NULL;
    }
    *picks = out;
    *n_picks = m;
    return SRLM_OK;

fail:
    free(out);
    free(sample);
    memset(sum, 0, sizeof *sum);
    sum->downsampled_score = -1;
    return st;
}
