/* The demo's seed data: every IFT answer to an instruction is correct and its
 * letter pair is a training pair, every lesson lists exactly the words that fit,
 * every self-instruct example is answered with an instruction of the task's
 * form, every EFT judgement is the rubric's, the EFT mix has both answers for
 * every criterion, evaluation instructions use only held-out pairs, and the
 * files are the same for the same seed. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo/demo_data.h"
#include "pipeline/judge.h"
#include "test.h"

static int check_lines(const char *path, int (*fn)(const cJSON *, void *), void *ctx, int *n) {
    size_t len;
    char *text = test_read_file(path, &len);
    if (!text) return 0;
    int bad = 0;
    *n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        bad += !j || !fn(j, ctx);
        cJSON_Delete(j);
        (*n)++;
    }
    free(text);
    return bad == 0;
}

typedef struct { const srlm_lexicon *lx; const srlm_demo_data_config *c; } env;

static int lessons, self_instruct;

/* A lesson lists each fitting word once, and nothing else. */
static int lesson_ok(const srlm_lexicon *lx, const char *p, const char *r) {
    char f = 0, l = 0;
    if (sscanf(p, "List the words that start with '%c' and end with '%c'.", &f, &l) == 2) {}
    else if (sscanf(p, "List the words that start with '%c'.", &f) == 1) l = 0;
    else if (sscanf(p, "List the words that end with '%c'.", &l) == 1) f = 0;
    else return 0;
    int want = 0, got = 0;
    for (int i = 0; i < lx->n_words; i++) {
        const char *w = lx->words[i];
        if ((!f || w[0] == f) && (!l || w[strlen(w) - 1] == l)) want++;
    }
    char buf[8192];
    snprintf(buf, sizeof buf, "%s", r);
    char *save = NULL; /* strtok_r: the caller is inside a strtok loop over lines */
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        if (!srlm_lexicon_contains(lx, w, strlen(w)) || (f && w[0] != f) || (l && w[strlen(w) - 1] != l)) return 0;
        got++;
    }
    lessons++;
    return got == want;
}

static int ift_ok(const cJSON *j, void *ctx) {
    const env *e = ctx;
    const char *p = cJSON_GetObjectItem(j, "prompt")->valuestring, *r = cJSON_GetObjectItem(j, "response")->valuestring;
    srlm_task t;
    if (!strncmp(p, "List the words", 14)) return lesson_ok(e->lx, p, r);
    if (!strncmp(p, "Here are some tasks:\n1. ", 24)) { self_instruct++; return srlm_task_parse(r, &t); }
    return srlm_task_parse(p, &t) && srlm_task_score(e->lx, &t, r, NULL) == 5 &&
           srlm_demo_pair_in_train(e->c, t.first, t.last);
}

static int eft_yes[5], eft_no[5];

static int eft_ok(const cJSON *j, void *ctx) {
    const env *e = ctx;
    const char *p = cJSON_GetObjectItem(j, "prompt")->valuestring, *r = cJSON_GetObjectItem(j, "response")->valuestring;
    char instr[256], answer[256];
    const char *q = strstr(p, "Question: "), *a = strstr(p, "\nAnswer: ");
    if (!q || !a) return 0;
    snprintf(instr, sizeof instr, "%.*s", (int)(a - q - 10), q + 10);
    snprintf(answer, sizeof answer, "%s", a + 9);
    srlm_task t;
    char want[512];
    if (!srlm_task_parse(instr, &t)) return 0;
    unsigned c;
    srlm_task_score(e->lx, &t, answer, &c);
    for (int i = 0; i < 5; i++) (c >> i & 1u ? eft_yes : eft_no)[i]++;
    srlm_task_judgement(e->lx, &t, answer, want, sizeof want);
    return !strcmp(r, want);
}

static int eval_ok(const cJSON *j, void *ctx) {
    const env *e = ctx;
    srlm_task t;
    return srlm_task_parse(cJSON_GetObjectItem(j, "prompt")->valuestring, &t) &&
           !srlm_demo_pair_in_train(e->c, t.first, t.last);
}

int main(void) {
    char dir[1024], dir2[1100], path[1200], path2[1200];
    snprintf(dir, sizeof dir, "%s/demo_data", test_env("SRLM_TMP", "/tmp"));
    snprintf(dir2, sizeof dir2, "%s/again", dir);
    srlm_demo_data_config c = {300, 11, 500, 500, 50, 0.5, 2, 1, 40};
    srlm_lexicon lx;
    CHECK_OK(srlm_lexicon_make(&lx, c.n_words, c.seed));
    CHECK_OK(srlm_demo_write_data(dir, &c, &lx));
    CHECK_OK(srlm_demo_write_data(dir2, &c, &lx));
    env e = {&lx, &c};
    int n;
    snprintf(path, sizeof path, "%s/ift.jsonl", dir);
    CHECK_MSG(check_lines(path, ift_ok, &e, &n) && n >= 500, "ift.jsonl (%d lines)", n);
    CHECK_MSG(lessons > 2 * 20 && self_instruct == 40, "%d lessons, %d self-instruct examples", lessons, self_instruct);
    snprintf(path, sizeof path, "%s/eft.jsonl", dir);
    CHECK_MSG(check_lines(path, eft_ok, &e, &n) && n == 500, "eft.jsonl (%d lines)", n);
    for (int i = 0; i < 5; i++) /* no criterion is (almost) always met: the judge must look */
        CHECK_MSG(eft_no[i] >= 500 / 20 && eft_yes[i] >= 500 / 3, "criterion %d: %d yes, %d no", i + 1, eft_yes[i], eft_no[i]);
    printf("EFT criteria yes/no:");
    for (int i = 0; i < 5; i++) printf(" %d/%d", eft_yes[i], eft_no[i]);
    printf("\n");
    snprintf(path, sizeof path, "%s/eval.jsonl", dir);
    CHECK_MSG(check_lines(path, eval_ok, &e, &n) && n == 50, "eval.jsonl (%d lines)", n);
    const char *files[] = {"corpus.txt", "ift.jsonl", "eft.jsonl", "eval.jsonl", "seed_prompts.jsonl", "judge.txt",
                           "self_instruct.txt"};
    for (int i = 0; i < 7; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        snprintf(path2, sizeof path2, "%s/%s", dir2, files[i]);
        size_t a = 0, b = 0;
        char *x = test_read_file(path, &a), *y = test_read_file(path2, &b);
        CHECK_MSG(x && y && a == b && !memcmp(x, y, a), "%s differs between two runs", files[i]);
        free(x);
        free(y);
    }
    /* the judge template file renders exactly the demo's judge prompt */
    srlm_judge_template jt;
    snprintf(path, sizeof path, "%s/judge.txt", dir);
    CHECK_OK(srlm_judge_template_load(&jt, path));
    char *rendered = NULL, want[512];
    const char *q = "Name a word from the word list that starts with 'k' and ends with 'o'.";
    CHECK_OK(srlm_judge_render(&jt, q, "kobo", &rendered));
    srlm_demo_judge_prompt(q, "kobo", want, sizeof want);
    CHECK_MSG(rendered && !strcmp(rendered, want), "judge.txt renders '%s'", rendered ? rendered : "");
    free(rendered);
    srlm_judge_template_free(&jt);
    srlm_lexicon_free(&lx);
    TEST_DONE();
}
