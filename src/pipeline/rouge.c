/* ROUGE-L F-measure as rouge-score 0.1.2 computes it; see rouge.h. */
#include "pipeline/rouge.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *s;    /* NUL-terminated, inside the owning list's text */
    size_t      len;
    uint64_t    hash; /* FNV-1a of the token, to skip most string compares */
} rouge_token;

typedef struct {
    char        *text; /* the tokens, each NUL-terminated */
    rouge_token *tok;
    int          n;
} token_list;

static void token_list_free(token_list *t) {
    free(t->text);
    free(t->tok);
    memset(t, 0, sizeof *t);
}

static int is_token_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* rouge-score's default tokenizer (see rouge.h). Returns 0 when out of memory. */
static int tokenize(const char *s, token_list *out) {
    memset(out, 0, sizeof *out);
    if (!s) s = "";
    size_t len = strlen(s);
    /* each token is >= 1 char and keeps its NUL, so text needs <= len + 1 bytes
     * ("İ" and the Kelvin sign shrink), and there are <= (len + 1) / 2 tokens */
    out->text = malloc(len + 1);
    out->tok = malloc(((len + 1) / 2 + 1) * sizeof *out->tok);
    if (!out->text || !out->tok) {
        token_list_free(out);
        return 0;
    }
    const unsigned char *p = (const unsigned char *)s;
    char *w = out->text;
    char *start = NULL; /* start of the token being written */
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        char emit = 0;   /* the ASCII char this input maps to; 0 = separator */
        int  ends = 0;   /* the mapped char is followed by a separator */
        size_t step = 1;
        if (c >= 'A' && c <= 'Z') {
            emit = (char)(c - 'A' + 'a');
        } else if (is_token_char(c)) {
            emit = (char)c;
        } else if (c == 0xC4 && p[i + 1] == 0xB0) { /* U+0130 -> "i" U+0307 */
            emit = 'i';
            ends = 1;
            step = 2;
        } else if (c == 0xE2 && p[i + 1] == 0x84 && p[i + 2] == 0xAA) { /* U+212A -> "k" */
            emit = 'k';
            step = 3;
        }
        i += step;
        if (emit) {
            if (!start) start = w;
            *w++ = emit;
        }
        if ((!emit || ends) && start) {
            *w++ = '\0';
            out->tok[out->n].s = start;
            out->tok[out->n].len = (size_t)(w - 1 - start);
            out->n++;
            start = NULL;
        }
    }
    if (start) {
        *w++ = '\0';
        out->tok[out->n].s = start;
        out->tok[out->n].len = (size_t)(w - 1 - start);
        out->n++;
    }
    for (int k = 0; k < out->n; k++) {
        uint64_t h = 1469598103934665603ULL;
        for (size_t j = 0; j < out->tok[k].len; j++) {
            h ^= (unsigned char)out->tok[k].s[j];
            h *= 1099511628211ULL;
        }
        out->tok[k].hash = h;
    }
    return 1;
}

static int token_eq(const rouge_token *x, const rouge_token *y) {
    return x->hash == y->hash && x->len == y->len && memcmp(x->s, y->s, x->len) == 0;
}

/* LCS length with one row over the shorter list; row has min(n) + 1 entries.
 * Returns -1 when out of memory. */
static long lcs_length(const token_list *a, const token_list *b) {
    const token_list *outer = a, *inner = b;
    if (inner->n > outer->n) {
        outer = b;
        inner = a;
    }
    int m = inner->n;
    int *row = calloc((size_t)m + 1, sizeof *row);
    if (!row) return -1;
    for (int i = 0; i < outer->n; i++) {
        int diag = 0; /* row[j - 1] of the previous outer step */
        for (int j = 1; j <= m; j++) {
            int up = row[j];
            if (token_eq(&outer->tok[i], &inner->tok[j - 1])) row[j] = diag + 1;
            else if (row[j - 1] > row[j]) row[j] = row[j - 1];
            diag = up;
        }
    }
    long l = row[m];
    free(row);
    return l;
}

/* rouge_scorer._score_lcs(target = a, prediction = b).fmeasure, with the same
 * floating-point operations. */
static double rouge_l_tokens(const token_list *a, const token_list *b) {
    if (a->n == 0 || b->n == 0) return 0.0;
    long l = lcs_length(a, b);
    if (l < 0) return NAN;
    double precision = (double)l / (double)b->n;
    double recall = (double)l / (double)a->n;
    if (precision + recall > 0) return 2 * precision * recall / (precision + recall);
    return 0.0;
}

double srlm_rouge_l(const char *a, const char *b) {
    token_list ta, tb;
    double f = NAN;
    if (tokenize(a, &ta)) {
        if (tokenize(b, &tb)) {
            f = rouge_l_tokens(&ta, &tb);
            token_list_free(&tb);
        }
        token_list_free(&ta);
    }
    return f;
}

srlm_status srlm_rouge_l_max(const char *candidate, const char *const *pool, int n,
                             double *best, int *best_index) {
    if (!best) return SRLM_ERR(SRLM_BAD_INPUT, "ROUGE-L: no output");
    *best = 0;
    if (best_index) *best_index = -1;
    if (!candidate) return SRLM_ERR(SRLM_BAD_INPUT, "ROUGE-L: no candidate text");
    if (n < 0 || (n > 0 && !pool))
        return SRLM_ERR(SRLM_BAD_INPUT, "ROUGE-L: bad pool (%d texts)", n);
    for (int i = 0; i < n; i++)
        if (!pool[i]) return SRLM_ERR(SRLM_BAD_INPUT, "ROUGE-L: pool text %d is NULL", i);

    token_list tc;
    if (!tokenize(candidate, &tc)) return SRLM_ERR(SRLM_FAILED, "ROUGE-L: out of memory");
    srlm_status st = SRLM_OK;
    double top = 0;
    int top_index = n > 0 ? 0 : -1;
    for (int i = 0; i < n; i++) {
        token_list tp;
        if (!tokenize(pool[i], &tp)) {
            st = SRLM_ERR(SRLM_FAILED, "ROUGE-L: out of memory");
            break;
        }
        /* F is symmetric; the pool text is the target as in Self-Instruct's
         * scorer.score(existing, candidate) */
        double f = rouge_l_tokens(&tp, &tc);
        token_list_free(&tp);
        if (isnan(f)) {
            st = SRLM_ERR(SRLM_FAILED, "ROUGE-L: out of memory");
            break;
        }
        if (f > top) {
            top = f;
            top_index = i;
        }
    }
    token_list_free(&tc);
    if (st != SRLM_OK) return st;
    *best = top;
    if (best_index) *best_index = top_index;
    return SRLM_OK;
}
