/* The demo's verifiable instruction task.
 *
 * "Name a word from the word list that starts with 'k' and ends with 'o'."
 * The word list (the lexicon) is made of invented words built from syllables,
 * generated from a seed, so there is nothing to download and no model has seen
 * them before. Producing an answer means recalling a word that meets two
 * constraints at once from memory; checking one means reading its first and
 * last letters and recognising it: checking is easier than producing, which is
 * what lets a small model judge better than it answers (the premise of the
 * self-rewarding loop). The true quality of any answer is computable, so the
 * demo can measure the model's accuracy and its judge's agreement with the
 * truth.
 *
 * The rubric (five points, one per criterion met, as the judge prompt says):
 *   1. the answer is a single word of lowercase letters;
 *   2. the word is in the word list;
 *   3. it starts with the asked letter;
 *   4. it ends with the asked letter;
 *   5. nothing else is said (no extra words or punctuation). */
#ifndef SRLM_DEMO_TASK_H
#define SRLM_DEMO_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

enum { SRLM_TASK_MAX_WORD = 16 };

typedef struct {
    int    n_words;
    char (*words)[SRLM_TASK_MAX_WORD];  /* sorted, unique */
    int    count[26][26];               /* words per (first, last) letter pair */
} srlm_lexicon;

typedef struct { char first, last; } srlm_task;

/* n_words invented words of 2-4 syllables, a pure function of seed. */
srlm_status srlm_lexicon_make(srlm_lexicon *lx, int n_words, uint64_t seed);
void        srlm_lexicon_free(srlm_lexicon *lx);
int         srlm_lexicon_contains(const srlm_lexicon *lx, const char *word, size_t len);
/* The syllables every lexicon is built from: *out gets the table, returns its size. */
int         srlm_lexicon_syllables(const char *const **out);

/* Task `index` of a stream keyed by seed: a (first, last) pair that has at least
 * one answer in the lexicon. */
srlm_task   srlm_task_make(const srlm_lexicon *lx, uint64_t seed, uint64_t index);
/* The instruction text, and back: 1 when text is an instruction of this form. */
void        srlm_task_instruction(const srlm_task *t, char *buf, size_t cap);
int         srlm_task_parse(const char *text, srlm_task *t);

/* Rubric score 0..5 of a response; *criteria (may be NULL) gets bit i set when
 * criterion i + 1 is met. A correct answer scores 5. */
int         srlm_task_score(const srlm_lexicon *lx, const srlm_task *t, const char *response,
                            unsigned *criteria);
/* A correct answer (the k-th of those that fit, modulo their count); NULL when none. */
const char *srlm_task_answer(const srlm_lexicon *lx, const srlm_task *t, uint64_t k);

/* A judgement in the judge's output format: the answer's first run of non-space
 * characters ("Answer: kobalu", "-" when empty); one line per criterion that
 * restates what it compares and ends in yes/no and the running tally
 * ("starts with 'k': k, yes 3"); before the membership line, a recall of the
 * list words with the answer's own first and last letters, in the words of the
 * word-list lessons ("-" when none); then "Score: N" on its own line, N the
 * rubric's exactly. For example, for 'k' .. 'o':
 *   Answer: kobalu
 *   letters only: yes 1
 *   recall: List the words that start with 'k' and end with 'u'. kobalu kimu
 *   in the list: yes 2
 *   starts with 'k': k, yes 3
 *   ends with 'o': u, no 3
 *   nothing else: yes 4
 *   Score: 4 */
void        srlm_task_judgement(const srlm_lexicon *lx, const srlm_task *t, const char *response,
                                char *buf, size_t cap);

#endif
