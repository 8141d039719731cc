/* The CPU backend's backward ops and dropout. Reductions run in a fixed order
 * (per-column loops over rows, per-KV-head loops over its query heads), so the
 * gradients are bit-identical from run to run whatever the thread timing. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/rng.h"

srlm_status cpu_dropout(srlm_backend *be, srlm_view *x, float p, uint64_t key) {
    (void)be;
    if (p <= 0.0f) return SRLM_OK;
    const float keep_scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < x->rows; i++) {
        float *r = ROW(x, i);
        for (int64_t j = 0; j < x->cols; j++)
            r[j] = srlm_rng_uniform(key, (uint64_t)(i * x->cols + j)) >= p ? r[j] * keep_scale : 0.0f;
    }
    return SRLM_OK;
}

srlm_status cpu_matmul_dx(srlm_backend *be, srlm_view *dx, const srlm_view *dy,
                          const srlm_view *w, int accumulate) {
    (void)be;
    if (dy->cols != w->rows || dx->cols != w->cols || dx->rows != dy->rows)
        return SRLM_ERR(SRLM_FAILED, "matmul_dx shapes: dx (%lld,%lld) = dy (%lld,%lld) W (%lld,%lld)",
                        (long long)dx->rows, (long long)dx->cols, (long long)dy->rows,
                        (long long)dy->cols, (long long)w->rows, (long long)w->cols);
    if (dy->rows == 0) return SRLM_OK;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)dy->rows, (int)w->cols, (int)w->rows,
                1.0f, dy->data, (int)dy->stride, w->data, (int)w->stride, accumulate ? 1.0f : 0.0f,
                dx->data, (int)dx->stride);
    return SRLM_OK;
}

srlm_status cpu_matmul_dw(srlm_backend *be, srlm_view *dw, const srlm_view *dy,
                          const srlm_view *x, int accumulate) {
    if (dw->rows != dy->cols || dw->cols != x->cols || dy->rows != x->rows)
        return SRLM_ERR(SRLM_FAILED, "matmul_dw shapes: dW (%lld,%lld) = dy^T (%lld,%lld) x (%lld,%lld)",
                        (long long)dw->rows, (long long)dw->cols, (long long)dy->cols,
                        (long long)dy->rows, (long long)x->rows, (long long)x->cols);
    if (dy->rows == 0) return accumulate ? SRLM_OK : cpu_fill(be, dw, 0.0f); /* an empty sum */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)dw->rows, (int)dw->cols, (int)dy->rows,
                1.0f, dy->data, (int)dy->stride, x->data, (int)x->stride, accumulate ? 1.0f : 0.0f, dw->data,
                (int)dw->stride);
    return SRLM_OK;
}

srlm_status cpu_embedding_backward(srlm_backend *be, srlm_view *dtable, const srlm_view *dx,
                                   const int *ids, int n, int64_t vocab_start) {
    (void)be;
    for (int i = 0; i < n; i++) { /* in token order: a repeated id sums deterministically */
        int64_t r = (int64_t)ids[i] - vocab_start;
        if (r < 0 || r >= dtable->rows) continue;
        float *d = ROW(dtable, r);
        const float *g = ROW(dx, i);
        for (int64_t j = 0; j < dx->cols; j++) d[j] += g[j];
    }
    return SRLM_OK;
}

/* y = w * x * inv with inv = (mean(x^2) + eps)^-1/2:
 *   dx_j = inv * w_j dy_j - x_j * inv^3 / n * sum_k w_k dy_k x_k
 *   dw_j (+)= sum over rows of dy_j * x_j * inv */
srlm_status cpu_rmsnorm_backward(srlm_backend *be, srlm_view *dx, srlm_view *dw,
                                 const srlm_view *dy, const srlm_view *x, const srlm_view *w,
                                 float eps, int accumulate) {
    (void)be;
    const int64_t rows = x->rows, n = x->cols;
    const float *g = w->data;
    float *inv = malloc(sizeof(float) * (size_t)(rows > 0 ? rows : 1));
    if (!inv) return SRLM_ERR(SRLM_FAILED, "out of memory in rmsnorm backward");
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        const float *xi = ROW(x, i), *dyi = ROW(dy, i);
        float *dxi = ROW(dx, i);
        float ss = 0.0f;
        for (int64_t j = 0; j < n; j++) ss += xi[j] * xi[j];
        float r = 1.0f / sqrtf(ss / (float)n + eps);
        inv[i] = r;
        float dot = 0.0f;
        for (int64_t j = 0; j < n; j++) dot += g[j] * dyi[j] * xi[j];
        float c = dot * r * r * r / (float)n;
        for (int64_t j = 0; j < n; j++) dxi[j] = r * g[j] * dyi[j] - xi[j] * c;
    }
    float *dwv = dw->data;
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n; j++) {
        float acc = 0.0f;
        for (int64_t i = 0; i < rows; i++) acc += ROW(dy, i)[j] * ROW(x, i)[j] * inv[i];
        dwv[j] = accumulate ? dwv[j] + acc : acc;
    }
    free(inv);
    return SRLM_OK;
}

srlm_status cpu_rope_backward(srlm_backend *be, srlm_view *dx, const int *pos, int n_heads,
                              int head_dim, float theta) {
    (void)be;
    return cpu_rope_rotate(dx, pos, n_heads, head_dim, theta, -1.0f);
}

/* For one (piece, KV head): its query heads one after another, query blocks of
 * QBLOCK rows; probabilities recomputed from q and k:
 *   P = softmax(scale Q K^T), dP = dO V^T, dS = P * (dP - rowsum(P * dP)),
 *   dQ = scale dS K, dK += scale dS^T Q, dV += P^T dO.
 * Pieces own disjoint rows of dq, dk and dv, so they run in parallel. */
srlm_status cpu_attention_backward(srlm_backend *be, srlm_view *dq, srlm_view *dk,
                                   srlm_view *dv, const srlm_view *dout, const srlm_view *q,
                                   const srlm_view *k_cache, const srlm_view *v_cache,
                                   const srlm_attn_shape *s, const srlm_view *saved_out,
                                   const srlm_view *saved_lse) {
    (void)be;
    /* D = rowsum(P * dP) per block below is exact here: the saved state is not
     * needed, but it is checked as every backend checks it */
    SRLM_CHECK(srlm_attn_saved_check(saved_out, saved_lse, s));
    SRLM_CHECK(srlm_attn_seg_check("attention_backward", s));
    SRLM_CHECK(srlm_attn_seq_check("attention_backward", k_cache, s));
    const int hd = s->head_dim, group = s->n_heads / s->n_kv_heads;
    const float scale = 1.0f / sqrtf((float)hd);
    /* dk, dv: every row of each used slot starts at 0 (rows no key reaches stay
     * 0); dq: padding rows are 0 */
    const size_t kv_bytes = sizeof(float) * (size_t)s->n_kv_heads * hd;
    for (int b = 0; b < s->B; b++) {
        for (int j = 0; j < s->max_seq; j++) {
            memset(ROW(dk, (int64_t)s->slot[b] * s->max_seq + j), 0, kv_bytes);
            memset(ROW(dv, (int64_t)s->slot[b] * s->max_seq + j), 0, kv_bytes);
        }
        for (int t = s->n_new[b]; t < s->T; t++)
            memset(ROW(dq, (int64_t)b * s->T + t), 0, sizeof(float) * (size_t)s->n_heads * hd);
    }
    int n_pieces, max_keys;
    cpu_attn_piece *pc = cpu_attn_pieces(s, &n_pieces, &max_keys);
    if (!pc) return SRLM_ERR(SRLM_FAILED, "out of memory for %d attention pieces", n_pieces);
    const int64_t work = (int64_t)n_pieces * s->n_kv_heads;
    int failed = 0;
#pragma omp parallel reduction(| : failed)
    {
        const size_t rows = (size_t)(s->T < QBLOCK ? s->T : QBLOCK);
        float *p = malloc(2 * rows * (size_t)max_keys * sizeof(float));
        float *dp = p ? p + rows * (size_t)max_keys : NULL;
        if (!p) failed = 1;
#pragma omp for schedule(dynamic, 1)
        for (int64_t w = 0; w < work; w++) {
            const int kvh = (int)(w % s->n_kv_heads);
            const cpu_attn_piece *pe = &pc[w / s->n_kv_heads];
            if (!p) continue;
            const float *kb = ROW(k_cache, pe->k0) + (size_t)kvh * hd;
            const float *vb = ROW(v_cache, pe->k0) + (size_t)kvh * hd;
            float *dkb = ROW(dk, pe->k0) + (size_t)kvh * hd, *dvb = ROW(dv, pe->k0) + (size_t)kvh * hd;
            for (int h = kvh * group; h < (kvh + 1) * group; h++) {
                for (int t0 = 0; t0 < pe->n_new; t0 += QBLOCK) {
                    int nq = pe->n_new - t0 < QBLOCK ? pe->n_new - t0 : QBLOCK;
                    int len = pe->n_past + t0 + nq;
                    const float *qb = ROW(q, pe->q0 + t0) + (size_t)h * hd;
                    const float *dob = ROW(dout, pe->q0 + t0) + (size_t)h * hd;
                    float *dqb = ROW(dq, pe->q0 + t0) + (size_t)h * hd;
                    cpu_attn_probs(p, qb, q->stride, kb, k_cache->stride, nq, len, hd, scale,
                                   pe->n_past + t0 + 1, NULL, 0);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, len, hd, 1.0f, dob,
                                (int)dout->stride, vb, (int)v_cache->stride, 0.0f, dp, len);
                    /* dV += P^T dO before P is overwritten by dS */
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, len, hd, nq, 1.0f, p, len,
                                dob, (int)dout->stride, 1.0f, dvb, (int)dv->stride);
                    for (int i = 0; i < nq; i++) {
                        float *pi = p + (size_t)i * len, *dpi = dp + (size_t)i * len;
                        float d = 0.0f;
                        for (int j = 0; j < len; j++) d += pi[j] * dpi[j];
                        for (int j = 0; j < len; j++) pi[j] = pi[j] * (dpi[j] - d);
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, len, scale, p, len,
                                kb, (int)k_cache->stride, 0.0f, dqb, (int)dq->stride);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, len, hd, nq, scale, p, len,
                                qb, (int)q->stride, 1.0f, dkb, (int)dk->stride);
                }
            }
        }
        free(p);
    }
    free(pc);
    if (failed) return SRLM_ERR(SRLM_FAILED, "out of memory for attention backward scratch");
    return SRLM_OK;
}

srlm_status cpu_swiglu_backward(srlm_backend *be, srlm_view *dgate, srlm_view *dup,
                                const srlm_view *dout, const srlm_view *gate,
                                const srlm_view *up) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < dout->rows; i++) {
        const float *g = ROW(gate, i), *u = ROW(up, i), *d = ROW(dout, i);
        float *dg = ROW(dgate, i), *du = ROW(dup, i);
        for (int64_t j = 0; j < dout->cols; j++) {
            float sig = 1.0f / (1.0f + expf(-g[j]));
            float silu = g[j] * sig;
            du[j] = d[j] * silu;
            dg[j] = d[j] * u[j] * sig * (1.0f + g[j] * (1.0f - sig));
        }
    }
    return SRLM_OK;
}

srlm_status cpu_logprob_backward(srlm_backend *be, srlm_view *logits, const float *mx,
                                 const float *se, const int *targets, int64_t vocab_start,
                                 const float *dlogp) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < logits->rows; i++) {
        float *r = ROW(logits, i);
        if (dlogp[i] == 0.0f) {
            memset(r, 0, sizeof(float) * (size_t)logits->cols);
            continue;
        }
        const float inv_se = 1.0f / se[i];
        for (int64_t j = 0; j < logits->cols; j++) r[j] = -dlogp[i] * (expf(r[j] - mx[i]) * inv_se);
        int64_t c = (int64_t)targets[i] - vocab_start;
        if (c >= 0 && c < logits->cols) r[c] += dlogp[i];
    }
    return SRLM_OK;
}
