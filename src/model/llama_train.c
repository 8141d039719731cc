/* Training forward and backward for Llama on the backend ops table.
 *
 * The batch's sequences are packed: their real tokens one after the other, no
 * padding rows, so every GEMM and elementwise op runs on sum(len) rows instead
 * of B x T (an estimated ~28% of the demo's padded SFT rows were padding).
 * Callers still see the padded layout; only this file knows the packing. Each
 * layer's attention is one call of the inference op over the packed rows,
 * the sequences given as its packed sequences (srlm_attn_shape's seg_off:
 * each attends within itself), one launch on a GPU whatever the lengths. With
 * recomputation on, only each layer's input is kept and the layer's forward is
 * run again just before its backward; the same ops on the same inputs give the
 * same bits, so gradients are identical with it on or off. */
#include "model/llama_train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

enum { SITE_ATTN = 0, SITE_MLP = 1 };

static uint64_t dropout_key(const srlm_train_batch *b, int layer, int site) {
    return srlm_rng_key(srlm_rng_key(b->dropout_key, (uint64_t)layer), (uint64_t)site);
}

srlm_status srlm_train_acts_new(srlm_train_acts *a, const srlm_llama *m, int max_tokens,
                                int recompute) {
    return srlm_train_acts_new_chunked(a, m, max_tokens, recompute, max_tokens);
}

srlm_status srlm_train_acts_new_chunked(srlm_train_acts *a, const srlm_llama *m, int max_tokens, int recompute,
                                        int logits_rows) {
    memset(a, 0, sizeof *a);
    if (logits_rows < 1 || logits_rows > max_tokens) logits_rows = max_tokens;
    const int64_t N = max_tokens, D = m->dim, L = m->n_layers;
    const int64_t qd = (int64_t)m->n_heads_local * m->head_dim;
    const int64_t kvd = (int64_t)m->n_kv_local * m->head_dim, F = m->ffn_local;
    const int64_t sets = recompute ? 1 : L;
    const int64_t nh = m->n_heads_local;
    const int64_t per_layer = N * (4 * D + 2 * qd + 2 * kvd + 3 * F);
    int64_t total = sets * per_layer + (recompute ? L * N * D : 0) + N * (2 * D) +
                    (int64_t)logits_rows * m->vocab_local + N * (3 * D + 2 * qd + 2 * kvd + 3 * F);
    a->max_tokens = max_tokens;
    a->recompute = recompute;
    a->logits_rows = logits_rows;
    a->layer = calloc((size_t)sets, sizeof *a->layer);
    a->x_in = calloc((size_t)L, sizeof *a->x_in);
    a->mx = malloc(sizeof(float) * (size_t)N * 3);
    a->pos = malloc(sizeof(int) * ((size_t)N * 7 + 1));
    if (!a->layer || !a->x_in || !a->mx || !a->pos) {
        srlm_train_acts_free(a, m);
        return SRLM_ERR(SRLM_FAILED, "out of memory for training activation tables");
    }
    a->se = a->mx + N;
    a->logp = a->mx + 2 * N;
    a->targets = a->pos + N;
    a->ids = a->pos + 2 * N;
    a->row = a->pos + 3 * N;
    a->off = a->pos + 4 * N;
    a->sel = a->pos + 5 * N + 1;
    a->inv = a->pos + 6 * N + 1;
    srlm_status st = m->be->ops->alloc(m->be, &a->mem, m->be->dtype, 1, total, "training activations");
    if (st == SRLM_OK)
        st = m->be->ops->alloc(m->be, &a->lse_mem, SRLM_F32, 1, sets * N * nh, "attention log-sum-exps");
    if (st != SRLM_OK) { srlm_train_acts_free(a, m); return st; }
    int64_t off = 0;
#define CARVE(field, c) (field = srlm_view_carve(a->mem, off, N, (c)), off += N * (c))
    for (int64_t s = 0; s < sets; s++) {
        srlm_layer_acts *la = &a->layer[s];
        CARVE(la->x_in, D); CARVE(la->xn1, D); CARVE(la->x_mid, D); CARVE(la->xn2, D);
        CARVE(la->qkv, qd + 2 * kvd); CARVE(la->att, qd);
        la->q = srlm_view_cols(la->qkv, 0, qd);
        la->k = srlm_view_cols(la->qkv, qd, kvd);
        la->v = srlm_view_cols(la->qkv, qd + kvd, kvd);
        CARVE(la->gu, 2 * F); CARVE(la->h, F);
        la->gate = srlm_view_cols(la->gu, 0, F);
        la->up = srlm_view_cols(la->gu, F, F);
    }
    for (int64_t l = 0; l < L; l++) {
        if (recompute) CARVE(a->x_in[l], D);
        else a->x_in[l] = a->layer[l].x_in;
    }
    CARVE(a->x_final, D); CARVE(a->xn_final, D);
    a->logits = srlm_view_carve(a->mem, off, logits_rows, m->vocab_local);
    off += (int64_t)logits_rows * m->vocab_local;
    CARVE(a->dx, D); CARVE(a->dtmp, D); CARVE(a->dxn, D);
    CARVE(a->dqkv, qd + 2 * kvd); CARVE(a->datt, qd);
    a->dq = srlm_view_cols(a->dqkv, 0, qd);
    a->dk = srlm_view_cols(a->dqkv, qd, kvd);
    a->dv = srlm_view_cols(a->dqkv, qd + kvd, kvd);
    CARVE(a->dh, F); CARVE(a->dgu, 2 * F);
#undef CARVE
    a->dgate = srlm_view_cols(a->dgu, 0, F);
    a->dup = srlm_view_cols(a->dgu, F, F);
    for (int64_t s = 0; s < sets; s++) a->layer[s].lse = srlm_view_carve(a->lse_mem, s * N * nh, N, nh);
    return SRLM_OK;
}

void srlm_train_acts_free(srlm_train_acts *a, const srlm_llama *m) {
    if (a->mem.data) m->be->ops->free(m->be, &a->mem);
    if (a->lse_mem.data) m->be->ops->free(m->be, &a->lse_mem);
    free(a->layer);
    free(a->x_in);
    free(a->mx);
    free(a->pos);
    memset(a, 0, sizeof *a);
}

/* Row views of the first N rows of every buffer of a layer set. */
static srlm_layer_acts layer_rows(const srlm_layer_acts *la, int64_t N) {
    srlm_layer_acts r = *la;
    srlm_view *v[] = {&r.x_in, &r.xn1, &r.x_mid, &r.xn2, &r.qkv, &r.q, &r.att, &r.k, &r.v, &r.gu, &r.gate, &r.up, &r.h,
                      &r.lse};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) *v[i] = srlm_view_rows(*v[i], 0, N);
    return r;
}

/* One attention call over the packed rows: a single cache of n_rows rows
 * (slot 0), the sequences at rows off[b] .. off[b + 1] - 1 as the shape's
 * packed sequences, each attending within itself. */
static srlm_attn_shape attention_shape(const srlm_llama *m, const srlm_train_acts *a, const srlm_train_batch *b) {
    srlm_attn_shape as = {1, a->n_rows, m->n_heads_local, m->n_kv_local, m->head_dim, a->n_rows,
                          &a->zero, &a->zero, &a->n_rows, b->B, a->off};
    return as;
}

static srlm_status attention_forward(srlm_llama *m, const srlm_train_acts *a, srlm_layer_acts *la,
                                     const srlm_train_batch *b) {
    const srlm_attn_shape as = attention_shape(m, a, b);
    return m->be->ops->attention(m->be, &la->att, &la->q, &la->k, &la->v, &as, &la->lse);
}

static srlm_status attention_backward(srlm_llama *m, const srlm_train_acts *a, const srlm_layer_acts *la,
                                      srlm_view *dq, srlm_view *dk, srlm_view *dv, const srlm_view *datt,
                                      const srlm_train_batch *b) {
    const srlm_attn_shape as = attention_shape(m, a, b);
    return m->be->ops->attention_backward(m->be, dq, dk, dv, datt, &la->q, &la->k, &la->v, &as, &la->att,
                                          &la->lse);
}

/* One layer forward from la->x_in into x_out; `proj` is (N, D) scratch. */
static srlm_status layer_forward(srlm_llama *m, int l, srlm_layer_acts *la, srlm_view *x_out,
                                 srlm_view *proj, const srlm_train_acts *a, const srlm_train_batch *b) {
    const int *pos = a->pos;
    const srlm_backend_ops *op = m->be->ops;
    srlm_backend *be = m->be;
    const srlm_llama_layer *ly = &m->layers[l];
    const float eps = (float)m->cfg.rms_norm_eps, theta = (float)m->cfg.rope_theta;
    SRLM_CHECK(op->rmsnorm(be, &la->xn1, &la->x_in, &ly->attn_norm, eps));
    srlm_view w_qkv, w_gu;
    SRLM_CHECK(srlm_llama_qkv_weight(ly, &w_qkv));
    SRLM_CHECK(srlm_llama_gate_up_weight(ly, &w_gu));
    SRLM_CHECK(op->matmul(be, &la->qkv, &la->xn1, &w_qkv, 0));
    /* q and k are adjacent columns of qkv: one rope call over both */
    srlm_view qk = srlm_view_cols(la->qkv, 0, la->q.cols + la->k.cols);
    SRLM_CHECK(op->rope(be, &qk, pos, m->n_heads_local + m->n_kv_local, m->head_dim, theta));
    SRLM_CHECK(attention_forward(m, a, la, b));
    SRLM_CHECK(op->matmul(be, proj, &la->att, &ly->wo, 0));
    SRLM_CHECK(srlm_llama_allreduce_view(m, m->tp, proj));
    SRLM_CHECK(op->dropout(be, proj, b->dropout, dropout_key(b, l, SITE_ATTN)));
    SRLM_CHECK(op->copy(be, &la->x_mid, &la->x_in));
    SRLM_CHECK(op->add_rmsnorm(be, &la->x_mid, &la->xn2, proj, &ly->mlp_norm, eps));
    SRLM_CHECK(op->matmul(be, &la->gu, &la->xn2, &w_gu, 0));
    SRLM_CHECK(op->swiglu(be, &la->h, &la->gate, &la->up));
    SRLM_CHECK(op->matmul(be, proj, &la->h, &ly->w_down, 0));
    SRLM_CHECK(srlm_llama_allreduce_view(m, m->tp, proj));
    SRLM_CHECK(op->dropout(be, proj, b->dropout, dropout_key(b, l, SITE_MLP)));
    SRLM_CHECK(op->copy(be, x_out, &la->x_mid));
    SRLM_CHECK(op->add(be, x_out, proj));
    return SRLM_OK;
}

static srlm_status check_batch(const srlm_llama *m, const srlm_train_acts *a, const srlm_train_batch *b) {
    if (b->B < 1 || b->T < 1)
        return SRLM_ERR(SRLM_FAILED, "training batch %d x %d: expected at least one sequence and row", b->B, b->T);
    int64_t rows = 0; /* the activations hold the real tokens only, packed */
    for (int s = 0; s < b->B; s++) {
        if (b->len[s] < 1 || b->len[s] > b->T)
            return SRLM_ERR(SRLM_FAILED, "training batch: sequence %d has length %d (T = %d)", s, b->len[s], b->T);
        rows += b->len[s];
        if (m->cfg.sliding_window > 0 && b->len[s] > m->cfg.sliding_window + 1) {
            char what[48];
            snprintf(what, sizeof what, "training batch: sequence %d", s);
            return srlm_hf_check_seq_len(&m->cfg, b->len[s], 1, what); /* the last token: a target only */
        }
        for (int t = 0; t < b->len[s]; t++) {
            int id = b->ids[s * b->T + t];
            if (id < 0 || id >= m->cfg.vocab_size)
                return SRLM_ERR(SRLM_BAD_INPUT, "token id %d at position %d of sequence %d is outside the "
                                "vocabulary [0, %d)", id, t, s, m->cfg.vocab_size);
        }
    }
    if (rows > a->max_tokens)
        return SRLM_ERR(SRLM_FAILED, "training batch of %d sequences holds %lld tokens, more than the activation "
                        "buffers' %d rows", b->B, (long long)rows, a->max_tokens);
    if (!(b->dropout >= 0.0f && b->dropout < 1.0f))
        return SRLM_ERR(SRLM_BAD_INPUT, "dropout %g: expected 0 <= p < 1", (double)b->dropout);
    return SRLM_OK;
}

/* Pack the batch into the host scratch: each real token's row, position,
 * token and target (-1: none: the last token, and the rows before first[b])
 * and the sequences' first rows, then the rows with a target (the LM head's).
 * Returns the packed row count. */
static int64_t batch_layout(srlm_train_acts *a, const srlm_train_batch *b) {
    int r = 0;
    for (int s = 0; s < b->B; s++) {
        const int first = b->first ? b->first[s] : 0;
        a->off[s] = r;
        for (int t = 0; t < b->len[s]; t++, r++) {
            const int pr = s * b->T + t;
            a->row[r] = pr;
            a->pos[r] = t;
            a->ids[r] = b->ids[pr];
            a->targets[r] = t + 1 < b->len[s] && t >= first ? b->ids[pr + 1] : -1;
        }
    }
    a->off[b->B] = r;
    a->n_rows = r;
    int k = 0;
    for (int i = 0; i < r; i++)
        if (a->targets[i] >= 0) a->inv[i] = k, a->sel[k++] = i;
    for (int i = 0; i < r; i++)
        if (a->targets[i] < 0) a->inv[i] = k; /* a zero row after the selected ones */
    a->n_sel = k;
    return r;
}

/* Rows [r0, r0 + logits->rows) of the logits: the LM head on the final norm's
 * output, the padded vocab columns -inf. */
static srlm_status head_logits(srlm_llama *m, srlm_view *logits, const srlm_view *xnf, int64_t r0) {
    srlm_backend *be = m->be;
    srlm_view in = srlm_view_rows(*xnf, r0, logits->rows);
    SRLM_CHECK(be->ops->matmul(be, logits, &in, &m->lm_head, 0));
    int64_t real = (int64_t)m->cfg.vocab_size - m->vocab_start;
    if (real < m->vocab_local) SRLM_CHECK(be->ops->fill_cols(be, logits, real < 0 ? 0 : real, -INFINITY));
    return SRLM_OK;
}

srlm_status srlm_llama_train_forward(srlm_llama *m, srlm_train_acts *a, const srlm_train_batch *b,
                                     float *logp) {
    SRLM_CHECK(check_batch(m, a, b));
    const srlm_backend_ops *op = m->be->ops;
    srlm_backend *be = m->be;
    const int64_t N = batch_layout(a, b);
    srlm_view proj = srlm_view_rows(a->dtmp, 0, N); /* free until the backward pass */
    srlm_view x0 = srlm_view_rows(a->x_in[0], 0, N);
    SRLM_CHECK(op->embedding(be, &x0, &m->embed, a->ids, (int)N, m->vocab_start));
    SRLM_CHECK(srlm_llama_allreduce_view(m, m->tp, &x0));
    for (int l = 0; l < m->n_layers; l++) {
        srlm_layer_acts la = layer_rows(&a->layer[a->recompute ? 0 : l], N);
        la.x_in = srlm_view_rows(a->x_in[l], 0, N);
        srlm_view x_out = srlm_view_rows(l + 1 < m->n_layers ? a->x_in[l + 1] : a->x_final, 0, N);
        SRLM_CHECK(layer_forward(m, l, &la, &x_out, &proj, a, b));
    }
    srlm_view xf = srlm_view_rows(a->x_final, 0, N), xnf = srlm_view_rows(a->xn_final, 0, N);
    SRLM_CHECK(op->rmsnorm(be, &xnf, &xf, &m->final_norm, (float)m->cfg.rms_norm_eps));
    /* the LM head on the rows with a target only (a prompt's rows have none) */
    const int64_t S = a->n_sel;
    srlm_view xsel = srlm_view_rows(a->dx, 0, S); /* dx: free until the backward pass */
    if (S > 0) SRLM_CHECK(op->copy_rows(be, &xsel, &xnf, a->sel, (int)S));
    int *tg = malloc(sizeof(int) * (size_t)S + 1);
    if (!tg) return SRLM_ERR(SRLM_FAILED, "out of memory");
    for (int64_t k = 0; k < S; k++) tg[k] = a->targets[a->sel[k]];
    srlm_status st = SRLM_OK;
    for (int64_t r0 = 0; r0 < S && st == SRLM_OK; r0 += a->logits_rows) {
        const int64_t n = S - r0 < a->logits_rows ? S - r0 : a->logits_rows;
        srlm_view logits = srlm_view_rows(a->logits, 0, n);
        st = head_logits(m, &logits, &xsel, r0);
        if (st == SRLM_OK)
            st = srlm_llama_logprobs_view(m, &logits, tg + r0, (int)n, a->logp + r0, a->mx + r0, a->se + r0);
    }
    free(tg);
    SRLM_CHECK(st);
    memset(logp, 0, sizeof(float) * (size_t)b->B * (size_t)b->T);
    for (int64_t k = 0; k < S; k++) logp[a->row[a->sel[k]]] = a->logp[k];
    return SRLM_OK;
}

/* Backward through one layer: a->dx holds d loss / d (layer output) on entry and
 * d loss / d (layer input) on exit; the layer's gradients are written into gl
 * (accumulate: added). */
static srlm_status layer_backward(srlm_llama *m, int l, srlm_train_acts *a, const srlm_layer_acts *la,
                                  int64_t N, const srlm_train_batch *b, srlm_llama_layer *gl, int acc) {
    const srlm_backend_ops *op = m->be->ops;
    srlm_backend *be = m->be;
    const srlm_llama_layer *ly = &m->layers[l];
    const float eps = (float)m->cfg.rms_norm_eps, theta = (float)m->cfg.rope_theta;
    srlm_view dx = srlm_view_rows(a->dx, 0, N), dtmp = srlm_view_rows(a->dtmp, 0, N);
    srlm_view dxn = srlm_view_rows(a->dxn, 0, N);
    srlm_view dq = srlm_view_rows(a->dq, 0, N), datt = srlm_view_rows(a->datt, 0, N);
    srlm_view dk = srlm_view_rows(a->dk, 0, N), dv = srlm_view_rows(a->dv, 0, N);
    srlm_view dqkv = srlm_view_rows(a->dqkv, 0, N);
    srlm_view dh = srlm_view_rows(a->dh, 0, N), dgate = srlm_view_rows(a->dgate, 0, N);
    srlm_view dup = srlm_view_rows(a->dup, 0, N), dgu = srlm_view_rows(a->dgu, 0, N);

    /* MLP block: x_out = x_mid + dropout(h W_down^T) */
    SRLM_CHECK(op->copy(be, &dtmp, &dx));
    SRLM_CHECK(op->dropout(be, &dtmp, b->dropout, dropout_key(b, l, SITE_MLP)));
    SRLM_CHECK(op->matmul_dx(be, &dh, &dtmp, &ly->w_down, 0));
    SRLM_CHECK(op->matmul_dw(be, &gl->w_down, &dtmp, &la->h, acc));
    SRLM_CHECK(op->swiglu_backward(be, &dgate, &dup, &dh, &la->gate, &la->up));
    /* gate and up stacked: one GEMM each way, dxn rounded once */
    srlm_view w_gu, g_gu, w_qkv, g_qkv;
    SRLM_CHECK(srlm_llama_gate_up_weight(ly, &w_gu));
    SRLM_CHECK(srlm_llama_gate_up_weight(gl, &g_gu));
    SRLM_CHECK(op->matmul_dx(be, &dxn, &dgu, &w_gu, 0));
    SRLM_CHECK(op->matmul_dw(be, &g_gu, &dgu, &la->xn2, acc));
    SRLM_CHECK(srlm_llama_allreduce_view(m, m->tp, &dxn));
    SRLM_CHECK(op->rmsnorm_backward(be, &dtmp, &gl->mlp_norm, &dxn, &la->x_mid, &ly->mlp_norm, eps, acc));
    SRLM_CHECK(op->add(be, &dx, &dtmp));

    /* attention block: x_mid = x_in + dropout(att W_o^T) */
    SRLM_CHECK(op->copy(be, &dtmp, &dx));
    SRLM_CHECK(op->dropout(be, &dtmp, b->dropout, dropout_key(b, l, SITE_ATTN)));
    SRLM_CHECK(op->matmul_dx(be, &datt, &dtmp, &ly->wo, 0));
    SRLM_CHECK(op->matmul_dw(be, &gl->wo, &dtmp, &la->att, acc));
    SRLM_CHECK(attention_backward(m, a, la, &dq, &dk, &dv, &datt, b));
    srlm_view dqk = srlm_view_cols(dqkv, 0, dq.cols + dk.cols);
    SRLM_CHECK(op->rope_backward(be, &dqk, a->pos, m->n_heads_local + m->n_kv_local, m->head_dim, theta));
    /* q, k, v stacked: one GEMM each way, dxn rounded once */
    SRLM_CHECK(srlm_llama_qkv_weight(ly, &w_qkv));
    SRLM_CHECK(srlm_llama_qkv_weight(gl, &g_qkv));
    SRLM_CHECK(op->matmul_dx(be, &dxn, &dqkv, &w_qkv, 0));
    SRLM_CHECK(op->matmul_dw(be, &g_qkv, &dqkv, &la->xn1, acc));
    SRLM_CHECK(srlm_llama_allreduce_view(m, m->tp, &dxn));
    SRLM_CHECK(op->rmsnorm_backward(be, &dtmp, &gl->attn_norm, &dxn, &la->x_in, &ly->attn_norm, eps, acc));
    SRLM_CHECK(op->add(be, &dx, &dtmp));
    return SRLM_OK;
}

srlm_status srlm_llama_train_backward(srlm_llama *m, srlm_train_acts *a, const srlm_train_batch *b,
                                      const float *dlogp, srlm_llama_grads *g, int accumulate) {
    const srlm_backend_ops *op = m->be->ops;
    srlm_backend *be = m->be;
    const int64_t N = batch_layout(a, b), S = a->n_sel;
    float *dl = malloc(sizeof(float) * (size_t)S + 1);
    int *tg = malloc(sizeof(int) * (size_t)S + 1);
    if (!dl || !tg) { free(dl); free(tg); return SRLM_ERR(SRLM_FAILED, "out of memory"); }
    for (int64_t k = 0; k < S; k++) {
        dl[k] = dlogp[a->row[a->sel[k]]];
        tg[k] = a->targets[a->sel[k]];
    }
    /* LM head on the rows with a target (gathered into dx again, as the forward
     * did; dx is free until the final norm's backward writes it), chunk by chunk
     * from the last (whose logits the forward pass left in the buffer; the
     * others are recomputed); their d input in dtmp's first S rows, row S zero,
     * spread to every row of dxn; then the final norm */
    srlm_view xnf = srlm_view_rows(a->xn_final, 0, N), xf = srlm_view_rows(a->x_final, 0, N);
    srlm_view dxn = srlm_view_rows(a->dxn, 0, N), dx = srlm_view_rows(a->dx, 0, N);
    srlm_view xsel = srlm_view_rows(a->dx, 0, S), dsel = srlm_view_rows(a->dtmp, 0, S + 1);
    srlm_view zero_row = srlm_view_rows(a->dtmp, S, 1); /* S < N: a sequence's last row has no target */
    srlm_status st = S > 0 ? op->copy_rows(be, &xsel, &xnf, a->sel, (int)S) : SRLM_OK;
    const int64_t last = S > 0 ? (S - 1) / a->logits_rows * a->logits_rows : -1;
    int head_acc = accumulate; /* the first chunk writes the head's gradient, the others add */
    for (int64_t r0 = last; r0 >= 0 && st == SRLM_OK; r0 -= a->logits_rows) {
        const int64_t n = S - r0 < a->logits_rows ? S - r0 : a->logits_rows;
        srlm_view logits = srlm_view_rows(a->logits, 0, n), in = srlm_view_rows(xsel, r0, n);
        srlm_view d_rows = srlm_view_rows(dsel, r0, n);
        if (r0 != last) st = head_logits(m, &logits, &xsel, r0);
        if (st == SRLM_OK)
            st = op->logprob_backward(be, &logits, a->mx + r0, a->se + r0, tg + r0, m->vocab_start, dl + r0);
        if (st == SRLM_OK) st = op->matmul_dx(be, &d_rows, &logits, &m->lm_head, 0);
        if (st == SRLM_OK) st = op->matmul_dw(be, &g->lm_head, &logits, &in, head_acc);
        head_acc = 1;
    }
    free(dl);
    free(tg);
    if (st == SRLM_OK && !head_acc) st = op->fill(be, &g->lm_head, 0.0f); /* no row has a target */
    if (st == SRLM_OK) st = op->fill(be, &zero_row, 0.0f);
    if (st == SRLM_OK) st = op->copy_rows(be, &dxn, &dsel, a->inv, (int)N);
    SRLM_CHECK(st);
    SRLM_CHECK(srlm_llama_allreduce_view(m, m->tp, &dxn));
    SRLM_CHECK(op->rmsnorm_backward(be, &dx, &g->final_norm, &dxn, &xf, &m->final_norm,
                                    (float)m->cfg.rms_norm_eps, accumulate));

    srlm_view scratch_out = srlm_view_rows(a->dtmp, 0, N); /* recompute's discarded layer output */
    for (int l = m->n_layers - 1; l >= 0; l--) {
        srlm_layer_acts la = layer_rows(&a->layer[a->recompute ? 0 : l], N);
        la.x_in = srlm_view_rows(a->x_in[l], 0, N);
        if (a->recompute) {
            srlm_view proj = srlm_view_rows(a->dxn, 0, N);
            SRLM_CHECK(layer_forward(m, l, &la, &scratch_out, &proj, a, b));
        }
        SRLM_CHECK(layer_backward(m, l, a, &la, N, b, &g->layers[l], accumulate));
    }
    if (!accumulate) {
        /* the table's rows are added to (a tied one holds the head's gradient
         * by now); past the parameters, the flat buffer's padding */
        if (!m->tied) SRLM_CHECK(op->fill(be, &g->embed, 0.0f));
        const int64_t tail = g->flat.cols - m->n_params_local;
        if (tail > 0) {
            srlm_view pad = srlm_view_cols(g->flat, m->n_params_local, tail);
            SRLM_CHECK(op->fill(be, &pad, 0.0f));
        }
    }
    return op->embedding_backward(be, &g->embed, &dx, a->ids, (int)N, m->vocab_start);
}

srlm_status srlm_llama_grads_reduce_replicas(srlm_llama *m, srlm_llama_grads *g) {
    if (srlm_comm_size(m->kv_group) <= 1) return SRLM_OK;
    for (int l = 0; l < m->n_layers; l++) {
        /* wk and wv are adjacent in the layout: one call for both */
        srlm_view kv = g->layers[l].wk;
        kv.rows *= 2;
        SRLM_CHECK(srlm_llama_allreduce_view(m, m->kv_group, &kv));
    }
    return SRLM_OK;
}
