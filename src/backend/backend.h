/* The backend ops table: everything the model, trainer and generator compute
 * goes through these function pointers, so the CPU backend (the reference) and
 * the CUDA backend are interchangeable.
 *
 * Tensors are 2-D views the backend allocated: `rows` x `cols` elements of
 * `dtype`, `stride` elements between rows. Weights keep the Hugging Face
 * layout [out, in], so a linear layer is y = x W^T. Views are F32 or BF16 (the
 * model's backend.dtype); an op on BF16 views computes in fp32 and rounds its
 * outputs to bf16 (the CPU backend, the reference, exactly once per output). */
#ifndef SRLM_BACKEND_H
#define SRLM_BACKEND_H

#include <stdint.h>

#include "core/dtype.h"
#include "core/status.h"

typedef struct {
    void      *data;
    srlm_dtype dtype;
    int64_t    rows, cols;
    int64_t    stride; /* elements between consecutive rows (>= cols) */
} srlm_view;

/* Rows [r0, r0+n) of a view, sharing its memory. */
static inline srlm_view srlm_view_rows(srlm_view v, int64_t r0, int64_t n) {
    srlm_view s = v;
    s.data = (char *)v.data + (size_t)(r0 * v.stride) * srlm_dtype_size(v.dtype);
    s.rows = n;
    return s;
}

/* Carve a contiguous (rows x cols) view at element offset `off` of a flat buffer. */
static inline srlm_view srlm_view_carve(srlm_view flat, int64_t off, int64_t rows, int64_t cols) {
    srlm_view s = {(char *)flat.data + (size_t)off * srlm_dtype_size(flat.dtype), flat.dtype, rows,
                   cols, cols};
    return s;
}

/* Columns [c0, c0+n) of a view, sharing its memory (its stride stays). */
static inline srlm_view srlm_view_cols(srlm_view v, int64_t c0, int64_t n) {
    srlm_view s = v;
    s.data = (char *)v.data + (size_t)c0 * srlm_dtype_size(v.dtype);
    s.cols = n;
    return s;
}

/* a's rows followed by b's as one view, where b starts right after a in
 * memory with the same dtype, width and contiguous rows (two weight matrices
 * carved one after the other); 0 when they do not stack. */
static inline int srlm_view_stack(const srlm_view *a, const srlm_view *b, srlm_view *out) {
    if (a->dtype != b->dtype || a->cols != b->cols || a->stride != a->cols || b->stride != b->cols ||
        (const char *)b->data != (const char *)a->data + (size_t)(a->rows * a->stride) * srlm_dtype_size(a->dtype))
        return 0;
    *out = *a;
    out->rows = a->rows + b->rows;
    return 1;
}

/* How a batch of sequences sits in the KV cache for one attention call.
 * Sequence b owns cache slot slot[b]; n_past[b] tokens of it are already cached;
 * this call brings T new token rows per sequence, of which the first n_new[b]
 * are real and the rest padding (their outputs are unspecified and ignored).
 * New token t of sequence b has position n_past[b] + t and attends causally to
 * positions 0 .. n_past[b] + t of its slot. */
typedef struct {
    int        B, T;
    int        n_heads, n_kv_heads, head_dim; /* local to this rank */
    int        max_seq;                        /* cache rows per slot */
    const int *slot, *n_past, *n_new;          /* (B) each, host memory */
    /* Packed sequences (n_seg 0: none), for the attention ops only. With
     * B == 1 and n_past[0] == 0, the n_new[0] rows are n_seg sequences one
     * after another: rows seg_off[i] .. seg_off[i+1] - 1 are sequence i
     * (seg_off[0] == 0, increasing, seg_off[n_seg] == n_new[0]), and each row
     * attends causally within its own sequence only. Training packs a batch
     * of uneven lengths this way: one call, no padding rows. */
    int        n_seg;
    const int *seg_off;                        /* (n_seg + 1), host memory */
} srlm_attn_shape;

/* The packed-sequence fields of an attention shape, as every backend checks them. */
static inline srlm_status srlm_attn_seg_check(const char *op, const srlm_attn_shape *s) {
    if (s->n_seg == 0 && !s->seg_off) return SRLM_OK;
    if (s->n_seg < 1 || !s->seg_off || s->B != 1 || s->n_past[0] != 0)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: packed sequences need n_seg >= 1 with seg_off, B == 1 and n_past 0 "
                        "(got n_seg %d, seg_off %s, B %d, n_past %d)", op, s->n_seg, s->seg_off ? "set" : "NULL",
                        s->B, s->B > 0 ? s->n_past[0] : -1);
    if (s->seg_off[0] != 0 || s->seg_off[s->n_seg] != s->n_new[0])
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: seg_off runs from %d to %d, expected 0 to n_new %d", op,
                        s->seg_off[0], s->seg_off[s->n_seg], s->n_new[0]);
    for (int i = 0; i < s->n_seg; i++)
        if (s->seg_off[i + 1] <= s->seg_off[i])
            return SRLM_ERR(SRLM_BAD_INPUT, "%s: sequence %d of the packed rows is empty or reversed "
                            "(seg_off %d then %d)", op, i, s->seg_off[i], s->seg_off[i + 1]);
    return SRLM_OK;
}

/* The sequences of an attention call fit T and the cache: slot in range, n_past
 * and n_new within a slot. Every backend checks this before indexing the cache
 * by them (a slot past the cache made the CUDA kernels read and write beyond it). */
static inline srlm_status srlm_attn_seq_check(const char *op, const srlm_view *cache, const srlm_attn_shape *s) {
    const int64_t slots = s->max_seq > 0 ? cache->rows / s->max_seq : 0;
    for (int b = 0; b < s->B; b++)
        if (s->n_new[b] < 0 || s->n_new[b] > s->T || s->n_past[b] < 0 ||
            s->n_past[b] + s->n_new[b] > s->max_seq || s->slot[b] < 0 || s->slot[b] >= slots)
            return SRLM_ERR(SRLM_BAD_INPUT, "%s: sequence %d has slot %d, n_past %d and n_new %d, but T is %d and "
                            "the cache holds %lld slots of %d rows", op, b, s->slot[b], s->n_past[b], s->n_new[b],
                            s->T, (long long)slots, s->max_seq);
    return SRLM_OK;
}

/* The attention ops' lse view (NULL passes): F32, (B*T, n_heads) with
 * contiguous rows (the CUDA kernels index it as row * n_heads + head). Every
 * backend checks it with this, so all refuse the same views. */
static inline srlm_status srlm_attn_lse_check(const char *op, const srlm_view *lse, const srlm_attn_shape *s) {
    if (lse && (lse->dtype != SRLM_F32 || lse->rows != (int64_t)s->B * s->T || lse->cols != s->n_heads ||
                lse->stride != lse->cols))
        return SRLM_ERR(SRLM_BAD_INPUT, "%s: lse is (%lld,%lld) %s with stride %lld, expected (%lld,%d) F32 "
                        "with contiguous rows (rows x heads)", op, (long long)lse->rows, (long long)lse->cols,
                        srlm_dtype_name(lse->dtype), (long long)lse->stride, (long long)s->B * s->T, s->n_heads);
    return SRLM_OK;
}

/* attention_backward's saved state: the forward's out and lse come as a pair. */
static inline srlm_status srlm_attn_saved_check(const srlm_view *saved_out, const srlm_view *saved_lse,
                                                const srlm_attn_shape *s) {
    if (!saved_out != !saved_lse)
        return SRLM_ERR(SRLM_BAD_INPUT, "attention_backward: saved_out and saved_lse come together (got only %s)",
                        saved_out ? "saved_out" : "saved_lse");
    return srlm_attn_lse_check("attention_backward", saved_lse, s);
}

/* One AdamW step's scalars, computed on the host in double and rounded to
 * float as torch rounds them (srlm_adamw_consts_make, train/optimizer.h). */
typedef struct {
    float decay_mul;     /* (float)(1 - lr*wd); 1 for a tensor without weight decay */
    float w1, w2, b2;    /* (float)(1 - beta1), (float)(1 - beta2), (float)beta2 */
    float bc2_sqrt;      /* (float)pow(1 - beta2^t, 0.5) */
    float eps;           /* (float)eps */
    float neg_step_size; /* (float)(-(lr / (1 - beta1^t))) */
} srlm_adamw_consts;

typedef struct srlm_backend srlm_backend;
typedef struct srlm_comm srlm_comm; /* dist/comm.h */
struct srlm_sampling;               /* generate/sampler.h */

typedef struct {
    const char *name;
    /* 1: views are host memory that callers may read and write directly (cpu);
     * 0: device memory, reachable only through the ops (cuda) */
    int host_memory;
    /* frees the backend and everything it owns (srlm_backend_free calls it) */
    void (*destroy)(srlm_backend *be);
    /* Collective over mpi: a communicator for this backend's memory over the
     * same ranks (NCCL on the backend's device and stream, so collectives are
     * ordered with the ops by the stream). NULL op, or *out = NULL: none, and
     * callers stage device buffers through the host for mpi. */
    srlm_status (*device_comm)(srlm_backend *be, srlm_comm *mpi, srlm_comm **out);
    /* Token sampling where the logits are (NULL op: the caller downloads them
     * and samples on the host): token[i] from row i of logits (rows x cols, the
     * whole vocabulary; -inf is never picked) with the uniform draw u[i] under
     * cfg, by srlm_sample's rules (generate/sampler.h), so it is the token the
     * host would pick from the same logits, but for a draw within rounding of
     * a boundary of the cumulative distribution (~1e-10 relative on the CUDA
     * backend, kernels/sampling.cu), which may take a neighbour. Host arrays of length rows (u
     * unread, and may be NULL, when cfg is greedy). A row with a NaN or +inf,
     * or nothing finite, or a draw outside [0, 1): SRLM_BAD_INPUT naming the row. */
    srlm_status (*sample)(srlm_backend *be, const srlm_view *logits, const struct srlm_sampling *cfg,
                          const float *u, int *token);

    /* ---- recorded steps (optional: all four NULL on a backend without them) ----
     * A caller that issues the same ops again and again, with only the
     * contents of a few host arrays changing (a decode step), records them once
     * under a key and then replays them: on a GPU the host then issues one
     * launch instead of hundreds of ops (the CUDA backend records a CUDA
     * graph). The rules a recording holds to:
     *   - every host array a recorded op reads lies in the area step_inputs
     *     returned, and is read anew at each replay; an op that reads one
     *     elsewhere, or brings results back to the host, fails while recording;
     *   - every other argument (views, scalars, the arrays' lengths) is the
     *     same at each replay under one key: the key stands for them;
     *   - decode attention (T == 1) sizes its work by srlm_decode_len_bound of
     *     the longest sequence, so one key serves every length under one bound.
     * A recording is dropped when memory it used is freed or moved; replay
     * then says it ran nothing, and the caller records again. */
    /* A host area of at least `bytes` for the step's arrays, returned once no
     * replay still reads it; NULL, with the error set, when it cannot be had.
     * A larger request moves it (dropping every recording). */
    void       *(*step_inputs)(srlm_backend *be, size_t bytes);
    /* Record the ops called until step_end under key, instead of running them. */
    srlm_status (*step_begin)(srlm_backend *be, uint64_t key);
    /* Stop recording. keep 0 (an op failed while recording): drop it, SRLM_OK.
     * keep 1: SRLM_OK when the recording is kept, else an error saying why
     * it could not be (the caller then runs the ops as usual). */
    srlm_status (*step_end)(srlm_backend *be, int keep);
    /* Run the ops recorded under key on the area's current contents; *ran 0
     * when none are (never recorded, or dropped since). */
    srlm_status (*step_replay)(srlm_backend *be, uint64_t key, int *ran);

    /* memory */
    srlm_status (*alloc)(srlm_backend *be, srlm_view *v, srlm_dtype dtype, int64_t rows,
                         int64_t cols, const char *what);
    void        (*free)(srlm_backend *be, srlm_view *v);
    srlm_status (*upload)(srlm_backend *be, srlm_view *dst, const float *src);  /* host fp32, rows x cols */
    srlm_status (*download)(srlm_backend *be, float *dst, const srlm_view *src);
    srlm_status (*fill)(srlm_backend *be, srlm_view *v, float value);

    /* forward ops */
    /* y (N, out) = x (N, in) W^T, W (out, in); accumulate: y += instead of y = */
    srlm_status (*matmul)(srlm_backend *be, srlm_view *y, const srlm_view *x, const srlm_view *w,
                          int accumulate);
    /* out row i = table row (ids[i] - vocab_start) when it is in this shard, else zeros */
    srlm_status (*embedding)(srlm_backend *be, srlm_view *out, const srlm_view *table,
                             const int *ids, int n, int64_t vocab_start);
    /* y = x / sqrt(mean(x^2) + eps) * w, per row; w is (1, cols) */
    srlm_status (*rmsnorm)(srlm_backend *be, srlm_view *y, const srlm_view *x, const srlm_view *w,
                           float eps);
    /* rotate-half RoPE in place on x (N, n_heads*head_dim), row i at position pos[i] */
    srlm_status (*rope)(srlm_backend *be, srlm_view *x, const int *pos, int n_heads,
                        int head_dim, float theta);
    /* write the new rows of k or v (B*T, n_kv*hd) into the cache (slots*max_seq, n_kv*hd) */
    srlm_status (*kv_store)(srlm_backend *be, srlm_view *cache, const srlm_view *kv,
                            const srlm_attn_shape *s);
    /* causal GQA attention of q (B*T, nh*hd) over the cache -> out (B*T, nh*hd);
     * lse (may be NULL): (B*T, nh) F32, each row's natural-log sum of exp of its
     * scaled scores (0 on padding rows), kept for attention_backward */
    srlm_status (*attention)(srlm_backend *be, srlm_view *out, const srlm_view *q,
                             const srlm_view *k_cache, const srlm_view *v_cache,
                             const srlm_attn_shape *s, srlm_view *lse);
    /* out = silu(gate) * up, elementwise */
    srlm_status (*swiglu)(srlm_backend *be, srlm_view *out, const srlm_view *gate,
                          const srlm_view *up);
    /* dst row i = src row src_rows[i], for i < n (src_rows in host memory) */
    srlm_status (*copy_rows)(srlm_backend *be, srlm_view *dst, const srlm_view *src,
                             const int *src_rows, int n);
    /* dst = src (same shape) */
    srlm_status (*copy)(srlm_backend *be, srlm_view *dst, const srlm_view *src);
    /* y += x */
    srlm_status (*add)(srlm_backend *be, srlm_view *y, const srlm_view *x);
    /* x += r, then y = rmsnorm(x) with w: add then rmsnorm (the same bits), in
     * one pass where the backend can (a residual and the next norm); y must
     * not overlap x or r */
    srlm_status (*add_rmsnorm)(srlm_backend *be, srlm_view *x, srlm_view *y, const srlm_view *r,
                               const srlm_view *w, float eps);
    /* columns [c0, cols) of every row = value (masks padded vocab entries with -inf) */
    srlm_status (*fill_cols)(srlm_backend *be, srlm_view *v, int64_t c0, float value);

    /* log-softmax pieces over this rank's vocab shard, in one pass over the
     * logits (the CUDA kernel reads each once), so that tp ranks combine them
     * with allreduces without gathering full logits:
     *   mx[i] = max_j logits[i][j] (NaN never wins; -inf for a row of -inf,
     *           a shard that holds only vocab padding);
     *   se[i] = sum_j exp(logits[i][j] - mx[i]) (0 for a row of -inf);
     *   tl[i] = logits[i][targets[i] - vocab_start] if in shard, else 0.
     * Shards r combine as mx = max_r mx_r, se = sum_r se_r exp(mx_r - mx),
     * tl = sum_r tl_r (srlm_llama_logprobs_view). mx, se, tl and targets are
     * host arrays of length rows. */
    srlm_status (*row_logsumexp_target)(srlm_backend *be, const srlm_view *logits, const int *targets,
                                        int64_t vocab_start, float *mx, float *se, float *tl);
    /* idx[i] = argmax_j logits[i][j] (first on ties), val[i] its value; host arrays */
    srlm_status (*row_argmax)(srlm_backend *be, const srlm_view *logits, int *idx, float *val);

    /* dropout in place: x[i][j] = keep ? x[i][j] / (1 - p) : 0, where keep is
     * srlm_rng_uniform(key, i * cols + j) >= p. The mask is a pure function of
     * (key, position), so the backward pass applies the same op to the gradient. */
    srlm_status (*dropout)(srlm_backend *be, srlm_view *x, float p, uint64_t key);

    /* ---- backward ops; every reduction is in a fixed order (no atomics), so
     * gradients are bit-identical from run to run ---- */
    /* dx (N, in) = dy (N, out) W (out, in); accumulate: dx += instead of = */
    srlm_status (*matmul_dx)(srlm_backend *be, srlm_view *dx, const srlm_view *dy,
                             const srlm_view *w, int accumulate);
    /* dw (out, in) = dy^T (out, N) x (N, in); accumulate: dw += instead of =
     * (a first micro-batch writes its gradients, so they need no zeroing) */
    srlm_status (*matmul_dw)(srlm_backend *be, srlm_view *dw, const srlm_view *dy,
                             const srlm_view *x, int accumulate);
    /* dtable row (ids[i] - vocab_start) += dx row i, for ids in this shard, in order of i */
    srlm_status (*embedding_backward)(srlm_backend *be, srlm_view *dtable, const srlm_view *dx,
                                      const int *ids, int n, int64_t vocab_start);
    /* dx = d/dx of rmsnorm given dy; dw (1, cols) = sum over rows of dy *
     * x_normalised; accumulate: dw += instead of = */
    srlm_status (*rmsnorm_backward)(srlm_backend *be, srlm_view *dx, srlm_view *dw,
                                    const srlm_view *dy, const srlm_view *x, const srlm_view *w,
                                    float eps, int accumulate);
    /* the transpose of rope (rotation by -angle), in place on a gradient */
    srlm_status (*rope_backward)(srlm_backend *be, srlm_view *dx, const int *pos, int n_heads,
                                 int head_dim, float theta);
    /* causal GQA attention backward, recomputing the probabilities from q and k
     * (nothing seq x seq is saved): dq (B*T, nh*hd) = ; dk, dv (cache layout) =
     * (not accumulated), given dout (B*T, nh*hd). Padding rows get dq = 0.
     * saved_out and saved_lse (both or neither): the forward's out and lse for
     * these inputs; a backend may take its row statistics from them instead of
     * recomputing them (the CUDA backend does; the CPU backend needs neither). */
    srlm_status (*attention_backward)(srlm_backend *be, srlm_view *dq, srlm_view *dk,
                                      srlm_view *dv, const srlm_view *dout, const srlm_view *q,
                                      const srlm_view *k_cache, const srlm_view *v_cache,
                                      const srlm_attn_shape *s, const srlm_view *saved_out,
                                      const srlm_view *saved_lse);
    /* from out = silu(gate) * up: dgate, dup given dout (dgate/dup may not alias inputs) */
    srlm_status (*swiglu_backward)(srlm_backend *be, srlm_view *dgate, srlm_view *dup,
                                   const srlm_view *dout, const srlm_view *gate,
                                   const srlm_view *up);
    /* In place on the logits rows: logits[i][j] <- dlogp[i] * (onehot(target i) - softmax_ij),
     * the gradient of logp_i = log_softmax(row i)[target i] scaled by dlogp[i]. mx and se
     * are the GLOBAL (tp-combined) row max and sum of exp from the forward pass. Rows
     * with dlogp[i] == 0 become 0. Host arrays of length rows. */
    srlm_status (*logprob_backward)(srlm_backend *be, srlm_view *logits, const float *mx,
                                    const float *se, const int *targets, int64_t vocab_start,
                                    const float *dlogp);

    /* ---- optimizer ops, on contiguous fp32 views of one shape (the flat
     * layout's slices); elementwise or in an order fixed by the size, so the
     * results do not depend on threads ---- */
    /* one AdamW step in place on param (the fp32 master weights), m and v,
     * given grad: srlm_adamw_apply's operations (train/optimizer.h). work
     * (NULL: none) is a contiguous F32 or BF16 view as large as param that
     * also gets the updated param, rounded to its dtype: a bf16 model's working
     * weights, written in the same pass instead of by a copy after it */
    srlm_status (*adamw)(srlm_backend *be, srlm_view *param, const srlm_view *grad, srlm_view *m,
                         srlm_view *v, srlm_view *work, const srlm_adamw_consts *c);
    /* out[i] (host) = sum of xs[i]^2 in double for each of the n flat F32
     * views: the gradient norm's pieces, every tensor's in one call so that a
     * device waits once for all of them, not once per tensor */
    srlm_status (*sum_squares)(srlm_backend *be, const srlm_view *xs, int n, double *out);
    /* x *= s (gradient clipping) */
    srlm_status (*scale)(srlm_backend *be, srlm_view *x, float s);
} srlm_backend_ops;

struct srlm_backend {
    const srlm_backend_ops *ops;
    int                     threads;
    /* the dtype the model keeps its weights, activations and KV cache in
     * (backend.dtype; F32 when made, BF16 set by the caller); gradients, AdamW
     * state, master weights and attention lse are F32 whatever it is */
    srlm_dtype              dtype;
    void                   *impl;
};

/* Decode attention's length bound for a step whose longest sequence holds
 * len positions (backend.h's recorded steps): len rounded up to a multiple of
 * 256 (up to 4096) or of 1024 (past it), at most max_seq. A backend that
 * splits decode attention by length splits by this bound, recorded or not, so
 * that a replayed step computes the same bits as the same step run op by op. */
int srlm_decode_len_bound(int len, int max_seq);

/* threads <= 0: one per online CPU. Sets the BLAS's thread count too. */
srlm_status srlm_backend_cpu_new(srlm_backend **be, int threads);
/* The CPU backend's ops on memory unreadable outside them (host_memory = 0):
 * a test of the device-memory paths on a machine without a GPU
 * (backend_cpu_guarded.c). */
srlm_status srlm_backend_cpu_guarded_new(srlm_backend **be, int threads);
/* CUDA builds only (SRLM_HAVE_CUDA): GPU `device` (0 .. count-1), one stream,
 * one cuBLAS handle; every view is device memory. src/backend/cuda/. */
srlm_status srlm_backend_cuda_new(srlm_backend **be, int device);
/* Either backend (NULL is fine). */
void        srlm_backend_free(srlm_backend *be);

#endif
