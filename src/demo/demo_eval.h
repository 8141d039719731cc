/* Measures of the demo (DESIGN.md "Demo"): how often a model's answers are
 * right (the rubric gives 5), and how well the same model judges answers,
 * against the true rubric scores, with the generation engine and the
 * reward-model metrics of pipeline/eval_metrics.h.
 *
 * Prompts go through the one chat formatter (no system prompt) exactly as in
 * SFT; the judge prompt is srlm_demo_judge_prompt, the judge's score is read by
 * srlm_judge_parse_score (unparsable judgements are counted and dropped). */
#ifndef SRLM_DEMO_EVAL_H
#define SRLM_DEMO_EVAL_H

#include "demo/task.h"
#include "generate/sampler.h"
#include "io/tokenizer.h"
#include "model/llama.h"
#include "pipeline/eval_metrics.h"

/* n_samples completions of each user turn (one-turn chat, no system prompt),
 * at most max_new tokens, stored at [i * n_samples + sample]; malloc'd strings
 * (free with srlm_demo_strings_free). */
srlm_status srlm_demo_generate(srlm_llama *m, const srlm_tokenizer *tok, char *const *user, int n,
                               const srlm_sampling *s, int n_samples, int max_new, uint64_t seed, char ***out);

/* Answers: n_samples per task, stored at [task * n_samples + sample]; each a
 * malloc'd string (free with srlm_demo_strings_free). */
srlm_status srlm_demo_answer(srlm_llama *m, const srlm_tokenizer *tok, const srlm_task *tasks, int n,
                             const srlm_sampling *s, int n_samples, uint64_t seed, char ***answers);
void        srlm_demo_strings_free(char **s, int n);

typedef struct {
    int    n;           /* answers graded */
    int    n_right;     /* answers the rubric gives 5 */
    double accuracy;    /* n_right / n */
    double mean_score;  /* mean rubric score */
    int    tasks_any;   /* tasks with at least one right answer among their samples */
} srlm_demo_accuracy;

/* Objective accuracy of n_samples answers per task (greedy when s is NULL). */
srlm_status srlm_demo_eval_accuracy(srlm_llama *m, const srlm_tokenizer *tok, const srlm_lexicon *lx,
                                    const srlm_task *tasks, int n, const srlm_sampling *s, int n_samples,
                                    uint64_t seed, srlm_demo_accuracy *out);

typedef struct {
    int           own;            /* candidates per task sampled from the model itself */
    int           near_misses;    /* candidates per task from the EFT generator (srlm_demo_candidate) */
    int           judge_samples;  /* judgements per candidate, averaged (the loop's 3) */
    srlm_sampling answer_sampling;/* the loop's: temperature 0.7, top-p 0.9 */
    srlm_sampling judge_sampling;
    uint64_t      seed;
} srlm_demo_judge_eval_config;

typedef struct {
    srlm_rm_metrics all;          /* every candidate, human rank = 5 - true score */
    srlm_rm_metrics own;          /* the model's own samples only */
    long   judgements, valid;     /* valid = judgements whose score parsed */
    double exact;                 /* share of candidates whose mean judged score rounds to the truth */
    double own_right;             /* share of own samples that are right */
    /* the loop's best-vs-worst pairs over the own samples (equal judged scores:
     * no pair): how many, and how many put the truly better answer first, tied
     * in truth, or the wrong way round */
    long   pairs, pairs_right, pairs_tied, pairs_wrong;
} srlm_demo_judge_quality;

srlm_status srlm_demo_eval_judge(srlm_llama *m, const srlm_tokenizer *tok, const srlm_lexicon *lx,
                                 const srlm_task *tasks, int n, const srlm_demo_judge_eval_config *c,
                                 srlm_demo_judge_quality *out);

/* Judge text[i] (answers to tasks[task_of[i]]) judge_samples times each; score[i]
 * gets the mean valid score or NAN. *valid (may be NULL) counts valid judgements. */
srlm_status srlm_demo_judge(srlm_llama *m, const srlm_tokenizer *tok, const srlm_task *tasks,
                            const int *task_of, char *const *text, int n, int judge_samples,
                            const srlm_sampling *s, uint64_t seed, double *score, long *valid,
                            char **first_judgement);

/* The judge's quality on one finished loop iteration's own work: RUN/iter-T's
 * candidates (the model's answers, several per prompt) and judgements (several
 * per candidate, in candidate order), against the task's rubric: rm metrics
 * over each prompt's candidates (human rank = 5 - true score, score = mean
 * valid judged score), i.e. how well the judge orders the answers it actually
 * built its DPO pairs from. A run folder whose files disagree (a judgement for
 * another candidate, a count that is not a multiple) is SRLM_BAD_INPUT naming
 * the folder. */
srlm_status srlm_demo_iteration_judge(const char *run, int t, const srlm_lexicon *lx, srlm_rm_metrics *out);

#endif
