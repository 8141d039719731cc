/* The judge's score parser (srlm_judge_parse_score) on arbitrary bytes, not
 * NUL-terminated. Invariants: OK <=> a score in 0..5 (else -1); the verdict does
 * not depend on whether a score is asked for; it is deterministic; and any text
 * followed by a line "Score: 3" parses as OK with 3 (the last marker decides,
 * and numbers on earlier lines never count). */
#include "fuzz_util.h"
#include "pipeline/judge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    int score = 99;
    srlm_score_verdict v = srlm_judge_parse_score(text, size, &score);
    FUZZ_CHECK(v >= SRLM_SCORE_OK && v <= SRLM_SCORE_OUT_OF_RANGE, "verdict %d", (int)v);
    FUZZ_CHECK(strcmp(srlm_score_verdict_name(v), "unknown") != 0, "verdict %d has no name", (int)v);
    if (v == SRLM_SCORE_OK) FUZZ_CHECK(score >= 0 && score <= SRLM_JUDGE_MAX_SCORE, "OK with score %d", score);
    else FUZZ_CHECK(score == -1, "verdict %s with score %d", srlm_score_verdict_name(v), score);
    FUZZ_CHECK(srlm_judge_parse_score(text, size, NULL) == v, "verdict changes without a score pointer");
    int again = 99;
    FUZZ_CHECK(srlm_judge_parse_score(text, size, &again) == v && again == score, "not deterministic");

    static const char tail[] = "\nScore: 3";
    char *ext = malloc(size + sizeof tail - 1);
    if (!ext) abort();
    if (size) memcpy(ext, data, size);
    memcpy(ext + size, tail, sizeof tail - 1);
    v = srlm_judge_parse_score(ext, size + sizeof tail - 1, &score);
    FUZZ_CHECK(v == SRLM_SCORE_OK && score == 3, "a final line 'Score: 3' gave %s (%d)", srlm_score_verdict_name(v),
               score);
    free(ext);
    return 0;
}
