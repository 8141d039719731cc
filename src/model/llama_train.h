/* The Llama forward pass that keeps what the backward pass needs, and the
 * backward pass itself: parameter gradients of any loss that is a function of
 * per-token log-probs (SFT cross-entropy, DPO's sequence log-probs). */
#ifndef SRLM_LLAMA_TRAIN_H
#define SRLM_LLAMA_TRAIN_H

#include "model/llama.h"

/* One layer's saved activations (rows = the batch's real tokens, packed). */
typedef struct {
    srlm_view x_in;            /* (N, D) residual stream entering the layer */
    srlm_view xn1, x_mid, xn2; /* (N, D) attention norm out, residual after attention, MLP norm out */
    srlm_view qkv;             /* (N, qd + 2 kvd): q, k and v below are its column ranges */
    srlm_view q, att;          /* (N, nh_local * hd) q after RoPE, attention output */
    srlm_view k, v;            /* (N, nkv_local * hd) k after RoPE, v; the "cache" of this batch */
    srlm_view gu;              /* (N, 2 ffn_local): gate and up below are its column halves */
    srlm_view gate, up, h;     /* (N, ffn_local) MLP pre-activations and silu(gate) * up */
    srlm_view lse;             /* (N, n_heads_local) attention row log-sum-exp, for its backward */
} srlm_layer_acts;

typedef struct {
    int              max_tokens, recompute;
    srlm_view        mem;       /* every activation view below, in be->dtype */
    srlm_view        lse_mem;   /* the layers' lse views (F32 whatever be->dtype is) */
    srlm_layer_acts *layer;    /* n_layers of them, or 1 when recomputing */
    srlm_view       *x_in;     /* recompute: each layer's input, (n_layers) views of (N, D) */
    srlm_view        x_final, xn_final; /* (N, D) */
    int              logits_rows; /* rows of `logits`: max_tokens, or the chunk they are computed in */
    srlm_view        logits;   /* (logits_rows, vocab_local); turned into d logits by the backward pass */
    srlm_view        dx, dtmp, dxn; /* (N, D) backward scratch */
    srlm_view        dq, datt; /* (N, qd) */
    srlm_view        dk, dv;   /* (N, kvd) */
    srlm_view        dqkv;     /* (N, qd + 2 kvd): dq, dk and dv are its column ranges */
    srlm_view        dh, dgate, dup; /* (N, F); dgate and dup are dgu's column halves */
    srlm_view        dgu;      /* (N, 2F) */
    /* The activations hold the batch packed: n_rows = sum(len) rows, sequence b
     * at rows off[b] .. off[b] + len[b] - 1 (llama_train.c) */
    int              n_rows;
    int             *pos, *targets, *ids; /* (n_rows) position, target (-1: none), token of each row */
    int             *row;      /* (n_rows) the caller's padded row b * T + t of each row */
    int             *off;      /* (B + 1) first row of each sequence, then n_rows */
    /* The LM head runs on the n_sel rows with a target only (sel: their rows,
     * in order; inv: each row's place among them, n_sel for the others) */
    int              n_sel;
    int             *sel, *inv;
    float           *mx, *se;  /* (n_sel) global row max and sum of exp of the logits */
    float           *logp;     /* (n_sel) log-probs before they go to the caller's padded rows */
    int              zero;     /* the attention shape's slot and n_past */
} srlm_train_acts;

srlm_status srlm_train_acts_new(srlm_train_acts *a, const srlm_llama *m, int max_tokens,
                                int recompute);
/* The same with the logits held for logits_rows token rows at a time (1 ..
 * max_tokens; train.X.logits_chunk): the forward pass runs the LM head and the
 * log-probs chunk by chunk, and the backward pass recomputes each chunk's
 * logits but the last (still in the buffer), one extra LM-head GEMM per chunk. */
srlm_status srlm_train_acts_new_chunked(srlm_train_acts *a, const srlm_llama *m, int max_tokens, int recompute,
                                        int logits_rows);
void        srlm_train_acts_free(srlm_train_acts *a, const srlm_llama *m);

/* B right-padded sequences of T rows; row b*T + t (t < len[b]) predicts
 * ids[b*T + t + 1] when t + 1 < len[b]. Dropout with probability `dropout` on
 * the attention and MLP outputs before each residual add, masks keyed by
 * dropout_key and each token's place in the batch (the same key and lengths
 * reproduce the same masks). */
typedef struct {
    int        B, T;
    const int *ids;       /* (B * T) */
    const int *len;       /* (B) real tokens per sequence, >= 1 */
    float      dropout;
    uint64_t   dropout_key;
    /* (B) or NULL: sequence b's rows t < first[b] (its prompt) need no log-prob
     * (0, and no gradient), so the LM head skips them; NULL = every row */
    const int *first;
} srlm_train_batch;

/* Forward over the batch: logp[r] = log p(ids[r + 1] | ids[..r]) for every row r
 * that has a target (t + 1 < len and t >= first), 0 elsewhere (B * T values). */
srlm_status srlm_llama_train_forward(srlm_llama *m, srlm_train_acts *a, const srlm_train_batch *b,
                                     float *logp);

/* Backward for d loss / d logp[r] = dlogp[r] (0 for rows that do not count):
 * accumulate 1 ADDS the parameter gradients into g (the micro-batches after a
 * step's first); 0 WRITES every element of g (its padding included), whatever
 * it held, so a step's first micro-batch needs no zeroing pass before it (and
 * the weight-gradient GEMMs do not read g). Must follow srlm_llama_train_forward
 * on the same batch; it consumes the saved logits. */
srlm_status srlm_llama_train_backward(srlm_llama *m, srlm_train_acts *a, const srlm_train_batch *b,
                                      const float *dlogp, srlm_llama_grads *g, int accumulate);

/* Sum the k/v weight gradients over the ranks that hold copies of the same KV
 * head (tp > n_kv_heads), so every copy gets the full gradient. Once per step,
 * after the last micro-batch. No-op otherwise. */
srlm_status srlm_llama_grads_reduce_replicas(srlm_llama *m, srlm_llama_grads *g);

#endif
