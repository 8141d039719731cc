/* Tokenized SFT and DPO examples loaded from JSONL.
 *
 * SFT lines:  {"prompt": TEXT, "response": TEXT}              tokenized here, or
 *             {"prompt_ids": [..], "response_ids": [..]}      taken as they are.
 * DPO lines:  {"prompt", "chosen", "rejected"} TEXT, or
 *             {"prompt_ids", "chosen_ids", "rejected_ids"},
 *             optionally "ref_logp_chosen" and "ref_logp_rejected" (numbers, both
 *             or neither; null counts as absent). The pairs files of DESIGN.md
 *             "Files" load as they are: other keys are ignored.
 * When a line has the *_ids keys they win (nothing is retokenized); otherwise the
 * text goes through the one chat formatter (srlm_chat_encode_pair: prompt in the
 * Llama-2 chat format, response = encode(answer) + EOS). `tok` may be NULL when
 * every line carries ids.
 *
 * What is not an error, only counted: an empty response (empty answer text, or
 * ids that are empty or only EOS), chosen == rejected (same ids), an example
 * longer than max_seq_len (skipped or, with SRLM_TRUNC_PROMPT, its prompt cut
 * from the left keeping the first token (BOS) until it fits; a DPO pair must fit
 * with the longer of its two responses; a response that does not fit even with
 * BOS alone is skipped). Errors (SRLM_BAD_INPUT naming FILE:LINE): a malformed
 * line, a missing or mistyped key, an id outside [0, vocab_size), a non-finite
 * or unpaired reference log-prob; and a file with no usable example at all.
 *
 * Reference log-probs are kept as given; when a pair is truncated they are taken
 * to be those of the truncated pair (the reference phase loads pairs through
 * this same function and max_seq_len, so the cut is the same). */
#ifndef SRLM_DATASET_H
#define SRLM_DATASET_H

#include "core/status.h"
#include "io/tokenizer.h"

typedef struct {
    int *ids;                     /* (n_prompt + n_response): prompt ++ response, one allocation */
    int  n_prompt, n_response;
} srlm_sft_example;

typedef struct {
    int   *prompt, *chosen, *rejected; /* one allocation, starting at prompt */
    int    n_prompt, n_chosen, n_rejected;
    double ref_c, ref_r;          /* reference log-probs of chosen and rejected */
    int    has_ref;
} srlm_dpo_example;

typedef struct {
    long read;                    /* records read (blank lines not counted) */
    long kept;                    /* examples loaded, truncated ones included */
    long skipped_too_long;
    long truncated;               /* kept after cutting the prompt */
    long skipped_equal;           /* DPO: chosen == rejected */
    long skipped_empty;           /* an empty response */
} srlm_data_counts;

typedef struct { srlm_sft_example *ex; int n; srlm_data_counts counts; } srlm_sft_data;
typedef struct { srlm_dpo_example *ex; int n; srlm_data_counts counts; } srlm_dpo_data;

/* `truncation`: an srlm_truncation of io/config.h (SRLM_TRUNC_SKIP or
 * SRLM_TRUNC_PROMPT). `system`: system prompt for text lines (NULL = none).
 * On failure *d holds nothing to free. */
srlm_status srlm_sft_data_load(srlm_sft_data *d, const char *path, const srlm_tokenizer *tok,
                               int vocab_size, int max_seq_len, int truncation, const char *system);
srlm_status srlm_dpo_data_load(srlm_dpo_data *d, const char *path, const srlm_tokenizer *tok,
                               int vocab_size, int max_seq_len, int truncation, const char *system);
void        srlm_sft_data_free(srlm_sft_data *d);

/* Tokens an example puts in a micro-batch: prompt + response, or for a DPO
 * pair both sequences (the prompt twice). */
static inline int srlm_sft_example_tokens(const srlm_sft_example *e) { return e->n_prompt + e->n_response; }
static inline int srlm_dpo_example_tokens(const srlm_dpo_example *e) {
    return 2 * e->n_prompt + e->n_chosen + e->n_rejected;
}

/* The next micro-batch from the front of n >= 1 examples of these token
 * counts: at most max_examples of them, and no more than keep their sum at or
 * under max_tokens (0: no token cap), but always at least one. */
int srlm_micro_batch_take(const int *tokens, int n, int max_examples, long long max_tokens);
void        srlm_dpo_data_free(srlm_dpo_data *d);

#endif
