/* Open Assistant seed data: the oasst1 "trees" export (one message tree per line,
 * ../shared/data/README.md) -> the three files the pipeline starts from.
 *
 *   DIR/ift.jsonl          {"prompt_id", "prompt", "response"}
 *                          one per root prompt: its human rank-0 assistant reply
 *   DIR/eft_groups.jsonl   {"prompt_id", "prompt", "replies": [{"text", "rank"}, ...]}
 *                          root prompts with >= 2 usable ranked replies, sorted by rank
 *   DIR/heldout.jsonl      same format as eft_groups.jsonl: the held-out share of the
 *                          ranked groups, for reward-model evaluation
 *
 * Rules (srlm's choices where the paper is silent):
 * - Only the first turn is used: the root prompter message and its direct assistant
 *   replies. prompt_id is the root's message_id.
 * - A root prompt is dropped (with all its replies) when it is deleted, synthetic
 *   (synthetic true or model_name set) or not in the requested language; one reason
 *   is counted per message, in that order. A reply is dropped for the same reasons,
 *   and also when it has no rank ("unranked"): IFT is "human rank 0" only, so a lone
 *   reply without a rank is NOT used either. review_result, tree_state and emojis are
 *   not used (an oasst reply that failed review has no rank, so it is dropped anyway).
 * - Ranks are kept as oasst wrote them: when a reply is dropped, its siblings keep
 *   their ranks (a group may read 1, 3). The IFT pair needs the reply with rank
 *   exactly 0; if that reply was dropped the prompt gives no IFT pair (rank 1 is not
 *   promoted), but it may still give a ranked group.
 * - Held out: round(fraction * G) of the G ranked groups, those with the smallest
 *   srlm_oasst_prompt_hash(seed, prompt_id) (ties by prompt_id). The choice depends on
 *   the set of prompt ids and the seed only, never on the file's line order. A held-out
 *   prompt is kept out of training entirely: it is in neither eft_groups.jsonl nor
 *   ift.jsonl (as the paper's evaluation set is separate from training).
 * - Output lines follow the input's line order.
 * - A tree is accepted or refused whole. Malformed (reported as FILE:LINE: why):
 *   a line that is not a JSON object; no "prompt" object; a message that is not an
 *   object, lacks "role" or "text" (non-empty string), has a role other than
 *   prompter/assistant or out of turn (a prompter's replies are assistants and vice
 *   versa; the root is a prompter); a root without a "message_id" string; a field of
 *   the wrong type (deleted/synthetic: boolean; lang, message_id: string; model_name:
 *   string or null; rank: integer >= 0 or null; replies: array or null); two siblings
 *   with the same rank; messages nested deeper than SRLM_OASST_MAX_DEPTH; a prompt_id
 *   already seen on an earlier line. Deeper turns are validated like the first.
 * - A file without a single tree (empty or blank lines only) is refused
 *   (SRLM_BAD_INPUT); one whose trees were all skipped gives three empty files.
 * - Nothing is written unless all three files can be: they are written atomically
 *   after the whole input has been read; with fail_on_bad_tree the first malformed
 *   tree stops the conversion with SRLM_BAD_INPUT and no file is written. */
#ifndef SRLM_OASST_H
#define SRLM_OASST_H

#include <stdint.h>

#include "core/status.h"

/* Message levels (root = 1); a deeper tree is malformed. cJSON itself refuses
 * nesting beyond ~500 message levels (reported as bad JSON). */
#define SRLM_OASST_MAX_DEPTH 100

typedef struct {
    double      heldout_fraction; /* in [0, 1]; default 0.1 */
    uint64_t    seed;             /* default 0 */
    const char *lang;             /* default "en" */
    int         fail_on_bad_tree; /* 0: report and skip (default); 1: refuse (SRLM_BAD_INPUT) */
    /* Called once per skipped tree with "FILE:LINE: why" (may be NULL). */
    void (*on_bad_tree)(void *ctx, const char *message);
    void *ctx;
} srlm_oasst_options;

typedef struct {
    long trees_read;          /* non-blank lines */
    long trees_skipped;       /* = the five below */
    long bad_json;            /* not a JSON object */
    long bad_structure;       /* missing/mistyped fields, wrong roles */
    long bad_rank;            /* rank not an integer >= 0, duplicate ranks among siblings */
    long too_deep;            /* nesting deeper than SRLM_OASST_MAX_DEPTH */
    long duplicate_id;        /* prompt_id seen on an earlier line */
    long prompts_deleted, prompts_synthetic, prompts_lang;  /* root prompts dropped */
    long prompts_used;        /* root prompts kept */
    long replies_seen;        /* direct replies of kept root prompts */
    long replies_deleted, replies_synthetic, replies_lang, replies_unranked;
    long prompts_no_rank0;    /* kept prompts without a usable rank-0 reply */
    long ranked_groups;       /* kept prompts with >= 2 usable ranked replies */
    long eft_groups;          /* written to eft_groups.jsonl */
    long heldout_groups;      /* written to heldout.jsonl */
    long ift_pairs;           /* written to ift.jsonl */
    long ift_heldout;         /* rank-0 pairs left out of ift.jsonl because held out */
} srlm_oasst_stats;

void srlm_oasst_default_options(srlm_oasst_options *o);

/* Convert `trees_path` into out_dir/{ift,eft_groups,heldout}.jsonl (out_dir is created).
 * `stats` (may be NULL) is filled even when the conversion fails part-way. */
srlm_status srlm_oasst_convert(const char *trees_path, const char *out_dir,
                               const srlm_oasst_options *o, srlm_oasst_stats *stats);

/* The held-out ordering key: a seeded 64-bit hash of the prompt id's bytes. */
uint64_t srlm_oasst_prompt_hash(uint64_t seed, const char *prompt_id);

#endif
