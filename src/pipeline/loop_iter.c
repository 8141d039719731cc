/* One self-rewarding iteration: M_t -> M_{t+1} (DESIGN.md "The algorithm",
 * steps 1-7). Every phase reads the complete outputs of the one before it from
 * the run directory, so any phase can be the first one of a resumed run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/rng.h"
#include "io/fsutil.h"
#include "model/llama_train.h"
#include "model/model_session.h"
#include "pipeline/loop_internal.h"
#include "pipeline/pairs.h"
#include "pipeline/self_instruct.h"
#include "train/dataset.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static srlm_status barrier(const loop_ctx *L) { return srlm_comm_barrier(L->topo ? L->topo->world : NULL); }

/* ---- judging, shared with evaluation and EFT ---- */

srlm_status loop_judge_request(const loop_ctx *L, const char *instruction, const char *response, int n_samples,
                               uint64_t seed, loop_request *r) {
    char *text;
    SRLM_CHECK(srlm_judge_render(&L->judge, instruction, response, &text));
    srlm_status st = loop_encode_user(L, text, &r->ids, &r->n_ids);
    free(text);
    r->n_samples = n_samples;
    r->seed = seed;
    return st;
}

void loop_judge_fields(const srlm_gen_output *o, cJSON *rec) {
    int score;
    srlm_score_verdict v = srlm_judge_parse_score(o->text, o->text_len, &score);
    char *text = strndup(o->text, o->text_len);
    cJSON_AddStringToObject(rec, "text", text ? text : "");
    free(text);
    if (v == SRLM_SCORE_OK) cJSON_AddNumberToObject(rec, "score", score);
    else cJSON_AddNullToObject(rec, "score");
    cJSON_AddBoolToObject(rec, "valid", v == SRLM_SCORE_OK);
    cJSON_AddStringToObject(rec, "verdict", srlm_score_verdict_name(v));
}

/* ---- 1. self-instruct ---- */

typedef struct { const loop_ctx *L; } si_ctx;

static srlm_status si_record(void *ctx, int request, const srlm_gen_output *o, cJSON *rec) {
    (void)ctx;
    char *task = NULL;
    SRLM_CHECK(srlm_si_extract(o->text, o->text_len, &task));
    char *text = strndup(o->text, o->text_len);
    cJSON_AddNumberToObject(rec, "index", request);
    cJSON_AddStringToObject(rec, "text", text ? text : "");
    if (task) cJSON_AddStringToObject(rec, "instruction", task);
    else cJSON_AddNullToObject(rec, "instruction");
    cJSON_AddStringToObject(rec, "finish_reason", o->finish_reason);
    free(text);
    free(task);
    return SRLM_OK;
}

/* Texts of the "prompt" fields of records. */
static srlm_status prompt_texts(cJSON **recs, int n, const char *where, const char ***out) {
    *out = malloc(sizeof(char *) * (size_t)(n > 0 ? n : 1));
    if (!*out) return SRLM_ERR(SRLM_FAILED, "out of memory");
    for (int i = 0; i < n; i++) {
        (*out)[i] = loop_json_str(recs[i], "prompt");
        if (!(*out)[i]) {
            free(*out);
            *out = NULL;
            return SRLM_ERR(SRLM_BAD_INPUT, "%s: record %d has no \"prompt\" string", where, i + 1);
        }
    }
    return SRLM_OK;
}

typedef struct {
    cJSON **ift, **prev, **older;  /* IFT seed data, iteration t-1's prompts, all accepted before */
    int     n_ift, n_prev, n_older;
} prompt_pools;

static void pools_free(prompt_pools *p) {
    srlm_records_free(p->ift, p->n_ift);
    srlm_records_free(p->prev, p->n_prev);
    srlm_records_free(p->older, p->n_older);
    memset(p, 0, sizeof *p);
}

static srlm_status load_pools(loop_ctx *L, int t, prompt_pools *p) {
    memset(p, 0, sizeof *p);
    SRLM_CHECK(srlm_jsonl_load_all(L->ift_path, &p->ift, &p->n_ift));
    for (int k = 1; k < t; k++) {
        char path[1200];
        cJSON **r;
        int n;
        SRLM_CHECK(loop_path(L, path, sizeof path, "iter-%d/prompts/prompts.jsonl", k));
        SRLM_CHECK(srlm_records_load(path, &r, &n));
        if (k == t - 1) { p->prev = r; p->n_prev = n; continue; }
        cJSON **g = realloc(p->older, sizeof *g * (size_t)(p->n_older + n + 1));
        if (!g) { srlm_records_free(r, n); return SRLM_ERR(SRLM_FAILED, "out of memory"); }
        p->older = g;
        memcpy(p->older + p->n_older, r, sizeof *r * (size_t)n);
        p->n_older += n;
        free(r);
    }
    return SRLM_OK;
}

static srlm_status phase_prompts(loop_ctx *L, int t, double *seconds) {
    const srlm_config *c = L->cfg;
    char dir[1200], out[1200], model[1200];
    SRLM_CHECK(loop_path(L, dir, sizeof dir, "iter-%d/prompts", t));
    SRLM_CHECK(loop_path(L, out, sizeof out, "iter-%d/prompts/prompts.jsonl", t));
    int done = L->rank == 0 && srlm_artifact_done(out);
    SRLM_CHECK(loop_bcast_int(L, &done));
    if (done) return SRLM_OK;
    double t0 = now_s();
    SRLM_CHECK(loop_model_dir(L, *c->self_instruct.prompt_model ? c->self_instruct.prompt_model : "M0", model,
                              sizeof model));
    prompt_pools pools;
    srlm_si_template tpl = {0};
    loop_request *reqs = NULL;
    const char **ift = NULL, **prev = NULL;
    const int n = c->self_instruct.prompts_per_iteration;
    srlm_status st;
    SRLM_CHECK_GOTO(load_pools(L, t, &pools), st, done);
    SRLM_CHECK_GOTO(prompt_texts(pools.ift, pools.n_ift, L->ift_path, &ift), st, done);
    SRLM_CHECK_GOTO(prompt_texts(pools.prev, pools.n_prev, "previous prompts", &prev), st, done);
    SRLM_CHECK_GOTO(srlm_si_template_load(&tpl, c->self_instruct.template_path), st, done);
    reqs = calloc((size_t)n, sizeof *reqs);
    if (!reqs) { st = SRLM_ERR(SRLM_FAILED, "out of memory"); goto done; }
    const int k = c->self_instruct.shots_ift + c->self_instruct.shots_generated;
    srlm_si_shot *shots = malloc(sizeof *shots * (size_t)(k > 0 ? k : 1));
    const char **texts = malloc(sizeof(char *) * (size_t)(k > 0 ? k : 1));
    uint64_t key = loop_seed(L, t, LOOP_PHASE_PROMPTS, -1);
    st = shots && texts ? SRLM_OK : SRLM_ERR(SRLM_FAILED, "out of memory");
    for (int i = 0; i < n && st == SRLM_OK; i++) {
        int m;
        char *user = NULL;
        st = srlm_si_pick_shots(pools.n_ift, pools.n_prev, c->self_instruct.shots_ift,
                                c->self_instruct.shots_generated, key, (uint64_t)i, shots, &m);
        for (int j = 0; j < m && st == SRLM_OK; j++) texts[j] = shots[j].from_prev ? prev[shots[j].index] : ift[shots[j].index];
        if (st == SRLM_OK) st = srlm_si_render(&tpl, texts, m, &user);
        if (st == SRLM_OK) st = loop_encode_user(L, user, &reqs[i].ids, &reqs[i].n_ids);
        free(user);
        reqs[i].n_samples = 1;
        reqs[i].seed = loop_seed(L, t, LOOP_PHASE_PROMPTS, i);
    }
    free(shots);
    free(texts);
    SRLM_CHECK_GOTO(st, st, done);
    char name[64];
    snprintf(name, sizeof name, "iter-%d/prompts", t);
    const srlm_sampling sampling = {(float)c->self_instruct.temperature, (float)c->self_instruct.top_p, 0};
    loop_gen_phase p = {name, dir, model, reqs, n, c->loop.prompts_per_item, sampling,
                        c->self_instruct.max_new_tokens, NULL, si_record, NULL};
    SRLM_CHECK_GOTO(loop_gen_run(L, &p, NULL), st, done);

    /* the filter runs once, in item order, on rank 0 (DESIGN: Contracts / Determinism) */
    if (L->rank == 0) {
        cJSON **cands = NULL;
        int n_cands = 0;
        SRLM_CHECK_GOTO(srlm_parts_load(dir, loop_items(n, c->loop.prompts_per_item), &cands, &n_cands), st, done);
        int n_pool = pools.n_ift + pools.n_older + pools.n_prev;
        const char **pool = malloc(sizeof(char *) * (size_t)(n_pool + 1));
        const char **ctext = malloc(sizeof(char *) * (size_t)(n_cands + 1));
        srlm_si_check *checks = malloc(sizeof *checks * (size_t)(n_cands + 1));
        srlm_si_blocklist bl = {0};
        int counts[SRLM_SI_N_VERDICTS] = {0};
        st = pool && ctext && checks ? SRLM_OK : SRLM_ERR(SRLM_FAILED, "out of memory");
        if (st == SRLM_OK) {
            int j = 0;
            for (int i = 0; i < pools.n_ift; i++) pool[j++] = ift[i];
            for (int i = 0; i < pools.n_older; i++) pool[j++] = loop_json_str(pools.older[i], "prompt");
            for (int i = 0; i < pools.n_prev; i++) pool[j++] = prev[i];
            for (int i = 0; i < n_cands; i++) ctext[i] = loop_json_str(cands[i], "instruction");
            st = srlm_si_blocklist_load(&bl, c->self_instruct.blocklist);
        }
        const srlm_si_filter_opts fo = {c->self_instruct.rouge_l_max, c->self_instruct.max_copies,
                                        c->self_instruct.min_words, c->self_instruct.max_words, &bl};
        if (st == SRLM_OK) st = srlm_si_filter(&fo, pool, n_pool, ctext, n_cands, checks, counts);
        srlm_text text = {0};
        for (int i = 0; i < n_cands && st == SRLM_OK; i++) {
            if (checks[i].verdict != SRLM_SI_KEEP) continue;
            char id[48];
            snprintf(id, sizeof id, "i%d-%05d", t, i);
            cJSON *r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "prompt_id", id);
            cJSON_AddStringToObject(r, "prompt", ctext[i]);
            srlm_text_add_json(&text, r);
            cJSON_Delete(r);
        }
        if (st == SRLM_OK) {
            cJSON *f = cJSON_CreateObject();
            cJSON_AddNumberToObject(f, "generated", n_cands);
            for (int v = 0; v < SRLM_SI_N_VERDICTS; v++) cJSON_AddNumberToObject(f, srlm_si_verdict_name(v), counts[v]);
            char fpath[1200];
            st = loop_path(L, fpath, sizeof fpath, "iter-%d/prompts/filter.json", t);
            if (st == SRLM_OK) st = loop_write_json(L, fpath, f);
            cJSON_Delete(f);
        }
        if (st == SRLM_OK) st = srlm_text_status(&text);
        if (st == SRLM_OK && text.count == 0)
            st = SRLM_ERR(SRLM_FAILED, "iteration %d: self-instruct kept none of %d new prompts (see %s/filter.json "
                          "for why; the prompt model may need a better self_instruct prompt or settings)", t, n_cands, dir);
        if (st == SRLM_OK) st = srlm_artifact_write(out, text.s, text.len, text.count);
        if (st == SRLM_OK && !L->quiet)
            SRLM_INFO("iter-%d/prompts: %d generated, %d kept (similar %d, duplicate %d, length %d, blocked %d, "
                      "not text %d, empty %d)", t, n_cands, counts[SRLM_SI_KEEP], counts[SRLM_SI_SIMILAR],
                      counts[SRLM_SI_DUPLICATE], counts[SRLM_SI_TOO_SHORT] + counts[SRLM_SI_TOO_LONG],
                      counts[SRLM_SI_BLOCKED], counts[SRLM_SI_NOT_TEXT], counts[SRLM_SI_EMPTY]);
        srlm_text_free(&text);
        srlm_si_blocklist_free(&bl);
        free(pool);
        free(ctext);
        free(checks);
        srlm_records_free(cands, n_cands);
    }
    SRLM_CHECK_GOTO(st, st, done);
    st = barrier(L);
done:
    free(ift);
    free(prev);
    srlm_si_template_free(&tpl);
    loop_requests_free(reqs, n);
    pools_free(&pools);
    *seconds += now_s() - t0;
    return st;
}

/* ---- 2. candidates ---- */

typedef struct { cJSON **prompts; loop_request *reqs; } cand_ctx;

static srlm_status cand_record(void *ctx, int request, const srlm_gen_output *o, cJSON *rec) {
    cand_ctx *c = ctx;
    const cJSON *p = c->prompts[request];
    char *text = strndup(o->text, o->text_len);
    cJSON_AddStringToObject(rec, "prompt_id", loop_json_str(p, "prompt_id"));
    cJSON_AddStringToObject(rec, "prompt", loop_json_str(p, "prompt"));
    cJSON_AddItemToObject(rec, "prompt_ids", loop_json_ids(c->reqs[request].ids, c->reqs[request].n_ids));
    cJSON_AddNumberToObject(rec, "sample", o->sample);
    cJSON_AddStringToObject(rec, "response", text ? text : "");
    cJSON_AddItemToObject(rec, "response_ids", loop_json_ids(o->ids, o->n_ids));
    cJSON_AddStringToObject(rec, "finish_reason", o->finish_reason);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->reqs[request].seed);
    cJSON_AddStringToObject(rec, "seed", seed);
    free(text);
    return text ? SRLM_OK : SRLM_ERR(SRLM_FAILED, "out of memory");
}

static srlm_status phase_candidates(loop_ctx *L, int t, const char *model, double *seconds) {
    const srlm_config *c = L->cfg;
    char dir[1200], path[1200], name[64];
    SRLM_CHECK(loop_path(L, dir, sizeof dir, "iter-%d/candidates", t));
    SRLM_CHECK(loop_path(L, path, sizeof path, "iter-%d/prompts/prompts.jsonl", t));
    snprintf(name, sizeof name, "iter-%d/candidates", t);
    double t0 = now_s();
    cand_ctx cc = {0};
    int n = 0;
    SRLM_CHECK(srlm_records_load(path, &cc.prompts, &n));
    srlm_status st = SRLM_OK;
    cc.reqs = calloc((size_t)(n > 0 ? n : 1), sizeof *cc.reqs);
    if (!cc.reqs) st = SRLM_ERR(SRLM_FAILED, "out of memory");
    for (int i = 0; i < n && st == SRLM_OK; i++) {
        const char *prompt = loop_json_str(cc.prompts[i], "prompt");
        if (!prompt || !loop_json_str(cc.prompts[i], "prompt_id"))
            st = SRLM_ERR(SRLM_BAD_INPUT, "%s:%d: expected \"prompt_id\" and \"prompt\" strings", path, i + 1);
        if (st == SRLM_OK) st = loop_encode_user(L, prompt, &cc.reqs[i].ids, &cc.reqs[i].n_ids);
        cc.reqs[i].n_samples = c->generate.samples;
        cc.reqs[i].seed = loop_seed(L, t, LOOP_PHASE_CANDIDATES, i);
    }
    const srlm_sampling sampling = {(float)c->generate.temperature, (float)c->generate.top_p, c->generate.top_k};
    loop_gen_phase p = {name, dir, model, cc.reqs, n, c->loop.prompts_per_item, sampling,
                        c->generate.max_new_tokens, NULL, cand_record, &cc};
    if (st == SRLM_OK) st = loop_gen_run(L, &p, NULL);
    loop_requests_free(cc.reqs, n);
    srlm_records_free(cc.prompts, n);
    *seconds += now_s() - t0;
    return st;
}

/* Candidates of iteration t, all of them, in order. */
static srlm_status load_candidates(loop_ctx *L, int t, cJSON ***recs, int *n) {
    char dir[1200], path[1200];
    SRLM_CHECK(loop_path(L, dir, sizeof dir, "iter-%d/candidates", t));
    SRLM_CHECK(loop_path(L, path, sizeof path, "iter-%d/prompts/prompts.jsonl", t));
    cJSON **p;
    int n_prompts;
    SRLM_CHECK(srlm_records_load(path, &p, &n_prompts));
    srlm_records_free(p, n_prompts);
    return srlm_parts_load(dir, loop_items(n_prompts, L->cfg->loop.prompts_per_item), recs, n);
}

/* Judgements of iteration t's n_cands candidates, candidate-major, judge samples
 * in order; a count that does not match is an error naming the folder. */
static srlm_status load_judgements(loop_ctx *L, int t, int n_cands, cJSON ***recs, int *n) {
    const srlm_config *c = L->cfg;
    char dir[1200];
    SRLM_CHECK(loop_path(L, dir, sizeof dir, "iter-%d/judgements", t));
    SRLM_CHECK(srlm_parts_load(dir, loop_items(n_cands, c->loop.prompts_per_item * c->generate.samples), recs, n));
    if (*n == n_cands * c->judge.samples) return SRLM_OK;
    srlm_records_free(*recs, *n);
    *recs = NULL;
    return SRLM_ERR(SRLM_BAD_INPUT, "%s: %d judgements for %d candidates x %d samples", dir, *n, n_cands,
                    c->judge.samples);
}

/* ---- 3. judgements ---- */

typedef struct { cJSON **cands; } judge_ctx;

static srlm_status judge_record(void *ctx, int request, const srlm_gen_output *o, cJSON *rec) {
    judge_ctx *j = ctx;
    const cJSON *c = j->cands[request];
    cJSON_AddStringToObject(rec, "prompt_id", loop_json_str(c, "prompt_id"));
    cJSON_AddNumberToObject(rec, "sample", loop_json_num(c, "sample", -1));
    cJSON_AddNumberToObject(rec, "judge_sample", o->sample);
    loop_judge_fields(o, rec);
    return SRLM_OK;
}

static srlm_status phase_judgements(loop_ctx *L, int t, const char *model, double *seconds) {
    const srlm_config *c = L->cfg;
    char dir[1200], name[64];
    SRLM_CHECK(loop_path(L, dir, sizeof dir, "iter-%d/judgements", t));
    snprintf(name, sizeof name, "iter-%d/judgements", t);
    double t0 = now_s();
    judge_ctx jc = {0};
    int n = 0;
    SRLM_CHECK(load_candidates(L, t, &jc.cands, &n));
    srlm_status st = SRLM_OK;
    loop_request *reqs = calloc((size_t)(n > 0 ? n : 1), sizeof *reqs);
    if (!reqs) st = SRLM_ERR(SRLM_FAILED, "out of memory");
    for (int i = 0; i < n && st == SRLM_OK; i++)
        st = loop_judge_request(L, loop_json_str(jc.cands[i], "prompt"), loop_json_str(jc.cands[i], "response"),
                                c->judge.samples, loop_seed(L, t, LOOP_PHASE_JUDGEMENTS, i), &reqs[i]);
    const srlm_sampling sampling = {(float)c->judge.temperature, (float)c->judge.top_p, 0};
    loop_gen_phase p = {name, dir, model, reqs, n, c->loop.prompts_per_item * c->generate.samples, sampling,
                        c->judge.max_new_tokens, NULL, judge_record, &jc};
    if (st == SRLM_OK) st = loop_gen_run(L, &p, NULL);
    loop_requests_free(reqs, n);
    srlm_records_free(jc.cands, n);
    *seconds += now_s() - t0;
    return st;
}

/* ---- 4. pairs and their reference log-probs ---- */

typedef struct {
    int     cand_chosen, cand_rejected;   /* indexes into the candidates */
    double  score_chosen, score_rejected;
} pair_pick;

typedef struct {
    long   candidates, judgements, invalid, valid, pairs, top_scored;
    double score_sum, response_tokens;
    long   verdicts[4];
} judge_counts;

/* Pairs of iteration t from its candidates and judgements (every rank computes
 * the same list: it is cheap and deterministic). */
static srlm_status build_pairs(loop_ctx *L, int t, cJSON **cands, int n_cands, pair_pick **pairs, int *n_pairs,
                               judge_counts *jc) {
    const srlm_config *c = L->cfg;
    cJSON **judg;
    int n_judg;
    SRLM_CHECK(load_judgements(L, t, n_cands, &judg, &n_judg));
    srlm_status st = SRLM_OK;
    const int S = c->judge.samples;
    srlm_judged_candidate *jcs = calloc((size_t)n_cands + 1, sizeof *jcs);
    *pairs = calloc((size_t)n_cands + 1, sizeof **pairs);
    *n_pairs = 0;
    if (st == SRLM_OK && (!jcs || !*pairs)) st = SRLM_ERR(SRLM_FAILED, "out of memory");
    memset(jc, 0, sizeof *jc);
    for (int i = 0; i < n_cands && st == SRLM_OK; i++) {
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cands[i], "response_ids");
        jcs[i].sample = (int)loop_json_num(cands[i], "sample", 0);
        jcs[i].n_tokens = cJSON_GetArraySize(ids);
        jc->response_tokens += jcs[i].n_tokens;
        for (int k = 0; k < S; k++) {
            const cJSON *j = judg[i * S + k];
            const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "score");
            const char *v = loop_json_str(j, "verdict");
            jc->judgements++;
            if (cJSON_IsNumber(sc)) {
                jcs[i].n_valid++;
                jcs[i].score_sum += sc->valuedouble;
                jc->valid++;
                jc->score_sum += sc->valuedouble;
            } else {
                jc->invalid++;
                if (v && !strcmp(v, "missing")) jc->verdicts[1]++;
                else if (v && !strcmp(v, "ambiguous")) jc->verdicts[2]++;
                else jc->verdicts[3]++;
            }
        }
        if (jcs[i].n_valid > 0 && srlm_candidate_score(&jcs[i]) == SRLM_JUDGE_MAX_SCORE) jc->top_scored++;
    }
    jc->candidates = n_cands;
    /* candidates are prompt-major: one run of generate.samples per prompt */
    const int N = c->generate.samples;
    for (int p0 = 0; p0 + N <= n_cands && st == SRLM_OK; p0 += N) {
        int ch, rj;
        if (!srlm_pick_pair(jcs + p0, N, c->loop.length_control, c->loop.min_score_gap, &ch, &rj)) continue;
        pair_pick *pp = &(*pairs)[(*n_pairs)++];
        pp->cand_chosen = p0 + ch;
        pp->cand_rejected = p0 + rj;
        pp->score_chosen = srlm_candidate_score(&jcs[p0 + ch]);
        pp->score_rejected = srlm_candidate_score(&jcs[p0 + rj]);
    }
    jc->pairs = *n_pairs;
    free(jcs);
    srlm_records_free(judg, n_judg);
    return st;
}

typedef struct {
    loop_ctx           *L;
    cJSON             **cands;
    pair_pick          *pairs;
    int                 n_pairs, per_item;
    srlm_model_session *s;
    srlm_train_acts     acts;
    int                 acts_tokens;
} ref_ctx;

/* The prompt cut the way the DPO loader cuts it (dataset.h): from the left,
 * keeping the first token, until prompt + the longer response fits. 0 when the
 * pair cannot fit (skipped, by the loader too). */
static int fit_prompt(const srlm_train_config *tc, int n_prompt, int longest) {
    if (n_prompt + longest <= tc->max_seq_len) return n_prompt;
    if (tc->truncation != SRLM_TRUNC_PROMPT) return 0;
    int keep = tc->max_seq_len - longest;
    return keep >= 1 ? keep : 0;
}

static srlm_status ref_item(void *ctx, int item, srlm_text *out, long *work) {
    ref_ctx *r = ctx;
    const srlm_train_config *tc = &r->L->cfg->train.dpo;
    int first = item * r->per_item, n = r->n_pairs - first < r->per_item ? r->n_pairs - first : r->per_item;
    int *pids[64], *cids[64], *rids[64], np[64], nc[64], nr[64], keep[64];
    memset(pids, 0, sizeof pids);
    memset(cids, 0, sizeof cids);
    memset(rids, 0, sizeof rids);
    srlm_status st = SRLM_OK;
    int T = 1, B = 0;
    for (int i = 0; i < n && st == SRLM_OK; i++) {
        const pair_pick *p = &r->pairs[first + i];
        const cJSON *cc = r->cands[p->cand_chosen], *cr = r->cands[p->cand_rejected];
        st = loop_json_get_ids(cc, "prompt_ids", "candidates", &pids[i], &np[i]);
        if (st == SRLM_OK) st = loop_json_get_ids(cc, "response_ids", "candidates", &cids[i], &nc[i]);
        if (st == SRLM_OK) st = loop_json_get_ids(cr, "response_ids", "candidates", &rids[i], &nr[i]);
        if (st != SRLM_OK) break;
        int longest = nc[i] > nr[i] ? nc[i] : nr[i];
        keep[i] = fit_prompt(tc, np[i], longest);
        if (keep[i] && keep[i] + longest > T) T = keep[i] + longest;
        if (keep[i]) B += 2;
    }
    /* the kept pairs, forward in groups of at most the tokens the trainer's DPO
     * micro-batches hold (micro_batch_size pairs of max_seq_len, or
     * micro_batch_tokens), so this pass needs no more activation memory than
     * training does (and keeps one layer's, recompute: it has no backward) */
    const long long budget = srlm_train_micro_tokens(tc, 1, tc->max_seq_len);
    int kept[64], tok[64], nk = 0;
    double ref_c[64] = {0}, ref_r[64] = {0};
    for (int i = 0; i < n && st == SRLM_OK; i++)
        if (keep[i]) kept[nk] = i, tok[nk++] = 2 * keep[i] + nc[i] + nr[i];
    int *ids = NULL, *len = NULL;
    float *logp = NULL;
    if (st == SRLM_OK && B > 0) {
        ids = calloc((size_t)B * (size_t)T, sizeof *ids);
        len = calloc(2 * (size_t)B, sizeof *len); /* then each sequence's first row with a log-prob */
        logp = calloc((size_t)B * (size_t)T, sizeof *logp);
        if (!ids || !len || !logp) st = SRLM_ERR(SRLM_FAILED, "out of memory");
        *work = 0;
    }
    for (int j0 = 0, m; j0 < nk && st == SRLM_OK; j0 += m) {
        m = srlm_micro_batch_take(tok + j0, nk - j0, nk, budget);
        int Tm = 1, rows = 0;
        for (int q = 0; q < m; q++) {
            const int i = kept[j0 + q], longest = nc[i] > nr[i] ? nc[i] : nr[i];
            if (keep[i] + longest > Tm) Tm = keep[i] + longest;
            rows += tok[j0 + q];
        }
        if (rows > r->acts_tokens) { /* grown to the largest group so far */
            if (r->acts_tokens) srlm_train_acts_free(&r->acts, &r->s->model);
            r->acts_tokens = 0;
            st = srlm_train_acts_new(&r->acts, &r->s->model, rows, 1);
            if (st != SRLM_OK) break;
            r->acts_tokens = rows;
        }
        const int Bm = 2 * m;
        for (int q = 0, b = 0; q < m; q++) {
            const int i = kept[j0 + q];
            /* the first token (BOS) stays; the cut falls right after it */
            for (int k = 0; k < 2; k++, b++) {
                int *row = ids + (size_t)b * Tm, nresp = k ? nr[i] : nc[i];
                row[0] = pids[i][0];
                memcpy(row + 1, pids[i] + np[i] - (keep[i] - 1), sizeof(int) * (size_t)(keep[i] - 1));
                memcpy(row + keep[i], k ? rids[i] : cids[i], sizeof(int) * (size_t)nresp);
                memset(row + keep[i] + nresp, 0, sizeof(int) * (size_t)(Tm - keep[i] - nresp));
                len[b] = keep[i] + nresp;
                len[Bm + b] = keep[i] - 1;
            }
        }
        srlm_train_batch tb = {Bm, Tm, ids, len, 0.0f, 0, len + Bm};
        st = srlm_llama_train_forward(&r->s->model, &r->acts, &tb, logp);
        for (int q = 0, b = 0; q < m && st == SRLM_OK; q++, b += 2) {
            const int i = kept[j0 + q];
            double lc = 0, lr = 0;
            for (int k = keep[i] - 1; k < len[b] - 1; k++) lc += logp[(size_t)b * Tm + k];
            for (int k = keep[i] - 1; k < len[b + 1] - 1; k++) lr += logp[(size_t)(b + 1) * Tm + k];
            ref_c[i] = lc;
            ref_r[i] = lr;
            *work += len[b] + len[b + 1];
        }
    }
    for (int i = 0; i < n && st == SRLM_OK; i++) {
        const pair_pick *p = &r->pairs[first + i];
        const cJSON *cc = r->cands[p->cand_chosen], *cr = r->cands[p->cand_rejected];
        cJSON *rec = cJSON_CreateObject();
        cJSON_AddStringToObject(rec, "prompt_id", loop_json_str(cc, "prompt_id"));
        cJSON_AddStringToObject(rec, "prompt", loop_json_str(cc, "prompt"));
        cJSON_AddStringToObject(rec, "chosen", loop_json_str(cc, "response"));
        cJSON_AddStringToObject(rec, "rejected", loop_json_str(cr, "response"));
        cJSON_AddItemToObject(rec, "prompt_ids", loop_json_ids(pids[i], np[i]));
        cJSON_AddItemToObject(rec, "chosen_ids", loop_json_ids(cids[i], nc[i]));
        cJSON_AddItemToObject(rec, "rejected_ids", loop_json_ids(rids[i], nr[i]));
        cJSON_AddNumberToObject(rec, "score_chosen", p->score_chosen);
        cJSON_AddNumberToObject(rec, "score_rejected", p->score_rejected);
        if (keep[i]) {
            cJSON_AddNumberToObject(rec, "ref_logp_chosen", ref_c[i]);
            cJSON_AddNumberToObject(rec, "ref_logp_rejected", ref_r[i]);
        } else { /* longer than train.dpo.max_seq_len: the trainer skips it too */
            cJSON_AddNullToObject(rec, "ref_logp_chosen");
            cJSON_AddNullToObject(rec, "ref_logp_rejected");
        }
        cJSON_AddStringToObject(rec, "tokenizer_sha256", r->L->tok_sha256);
        srlm_text_add_json(out, rec);
        cJSON_Delete(rec);
    }
    for (int i = 0; i < n; i++) { free(pids[i]); free(cids[i]); free(rids[i]); }
    free(ids);
    free(len);
    free(logp);
    return st;
}

static srlm_status phase_pairs(loop_ctx *L, int t, const char *model, judge_counts *jc, double *seconds) {
    char dir[1200], name[64];
    SRLM_CHECK(loop_path(L, dir, sizeof dir, "iter-%d/pairs", t));
    snprintf(name, sizeof name, "iter-%d/pairs", t);
    double t0 = now_s();
    ref_ctx r = {.L = L, .per_item = L->cfg->loop.prompts_per_item < 32 ? L->cfg->loop.prompts_per_item : 32};
    int n_cands = 0;
    SRLM_CHECK(load_candidates(L, t, &r.cands, &n_cands));
    srlm_status st = build_pairs(L, t, r.cands, n_cands, &r.pairs, &r.n_pairs, jc);
    const int n_items = loop_items(r.n_pairs, r.per_item);
    int complete = 0;
    if (st == SRLM_OK) st = loop_phase_complete(L, dir, n_items, &complete);
    srlm_model_session s = {0};
    if (st == SRLM_OK && !complete) {
        st = srlm_model_session_open_on(&s, model, NULL, 0, L->cfg->backend.name, L->cfg->backend.dtype,
                                        L->cfg->backend.threads,
                                        L->topo ? L->topo->local_rank : 0, L->topo ? L->topo->tp_comm : NULL);
        r.s = &s;
        srlm_workqueue q = {L->topo, dir, name, n_items, ref_item, &r, L->quiet};
        if (st == SRLM_OK) st = srlm_workqueue_run(&q, NULL);
        if (r.acts_tokens) srlm_train_acts_free(&r.acts, &s.model);
        srlm_model_session_close(&s);
    }
    free(r.pairs);
    srlm_records_free(r.cands, n_cands);
    *seconds += now_s() - t0;
    return st;
}

/* ---- 5. training ---- */

static srlm_status phase_train(loop_ctx *L, int t, const char *model, const judge_counts *jc, double *seconds) {
    char next[1200], data[1200], work[1200], pdir[1200];
    SRLM_CHECK(loop_path(L, next, sizeof next, "models/M%d", t + 1));
    SRLM_CHECK(loop_path(L, data, sizeof data, "iter-%d/train-data.jsonl", t));
    SRLM_CHECK(loop_path(L, work, sizeof work, "iter-%d/train", t));
    SRLM_CHECK(loop_path(L, pdir, sizeof pdir, "iter-%d/pairs", t));
    int done = L->rank == 0 && srlm_path_exists(next);
    SRLM_CHECK(loop_bcast_int(L, &done));
    if (done) return SRLM_OK;
    double t0 = now_s();
    const int sft = L->cfg->loop.sft_on_top_scores;
    if (L->rank == 0 && !srlm_artifact_done(data)) {
        /* DPO: the pairs parts as they are; SFT variant: the candidates scored 5 */
        srlm_text text = {0};
        srlm_status st = SRLM_OK;
        cJSON **recs = NULL;
        int n = 0;
        if (!sft) {
            int per = L->cfg->loop.prompts_per_item < 32 ? L->cfg->loop.prompts_per_item : 32;
            st = srlm_parts_load(pdir, loop_items((int)jc->pairs, per), &recs, &n);
            for (int i = 0; i < n && st == SRLM_OK; i++)
                if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(recs[i], "ref_logp_chosen")))
                    srlm_text_add_json(&text, recs[i]);
        } else {
            cJSON **judg = NULL;
            int nj = 0;
            const int S = L->cfg->judge.samples;
            st = load_candidates(L, t, &recs, &n);
            if (st == SRLM_OK) st = load_judgements(L, t, n, &judg, &nj);
            for (int i = 0; i < n && st == SRLM_OK; i++) {
                int all5 = 1, any = 0;
                for (int k = 0; k < S; k++) {
                    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(judg[i * S + k], "score");
                    if (!cJSON_IsNumber(sc)) continue;
                    any = 1;
                    if (sc->valuedouble != SRLM_JUDGE_MAX_SCORE) all5 = 0;
                }
                if (any && all5) srlm_text_add_json(&text, recs[i]);
            }
            srlm_records_free(judg, nj);
        }
        srlm_records_free(recs, n);
        if (st == SRLM_OK) st = srlm_text_status(&text);
        if (st == SRLM_OK) st = srlm_artifact_write(data, text.s ? text.s : "", text.len, text.count);
        srlm_text_free(&text);
        SRLM_CHECK(st);
    }
    SRLM_CHECK(srlm_comm_barrier(L->topo ? L->topo->world : NULL));
    long count = 0;
    if (L->rank == 0) SRLM_CHECK(srlm_artifact_verify(data, &count));
    int empty = count == 0;
    SRLM_CHECK(loop_bcast_int(L, &empty));
    srlm_status st;
    if (empty) {
        /* nothing to learn from: M_{t+1} is M_t, said loudly */
        if (L->rank == 0) {
            SRLM_WARN("iteration %d built no training examples: M%d is a copy of M%d", t, t + 1, t);
            SRLM_CHECK(srlm_copy_dir(model, next));
        }
        st = srlm_comm_barrier(L->topo ? L->topo->world : NULL);
    } else {
        /* later iterations may take smaller DPO steps (loop.dpo_lr_factor) */
        srlm_train_config *tc = &L->cfg->train.dpo;
        const double lr = tc->lr, lr_min = tc->lr_min, f = pow(L->cfg->loop.dpo_lr_factor, t - 1);
        tc->lr *= f;
        tc->lr_min *= f;
        st = loop_train(L, sft, model, data, work, next);
        tc->lr = lr;
        tc->lr_min = lr_min;
    }
    *seconds += now_s() - t0;
    return st;
}

/* ---- the iteration ---- */

srlm_status loop_iteration(loop_ctx *L, int t) {
    char summary[1200], model[1200], it[32];
    SRLM_CHECK(loop_path(L, summary, sizeof summary, "iter-%d/summary.json", t));
    int done = L->rank == 0 && srlm_path_exists(summary);
    SRLM_CHECK(loop_bcast_int(L, &done));
    if (done) return SRLM_OK;
    snprintf(it, sizeof it, "M%d", t);
    SRLM_CHECK(loop_model_dir(L, it, model, sizeof model));
    if (L->rank == 0 && !L->quiet) SRLM_INFO("iteration %d: M%d -> M%d", t, t, t + 1);
    double sec[6] = {0};
    judge_counts jc;
    SRLM_CHECK(loop_write_state(L, "prompts", t));
    SRLM_CHECK(phase_prompts(L, t, &sec[0]));
    SRLM_CHECK(loop_write_state(L, "candidates", t));
    SRLM_CHECK(phase_candidates(L, t, model, &sec[1]));
    SRLM_CHECK(loop_write_state(L, "judgements", t));
    SRLM_CHECK(phase_judgements(L, t, model, &sec[2]));
    SRLM_CHECK(loop_write_state(L, "pairs", t));
    SRLM_CHECK(phase_pairs(L, t, model, &jc, &sec[3]));
    SRLM_CHECK(loop_write_state(L, "train", t));
    SRLM_CHECK(phase_train(L, t, model, &jc, &sec[4]));
    SRLM_CHECK(loop_write_state(L, "eval", t));
    double t0 = now_s();
    cJSON *next = NULL, *h2h = NULL;
    SRLM_CHECK(loop_eval_model(L, t + 1, &next));
    srlm_status st = loop_eval_h2h(L, t, &h2h);
    sec[5] = now_s() - t0;
    if (st == SRLM_OK && L->rank == 0) {
        cJSON *s = cJSON_CreateObject();
        char fpath[1200];
        cJSON *filter = NULL;
        st = loop_path(L, fpath, sizeof fpath, "iter-%d/prompts/filter.json", t);
        if (st == SRLM_OK) st = loop_read_json(fpath, &filter);
        cJSON_AddNumberToObject(s, "iteration", t);
        cJSON_AddNumberToObject(s, "prompts_generated", filter ? loop_json_num(filter, "generated", NAN) : NAN);
        cJSON_AddNumberToObject(s, "prompts_kept", filter ? loop_json_num(filter, "keep", NAN) : NAN);
        cJSON_AddNumberToObject(s, "candidates", (double)jc.candidates);
        cJSON_AddNumberToObject(s, "judgements", (double)jc.judgements);
        cJSON_AddNumberToObject(s, "judgements_invalid", (double)jc.invalid);
        cJSON *inv = cJSON_AddObjectToObject(s, "invalid_by_reason");
        cJSON_AddNumberToObject(inv, "missing", (double)jc.verdicts[1]);
        cJSON_AddNumberToObject(inv, "ambiguous", (double)jc.verdicts[2]);
        cJSON_AddNumberToObject(inv, "out_of_range", (double)jc.verdicts[3]);
        cJSON_AddNumberToObject(s, "pairs", (double)jc.pairs);
        cJSON_AddNumberToObject(s, "candidates_scored_5", (double)jc.top_scored);
        cJSON_AddNumberToObject(s, "mean_score", jc.valid ? jc.score_sum / jc.valid : NAN);
        cJSON_AddNumberToObject(s, "mean_response_tokens", jc.candidates ? jc.response_tokens / jc.candidates : NAN);
        cJSON_AddNumberToObject(s, "win_rate", h2h ? loop_json_num(h2h, "win_rate", NAN) : NAN);
        cJSON_AddNumberToObject(s, "pairwise_accuracy",
                                next ? loop_json_num(cJSON_GetObjectItemCaseSensitive(next, "reward_model"),
                                                     "pairwise_accuracy", NAN) : NAN);
        cJSON *ph = cJSON_AddObjectToObject(s, "seconds_by_phase");
        const char *names[6] = {"prompts", "candidates", "judgements", "pairs", "train", "eval"};
        double total = 0;
        for (int i = 0; i < 6; i++) { cJSON_AddNumberToObject(ph, names[i], sec[i]); total += sec[i]; }
        cJSON_AddNumberToObject(s, "seconds", total);
        if (filter) cJSON_AddItemToObject(s, "filter", filter);
        if (next) cJSON_AddItemReferenceToObject(s, "eval_next", next);
        if (h2h) cJSON_AddItemReferenceToObject(s, "head_to_head", h2h);
        char mpath[1200];
        if (st == SRLM_OK) st = loop_path(L, mpath, sizeof mpath, "iter-%d/eval/metrics.json", t);
        if (st == SRLM_OK) {
            cJSON *m = cJSON_CreateObject();
            cJSON_AddNumberToObject(m, "iteration", t);
            if (next) cJSON_AddItemReferenceToObject(m, "model", next);
            if (h2h) cJSON_AddItemReferenceToObject(m, "head_to_head", h2h);
            char mdir[1200];
            st = loop_path(L, mdir, sizeof mdir, "iter-%d/eval", t);
            if (st == SRLM_OK) st = srlm_mkdir_p(mdir);
            if (st == SRLM_OK) st = loop_write_json(L, mpath, m);
            cJSON_Delete(m);
        }
        if (st == SRLM_OK) st = loop_write_json(L, summary, s);
        cJSON_Delete(s);
    }
    cJSON_Delete(next);
    cJSON_Delete(h2h);
    SRLM_CHECK(st);
    return barrier(L);
}
