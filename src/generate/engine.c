/* The generation engine (see engine.h). One KV slot per running sequence plus
 * one slot that keeps the last prefilled prompt for cross-request prefix reuse.
 * The sequences admitted together (the free slots, filled from the queue)
 * have their prompts prefilled together: a few forwards of many rows rather
 * than one forward per prompt, so a GPU reads the weights and launches its
 * kernels once for the lot, and the GEMMs see more rows. The rows are packed
 * (no padding but in the attention's layout, srlm_llama_prefill). */
#include "generate/engine.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"

typedef struct {
    int   active;
    int   req, sample;
    int   n_gen;       /* tokens generated so far */
    int  *ids;         /* (max_new_tokens of its request) */
    int   last;        /* last token, fed at the next step */
    long  round;       /* the admission round that filled it */
} slot_state;

typedef struct {
    int    started;    /* samples that have drawn their first token */
    float *logits;     /* last prompt position (full vocab), kept while samples wait */
} req_state;

/* A sequence taking a free slot in this round of admissions. */
typedef struct {
    int slot, req;
    int prefill;       /* 1: its prompt runs through the model; 0: copied from src_slot */
    int src_slot;      /* !prefill: a slot that holds the same prompt's KV */
    int past;          /* prefill: leading rows reused from the prefix slot */
} admission;

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
    int             pad_slot;  /* a decode step's padding rows write here (-1: none) */
    long            queued;    /* samples not yet admitted (or ended past the window) */
    int            *prefix_ids;
    float          *full;      /* (max_batch, vocab_padded) gathered logits */
    float          *gather;    /* tp > 1: allgather buffer */
    int            *idx, *step_ids, *step_slot, *step_past, *step_new;
    int             max_prompt;
    admission      *adm;       /* (max_batch) this round's admissions */
    int             n_adm;
    long            round;     /* admission rounds so far */
    int            *pf_rows;   /* (3 * max_batch) admissions that prefill; their stages; a stage by length */
    int            *pf_ids;    /* (prefill_rows) a prefill batch's ids, one prompt after another */
    int             prefill_tokens; /* prompts x longest new rows that share a prefill forward, at most */
    int             prefill_rows;   /* what the buffers hold: that, or the longest prompt alone */
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

/* ---- admissions: free slots filled from the queue, prompts prefilled together ---- */

/* Tokens that prompt q and ids[0, n) share at the start. */
static int shared_start(const srlm_gen_request *q, const int *ids, int n) {
    int k = 0;
    while (k < n && k < q->n_prompt && ids[k] == q->prompt[k]) k++;
    return k;
}

enum { MAX_STAGES = 3 }; /* prefill forwards in a chain of reuse, at most (bounds a round's forwards) */

/* Where admission rows[j] reuses leading KV rows from, if anywhere
 * (min_shared_prefix): the slot holding the longest start of its prompt
 * among the prefix slot, the running sequences (their prompts' rows) and the
 * prompts of this round before it, which then run in an earlier stage. Ties
 * go to the earliest stage. Sets past, src_slot and stage[j]. */
static void choose_source(engine *e, const int *rows, int j, int *stage) {
    admission *a = &e->adm[rows[j]];
    const srlm_gen_request *q = &e->reqs[a->req];
    int best = 0, src = -1, st = 0;
    if (e->cfg->min_shared_prefix > 0) {
        if (e->prefix_len > 0) best = shared_start(q, e->prefix_ids, e->prefix_len), src = e->prefix_slot;
        for (int s = 0; s < e->cfg->max_batch; s++) {
            const slot_state *ss = &e->slots[s];
            if (!ss->active || ss->round == e->round) continue; /* this round's have no KV yet */
            const srlm_gen_request *o = &e->reqs[ss->req];
            int k = shared_start(q, o->prompt, o->n_prompt);
            if (k > best) best = k, src = s;
        }
        for (int i = 0; i < j; i++) {
            if (stage[i] + 1 >= MAX_STAGES) continue;
            const srlm_gen_request *o = &e->reqs[e->adm[rows[i]].req];
            int k = shared_start(q, o->prompt, o->n_prompt);
            if (k > best || (k == best && src >= 0 && stage[i] + 1 < st))
                best = k, src = e->adm[rows[i]].slot, st = stage[i] + 1;
        }
    }
    if (best > q->n_prompt - 1) best = q->n_prompt - 1; /* the last token runs: its logits are the first token's */
    if (best < e->cfg->min_shared_prefix || best < 1) best = 0, src = -1, st = 0;
    a->past = best;
    a->src_slot = src;
    stage[j] = st;
}

/* Keep admission a's prompt in the prefix slot for the prompts after it. */
static srlm_status keep_prefix(engine *e, const admission *a) {
    const srlm_gen_request *q = &e->reqs[a->req];
    SRLM_CHECK(copy_kv(e, a->slot, e->prefix_slot, q->n_prompt));
    memcpy(e->prefix_ids, q->prompt, sizeof(int) * (size_t)q->n_prompt);
    e->prefix_len = q->n_prompt;
    return SRLM_OK;
}

/* Admission a's first token, drawn from `row` (its prompt's last logits). */
static srlm_status first_token(engine *e, const admission *a, const float *row) {
    const srlm_gen_request *q = &e->reqs[a->req];
    req_state *rq = &e->rs[a->req];
    slot_state *s = &e->slots[a->slot];
    if (a->prefill && e->cfg->share_prefix && q->n_samples > rq->started + 1) { /* for its siblings */
        if (!rq->logits) rq->logits = malloc(sizeof(float) * (size_t)e->m->vocab_padded);
        if (!rq->logits) return SRLM_ERR(SRLM_FAILED, "out of memory for a prompt's logits");
        memcpy(rq->logits, row, sizeof(float) * (size_t)e->m->vocab_padded);
    }
    int t, done;
    double t0 = now_s();
    SRLM_CHECK(sample_row(e, e->samplers[0], s, row, &t));
    e->stats->sample_s += now_s() - t0;
    if (++rq->started == q->n_samples) { free(rq->logits); rq->logits = NULL; }
    return append(e, s, t, &done);
}

/* One prefill forward over admissions rows[0, n) (their prompts one after
 * another, srlm_llama_prefill), then each one's first token. */
static srlm_status prefill_batch(engine *e, const int *rows, int n) {
    int T = 0, real = 0;
    for (int j = 0; j < n; j++) {
        const admission *a = &e->adm[rows[j]];
        const srlm_gen_request *q = &e->reqs[a->req];
        if (a->past > 0) {
            SRLM_CHECK(copy_kv(e, a->src_slot, a->slot, a->past));
            e->stats->reused_tokens += a->past;
        }
        int n_new = q->n_prompt - a->past;
        memcpy(e->pf_ids + real, q->prompt + a->past, sizeof(int) * (size_t)n_new);
        if (n_new > T) T = n_new;
        e->step_slot[j] = a->slot;
        e->step_past[j] = a->past;
        e->step_new[j] = n_new;
        real += n_new;
    }
    srlm_batch b = {n, T, e->pf_ids, e->step_slot, e->step_past, e->step_new, 1};
    SRLM_CHECK(srlm_llama_prefill(e->m, &e->kv, &e->acts, &b));
    e->stats->forwards++;
    e->stats->prefills++;
    e->stats->prefilled_tokens += real;
    SRLM_CHECK(gather_logits(e, n));
    for (int j = 0; j < n; j++)
        SRLM_CHECK(first_token(e, &e->adm[rows[j]], e->full + (size_t)j * e->m->vocab_padded));
    return SRLM_OK;
}

static int new_rows(const engine *e, int i) {
    const admission *a = &e->adm[i];
    return e->reqs[a->req].n_prompt - a->past;
}

/* Prefill admissions rows[0, n) (in admission order): stage by stage (a
 * prompt that reuses another's rows runs after it), each stage in as few
 * forwards as fit prefill_tokens rows padded (the attention's layout; a
 * longer prompt runs alone), longest first, so that prompts of like length
 * share one. */
static srlm_status prefill_all(engine *e, const int *rows, int n) {
    double t0 = now_s();
    int *stage = e->pf_rows + n, *order = stage + n; /* pf_rows has room for 3 x max_batch */
    for (int j = 0; j < n; j++) choose_source(e, rows, j, stage);
    for (int st = 0; st < MAX_STAGES; st++) {
        int m = 0;
        for (int j = 0; j < n; j++) { /* insertion sort by new rows, longest first, stable */
            if (stage[j] != st) continue;
            int i = m++;
            while (i > 0 && new_rows(e, order[i - 1]) < new_rows(e, rows[j])) { order[i] = order[i - 1]; i--; }
            order[i] = rows[j];
        }
        for (int j = 0; j < m;) {
            int T = new_rows(e, order[j]), cnt = 1;
            while (j + cnt < m && (cnt + 1) * T <= e->prefill_tokens) cnt++;
            SRLM_CHECK(prefill_batch(e, order + j, cnt));
            j += cnt;
        }
    }
    if (e->cfg->min_shared_prefix > 0 && n > 0) SRLM_CHECK(keep_prefix(e, &e->adm[rows[n - 1]]));
    e->stats->prefill_s += now_s() - t0;
    return SRLM_OK;
}

/* Whether to admit queued samples now. A prefill forward costs a backend
 * that replays recorded decode steps (a GPU) several decode steps of host
 * time, so there admissions wait until an eighth of the batch is free
 * (min_admit overrides): one forward for several prompts, at the price of a
 * few idle slots. Never more than the queue holds; always when nothing runs. */
static int admit_now(const engine *e) {
    int free = 0;
    for (int i = 0; i < e->cfg->max_batch; i++) free += !e->slots[i].active;
    if (free == 0) return 0;
    if (free == e->cfg->max_batch) return 1;
    long want = e->cfg->min_admit > 0 ? e->cfg->min_admit : e->pad_slot >= 0 ? e->cfg->max_batch / 8 : 1;
    if (want > e->queued) want = e->queued;
    return free >= want;
}

/* Assign queued samples to the free slots, in (request, sample) order, and
 * start them: prompts that must run through the model are prefilled
 * together; a sample whose prompt another slot holds copies that KV
 * (share_prefix). Sets *n_admitted. */
static srlm_status admit_round(engine *e, int *next_req, int *next_sample, int *n_admitted) {
    int na = 0, np = 0;
    e->round++;
    for (int i = 0; i < e->cfg->max_batch && *next_req < e->n_reqs; i++) {
        if (e->slots[i].active) continue;
        while (*next_req < e->n_reqs && past_window(e, *next_req)) {
            SRLM_CHECK(end_past_window(e, *next_req, *next_sample));
            e->queued--;
            if (++*next_sample == e->reqs[*next_req].n_samples) { ++*next_req; *next_sample = 0; }
        }
        if (*next_req == e->n_reqs) break;
        const int r = *next_req;
        admission *a = &e->adm[na];
        *a = (admission){i, r, 1, -1, 0};
        if (e->cfg->share_prefix) {
            for (int j = 0; j < na && a->prefill; j++) /* an earlier admission of this round */
                if (e->adm[j].req == r) {
                    a->prefill = 0;
                    a->src_slot = e->adm[j].prefill ? e->adm[j].slot : e->adm[j].src_slot;
                }
            for (int j = 0; j < e->cfg->max_batch && a->prefill && e->rs[r].logits; j++)
                if (e->slots[j].active && e->slots[j].req == r) { a->prefill = 0; a->src_slot = j; }
        }
        slot_state *s = &e->slots[i];
        *s = (slot_state){1, r, *next_sample, 0, s->ids, 0, e->round};
        e->stats->prompt_tokens += e->reqs[r].n_prompt;
        if (a->prefill) e->pf_rows[np++] = na;
        na++;
        e->queued--;
        if (++*next_sample == e->reqs[r].n_samples) { ++*next_req; *next_sample = 0; }
    }
    *n_admitted = e->n_adm = na;
    if (np > 0) SRLM_CHECK(prefill_all(e, e->pf_rows, np));
    for (int j = 0; j < na; j++) { /* then the copies: their source's KV is in place */
        const admission *a = &e->adm[j];
        if (a->prefill) continue;
        const srlm_gen_request *q = &e->reqs[a->req];
        SRLM_CHECK(copy_kv(e, a->src_slot, a->slot, q->n_prompt));
        e->stats->reused_tokens += q->n_prompt;
        SRLM_CHECK(first_token(e, a, e->rs[a->req].logits));
    }
    return SRLM_OK;
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

/* Where the backend replays recorded decode steps (tp 1), a step's batch is
 * padded to one of a few sizes (1, 2, 4, then multiples of 8, at most
 * max_batch), so that a batch that shrinks as its sequences end replays a few
 * recordings rather than making one per size (each costs a step run op by op
 * and a recording). The padding rows' logits are never read. Padded also
 * when recording is off (SRLM_RECORD_STEPS=0, or after failed recordings):
 * the row count picks the decode attention's split and cuBLAS's kernels, so
 * the same batch padded otherwise would give other bits, and other tokens. */
static int padded_batch(const engine *e, int n) {
    if (e->pad_slot < 0) return n;
    int b = n <= 2 ? n : n <= 4 ? 4 : (n + 7) / 8 * 8;
    return b < e->cfg->max_batch ? b : e->cfg->max_batch;
}

/* Prompts x longest new rows of one prefill forward: the configured budget,
 * no more than one round's prompts could use. A prompt longer than it runs
 * alone. */
static int prefill_budget(const engine *e) {
    int64_t want = e->cfg->prefill_tokens > 0 ? e->cfg->prefill_tokens : SRLM_GEN_PREFILL_TOKENS;
    int64_t most = (int64_t)e->cfg->max_batch * e->max_prompt;
    return (int)(want < most ? want : most);
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
    free(e->adm);
    free(e->pf_ids);
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
        e.queued += reqs[r].n_samples;
        if (reqs[r].n_prompt > e.max_prompt && !past_window(&e, r)) e.max_prompt = reqs[r].n_prompt;
        if (reqs[r].max_new_tokens > max_new) max_new = reqs[r].max_new_tokens;
    }
    const int B = cfg->max_batch, V = m->vocab_padded;
    srlm_status st;
    e.prefix_slot = B;
    e.pad_slot = m->be->ops->step_replay && m->tp_size == 1 ? B + 1 : -1;
    SRLM_CHECK_GOTO(srlm_kv_cache_new(&e.kv, m, e.pad_slot >= 0 ? B + 2 : B + 1, cfg->max_seq), st, done);
    e.prefill_tokens = prefill_budget(&e);
    e.prefill_rows = e.prefill_tokens > e.max_prompt ? e.prefill_tokens : e.max_prompt;
    if (e.prefill_rows < 1) e.prefill_rows = 1; /* every prompt past the sliding window */
    SRLM_CHECK_GOTO(srlm_llama_acts_new(&e.acts, m, e.prefill_rows > B ? e.prefill_rows : B, B), st, done);
    SRLM_CHECK_GOTO(srlm_llama_acts_reserve_padded(&e.acts, m, e.prefill_rows), st, done);
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
    e.idx = malloc(sizeof(int) * ((size_t)cfg->max_seq + 7 * (size_t)B));
    e.adm = malloc(sizeof *e.adm * (size_t)B);
    e.pf_ids = malloc(sizeof(int) * (size_t)e.prefill_rows);
    if (!e.slots || !e.rs || !e.prefix_ids || !e.full || (m->tp_size > 1 && !e.gather) || !e.idx || !e.adm ||
        !e.pf_ids) {
        st = SRLM_ERR(SRLM_FAILED, "out of memory for the generation engine (%d slots)", B);
        goto done;
    }
    e.step_ids = e.idx + cfg->max_seq;
    e.step_slot = e.step_ids + B;
    e.step_past = e.step_slot + B;
    e.step_new = e.step_past + B;
    e.pf_rows = e.step_new + B;
    for (int i = 0; i < B; i++) {
        e.slots[i].ids = malloc(sizeof(int) * (size_t)max_new);
        if (!e.slots[i].ids) { st = SRLM_ERR(SRLM_FAILED, "out of memory"); goto done; }
    }

    int next_req = 0, next_sample = 0;
    for (;;) {
        /* fill every free slot from the queue (again where a first token
         * ended its sequence at once) */
        for (int n_adm = 1; n_adm > 0 && next_req < n_reqs && admit_now(&e);)
            SRLM_CHECK_GOTO(admit_round(&e, &next_req, &next_sample, &n_adm), st, done);
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
        const int nb = padded_batch(&e, n);
        for (int j = n; j < nb; j++) { /* token 0 at positions of their own in the spare slot */
            e.step_ids[j] = 0;
            e.step_slot[j] = e.pad_slot;
            e.step_past[j] = (j - n) % cfg->max_seq;
            e.step_new[j] = 1;
        }
        e.stats->decode_padding += nb - n;
        srlm_batch b = {nb, 1, e.step_ids, e.step_slot, e.step_past, e.step_new, 1};
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
