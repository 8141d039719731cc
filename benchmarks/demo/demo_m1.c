/* Experiment driver for the demo's M1 recipe (src/demo/demo_recipe.h): builds
 * M1 in a folder and measures it (src/demo/demo_eval.h).
 *
 *   demo_m1 DIR [threads=1] [key=value ...]
 *
 * keys: the recipe's fields (n_words, n_ift, n_eft, lesson_copies,
 * pair_lessons, n_self_instruct, train_pair_share, dim, layers, heads, ffn,
 * lr, lr_min, warmup, batch, micro, epochs, seed), eval_only=1 (measure an
 * existing DIR/sft/model), n_eval_tasks, n_judge_tasks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/model_session.h"
#include "demo/demo_data.h"
#include "demo/demo_eval.h"
#include "demo/demo_recipe.h"
#include "pipeline/judge.h"

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
    if (argc < 2) { fprintf(stderr, "usage: demo_m1 DIR [key=value ...]\n"); return 2; }
    const char *dir = argv[1];
    srlm_demo_recipe r;
    srlm_demo_recipe_default(&r);
    int threads = 1, eval_only = 0, n_eval = 200, n_judge = 60;
    for (int i = 2; i < argc; i++) {
        char key[64];
        double v;
        if (sscanf(argv[i], "%63[^=]=%lf", key, &v) != 2) { fprintf(stderr, "bad arg %s\n", argv[i]); return 2; }
#define K(name, field) else if (!strcmp(key, name)) field = v
        if (0) {}
        K("threads", threads); K("eval_only", eval_only); K("n_eval_tasks", n_eval); K("n_judge_tasks", n_judge);
        K("n_words", r.data.n_words); K("n_ift", r.data.n_ift); K("n_eft", r.data.n_eft);
        K("lesson_copies", r.data.lesson_copies); K("pair_lessons", r.data.pair_lessons);
        K("n_self_instruct", r.data.n_self_instruct); K("train_pair_share", r.data.train_pair_share);
        K("seed", r.data.seed); K("model_seed", r.model_seed); K("dim", r.dim); K("layers", r.layers); K("heads", r.heads);
        K("kv_heads", r.kv_heads); K("ffn", r.ffn); K("lr", r.lr); K("lr_min", r.lr_min);
        K("warmup", r.warmup_steps); K("batch", r.batch_size); K("micro", r.micro_batch_size);
        K("epochs", r.epochs); K("max_seq_len", r.max_seq_len); K("init_std", r.init_std);
        else { fprintf(stderr, "unknown key %s\n", key); return 2; }
#undef K
    }
    if (r.kv_heads > r.heads) r.kv_heads = r.heads;
    srlm_lexicon lx;
    die(srlm_lexicon_make(&lx, r.data.n_words, r.data.seed));
    int pairs = 0;
    for (int f = 0; f < 26; f++) for (int l = 0; l < 26; l++) pairs += lx.count[f][l] > 0;
    printf("lexicon: %d words, %d letter pairs\n", lx.n_words, pairs);
    if (!eval_only) {
        srlm_demo_m1_times tm;
        die(srlm_demo_build_m1(&r, &lx, dir, threads, 1, &tm));
        printf("BUILD data %.1fs tokenizer %.1fs sft %.1fs total %.1fs (threads %d)\n", tm.data_s, tm.tokenizer_s,
               tm.sft_s, tm.data_s + tm.tokenizer_s + tm.sft_s, threads);
        fflush(stdout);
    }
    char m1[1100];
    snprintf(m1, sizeof m1, "%s/sft/model", dir);
    srlm_model_session s = {0};
    die(srlm_model_session_open(&s, m1, NULL, 1, threads));
    printf("M1: %lld parameters, vocab %d\n", (long long)s.model.n_params_local, srlm_tokenizer_vocab_size(s.tok));
    { /* how the tokenizer cuts a judge example */
        srlm_task t0 = srlm_task_make(&lx, 9, 0);
        char instr[128], jp[512], jt[512];
        srlm_task_instruction(&t0, instr, sizeof instr);
        const char *w = srlm_task_answer(&lx, &t0, 0);
        srlm_demo_judge_prompt(instr, w, jp, sizeof jp);
        srlm_task_judgement(&lx, &t0, w, jt, sizeof jt);
        const char *texts[2] = {jp, jt};
        for (int k = 0; k < 2; k++) {
            int *ids, n_ids;
            die(srlm_tokenizer_encode(s.tok, texts[k], strlen(texts[k]), 0, 0, &ids, &n_ids));
            printf("%d pieces:", n_ids);
            for (int i = 0; i < n_ids; i++) printf(" %s", srlm_tokenizer_piece(s.tok, ids[i]));
            printf("\n");
            free(ids);
        }
    }

    srlm_task *held = malloc(sizeof *held * (size_t)n_eval), *train = malloc(sizeof *train * (size_t)n_eval);
    int nh = srlm_demo_tasks(&r.data, &lx, r.data.seed + 3, 1, held, n_eval);
    int nt = srlm_demo_tasks(&r.data, &lx, r.data.seed + 1, 0, train, n_eval);
    double t0 = now_s();
    srlm_demo_accuracy ah, at, as;
    die(srlm_demo_eval_accuracy(&s.model, s.tok, &lx, held, nh, NULL, 1, 1, &ah));
    die(srlm_demo_eval_accuracy(&s.model, s.tok, &lx, train, nt, NULL, 1, 1, &at));
    srlm_sampling samp = {0.7f, 0.9f, 0};
    die(srlm_demo_eval_accuracy(&s.model, s.tok, &lx, held, nh, &samp, 4, 7, &as));
    printf("ACC greedy held-out %.3f (%d/%d, mean score %.2f) | greedy train-pair %.3f (%d/%d) | sampled T0.7 held-out "
           "%.3f, tasks with >=1 right of 4: %.3f  [%.1fs]\n",
           ah.accuracy, ah.n_right, ah.n, ah.mean_score, at.accuracy, at.n_right, at.n, as.accuracy,
           (double)as.tasks_any / nh, now_s() - t0);
    char **ans;
    die(srlm_demo_answer(&s.model, s.tok, held, 8, &samp, 4, 3, &ans));
    for (int i = 0; i < 8; i++) {
        printf("  %c..%c:", held[i].first, held[i].last);
        for (int k = 0; k < 4; k++) printf(" [%s]=%d", ans[i * 4 + k], srlm_task_score(&lx, &held[i], ans[i * 4 + k], NULL));
        printf("\n");
    }
    srlm_demo_strings_free(ans, 32);

    t0 = now_s();
    srlm_demo_judge_eval_config jc = {4, 4, 3, {0.7f, 0.9f, 0}, {0.7f, 0.9f, 0}, 99};
    srlm_demo_judge_quality q;
    if (n_judge > nh) n_judge = nh;
    die(srlm_demo_eval_judge(&s.model, s.tok, &lx, held, n_judge, &jc, &q));
    printf("JUDGE (%d held-out tasks, 4 own + 4 near misses, 3 judge samples at T0.7): parse %.3f | all: pairwise %.3f "
           "tie %.3f exact-match %.3f spearman %.3f | own: pairwise %.3f (pairs %ld) | rounded score == truth %.3f | own "
           "right %.3f | loop pairs %ld: right %ld tied %ld wrong %ld  [%.1fs]\n",
           n_judge, (double)q.valid / (double)q.judgements, q.all.pairwise_accuracy, q.all.tie_rate, q.all.exact_match,
           q.all.spearman, q.own.pairwise_accuracy, q.own.pairs, q.exact, q.own_right, q.pairs, q.pairs_right,
           q.pairs_tied, q.pairs_wrong, now_s() - t0);
    /* a few judgements to read */
    {
        char *cands[4];
        int task_of[4] = {0, 0, 1, 1};
        char b0[64], b1[64], b2[64], b3[64];
        snprintf(b0, sizeof b0, "%s", srlm_task_answer(&lx, &held[0], 0));
        srlm_demo_nonword(&lx, held[0].first, held[0].last, 5, 5, b1, sizeof b1);
        srlm_demo_candidate(&lx, &held[1], 77, 2, b2, sizeof b2);
        srlm_demo_candidate(&lx, &held[1], 77, 4, b3, sizeof b3);
        cands[0] = b0; cands[1] = b1; cands[2] = b2; cands[3] = b3;
        double sc[4];
        char *first[4];
        srlm_sampling greedy = {0, 1, 0};
        die(srlm_demo_judge(&s.model, s.tok, held, task_of, cands, 4, 1, &greedy, 1, sc, NULL, first));
        for (int i = 0; i < 4; i++) {
            char truth[512];
            srlm_task_judgement(&lx, &held[task_of[i]], cands[i], truth, sizeof truth);
            printf("--- %c..%c answer [%s] judged %.1f, true %d\n%s\n", held[task_of[i]].first, held[task_of[i]].last,
                   cands[i], sc[i], srlm_task_score(&lx, &held[task_of[i]], cands[i], NULL), first[i]);
            if (strcmp(first[i], truth)) printf("   (truth:)\n%s\n", truth);
            free(first[i]);
        }
    }
    /* self-instruct: a new instruction of the task's form? */
    {
        enum { NS = 40 };
        char *user[NS];
        int ok = 0, fresh = 0;
        for (int i = 0; i < NS; i++) {
            char shots[4][128];
            const char *p[4];
            for (int k = 0; k < 4; k++) {
                srlm_task t = srlm_task_make(&lx, 555, (uint64_t)(4 * i + k));
                srlm_task_instruction(&t, shots[k], sizeof shots[k]);
                p[k] = shots[k];
            }
            user[i] = malloc(1024);
            srlm_demo_self_instruct_prompt(p, 4, user[i], 1024);
        }
        char **out;
        srlm_sampling sp = {0.6f, 0.9f, 0};
        die(srlm_demo_generate(&s.model, s.tok, user, NS, &sp, 1, 96, 5, &out));
        for (int i = 0; i < NS; i++) {
            srlm_task t;
            int good = srlm_task_parse(out[i], &t);
            ok += good;
            if (good) fresh += strstr(user[i], out[i]) == NULL;
            if (i < 3) printf("  self-instruct -> [%s]\n", out[i]);
            free(user[i]);
        }
        printf("SELF-INSTRUCT: %d/%d replies are instructions of the task's form, %d new\n", ok, NS, fresh);
        srlm_demo_strings_free(out, NS);
    }
    free(held);
    free(train);
    srlm_model_session_close(&s);
    srlm_lexicon_free(&lx);
    return 0;
}
