/* One self-rewarding iteration by hand, for the demo's recipe experiments:
 *
 *   demo_iter RUN_DIR M_T_DIR OUT_DIR [key=value ...]
 *
 * RUN_DIR is a demo_m1 folder (its data config is rebuilt from the same keys).
 * Self-instruct with M_t (4-shot, T 0.6, top-p 0.9; instructions that are not of
 * the task's form are dropped), 4 candidates per prompt from M_t (T 0.7, top-p
 * 0.9), M_t judges each 3 times (T 0.7), best-vs-worst pairs (equal scores: no
 * pair), DPO from M_t into OUT_DIR/dpo; then greedy accuracy of M_t and
 * M_{t+1} on the held-out instructions.
 * keys: prompts (default 300), dpo_lr (5e-5), beta (0.1), epochs (1), batch
 * (16), per_pair (3: prompts per letter pair), answerable_only (0; 1 drops
 * prompts whose pair has no word: an oracle, for diagnosis only), judge_t (0.7:
 * judge temperature), n_words/seed/train_pair_share as
 * for demo_m1, threads (1). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/rng.h"
#include "demo/demo_data.h"
#include "demo/demo_eval.h"
#include "demo/demo_recipe.h"
#include "io/fsutil.h"
#include "model/model_session.h"
#include "train/trainer.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void die(srlm_status st) {
    if (st != SRLM_OK) {
        fprintf(stderr, "failed: %s\n", srlm_last_error());
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: demo_iter RUN_DIR M_T_DIR OUT_DIR [key=value ...]\n"); return 2; }
    const char *out_dir = argv[3], *mt = argv[2];
    srlm_demo_recipe r;
    srlm_demo_recipe_default(&r);
    int threads = 1, n_prompts = 300, batch = 16, n_eval = 200, own_prompts = 1, per_pair = 3, answerable_only = 0;
    double dpo_lr = 5e-5, beta = 0.1, epochs = 1, judge_t = 0.7;
    for (int i = 4; i < argc; i++) {
        char key[64];
        double v;
        if (sscanf(argv[i], "%63[^=]=%lf", key, &v) != 2) { fprintf(stderr, "bad arg %s\n", argv[i]); return 2; }
#define K(name, field) else if (!strcmp(key, name)) field = v
        if (0) {}
        K("threads", threads); K("prompts", n_prompts); K("dpo_lr", dpo_lr); K("beta", beta); K("epochs", epochs);
        K("batch", batch); K("n_words", r.data.n_words); K("seed", r.data.seed); K("n_eval_tasks", n_eval);
        K("train_pair_share", r.data.train_pair_share); K("own_prompts", own_prompts); K("per_pair", per_pair); K("answerable_only", answerable_only); K("judge_t", judge_t);
        else { fprintf(stderr, "unknown key %s\n", key); return 2; }
#undef K
    }
    srlm_lexicon lx;
    die(srlm_lexicon_make(&lx, r.data.n_words, r.data.seed));
    die(srlm_mkdir_p(out_dir));
    srlm_model_session s = {0};
    die(srlm_model_session_open(&s, mt, NULL, 1, threads));
    double t0 = now_s();

    /* 1. prompts: self-instruct by M_t, or (own_prompts=0) the task stream */
    srlm_task *tasks = malloc(sizeof *tasks * (size_t)n_prompts);
    int n = 0, asked = 0;
    if (own_prompts) {
        int ask = n_prompts * 2;
        char **user = calloc((size_t)ask, sizeof *user), **out;
        for (int i = 0; i < ask; i++) {
            char shots[4][128];
            const char *p[4];
            for (int k = 0; k < 4; k++) {
                srlm_task t = srlm_task_make(&lx, r.data.seed + 4, srlm_rng_u64(77, (uint64_t)(4 * i + k)) % 64);
                srlm_task_instruction(&t, shots[k], sizeof shots[k]);
                p[k] = shots[k];
            }
            user[i] = malloc(1024);
            srlm_demo_self_instruct_prompt(p, 4, user[i], 1024);
        }
        srlm_sampling sp = {0.6f, 0.9f, 0};
        die(srlm_demo_generate(&s.model, s.tok, user, ask, &sp, 1, 96, 11, &out));
        static unsigned char seen[26][26];
        for (int i = 0; i < ask && n < n_prompts; i++) {
            srlm_task t;
            asked++;
            if (!srlm_task_parse(out[i], &t) || strstr(user[i], out[i])) continue;
            if (answerable_only && !lx.count[t.first - 'a'][t.last - 'a']) continue; /* an oracle, for diagnosis */
            if (seen[t.first - 'a'][t.last - 'a']++ >= per_pair) continue; /* a letter pair at most per_pair times */
            tasks[n++] = t;
        }
        srlm_demo_strings_free(out, ask);
        srlm_demo_strings_free(user, ask);
    } else {
        for (int i = 0; i < n_prompts; i++) tasks[n++] = srlm_task_make(&lx, 4242, (uint64_t)i);
    }
    int answerable = 0;
    for (int i = 0; i < n; i++) answerable += lx.count[tasks[i].first - 'a'][tasks[i].last - 'a'] > 0;
    printf("PROMPTS %d (of %d asked), %d with an answer in the list  [%.1fs]\n", n, asked, answerable, now_s() - t0);

    /* 2-3. candidates and judgements */
    t0 = now_s();
    srlm_sampling samp = {0.7f, 0.9f, 0};
    char **cand;
    die(srlm_demo_answer(&s.model, s.tok, tasks, n, &samp, 4, 21, &cand));
    int *task_of = malloc(sizeof(int) * (size_t)(4 * n));
    double *score = malloc(sizeof(double) * (size_t)(4 * n));
    for (int i = 0; i < 4 * n; i++) task_of[i] = i / 4;
    long valid = 0;
    srlm_sampling jsamp = {(float)judge_t, 0.9f, 0};
    die(srlm_demo_judge(&s.model, s.tok, tasks, task_of, cand, 4 * n, 3, &jsamp, 31, score, &valid, NULL));
    printf("JUDGED %d candidates, %.3f of judgements valid  [%.1fs]\n", 4 * n, valid / (12.0 * n), now_s() - t0);

    /* 4. pairs */
    char path[1200];
    snprintf(path, sizeof path, "%s/pairs.jsonl", out_dir);
    FILE *f = fopen(path, "w");
    int pairs = 0, right = 0, wrong = 0, chosen_correct = 0, own_right = 0;
    for (int i = 0; i < n; i++) {
        int hi = -1, lo = -1;
        for (int k = 0; k < 4; k++) {
            int at = 4 * i + k;
            own_right += srlm_task_score(&lx, &tasks[i], cand[at], NULL) == 5;
            if (isnan(score[at])) continue;
            if (hi < 0 || score[at] > score[hi]) hi = at;
            if (lo < 0 || score[at] < score[lo]) lo = at;
        }
        if (hi < 0 || score[hi] == score[lo] || !strcmp(cand[hi], cand[lo])) continue;
        int th = srlm_task_score(&lx, &tasks[i], cand[hi], NULL), tl = srlm_task_score(&lx, &tasks[i], cand[lo], NULL);
        right += th > tl;
        wrong += th < tl;
        chosen_correct += th == 5;
        char instr[128];
        srlm_task_instruction(&tasks[i], instr, sizeof instr);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "prompt", instr);
        cJSON_AddStringToObject(j, "chosen", cand[hi]);
        cJSON_AddStringToObject(j, "rejected", cand[lo]);
        char *line = cJSON_PrintUnformatted(j);
        fprintf(f, "%s\n", line);
        free(line);
        cJSON_Delete(j);
        pairs++;
    }
    fclose(f);
    printf("PAIRS %d: truly better chosen %d, worse %d; chosen right %d | candidates right %.3f\n", pairs, right, wrong,
           chosen_correct, own_right / (4.0 * n));
    srlm_demo_strings_free(cand, 4 * n);

    srlm_task *held = malloc(sizeof *held * (size_t)n_eval);
    int nh = srlm_demo_tasks(&r.data, &lx, r.data.seed + 3, 1, held, n_eval);
    srlm_demo_accuracy a0, a1;
    die(srlm_demo_eval_accuracy(&s.model, s.tok, &lx, held, nh, NULL, 1, 1, &a0));
    srlm_model_session_close(&s);

    /* 6. DPO */
    t0 = now_s();
    srlm_config cfg;
    die(srlm_config_defaults(&cfg));
    char kv[1400];
    snprintf(kv, sizeof kv, "model.path=%s", mt); die(srlm_config_set(&cfg, kv));
    snprintf(kv, sizeof kv, "train.dpo.data=%s", path); die(srlm_config_set(&cfg, kv));
    snprintf(kv, sizeof kv, "train.dpo.lr=%g", dpo_lr); die(srlm_config_set(&cfg, kv));
    snprintf(kv, sizeof kv, "train.dpo.lr_min=%g", dpo_lr / 10); die(srlm_config_set(&cfg, kv));
    snprintf(kv, sizeof kv, "train.dpo.beta=%g", beta); die(srlm_config_set(&cfg, kv));
    snprintf(kv, sizeof kv, "train.dpo.epochs=%g", epochs); die(srlm_config_set(&cfg, kv));
    snprintf(kv, sizeof kv, "train.dpo.batch_size=%d", batch); die(srlm_config_set(&cfg, kv));
    snprintf(kv, sizeof kv, "train.dpo.micro_batch_size=%d", batch); die(srlm_config_set(&cfg, kv));
    snprintf(kv, sizeof kv, "backend.threads=%d", threads); die(srlm_config_set(&cfg, kv));
    die(srlm_config_set(&cfg, "train.dpo.dropout=0"));
    die(srlm_config_set(&cfg, "train.dpo.max_seq_len=256"));
    die(srlm_config_set(&cfg, "model.dtype=float32"));
    die(srlm_config_set(&cfg, "run.watchdog_s=0"));
    char dpo_dir[1100];
    snprintf(dpo_dir, sizeof dpo_dir, "%s/dpo", out_dir);
    srlm_train_job job = {SRLM_TRAIN_DPO, path, dpo_dir, 0, 1, NULL};
    die(srlm_train(&cfg, &job));
    srlm_config_free(&cfg);
    printf("DPO done [%.1fs]\n", now_s() - t0);
    char next[1200];
    snprintf(next, sizeof next, "%s/model", dpo_dir);
    die(srlm_model_session_open(&s, next, NULL, 1, threads));
    die(srlm_demo_eval_accuracy(&s.model, s.tok, &lx, held, nh, NULL, 1, 1, &a1));
    srlm_demo_accuracy s0;
    srlm_sampling sm = {0.7f, 0.9f, 0};
    die(srlm_demo_eval_accuracy(&s.model, s.tok, &lx, held, nh, &sm, 4, 7, &s0));
    printf("ACC held-out greedy: M_t %.3f (mean score %.2f) -> M_t+1 %.3f (mean score %.2f); M_t+1 sampled %.3f\n",
           a0.accuracy, a0.mean_score, a1.accuracy, a1.mean_score, s0.accuracy);
    srlm_model_session_close(&s);
    free(tasks);
    free(held);
    free(task_of);
    free(score);
    srlm_lexicon_free(&lx);
    return 0;
}
