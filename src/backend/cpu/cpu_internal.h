/* Shared by the CPU backend's translation units: the fp32 ops (forward in
 * backend_cpu.c, backward in backend_cpu_backward.c), which take F32 views
 * only, and the ops table (backend_cpu_bf16.c), which sends F32 views to them
 * as they are and BF16 views through fp32 copies. */
#ifndef SRLM_CPU_INTERNAL_H
#define SRLM_CPU_INTERNAL_H

#include "backend/backend.h"

#define ROW(v, i) ((float *)(v)->data + (size_t)(i) * (size_t)(v)->stride)

/* Query rows per attention block: bounds the per-thread score scratch to
 * QBLOCK x (the most keys a sequence sees) floats. */
enum { QBLOCK = 64 };

/* the CPU backend's ops table (backend_cpu_bf16.c) */
extern const srlm_backend_ops cpu_ops;

/* memory and the optimizer (backend_cpu.c); the optimizer ops are F32 only */
void        cpu_destroy(srlm_backend *be);
srlm_status cpu_alloc(srlm_backend *be, srlm_view *v, srlm_dtype dtype, int64_t rows, int64_t cols,
                      const char *what);
void        cpu_free(srlm_backend *be, srlm_view *v);
srlm_status cpu_adamw(srlm_backend *be, srlm_view *param, const srlm_view *grad, srlm_view *m,
                      srlm_view *v, srlm_view *work, const srlm_adamw_consts *c);
srlm_status cpu_sum_squares(srlm_backend *be, const srlm_view *xs, int n, double *out);
srlm_status cpu_scale(srlm_backend *be, srlm_view *x, float s);

/* the fp32 ops, each the table entry of its name for F32 views */
srlm_status cpu_upload(srlm_backend *be, srlm_view *dst, const float *src);
srlm_status cpu_download(srlm_backend *be, float *dst, const srlm_view *src);
srlm_status cpu_fill(srlm_backend *be, srlm_view *v, float value);
srlm_status cpu_matmul(srlm_backend *be, srlm_view *y, const srlm_view *x, const srlm_view *w,
                       int accumulate);
srlm_status cpu_embedding(srlm_backend *be, srlm_view *out, const srlm_view *table, const int *ids,
                          int n, int64_t vocab_start);
srlm_status cpu_rmsnorm(srlm_backend *be, srlm_view *y, const srlm_view *x, const srlm_view *w,
                        float eps);
srlm_status cpu_rope(srlm_backend *be, srlm_view *x, const int *pos, int n_heads, int head_dim,
                     float theta);
srlm_status cpu_kv_store(srlm_backend *be, srlm_view *cache, const srlm_view *kv,
                         const srlm_attn_shape *s);
srlm_status cpu_attention(srlm_backend *be, srlm_view *out, const srlm_view *q,
                          const srlm_view *k_cache, const srlm_view *v_cache,
                          const srlm_attn_shape *s, srlm_view *lse);
srlm_status cpu_swiglu(srlm_backend *be, srlm_view *out, const srlm_view *gate, const srlm_view *up);
srlm_status cpu_copy_rows(srlm_backend *be, srlm_view *dst, const srlm_view *src,
                          const int *src_rows, int n);
srlm_status cpu_copy(srlm_backend *be, srlm_view *dst, const srlm_view *src);
srlm_status cpu_add(srlm_backend *be, srlm_view *y, const srlm_view *x);
srlm_status cpu_fill_cols(srlm_backend *be, srlm_view *v, int64_t c0, float value);
srlm_status cpu_row_logsumexp_target(srlm_backend *be, const srlm_view *logits, const int *targets,
                                     int64_t vocab_start, float *mx, float *se, float *tl);
srlm_status cpu_row_argmax(srlm_backend *be, const srlm_view *logits, int *idx, float *val);
srlm_status cpu_dropout(srlm_backend *be, srlm_view *x, float p, uint64_t key);
srlm_status cpu_matmul_dx(srlm_backend *be, srlm_view *dx, const srlm_view *dy,
                          const srlm_view *w, int accumulate);
srlm_status cpu_matmul_dw(srlm_backend *be, srlm_view *dw, const srlm_view *dy,
                          const srlm_view *x, int accumulate);
srlm_status cpu_embedding_backward(srlm_backend *be, srlm_view *dtable, const srlm_view *dx,
                                   const int *ids, int n, int64_t vocab_start);
srlm_status cpu_rmsnorm_backward(srlm_backend *be, srlm_view *dx, srlm_view *dw,
                                 const srlm_view *dy, const srlm_view *x, const srlm_view *w,
                                 float eps, int accumulate);
srlm_status cpu_rope_backward(srlm_backend *be, srlm_view *dx, const int *pos, int n_heads,
                              int head_dim, float theta);
srlm_status cpu_attention_backward(srlm_backend *be, srlm_view *dq, srlm_view *dk,
                                   srlm_view *dv, const srlm_view *dout, const srlm_view *q,
                                   const srlm_view *k_cache, const srlm_view *v_cache,
                                   const srlm_attn_shape *s, const srlm_view *saved_out,
                                   const srlm_view *saved_lse);
srlm_status cpu_swiglu_backward(srlm_backend *be, srlm_view *dgate, srlm_view *dup,
                                const srlm_view *dout, const srlm_view *gate,
                                const srlm_view *up);
srlm_status cpu_logprob_backward(srlm_backend *be, srlm_view *logits, const float *mx,
                                 const float *se, const int *targets, int64_t vocab_start,
                                 const float *dlogp);

/* Causal attention probabilities of a block of nq queries (rows of qb, stride ldq)
 * over len keys (rows of kb, stride ldk) into sc (nq x len): softmax(scale q.k);
 * query i sees keys 0 .. first_valid + i - 1, the rest are 0. */
void cpu_attn_probs(float *sc, const float *qb, int64_t ldq, const float *kb, int64_t ldk, int nq,
                    int len, int hd, float scale, int first_valid, float *lse, int64_t ld_lse);

/* One causal attention problem inside an attention call: n_new query rows
 * from row q0 of q, over the cache rows from k0, the first n_past of them
 * cached before the first query. A call is one piece per sequence, or, with
 * packed sequences (srlm_attn_shape's n_seg), one per packed sequence. */
typedef struct {
    int64_t q0, k0;
    int     n_past, n_new;
} cpu_attn_piece;

/* The pieces of a checked shape into a malloc'd array (*n of them, the most
 * keys one of them sees in *max_keys; NULL when out of memory). */
cpu_attn_piece *cpu_attn_pieces(const srlm_attn_shape *s, int *n, int *max_keys);

/* rope with the angle's sign chosen by `sign` (+1 forward, -1 backward) */
srlm_status cpu_rope_rotate(srlm_view *x, const int *pos, int n_heads, int head_dim, float theta,
                            float sign);

#endif
