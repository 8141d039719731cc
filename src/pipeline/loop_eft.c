/* EFT built by the pipeline (DESIGN.md "The algorithm"): the SFT baseline judges
 * every reply of the ranked groups; groups whose score order agrees with the
 * human order give (judge prompt, judgement) SFT examples, the most common
 * score downsampled (pipeline/eft.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "io/fsutil.h"
#include "pipeline/eft.h"
#include "pipeline/loop_internal.h"
#include "pipeline/oasst.h"

srlm_status loop_build_eft(loop_ctx *L, const char *judge_dir, char *out, size_t cap) {
    char dir[1200], path[1200];
    SRLM_CHECK(loop_path(L, dir, sizeof dir, "eft/judgements"));
    SRLM_CHECK(loop_path(L, path, sizeof path, "eft/eft.jsonl"));
    snprintf(out, cap, "%s", path);
    int done = L->rank == 0 && srlm_artifact_done(path);
    SRLM_CHECK(loop_bcast_int(L, &done));
    if (done) return SRLM_OK;
    loop_judged_groups jg;
    SRLM_CHECK(loop_judge_groups(L, L->eft_groups_path, dir, "eft/judgements", judge_dir, LOOP_PHASE_EFT, &jg));
    srlm_status st = SRLM_OK;
    if (L->rank == 0) {
        const int S = L->cfg->judge.samples;
        srlm_eft_group *g = calloc((size_t)jg.n_groups + 1, sizeof *g);
        int *ranks = calloc((size_t)jg.n + 1, sizeof *ranks), *ns = calloc((size_t)jg.n + 1, sizeof *ns);
        int *scores = calloc((size_t)jg.n * S + 1, sizeof *scores);
        const int **rows = calloc((size_t)jg.n + 1, sizeof *rows);
        if (!g || !ranks || !ns || !scores || !rows) st = SRLM_ERR(SRLM_FAILED, "out of memory");
        for (int a = 0; a < jg.n && st == SRLM_OK; a++) {
            ranks[a] = jg.refs[a].rank;
            ns[a] = S;
            rows[a] = scores + (size_t)a * S;
            for (int s = 0; s < S; s++) {
                const cJSON *sc = cJSON_GetObjectItemCaseSensitive(jg.judg[a * S + s], "score");
                scores[(size_t)a * S + s] = cJSON_IsNumber(sc) ? sc->valueint : -1;
            }
            srlm_eft_group *G = &g[jg.refs[a].group];
            if (!G->human_rank) {
                G->human_rank = ranks + a;
                G->n_samples = ns + a;
                G->scores = rows + a;
                G->key = srlm_oasst_prompt_hash(0, loop_json_str(jg.groups[jg.refs[a].group], "prompt_id"));
            }
            G->n_replies++;
        }
        srlm_eft_pick *picks = NULL;
        long n_picks = 0;
        srlm_eft_summary sum;
        if (st == SRLM_OK) st = srlm_eft_select(g, jg.n_groups, (uint64_t)L->cfg->run.seed, 1, &picks, &n_picks, &sum);
        srlm_text text = {0};
        /* first reply index of each group, to find a pick's judgement */
        int *first = calloc((size_t)jg.n_groups + 1, sizeof *first);
        if (st == SRLM_OK && !first) st = SRLM_ERR(SRLM_FAILED, "out of memory");
        for (int a = jg.n - 1; a >= 0 && st == SRLM_OK; a--) first[jg.refs[a].group] = a;
        for (long i = 0; i < n_picks && st == SRLM_OK; i++) {
            const srlm_eft_pick *p = &picks[i];
            const cJSON *grp = jg.groups[p->group];
            int a = first[p->group] + p->reply;
            const cJSON *reply = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(grp, "replies"), p->reply);
            char *prompt = NULL;
            st = srlm_judge_render(&L->judge, loop_json_str(grp, "prompt"), loop_json_str(reply, "text"), &prompt);
            if (st != SRLM_OK) break;
            cJSON *r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "prompt_id", loop_json_str(grp, "prompt_id"));
            cJSON_AddStringToObject(r, "prompt", prompt);
            cJSON_AddStringToObject(r, "response", loop_json_str(jg.judg[a * S + p->sample], "text"));
            cJSON_AddNumberToObject(r, "score", p->score);
            srlm_text_add_json(&text, r);
            cJSON_Delete(r);
            free(prompt);
        }
        if (st == SRLM_OK) st = srlm_text_status(&text);
        if (st == SRLM_OK) {
            cJSON *s = cJSON_CreateObject();
            cJSON_AddNumberToObject(s, "groups_seen", (double)sum.groups_seen);
            cJSON_AddNumberToObject(s, "groups_kept", (double)sum.groups_kept);
            cJSON_AddNumberToObject(s, "groups_missing_judgement", (double)sum.groups_missing);
            cJSON_AddNumberToObject(s, "groups_disagree", (double)sum.groups_disagree);
            cJSON_AddNumberToObject(s, "groups_too_few", (double)sum.groups_too_few);
            cJSON_AddNumberToObject(s, "examples_before_downsampling", (double)sum.examples_before);
            cJSON_AddNumberToObject(s, "examples", (double)sum.examples_after);
            cJSON_AddNumberToObject(s, "downsampled_score", sum.downsampled_score);
            char spath[1200];
            st = loop_path(L, spath, sizeof spath, "eft/summary.json");
            if (st == SRLM_OK) st = loop_write_json(L, spath, s);
            cJSON_Delete(s);
            if (!L->quiet)
                SRLM_INFO("eft: %ld of %ld groups agree with the human ranking: %ld examples (%ld before "
                          "downsampling)", sum.groups_kept, sum.groups_seen, sum.examples_after, sum.examples_before);
        }
        if (st == SRLM_OK) st = srlm_artifact_write(path, text.s ? text.s : "", text.len, text.count);
        srlm_text_free(&text);
        free(first);
        free(picks);
        free(g);
        free(ranks);
        free(ns);
        free(scores);
        free(rows);
    }
    loop_judged_groups_free(&jg);
    SRLM_CHECK(st);
    return srlm_comm_barrier(L->topo ? L->topo->world : NULL);
}
