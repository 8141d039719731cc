/* EFT selection (DESIGN.md, "The algorithm", the EFT paragraph): which judgements
 * of human-ranked replies, written by the SFT baseline, become EFT training
 * examples. Pure computation: no I/O, no model; the caller writes the JSONL.
 *
 * Input: one srlm_eft_group per prompt with ranked replies. Each reply has a
 * human rank (Open Assistant: 0 = best; equal ranks are a human tie) and up to k
 * judge samples, each with a parsed score 0..5 or -1 when the judgement had no
 * usable score (srlm_judge_parse_score's verdict was not OK).
 *
 * Rules. Where DESIGN.md is silent the choice is srlm's and is marked "choice":
 *
 * - Representative judgement (choice): a reply is represented by its FIRST valid
 *   judge sample (lowest sample index with a score 0..5). It is one whole
 *   judgement whose text ends in the score used, so the training target is
 *   consistent with itself; a mean of samples would have no text of its own.
 * - Group verdict, first matching rule wins:
 *     TOO_FEW   fewer than 2 replies (nothing to agree with);
 *     MISSING   some reply has no valid judge sample;
 *     DISAGREE  the representatives' scores do not follow the human order: for
 *               EVERY pair of replies, sign(score_i - score_j) must equal
 *               sign(rank_j - rank_i): strict where the human's order is strict,
 *               equal where the human tied (the exact_match rule of
 *               eval_metrics.h, applied to the representative scores);
 *     KEPT      otherwise. A group whose replies the human all tied is kept when
 *               the judge tied them too (choice: that is agreement).
 *   Each reply of a kept group is one example.
 * - Downsampling the most common score (the paper downsampled 4). Over all
 *   examples: let M be the score with the most examples (count c1) and c2 the
 *   largest count among the other scores. When c1 > c2 (choice) only c2 examples
 *   of score M are kept, so M ends level with the runner-up, never below it; when
 *   the top count is shared (c1 == c2) nothing is dropped. When only one score
 *   occurs (choice) nothing is dropped either: c2 would be 0 and the whole set
 *   would go. Individual examples are dropped, not whole groups (a kept group may
 *   thus give fewer examples than it has replies).
 * - Which examples of M stay: those with the smallest
 *   srlm_rng_u64(srlm_rng_key(seed, group.key), reply index); ties (equal group
 *   keys) by group index, then reply index. The choice depends on the seed and
 *   the (key, reply index, score) of the examples only, never on the order of the
 *   groups, when the caller's keys are distinct (use a hash of the prompt id,
 *   e.g. srlm_oasst_prompt_hash(0, prompt_id); the group index also works, but
 *   then the choice follows the input order).
 * - Output: the selections of the examples left, in input order (group index,
 *   then reply index). */
#ifndef SRLM_EFT_H
#define SRLM_EFT_H

#include <stdint.h>

#include "core/status.h"

#define SRLM_EFT_MAX_SCORE 5

typedef struct {
    uint64_t          key;        /* stable identity of the group, for downsampling */
    int               n_replies;  /* >= 0 */
    const int        *human_rank; /* [n_replies]; >= 0, 0 = best, ties allowed */
    const int        *n_samples;  /* [n_replies]; judge samples of each reply, >= 0 */
    const int *const *scores;     /* [n_replies][n_samples[r]]; 0..5, or -1 = invalid */
} srlm_eft_group;

typedef enum {
    SRLM_EFT_KEPT,
    SRLM_EFT_TOO_FEW,  /* < 2 replies */
    SRLM_EFT_MISSING,  /* a reply without a valid judge sample */
    SRLM_EFT_DISAGREE, /* score order differs from the human order */
} srlm_eft_verdict;

/* One EFT example: the judgement `sample` of reply `reply` of group `group`. */
typedef struct {
    int group;
    int reply;
    int sample; /* index into the reply's judge samples: its first valid one */
    int score;  /* that sample's score, 0..5 */
} srlm_eft_pick;

typedef struct {
    long groups_seen;
    long groups_kept;
    long groups_too_few;           /* < 2 replies */
    long groups_missing;           /* dropped: a reply without a valid judgement */
    long groups_disagree;          /* dropped: score order != human order */
    long examples_before;          /* replies of kept groups */
    long examples_after;           /* after downsampling */
    long before[SRLM_EFT_MAX_SCORE + 1]; /* examples per score, before downsampling */
    long after[SRLM_EFT_MAX_SCORE + 1];  /* and after */
    int  downsampled_score;        /* M when examples of it were dropped, else -1 */
} srlm_eft_summary;

/* "kept", "too_few", "missing", "disagree". */
const char *srlm_eft_verdict_name(srlm_eft_verdict v);

/* The decision for one group. sample[r] (array of n_replies, may be NULL) gets the
 * index of reply r's first valid judge sample, or -1 when it has none; *verdict as
 * in the rules above. SRLM_BAD_INPUT naming the reply (and sample) for NULL arrays,
 * negative counts or ranks, or a score outside -1..5. */
srlm_status srlm_eft_decide_group(const srlm_eft_group *g, int *sample, srlm_eft_verdict *verdict);

/* Select the EFT examples of g[0..n-1] (n >= 0; g may be NULL when n == 0).
 * downsample: 1 to apply the downsampling rule, 0 to keep every example of the
 * kept groups. *picks is malloc'd (the caller frees it; NULL when *n_picks == 0).
 * `summary` may be NULL. On failure *picks is NULL, *n_picks 0 and the summary
 * zeroed: SRLM_BAD_INPUT naming the group and reply, SRLM_FAILED when out of
 * memory. */
srlm_status srlm_eft_select(const srlm_eft_group *g, int n, uint64_t seed, int downsample,
                            srlm_eft_pick **picks, long *n_picks, srlm_eft_summary *summary);

#endif
