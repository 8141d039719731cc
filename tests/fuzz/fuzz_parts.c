/* The run directory's part readers (src/pipeline/parts.h): srlm_artifact_done,
 * srlm_artifact_verify, srlm_records_load, srlm_jsonl_load_all and
 * srlm_parts_load on a folder written from the input.
 *
 * Input: sections split at every "%%%": part 0, its sidecar, part 1, its
 * sidecar, ... (at most 4 parts; an odd last section is a part without a
 * sidecar). A sidecar section that is exactly
 *   "auto"       is written by srlm_artifact_write with the part's line count,
 *   "count N"    likewise with count N,
 *   "none"       means no sidecar,
 * and anything else is written as the sidecar's bytes.
 *
 * Invariants: a failure is SRLM_BAD_INPUT (or out of memory) with a message
 * naming the part; done == the sidecar exists; verify succeeds only when the
 * sidecar holds the part's sha256, and always for an "auto" / "count N >= 0"
 * sidecar, with that count; a load succeeds only with a sidecar that verifies
 * and whose count, when known, is the number of records, gives one JSON object
 * per non-blank line and agrees with srlm_jsonl_load_all (which fails it only
 * for those reasons);
 * srlm_parts_load succeeds iff every part loads, with all their records in
 * order, and fails for one part more than there are. */
#include <cjson/cJSON.h>
#include <errno.h>

#include "core/sha256.h"
#include "fuzz_util.h"
#include "pipeline/parts.h"

enum { MAX_PARTS = 4 };

typedef struct {
    const uint8_t *data;
    size_t         len;
} span;

static int split(const uint8_t *data, size_t size, span *out, int cap) {
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; n < cap; i++) {
        if (i + 3 <= size && !memcmp(data + i, "%%%", 3)) {
            out[n++] = (span){data + start, i - start};
            i += 2;
            start = i + 1;
        } else if (i >= size) {
            out[n++] = (span){data + start, size - start};
            break;
        }
    }
    return n;
}

static int is_text(span s, const char *word) {
    return s.len == strlen(word) && !memcmp(s.data, word, s.len);
}

/* Non-blank lines (blank: only spaces, tabs, CR), as srlm_jsonl_next counts them. */
static long count_lines(span s) {
    long n = 0;
    for (size_t i = 0; i < s.len;) {
        const uint8_t *nl = memchr(s.data + i, '\n', s.len - i);
        size_t end = nl ? (size_t)(nl - s.data) : s.len;
        for (size_t k = i; k < end; k++)
            if (s.data[k] != ' ' && s.data[k] != '\t' && s.data[k] != '\r') {
                n++;
                break;
            }
        i = end + 1;
    }
    return n;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(1 << 16);
    size_t n = buf ? fread(buf, 1, (1 << 16) - 1, f) : 0;
    fclose(f);
    if (buf) buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static void check_records(cJSON **recs, int n, long lines, const char *what) {
    FUZZ_CHECK(n == lines, "%s: %d records from %ld non-blank lines", what, n, lines);
    for (int i = 0; i < n; i++) FUZZ_CHECK(cJSON_IsObject(recs[i]), "%s: record %d is not an object", what, i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    span sec[2 * MAX_PARTS];
    int n_sec = split(data, size, sec, 2 * MAX_PARTS);
    int n_parts = (n_sec + 1) / 2;
    char dir[600], path[MAX_PARTS + 1][1200], side[1300];
    fuzz_path(dir, sizeof dir, "parts");
    mkdir(dir, 0755);
    for (int i = 0; i <= MAX_PARTS; i++) {
        FUZZ_CHECK(srlm_part_path(path[i], sizeof path[i], dir, i) == SRLM_OK, "part path");
        snprintf(side, sizeof side, "%s.done", path[i]);
        unlink(path[i]);
        unlink(side);
    }

    int has_side[MAX_PARTS] = {0};
    long want_count[MAX_PARTS];
    int exact[MAX_PARTS] = {0}; /* a sidecar written by srlm_artifact_write */
    for (int i = 0; i < n_parts; i++) {
        span part = sec[2 * i];
        want_count[i] = count_lines(part);
        snprintf(side, sizeof side, "%s.done", path[i]);
        if (2 * i + 1 >= n_sec || is_text(sec[2 * i + 1], "none")) {
            fuzz_write_file(path[i], part.data, part.len);
            continue;
        }
        span s = sec[2 * i + 1];
        char num[32];
        long count = want_count[i];
        int written = is_text(s, "auto");
        if (!written && s.len > 6 && s.len < 6 + sizeof num && !memcmp(s.data, "count ", 6)) {
            memcpy(num, s.data + 6, s.len - 6);
            num[s.len - 6] = '\0';
            char *end;
            errno = 0;
            count = strtol(num, &end, 10);
            written = *num && !*end && errno == 0;
        }
        if (written) {
            FUZZ_CHECK(srlm_artifact_write(path[i], part.data, part.len, count) == SRLM_OK, "artifact_write: %s",
                       srlm_last_error());
            want_count[i] = count;
            exact[i] = count >= 0;
        } else {
            fuzz_write_file(path[i], part.data, part.len);
            fuzz_write_file(side, s.data, s.len);
        }
        has_side[i] = 1;
    }

    int all_load = n_parts > 0;
    long total = 0;
    for (int i = 0; i < n_parts; i++) {
        span part = sec[2 * i];
        char name[32];
        snprintf(name, sizeof name, "part-%05d.jsonl", i);
        FUZZ_CHECK(srlm_artifact_done(path[i]) == has_side[i], "part %d: done %d, sidecar %d", i,
                   srlm_artifact_done(path[i]), has_side[i]);

        long count = -7;
        srlm_clear_error();
        srlm_status v = srlm_artifact_verify(path[i], &count);
        if (v == SRLM_OK) {
            char hex[65], *text;
            srlm_sha256_hex(part.data, part.len, hex);
            snprintf(side, sizeof side, "%s.done", path[i]);
            text = slurp(side, NULL);
            FUZZ_CHECK(has_side[i] && text && strstr(text, hex), "part %d verified without its sha256 %s in: %s", i,
                       hex, text ? text : "(no sidecar)");
            free(text);
            FUZZ_CHECK(count >= 0, "part %d: verified with count %ld", i, count);
            if (exact[i]) FUZZ_CHECK(count == want_count[i], "part %d: count %ld, written %ld", i, count, want_count[i]);
        } else {
            fuzz_check_failure(v, name);
            FUZZ_CHECK(!exact[i], "part %d: an artifact_write'd part fails verification: %s", i, srlm_last_error());
        }

        cJSON **recs = NULL, **plain = NULL;
        int n = -1, n_plain = -1;
        srlm_clear_error();
        srlm_status r = srlm_records_load(path[i], &recs, &n);
        srlm_status p = srlm_jsonl_load_all(path[i], &plain, &n_plain);
        if (r == SRLM_OK) {
            FUZZ_CHECK(has_side[i], "part %d loaded without a sidecar", i);
            /* a load checks the sidecar: its sha256 and, when known, its count */
            FUZZ_CHECK(v == SRLM_OK && (count < 0 || count == n), "part %d loaded: verify %d, count %ld, %d records",
                       i, (int)v, count, n);
            check_records(recs, n, count_lines(part), "records_load");
            FUZZ_CHECK(p == SRLM_OK && n_plain == n, "part %d: records_load gives %d records, jsonl_load_all %d (%d)",
                       i, n, n_plain, (int)p);
            total += n;
        } else {
            FUZZ_CHECK(recs == NULL && n == 0, "part %d: a failed load left %d records", i, n);
            fuzz_check_failure(r, name);
            /* only for a reason the plain load does not look at: no sidecar, a
             * sha256 that does not match, or another record count */
            FUZZ_CHECK(!has_side[i] || p != SRLM_OK || v != SRLM_OK || (count >= 0 && count != n_plain),
                       "part %d: records_load failed (%s), jsonl_load_all did not", i, srlm_last_error());
            all_load = 0;
        }
        if (p == SRLM_OK) check_records(plain, n_plain, count_lines(part), "jsonl_load_all");
        else FUZZ_CHECK(plain == NULL && n_plain == 0, "part %d: a failed plain load left records", i);
        srlm_records_free(recs, n);
        srlm_records_free(plain, n_plain);
    }

    cJSON **recs = NULL;
    int n = -1;
    srlm_clear_error();
    srlm_status st = srlm_parts_load(dir, n_parts, &recs, &n);
    if (n_parts > 0) {
        FUZZ_CHECK((st == SRLM_OK) == all_load, "parts_load %d, but the parts one by one: %d", (int)st, all_load);
        if (st == SRLM_OK) FUZZ_CHECK(n == total, "parts_load: %d records, the parts hold %ld", n, total);
        else fuzz_check_failure(st, "part-");
    }
    srlm_records_free(recs, st == SRLM_OK ? n : 0);
    if (n_parts < MAX_PARTS) { /* one part more than there are: missing */
        char name[32];
        snprintf(name, sizeof name, "part-%05d.jsonl", n_parts);
        recs = NULL;
        st = srlm_parts_load(dir, n_parts + 1, &recs, &n);
        FUZZ_CHECK(st != SRLM_OK, "parts_load of %d parts when %d exist succeeded", n_parts + 1, n_parts);
        FUZZ_CHECK(recs == NULL && n == 0, "a failed parts_load left records");
        if (all_load) fuzz_check_failure(st, name);
        else fuzz_check_failure(st, "part-");
    }
    return 0;
}
