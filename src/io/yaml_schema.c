#include "io/yaml_schema.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

enum { KEY_CAP = 256 };

typedef enum { PARSE_OK, PARSE_BAD, PARSE_OOM } parse_result;

/* ---- scalars ------------------------------------------------------------- */

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* A plain (unquoted) empty, "~" or "null" is YAML's null: no value. */
static bool is_null(const char *t, bool quoted) {
    return !quoted && (!*t || !strcmp(t, "~") || !strcmp(t, "null") || !strcmp(t, "Null") ||
                       !strcmp(t, "NULL"));
}

static bool scan_int(const char *p) {
    if (*p == '+' || *p == '-') p++;
    if (!is_digit(*p)) return false;
    while (is_digit(*p)) p++;
    return *p == '\0';
}

/* Decimal numbers only: "1e-6", "5.5e-06", ".5", "3". strtod alone would also
 * take "inf", "nan" and hex, which no config value should be. */
static bool scan_float(const char *p) {
    int digits = 0;
    if (*p == '+' || *p == '-') p++;
    while (is_digit(*p)) p++, digits++;
    if (*p == '.') {
        p++;
        while (is_digit(*p)) p++, digits++;
    }
    if (!digits) return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!is_digit(*p)) return false;
        while (is_digit(*p)) p++;
    }
    return *p == '\0';
}

static bool in_range(const srlm_schema_field *f, double v) {
    bool lo = (f->flags & SRLM_FIELD_MIN_OPEN) ? v > f->min : v >= f->min;
    bool hi = (f->flags & SRLM_FIELD_MAX_OPEN) ? v < f->max : v <= f->max;
    return lo && hi;
}

/* Parse scalar text `t` (len bytes; libyaml allows NULs inside) into the field
 * of obj. PARSE_BAD covers wrong type and out of range alike: the message
 * "expected <type and range>, found <text>" says both. */
static parse_result parse_value(const srlm_schema_field *f, const char *t, size_t len, bool quoted,
                                void *obj) {
    void *dst = (char *)obj + f->offset;
    bool null = is_null(t, quoted);
    switch (f->type) {
    case SRLM_FIELD_INT: {
        if (null || !scan_int(t)) return PARSE_BAD;
        errno = 0;
        long long v = strtoll(t, NULL, 10);
        if (errno || v < INT_MIN || v > INT_MAX || !in_range(f, (double)v)) return PARSE_BAD;
        *(int *)dst = (int)v;
        return PARSE_OK;
    }
    case SRLM_FIELD_DOUBLE: {
        if (null || !scan_float(t)) return PARSE_BAD;
        double v = strtod(t, NULL); /* underflow to 0 is fine; overflow is caught below */
        if (!isfinite(v) || !in_range(f, v)) return PARSE_BAD;
        *(double *)dst = v;
        return PARSE_OK;
    }
    case SRLM_FIELD_BOOL:
        if (!strcmp(t, "true") || !strcmp(t, "True") || !strcmp(t, "TRUE")) *(bool *)dst = true;
        else if (!strcmp(t, "false") || !strcmp(t, "False") || !strcmp(t, "FALSE")) *(bool *)dst = false;
        else return PARSE_BAD;
        return PARSE_OK;
    case SRLM_FIELD_ENUM:
        for (int i = 0; f->choices && f->choices[i]; i++)
            if (!strcmp(f->choices[i], t)) {
                *(int *)dst = i;
                return PARSE_OK;
            }
        return PARSE_BAD;
    case SRLM_FIELD_STRING: {
        if (strlen(t) != len) return PARSE_BAD; /* an escaped \0 inside */
        const char *v = null ? "" : t;
        if (!*v && (f->flags & (SRLM_FIELD_REQUIRED | SRLM_FIELD_NONEMPTY))) return PARSE_BAD;
        char *copy = strdup(v);
        if (!copy) return PARSE_OOM;
        char **slot = dst;
        free(*slot);
        *slot = copy;
        return PARSE_OK;
    }
    }
    return PARSE_BAD;
}

/* "a number in (0, 1]", "an integer >= 1", "one of cosine, linear, constant". */
static void describe_expected(const srlm_schema_field *f, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = '\0';
    switch (f->type) {
    case SRLM_FIELD_BOOL: snprintf(buf, cap, "true or false"); return;
    case SRLM_FIELD_STRING:
        snprintf(buf, cap, "%s", (f->flags & (SRLM_FIELD_REQUIRED | SRLM_FIELD_NONEMPTY))
                                     ? "a non-empty string" : "a string");
        return;
    case SRLM_FIELD_ENUM:
        n += (size_t)snprintf(buf, cap, "one of ");
        for (int i = 0; f->choices && f->choices[i] && n < cap; i++)
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? ", " : "", f->choices[i]);
        return;
    case SRLM_FIELD_INT:
    case SRLM_FIELD_DOUBLE: break;
    }
    bool is_int = f->type == SRLM_FIELD_INT;
    bool lo = is_int ? f->min > INT_MIN : isfinite(f->min);
    bool hi = is_int ? f->max < INT_MAX : isfinite(f->max);
    bool lo_open = f->flags & SRLM_FIELD_MIN_OPEN, hi_open = f->flags & SRLM_FIELD_MAX_OPEN;
    const char *what = is_int ? "an integer" : "a number";
    if (lo && hi)
        snprintf(buf, cap, "%s in %c%g, %g%c", what, lo_open ? '(' : '[', f->min, f->max,
                 hi_open ? ')' : ']');
    else if (lo)
        snprintf(buf, cap, "%s %s %g", what, lo_open ? ">" : ">=", f->min);
    else if (hi)
        snprintf(buf, cap, "%s %s %g", what, hi_open ? "<" : "<=", f->max);
    else
        snprintf(buf, cap, "%s", what);
}

/* What the user wrote, for messages; node == NULL is an empty override value. */
static void describe_found(const yaml_node_t *node, char *buf, size_t cap) {
    if (!node) {
        snprintf(buf, cap, "an empty value");
    } else if (node->type == YAML_MAPPING_NODE) {
        snprintf(buf, cap, "a mapping");
    } else if (node->type == YAML_SEQUENCE_NODE) {
        snprintf(buf, cap, "a list");
    } else {
        const char *t = (const char *)node->data.scalar.value;
        bool quoted = node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        if (is_null(t, quoted)) snprintf(buf, cap, "an empty value");
        else snprintf(buf, cap, "'%.60s%s'", t, strlen(t) > 60 ? "..." : "");
    }
}

/* ---- keys: lookup, sections, suggestions ---------------------------------- */

const srlm_schema_field *srlm_schema_find(const srlm_schema *s, const char *key) {
    for (int i = 0; i < s->n_fields; i++)
        if (!strcmp(s->fields[i].key, key)) return &s->fields[i];
    return NULL;
}

/* "" is the root section; "train" and "train.sft" are sections. */
static bool is_section(const srlm_schema *s, const char *path) {
    size_t n = strlen(path);
    if (!n) return true;
    for (int i = 0; i < s->n_fields; i++)
        if (!strncmp(s->fields[i].key, path, n) && s->fields[i].key[n] == '.') return true;
    return false;
}

/* The names directly inside a section: "lr, lr_min, schedule, ...". Relies on
 * sections being contiguous in the table (srlm_schema_validate). */
static void list_children(const srlm_schema *s, const char *path, char *buf, size_t cap) {
    size_t plen = strlen(path), n = 0;
    const char *last = NULL;
    size_t last_len = 0;
    buf[0] = '\0';
    for (int i = 0; i < s->n_fields && n + 1 < cap; i++) {
        const char *k = s->fields[i].key;
        if (plen && (strncmp(k, path, plen) != 0 || k[plen] != '.')) continue;
        const char *child = plen ? k + plen + 1 : k;
        size_t clen = strcspn(child, ".");
        if (last && clen == last_len && !strncmp(child, last, clen)) continue;
        n += (size_t)snprintf(buf + n, cap - n, "%s%.*s", last ? ", " : "", (int)clen, child);
        last = child;
        last_len = clen;
    }
}

static int edit_distance(const char *a, const char *b) {
    enum { CAP = 128 };
    size_t la = strlen(a), lb = strlen(b);
    if (la >= CAP || lb >= CAP) return INT_MAX / 2;
    int prev[CAP], cur[CAP];
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int best = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < best) best = prev[j] + 1;
            if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
            cur[j] = best;
        }
        memcpy(prev, cur, (lb + 1) * sizeof(int));
    }
    return prev[lb];
}

/* A hint for an unknown key: the closest key or section when it is a likely
 * typo, else keys elsewhere with the same last name ("generate.seed" ->
 * "run.seed"), else what the section does contain. */
static void suggest(const srlm_schema *s, const char *full, char *buf, size_t cap) {
    char best_key[KEY_CAP] = "", cand[KEY_CAP];
    /* "trian.sft.lr": the hint is about the first part that does not exist. */
    for (const char *d = strchr(full, '.'); d; d = strchr(d + 1, '.')) {
        char head[KEY_CAP];
        snprintf(head, sizeof head, "%.*s", (int)(d - full), full);
        if (is_section(s, head)) continue;
        char inner[512];
        suggest(s, head, inner, sizeof inner); /* "" or " (did you mean 'x'?)" */
        /* precisions bound the hint well inside the callers' buffers */
        if (*inner) snprintf(buf, cap, " (there is no section '%.80s'; %.400s", head, inner + 2);
        else snprintf(buf, cap, " (there is no section '%.80s')", head);
        return;
    }
    int best = INT_MAX;
    for (int i = 0; i < s->n_fields; i++) {
        /* the key itself, then each of its sections */
        snprintf(cand, sizeof cand, "%s", s->fields[i].key);
        for (;;) {
            int d = edit_distance(full, cand);
            if (d < best) {
                best = d;
                memcpy(best_key, cand, sizeof cand);
            }
            char *dot = strrchr(cand, '.');
            if (!dot) break;
            *dot = '\0';
        }
    }
    const char *dot = strrchr(full, '.');
    const char *leaf = dot ? dot + 1 : full;
    if (best <= 2 && 2 * best <= (int)strlen(leaf)) {
        snprintf(buf, cap, " (did you mean '%s'?)", best_key);
        return;
    }
    size_t n = 0;
    int found = 0;
    buf[0] = '\0';
    for (int i = 0; i < s->n_fields && found < 3 && n + 1 < cap; i++) {
        const char *k = s->fields[i].key, *kd = strrchr(k, '.');
        if (strcmp(kd ? kd + 1 : k, leaf) != 0) continue;
        n += (size_t)snprintf(buf + n, cap - n, "%s'%s'", found ? " or " : " (did you mean ", k);
        found++;
    }
    if (found) {
        if (n + 1 < cap) snprintf(buf + n, cap - n, "?)");
        return;
    }
    char parent[KEY_CAP], children[512];
    snprintf(parent, sizeof parent, "%.*s", dot ? (int)(dot - full) : 0, full);
    if (!is_section(s, parent)) return;
    list_children(s, parent, children, sizeof children);
    if (*parent) snprintf(buf, cap, " (section '%.80s' has: %.440s)", parent, children);
    else snprintf(buf, cap, " (sections: %.440s)", children);
}

/* ---- loading --------------------------------------------------------------- */

typedef struct {
    const srlm_schema *s;
    void              *obj;
    unsigned char     *given;
    yaml_document_t   *doc;
    const char        *name;     /* the file, for FILE:LINE:COLUMN */
    const char        *override; /* "key=value" while applying an override */
} loader;

static srlm_status fail(const loader *L, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static srlm_status fail(const loader *L, yaml_mark_t m, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (L->override) return SRLM_ERR(SRLM_BAD_INPUT, "override '%s': %s", L->override, msg);
    return SRLM_ERR(SRLM_BAD_INPUT, "%s:%zu:%zu: %s", L->name, m.line + 1, m.column + 1, msg);
}

/* libyaml's own problem text and position. Reader errors (bad UTF-8) carry a
 * byte offset instead of a mark. */
static srlm_status yaml_failure(const yaml_parser_t *p, const char *name, const char *override,
                                const char *text, size_t len) {
    if (p->error == YAML_MEMORY_ERROR) return SRLM_ERR(SRLM_FAILED, "out of memory parsing YAML");
    size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1;
    if (p->error == YAML_READER_ERROR) {
        line = 1, col = 1;
        for (size_t i = 0; i < p->problem_offset && i < len; i++) {
            if (text[i] == '\n') line++, col = 1;
            else col++;
        }
    }
    char ctx[256] = "";
    if (p->context)
        snprintf(ctx, sizeof ctx, " (%s at line %zu, column %zu)", p->context,
                 p->context_mark.line + 1, p->context_mark.column + 1);
    const char *problem = p->problem ? p->problem : "unknown problem";
    if (override)
        return SRLM_ERR(SRLM_BAD_INPUT, "override '%s': malformed value: %s%s", override, problem, ctx);
    return SRLM_ERR(SRLM_BAD_INPUT, "%s:%zu:%zu: malformed YAML: %s%s", name, line, col, problem, ctx);
}

/* v == NULL: an override with an empty value. */
static srlm_status set_from_node(const loader *L, const srlm_schema_field *f, const yaml_node_t *v) {
    parse_result r = PARSE_BAD;
    if (!v)
        r = parse_value(f, "", 0, false, L->obj);
    else if (v->type == YAML_SCALAR_NODE)
        r = parse_value(f, (const char *)v->data.scalar.value, v->data.scalar.length,
                        v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE, L->obj);
    if (r == PARSE_OOM) return SRLM_ERR(SRLM_FAILED, "out of memory reading the config");
    if (r == PARSE_BAD) {
        char expected[512], found[96];
        yaml_mark_t m = {0, 0, 0};
        describe_expected(f, expected, sizeof expected);
        describe_found(v, found, sizeof found);
        if (L->override) return fail(L, m, "expected %s, found %s", expected, found);
        return fail(L, v->start_mark, "key '%s': expected %s, found %s", f->key, expected, found);
    }
    if (L->given) L->given[f - L->s->fields] = 1;
    return SRLM_OK;
}

static srlm_status load_mapping(const loader *L, yaml_node_t *node, const char *path) {
    char found[96], children[512];
    if (node->type == YAML_SCALAR_NODE &&
        is_null((const char *)node->data.scalar.value,
                node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE))
        return SRLM_OK; /* "judge:" with every key commented out */
    if (node->type != YAML_MAPPING_NODE) {
        describe_found(node, found, sizeof found);
        list_children(L->s, path, children, sizeof children);
        if (!*path)
            return fail(L, node->start_mark, "expected a mapping of sections (%s) at the top level, found %s",
                        children, found);
        return fail(L, node->start_mark, "key '%s': expected a mapping (a section with keys %s), found %s",
                    path, children, found);
    }
    yaml_node_pair_t *start = node->data.mapping.pairs.start, *top = node->data.mapping.pairs.top;
    for (yaml_node_pair_t *p = start; p < top; p++) {
        yaml_node_t *k = yaml_document_get_node(L->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(L->doc, p->value);
        if (!k || !v) return SRLM_ERR(SRLM_FAILED, "libyaml returned a broken document");
        if (k->type != YAML_SCALAR_NODE) {
            describe_found(k, found, sizeof found);
            return fail(L, k->start_mark, "expected a key name%s%s%s, found %s", *path ? " in '" : "",
                        path, *path ? "'" : "", found);
        }
        const char *name = (const char *)k->data.scalar.value;
        char full[KEY_CAP];
        if (snprintf(full, sizeof full, "%s%s%s", path, *path ? "." : "", name) >= (int)sizeof full)
            return fail(L, k->start_mark, "unknown key '%.60s...'", full);
        /* YAML forbids duplicate keys but libyaml does not check. */
        for (yaml_node_pair_t *q = start; q < p; q++) {
            yaml_node_t *kq = yaml_document_get_node(L->doc, q->key);
            if (kq && kq->type == YAML_SCALAR_NODE && !strcmp((const char *)kq->data.scalar.value, name))
                return fail(L, k->start_mark, "duplicate key '%s' (first given at line %zu)", full,
                            kq->start_mark.line + 1);
        }
        if (strchr(name, '.')) {
            /* "train.sft.lr" -> "train: {sft: {lr: ...}}" */
            char nested[4 * KEY_CAP], *o = nested;
            int depth = 0;
            for (const char *c = name; *c && o < nested + KEY_CAP; c++) {
                if (*c == '.') o += sprintf(o, ": {"), depth++;
                else *o++ = *c;
            }
            o += sprintf(o, ": ...");
            while (depth-- > 0) *o++ = '}';
            *o = '\0';
            return fail(L, k->start_mark,
                        "key '%s': in a file write it nested, '%s'; dotted keys are for overrides",
                        full, nested);
        }
        const srlm_schema_field *f = srlm_schema_find(L->s, full);
        if (f) {
            SRLM_CHECK(set_from_node(L, f, v));
        } else if (is_section(L->s, full)) {
            SRLM_CHECK(load_mapping(L, v, full));
        } else {
            char hint[600];
            suggest(L->s, full, hint, sizeof hint);
            return fail(L, k->start_mark, "unknown key '%s'%s", full, hint);
        }
    }
    return SRLM_OK;
}

srlm_status srlm_schema_load_yaml(const srlm_schema *s, void *obj, const char *name,
                                  const char *text, size_t len, unsigned char *given) {
    yaml_parser_t parser;
    yaml_document_t doc, next;
    int have_doc = 0;
    srlm_status st = SRLM_OK;
    if (!yaml_parser_initialize(&parser)) return SRLM_ERR(SRLM_FAILED, "out of memory starting libyaml");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        st = yaml_failure(&parser, name, NULL, text, len);
        goto done;
    }
    have_doc = 1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) goto done; /* an empty file: all defaults */
    loader L = {s, obj, given, &doc, name, NULL};
    SRLM_CHECK_GOTO(load_mapping(&L, root, ""), st, done);

    /* A second document ("---") in a config is almost surely a mistake. */
    if (!yaml_parser_load(&parser, &next)) {
        st = yaml_failure(&parser, name, NULL, text, len);
        goto done;
    }
    yaml_node_t *root2 = yaml_document_get_root_node(&next);
    yaml_mark_t m2 = root2 ? root2->start_mark : (yaml_mark_t){0, 0, 0};
    yaml_document_delete(&next);
    if (root2)
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s:%zu:%zu: a second YAML document; a config file holds one",
                      name, m2.line + 1, m2.column + 1);
done:
    if (have_doc) yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return st;
}

srlm_status srlm_schema_apply_override(const srlm_schema *s, void *obj, const char *kv,
                                       unsigned char *given) {
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return SRLM_ERR(SRLM_BAD_INPUT, "override '%s': expected key.sub=value, e.g. train.dpo.beta=0.2", kv);
    char key[KEY_CAP], hint[600];
    size_t klen = (size_t)(eq - kv);
    if (klen >= sizeof key) return SRLM_ERR(SRLM_BAD_INPUT, "override '%s': unknown key", kv);
    memcpy(key, kv, klen);
    key[klen] = '\0';
    const srlm_schema_field *f = srlm_schema_find(s, key);
    if (!f) {
        if (is_section(s, key)) {
            list_children(s, key, hint, sizeof hint);
            return SRLM_ERR(SRLM_BAD_INPUT, "override '%s': '%s' is a section; set one of its keys (%s)",
                            kv, key, hint);
        }
        suggest(s, key, hint, sizeof hint);
        return SRLM_ERR(SRLM_BAD_INPUT, "override '%s': unknown key '%s'%s", kv, key, hint);
    }

    /* The value is YAML, so "1e-6", "true", "'quoted'" and "[1, 2]" mean what
     * they mean in the file. */
    const char *value = eq + 1;
    size_t vlen = strlen(value);
    yaml_parser_t parser;
    yaml_document_t doc;
    int have_doc = 0;
    srlm_status st = SRLM_OK;
    if (!yaml_parser_initialize(&parser)) return SRLM_ERR(SRLM_FAILED, "out of memory starting libyaml");
    yaml_parser_set_input_string(&parser, (const unsigned char *)value, vlen);
    if (!yaml_parser_load(&parser, &doc)) {
        st = yaml_failure(&parser, NULL, kv, value, vlen);
        goto done;
    }
    have_doc = 1;
    loader L = {s, obj, given, &doc, NULL, kv};
    st = set_from_node(&L, f, yaml_document_get_root_node(&doc));
done:
    if (have_doc) yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return st;
}

srlm_status srlm_schema_check_required(const srlm_schema *s, const char *name,
                                       const unsigned char *given) {
    for (int i = 0; i < s->n_fields; i++) {
        const srlm_schema_field *f = &s->fields[i];
        if (!(f->flags & SRLM_FIELD_REQUIRED) || given[i]) continue;
        if (name) return SRLM_ERR(SRLM_BAD_INPUT, "%s: missing required key '%s' (%s)", name, f->key, f->help);
        return SRLM_ERR(SRLM_BAD_INPUT, "missing required key '%s' (%s): give a config file or the override %s=VALUE",
                        f->key, f->help, f->key);
    }
    return SRLM_OK;
}

/* ---- defaults, checks, freeing ---------------------------------------------- */

srlm_status srlm_schema_set_defaults(const srlm_schema *s, void *obj) {
    for (int i = 0; i < s->n_fields; i++) {
        const srlm_schema_field *f = &s->fields[i];
        if (f->type == SRLM_FIELD_STRING) {
            /* Direct copy: a required string's default is "" and would be refused. */
            char **slot = (char **)((char *)obj + f->offset);
            free(*slot);
            *slot = strdup(f->def);
            if (!*slot) {
                srlm_schema_free(s, obj);
                return SRLM_ERR(SRLM_FAILED, "out of memory setting config defaults");
            }
        } else if (parse_value(f, f->def, strlen(f->def), false, obj) != PARSE_OK) {
            srlm_schema_free(s, obj);
            return SRLM_ERR(SRLM_FAILED, "config schema: default '%s' of '%s' is invalid", f->def, f->key);
        }
    }
    return SRLM_OK;
}

srlm_status srlm_schema_validate(const srlm_schema *s) {
    for (int i = 0; i < s->n_fields; i++) {
        const srlm_schema_field *f = &s->fields[i];
        const char *k = f->key;
        size_t n = strlen(k);
        if (!n || n >= KEY_CAP || k[0] == '.' || k[n - 1] == '.' || strstr(k, ".."))
            return SRLM_ERR(SRLM_FAILED, "config schema: bad key '%s'", k);
        if (!f->def || !f->help || !*f->help)
            return SRLM_ERR(SRLM_FAILED, "config schema: '%s' needs a default and help", k);
        if (f->type == SRLM_FIELD_ENUM && (!f->choices || !f->choices[0]))
            return SRLM_ERR(SRLM_FAILED, "config schema: enum '%s' has no choices", k);
        if ((f->type == SRLM_FIELD_INT || f->type == SRLM_FIELD_DOUBLE) && !(f->min <= f->max))
            return SRLM_ERR(SRLM_FAILED, "config schema: '%s' has min > max", k);
        if (is_section(s, k))
            return SRLM_ERR(SRLM_FAILED, "config schema: '%s' is both a key and a section", k);
        for (int j = 0; j < i; j++)
            if (!strcmp(s->fields[j].key, k))
                return SRLM_ERR(SRLM_FAILED, "config schema: '%s' listed twice", k);
        /* Each section contiguous: if an earlier field shares a section with
         * this one, so must the field just before (the printer relies on it). */
        for (size_t p = 1; p < n; p++) {
            if (k[p] != '.') continue;
            bool earlier = false;
            for (int j = 0; j < i && !earlier; j++)
                earlier = !strncmp(s->fields[j].key, k, p + 1);
            if (earlier && strncmp(s->fields[i - 1].key, k, p + 1) != 0)
                return SRLM_ERR(SRLM_FAILED, "config schema: section '%.*s' is split around '%s'", (int)p, k, k);
        }
        if (f->type != SRLM_FIELD_STRING) {
            union { int i; double d; bool b; } scratch;
            srlm_schema_field at0 = *f;
            at0.offset = 0;
            if (parse_value(&at0, f->def, strlen(f->def), false, &scratch) != PARSE_OK)
                return SRLM_ERR(SRLM_FAILED, "config schema: default '%s' of '%s' is invalid", f->def, k);
        }
    }
    return SRLM_OK;
}

void srlm_schema_free(const srlm_schema *s, void *obj) {
    for (int i = 0; i < s->n_fields; i++) {
        if (s->fields[i].type != SRLM_FIELD_STRING) continue;
        char **slot = (char **)((char *)obj + s->fields[i].offset);
        free(*slot);
        *slot = NULL;
    }
}

int srlm_schema_equal(const srlm_schema *s, const void *a, const void *b) {
    for (int i = 0; i < s->n_fields; i++) {
        const srlm_schema_field *f = &s->fields[i];
        const void *x = (const char *)a + f->offset, *y = (const char *)b + f->offset;
        switch (f->type) {
        case SRLM_FIELD_INT:
        case SRLM_FIELD_ENUM:   if (*(const int *)x != *(const int *)y) return 0; break;
        case SRLM_FIELD_DOUBLE: if (*(const double *)x != *(const double *)y) return 0; break;
        case SRLM_FIELD_BOOL:   if (*(const bool *)x != *(const bool *)y) return 0; break;
        case SRLM_FIELD_STRING: {
            const char *sx = *(char *const *)x, *sy = *(char *const *)y;
            if (strcmp(sx ? sx : "", sy ? sy : "") != 0) return 0;
            break;
        }
        }
    }
    return 1;
}

/* ---- printing ------------------------------------------------------------------ */

/* The shortest text that reads back as the same double, always with a '.' in
 * the mantissa: "1.0e-06", not "1e-06", which YAML 1.1 readers (PyYAML) take
 * for a string. */
static void format_double(double v, char *buf, size_t cap) {
    if (v == floor(v) && fabs(v) < 1e15) { /* 1800.0, not 1.8e+03 */
        snprintf(buf, cap, "%.1f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (strchr(buf, '.')) return;
    char *e = strchr(buf, 'e');
    size_t at = e ? (size_t)(e - buf) : strlen(buf);
    if (strlen(buf) + 3 > cap) return;
    memmove(buf + at + 2, buf + at, strlen(buf) - at + 1);
    memcpy(buf + at, ".0", 2);
}

/* Every type but strings, as YAML scalar text. */
static void format_scalar(const srlm_schema_field *f, const void *obj, char *buf, size_t cap) {
    const void *src = (const char *)obj + f->offset;
    switch (f->type) {
    case SRLM_FIELD_INT:    snprintf(buf, cap, "%d", *(const int *)src); break;
    case SRLM_FIELD_DOUBLE: format_double(*(const double *)src, buf, cap); break;
    case SRLM_FIELD_BOOL:   snprintf(buf, cap, "%s", *(const bool *)src ? "true" : "false"); break;
    case SRLM_FIELD_ENUM: {
        int v = *(const int *)src, n = 0;
        while (f->choices[n]) n++;
        snprintf(buf, cap, "%s", v >= 0 && v < n ? f->choices[v] : "invalid");
        break;
    }
    case SRLM_FIELD_STRING: buf[0] = '\0'; break;
    }
}

/* Strings are always double-quoted, so any text (": ", "#", "yes", "") reads back as itself.
 * Characters that libyaml would not read back as written are escaped: the C0 and
 * C1 controls (the reader refuses them raw, and NEL U+0085 is a line break), the
 * line and paragraph separators U+2028/U+2029 (line breaks, folded inside quotes)
 * and the non-characters U+FFFE/U+FFFF (refused raw). */
static void print_quoted(FILE *out, const char *v) {
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)(v ? v : ""); *p; p++) {
        if (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F) { /* U+0080..U+009F */
            fprintf(out, "\\x%02x", p[1]);
            p++;
            continue;
        }
        if (p[0] == 0xE2 && p[1] == 0x80 && (p[2] == 0xA8 || p[2] == 0xA9)) {
            fputs(p[2] == 0xA8 ? "\\L" : "\\P", out);
            p += 2;
            continue;
        }
        if (p[0] == 0xEF && p[1] == 0xBF && (p[2] == 0xBE || p[2] == 0xBF)) {
            fputs(p[2] == 0xBE ? "\\uFFFE" : "\\uFFFF", out);
            p += 2;
            continue;
        }
        switch (*p) {
        case '"':  fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\t': fputs("\\t", out); break;
        case '\r': fputs("\\r", out); break;
        default:
            if (*p < 0x20 || *p == 0x7f) fprintf(out, "\\x%02x", *p);
            else fputc(*p, out);
        }
    }
    fputc('"', out);
}

static void print_value(FILE *out, const srlm_schema_field *f, const void *obj) {
    if (f->type == SRLM_FIELD_STRING) {
        print_quoted(out, *(char *const *)((const char *)obj + f->offset));
    } else {
        char buf[64];
        format_scalar(f, obj, buf, sizeof buf);
        fputs(buf, out);
    }
}

static size_t section_len(const char *key) {
    const char *dot = strrchr(key, '.');
    return dot ? (size_t)(dot - key) : 0;
}

srlm_status srlm_schema_print(const srlm_schema *s, const void *obj, FILE *out, int with_help) {
    const char *prev = "";
    size_t prev_len = 0;
    for (int i = 0; i < s->n_fields; i++) {
        const srlm_schema_field *f = &s->fields[i];
        const char *sec = f->key;
        size_t len = section_len(sec);
        /* `common`: how much of this field's section is already open, in whole
         * components, shared with the previous field's section. */
        size_t common = 0;
        for (size_t j = 0;; j++) {
            bool a_end = j == prev_len, b_end = j == len;
            if ((a_end || prev[j] == '.') && (b_end || sec[j] == '.')) {
                common = j;
                if (a_end || b_end) break;
                continue;
            }
            if (a_end || b_end || prev[j] != sec[j]) break;
        }
        int depth = 0;
        for (size_t j = 0; j < common; j++) depth += sec[j] == '.';
        if (common) depth++;
        size_t pos = common && common < len ? common + 1 : common;
        while (pos < len) {
            size_t end = pos;
            while (end < len && sec[end] != '.') end++;
            if (depth == 0 && i > 0) fputc('\n', out);
            fprintf(out, "%*s%.*s:\n", 2 * depth, "", (int)(end - pos), sec + pos);
            depth++;
            pos = end + 1;
        }
        if (with_help) fprintf(out, "%*s# %s\n", 2 * depth, "", f->help);
        fprintf(out, "%*s%s: ", 2 * depth, "", f->key + (len ? len + 1 : 0));
        print_value(out, f, obj);
        fputc('\n', out);
        prev = sec;
        prev_len = len;
    }
    if (fflush(out) != 0 || ferror(out))
        return SRLM_ERR(SRLM_FAILED, "writing the config: %s", strerror(errno));
    return SRLM_OK;
}

void srlm_schema_print_reference(const srlm_schema *s, FILE *out) {
    for (int i = 0; i < s->n_fields; i++) {
        const srlm_schema_field *f = &s->fields[i];
        char expected[512];
        describe_expected(f, expected, sizeof expected);
        fprintf(out, "%-34s %s\n%-34s %s; ", f->key, f->help, "", expected);
        if (f->flags & SRLM_FIELD_REQUIRED) fprintf(out, "required\n");
        else if (f->type == SRLM_FIELD_STRING) fprintf(out, "default \"%s\"\n", f->def);
        else fprintf(out, "default %s\n", f->def);
    }
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* The field's value as the hash sees it (strings as they are, the rest as
 * format_scalar writes them); *is_default: it equals the field's default. */
static const char *hash_text(const srlm_schema_field *f, const void *obj, char *buf, size_t cap, int *is_default) {
    if (f->type == SRLM_FIELD_STRING) {
        const char *v = *(char *const *)((const char *)obj + f->offset);
        *is_default = !strcmp(v ? v : "", f->def);
        return v ? v : "";
    }
    format_scalar(f, obj, buf, cap);
    /* the default through the same parser and printer, in a scratch slot */
    union { double d; long long i; int n; bool b; } slot;
    memset(&slot, 0, sizeof slot);
    srlm_schema_field at0 = *f;
    at0.offset = 0;
    char def[64];
    *is_default = parse_value(&at0, f->def, strlen(f->def), false, &slot) == PARSE_OK &&
                  (format_scalar(&at0, &slot, def, sizeof def), !strcmp(def, buf));
    return buf;
}

uint64_t srlm_schema_hash(const srlm_schema *s, const void *obj) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < s->n_fields; i++) {
        const srlm_schema_field *f = &s->fields[i];
        if (f->flags & SRLM_FIELD_NO_HASH) continue;
        char buf[64];
        int is_default;
        const char *v = hash_text(f, obj, buf, sizeof buf, &is_default);
        if (is_default) continue;
        h = fnv1a(h, f->key, strlen(f->key));
        h = fnv1a(h, "=", 1);
        h = fnv1a(h, v, strlen(v));
        h = fnv1a(h, "\n", 1);
    }
    return h;
}
