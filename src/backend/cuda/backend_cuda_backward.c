/* The CUDA backend's backward ops. Every kernel reduces in a fixed order (no
 * atomics) and cuBLAS runs deterministically on one stream (backend_cuda.c), so
 * gradients are bit-identical from run to run on the same GPU. */
#include <stdlib.h>

#include "backend/cuda/cuda_internal.h"
#include "embedding.h"
#include "logprob.h"
#include "rmsnorm.h"
#include "swiglu.h"

/* dx (N, in) = dy (N, out) W (out, in). Column-major: dx^T (in x N) =
 * W^T (in x out) dy^T (out x N); the memory of W is W^T and that of dy is dy^T
 * already, so no transposes. m = in, n = N, k = out; lda = W.stride,
 * ldb = dy.stride, ldc = dx.stride. */
srlm_status cuda_matmul_dx(srlm_backend *be, srlm_view *dx, const srlm_view *dy, const srlm_view *w,
                           int accumulate) {
    if (dy->cols != w->rows || dx->cols != w->cols || dx->rows != dy->rows)
        return SRLM_ERR(SRLM_BAD_INPUT, "matmul_dx shapes: dx (%lld,%lld) = dy (%lld,%lld) W (%lld,%lld)",
                        (long long)dx->rows, (long long)dx->cols, (long long)dy->rows, (long long)dy->cols,
                        (long long)w->rows, (long long)w->cols);
    return cuda_gemm(be, "matmul_dx", CUBLAS_OP_N, CUBLAS_OP_N, w->cols, dy->rows, w->rows, w, dy,
                     accumulate ? 1.0f : 0.0f, dx);
}

/* dW (out, in) (+)= dy^T (out, N) x (N, in). Column-major: dW^T (in x out) =
 * x^T (in x N) dy (N x out); the memory of x is x^T as it is, that of dy is the
 * column-major (out x N) dy^T, hence op T on it. m = in, n = out, k = N;
 * lda = x.stride, ldb = dy.stride, ldc = dW.stride; beta = accumulate (0: the
 * GEMM does not read dW, a pass over the gradients saved). */
srlm_status cuda_matmul_dw(srlm_backend *be, srlm_view *dw, const srlm_view *dy, const srlm_view *x,
                           int accumulate) {
    if (dw->rows != dy->cols || dw->cols != x->cols || dy->rows != x->rows)
        return SRLM_ERR(SRLM_BAD_INPUT, "matmul_dw shapes: dW (%lld,%lld) = dy^T (%lld,%lld) x (%lld,%lld)",
                        (long long)dw->rows, (long long)dw->cols, (long long)dy->cols, (long long)dy->rows,
                        (long long)x->rows, (long long)x->cols);
    if (dy->rows == 0) return accumulate ? SRLM_OK : cuda_fill(be, dw, 0.0f); /* an empty sum */
    return cuda_gemm(be, "matmul_dw", CUBLAS_OP_N, CUBLAS_OP_T, x->cols, dy->cols, x->rows, x, dy,
                     accumulate ? 1.0f : 0.0f, dw);
}

typedef struct {
    int row, i; /* table row, dx row */
} row_ref;

static int by_row_then_i(const void *a, const void *b) {
    const row_ref *x = a, *y = b;
    if (x->row != y->row) return x->row < y->row ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* The kernel adds, for each table row, its dx rows in increasing i without
 * atomics; it needs the rows grouped, which the host does here from the ids:
 * rows[] (dx rows by table row, increasing i within one), start[] (n_groups + 1)
 * and table_row[] (n_groups). */
srlm_status cuda_embedding_backward(srlm_backend *be, srlm_view *dtable, const srlm_view *dx,
                                    const int *ids, int n, int64_t vocab_start) {
    /* the dtypes may differ: fp32 gradients of a bf16 model */
    SRLM_CHECK(cuda_check_dtype("embedding_backward", "dtable", dtable));
    SRLM_CHECK(cuda_check_dtype("embedding_backward", "dx", dx));
    if (dtable->cols != dx->cols || n < 0 || n > dx->rows)
        return SRLM_ERR(SRLM_BAD_INPUT, "embedding_backward shapes: %d ids, dx (%lld,%lld) %s into dtable "
                        "(%lld,%lld) %s", n, (long long)dx->rows, (long long)dx->cols,
                        srlm_dtype_name(dx->dtype), (long long)dtable->rows, (long long)dtable->cols,
                        srlm_dtype_name(dtable->dtype));
    size_t cap = (size_t)n + 1;
    row_ref *refs = malloc(sizeof(row_ref) * cap);
    int *groups = malloc(sizeof(int) * 3 * cap); /* rows | start | table_row */
    if (!refs || !groups) {
        free(refs);
        free(groups);
        return SRLM_ERR(SRLM_FAILED, "out of memory grouping %d embedding gradient rows", n);
    }
    int m = 0;
    for (int i = 0; i < n; i++) {
        int64_t r = (int64_t)ids[i] - vocab_start;
        if (r >= 0 && r < dtable->rows) refs[m++] = (row_ref){(int)r, i};
    }
    qsort(refs, (size_t)m, sizeof *refs, by_row_then_i);
    int *rows = groups, *start = groups + cap, *table_row = groups + 2 * cap;
    int n_groups = 0;
    for (int j = 0; j < m; j++) {
        if (j == 0 || refs[j].row != refs[j - 1].row) {
            start[n_groups] = j;
            table_row[n_groups++] = refs[j].row;
        }
        rows[j] = refs[j].i;
    }
    start[n_groups] = m;
    srlm_status st = SRLM_OK;
    if (n_groups > 0) {
        cuda_in in[3] = {{rows, sizeof(int) * (size_t)m},
                         {start, sizeof(int) * (size_t)(n_groups + 1)},
                         {table_row, sizeof(int) * (size_t)n_groups}};
        void *dev[4];
        st = cuda_stage(be, in, 3, 0, dev);
        if (st == SRLM_OK)
            st = srlm_cuda_embedding_backward(dtable, dx, dev[0], dev[1], dev[2], n_groups, cuda_stream(be));
    }
    free(refs);
    free(groups);
    return st;
}

srlm_status cuda_rmsnorm_backward(srlm_backend *be, srlm_view *dx, srlm_view *dw, const srlm_view *dy,
                                  const srlm_view *x, const srlm_view *w, float eps, int accumulate) {
    SRLM_CHECK(cuda_check_same("rmsnorm_backward", "dx", dx, "x", x));
    SRLM_CHECK(cuda_check_same("rmsnorm_backward", "dy", dy, "x", x));
    SRLM_CHECK(cuda_check_dtype("rmsnorm_backward", "dw", dw)); /* any: fp32 gradients of bf16 */
    if (w->rows != 1 || w->cols != x->cols || w->dtype != x->dtype || dw->rows != 1 || dw->cols != x->cols)
        return SRLM_ERR(SRLM_BAD_INPUT, "rmsnorm_backward shapes: x (%lld,%lld) %s, w (%lld,%lld) %s, dw "
                        "(%lld,%lld): w must be (1, %lld) of x's dtype, dw (1, %lld)", (long long)x->rows,
                        (long long)x->cols, srlm_dtype_name(x->dtype), (long long)w->rows,
                        (long long)w->cols, srlm_dtype_name(w->dtype), (long long)dw->rows,
                        (long long)dw->cols, (long long)x->cols, (long long)x->cols);
    void *ws = NULL;
    if (x->rows > 0) SRLM_CHECK(cuda_workspace(be, srlm_cuda_rmsnorm_backward_workspace(x->rows, x->cols), &ws));
    return srlm_cuda_rmsnorm_backward(dx, dw, dy, x, w, eps, accumulate, ws, cuda_stream(be));
}

srlm_status cuda_rope_backward(srlm_backend *be, srlm_view *dx, const int *pos, int n_heads,
                               int head_dim, float theta) {
    return cuda_rope_signed(be, "rope_backward", dx, pos, n_heads, head_dim, theta, -1.0f);
}

srlm_status cuda_attention_backward(srlm_backend *be, srlm_view *dq, srlm_view *dk, srlm_view *dv,
                                    const srlm_view *dout, const srlm_view *q,
                                    const srlm_view *k_cache, const srlm_view *v_cache,
                                    const srlm_attn_shape *s, const srlm_view *saved_out,
                                    const srlm_view *saved_lse) {
    SRLM_CHECK(cuda_check_same("attention_backward", "dq", dq, "q", q));
    SRLM_CHECK(srlm_attn_saved_check(saved_out, saved_lse, s));
    if (saved_out) SRLM_CHECK(cuda_check_same("attention_backward", "saved_out", saved_out, "q", q));
    SRLM_CHECK(cuda_check_same("attention_backward", "dout", dout, "q", q));
    SRLM_CHECK(cuda_check_same("attention_backward", "dk", dk, "k_cache", k_cache));
    SRLM_CHECK(cuda_check_same("attention_backward", "dv", dv, "v_cache", v_cache));
    SRLM_CHECK(cuda_check_same("attention_backward", "k_cache", k_cache, "v_cache", v_cache));
    if (q->rows != (int64_t)s->B * s->T || q->cols < (int64_t)s->n_heads * s->head_dim ||
        k_cache->cols < (int64_t)s->n_kv_heads * s->head_dim || k_cache->dtype != q->dtype)
        return SRLM_ERR(SRLM_BAD_INPUT, "attention_backward shapes: q (%lld,%lld) %s for B %d x T %d, %d "
                        "heads of %d; cache (%lld,%lld) %s for %d kv heads", (long long)q->rows,
                        (long long)q->cols, srlm_dtype_name(q->dtype), s->B, s->T, s->n_heads, s->head_dim,
                        (long long)k_cache->rows, (long long)k_cache->cols,
                        srlm_dtype_name(k_cache->dtype), s->n_kv_heads);
    if (s->B == 0 || s->T == 0) return SRLM_OK;
    srlm_cuda_attn_shape cs;
    SRLM_CHECK(cuda_attn_stage(be, "attention_backward", k_cache, s, &cs));
    size_t bytes = srlm_cuda_attention_bwd_workspace(&cs);
    void *ws;
    SRLM_CHECK(cuda_workspace(be, bytes, &ws));
    srlm_cuda_attn_saved saved = {saved_out, saved_lse ? (const float *)saved_lse->data : NULL};
    return srlm_cuda_attention_bwd(dq, dk, dv, dout, q, k_cache, v_cache, &cs, saved_out ? &saved : NULL, ws, bytes,
                                   cuda_stream(be));
}

srlm_status cuda_swiglu_backward(srlm_backend *be, srlm_view *dgate, srlm_view *dup,
                                 const srlm_view *dout, const srlm_view *gate, const srlm_view *up) {
    SRLM_CHECK(cuda_check_same("swiglu_backward", "dgate", dgate, "gate", gate));
    SRLM_CHECK(cuda_check_same("swiglu_backward", "dup", dup, "gate", gate));
    SRLM_CHECK(cuda_check_same("swiglu_backward", "dout", dout, "gate", gate));
    SRLM_CHECK(cuda_check_same("swiglu_backward", "up", up, "gate", gate));
    if (gate->rows == 0) return SRLM_OK;
    return srlm_cuda_swiglu_backward(dgate, dup, dout, gate, up, cuda_stream(be));
}

srlm_status cuda_logprob_backward(srlm_backend *be, srlm_view *logits, const float *mx,
                                  const float *se, const int *targets, int64_t vocab_start,
                                  const float *dlogp) {
    SRLM_CHECK(cuda_check_dtype("logprob_backward", "logits", logits));
    const size_t rows = (size_t)logits->rows;
    if (rows == 0) return SRLM_OK;
    cuda_in in[4] = {{mx, sizeof(float) * rows},
                     {se, sizeof(float) * rows},
                     {targets, sizeof(int) * rows},
                     {dlogp, sizeof(float) * rows}};
    void *dev[5];
    SRLM_CHECK(cuda_stage(be, in, 4, 0, dev));
    return srlm_cuda_logprob_backward(logits, dev[0], dev[1], dev[2], vocab_start, dev[3], cuda_stream(be));
}
