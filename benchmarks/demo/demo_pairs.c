/* What the judge's pairs of one demo iteration are worth, against the truth:
 *
 *   demo_pairs RUN_DIR ITERATION [SEED]
 *
 * RUN_DIR is a `srlm demo` run folder (SEED: its --seed, default 1234). Reads
 * iter-T/candidates and iter-T/judgements, scores every candidate with the
 * task's rubric, and prints
 *   - the judge's pairwise agreement with the truth over each prompt's own
 *     candidates (mean judge score vs rubric score; ties 1/2);
 *   - for several minimum score gaps, the best-vs-worst pairs the loop would
 *     build and what they truly are: chosen truly better / right vs right /
 *     equal and wrong / chosen truly worse.
 * A pair between two right answers pushes a right answer down; that is the
 * noise a gap is meant to remove. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>

#include <cjson/cJSON.h>

#include "demo/demo_eval.h"
#include "demo/demo_recipe.h"
#include "demo/task.h"
#include "pipeline/parts.h"
#include "../bench_util.h"

static int count_parts(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "part-", 5) && strstr(e->d_name, ".jsonl.done")) n++;
    closedir(d);
    return n;
}

static cJSON **load(const char *run, int t, const char *what, int *n) {
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/iter-%d/%s", run, t, what);
    cJSON **r;
    if (srlm_parts_load(dir, count_parts(dir), &r, n) != SRLM_OK) {
        fprintf(stderr, "demo_pairs: %s\n", srlm_last_error());
        exit(1);
    }
    return r;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: demo_pairs RUN_DIR ITERATION [SEED]\n"); return 2; }
    const char *run = argv[1];
    int t, seed = 1234;
    if (!bench_arg_int("demo_pairs", "ITERATION", argv[2], 1, 1000, &t) ||
        (argc > 3 && !bench_arg_int("demo_pairs", "SEED", argv[3], 0, 2147483647, &seed)))
        return 2;
    srlm_demo_recipe r;
    srlm_demo_recipe_default(&r);
    srlm_lexicon lx;
    if (srlm_lexicon_make(&lx, r.data.n_words, seed) != SRLM_OK) return 1;
    int nc, nj;
    cJSON **c = load(run, t, "candidates", &nc), **j = load(run, t, "judgements", &nj);
    if (nc == 0 || nj % nc) { fprintf(stderr, "demo_pairs: %d candidates, %d judgements\n", nc, nj); return 1; }
    const int S = nj / nc;
    int N = 1; /* candidates per prompt: the run of equal prompt_id */
    while (N < nc && !strcmp(cJSON_GetObjectItem(c[N], "prompt_id")->valuestring,
                             cJSON_GetObjectItem(c[0], "prompt_id")->valuestring)) N++;
    double *mean = calloc((size_t)nc, sizeof *mean);
    int *truth = calloc((size_t)nc, sizeof *truth);
    int right = 0;
    for (int i = 0; i < nc; i++) {
        srlm_task task;
        const char *p = cJSON_GetObjectItem(c[i], "prompt")->valuestring;
        truth[i] = srlm_task_parse(p, &task) ? srlm_task_score(&lx, &task, cJSON_GetObjectItem(c[i], "response")->valuestring, NULL) : -1;
        right += truth[i] == 5;
        double s = 0;
        int v = 0;
        for (int k = 0; k < S; k++) {
            const cJSON *sc = cJSON_GetObjectItem(j[i * S + k], "score");
            if (cJSON_IsNumber(sc)) { s += sc->valuedouble; v++; }
        }
        mean[i] = v ? s / v : NAN;
    }
    srlm_rm_metrics own;
    if (srlm_demo_iteration_judge(run, t, &lx, &own) != SRLM_OK) {
        fprintf(stderr, "demo_pairs: %s\n", srlm_last_error());
        return 1;
    }
    printf("%s iteration %d: %d prompts x %d candidates (%.3f right), %d judgements each\n", run, t, nc / N, N,
           (double)right / nc, S);
    printf("judge agreement with the truth on own candidates: %.3f over %ld pairs of unequal truth\n",
           own.pairwise_accuracy, own.pairs);
    printf("%6s %6s %8s %10s %10s %8s %13s\n", "gap", "pairs", "better", "right=right", "wrong=wrong", "worse",
           "chosen right");
    const double gaps[] = {0, 1.0 / 3, 2.0 / 3, 1, 4.0 / 3, 2};
    for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
        int pairs = 0, better = 0, rr = 0, ww = 0, worse = 0, chosen_right = 0;
        for (int p = 0; p + N <= nc; p += N) {
            int hi = -1, lo = -1;
            for (int a = p; a < p + N; a++) {
                if (isnan(mean[a])) continue;
                if (hi < 0 || mean[a] > mean[hi]) hi = a;
                if (lo < 0 || mean[a] < mean[lo]) lo = a;
            }
            if (hi < 0 || mean[hi] - mean[lo] <= 0 || mean[hi] - mean[lo] < gaps[g] - 1e-9) continue;
            pairs++;
            better += truth[hi] > truth[lo];
            worse += truth[hi] < truth[lo];
            rr += truth[hi] == truth[lo] && truth[hi] == 5;
            ww += truth[hi] == truth[lo] && truth[hi] < 5;
            chosen_right += truth[hi] == 5;
        }
        printf("%6.2f %6d %8d %10d %10d %8d %13d\n", gaps[g], pairs, better, rr, ww, worse, chosen_right);
    }
    srlm_records_free(c, nc);
    srlm_records_free(j, nj);
    free(mean);
    free(truth);
    srlm_lexicon_free(&lx);
    return 0;
}
