/* The CUDA backend's forward ops: the GEMMs through cuBLAS, everything else
 * through the kernels' launch APIs (the headers in kernels/). Host arrays of the ops table
 * (ids, positions, slots, targets, ...) are staged on the device first
 * (cuda_stage); host results come back through cuda_fetch. */
#include <limits.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"
#include "embedding.h"
#include "logprob.h"
#include "rmsnorm.h"
#include "rope.h"
#include "sampling.h"
#include "swiglu.h"
#include "tensor_ops.h"

static cudaDataType cuda_type(srlm_dtype t) { return t == SRLM_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

/* cuBLAS is column-major, srlm views are row-major, and a row-major (r x c)
 * matrix with row stride ld is the same memory as a column-major (c x r) matrix
 * with leading dimension ld: its transpose. So every row-major product
 * C = A B is computed as the column-major C^T = B^T A^T, with the views'
 * strides as leading dimensions; the callers below spell out each case.
 *
 * Precision: fp32 views use CUBLAS_COMPUTE_32F with the default math mode, which
 * never down-converts to TF32 (that needs CUBLAS_COMPUTE_32F_FAST_TF32 or the
 * TF32 math mode), so fp32 results stay within ~1e-6 of the CPU backend; bf16
 * views use CUBLAS_COMPUTE_32F too: tensor cores, fp32 accumulation. With a bf16
 * C and beta 1 (accumulate), cuBLAS rounds the product to bf16 before adding C
 * (seen on an H100 on every element: test_backend_cuda_gpu), one rounding more
 * than the CPU twin; within what other summation orders give (RESULTS.md). */
srlm_status cuda_gemm(srlm_backend *be, const char *op, cublasOperation_t ta, cublasOperation_t tb,
                      int64_t m, int64_t n, int64_t k, const srlm_view *a, const srlm_view *b,
                      float beta, srlm_view *c) {
    SRLM_CHECK(cuda_check_dtype(op, "an input", a));
    SRLM_CHECK(cuda_check_dtype(op, "the output", c));
    if (a->dtype != b->dtype || (c->dtype != SRLM_F32 && c->dtype != a->dtype))
        return SRLM_ERR(SRLM_BAD_INPUT, "cuda backend: %s: inputs %s and %s, output %s: the inputs must "
                        "share a dtype and the output be F32 or theirs", op, srlm_dtype_name(a->dtype),
                        srlm_dtype_name(b->dtype), srlm_dtype_name(c->dtype));
    if (m == 0 || n == 0) return SRLM_OK;
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX || a->stride > INT_MAX || b->stride > INT_MAX ||
        c->stride > INT_MAX)
        return SRLM_ERR(SRLM_BAD_INPUT, "cuda backend: %s: dimensions (%lld, %lld, %lld) exceed cuBLAS's int",
                        op, (long long)m, (long long)n, (long long)k);
    const float alpha = 1.0f;
    CUDA_BLAS_TRY(cuda_blas.gemm_ex(cuda_of(be)->blas, ta, tb, (int)m, (int)n, (int)k, &alpha, a->data,
                                 cuda_type(a->dtype), (int)a->stride, b->data, cuda_type(b->dtype),
                                 (int)b->stride, &beta, c->data, cuda_type(c->dtype), (int)c->stride,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return SRLM_OK;
}

/* y (N, out) = x (N, in) W^T, W (out, in). Column-major: y^T (out x N) =
 * W (out x in) x^T (in x N), where the memory of W is the column-major
 * (in x out) W^T, hence op T on it, and the memory of x is x^T as it is.
 * m = out, n = N, k = in; lda = W.stride, ldb = x.stride, ldc = y.stride. */
srlm_status cuda_matmul(srlm_backend *be, srlm_view *y, const srlm_view *x, const srlm_view *w,
                        int accumulate) {
    if (x->cols != w->cols || y->rows != x->rows || y->cols != w->rows)
        return SRLM_ERR(SRLM_BAD_INPUT, "matmul shapes: y (%lld,%lld) = x (%lld,%lld) W^T, W (%lld,%lld)",
                        (long long)y->rows, (long long)y->cols, (long long)x->rows, (long long)x->cols,
                        (long long)w->rows, (long long)w->cols);
    return cuda_gemm(be, "matmul", CUBLAS_OP_T, CUBLAS_OP_N, w->rows, x->rows, x->cols, w, x,
                     accumulate ? 1.0f : 0.0f, y);
}

srlm_status cuda_embedding(srlm_backend *be, srlm_view *out, const srlm_view *table, const int *ids,
                           int n, int64_t vocab_start) {
    SRLM_CHECK(cuda_check_dtype("embedding", "out", out));
    if (out->dtype != table->dtype || out->cols != table->cols || n < 0 || n > out->rows)
        return SRLM_ERR(SRLM_BAD_INPUT, "embedding shapes: %d ids into out (%lld,%lld) %s from table "
                        "(%lld,%lld) %s", n, (long long)out->rows, (long long)out->cols,
                        srlm_dtype_name(out->dtype), (long long)table->rows, (long long)table->cols,
                        srlm_dtype_name(table->dtype));
    if (n == 0) return SRLM_OK;
    cuda_in in[1] = {{ids, sizeof(int) * (size_t)n}};
    void *dev[2];
    SRLM_CHECK(cuda_stage(be, in, 1, 0, dev));
    srlm_view o = srlm_view_rows(*out, 0, n);
    return srlm_cuda_embedding(&o, table, dev[0], n, vocab_start, cuda_stream(be));
}

/* A norm's weight: (1, cols) of x's dtype. */
static srlm_status check_norm_weight(const char *op, const srlm_view *x, const srlm_view *w) {
    if (w->rows != 1 || w->cols != x->cols || w->dtype != x->dtype)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s shapes: x (%lld,%lld) %s, w (%lld,%lld) %s: w must be "
                        "(1, %lld) of x's dtype", op, (long long)x->rows, (long long)x->cols,
                        srlm_dtype_name(x->dtype), (long long)w->rows, (long long)w->cols,
                        srlm_dtype_name(w->dtype), (long long)x->cols);
    return SRLM_OK;
}

srlm_status cuda_rmsnorm(srlm_backend *be, srlm_view *y, const srlm_view *x, const srlm_view *w,
                         float eps) {
    SRLM_CHECK(cuda_check_same("rmsnorm", "y", y, "x", x));
    SRLM_CHECK(check_norm_weight("rmsnorm", x, w));
    if (x->rows == 0) return SRLM_OK;
    return srlm_cuda_rmsnorm(y, x, w, eps, cuda_stream(be));
}

srlm_status cuda_rope_signed(srlm_backend *be, const char *op, srlm_view *x, const int *pos,
                             int n_heads, int head_dim, float theta, float sign) {
    SRLM_CHECK(cuda_check_dtype(op, "x", x));
    if ((int64_t)n_heads * head_dim > x->cols || head_dim % 2)
        return SRLM_ERR(SRLM_BAD_INPUT, "%s shapes: x (%lld,%lld) holds fewer than %d heads of %d (even) "
                        "values", op, (long long)x->rows, (long long)x->cols, n_heads, head_dim);
    if (x->rows == 0) return SRLM_OK;
    cuda_in in[1] = {{pos, sizeof(int) * (size_t)x->rows}};
    void *dev[2];
    SRLM_CHECK(cuda_stage(be, in, 1, 0, dev));
    return srlm_cuda_rope(x, dev[0], n_heads, head_dim, theta, sign, cuda_stream(be));
}

srlm_status cuda_rope(srlm_backend *be, srlm_view *x, const int *pos, int n_heads, int head_dim,
                      float theta) {
    return cuda_rope_signed(be, "rope", x, pos, n_heads, head_dim, theta, 1.0f);
}

srlm_status cuda_kv_store(srlm_backend *be, srlm_view *cache, const srlm_view *kv,
                          const srlm_attn_shape *s) {
    SRLM_CHECK(cuda_check_dtype("kv_store", "kv", kv));
    if (kv->dtype != cache->dtype || kv->cols != cache->cols || kv->rows != (int64_t)s->B * s->T)
        return SRLM_ERR(SRLM_BAD_INPUT, "kv_store shapes: kv (%lld,%lld) %s for B %d x T %d into cache "
                        "(%lld,%lld) %s", (long long)kv->rows, (long long)kv->cols, srlm_dtype_name(kv->dtype),
                        s->B, s->T, (long long)cache->rows, (long long)cache->cols,
                        srlm_dtype_name(cache->dtype));
    if (s->B == 0) return SRLM_OK;
    srlm_cuda_attn_shape cs;
    SRLM_CHECK(cuda_attn_stage(be, "kv_store", cache, s, &cs));
    return srlm_cuda_kv_store(cache, kv, s->B, s->T, s->max_seq, cs.slot, cs.n_past, cs.n_new,
                              cuda_stream(be));
}

srlm_status cuda_attention(srlm_backend *be, srlm_view *out, const srlm_view *q,
                           const srlm_view *k_cache, const srlm_view *v_cache,
                           const srlm_attn_shape *s, srlm_view *lse) {
    SRLM_CHECK(cuda_check_same("attention", "out", out, "q", q));
    SRLM_CHECK(cuda_check_same("attention", "k_cache", k_cache, "v_cache", v_cache));
    if (q->rows != (int64_t)s->B * s->T || q->cols < (int64_t)s->n_heads * s->head_dim ||
        k_cache->cols < (int64_t)s->n_kv_heads * s->head_dim || k_cache->dtype != q->dtype)
        return SRLM_ERR(SRLM_BAD_INPUT, "attention shapes: q (%lld,%lld) %s for B %d x T %d, %d heads of "
                        "%d; cache (%lld,%lld) %s for %d kv heads", (long long)q->rows, (long long)q->cols,
                        srlm_dtype_name(q->dtype), s->B, s->T, s->n_heads, s->head_dim,
                        (long long)k_cache->rows, (long long)k_cache->cols,
                        srlm_dtype_name(k_cache->dtype), s->n_kv_heads);
    SRLM_CHECK(srlm_attn_lse_check("cuda backend: attention", lse, s));
    if (s->B == 0 || s->T == 0) return SRLM_OK;
    srlm_cuda_attn_shape cs;
    SRLM_CHECK(cuda_attn_stage(be, "attention", k_cache, s, &cs));
    if (s->T == 1 && !lse) { /* decoding: split the long key range over blocks */
        /* by the length bound, recorded or not: a recorded step replays at
         * every length under it, with the bits of the step run op by op */
        cs.max_len = srlm_decode_len_bound(cs.max_len, s->max_seq);
        size_t bytes = srlm_cuda_attention_decode_workspace(&cs);
        void *ws;
        SRLM_CHECK(cuda_workspace(be, bytes, &ws));
        return srlm_cuda_attention_decode(out, q, k_cache, v_cache, &cs, ws, bytes, cuda_stream(be));
    }
    return srlm_cuda_attention_fwd(out, q, k_cache, v_cache, &cs, lse ? (float *)lse->data : NULL,
                                   cuda_stream(be));
}

srlm_status cuda_swiglu(srlm_backend *be, srlm_view *out, const srlm_view *gate, const srlm_view *up) {
    SRLM_CHECK(cuda_check_same("swiglu", "out", out, "gate", gate));
    SRLM_CHECK(cuda_check_same("swiglu", "gate", gate, "up", up));
    if (out->rows == 0) return SRLM_OK;
    return srlm_cuda_swiglu(out, gate, up, cuda_stream(be));
}

srlm_status cuda_copy_rows(srlm_backend *be, srlm_view *dst, const srlm_view *src,
                           const int *src_rows, int n) {
    SRLM_CHECK(cuda_check_dtype("copy_rows", "dst", dst));
    if (dst->dtype != src->dtype || dst->cols != src->cols || n < 0 || n > dst->rows)
        return SRLM_ERR(SRLM_BAD_INPUT, "copy_rows shapes: %d rows into dst (%lld,%lld) %s from src "
                        "(%lld,%lld) %s", n, (long long)dst->rows, (long long)dst->cols,
                        srlm_dtype_name(dst->dtype), (long long)src->rows, (long long)src->cols,
                        srlm_dtype_name(src->dtype));
    for (int i = 0; i < n; i++)
        if (src_rows[i] < 0 || src_rows[i] >= src->rows)
            return SRLM_ERR(SRLM_BAD_INPUT, "copy_rows: source row %d (entry %d) outside [0, %lld)",
                            src_rows[i], i, (long long)src->rows);
    if (n == 0) return SRLM_OK;
    cuda_in in[1] = {{src_rows, sizeof(int) * (size_t)n}};
    void *dev[2];
    SRLM_CHECK(cuda_stage(be, in, 1, 0, dev));
    return srlm_cuda_copy_rows(dst, src, dev[0], n, cuda_stream(be));
}

srlm_status cuda_copy(srlm_backend *be, srlm_view *dst, const srlm_view *src) {
    SRLM_CHECK(cuda_check_dtype("copy", "dst", dst));
    SRLM_CHECK(cuda_check_dtype("copy", "src", src));
    if (dst->rows != src->rows || dst->cols != src->cols)
        return SRLM_ERR(SRLM_BAD_INPUT, "copy shapes: dst (%lld,%lld), src (%lld,%lld)", (long long)dst->rows,
                        (long long)dst->cols, (long long)src->rows, (long long)src->cols);
    if (src->rows == 0) return SRLM_OK;
    return srlm_cuda_copy(dst, src, cuda_stream(be));
}

srlm_status cuda_add(srlm_backend *be, srlm_view *y, const srlm_view *x) {
    SRLM_CHECK(cuda_check_same("add", "y", y, "x", x));
    if (y->rows == 0) return SRLM_OK;
    return srlm_cuda_add(y, x, cuda_stream(be));
}

srlm_status cuda_add_rmsnorm(srlm_backend *be, srlm_view *x, srlm_view *y, const srlm_view *r, const srlm_view *w,
                             float eps) {
    SRLM_CHECK(cuda_check_same("add_rmsnorm", "x", x, "r", r));
    SRLM_CHECK(cuda_check_same("add_rmsnorm", "x", x, "y", y));
    SRLM_CHECK(check_norm_weight("add_rmsnorm", x, w));
    if (x->rows == 0) return SRLM_OK;
    return srlm_cuda_add_rmsnorm(x, y, r, w, eps, cuda_stream(be));
}

srlm_status cuda_fill(srlm_backend *be, srlm_view *v, float value) {
    SRLM_CHECK(cuda_check_dtype("fill", "v", v));
    if (v->rows == 0) return SRLM_OK;
    return srlm_cuda_fill(v, value, cuda_stream(be));
}

srlm_status cuda_fill_cols(srlm_backend *be, srlm_view *v, int64_t c0, float value) {
    SRLM_CHECK(cuda_check_dtype("fill_cols", "v", v));
    if (c0 < 0)
        return SRLM_ERR(SRLM_BAD_INPUT, "fill_cols: first column %lld is negative", (long long)c0);
    if (v->rows == 0 || c0 >= v->cols) return SRLM_OK;
    return srlm_cuda_fill_cols(v, c0, value, cuda_stream(be));
}

srlm_status cuda_row_logsumexp_target(srlm_backend *be, const srlm_view *logits, const int *targets,
                                      int64_t vocab_start, float *mx, float *se, float *tl) {
    SRLM_CHECK(cuda_check_dtype("row_logsumexp_target", "logits", logits));
    const size_t rows = (size_t)logits->rows;
    if (rows == 0) return SRLM_OK;
    cuda_in in[1] = {{targets, sizeof(int) * rows}};
    void *dev[2];
    SRLM_CHECK(cuda_stage(be, in, 1, 3 * sizeof(float) * rows, dev));
    float *mx_d = dev[1], *se_d = mx_d + rows, *tl_d = se_d + rows;
    /* one read of the logits; the three results come back in one transfer */
    SRLM_CHECK(srlm_cuda_row_logsumexp_target(logits, dev[0], vocab_start, mx_d, se_d, tl_d, cuda_stream(be)));
    const float *host;
    SRLM_CHECK(cuda_fetch(be, mx_d, 3 * sizeof(float) * rows, (const void **)&host));
    memcpy(mx, host, sizeof(float) * rows);
    memcpy(se, host + rows, sizeof(float) * rows);
    memcpy(tl, host + 2 * rows, sizeof(float) * rows);
    return SRLM_OK;
}

srlm_status cuda_row_argmax(srlm_backend *be, const srlm_view *logits, int *idx, float *val) {
    SRLM_CHECK(cuda_check_dtype("row_argmax", "logits", logits));
    const size_t rows = (size_t)logits->rows;
    if (rows == 0) return SRLM_OK;
    void *dev[1];
    SRLM_CHECK(cuda_stage(be, NULL, 0, (sizeof(int) + sizeof(float)) * rows, dev));
    int *idx_d = dev[0];
    float *val_d = (float *)(idx_d + rows);
    SRLM_CHECK(srlm_cuda_row_argmax(logits, idx_d, val_d, cuda_stream(be)));
    const int *host;
    SRLM_CHECK(cuda_fetch(be, idx_d, (sizeof(int) + sizeof(float)) * rows, (const void **)&host));
    memcpy(idx, host, sizeof(int) * rows);
    memcpy(val, host + rows, sizeof(float) * rows);
    return SRLM_OK;
}

/* The draws go over with the op's parameters and the tokens come back with
 * the one wait of the step: the logits never leave the device. */
srlm_status cuda_sample(srlm_backend *be, const srlm_view *logits, const struct srlm_sampling *cfg, const float *u,
                        int *token) {
    SRLM_CHECK(cuda_check_dtype("sample", "logits", logits));
    if (logits->rows == 0) return SRLM_OK;
    if (logits->rows > INT_MAX || logits->cols > INT_MAX)
        return SRLM_ERR(SRLM_BAD_INPUT, "cuda backend: sample: %lld x %lld logits is too many",
                        (long long)logits->rows, (long long)logits->cols);
    const int rows = (int)logits->rows, greedy = cfg->temperature == 0.0f;
    /* greedy reads no draws and needs no workspace (rows x vocab doubles) */
    if (!greedy && !u) return SRLM_ERR(SRLM_BAD_INPUT, "cuda backend: sample: no draws u for %d rows", rows);
    for (int i = 0; !greedy && i < rows; i++)
        if (!(u[i] >= 0.0f && u[i] < 1.0f))
            return SRLM_ERR(SRLM_BAD_INPUT, "sample: draw %g of row %d is not in [0, 1)", (double)u[i], i);
    cuda_in in[1] = {{greedy ? NULL : u, greedy ? 0 : sizeof(float) * (size_t)rows}};
    void *dev[2], *ws = NULL;
    SRLM_CHECK(cuda_stage(be, in, 1, sizeof(int) * (size_t)rows, dev));
    if (!greedy) SRLM_CHECK(cuda_workspace(be, srlm_cuda_sample_workspace(rows, (int)logits->cols), &ws));
    SRLM_CHECK(srlm_cuda_sample(logits, cfg, greedy ? NULL : dev[0], dev[1], NULL, ws, cuda_stream(be)));
    const void *host;
    SRLM_CHECK(cuda_fetch(be, dev[1], sizeof(int) * (size_t)rows, &host));
    memcpy(token, host, sizeof(int) * (size_t)rows);
    for (int i = 0; i < rows; i++)
        if (token[i] < 0)
            return SRLM_ERR(SRLM_BAD_INPUT, "sampling: row %d of the logits holds a NaN or +inf, or no finite value",
                            i);
    return SRLM_OK;
}

srlm_status cuda_dropout(srlm_backend *be, srlm_view *x, float p, uint64_t key) {
    SRLM_CHECK(cuda_check_dtype("dropout", "x", x));
    if (p <= 0.0f || x->rows == 0) return SRLM_OK;
    return srlm_cuda_dropout(x, p, key, cuda_stream(be));
}
