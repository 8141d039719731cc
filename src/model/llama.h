/* Llama-2 weights, activations and KV cache, and the forward pass.
 *
 * Every weight is this rank's tensor-parallel shard (tp = 1: the whole tensor):
 * q/k/v and gate/up are column-parallel (a row range of the HF [out, in] weight),
 * o and down are row-parallel (a column range), the embedding and the LM head are
 * vocab-parallel (a row range of the vocab, padded to a multiple of 64 * tp). */
#ifndef SRLM_LLAMA_H
#define SRLM_LLAMA_H

#include "backend/backend.h"
#include "dist/comm.h"
#include "io/checkpoint.h"

typedef struct {
    srlm_view attn_norm;          /* (1, dim) */
    srlm_view wq;                 /* (nh_local * hd, dim) */
    srlm_view wk, wv;             /* (nkv_local * hd, dim) */
    srlm_view wo;                 /* (dim, nh_local * hd) */
    srlm_view mlp_norm;           /* (1, dim) */
    srlm_view w_gate, w_up;       /* (ffn_local, dim) */
    srlm_view w_down;             /* (dim, ffn_local) */
} srlm_llama_layer;

typedef struct {
    srlm_hf_config cfg;           /* as read from config.json (unpadded vocab) */
    int dim, n_layers, head_dim;
    int tp_rank, tp_size;
    int n_heads_local, n_kv_local, ffn_local;
    int vocab_padded;             /* multiple of 64 * tp */
    int vocab_local, vocab_start; /* this rank's slice of the padded vocab */
    int tied;                     /* lm_head shares the embedding's memory */

    srlm_view         params;     /* one allocation holding every weight below, in be->dtype */
    srlm_view         master;     /* a BF16 model's F32 weights of record, in the same layout
                                   * (params are their rounding): set by the training load, then
                                   * the trainer keeps only its ZeRO-1 shard (train/zero1.c) and
                                   * lends the gathered whole back here for saves, which read it;
                                   * else data == NULL */
    srlm_view         embed;      /* (vocab_local, dim) */
    srlm_llama_layer *layers;     /* (n_layers) */
    srlm_view         final_norm; /* (1, dim) */
    srlm_view         lm_head;    /* (vocab_local, dim); == embed when tied */
    int64_t           n_params_local;

    srlm_backend *be;
    srlm_comm    *tp;             /* NULL when tp = 1 */
    srlm_comm    *tp_dev, *kv_dev; /* the same groups for device memory (NCCL), when the backend
                                   * offers them; NULL: device buffers go through the host */
    srlm_comm    *kv_group;       /* tp > n_kv_heads: the tp ranks holding copies of this rank's
                                   * KV head (their k/v weight gradients are summed); else NULL */
} srlm_llama;

/* A contiguous range of the flat parameter buffer (and of every buffer laid out
 * like it): one tensor. decay: a matrix (weight decay applies), not a norm
 * weight. counted: this rank's copy counts in global sums such as the gradient
 * norm (a tensor replicated across tp ranks counts on one of them only). */
typedef struct {
    int64_t off, n;
    int     decay, counted;
} srlm_param_segment;

/* The segments of m in layout order; *segs is malloc'd. */
srlm_status srlm_llama_segments(const srlm_llama *m, srlm_param_segment **segs, int *n);

/* Gradients (or any other per-parameter buffer) in exactly the layout of the
 * weights: `flat` is one allocation carved in the same order as m->params, so a
 * ZeRO-1 shard of it is a slice. Tied models: lm_head aliases embed here too. */
typedef struct {
    srlm_view         flat;
    srlm_view         embed, final_norm, lm_head;
    srlm_llama_layer *layers;
} srlm_llama_grads;

/* Zeroed; the flat buffer holds at least min_elems elements (room for the
 * padding of a ZeRO-1 reduce-scatter), the views cover the first n_params_local. */
srlm_status srlm_llama_grads_new(srlm_llama_grads *g, const srlm_llama *m, int64_t min_elems);
srlm_status srlm_llama_grads_zero(srlm_llama_grads *g, const srlm_llama *m);
void        srlm_llama_grads_free(srlm_llama_grads *g, const srlm_llama *m);

/* Sum a contiguous view over comm (a row- or vocab-parallel partial result over
 * the tp group, replicated gradients over the kv group); a no-op when comm has
 * one rank. Device memory is staged through the host. */
srlm_status srlm_llama_allreduce_view(srlm_llama *m, srlm_comm *comm, srlm_view *v);

/* Check that the checkpoint's tensors are exactly those config.json describes,
 * with the shapes it implies (no data is read): SRLM_BAD_INPUT naming the tensor,
 * the file, what was expected and what was found. srlm_llama_load does this first. */
srlm_status srlm_llama_check_checkpoint(const srlm_checkpoint *ck);

/* Load this rank's shard of an HF checkpoint: only its slices are read. The
 * weights are kept in be->dtype. */
srlm_status srlm_llama_load(srlm_llama *m, const srlm_checkpoint *ck, srlm_backend *be,
                            srlm_comm *tp);
/* The same for training: when be->dtype is not F32 the checkpoint is read into
 * m->master (F32) and params are its rounding, so a run resumed from an F32
 * trainer checkpoint continues from the exact bits. */
srlm_status srlm_llama_load_for_training(srlm_llama *m, const srlm_checkpoint *ck, srlm_backend *be,
                                         srlm_comm *tp);
/* The F32 weights the optimizer updates and checkpoints save: m->master when
 * there is one, else m->params (then F32). */
static inline srlm_view srlm_llama_weights32(const srlm_llama *m) {
    return m->master.data ? m->master : m->params;
}
/* The view of the weights of record (F32) that holds what view v of m->params
 * holds: v itself without a master. */
static inline srlm_view srlm_llama_record_view(const srlm_llama *m, srlm_view v) {
    if (!m->master.data) return v;
    size_t off = (size_t)((const char *)v.data - (const char *)m->params.data) / srlm_dtype_size(m->params.dtype);
    v.data = (char *)m->master.data + off * sizeof(float);
    v.dtype = SRLM_F32;
    return v;
}
/* params = master rounded to be->dtype, after an optimizer step (no-op without a master). */
srlm_status srlm_llama_refresh_params(srlm_llama *m);
void        srlm_llama_free(srlm_llama *m);
/* Ends the device communicators alone (srlm_llama_free does it too). A teardown
 * calls it first: freeing device memory waits for the stream, and after an error
 * a collective whose peers never came would hold it; a communicator's end waits
 * a bounded time for the stream, then aborts what it still runs. */
void        srlm_llama_free_device_comms(srlm_llama *m);

/* KV cache: `slots` sequences of up to `max_seq` positions, every layer, one allocation. */
typedef struct {
    int        slots, max_seq;
    srlm_view  mem;
    srlm_view *k, *v;             /* (n_layers) views of (slots * max_seq, nkv_local * hd) */
} srlm_kv_cache;

srlm_status srlm_kv_cache_new(srlm_kv_cache *kv, const srlm_llama *m, int slots, int max_seq);
void        srlm_kv_cache_free(srlm_kv_cache *kv, srlm_backend *be);

/* A layer's W_q, W_k, W_v (and its W_gate, W_up) as one operand: the model
 * carves them one after the other, so that q, k, v (gate, up) come from one
 * GEMM as the column ranges of one activation. The same for a layer of
 * gradients, carved alike. An error if the views do not stack. */
srlm_status srlm_llama_qkv_weight(const srlm_llama_layer *ly, srlm_view *w);
srlm_status srlm_llama_gate_up_weight(const srlm_llama_layer *ly, srlm_view *w);

/* Scratch activations for up to max_tokens token rows (B * T), one allocation. */
typedef struct {
    int       max_tokens, max_logit_rows;
    srlm_view mem;
    srlm_view x, xn, att, proj, logits;
    srlm_view qkv, q, k, v;       /* qkv (N, qd + 2 kvd): q, k and v are its column ranges */
    srlm_view gu, gate, up;       /* gu (N, 2 ffn_local): gate and up are its column halves */
    int      *pos, *rows;         /* host scratch (max_tokens) */
    /* srlm_llama_prefill's padded layout for the cache and attention
     * (srlm_llama_acts_reserve_padded; none until then) */
    srlm_view pad_mem, qkv_pad, att_pad;
    /* Decode steps through the backend's recorded steps (backend.h), where it
     * has them: the key last run op by op (a key runs so once before it is
     * recorded), failed recordings (at 3 they stop: SRLM_RECORD_STEPS=0 stops
     * them from the start), and how many steps were recorded and replayed. */
    uint64_t  step_seen;
    int       step_failures, step_off;
    long      steps_recorded, steps_replayed;
} srlm_llama_acts;

srlm_status srlm_llama_acts_new(srlm_llama_acts *a, const srlm_llama *m, int max_tokens,
                                int max_logit_rows);
void        srlm_llama_acts_free(srlm_llama_acts *a, srlm_backend *be);
/* Scratch for srlm_llama_prefill: q, k, v and the attention output of up to
 * `rows` padded rows (B * T), (2 q + 2 kv widths) elements a row. */
srlm_status srlm_llama_acts_reserve_padded(srlm_llama_acts *a, const srlm_llama *m, int rows);

/* A forward call over B sequences of T token rows each (row b*T + t), placed in
 * the cache as srlm_attn_shape describes; rows past n_new[b] are padding. */
typedef struct {
    int        B, T;
    const int *ids;                /* (B * T) */
    const int *slot, *n_past, *n_new;
    int        last_only;          /* logits for each sequence's last real row only */
} srlm_batch;

/* Runs the model and leaves this rank's vocab shard of the logits in a->logits:
 * rows = B * T (or B when last_only), cols = vocab_local; padded vocab = -inf.
 * A decode step (T == 1, last_only, tp 1) on a backend that records steps is
 * recorded once per (batch size, srlm_decode_len_bound, buffers) and replayed
 * after that: the same ops on the same views, so the same logits. */
srlm_status srlm_llama_forward(srlm_llama *m, srlm_kv_cache *kv, srlm_llama_acts *a,
                               const srlm_batch *batch);

/* The same forward, logits of each sequence's last row only (last_only must
 * be set), for prompts of uneven lengths: ids hold each sequence's n_new rows
 * one after another, no padding, so the GEMMs, norms and activations run on
 * the real rows alone; the KV cache and attention see them through the padded
 * layout of a->qkv_pad (B * T rows, T the longest n_new). Logit row b is
 * sequence b's. */
srlm_status srlm_llama_prefill(srlm_llama *m, srlm_kv_cache *kv, srlm_llama_acts *a, const srlm_batch *batch);

/* log p(targets[i] | row i) for the logits rows in a->logits, combined across the
 * tp group with allreduces (max, then sum of exp and target logit); full logits
 * are never gathered. */
srlm_status srlm_llama_logprobs(srlm_llama *m, srlm_llama_acts *a, const int *targets,
                                int n_rows, float *logp);

/* The same for any logits view; also returns the global row max and sum of exp
 * (mx, se may be NULL), which the backward pass needs. */
srlm_status srlm_llama_logprobs_view(srlm_llama *m, const srlm_view *logits, const int *targets,
                                     int n_rows, float *logp, float *mx, float *se);

/* Greedy next token per logits row (ties: lowest id), across the tp group. */
srlm_status srlm_llama_argmax(srlm_llama *m, srlm_llama_acts *a, int n_rows, int *next);

#endif
