/* DPO loss against TRL 0.12.2's own DPOTrainer.dpo_loss (fixtures written by
 * tests/fixtures/make_dpo_fixtures.py): batch loss, per-pair losses, the four
 * reward metrics TRL logs, and d(loss)/d(policy log-prob) from torch autograd;
 * sigmoid with beta 0.1/0.5 and label smoothing 0/0.1, ipo with beta 0.1/0.5.
 *
 * Tolerance: relative 1e-9 per value. Both sides compute in float64 with the same
 * operations in the same order; what differs is only libm vs torch's exp/log1p
 * (~1 ulp) and torch's summation order in mean(), i.e. ~1e-15 relative. The
 * accuracy metric must match exactly.
 *
 * Also: the gradient against central finite differences of srlm_dpo_compute
 * itself, the micro-batch rescaling stated in dpo_loss.h, stability of the
 * log-sigmoid at extreme arguments, and bad input (non-finite values, n <= 0,
 * bad parameters, missing/zero token counts for ipo). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "train/dpo_loss.h"

#define REL_TOL 1e-9
#define MAXN 16

static double worst_rel = 0; /* largest relative difference against TRL, reported */

static int json_doubles(const cJSON *obj, const char *key, double *v) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, key);
    int n = cJSON_GetArraySize(arr);
    if (!cJSON_IsArray(arr) || n > MAXN) return -1;
    for (int i = 0; i < n; i++) v[i] = cJSON_GetArrayItem(arr, i)->valuedouble;
    return n;
}

static int json_ints(const cJSON *obj, const char *key, int *v) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, key);
    int n = cJSON_GetArraySize(arr);
    if (!cJSON_IsArray(arr) || n > MAXN) return -1;
    for (int i = 0; i < n; i++) v[i] = cJSON_GetArrayItem(arr, i)->valueint;
    return n;
}

static double num(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* |got - want| <= REL_TOL * |want| (so want == 0 demands exactly 0). */
static void check_rel(double got, double want, const char *what, const char *name, int i) {
    double rel = want != 0 ? fabs(got - want) / fabs(want) : fabs(got);
    if (rel > worst_rel) worst_rel = rel;
    CHECK_MSG(rel <= REL_TOL, "%s: %s[%d]: got %.17g, TRL %.17g (rel %.3g)", name, what, i, got,
              want, rel);
}

typedef struct {
    int    n;
    double pc[MAXN], pr[MAXN], rc[MAXN], rr[MAXN];
    int    nc[MAXN], nr[MAXN];
} batch;

static int load_batch(const cJSON *b, batch *out) {
    int n = json_doubles(b, "logp_c", out->pc);
    if (n < 1 || json_doubles(b, "logp_r", out->pr) != n || json_doubles(b, "ref_c", out->rc) != n ||
        json_doubles(b, "ref_r", out->rr) != n || json_ints(b, "n_tok_c", out->nc) != n ||
        json_ints(b, "n_tok_r", out->nr) != n)
        return -1;
    out->n = n;
    return 0;
}

static srlm_status run(const srlm_dpo_params *p, const batch *b, srlm_dpo_metrics *m, double *gc,
                       double *gr) {
    return srlm_dpo_compute(p, b->n, b->pc, b->pr, b->rc, b->rr, b->nc, b->nr, m, gc, gr);
}

static void check_against_trl(const cJSON *c, const batch *b, const srlm_dpo_params *p,
                              const char *name) {
    int n = b->n;
    srlm_dpo_metrics m;
    double gc[MAXN], gr[MAXN];
    CHECK_OK(run(p, b, &m, gc, gr));
    check_rel(m.loss, num(c, "loss"), "loss", name, 0);
    check_rel(m.reward_chosen, num(c, "reward_chosen"), "rewards/chosen", name, 0);
    check_rel(m.reward_rejected, num(c, "reward_rejected"), "rewards/rejected", name, 0);
    check_rel(m.reward_margin, num(c, "reward_margin"), "rewards/margins", name, 0);
    CHECK_MSG(m.reward_accuracy == num(c, "reward_accuracy"), "%s: rewards/accuracies %.17g vs %.17g",
              name, m.reward_accuracy, num(c, "reward_accuracy"));

    double want_gc[MAXN], want_gr[MAXN], losses[MAXN], rew_c[MAXN], rew_r[MAXN];
    CHECK(json_doubles(c, "dlogp_c", want_gc) == n && json_doubles(c, "dlogp_r", want_gr) == n);
    CHECK(json_doubles(c, "losses", losses) == n);
    CHECK(json_doubles(c, "rewards_chosen", rew_c) == n && json_doubles(c, "rewards_rejected", rew_r) == n);
    for (int i = 0; i < n; i++) {
        check_rel(gc[i], want_gc[i], "dloss/dlogp_c", name, i);
        check_rel(gr[i], want_gr[i], "dloss/dlogp_r", name, i);
    }

    /* Per pair: a batch of one gives loss_i and the pair's rewards. */
    for (int i = 0; i < n; i++) {
        srlm_dpo_metrics mi;
        double g1c, g1r;
        CHECK_OK(srlm_dpo_compute(p, 1, &b->pc[i], &b->pr[i], &b->rc[i], &b->rr[i], &b->nc[i],
                                  &b->nr[i], &mi, &g1c, &g1r));
        CHECK_MSG(isfinite(mi.loss), "%s: loss of pair %d not finite", name, i);
        check_rel(mi.loss, losses[i], "losses", name, i);
        check_rel(mi.reward_chosen, rew_c[i], "chosen_rewards", name, i);
        check_rel(mi.reward_rejected, rew_r[i], "rejected_rewards", name, i);
        /* the mean over n scales each pair's gradient by 1/n */
        check_rel(g1c / n, want_gc[i], "dlogp_c (n=1, /n)", name, i);
    }
}

/* Central differences of srlm_dpo_compute's own loss. Log-probs ~50 and losses
 * ~50: h = 1e-4 leaves rounding noise ~eps*50/h ~ 1e-10, truncation ~h^2. */
static void check_finite_differences(const batch *b0, const srlm_dpo_params *p, const char *name) {
    batch b = *b0;
    srlm_dpo_metrics m, mp, mm;
    double gc[MAXN], gr[MAXN];
    CHECK_OK(run(p, &b, &m, gc, gr));
    const double h = 1e-4;
    for (int i = 0; i < b.n; i++) {
        for (int side = 0; side < 2; side++) {
            double *x = side ? &b.pr[i] : &b.pc[i];
            double g = side ? gr[i] : gc[i], x0 = *x;
            *x = x0 + h;
            CHECK_OK(run(p, &b, &mp, NULL, NULL));
            *x = x0 - h;
            CHECK_OK(run(p, &b, &mm, NULL, NULL));
            *x = x0;
            double fd = (mp.loss - mm.loss) / (2 * h);
            CHECK_MSG(fabs(fd - g) <= 1e-6 * fabs(g) + 1e-8,
                      "%s: pair %d %s: gradient %.12g, finite difference %.12g", name, i,
                      side ? "rejected" : "chosen", g, fd);
        }
    }
}

/* dpo_loss.h: micro-batch gradients times n_micro/N sum to the global batch's. */
static void check_micro_batches(const batch *b, const srlm_dpo_params *p, const char *name) {
    srlm_dpo_metrics full, part;
    double gc[MAXN], gr[MAXN], pc[MAXN], pr[MAXN];
    CHECK_OK(run(p, b, &full, gc, gr));
    int split = b->n / 2, N = b->n;
    double loss = 0;
    for (int k = 0; k < 2; k++) {
        int o = k ? split : 0, n = k ? N - split : split;
        CHECK_OK(srlm_dpo_compute(p, n, b->pc + o, b->pr + o, b->rc + o, b->rr + o, b->nc + o,
                                  b->nr + o, &part, pc + o, pr + o));
        double s = (double)n / N;
        loss += part.loss * s;
        for (int i = o; i < o + n; i++) pc[i] *= s, pr[i] *= s;
    }
    CHECK_MSG(fabs(loss - full.loss) <= 1e-12 * fabs(full.loss), "%s: micro-batch loss %.17g vs %.17g",
              name, loss, full.loss);
    for (int i = 0; i < N; i++)
        CHECK_MSG(fabs(pc[i] - gc[i]) <= 1e-12 * fabs(gc[i]) && fabs(pr[i] - gr[i]) <= 1e-12 * fabs(gr[i]),
                  "%s: micro-batch gradient of pair %d differs", name, i);
}

static void test_fixtures(void) {
    const char *dir = test_env("SRLM_FIXTURES", "tests/fixtures");
    char path[1024];
    snprintf(path, sizeof path, "%s/dpo/reference.json", dir);
    char *text = test_read_file(path, NULL);
    CHECK_MSG(text != NULL, "cannot read %s", path);
    if (!text) return;
    cJSON *root = cJSON_Parse(text);
    free(text);
    CHECK_MSG(root != NULL, "%s is not JSON", path);
    if (!root) return;

    const cJSON *batches = cJSON_GetObjectItemCaseSensitive(root, "batches");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    int n_cases = 0, n_ipo = 0, n_ls = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        batch b;
        int bi = (int)num(c, "batch");
        CHECK(load_batch(cJSON_GetArrayItem(batches, bi), &b) == 0);
        const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "kind"));
        srlm_dpo_params p = {
            .kind = kind && strcmp(kind, "ipo") == 0 ? SRLM_DPO_KIND_IPO : SRLM_DPO_KIND_SIGMOID,
            .beta = num(c, "beta"),
            .label_smoothing = num(c, "label_smoothing"),
        };
        CHECK(kind && (strcmp(kind, "ipo") == 0 || strcmp(kind, "sigmoid") == 0));
        char name[96];
        snprintf(name, sizeof name, "batch %d %s beta=%g ls=%g", bi, kind ? kind : "?", p.beta,
                 p.label_smoothing);
        check_against_trl(c, &b, &p, name);
        check_finite_differences(&b, &p, name);
        check_micro_batches(&b, &p, name);
        n_cases++;
        n_ipo += p.kind == SRLM_DPO_KIND_IPO;
        n_ls += p.label_smoothing > 0;
    }
    CHECK_MSG(n_cases == 12 && n_ipo == 4 && n_ls == 4, "fixture has %d cases (%d ipo, %d smoothed)",
              n_cases, n_ipo, n_ls);
    cJSON_Delete(root);
    printf("%d TRL cases, largest relative difference %.3g\n", n_cases, worst_rel);
}

static void test_stability(void) {
    /* log(sigmoid(x)) at the extremes: no overflow, no -inf, no NaN */
    CHECK(srlm_log_sigmoid(-1000) == -1000);
    CHECK(srlm_log_sigmoid(1000) == 0);
    CHECK(fabs(srlm_log_sigmoid(0) + log(2)) < 1e-16);
    CHECK(fabs(srlm_log_sigmoid(40) + exp(-40)) <= 1e-15 * exp(-40)); /* the tail, not 0 */
    CHECK(srlm_sigmoid(-1000) == 0 && srlm_sigmoid(1000) == 1);
    CHECK(srlm_sigmoid(-700) > 0 && fabs(srlm_sigmoid(-700) / exp(-700) - 1) < 1e-14);
    CHECK(fabs(srlm_sigmoid(0.3) + srlm_sigmoid(-0.3) - 1) < 1e-16);

    /* A margin of 1e5 nats with beta 0.5: loss ~0 one way, 5e4 the other. */
    srlm_dpo_params p = {SRLM_DPO_KIND_SIGMOID, 0.5, 0.0};
    double pc[2] = {-1.0, -100001.0}, pr[2] = {-100001.0, -1.0}, rc[2] = {-1, -1}, rr[2] = {-1, -1};
    double gc[2], gr[2];
    srlm_dpo_metrics m;
    CHECK_OK(srlm_dpo_compute(&p, 2, pc, pr, rc, rr, NULL, NULL, &m, gc, gr));
    CHECK(fabs(m.loss - 0.5 * 5e4) < 1e-9);
    CHECK(gc[0] == -0.0 && gr[0] == 0.0);              /* saturated: exactly no push */
    CHECK(fabs(gc[1] + 0.25) < 1e-15 && fabs(gr[1] - 0.25) < 1e-15); /* -beta/n */
    CHECK(m.reward_accuracy == 0.5);
}

static void test_bad_input(void) {
    srlm_dpo_params p = {SRLM_DPO_KIND_SIGMOID, 0.1, 0.0};
    double pc[3] = {-5, -6, -7}, pr[3] = {-8, -9, -10}, rc[3] = {-5, -6, -7}, rr[3] = {-8, -9, -10};
    int nt[3] = {4, 5, 6}, zero[3] = {4, 0, 6};
    srlm_dpo_metrics m = {.loss = 123};
    double gc[3] = {7, 7, 7};

    /* non-finite values name the pair; nothing is written */
    const double bad[3] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++) {
        for (int which = 0; which < 4; which++) {
            double *arr = which == 0 ? pc : which == 1 ? pr : which == 2 ? rc : rr;
            double keep = arr[2];
            arr[2] = bad[k];
            CHECK(srlm_dpo_compute(&p, 3, pc, pr, rc, rr, NULL, NULL, &m, gc, NULL) == SRLM_BAD_INPUT);
            CHECK_MSG(strstr(srlm_last_error(), "pair 2") != NULL, "message: %s", srlm_last_error());
            arr[2] = keep;
        }
    }
    CHECK(m.loss == 123 && gc[0] == 7);

    /* n <= 0: TRL's mean over nothing is NaN; we refuse */
    CHECK(srlm_dpo_compute(&p, 0, pc, pr, rc, rr, NULL, NULL, &m, NULL, NULL) == SRLM_BAD_INPUT);
    CHECK(srlm_dpo_compute(&p, -1, pc, pr, rc, rr, NULL, NULL, &m, NULL, NULL) == SRLM_BAD_INPUT);
    CHECK(srlm_dpo_compute(&p, 3, pc, pr, rc, rr, NULL, NULL, NULL, NULL, NULL) == SRLM_BAD_INPUT);
    CHECK(srlm_dpo_compute(&p, 3, pc, NULL, rc, rr, NULL, NULL, &m, NULL, NULL) == SRLM_BAD_INPUT);

    /* parameters */
    srlm_dpo_params q = p;
    q.beta = 0;
    CHECK(srlm_dpo_compute(&q, 3, pc, pr, rc, rr, NULL, NULL, &m, NULL, NULL) == SRLM_BAD_INPUT);
    q.beta = NAN;
    CHECK(srlm_dpo_compute(&q, 3, pc, pr, rc, rr, NULL, NULL, &m, NULL, NULL) == SRLM_BAD_INPUT);
    q = p;
    q.label_smoothing = 0.6;
    CHECK(srlm_dpo_compute(&q, 3, pc, pr, rc, rr, NULL, NULL, &m, NULL, NULL) == SRLM_BAD_INPUT);
    q = p;
    q.kind = (srlm_dpo_kind)7;
    CHECK(srlm_dpo_compute(&q, 3, pc, pr, rc, rr, NULL, NULL, &m, NULL, NULL) == SRLM_BAD_INPUT);

    /* ipo needs the token counts, each >= 1 */
    q = p;
    q.kind = SRLM_DPO_KIND_IPO;
    CHECK(srlm_dpo_compute(&q, 3, pc, pr, rc, rr, NULL, nt, &m, NULL, NULL) == SRLM_BAD_INPUT);
    CHECK(srlm_dpo_compute(&q, 3, pc, pr, rc, rr, nt, zero, &m, NULL, NULL) == SRLM_BAD_INPUT);
    CHECK_MSG(strstr(srlm_last_error(), "pair 1") != NULL, "message: %s", srlm_last_error());
    CHECK_OK(srlm_dpo_compute(&q, 3, pc, pr, rc, rr, nt, nt, &m, NULL, NULL));
    /* sigmoid ignores the counts, even zeros */
    CHECK_OK(srlm_dpo_compute(&p, 3, pc, pr, rc, rr, zero, zero, &m, NULL, NULL));
    /* policy == reference: logits 0, loss log 2, no reward, no accuracy */
    CHECK(fabs(m.loss - log(2)) < 1e-15 && m.reward_margin == 0 && m.reward_accuracy == 0);
}

int main(void) {
    test_fixtures();
    test_stability();
    test_bad_input();
    TEST_DONE();
}
