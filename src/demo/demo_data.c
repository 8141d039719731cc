#include "demo/demo_data.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "io/fsutil.h"

void srlm_demo_judge_prompt(const char *instruction, const char *response, char *buf, size_t cap) {
    snprintf(buf, cap, "Judge this answer.\nQuestion: %s\nAnswer: %s", instruction, response);
}

void srlm_demo_self_instruct_prompt(const char *const *examples, int n, char *buf, size_t cap) {
    size_t used = (size_t)snprintf(buf, cap, "Here are some tasks:\n");
    for (int i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%d. %s\n", i + 1, examples[i]);
    if (used < cap) used += (size_t)snprintf(buf + used, cap - used, "Write one more task like these.");
    if (used >= cap && cap) buf[0] = '\0';
}

int srlm_demo_pair_in_train(const srlm_demo_data_config *c, char first, char last) {
    uint64_t h = srlm_rng_u64(srlm_rng_key(c->seed, 0x70616972ull), (uint64_t)((first - 'a') * 26 + (last - 'a')));
    return (double)(h >> 11) * (1.0 / 9007199254740992.0) < c->train_pair_share;
}

int srlm_demo_tasks(const srlm_demo_data_config *c, const srlm_lexicon *lx, uint64_t stream, int heldout,
                    srlm_task *out, int n) {
    int made = 0;
    for (uint64_t i = 0; made < n && i < 100 * (uint64_t)n + 100; i++) {
        srlm_task t = srlm_task_make(lx, stream, i);
        if (srlm_demo_pair_in_train(c, t.first, t.last) != !heldout) continue;
        out[made++] = t;
    }
    return made;
}

int srlm_demo_nonword(const srlm_lexicon *lx, char first, char last, uint64_t key, uint64_t i, char *out,
                      size_t cap) {
    for (uint64_t k = 0; k < 200; k++) {
        uint64_t c = 1000 * i + k;
        const char *a = lx->words[srlm_rng_u64(key, 4 * c) % (uint64_t)lx->n_words];
        const char *b = lx->words[srlm_rng_u64(key, 4 * c + 1) % (uint64_t)lx->n_words];
        size_t la = strlen(a), lb = strlen(b);
        if ((first && a[0] != first) || (last && b[lb - 1] != last)) continue;
        size_t i_a = 1 + srlm_rng_u64(key, 4 * c + 2) % (la - 1), i_b = 1 + srlm_rng_u64(key, 4 * c + 3) % (lb - 1);
        size_t len = i_a + (lb - i_b);
        if (len < 4 || len >= SRLM_TASK_MAX_WORD || len >= cap) continue;
        memcpy(out, a, i_a);
        memcpy(out + i_a, b + i_b, lb - i_b);
        out[len] = '\0';
        if (!srlm_lexicon_contains(lx, out, len)) return 1;
    }
    return 0;
}

/* A growing text buffer for one file, written atomically at the end. */
typedef struct { char *s; size_t n, cap; int failed; } text;

static void put(text *t, const char *s) {
    size_t len = strlen(s);
    if (t->n + len + 1 > t->cap) {
        size_t cap = (t->n + len + 1) * 2;
        char *g = realloc(t->s, cap);
        if (!g) { t->failed = 1; return; }
        t->s = g;
        t->cap = cap;
    }
    memcpy(t->s + t->n, s, len + 1);
    t->n += len;
}

static void put_pair(text *t, const char *key1, const char *v1, const char *key2, const char *v2) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, key1, v1);
    if (key2) cJSON_AddStringToObject(j, key2, v2);
    char *line = cJSON_PrintUnformatted(j);
    if (line) { put(t, line); put(t, "\n"); } else t->failed = 1;
    free(line);
    cJSON_Delete(j);
}

static srlm_status flush(text *t, const char *dir, const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    srlm_status st = t->failed ? SRLM_ERR(SRLM_FAILED, "out of memory writing %s", path)
                               : srlm_write_file_atomic(path, t->s ? t->s : "", t->n);
    free(t->s);
    memset(t, 0, sizeof *t);
    return st;
}

/* A random lexicon word matching the letters that are not 0 and, where
 * not_first / not_last are set, NOT having that first / last letter. */
static const char *pick_word(const srlm_lexicon *lx, uint64_t key, uint64_t i, char first, char last,
                             char not_first, char not_last) {
    for (uint64_t k = 0; k < 400; k++) {
        const char *w = lx->words[srlm_rng_u64(key, 1000 * i + k) % (uint64_t)lx->n_words];
        char f = w[0], l = w[strlen(w) - 1];
        if ((first && f != first) || (last && l != last) || (not_first && f == not_first) || (not_last && l == not_last))
            continue;
        return w;
    }
    return lx->words[srlm_rng_u64(key, i) % (uint64_t)lx->n_words];
}

/* A candidate answer for the judge's lessons. The mix is chosen so that every
 * criterion is met about as often as not among single-word answers (the judge
 * must not learn "always yes"), and near misses, which a model that half knows
 * the list makes, are common. */
void srlm_demo_candidate(const srlm_lexicon *lx, const srlm_task *t, uint64_t key, uint64_t i, char *out, size_t cap) {
    const char *right = srlm_task_answer(lx, t, srlm_rng_u64(key, 8 * i));
    uint64_t k = srlm_rng_key(key, i);
    switch (srlm_rng_u64(key, 8 * i + 1) % 10) {
    case 0: case 1: snprintf(out, cap, "%s", right); break;                            /* 5 */
    case 2: snprintf(out, cap, "%s", pick_word(lx, k, 0, t->first, 0, 0, t->last)); break; /* wrong last */
    case 3: snprintf(out, cap, "%s", pick_word(lx, k, 1, 0, t->last, t->first, 0)); break; /* wrong first */
    case 4: snprintf(out, cap, "%s", pick_word(lx, k, 2, 0, 0, 0, 0)); break;              /* any word */
    case 5: case 6:                                                                    /* right letters, no word */
        if (!srlm_demo_nonword(lx, t->first, t->last, k, 3, out, cap)) snprintf(out, cap, "%s", right);
        break;
    case 7:                                                                            /* no word, wrong last */
        if (!srlm_demo_nonword(lx, t->first, 0, k, 4, out, cap)) snprintf(out, cap, "%s", right);
        break;
    case 8: {                                                                          /* chatter */
        const char *w = srlm_rng_u64(key, 8 * i + 2) % 2 ? right : pick_word(lx, k, 5, 0, 0, 0, 0);
        switch (srlm_rng_u64(key, 8 * i + 3) % 3) {
        case 0: snprintf(out, cap, "%s is the word", w); break;
        case 1: snprintf(out, cap, "The word is %s", w); break;
        default: snprintf(out, cap, "%s %s", w, pick_word(lx, k, 6, 0, 0, 0, 0)); break;
        }
        break;
    }
    default: {                                                                         /* not only letters */
        const char *w = srlm_rng_u64(key, 8 * i + 2) % 2 ? right : pick_word(lx, k, 7, 0, 0, 0, 0);
        if (srlm_rng_u64(key, 8 * i + 3) % 2) snprintf(out, cap, "%s.", w);
        else snprintf(out, cap, "%c%s", w[0] - 'a' + 'A', w + 1);
        break;
    }
    }
}

/* One lesson: the words that fit, in an order that changes with `copy`, so the
 * model learns the set rather than one sequence. */
static void lesson(text *t, const srlm_lexicon *lx, char first, char last, uint64_t key, int copy) {
    int n = 0, *idx = malloc(sizeof(int) * (size_t)lx->n_words);
    if (!idx) { t->failed = 1; return; }
    for (int i = 0; i < lx->n_words; i++) {
        const char *w = lx->words[i];
        if ((!first || w[0] == first) && (!last || w[strlen(w) - 1] == last)) idx[n++] = i;
    }
    if (n > 0) {
        uint64_t k = srlm_rng_key(key, (uint64_t)((first ? first : '_') * 256 + (last ? last : '_')) * 1000 + (uint64_t)copy);
        for (int i = n - 1; i > 0; i--) {
            int j = (int)(srlm_rng_u64(k, (uint64_t)i) % (uint64_t)(i + 1)), x = idx[i];
            idx[i] = idx[j];
            idx[j] = x;
        }
        size_t cap = (size_t)n * SRLM_TASK_MAX_WORD + 1, used = 0;
        char *list = malloc(cap), instr[128];
        if (!list) { t->failed = 1; free(idx); return; }
        for (int i = 0; i < n; i++) used += (size_t)snprintf(list + used, cap - used, i ? " %s" : "%s", lx->words[idx[i]]);
        if (first && last) snprintf(instr, sizeof instr, "List the words that start with '%c' and end with '%c'.", first, last);
        else if (first) snprintf(instr, sizeof instr, "List the words that start with '%c'.", first);
        else snprintf(instr, sizeof instr, "List the words that end with '%c'.", last);
        put_pair(t, "prompt", instr, "response", list);
        free(list);
    }
    free(idx);
}

srlm_status srlm_demo_write_data(const char *dir, const srlm_demo_data_config *c, const srlm_lexicon *lx) {
    SRLM_CHECK(srlm_mkdir_p(dir));
    text t = {0};
    char line[2048], instr[256], cand[128], judge[512];
    const int copies = c->lesson_copies > 0 ? c->lesson_copies : 4;

    /* tokenizer corpus: the words and every fixed phrase (a char-level model
     * needs only the characters, but they must all be there) */
    for (int i = 0; i < lx->n_words; i++) { put(&t, lx->words[i]); put(&t, "\n"); }
    srlm_task sample = {'a', 'z'};
    srlm_task_instruction(&sample, instr, sizeof instr);
    srlm_task_judgement(lx, &sample, "word", judge, sizeof judge);
    for (int i = 0; i < 20; i++) { put(&t, instr); put(&t, "\n"); put(&t, judge); put(&t, "\n"); }
    put(&t, "Score: 0 1 2 3 4 5 6 7 8 9\nabcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .,:;'!?-()\n");
    put(&t, "List the words that start with 'a' and end with 'b'.\nList the words that end with 'a'.\n");
    put(&t, SRLM_DEMO_JUDGE_TEMPLATE "\n" SRLM_DEMO_SELF_INSTRUCT_TEMPLATE "\n[INST] [/INST] <<SYS>> <</SYS>>\n");
    SRLM_CHECK(flush(&t, dir, "corpus.txt"));
    put(&t, SRLM_DEMO_JUDGE_TEMPLATE "\n");
    SRLM_CHECK(flush(&t, dir, "judge.txt"));
    put(&t, SRLM_DEMO_SELF_INSTRUCT_TEMPLATE "\n");
    SRLM_CHECK(flush(&t, dir, "self_instruct.txt"));

    /* IFT: lessons by first letter, by last letter (and by pair), each several
     * times in a new order; then answered instructions for train pairs only */
    uint64_t key = srlm_rng_key(c->seed, 0x696674ull);
    for (int copy = 0; copy < copies || copy < c->pair_lessons; copy++) {
        if (copy < copies) {
            for (int f = 0; f < 26; f++) lesson(&t, lx, (char)('a' + f), 0, key, copy);
            for (int l = 0; l < 26; l++) lesson(&t, lx, 0, (char)('a' + l), key, copy);
        }
        if (copy < c->pair_lessons)
            for (int f = 0; f < 26; f++)
                for (int l = 0; l < 26; l++)
                    if (lx->count[f][l]) lesson(&t, lx, (char)('a' + f), (char)('a' + l), key, copy);
    }
    for (uint64_t i = 0, made = 0; made < (uint64_t)c->n_ift && i < 100 * (uint64_t)c->n_ift; i++) {
        srlm_task task = srlm_task_make(lx, c->seed + 1, i);
        if (!srlm_demo_pair_in_train(c, task.first, task.last)) continue;
        srlm_task_instruction(&task, instr, sizeof instr);
        put_pair(&t, "prompt", instr, "response", srlm_task_answer(lx, &task, srlm_rng_u64(key, i)));
        made++;
    }
    /* self-instruct: 2-6 example instructions (any pair: the question gives no
     * answer away), reply one more of the same form */
    uint64_t skey = srlm_rng_key(c->seed, 0x73656c66ull);
    for (uint64_t i = 0; i < (uint64_t)c->n_self_instruct; i++) {
        char shots[6][128];
        const char *ptr[6];
        int n = 2 + (int)(srlm_rng_u64(skey, 8 * i) % 5);
        for (int k = 0; k < n; k++) {
            srlm_task task = srlm_task_make(lx, c->seed + 5, 8 * i + (uint64_t)k);
            srlm_task_instruction(&task, shots[k], sizeof shots[k]);
            ptr[k] = shots[k];
        }
        srlm_demo_self_instruct_prompt(ptr, n, line, sizeof line);
        srlm_task task = srlm_task_make(lx, c->seed + 5, 8 * i + 7);
        srlm_task_instruction(&task, instr, sizeof instr);
        put_pair(&t, "prompt", line, "response", instr);
    }
    SRLM_CHECK(flush(&t, dir, "ift.jsonl"));

    /* EFT: judgements of candidate answers, over all letter pairs */
    key = srlm_rng_key(c->seed, 0x656674ull);
    for (uint64_t i = 0; i < (uint64_t)c->n_eft; i++) {
        srlm_task task = srlm_task_make(lx, c->seed + 2, i);
        srlm_task_instruction(&task, instr, sizeof instr);
        srlm_demo_candidate(lx, &task, key, i, cand, sizeof cand);
        srlm_demo_judge_prompt(instr, cand, line, sizeof line);
        srlm_task_judgement(lx, &task, cand, judge, sizeof judge);
        put_pair(&t, "prompt", line, "response", judge);
    }
    SRLM_CHECK(flush(&t, dir, "eft.jsonl"));

    /* held-out evaluation instructions: pairs never answered in IFT */
    srlm_task *ev = malloc(sizeof *ev * (size_t)(c->n_eval > 0 ? c->n_eval : 1));
    if (!ev) return SRLM_ERR(SRLM_FAILED, "out of memory");
    int n_ev = srlm_demo_tasks(c, lx, c->seed + 3, 1, ev, c->n_eval);
    for (int i = 0; i < n_ev; i++) {
        char id[32];
        srlm_task_instruction(&ev[i], instr, sizeof instr);
        snprintf(id, sizeof id, "eval-%d", i);
        put_pair(&t, "prompt_id", id, "prompt", instr);
    }
    free(ev);
    SRLM_CHECK(flush(&t, dir, "eval.jsonl"));
    for (uint64_t i = 0; i < 64; i++) {
        srlm_task task = srlm_task_make(lx, c->seed + 4, i);
        srlm_task_instruction(&task, instr, sizeof instr);
        put_pair(&t, "prompt", instr, NULL, NULL);
    }
    return flush(&t, dir, "seed_prompts.jsonl");
}
