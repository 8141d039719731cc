/* The demo's seed data, generated from the task (demo/task.h):
 *   corpus.txt       text for the demo tokenizer
 *   ift.jsonl        {prompt, response}: word-list lessons ("List the words that
 *                    start with 'k'.") and instructions answered correctly, for a
 *                    share of the (first, last) letter pairs only: the other pairs
 *                    are left for evaluation, so answering them means combining
 *                    what the lessons taught
 *   eft.jsonl        {prompt, response}: the judge prompt for an instruction and a
 *                    candidate answer (right, near misses, non-words, chatter), and
 *                    the rubric judgement ending in "Score: N"
 *   eval.jsonl       {prompt_id, prompt}: held-out instructions (letter pairs never
 *                    answered in IFT)
 *   seed_prompts.jsonl {prompt}: instructions for self-instruct's few-shot pool */
#ifndef SRLM_DEMO_DATA_H
#define SRLM_DEMO_DATA_H

#include <stdint.h>

#include "core/status.h"
#include "demo/task.h"

typedef struct {
    int      n_words;          /* lexicon size */
    uint64_t seed;
    int      n_ift, n_eft, n_eval;
    double   train_pair_share; /* share of letter pairs answered in IFT */
} srlm_demo_data_config;

/* The judge prompt of the demo (short: the demo model is tiny). */
void srlm_demo_judge_prompt(const char *instruction, const char *response, char *buf, size_t cap);

srlm_status srlm_demo_write_data(const char *dir, const srlm_demo_data_config *c, const srlm_lexicon *lx);

/* 1 when the letter pair (first, last) is answered in IFT under this config. */
int srlm_demo_pair_in_train(const srlm_demo_data_config *c, char first, char last);

#endif
