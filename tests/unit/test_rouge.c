/* ROUGE-L (src/pipeline/rouge.c): hand cases with the arithmetic in comments
 * (punctuation, case, repeated words, order, empty and token-less texts, non-ASCII
 * and invalid UTF-8), then agreement with rouge-score 0.1.2's
 * RougeScorer(['rougeL']) on 220 text pairs and 12 candidate-vs-pool maxima
 * (fixtures: tests/fixtures/make_eval_fixtures.py).
 *
 * Tolerance 1e-9 absolute; the C code does the same float64 operations as
 * rouge_scorer._score_lcs, so the values are in fact equal. The tokenizer is also
 * checked on its own: F = 1 exactly when two token lists are identical, so
 * srlm_rouge_l(a, " ".join(rouge-score's tokens of a)) must be 1. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/rouge.h"
#include "test.h"

#define TOL 1e-9

static void check_f(const char *a, const char *b, double want) {
    double f = srlm_rouge_l(a, b), g = srlm_rouge_l(b, a);
    CHECK_MSG(fabs(f - want) <= TOL, "rougeL(\"%s\", \"%s\") = %.17g, want %.17g", a ? a : "(null)",
              b ? b : "(null)", f, want);
    CHECK_MSG(f == g, "not symmetric: %.17g vs %.17g", f, g);
}

static void test_hand_cases(void) {
    /* 6 vs 5 tokens, LCS "the cat on the mat" = 5: P = 5/5, R = 5/6,
     * F = 2 * (5/6) / (1 + 5/6) = 10/11 */
    check_f("the cat sat on the mat", "the cat on the mat", 10.0 / 11);
    /* case and punctuation vanish: both are [hello, world] */
    check_f("Hello, World!", "hello   world", 1);
    check_f("x_y e-mail", "X Y e mail", 1); /* '_' and '-' separate */
    /* repeated words: [a a a] vs [a]: LCS 1, P = 1, R = 1/3, F = (2/3)/(4/3) = 1/2 */
    check_f("a a a", "a", 0.5);
    /* reversed: LCS 1 of 4, P = R = 1/4 */
    check_f("a b c d", "d c b a", 0.25);
    /* [1, 2, 3, go] vs [123, go]: LCS 1, P = 1/2, R = 1/4, F = (1/4)/(3/4) = 1/3 */
    check_f("1 2 3 go", "123 go", 1.0 / 3);
    /* empty and token-less texts score 0, even against each other */
    check_f("", "", 0);
    check_f("", "a poem", 0);
    check_f(NULL, "a poem", 0);
    check_f("!!! ...", "!!! ...", 0);
    check_f("a poem", "write", 0); /* no common token */
    /* non-ASCII letters are separators: "café" -> [caf], "naïve" -> [na, ve] */
    check_f("café au lait", "caf au lait", 1);
    check_f("naïve", "na ve", 1);
    check_f("東京 tokyo", "tokyo", 1);
    check_f("１２３", "123", 0); /* full-width digits are not [0-9] */
    /* Python lowercases U+0130 to "i" + U+0307 and the Kelvin sign to "k" */
    check_f("İstanbul", "i stanbul", 1);
    check_f("xİy", "xi y", 1);
    check_f("\xe2\x84\xaa" "elvin 5\xe2\x84\xaa", "kelvin 5k", 1);
    /* invalid UTF-8 bytes are separators (truncated sequences included) */
    check_f("ab\xff" "cd", "ab cd", 1);
    check_f("ab\xc4", "ab", 1);
    check_f("ab\xe2\x84", "ab", 1);
}

static void test_max(void) {
    const char *pool[] = {"write a poem", "explain how rice is cooked", "list five ideas",
                          "explain how rice is cooked"};
    double best;
    int idx;
    /* candidate [explain, how, to, cook, rice] vs pool[1] [explain how rice is cooked]:
     * LCS [explain how rice] = 3, P = R = 3/5 -> 0.6; pool[3] ties, first index wins */
    CHECK_OK(srlm_rouge_l_max("Explain how to cook rice", pool, 4, &best, &idx));
    CHECK(fabs(best - 0.6) <= TOL && idx == 1);
    CHECK_OK(srlm_rouge_l_max("Explain how to cook rice", pool, 4, &best, NULL));
    CHECK(fabs(best - 0.6) <= TOL);
    CHECK_OK(srlm_rouge_l_max("zzz", pool, 4, &best, &idx));
    CHECK(best == 0 && idx == 0);
    CHECK_OK(srlm_rouge_l_max("anything", NULL, 0, &best, &idx));
    CHECK(best == 0 && idx == -1);

    const char *bad_pool[] = {"a", NULL};
    CHECK(srlm_rouge_l_max("a", bad_pool, 2, &best, &idx) == SRLM_BAD_INPUT);
    CHECK(strstr(srlm_last_error(), "pool text 1") != NULL);
    CHECK(srlm_rouge_l_max(NULL, pool, 4, &best, &idx) == SRLM_BAD_INPUT);
    CHECK(srlm_rouge_l_max("a", pool, -1, &best, &idx) == SRLM_BAD_INPUT);
    CHECK(srlm_rouge_l_max("a", NULL, 2, &best, &idx) == SRLM_BAD_INPUT);
    CHECK(srlm_rouge_l_max("a", pool, 4, NULL, &idx) == SRLM_BAD_INPUT);
}

/* Long texts: LCS with one row. [w0..w2999] vs every third of them (1000 tokens):
 * LCS 1000, P = 1, R = 1/3, F = (2/3)/(4/3) = 1/2. */
static void test_long(void) {
    size_t cap = 3000 * 8;
    char *a = malloc(cap), *b = malloc(cap);
    CHECK(a && b);
    if (!a || !b) {
        free(a);
        free(b);
        return;
    }
    size_t na = 0, nb = 0;
    for (int i = 0; i < 3000; i++) {
        na += (size_t)snprintf(a + na, cap - na, "w%d ", i);
        if (i % 3 == 0) nb += (size_t)snprintf(b + nb, cap - nb, "W%d, ", i);
    }
    check_f(a, b, 0.5);
    free(a);
    free(b);
}

static void test_against_rouge_score(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/eval/rouge.json", test_env("SRLM_FIXTURES", "tests/fixtures"));
    char *text = test_read_file(path, NULL);
    CHECK_MSG(text != NULL, "cannot read %s", path);
    if (!text) return;
    cJSON *root = cJSON_Parse(text);
    free(text);
    CHECK_MSG(root != NULL, "%s: not JSON", path);
    if (!root) return;

    const cJSON *pairs = cJSON_GetObjectItemCaseSensitive(root, "pairs");
    int n = cJSON_GetArraySize(pairs), non_ascii = 0;
    CHECK(n >= 200);
    double worst = 0;
    for (int k = 0; k < n; k++) {
        const cJSON *p = cJSON_GetArrayItem(pairs, k);
        const char *a = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "a"));
        const char *b = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "b"));
        const cJSON *fm = cJSON_GetObjectItemCaseSensitive(p, "fmeasure");
        CHECK(a && b && cJSON_IsNumber(fm));
        if (!a || !b || !cJSON_IsNumber(fm)) continue;
        for (const char *c = a; *c; c++) non_ascii += (unsigned char)*c >= 0x80;
        double f = srlm_rouge_l(a, b), d = fabs(f - fm->valuedouble);
        if (d > worst) worst = d;
        CHECK_MSG(d <= TOL, "pair %d: srlm %.17g, rouge-score %.17g\n  a=\"%s\"\n  b=\"%s\"", k, f,
                  fm->valuedouble, a, b);

        /* the tokenizer on its own: a vs its reference tokens joined by spaces */
        const cJSON *toks = cJSON_GetObjectItemCaseSensitive(p, "tokens_a");
        size_t len = 1;
        const cJSON *t;
        cJSON_ArrayForEach(t, toks) len += strlen(cJSON_GetStringValue(t)) + 1;
        char *joined = calloc(len, 1);
        CHECK(joined != NULL);
        if (!joined) continue;
        cJSON_ArrayForEach(t, toks) {
            strcat(joined, cJSON_GetStringValue(t));
            strcat(joined, " ");
        }
        double want = cJSON_GetArraySize(toks) > 0 ? 1.0 : 0.0;
        CHECK_MSG(srlm_rouge_l(a, joined) == want, "pair %d: tokens of \"%s\" differ from [%s]", k,
                  a, joined);
        free(joined);
    }

    const cJSON *pools = cJSON_GetObjectItemCaseSensitive(root, "pools");
    int np = cJSON_GetArraySize(pools);
    CHECK(np > 0);
    for (int k = 0; k < np; k++) {
        const cJSON *p = cJSON_GetArrayItem(pools, k);
        const cJSON *jpool = cJSON_GetObjectItemCaseSensitive(p, "pool");
        int m = cJSON_GetArraySize(jpool);
        const char **pool = calloc((size_t)m + 1, sizeof *pool);
        CHECK(pool != NULL);
        if (!pool) continue;
        for (int i = 0; i < m; i++) pool[i] = cJSON_GetStringValue(cJSON_GetArrayItem(jpool, i));
        const char *cand = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "candidate"));
        double best = -1, want = cJSON_GetObjectItemCaseSensitive(p, "best")->valuedouble;
        int idx = -2, want_idx = cJSON_GetObjectItemCaseSensitive(p, "best_index")->valueint;
        CHECK_OK(srlm_rouge_l_max(cand, pool, m, &best, &idx));
        CHECK_MSG(fabs(best - want) <= TOL && idx == want_idx,
                  "pool %d: best %.17g at %d, rouge-score %.17g at %d", k, best, idx, want,
                  want_idx);
        free(pool);
    }
    printf("rouge-score: %d pairs (%d non-ASCII bytes in a), %d pools, worst |diff| %.3g\n", n,
           non_ascii, np, worst);
    cJSON_Delete(root);
}

int main(void) {
    test_hand_cases();
    test_max();
    test_long();
    test_against_rouge_score();
    TEST_DONE();
}
