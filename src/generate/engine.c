/* The generation engine (see engine.h). One KV slot per running sequence plus
 * one slot that keeps the last prefilled prompt for cross-request prefix reuse. */
#include "generate/engine.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"

typedef struct {
    int   active;
    int   req, sample, seq;
    int   n_gen;       /* tokens generated so far */
    int  *ids;         /* (max_new_tokens of its request) */
    int   last;        /* last token, fed at the next step */
} slot_state;

typedef struct {
    int    started;    /* samples admitted */
    float *logits;     /* last prompt position (full vocab), kept while samples wait */
} req_state;

typedef struct {
    srlm_llama             *m;
    const srlm_tokenizer   *tok;
    const srlm_gen_config  *cfg;
    const srlm_gen_request *reqs;
    int                     n_reqs;
    srlm_gen_callback       cb;
    void                   *ctx;
    srlm_gen_stats         *stats;

    srlm_kv_cache   kv;        /* cfg->max_batch slots + 1 prefix slot */
    srlm_llama_acts acts;
    srlm_sampler  **samplers;  /* one per thread: rows are sampled in parallel */
    int             n_samplers;
    int            *tokens;    /* (max_batch) this step's sampled tokens */
    float          *u;         /* (max_batch) this step's draws, for a backend that samples */
    srlm_status    *row_st;
    slot_state     *slots;
    req_state      *rs;
    int             prefix_slot, prefix_len;
    int            *prefix_ids;
    float          *full;      /* (max_batch, vocab_padded) gathered logits */
    float          *gather;    /* tp > 1: allgather buffer */
    int            *idx, *step_ids, *step_slot, *step_past, *step_new;
    int             max_prompt;
} engine;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int srlm_gen_slots_for_memory(const srlm_llama *m, int max_seq, double kv_mb) {
    double per_slot = 2.0 * m->n_layers * (double)max_seq * m->n_kv_local * m->head_dim * sizeof(float);
    double n = kv_mb * 1048576.0 / per_slot - 1; /* one slot keeps the shared prefix */
    return n < 1 ? 0 : n > 1e6 ? 1000000 : (int)n;
}

/* The full-vocab logits of rows [0, B) of acts.logits into e->full, gathering
 * the vocab shards over tp. */
static srlm_status gather_logits(engine *e, int B) {
    srlm_llama *m = e->m;
    const int V = m->vocab_local;
    srlm_view rows = srlm_view_rows(e->acts.logits, 0, B);
    if (m->tp_size == 1) return m->be->ops->download(m->be, e->full, &rows);
    SRLM_CHECK(m->be->ops->download(m->be, e->full, &rows)); /* this rank's shard as scratch */
    SRLM_CHECK(srlm_comm_allgather_f32(m->tp, e->full, e->gather, (size_t)B * V));
    for (int r = 0; r < m->tp_size; r++)
        for (int b = 0; b < B; b++)
            memcpy(e->full + (size_t)b * m->vocab_padded + (size_t)r * V,
                   e->gather + ((size_t)r * B + b) * V, sizeof(float) * (size_t)V);
    return SRLM_OK;
}

/* Copy KV rows [0, n) of slot `src` into slot `dst`, every layer. */
static srlm_status copy_kv(engine *e, int src, int dst, int n) {
    srlm_llama *m = e->m;
    for (int i = 0; i < n; i++) e->idx[i] = src * e->kv.max_seq + i;
    for (int l = 0; l < m->n_layers; l++) {
        srlm_view dk = srlm_view_rows(e->kv.k[l], (int64_t)dst * e->kv.max_seq, n);
        srlm_view dv = srlm_view_rows(e->kv.v[l], (int64_t)dst * e->kv.max_seq, n);
        SRLM_CHECK(m->be->ops->copy_rows(m->be, &dk, &e->kv.k[l], e->idx, n));
        SRLM_CHECK(m->be->ops->copy_rows(m->be, &dv, &e->kv.v[l], e->idx, n));
    }
    return SRLM_OK;
}

/* Prefill request r's prompt into `slot`, leaving its last-position logits in full row 0. */
static srlm_status prefill(engine *e, int r, int slot) {
    const srlm_gen_request *q = &e->reqs[r];
    double t0 = now_s();
    int past = 0;
    if (e->cfg->min_shared_prefix > 0 && e->prefix_len > 0) {
        int k = 0;
        while (k < e->prefix_len && k < q->n_prompt && e->prefix_ids[k] == q->prompt[k]) k++;
        if (k > q->n_prompt - 1) k = q->n_prompt - 1; /* the last token must run: its logits */
        if (k >= e->cfg->min_shared_prefix) {
            SRLM_CHECK(copy_kv(e, e->prefix_slot, slot, k));
            past = k;
            e->stats->reused_tokens += k;
        }
    }
    int n_new = q->n_prompt - past;
    srlm_batch b = {1, n_new, q->prompt + past, &slot, &past, &n_new, 1};
    SRLM_CHECK(srlm_llama_forward(e->m, &e->kv, &e->acts, &b));
    e->stats->forwards++;
    e->stats->prefilled_tokens += n_new;
    SRLM_CHECK(gather_logits(e, 1));
    if (e->cfg->min_shared_prefix > 0) { /* keep this prompt for the next request */
        SRLM_CHECK(copy_kv(e, slot, e->prefix_slot, q->n_prompt));
        memcpy(e->prefix_ids, q->prompt, sizeof(int) * (size_t)q->n_prompt);
        e->prefix_len = q->n_prompt;
    }
    e->stats->prefill_s += now_s() - t0;
    return SRLM_OK;
}

/* Longest stop string in bytes, for the decode window. */
static size_t max_stop_len(const srlm_gen_request *q) {
    size_t n = 0;
    for (int i = 0; i < q->n_stop; i++) if (strlen(q->stop[i]) > n) n = strlen(q->stop[i]);
    return n;
}

/* Report and free a finished slot. */
static srlm_status finish(engine *e, slot_state *s, const char *reason) {
    const srlm_gen_request *q = &e->reqs[s->req];
    char *text = NULL;
    size_t len = 0;
    SRLM_CHECK(srlm_tokenizer_decode(e->tok, s->ids, s->n_gen, &text, &len));
    if (!strcmp(reason, "stop")) { /* cut exactly before the first stop string */
        size_t cut = len;
        for (int i = 0; i < q->n_stop; i++) {
            const char *p = q->stop[i][0] ? strstr(text, q->stop[i]) : NULL;
            if (p && (size_t)(p - text) < cut) cut = (size_t)(p - text);
        }
        len = cut;
        text[len] = '\0';
    }
    srlm_gen_output out = {s->req, s->sample, s->ids, s->n_gen, text, len, reason};
    srlm_status st = e->cb ? e->cb(&out, e->ctx) : SRLM_OK;
    free(text);
    s->active = 0;
    return st;
}

/* Append token t to slot s; finish it when it ends (sets *done). */
static srlm_status append(engine *e, slot_state *s, int t, int *done) {
    const srlm_gen_request *q = &e->reqs[s->req];
    s->ids[s->n_gen++] = t;
    s->last = t;
    e->stats->generated_tokens++;
    *done = 1;
    if (t == q->eos_id) return finish(e, s, "eos");
    if (q->n_stop > 0) {
        /* decode a window wide enough to hold any stop string (each token is >= 1 byte;
         * two more tokens so the window's dropped leading space cannot matter) */
        int w = (int)max_stop_len(q) + 2, from = s->n_gen > w ? s->n_gen - w : 0;
        char *text = NULL;
        size_t len = 0;
        SRLM_CHECK(srlm_tokenizer_decode(e->tok, s->ids + from, s->n_gen - from, &text, &len));
        int hit = 0;
        for (int i = 0; i < q->n_stop && !hit; i++) hit = q->stop[i][0] && strstr(text, q->stop[i]);
        free(text);
        if (hit) return finish(e, s, "stop");
    }
    /* a sliding window (Mistral) is the model's context: the next token would
     * come from a forward over more positions than it attends to */
    const int window = e->m->cfg.sliding_window;
    if (s->n_gen >= q->max_new_tokens || (window > 0 && q->n_prompt + s->n_gen > window))
        return finish(e, s, "length");
    *done = 0;
    return SRLM_OK;
}

static float draw(const engine *e, const slot_state *s) {
    return srlm_sample_uniform(e->reqs[s->req].seed, (uint64_t)s->sample, (uint64_t)s->n_gen);
}

static srlm_status sample_row(engine *e, srlm_sampler *sampler, const slot_state *s, const float *row,
                              int *token) {
    return srlm_sample(sampler, row, e->m->vocab_padded, &e->reqs[s->req].sampling, draw(e, s), token, NULL);
}

/* The sampling settings every running row shares, when the backend samples
 * where the logits are (the CUDA backend: no download of the logits, no
 * sampling on the host); NULL: download and sample on the host. The rows
 * are the step's first n, in step_slot order. */
static const srlm_sampling *device_sampling(const engine *e, int n) {
    if (!e->m->be->ops->sample || e->m->tp_size > 1) return NULL; /* tp: each rank holds a vocabulary shard */
    const srlm_sampling *first = &e->reqs[e->slots[e->step_slot[0]].req].sampling;
    for (int j = 1; j < n; j++) {
        const srlm_sampling *q = &e->reqs[e->slots[e->step_slot[j]].req].sampling;
        if (q->temperature != first->temperature || q->top_p != first->top_p || q->top_k != first->top_k)
            return NULL;
    }
    return first;
}

/* This step's token for each of the first n rows of the logits. */
static srlm_status sample_step(engine *e, int n) {
    const srlm_sampling *common = device_sampling(e, n);
    if (common) {
        for (int j = 0; j < n; j++) e->u[j] = draw(e, &e->slots[e->step_slot[j]]);
        srlm_view rows = srlm_view_rows(e->acts.logits, 0, n);
        srlm_status st = e->m->be->ops->sample(e->m->be, &rows, common, e->u, e->tokens);
        if (st != SRLM_OK) srlm_error_context("sampling the next token of %d running sequences", n);
        return st;
    }
    SRLM_CHECK(gather_logits(e, n));
    const int V = e->m->vocab_padded;
    /* rows are independent (each its own draw), so sample them in parallel */
#pragma omp parallel for schedule(dynamic, 1)
    for (int j = 0; j < n; j++)
        e->row_st[j] = sample_row(e, e->samplers[omp_get_thread_num()], &e->slots[e->step_slot[j]],
                                  e->full + (size_t)j * V, &e->tokens[j]);
    for (int j = 0; j < n; j++)
        if (e->row_st[j] != SRLM_OK) /* again on this thread: messages are per thread */
            SRLM_CHECK(sample_row(e, e->samplers[0], &e->slots[e->step_slot[j]], e->full + (size_t)j * V,
                                  &e->tokens[j]));
    return SRLM_OK;
}

/* A prompt longer than the model's sliding window (Mistral) cannot be
 * continued within it. Its samples end at once, with no tokens, as "length"
 * (and a warning), rather than failing the whole call: one long prompt in a
 * work item must not stop the rest of the item. */
static int past_window(const engine *e, int r) {
    return e->m->cfg.sliding_window > 0 && e->reqs[r].n_prompt > e->m->cfg.sliding_window;
}

static srlm_status end_past_window(engine *e, int r, int k) {
    if (k == 0)
        SRLM_WARN("generation: request %d: %d prompt tokens, more than the model's sliding_window of %d: "
                  "no tokens generated (finish_reason length)", r, e->reqs[r].n_prompt, e->m->cfg.sliding_window);
    static const int no_ids[1];
    char empty[1] = "";
    srlm_gen_output out = {r, k, no_ids, 0, empty, 0, "length"};
    return e->cb ? e->cb(&out, e->ctx) : SRLM_OK;
}

/* Start sequence `seq` (request r, sample k) in a free slot. */
static srlm_status admit(engine *e, int slot, int r, int k, int seq) {
    const srlm_gen_request *q = &e->reqs[r];
    req_state *rq = &e->rs[r];
    slot_state *s = &e->slots[slot];
    *s = (slot_state){1, r, k, seq, 0, s->ids, 0};
    e->stats->prompt_tokens += q->n_prompt;
    const float *row = NULL;
    int sibling = -1;
    if (e->cfg->share_prefix && rq->logits)
        for (int i = 0; i < e->cfg->max_batch && sibling < 0; i++)
            if (i != slot && e->slots[i].active && e->slots[i].req == r) sibling = i;
    if (sibling >= 0) { /* the prompt's KV and last logits, computed once */
        SRLM_CHECK(copy_kv(e, sibling, slot, q->n_prompt));
        e->stats->reused_tokens += q->n_prompt;
        row = rq->logits;
    } else {
        SRLM_CHECK(prefill(e, r, slot));
        row = e->full;
        if (e->cfg->share_prefix && q->n_samples > rq->started + 1) {
            if (!rq->logits) rq->logits = malloc(sizeof(float) * (size_t)e->m->vocab_padded);
            if (!rq->logits) return SRLM_ERR(SRLM_FAILED, "out of memory");
            memcpy(rq->logits, e->full, sizeof(float) * (size_t)e->m->vocab_padded);
        }
    }
    rq->started++;
    int t, done;
    double t0 = now_s();
    SRLM_CHECK(sample_row(e, e->samplers[0], s, row, &t));
    e->stats->sample_s += now_s() - t0;
    if (rq->started == q->n_samples) { free(rq->logits); rq->logits = NULL; }
    return append(e, s, t, &done);
}

static srlm_status check_requests(const engine *e) {
    for (int r = 0; r < e->n_reqs; r++) {
        const srlm_gen_request *q = &e->reqs[r];
        if (q->n_prompt < 1 || q->n_samples < 1 || q->max_new_tokens < 1)
            return SRLM_ERR(SRLM_BAD_INPUT, "request %d: needs at least one prompt token, one sample and one "
                            "new token (found %d, %d, %d)", r, q->n_prompt, q->n_samples, q->max_new_tokens);
        if (q->n_prompt + q->max_new_tokens > e->cfg->max_seq && !past_window(e, r))
            return SRLM_ERR(SRLM_BAD_INPUT, "request %d: %d prompt tokens + %d new tokens do not fit the %d "
                            "positions per sequence of the KV cache (raise generate.kv_cache_mb or lower "
                            "max_new_tokens)", r, q->n_prompt, q->max_new_tokens, e->cfg->max_seq);
        for (int i = 0; i < q->n_prompt; i++)
            if (q->prompt[i] < 0 || q->prompt[i] >= e->m->cfg.vocab_size)
                return SRLM_ERR(SRLM_BAD_INPUT, "request %d: prompt token %d at position %d is outside the "
                                "vocabulary [0, %d)", r, q->prompt[i], i, e->m->cfg.vocab_size);
    }
    return SRLM_OK;
}

static void engine_free(engine *e) {
    srlm_llama_acts_free(&e->acts, e->m->be);
    srlm_kv_cache_free(&e->kv, e->m->be);
    if (e->samplers) for (int i = 0; i < e->n_samplers; i++) srlm_sampler_free(e->samplers[i]);
    free(e->samplers);
    free(e->tokens);
    free(e->u);
    free(e->row_st);
    if (e->slots) for (int i = 0; i < e->cfg->max_batch; i++) free(e->slots[i].ids);
    if (e->rs) for (int r = 0; r < e->n_reqs; r++) free(e->rs[r].logits);
    free(e->slots);
    free(e->rs);
    free(e->prefix_ids);
    free(e->full);
    free(e->gather);
    free(e->idx);
}

srlm_status srlm_generate(srlm_llama *m, const srlm_tokenizer *tok, const srlm_gen_config *cfg,
                          const srlm_gen_request *reqs, int n_reqs, srlm_gen_callback cb, void *ctx,
                          srlm_gen_stats *stats) {
    srlm_gen_stats local = {0};
    engine e = {.m = m, .tok = tok, .cfg = cfg, .reqs = reqs, .n_reqs = n_reqs, .cb = cb, .ctx = ctx,
                .stats = stats ? stats : &local};
    memset(e.stats, 0, sizeof *e.stats);
    if (cfg->max_batch < 1 || cfg->max_seq < 2)
        return SRLM_ERR(SRLM_BAD_INPUT, "generation needs at least one KV slot of 2 positions (got %d x %d)",
                        cfg->max_batch, cfg->max_seq);
    SRLM_CHECK(check_requests(&e));
    int max_new = 1;
    for (int r = 0; r < n_reqs; r++) {
        if (reqs[r].n_prompt > e.max_prompt && !past_window(&e, r)) e.max_prompt = reqs[r].n_prompt;
        if (reqs[r].max_new_tokens > max_new) max_new = reqs[r].max_new_tokens;
    }
    const int B = cfg->max_batch, V = m->vocab_padded;
    srlm_status st;
    e.prefix_slot = B;
    SRLM_CHECK_GOTO(srlm_kv_cache_new(&e.kv, m, B + 1, cfg->max_seq), st, done);
    SRLM_CHECK_GOTO(srlm_llama_acts_new(&e.acts, m, e.max_prompt > B ? e.max_prompt : B, B), st, done);
    e.n_samplers = omp_get_max_threads();
    e.samplers = calloc((size_t)e.n_samplers, sizeof *e.samplers);
    e.tokens = malloc(sizeof(int) * (size_t)B);
    e.u = malloc(sizeof(float) * (size_t)B);
    e.row_st = malloc(sizeof(srlm_status) * (size_t)B);
    if (!e.samplers || !e.tokens || !e.u || !e.row_st) { st = SRLM_ERR(SRLM_FAILED, "out of memory"); goto done; }
    for (int i = 0; i < e.n_samplers; i++) SRLM_CHECK_GOTO(srlm_sampler_new(&e.samplers[i], V), st, done);
    e.slots = calloc((size_t)B, sizeof *e.slots);
    e.rs = calloc((size_t)(n_reqs > 0 ? n_reqs : 1), sizeof *e.rs);
    e.prefix_ids = malloc(sizeof(int) * (size_t)cfg->max_seq);
    e.full = malloc(sizeof(float) * (size_t)B * V);
    e.gather = m->tp_size > 1 ? malloc(sizeof(float) * (size_t)B * V) : NULL;
    e.idx = malloc(sizeof(int) * ((size_t)cfg->max_seq + 5 * (size_t)B));
    if (!e.slots || !e.rs || !e.prefix_ids || !e.full || (m->tp_size > 1 && !e.gather) || !e.idx) {
        st = SRLM_ERR(SRLM_FAILED, "out of memory for the generation engine (%d slots)", B);
        goto done;
    }
    e.step_ids = e.idx + cfg->max_seq;
    e.step_slot = e.step_ids + B;
    e.step_past = e.step_slot + B;
    e.step_new = e.step_past + B;
    for (int i = 0; i < B; i++) {
        e.slots[i].ids = malloc(sizeof(int) * (size_t)max_new);
        if (!e.slots[i].ids) { st = SRLM_ERR(SRLM_FAILED, "out of memory"); goto done; }
    }

    int next_req = 0, next_sample = 0, seq = 0;
    for (;;) {
        /* fill every free slot from the queue, in (request, sample) order */
        for (int i = 0; i < B && next_req < n_reqs; i++) {
            while (!e.slots[i].active && next_req < n_reqs) {
                if (past_window(&e, next_req)) SRLM_CHECK_GOTO(end_past_window(&e, next_req, next_sample), st, done);
                else SRLM_CHECK_GOTO(admit(&e, i, next_req, next_sample, seq++), st, done);
                if (++next_sample == reqs[next_req].n_samples) { next_req++; next_sample = 0; }
            }
        }
        /* one decode step over the running sequences, in slot order */
        int n = 0;
        for (int i = 0; i < B; i++) {
            slot_state *s = &e.slots[i];
            if (!s->active) continue;
            e.step_ids[n] = s->last;
            e.step_slot[n] = i;
            e.step_past[n] = reqs[s->req].n_prompt + s->n_gen - 1;
            e.step_new[n] = 1;
            n++;
        }
        if (n == 0) break;
        if (cfg->poll) SRLM_CHECK_GOTO(cfg->poll(cfg->poll_ctx), st, done);
        double t0 = now_s();
        srlm_batch b = {n, 1, e.step_ids, e.step_slot, e.step_past, e.step_new, 1};
        SRLM_CHECK_GOTO(srlm_llama_forward(m, &e.kv, &e.acts, &b), st, done);
        e.stats->forwards++;
        e.stats->decode_s += now_s() - t0;
        t0 = now_s(); /* with the logits' download, where the host samples */
        SRLM_CHECK_GOTO(sample_step(&e, n), st, done);
        e.stats->sample_s += now_s() - t0;
        for (int j = 0; j < n; j++) {
            int fin;
            SRLM_CHECK_GOTO(append(&e, &e.slots[e.step_slot[j]], e.tokens[j], &fin), st, done);
        }
    }
    st = SRLM_OK;
done:
    e.stats->steps_recorded = e.acts.steps_recorded;
    e.stats->steps_replayed = e.acts.steps_replayed;
    engine_free(&e);
    return st;
}
