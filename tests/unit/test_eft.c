/* EFT selection (src/pipeline/eft.c, rules in its header): a table of hand-built
 * groups with the expected verdict and representative samples, exact summary counts
 * on a hand-computed downsampling case, determinism and order independence of the
 * downsampling, and a randomized check that the downsampled score ends exactly
 * level with the runner-up (never below it) while every other score keeps all of
 * its examples. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "pipeline/eft.h"
#include "test.h"

#define MAXR 4
#define MAXK 3

/* A group written as a table row: ranks, sample counts and scores inline. */
typedef struct {
    int n;
    int rank[MAXR];
    int ns[MAXR];
    int sc[MAXR][MAXK];
} row;

/* Views of a row as an srlm_eft_group (the pointers live in `ptrs`). */
static srlm_eft_group view(const row *r, const int **ptrs, uint64_t key) {
    for (int i = 0; i < MAXR; i++) ptrs[i] = r->sc[i];
    return (srlm_eft_group){key, r->n, r->rank, r->ns, (const int *const *)ptrs};
}

static void test_verdicts(void) {
    struct {
        const char      *what;
        row              g;
        srlm_eft_verdict want;
        int              sample[MAXR]; /* expected first valid sample per reply */
    } t[] = {
        {"kept: strict order", {3, {0, 1, 2}, {1, 1, 1}, {{5}, {4}, {2}}}, SRLM_EFT_KEPT, {0, 0, 0}},
        {"kept: ranks with gaps", {2, {1, 3}, {1, 1}, {{3}, {2}}}, SRLM_EFT_KEPT, {0, 0}},
        {"disagree: reversed", {2, {0, 1}, {1, 1}, {{3}, {4}}}, SRLM_EFT_DISAGREE, {0, 0}},
        {"disagree: judge tied a strict human order", {2, {0, 1}, {1, 1}, {{4}, {4}}}, SRLM_EFT_DISAGREE, {0, 0}},
        {"disagree: last pair only", {3, {0, 1, 2}, {1, 1, 1}, {{5}, {2}, {3}}}, SRLM_EFT_DISAGREE, {0, 0, 0}},
        {"human tie kept when the judge ties", {3, {0, 0, 1}, {1, 1, 1}, {{4}, {4}, {2}}}, SRLM_EFT_KEPT, {0, 0, 0}},
        {"human tie broken by the judge", {3, {0, 0, 1}, {1, 1, 1}, {{4}, {3}, {2}}}, SRLM_EFT_DISAGREE, {0, 0, 0}},
        {"all tied by human and judge", {2, {2, 2}, {1, 1}, {{3}, {3}}}, SRLM_EFT_KEPT, {0, 0}},
        {"missing: all samples invalid", {2, {0, 1}, {2, 2}, {{4, -1}, {-1, -1}}}, SRLM_EFT_MISSING, {0, -1}},
        {"missing: no samples", {2, {0, 1}, {1, 0}, {{4}, {0}}}, SRLM_EFT_MISSING, {0, -1}},
        {"missing wins over disagree", {3, {0, 1, 2}, {1, 1, 1}, {{1}, {5}, {-1}}}, SRLM_EFT_MISSING, {0, 0, -1}},
        {"first valid sample chosen", {2, {0, 1}, {3, 3}, {{-1, 5, 1}, {-1, -1, 2}}}, SRLM_EFT_KEPT, {1, 2}},
        /* the means (3.5 vs 2) agree, the first valid samples (2 vs 3) do not */
        {"first valid, not the mean", {2, {0, 1}, {2, 2}, {{2, 5}, {3, 1}}}, SRLM_EFT_DISAGREE, {0, 0}},
        {"one reply", {1, {0}, {1}, {{5}}}, SRLM_EFT_TOO_FEW, {0}},
        {"one reply, no judgement", {1, {0}, {1}, {{-1}}}, SRLM_EFT_TOO_FEW, {-1}},
        {"no replies", {0, {0}, {0}, {{0}}}, SRLM_EFT_TOO_FEW, {0}},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const int *ptrs[MAXR];
        srlm_eft_group g = view(&t[i].g, ptrs, i);
        int sample[MAXR] = {-7, -7, -7, -7};
        srlm_eft_verdict v = (srlm_eft_verdict)-1;
        CHECK_OK(srlm_eft_decide_group(&g, sample, &v));
        CHECK_MSG(v == t[i].want, "%s: verdict %s, want %s", t[i].what, srlm_eft_verdict_name(v),
                  srlm_eft_verdict_name(t[i].want));
        for (int r = 0; r < t[i].g.n; r++)
            CHECK_MSG(sample[r] == t[i].sample[r], "%s: reply %d sample %d, want %d", t[i].what, r, sample[r],
                      t[i].sample[r]);
        /* The same verdict without the sample array. */
        srlm_eft_verdict v2 = (srlm_eft_verdict)-1;
        CHECK_OK(srlm_eft_decide_group(&g, NULL, &v2));
        CHECK_MSG(v2 == v, "%s: verdict differs without the sample array", t[i].what);

        /* Through the selection: a kept group gives one example per reply, at its
         * first valid sample; any other verdict gives none and is counted once. */
        srlm_eft_pick *p = NULL;
        long np = -1;
        srlm_eft_summary s;
        CHECK_OK(srlm_eft_select(&g, 1, 7, 0, &p, &np, &s)); /* no downsampling here */
        long want_n = t[i].want == SRLM_EFT_KEPT ? t[i].g.n : 0;
        CHECK_MSG(np == want_n, "%s: %ld examples, want %ld", t[i].what, np, want_n);
        CHECK_MSG(s.groups_seen == 1 && s.groups_kept == (t[i].want == SRLM_EFT_KEPT) &&
                      s.groups_too_few == (t[i].want == SRLM_EFT_TOO_FEW) &&
                      s.groups_missing == (t[i].want == SRLM_EFT_MISSING) &&
                      s.groups_disagree == (t[i].want == SRLM_EFT_DISAGREE),
                  "%s: summary counts", t[i].what);
        for (long k = 0; k < np && k < want_n; k++) {
            int r = p[k].reply;
            CHECK_MSG(p[k].group == 0 && r == k && p[k].sample == t[i].sample[r] &&
                          p[k].score == t[i].g.sc[r][t[i].sample[r]],
                      "%s: pick %ld = (%d, %d, %d, score %d)", t[i].what, k, p[k].group, r, p[k].sample,
                      p[k].score);
        }
        CHECK(np > 0 || p == NULL);
        free(p);
    }
}

/* The hand-computed case. Groups (ranks 0,1 unless said; representative scores):
 *   G0 (5,4)  G1 (5,4)  G2 (4,3)  G3 (4,3)  G4 (4,3)  G5 (4,2)
 *   G6 (4,4) human tie                              -> kept
 *   G7 (2,4) disagree   G8 (4, none) missing   G9 one reply (4)  -> dropped
 * Before: score 2: 1, 3: 3, 4: 8, 5: 2 (14 examples). Most common 4 (8), runner-up
 * 3 (3): keep 3 of the 8 fours -> 2: 1, 3: 3, 4: 3, 5: 2 (9 examples). */
static const row hand[] = {
    {2, {0, 1}, {1, 1}, {{5}, {4}}},
    {2, {0, 1}, {1, 1}, {{5}, {4}}},
    {2, {0, 1}, {1, 1}, {{4}, {3}}},
    {2, {0, 1}, {2, 1}, {{-1, 4}, {3}}},
    {2, {0, 1}, {1, 1}, {{4}, {3}}},
    {2, {0, 1}, {1, 1}, {{4}, {2}}},
    {2, {0, 0}, {1, 1}, {{4}, {4}}},
    {2, {0, 1}, {1, 1}, {{2}, {4}}},
    {2, {0, 1}, {1, 2}, {{4}, {-1, -1}}},
    {1, {0}, {1}, {{4}}},
};
#define NHAND ((int)(sizeof hand / sizeof hand[0]))

/* Groups of `hand` in the order perm[], keyed by their position in `hand`. */
static void build(const int *perm, srlm_eft_group *g, const int *(*ptrs)[MAXR]) {
    for (int i = 0; i < NHAND; i++) g[i] = view(&hand[perm[i]], ptrs[i], 1000 + (uint64_t)perm[i]);
}

static void test_downsample_exact(void) {
    int perm[NHAND];
    for (int i = 0; i < NHAND; i++) perm[i] = i;
    srlm_eft_group g[NHAND];
    const int *ptrs[NHAND][MAXR];
    build(perm, g, ptrs);

    srlm_eft_pick *p = NULL;
    long np = 0;
    srlm_eft_summary s;
    CHECK_OK(srlm_eft_select(g, NHAND, 42, 1, &p, &np, &s));
    CHECK_MSG(s.groups_seen == 10 && s.groups_kept == 7 && s.groups_too_few == 1 && s.groups_missing == 1 &&
                  s.groups_disagree == 1,
              "groups: seen %ld kept %ld too_few %ld missing %ld disagree %ld", s.groups_seen, s.groups_kept,
              s.groups_too_few, s.groups_missing, s.groups_disagree);
    long want_before[6] = {0, 0, 1, 3, 8, 2}, want_after[6] = {0, 0, 1, 3, 3, 2};
    for (int k = 0; k <= 5; k++)
        CHECK_MSG(s.before[k] == want_before[k] && s.after[k] == want_after[k],
                  "score %d: before %ld after %ld, want %ld %ld", k, s.before[k], s.after[k], want_before[k],
                  want_after[k]);
    CHECK(s.examples_before == 14 && s.examples_after == 9 && np == 9);
    CHECK(s.downsampled_score == 4);

    /* The picks agree with the summary, come in input order, only from kept
     * groups, and every example that is not a 4 survives. */
    long per[6] = {0};
    int in_order = 1, from_kept = 1;
    for (long k = 0; k < np; k++) {
        per[p[k].score]++;
        if (k > 0 && (p[k].group < p[k - 1].group || (p[k].group == p[k - 1].group && p[k].reply <= p[k - 1].reply)))
            in_order = 0;
        if (p[k].group > 6) from_kept = 0;
        const row *r = &hand[p[k].group];
        if (r->sc[p[k].reply][p[k].sample] != p[k].score) from_kept = 0;
    }
    CHECK(in_order);
    CHECK(from_kept);
    for (int k = 0; k <= 5; k++) CHECK_MSG(per[k] == want_after[k], "picks of score %d: %ld", k, per[k]);
    /* G3: reply 1 scored 3, never downsampled; reply 0 (a 4, if it survived) is
     * represented by its second sample, the first being invalid. */
    int g3 = 0;
    for (long k = 0; k < np; k++) {
        if (p[k].group == 3 && p[k].reply == 1) g3 = 1;
        if (p[k].group == 3 && p[k].reply == 0) CHECK(p[k].sample == 1);
    }
    CHECK(g3);

    /* Determinism: the same call gives the same picks. */
    srlm_eft_pick *q = NULL;
    long nq = 0;
    CHECK_OK(srlm_eft_select(g, NHAND, 42, 1, &q, &nq, NULL));
    CHECK(nq == np && memcmp(p, q, (size_t)np * sizeof *p) == 0);
    free(q);

    /* The seed decides which fours stay: among a few seeds, some choose differently
     * (C(8,3) = 56 choices; a seed that is ignored would give one). */
    int differs = 0;
    for (uint64_t seed = 1; seed <= 8; seed++) {
        CHECK_OK(srlm_eft_select(g, NHAND, seed, 1, &q, &nq, NULL));
        CHECK(nq == 9);
        if (nq != np || memcmp(p, q, (size_t)np * sizeof *p) != 0) differs = 1;
        free(q);
    }
    CHECK(differs);

    /* Order independence: the groups reversed, same keys -> the same examples kept
     * (compared by the group's position in `hand`). */
    int rev[NHAND];
    for (int i = 0; i < NHAND; i++) rev[i] = NHAND - 1 - i;
    srlm_eft_group gr[NHAND];
    const int *ptrs_r[NHAND][MAXR];
    build(rev, gr, ptrs_r);
    CHECK_OK(srlm_eft_select(gr, NHAND, 42, 1, &q, &nq, NULL));
    CHECK(nq == np);
    int kept_a[NHAND][MAXR] = {{0}}, kept_b[NHAND][MAXR] = {{0}};
    for (long k = 0; k < np; k++) kept_a[p[k].group][p[k].reply] = 1;
    for (long k = 0; k < nq; k++) kept_b[rev[q[k].group]][q[k].reply] = 1;
    CHECK(memcmp(kept_a, kept_b, sizeof kept_a) == 0);
    free(q);

    /* downsample = 0 keeps every example of the kept groups. */
    CHECK_OK(srlm_eft_select(g, NHAND, 42, 0, &q, &nq, &s));
    CHECK(nq == 14 && s.examples_after == 14 && s.after[4] == 8 && s.downsampled_score == -1);
    free(q);
    free(p);
}

static void test_downsample_edges(void) {
    /* A shared top count (4: 2, 3: 2): nothing dropped. */
    row a[] = {{2, {0, 1}, {1, 1}, {{4}, {3}}}, {2, {0, 1}, {1, 1}, {{4}, {3}}}};
    /* One score only (4 x 4, human ties): nothing dropped, not everything. */
    row b[] = {{2, {0, 0}, {1, 1}, {{4}, {4}}}, {2, {1, 1}, {1, 1}, {{4}, {4}}}};
    const row *sets[] = {a, b};
    for (int t = 0; t < 2; t++) {
        const int *ptrs[2][MAXR];
        srlm_eft_group g[2] = {view(&sets[t][0], ptrs[0], 1), view(&sets[t][1], ptrs[1], 2)};
        srlm_eft_pick *p = NULL;
        long np = 0;
        srlm_eft_summary s;
        CHECK_OK(srlm_eft_select(g, 2, 3, 1, &p, &np, &s));
        CHECK_MSG(np == 4 && s.examples_after == 4 && s.downsampled_score == -1 &&
                      memcmp(s.before, s.after, sizeof s.before) == 0,
                  "edge case %d: %ld examples kept", t, np);
        free(p);
    }
    /* Nothing at all. */
    srlm_eft_pick *p = (srlm_eft_pick *)1;
    long np = -1;
    srlm_eft_summary s;
    CHECK_OK(srlm_eft_select(NULL, 0, 0, 1, &p, &np, &s));
    CHECK(p == NULL && np == 0 && s.groups_seen == 0 && s.downsampled_score == -1);
}

/* Random groups: the downsampled score ends exactly at the runner-up's count. */
static void test_downsample_property(void) {
    enum { NG = 60 };
    row rows[NG];
    for (int trial = 0; trial < 200; trial++) {
        uint64_t key = srlm_rng_key(99, (uint64_t)trial);
        uint64_t c = 0;
        for (int i = 0; i < NG; i++) {
            row *r = &rows[i];
            memset(r, 0, sizeof *r);
            r->n = 1 + (int)(srlm_rng_u64(key, c++) % MAXR);
            for (int j = 0; j < r->n; j++) {
                r->rank[j] = (int)(srlm_rng_u64(key, c++) % 3);
                r->ns[j] = (int)(srlm_rng_u64(key, c++) % (MAXK + 1));
                for (int k = 0; k < r->ns[j]; k++) {
                    /* Skewed towards 4 and towards agreeing with the human, so that
                     * many groups are kept and 4 usually leads. */
                    int u = (int)(srlm_rng_u64(key, c++) % 10);
                    r->sc[j][k] = u == 0 ? -1 : u < 4 ? 4 : 5 - r->rank[j] - (u == 9);
                }
            }
        }
        const int *ptrs[NG][MAXR];
        srlm_eft_group g[NG];
        for (int i = 0; i < NG; i++) g[i] = view(&rows[i], ptrs[i], (uint64_t)i);
        srlm_eft_pick *p = NULL;
        long np = 0;
        srlm_eft_summary s;
        CHECK_OK(srlm_eft_select(g, NG, (uint64_t)trial, 1, &p, &np, &s));
        int top = -1;
        long c1 = 0, c2 = 0, distinct = 0, sum_before = 0, sum_after = 0;
        for (int k = 0; k <= 5; k++) {
            distinct += s.before[k] > 0;
            sum_before += s.before[k];
            sum_after += s.after[k];
            if (s.before[k] > c1) c2 = c1, c1 = s.before[k], top = k;
            else if (s.before[k] > c2) c2 = s.before[k];
        }
        CHECK(s.groups_seen == NG &&
              s.groups_kept + s.groups_too_few + s.groups_missing + s.groups_disagree == NG);
        CHECK(sum_before == s.examples_before && sum_after == s.examples_after && np == s.examples_after);
        long max_other_after = 0;
        for (int k = 0; k <= 5; k++) {
            if (k == top) continue;
            CHECK_MSG(s.after[k] == s.before[k], "trial %d: score %d lost examples", trial, k);
            if (s.after[k] > max_other_after) max_other_after = s.after[k];
        }
        if (distinct >= 2 && c1 > c2) {
            CHECK_MSG(s.after[top] == max_other_after && s.downsampled_score == top,
                      "trial %d: score %d kept %ld, runner-up has %ld", trial, top, s.after[top], max_other_after);
        } else {
            CHECK_MSG(top < 0 || (s.after[top] == s.before[top] && s.downsampled_score == -1),
                      "trial %d: dropped examples with no single leader", trial);
        }
        /* The summary's per-score counts are the picks'. */
        long per[6] = {0};
        for (long k = 0; k < np; k++) per[p[k].score]++;
        CHECK(memcmp(per, s.after, sizeof per) == 0);
        free(p);
    }
}

static void test_bad_input(void) {
    row good = {2, {0, 1}, {1, 1}, {{4}, {3}}};
    struct {
        const char *what;
        row         bad;
        const char *needle;
    } t[] = {
        {"score 6", {2, {0, 1}, {1, 2}, {{4}, {3, 6}}}, "reply 1, judge sample 1"},
        {"score -2", {2, {0, 1}, {1, 1}, {{-2}, {3}}}, "reply 0, judge sample 0"},
        {"negative rank", {2, {0, -1}, {1, 1}, {{4}, {3}}}, "reply 1"},
        {"negative sample count", {2, {0, 1}, {1, -1}, {{4}, {3}}}, "reply 1"},
        {"negative reply count", {-1, {0}, {0}, {{0}}}, "negative reply count"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const int *pg[MAXR], *pb[MAXR];
        srlm_eft_group g[3] = {view(&good, pg, 0), view(&good, pg, 1), view(&t[i].bad, pb, 2)};
        srlm_eft_pick *p = (srlm_eft_pick *)1;
        long np = -1;
        srlm_eft_summary s;
        srlm_status st = srlm_eft_select(g, 3, 0, 1, &p, &np, &s);
        CHECK_MSG(st == SRLM_BAD_INPUT, "%s: status %d", t[i].what, (int)st);
        CHECK_MSG(strstr(srlm_last_error(), "group 2") && strstr(srlm_last_error(), t[i].needle),
                  "%s: message '%s'", t[i].what, srlm_last_error());
        CHECK(p == NULL && np == 0 && s.groups_seen == 0 && s.groups_kept == 0);
    }
    /* NULL arrays. */
    srlm_eft_group g = {0, 2, NULL, NULL, NULL};
    srlm_eft_verdict v;
    CHECK(srlm_eft_decide_group(&g, NULL, &v) == SRLM_BAD_INPUT);
    srlm_eft_pick *p;
    long np;
    CHECK(srlm_eft_select(NULL, 2, 0, 1, &p, &np, NULL) == SRLM_BAD_INPUT);
    CHECK(srlm_eft_select(NULL, -1, 0, 1, &p, &np, NULL) == SRLM_BAD_INPUT);
}

int main(void) {
    test_verdicts();
    test_downsample_exact();
    test_downsample_edges();
    test_downsample_property();
    test_bad_input();
    CHECK(strcmp(srlm_eft_verdict_name(SRLM_EFT_DISAGREE), "disagree") == 0);
    TEST_DONE();
}
