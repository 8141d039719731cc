/* Open Assistant trees -> IFT pairs, ranked EFT groups and a held-out set. The
 * rules are in oasst.h. Reading is in two steps per line: validate the whole
 * tree (so a refused tree gives one precise reason), then take the first turn. */
#include "pipeline/oasst.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "io/fsutil.h"
#include "io/jsonl.h"

void srlm_oasst_default_options(srlm_oasst_options *o) {
    memset(o, 0, sizeof *o);
    o->heldout_fraction = 0.1;
    o->seed = 0;
    o->lang = "en";
}

uint64_t srlm_oasst_prompt_hash(uint64_t seed, const char *prompt_id) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then mixed with the seed */
    for (const unsigned char *p = (const unsigned char *)prompt_id; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    return srlm_rng_key(seed, h);
}

/* ---------------------------------------------------------------- validation */

enum { TREE_OK = 0, TREE_BAD_STRUCTURE, TREE_BAD_RANK, TREE_TOO_DEEP };

typedef struct {
    char why[1024];
    char path[2048]; /* "prompt.replies[1].replies[0]" */
} validator;

static void describe(const cJSON *v, char *buf, size_t cap) {
    if (!v) snprintf(buf, cap, "nothing");
    else if (cJSON_IsString(v)) snprintf(buf, cap, "the string \"%.20s\"", v->valuestring);
    else if (cJSON_IsNumber(v)) snprintf(buf, cap, "%g", v->valuedouble);
    else if (cJSON_IsArray(v)) snprintf(buf, cap, "an array");
    else if (cJSON_IsObject(v)) snprintf(buf, cap, "an object");
    else if (cJSON_IsBool(v)) snprintf(buf, cap, "a boolean");
    else if (cJSON_IsNull(v)) snprintf(buf, cap, "null");
    else snprintf(buf, cap, "something else");
}

static int fail(validator *va, int kind, const char *key, const char *expected, const cJSON *found) {
    char f[64];
    describe(found, f, sizeof f);
    snprintf(va->why, sizeof va->why, "%.800s%s%s: expected %s, found %s", va->path, key ? "." : "",
             key ? key : "", expected, f);
    return kind;
}

/* An optional field of one JSON type (null counts as absent where allowed). */
static int check_optional(validator *va, const cJSON *m, const char *key, cJSON_bool (*is)(const cJSON *),
                          const char *expected, int null_ok) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
    if (!v || is(v) || (null_ok && cJSON_IsNull(v))) return TREE_OK;
    return fail(va, TREE_BAD_STRUCTURE, key, expected, v);
}

/* rank: absent or null (unranked) or an integer >= 0. *rank = -1 when unranked. */
static int read_rank(validator *va, const cJSON *m, long *rank) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, "rank");
    *rank = -1;
    if (!v || cJSON_IsNull(v)) return TREE_OK;
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
    if (!(d >= 0 && d == floor(d) && d < 1e9))
        return fail(va, TREE_BAD_RANK, "rank", "an integer >= 0 or null", v);
    *rank = (long)d;
    return TREE_OK;
}

/* Validate message `m` at `depth` (root = 1) whose role must be `want_role`. */
static int validate_message(validator *va, const cJSON *m, int depth, const char *want_role) {
    if (depth > SRLM_OASST_MAX_DEPTH) {
        snprintf(va->why, sizeof va->why, "messages nested deeper than %d levels", SRLM_OASST_MAX_DEPTH);
        return TREE_TOO_DEEP;
    }
    if (!cJSON_IsObject(m)) return fail(va, TREE_BAD_STRUCTURE, NULL, "a message object", m);
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    if (!cJSON_IsString(role)) return fail(va, TREE_BAD_STRUCTURE, "role", "\"prompter\" or \"assistant\"", role);
    if (strcmp(role->valuestring, want_role) != 0) {
        snprintf(va->why, sizeof va->why, "%.800s.role: expected \"%s\"%s, found \"%.40s\"", va->path, want_role,
                 depth == 1 ? " (the root of a tree)" : " (roles alternate)", role->valuestring);
        return TREE_BAD_STRUCTURE;
    }
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(m, "text");
    if (!cJSON_IsString(text) || !text->valuestring[0])
        return fail(va, TREE_BAD_STRUCTURE, "text", "a non-empty string", text);
    if (depth == 1) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "message_id");
        if (!cJSON_IsString(id) || !id->valuestring[0])
            return fail(va, TREE_BAD_STRUCTURE, "message_id", "a non-empty string", id);
    }
    int st;
    if ((st = check_optional(va, m, "message_id", cJSON_IsString, "a string", 0)) ||
        (st = check_optional(va, m, "lang", cJSON_IsString, "a string or null", 1)) ||
        (st = check_optional(va, m, "deleted", cJSON_IsBool, "a boolean", 0)) ||
        (st = check_optional(va, m, "synthetic", cJSON_IsBool, "a boolean", 0)) ||
        (st = check_optional(va, m, "model_name", cJSON_IsString, "a string or null", 1)) ||
        (st = check_optional(va, m, "replies", cJSON_IsArray, "an array or null", 1)))
        return st;
    long own_rank;
    if ((st = read_rank(va, m, &own_rank))) return st;

    const cJSON *replies = cJSON_GetObjectItemCaseSensitive(m, "replies");
    if (!cJSON_IsArray(replies)) return TREE_OK;
    const char *child_role = strcmp(want_role, "prompter") == 0 ? "assistant" : "prompter";
    size_t base = strlen(va->path);
    int i = 0;
    for (const cJSON *c = replies->child; c; c = c->next, i++) {
        snprintf(va->path + base, sizeof va->path - base, ".replies[%d]", i);
        if ((st = validate_message(va, c, depth + 1, child_role))) return st;
        long rank;
        read_rank(va, c, &rank); /* validated just above */
        int j = 0;
        for (const cJSON *s = replies->child; s != c && rank >= 0; s = s->next, j++) {
            long other;
            read_rank(va, s, &other);
            if (other == rank) {
                snprintf(va->why, sizeof va->why, "%.800s.rank: %ld again (sibling %d has it too); "
                         "ranks must differ among siblings", va->path, rank, j);
                return TREE_BAD_RANK;
            }
        }
    }
    va->path[base] = '\0';
    return TREE_OK;
}

/* ------------------------------------------------------------------ reading */

typedef struct {
    char *text;
    long  rank;
} ranked_reply;

typedef struct {
    char         *prompt_id, *prompt;
    char         *rank0;      /* the rank-0 reply, or NULL */
    ranked_reply *replies;    /* usable ranked replies, sorted by rank */
    int           n_replies;
    uint64_t      hash;
    int           heldout;
} entry;

typedef struct {
    entry *e;
    size_t n, cap;
    char **ids;     /* open-addressing set of every accepted tree's prompt_id */
    long  *id_line;
    size_t ids_cap, ids_n;
} collection;

enum { DROP_NONE = 0, DROP_DELETED, DROP_SYNTHETIC, DROP_LANG };

static int drop_reason(const cJSON *m, const char *lang) {
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "deleted"))) return DROP_DELETED;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(m, "model_name");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "synthetic")) ||
        (cJSON_IsString(model) && model->valuestring[0]))
        return DROP_SYNTHETIC;
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(m, "lang");
    if (!cJSON_IsString(l) || strcmp(l->valuestring, lang) != 0) return DROP_LANG;
    return DROP_NONE;
}

/* Insert `id`; returns the earlier line when already present, 0 when new, -1 out of memory. */
static long id_insert(collection *c, const char *id, long line) {
    if (2 * (c->ids_n + 1) > c->ids_cap) {
        size_t cap = c->ids_cap ? 2 * c->ids_cap : 256;
        char **ids = calloc(cap, sizeof *ids);
        long *lines = calloc(cap, sizeof *lines);
        if (!ids || !lines) { free(ids); free(lines); return -1; }
        for (size_t i = 0; i < c->ids_cap; i++) {
            if (!c->ids[i]) continue;
            size_t k = srlm_oasst_prompt_hash(0, c->ids[i]) & (cap - 1);
            while (ids[k]) k = (k + 1) & (cap - 1);
            ids[k] = c->ids[i];
            lines[k] = c->id_line[i];
        }
        free(c->ids);
        free(c->id_line);
        c->ids = ids;
        c->id_line = lines;
        c->ids_cap = cap;
    }
    size_t k = srlm_oasst_prompt_hash(0, id) & (c->ids_cap - 1);
    for (; c->ids[k]; k = (k + 1) & (c->ids_cap - 1))
        if (!strcmp(c->ids[k], id)) return c->id_line[k];
    if (!(c->ids[k] = strdup(id))) return -1;
    c->id_line[k] = line;
    c->ids_n++;
    return 0;
}

static int cmp_rank(const void *a, const void *b) {
    long x = ((const ranked_reply *)a)->rank, y = ((const ranked_reply *)b)->rank;
    return (x > y) - (x < y);
}

static void entry_free(entry *e) {
    free(e->prompt_id);
    free(e->prompt);
    free(e->rank0);
    for (int i = 0; i < e->n_replies; i++) free(e->replies[i].text);
    free(e->replies);
}

/* Take the first turn of a validated tree. */
static srlm_status take_first_turn(collection *c, const cJSON *root, const srlm_oasst_options *o,
                                   srlm_oasst_stats *s) {
    int why = drop_reason(root, o->lang);
    if (why == DROP_DELETED) { s->prompts_deleted++; return SRLM_OK; }
    if (why == DROP_SYNTHETIC) { s->prompts_synthetic++; return SRLM_OK; }
    if (why == DROP_LANG) { s->prompts_lang++; return SRLM_OK; }
    s->prompts_used++;

    entry e;
    memset(&e, 0, sizeof e);
    const cJSON *replies = cJSON_GetObjectItemCaseSensitive(root, "replies");
    int n = cJSON_IsArray(replies) ? cJSON_GetArraySize(replies) : 0;
    e.replies = calloc((size_t)(n > 0 ? n : 1), sizeof *e.replies);
    if (!e.replies) return SRLM_ERR(SRLM_FAILED, "out of memory");
    for (const cJSON *r = n ? replies->child : NULL; r; r = r->next) {
        s->replies_seen++;
        why = drop_reason(r, o->lang);
        if (why == DROP_DELETED) { s->replies_deleted++; continue; }
        if (why == DROP_SYNTHETIC) { s->replies_synthetic++; continue; }
        if (why == DROP_LANG) { s->replies_lang++; continue; }
        const cJSON *rank = cJSON_GetObjectItemCaseSensitive(r, "rank");
        if (!cJSON_IsNumber(rank)) { s->replies_unranked++; continue; }
        ranked_reply *rr = &e.replies[e.n_replies++];
        rr->rank = (long)rank->valuedouble;
        rr->text = strdup(cJSON_GetObjectItemCaseSensitive(r, "text")->valuestring);
        if (!rr->text) { entry_free(&e); return SRLM_ERR(SRLM_FAILED, "out of memory"); }
    }
    qsort(e.replies, (size_t)e.n_replies, sizeof *e.replies, cmp_rank);
    if (e.n_replies > 0 && e.replies[0].rank == 0) {
        if (!(e.rank0 = strdup(e.replies[0].text))) { entry_free(&e); return SRLM_ERR(SRLM_FAILED, "out of memory"); }
    } else {
        s->prompts_no_rank0++;
    }
    if (e.n_replies >= 2) s->ranked_groups++;
    if (!e.rank0 && e.n_replies < 2) { entry_free(&e); return SRLM_OK; } /* nothing to write */
    if (e.n_replies < 2) { /* an IFT pair only */
        for (int i = 0; i < e.n_replies; i++) free(e.replies[i].text);
        e.n_replies = 0;
    }
    e.prompt_id = strdup(cJSON_GetObjectItemCaseSensitive(root, "message_id")->valuestring);
    e.prompt = strdup(cJSON_GetObjectItemCaseSensitive(root, "text")->valuestring);
    if (!e.prompt_id || !e.prompt) { entry_free(&e); return SRLM_ERR(SRLM_FAILED, "out of memory"); }
    e.hash = srlm_oasst_prompt_hash(o->seed, e.prompt_id);
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 256;
        entry *grown = realloc(c->e, cap * sizeof *grown);
        if (!grown) { entry_free(&e); return SRLM_ERR(SRLM_FAILED, "out of memory"); }
        c->e = grown;
        c->cap = cap;
    }
    c->e[c->n++] = e;
    return SRLM_OK;
}

/* One bad tree: counted, reported, and refused when asked. */
static srlm_status bad_tree(const srlm_oasst_options *o, const char *msg) {
    if (o->fail_on_bad_tree) return SRLM_ERR(SRLM_BAD_INPUT, "%s", msg);
    if (o->on_bad_tree) o->on_bad_tree(o->ctx, msg);
    srlm_clear_error();
    return SRLM_OK;
}

static srlm_status read_trees(collection *c, const char *path, const srlm_oasst_options *o,
                              srlm_oasst_stats *s) {
    srlm_jsonl_reader r;
    SRLM_CHECK(srlm_jsonl_open(&r, path));
    srlm_status st = SRLM_OK;
    validator *va = malloc(sizeof *va);
    char *msg = malloc(4096);
    if (!va || !msg) { st = SRLM_ERR(SRLM_FAILED, "out of memory"); goto done; }
    for (;;) {
        cJSON *tree = NULL;
        st = srlm_jsonl_next(&r, &tree);
        if (st == SRLM_BAD_INPUT) { /* not JSON, or not an object */
            s->trees_read++;
            s->bad_json++;
            snprintf(msg, 4096, "%s", srlm_last_error());
            if ((st = bad_tree(o, msg)) != SRLM_OK) goto done;
            continue;
        }
        if (st != SRLM_OK || !tree) goto done;
        s->trees_read++;
        const cJSON *root = cJSON_GetObjectItemCaseSensitive(tree, "prompt");
        snprintf(va->path, sizeof va->path, "prompt");
        va->why[0] = '\0';
        int kind = cJSON_IsObject(root) ? validate_message(va, root, 1, "prompter")
                                        : fail(va, TREE_BAD_STRUCTURE, NULL, "an object", root);
        long earlier = 0;
        if (kind == TREE_OK) {
            earlier = id_insert(c, cJSON_GetObjectItemCaseSensitive(root, "message_id")->valuestring, r.line);
            if (earlier < 0) { cJSON_Delete(tree); st = SRLM_ERR(SRLM_FAILED, "out of memory"); goto done; }
        }
        if (kind != TREE_OK || earlier > 0) {
            if (kind == TREE_BAD_STRUCTURE) s->bad_structure++;
            else if (kind == TREE_BAD_RANK) s->bad_rank++;
            else if (kind == TREE_TOO_DEEP) s->too_deep++;
            else s->duplicate_id++;
            if (kind != TREE_OK)
                snprintf(msg, 4096, "%s:%ld: malformed tree: %s", r.path, r.line, va->why);
            else
                snprintf(msg, 4096, "%s:%ld: malformed tree: prompt.message_id \"%.100s\" already seen on line %ld",
                         r.path, r.line, cJSON_GetObjectItemCaseSensitive(root, "message_id")->valuestring, earlier);
            cJSON_Delete(tree);
            if ((st = bad_tree(o, msg)) != SRLM_OK) goto done;
            continue;
        }
        st = take_first_turn(c, root, o, s);
        cJSON_Delete(tree);
        if (st != SRLM_OK) goto done;
    }
done:
    s->trees_skipped = s->bad_json + s->bad_structure + s->bad_rank + s->too_deep + s->duplicate_id;
    free(va);
    free(msg);
    srlm_jsonl_close(&r);
    return st;
}

/* ----------------------------------------------------------------- held out */

static int cmp_heldout(const void *a, const void *b) {
    const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
    if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
    return strcmp(x->prompt_id, y->prompt_id);
}

static srlm_status choose_heldout(collection *c, double fraction, srlm_oasst_stats *s) {
    entry **groups = malloc(sizeof *groups * (c->n ? c->n : 1));
    if (!groups) return SRLM_ERR(SRLM_FAILED, "out of memory");
    size_t g = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->e[i].n_replies >= 2) groups[g++] = &c->e[i];
    qsort(groups, g, sizeof *groups, cmp_heldout);
    size_t k = (size_t)floor(fraction * (double)g + 0.5);
    if (k > g) k = g;
    for (size_t i = 0; i < k; i++) groups[i]->heldout = 1;
    s->heldout_groups = (long)k;
    s->eft_groups = (long)(g - k);
    free(groups);
    return SRLM_OK;
}

/* ------------------------------------------------------------------ writing */

static srlm_status write_line(srlm_atomic_file *f, cJSON *rec) {
    char *text = cJSON_PrintUnformatted(rec);
    cJSON_Delete(rec);
    if (!text) return SRLM_ERR(SRLM_FAILED, "out of memory writing %s", f->path);
    srlm_status st = srlm_atomic_write(f, text, strlen(text));
    if (st == SRLM_OK) st = srlm_atomic_write(f, "\n", 1);
    free(text);
    return st;
}

static srlm_status write_ift(srlm_atomic_file *f, const entry *e) {
    cJSON *rec = cJSON_CreateObject();
    if (!rec || !cJSON_AddStringToObject(rec, "prompt_id", e->prompt_id) ||
        !cJSON_AddStringToObject(rec, "prompt", e->prompt) || !cJSON_AddStringToObject(rec, "response", e->rank0)) {
        cJSON_Delete(rec);
        return SRLM_ERR(SRLM_FAILED, "out of memory writing %s", f->path);
    }
    return write_line(f, rec);
}

static srlm_status write_group(srlm_atomic_file *f, const entry *e) {
    cJSON *rec = cJSON_CreateObject(), *arr = NULL;
    int ok = rec && cJSON_AddStringToObject(rec, "prompt_id", e->prompt_id) &&
             cJSON_AddStringToObject(rec, "prompt", e->prompt) && (arr = cJSON_AddArrayToObject(rec, "replies"));
    for (int i = 0; ok && i < e->n_replies; i++) {
        cJSON *r = cJSON_CreateObject();
        if (!r) { ok = 0; break; }
        cJSON_AddItemToArray(arr, r); /* owned by rec from here on */
        ok = cJSON_AddStringToObject(r, "text", e->replies[i].text) &&
             cJSON_AddNumberToObject(r, "rank", (double)e->replies[i].rank);
    }
    if (!ok) {
        cJSON_Delete(rec);
        return SRLM_ERR(SRLM_FAILED, "out of memory writing %s", f->path);
    }
    return write_line(f, rec);
}

static srlm_status write_outputs(const collection *c, const char *dir, srlm_oasst_stats *s) {
    static const char *names[3] = {"ift.jsonl", "eft_groups.jsonl", "heldout.jsonl"};
    srlm_atomic_file f[3];
    int opened = 0;
    srlm_status st = srlm_mkdir_p(dir);
    for (int i = 0; st == SRLM_OK && i < 3; i++) {
        char path[1024];
        st = srlm_path_join(path, sizeof path, dir, names[i]);
        if (st == SRLM_OK) st = srlm_atomic_open(&f[i], path);
        if (st == SRLM_OK) opened++;
    }
    s->ift_pairs = s->ift_heldout = 0;
    for (size_t i = 0; st == SRLM_OK && i < c->n; i++) {
        const entry *e = &c->e[i];
        if (e->rank0 && e->heldout) s->ift_heldout++;
        if (e->rank0 && !e->heldout) {
            st = write_ift(&f[0], e);
            s->ift_pairs++;
        }
        if (st == SRLM_OK && e->n_replies >= 2) st = write_group(&f[e->heldout ? 2 : 1], e);
    }
    int committed = 0;
    for (; st == SRLM_OK && committed < opened; committed++) st = srlm_atomic_commit(&f[committed]);
    for (int i = committed; i < opened; i++) srlm_atomic_abort(&f[i]);
    return st;
}

srlm_status srlm_oasst_convert(const char *trees_path, const char *out_dir, const srlm_oasst_options *o,
                               srlm_oasst_stats *stats) {
    srlm_oasst_stats local;
    srlm_oasst_stats *s = stats ? stats : &local;
    memset(s, 0, sizeof *s);
    if (!(o->heldout_fraction >= 0 && o->heldout_fraction <= 1))
        return SRLM_ERR(SRLM_BAD_INPUT, "held-out fraction must be in [0, 1], found %g", o->heldout_fraction);
    if (!o->lang || !o->lang[0]) return SRLM_ERR(SRLM_BAD_INPUT, "the language code must not be empty");

    collection c;
    memset(&c, 0, sizeof c);
    srlm_status st = read_trees(&c, trees_path, o, s);
    /* empty seed data is a mistake (a wrong path, a failed download), not three empty files */
    if (st == SRLM_OK && s->trees_read == 0)
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s: no trees: expected one Open Assistant message tree (a JSON object) "
                      "per line, found an empty file; nothing written", trees_path);
    if (st == SRLM_OK) st = choose_heldout(&c, o->heldout_fraction, s);
    if (st == SRLM_OK) st = write_outputs(&c, out_dir, s);
    for (size_t i = 0; i < c.n; i++) entry_free(&c.e[i]);
    free(c.e);
    for (size_t i = 0; i < c.ids_cap; i++) free(c.ids[i]);
    free(c.ids);
    free(c.id_line);
    return st;
}
