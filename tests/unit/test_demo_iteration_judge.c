/* srlm_demo_iteration_judge: the judge's agreement with the truth on one loop
 * iteration's own candidates, read back from the run folder. A hand-made
 * iteration with known truth: a judge that ranks every right answer above the
 * wrong one agrees 1, one that ranks them the other way 0, one that scores
 * them equal 1/2; invalid judgements do not count towards a mean; a prompt
 * that is not one of the task's is left out; files that
 * disagree (a judgement for another candidate, a count that is not a
 * multiple) are bad input naming the folder. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "demo/demo_eval.h"
#include "demo/task.h"
#include "io/fsutil.h"
#include "pipeline/parts.h"
#include "test.h"

enum { PROMPTS = 4, CANDS = 2, JUDGE = 2 }; /* the last prompt is not a task */

static void write_part(const char *run, const char *what, const srlm_text *t, long count) {
    char dir[1200], path[1300];
    snprintf(dir, sizeof dir, "%s/iter-1/%s", run, what);
    CHECK_OK(srlm_mkdir_p(dir));
    CHECK_OK(srlm_part_path(path, sizeof path, dir, 0));
    CHECK_OK(srlm_artifact_write(path, t->s, t->len, count));
}

/* right_score / wrong_score: what the judge says of the right and the wrong
 * candidate of every prompt; the first judgement of each wrong candidate is
 * invalid with a wild score, which must not count. mismatch: the last
 * judgement names another prompt. */
static void make_iteration(const char *run, const srlm_lexicon *lx, int right_score, int wrong_score,
                           int mismatch, int drop_last) {
    CHECK_OK(srlm_remove_tree(run));
    srlm_text c = {0}, j = {0};
    long nj = 0;
    for (int p = 0; p < PROMPTS; p++) {
        srlm_task task = srlm_task_make(lx, 11, (uint64_t)p);
        char instr[256], id[32];
        srlm_task_instruction(&task, instr, sizeof instr);
        if (p == PROMPTS - 1) snprintf(instr, sizeof instr, "Write one more task like these.");
        snprintf(id, sizeof id, "i1-%05d", p);
        const char *answers[CANDS] = {srlm_task_answer(lx, &task, 0), "Qq9 not a word"};
        CHECK(srlm_task_score(lx, &task, answers[0], NULL) > srlm_task_score(lx, &task, answers[1], NULL));
        for (int s = 0; s < CANDS; s++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "prompt_id", id);
            cJSON_AddStringToObject(o, "prompt", instr);
            cJSON_AddNumberToObject(o, "sample", s);
            cJSON_AddStringToObject(o, "response", answers[s]);
            srlm_text_add_json(&c, o);
            cJSON_Delete(o);
            for (int k = 0; k < JUDGE; k++) {
                if (drop_last && p == PROMPTS - 1 && s == CANDS - 1 && k == JUDGE - 1) continue;
                const int invalid = s == 1 && k == 0;
                cJSON *g = cJSON_CreateObject();
                const int last = p == PROMPTS - 1 && s == CANDS - 1 && k == JUDGE - 1;
                cJSON_AddStringToObject(g, "prompt_id", mismatch && last ? "i1-99999" : id);
                cJSON_AddNumberToObject(g, "sample", s);
                cJSON_AddNumberToObject(g, "judge_sample", k);
                cJSON_AddNumberToObject(g, "score", invalid ? 5 : s == 0 ? right_score : wrong_score);
                cJSON_AddBoolToObject(g, "valid", !invalid);
                srlm_text_add_json(&j, g);
                cJSON_Delete(g);
                nj++;
            }
        }
    }
    write_part(run, "candidates", &c, PROMPTS * CANDS);
    write_part(run, "judgements", &j, nj);
    srlm_text_free(&c);
    srlm_text_free(&j);
}

int main(void) {
    char run[1100];
    snprintf(run, sizeof run, "%s/demo_iteration_judge", test_env("SRLM_TMP", "/tmp"));
    srlm_lexicon lx;
    CHECK_OK(srlm_lexicon_make(&lx, 120, 5));
    srlm_rm_metrics m;

    make_iteration(run, &lx, 4, 1, 0, 0); /* right above wrong */
    CHECK_OK(srlm_demo_iteration_judge(run, 1, &lx, &m));
    CHECK_MSG(m.pairwise_accuracy == 1.0 && m.pairs == PROMPTS - 1 && m.groups == PROMPTS - 1 &&
                  m.replies_dropped == CANDS,
              "right above wrong: agreement %g over %ld pairs, %ld groups, %ld dropped", m.pairwise_accuracy, m.pairs,
              m.groups, m.replies_dropped);

    make_iteration(run, &lx, 1, 3, 0, 0); /* wrong above right (the invalid 5 would not change that) */
    CHECK_OK(srlm_demo_iteration_judge(run, 1, &lx, &m));
    CHECK_MSG(m.pairwise_accuracy == 0.0, "wrong above right: agreement %g", m.pairwise_accuracy);

    make_iteration(run, &lx, 2, 2, 0, 0); /* equal: the invalid 5 must not break the tie */
    CHECK_OK(srlm_demo_iteration_judge(run, 1, &lx, &m));
    CHECK_MSG(fabs(m.pairwise_accuracy - 0.5) < 1e-12 && fabs(m.tie_rate - 1.0) < 1e-12,
              "equal scores: agreement %g, tie rate %g", m.pairwise_accuracy, m.tie_rate);

    make_iteration(run, &lx, 4, 1, 1, 0); /* a judgement for another prompt */
    srlm_status st = srlm_demo_iteration_judge(run, 1, &lx, &m);
    CHECK_MSG(st == SRLM_BAD_INPUT && strstr(srlm_last_error(), "is not for candidate") &&
                  strstr(srlm_last_error(), "iter-1/judgements"),
              "mismatched judgement: status %d, '%s'", (int)st, srlm_last_error());

    make_iteration(run, &lx, 4, 1, 0, 1); /* one judgement missing */
    st = srlm_demo_iteration_judge(run, 1, &lx, &m);
    CHECK_MSG(st == SRLM_BAD_INPUT && strstr(srlm_last_error(), "whole number of judgements"),
              "a missing judgement: status %d, '%s'", (int)st, srlm_last_error());

    st = srlm_demo_iteration_judge(run, 2, &lx, &m); /* no such iteration */
    CHECK_MSG(st != SRLM_OK, "iteration 2 does not exist but read as OK");

    CHECK_OK(srlm_remove_tree(run));
    srlm_lexicon_free(&lx);
    TEST_DONE();
}
