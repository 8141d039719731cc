/* The demo's M1 recipe and measures, end to end on a very small scale: the
 * recipe writes data, a tokenizer that makes every syllable of the lexicon
 * one piece, every other letter its own piece and every fixed phrase one piece, a random model and a short SFT; the measures
 * count what they should, give the same numbers twice, and a judge that
 * cannot judge scores pairs at chance with ties, never beyond [0, 1]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo/demo_data.h"
#include "demo/demo_eval.h"
#include "demo/demo_recipe.h"
#include "io/tokenizer.h"
#include "model/model_session.h"
#include "io/fsutil.h"
#include "test.h"

int main(void) {
    char dir[1024], m1[1100], tokpath[1200];
    snprintf(dir, sizeof dir, "%s/demo_eval", test_env("SRLM_TMP", "/tmp"));
    srlm_demo_recipe r;
    srlm_demo_recipe_default(&r);
    r.data.n_ift = 40;
    r.data.n_eft = 40;
    r.data.n_eval = 10;
    r.data.lesson_copies = 1;
    r.data.pair_lessons = 1;
    r.data.n_self_instruct = 8;
    r.dim = 32;
    r.layers = 1;
    r.heads = 2;
    r.kv_heads = 2;
    r.ffn = 64;
    r.batch_size = 16;
    r.micro_batch_size = 16;
    srlm_lexicon lx;
    CHECK_OK(srlm_lexicon_make(&lx, 120, r.data.seed));
    srlm_demo_m1_times tm;
    CHECK_OK(srlm_remove_tree(dir)); /* a folder left by an older build holds another config */
    CHECK_OK(srlm_demo_build_m1(&r, &lx, dir, 1, 1, &tm));
    snprintf(m1, sizeof m1, "%s/sft/model", dir);

    /* the tokenizer: one piece per syllable or other letter of a word, one per fixed phrase */
    srlm_tokenizer *tok;
    snprintf(tokpath, sizeof tokpath, "%s/tokenizer.model", m1);
    CHECK_OK(srlm_tokenizer_load(&tok, tokpath));
    srlm_task t = {'k', 'o'};
    char instr[128];
    srlm_task_instruction(&t, instr, sizeof instr);
    int *ids, n;
    CHECK_OK(srlm_tokenizer_encode(tok, instr, strlen(instr), 0, 0, &ids, &n));
    CHECK_MSG(n == 6, "the instruction is %d pieces, expected 6 (phrase k phrase o ' .)", n);
    free(ids);
    const char *word = "nonono";
    CHECK_OK(srlm_tokenizer_encode(tok, word, strlen(word), 0, 0, &ids, &n));
    CHECK_MSG(n == 4, "'%s' is %d pieces, expected 4 (the space and one a syllable)", word, n);
    free(ids);
    word = "xyzzy";
    CHECK_OK(srlm_tokenizer_encode(tok, word, strlen(word), 0, 0, &ids, &n));
    CHECK_MSG(n == 6, "'%s' is %d pieces, expected 6 (the space and one a letter)", word, n);
    free(ids);
    srlm_tokenizer_free(tok);

    srlm_model_session s = {0};
    CHECK_OK(srlm_model_session_open(&s, m1, NULL, 1, 1));
    srlm_task tasks[6];
    int nt = srlm_demo_tasks(&r.data, &lx, 99, 1, tasks, 6);
    CHECK(nt == 6);
    for (int i = 0; i < nt; i++) CHECK(!srlm_demo_pair_in_train(&r.data, tasks[i].first, tasks[i].last));

    srlm_demo_accuracy a, b;
    CHECK_OK(srlm_demo_eval_accuracy(&s.model, s.tok, &lx, tasks, nt, NULL, 1, 1, &a));
    CHECK_OK(srlm_demo_eval_accuracy(&s.model, s.tok, &lx, tasks, nt, NULL, 1, 1, &b));
    CHECK(a.n == nt && a.n_right >= 0 && a.n_right <= nt && a.n_right == b.n_right && a.mean_score == b.mean_score);
    srlm_sampling samp = {0.7f, 0.9f, 0};
    CHECK_OK(srlm_demo_eval_accuracy(&s.model, s.tok, &lx, tasks, nt, &samp, 3, 5, &a));
    CHECK(a.n == 3 * nt && a.tasks_any <= nt && a.mean_score >= 0 && a.mean_score <= 5);

    srlm_demo_judge_eval_config jc = {2, 2, 2, {0.7f, 0.9f, 0}, {0.7f, 0.9f, 0}, 3};
    srlm_demo_judge_quality q, q2;
    CHECK_OK(srlm_demo_eval_judge(&s.model, s.tok, &lx, tasks, nt, &jc, &q));
    CHECK_OK(srlm_demo_eval_judge(&s.model, s.tok, &lx, tasks, nt, &jc, &q2));
    CHECK(q.judgements == (long)nt * 4 * 2 && q.valid >= 0 && q.valid <= q.judgements);
    CHECK(q.valid == q2.valid && q.pairs == q2.pairs);
    CHECK(q.pairs == q.pairs_right + q.pairs_tied + q.pairs_wrong && q.pairs <= nt);
    if (q.all.pairs > 0) CHECK(q.all.pairwise_accuracy >= 0 && q.all.pairwise_accuracy <= 1);
    printf("tiny M1 (%.1fs SFT): greedy %d/%d right; judge: %ld/%ld valid, %ld compared pairs\n", tm.sft_s, b.n_right,
           b.n, q.valid, q.judgements, q.all.pairs);

    /* srlm_demo_judge keeps the first judgement of each answer */
    char *cands[2] = {(char *)srlm_task_answer(&lx, &tasks[0], 0), "zzz"};
    int task_of[2] = {0, 0};
    double score[2];
    char *first[2] = {NULL, NULL};
    srlm_sampling greedy = {0, 1, 0};
    CHECK_OK(srlm_demo_judge(&s.model, s.tok, tasks, task_of, cands, 2, 1, &greedy, 1, score, NULL, first));
    CHECK(first[0] && first[1]);
    free(first[0]);
    free(first[1]);
    srlm_model_session_close(&s);
    srlm_lexicon_free(&lx);
    TEST_DONE();
}
