#include "pipeline/judge.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fsutil.h"

#define TEMPLATE_MAX_BYTES (1 << 20) /* a judge prompt is a few KB */

/* ---------------------------------------------------------------- template */

/* Where a placeholder was seen (line numbers of the file, comments included). */
typedef struct {
    const char *name;
    int count;
    int first_line, second_line;
} placeholder_seen;

static void count_in_line(placeholder_seen *p, const char *line, size_t n, int line_no) {
    size_t k = strlen(p->name);
    for (size_t i = 0; i + k <= n; i++) {
        if (memcmp(line + i, p->name, k) != 0) continue;
        p->count++;
        if (p->count == 1) p->first_line = line_no;
        if (p->count == 2) p->second_line = line_no;
        i += k - 1;
    }
}

static srlm_status check_placeholder(const char *path, const placeholder_seen *p) {
    if (p->count == 0)
        return SRLM_ERR(SRLM_BAD_INPUT,
                        "%s: judge template has no %s placeholder (expected exactly one; "
                        "lines starting with '#' are comments)", path, p->name);
    if (p->count > 1)
        return SRLM_ERR(SRLM_BAD_INPUT,
                        "%s:%d: judge template has %s %d times (first on line %d); "
                        "expected exactly once", path, p->second_line, p->name, p->count,
                        p->first_line);
    return SRLM_OK;
}

static int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Drop comment lines, turn CRLF into LF; placeholders counted per line. */
static char *strip_comments(const char *src, size_t n, placeholder_seen *ph, int n_ph) {
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t o = 0;
    int line_no = 0;
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(src + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - src) : n; /* line is src[i, end) */
        size_t body = end;
        if (body > i && src[body - 1] == '\r') body--;
        line_no++;
        if (src[i] != '#') {
            for (int p = 0; p < n_ph; p++) count_in_line(&ph[p], src + i, body - i, line_no);
            memcpy(out + o, src + i, body - i);
            o += body - i;
            if (nl) out[o++] = '\n';
        }
        i = nl ? end + 1 : n;
    }
    /* trim white space at both ends */
    size_t a = 0;
    while (a < o && is_space((unsigned char)out[a])) a++;
    while (o > a && is_space((unsigned char)out[o - 1])) o--;
    memmove(out, out + a, o - a);
    out[o - a] = '\0';
    return out;
}

/* The whole file into a malloc'd buffer (NUL-terminated; *n excludes the NUL). */
static srlm_status read_template_file(const char *path, char **raw, size_t *n) {
    return srlm_read_file(path, "judge template", TEMPLATE_MAX_BYTES, raw, n);
}

srlm_status srlm_judge_template_load(srlm_judge_template *t, const char *path) {
    t->text = NULL;
    char *raw = NULL;
    size_t n = 0;
    SRLM_CHECK(read_template_file(path, &raw, &n));

    srlm_status st = SRLM_OK;
    const char *nul = memchr(raw, '\0', n);
    placeholder_seen ph[2] = {{SRLM_JUDGE_PH_INSTRUCTION, 0, 0, 0},
                              {SRLM_JUDGE_PH_RESPONSE, 0, 0, 0}};
    char *text = NULL;
    if (nul)
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s: judge template contains a NUL byte at offset %zu",
                      path, (size_t)(nul - raw));
    else if (!(text = strip_comments(raw, n, ph, 2)))
        st = SRLM_ERR(SRLM_FAILED, "%s: out of memory reading judge template", path);
    for (int p = 0; p < 2 && st == SRLM_OK; p++) st = check_placeholder(path, &ph[p]);
    free(raw);
    if (st != SRLM_OK) {
        free(text);
        return st;
    }
    t->text = text;
    return SRLM_OK;
}

void srlm_judge_template_free(srlm_judge_template *t) {
    free(t->text);
    t->text = NULL;
}

srlm_status srlm_judge_render(const srlm_judge_template *t, const char *instruction,
                              const char *response, char **out) {
    *out = NULL;
    if (!t->text || !instruction || !response)
        return SRLM_ERR(SRLM_FAILED, "judge render: template not loaded or text missing");
    const char *pi = strstr(t->text, SRLM_JUDGE_PH_INSTRUCTION);
    const char *pr = strstr(t->text, SRLM_JUDGE_PH_RESPONSE);
    if (!pi || !pr)
        return SRLM_ERR(SRLM_FAILED, "judge render: template lacks its placeholders");

    /* the two placeholders in text order */
    const char *first = pi < pr ? pi : pr, *second = pi < pr ? pr : pi;
    const char *v1 = pi < pr ? instruction : response, *v2 = pi < pr ? response : instruction;
    size_t k1 = strlen(pi < pr ? SRLM_JUDGE_PH_INSTRUCTION : SRLM_JUDGE_PH_RESPONSE);
    size_t k2 = strlen(pi < pr ? SRLM_JUDGE_PH_RESPONSE : SRLM_JUDGE_PH_INSTRUCTION);

    size_t head = (size_t)(first - t->text);
    size_t mid = (size_t)(second - (first + k1));
    const char *tail = second + k2;
    size_t n1 = strlen(v1), n2 = strlen(v2), nt = strlen(tail);
    char *s = malloc(head + n1 + mid + n2 + nt + 1);
    if (!s) return SRLM_ERR(SRLM_FAILED, "judge render: out of memory");
    char *p = s;
    memcpy(p, t->text, head);   p += head;
    memcpy(p, v1, n1);          p += n1;
    memcpy(p, first + k1, mid); p += mid;
    memcpy(p, v2, n2);          p += n2;
    memcpy(p, tail, nt + 1);    /* with the NUL */
    *out = s;
    return SRLM_OK;
}

size_t srlm_judge_shared_prefix_len(const srlm_judge_template *t) {
    if (!t->text) return 0;
    const char *pi = strstr(t->text, SRLM_JUDGE_PH_INSTRUCTION);
    const char *pr = strstr(t->text, SRLM_JUDGE_PH_RESPONSE);
    const char *first = !pi ? pr : !pr ? pi : pi < pr ? pi : pr;
    return first ? (size_t)(first - t->text) : 0;
}

/* ------------------------------------------------------------ score parser */

typedef struct {
    const char *s;
    size_t n;
} text_t;

static int at(text_t t, size_t i) { return i < t.n ? (unsigned char)t.s[i] : -1; }

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int lower(int c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; }

static int starts_with_ci(text_t t, size_t i, const char *word) {
    for (size_t k = 0; word[k]; k++)
        if (lower(at(t, i + k)) != word[k]) return 0;
    return 1;
}

/* Length of a blank at i (space, tab, CR, FF, VT, UTF-8 no-break space); 0 if none.
 * Never a line break. */
static size_t blank_len(text_t t, size_t i) {
    int c = at(t, i);
    if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') return 1;
    if (c == 0xC2 && at(t, i + 1) == 0xA0) return 2;
    return 0;
}

/* Skip blanks and markdown marks (* _ `); with `open`, also '(' and '['. */
static size_t skip_marks(text_t t, size_t i, int open) {
    for (;;) {
        size_t b = blank_len(t, i);
        int c = at(t, i);
        if (b) i += b;
        else if (c == '*' || c == '_' || c == '`') i++;
        else if (open && (c == '(' || c == '[')) i++;
        else return i;
    }
}

/* A dash separator at i ('-', en dash, em dash); its length, 0 if none. */
static size_t dash_len(text_t t, size_t i) {
    if (at(t, i) == '-') return 1;
    if (at(t, i) == 0xE2 && at(t, i + 1) == 0x80 && (at(t, i + 2) == 0x93 || at(t, i + 2) == 0x94))
        return 3;
    return 0;
}

/* A score marker starting at i? Sets *value_at just past its separator. */
static int marker_at(text_t t, size_t i, size_t *value_at) {
    if (!starts_with_ci(t, i, "score")) return 0;
    if (i > 0 && (is_alpha(at(t, i - 1)) || is_digit(at(t, i - 1)))) return 0;
    size_t j = i + 5;
    if (is_alpha(at(t, j))) return 0;
    j = skip_marks(t, j, 0);
    int c = at(t, j);
    size_t d;
    if (c == ':' || c == '=') j++;
    else if (c == 0xEF && at(t, j + 1) == 0xBC && at(t, j + 2) == 0x9A) j += 3; /* '：' */
    else if ((d = dash_len(t, j)) && blank_len(t, j + d)) j += d;
    else return 0;
    *value_at = j;
    return 1;
}

/* A number: [+-]digits[.digits]. Large values saturate (they are out of range anyway). */
typedef struct {
    double value;
    int integral; /* no non-zero digit after the point */
} number_t;

static int number_at(text_t t, size_t i, number_t *num, size_t *end) {
    double sign = 1;
    if ((at(t, i) == '-' || at(t, i) == '+') && is_digit(at(t, i + 1))) {
        if (at(t, i) == '-') sign = -1;
        i++;
    }
    if (!is_digit(at(t, i))) return 0;
    double v = 0;
    for (; is_digit(at(t, i)); i++)
        if (v < 1e9) v = v * 10 + (at(t, i) - '0');
    num->integral = 1;
    if (at(t, i) == '.' && is_digit(at(t, i + 1))) {
        double scale = 0.1;
        for (i++; is_digit(at(t, i)); i++, scale /= 10) {
            if (at(t, i) != '0') num->integral = 0;
            v += scale * (at(t, i) - '0');
        }
    }
    num->value = sign * v;
    *end = i;
    return 1;
}

/* A value: a number with an optional denominator ("/ 5", "out of 5"). */
typedef struct {
    number_t num;
    int has_den;
    number_t den;
} value_t;

static int value_at(text_t t, size_t i, value_t *v, size_t *end) {
    if (!number_at(t, i, &v->num, &i)) return 0;
    v->has_den = 0;
    size_t j = skip_marks(t, i, 0), k = i;
    if (at(t, j) == '/') {
        v->has_den = number_at(t, skip_marks(t, j + 1, 0), &v->den, &k);
    } else if (starts_with_ci(t, j, "out of") && blank_len(t, j + 6)) {
        v->has_den = number_at(t, skip_marks(t, j + 6, 0), &v->den, &k);
    }
    if (v->has_den) i = k;
    *end = i;
    return 1;
}

static int values_agree(const value_t *a, const value_t *b) {
    if (a->num.value != b->num.value) return 0;
    return !(a->has_den && b->has_den) || a->den.value == b->den.value;
}

srlm_score_verdict srlm_judge_parse_score(const char *text, size_t len, int *score) {
    if (score) *score = -1;
    text_t t = {text, text ? len : 0};

    /* 1. the last marker, and the first marker on its line */
    int found = 0;
    size_t line_start = 0;          /* start of the line being scanned */
    size_t last_line = 0;           /* start of the last marker's line */
    size_t last_value = 0, first_on_line_value = 0;
    for (size_t i = 0; i < t.n; i++) {
        if (t.s[i] == '\n') { line_start = i + 1; continue; }
        size_t v;
        if (lower(at(t, i)) != 's' || !marker_at(t, i, &v)) continue;
        if (!found || last_line != line_start) first_on_line_value = v;
        found = 1;
        last_line = line_start;
        last_value = v;
    }
    if (!found) return SRLM_SCORE_MISSING;

    /* 2. the decisive value */
    value_t decisive;
    size_t end;
    if (!value_at(t, skip_marks(t, last_value, 1), &decisive, &end)) return SRLM_SCORE_MISSING;

    /* 3. every number from the line's first marker to the end of the line agrees */
    for (size_t i = first_on_line_value; i < t.n && t.s[i] != '\n';) {
        value_t other;
        if (value_at(t, i, &other, &end)) {
            if (!values_agree(&decisive, &other)) return SRLM_SCORE_AMBIGUOUS;
            i = end;
        } else {
            i++;
        }
    }

    /* 4.-6. the scale */
    if (decisive.has_den && (decisive.den.value != SRLM_JUDGE_MAX_SCORE || !decisive.den.integral))
        return SRLM_SCORE_OUT_OF_RANGE;
    if (!decisive.num.integral || decisive.num.value < 0 ||
        decisive.num.value > SRLM_JUDGE_MAX_SCORE)
        return SRLM_SCORE_OUT_OF_RANGE;
    if (score) *score = (int)decisive.num.value;
    return SRLM_SCORE_OK;
}

const char *srlm_score_verdict_name(srlm_score_verdict v) {
    switch (v) {
    case SRLM_SCORE_OK:           return "ok";
    case SRLM_SCORE_MISSING:      return "missing";
    case SRLM_SCORE_AMBIGUOUS:    return "ambiguous";
    case SRLM_SCORE_OUT_OF_RANGE: return "out_of_range";
    }
    return "unknown";
}
