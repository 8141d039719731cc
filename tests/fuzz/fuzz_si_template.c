/* The self-instruct prompt template file (srlm_si_template_load, _render).
 * Invariants of a template that loaded: {examples} occurs exactly once, no
 * white space at either end; rendering shots that hold "{examples}" and line
 * breaks gives a text without any new line break from them, the numbered
 * list in place of the placeholder, and the rest verbatim. A failure is
 * SRLM_BAD_INPUT naming the file. */
#include "fuzz_util.h"
#include "pipeline/self_instruct.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file("self_instruct.txt", data, size);
    srlm_si_template t;
    srlm_clear_error();
    srlm_status s = srlm_si_template_load(&t, path);
    if (s != SRLM_OK) {
        fuzz_check_failure(s, path);
        FUZZ_CHECK(s == SRLM_BAD_INPUT, "a bad template gave status %d: %s", (int)s, srlm_last_error());
        FUZZ_CHECK(t.text == NULL, "a failed load left text");
        return 0;
    }
    const char *x = t.text;
    size_t n = strlen(x);
    FUZZ_CHECK(n <= size && n > 0, "template of %zu bytes from %zu", n, size);
    FUZZ_CHECK(fuzz_count(x, SRLM_SI_PH_EXAMPLES) == 1, "{examples} %d times", fuzz_count(x, SRLM_SI_PH_EXAMPLES));
    FUZZ_CHECK(!strchr(" \t\n\r\f\v", x[0]) && !strchr(" \t\n\r\f\v", x[n - 1]), "not trimmed");

    const char *shots[3] = {"  one\n two {examples}\t", "", "three"};
    char *out = NULL;
    FUZZ_CHECK(srlm_si_render(&t, shots, 3, &out) == SRLM_OK, "render: %s", srlm_last_error());
    const char *list = "1. one two {examples}\n2. \n3. three";
    size_t head = (size_t)(strstr(x, SRLM_SI_PH_EXAMPLES) - x), k = strlen(SRLM_SI_PH_EXAMPLES);
    FUZZ_CHECK(strlen(out) == n - k + strlen(list) && !strncmp(out, x, head) &&
                   !strncmp(out + head, list, strlen(list)) && !strcmp(out + head + strlen(list), x + head + k),
               "rendered text differs from the template with the list in place:\n%s", out);
    free(out);
    FUZZ_CHECK(srlm_si_render(&t, NULL, 0, &out) == SRLM_OK && strlen(out) == n - k, "render with no shots");
    free(out);
    srlm_si_template_free(&t);
    return 0;
}
