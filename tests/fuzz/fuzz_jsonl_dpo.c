/* DPO records from JSONL (srlm_dpo_data_load): text or id pairs, optional
 * reference log-probs, the pairs files of DESIGN.md "Files". Loaded twice like
 * fuzz_jsonl_sft. Invariants of a load that succeeded: the counts add up;
 * every pair fits max_seq_len with the longer response, has two non-empty,
 * different responses and ids inside the vocab; reference log-probs are finite
 * when present. A failure is SRLM_BAD_INPUT naming the file. */
#include <math.h>

#include "fuzz_jsonl.h"
#include "io/config.h"

static void run(const uint8_t *data, size_t size, const char *path, int vocab, int max_seq_len, int truncation, const char *system) {
    srlm_tokenizer *tok = fuzz_tokenizer();
    srlm_dpo_data d;
    srlm_clear_error();
    srlm_status s = srlm_dpo_data_load(&d, path, tok, vocab, max_seq_len, truncation, system);
    if (s != SRLM_OK) {
        fuzz_check_failure(s, path);
        FUZZ_CHECK(d.ex == NULL && d.n == 0, "a failed load left examples behind");
        return;
    }
    fuzz_check_jsonl_lines(data, size);
    const srlm_data_counts *c = &d.counts;
    fuzz_check_data_counts(c, d.n, truncation);
    int eos = srlm_tokenizer_eos(tok);
    for (int i = 0; i < d.n; i++) {
        const srlm_dpo_example *e = &d.ex[i];
        int longer = e->n_chosen > e->n_rejected ? e->n_chosen : e->n_rejected;
        FUZZ_CHECK(e->n_prompt >= 0 && e->n_prompt + longer <= max_seq_len, "pair %d: prompt %d + %d > %d", i,
                   e->n_prompt, longer, max_seq_len);
        FUZZ_CHECK(e->n_chosen >= 1 && e->n_rejected >= 1 && !(e->n_chosen == 1 && e->chosen[0] == eos) &&
                       !(e->n_rejected == 1 && e->rejected[0] == eos), "pair %d: an empty response", i);
        FUZZ_CHECK(e->n_chosen != e->n_rejected || memcmp(e->chosen, e->rejected, sizeof(int) * (size_t)e->n_chosen),
                   "pair %d: chosen == rejected", i);
        FUZZ_CHECK(e->chosen == e->prompt + e->n_prompt && e->rejected == e->chosen + e->n_chosen, "pair %d layout", i);
        for (int k = 0; k < e->n_prompt + e->n_chosen + e->n_rejected; k++)
            FUZZ_CHECK(e->prompt[k] >= 0 && e->prompt[k] < vocab, "pair %d: id %d outside [0, %d)", i, e->prompt[k],
                       vocab);
        FUZZ_CHECK(!e->has_ref || (isfinite(e->ref_c) && isfinite(e->ref_r)), "pair %d: ref %g %g", i, e->ref_c,
                   e->ref_r);
    }
    srlm_dpo_data_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file("dpo.jsonl", data, size);
    run(data, size, path, 320, 4096, SRLM_TRUNC_SKIP, NULL);
    run(data, size, path, 200, 12, SRLM_TRUNC_PROMPT, "Be brief.");
    return 0;
}
