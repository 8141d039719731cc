#include "pipeline/parts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/sha256.h"
#include "io/fsutil.h"
#include "io/jsonl.h"

srlm_status srlm_part_path(char *dst, size_t cap, const char *dir, int item) {
    int n = snprintf(dst, cap, "%s/part-%05d.jsonl", dir, item);
    if (n < 0 || (size_t)n >= cap) return SRLM_ERR(SRLM_BAD_INPUT, "%s: path too long", dir);
    return SRLM_OK;
}

static srlm_status sidecar_path(char *dst, size_t cap, const char *path) {
    int n = snprintf(dst, cap, "%s.done", path);
    if (n < 0 || (size_t)n >= cap) return SRLM_ERR(SRLM_BAD_INPUT, "%s: path too long", path);
    return SRLM_OK;
}

srlm_status srlm_artifact_write(const char *path, const void *data, size_t len, long count) {
    char side[1200], hex[65], text[160];
    SRLM_CHECK(sidecar_path(side, sizeof side, path));
    srlm_sha256_hex(data, len, hex);
    int n = snprintf(text, sizeof text, "{\"count\": %ld, \"sha256\": \"%s\"}\n", count, hex);
    SRLM_CHECK(srlm_write_file_atomic(path, data, len));
    return srlm_write_file_atomic(side, text, (size_t)n);
}

int srlm_artifact_done(const char *path) {
    char side[1200];
    if (sidecar_path(side, sizeof side, path) != SRLM_OK) return 0;
    return srlm_path_exists(side);
}

/* The whole file in memory (artifacts are parts of a phase: small). */
static srlm_status read_all(const char *path, char **out, size_t *len) {
    return srlm_read_file(path, "artifact", 0, out, len);
}

srlm_status srlm_artifact_verify(const char *path, long *count) {
    char side[1200], want[65], have[65];
    SRLM_CHECK(sidecar_path(side, sizeof side, path));
    FILE *f = fopen(side, "r");
    if (!f) return SRLM_ERR(SRLM_BAD_INPUT, "%s: missing: %s is not complete", side, path);
    long n = -1;
    int ok = fscanf(f, " {\"count\": %ld, \"sha256\": \"%64[0-9a-f]\"}", &n, want) == 2 && n >= 0;
    fclose(f);
    if (!ok || strlen(want) != 64)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: expected {\"count\": N, \"sha256\": \"<64 hex>\"}", side);
    char *data = NULL;
    size_t len = 0;
    SRLM_CHECK(read_all(path, &data, &len));
    srlm_sha256_hex(data, len, have);
    free(data);
    if (strcmp(want, have) != 0)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: sha256 %s does not match its sidecar (%s): the file was changed, "
                        "truncated or corrupted", path, have, want);
    if (count) *count = n;
    return SRLM_OK;
}

srlm_status srlm_artifact_remove(const char *path) {
    char side[1200];
    SRLM_CHECK(sidecar_path(side, sizeof side, path));
    if (unlink(side) != 0 && errno != ENOENT) return SRLM_ERR(SRLM_FAILED, "%s: cannot remove: %s", side, strerror(errno));
    if (unlink(path) != 0 && errno != ENOENT) return SRLM_ERR(SRLM_FAILED, "%s: cannot remove: %s", path, strerror(errno));
    return SRLM_OK;
}

void srlm_records_free(cJSON **recs, int n) {
    for (int i = 0; recs && i < n; i++) cJSON_Delete(recs[i]);
    free(recs);
}

static srlm_status append_file(const char *path, cJSON ***recs, int *n, int *cap, int need_done) {
    /* an artifact must be complete and unchanged since it was written: its
     * bytes hash to the sidecar's sha256, and it holds the sidecar's count */
    long want = -1;
    const int first = *n;
    if (need_done && !srlm_artifact_done(path)) return SRLM_ERR(SRLM_BAD_INPUT, "%s: not complete (no .done sidecar)", path);
    if (need_done) SRLM_CHECK(srlm_artifact_verify(path, &want));
    srlm_jsonl_reader r;
    SRLM_CHECK(srlm_jsonl_open(&r, path));
    srlm_status st = SRLM_OK;
    for (;;) {
        cJSON *o = NULL;
        SRLM_CHECK_GOTO(srlm_jsonl_next(&r, &o), st, done);
        if (!o) break;
        if (*n == *cap) {
            int nc = *cap ? 2 * *cap : 256;
            cJSON **g = realloc(*recs, sizeof *g * (size_t)nc);
            if (!g) { cJSON_Delete(o); st = SRLM_ERR(SRLM_FAILED, "out of memory"); goto done; }
            *recs = g;
            *cap = nc;
        }
        (*recs)[(*n)++] = o;
    }
    if (want >= 0 && *n - first != want)
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s: %d records, but its sidecar says %ld", path, *n - first, want);
done:
    srlm_jsonl_close(&r);
    return st;
}

srlm_status srlm_records_load(const char *path, cJSON ***recs, int *n) {
    int cap = 0;
    *recs = NULL;
    *n = 0;
    srlm_status st = append_file(path, recs, n, &cap, 1);
    if (st != SRLM_OK) { srlm_records_free(*recs, *n); *recs = NULL; *n = 0; }
    return st;
}

srlm_status srlm_jsonl_load_all(const char *path, cJSON ***recs, int *n) {
    int cap = 0;
    *recs = NULL;
    *n = 0;
    srlm_status st = append_file(path, recs, n, &cap, 0);
    if (st != SRLM_OK) { srlm_records_free(*recs, *n); *recs = NULL; *n = 0; }
    return st;
}

srlm_status srlm_parts_load(const char *dir, int n_items, cJSON ***recs, int *n) {
    int cap = 0;
    *recs = NULL;
    *n = 0;
    srlm_status st = SRLM_OK;
    for (int i = 0; i < n_items && st == SRLM_OK; i++) {
        char path[1200];
        st = srlm_part_path(path, sizeof path, dir, i);
        if (st == SRLM_OK) st = append_file(path, recs, n, &cap, 1);
    }
    if (st != SRLM_OK) { srlm_records_free(*recs, *n); *recs = NULL; *n = 0; }
    return st;
}

void srlm_text_add(srlm_text *t, const char *s, size_t len) {
    if (t->failed) return;
    if (t->len + len + 1 > t->cap) {
        size_t cap = (t->len + len + 1) * 2;
        char *g = realloc(t->s, cap);
        if (!g) { t->failed = 1; return; }
        t->s = g;
        t->cap = cap;
    }
    memcpy(t->s + t->len, s, len);
    t->len += len;
    t->s[t->len] = 0;
}

void srlm_text_add_json(srlm_text *t, const cJSON *obj) {
    char *line = cJSON_PrintUnformatted(obj);
    if (!line) { t->failed = 1; return; }
    srlm_text_add(t, line, strlen(line));
    srlm_text_add(t, "\n", 1);
    t->count++;
    cJSON_free(line);
}

srlm_status srlm_text_status(const srlm_text *t) {
    return t->failed ? SRLM_ERR(SRLM_FAILED, "out of memory building a JSONL part") : SRLM_OK;
}

void srlm_text_free(srlm_text *t) {
    free(t->s);
    memset(t, 0, sizeof *t);
}
