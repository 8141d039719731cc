/* The prompt model's reply -> the new task (srlm_si_extract), then the filter
 * (srlm_si_filter, with ROUGE-L and the built-in blocklist) on the extracted
 * line and on the raw reply. Invariants: an extracted task is one non-empty
 * line of the reply (a substring before any NUL), trimmed, not ending with ':';
 * every verdict is valid and its match index points where the verdict says; a
 * known prompt offered again is a DUPLICATE of itself. */
#define _GNU_SOURCE /* memmem */
#include "fuzz_util.h"
#include "pipeline/self_instruct.h"

static int is_blank_end(const char *s, size_t n, int at_start) {
    unsigned char c = (unsigned char)(at_start ? s[0] : s[n - 1]);
    if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') return 1;
    if (n >= 2 && at_start && (unsigned char)s[0] == 0xC2 && (unsigned char)s[1] == 0xA0) return 1;
    if (n >= 2 && !at_start && (unsigned char)s[n - 2] == 0xC2 && (unsigned char)s[n - 1] == 0xA0) return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static srlm_si_blocklist bl;
    static int have_bl;
    if (!have_bl) {
        if (srlm_si_blocklist_load(&bl, NULL) != SRLM_OK) abort();
        have_bl = 1;
    }
    const char *reply = (const char *)data;
    char *task = NULL;
    srlm_status s = srlm_si_extract(reply, size, &task);
    FUZZ_CHECK(s == SRLM_OK, "extract failed: %s", srlm_last_error());
    size_t len = memchr(reply, '\0', size) ? strlen(reply) : size;
    if (task) {
        size_t n = strlen(task);
        FUZZ_CHECK(n > 0 && !strchr(task, '\n') && task[n - 1] != ':', "task '%s'", task);
        FUZZ_CHECK(!is_blank_end(task, n, 1) && !is_blank_end(task, n, 0), "task not trimmed: '%s'", task);
        FUZZ_CHECK(memmem(reply, len, task, n) != NULL, "task '%s' is not part of the reply", task);
        char *again = NULL;
        FUZZ_CHECK(srlm_si_extract(reply, size, &again) == SRLM_OK && again && !strcmp(again, task),
                   "not deterministic");
        free(again);
    }

    static const char *const pool[] = {"Write a poem about the sea.", "Explain how rain forms."};
    char *raw = fuzz_strndup(data, size);
    const char *cands[3] = {task, raw, pool[0]};
    srlm_si_filter_opts o = {0.7, 1, 3, 150, &bl};
    srlm_si_check checks[3];
    int counts[SRLM_SI_N_VERDICTS];
    s = srlm_si_filter(&o, pool, 2, cands, 3, checks, counts);
    FUZZ_CHECK(s == SRLM_OK, "filter failed: %s", srlm_last_error());
    int total = 0;
    for (int v = 0; v < SRLM_SI_N_VERDICTS; v++) total += counts[v];
    FUZZ_CHECK(total == 3, "counts add up to %d", total);
    for (int c = 0; c < 3; c++) {
        const srlm_si_check *r = &checks[c];
        FUZZ_CHECK(r->verdict >= SRLM_SI_KEEP && r->verdict < SRLM_SI_N_VERDICTS, "verdict %d", (int)r->verdict);
        FUZZ_CHECK(strcmp(srlm_si_verdict_name(r->verdict), "?") != 0, "verdict without a name");
        if (r->verdict == SRLM_SI_DUPLICATE || r->verdict == SRLM_SI_SIMILAR)
            FUZZ_CHECK(r->match >= 0 && r->match < 2 + c && (r->match < 2 || checks[r->match - 2].verdict == SRLM_SI_KEEP),
                       "candidate %d (%s) matched %d", c, srlm_si_verdict_name(r->verdict), r->match);
        else if (r->verdict == SRLM_SI_BLOCKED)
            FUZZ_CHECK(r->match >= 0 && r->match < bl.n, "blocked by keyword %d", r->match);
        else
            FUZZ_CHECK(r->match == -1, "verdict %s with match %d", srlm_si_verdict_name(r->verdict), r->match);
        FUZZ_CHECK(r->rouge == -1 || (r->rouge >= 0 && r->rouge <= 1), "rouge %g", r->rouge);
        if (r->verdict == SRLM_SI_KEEP || r->verdict == SRLM_SI_SIMILAR)
            FUZZ_CHECK(r->rouge >= 0, "verdict %s without a ROUGE-L", srlm_si_verdict_name(r->verdict));
    }
    FUZZ_CHECK(checks[2].verdict == SRLM_SI_DUPLICATE && checks[2].match == 0,
               "a known prompt offered again gave %s (match %d)", srlm_si_verdict_name(checks[2].verdict),
               checks[2].match);
    free(raw);
    free(task);
    return 0;
}
