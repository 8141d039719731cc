/* The run config (srlm_config_load_text: libyaml + the schema table).
 * Input: YAML text, then optionally NUL-separated overrides "key=value" (at
 * most 8), as `srlm run CONFIG key=value ...` would pass them. Invariants of a
 * config that loaded: the rules between keys hold, and the printed config
 * (srlm_config_print) loads back to an equal config with the same hash. A
 * failure is SRLM_BAD_INPUT naming the file or the override. */
#include "fuzz_util.h"
#include "io/config.h"

#define NAME "fuzz-config.yaml"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_strndup(data, size);
    char *ov[8];
    int n_ov = 0;
    size_t at = strlen(text) + 1;
    while (at <= size && n_ov < 8) {
        ov[n_ov++] = text + at;
        at += strlen(text + at) + 1;
    }
    srlm_config c;
    srlm_clear_error();
    srlm_status s = srlm_config_load_text(&c, NAME, text, n_ov, ov);
    if (s != SRLM_OK) {
        fuzz_check_failure(s, NULL);
        FUZZ_CHECK(s == SRLM_BAD_INPUT, "a bad config gave status %d: %s", (int)s, srlm_last_error());
        const char *msg = srlm_last_error();
        FUZZ_CHECK(strstr(msg, NAME) || strstr(msg, "override '"), "message names neither file nor override: %s",
                   msg);
        free(text);
        return 0;
    }
    FUZZ_CHECK(c.model.path && *c.model.path, "model.path is required");
    FUZZ_CHECK(c.self_instruct.min_words <= c.self_instruct.max_words, "min_words > max_words");
    FUZZ_CHECK(c.train.sft.micro_batch_size <= c.train.sft.batch_size, "sft micro > batch");
    FUZZ_CHECK(c.train.dpo.micro_batch_size <= c.train.dpo.batch_size, "dpo micro > batch");

    char *printed = NULL;
    size_t plen = 0;
    FILE *mem = open_memstream(&printed, &plen);
    if (!mem) abort();
    FUZZ_CHECK(srlm_config_print(&c, mem) == SRLM_OK, "print: %s", srlm_last_error());
    fclose(mem);
    srlm_config back;
    s = srlm_config_load_text(&back, "printed.yaml", printed, 0, NULL);
    FUZZ_CHECK(s == SRLM_OK, "the printed config does not load: %s\n%s", srlm_last_error(), printed);
    FUZZ_CHECK(srlm_config_equal(&c, &back), "the printed config loads to a different one:\n%s", printed);
    FUZZ_CHECK(srlm_config_hash(&c) == srlm_config_hash(&back), "hash changed through print and load");
    srlm_config_free(&back);
    free(printed);
    srlm_config_free(&c);
    free(text);
    return 0;
}
