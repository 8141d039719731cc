/* SFT records from JSONL (srlm_sft_data_load over srlm_jsonl): text lines go
 * through the fixture tokenizer and the chat formatter, id lines are taken as
 * they are. Each input is loaded twice: a long max_seq_len that skips, and a
 * short one that truncates the prompt with a model vocab smaller than the
 * tokenizer's. Invariants of a load that succeeded: the counts add up, every
 * example fits max_seq_len, has a non-empty response and ids inside the vocab.
 * A failure is SRLM_BAD_INPUT naming the file. */

#include "fuzz_jsonl.h"
#include "io/config.h"

static void run(const uint8_t *data, size_t size, const char *path, int vocab, int max_seq_len, int truncation, const char *system) {
    srlm_tokenizer *tok = fuzz_tokenizer();
    srlm_sft_data d;
    srlm_clear_error();
    srlm_status s = srlm_sft_data_load(&d, path, tok, vocab, max_seq_len, truncation, system);
    if (s != SRLM_OK) {
        fuzz_check_failure(s, path);
        FUZZ_CHECK(d.ex == NULL && d.n == 0, "a failed load left examples behind");
        return;
    }
    fuzz_check_jsonl_lines(data, size);
    const srlm_data_counts *c = &d.counts;
    fuzz_check_data_counts(c, d.n, truncation);
    FUZZ_CHECK(c->truncated <= c->kept && c->skipped_equal == 0, "truncated %ld equal %ld", c->truncated,
               c->skipped_equal);
    int eos = srlm_tokenizer_eos(tok);
    for (int i = 0; i < d.n; i++) {
        const srlm_sft_example *e = &d.ex[i];
        FUZZ_CHECK(e->n_prompt >= 0 && e->n_response >= 1 && e->n_prompt + e->n_response <= max_seq_len,
                   "example %d: prompt %d response %d, max %d", i, e->n_prompt, e->n_response, max_seq_len);
        FUZZ_CHECK(!(e->n_response == 1 && e->ids[e->n_prompt] == eos), "example %d: response is EOS alone", i);
        for (int k = 0; k < e->n_prompt + e->n_response; k++)
            FUZZ_CHECK(e->ids[k] >= 0 && e->ids[k] < vocab, "example %d: id %d outside [0, %d)", i, e->ids[k], vocab);
    }
    srlm_sft_data_free(&d);
    FUZZ_CHECK(d.ex == NULL && d.n == 0, "free left examples");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file("sft.jsonl", data, size);
    run(data, size, path, 320, 4096, SRLM_TRUNC_SKIP, NULL);
    run(data, size, path, 200, 12, SRLM_TRUNC_PROMPT, "Be brief.");
    return 0;
}
