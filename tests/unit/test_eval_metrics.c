/* Reward-model metrics (src/pipeline/eval_metrics.c, definitions in its header):
 * hand-computed cases with the arithmetic in comments (score ties, human ties,
 * dropped replies, groups too small, all-tied groups, 5-best edge cases, bad
 * input), then Spearman rho and Kendall tau-b against scipy 1.17.1 on 300 random
 * groups with ties (fixtures: tests/fixtures/make_eval_fixtures.py).
 *
 * Tolerance against scipy: 1e-12 absolute. Both compute in float64 from the same
 * average ranks / pair counts; only summation order differs (~1e-16). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/eval_metrics.h"
#include "test.h"

#define TOL 1e-12
#define NEAR(got, want) (fabs((got) - (want)) <= 1e-12)

static srlm_rm_metrics run(const srlm_ranked_group *g, int n) {
    srlm_rm_metrics m;
    CHECK_OK(srlm_rm_metrics_compute(g, n, &m));
    return m;
}

static void test_perfect_and_reversed(void) {
    /* ranks 0,1,2 scored 5,4,3: all 3 pairs agree, the top reply scored 5 */
    int r[] = {0, 1, 2};
    double s[] = {5, 4, 3};
    srlm_ranked_group g = {3, r, s};
    srlm_rm_metrics m = run(&g, 1);
    CHECK(m.pairs == 3 && m.groups == 1 && m.groups_too_small == 0 && m.replies_dropped == 0);
    CHECK(m.pairwise_accuracy == 1 && m.tie_rate == 0 && m.exact_match == 1);
    CHECK(m.five_best == 1);
    CHECK(NEAR(m.spearman, 1) && NEAR(m.kendall_tau_b, 1));

    /* scored 1,2,3: every pair disagrees; no reply scored 5 -> five_best NAN */
    double rev[] = {1, 2, 3};
    g.score = rev;
    m = run(&g, 1);
    CHECK(m.pairwise_accuracy == 0 && m.exact_match == 0 && m.tie_rate == 0);
    CHECK(isnan(m.five_best));
    CHECK(NEAR(m.spearman, -1) && NEAR(m.kendall_tau_b, -1));

    /* 4.99 is not "scored 5" (exact 5.0 only) */
    double almost[] = {4.99, 4, 3};
    g.score = almost;
    m = run(&g, 1);
    CHECK(isnan(m.five_best) && m.pairwise_accuracy == 1 && m.exact_match == 1);
}

static void test_score_ties(void) {
    /* ranks 0,1,2,3 scored 4,4,5,2. The 6 pairs (human order first):
     *   (0,1) 4 vs 4 tie      -> 1/2, tied
     *   (0,2) 4 vs 5 disagree -> 0
     *   (0,3) 4 vs 2 agree    -> 1
     *   (1,2) 4 vs 5 disagree -> 0
     *   (1,3) 4 vs 2 agree    -> 1
     *   (2,3) 5 vs 2 agree    -> 1
     * pairwise = 3.5/6, tie_rate = 1/6, exact = 0.
     * five_best: reply 2 scored 5 but has rank 2 -> 0/1 = 0.
     * Spearman: score ranks (average) [2.5, 2.5, 4, 1]; -rank = [0,-1,-2,-3] ranks
     *   [4, 3, 2, 1]; both means 2.5; deviations [0,0,1.5,-1.5] and
     *   [1.5,0.5,-0.5,-1.5]; cov sum = -0.75 + 2.25 = 1.5; var sums 4.5 and 5;
     *   rho = 1.5 / sqrt(22.5) = sqrt(0.1).
     * tau-b: C = 3, D = 2, score ties 1, rank ties 0, n0 = 6:
     *   (3 - 2) / sqrt((6 - 1) * (6 - 0)) = 1/sqrt(30). */
    int r[] = {0, 1, 2, 3};
    double s[] = {4, 4, 5, 2};
    srlm_ranked_group g = {4, r, s};
    srlm_rm_metrics m = run(&g, 1);
    CHECK(m.pairs == 6 && m.groups == 1 && m.groups_all_tied == 0);
    CHECK(NEAR(m.pairwise_accuracy, 3.5 / 6) && NEAR(m.tie_rate, 1.0 / 6));
    CHECK(m.exact_match == 0 && m.five_best == 0);
    CHECK_MSG(NEAR(m.spearman, sqrt(0.1)), "rho %.17g", m.spearman);
    CHECK_MSG(NEAR(m.kendall_tau_b, 1 / sqrt(30.0)), "tau %.17g", m.kendall_tau_b);
    /* the exposed helpers agree with the metric */
    double neg[] = {0, -1, -2, -3};
    CHECK(NEAR(srlm_spearman_rho(s, neg, 4), sqrt(0.1)));
    CHECK(NEAR(srlm_kendall_tau_b(s, neg, 4), 1 / sqrt(30.0)));
    double flat[] = {1, 1, 1, 1};
    CHECK(isnan(srlm_spearman_rho(flat, neg, 4)) && isnan(srlm_kendall_tau_b(s, flat, 4)));
}

static void test_drops_small_and_tied_groups(void) {
    /* G1: ranks 0,1 scored NAN,3       -> 1 valid reply: too small (1 drop)
     * G2: ranks 0,1,2 scored NAN,5,1   -> valid: rank 1 (5), rank 2 (1); 1 drop.
     *     pair (1,2) agrees -> 1; exact match; rho = tau = 1. Its top reply (rank 0)
     *     was dropped, so the 5 of rank 1 is NOT the human's top: five_best 0/1.
     * G3: ranks 1,1 scored 2,3         -> human tie only: too small
     * G4: ranks 0,1,2 scored 3,3,3     -> 3 pairs all tied: 3 * 1/2, tie 3; no exact
     *     match; all scores tied -> excluded from rho/tau, groups_all_tied = 1
     * G5: no replies                   -> too small
     * groups = 2 (G2, G4), too small = 3, dropped = 2, pairs = 1 + 3 = 4,
     * pairwise = (1 + 1.5) / 4 = 0.625, tie_rate = 3/4, exact = 1/2,
     * five_best = 0, rho = tau = 1 (G2 only). */
    int r1[] = {0, 1}, r2[] = {0, 1, 2}, r3[] = {1, 1}, r4[] = {0, 1, 2};
    double s1[] = {NAN, 3}, s2[] = {NAN, 5, 1}, s3[] = {2, 3}, s4[] = {3, 3, 3};
    srlm_ranked_group g[] = {{2, r1, s1}, {3, r2, s2}, {2, r3, s3}, {3, r4, s4}, {0, NULL, NULL}};
    srlm_rm_metrics m = run(g, 5);
    CHECK(m.groups == 2 && m.groups_too_small == 3 && m.replies_dropped == 2);
    CHECK(m.pairs == 4 && m.groups_all_tied == 1);
    CHECK(m.pairwise_accuracy == 0.625 && m.tie_rate == 0.75 && m.exact_match == 0.5);
    CHECK(m.five_best == 0);
    CHECK(NEAR(m.spearman, 1) && NEAR(m.kendall_tau_b, 1));

    /* only the all-tied group: rho/tau NAN, the rest defined */
    m = run(&g[3], 1);
    CHECK(m.groups == 1 && m.groups_all_tied == 1 && isnan(m.spearman) && isnan(m.kendall_tau_b));
    CHECK(m.pairwise_accuracy == 0.5 && m.tie_rate == 1 && m.exact_match == 0);

    /* only unusable groups: every measure NAN, counts set */
    m = run(g, 1);
    CHECK(m.groups == 0 && m.groups_too_small == 1 && m.replies_dropped == 1 && m.pairs == 0);
    CHECK(isnan(m.pairwise_accuracy) && isnan(m.tie_rate) && isnan(m.exact_match) &&
          isnan(m.five_best) && isnan(m.spearman) && isnan(m.kendall_tau_b));

    /* no groups at all */
    m = run(NULL, 0);
    CHECK(m.groups == 0 && m.pairs == 0 && isnan(m.pairwise_accuracy));
}

static void test_human_ties(void) {
    /* A: ranks 0,0,1 scored 5,5,2. Pair (0,1) is a human tie: not compared; (0,2)
     *    and (1,2) agree -> 2 pairs, 2 agree. Scores tie exactly where the human
     *    tied -> exact match. Both 5s have the top rank 0 -> 2 of 2.
     *    rho: score ranks [2.5,2.5,1], -rank [0,0,-1] ranks [2.5,2.5,1] -> 1.
     *    tau-b: C = 2, D = 0, score ties 1, rank ties 1, n0 = 3: 2/sqrt(2*2) = 1.
     * B: ranks 0,0,1 scored 5,4,2. Same 2 compared pairs, both agree; the human tie
     *    is broken by the scores -> no exact match. One 5, top -> 1 of 1.
     *    rho: score ranks [3,2,1] (mean 2, dev [1,0,-1]), rank ranks [2.5,2.5,1]
     *    (mean 2, dev [.5,.5,-1]); cov 0.5 + 1 = 1.5, vars 2 and 1.5:
     *    1.5/sqrt(3) = sqrt(3)/2.
     *    tau-b: C = 2, D = 0, score ties 0, rank ties 1: 2/sqrt(3*2) = 2/sqrt(6).
     * Together: pairs 4, pairwise 1, exact 1/2, five_best 3/3,
     * rho = (1 + sqrt(3)/2)/2, tau = (1 + 2/sqrt(6))/2. */
    int r[] = {0, 0, 1};
    double sa[] = {5, 5, 2}, sb[] = {5, 4, 2};
    srlm_ranked_group g[] = {{3, r, sa}, {3, r, sb}};
    srlm_rm_metrics m = run(g, 2);
    CHECK(m.pairs == 4 && m.groups == 2 && m.groups_all_tied == 0);
    CHECK(m.pairwise_accuracy == 1 && m.tie_rate == 0 && m.exact_match == 0.5);
    CHECK(m.five_best == 1);
    CHECK_MSG(NEAR(m.spearman, (1 + sqrt(3.0) / 2) / 2), "rho %.17g", m.spearman);
    CHECK_MSG(NEAR(m.kendall_tau_b, (1 + 2 / sqrt(6.0)) / 2), "tau %.17g", m.kendall_tau_b);

    /* ranks need not start at 0: the top is the group's smallest rank (2 here) */
    int r2[] = {3, 2, 4};
    double s2[] = {4, 5, 1};
    srlm_ranked_group h = {3, r2, s2};
    m = run(&h, 1);
    CHECK(m.five_best == 1 && m.pairwise_accuracy == 1 && m.exact_match == 1);
}

static void test_bad_input(void) {
    int r[] = {0, 1};
    double over[] = {5.5, 1}, inf[] = {INFINITY, 1}, ok[] = {1, 2};
    int neg[] = {0, -1};
    srlm_rm_metrics m;
    srlm_ranked_group g = {2, r, over};
    CHECK(srlm_rm_metrics_compute(&g, 1, &m) == SRLM_BAD_INPUT);
    CHECK(strstr(srlm_last_error(), "group 0 reply 0") != NULL);
    CHECK(m.groups == 0 && isnan(m.pairwise_accuracy));
    g.score = inf;
    CHECK(srlm_rm_metrics_compute(&g, 1, &m) == SRLM_BAD_INPUT);
    g.score = ok;
    g.human_rank = neg;
    CHECK(srlm_rm_metrics_compute(&g, 1, &m) == SRLM_BAD_INPUT);
    g.human_rank = NULL;
    CHECK(srlm_rm_metrics_compute(&g, 1, &m) == SRLM_BAD_INPUT);
    g.human_rank = r;
    g.n_replies = -1;
    CHECK(srlm_rm_metrics_compute(&g, 1, &m) == SRLM_BAD_INPUT);
    CHECK(srlm_rm_metrics_compute(&g, -1, &m) == SRLM_BAD_INPUT);
    CHECK(srlm_rm_metrics_compute(NULL, 1, &m) == SRLM_BAD_INPUT);
    g.n_replies = 2;
    CHECK(srlm_rm_metrics_compute(&g, 1, NULL) == SRLM_BAD_INPUT);
}

/* ---- against scipy ---- */

#define MAXR 16

static double json_num(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN; /* null -> NAN */
}

static void test_against_scipy(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/eval/correlations.json",
             test_env("SRLM_FIXTURES", "tests/fixtures"));
    char *text = test_read_file(path, NULL);
    CHECK_MSG(text != NULL, "cannot read %s", path);
    if (!text) return;
    cJSON *root = cJSON_Parse(text);
    free(text);
    CHECK_MSG(root != NULL, "%s: not JSON", path);
    if (!root) return;

    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(root, "groups");
    int n = cJSON_GetArraySize(groups);
    CHECK(n >= 100);
    int    (*ranks)[MAXR] = calloc((size_t)n, sizeof *ranks);
    double (*scores)[MAXR] = calloc((size_t)n, sizeof *scores);
    srlm_ranked_group *g = calloc((size_t)n, sizeof *g);
    double worst = 0;
    long dropped = 0;
    for (int k = 0; k < n && ranks && scores && g; k++) {
        const cJSON *grp = cJSON_GetArrayItem(groups, k);
        const cJSON *jr = cJSON_GetObjectItemCaseSensitive(grp, "human_rank");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(grp, "score");
        int nr = cJSON_GetArraySize(jr);
        CHECK(nr <= MAXR && nr == cJSON_GetArraySize(js));
        if (nr > MAXR) nr = MAXR;
        for (int i = 0; i < nr; i++) {
            const cJSON *sv = cJSON_GetArrayItem(js, i);
            ranks[k][i] = cJSON_GetArrayItem(jr, i)->valueint;
            scores[k][i] = cJSON_IsNumber(sv) ? sv->valuedouble : NAN;
            dropped += !cJSON_IsNumber(sv);
        }
        g[k] = (srlm_ranked_group){nr, ranks[k], scores[k]};

        srlm_rm_metrics m = run(&g[k], 1);
        double rho = json_num(grp, "spearman"), tau = json_num(grp, "kendall_tau_b");
        CHECK_MSG(m.groups == 1, "group %d not usable", k);
        if (isnan(rho)) {
            CHECK_MSG(m.groups_all_tied == 1 && isnan(m.spearman) && isnan(m.kendall_tau_b),
                      "group %d: scipy nan, srlm rho %g tau %g", k, m.spearman, m.kendall_tau_b);
            continue;
        }
        double d1 = fabs(m.spearman - rho), d2 = fabs(m.kendall_tau_b - tau);
        if (d1 > worst) worst = d1;
        if (d2 > worst) worst = d2;
        CHECK_MSG(d1 <= TOL, "group %d: rho %.17g, scipy %.17g", k, m.spearman, rho);
        CHECK_MSG(d2 <= TOL, "group %d: tau-b %.17g, scipy %.17g", k, m.kendall_tau_b, tau);
    }
    if (ranks && scores && g) {
        srlm_rm_metrics m = run(g, n);
        CHECK(m.groups == n && m.groups_too_small == 0 && m.replies_dropped == dropped);
        CHECK(m.groups_all_tied == (long)json_num(root, "groups_all_tied"));
        CHECK_MSG(fabs(m.spearman - json_num(root, "mean_spearman")) <= TOL, "mean rho %.17g",
                  m.spearman);
        CHECK_MSG(fabs(m.kendall_tau_b - json_num(root, "mean_kendall_tau_b")) <= TOL,
                  "mean tau %.17g", m.kendall_tau_b);
        CHECK(m.pairwise_accuracy > 0.5 && m.pairwise_accuracy <= 1); /* scores follow ranks */
        printf("scipy: %d groups (%ld all tied, %ld replies dropped), worst |diff| %.3g\n", n,
               m.groups_all_tied, dropped, worst);
    } else {
        CHECK_MSG(0, "out of memory");
    }
    free(ranks);
    free(scores);
    free(g);
    cJSON_Delete(root);
}

int main(void) {
    test_perfect_and_reversed();
    test_score_ties();
    test_drops_small_and_tied_groups();
    test_human_ties();
    test_bad_input();
    test_against_scipy();
    TEST_DONE();
}
