#include "io/jsonl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

srlm_status srlm_jsonl_open(srlm_jsonl_reader *r, const char *path) {
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, "%s", strcmp(path, "-") ? path : "<stdin>");
    if (!strcmp(path, "-")) {
        r->f = stdin;
    } else {
        r->f = fopen(path, "rb");
        if (!r->f) return SRLM_ERR(SRLM_BAD_INPUT, "%s: cannot open: %s", path, strerror(errno));
        r->owns_file = 1;
    }
    return SRLM_OK;
}

void srlm_jsonl_close(srlm_jsonl_reader *r) {
    if (r->f && r->owns_file) fclose(r->f);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

static const char *json_kind(const cJSON *v) {
    if (!v) return "nothing";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    return "something else";
}

srlm_status srlm_jsonl_next(srlm_jsonl_reader *r, cJSON **obj) {
    *obj = NULL;
    for (;;) {
        ssize_t n = getline(&r->buf, &r->cap, r->f);
        if (n < 0) {
            if (ferror(r->f)) return SRLM_ERR(SRLM_FAILED, "%s: read error after line %ld", r->path, r->line);
            return SRLM_OK;
        }
        r->line++;
        size_t i = 0;
        while (i < (size_t)n && (r->buf[i] == ' ' || r->buf[i] == '\t' || r->buf[i] == '\r' || r->buf[i] == '\n')) i++;
        if (i == (size_t)n) continue; /* blank line */
        if (memchr(r->buf, '\0', (size_t)n))
            return SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld: line contains a NUL byte", r->path, r->line);
        const char *end = NULL;
        cJSON *v = cJSON_ParseWithLengthOpts(r->buf, (size_t)n, &end, 0);
        if (!v) {
            long col = end ? (long)(end - r->buf) + 1 : 1;
            const char *at = cJSON_GetErrorPtr();
            if (at && at >= r->buf && at < r->buf + n) col = (long)(at - r->buf) + 1;
            return SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld:%ld: not valid JSON", r->path, r->line, col);
        }
        /* One value per line: only blanks may follow it (cJSON stops after the value). */
        const char *rest = end;
        while (rest < r->buf + n && (*rest == ' ' || *rest == '\t' || *rest == '\r' || *rest == '\n')) rest++;
        if (rest < r->buf + n) {
            cJSON_Delete(v);
            return SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld:%ld: not valid JSON (text after the value)", r->path, r->line,
                            (long)(rest - r->buf) + 1);
        }
        if (!cJSON_IsObject(v)) {
            srlm_status st = SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld: expected a JSON object, found %s",
                                      r->path, r->line, json_kind(v));
            cJSON_Delete(v);
            return st;
        }
        *obj = v;
        return SRLM_OK;
    }
}

srlm_status srlm_json_string(const srlm_jsonl_reader *r, const cJSON *obj, const char *key,
                             const char **out, int *present) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (present) *present = v != NULL;
    if (!v) {
        if (present) return SRLM_OK;
        return SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld: missing key \"%s\" (a string)", r->path, r->line, key);
    }
    if (!cJSON_IsString(v))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld: key \"%s\": expected a string, found %s", r->path,
                        r->line, key, json_kind(v));
    *out = v->valuestring;
    return SRLM_OK;
}

srlm_status srlm_json_int_array(const srlm_jsonl_reader *r, const cJSON *obj, const char *key,
                                int limit, int **out, int *n, int *present) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (present) *present = v != NULL;
    if (!v) {
        if (present) return SRLM_OK;
        return SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld: missing key \"%s\" (an array of token ids)", r->path,
                        r->line, key);
    }
    if (!cJSON_IsArray(v))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld: key \"%s\": expected an array of token ids, found %s",
                        r->path, r->line, key, json_kind(v));
    int count = cJSON_GetArraySize(v);
    int *ids = malloc(sizeof(int) * (size_t)(count > 0 ? count : 1));
    if (!ids) return SRLM_ERR(SRLM_FAILED, "out of memory reading %s:%ld", r->path, r->line);
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        double d = cJSON_IsNumber(e) ? e->valuedouble : NAN;
        if (!(d >= 0 && d < limit && d == floor(d))) {
            free(ids);
            if (!cJSON_IsNumber(e))
                return SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld: key \"%s\" element %d: expected a token id, found %s",
                                r->path, r->line, key, i, json_kind(e));
            return SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld: key \"%s\" element %d: expected a token id in [0, %d), found %g",
                            r->path, r->line, key, i, limit, d);
        }
        ids[i] = (int)d;
    }
    *out = ids;
    *n = count;
    return SRLM_OK;
}
