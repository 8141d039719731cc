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
        long nul = srlm_json_nul_escape(r->buf, (size_t)n);
        if (nul >= 0) {
            cJSON_Delete(v);
            return SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld:%ld: a string holds \\u0000 (a NUL character), which srlm's "
                            "text cannot hold; remove it", r->path, r->line, nul + 1);
        }
        const cJSON *parent = NULL, *dup = srlm_json_duplicate_key(v, &parent, NULL);
        if (dup) {
            srlm_status st = parent && parent->string
                ? SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld: key \"%s\" appears twice in \"%s\"; a key may appear once",
                           r->path, r->line, dup->string, parent->string)
                : SRLM_ERR(SRLM_BAD_INPUT, "%s:%ld: key \"%s\" appears twice; a key may appear once", r->path,
                           r->line, dup->string);
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

/* The first key of `obj`'s own children that repeats an earlier sibling's:
 * its index, or the number of children when none. Pairwise for small objects;
 * sorted for large ones (a safetensors header has one key per tensor). */
typedef struct { const char *name; int index; } key_ref;

static int cmp_key_ref(const void *a, const void *b) {
    const key_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

static int pairwise_first_repeat(const cJSON *obj, int n) {
    int i = 0;
    for (const cJSON *e = obj->child; e; e = e->next, i++)
        for (const cJSON *f = obj->child; f != e; f = f->next)
            if (e->string && f->string && !strcmp(e->string, f->string)) return i;
    return n;
}

static int first_repeat(const cJSON *obj, int n) {
    if (n < 2) return n;
    key_ref *refs = n > 32 ? malloc(sizeof *refs * (size_t)n) : NULL;
    if (!refs) return pairwise_first_repeat(obj, n); /* small, or no memory for the sort */
    int k = 0, first = n;
    for (const cJSON *e = obj->child; e; e = e->next, k++) refs[k] = (key_ref){e->string ? e->string : "", k};
    qsort(refs, (size_t)k, sizeof *refs, cmp_key_ref);
    for (int i = 1; i < k; i++) /* equal names sit together, in document order */
        if (!strcmp(refs[i].name, refs[i - 1].name) && refs[i].index < first) first = refs[i].index;
    free(refs);
    return first;
}

static const cJSON *find_duplicate(const cJSON *v, const cJSON **parent) {
    if (!cJSON_IsObject(v) && !cJSON_IsArray(v)) return NULL;
    int n = 0;
    for (const cJSON *e = v->child; e; e = e->next) n++;
    int repeat = cJSON_IsObject(v) ? first_repeat(v, n) : n, i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (i == repeat) {
            if (parent) *parent = v;
            return e;
        }
        const cJSON *d = find_duplicate(e, parent);
        if (d) return d;
    }
    return NULL;
}

/* Keys named `name` before `target` in document order; 1 once target is reached. */
static int count_before(const cJSON *v, const cJSON *target, const char *name, int *count) {
    for (const cJSON *e = v->child; e; e = e->next) {
        if (e == target) return 1;
        if (cJSON_IsObject(v) && e->string && !strcmp(e->string, name)) (*count)++;
        if ((cJSON_IsObject(e) || cJSON_IsArray(e)) && count_before(e, target, name, count)) return 1;
    }
    return 0;
}

const cJSON *srlm_json_duplicate_key(const cJSON *root, const cJSON **parent, int *nth) {
    if (parent) *parent = NULL;
    if (nth) *nth = 0;
    if (!root) return NULL;
    const cJSON *d = find_duplicate(root, parent);
    if (d && nth) count_before(root, d, d->string, nth);
    return d;
}

int srlm_json_key_line(const char *text, size_t len, const char *key, int nth) {
    size_t klen = strlen(key);
    int line = 1, seen = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n') { line++; continue; }
        if (text[i] != '"') continue;
        size_t start = ++i, has_escape = 0;
        for (; i < len && text[i] != '"'; i++) {
            if (text[i] == '\\') { has_escape = 1; i++; }
            else if (text[i] == '\n') line++; /* not valid JSON; kept for the count */
        }
        if (i >= len) return 0;
        size_t end = i, j = i + 1;
        while (j < len && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r' || text[j] == '\n')) j++;
        if (j >= len || text[j] != ':') continue;
        if (!has_escape && end - start == klen && !memcmp(text + start, key, klen) && seen++ == nth) return line;
    }
    return 0;
}

long srlm_json_nul_escape(const char *text, size_t len) {
    /* In text cJSON accepted, a backslash appears only inside strings and starts
     * an escape; skipping the escaped character keeps "\\u0000" (a backslash
     * and "u0000") from matching. */
    for (size_t i = 0; i + 1 < len; i++) {
        if (text[i] != '\\') continue;
        if (text[i + 1] == 'u' && i + 5 < len && !memcmp(text + i + 2, "0000", 4)) return (long)i;
        i++;
    }
    return -1;
}
