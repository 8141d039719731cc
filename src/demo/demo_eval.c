#include "demo/demo_eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "demo/demo_data.h"
#include "generate/engine.h"
#include "io/chat.h"
#include "pipeline/judge.h"
#include "pipeline/parts.h"

enum { ANSWER_TOKENS = 24, JUDGE_TOKENS = 200, MAX_BATCH = 64 };

typedef struct {
    char **text;   /* [request * n_samples + sample] */
    int    n_samples;
} collect;

static srlm_status keep(const srlm_gen_output *o, void *ctx) {
    collect *c = ctx;
    char *s = malloc(o->text_len + 1);
    if (!s) return SRLM_ERR(SRLM_FAILED, "out of memory");
    memcpy(s, o->text, o->text_len);
    s[o->text_len] = '\0';
    c->text[o->request * c->n_samples + o->sample] = s;
    return SRLM_OK;
}

void srlm_demo_strings_free(char **s, int n) {
    if (!s) return;
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

srlm_status srlm_demo_generate(srlm_llama *m, const srlm_tokenizer *tok, char *const *user, int n,
                               const srlm_sampling *s, int n_samples, int max_new, uint64_t seed, char ***out) {
    *out = NULL;
    srlm_gen_request *req = calloc((size_t)(n > 0 ? n : 1), sizeof *req);
    int **ids = calloc((size_t)(n > 0 ? n : 1), sizeof *ids);
    char **text = calloc((size_t)n * (size_t)n_samples + 1, sizeof *text);
    srlm_status st = SRLM_OK;
    if (!req || !ids || !text) { st = SRLM_ERR(SRLM_FAILED, "out of memory"); goto done; }
    int longest = 0;
    for (int i = 0; i < n; i++) {
        srlm_chat_turn turn = {user[i], NULL};
        int n_ids;
        SRLM_CHECK_GOTO(srlm_chat_encode(tok, NULL, &turn, 1, &ids[i], &n_ids), st, done);
        req[i] = (srlm_gen_request){ids[i], n_ids, n_samples, *s, max_new, srlm_tokenizer_eos(tok), NULL, 0,
                                    srlm_rng_u64(seed, (uint64_t)i)};
        if (n_ids > longest) longest = n_ids;
    }
    srlm_gen_config gc = {.max_batch = MAX_BATCH, .max_seq = longest + max_new, .share_prefix = 1, .min_shared_prefix = 16};
    collect c = {text, n_samples};
    SRLM_CHECK_GOTO(srlm_generate(m, tok, &gc, req, n, keep, &c, NULL), st, done);
    for (int i = 0; i < n * n_samples; i++)
        if (!text[i] && !(text[i] = calloc(1, 1))) { st = SRLM_ERR(SRLM_FAILED, "out of memory"); goto done; }
    *out = text;
    text = NULL;
done:
    if (ids) for (int i = 0; i < n; i++) free(ids[i]);
    free(ids);
    free(req);
    srlm_demo_strings_free(text, n * n_samples);
    return st;
}

srlm_status srlm_demo_answer(srlm_llama *m, const srlm_tokenizer *tok, const srlm_task *tasks, int n,
                             const srlm_sampling *s, int n_samples, uint64_t seed, char ***answers) {
    char **user = calloc((size_t)(n > 0 ? n : 1), sizeof *user);
    if (!user) return SRLM_ERR(SRLM_FAILED, "out of memory");
    srlm_status st = SRLM_OK;
    for (int i = 0; i < n && st == SRLM_OK; i++) {
        if (!(user[i] = malloc(128))) st = SRLM_ERR(SRLM_FAILED, "out of memory");
        else srlm_task_instruction(&tasks[i], user[i], 128);
    }
    if (st == SRLM_OK) st = srlm_demo_generate(m, tok, user, n, s, n_samples, ANSWER_TOKENS, seed, answers);
    srlm_demo_strings_free(user, n);
    return st;
}

srlm_status srlm_demo_eval_accuracy(srlm_llama *m, const srlm_tokenizer *tok, const srlm_lexicon *lx,
                                    const srlm_task *tasks, int n, const srlm_sampling *s, int n_samples,
                                    uint64_t seed, srlm_demo_accuracy *out) {
    const srlm_sampling greedy = {0, 1, 0};
    if (!s) { s = &greedy; n_samples = 1; }
    char **ans;
    SRLM_CHECK(srlm_demo_answer(m, tok, tasks, n, s, n_samples, seed, &ans));
    memset(out, 0, sizeof *out);
    long total = 0;
    for (int i = 0; i < n; i++) {
        int any = 0;
        for (int k = 0; k < n_samples; k++) {
            int sc = srlm_task_score(lx, &tasks[i], ans[i * n_samples + k], NULL);
            total += sc;
            out->n_right += sc == 5;
            any |= sc == 5;
        }
        out->tasks_any += any;
    }
    out->n = n * n_samples;
    out->accuracy = out->n ? (double)out->n_right / out->n : NAN;
    out->mean_score = out->n ? (double)total / out->n : NAN;
    srlm_demo_strings_free(ans, n * n_samples);
    return SRLM_OK;
}

srlm_status srlm_demo_judge(srlm_llama *m, const srlm_tokenizer *tok, const srlm_task *tasks,
                            const int *task_of, char *const *text, int n, int judge_samples,
                            const srlm_sampling *s, uint64_t seed, double *score, long *valid,
                            char **first_judgement) {
    char **user = calloc((size_t)(n > 0 ? n : 1), sizeof *user), **judged = NULL;
    if (!user) return SRLM_ERR(SRLM_FAILED, "out of memory");
    srlm_status st = SRLM_OK;
    for (int i = 0; i < n && st == SRLM_OK; i++) {
        char instr[128];
        size_t cap = strlen(text[i]) + 256;
        srlm_task_instruction(&tasks[task_of[i]], instr, sizeof instr);
        if (!(user[i] = malloc(cap))) st = SRLM_ERR(SRLM_FAILED, "out of memory");
        else srlm_demo_judge_prompt(instr, text[i], user[i], cap);
    }
    if (st == SRLM_OK) st = srlm_demo_generate(m, tok, user, n, s, judge_samples, JUDGE_TOKENS, seed, &judged);
    if (st == SRLM_OK) {
        long ok = 0;
        for (int i = 0; i < n; i++) {
            double sum = 0;
            int k_ok = 0;
            for (int k = 0; k < judge_samples; k++) {
                const char *j = judged[i * judge_samples + k];
                int sc;
                if (srlm_judge_parse_score(j, strlen(j), &sc) == SRLM_SCORE_OK) { sum += sc; k_ok++; }
            }
            score[i] = k_ok ? sum / k_ok : NAN;
            ok += k_ok;
            if (first_judgement) {
                first_judgement[i] = judged[i * judge_samples];
                judged[i * judge_samples] = NULL;
            }
        }
        if (valid) *valid = ok;
    }
    srlm_demo_strings_free(judged, n * judge_samples);
    srlm_demo_strings_free(user, n);
    return st;
}

/* rm metrics over groups of `per` candidates starting at `off` within each
 * task's block of `stride` */
static srlm_status metrics(const int *truth, const double *score, int n, int stride, int off, int per,
                           srlm_rm_metrics *out) {
    srlm_ranked_group *g = calloc((size_t)(n > 0 ? n : 1), sizeof *g);
    int *rank = malloc(sizeof(int) * (size_t)(n * stride + 1));
    if (!g || !rank) { free(g); free(rank); return SRLM_ERR(SRLM_FAILED, "out of memory"); }
    for (int i = 0; i < n * stride; i++) rank[i] = 5 - truth[i];
    for (int i = 0; i < n; i++) g[i] = (srlm_ranked_group){per, rank + i * stride + off, score + i * stride + off};
    srlm_status st = srlm_rm_metrics_compute(g, n, out);
    free(g);
    free(rank);
    return st;
}

srlm_status srlm_demo_eval_judge(srlm_llama *m, const srlm_tokenizer *tok, const srlm_lexicon *lx,
                                 const srlm_task *tasks, int n, const srlm_demo_judge_eval_config *c,
                                 srlm_demo_judge_quality *out) {
    memset(out, 0, sizeof *out);
    const int stride = c->own + c->near_misses, total = n * stride;
    char **own = NULL, **cand = calloc((size_t)total + 1, sizeof *cand);
    int *task_of = malloc(sizeof(int) * (size_t)(total + 1)), *truth = malloc(sizeof(int) * (size_t)(total + 1));
    double *score = malloc(sizeof(double) * (size_t)(total + 1));
    srlm_status st = SRLM_OK;
    if (!cand || !task_of || !truth || !score) { st = SRLM_ERR(SRLM_FAILED, "out of memory"); goto done; }
    if (c->own > 0)
        SRLM_CHECK_GOTO(srlm_demo_answer(m, tok, tasks, n, &c->answer_sampling, c->own, c->seed, &own), st, done);
    uint64_t key = srlm_rng_key(c->seed, 0x6e656172ull);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < stride; k++) {
            int at = i * stride + k;
            task_of[at] = i;
            if (k < c->own) {
                cand[at] = own[i * c->own + k];
                own[i * c->own + k] = NULL;
            } else {
                char buf[128];
                srlm_demo_candidate(lx, &tasks[i], key, (uint64_t)at, buf, sizeof buf);
                if (!(cand[at] = strdup(buf))) { st = SRLM_ERR(SRLM_FAILED, "out of memory"); goto done; }
            }
            truth[at] = srlm_task_score(lx, &tasks[i], cand[at], NULL);
            if (k < c->own) out->own_right += truth[at] == 5;
        }
    if (c->own > 0) out->own_right /= (double)n * c->own;
    SRLM_CHECK_GOTO(srlm_demo_judge(m, tok, tasks, task_of, cand, total, c->judge_samples, &c->judge_sampling,
                                    srlm_rng_key(c->seed, 0x6a756467ull), score, &out->valid, NULL), st, done);
    out->judgements = (long)total * c->judge_samples;
    /* exactness per candidate mean (a judgement's own score is not kept): the
     * share of candidates whose mean judged score rounds to the truth */
    long exact = 0, scored = 0;
    for (int i = 0; i < total; i++)
        if (!isnan(score[i])) { scored++; exact += (int)lround(score[i]) == truth[i]; }
    out->exact = scored ? (double)exact / scored : NAN;
    SRLM_CHECK_GOTO(metrics(truth, score, n, stride, 0, stride, &out->all), st, done);
    if (c->own > 1) {
        SRLM_CHECK_GOTO(metrics(truth, score, n, stride, 0, c->own, &out->own), st, done);
        for (int i = 0; i < n; i++) {
            int hi = -1, lo = -1;
            for (int k = 0; k < c->own; k++) {
                int at = i * stride + k;
                if (isnan(score[at])) continue;
                if (hi < 0 || score[at] > score[hi]) hi = at;
                if (lo < 0 || score[at] < score[lo]) lo = at;
            }
            if (hi < 0 || score[hi] == score[lo]) continue;
            out->pairs++;
            if (truth[hi] > truth[lo]) out->pairs_right++;
            else if (truth[hi] == truth[lo]) out->pairs_tied++;
            else out->pairs_wrong++;
        }
    }
done:
    srlm_demo_strings_free(own, n * c->own);
    srlm_demo_strings_free(cand, total);
    free(task_of);
    free(truth);
    free(score);
    return st;
}

/* Complete parts 0 .. n-1 of dir (the loop writes them in item order). */
static int parts_done(const char *dir) {
    char path[1300];
    int n = 0;
    while (srlm_part_path(path, sizeof path, dir, n) == SRLM_OK && srlm_artifact_done(path)) n++;
    return n;
}

static const char *str_of(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int int_of(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

srlm_status srlm_demo_iteration_judge(const char *run, int t, const srlm_lexicon *lx, srlm_rm_metrics *out) {
    char cdir[1200], jdir[1200];
    snprintf(cdir, sizeof cdir, "%s/iter-%d/candidates", run, t);
    snprintf(jdir, sizeof jdir, "%s/iter-%d/judgements", run, t);
    cJSON **c = NULL, **j = NULL;
    int nc = 0, nj = 0, groups = 0;
    int *rank = NULL;
    double *score = NULL;
    srlm_ranked_group *g = NULL;
    srlm_status st = srlm_parts_load(cdir, parts_done(cdir), &c, &nc);
    if (st == SRLM_OK) st = srlm_parts_load(jdir, parts_done(jdir), &j, &nj);
    if (st != SRLM_OK) goto done;
    if (nc == 0) {
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s: no complete candidates (has iteration %d run?)", cdir, t);
        goto done;
    }
    if (nj == 0 || nj % nc != 0) {
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s: %d candidates and %d judgements (expected a whole number of "
                      "judgements per candidate)", jdir, nc, nj);
        goto done;
    }
    const int per = nj / nc;
    rank = malloc(sizeof(int) * (size_t)nc);
    score = malloc(sizeof(double) * (size_t)nc);
    g = calloc((size_t)nc, sizeof *g);
    if (!rank || !score || !g) { st = SRLM_ERR(SRLM_FAILED, "out of memory"); goto done; }
    for (int i = 0; i < nc; i++) {
        const char *id = str_of(c[i], "prompt_id"), *prompt = str_of(c[i], "prompt"), *resp = str_of(c[i], "response");
        if (!id || !prompt || !resp) {
            st = SRLM_ERR(SRLM_BAD_INPUT, "%s: candidate %d has no prompt_id, prompt or response", cdir, i);
            goto done;
        }
        /* a self-written instruction that is not one of the task's has no truth:
         * its candidates are left out (NAN score: dropped, and counted) */
        srlm_task task;
        const int graded = srlm_task_parse(prompt, &task);
        rank[i] = SRLM_JUDGE_MAX_SCORE - (graded ? srlm_task_score(lx, &task, resp, NULL) : 0);
        double sum = 0;
        int valid = 0;
        for (int k = 0; k < per; k++) {
            const cJSON *jr = j[(size_t)i * per + k];
            const char *jid = str_of(jr, "prompt_id");
            if (!jid || strcmp(jid, id) != 0 || int_of(jr, "sample") != int_of(c[i], "sample")) {
                st = SRLM_ERR(SRLM_BAD_INPUT, "%s: judgement %d is not for candidate %d (%s, sample %d)", jdir,
                              i * per + k, i, id, int_of(c[i], "sample"));
                goto done;
            }
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(jr, "score");
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(jr, "valid")) && cJSON_IsNumber(v)) {
                sum += v->valuedouble;
                valid++;
            }
        }
        score[i] = valid && graded ? sum / valid : NAN;
        /* a prompt's candidates are consecutive: a new prompt_id starts a group */
        if (i == 0 || strcmp(id, str_of(c[i - 1], "prompt_id")) != 0) g[groups++] = (srlm_ranked_group){0, rank + i, score + i};
        g[groups - 1].n_replies++;
    }
    st = srlm_rm_metrics_compute(g, groups, out);
done:
    srlm_records_free(c, nc);
    srlm_records_free(j, nj);
    free(rank);
    free(score);
    free(g);
    return st;
}
