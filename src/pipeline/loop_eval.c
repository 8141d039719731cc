/* Evaluation (DESIGN.md "Contracts / Evaluation definitions"): per model M_k its
 * answers to the evaluation prompts (greedy, one each) and its quality as a
 * judge on the held-out human-ranked replies; per iteration the head-to-head of
 * M_{t+1} against M_t, judged by a fixed model (eval.judge_model). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "io/fsutil.h"
#include "pipeline/eval_metrics.h"
#include "pipeline/loop_internal.h"

static srlm_status answer_record(void *ctx, int request, const srlm_gen_output *o, cJSON *rec) {
    cJSON **prompts = ctx;
    char *text = strndup(o->text, o->text_len);
    cJSON_AddStringToObject(rec, "prompt_id", loop_json_str(prompts[request], "prompt_id"));
    cJSON_AddStringToObject(rec, "prompt", loop_json_str(prompts[request], "prompt"));
    cJSON_AddStringToObject(rec, "response", text ? text : "");
    cJSON_AddItemToObject(rec, "response_ids", loop_json_ids(o->ids, o->n_ids));
    cJSON_AddStringToObject(rec, "finish_reason", o->finish_reason);
    free(text);
    return text ? SRLM_OK : SRLM_ERR(SRLM_FAILED, "out of memory");
}

/* The evaluation prompts: eval.prompts, else the held-out groups' prompts. */
static srlm_status eval_prompts(loop_ctx *L, cJSON ***recs, int *n, const char **from) {
    *recs = NULL;
    *n = 0;
    *from = *L->cfg->eval.prompts ? L->cfg->eval.prompts : L->heldout_path;
    if (!**from) return SRLM_OK;
    SRLM_CHECK(srlm_jsonl_load_all(*from, recs, n));
    for (int i = 0; i < *n; i++)
        if (!loop_json_str((*recs)[i], "prompt") || !loop_json_str((*recs)[i], "prompt_id")) {
            srlm_records_free(*recs, *n);
            *recs = NULL;
            return SRLM_ERR(SRLM_BAD_INPUT, "%s:%d: expected \"prompt_id\" and \"prompt\" strings", *from, i + 1);
        }
    return SRLM_OK;
}

static srlm_status answers(loop_ctx *L, int k, const char *model, cJSON *out) {
    cJSON **prompts;
    int n;
    const char *from;
    SRLM_CHECK(eval_prompts(L, &prompts, &n, &from));
    if (n == 0) return SRLM_OK;
    char dir[1200], name[64];
    SRLM_CHECK(loop_path(L, dir, sizeof dir, "eval/M%d/answers", k));
    snprintf(name, sizeof name, "eval/M%d/answers", k);
    loop_request *reqs = calloc((size_t)n, sizeof *reqs);
    srlm_status st = reqs ? SRLM_OK : SRLM_ERR(SRLM_FAILED, "out of memory");
    for (int i = 0; i < n && st == SRLM_OK; i++) {
        st = loop_encode_user(L, loop_json_str(prompts[i], "prompt"), &reqs[i].ids, &reqs[i].n_ids);
        reqs[i].n_samples = 1;
        reqs[i].seed = loop_seed(L, 0, LOOP_PHASE_EVAL_ANSWERS, i);
    }
    const srlm_sampling greedy = {0.0f, 1.0f, 0};
    loop_gen_phase p = {name, dir, model, reqs, n, L->cfg->loop.prompts_per_item, greedy,
                        L->cfg->generate.max_new_tokens, NULL, answer_record, prompts};
    if (st == SRLM_OK) st = loop_gen_run(L, &p, NULL);
    if (st == SRLM_OK && L->rank == 0) {
        cJSON **a;
        int na;
        st = srlm_parts_load(dir, loop_items(n, L->cfg->loop.prompts_per_item), &a, &na);
        double tokens = 0;
        for (int i = 0; i < na && st == SRLM_OK; i++)
            tokens += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(a[i], "response_ids"));
        if (st == SRLM_OK) {
            cJSON *o = cJSON_AddObjectToObject(out, "answers");
            cJSON_AddStringToObject(o, "prompts", from);
            cJSON_AddNumberToObject(o, "n", na);
            cJSON_AddNumberToObject(o, "mean_response_tokens", na ? tokens / na : NAN);
        }
        srlm_records_free(a, na);
    }
    loop_requests_free(reqs, n);
    srlm_records_free(prompts, n);
    return st;
}

/* ---- the judge against human rankings ---- */

static cJSON *num_or_null(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

typedef struct { cJSON **groups; loop_reply_ref *refs; } rm_ctx;

static srlm_status rm_record(void *ctx, int request, const srlm_gen_output *o, cJSON *rec) {
    rm_ctx *c = ctx;
    const loop_reply_ref *r = &c->refs[request];
    cJSON_AddStringToObject(rec, "prompt_id", loop_json_str(c->groups[r->group], "prompt_id"));
    cJSON_AddNumberToObject(rec, "reply", r->reply);
    cJSON_AddNumberToObject(rec, "human_rank", r->rank);
    cJSON_AddNumberToObject(rec, "judge_sample", o->sample);
    loop_judge_fields(o, rec);
    return SRLM_OK;
}

void loop_judged_groups_free(loop_judged_groups *g) {
    srlm_records_free(g->groups, g->n_groups);
    srlm_records_free(g->judg, g->n_judg);
    free(g->refs);
    memset(g, 0, sizeof *g);
}

srlm_status loop_judge_groups(loop_ctx *L, const char *groups_path, const char *dir, const char *name,
                              const char *model, int phase, loop_judged_groups *out) {
    memset(out, 0, sizeof *out);
    SRLM_CHECK(srlm_jsonl_load_all(groups_path, &out->groups, &out->n_groups));
    int n = 0;
    srlm_status st = SRLM_OK;
    for (int g = 0; g < out->n_groups && st == SRLM_OK; g++) {
        const cJSON *rep = cJSON_GetObjectItemCaseSensitive(out->groups[g], "replies");
        if (!loop_json_str(out->groups[g], "prompt") || !loop_json_str(out->groups[g], "prompt_id") || !cJSON_IsArray(rep))
            st = SRLM_ERR(SRLM_BAD_INPUT, "%s:%d: expected \"prompt_id\", \"prompt\" and \"replies\": [{text, rank}]",
                          groups_path, g + 1);
        n += cJSON_GetArraySize(rep);
    }
    out->refs = calloc((size_t)n + 1, sizeof *out->refs);
    loop_request *reqs = calloc((size_t)n + 1, sizeof *reqs);
    if (st == SRLM_OK && (!out->refs || !reqs)) st = SRLM_ERR(SRLM_FAILED, "out of memory");
    int i = 0;
    for (int g = 0; g < out->n_groups && st == SRLM_OK; g++) {
        const cJSON *r;
        int j = 0;
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(out->groups[g], "replies")) {
            const char *text = loop_json_str(r, "text");
            double rank = loop_json_num(r, "rank", -1);
            if (!text || rank < 0 || rank != floor(rank)) {
                st = SRLM_ERR(SRLM_BAD_INPUT, "%s:%d: reply %d: expected {\"text\": string, \"rank\": integer >= 0}",
                              groups_path, g + 1, j);
                break;
            }
            out->refs[i] = (loop_reply_ref){g, j, (int)rank};
            st = loop_judge_request(L, loop_json_str(out->groups[g], "prompt"), text, L->cfg->judge.samples,
                                    loop_seed(L, 0, phase, i), &reqs[i]);
            if (st != SRLM_OK) break;
            i++;
            j++;
        }
    }
    out->n = n;
    const int per = L->cfg->loop.prompts_per_item * L->cfg->generate.samples;
    const srlm_sampling sampling = {(float)L->cfg->judge.temperature, (float)L->cfg->judge.top_p, 0};
    rm_ctx c = {out->groups, out->refs};
    loop_gen_phase p = {name, dir, model, reqs, n, per, sampling, L->cfg->judge.max_new_tokens, NULL, rm_record, &c};
    if (st == SRLM_OK) st = loop_gen_run(L, &p, NULL);
    if (st == SRLM_OK && L->rank == 0) {
        st = srlm_parts_load(dir, loop_items(n, per), &out->judg, &out->n_judg);
        if (st == SRLM_OK && out->n_judg != n * L->cfg->judge.samples)
            st = SRLM_ERR(SRLM_BAD_INPUT, "%s: %d judgements, expected %d", dir, out->n_judg, n * L->cfg->judge.samples);
    }
    loop_requests_free(reqs, n);
    if (st != SRLM_OK) loop_judged_groups_free(out);
    return st;
}

static srlm_status reward_model(loop_ctx *L, int k, const char *model, cJSON *out) {
    if (!*L->heldout_path) return SRLM_OK;
    char dir[1200], name[64];
    SRLM_CHECK(loop_path(L, dir, sizeof dir, "eval/M%d/judge", k));
    snprintf(name, sizeof name, "eval/M%d/judge", k);
    loop_judged_groups jg;
    SRLM_CHECK(loop_judge_groups(L, L->heldout_path, dir, name, model, LOOP_PHASE_EVAL_RM, &jg));
    srlm_status st = SRLM_OK;
    if (L->rank == 0) {
        const int S = L->cfg->judge.samples, n = jg.n;
        double *score = calloc((size_t)n + 1, sizeof *score);
        int *rank = calloc((size_t)n + 1, sizeof *rank);
        srlm_ranked_group *rg = calloc((size_t)jg.n_groups + 1, sizeof *rg);
        long invalid = 0;
        if (!score || !rank || !rg) st = SRLM_ERR(SRLM_FAILED, "out of memory");
        for (int a = 0; a < n && st == SRLM_OK; a++) {
            double sum = 0;
            int valid = 0;
            for (int s = 0; s < S; s++) {
                const cJSON *sc = cJSON_GetObjectItemCaseSensitive(jg.judg[a * S + s], "score");
                if (cJSON_IsNumber(sc)) { sum += sc->valuedouble; valid++; }
                else invalid++;
            }
            score[a] = valid ? sum / valid : NAN;
            rank[a] = jg.refs[a].rank;
            /* replies are group-major: a group's replies are consecutive */
            srlm_ranked_group *G = &rg[jg.refs[a].group];
            if (!G->score) { G->score = score + a; G->human_rank = rank + a; }
            G->n_replies++;
        }
        srlm_rm_metrics m;
        if (st == SRLM_OK) st = srlm_rm_metrics_compute(rg, jg.n_groups, &m);
        if (st == SRLM_OK) {
            cJSON *o = cJSON_AddObjectToObject(out, "reward_model");
            cJSON_AddStringToObject(o, "heldout", L->heldout_path);
            cJSON_AddItemToObject(o, "pairwise_accuracy", num_or_null(m.pairwise_accuracy));
            cJSON_AddItemToObject(o, "five_best", num_or_null(m.five_best));
            cJSON_AddItemToObject(o, "exact_match", num_or_null(m.exact_match));
            cJSON_AddItemToObject(o, "spearman", num_or_null(m.spearman));
            cJSON_AddItemToObject(o, "kendall_tau_b", num_or_null(m.kendall_tau_b));
            cJSON_AddItemToObject(o, "tie_rate", num_or_null(m.tie_rate));
            cJSON_AddNumberToObject(o, "pairs", (double)m.pairs);
            cJSON_AddNumberToObject(o, "groups", (double)m.groups);
            cJSON_AddNumberToObject(o, "groups_all_tied", (double)m.groups_all_tied);
            cJSON_AddNumberToObject(o, "groups_too_small", (double)m.groups_too_small);
            cJSON_AddNumberToObject(o, "replies_dropped", (double)m.replies_dropped);
            cJSON_AddNumberToObject(o, "judgements_invalid", (double)invalid);
        }
        free(score);
        free(rank);
        free(rg);
    }
    loop_judged_groups_free(&jg);
    return st;
}

srlm_status loop_eval_model(loop_ctx *L, int k, cJSON **metrics) {
    char path[1200], model[1200], name[16];
    *metrics = NULL;
    SRLM_CHECK(loop_path(L, path, sizeof path, "eval/M%d/metrics.json", k));
    int done = L->rank == 0 && srlm_path_exists(path);
    SRLM_CHECK(loop_bcast_int(L, &done));
    if (done) return L->rank == 0 ? loop_read_json(path, metrics) : SRLM_OK;
    snprintf(name, sizeof name, "M%d", k);
    SRLM_CHECK(loop_model_dir(L, name, model, sizeof model));
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "model", name);
    srlm_status st = answers(L, k, model, m);
    if (st == SRLM_OK) st = reward_model(L, k, model, m);
    if (st == SRLM_OK && L->rank == 0) {
        char dir[1200];
        st = loop_path(L, dir, sizeof dir, "eval/M%d", k);
        if (st == SRLM_OK) st = srlm_mkdir_p(dir);
        if (st == SRLM_OK) st = loop_write_json(L, path, m);
    }
    if (st == SRLM_OK) st = srlm_comm_barrier(L->topo ? L->topo->world : NULL);
    if (st != SRLM_OK || L->rank != 0) { cJSON_Delete(m); return st; }
    *metrics = m;
    return SRLM_OK;
}

/* ---- head-to-head ---- */

typedef struct { cJSON **old, **new_; } h2h_ctx;

static srlm_status h2h_record(void *ctx, int request, const srlm_gen_output *o, cJSON *rec) {
    h2h_ctx *c = ctx;
    const cJSON *a = (request % 2 ? c->new_ : c->old)[request / 2];
    cJSON_AddStringToObject(rec, "prompt_id", loop_json_str(a, "prompt_id"));
    cJSON_AddStringToObject(rec, "side", request % 2 ? "new" : "old");
    cJSON_AddNumberToObject(rec, "judge_sample", o->sample);
    loop_judge_fields(o, rec);
    return SRLM_OK;
}

srlm_status loop_eval_h2h(loop_ctx *L, int t, cJSON **metrics) {
    char path[1200], jdir[1200], dir[1200], name[64], od[1200], nd[1200];
    *metrics = NULL;
    SRLM_CHECK(loop_path(L, path, sizeof path, "iter-%d/eval/head_to_head.json", t));
    int done = L->rank == 0 && srlm_path_exists(path);
    SRLM_CHECK(loop_bcast_int(L, &done));
    if (done) return L->rank == 0 ? loop_read_json(path, metrics) : SRLM_OK;
    cJSON **prompts;
    int n;
    const char *from;
    SRLM_CHECK(eval_prompts(L, &prompts, &n, &from));
    srlm_records_free(prompts, n);
    if (n == 0) return SRLM_OK;
    SRLM_CHECK(loop_model_dir(L, L->cfg->eval.judge_model, jdir, sizeof jdir));
    SRLM_CHECK(loop_path(L, dir, sizeof dir, "iter-%d/eval/head_to_head", t));
    SRLM_CHECK(loop_path(L, od, sizeof od, "eval/M%d/answers", t));
    SRLM_CHECK(loop_path(L, nd, sizeof nd, "eval/M%d/answers", t + 1));
    snprintf(name, sizeof name, "iter-%d/eval/head_to_head", t);
    h2h_ctx c = {0};
    int n_old = 0, n_new = 0;
    const int items = loop_items(n, L->cfg->loop.prompts_per_item), S = L->cfg->judge.samples;
    srlm_status st = srlm_parts_load(od, items, &c.old, &n_old);
    if (st == SRLM_OK) st = srlm_parts_load(nd, items, &c.new_, &n_new);
    if (st == SRLM_OK && (n_old != n || n_new != n))
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s, %s: %d and %d answers for %d prompts", od, nd, n_old, n_new, n);
    loop_request *reqs = calloc(2 * (size_t)n, sizeof *reqs);
    if (st == SRLM_OK && !reqs) st = SRLM_ERR(SRLM_FAILED, "out of memory");
    for (int i = 0; i < 2 * n && st == SRLM_OK; i++) {
        const cJSON *a = (i % 2 ? c.new_ : c.old)[i / 2];
        st = loop_judge_request(L, loop_json_str(a, "prompt"), loop_json_str(a, "response"), S,
                                loop_seed(L, t, LOOP_PHASE_EVAL_H2H, i), &reqs[i]);
    }
    const srlm_sampling sampling = {(float)L->cfg->judge.temperature, (float)L->cfg->judge.top_p, 0};
    const int per = 2 * L->cfg->loop.prompts_per_item;
    loop_gen_phase p = {name, dir, jdir, reqs, 2 * n, per, sampling, L->cfg->judge.max_new_tokens, NULL, h2h_record, &c};
    if (st == SRLM_OK) st = loop_gen_run(L, &p, NULL);
    if (st == SRLM_OK && L->rank == 0) {
        cJSON **j;
        int nj;
        st = srlm_parts_load(dir, loop_items(2 * n, per), &j, &nj);
        long wins = 0, ties = 0, losses = 0, dropped = 0;
        for (int i = 0; i < n && st == SRLM_OK && nj == 2 * n * S; i++) {
            double mean[2];
            int ok = 1;
            for (int side = 0; side < 2; side++) {
                double sum = 0;
                int valid = 0;
                for (int s = 0; s < S; s++) {
                    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j[(2 * i + side) * S + s], "score");
                    if (cJSON_IsNumber(sc)) { sum += sc->valuedouble; valid++; }
                }
                if (!valid) ok = 0;
                mean[side] = valid ? sum / valid : 0;
            }
            if (!ok) dropped++;
            else if (mean[1] > mean[0]) wins++;
            else if (mean[1] < mean[0]) losses++;
            else ties++;
        }
        long judged = wins + ties + losses;
        cJSON *m = cJSON_CreateObject();
        char older[16], newer[16];
        snprintf(older, sizeof older, "M%d", t);
        snprintf(newer, sizeof newer, "M%d", t + 1);
        cJSON_AddStringToObject(m, "new", newer);
        cJSON_AddStringToObject(m, "old", older);
        cJSON_AddStringToObject(m, "judge_model", L->cfg->eval.judge_model);
        cJSON_AddItemToObject(m, "win_rate", num_or_null(judged ? (wins + 0.5 * ties) / judged : NAN));
        cJSON_AddNumberToObject(m, "wins", (double)wins);
        cJSON_AddNumberToObject(m, "ties", (double)ties);
        cJSON_AddNumberToObject(m, "losses", (double)losses);
        cJSON_AddNumberToObject(m, "dropped_no_valid_judgement", (double)dropped);
        if (st == SRLM_OK) st = loop_write_json(L, path, m);
        if (st == SRLM_OK) *metrics = m;
        else cJSON_Delete(m);
        srlm_records_free(j, nj);
    }
    loop_requests_free(reqs, 2 * n);
    srlm_records_free(c.old, n_old);
    srlm_records_free(c.new_, n_new);
    if (st == SRLM_OK) st = srlm_comm_barrier(L->topo ? L->topo->world : NULL);
    return st;
}
