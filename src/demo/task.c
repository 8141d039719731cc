#include "demo/task.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

/* Consonant-vowel syllables (and a few closed ones) from which the words are
 * built: pronounceable, easy for a small tokenizer, never real English. */
static const char *SYLLABLES[] = {
    "ba", "bo", "da", "de", "di", "fa", "fu", "ga", "go", "ka", "ke", "ki", "ko", "la", "li", "lu",
    "ma", "me", "mi", "mo", "na", "ne", "no", "nu", "pa", "pe", "po", "ra", "re", "ri", "ro", "ru",
    "sa", "se", "si", "so", "ta", "te", "ti", "to", "tu", "va", "vi", "za", "zo", "bar", "dim", "fen",
    "gol", "kir", "lom", "mur", "nek", "pil", "ras", "sut", "tok", "vel", "zan", "hal", "hos", "yun",
};
enum { N_SYL = sizeof SYLLABLES / sizeof SYLLABLES[0] };

int srlm_lexicon_syllables(const char *const **out) {
    *out = SYLLABLES;
    return N_SYL;
}

static int cmp_word(const void *a, const void *b) { return strcmp(a, b); }

srlm_status srlm_lexicon_make(srlm_lexicon *lx, int n_words, uint64_t seed) {
    memset(lx, 0, sizeof *lx);
    if (n_words < 1 || n_words > 100000)
        return SRLM_ERR(SRLM_BAD_INPUT, "lexicon size %d: expected 1 .. 100000", n_words);
    lx->words = calloc((size_t)n_words * 2, sizeof *lx->words);
    if (!lx->words) return SRLM_ERR(SRLM_FAILED, "out of memory for the lexicon");
    uint64_t key = srlm_rng_key(seed, 0x6c6578ull);
    int n = 0;
    for (uint64_t c = 0; n < 2 * n_words && c < (uint64_t)n_words * 64; c++) {
        int syl = 2 + (int)(srlm_rng_u64(key, 4 * c) % 3);
        char w[SRLM_TASK_MAX_WORD] = {0};
        for (int i = 0; i < syl; i++)
            strncat(w, SYLLABLES[srlm_rng_u64(key, 4 * c + 1 + (uint64_t)i) % N_SYL], sizeof w - strlen(w) - 1);
        memcpy(lx->words[n++], w, sizeof w);
    }
    /* sort, drop duplicates, keep the first n_words in a seeded order */
    qsort(lx->words, (size_t)n, sizeof *lx->words, cmp_word);
    int u = 0;
    for (int i = 0; i < n; i++)
        if (u == 0 || strcmp(lx->words[u - 1], lx->words[i])) memmove(lx->words[u++], lx->words[i], sizeof *lx->words);
    if (u < n_words) {
        srlm_lexicon_free(lx);
        return SRLM_ERR(SRLM_BAD_INPUT, "lexicon size %d: only %d distinct words can be made", n_words, u);
    }
    for (int i = u - 1; i > 0; i--) { /* seeded shuffle, then keep a prefix and sort it */
        int j = (int)(srlm_rng_u64(key, (uint64_t)0x5eed0000 + (uint64_t)i) % (uint64_t)(i + 1));
        char tmp[SRLM_TASK_MAX_WORD];
        memcpy(tmp, lx->words[i], sizeof tmp);
        memcpy(lx->words[i], lx->words[j], sizeof tmp);
        memcpy(lx->words[j], tmp, sizeof tmp);
    }
    lx->n_words = n_words;
    qsort(lx->words, (size_t)n_words, sizeof *lx->words, cmp_word);
    for (int i = 0; i < n_words; i++) {
        const char *w = lx->words[i];
        lx->count[w[0] - 'a'][w[strlen(w) - 1] - 'a']++;
    }
    return SRLM_OK;
}

void srlm_lexicon_free(srlm_lexicon *lx) {
    free(lx->words);
    memset(lx, 0, sizeof *lx);
}

int srlm_lexicon_contains(const srlm_lexicon *lx, const char *word, size_t len) {
    if (len == 0 || len >= SRLM_TASK_MAX_WORD) return 0;
    char w[SRLM_TASK_MAX_WORD] = {0};
    memcpy(w, word, len);
    return bsearch(w, lx->words, (size_t)lx->n_words, sizeof *lx->words, cmp_word) != NULL;
}

srlm_task srlm_task_make(const srlm_lexicon *lx, uint64_t seed, uint64_t index) {
    /* pick a word, take its letters: every task has an answer, and letter pairs
     * are as frequent as the words that fit them */
    uint64_t k = srlm_rng_u64(srlm_rng_key(seed, 0x7461736bull), index) % (uint64_t)lx->n_words;
    const char *w = lx->words[k];
    srlm_task t = {w[0], w[strlen(w) - 1]};
    return t;
}

void srlm_task_instruction(const srlm_task *t, char *buf, size_t cap) {
    snprintf(buf, cap, "Name a word from the word list that starts with '%c' and ends with '%c'.", t->first, t->last);
}

int srlm_task_parse(const char *text, srlm_task *t) {
    char a, b;
    int used = 0;
    if (sscanf(text, "Name a word from the word list that starts with '%c' and ends with '%c'.%n", &a, &b, &used) != 2 ||
        used == 0 || text[used] != '\0' || !islower((unsigned char)a) || !islower((unsigned char)b))
        return 0;
    t->first = a;
    t->last = b;
    return 1;
}

int srlm_task_score(const srlm_lexicon *lx, const srlm_task *t, const char *response, unsigned *criteria) {
    /* the answer: the first run of non-space characters */
    const char *p = response;
    while (*p == ' ' || *p == '\n' || *p == '\t') p++;
    const char *q = p;
    while (*q && *q != ' ' && *q != '\n' && *q != '\t') q++;
    size_t len = (size_t)(q - p);
    int letters = len > 0;
    for (size_t i = 0; i < len; i++) letters &= islower((unsigned char)p[i]) != 0;
    const char *rest = q;
    while (*rest == ' ' || *rest == '\n' || *rest == '\t') rest++;
    unsigned c = 0;
    if (letters) c |= 1u;
    if (letters && srlm_lexicon_contains(lx, p, len)) c |= 2u;
    if (len > 0 && p[0] == t->first) c |= 4u;
    if (len > 0 && p[len - 1] == t->last) c |= 8u;
    if (len > 0 && *rest == '\0') c |= 16u;
    if (criteria) *criteria = c;
    int score = 0;
    for (int i = 0; i < 5; i++) score += (c >> i) & 1u;
    return score;
}

const char *srlm_task_answer(const srlm_lexicon *lx, const srlm_task *t, uint64_t k) {
    int n = lx->count[t->first - 'a'][t->last - 'a'];
    if (n == 0) return NULL;
    uint64_t want = k % (uint64_t)n, seen = 0;
    for (int i = 0; i < lx->n_words; i++) {
        const char *w = lx->words[i];
        if (w[0] == t->first && w[strlen(w) - 1] == t->last && seen++ == want) return w;
    }
    return NULL;
}

void srlm_task_judgement(const srlm_lexicon *lx, const srlm_task *t, const char *response, char *buf,
                         size_t cap) {
    unsigned c;
    int score = srlm_task_score(lx, t, response, &c);
    /* The judgement first copies what it checks and keeps a running tally, so
     * each decision is a local copy-and-compare and the score is the last
     * tally: a tiny model can learn that, where it cannot learn to read letters
     * out of a word far back in the prompt or to count yes lines. The copies
     * repeat the prompt's own context ("Answer: ", "starts with '"), so plain
     * induction (find the same text earlier, copy what followed) does them.
     * Membership, the one check that needs memory, is preceded by a recall of
     * the list words with the answer's first and last letters, asked in the
     * words of the word-list lessons: recognising a word among a few recalled
     * ones is easier than knowing the whole list at a glance. */
    const char *p = response;
    while (*p == ' ' || *p == '\n' || *p == '\t') p++;
    size_t len = 0;
    while (p[len] && p[len] != ' ' && p[len] != '\n' && p[len] != '\t') len++;
    int shown = len ? (int)(len < 24 ? len : 24) : 1;
    char f = len ? p[0] : '-', l = len ? p[len - 1] : '-';
    char recall[256] = "";
    size_t used = 0;
    for (int i = 0; i < lx->n_words && used < sizeof recall - SRLM_TASK_MAX_WORD - 2; i++) {
        const char *w = lx->words[i];
        if (w[0] == f && w[strlen(w) - 1] == l) used += (size_t)snprintf(recall + used, sizeof recall - used, " %s", w);
    }
    if (!used) snprintf(recall, sizeof recall, " -");
    int tally[5], sum = 0;
    for (int i = 0; i < 5; i++) tally[i] = sum += (int)((c >> i) & 1u);
    snprintf(buf, cap,
             "Answer: %.*s\nletters only: %s %d\nrecall: List the words that start with '%c' and end with '%c'.%s\n"
             "in the list: %s %d\nstarts with '%c': %c, %s %d\nends with '%c': %c, %s %d\nnothing else: %s %d\n"
             "Score: %d",
             shown, len ? p : "-", c & 1u ? "yes" : "no", tally[0], f, l, recall, c & 2u ? "yes" : "no", tally[1],
             t->first, f, c & 4u ? "yes" : "no", tally[2], t->last, l, c & 8u ? "yes" : "no", tally[3],
             c & 16u ? "yes" : "no", tally[4], score);
}
