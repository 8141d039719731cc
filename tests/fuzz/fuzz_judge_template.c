/* The judge prompt template file (srlm_judge_template_load, _render,
 * _shared_prefix_len). Invariants of a template that loaded: {instruction} and
 * {response} occur exactly once each, no white space at either end; rendering replaces them verbatim in one pass (values that themselves
 * hold placeholders are not substituted again), so the length adds up; the
 * shared prefix ends where the first placeholder begins. A failure is
 * SRLM_BAD_INPUT naming the file. */
#include "fuzz_util.h"
#include "pipeline/judge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file("judge.txt", data, size);
    srlm_judge_template t;
    srlm_clear_error();
    srlm_status s = srlm_judge_template_load(&t, path);
    if (s != SRLM_OK) {
        fuzz_check_failure(s, path);
        FUZZ_CHECK(s == SRLM_BAD_INPUT, "a bad template gave status %d: %s", (int)s, srlm_last_error());
        FUZZ_CHECK(t.text == NULL, "a failed load left text");
        return 0;
    }
    const char *x = t.text;
    size_t n = strlen(x);
    FUZZ_CHECK(n <= size, "template grew from %zu to %zu bytes", size, n);
    FUZZ_CHECK(fuzz_count(x, SRLM_JUDGE_PH_INSTRUCTION) == 1 && fuzz_count(x, SRLM_JUDGE_PH_RESPONSE) == 1,
               "placeholders: %d instruction, %d response", fuzz_count(x, SRLM_JUDGE_PH_INSTRUCTION),
               fuzz_count(x, SRLM_JUDGE_PH_RESPONSE));
    FUZZ_CHECK(n > 0 && !strchr(" \t\n\r\f\v", x[0]) && !strchr(" \t\n\r\f\v", x[n - 1]), "not trimmed");
    size_t pre = srlm_judge_shared_prefix_len(&t);
    FUZZ_CHECK(pre < n && (!strncmp(x + pre, SRLM_JUDGE_PH_INSTRUCTION, strlen(SRLM_JUDGE_PH_INSTRUCTION)) ||
                           !strncmp(x + pre, SRLM_JUDGE_PH_RESPONSE, strlen(SRLM_JUDGE_PH_RESPONSE))),
               "shared prefix %zu does not end at a placeholder", pre);

    const char *ins = "I{response}{instruction}", *resp = "R{instruction}";
    char *out = NULL;
    FUZZ_CHECK(srlm_judge_render(&t, ins, resp, &out) == SRLM_OK, "render: %s", srlm_last_error());
    size_t want = n - strlen(SRLM_JUDGE_PH_INSTRUCTION) - strlen(SRLM_JUDGE_PH_RESPONSE) + strlen(ins) + strlen(resp);
    FUZZ_CHECK(strlen(out) == want, "rendered %zu bytes, expected %zu", strlen(out), want);
    FUZZ_CHECK(!strncmp(out, x, pre), "the rendered text does not start with the shared prefix");
    free(out);
    srlm_judge_template_free(&t);
    FUZZ_CHECK(t.text == NULL, "free left text");
    return 0;
}
