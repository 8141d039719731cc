#include "generate/greedy.h"

#include <stdlib.h>
#include <string.h>

srlm_status srlm_generate_greedy(srlm_llama *m, const int *const *prompts, const int *prompt_lens,
                                 int n_prompts, const srlm_greedy_opts *opts,
                                 srlm_greedy_result *results) {
    const int B = n_prompts, max_new = opts->max_new_tokens;
    int T = 0;
    for (int b = 0; b < B; b++) {
        if (prompt_lens[b] < 1)
            return SRLM_ERR(SRLM_BAD_INPUT, "prompt %d is empty: generation needs at least one token", b);
        if (prompt_lens[b] > T) T = prompt_lens[b];
    }
    memset(results, 0, sizeof *results * (size_t)B);
    if (B == 0 || max_new <= 0) return SRLM_OK;

    srlm_kv_cache kv = {0};
    srlm_llama_acts acts = {0};
    srlm_status st;
    /* host scratch: ids, slot, n_past, n_new, next, active index */
    int *mem = calloc((size_t)B * T + 5 * (size_t)B, sizeof(int));
    if (!mem) return SRLM_ERR(SRLM_FAILED, "out of memory for generation scratch");
    int *ids = mem, *slot = ids + (size_t)B * T, *n_past = slot + B, *n_new = n_past + B;
    int *next = n_new + B, *active = next + B;
    for (int b = 0; b < B; b++) {
        results[b].ids = malloc((size_t)max_new * sizeof(int));
        if (!results[b].ids) { st = SRLM_ERR(SRLM_FAILED, "out of memory for generated ids"); goto done; }
    }
    SRLM_CHECK_GOTO(srlm_kv_cache_new(&kv, m, B, T + max_new), st, done);
    SRLM_CHECK_GOTO(srlm_llama_acts_new(&acts, m, B * T, B), st, done);

    /* prefill every prompt at once */
    for (int b = 0; b < B; b++) {
        memcpy(ids + (size_t)b * T, prompts[b], (size_t)prompt_lens[b] * sizeof(int));
        slot[b] = b;
        n_past[b] = 0;
        n_new[b] = prompt_lens[b];
    }
    srlm_batch batch = {B, T, ids, slot, n_past, n_new, 1};
    SRLM_CHECK_GOTO(srlm_llama_forward(m, &kv, &acts, &batch), st, done);
    SRLM_CHECK_GOTO(srlm_llama_argmax(m, &acts, B, next), st, done);

    int n_active = B;
    for (int b = 0; b < B; b++) { active[b] = b; n_past[b] = prompt_lens[b]; }
    for (int step = 0;; step++) {
        /* append this step's tokens; drop finished sequences from the batch */
        int kept = 0;
        for (int i = 0; i < n_active; i++) {
            int b = active[i];
            srlm_greedy_result *r = &results[b];
            r->ids[r->n++] = next[i];
            if (next[i] == opts->eos_id) r->hit_eos = 1;
            else if (r->n < max_new) { active[kept] = b; ids[kept] = next[i]; kept++; }
        }
        n_active = kept;
        if (n_active == 0) break;
        for (int i = 0; i < n_active; i++) {
            slot[i] = active[i];
            n_past[i] = prompt_lens[active[i]] + results[active[i]].n - 1;
            n_new[i] = 1;
        }
        srlm_batch step_batch = {n_active, 1, ids, slot, n_past, n_new, 1};
        SRLM_CHECK_GOTO(srlm_llama_forward(m, &kv, &acts, &step_batch), st, done);
        SRLM_CHECK_GOTO(srlm_llama_argmax(m, &acts, n_active, next), st, done);
    }
    st = SRLM_OK;
done:
    if (st != SRLM_OK)
        for (int b = 0; b < B; b++) srlm_greedy_result_free(&results[b]);
    srlm_llama_acts_free(&acts, m->be);
    srlm_kv_cache_free(&kv, m->be);
    free(mem);
    return st;
}

void srlm_greedy_result_free(srlm_greedy_result *r) {
    free(r->ids);
    r->ids = NULL;
    r->n = 0;
}
