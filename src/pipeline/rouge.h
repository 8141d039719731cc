/* ROUGE-L F-measure between two texts, as Google's rouge-score package (0.1.2)
 * computes it with rouge_scorer.RougeScorer(['rougeL']) and its defaults; used by
 * the self-instruct novelty filter (DESIGN.md, "The algorithm", step 1).
 *
 * Tokenizer (rouge_score/tokenize.py, use_stemmer=False is the default, so no
 * stemming): Python's str.lower(), then every run of characters outside [a-z0-9]
 * becomes a space, then tokens are the runs of [a-z0-9]. Only ASCII letters and
 * digits ever make tokens: accented letters, CJK, Cyrillic, full-width digits, ...
 * are separators. Two non-ASCII characters lowercase to ASCII in Python and so are
 * reproduced here: U+0130 (capital I with dot) -> "i" + U+0307 (a separator, so
 * the token ends after the "i"), and U+212A (Kelvin sign) -> "k". Texts are UTF-8;
 * bytes that are not valid UTF-8 are separators (what Python does after decoding
 * with errors='replace', U+FFFD being outside [a-z0-9]).
 *
 * Score (rouge_scorer._score_lcs): with L = length of the longest common
 * subsequence of the two token lists (tokens compared as strings),
 * precision = L / len(b), recall = L / len(a),
 * F = 2 * precision * recall / (precision + recall) (beta = 1), 0 when L = 0 or
 * either text has no tokens. F is symmetric in a and b.
 *
 * Cost: O(len(a) * len(b)) time, O(min(len(a), len(b))) memory for the LCS.
 * Checked against rouge-score in tests/unit/test_rouge.c (fixtures:
 * tests/fixtures/make_eval_fixtures.py). */
#ifndef SRLM_ROUGE_H
#define SRLM_ROUGE_H

#include "core/status.h"

/* ROUGE-L F-measure in [0, 1]. NULL is read as the empty text (F = 0). Returns
 * NAN only when memory runs out. */
double srlm_rouge_l(const char *a, const char *b);

/* The highest ROUGE-L F-measure of `candidate` against pool[0..n-1] (n >= 0), for
 * the self-instruct filter (which drops a candidate whose *best reaches its
 * threshold). *best_index (may be NULL) gets the index of the first pool entry
 * with that score (0 when every score is 0); with n == 0, *best = 0 and
 * *best_index = -1. The candidate is tokenized once. SRLM_BAD_INPUT for a NULL
 * candidate, pool (n > 0), pool entry or best, or n < 0; SRLM_FAILED when memory
 * runs out. */
srlm_status srlm_rouge_l_max(const char *candidate, const char *const *pool, int n,
                             double *best, int *best_index);

#endif
