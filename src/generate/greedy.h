/* Greedy decoding with the KV cache: the simplest generator, and the reference
 * the sampling engine must reproduce at temperature 0. */
#ifndef SRLM_GREEDY_H
#define SRLM_GREEDY_H

#include "model/llama.h"

typedef struct {
    int max_new_tokens;
    int eos_id;          /* stop after emitting this id; -1: never stop early */
} srlm_greedy_opts;

typedef struct {
    int *ids;            /* generated ids (prompt excluded), malloc'd */
    int  n;
    int  hit_eos;        /* 1: stopped on eos (included in ids); 0: length */
} srlm_greedy_result;

/* Decode n_prompts prompts together: one prefill forward over all prompts
 * (right-padded), then one forward per step over the unfinished ones. */
srlm_status srlm_generate_greedy(srlm_llama *m, const int *const *prompts, const int *prompt_lens,
                                 int n_prompts, const srlm_greedy_opts *opts,
                                 srlm_greedy_result *results);
void srlm_greedy_result_free(srlm_greedy_result *r);

#endif
