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

int srlm_demo_pair_in_train(const srlm_demo_data_config *c, char first, char last) {
    uint64_t h = srlm_rng_u64(srlm_rng_key(c->seed, 0x70616972ull), (uint64_t)((first - 'a') * 26 + (last - 'a')));
    return (double)(h >> 11) * (1.0 / 9007199254740992.0) < c->train_pair_share;
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

/* A candidate answer of a given kind, for the judge's lessons. */
static void candidate(const srlm_lexicon *lx, const srlm_task *t, uint64_t key, uint64_t i, char *out, size_t cap) {
    const char *any = lx->words[srlm_rng_u64(key, 2 * i) % (uint64_t)lx->n_words];
    const char *right = srlm_task_answer(lx, t, srlm_rng_u64(key, 2 * i + 1));
    switch (srlm_rng_u64(key, 2 * i + 7) % 6) {
    case 0: case 1: snprintf(out, cap, "%s", right); break;           /* right */
    case 2: snprintf(out, cap, "%s", any); break;                      /* a real word, letters likely wrong */
    case 3: snprintf(out, cap, "%.*sk", (int)strlen(right) - 1, right); break; /* a near miss, maybe a non-word */
    case 4: snprintf(out, cap, "%s is the word", right); break;        /* chatter */
    default: snprintf(out, cap, "%c%s", t->first, any + 1); break;     /* right start, maybe a non-word */
    }
}

srlm_status srlm_demo_write_data(const char *dir, const srlm_demo_data_config *c, const srlm_lexicon *lx) {
    SRLM_CHECK(srlm_mkdir_p(dir));
    text t = {0};
    char line[1024], instr[256], cand[128], judge[512];
    /* tokenizer corpus: the words and the fixed phrases */
    for (int i = 0; i < lx->n_words; i++) { put(&t, lx->words[i]); put(&t, "\n"); }
    srlm_task sample = {'a', 'z'};
    srlm_task_instruction(&sample, instr, sizeof instr);
    srlm_task_judgement(lx, &sample, "word", judge, sizeof judge);
    for (int i = 0; i < 20; i++) { put(&t, instr); put(&t, "\n"); put(&t, judge); put(&t, "\n"); }
    put(&t, "Score: 0 1 2 3 4 5\n");
    put(&t, "List the words that start with 'a'.\nJudge this answer.\nQuestion: \nAnswer: \n[INST] [/INST] <<SYS>> <</SYS>>\n");
    SRLM_CHECK(flush(&t, dir, "corpus.txt"));

    /* IFT: lessons for every first letter, and answered instructions for train pairs */
    uint64_t key = srlm_rng_key(c->seed, 0x696674ull);
    for (int f = 0; f < 26; f++) {
        line[0] = '\0';
        for (int i = 0; i < lx->n_words; i++)
            if (lx->words[i][0] == 'a' + f) { strncat(line, lx->words[i], sizeof line - strlen(line) - 2); strcat(line, " "); }
        if (!line[0]) continue;
        line[strlen(line) - 1] = '\0';
        snprintf(instr, sizeof instr, "List the words that start with '%c'.", 'a' + f);
        for (int k = 0; k < 4; k++) put_pair(&t, "prompt", instr, "response", line);
    }
    for (uint64_t i = 0, made = 0; made < (uint64_t)c->n_ift && i < 100 * (uint64_t)c->n_ift; i++) {
        srlm_task task = srlm_task_make(lx, c->seed + 1, i);
        if (!srlm_demo_pair_in_train(c, task.first, task.last)) continue;
        srlm_task_instruction(&task, instr, sizeof instr);
        put_pair(&t, "prompt", instr, "response", srlm_task_answer(lx, &task, srlm_rng_u64(key, i)));
        made++;
    }
    SRLM_CHECK(flush(&t, dir, "ift.jsonl"));

    /* EFT: judgements of candidate answers, over all letter pairs */
    key = srlm_rng_key(c->seed, 0x656674ull);
    for (uint64_t i = 0; i < (uint64_t)c->n_eft; i++) {
        srlm_task task = srlm_task_make(lx, c->seed + 2, i);
        srlm_task_instruction(&task, instr, sizeof instr);
        candidate(lx, &task, key, i, cand, sizeof cand);
        srlm_demo_judge_prompt(instr, cand, line, sizeof line);
        srlm_task_judgement(lx, &task, cand, judge, sizeof judge);
        put_pair(&t, "prompt", line, "response", judge);
    }
    SRLM_CHECK(flush(&t, dir, "eft.jsonl"));

    /* held-out evaluation instructions: pairs never answered in IFT */
    for (uint64_t i = 0, made = 0; made < (uint64_t)c->n_eval && i < 100 * (uint64_t)c->n_eval; i++) {
        srlm_task task = srlm_task_make(lx, c->seed + 3, i);
        if (srlm_demo_pair_in_train(c, task.first, task.last)) continue;
        srlm_task_instruction(&task, instr, sizeof instr);
        char id[32];
        snprintf(id, sizeof id, "eval-%llu", (unsigned long long)made);
        put_pair(&t, "prompt_id", id, "prompt", instr);
        made++;
    }
    SRLM_CHECK(flush(&t, dir, "eval.jsonl"));
    for (uint64_t i = 0; i < 64; i++) {
        srlm_task task = srlm_task_make(lx, c->seed + 4, i);
        srlm_task_instruction(&task, instr, sizeof instr);
        put_pair(&t, "prompt", instr, NULL, NULL);
    }
    return flush(&t, dir, "seed_prompts.jsonl");
}
