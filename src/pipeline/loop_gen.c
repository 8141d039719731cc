/* Generation phases: requests cut into work items of per_item requests, each
 * item generated as its own batch (so its output does not depend on which group
 * ran it), records sorted by (request, sample) before the part is written. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "io/chat.h"
#include "io/fsutil.h"
#include "model/model_session.h"
#include "pipeline/loop_internal.h"

uint64_t loop_seed(const loop_ctx *L, int iteration, int phase, long index) {
    uint64_t k = srlm_rng_key((uint64_t)L->cfg->run.seed, (uint64_t)iteration);
    return srlm_rng_key(srlm_rng_key(k, (uint64_t)phase), (uint64_t)index);
}

srlm_status loop_path(const loop_ctx *L, char *dst, size_t cap, const char *fmt, ...) {
    char rel[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof rel) return SRLM_ERR(SRLM_BAD_INPUT, "%s/...: path too long", L->dir);
    return srlm_path_join(dst, cap, L->dir, rel);
}

srlm_status loop_bcast_int(const loop_ctx *L, int *v) {
    int32_t x = *v;
    SRLM_CHECK(srlm_comm_broadcast(L->topo ? L->topo->world : NULL, &x, sizeof x, 0));
    *v = x;
    return SRLM_OK;
}

int loop_items(int n, int per_item) { return n <= 0 ? 0 : (n + per_item - 1) / per_item; }

void loop_requests_free(loop_request *r, int n) {
    for (int i = 0; r && i < n; i++) free(r[i].ids);
    free(r);
}

srlm_status loop_encode_user(const loop_ctx *L, const char *user, int **ids, int *n) {
    srlm_chat_turn turn = {user, NULL};
    return srlm_chat_encode(L->tok, NULL, &turn, 1, ids, n);
}

const char *loop_json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

double loop_json_num(const cJSON *o, const char *key, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

cJSON *loop_json_ids(const int *ids, int n) { return cJSON_CreateIntArray(ids, n); }

srlm_status loop_json_get_ids(const cJSON *o, const char *key, const char *where, int **ids, int *n) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(a)) return SRLM_ERR(SRLM_BAD_INPUT, "%s: expected \"%s\" as an array of token ids", where, key);
    int len = cJSON_GetArraySize(a);
    *ids = malloc(sizeof(int) * (size_t)(len > 0 ? len : 1));
    if (!*ids) return SRLM_ERR(SRLM_FAILED, "out of memory");
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1e9) {
            free(*ids);
            *ids = NULL;
            return SRLM_ERR(SRLM_BAD_INPUT, "%s: \"%s\"[%d] is not a token id", where, key, i);
        }
        (*ids)[i++] = e->valueint;
    }
    *n = len;
    return SRLM_OK;
}

srlm_status loop_phase_complete(loop_ctx *L, const char *dir, int n_items, int *complete) {
    int all = 1;
    if (L->rank == 0) {
        /* checksums too: a corrupted part makes the phase incomplete, and the
         * work queue redoes that item (its output is the same by construction) */
        for (int i = 0; i < n_items && all; i++) {
            char path[1200];
            SRLM_CHECK(srlm_part_path(path, sizeof path, dir, i));
            all = srlm_artifact_done(path) && srlm_artifact_verify(path, NULL) == SRLM_OK;
        }
    }
    SRLM_CHECK(loop_bcast_int(L, &all));
    *complete = all;
    return SRLM_OK;
}

/* ---- one item ---- */

typedef struct {
    loop_ctx              *L;
    const loop_gen_phase  *p;
    srlm_model_session    *s;
    srlm_gen_request      *greqs;
    cJSON                **recs;    /* (request in item, sample) -> record */
    int                   *offset;  /* first record of each request in the item */
    int                    first;
} gen_item;

static srlm_status on_output(const srlm_gen_output *o, void *ctx) {
    gen_item *g = ctx;
    cJSON *rec = cJSON_CreateObject();
    if (!rec) return SRLM_ERR(SRLM_FAILED, "out of memory");
    srlm_status st = g->p->record(g->p->ctx, g->first + o->request, o, rec);
    if (st != SRLM_OK) { cJSON_Delete(rec); return st; }
    g->recs[g->offset[o->request] + o->sample] = rec;
    return SRLM_OK;
}

static srlm_status run_item(void *ctx, int item, srlm_text *out, long *work) {
    gen_item *g = ctx;
    const loop_gen_phase *p = g->p;
    g->first = item * p->per_item;
    int n = p->n_reqs - g->first < p->per_item ? p->n_reqs - g->first : p->per_item;
    int total = 0, longest = 1;
    const char *stops[1] = {p->stop};
    for (int i = 0; i < n; i++) {
        const loop_request *r = &p->reqs[g->first + i];
        g->offset[i] = total;
        total += r->n_samples;
        if (r->n_ids > longest) longest = r->n_ids;
        g->greqs[i] = (srlm_gen_request){r->ids, r->n_ids, r->n_samples, p->sampling, p->max_new_tokens,
                                         srlm_tokenizer_eos(g->L->tok), stops, p->stop ? 1 : 0, r->seed};
    }
    g->recs = calloc((size_t)(total > 0 ? total : 1), sizeof *g->recs);
    if (!g->recs) return SRLM_ERR(SRLM_FAILED, "out of memory");
    srlm_gen_config gc = {total < 64 ? total : 64, longest + p->max_new_tokens, 1, 16, srlm_workqueue_poll, NULL, 0, 0};
    int fit = srlm_gen_slots_for_memory(&g->s->model, gc.max_seq, g->L->cfg->generate.kv_cache_mb);
    srlm_status st = SRLM_OK;
    if (fit < 1)
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s: generate.kv_cache_mb = %d holds no sequence of %d positions "
                      "(raise it, or lower the max_new_tokens of this phase)", p->name,
                      g->L->cfg->generate.kv_cache_mb, gc.max_seq);
    if (fit < gc.max_batch) gc.max_batch = fit;
    srlm_gen_stats stats;
    if (st == SRLM_OK && total > 0) st = srlm_generate(&g->s->model, g->L->tok, &gc, g->greqs, n, on_output, g, &stats);
    if (st == SRLM_OK && total > 0) *work = stats.generated_tokens;
    for (int i = 0; i < total; i++) {
        if (st == SRLM_OK && !g->recs[i]) st = SRLM_ERR(SRLM_FAILED, "%s: item %d lost an output", p->name, item);
        if (st == SRLM_OK) srlm_text_add_json(out, g->recs[i]);
        cJSON_Delete(g->recs[i]);
    }
    free(g->recs);
    g->recs = NULL;
    return st;
}

srlm_status loop_gen_run(loop_ctx *L, const loop_gen_phase *p, srlm_workqueue_stats *stats) {
    const int n_items = loop_items(p->n_reqs, p->per_item);
    int complete;
    SRLM_CHECK(loop_phase_complete(L, p->dir, n_items, &complete));
    if (complete) {
        if (stats) *stats = (srlm_workqueue_stats){.items_total = n_items, .items_resumed = n_items};
        return SRLM_OK;
    }
    srlm_model_session s;
    SRLM_CHECK(srlm_model_session_open_on(&s, p->model_dir, NULL, 0, L->cfg->backend.name,
                                          L->cfg->backend.dtype, L->cfg->backend.threads, L->topo ? L->topo->local_rank : 0,
                                          L->topo ? L->topo->tp_comm : NULL));
    srlm_status st = SRLM_OK;
    if (srlm_tokenizer_vocab_size(L->tok) > s.model.cfg.vocab_size)
        st = SRLM_ERR(SRLM_BAD_INPUT, "%s: the run's tokenizer (%s) has %d pieces but the model in %s has %d "
                      "embeddings", p->name, L->tok_path, srlm_tokenizer_vocab_size(L->tok), p->model_dir,
                      s.model.cfg.vocab_size);
    gen_item g = {.L = L, .p = p, .s = &s};
    g.greqs = calloc((size_t)p->per_item, sizeof *g.greqs);
    g.offset = calloc((size_t)p->per_item, sizeof *g.offset);
    if (st == SRLM_OK && (!g.greqs || !g.offset)) st = SRLM_ERR(SRLM_FAILED, "out of memory");
    if (st == SRLM_OK) {
        if (!L->quiet && L->rank == 0)
            SRLM_INFO("%s: %d requests in %d items, model %s", p->name, p->n_reqs, n_items, p->model_dir);
        srlm_workqueue q = {L->topo, p->dir, p->name, n_items, run_item, &g, L->quiet};
        st = srlm_workqueue_run(&q, stats);
    }
    free(g.greqs);
    free(g.offset);
    srlm_model_session_close(&s);
    return st;
}
