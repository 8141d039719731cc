#include "pipeline/self_instruct.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "io/fsutil.h"
#include "pipeline/rouge.h"

#define FILE_MAX_BYTES (1 << 20) /* a template or blocklist is a few KB */

/* The text of configs/prompts/self_instruct.txt after its comments are
 * stripped; test_self_instruct checks that the two agree. */
static const char builtin_template[] =
    "Below are some requests that people have made to an AI assistant:\n"
    "\n"
    "{examples}\n"
    "\n"
    "Come up with one new request that a person could make to an AI assistant. It must be "
    "clearly different from every request above, both in subject and in wording. It must be "
    "self-contained, so that it can be answered without any other context, and it must be "
    "something a text-only assistant can do: nothing that needs seeing or producing pictures, "
    "sound, video or files, and nothing that needs browsing the web. Reply with the new "
    "request only, written on a single line, with no number, heading, answer or comment.";

/* configs/prompts/blocklist.txt, also checked by the test. */
static const char *const builtin_blocklist[] = {
    "image", "images", "graph", "graphs", "picture", "pictures", "file",  "files",     "map",
    "maps",  "draw",   "plot",  "go to",  "video",   "audio",    "music", "flowchart", "diagram",
};

/* ------------------------------------------------------------ characters */

static int is_ws(int c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_word(int c) { return is_alpha(c) || is_digit(c) || c == '_'; }
static int lower(int c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; }
static int is_punct(int c) { return c > ' ' && c < 127 && !is_alpha(c) && !is_digit(c); }

/* ------------------------------------------------------------ few-shot choice */

#define LABEL_SHOTS 0x73686f7473ull /* "shots" */

/* Uniform-ish integer in [0, range) from one counter: 32 random bits scaled. */
static int draw(uint64_t key, uint64_t counter, int range) {
    return (int)(((srlm_rng_u64(key, counter) >> 32) * (uint64_t)range) >> 32);
}

/* Floyd's algorithm: k distinct indexes of [0, n), appended at out[*m]. */
static void floyd(uint64_t key, int n, int k, int from_prev, srlm_si_shot *out, int *m) {
    int start = *m;
    for (int j = n - k; j < n; j++) {
        int t = draw(key, (uint64_t)(j - (n - k)), j + 1);
        for (int q = start; q < *m; q++)
            if (out[q].index == t) {
                t = j; /* j itself cannot have been chosen yet */
                break;
            }
        out[*m].from_prev = from_prev;
        out[*m].index = t;
        (*m)++;
    }
}

srlm_status srlm_si_pick_shots(int n_ift, int n_prev, int shots_ift, int shots_gen, uint64_t seed,
                               uint64_t item, srlm_si_shot *out, int *n_out) {
    if (!n_out || (!out && shots_ift + shots_gen > 0))
        return SRLM_ERR(SRLM_BAD_INPUT, "self-instruct shots: no output array");
    *n_out = 0;
    if (n_ift < 0 || n_prev < 0 || shots_ift < 0 || shots_gen < 0)
        return SRLM_ERR(SRLM_BAD_INPUT,
                        "self-instruct shots: negative count (pools %d, %d; shots %d, %d)", n_ift,
                        n_prev, shots_ift, shots_gen);
    int g = shots_gen < n_prev ? shots_gen : n_prev;
    int want_ift = shots_ift + (shots_gen - g); /* missing previous shots come from IFT */
    int f = want_ift < n_ift ? want_ift : n_ift;

    uint64_t key = srlm_rng_key(srlm_rng_key(seed, LABEL_SHOTS), item);
    int m = 0;
    floyd(srlm_rng_key(key, 1), n_ift, f, 0, out, &m);
    floyd(srlm_rng_key(key, 2), n_prev, g, 1, out, &m);
    uint64_t k_order = srlm_rng_key(key, 3);
    for (int i = m - 1; i > 0; i--) {
        int j = draw(k_order, (uint64_t)i, i + 1);
        srlm_si_shot tmp = out[i];
        out[i] = out[j];
        out[j] = tmp;
    }
    *n_out = m;
    return SRLM_OK;
}

/* ------------------------------------------------------------------ files */

/* The whole file into a malloc'd buffer (not NUL-terminated), at most
 * FILE_MAX_BYTES; `what` names the file's role in messages. */
static srlm_status read_small_file(const char *path, const char *what, char **raw, size_t *n) {
    char *buf;
    size_t got;
    SRLM_CHECK(srlm_read_file(path, what, FILE_MAX_BYTES, &buf, &got));
    const char *nul = memchr(buf, '\0', got);
    if (nul) {
        size_t at = (size_t)(nul - buf);
        free(buf);
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: %s contains a NUL byte at offset %zu", path, what, at);
    }
    *raw = buf;
    *n = got;
    return SRLM_OK;
}

/* ------------------------------------------------------------------ template */

/* Drop '#' lines, CRLF -> LF, trim both ends; counts {examples} in the kept
 * lines (*count, and the line numbers of the first two). */
static char *strip_template(const char *src, size_t n, int *count, int *line1, int *line2) {
    char *out = malloc(n + 1);
    if (!out) return NULL;
    const size_t k = strlen(SRLM_SI_PH_EXAMPLES);
    size_t o = 0;
    int line_no = 0;
    *count = *line1 = *line2 = 0;
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(src + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - src) : n; /* the line is src[i, end) */
        size_t body = end;
        if (body > i && src[body - 1] == '\r') body--;
        line_no++;
        if (src[i] != '#') {
            for (size_t p = i; p + k <= body; p++) {
                if (memcmp(src + p, SRLM_SI_PH_EXAMPLES, k) != 0) continue;
                if (++*count == 1) *line1 = line_no;
                if (*count == 2) *line2 = line_no;
                p += k - 1;
            }
            memcpy(out + o, src + i, body - i);
            o += body - i;
            if (nl) out[o++] = '\n';
        }
        i = nl ? end + 1 : n;
    }
    size_t a = 0;
    while (a < o && is_ws((unsigned char)out[a])) a++;
    while (o > a && is_ws((unsigned char)out[o - 1])) o--;
    memmove(out, out + a, o - a);
    out[o - a] = '\0';
    return out;
}

srlm_status srlm_si_template_load(srlm_si_template *t, const char *path) {
    t->text = NULL;
    const char *name = path && *path ? path : "(built-in self-instruct template)";
    char *raw = NULL;
    size_t n = 0;
    if (path && *path) {
        SRLM_CHECK(read_small_file(path, "self-instruct template", &raw, &n));
    } else {
        n = sizeof builtin_template - 1;
        if (!(raw = malloc(n))) return SRLM_ERR(SRLM_FAILED, "%s: out of memory", name);
        memcpy(raw, builtin_template, n);
    }
    int count, line1, line2;
    char *text = strip_template(raw, n, &count, &line1, &line2);
    free(raw);
    if (!text) return SRLM_ERR(SRLM_FAILED, "%s: out of memory reading self-instruct template", name);
    srlm_status st = SRLM_OK;
    if (count == 0)
        st = SRLM_ERR(SRLM_BAD_INPUT,
                      "%s: self-instruct template has no %s placeholder (expected exactly one; "
                      "lines starting with '#' are comments)", name, SRLM_SI_PH_EXAMPLES);
    else if (count > 1)
        st = SRLM_ERR(SRLM_BAD_INPUT,
                      "%s:%d: self-instruct template has %s %d times (first on line %d); "
                      "expected exactly once", name, line2, SRLM_SI_PH_EXAMPLES, count, line1);
    if (st != SRLM_OK) {
        free(text);
        return st;
    }
    t->text = text;
    return SRLM_OK;
}

void srlm_si_template_free(srlm_si_template *t) {
    free(t->text);
    t->text = NULL;
}

/* Copy s flattened (white-space runs -> one space, ends trimmed) to dst;
 * returns the bytes written (at most strlen(s)). */
static size_t flatten(char *dst, const char *s) {
    size_t o = 0;
    int gap = 0;
    for (; *s; s++) {
        if (is_ws((unsigned char)*s)) {
            gap = 1;
            continue;
        }
        if (gap && o > 0) dst[o++] = ' ';
        gap = 0;
        dst[o++] = *s;
    }
    return o;
}

srlm_status srlm_si_render(const srlm_si_template *t, const char *const *shots, int n, char **out) {
    *out = NULL;
    if (!t->text) return SRLM_ERR(SRLM_BAD_INPUT, "self-instruct render: template not loaded");
    if (n < 0 || (n > 0 && !shots))
        return SRLM_ERR(SRLM_BAD_INPUT, "self-instruct render: bad shots (%d)", n);
    const char *ph = strstr(t->text, SRLM_SI_PH_EXAMPLES);
    if (!ph) return SRLM_ERR(SRLM_BAD_INPUT, "self-instruct render: template lacks %s",
                             SRLM_SI_PH_EXAMPLES);
    size_t cap = strlen(t->text) + 1;
    for (int i = 0; i < n; i++) {
        if (!shots[i]) return SRLM_ERR(SRLM_BAD_INPUT, "self-instruct render: shot %d is NULL", i);
        cap += strlen(shots[i]) + 16; /* "NNN. " and "\n" */
    }
    char *s = malloc(cap);
    if (!s) return SRLM_ERR(SRLM_FAILED, "self-instruct render: out of memory");
    size_t head = (size_t)(ph - t->text), o = head;
    memcpy(s, t->text, head);
    for (int i = 0; i < n; i++) {
        o += (size_t)sprintf(s + o, "%s%d. ", i ? "\n" : "", i + 1);
        o += flatten(s + o, shots[i]);
    }
    strcpy(s + o, ph + strlen(SRLM_SI_PH_EXAMPLES));
    *out = s;
    return SRLM_OK;
}

/* ---------------------------------------------------------------- extraction */

typedef struct {
    const unsigned char *s;
    size_t a, b; /* the rest of the line is s[a, b) */
} span;

static int sp_at(const span *l, size_t i) { return i < l->b ? l->s[i] : -1; }

/* A blank at i (ASCII blank other than LF, or the UTF-8 no-break space): its length. */
static size_t blank_at(const span *l, size_t i) {
    int c = sp_at(l, i);
    if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') return 1;
    if (c == 0xC2 && sp_at(l, i + 1) == 0xA0) return 2;
    return 0;
}

static void trim(span *l) {
    size_t k;
    while (l->a < l->b && (k = blank_at(l, l->a))) l->a += k;
    for (;;) {
        if (l->b > l->a && blank_at(l, l->b - 1) == 1) l->b--;
        else if (l->b >= l->a + 2 && l->s[l->b - 2] == 0xC2 && l->s[l->b - 1] == 0xA0) l->b -= 2;
        else break;
    }
}

/* Blank or end of line at i. */
static int ends_token(const span *l, size_t i) { return i >= l->b || blank_at(l, i); }

/* Bullet ("-", "*", "+", ">", "#"..., "•") followed by a blank or the end: its length. */
static size_t bullet_len(const span *l) {
    size_t i = l->a;
    int c = sp_at(l, i);
    if (c == '-' || c == '*' || c == '+' || c == '>') i++;
    else if (c == '#') while (sp_at(l, i) == '#') i++;
    else if (c == 0xE2 && sp_at(l, i + 1) == 0x80 && sp_at(l, i + 2) == 0xA2) i += 3;
    else return 0;
    return ends_token(l, i) ? i - l->a : 0;
}

/* "9." "9)" "9:" "(9)" followed by a blank or the end: its length. */
static size_t number_len(const span *l) {
    size_t i = l->a;
    int paren = sp_at(l, i) == '(';
    if (paren) i++;
    size_t d = i;
    while (is_digit(sp_at(l, i)) && i - d < 3) i++;
    if (i == d || is_digit(sp_at(l, i))) return 0;
    int c = sp_at(l, i);
    if (paren ? c != ')' : (c != '.' && c != ')' && c != ':')) return 0;
    i++;
    return ends_token(l, i) ? i - l->a : 0;
}

static int word_ci(const span *l, size_t i, const char *w) {
    for (size_t k = 0; w[k]; k++)
        if (lower(sp_at(l, i + k)) != w[k]) return 0;
    return !is_word(sp_at(l, i + strlen(w))); /* "Tasks" is not "Task" */
}

static size_t skip_blanks(const span *l, size_t i) {
    size_t k;
    while ((k = blank_at(l, i))) i += k;
    return i;
}

/* "[New ]Task|Instruction|Prompt|Question[ [#]9][**]:[**]": its length. */
static size_t label_len(const span *l) {
    static const char *const labels[] = {"task", "instruction", "prompt", "question"};
    size_t i = l->a;
    if (word_ci(l, i, "new")) i = skip_blanks(l, i + 3);
    size_t j = i;
    for (size_t w = 0; w < sizeof labels / sizeof *labels && j == i; w++)
        if (word_ci(l, i, labels[w])) j = i + strlen(labels[w]);
    if (j == i) return 0;
    i = skip_blanks(l, j);
    if (sp_at(l, i) == '#') i++;
    while (is_digit(sp_at(l, i))) i++;
    i = skip_blanks(l, i);
    if ((sp_at(l, i) == '*' && sp_at(l, i + 1) == '*') || (sp_at(l, i) == '_' && sp_at(l, i + 1) == '_'))
        i += 2;
    if (sp_at(l, i) != ':') return 0;
    i++;
    if ((sp_at(l, i) == '*' && sp_at(l, i + 1) == '*') || (sp_at(l, i) == '_' && sp_at(l, i + 1) == '_'))
        i += 2;
    return i - l->a;
}

static int starts_with(const span *l, const char *p) {
    size_t k = strlen(p);
    return l->b - l->a >= k && memcmp(l->s + l->a, p, k) == 0;
}
static int ends_with(const span *l, const char *p) {
    size_t k = strlen(p);
    return l->b - l->a >= k && memcmp(l->s + l->b - k, p, k) == 0;
}
/* Occurrences of p in the line. */
static int count_in(const span *l, const char *p) {
    size_t k = strlen(p);
    int c = 0;
    for (size_t i = l->a; i + k <= l->b; i++)
        if (memcmp(l->s + i, p, k) == 0) c++;
    return c;
}

/* Steps 1-3 of the extraction rules (self_instruct.h) on one line. */
static void clean_line(span *l) {
    trim(l);
    int bold = 0;
    for (;;) {
        size_t k;
        if ((k = bullet_len(l))) l->a += k;
        else if (starts_with(l, "**") || starts_with(l, "__")) l->a += 2, bold = 1;
        else if ((k = number_len(l))) l->a += k;
        else if ((k = label_len(l))) l->a += k;
        else break;
        trim(l);
    }
    if (bold && (ends_with(l, "**") || ends_with(l, "__"))) {
        l->b -= 2;
        trim(l);
    }
    /* quotes around the whole rest, none inside */
    if (l->b - l->a >= 2 && starts_with(l, "\"") && ends_with(l, "\"") && count_in(l, "\"") == 2) {
        l->a++, l->b--;
    } else if (l->b - l->a >= 6 && starts_with(l, "\xe2\x80\x9c") && ends_with(l, "\xe2\x80\x9d") &&
               count_in(l, "\xe2\x80\x9c") == 1 && count_in(l, "\xe2\x80\x9d") == 1) {
        l->a += 3, l->b -= 3;
    }
    trim(l);
}

srlm_status srlm_si_extract(const char *reply, size_t len, char **out) {
    *out = NULL;
    if (!reply) return SRLM_OK;
    const char *nul = memchr(reply, '\0', len);
    if (nul) len = (size_t)(nul - reply);
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(reply + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - reply) : len;
        span l = {(const unsigned char *)reply, i, end};
        clean_line(&l);
        i = end + 1;
        if (l.b == l.a || l.s[l.b - 1] == ':') continue; /* empty, or a lead-in */
        char *s = malloc(l.b - l.a + 1);
        if (!s) return SRLM_ERR(SRLM_FAILED, "self-instruct extract: out of memory");
        memcpy(s, reply + l.a, l.b - l.a);
        s[l.b - l.a] = '\0';
        *out = s;
        return SRLM_OK;
    }
    return SRLM_OK;
}

/* ----------------------------------------------------------------- blocklist */

/* Lowercased, trimmed, inner white-space runs -> one space; NULL on OOM. */
static char *normalise_keyword(const char *s, size_t n) {
    char *w = malloc(n + 1);
    if (!w) return NULL;
    size_t o = 0;
    int gap = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (is_ws(c)) {
            gap = 1;
            continue;
        }
        if (gap && o > 0) w[o++] = ' ';
        gap = 0;
        w[o++] = (char)lower(c);
    }
    w[o] = '\0';
    return w;
}

static srlm_status add_keyword(srlm_si_blocklist *b, int *cap, const char *s, size_t n,
                               const char *name) {
    char *w = normalise_keyword(s, n);
    if (!w) return SRLM_ERR(SRLM_FAILED, "%s: out of memory reading blocklist", name);
    if (!*w) {
        free(w);
        return SRLM_OK;
    }
    if (b->n == *cap) {
        int nc = *cap ? 2 * *cap : 32;
        char **g = realloc(b->words, (size_t)nc * sizeof *g);
        if (!g) {
            free(w);
            return SRLM_ERR(SRLM_FAILED, "%s: out of memory reading blocklist", name);
        }
        b->words = g;
        *cap = nc;
    }
    b->words[b->n++] = w;
    return SRLM_OK;
}

srlm_status srlm_si_blocklist_load(srlm_si_blocklist *b, const char *path) {
    b->words = NULL;
    b->n = 0;
    int cap = 0;
    srlm_status st = SRLM_OK;
    if (!path || !*path) {
        const char *name = "(built-in blocklist)";
        int n = (int)(sizeof builtin_blocklist / sizeof *builtin_blocklist);
        for (int i = 0; i < n && st == SRLM_OK; i++)
            st = add_keyword(b, &cap, builtin_blocklist[i], strlen(builtin_blocklist[i]), name);
    } else {
        char *raw = NULL;
        size_t n = 0;
        SRLM_CHECK(read_small_file(path, "blocklist", &raw, &n));
        for (size_t i = 0; i < n && st == SRLM_OK;) {
            const char *nl = memchr(raw + i, '\n', n - i);
            size_t end = nl ? (size_t)(nl - raw) : n;
            size_t a = i;
            while (a < end && is_ws((unsigned char)raw[a])) a++;
            if (a < end && raw[a] != '#') st = add_keyword(b, &cap, raw + a, end - a, path);
            i = end + 1;
        }
        free(raw);
    }
    if (st != SRLM_OK) srlm_si_blocklist_free(b);
    return st;
}

void srlm_si_blocklist_free(srlm_si_blocklist *b) {
    for (int i = 0; i < b->n; i++) free(b->words[i]);
    free(b->words);
    b->words = NULL;
    b->n = 0;
}

/* Does normalised keyword w occur in t at i (boundaries included)? */
static int keyword_at(const unsigned char *t, size_t i, const char *w) {
    if (is_word((unsigned char)w[0]) && i > 0 && is_word(t[i - 1])) return 0;
    size_t j = i;
    for (size_t k = 0; w[k]; k++) {
        if (w[k] == ' ') {
            if (!is_ws(t[j])) return 0;
            while (is_ws(t[j])) j++;
        } else if (lower(t[j]) != (unsigned char)w[k]) {
            return 0; /* also stops at the NUL */
        } else {
            j++;
        }
    }
    size_t kl = strlen(w);
    return !(is_word((unsigned char)w[kl - 1]) && is_word(t[j]));
}

int srlm_si_blocked(const srlm_si_blocklist *b, const char *text) {
    if (!b || !text) return -1;
    const unsigned char *t = (const unsigned char *)text;
    for (int k = 0; k < b->n; k++)
        for (size_t i = 0; t[i]; i++)
            if (keyword_at(t, i, b->words[k])) return k;
    return -1;
}

/* -------------------------------------------------------------------- filter */

const char *srlm_si_verdict_name(srlm_si_verdict v) {
    switch (v) {
    case SRLM_SI_KEEP:      return "keep";
    case SRLM_SI_EMPTY:     return "empty";
    case SRLM_SI_TOO_SHORT: return "too_short";
    case SRLM_SI_TOO_LONG:  return "too_long";
    case SRLM_SI_NOT_TEXT:  return "not_text";
    case SRLM_SI_BLOCKED:   return "blocked";
    case SRLM_SI_DUPLICATE: return "duplicate";
    case SRLM_SI_SIMILAR:   return "similar";
    default:                return "?";
    }
}

/* Walks the normalised form of a text (ASCII lowercase, white-space runs -> one
 * space, ends trimmed) without copying it. */
typedef struct {
    const unsigned char *p;
} norm_iter;

static int norm_next(norm_iter *it) {
    if (is_ws(*it->p)) {
        while (is_ws(*it->p)) it->p++;
        if (*it->p) return ' '; /* inner gap; the leading one is skipped at start */
    }
    if (!*it->p) return -1;
    return lower(*it->p++);
}

static norm_iter norm_start(const char *s) {
    norm_iter it = {(const unsigned char *)s};
    while (is_ws(*it.p)) it.p++;
    return it;
}

static uint64_t norm_hash(const char *s) {
    norm_iter it = norm_start(s);
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (int c; (c = norm_next(&it)) >= 0;) h = (h ^ (uint64_t)c) * 0x100000001b3ull;
    return h;
}

static int norm_equal(const char *a, const char *b) {
    norm_iter x = norm_start(a), y = norm_start(b);
    for (;;) {
        int c = norm_next(&x), d = norm_next(&y);
        if (c != d) return 0;
        if (c < 0) return 1;
    }
}

/* Open-addressing set of indexes into the known prompts. */
typedef struct {
    int *slot; /* known index + 1; 0 = empty */
    uint64_t *hash;
    size_t mask;
} norm_set;

static void set_insert(norm_set *s, int index, uint64_t h) {
    size_t i = (size_t)h & s->mask;
    while (s->slot[i]) i = (i + 1) & s->mask;
    s->slot[i] = index + 1;
    s->hash[i] = h;
}

/* The first known prompt equal to text (-1: none) and, in *copies, how many are. */
static int set_find(const norm_set *s, const char *const *known, const char *text, uint64_t h, int *copies) {
    int first = -1;
    *copies = 0;
    for (size_t i = (size_t)h & s->mask; s->slot[i]; i = (i + 1) & s->mask)
        if (s->hash[i] == h && norm_equal(known[s->slot[i] - 1], text)) {
            if (first < 0 || s->slot[i] - 1 < first) first = s->slot[i] - 1;
            (*copies)++;
        }
    return first;
}

/* The cheap checks, EMPTY to BLOCKED; KEEP when all pass. */
static srlm_si_verdict shape_verdict(const srlm_si_filter_opts *o, const char *text, int *match) {
    *match = -1;
    if (!text) return SRLM_SI_EMPTY;
    const unsigned char *t = (const unsigned char *)text;
    long words = 0, letters = 0, nonblank = 0;
    int first = -1;
    for (size_t i = 0; t[i]; i++) {
        int c = t[i];
        if (is_ws(c)) continue;
        if (i == 0 || is_ws(t[i - 1])) words++;
        if (first < 0) first = c;
        if (c >= 0x80 && c < 0xC0) continue; /* UTF-8 continuation byte */
        nonblank++;
        if (is_alpha(c) || c >= 0x80) letters++;
    }
    if (words == 0) return SRLM_SI_EMPTY;
    if (words < o->min_words) return SRLM_SI_TOO_SHORT;
    if (words > o->max_words) return SRLM_SI_TOO_LONG;
    if (is_punct(first) || 2 * letters < nonblank) return SRLM_SI_NOT_TEXT;
    int k = srlm_si_blocked(o->blocklist, text);
    if (k >= 0) {
        *match = k;
        return SRLM_SI_BLOCKED;
    }
    return SRLM_SI_KEEP;
}

srlm_status srlm_si_filter(const srlm_si_filter_opts *o, const char *const *pool, int n_pool,
                           const char *const *cands, int n_cands, srlm_si_check *checks,
                           int counts[SRLM_SI_N_VERDICTS]) {
    if (counts)
        for (int v = 0; v < SRLM_SI_N_VERDICTS; v++) counts[v] = 0;
    if (!o || n_pool < 0 || n_cands < 0 || (n_pool > 0 && !pool) ||
        (n_cands > 0 && (!cands || !checks)))
        return SRLM_ERR(SRLM_BAD_INPUT, "self-instruct filter: bad arguments (%d known, %d new)",
                        n_pool, n_cands);
    if (o->min_words > o->max_words || isnan(o->rouge_l_max))
        return SRLM_ERR(SRLM_BAD_INPUT,
                        "self-instruct filter: min_words %d above max_words %d, or no ROUGE-L bound",
                        o->min_words, o->max_words);
    for (int i = 0; i < n_pool; i++)
        if (!pool[i]) return SRLM_ERR(SRLM_BAD_INPUT, "self-instruct filter: known prompt %d is NULL", i);

    /* known[] = pool, then accepted candidates; cand_of[] maps the latter back */
    size_t n_max = (size_t)n_pool + (size_t)n_cands;
    size_t cap = 16;
    while (cap < 2 * n_max) cap *= 2;
    const char **known = malloc((n_max ? n_max : 1) * sizeof *known);
    int *cand_of = malloc((n_cands ? (size_t)n_cands : 1) * sizeof *cand_of);
    norm_set set = {calloc(cap, sizeof(int)), malloc(cap * sizeof(uint64_t)), cap - 1};
    srlm_status st = SRLM_OK;
    if (!known || !cand_of || !set.slot || !set.hash) {
        st = SRLM_ERR(SRLM_FAILED, "self-instruct filter: out of memory");
        goto done;
    }
    const int max_copies = o->max_copies > 1 ? o->max_copies : 1;
    int n_known = 0;
    for (int i = 0; i < n_pool; i++) {
        known[n_known] = pool[i];
        set_insert(&set, n_known++, norm_hash(pool[i]));
    }
    for (int c = 0; c < n_cands; c++) {
        srlm_si_check *r = &checks[c];
        r->rouge = -1;
        r->verdict = shape_verdict(o, cands[c], &r->match);
        if (r->verdict == SRLM_SI_KEEP) {
            uint64_t h = norm_hash(cands[c]);
            int copies, d = set_find(&set, known, cands[c], h, &copies);
            if (d >= 0 && copies >= max_copies) {
                r->verdict = SRLM_SI_DUPLICATE;
                r->match = d < n_pool ? d : n_pool + cand_of[d - n_pool];
            } else {
                double best = -1;
                int bi = -1;
                if (d < 0 && o->rouge_l_max < 1)
                    SRLM_CHECK_GOTO(srlm_rouge_l_max(cands[c], (const char *const *)known, n_known,
                                                     &best, &bi), st, done);
                r->rouge = best;
                if (best > o->rouge_l_max) {
                    r->verdict = SRLM_SI_SIMILAR;
                    r->match = bi < n_pool ? bi : n_pool + cand_of[bi - n_pool];
                } else {
                    cand_of[n_known - n_pool] = c;
                    known[n_known] = cands[c];
                    set_insert(&set, n_known++, h);
                }
            }
        }
        if (counts) counts[r->verdict]++;
    }
done:
    free(known);
    free(cand_of);
    free(set.slot);
    free(set.hash);
    return st;
}
