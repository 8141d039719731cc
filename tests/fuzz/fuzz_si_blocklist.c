/* The self-instruct keyword blocklist file (srlm_si_blocklist_load) and the
 * matcher (srlm_si_blocked), with the input also as the text to match.
 * Invariants of a list that loaded: keywords are non-empty, lowercase ASCII,
 * trimmed, with single inner spaces; each keyword, as a text of its own, is
 * matched by itself or an earlier keyword. A failure is SRLM_BAD_INPUT naming
 * the file. */
#include "fuzz_util.h"
#include "pipeline/self_instruct.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file("blocklist.txt", data, size);
    srlm_si_blocklist b;
    srlm_clear_error();
    srlm_status s = srlm_si_blocklist_load(&b, path);
    if (s != SRLM_OK) {
        fuzz_check_failure(s, path);
        FUZZ_CHECK(s == SRLM_BAD_INPUT, "a bad blocklist gave status %d: %s", (int)s, srlm_last_error());
        FUZZ_CHECK(b.words == NULL && b.n == 0, "a failed load left words");
        return 0;
    }
    for (int i = 0; i < b.n && i < 64; i++) {
        const char *w = b.words[i];
        size_t n = strlen(w);
        FUZZ_CHECK(n > 0 && w[0] != ' ' && w[n - 1] != ' ' && !strstr(w, "  "), "keyword '%s'", w);
        for (size_t k = 0; k < n; k++)
            FUZZ_CHECK(!(w[k] >= 'A' && w[k] <= 'Z') && !strchr("\t\n\r\f\v", w[k]), "keyword '%s'", w);
        int m = srlm_si_blocked(&b, w);
        FUZZ_CHECK(m >= 0 && m <= i, "keyword %d '%s' as text matched %d", i, w, m);
    }
    char *text = fuzz_strndup(data, size);
    int m = srlm_si_blocked(&b, text);
    FUZZ_CHECK(m >= -1 && m < b.n, "matched %d of %d", m, b.n);
    free(text);
    srlm_si_blocklist_free(&b);
    return 0;
}
