/* The demo's seed data: every IFT answer to an instruction is correct and its
 * letter pair is a training pair, every EFT judgement's score is the rubric's,
 * evaluation instructions use only held-out pairs, and the files are the same
 * for the same seed. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo/demo_data.h"
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

static int ift_ok(const cJSON *j, void *ctx) {
    const env *e = ctx;
    const char *p = cJSON_GetObjectItem(j, "prompt")->valuestring, *r = cJSON_GetObjectItem(j, "response")->valuestring;
    srlm_task t;
    if (!srlm_task_parse(p, &t)) return !strncmp(p, "List the words that start with", 30); /* a lesson */
    return srlm_task_score(e->lx, &t, r, NULL) == 5 && srlm_demo_pair_in_train(e->c, t.first, t.last);
}

static int eft_ok(const cJSON *j, void *ctx) {
    const env *e = ctx;
    const char *p = cJSON_GetObjectItem(j, "prompt")->valuestring, *r = cJSON_GetObjectItem(j, "response")->valuestring;
    char instr[256], answer[256];
    const char *q = strstr(p, "Question: "), *a = strstr(p, "\nAnswer: ");
    if (!q || !a) return 0;
    snprintf(instr, sizeof instr, "%.*s", (int)(a - q - 10), q + 10);
    snprintf(answer, sizeof answer, "%s", a + 9);
    srlm_task t;
    int score;
    const char *s = strstr(r, "\nScore: ");
    return srlm_task_parse(instr, &t) && s && sscanf(s, "\nScore: %d", &score) == 1 &&
           score == srlm_task_score(e->lx, &t, answer, NULL);
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
    srlm_demo_data_config c = {300, 11, 500, 500, 50, 0.5};
    srlm_lexicon lx;
    CHECK_OK(srlm_lexicon_make(&lx, c.n_words, c.seed));
    CHECK_OK(srlm_demo_write_data(dir, &c, &lx));
    CHECK_OK(srlm_demo_write_data(dir2, &c, &lx));
    env e = {&lx, &c};
    int n;
    snprintf(path, sizeof path, "%s/ift.jsonl", dir);
    CHECK_MSG(check_lines(path, ift_ok, &e, &n) && n >= 500, "ift.jsonl (%d lines)", n);
    snprintf(path, sizeof path, "%s/eft.jsonl", dir);
    CHECK_MSG(check_lines(path, eft_ok, &e, &n) && n == 500, "eft.jsonl (%d lines)", n);
    snprintf(path, sizeof path, "%s/eval.jsonl", dir);
    CHECK_MSG(check_lines(path, eval_ok, &e, &n) && n == 50, "eval.jsonl (%d lines)", n);
    const char *files[] = {"corpus.txt", "ift.jsonl", "eft.jsonl", "eval.jsonl", "seed_prompts.jsonl"};
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        snprintf(path2, sizeof path2, "%s/%s", dir2, files[i]);
        size_t a = 0, b = 0;
        char *x = test_read_file(path, &a), *y = test_read_file(path2, &b);
        CHECK_MSG(x && y && a == b && !memcmp(x, y, a), "%s differs between two runs", files[i]);
        free(x);
        free(y);
    }
    srlm_lexicon_free(&lx);
    TEST_DONE();
}
