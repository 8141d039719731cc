/* Open Assistant trees (srlm_oasst_convert over srlm_jsonl) into
 * ift/eft_groups/heldout.jsonl. Each input is converted twice: skipping bad
 * trees (every report names FILE:LINE), then refusing them (the first bad tree
 * fails the conversion and nothing is written); an input without a single tree is
 * refused naming the file. Invariants: every line that is
 * not exactly one JSON object counts as bad JSON; the skip counts add up;
 * groups = EFT + held out; IFT pairs + held-out pairs + prompts without a rank-0
 * reply = prompts used; the output files hold as many lines as the counts say,
 * each a JSON object. */
#include <cjson/cJSON.h>

#include "fuzz_util.h"
#include "io/jsonl.h"
#include "io/fsutil.h"
#include "pipeline/oasst.h"

static const char *g_input;
static long g_reports;

static void on_bad_tree(void *ctx, const char *message) {
    (void)ctx;
    g_reports++;
    FUZZ_CHECK(message && !strncmp(message, g_input, strlen(g_input)) && message[strlen(g_input)] == ':' &&
                   message[strlen(g_input) + 1] >= '1' && message[strlen(g_input) + 1] <= '9',
               "a bad-tree report does not start with FILE:LINE: %s", message ? message : "(null)");
}

/* Lines of dir/name, each checked to be a JSON object; -1 when the file is absent. */
static long count_records(const char *dir, const char *name) {
    char path[800];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    long n = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        FUZZ_CHECK(line[len - 1] == '\n', "%s: last line lacks a newline", path);
        cJSON *v = cJSON_Parse(line);
        FUZZ_CHECK(cJSON_IsObject(v), "%s:%ld: not a JSON object: %s", path, n + 1, line);
        cJSON_Delete(v);
        n++;
    }
    free(line);
    fclose(f);
    return n;
}

/* Non-blank lines that are not exactly one JSON object (or hold a NUL, a key
 * twice or a \u0000 escape): each must be counted as bad JSON. */
static long count_bad_lines(const uint8_t *data, size_t size) {
    long bad = 0;
    for (size_t i = 0; i < size;) {
        const uint8_t *nl = memchr(data + i, '\n', size - i);
        size_t end = nl ? (size_t)(nl - data) : size;
        size_t k = i;
        while (k < end && (data[k] == ' ' || data[k] == '\t' || data[k] == '\r')) k++;
        if (k < end) {
            const char *after = NULL;
            char *line = fuzz_strndup(data + i, end - i);
            cJSON *v = memchr(data + i, '\0', end - i) ? NULL : cJSON_ParseWithOpts(line, &after, 0);
            /* srlm_jsonl_next also refuses a key twice in an object and a \u0000 escape */
            bad += !(cJSON_IsObject(v) && after && !after[strspn(after, " \t\r")] &&
                     !srlm_json_duplicate_key(v, NULL, NULL) && srlm_json_nul_escape(line, strlen(line)) < 0);
            cJSON_Delete(v);
            free(line);
        }
        i = end + 1;
    }
    return bad;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char out[600];
    if (!out[0]) fuzz_path(out, sizeof out, "oasst-out");
    g_input = fuzz_input_file("trees.jsonl", data, size);
    if (srlm_remove_tree(out) != SRLM_OK) abort();

    srlm_oasst_options o;
    srlm_oasst_default_options(&o);
    o.heldout_fraction = 0.5;
    o.on_bad_tree = on_bad_tree;
    srlm_oasst_stats s;
    g_reports = 0;
    srlm_clear_error();
    srlm_status st = srlm_oasst_convert(g_input, out, &o, &s);
    if (st != SRLM_OK) fuzz_check_failure(st, NULL);
    if (s.trees_read == 0) { /* an input without a single non-blank line is refused, naming the file */
        FUZZ_CHECK(st == SRLM_BAD_INPUT, "a file without trees was not refused (status %d)", (int)st);
        fuzz_check_failure(st, g_input);
        FUZZ_CHECK(count_records(out, "ift.jsonl") < 0, "a refused conversion wrote files");
        return 0;
    }
    FUZZ_CHECK(st == SRLM_OK, "skipping bad trees, the conversion failed: %s", srlm_last_error());
    FUZZ_CHECK(s.trees_skipped == s.bad_json + s.bad_structure + s.bad_rank + s.too_deep + s.duplicate_id &&
                   s.trees_skipped == g_reports && s.trees_skipped <= s.trees_read,
               "skipped %ld, reports %ld, read %ld", s.trees_skipped, g_reports, s.trees_read);
    long bad_lines = count_bad_lines(data, size);
    FUZZ_CHECK(s.bad_json == bad_lines, "%ld lines are not one JSON object each, %ld counted as bad JSON", bad_lines,
               s.bad_json);
    FUZZ_CHECK(s.prompts_used + s.prompts_deleted + s.prompts_synthetic + s.prompts_lang ==
                   s.trees_read - s.trees_skipped, "root prompts do not add up");
    FUZZ_CHECK(s.replies_seen >= s.replies_deleted + s.replies_synthetic + s.replies_lang + s.replies_unranked,
               "replies do not add up");
    FUZZ_CHECK(s.eft_groups + s.heldout_groups == s.ranked_groups, "groups %ld + %ld != %ld", s.eft_groups,
               s.heldout_groups, s.ranked_groups);
    FUZZ_CHECK(s.ift_pairs + s.ift_heldout + s.prompts_no_rank0 == s.prompts_used, "IFT %ld + %ld + %ld != %ld",
               s.ift_pairs, s.ift_heldout, s.prompts_no_rank0, s.prompts_used);
    FUZZ_CHECK(count_records(out, "ift.jsonl") == s.ift_pairs, "ift.jsonl lines");
    FUZZ_CHECK(count_records(out, "eft_groups.jsonl") == s.eft_groups, "eft_groups.jsonl lines");
    FUZZ_CHECK(count_records(out, "heldout.jsonl") == s.heldout_groups, "heldout.jsonl lines");

    /* Refusing bad trees: fails exactly when one was skipped above, and writes nothing. */
    if (srlm_remove_tree(out) != SRLM_OK) abort();
    o.fail_on_bad_tree = 1;
    o.on_bad_tree = NULL;
    srlm_oasst_stats s2;
    srlm_clear_error();
    st = srlm_oasst_convert(g_input, out, &o, &s2);
    if (s.trees_skipped) {
        FUZZ_CHECK(st == SRLM_BAD_INPUT, "a bad tree was not refused (status %d)", (int)st);
        fuzz_check_failure(st, g_input);
        FUZZ_CHECK(count_records(out, "ift.jsonl") < 0 && count_records(out, "eft_groups.jsonl") < 0 &&
                       count_records(out, "heldout.jsonl") < 0, "a refused conversion wrote files");
    } else {
        FUZZ_CHECK(st == SRLM_OK, "no bad tree, yet refused: %s", srlm_last_error());
        FUZZ_CHECK(s2.ift_pairs == s.ift_pairs && s2.eft_groups == s.eft_groups, "not the same twice");
    }
    return 0;
}
