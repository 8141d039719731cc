/* The Llama-2 chat formatter; see chat.h for the format and its source. */
#include "io/chat.h"

#include <stdlib.h>
#include <string.h>

/* Decode one UTF-8 code point at s[i] (forward). Returns its length in bytes,
 * or 0 when the bytes there are not valid UTF-8 (then it is not whitespace). */
static size_t utf8_next(const unsigned char *s, size_t len, size_t i, unsigned *cp) {
    unsigned c = s[i];
    size_t n;
    if (c < 0x80) { *cp = c; return 1; }
    if ((c & 0xE0) == 0xC0) { n = 2; c &= 0x1F; }
    else if ((c & 0xF0) == 0xE0) { n = 3; c &= 0x0F; }
    else if ((c & 0xF8) == 0xF0) { n = 4; c &= 0x07; }
    else return 0;
    if (i + n > len) return 0;
    for (size_t k = 1; k < n; k++) {
        if ((s[i + k] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i + k] & 0x3F);
    }
    *cp = c;
    return n;
}

/* The code points for which Python's str.isspace() is true (what str.strip()
 * removes): the Unicode White_Space-like set CPython uses. */
static int py_isspace(unsigned c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

void srlm_chat_strip(const char *str, size_t len, size_t *begin, size_t *end) {
    const unsigned char *s = (const unsigned char *)str;
    size_t b = 0, e = len;
    unsigned cp;
    while (b < e) {
        size_t n = utf8_next(s, e, b, &cp);
        if (!n || !py_isspace(cp)) break;
        b += n;
    }
    while (e > b) {
        size_t start = e - 1;  /* back up to the first byte of the last character */
        while (start > b && (s[start] & 0xC0) == 0x80 && e - start < 4) start--;
        size_t n = utf8_next(s, e, start, &cp);
        if (n != e - start || !py_isspace(cp)) break;
        e = start;
    }
    *begin = b;
    *end = e;
}

/* A growing byte string and a growing id array, enough for this file. */
typedef struct { char *p; size_t n, cap; } strbuf;
typedef struct { int *p; int n, cap; } idbuf;

static srlm_status sb_add(strbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) return SRLM_ERR(SRLM_FAILED, "out of memory formatting a chat prompt");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return SRLM_OK;
}

static srlm_status sb_add_str(strbuf *b, const char *s) { return sb_add(b, s, strlen(s)); }

/* Append the Python-stripped `s`. */
static srlm_status sb_add_stripped(strbuf *b, const char *s, size_t len) {
    size_t lo, hi;
    srlm_chat_strip(s, len, &lo, &hi);
    return sb_add(b, s + lo, hi - lo);
}

static srlm_status ib_add(idbuf *b, const int *ids, int n) {
    if (n > 0x3fffffff - b->n) return SRLM_ERR(SRLM_BAD_INPUT, "chat prompt has too many tokens");
    if (b->n + n > b->cap) {
        int cap = (b->n + n) * 2;
        int *p = realloc(b->p, (size_t)cap * sizeof(int));
        if (!p) return SRLM_ERR(SRLM_FAILED, "out of memory formatting a chat prompt");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, ids, (size_t)n * sizeof(int));
    b->n += n;
    return SRLM_OK;
}

static srlm_status check_specials(const srlm_tokenizer *tok) {
    if (srlm_tokenizer_bos(tok) < 0 || srlm_tokenizer_eos(tok) < 0)
        return SRLM_ERR(SRLM_BAD_INPUT,
                        "the Llama-2 chat format needs BOS and EOS ids; this tokenizer has "
                        "bos=%d eos=%d", srlm_tokenizer_bos(tok), srlm_tokenizer_eos(tok));
    return SRLM_OK;
}

/* Build the text of turn `i` (see chat.h) into `text`. */
static srlm_status turn_text(strbuf *text, const char *system, const srlm_chat_turn *t, int i) {
    strbuf content = {0};
    srlm_status st = SRLM_OK;
    text->n = 0;
    if (i == 0 && system) {
        /* Meta folds the system prompt into the first user message and strips
         * the whole, so only the outer ends are stripped. */
        SRLM_CHECK_GOTO(sb_add_str(&content, SRLM_CHAT_B_SYS), st, done);
        SRLM_CHECK_GOTO(sb_add_str(&content, system), st, done);
        SRLM_CHECK_GOTO(sb_add_str(&content, SRLM_CHAT_E_SYS), st, done);
    }
    SRLM_CHECK_GOTO(sb_add_str(&content, t->user), st, done);
    SRLM_CHECK_GOTO(sb_add_str(text, SRLM_CHAT_B_INST " "), st, done);
    SRLM_CHECK_GOTO(sb_add_stripped(text, content.p, content.n), st, done);
    SRLM_CHECK_GOTO(sb_add_str(text, " " SRLM_CHAT_E_INST), st, done);
    if (t->assistant) {
        SRLM_CHECK_GOTO(sb_add_str(text, " "), st, done);
        SRLM_CHECK_GOTO(sb_add_stripped(text, t->assistant, strlen(t->assistant)), st, done);
        SRLM_CHECK_GOTO(sb_add_str(text, " "), st, done);
    }
done:
    free(content.p);
    return st;
}

srlm_status srlm_chat_encode(const srlm_tokenizer *tok, const char *system,
                             const srlm_chat_turn *turns, int n_turns, int **ids, int *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    SRLM_CHECK(check_specials(tok));
    if (n_turns < 1) return SRLM_ERR(SRLM_BAD_INPUT, "a chat needs at least one user turn");
    for (int i = 0; i < n_turns; i++) {
        if (!turns[i].user)
            return SRLM_ERR(SRLM_BAD_INPUT, "chat turn %d has no user message", i);
        if (!turns[i].assistant && i + 1 < n_turns)
            return SRLM_ERR(SRLM_BAD_INPUT,
                            "chat turn %d of %d has no answer; only the last turn may be open",
                            i, n_turns);
    }

    strbuf text = {0};
    idbuf out = {0};
    int *turn_ids = NULL, n_turn = 0;
    srlm_status st = SRLM_OK;
    for (int i = 0; i < n_turns; i++) {
        SRLM_CHECK_GOTO(turn_text(&text, system, &turns[i], i), st, fail);
        /* Each turn is its own encode call with BOS (and EOS when answered) as
         * ids, exactly as Meta's chat_completion does. */
        SRLM_CHECK_GOTO(srlm_tokenizer_encode(tok, text.p, text.n, 1, turns[i].assistant != NULL,
                                              &turn_ids, &n_turn), st, fail);
        SRLM_CHECK_GOTO(ib_add(&out, turn_ids, n_turn), st, fail);
        free(turn_ids);
        turn_ids = NULL;
    }
    free(text.p);
    *ids = out.p;
    *n_ids = out.n;
    return SRLM_OK;

fail:
    free(text.p);
    free(turn_ids);
    free(out.p);
    return st;
}

srlm_status srlm_chat_encode_pair(const srlm_tokenizer *tok, const char *system,
                                  const char *user, const char *answer, int **prompt_ids,
                                  int *n_prompt, int **response_ids, int *n_response) {
    *prompt_ids = *response_ids = NULL;
    *n_prompt = *n_response = 0;
    if (!user || !answer)
        return SRLM_ERR(SRLM_BAD_INPUT, "a chat example needs both a user message and an answer");
    srlm_chat_turn turn = {user, NULL};
    SRLM_CHECK(srlm_chat_encode(tok, system, &turn, 1, prompt_ids, n_prompt));
    size_t lo, hi;
    srlm_chat_strip(answer, strlen(answer), &lo, &hi);
    srlm_status st = srlm_tokenizer_encode(tok, answer + lo, hi - lo, 0, 1, response_ids, n_response);
    if (st != SRLM_OK) {
        free(*prompt_ids);
        *prompt_ids = NULL;
        *n_prompt = 0;
    }
    return st;
}
