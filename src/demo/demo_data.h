/* The demo's seed data, generated from the task (demo/task.h):
 *   corpus.txt       text for the demo tokenizer
 *   ift.jsonl        {prompt, response}:
 *                    - word-list lessons: "List the words that start with 'k'."
 *                      and "... that end with 'o'." (every lesson several times,
 *                      its words in a new order each time), optionally also
 *                      "... that start with 'k' and end with 'o'." for every pair
 *                      (held-out pairs too: the knowledge is there, the loop
 *                      teaches the model to use it for instructions);
 *                    - instructions answered correctly, for a share of the
 *                      (first, last) letter pairs only: the other pairs are left
 *                      for evaluation, so answering them means combining what
 *                      the lessons taught;
 *                    - self-instruct examples: a numbered list of instructions in
 *                      the self-instruct template, answered with one more.
 *   eft.jsonl        {prompt, response}: the judge prompt for an instruction and a
 *                    candidate answer (right; real words with a wrong first or
 *                    last letter; non-words spliced from two real words, with
 *                    right or wrong letters; chatter; punctuation) and the
 *                    rubric judgement (srlm_task_judgement) ending in "Score: N"
 *   eval.jsonl       {prompt_id, prompt}: held-out instructions (letter pairs never
 *                    answered in IFT)
 *   seed_prompts.jsonl {prompt}: instructions for self-instruct's few-shot pool
 *   judge.txt, self_instruct.txt: the demo's prompt templates, in the format of
 *                    pipeline/judge.h ({instruction}, {response}) and of the
 *                    self-instruct template ({examples}, a numbered list). */
#ifndef SRLM_DEMO_DATA_H
#define SRLM_DEMO_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "demo/task.h"

typedef struct {
    int      n_words;          /* lexicon size */
    uint64_t seed;
    int      n_ift, n_eft, n_eval;
    double   train_pair_share; /* share of letter pairs answered in IFT */
    int      lesson_copies;    /* copies of each word-list lesson (0: 4) */
    int      pair_lessons;     /* copies of the lessons for every (first, last) pair (0: none) */
    int      n_self_instruct;  /* "write one more" examples in IFT */
} srlm_demo_data_config;

/* The demo's judge prompt (short: the demo model is tiny), and the same as a
 * template of pipeline/judge.h, so `srlm run` renders exactly this text. */
#define SRLM_DEMO_JUDGE_TEMPLATE "Judge this answer.\nQuestion: {instruction}\nAnswer: {response}"
void srlm_demo_judge_prompt(const char *instruction, const char *response, char *buf, size_t cap);

/* The demo's self-instruct prompt: {examples} is a numbered list, one a line. */
#define SRLM_DEMO_SELF_INSTRUCT_TEMPLATE "Here are some tasks:\n{examples}\nWrite one more task like these."
/* The prompt for examples[0..n-1]; buf gets "" when it does not fit. */
void srlm_demo_self_instruct_prompt(const char *const *examples, int n, char *buf, size_t cap);

srlm_status srlm_demo_write_data(const char *dir, const srlm_demo_data_config *c, const srlm_lexicon *lx);

/* 1 when the letter pair (first, last) is answered in IFT under this config. */
int srlm_demo_pair_in_train(const srlm_demo_data_config *c, char first, char last);

/* n tasks from the stream keyed by `stream` whose pair is (heldout = 1) never or
 * (heldout = 0) always answered in IFT; fewer when not found. Returns the count. */
int srlm_demo_tasks(const srlm_demo_data_config *c, const srlm_lexicon *lx, uint64_t stream, int heldout,
                    srlm_task *out, int n);

/* A non-word made by splicing the start of a real word onto the end of
 * another: right first letter `first` and last letter `last` when they are
 * not 0. The kind of non-word a model that half-remembers the list makes up.
 * Returns 0 when none was found. */
int srlm_demo_nonword(const srlm_lexicon *lx, char first, char last, uint64_t key, uint64_t i, char *out,
                      size_t cap);

/* Candidate answer i (keyed by key) of the EFT mix for task t: right, real words
 * with a wrong letter, spliced non-words, chatter, punctuation. */
void srlm_demo_candidate(const srlm_lexicon *lx, const srlm_task *t, uint64_t key, uint64_t i, char *out,
                         size_t cap);

#endif
