/* Invariants shared by the JSONL dataset harnesses (fuzz_jsonl_sft, fuzz_jsonl_dpo)
 * for a load that succeeded. */
#ifndef SRLM_FUZZ_JSONL_H
#define SRLM_FUZZ_JSONL_H

#include <cjson/cJSON.h>

#include "fuzz_util.h"
#include "io/config.h"
#include "train/dataset.h"

/* The JSONL contract of a file that loaded: every non-blank line is one JSON
 * object and nothing else. */
static inline void fuzz_check_jsonl_lines(const uint8_t *data, size_t size) {
    for (size_t i = 0; i < size;) {
        const uint8_t *nl = memchr(data + i, '\n', size - i);
        size_t end = nl ? (size_t)(nl - data) : size;
        char *line = fuzz_strndup(data + i, end - i);
        size_t k = strspn(line, " \t\r");
        if (line[k]) {
            const char *after = NULL;
            cJSON *v = cJSON_ParseWithOpts(line, &after, 0);
            FUZZ_CHECK(cJSON_IsObject(v) && after && !after[strspn(after, " \t\r")],
                       "accepted a line that is not exactly one JSON object: %s", line);
            cJSON_Delete(v);
        }
        free(line);
        i = end + 1;
    }
}

/* Every line read was kept or skipped for one named reason; n examples kept. */
static inline void fuzz_check_data_counts(const srlm_data_counts *c, int n, int truncation) {
    FUZZ_CHECK(n >= 1 && c->kept == n, "kept %ld, n %d", c->kept, n);
    FUZZ_CHECK(c->read == c->kept + c->skipped_too_long + c->skipped_empty + c->skipped_equal,
               "read %ld != kept %ld + skipped %ld + %ld + %ld", c->read, c->kept, c->skipped_too_long,
               c->skipped_empty, c->skipped_equal);
    FUZZ_CHECK(truncation == SRLM_TRUNC_PROMPT || c->truncated == 0, "truncated without truncate_prompt");
}

#endif
